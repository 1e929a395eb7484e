//! The store's unit tests, and the helpers other modules' tests use ([`TempDir`], [`T0`],
//! [`capture`], [`FakeHost`]). Beside this file, in `tests/`: opening and recovery (`open.rs`),
//! another process holding the write lock (`write_lock.rs`), pruning (`prune.rs`), and the
//! fields kept for good (`kept.rs`).

use super::open::with_suffix;
use super::*;
use crate::auth::Decision;
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
    crate::login_fixture::decide_login(config, store, None, user, code, user, now)
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

mod kept;
mod open;
mod prune;
mod write_lock;

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
