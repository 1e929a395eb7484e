//! `Authenticator::decide` with the in-memory store, for a 1,000-user table: accept (phone in
//! sync), wrong code, unknown user, replay and locked. No env parsing, logging or file I/O:
//! that is the ABI bench's job (tests/harness/src/bin/motp-abi-bench/).
//!
//! Run: `cargo bench --bench decide`.

use std::cell::Cell;
use std::path::Path;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use motp::auth::{Authenticator, Decision, LoginRequest};
use motp::config::Config;
use motp::state::MemoryStore;
use motp_harness::synthetic::{pin, secret};

const USERS: usize = 1000;
const NOW: i64 = 1_764_316_800;
const RADIUS: i64 = 18;

fn config_text(max_failures: u32, lockout_secs: u64) -> String {
    let mut text = format!("max_failures = {max_failures}\nlockout_secs = {lockout_secs}\n");
    for i in 0..USERS {
        text.push_str(&format!(
            "[users.user{i}]\nsecret = \"{}\"\npin = \"{}\"\n",
            secret(i),
            pin(i)
        ));
    }
    text
}

fn code(i: usize, now: i64) -> String {
    motp_harness::synthetic::code(i, now)
}

fn wrong_code(i: usize, now: i64) -> String {
    motp_harness::synthetic::wrong_code(i, now, RADIUS)
}

fn request<'a>(user: &'a str, password: &'a str) -> LoginRequest<'a> {
    LoginRequest {
        username: Some(user.as_bytes()),
        password: Some(password.as_bytes()),
        common_name: Some(user.as_bytes()),
    }
}

fn bench(c: &mut Criterion) {
    let path = Path::new("bench.toml");
    // A lockout that never triggers, so wrong codes and replays stay what they are.
    let config = Config::parse(path, &config_text(u32::MAX, 300)).expect("valid config");
    let locking = Config::parse(path, &config_text(1, 30 * 24 * 3600)).expect("valid config");
    assert_eq!(config.users.len(), USERS);

    let store = MemoryStore::new();
    let auth = Authenticator {
        policy: &config.policy,
        users: &config.users,
        store: &store,
        learned: None,
    };
    let locked_store = MemoryStore::new();
    let locked_auth = Authenticator {
        policy: &locking.policy,
        users: &locking.users,
        store: &locked_store,
        learned: None,
    };

    let mut group = c.benchmark_group("decide_memory_1000_users");

    // Accept: user 7, one new step per login (each code is accepted once), phone in sync.
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

    let wrong = wrong_code(8, NOW);
    assert_eq!(
        auth.decide(&request("user8", &wrong), NOW),
        Decision::BadCode
    );
    group.bench_function("wrong code", |b| {
        b.iter(|| auth.decide(black_box(&request("user8", &wrong)), NOW))
    });

    let guess = code(9, NOW);
    assert_eq!(
        auth.decide(&request("mallory", &guess), NOW),
        Decision::UnknownUser
    );
    group.bench_function("unknown user", |b| {
        b.iter(|| auth.decide(black_box(&request("mallory", &guess)), NOW))
    });

    let used = code(10, NOW);
    assert!(auth.decide(&request("user10", &used), NOW).is_accepted());
    assert_eq!(
        auth.decide(&request("user10", &used), NOW),
        Decision::Replay
    );
    group.bench_function("replay", |b| {
        b.iter(|| auth.decide(black_box(&request("user10", &used)), NOW))
    });

    let bad = wrong_code(11, NOW);
    let good = code(11, NOW);
    assert_eq!(
        locked_auth.decide(&request("user11", &bad), NOW),
        Decision::BadCode
    );
    assert!(matches!(
        locked_auth.decide(&request("user11", &good), NOW),
        Decision::Locked { .. }
    ));
    group.bench_function("locked (correct code)", |b| {
        b.iter(|| locked_auth.decide(black_box(&request("user11", &good)), NOW))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
