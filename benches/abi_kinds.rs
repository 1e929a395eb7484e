//! TOTP logins through the ABI next to mOTP's (issue 16): the release `motp.so` loaded as
//! OpenVPN loads it (the harness's host), one table of mOTP and TOTP users, memory backend.
//! Accepts use a fresh user each (a user's code is accepted once per step), rejections a wrong
//! code. The kinds are interleaved batch by batch; prints medians; no assertion.
//!
//! Run: cargo build --release -p motp && cargo bench --bench abi_kinds

use std::os::unix::fs::PermissionsExt;
use std::time::Instant;

use motp::engine::{base32, code_at_time, Totp};
use motp_harness::abi::{Env, Plugin};
use motp_harness::temp::TempDir;

const USERS: usize = 3_000;
const BATCH: usize = 500;
const KEY_LEN: usize = 20;

fn totp_key(i: usize) -> Vec<u8> {
    (0..KEY_LEN).map(|b| (i * 31 + b * 7) as u8).collect()
}

fn main() {
    let dir = TempDir::new("bench-abi-kinds");
    let mut text = String::from(
        "max_failures = 1000000000\nmax_failures_per_ip = 0\nrequire_common_name = false\n\
         [state]\nbackend = \"memory\"\n",
    );
    for i in 0..USERS {
        text.push_str(&format!(
            "[users.m{i}]\nsecret = \"{:016x}\"\npin = \"1234\"\n[users.t{i}]\nkind = \"totp\"\n\
             secret = \"{}\"\n",
            0x1234_5678_9abc_def0u64 ^ i as u64,
            base32::encode(&totp_key(i))
        ));
    }
    let config = dir.path().join("motp.toml");
    std::fs::write(&config, text).unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let plugin = Plugin::open(&config).unwrap_or_else(|e| panic!("{:?}", e.messages()));
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    let mut times: [Vec<f64>; 4] = Default::default();
    let labels = [
        "mOTP accept",
        "TOTP accept",
        "mOTP wrong code",
        "TOTP wrong code",
    ];
    let mut next_user = 0;
    while next_user + BATCH <= USERS {
        let t = now();
        let motp: Vec<Env> = (next_user..next_user + BATCH)
            .map(|i| {
                let code = code_at_time(
                    &format!("{:016x}", 0x1234_5678_9abc_def0u64 ^ i as u64),
                    "1234",
                    t,
                );
                Env::openvpn_auth(dir.path(), &format!("m{i}"), code.to_hex())
            })
            .collect();
        let totp: Vec<Env> = (next_user..next_user + BATCH)
            .map(|i| {
                let totp = Totp::default();
                let code = totp.value_at_step(&totp_key(i), totp.step_of(t) as u64);
                Env::openvpn_auth(dir.path(), &format!("t{i}"), format!("{code:06}"))
            })
            .collect();
        let wrong_m: Vec<Env> = (0..BATCH)
            .map(|i| Env::openvpn_auth(dir.path(), &format!("m{i}"), "abcdef"))
            .collect();
        let wrong_t: Vec<Env> = (0..BATCH)
            .map(|i| Env::openvpn_auth(dir.path(), &format!("t{i}"), "000001"))
            .collect();
        for (slot, envs) in [&motp, &totp, &wrong_m, &wrong_t].into_iter().enumerate() {
            let start = Instant::now();
            for env in envs.iter() {
                std::hint::black_box(plugin.auth(env));
            }
            times[slot].push(start.elapsed().as_nanos() as f64 / BATCH as f64);
        }
        next_user += BATCH;
    }
    println!(
        "| login through the ABI | median of {} batches of {BATCH} |",
        times[0].len()
    );
    println!("|---|---:|");
    for (label, mut t) in labels.into_iter().zip(times) {
        t.sort_by(|a, b| a.total_cmp(b));
        println!("| {label} | {:.2} µs |", t[t.len() / 2] / 1e3);
    }
}
