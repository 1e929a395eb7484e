//! Redis Sentinel, with real processes on loopback ports of the test's own: a master, a replica
//! and three `redis-server --sentinel`, started and killed here. The plugin, loaded through its
//! C ABI (motp_harness::abi), finds the master through the sentinels, follows a failover by
//! itself, never accepts a code twice across it, and with `min_replicas` confirms an acceptance
//! only once a replica holds it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use motp::engine::code_at_time;
use motp_harness::abi::{Env, Plugin};
use motp_harness::openvpn::{free_port, require_redis, Proc, TempDir};
use openvpn_plugin_sys as sys;

const SECRET: &str = "0123456789abcdef";
const PIN: &str = "q7x2";
const MASTER: &str = "motpmaster";
const ANSWER: Duration = Duration::from_secs(10);

/// The tests here start and kill many processes: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn now() -> i64 {
    motp_harness::openvpn::unix_now()
}

fn code(steps_ahead: i64) -> String {
    code_at_time(SECRET, PIN, now() + 10 * steps_ahead).to_hex()
}

/// One RESP command on a fresh connection; the raw reply (`None` if nothing answers).
fn command(port: u16, args: &[&str]) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    stream.write_all(req.as_bytes()).ok()?;
    let mut buf = [0u8; 8192];
    let n = stream.read(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < limit,
            "{what} did not happen in {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A master, a replica and three sentinels watching them.
struct Cluster {
    master: (u16, Option<Proc>),
    replica: (u16, Option<Proc>),
    sentinels: Vec<(u16, Proc)>,
}

impl Cluster {
    fn start(dir: &Path) -> Cluster {
        require_redis();
        let server = |port: u16, extra: &[String]| {
            let data = dir.join(format!("redis-{port}"));
            std::fs::create_dir_all(&data).unwrap();
            let proc = Proc::spawn(
                Command::new("redis-server")
                    .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                    .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
                    .args(["--loglevel", "warning", "--dir"])
                    .arg(&data)
                    .args(extra),
            );
            wait_for("redis-server answering", Duration::from_secs(20), || {
                command(port, &["PING"]).is_some_and(|r| r.starts_with("+PONG"))
            });
            proc
        };
        let master_port = free_port();
        let master = server(master_port, &[]);
        let replica_port = free_port();
        let replica = server(
            replica_port,
            &[
                "--replicaof".into(),
                "127.0.0.1".into(),
                master_port.to_string(),
            ],
        );
        wait_for("the replica in sync", Duration::from_secs(20), || {
            command(replica_port, &["INFO", "replication"])
                .is_some_and(|r| r.contains("master_link_status:up"))
        });
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            let file = dir.join(format!("sentinel-{port}.conf"));
            std::fs::write(
                &file,
                format!(
                    "port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {}\n\
                     sentinel monitor {MASTER} 127.0.0.1 {master_port} 2\n\
                     sentinel down-after-milliseconds {MASTER} 1000\n\
                     sentinel failover-timeout {MASTER} 10000\n\
                     sentinel parallel-syncs {MASTER} 1\n",
                    dir.display()
                ),
            )
            .unwrap();
            let proc = Proc::spawn(Command::new("redis-server").arg(&file).args([
                "--sentinel",
                "--loglevel",
                "warning",
            ]));
            wait_for("a sentinel answering", Duration::from_secs(20), || {
                command(port, &["PING"]).is_some_and(|r| r.starts_with("+PONG"))
            });
            sentinels.push((port, proc));
        }
        // Every sentinel knows the replica (and the others) before anything is killed.
        for (port, _) in &sentinels {
            wait_for(
                "sentinels knowing the replica",
                Duration::from_secs(30),
                || {
                    command(*port, &["SENTINEL", "REPLICAS", MASTER])
                        .is_some_and(|r| r.contains(&replica_port.to_string()))
                },
            );
        }
        Cluster {
            master: (master_port, Some(master)),
            replica: (replica_port, Some(replica)),
            sentinels,
        }
    }

    fn sentinel_urls(&self) -> String {
        self.sentinels
            .iter()
            .map(|(port, _)| format!("\"redis://127.0.0.1:{port}\""))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The master the sentinels name now.
    fn master_port(&self) -> Option<u16> {
        let reply = command(
            self.sentinels[0].0,
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER],
        )?;
        reply
            .lines()
            .filter(|l| !l.starts_with(['*', '$']))
            .nth(1)?
            .trim()
            .parse()
            .ok()
    }
}

