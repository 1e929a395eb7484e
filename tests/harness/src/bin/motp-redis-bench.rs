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

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use motp_harness::abi::{Env, Plugin, OPENVPN_PLUGIN_FUNC_DEFERRED};
use motp_harness::openvpn::{free_port, require_redis, Proc, TempDir};

const USERS: usize = 200;
const MASTER: &str = "motpbench";
/// Upper bounds on every wait of the bench.
const START_LIMIT: Duration = Duration::from_secs(30);
const ANSWER_LIMIT: Duration = Duration::from_secs(10);
const MAX_SECONDS: u64 = 600;
const MAX_RUNS: usize = 50;

struct Options {
    secs: u64,
    runs: usize,
    in_flight: Vec<usize>,
    modes: Vec<Mode>,
    netns: bool,
    delay_ms: Option<f64>,
    /// `--proxy-delay-ms`: the round-trip time the [`DelayProxy`]s add.
    proxy_delay_ms: Option<f64>,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Single,
    Sentinel,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Single => "single",
            Mode::Sentinel => "sentinel",
        }
    }
}

const USAGE: &str = "usage: motp-redis-bench [SECONDS] [--seconds S] [--runs N] \
                     [--in-flight 1,4,16] [--mode single,sentinel] [--netns] [--delay-ms D] \
                     [--proxy-delay-ms D]";

fn parse_options() -> Result<Options, String> {
    let mut o = Options {
        secs: 3,
        runs: 1,
        in_flight: vec![1, 4, 16],
        modes: vec![Mode::Single, Mode::Sentinel],
        netns: false,
        delay_ms: None,
        proxy_delay_ms: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |what: &str| args.next().ok_or(format!("{what} needs a value"));
        match arg.as_str() {
            "--seconds" => o.secs = parse_num(&value("--seconds")?)?,
            "--runs" => o.runs = parse_num(&value("--runs")?)?,
            "--in-flight" => {
                o.in_flight = value("--in-flight")?
                    .split(',')
                    .map(parse_num)
                    .collect::<Result<_, _>>()?
            }
            "--mode" => {
                o.modes = value("--mode")?
                    .split(',')
                    .map(|m| match m {
                        "single" => Ok(Mode::Single),
                        "sentinel" => Ok(Mode::Sentinel),
                        _ => Err(format!("unknown mode {m:?} (single, sentinel)")),
                    })
                    .collect::<Result<_, _>>()?
            }
            "--netns" => o.netns = true,
            "--delay-ms" => {
                let d: f64 = value("--delay-ms")?
                    .parse()
                    .map_err(|e| format!("--delay-ms: {e}"))?;
                if !(d > 0.0 && d <= 1000.0) {
                    return Err("--delay-ms must be in (0, 1000]".into());
                }
                o.delay_ms = Some(d);
                o.netns = true;
            }
            "--proxy-delay-ms" => {
                let d: f64 = value("--proxy-delay-ms")?
                    .parse()
                    .map_err(|e| format!("--proxy-delay-ms: {e}"))?;
                if !(d > 0.0 && d <= 1000.0) {
                    return Err("--proxy-delay-ms must be in (0, 1000]".into());
                }
                o.proxy_delay_ms = Some(d);
            }
            "-h" | "--help" => return Err(String::new()),
            s if !s.starts_with('-') => o.secs = parse_num(s)?,
            s => return Err(format!("unknown option {s:?}")),
        }
    }
    if o.secs == 0 || o.secs > MAX_SECONDS {
        return Err(format!("seconds per run must be 1..={MAX_SECONDS}"));
    }
    if o.runs == 0 || o.runs > MAX_RUNS {
        return Err(format!("runs must be 1..={MAX_RUNS}"));
    }
    if o.in_flight.is_empty() || o.in_flight.iter().any(|&c| c == 0 || c > 200) {
        return Err("in-flight counts must be 1..=200 (the queue is 256 deep)".into());
    }
    if o.modes.is_empty() {
        return Err("no mode".into());
    }
    if o.netns && o.proxy_delay_ms.is_some() {
        return Err("--proxy-delay-ms runs on loopback: not with --netns or --delay-ms".into());
    }
    Ok(o)
}

fn parse_num<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("not a number: {s:?}"))
}

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

/// Where the Redis processes run and listen.
struct Place {
    addr: String,
    netns: Option<String>,
}

impl Place {
    /// `cmd args…`, inside the namespace if there is one (`ip netns exec` executes the
    /// command itself, so the spawned process is the Redis process).
    fn command(&self, program: &str) -> Command {
        match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, program]);
                c
            }
            None => Command::new(program),
        }
    }

    fn port(&self) -> u16 {
        // A namespace of our own has every port free; on loopback, ask.
        free_port()
    }
}

