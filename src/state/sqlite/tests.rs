//! The store's unit tests, and the helpers other modules' tests use ([`TempDir`], [`T0`],
//! [`capture`], [`FakeHost`]). The tests of opening and recovery are in `tests/open.rs` (beside this file).

use super::open::with_suffix;
use super::*;
use crate::auth::{Authenticator, Decision, LoginRequest};
use crate::config::Config;
use crate::engine::code_at_time;
use crate::rule::{Found, Limits};
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::AtomicI64;
use tracing::Level;

pub(crate) const T0: i64 = 1_700_000_000;
const CONFIG: &str = r#"
max_failures = 3
lockout_secs = 300
[users.alice]
secret = "0123456789abcdef"
pin = "1234"
[users.bob]
secret = "fedcba9876543210"
pin = "4321"
"#;

/// A directory under the system temp dir, removed (with its contents) on drop.
pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("motp-state-test-{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
    fn db(&self) -> PathBuf {
        self.0.join(DB_FILE_NAME)
    }
    fn aside_files(&self) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                name.starts_with("motp-state.db.corrupt-")
                    && !name.ends_with("-wal")
                    && !name.ends_with("-shm")
            })
            .collect();
        found.sort();
        found
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::set_permissions(&self.0, fs::Permissions::from_mode(0o700));
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A settable clock and a fixed boot.
#[derive(Clone)]
pub(crate) struct FakeHost {
    now: Arc<AtomicI64>,
    boot: Option<Boot>,
}

impl FakeHost {
    pub(crate) fn at(now: i64) -> FakeHost {
        FakeHost {
            now: Arc::new(AtomicI64::new(now)),
            boot: Some(Boot {
                id: "boot-a".into(),
                time: T0 - 86_400,
            }),
        }
    }
    fn set(&self, now: i64) {
        self.now.store(now, Ordering::SeqCst);
    }
    /// The fake clock, and an uptime that follows it (a machine whose clock never jumps).
    pub(crate) fn host(&self) -> Host {
        let now = self.now.clone();
        let up = self.now.clone();
        let booted = self.boot.as_ref().map_or(T0 - 86_400, |b| b.time);
        Host {
            now: Arc::new(move || now.load(Ordering::SeqCst)),
            boot: self.boot.clone(),
            uptime: Arc::new(move || Some(up.load(Ordering::SeqCst) - booted)),
        }
    }
    fn open(&self, dir: &TempDir) -> SqliteStore {
        SqliteStore::open_with(&dir.0, self.host()).unwrap()
    }
}

fn config(text: &str) -> Config {
    Config::parse(Path::new("t.toml"), text).unwrap()
}

fn login(config: &Config, store: &dyn StateStore, user: &str, code: &str, now: i64) -> Decision {
    let auth = Authenticator {
        policy: &config.policy,
        users: &config.users,
        store,
        learned: None,
    };
    let request = LoginRequest {
        username: Some(user.as_bytes()),
        password: Some(code.as_bytes()),
        common_name: Some(user.as_bytes()),
    };
    auth.decide(&request, now)
}

fn alice(at: i64) -> String {
    code_at_time("0123456789abcdef", "1234", at).to_hex()
}

/// Runs `f` with log events captured.
pub(crate) fn capture<R>(f: impl FnOnce() -> R) -> (R, Vec<(Level, String)>) {
    let lines = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let seen = lines.clone();
    let dispatch = crate::log::dispatch(
        Arc::new(move |level, line: &str| seen.lock().push((level, line.to_owned()))),
        Level::INFO,
    );
    let result = tracing::dispatcher::with_default(&dispatch, f);
    let lines = lines.lock().clone();
    (result, lines)
}

