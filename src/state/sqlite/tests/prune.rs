//! Pruning of idle rows: when rows go, and the prune clock that a jump of the wall clock
//! cannot move on.

use super::*;

#[test]
fn a_forward_clock_jump_prunes_nothing_until_the_time_has_passed() {
    let dir = TempDir::new("clock-jump");
    let cfg = config(CONFIG);
    let wall = Arc::new(AtomicI64::new(T0));
    let up = Arc::new(AtomicI64::new(1000));
    let host = {
        let (wall, up) = (wall.clone(), up.clone());
        Host {
            now: Arc::new(move || wall.load(Ordering::SeqCst)),
            boot: Some(Boot {
                id: "boot-a".into(),
                time: T0 - 1000,
            }),
            uptime: Arc::new(move || Some(up.load(Ordering::SeqCst))),
        }
    };
    let store = SqliteStore::open_with(&dir.0, host.clone()).unwrap();
    assert!(login(&cfg, &store, "alice", &alice(T0), T0).is_accepted());
    store
        .update("bob", &mut |s| s.locked_until = T0 + 600)
        .unwrap();
    drop(store);

    // The clock is set two days ahead (a wrong NTP answer, `date -s`, an admin's typo).
    wall.store(T0 + 2 * PRUNE_AFTER_SECS, Ordering::SeqCst);
    up.fetch_add(5, Ordering::SeqCst);
    let store = SqliteStore::open_with(&dir.0, host.clone()).unwrap();
    store.prune();
    assert_eq!(count_rows(&dir), 2, "nothing pruned by the jump");
    drop(store);

    // Put right again: the replay is still refused, the lock still holds.
    wall.store(T0 + 10, Ordering::SeqCst);
    let store = SqliteStore::open_with(&dir.0, host.clone()).unwrap();
    assert_eq!(
        login(&cfg, &store, "alice", &alice(T0), T0 + 10),
        Decision::Replay
    );
    let mut bob = UserState::default();
    store.update("bob", &mut |s| bob = *s).unwrap();
    assert_eq!(bob.locked_until, T0 + 600);
    drop(store);

    // Once the time has really passed (uptime), bob's idle row goes; alice's stays, as
    // the refused replay counts as a failure.
    wall.store(T0 + PRUNE_AFTER_SECS + 100, Ordering::SeqCst);
    up.fetch_add(PRUNE_AFTER_SECS + 100, Ordering::SeqCst);
    let store = SqliteStore::open_with(&dir.0, host).unwrap();
    store.prune();
    let left: String = Connection::open(dir.db())
        .unwrap()
        .query_row("SELECT group_concat(username) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, "alice");
}

#[test]
fn the_prune_clock_follows_uptime_and_never_passes_the_wall_clock() {
    let r = |now, wall, up_then, boot_then, up, boot, newest| {
        prune_reference(now, wall, up_then, boot_then, up, boot, newest)
    };
    // Same boot: the last prune plus the uptime since.
    assert_eq!(
        r(
            5000,
            Some(1000),
            Some(10),
            Some("a"),
            Some(110),
            Some("a"),
            None
        ),
        1100
    );
    // Never more than the wall clock.
    assert_eq!(
        r(
            1050,
            Some(1000),
            Some(10),
            Some("a"),
            Some(110),
            Some("a"),
            None
        ),
        1050
    );
    // Another boot: only this boot's uptime counts.
    assert_eq!(
        r(
            9000,
            Some(1000),
            Some(10),
            Some("a"),
            Some(60),
            Some("b"),
            None
        ),
        1060
    );
    // No record yet: the newest row bounds it.
    assert_eq!(
        r(9000, None, None, None, Some(60), Some("a"), Some(2000)),
        2000
    );
    assert_eq!(r(9000, None, None, None, None, None, None), 9000);
}

#[test]
fn idle_rows_are_pruned_and_others_kept() {
    let dir = TempDir::new("prune");
    let host = FakeHost::at(T0);
    let store = host.open(&dir);
    let set = |user: &str, f: &dyn Fn(&mut UserState)| {
        store.update(user, &mut |s| f(s)).unwrap();
    };
    set("accepted", &|s| s.last_step = Some(1));
    set("failing", &|s| s.failures = 2);
    set("locked-long", &|s| s.locked_until = T0 + 30 * 86_400);
    set("lock-over", &|s| s.locked_until = T0 + 300);
    host.set(T0 + PRUNE_AFTER_SECS - 1);
    set("recent", &|s| s.last_step = Some(2));
    store.prune();
    assert_eq!(count_rows(&dir), 5, "nothing old enough yet");

    host.set(T0 + PRUNE_AFTER_SECS + 1);
    store.prune();
    let conn = Connection::open(dir.db()).unwrap();
    let mut left: Vec<String> = conn
        .prepare("SELECT username FROM users")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    left.sort();
    assert_eq!(left, ["failing", "locked-long", "recent"]);

    // Pruning also runs by itself every PRUNE_EVERY decisions.
    host.set(T0 + 2 * PRUNE_AFTER_SECS + 10);
    for _ in 0..PRUNE_EVERY {
        store.update("failing", &mut |_| {}).unwrap();
    }
    assert_eq!(count_rows(&dir), 2, "recent has become old");
}