/// One set-up, its processes killed on drop (a `Proc` kills its process when dropped).
struct Backend {
    mode: Mode,
    describe: String,
    state_lines: String,
    /// With proxies: the PING round trip to the master (or the one Redis), direct and through
    /// its proxy, medians in ms.
    calibration: Option<(f64, f64)>,
    _procs: Vec<Proc>,
}

impl Backend {
    fn start(
        mode: Mode,
        place: &Place,
        dir: &Path,
        proxy_one_way: Option<Duration>,
    ) -> Result<Backend, String> {
        let addr = &place.addr;
        // The port the plugin (and, for the master, the sentinels) use for a Redis process:
        // its own, or that of a delaying proxy in front of it.
        let front = |port: u16| -> Result<u16, String> {
            match proxy_one_way {
                Some(one_way) => {
                    let target: SocketAddr = format!("{addr}:{port}")
                        .parse()
                        .map_err(|e| format!("{e}"))?;
                    Ok(DelayProxy::start(target, one_way)?.port)
                }
                None => Ok(port),
            }
        };
        let calibrate = |port: u16, front_port: u16| {
            proxy_one_way.map(|_| (ping_median(addr, port), ping_median(addr, front_port)))
        };
        let server = |port: u16, extra: &[String]| -> Result<Proc, String> {
            let data = dir.join(format!("redis-{port}"));
            std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
            let proc = Proc::spawn(
                place
                    .command("redis-server")
                    .args(["--port", &port.to_string(), "--bind", addr])
                    .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
                    .args(["--loglevel", "warning", "--dir"])
                    .arg(&data)
                    .args(extra),
            );
            wait_for("redis-server answering PING", || {
                command(addr, port, &["PING"]).is_some_and(|r| r.starts_with("+PONG"))
            })?;
            Ok(proc)
        };
        match mode {
            Mode::Single => {
                let port = place.port();
                let proc = server(port, &[])?;
                let url_port = front(port)?;
                Ok(Backend {
                    mode,
                    describe: format!(
                        "one redis-server at {addr}:{port}, no persistence{}",
                        if url_port == port {
                            String::new()
                        } else {
                            format!(", reached through the proxy :{url_port}")
                        }
                    ),
                    state_lines: format!("url = \"redis://{addr}:{url_port}/0\"\n"),
                    calibration: calibrate(port, url_port),
                    _procs: vec![proc],
                })
            }
            Mode::Sentinel => {
                let mut procs = Vec::new();
                let master_port = place.port();
                procs.push(server(master_port, &[])?);
                let replica_port = place.port();
                procs.push(server(
                    replica_port,
                    &["--replicaof".into(), addr.clone(), master_port.to_string()],
                )?);
                wait_for("the replica in sync", || {
                    command(addr, replica_port, &["INFO", "replication"])
                        .is_some_and(|r| r.contains("master_link_status:up"))
                })?;
                // The sentinels monitor the master at this port, and announce it to the
                // plugin: the proxy's, if there is one.
                let announced_port = front(master_port)?;
                let mut sentinel_ports = Vec::new();
                for _ in 0..3 {
                    let port = place.port();
                    let file = dir.join(format!("sentinel-{port}.conf"));
                    // Failure detection slow on purpose: a busy 2-core machine must not
                    // cause a failover in the middle of a run.
                    std::fs::write(
                        &file,
                        format!(
                            "port {port}\nbind {addr}\nprotected-mode no\ndir {}\n\
                             sentinel monitor {MASTER} {addr} {announced_port} 2\n\
                             sentinel down-after-milliseconds {MASTER} 60000\n\
                             sentinel failover-timeout {MASTER} 180000\n",
                            dir.display()
                        ),
                    )
                    .map_err(|e| e.to_string())?;
                    procs.push(Proc::spawn(
                        place.command("redis-server").arg(&file).args([
                            "--sentinel",
                            "--loglevel",
                            "warning",
                        ]),
                    ));
                    wait_for("a sentinel naming the master", || {
                        command(addr, port, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER])
                            .is_some_and(|r| r.contains(&announced_port.to_string()))
                    })?;
                    sentinel_ports.push(port);
                }
                for &port in &sentinel_ports {
                    wait_for("sentinels knowing the replica", || {
                        command(addr, port, &["SENTINEL", "REPLICAS", MASTER])
                            .is_some_and(|r| r.contains(&replica_port.to_string()))
                    })?;
                }
                let mut sentinel_fronts = Vec::new();
                for &port in &sentinel_ports {
                    sentinel_fronts.push(front(port)?);
                }
                let urls = sentinel_fronts
                    .iter()
                    .map(|p| format!("\"redis://{addr}:{p}\""))
                    .collect::<Vec<_>>()
                    .join(", ");
                Ok(Backend {
                    mode,
                    describe: format!(
                        "master {addr}:{master_port}, replica :{replica_port}, sentinels :{} \
                         (no persistence, min_replicas = 0){}",
                        sentinel_ports
                            .iter()
                            .map(|p| p.to_string())
                            .collect::<Vec<_>>()
                            .join(" :"),
                        if announced_port == master_port {
                            String::new()
                        } else {
                            format!(
                                "; proxies: master :{announced_port} (what the sentinels \
                                 monitor and announce), sentinels :{}",
                                sentinel_fronts
                                    .iter()
                                    .map(|p| p.to_string())
                                    .collect::<Vec<_>>()
                                    .join(" :")
                            )
                        }
                    ),
                    state_lines: format!("sentinels = [{urls}]\nmaster_name = \"{MASTER}\"\n"),
                    calibration: calibrate(master_port, announced_port),
                    _procs: procs,
                })
            }
        }
    }

    fn open_plugin(&self, dir: &Path) -> Result<Plugin, String> {
        let name = self.mode.name();
        let mut text = format!(
            "max_failures = 4000000000\nmax_failures_per_ip = 4000000000\n\
             [state]\nbackend = \"redis\"\n{}dir = \"{}\"\n",
            self.state_lines,
            dir.join(format!("state-{name}")).display()
        );
        for i in 0..USERS {
            text.push_str(&format!(
                "[users.u{i}]\nsecret = \"{:016x}\"\npin = \"{}\"\n",
                0x1234_5678_9abc_def0u64.wrapping_mul(i as u64 + 1),
                1000 + i
            ));
        }
        let config = dir.join(format!("motp-{name}.toml"));
        std::fs::write(&config, text).map_err(|e| format!("write motp.toml: {e}"))?;
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640))
            .map_err(|e| format!("chmod: {e}"))?;
        Plugin::open(&config).map_err(|e| format!("open ({name}): {:?}", e.messages()))
    }
}

