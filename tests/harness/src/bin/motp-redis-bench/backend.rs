//! The Redis set-ups (`single`, `sentinel`): their processes, and the plugin opened on them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use motp_harness::abi::Plugin;
use motp_harness::openvpn::{free_port, Proc};

use crate::options::Mode;
use crate::proxy::{ping_median, DelayProxy};
use crate::{MASTER, START_LIMIT, USERS};

/// Where the Redis processes run and listen.
pub(crate) struct Place {
    pub(crate) addr: String,
    pub(crate) netns: Option<String>,
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
pub(crate) struct Backend {
    pub(crate) mode: Mode,
    pub(crate) describe: String,
    state_lines: String,
    /// With proxies: the PING round trip to the master (or the one Redis), direct and through
    /// its proxy, medians in ms.
    pub(crate) calibration: Option<(f64, f64)>,
    _procs: Vec<Proc>,
}

impl Backend {
    pub(crate) fn start(
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

    pub(crate) fn open_plugin(&self, dir: &Path) -> Result<Plugin, String> {
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
