//! Attacker: N rejected logins, random usernames and source addresses.

use std::time::Instant;

use openvpn_plugin_sys as sys;

use crate::env::{CallEnv, Template};
use crate::instance::Instance;
use crate::options::Backend;
use crate::stats::{fmt_count, rss_bytes};
use crate::stderr::{stderr_restore, stderr_silence};
use crate::workspace::{users_toml, Workspace};

pub struct XorShift(u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

pub fn random_name(rng: &mut XorShift) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789._-@";
    let len = 3 + (rng.next() % 30) as usize;
    (0..len)
        .map(|_| ALPHABET[(rng.next() % ALPHABET.len() as u64) as usize] as char)
        .collect()
}

/// `count` logins with random usernames, codes and source addresses; returns how many were
/// rejected. The envs are built first, the log is cleared after.
pub fn attack_chunk(
    instance: &Instance,
    template: &Template,
    count: u64,
    rng: &mut XorShift,
) -> u64 {
    let addresses: Vec<(String, u16)> = (0..count)
        .map(|_| {
            let r = rng.next();
            (
                format!(
                    "{}.{}.{}.{}",
                    1 + (r % 223),
                    (r >> 8) & 0xff,
                    (r >> 16) & 0xff,
                    1 + ((r >> 24) % 254)
                ),
                1024 + ((r >> 32) % 64_000) as u16,
            )
        })
        .collect();
    let envs: Vec<CallEnv> = addresses
        .iter()
        .map(|(ip, port)| {
            let code = format!("{:06x}", rng.next() & 0xff_ffff);
            template.build(&random_name(rng), &code, Some((ip, *port)))
        })
        .collect();
    let mut rejected = 0;
    stderr_silence();
    for env in &envs {
        rejected += u64::from(instance.call(env) == sys::OPENVPN_PLUGIN_FUNC_ERROR);
    }
    stderr_restore();
    instance.plugin.take_logs();
    rejected
}

pub fn attack(ws: &mut Workspace, template: &Template, n: u64) -> Result<(), String> {
    // The defaults: 5 failures per user, and (where this build has it) the per-address limit.
    let config = ws.config_with(Backend::Memory, 5, 300, &users_toml(1000), "");
    let instance = Instance::open(&config)?;
    let mut rng = XorShift(0x853c_49e6_748f_ea9b);
    const CHUNK: u64 = 10_000;
    let mut done = 0u64;
    let mut checkpoints = Vec::new();
    // Warm up (first allocations, lazy statics), then measure.
    attack_chunk(&instance, template, CHUNK.min(n.max(1)), &mut rng);
    let mut rejected = 0u64;
    let before = rss_bytes();
    println!(
        "attacker test: {} logins, random usernames (3-32 chars) and random IPv4 source \
         addresses/ports, memory backend, 1,000-user table; VmRSS before: {:.1} MB",
        fmt_count(n as f64),
        before as f64 / 1e6
    );
    let start = Instant::now();
    let step = (n / 10).max(CHUNK);
    let mut next_report = step;
    while done < n {
        let count = CHUNK.min(n - done);
        rejected += attack_chunk(&instance, template, count, &mut rng);
        done += count;
        if done >= next_report || done == n {
            let rss = rss_bytes();
            checkpoints.push((done, rss));
            next_report += step;
        }
    }
    let elapsed = start.elapsed();
    let after = rss_bytes();
    drop(instance);
    println!();
    println!("| rejected logins so far | VmRSS | growth since before |");
    println!("|---:|---:|---:|");
    for (count, rss) in &checkpoints {
        println!(
            "| {} | {:.1} MB | {:+.1} MB |",
            fmt_count(*count as f64),
            *rss as f64 / 1e6,
            (*rss as f64 - before as f64) / 1e6
        );
    }
    println!();
    println!(
        "attacker test: {} of {} rejected; VmRSS before {:.1} MB, after {:.1} MB ({:+.1} MB, {:+.2} bytes per login); \
         {:.1} s, {} calls/s including building the envs",
        fmt_count(rejected as f64),
        fmt_count(n as f64),
        before as f64 / 1e6,
        after as f64 / 1e6,
        (after as f64 - before as f64) / 1e6,
        (after as f64 - before as f64) / n.max(1) as f64,
        elapsed.as_secs_f64(),
        fmt_count(n as f64 / elapsed.as_secs_f64()),
    );
    if rejected != n {
        return Err(format!(
            "only {rejected} of {n} attacker logins were rejected"
        ));
    }
    Ok(())
}
