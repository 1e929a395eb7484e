//! Tests of opening the database: recovery from unusable files, the schema check and upgrade,
//! the boot check, and instances opening one directory at once.

use super::*;
use crate::state::sqlite::open::{open_db, SCHEMA_V1, SCHEMA_V2_ADDS, SCHEMA_VERSION};

/// Puts something bad at the database path, opens, and checks the recovery: the store
/// opens, the old file is kept aside, codes from before the load are refused as replays,
/// codes after one window length are accepted.
fn recovers_from(name: &str, expect_aside: bool, make: impl FnOnce(&TempDir)) -> TempDir {
    let dir = TempDir::new(name);
    make(&dir);
    let host = FakeHost::at(T0);
    let (store, logs) = capture(|| host.open(&dir));
    assert!(
        logs.iter()
            .any(|(l, m)| *l == Level::ERROR && m.contains("refused")),
        "{name}: {logs:?}"
    );
    assert_eq!(dir.aside_files().len(), usize::from(expect_aside), "{name}");
    let cfg = config(CONFIG);
    assert_eq!(
        login(&cfg, &store, "alice", &alice(T0), T0),
        Decision::Replay,
        "{name}"
    );
    assert_eq!(
        login(&cfg, &store, "alice", &alice(T0 + 180), T0 + 190),
        Decision::Replay,
        "{name}"
    );
    assert_eq!(
        login(&cfg, &store, "alice", &alice(T0 + 190), T0 + 190),
        Decision::Accepted { step_offset: 0 },
        "{name}"
    );
    drop(store);
    // The fresh database is fine: reopening moves nothing more aside.
    let (_store, logs) = capture(|| host.open(&dir));
    assert!(
        logs.iter().all(|(l, _)| *l != Level::ERROR),
        "{name}: {logs:?}"
    );
    assert_eq!(dir.aside_files().len(), usize::from(expect_aside), "{name}");
    dir
}

fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn random_bytes_are_moved_aside() {
    let bytes = noise(10_000);
    let dir = recovers_from("random", true, |d| fs::write(d.db(), &bytes).unwrap());
    let aside = &dir.aside_files()[0];
    assert_eq!(
        aside.file_name().unwrap().to_string_lossy(),
        format!("motp-state.db.corrupt-{T0}")
    );
    assert_eq!(fs::read(aside).unwrap(), bytes, "kept byte for byte");
}

/// A real database with enough rows to span several pages.
fn populated(dir: &TempDir) -> Vec<u8> {
    let host = FakeHost::at(T0 - 10_000);
    let store = host.open(dir);
    for i in 0..400 {
        store
            .update(&format!("user-{i:04}-with-a-longish-name"), &mut |s| {
                s.failures = 1
            })
            .unwrap();
    }
    drop(store);
    fs::read(dir.db()).unwrap()
}

#[test]
fn truncated_database_is_moved_aside() {
    for keep in [0.5, 0.1] {
        let dir = recovers_from("truncated", true, |d| {
            let full = populated(d);
            assert!(full.len() > 8192, "{}", full.len());
            let cut = (full.len() as f64 * keep) as usize;
            fs::write(d.db(), &full[..cut]).unwrap();
        });
        assert!(fs::metadata(&dir.aside_files()[0]).unwrap().len() > 0);
    }
    recovers_from("truncated-header", true, |d| {
        let full = populated(d);
        fs::write(d.db(), &full[..60]).unwrap();
    });
}

#[test]
fn empty_database_file_counts_as_lost_history() {
    recovers_from("empty", false, |d| fs::write(d.db(), b"").unwrap());
}