/// A TCP proxy on 127.0.0.1 in front of one Redis process that delays each direction by
/// `one_way`: for every connection it accepts it connects to the target, and each direction
/// gets a reader thread (which stamps every chunk it reads with the time it is due,
/// read time + `one_way`) and a writer thread (which sleeps until a chunk is due, then writes
/// it). Chunks keep their order and are never merged or held back for each other, so N
/// requests in flight each get the same added latency, as on a link with that delay. The
/// threads' timer slack is set to 1 ns, so a sleep ends close to when it is due. A closed side
/// is passed on (shutdown of the write half) after what was read before it. Threads end with
/// their connection; the listener lives as long as the bench.
struct DelayProxy {
    port: u16,
}

impl DelayProxy {
    fn start(target: SocketAddr, one_way: Duration) -> Result<DelayProxy, String> {
        let listener =
            TcpListener::bind(("127.0.0.1", 0)).map_err(|e| format!("proxy listen: {e}"))?;
        let port = listener
            .local_addr()
            .map_err(|e| format!("proxy address: {e}"))?
            .port();
        std::thread::Builder::new()
            .name("delay-proxy".into())
            .spawn(move || {
                for client in listener.incoming() {
                    let Ok(client) = client else { continue };
                    // Unreachable target: the client sees its connection closed, as it would.
                    let Ok(server) = TcpStream::connect(target) else {
                        continue;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone())
                    else {
                        continue;
                    };
                    delay_pump(client, server2, one_way);
                    delay_pump(server, client2, one_way);
                }
            })
            .map_err(|e| format!("proxy thread: {e}"))?;
        Ok(DelayProxy { port })
    }
}

