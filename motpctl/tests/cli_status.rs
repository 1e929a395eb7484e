//! `motpctl` CLI tests: status, unlock (helpers in `common/mod.rs`).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use motp::config::Config;
use motp_harness::temp::TempDir;

mod common;
use common::*;

#[test]
fn status_and_unlock_are_not_available_with_the_memory_backend() {
    let dir = TempDir::new("status-memory");
    let path = dir.config(CLEAN, 0o600);
    for args in [
        vec!["status"],
        vec!["status", "alice"],
        vec!["unlock", "alice"],
    ] {
        let mut all = args.clone();
        all.extend(["-c", s(&path)]);
        let r = run(&all);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(
            r.stderr
                .contains("not available with `backend = \"memory\"`"),
            "{r:?}"
        );
    }
}

#[test]
fn status_and_unlock_with_the_local_store() {
    use motp::state::StateStore;
    let dir = TempDir::new("status-local");
    let (path, state) = local_state_config(&dir);
    let p = s(&path);

    // Nothing recorded yet: no database, and motpctl does not create one.
    let r = run(&["status", "-c", p, NOW_ARG]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("no state recorded yet"), "{r:?}");
    let r = run(&["unlock", "alice", "-c", p, NOW_ARG]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!state.exists());

    // The plugin's store: alice locked for 4 more minutes after an accepted code; bob has
    // one failure.
    let last_step = motp::engine::step_of(NOW) - 6;
    {
        let store = store(&state);
        store
            .update("alice", &mut |s| {
                s.last_step = Some(last_step);
                s.locked_until = NOW + 240;
            })
            .unwrap();
        store
            .update("bob", &mut |s| {
                s.failures = 1;
                s.record_recovery_use(7, 0);
                s.record_recovery_use(7, 4);
            })
            .unwrap();
    }

    let r = run(&["status", "-c", p, NOW_ARG]);
    assert_eq!(r.code, 1, "a locked user: {r:?}");
    assert!(
        r.stdout.contains(
            "bob: not locked, 1 failed login (locks at 3), 2 recovery codes used, state kept"
        ),
        "{r:?}"
    );
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(
        lines[0].starts_with("alice: LOCKED for another 4 min"),
        "{r:?}"
    );
    assert!(lines[0].contains("last code accepted about 1 min"), "{r:?}");
    assert!(
        lines[1].starts_with("bob: not locked, 1 failed login (locks at 3)"),
        "{r:?}"
    );
    let r = run(&["status", "bob", "-c", p, NOW_ARG]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stdout.contains("alice"), "{r:?}");
    let r = run(&["status", "mallory", "-c", p, NOW_ARG]);
    assert_eq!(r.code, 2, "{r:?}");

    let r = run(&["unlock", "alice", "-c", p, NOW_ARG]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains("alice: unlocked (it was locked for another 4 min)"),
        "{r:?}"
    );
    let r = run(&["unlock", "alice", "-c", p, NOW_ARG]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("nothing changed"), "{r:?}");
    let r = run(&["unlock", "bob", "-c", p, NOW_ARG]);
    assert!(
        r.stdout
            .contains("bob: was not locked; 1 failed login forgotten"),
        "{r:?}"
    );
    let r = run(&["unlock", "mallory", "-c", p, NOW_ARG]);
    assert_eq!(r.code, 2, "{r:?}");

    let r = run(&["status", "-c", p, NOW_ARG]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("alice: not locked, no failed logins"),
        "{r:?}"
    );

    // Unlocking kept the replay record.
    let store = store(&state);
    let mut seen = motp::state::UserState::default();
    store.update("alice", &mut |s| seen = *s).unwrap();
    assert_eq!(seen.last_step, Some(last_step));
    assert_eq!((seen.failures, seen.locked_until), (0, 0));
}

#[test]
fn status_and_unlock_with_redis() {
    use motp::config::StateConfig;
    use motp::state::{RedisStore, StateStore};
    let dir = TempDir::new("status-redis");
    let mut redis = motp_harness::openvpn::RedisServer::start(dir.path());
    let text = format!(
        "max_failures = 3\n\
         [users.alice]\nsecret = \"0123456789abcdef\"\npin = \"1234\"\n\
         [users.bob]\nsecret = \"fedcba9876543210\"\npin = \"4321\"\n\
         [state]\nbackend = \"redis\"\nurl = \"{}\"\ndir = \"{}\"\n",
        redis.url(),
        // The test's own directory for the data epoch, never the machine's
        // /var/lib/openvpn-motp (a root-owned one there would fail the package's install).
        dir.path().join("state").display()
    );
    let path = dir.config(&text, 0o600);
    let p = s(&path);

    // What the plugin's store on some server recorded: alice locked after an accepted code.
    let config = Config::load(&path).unwrap();
    let StateConfig::Redis(r) = &config.state else {
        panic!("{:?}", config.state)
    };
    let store = RedisStore::open(r, config.policy.retention_secs(), None).unwrap();
    let last_step = motp::engine::step_of(NOW) - 6;
    store
        .update("alice", &mut |s| {
            s.last_step = Some(last_step);
            s.locked_until = NOW + 240;
        })
        .unwrap();

    let r = run(&["status", "-c", p, NOW_ARG]);
    assert_eq!(r.code, 1, "a locked user: {r:?}");
    assert!(
        r.stdout.contains("alice: LOCKED for another 4 min"),
        "{r:?}"
    );
    assert!(
        r.stdout.contains("bob: not locked, no failed logins"),
        "{r:?}"
    );
    let r = run(&["unlock", "alice", "-c", p, NOW_ARG]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains("alice: unlocked (it was locked for another 4 min)"),
        "{r:?}"
    );
    let mut seen = motp::state::UserState::default();
    store.update("alice", &mut |s| seen = *s).unwrap();
    assert_eq!((seen.failures, seen.locked_until), (0, 0));
    assert_eq!(seen.last_step, Some(last_step), "the replay record stays");

    // Redis down: said so, exit 2, nothing pretended.
    redis.stop();
    let r = run(&["status", "-c", p, NOW_ARG]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("unavailable"), "{r:?}");
}