/// A database of the previous version (as 0.1 wrote it) is upgraded in place: every user's
/// step, failures and lock kept, nothing moved aside, no quarantine.
#[test]
fn a_version_1_database_is_upgraded_in_place_and_keeps_every_user() {
    let dir = TempDir::new("schema-v1");
    {
        let conn = Connection::open(dir.db()).unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        conn.execute_batch(&format!(
            "INSERT INTO meta (key, value) VALUES ('schema_version', 1), ('created_at', {T0});
             INSERT INTO users VALUES ('alice', 170000000, 2, 0, {T0});
             INSERT INTO users VALUES ('bob', NULL, 0, {}, {T0});",
            T0 + 300
        ))
        .unwrap();
    }
    fs::set_permissions(dir.db(), fs::Permissions::from_mode(0o600)).unwrap();
    let host = FakeHost::at(T0 + 10);
    let store = host.open(&dir);
    let read = |name: &str| {
        let mut seen = UserState::default();
        store.update(name, &mut |s| seen = *s).unwrap();
        seen
    };
    let alice = read("alice");
    assert_eq!(
        (alice.last_step, alice.last_offset_secs, alice.failures),
        (Some(170_000_000), None, 2)
    );
    assert_eq!(alice.history_lost_at, None, "no quarantine");
    assert_eq!(read("bob").locked_until, T0 + 300);
    assert!(dir.aside_files().is_empty(), "nothing moved aside");
    // Alice's used step is still used; the next one is accepted, and recorded the new way.
    let limits = Limits {
        max_failures: 5,
        lockout_secs: 300,
        offset_secs: 0,
        radius: 18,
        counter_based: false,
        learned_offset_secs: 0,
    };
    let at = |step| Found::Step {
        step,
        step_offset: 0,
    };
    assert_eq!(
        store
            .decide("alice", &at(170_000_000), T0 + 10, &limits)
            .unwrap(),
        Decision::Replay
    );
    assert!(store
        .decide("alice", &at(170_000_001), T0 + 11, &limits)
        .unwrap()
        .is_accepted());
    drop(store);
    let store = host.open(&dir);
    let mut alice = UserState::default();
    store.update("alice", &mut |s| alice = *s).unwrap();
    assert_eq!(alice.last_offset_secs, Some(0));
    assert_eq!(alice.recent_steps.as_slice(), &[170_000_001]);
    // And what version 3 adds: a recovery use is stored, and kept.
    assert!(store
        .decide(
            "bob",
            &Found::Recovery { set: 3, index: 1 },
            T0 + 400,
            &limits
        )
        .unwrap()
        .is_accepted());
    drop(store);
    let store = host.open(&dir);
    let bob = store.peek("bob").unwrap();
    assert_eq!(
        (bob.keep, bob.recovery_set, bob.recovery_used),
        (true, 3, 2)
    );
    drop(store);
    let conn = Connection::open(dir.db()).unwrap();
    let version: i64 = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
}

/// A database of version 2 (recent steps, no kept rows) is upgraded in place: every user's
/// state kept, nothing moved aside, no quarantine; the new fields start at their defaults.
#[test]
fn a_version_2_database_is_upgraded_in_place_and_keeps_every_user() {
    let dir = TempDir::new("schema-v2");
    {
        let conn = Connection::open(dir.db()).unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        conn.execute_batch(SCHEMA_V2_ADDS).unwrap();
        conn.execute_batch(&format!(
            "INSERT INTO meta (key, value) VALUES ('schema_version', 2), ('created_at', {T0});
             INSERT INTO users VALUES ('alice', 170000002, 1, 0, {T0});
             INSERT INTO recent_codes VALUES ('alice', -60, '170000001,170000002');
             INSERT INTO users VALUES ('bob', NULL, 0, {}, {T0});",
            T0 + 300
        ))
        .unwrap();
    }
    fs::set_permissions(dir.db(), fs::Permissions::from_mode(0o600)).unwrap();
    let host = FakeHost::at(T0 + 10);
    let (store, logs) = capture(|| host.open(&dir));
    assert!(
        logs.iter()
            .any(|(_, m)| m.contains("upgraded from schema version 2 to 3")),
        "{logs:?}"
    );
    let alice = store.peek("alice").unwrap();
    assert_eq!(
        (
            alice.last_step,
            alice.last_offset_secs,
            alice.recent_steps.as_slice(),
            alice.failures
        ),
        (
            Some(170_000_002),
            Some(-60),
            &[170_000_001, 170_000_002][..],
            1
        )
    );
    assert_eq!(
        (alice.keep, alice.recovery_set, alice.recovery_used),
        (false, 0, 0)
    );
    assert_eq!(alice.history_lost_at, None, "no quarantine");
    assert_eq!(store.peek("bob").unwrap().locked_until, T0 + 300);
    assert!(dir.aside_files().is_empty(), "nothing moved aside");
    let limits = Limits {
        max_failures: 5,
        lockout_secs: 300,
        offset_secs: -60,
        radius: 18,
        counter_based: false,
        learned_offset_secs: -60,
    };
    let at = |step| Found::Step {
        step,
        step_offset: 0,
    };
    assert_eq!(
        store
            .decide("alice", &at(170_000_001), T0 + 10, &limits)
            .unwrap(),
        Decision::Replay
    );
    assert!(store
        .decide(
            "alice",
            &Found::Recovery { set: 9, index: 0 },
            T0 + 11,
            &limits
        )
        .unwrap()
        .is_accepted());
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
        (Some(170_000_002), true, 9, 1)
    );
    drop(store);
    let version: i64 = Connection::open(dir.db())
        .unwrap()
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
}

