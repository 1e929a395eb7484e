//! Logins decided per second and decision latency with the Redis backend, through the C ABI.
//!
//! Starts a private `redis-server` on loopback, opens `motp.so` (dlopen, `open_v3`) with
//! `[state] backend = "redis"`, and keeps 1 (then 4) logins in flight: each is an
//! `AUTH_USER_PASS_VERIFY` that returns DEFERRED, and its latency runs from the call until
//! `1`/`0` is the first byte of its `auth_control_file` (what OpenVPN polls). Every login is
//! a wrong code for one of 200 users (lockout out of the way), so each one does the full Redis
//! work of a decision: GET, the window search, and the compare-and-set script writing the new
//! failure count. An accepted login does the same two round trips.
//!
//! Usage: `motp-redis-bench [SECONDS_PER_RUN]` (default 3). Build the plugin first
//! (`cargo build`, or `--release` with the release harness).

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use motp_harness::abi::{Env, Plugin, OPENVPN_PLUGIN_FUNC_DEFERRED};
use motp_harness::openvpn::{RedisServer, TempDir};

const USERS: usize = 200;

struct InFlight {
    env: Env,
    started: Instant,
}

fn main() {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let dir = TempDir::new("redis-bench");
    let redis = RedisServer::start(dir.path());
    let mut text = format!(
        "max_failures = 4000000000\nmax_failures_per_ip = 4000000000\n\
         [state]\nbackend = \"redis\"\nurl = \"{}\"\ndir = \"{}\"\n",
        redis.url(),
        dir.path().join("state").display()
    );
    for i in 0..USERS {
        text.push_str(&format!(
            "[users.u{i}]\nsecret = \"{:016x}\"\npin = \"{}\"\n",
            0x1234_5678_9abc_def0u64.wrapping_mul(i as u64 + 1),
            1000 + i
        ));
    }
    let config = dir.path().join("motp.toml");
    std::fs::write(&config, text).expect("write motp.toml");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let plugin = Plugin::open(&config).unwrap_or_else(|e| panic!("open: {:?}", e.messages()));
    println!(
        "motp.so: {}\nredis-server on 127.0.0.1:{} (loopback, no persistence)",
        motp_harness::plugin_path().display(),
        redis.port
    );
    println!("clients  logins  seconds  logins/s  p50 ms  p99 ms  max ms");
    for clients in [1usize, 4] {
        run(&plugin, &dir, clients, Duration::from_secs(secs));
    }
}

fn run(plugin: &Plugin, dir: &TempDir, clients: usize, length: Duration) {
    let envs_dir = dir.path().join(format!("envs-{clients}"));
    std::fs::create_dir_all(&envs_dir).expect("mkdir");
    let mut n = 0usize;
    let mut next_env = || {
        n += 1;
        let user = format!("u{}", n % USERS);
        Env::openvpn_auth(&envs_dir, &user, "000000").with(
            "untrusted_ip",
            format!("10.0.{}.{}", (n / 250) % 250, n % 250),
        )
    };
    // Warm-up: connections, script cache.
    for _ in 0..50 {
        let env = next_env();
        assert_eq!(plugin.auth(&env), OPENVPN_PLUGIN_FUNC_DEFERRED);
        env.wait_for_control(Duration::from_secs(5))
            .expect("answer");
        remove_files(&env);
    }
    let mut latencies: Vec<Duration> = Vec::new();
    let mut in_flight: Vec<InFlight> = Vec::with_capacity(clients);
    let start = Instant::now();
    loop {
        while in_flight.len() < clients && start.elapsed() < length {
            let env = next_env();
            let started = Instant::now();
            assert_eq!(plugin.auth(&env), OPENVPN_PLUGIN_FUNC_DEFERRED);
            in_flight.push(InFlight { env, started });
        }
        if in_flight.is_empty() {
            break;
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
        // Poll like a (fast) OpenVPN would, without taking a whole core from the workers.
        std::thread::sleep(Duration::from_micros(20));
    }
    let elapsed = start.elapsed();
    latencies.sort();
    let pct = |p: f64| {
        let idx = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies[idx].as_secs_f64() * 1000.0
    };
    println!(
        "{clients:>7}  {:>6}  {:>7.2}  {:>8.0}  {:>6.3}  {:>6.3}  {:>6.3}",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        pct(1.0),
    );
    let _ = std::fs::remove_dir_all(&envs_dir);
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