#[test]
fn check_config_checks_the_state_directory() {
    let dir = TempDir::new("check-state");
    let (path, state) = local_state_config(&dir);
    let p = s(&path);
    let me = run_id_un(fs::metadata(&path).unwrap().uid());
    // Missing: the plugin would create it as the user it runs as.
    let r = run(&["check-config", p, "--no-clock-check"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("does not exist yet"), "{r:?}");
    // Present and ours.
    fs::create_dir(&state).unwrap();
    fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).unwrap();
    let r = run(&["check-config", p, "--no-clock-check", "-u", &me]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("is writable by"), "{r:?}");
    // Another runtime user: the plugin, opened as that user, refuses a directory it does not
    // own.
    if me != "nobody" {
        let r = run(&["check-config", p, "--no-clock-check", "-u", "nobody"]);
        assert_eq!(r.code, 2, "{r:?}");
        assert!(
            r.stdout
                .contains("belongs to root, not to the runtime user nobody"),
            "{r:?}"
        );
    }
    // Writable by its group: refused, whoever runs the plugin.
    fs::set_permissions(&state, fs::Permissions::from_mode(0o770)).unwrap();
    let r = run(&["check-config", p, "--no-clock-check", "-u", &me]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stdout.contains("chmod go-w"), "{r:?}");
    fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).unwrap();
    // A file where the directory should be: the plugin would not start.
    fs::remove_dir(&state).unwrap();
    fs::write(&state, "").unwrap();
    let r = run(&["check-config", p, "--no-clock-check"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stdout.contains("is not a directory"), "{r:?}");
}

/// The hidden `--now` (debug builds only; a release motpctl rejects it, checked by
/// scripts/deb-test.sh) changes nothing in the store: `status` and `verify` with a
/// clock a century ahead, or decades behind, leave the database's bytes and every record as
/// they were (a live lock, the failure count, the recent steps).
#[test]
fn now_in_the_far_future_or_past_changes_nothing_in_the_state_database() {
    use motp::state::StateStore;
    let dir = TempDir::new("status-now");
    let (path, state) = local_state_config(&dir);
    let p = s(&path);
    let real = motp::clock::now();
    let step = motp::engine::step_of(real);
    let host = || motp::state::Host {
        now: std::sync::Arc::new(motp::clock::now),
        boot: None,
        uptime: std::sync::Arc::new(|| None),
    };
    let records = || {
        let store = motp::state::SqliteStore::open_without_pruning(&state, host()).unwrap();
        let mut all = Vec::new();
        for name in ["alice", "bob"] {
            let mut seen = motp::state::UserState::default();
            store.update(name, &mut |s| seen = *s).unwrap();
            all.push(seen);
        }
        all
    };
    {
        let store = motp::state::SqliteStore::open_with(&state, host()).unwrap();
        store
            .update("alice", &mut |s| {
                s.record_accepted(step - 3, 0);
                s.record_accepted(step - 1, 0);
                s.failures = 2;
                s.locked_until = real + 600;
            })
            .unwrap();
        store.update("bob", &mut |s| s.failures = 1).unwrap();
    }
    let before = records();
    assert_eq!(before[0].failures, 2);
    // A first run with the real clock, so that whatever opening records (the boot) is there.
    assert_eq!(run(&["status", "-c", p]).code, 1);
    let files =
        || ["motp-state.db", "motp-state.db-wal"].map(|name| fs::read(state.join(name)).ok());
    let bytes = files();
    assert!(bytes[0].is_some());

    let code = code_at("0123456789abcdef", "1234", real);
    for now in [
        "--now=4102444800",
        "--now=32503680000",
        "--now=0",
        "--now=-86400",
    ] {
        for args in [
            vec!["status", "-c", p, now],
            vec!["status", "alice", "-c", p, now],
            vec!["verify", "alice", &code, "-c", p, now],
        ] {
            let r = run(&args);
            assert!(r.code <= 1, "{args:?}: {r:?}");
        }
        assert!(files() == bytes, "{now}: the database's bytes changed");
        assert_eq!(records(), before, "{now}: the records changed");
    }
    // The lock is still live by the real clock.
    let r = run(&["status", "alice", "-c", p]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("alice: LOCKED for another"), "{r:?}");
}