/// An older version's file with something added, or labelled with a version its tables are
/// not of, is not upgraded: it counts as corrupt.
#[test]
fn an_older_file_with_foreign_objects_is_not_upgraded() {
    let v2 = |d: &TempDir, extra: &str| {
        let conn = Connection::open(d.db()).unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        conn.execute_batch(SCHEMA_V2_ADDS).unwrap();
        conn.execute_batch(&format!(
            "INSERT INTO meta (key, value) VALUES ('schema_version', 2), ('created_at', {T0});
             {extra}"
        ))
        .unwrap();
    };
    recovers_from("v2-with-index", true, |d| {
        v2(d, "CREATE INDEX i ON users (failures);")
    });
    recovers_from("v2-with-trigger", true, |d| {
        v2(
            d,
            "CREATE TRIGGER t AFTER INSERT ON users BEGIN DELETE FROM users; END;",
        )
    });
    recovers_from("v2-with-a-foreign-kept", true, |d| {
        v2(d, "CREATE TABLE kept (username TEXT PRIMARY KEY, keep);")
    });
    recovers_from("v1-labelled-2", true, |d| {
        let conn = Connection::open(d.db()).unwrap();
        conn.execute_batch(SCHEMA_V1).unwrap();
        conn.execute_batch(&format!(
            "INSERT INTO meta (key, value) VALUES ('schema_version', 2), ('created_at', {T0});"
        ))
        .unwrap();
    });
}

/// A recent-steps list that is not one the plugin writes refuses the login (fail closed)
/// rather than dropping the steps.
#[test]
fn an_unreadable_recent_steps_list_refuses_the_login() {
    let dir = TempDir::new("recent-garbage");
    let host = FakeHost::at(T0);
    let store = host.open(&dir);
    store
        .update("alice", &mut |s| s.record_accepted(170_000_000, 0))
        .unwrap();
    drop(store);
    let conn = Connection::open(dir.db()).unwrap();
    conn.execute("UPDATE recent_codes SET steps = '1,,x'", [])
        .unwrap();
    drop(conn);
    let store = host.open(&dir);
    assert!(store.update("alice", &mut |_| {}).is_err());
}

#[test]
fn other_schemas_are_moved_aside() {
    recovers_from("foreign-schema", true, |d| {
        let conn = Connection::open(d.db()).unwrap();
        conn.execute_batch("CREATE TABLE users (name TEXT); INSERT INTO users VALUES ('x');")
            .unwrap();
    });
    recovers_from("future-version", true, |d| {
        populated(d);
        let conn = Connection::open(d.db()).unwrap();
        conn.execute(
            "UPDATE meta SET value = 99 WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
    });
    recovers_from("bad-row", true, |d| {
        populated(d);
        let conn = Connection::open(d.db()).unwrap();
        conn.execute("DROP TABLE meta", []).unwrap();
    });
}

/// A trigger, view or index added by whoever can write the file (the runtime user, with
/// `sqlite3`): the file counts as corrupt, and the code accepted before is still refused.
#[test]
fn objects_the_plugin_did_not_create_make_the_file_count_as_corrupt() {
    let additions = [
        (
            "trigger-update",
            "CREATE TRIGGER forget AFTER UPDATE ON users BEGIN \
             UPDATE users SET last_step = NULL, failures = 0, locked_until = 0; END;",
        ),
        (
            "trigger-insert",
            "CREATE TRIGGER forget AFTER INSERT ON users BEGIN \
             DELETE FROM users; END;",
        ),
        ("view", "CREATE VIEW v AS SELECT * FROM users;"),
        ("index", "CREATE INDEX i ON users (failures);"),
        (
            "changed-table",
            "DROP TABLE users; CREATE TABLE users (username TEXT PRIMARY KEY NOT NULL, \
             last_step INTEGER, failures INTEGER NOT NULL DEFAULT 0 CHECK (failures < 1), \
             locked_until INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL);",
        ),
    ];
    for (name, sql) in additions {
        let dir = TempDir::new(name);
        let cfg = config(CONFIG);
        let host = FakeHost::at(T0);
        let store = host.open(&dir);
        assert!(login(&cfg, &store, "alice", &alice(T0), T0).is_accepted());
        drop(store);
        Connection::open(dir.db())
            .unwrap()
            .execute_batch(sql)
            .unwrap();
        let (store, logs) = capture(|| host.open(&dir));
        assert_eq!(dir.aside_files().len(), 1, "{name}: {logs:?}");
        assert!(
            logs.iter()
                .any(|(l, m)| *l == Level::ERROR && m.contains("did not create")),
            "{name}: {logs:?}"
        );
        for _ in 0..3 {
            assert_eq!(
                login(&cfg, &store, "alice", &alice(T0), T0 + 1),
                Decision::Replay,
                "{name}"
            );
        }
    }
}

/// Even before the schema check has run, a trigger does not fire on the connection.
#[test]
fn triggers_never_run_on_the_plugins_connection() {
    let dir = TempDir::new("no-triggers");
    let host = FakeHost::at(T0);
    drop(host.open(&dir));
    let inner = open_db(&dir.db(), &host.host(), None).ok().unwrap();
    inner
        .conn
        .execute_batch("CREATE TRIGGER t AFTER INSERT ON users BEGIN DELETE FROM users; END;")
        .unwrap();
    inner
        .conn
        .execute(
            "INSERT INTO users (username, failures, updated_at) VALUES ('x', 1, 0)",
            [],
        )
        .unwrap();
    let rows: i64 = inner
        .conn
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1, "the trigger must not have run");
}