/// One direction of a [`DelayProxy`] connection: `from` → `to`, each chunk `one_way` late.
fn delay_pump(mut from: TcpStream, mut to: TcpStream, one_way: Duration) {
    let (tx, rx) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
    let fine_timer = || {
        // SAFETY: prctl(PR_SET_TIMERSLACK) takes an integer and changes only this thread.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
    };
    std::thread::spawn(move || {
        fine_timer();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send((Instant::now() + one_way, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        // Dropping `tx` lets the writer finish what was read, then pass the close on.
    });
    std::thread::spawn(move || {
        fine_timer();
        for (due, chunk) in rx {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// The median round trip of `PING` on one connection to `addr:port`, in ms (500 of them).
fn ping_median(addr: &str, port: u16) -> f64 {
    let Ok(mut stream) = TcpStream::connect((addr, port)) else {
        return f64::NAN;
    };
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut times = Vec::with_capacity(500);
    let mut buf = [0u8; 64];
    for _ in 0..500 {
        let start = Instant::now();
        if stream.write_all(b"PING\r\n").is_err() {
            return f64::NAN;
        }
        let mut got = Vec::new();
        while !got.ends_with(b"\r\n") {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return f64::NAN,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// A network namespace of the bench's own and a veth pair into it, deleted on drop.
struct Netns {
    name: String,
    host_if: String,
    host_addr: String,
    inner_addr: String,
}

impl Netns {
    fn create(delay_ms: Option<f64>) -> Result<Netns, String> {
        let pid = std::process::id();
        // 169.254.200.0–169.254.249.255: link-local, never routed; a /30 that no interface
        // of this machine uses yet, on the veth pair only.
        let octet = 200 + pid % 50;
        let subnet = format!("169.254.{octet}.");
        let used = output(Command::new("ip").args(["-o", "-4", "addr", "show"]))?;
        if used
            .split_whitespace()
            .filter_map(|w| w.strip_prefix(&subnet))
            .filter_map(|rest| rest.split('/').next()?.parse::<u8>().ok())
            .any(|last| last < 4)
        {
            return Err(format!("{subnet}0/30 is in use here already"));
        }
        let ns = Netns {
            name: format!("motpbench-{pid}"),
            host_if: format!("mbh{pid}"),
            host_addr: format!("{subnet}1"),
            inner_addr: format!("{subnet}2"),
        };
        let inner_if = format!("mbn{pid}");
        output(Command::new("ip").args(["netns", "add", &ns.name]))?;
        // From here on `ns` is dropped (namespace and veth deleted) on any error.
        output(Command::new("ip").args([
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &inner_if,
            "netns",
            &ns.name,
        ]))?;
        let host_cidr = format!("{}/30", ns.host_addr);
        let inner_cidr = format!("{}/30", ns.inner_addr);
        output(Command::new("ip").args(["addr", "add", &host_cidr, "dev", &ns.host_if]))?;
        output(Command::new("ip").args(["link", "set", &ns.host_if, "up"]))?;
        let in_ns = |args: &[&str]| {
            output(
                Command::new("ip")
                    .args(["netns", "exec", &ns.name])
                    .args(args),
            )
        };
        in_ns(&["ip", "link", "set", "lo", "up"])?;
        in_ns(&["ip", "addr", "add", &inner_cidr, "dev", &inner_if])?;
        in_ns(&["ip", "link", "set", &inner_if, "up"])?;
        if let Some(d) = delay_ms {
            let half = format!("{}ms", d / 2.0);
            for (inside, dev) in [(None, &ns.host_if), (Some(&ns.name), &inner_if)] {
                let mut c = match inside {
                    Some(name) => {
                        let mut c = Command::new("ip");
                        c.args(["netns", "exec", name, "tc"]);
                        c
                    }
                    None => Command::new("tc"),
                };
                c.args(["qdisc", "add", "dev", dev, "root", "netem", "delay", &half]);
                output(&mut c).map_err(|e| {
                    format!("netem delay not available here ({e}); nothing was measured")
                })?;
            }
        }
        Ok(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting one end deletes the pair; deleting the namespace deletes what is left in it.
        let quiet = |args: &[&str]| {
            let _ = Command::new("ip")
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        quiet(&["link", "del", &self.host_if]);
        quiet(&["netns", "del", &self.name]);
    }
}

/// Runs a command to its end; its stdout, or an error with its stderr.
fn output(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// One RESP command on a fresh connection; the raw reply (`None` if nothing answers).
fn command(addr: &str, port: u16, args: &[&str]) -> Option<String> {
    let sock: SocketAddr = format!("{addr}:{port}").parse().ok()?;
    let mut stream = TcpStream::connect_timeout(&sock, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    stream.write_all(req.as_bytes()).ok()?;
    let mut buf = [0u8; 16384];
    let n = stream.read(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) -> Result<(), String> {
    let start = Instant::now();
    while !ok() {
        if start.elapsed() > START_LIMIT {
            return Err(format!("{what}: not within {START_LIMIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

struct InFlight {
    env: Env,
    started: Instant,
}

struct RunResult {
    logins: usize,
    seconds: f64,
    rate: f64,
    p50: f64,
    p99: f64,
    max: f64,
    load1: f64,
    loadavg: String,
}

fn run(plugin: &Plugin, dir: &Path, clients: usize, length: Duration) -> Result<RunResult, String> {
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