struct Setup {
    dir: TempDir,
    config: std::path::PathBuf,
}

impl Setup {
    fn new(label: &str, cluster: &Cluster, extra: &str) -> Setup {
        let dir = TempDir::new(label);
        let config = dir.path().join("motp.toml");
        std::fs::write(
            &config,
            format!(
                "max_failures = 50\nmax_failures_per_ip = 1000\n\
                 [users.alice]\nsecret = \"{SECRET}\"\npin = \"{PIN}\"\n\
                 [state]\nbackend = \"redis\"\nsentinels = [{}]\nmaster_name = \"{MASTER}\"\n\
                 timeout_ms = 300\ndir = \"{}\"\n{extra}",
                cluster.sentinel_urls(),
                dir.path().join("state").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640)).unwrap();
        Setup { dir, config }
    }

    fn open(&self) -> Plugin {
        Plugin::open(&self.config).unwrap_or_else(|e| panic!("open failed: {:?}", e.messages()))
    }

    /// A deferred login: its answer from auth_control_file.
    fn login(&self, plugin: &Plugin, password: &str) -> bool {
        let env = Env::openvpn_auth(self.dir.path(), "alice", password);
        assert_eq!(plugin.auth(&env), sys::OPENVPN_PLUGIN_FUNC_DEFERRED);
        env.wait_for_control(ANSWER)
            .expect("no answer in auth_control_file")
    }
}

#[test]
fn logins_follow_a_failover_and_no_code_is_accepted_twice() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = TempDir::new("sentinel-failover");
    let mut cluster = Cluster::start(dir.path());
    let setup = Setup::new("sentinel-failover-plugin", &cluster, "");
    let plugin = setup.open();
    let before = code(-3);
    assert!(setup.login(&plugin, &before), "through the first master");
    // The replica holds it (replication is asynchronous; min_replicas is the other test).
    let replica_port = cluster.replica.0;
    wait_for("the acceptance replicated", Duration::from_secs(10), || {
        command(replica_port, &["GET", "motp:user:alice"]).is_some_and(|r| r.starts_with('$'))
    });

    // The master dies; the sentinels promote the replica.
    let mut old_master = cluster.master.1.take().expect("running");
    old_master.kill();
    wait_for("a failover", Duration::from_secs(60), || {
        cluster.master_port() == Some(replica_port)
    });
    // Logins resume on the new master by themselves (the plugin asks the sentinels again).
    let fresh = code(0);
    let started = Instant::now();
    let mut accepted_after = false;
    while started.elapsed() < Duration::from_secs(30) {
        // The code accepted before the failover is refused whenever it is asked.
        assert!(
            !setup.login(&plugin, &before),
            "a code accepted before the failover"
        );
        if setup.login(&plugin, &fresh) {
            accepted_after = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        accepted_after,
        "logins never resumed on the promoted replica"
    );
    assert!(
        !setup.login(&plugin, &fresh),
        "the replay on the new master"
    );
    assert!(setup.login(&plugin, &code(1)));
    drop(plugin);
    drop(cluster);
}

#[test]
fn with_min_replicas_an_acceptance_no_replica_holds_is_not_confirmed() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = TempDir::new("sentinel-wait");
    let cluster = Cluster::start(dir.path());
    let setup = Setup::new("sentinel-wait-plugin", &cluster, "min_replicas = 1\n");
    let plugin = setup.open();
    assert!(setup.login(&plugin, &code(-3)), "confirmed by the replica");

    // The replica stops answering (SIGSTOP): WAIT sees no replica within timeout_ms.
    let replica = cluster.replica.1.as_ref().unwrap();
    replica.signal("STOP");
    let unconfirmed = code(0);
    assert!(
        !setup.login(&plugin, &unconfirmed),
        "an acceptance no replica confirmed"
    );
    replica.signal("CONT");
    // The step stayed used: the same code is a replay, a later one is confirmed again.
    let mut later_ok = false;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) && !later_ok {
        assert!(!setup.login(&plugin, &unconfirmed), "the unconfirmed code");
        later_ok = setup.login(&plugin, &code(1));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        later_ok,
        "acceptances are confirmed again once the replica is back"
    );
    let lines = plugin.close();
    assert!(
        lines
            .iter()
            .any(|l| l.message.contains("min_replicas asks for")),
        "{lines:#?}"
    );
    drop(cluster);
}
