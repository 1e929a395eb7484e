//! Another process (an admin's `sqlite3` shell) holding the database's write lock: decisions
//! are refused quickly, a store opened meanwhile opens the database later, and `peek` still
//! reads.

use super::*;

/// Another process (an admin's `sqlite3` shell) inside `BEGIN IMMEDIATE`.
struct ForeignLock(std::process::Child);

impl ForeignLock {
    fn hold(db: &Path) -> ForeignLock {
        use std::io::Write;
        let mut child = std::process::Command::new("sqlite3")
            .arg(db)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the sqlite3 shell is installed (test.sh installs it)");
        let stdin = child.stdin.as_mut().unwrap();
        stdin
            .write_all(b"BEGIN IMMEDIATE;\nSELECT 'locked';\n")
            .unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "locked");
        ForeignLock(child)
    }
}

impl Drop for ForeignLock {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_database_locked_by_another_process_refuses_quickly_then_recovers() {
    use std::time::Instant;
    let dir = TempDir::new("foreign-lock");
    let cfg = config(CONFIG);
    let host = FakeHost::at(T0);
    let store = host.open(&dir);
    {
        let _lock = ForeignLock::hold(&dir.db());
        let started = Instant::now();
        let (decision, logs) = capture(|| login(&cfg, &store, "alice", &alice(T0), T0));
        // Against a hang only: the figure is in docs/performance.md.
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(decision, Decision::StateUnavailable);
        assert!(logs.iter().any(|(_, m)| m.contains("locked")), "{logs:?}");
        // Opening while it is held: no error, the store opens at a later login.
        let started = Instant::now();
        let (second, logs) = capture(|| host.open(&dir));
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(
            logs.iter()
                .any(|(l, m)| *l == Level::WARN && m.contains("opened at the first login")),
            "{logs:?}"
        );
        assert_eq!(
            login(&cfg, &second, "alice", &alice(T0), T0),
            Decision::StateUnavailable
        );
        drop(second);
    }
    assert!(login(&cfg, &store, "alice", &alice(T0), T0).is_accepted());
    let (reopened, _) = capture(|| host.open(&dir));
    assert_eq!(
        login(&cfg, &reopened, "alice", &alice(T0), T0 + 1),
        Decision::Replay
    );
    assert!(dir.aside_files().is_empty());
}

/// A store opened while the database was locked opens it at the first login after.
#[test]
fn a_store_opened_while_locked_opens_the_database_once_free() {
    let dir = TempDir::new("lazy-open");
    let cfg = config(CONFIG);
    let host = FakeHost::at(T0);
    drop(host.open(&dir));
    let lock = ForeignLock::hold(&dir.db());
    let (store, _) = capture(|| host.open(&dir));
    drop(lock);
    let (decision, logs) = capture(|| login(&cfg, &store, "alice", &alice(T0), T0));
    assert!(decision.is_accepted(), "{decision:?}");
    assert!(
        logs.iter().any(|(_, m)| m.contains("no longer locked")),
        "{logs:?}"
    );
}

/// `peek` reads in one SELECT: it changes nothing (no row for an unknown user, no decoy, no
/// prune count), sees the lost-history mark, and works while another process holds the write
/// lock, where a decision is refused.
#[test]
fn peek_reads_without_a_write_transaction() {
    let dir = TempDir::new("peek");
    let host = FakeHost::at(T0);
    let store = host.open(&dir);
    assert_eq!(store.peek("nobody").unwrap(), UserState::default());
    assert_eq!(count_rows(&dir), 0, "a peek writes no row");
    store
        .update("alice", &mut |s| {
            s.record_accepted(170_000_000, 30);
            s.failures = 2;
            s.locked_until = T0 + 9;
        })
        .unwrap();
    let expected = {
        let mut s = UserState::default();
        s.record_accepted(170_000_000, 30);
        s.failures = 2;
        s.locked_until = T0 + 9;
        s
    };
    {
        let _lock = ForeignLock::hold(&dir.db());
        assert_eq!(store.peek("alice").unwrap(), expected);
        assert!(store.update("alice", &mut |_| {}).is_err());
    }
    Connection::open(dir.db())
        .unwrap()
        .execute(
            "INSERT INTO meta (key, value) VALUES ('history_lost_at', ?1)",
            [T0 - 5],
        )
        .unwrap();
    assert_eq!(store.peek("alice").unwrap().history_lost_at, Some(T0 - 5));
    assert_eq!(store.peek("nobody").unwrap().history_lost_at, Some(T0 - 5));
    let mut seen = UserState::default();
    store.update("alice", &mut |s| seen = *s).unwrap();
    assert_eq!(
        store.peek("alice").unwrap(),
        seen,
        "what a decision would see"
    );
    assert_eq!(count_rows(&dir), 1);
}
