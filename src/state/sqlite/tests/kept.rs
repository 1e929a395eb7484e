//! The fields kept for good (keep, the recovery set and its uses): stored, read back after a
//! reopen, and never pruned.

use super::*;

const KEPT_LIMITS: Limits = Limits {
    max_failures: 5,
    lockout_secs: 300,
    offset_secs: 0,
    radius: 18,
    counter_based: false,
    learned_offset_secs: 0,
};

/// keep, the recovery set and its uses are stored (table `kept`), read back after a reopen,
/// and their row goes when they are all back to the default.
#[test]
fn kept_fields_round_trip_through_the_database() {
    let dir = TempDir::new("kept-round-trip");
    let host = FakeHost::at(T0);
    let store = host.open(&dir);
    store
        .update("alice", &mut |s| {
            s.record_accepted(170_000_000, 0);
            s.keep = true;
            s.recovery_set = u32::MAX;
            s.recovery_used = 0x8000_0001;
        })
        .unwrap();
    store
        .update("bob", &mut |s| s.record_recovery_use(12, 31))
        .unwrap();
    drop(store);
    let store = host.open(&dir);
    let alice = store.peek("alice").unwrap();
    assert_eq!(
        (
            alice.last_step,
            alice.keep,
            alice.recovery_set,
            alice.recovery_used
        ),
        (Some(170_000_000), true, u32::MAX, 0x8000_0001)
    );
    let mut via_update = UserState::default();
    store.update("alice", &mut |s| via_update = *s).unwrap();
    assert_eq!(via_update, alice);
    let bob = store.peek("bob").unwrap();
    assert_eq!(
        (bob.last_step, bob.keep, bob.recovery_set, bob.recovery_used),
        (None, true, 12, 1 << 31)
    );
    let kept_rows = || -> i64 {
        Connection::open(dir.db())
            .unwrap()
            .query_row("SELECT count(*) FROM kept", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(kept_rows(), 2);
    store
        .update("bob", &mut |s| {
            s.keep = false;
            s.recovery_set = 0;
            s.recovery_used = 0;
        })
        .unwrap();
    assert_eq!(kept_rows(), 1);
    assert!(!store.peek("bob").unwrap().keep);
}

/// A recovery code used through a decision stays used after the store is reopened; another
/// code of the set, and a new set, still work.
#[test]
fn a_recovery_use_survives_reopen() {
    let dir = TempDir::new("recovery-reopen");
    let host = FakeHost::at(T0);
    let store = host.open(&dir);
    let code = |set, index| Found::Recovery { set, index };
    assert_eq!(
        store
            .decide("alice", &code(77, 3), T0, &KEPT_LIMITS)
            .unwrap(),
        Decision::RecoveryAccepted { index: 3 }
    );
    drop(store);
    host.set(T0 + 10);
    let store = host.open(&dir);
    assert_eq!(
        store
            .decide("alice", &code(77, 3), T0 + 10, &KEPT_LIMITS)
            .unwrap(),
        Decision::Replay
    );
    assert!(store
        .decide("alice", &code(77, 4), T0 + 11, &KEPT_LIMITS)
        .unwrap()
        .is_accepted());
    assert_eq!(
        store
            .decide("alice", &Found::BadPassword, T0 + 12, &KEPT_LIMITS)
            .unwrap(),
        Decision::BadPassword
    );
    let alice = store.peek("alice").unwrap();
    assert_eq!(
        (
            alice.recovery_set,
            alice.recovery_used,
            alice.failures,
            alice.keep
        ),
        (77, (1 << 3) | (1 << 4), 1, true)
    );
    assert!(store
        .decide("alice", &code(78, 3), T0 + 13, &KEPT_LIMITS)
        .unwrap()
        .is_accepted());
}

/// Rows with keep set (a counter, used recovery codes) outlive pruning however far the clock
/// goes, with their recent steps and kept fields; idle rows without it go.
#[test]
fn prune_never_deletes_a_kept_row() {
    let dir = TempDir::new("prune-kept");
    let host = FakeHost::at(T0);
    let store = host.open(&dir);
    let counter = Limits {
        counter_based: true,
        learned_offset_secs: 0,
        ..KEPT_LIMITS
    };
    let step = |step| Found::Step {
        step,
        step_offset: 0,
    };
    assert!(store
        .decide("hotp", &step(41), T0, &counter)
        .unwrap()
        .is_accepted());
    assert!(store
        .decide(
            "scratch",
            &Found::Recovery { set: 5, index: 0 },
            T0,
            &KEPT_LIMITS
        )
        .unwrap()
        .is_accepted());
    store
        .update("idle", &mut |s| s.record_accepted(170_000_000, 0))
        .unwrap();
    drop(store);
    for years in [1, 10, 100] {
        host.set(T0 + years * 366 * 86_400);
        let store = host.open(&dir);
        store.prune();
        drop(store);
    }
    let conn = Connection::open(dir.db()).unwrap();
    let names = |table: &str| -> Vec<String> {
        conn.prepare(&format!("SELECT username FROM {table} ORDER BY username"))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(names("users"), ["hotp", "scratch"]);
    assert_eq!(names("recent_codes"), ["hotp"]);
    assert_eq!(names("kept"), ["hotp", "scratch"]);
    drop(conn);
    let now = T0 + 100 * 366 * 86_400;
    let store = host.open(&dir);
    assert_eq!(
        store.decide("hotp", &step(41), now, &counter).unwrap(),
        Decision::Replay,
        "the counter is still known"
    );
    assert!(store
        .decide("hotp", &step(42), now, &counter)
        .unwrap()
        .is_accepted());
    assert_eq!(
        store
            .decide(
                "scratch",
                &Found::Recovery { set: 5, index: 0 },
                now,
                &KEPT_LIMITS
            )
            .unwrap(),
        Decision::Replay
    );
}