fn count_rows(dir: &TempDir) -> i64 {
    let conn = Connection::open(dir.db()).unwrap();
    conn.query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn replay_is_rejected_after_reopen() {
    let dir = TempDir::new("reopen");
    let cfg = config(CONFIG);
    let host = FakeHost::at(T0);
    let store = host.open(&dir);
    assert_eq!(
        login(&cfg, &store, "alice", &alice(T0), T0),
        Decision::Accepted { step_offset: 0 }
    );
    drop(store);
    let db_mode = fs::metadata(dir.db()).unwrap().mode() & 0o777;
    assert_eq!(db_mode, 0o600);

    let store = host.open(&dir);
    assert_eq!(
        login(&cfg, &store, "alice", &alice(T0), T0 + 1),
        Decision::Replay
    );
    assert_eq!(
        login(&cfg, &store, "alice", &alice(T0 + 10), T0 + 2),
        Decision::Accepted { step_offset: 1 }
    );
    assert!(dir.aside_files().is_empty());
}

#[test]
fn lock_survives_reopen_and_ends_after_the_period() {
    let dir = TempDir::new("lock");
    let cfg = config(CONFIG);
    let host = FakeHost::at(T0);
    let store = host.open(&dir);
    for _ in 0..3 {
        assert_eq!(
            login(&cfg, &store, "alice", "000000", T0),
            Decision::BadCode
        );
    }
    drop(store);
    host.set(T0 + 100);
    let store = host.open(&dir);
    assert_eq!(
        login(&cfg, &store, "alice", &alice(T0 + 100), T0 + 100),
        Decision::Locked { until: T0 + 300 }
    );
    // bob was never touched.
    let bob = code_at_time("fedcba9876543210", "4321", T0 + 100).to_hex();
    assert!(login(&cfg, &store, "bob", &bob, T0 + 100).is_accepted());
    drop(store);
    host.set(T0 + 300);
    let store = host.open(&dir);
    assert!(login(&cfg, &store, "alice", &alice(T0 + 300), T0 + 300).is_accepted());
}

#[test]
fn two_stores_on_one_dir_accept_a_code_exactly_once() {
    let dir = TempDir::new("race");
    // Replays count as failures; keep the lock out of this test.
    let cfg = config(&CONFIG.replace("max_failures = 3", "max_failures = 1000000"));
    let host = FakeHost::at(T0);
    let stores = [host.open(&dir), host.open(&dir)];
    const THREADS: usize = 8;
    for round in 0..25 {
        let now = T0 + round * 10;
        host.set(now);
        let code = alice(now);
        let barrier = std::sync::Barrier::new(THREADS);
        let accepted = AtomicU32::new(0);
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let (store, code, barrier, accepted, cfg) =
                    (&stores[t % 2], &code, &barrier, &accepted, &cfg);
                s.spawn(move || {
                    barrier.wait();
                    match login(cfg, store, "alice", code, now) {
                        Decision::Accepted { .. } => {
                            accepted.fetch_add(1, Ordering::SeqCst);
                        }
                        Decision::Replay => {}
                        other => panic!("unexpected {other:?}"),
                    }
                });
            }
        });
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "round {round}");
    }
}

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
fn a_file_replaced_while_in_use_is_noticed() {
    let dir = TempDir::new("replaced");
    let cfg = config(CONFIG);
    let host = FakeHost::at(T0);
    let store = host.open(&dir);
    assert!(login(&cfg, &store, "alice", &alice(T0), T0).is_accepted());
    for suffix in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(with_suffix(&dir.db(), suffix));
    }
    host.set(T0 + 10);
    let (decision, logs) = capture(|| login(&cfg, &store, "alice", &alice(T0), T0 + 10));
    assert_eq!(decision, Decision::Replay);
    assert!(
        logs.iter().any(|(_, m)| m.contains("removed or replaced")),
        "{logs:?}"
    );
    assert!(dir.db().exists());
    assert_eq!(
        login(&cfg, &store, "alice", &alice(T0 + 20), T0 + 20),
        Decision::Replay,
        "the window could have reached it before the loss"
    );
    host.set(T0 + 200);
    assert!(login(&cfg, &store, "alice", &alice(T0 + 200), T0 + 200).is_accepted());
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

/// Not a pass/fail test: prints what one decision costs with the durable store.
/// `cargo test --release --lib decision_timing -- --nocapture` for the real numbers.
#[test]
fn decision_timing() {
    use std::time::Instant;
    let dir = TempDir::new("timing");
    let cfg = config(&CONFIG.replace("max_failures = 3", "max_failures = 4000000000"));
    let host = FakeHost::at(T0);
    let store = host.open(&dir);
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    const N: i64 = 300;
    let (mut accept, mut reject, mut store_only) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..N {
        let now = T0 + 10 * i;
        host.set(now);
        let code = alice(now);
        let t = Instant::now();
        assert!(login(&cfg, &store, "alice", &code, now).is_accepted());
        accept.push(t.elapsed());
        let t = Instant::now();
        assert_eq!(
            login(&cfg, &store, "alice", "000000", now),
            Decision::BadCode
        );
        reject.push(t.elapsed());
        let t = Instant::now();
        store.update("bob", &mut |s| s.failures += 1).unwrap();
        store_only.push(t.elapsed());
    }
    let memory = crate::state::MemoryStore::new();
    let mut in_memory = Vec::new();
    for i in 0..N {
        let now = T0 + 10 * i;
        let t = Instant::now();
        assert!(login(&cfg, &memory, "alice", &alice(now), now).is_accepted());
        in_memory.push(t.elapsed());
    }
    println!(
        "decision medians over {N}: accept {:?}, reject (bad code) {:?}, store update alone \
         {:?}; accept with the memory store {:?} (debug builds are much slower than release)",
        median(accept),
        median(reject),
        median(store_only),
        median(in_memory)
    );
}

mod open;

/// A locked user's decision changes nothing of the user's, yet writes once (the decoy row), so
/// it costs what every other refusal costs, also before any refusal created the decoy row.
#[test]
fn a_locked_decision_writes_the_decoy_row() {
    let dir = TempDir::new("locked-writes");
    let host = FakeHost::at(T0);
    let store = host.open(&dir);
    store
        .update("alice", &mut |s| s.locked_until = T0 + 300)
        .unwrap();
    assert_eq!(count_rows(&dir), 1);
    let limits = Limits {
        max_failures: 5,
        lockout_secs: 300,
        offset_secs: 0,
        radius: 18,
        counter_based: false,
        learned_offset_secs: 0,
    };
    let decoy_failures = || -> i64 {
        Connection::open(dir.db())
            .unwrap()
            .query_row(
                "SELECT failures FROM users WHERE username = ?1",
                [crate::auth::DECOY_USERNAME],
                |r| r.get(0),
            )
            .unwrap()
    };
    for round in 1..=2 {
        assert_eq!(
            store
                .decide("alice", &Found::NoMatch, T0 + 1, &limits)
                .unwrap(),
            Decision::Locked { until: T0 + 300 }
        );
        assert_eq!(decoy_failures(), round);
    }
    assert_eq!(count_rows(&dir), 2);
}

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