#[test]
fn a_directory_or_symlink_in_place_of_the_file_is_moved_aside() {
    let dir = recovers_from("directory", true, |d| {
        fs::create_dir(d.db()).unwrap();
        fs::write(d.db().join("inside"), b"x").unwrap();
    });
    assert!(dir.aside_files()[0].join("inside").exists());

    let elsewhere = TempDir::new("symlink-target");
    let target_bytes = populated(&elsewhere);
    let dir = recovers_from("symlink", true, |d| {
        std::os::unix::fs::symlink(elsewhere.db(), d.db()).unwrap();
    });
    let aside = &dir.aside_files()[0];
    assert!(fs::symlink_metadata(aside)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        fs::read(elsewhere.db()).unwrap(),
        target_bytes,
        "target untouched"
    );
}

#[test]
fn unclean_reboot_refuses_codes_from_before_the_boot() {
    let cfg = config(CONFIG);
    let boot_b = |time| Boot {
        id: "boot-b".into(),
        time,
    };
    // The machine lost power while the store was open: its log is left behind.
    let dir = TempDir::new("power-loss");
    let host = FakeHost::at(T0);
    let store = host.open(&dir);
    assert!(login(&cfg, &store, "alice", &alice(T0), T0).is_accepted());
    std::mem::forget(store);
    assert!(with_suffix(&dir.db(), "-wal").exists());
    let rebooted = FakeHost {
        boot: Some(boot_b(T0 + 40)),
        ..host.clone()
    };
    rebooted.set(T0 + 60);
    let (store, logs) = capture(|| rebooted.open(&dir));
    assert!(logs.iter().any(|(_, m)| m.contains("rebooted")), "{logs:?}");
    assert_eq!(
        login(&cfg, &store, "alice", &alice(T0 + 60), T0 + 60),
        Decision::Replay
    );
    assert!(login(&cfg, &store, "alice", &alice(T0 + 230), T0 + 230).is_accepted());

    // A clean stop before the reboot: nothing is refused.
    let dir = TempDir::new("clean-reboot");
    let store = host.open(&dir);
    assert!(login(&cfg, &store, "alice", &alice(T0), T0).is_accepted());
    drop(store);
    let (store, logs) = capture(|| rebooted.open(&dir));
    assert!(
        logs.iter().all(|(_, m)| !m.contains("rebooted")),
        "{logs:?}"
    );
    assert!(login(&cfg, &store, "alice", &alice(T0 + 60), T0 + 60).is_accepted());
}

/// A UDP and a TCP instance starting at the same moment on a directory that does not
/// exist yet: both open, one database, nothing set aside, no lost history.
#[test]
fn two_stores_opening_a_fresh_directory_at_once_share_one_database() {
    for round in 0..40 {
        let parent = TempDir::new(&format!("race-{round}"));
        let dir = parent.0.join("state");
        let host = FakeHost::at(T0);
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let opened: Vec<_> = (0..2)
            .map(|_| {
                let (dir, host, barrier) = (dir.clone(), host.host(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    capture(|| SqliteStore::open_with(&dir, host).map(|_| ()))
                })
            })
            .collect();
        for handle in opened {
            let (result, logs) = handle.join().unwrap();
            result.unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert!(
                logs.iter().all(|(l, _)| *l != Level::ERROR),
                "round {round}: {logs:?}"
            );
        }
        let names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("motp-state.db."))
            .collect();
        assert!(names.is_empty(), "round {round}: {names:?}");
    }
}
