//! Rejections cost the same whatever the user's token kind, and whether the name exists or the
//! static password was wrong (issue 16, item 5): the decision spends every distinct token's
//! search of the table, and one Argon2id verification whenever some user has a password.
//! Prints medians of interleaved batches; no assertion (machines here are shared and noisy).
//!
//! Run: cargo bench --bench kinds_constant_time

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use motp::auth::{Authenticator, Decision, LoginRequest};
use motp::config::Config;
use motp::engine::{base32, Totp};
use motp::secret_hash;
use motp::state::MemoryStore;

const NOW: i64 = 1_800_000_000;
const KEY: &[u8] = b"12345678901234567890";

/// A labelled login to time.
type Case = (&'static str, Box<dyn Fn() -> Decision>);

fn table(with_password: bool) -> String {
    let b32 = base32::encode(KEY);
    let mut text = format!(
        "max_failures = 1000000000\nmax_failures_per_ip = 0\n\
         [users.alice]\nsecret = \"0123456789abcdef\"\npin = \"1234\"\n\
         [users.tina]\nkind = \"totp\"\nsecret = \"{b32}\"\n\
         [users.hank]\nkind = \"hotp\"\nsecret = \"{b32}\"\n"
    );
    if with_password {
        let hash = secret_hash::hash_password(b"hunter2");
        text.push_str(&format!(
            "[users.pat]\nkind = \"totp\"\nsecret = \"{b32}\"\npassword = \"{hash}\"\n"
        ));
    }
    text
}

fn tina_code(at: i64) -> String {
    let totp = Totp::default();
    format!("{:06}", totp.value_at_step(KEY, totp.step_of(at) as u64))
}

/// Median ns per call over `batches` batches of `calls`, the cases interleaved batch by batch.
fn interleaved(cases: &[Case], batches: usize, calls: usize) {
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for _ in 0..batches {
        for (i, (_, run)) in cases.iter().enumerate() {
            let start = Instant::now();
            for _ in 0..calls {
                black_box(run());
            }
            times[i].push(start.elapsed().as_nanos() as f64 / calls as f64);
        }
    }
    println!("| rejection | median |");
    println!("|---|---:|");
    for ((label, _), mut t) in cases.iter().zip(times) {
        t.sort_by(|a, b| a.total_cmp(b));
        let median = t[t.len() / 2];
        if median > 1e6 {
            println!("| {label} | {:.2} ms |", median / 1e6);
        } else {
            println!("| {label} | {:.2} µs |", median / 1e3);
        }
    }
}

fn cases(config: &'static Config, with_password: bool) -> Vec<Case> {
    let store: &'static MemoryStore = Box::leak(Box::new(MemoryStore::new()));
    let login = move |user: &'static str, password: String, expect: Decision| {
        Box::new(move || {
            let auth = Authenticator {
                policy: &config.policy,
                users: &config.users,
                store,
                learned: None,
            };
            let decision = auth.decide(
                &LoginRequest {
                    username: Some(user.as_bytes()),
                    password: Some(password.as_bytes()),
                    common_name: Some(user.as_bytes()),
                },
                NOW,
            );
            assert_eq!(decision, expect, "{user}");
            decision
        }) as Box<dyn Fn() -> Decision>
    };
    let mut out = vec![
        (
            "mOTP user, wrong code",
            login("alice", "abcdef".into(), Decision::BadCode),
        ),
        (
            "TOTP user, wrong code",
            login("tina", "000001".into(), Decision::BadCode),
        ),
        (
            "HOTP user, wrong code",
            login("hank", "000001".into(), Decision::BadCode),
        ),
        (
            "unknown user",
            login("nobody", "000001".into(), Decision::UnknownUser),
        ),
    ];
    if with_password {
        out.push((
            "password user, right code, wrong password",
            login(
                "pat",
                format!("hunter3{}", tina_code(NOW)),
                Decision::BadPassword,
            ),
        ));
        out.push((
            "password user, wrong code",
            login("pat", "hunter2000001".into(), Decision::BadCode),
        ));
    }
    out
}

fn main() {
    for with_password in [false, true] {
        let config: &'static Config = Box::leak(Box::new(
            Config::parse(Path::new("bench.toml"), &table(with_password)).unwrap(),
        ));
        println!(
            "\nA table of mOTP, TOTP and HOTP users{}:",
            if with_password {
                " and one with a static password"
            } else {
                ""
            }
        );
        let (batches, calls) = if with_password { (15, 4) } else { (41, 500) };
        interleaved(&cases(config, with_password), batches, calls);
    }
}
