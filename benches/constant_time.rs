//! Shows that the time to reject a code does not depend on how close the guess was: how many
//! leading characters it shares with a valid code, or which step of the window it was close
//! to, or whether the username exists. Prints medians; no assertion (machines here are shared
//! and noisy, so judge the figures, not a threshold).
//!
//! Run: cargo bench --bench constant_time

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use motp::auth::{Authenticator, LoginRequest};
use motp::config::Config;
use motp::engine::{code_at_step, find_step, step_of, Code};
use motp::state::MemoryStore;

const SECRET: &str = "0123456789abcdef";
const PIN: &str = "1234";
const BATCHES: usize = 41;
const CALLS_PER_BATCH: usize = 2_000;

/// A code that shares exactly `shared` leading hex characters with `valid`.
fn near_miss(valid: &str, shared: usize) -> String {
    let mut chars: Vec<u8> = valid.bytes().collect();
    for (i, c) in chars.iter_mut().enumerate().skip(shared) {
        // Change every later character, so exactly `shared` lead characters match.
        let digit = u8::from_str_radix(std::str::from_utf8(&[*c]).unwrap(), 16).unwrap();
        *c = format!("{:x}", (digit + 1 + i as u8) % 16).as_bytes()[0];
        if *c == valid.as_bytes()[i] {
            *c = format!("{:x}", (digit + 2) % 16).as_bytes()[0];
        }
    }
    String::from_utf8(chars).unwrap()
}

fn median_ns(mut run: impl FnMut()) -> f64 {
    let mut batches: Vec<f64> = (0..BATCHES)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..CALLS_PER_BATCH {
                run();
            }
            start.elapsed().as_nanos() as f64 / CALLS_PER_BATCH as f64
        })
        .collect();
    batches.sort_by(|a, b| a.total_cmp(b));
    batches[BATCHES / 2]
}

fn main() {
    let key = [SECRET.as_bytes(), PIN.as_bytes()].concat();
    let center = step_of(1_800_000_000);
    println!("Reject time of one full-window check (37 steps), median of {BATCHES} batches of {CALLS_PER_BATCH}:");
    println!("| guess | ns per reject |");
    println!("|---|---|");
    for (label, step_offset) in [("current step", 0i64), ("edge step +18", 18)] {
        let valid = code_at_step(center + step_offset, &key).to_hex();
        for shared in 0..=5 {
            let guess = Code::parse(near_miss(&valid, shared).as_bytes()).unwrap();
            assert!(
                find_step(guess, &key, center, 18).is_none(),
                "near miss must be a reject"
            );
            let ns = median_ns(|| {
                black_box(find_step(black_box(guess), black_box(&key), center, 18));
            });
            println!("| shares {shared} leading chars with the {label}'s code | {ns:.0} |");
        }
    }

    let config_text = format!(
        "max_failures = 4000000000\n[state]\nbackend = \"memory\"\n[users.alice]\nsecret = \"{SECRET}\"\npin = \"{PIN}\"\n"
    );
    let config = Config::parse(Path::new("bench.toml"), &config_text).unwrap();
    let store = MemoryStore::new();
    let auth = Authenticator {
        policy: &config.policy,
        users: &config.users,
        store: &store,
        learned: None,
    };
    // max_failures is set out of reach: a lock would be a different (cheaper) path.
    let now = 1_800_000_000;
    let wrong = near_miss(&code_at_step(step_of(now), &key).to_hex(), 0);
    let known = LoginRequest {
        username: Some(b"alice"),
        password: Some(wrong.as_bytes()),
        common_name: Some(b"alice"),
    };
    let unknown = LoginRequest {
        username: Some(b"mallory"),
        password: Some(wrong.as_bytes()),
        common_name: Some(b"mallory"),
    };
    let known_ns = median_ns(|| {
        black_box(auth.decide(black_box(&known), now));
    });
    let unknown_ns = median_ns(|| {
        black_box(auth.decide(black_box(&unknown), now));
    });
    println!();
    println!("Whole decision (in-memory state):");
    println!("| login | ns per decision |");
    println!("|---|---|");
    println!("| known user, wrong code | {known_ns:.0} |");
    println!("| unknown user | {unknown_ns:.0} |");
    println!("unknown / known: {:.2}", unknown_ns / known_ns);
}
