//! Logins decided per second and decision latency with the Redis backend, through the C ABI.
//!
//! Starts its own Redis processes, opens `motp.so` (dlopen, `open_v3`) with
//! `[state] backend = "redis"`, and keeps 1, 4 and 16 logins in flight: each is an
//! `AUTH_USER_PASS_VERIFY` that returns DEFERRED, and its latency runs from the call until
//! `1`/`0` is the first byte of its `auth_control_file` (what OpenVPN polls). Every login is
//! a wrong code for one of 200 users (lockout out of the way), so each one does the full work
//! of a decision: the window search, then the one decision script on Redis (one round trip),
//! which writes the new failure count. An accepted login costs the same round trip.
//!
//! Two set-ups, both running for the whole bench, measured in turn (round after round, so a
//! change of the machine's load hits both):
//! - `single`: one `redis-server` (no persistence), the plugin's `url` pointing at it;
//! - `sentinel`: a master, a replica of it and three `redis-server --sentinel` watching them
//!   (no persistence), the plugin's `sentinels` + `master_name`. The sentinels are asked only
//!   when the plugin opens a connection; a decision on a pooled connection costs what it costs
//!   with one Redis, plus the master's replication of each write to the replica.
//!
//! By default every Redis process listens on 127.0.0.1. With `--netns` they run inside a
//! network namespace of the bench's own (`ip netns exec`), reached over a veth pair whose two
//! ends hold the only addresses of a private link-local /30 (169.254.2xx.1 here, .2 in the
//! namespace), so the traffic never leaves this machine. `--delay-ms D` adds
//! `tc qdisc add dev <end> root netem delay D/2 ms` on both ends: D ms more round-trip time
//! between the plugin and Redis (between the Redis processes nothing is added: they talk inside
//! the namespace). It needs the kernel's `sch_netem`; without it the bench stops with an error,
//! it never simulates the delay otherwise. The namespace, the veth pair and every process are
//! removed on exit, also on a failure (a panic unwinds through the guards); the bench needs
//! root for `--netns`.
//!
//! Where the kernel has no `sch_netem`, `--proxy-delay-ms D` adds the delay in user space
//! instead: every Redis process stays on loopback, and the plugin reaches each one through a
//! [`DelayProxy`] of the bench's own on 127.0.0.1, which holds every chunk it reads for D/2
//! before it writes it on, in order, in each direction (a reader and a writer thread per
//! direction and connection). With `sentinel` the plugin's sentinels are proxies, and the
//! sentinels monitor the master through its proxy, so the master address they announce (the
//! one the plugin connects to) is the proxy's too; replication and the sentinels' own traffic
//! stay direct. The round-trip time the proxies add is measured (`PING`, through the proxy
//! and direct, medians of 500) and printed before the runs.
//!
//! Usage: `motp-redis-bench [SECONDS] [--seconds S] [--runs N] [--in-flight 1,4,16]
//! [--mode single,sentinel] [--netns] [--delay-ms D] [--proxy-delay-ms D]` (defaults: 3 s per
//! run, 1 round, both modes, 1,4,16 in flight, loopback). Build the plugin first (`cargo build --release -p motp`
//! with the release harness); the `.so` is [`motp_harness::plugin_path`] (or
//! `$MOTP_PLUGIN_SO`). Prints one line per run with the load average read right after it, then
//! per mode and in-flight count the median of the rounds and their range.
//!
//! [`DelayProxy`]: proxy::DelayProxy

mod backend;
mod netns;
mod options;
mod proxy;
mod run;

use std::process::ExitCode;
use std::time::Duration;

use motp_harness::openvpn::{require_redis, TempDir};

use crate::backend::{Backend, Place};
use crate::netns::Netns;
use crate::options::{parse_options, Mode, Options, USAGE};
use crate::run::{run, RunResult};

