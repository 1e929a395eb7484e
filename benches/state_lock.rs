//! The local store (`SqliteStore`) under a foreign lock: what one login costs while another
//! process (an admin's `sqlite3` shell) holds the database in `BEGIN IMMEDIATE`, next to a
//! normal login on the same store. `Authenticator::decide` with a 1,000-user table, as in
//! benches/decide.rs; no env parsing, logging or file I/O besides SQLite's own.
//!
//! The refused login waits [`BUSY_TIMEOUT`] for the lock (SQLite's busy handler sleeps 1, 2,
//! 5, 10 and 15 ms, then the 17 ms left of the budget, trying again after each), then answers
//! `StateUnavailable` (`TEMP[backoff 30]` to the client). Needs the `sqlite3` shell (test.sh
//! installs it).
//!
//! Run: `cargo bench --bench state_lock` (about 15 s after the build). The state directory is
//! created 0700 under `/var/tmp` (ext4 here, like `/var/lib/openvpn-motp`);
//! `MOTP_BENCH_STATE_PARENT` moves it.

use std::cell::Cell;
use std::path::Path;
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use motp::auth::{Authenticator, Decision, LoginRequest};
use motp::config::Config;
use motp::state::{SqliteStore, DB_FILE_NAME};
use motp_harness::sqlite_lock::ForeignLock;
use motp_harness::synthetic::{code, pin, secret, wrong_code};
use motp_harness::temp::TempDir;

const USERS: usize = 1000;
const NOW: i64 = 1_764_316_800;
const RADIUS: i64 = 18;
use motp::state::BUSY_TIMEOUT;

fn config_text() -> String {
    // A lockout that never triggers, so wrong codes stay wrong codes.
    let mut text = format!("max_failures = {}\nlockout_secs = 300\n", u32::MAX);
    for i in 0..USERS {
        text.push_str(&format!(
            "[users.user{i}]\nsecret = \"{}\"\npin = \"{}\"\n",
            secret(i),
            pin(i)
        ));
    }
    text
}

fn request<'a>(user: &'a str, password: &'a str) -> LoginRequest<'a> {
    LoginRequest {
        username: Some(user.as_bytes()),
        password: Some(password.as_bytes()),
        common_name: Some(user.as_bytes()),
    }
}

fn bench(c: &mut Criterion) {
    let config = Config::parse(Path::new("bench.toml"), &config_text()).expect("valid config");
    assert_eq!(config.users.len(), USERS);
    let dir = TempDir::for_bench_state("state-lock");
    let store = SqliteStore::open(dir.path()).expect("open the local store");
    let auth = Authenticator {
        policy: &config.policy,
        users: &config.users,
        store: &store,
        learned: None,
    };

    let mut group = c.benchmark_group("decide_local_1000_users");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));

    // Accept: user 7, one new step per login (each code is accepted once), phone in sync: one
    // IMMEDIATE transaction that reads the row and writes the new step.
    let clock = Cell::new(NOW);
    group.bench_function("accept (phone in sync)", |b| {
        b.iter_batched(
            || {
                let now = clock.get() + 10;
                clock.set(now);
                (code(7, now), now)
            },
            |(password, now)| {
                let d = auth.decide(&request("user7", &password), now);
                assert!(matches!(d, Decision::Accepted { step_offset: 0 }));
                d
            },
            BatchSize::SmallInput,
        )
    });

    // Wrong code: the full window, then the failure count written back.
    let wrong = wrong_code(8, NOW, RADIUS);
    assert_eq!(
        auth.decide(&request("user8", &wrong), NOW),
        Decision::BadCode
    );
    group.bench_function("wrong code", |b| {
        b.iter(|| auth.decide(black_box(&request("user8", &wrong)), NOW))
    });
    group.finish();

    // Refused: a correct code while an sqlite3 shell holds the write lock.
    let good = code(12, NOW);
    let mut group = c.benchmark_group("decide_local_locked_by_sqlite3");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    // 1 + 2 + ... + 10 = 55 timed logins of ~51 ms.
    group.measurement_time(Duration::from_secs(3));
    {
        let _lock = ForeignLock::hold(&dir.path().join(DB_FILE_NAME));
        let started = std::time::Instant::now();
        assert_eq!(
            auth.decide(&request("user12", &good), NOW),
            Decision::StateUnavailable
        );
        assert!(started.elapsed() >= BUSY_TIMEOUT, "{:?}", started.elapsed());
        group.bench_function("refused (TEMP[backoff]) after the busy wait", |b| {
            b.iter(|| {
                let d = auth.decide(black_box(&request("user12", &good)), NOW);
                assert_eq!(d, Decision::StateUnavailable);
                d
            })
        });
    }
    group.finish();
    // The lock released, the same code is accepted: nothing was written while refused.
    assert!(auth.decide(&request("user12", &good), NOW).is_accepted());
}

criterion_group!(benches, bench);
criterion_main!(benches);
