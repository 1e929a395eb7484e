//! The Debian unit, emulated: real `openvpn` servers run the way Debian 12's
//! `openvpn-server@.service` runs them, and the plugin must keep working through SIGHUPs.
//!
//! There is no systemd as PID 1 here, so the unit's two restrictions that matter to the plugin
//! are applied by hand ([`debian_unit_launcher`]):
//!
//! - `prlimit --nproc=10:10` (`LimitNPROC=10`): once OpenVPN has dropped to `user nobody`, a
//!   new thread or process fails (`EAGAIN`) while the real uid `nobody` already has 10 tasks on
//!   the machine, threads of every OpenVPN instance included;
//! - `setpriv --bounding-set -all,+ipc_lock,+net_admin,+net_bind_service,+net_raw,+setgid,
//!   +setuid,+setpcap,+sys_chroot,+dac_override,+audit_write` (`CapabilityBoundingSet=`): root
//!   in `openvpn` has no CAP_CHOWN and no CAP_FOWNER (nor CAP_SYS_RESOURCE, which would lift
//!   the NPROC limit). Each test checks in `/proc` that the running server really has these
//!   limits and runs as nobody.
//!
//! ProtectSystem, ProtectHome and PrivateTmp are not emulated.
//!
//! The rest is as the setup guide's "Running under systemd" says: `user nobody` / `group
//! nogroup`, motp.toml 0640 root:nogroup, the state directory made with `install -d -m 0700
//! -o nobody -g nogroup`, the key files 0640 root:nogroup (OpenVPN re-reads them as nobody at
//! SIGHUP, `persist-key` or not), `persist-key`, `persist-tun`. The unit's command line is
//! passed too (`--status <runtime dir>/status-NAME.log --status-version 2
//! --suppress-timestamps`, the runtime dir 0710 root:root as Debian's tmpfiles.d makes
//! `/run/openvpn-server`), and server.conf names a status file of nobody's, in a directory of
//! nobody's, which overrides it: OpenVPN checks the status file again as nobody at SIGHUP and
//! exits if it cannot write it (the third test pins that, as the guide warns).
//!
//! The tun device is the one of the SIGHUP test in tests/e2e.rs: persistent and owned by
//! nobody, with `/dev/net/tun` 0666 as on Debian. OpenVPN itself needs nothing beyond the
//! unit's capabilities: CAP_NET_ADMIN opens the tun at start (and Debian's OpenVPN 2.6 keeps
//! CAP_NET_ADMIN after dropping to nobody, "Capabilities retained: CAP_NET_ADMIN"; it does not
//! lift RLIMIT_NPROC, only CAP_SYS_RESOURCE or CAP_SYS_ADMIN would), CAP_DAC_OVERRIDE reads the
//! files as root, CAP_SETUID/CAP_SETGID drop to nobody. No limit was weakened to make OpenVPN
//! run.
//!
//! Before the plugin was opened after OpenVPN's uid change (POST_UID_CHANGE) and kept to one
//! Redis worker, the first test failed (root created the database, could not chown it without
//! CAP_CHOWN, and at the first SIGHUP nobody set it aside and refused the next code too), and
//! so did the second (1 + 1 + 4 tasks per server: the two servers' 12 tasks of nobody left no
//! room for the threads the first server SIGHUPed had to start again, and it exited with
//! `cannot start worker threads: Resource temporarily unavailable`).
//!
//! RLIMIT_NPROC counts every task of nobody on the machine, so the tests of this file run one
//! at a time (a static mutex), and each first waits until no other task runs as nobody (cargo
//! runs test binaries one after another, so within one `cargo test` only this file runs
//! OpenVPN as nobody meanwhile; a concurrent `cargo test` of tests/e2e.rs could, and would be
//! waited out or reported). Timeouts only guard against hangs; nothing is timed.
//!
//! Needs root, `openvpn`, `openssl`, `prlimit`, `setpriv`, `ip`, and `redis-server` for the
//! Redis test.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use motp::engine::code_at_time;
use motp_harness::openvpn::{
    debian_unit_launcher, login, require, require_tools, tasks_of_uid, unix_now, write_motp_config,
    Credentials, Outcome, Pki, Proto, RedisServer, Server, ServerSpec, TempDir,
    DEBIAN_UNIT_CAPABILITIES, DEBIAN_UNIT_NPROC,
};