const USERS: usize = 200;
const MASTER: &str = "motpbench";
/// Upper bounds on every wait of the bench.
const START_LIMIT: Duration = Duration::from_secs(30);
const ANSWER_LIMIT: Duration = Duration::from_secs(10);
const MAX_SECONDS: u64 = 600;
const MAX_RUNS: usize = 50;

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("motp-redis-bench: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Everything that must be cleaned up lives inside `bench` and is dropped when it returns
    // (or unwinds): processes first, then the namespace and its veth pair.
    match bench(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("motp-redis-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench(o: &Options) -> Result<(), String> {
    require_redis();
    // Declared first, so dropped last: after every process running inside it.
    let netns = if o.netns {
        Some(Netns::create(o.delay_ms)?)
    } else {
        None
    };
    let place = match &netns {
        Some(ns) => Place {
            addr: ns.inner_addr.clone(),
            netns: Some(ns.name.clone()),
        },
        None => Place {
            addr: "127.0.0.1".into(),
            netns: None,
        },
    };
    let dir = TempDir::new("redis-bench");
    let one_way = o
        .proxy_delay_ms
        .map(|d| Duration::from_secs_f64(d / 2000.0));
    let mut backends = Vec::new();
    for &mode in &o.modes {
        backends.push(Backend::start(mode, &place, dir.path(), one_way)?);
    }
    println!("motp.so: {}", motp_harness::plugin_path().display());
    match &netns {
        Some(ns) => println!(
            "redis in network namespace {} at {} over veth {} ({}), {}",
            ns.name,
            ns.inner_addr,
            ns.host_if,
            ns.host_addr,
            match o.delay_ms {
                Some(d) => format!("netem delay {:.3} ms on each end (+{d} ms RTT)", d / 2.0),
                None => "no delay added".into(),
            }
        ),
        None => match o.proxy_delay_ms {
            Some(d) => println!(
                "redis on 127.0.0.1 (loopback), reached through user-space delaying proxies \
                 holding each chunk {:.3} ms each way (+{d} ms RTT asked)",
                d / 2.0
            ),
            None => println!("redis on 127.0.0.1 (loopback), no delay added"),
        },
    }
    for b in &backends {
        println!("{}: {}", b.mode.name(), b.describe);
        if let Some((direct, proxied)) = b.calibration {
            println!(
                "{}: PING round trip, medians of 500: direct {direct:.3} ms, through the proxy \
                 {proxied:.3} ms (+{:.3} ms)",
                b.mode.name(),
                proxied - direct
            );
        }
    }
    println!(
        "{} s per run, {} round(s); one worker thread in the plugin",
        o.secs, o.runs
    );
    println!(
        "round  mode      in-flight  logins  seconds  logins/s  p50 ms  p99 ms  max ms  loadavg"
    );
    let mut results: Vec<(Mode, usize, RunResult)> = Vec::new();
    for round in 1..=o.runs {
        for b in &backends {
            let plugin = b.open_plugin(dir.path())?;
            for &clients in &o.in_flight {
                let r = run(&plugin, dir.path(), clients, Duration::from_secs(o.secs))?;
                println!(
                    "{round:>5}  {:<8}  {clients:>9}  {:>6}  {:>7.2}  {:>8.0}  {:>6.3}  {:>6.3}  {:>6.3}  {}",
                    b.mode.name(),
                    r.logins,
                    r.seconds,
                    r.rate,
                    r.p50,
                    r.p99,
                    r.max,
                    r.loadavg
                );
                results.push((b.mode, clients, r));
            }
            drop(plugin);
        }
    }
    if o.runs > 1 {
        println!("\nmedian of {} rounds [min–max]:", o.runs);
        println!("mode      in-flight  logins/s               p50 ms               p99 ms               loadavg (1 min)");
        for b in &backends {
            for &clients in &o.in_flight {
                let cell: Vec<&RunResult> = results
                    .iter()
                    .filter(|(m, c, _)| *m == b.mode && *c == clients)
                    .map(|(_, _, r)| r)
                    .collect();
                let stat = |f: fn(&RunResult) -> f64, digits: usize| {
                    let mut v: Vec<f64> = cell.iter().map(|r| f(r)).collect();
                    v.sort_by(f64::total_cmp);
                    format!(
                        "{:.*} [{:.*}–{:.*}]",
                        digits,
                        v[v.len() / 2],
                        digits,
                        v[0],
                        digits,
                        v[v.len() - 1]
                    )
                };
                println!(
                    "{:<8}  {clients:>9}  {:<21}  {:<19}  {:<19}  {}",
                    b.mode.name(),
                    stat(|r| r.rate, 0),
                    stat(|r| r.p50, 3),
                    stat(|r| r.p99, 3),
                    stat(|r| r.load1, 2),
                );
            }
        }
    }
    Ok(())
}
