//! What a refusal costs on each path with the local store (`SqliteStore`, as `backend =
//! "local"` runs it): a known user's wrong code with the right certificate, a name nobody has,
//! a disabled user, another user's certificate, and a locked user. The paths that read no
//! user's state decide on the store's decoy row instead, so every path does the window's work
//! and one store transaction; this shows how far apart they still are. `Authenticator::decide`
//! with a 1,000-user table; no env parsing, logging or file I/O besides SQLite's own.
//!
//! Interleaved: each path is timed in turn, batch after batch, so background load on a shared
//! machine spreads evenly over them. Prints minimum and median per decision, and the spread
//! (slowest median over fastest); no assertion (judge the figures, not a threshold).
//!
//! Run: `cargo bench --bench reject_paths` (a few seconds after the build). The state
//! directory is created 0700 under `/var/tmp` (ext4 here, like `/var/lib/openvpn-motp`);
//! `MOTP_BENCH_STATE_PARENT` moves it.

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use motp::auth::{Authenticator, Decision, LoginRequest};
use motp::config::Config;
use motp::state::{SqliteStore, StateStore};
use motp_harness::interleaved::report;
use motp_harness::synthetic::{pin, secret, wrong_code};
use motp_harness::temp::TempDir;

const USERS: usize = 1000;
const NOW: i64 = 1_764_316_800;
const RADIUS: i64 = 18;
const ROUNDS: usize = 61;
/// Not a divisor of 1,000: about every 1,000 commits SQLite checkpoints its WAL (with an
/// fsync, milliseconds), and with batches of a divisor of 1,000 that one slow commit would land
/// in the same path's batch every round.
const CALLS_PER_BATCH: usize = 197;

fn config_text() -> String {
    // Wrong codes never lock (a lock is its own path, set up below).
    let mut text = format!("max_failures = {}\nlockout_secs = 300\n", u32::MAX);
    for i in 0..USERS {
        text.push_str(&format!(
            "[users.user{i}]\nsecret = \"{}\"\npin = \"{}\"\n{}",
            secret(i),
            pin(i),
            if i == 3 { "disabled = true\n" } else { "" }
        ));
    }
    text
}

fn request<'a>(user: &'a str, password: &'a str, cn: &'a str) -> LoginRequest<'a> {
    LoginRequest {
        username: Some(user.as_bytes()),
        password: Some(password.as_bytes()),
        common_name: Some(cn.as_bytes()),
    }
}

fn main() {
    let config = Config::parse(Path::new("bench.toml"), &config_text()).expect("valid config");
    let dir = TempDir::for_bench_state("reject-paths");
    let store = SqliteStore::open(dir.path()).expect("open the local store");
    store
        .update("user9", &mut |s| s.locked_until = i64::MAX)
        .expect("lock user9");
    let auth = Authenticator {
        policy: &config.policy,
        users: &config.users,
        store: &store,
        learned: None,
    };
    let wrong7 = wrong_code(7, NOW, RADIUS);
    let wrong3 = wrong_code(3, NOW, RADIUS);
    let wrong9 = wrong_code(9, NOW, RADIUS);
    let paths = [
        (
            "known user, wrong code, own certificate",
            request("user7", &wrong7, "user7"),
            Decision::BadCode,
        ),
        (
            "unknown user",
            request("mallory", &wrong7, "mallory"),
            Decision::UnknownUser,
        ),
        (
            "disabled user",
            request("user3", &wrong3, "user3"),
            Decision::Disabled,
        ),
        (
            "CN mismatch",
            request("user7", &wrong7, "user8"),
            Decision::CnMismatch,
        ),
        (
            "locked user",
            request("user9", &wrong9, "user9"),
            Decision::Locked { until: i64::MAX },
        ),
    ];
    for (name, req, expected) in &paths {
        assert_eq!(&auth.decide(req, NOW), expected, "{name}");
    }
    // Every path keeps deciding as it did at first (a store error would be another, cheaper or
    // dearer, path).
    for (name, req, expected) in &paths {
        for _ in 0..100 {
            assert_eq!(&auth.decide(req, NOW), expected, "{name}");
        }
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); paths.len()];
    for _ in 0..ROUNDS {
        for (i, (_, req, _)) in paths.iter().enumerate() {
            let start = Instant::now();
            for _ in 0..CALLS_PER_BATCH {
                black_box(auth.decide(black_box(req), NOW));
            }
            samples[i].push(start.elapsed().as_nanos() as f64 / CALLS_PER_BATCH as f64);
        }
    }
    let medians: Vec<f64> = samples
        .iter()
        .map(|v| {
            let mut v = v.clone();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        })
        .collect();
    report(
        "refusal per path, local store, 1,000 users",
        paths.iter().map(|(name, ..)| *name).zip(samples),
    );
    let fastest = medians.iter().copied().fold(f64::INFINITY, f64::min);
    let slowest = medians.iter().copied().fold(0.0, f64::max);
    println!(
        "  spread of the medians: {:.1} µs (slowest / fastest = {:.2})",
        (slowest - fastest) / 1000.0,
        slowest / fastest
    );
}
