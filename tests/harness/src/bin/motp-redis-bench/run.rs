//! One run: logins kept in flight for a while, and their rate and latencies.

use std::path::Path;
use std::time::{Duration, Instant};

use motp_harness::abi::{Env, Plugin, OPENVPN_PLUGIN_FUNC_DEFERRED};

use crate::{ANSWER_LIMIT, USERS};

struct InFlight {
    env: Env,
    started: Instant,
}

pub(crate) struct RunResult {
    pub(crate) logins: usize,
    pub(crate) seconds: f64,
    pub(crate) rate: f64,
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
    pub(crate) load1: f64,
    pub(crate) loadavg: String,
}

pub(crate) fn run(
    plugin: &Plugin,
    dir: &Path,
    clients: usize,
    length: Duration,
) -> Result<RunResult, String> {
    let envs_dir = dir.join(format!("envs-{clients}"));
    std::fs::create_dir_all(&envs_dir).map_err(|e| e.to_string())?;
    let mut n = 0usize;
    let mut next_env = || {
        n += 1;
        let user = format!("u{}", n % USERS);
        Env::openvpn_auth(&envs_dir, &user, "000000").with(
            "untrusted_ip",
            format!("10.0.{}.{}", (n / 250) % 250, n % 250),
        )
    };
    // Warm-up: connections (as many as logins in flight), script cache.
    for _ in 0..50 {
        let env = next_env();
        if plugin.auth(&env) != OPENVPN_PLUGIN_FUNC_DEFERRED {
            return Err("warm-up login not deferred".into());
        }
        env.wait_for_control(ANSWER_LIMIT)
            .ok_or("warm-up login not answered")?;
        remove_files(&env);
    }
    let mut latencies: Vec<Duration> = Vec::new();
    let mut in_flight: Vec<InFlight> = Vec::with_capacity(clients);
    let start = Instant::now();
    let deadline = length + ANSWER_LIMIT;
    loop {
        while in_flight.len() < clients && start.elapsed() < length {
            let env = next_env();
            let started = Instant::now();
            if plugin.auth(&env) != OPENVPN_PLUGIN_FUNC_DEFERRED {
                return Err(format!("login not deferred ({clients} in flight)"));
            }
            in_flight.push(InFlight { env, started });
        }
        if in_flight.is_empty() {
            break;
        }
        if start.elapsed() > deadline {
            return Err(format!("{} logins unanswered", in_flight.len()));
        }
        let mut i = 0;
        while i < in_flight.len() {
            if in_flight[i].env.control_now().is_some() {
                let done = in_flight.swap_remove(i);
                latencies.push(done.started.elapsed());
                remove_files(&done.env);
            } else {
                i += 1;
            }
        }
        // Poll like a (fast) OpenVPN would, without taking a whole core from the worker.
        std::thread::sleep(Duration::from_micros(20));
    }
    let elapsed = start.elapsed();
    let loadavg = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let _ = std::fs::remove_dir_all(&envs_dir);
    if latencies.is_empty() {
        return Err("no login decided".into());
    }
    latencies.sort();
    let pct = |p: f64| {
        let idx = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies[idx].as_secs_f64() * 1000.0
    };
    Ok(RunResult {
        logins: latencies.len(),
        seconds: elapsed.as_secs_f64(),
        rate: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
        max: pct(1.0),
        load1: loadavg
            .split_whitespace()
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(f64::NAN),
        loadavg,
    })
}

fn remove_files(env: &Env) {
    for path in [
        env.auth_control_file(),
        env.auth_pending_file(),
        env.auth_failed_reason_file(),
    ]
    .into_iter()
    .flatten()
    {
        let _ = std::fs::remove_file(path);
    }
}