const ALICE_SECRET: &str = "0123456789abcdef";
const ALICE_PIN: &str = "1234";

const USERS: &str = "[users.alice]\nsecret = \"0123456789abcdef\"\npin = \"1234\"\n";

/// The uid and gid of `nobody` / `nogroup` on Debian.
const NOBODY: u32 = 65534;
const NOGROUP: u32 = 65534;

/// One test at a time: the NPROC budget of nobody is machine-wide.
static SERIAL: Mutex<()> = Mutex::new(());

fn alice_code(at: i64) -> String {
    code_at_time(ALICE_SECRET, ALICE_PIN, at).to_hex()
}

fn run(args: &[&str]) {
    let status = Command::new(args[0])
        .args(&args[1..])
        .status()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(status.success(), "{args:?} failed");
}

/// Waits until no task runs as nobody (the budget of 10 is then all the servers'), or fails
/// naming the tasks that hold it.
fn wait_until_nobody_runs_nothing() {
    let start = Instant::now();
    loop {
        let tasks = tasks_of_uid(NOBODY);
        if tasks.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "other tasks run as nobody and would share the NPROC budget of {DEBIAN_UNIT_NPROC} \
             with this test's servers: {tasks:#?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A test's files, laid out as on a Debian server run by the unit.
struct Unit {
    dir: TempDir,
    pki: Pki,
    /// motp.toml, 0640 root:nogroup.
    config: std::path::PathBuf,
    /// The state directory, 0700 nobody:nogroup.
    state: std::path::PathBuf,
}

impl Unit {
    fn prepare(label: &str, motp_toml: impl FnOnce(&Path) -> String) -> Unit {
        require_tools();
        require(&["ip"]);
        let dir = TempDir::new(label);
        let pki = Pki::create(dir.path(), &["alice"]);
        // OpenVPN re-reads its keys as nobody at SIGHUP.
        for key in ["server.key", "tls-crypt.key"] {
            run(&["chown", "root:nogroup", &pki.file(key)]);
            run(&["chmod", "0640", &pki.file(key)]);
        }
        let state = dir.path().join("state");
        run(&[
            "install",
            "-d",
            "-m",
            "0700",
            "-o",
            "nobody",
            "-g",
            "nogroup",
            &state.display().to_string(),
        ]);
        let config = dir.path().join("motp.toml");
        write_motp_config(&config, &motp_toml(&state));
        run(&["chown", "root:nogroup", &config.display().to_string()]);
        // Debian's /dev/net/tun is 0666; some sandboxes make it 0600, which stops nobody from
        // reopening the (persistent, nobody-owned) tun device (as in tests/e2e.rs).
        run(&["chmod", "0666", "/dev/net/tun"]);
        Unit {
            dir,
            pki,
            config,
            state,
        }
    }

    /// Starts a server under the emulated unit, as nobody, and checks that it is confined.
    fn start(&self, proto: Proto) -> Server {
        self.try_start(proto, true)
            .unwrap_or_else(|log| panic!("{proto:?} server did not start under the unit:\n{log}"))
    }

    /// The unit's command line: `--status %t/openvpn-server/status-%i.log --status-version 2
    /// --suppress-timestamps --config %i.conf`, its `%t/openvpn-server` made 0710 root:root as
    /// Debian's tmpfiles.d makes it. With `own_status`, server.conf names a status file of its
    /// own, in a directory of nobody's, which overrides the unit's (as the setup guide says).
    fn try_start(&self, proto: Proto, own_status: bool) -> Result<Server, String> {
        let runtime_dir = self.dir.path().join("run-openvpn-server");
        let runtime = runtime_dir.display().to_string();
        run(&[
            "install", "-d", "-m", "0710", "-o", "root", "-g", "root", &runtime,
        ]);
        let mut spec = ServerSpec::new(&self.pki, motp_harness::plugin_path(), self.config.clone());
        spec.proto = proto;
        spec.launcher = debian_unit_launcher();
        spec.args = vec![
            "--status".into(),
            runtime_dir
                .join(format!("status-{proto:?}.log"))
                .display()
                .to_string(),
            "--status-version".into(),
            "2".into(),
            "--suppress-timestamps".into(),
        ];
        spec.tun_owner = Some(("nobody".into(), "nogroup".into()));
        spec.extra = vec![
            "user nobody".into(),
            "group nogroup".into(),
            "persist-key".into(),
            "persist-tun".into(),
        ];
        if own_status {
            // OpenVPN checks at SIGHUP, as nobody, that the status file's directory is
            // readable, writable and searchable and that the file is writable.
            let status_dir = self.dir.path().join("status");
            let status = status_dir.join(format!("status-{proto:?}.log"));
            run(&[
                "install",
                "-d",
                "-m",
                "0700",
                "-o",
                "nobody",
                "-g",
                "nogroup",
                &status_dir.display().to_string(),
            ]);
            run(&[
                "install",
                "-m",
                "0600",
                "-o",
                "nobody",
                "-g",
                "nogroup",
                "/dev/null",
                &status.display().to_string(),
            ]);
            spec.extra.push(format!("status {}", status.display()));
        }
        let server = Server::start(self.dir.path(), &spec)?;
        assert_confined(&server);
        Ok(server)
    }

    fn login(&self, server: &Server, password: &str) -> Outcome {
        login(
            server,
            &self.pki,
            "alice",
            &Credentials::File {
                username: "alice",
                password,
            },
        )
    }
}

/// The server runs as nobody:nogroup, with the unit's capability bounding set (no CAP_CHOWN,
/// no CAP_FOWNER) and RLIMIT_NPROC 10.
fn assert_confined(server: &Server) {
    let pid = server.pid();
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("server status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    let nobody = NOBODY.to_string();
    assert!(
        field("Uid:").split_whitespace().all(|u| u == nobody),
        "server not running as nobody: Uid: {}",
        field("Uid:")
    );
    let nogroup = NOGROUP.to_string();
    assert!(
        field("Gid:").split_whitespace().all(|g| g == nogroup),
        "Gid: {}",
        field("Gid:")
    );
    let bounding = u64::from_str_radix(&field("CapBnd:"), 16).expect("CapBnd hex");
    assert_eq!(bounding, unit_capabilities(), "CapBnd of the server");
    const CAP_CHOWN: u32 = 0;
    const CAP_FOWNER: u32 = 3;
    assert_eq!(bounding & (1 << CAP_CHOWN | 1 << CAP_FOWNER), 0);
    let limits = fs::read_to_string(format!("/proc/{pid}/limits")).expect("server limits");
    let nproc: Vec<&str> = limits
        .lines()
        .find(|l| l.starts_with("Max processes"))
        .expect("Max processes in limits")
        .split_whitespace()
        .collect();
    let limit = DEBIAN_UNIT_NPROC.to_string();
    assert_eq!(&nproc[2..4], [limit.as_str(), limit.as_str()], "{nproc:?}");
}

/// The unit's capabilities as a CapBnd bit mask (numbers from linux/capability.h).
fn unit_capabilities() -> u64 {
    DEBIAN_UNIT_CAPABILITIES
        .iter()
        .map(|name| match *name {
            "dac_override" => 1,
            "setgid" => 6,
            "setuid" => 7,
            "setpcap" => 8,
            "net_bind_service" => 10,
            "net_admin" => 12,
            "net_raw" => 13,
            "ipc_lock" => 14,
            "sys_chroot" => 18,
            "audit_write" => 29,
            other => panic!("unknown capability {other}"),
        })
        .fold(0, |mask, bit| mask | 1u64 << bit)
}

/// `systemctl kill -s HUP openvpn-server@NAME`, then waits for the reload to complete.
fn reload(server: &mut Server, what: &str) {
    let closes = server.log().matches("PLUGIN_CLOSE").count();
    server
        .try_sighup()
        .unwrap_or_else(|log| panic!("{what}: the server did not come back after SIGHUP:\n{log}"));
    let log = server.log();
    assert!(
        log.matches("PLUGIN_CLOSE").count() > closes,
        "{what}: SIGHUP must have closed and reopened the plugin:\n{log}"
    );
    assert!(server.is_running(), "{what}: server exited after SIGHUP");
    assert_confined(server);
}

/// The last plugin line about alice.
fn last_decision(server: &Server) -> String {
    server
        .plugin_lines()
        .into_iter()
        .rev()
        .find(|l| l.contains("user=alice "))
        .unwrap_or_default()
}

fn assert_accepted(outcome: &Outcome, what: &str) {
    assert!(
        outcome.accepted,
        "{what}: expected the login to be accepted; client log:\n{}",
        outcome.log
    );
}

fn assert_replay(server: &Server, outcome: &Outcome, what: &str) {
    assert!(
        outcome.rejected(),
        "{what}: expected AUTH_FAILED; client log:\n{}",
        outcome.log
    );
    let decision = last_decision(server);
    assert!(decision.contains("reason=replay"), "{what}: {decision}");
}

/// A deferred rejection (Redis backend): a bare AUTH_FAILED, not `TEMP[backoff N]` (which would
/// mean Redis could not be asked). Its log line reaches OpenVPN's log only at the plugin's next
/// call, so the reasons are counted at the end ([`replays_logged`]).
fn assert_refused(outcome: &Outcome, what: &str) {
    assert!(
        outcome.rejected(),
        "{what}: expected AUTH_FAILED; client log:\n{}",
        outcome.log
    );
    let message = outcome.auth_failed_message().unwrap_or_default();
    assert!(!message.contains("TEMP"), "{what}: {message}");
}

/// How many of alice's logins this server logged as `reason=replay`.
fn replays_logged(server: &Server) -> usize {
    server
        .plugin_lines()
        .iter()
        .filter(|l| l.contains("user=alice ") && l.contains("reason=replay"))
        .count()
}

fn assert_no_plugin_trouble(server: &Server, what: &str) {
    let log = server.log();
    for bad in ["moved it aside", "cannot start", "cannot give"] {
        assert!(
            !log.contains(bad),
            "{what}: `{bad}` in the server log:\n{log}"
        );
    }
}

#[test]
fn local_store_survives_two_sighups_under_the_debian_unit() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    wait_until_nobody_runs_nothing();
    let unit = Unit::prepare("e2e-unit-local", |state| {
        format!("[state]\ndir = \"{}\"\n\n{USERS}", state.display())
    });
    let mut server = unit.start(Proto::Udp);

    let now = unix_now();
    let code = alice_code(now);
    assert_accepted(&unit.login(&server, &code), "current code");
    reload(&mut server, "first SIGHUP");
    reload(&mut server, "second SIGHUP");
    assert_replay(
        &server,
        &unit.login(&server, &code),
        "the used code after two SIGHUPs",
    );
    assert_accepted(
        &unit.login(&server, &alice_code(now + 10)),
        "the next code after two SIGHUPs",
    );

    // Nothing was set aside, and every state file belongs to nobody.
    assert_no_plugin_trouble(&server, "local store");
    let mut files = Vec::new();
    for entry in fs::read_dir(&unit.state).expect("read state dir") {
        let entry = entry.expect("state dir entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(
            !name.starts_with("motp-state.db.corrupt-"),
            "the state database was set aside: {name}"
        );
        let meta = entry.metadata().expect("state file metadata");
        assert_eq!(
            (meta.uid(), meta.gid()),
            (NOBODY, NOGROUP),
            "{name} is not owned by nobody:nogroup"
        );
        files.push(name);
    }
    assert!(
        files.iter().any(|f| f == "motp-state.db"),
        "no motp-state.db in the state dir: {files:?}"
    );
    eprintln!(
        "local store: state files {files:?}; tasks of nobody: {:?}",
        tasks_of_uid(NOBODY)
    );
}

#[test]
fn udp_and_tcp_servers_on_redis_survive_sighups_under_the_debian_unit() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    wait_until_nobody_runs_nothing();
    let redis_dir = TempDir::new("e2e-unit-redis-server");
    let redis = RedisServer::start(redis_dir.path());
    let unit = Unit::prepare("e2e-unit-redis", |_state| {
        format!(
            // Replays and malformed passwords count as failures: keep this test's few of them
            // far from a lock.
            "max_failures = 20\n\n\
             [state]\nbackend = \"redis\"\nurl = \"{}\"\ntimeout_ms = 300\n\n{USERS}",
            redis.url()
        )
    });
    let mut udp = unit.start(Proto::Udp);
    let mut tcp = unit.start(Proto::Tcp);

    let now = unix_now();
    let first = alice_code(now);
    assert_accepted(&unit.login(&udp, &first), "a code through UDP");
    assert_refused(&unit.login(&tcp, &first), "the same code through TCP");

    for round in 1..=2 {
        reload(&mut udp, &format!("UDP server, SIGHUP {round}"));
        reload(&mut tcp, &format!("TCP server, SIGHUP {round}"));
    }
    assert!(udp.is_running() && tcp.is_running());

    // Both still decide, and still share what was used.
    let second = alice_code(now + 10);
    assert_accepted(&unit.login(&tcp, &second), "a fresh code through TCP");
    assert_refused(&unit.login(&udp, &second), "that code through UDP");
    let third = alice_code(now + 20);
    assert_accepted(&unit.login(&udp, &third), "a fresh code through UDP");
    assert_refused(&unit.login(&tcp, &third), "that code through TCP");
    assert_refused(&unit.login(&udp, &first), "the first code again");
    // One more call per server writes out the workers' queued lines: each refusal above was
    // a replay.
    for server in [&udp, &tcp] {
        assert_refused(&unit.login(server, "not a code"), "a malformed password");
    }
    assert_eq!(replays_logged(&udp), 2, "{:#?}", udp.plugin_lines());
    assert_eq!(replays_logged(&tcp), 2, "{:#?}", tcp.plugin_lines());
    for (server, what) in [(&udp, "UDP server"), (&tcp, "TCP server")] {
        assert_no_plugin_trouble(server, what);
    }
    assert!(udp.is_running() && tcp.is_running());
    eprintln!(
        "redis: {} tasks of nobody after the SIGHUPs: {:?}",
        tasks_of_uid(NOBODY).len(),
        tasks_of_uid(NOBODY)
    );
}

#[test]
fn the_units_own_status_file_stops_a_server_running_as_nobody_at_sighup() {
    // What the setup guide warns about, whatever the plugin does: the unit's `--status` file is
    // created by root in a directory only root may write, and OpenVPN checks it again as nobody
    // at SIGHUP, and exits. (The other tests name a status file of nobody's in server.conf.)
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    wait_until_nobody_runs_nothing();
    let unit = Unit::prepare("e2e-unit-status", |state| {
        format!("[state]\ndir = \"{}\"\n\n{USERS}", state.display())
    });
    let mut server = unit
        .try_start(Proto::Udp, false)
        .unwrap_or_else(|log| panic!("server did not start under the unit:\n{log}"));
    let log = match server.try_sighup() {
        Ok(()) => panic!(
            "the server survived SIGHUP with the unit's status file; if OpenVPN no longer \
             checks it as nobody, update docs/setup.md (\"Running under systemd\"):\n{}",
            server.log()
        ),
        Err(log) => log,
    };
    assert!(
        log.contains("--status fails with") && log.contains("Permission denied"),
        "{log}"
    );
    assert!(!server.is_running());
}
