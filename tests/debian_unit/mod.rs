//! The Debian unit's world for tests/e2e_systemd.rs (moved from there unchanged): the [`Unit`]
//! laid out as on a Debian server, the checks that a running server is confined as the unit
//! confines it, the waits for nobody's tasks, and the assertions on decisions and logs.

#![allow(dead_code)]

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use motp::engine::code_at_time;
use motp_harness::openvpn::{
    debian_unit_launcher, debian_unit_launcher_with_nproc, login, require, require_tools,
    tasks_of_uid, write_motp_config, Credentials, Outcome, Pki, Proto, Server, ServerSpec, TempDir,
    DEBIAN_UNIT_CAPABILITIES, DEBIAN_UNIT_NPROC,
};

pub const ALICE_SECRET: &str = "0123456789abcdef";
pub const ALICE_PIN: &str = "1234";

pub const USERS: &str = "[users.alice]\nsecret = \"0123456789abcdef\"\npin = \"1234\"\n";

/// The uid and gid of `nobody` / `nogroup` on Debian.
pub const NOBODY: u32 = 65534;
pub const NOGROUP: u32 = 65534;

pub fn alice_code(at: i64) -> String {
    code_at_time(ALICE_SECRET, ALICE_PIN, at).to_hex()
}

pub fn run(args: &[&str]) {
    let status = Command::new(args[0])
        .args(&args[1..])
        .status()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(status.success(), "{args:?} failed");
}

/// Waits until no task runs as nobody (the budget of 10 is then all the servers'), or fails
/// naming the tasks that hold it.
pub fn wait_until_nobody_runs_nothing() {
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
pub struct Unit {
    pub dir: TempDir,
    pub pki: Pki,
    /// motp.toml, 0640 root:nogroup.
    pub config: std::path::PathBuf,
    /// The state directory, 0700 nobody:nogroup.
    pub state: std::path::PathBuf,
}

impl Unit {
    pub fn prepare(label: &str, motp_toml: impl FnOnce(&Path) -> String) -> Unit {
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
        // reopening the (persistent, nobody-owned) tun device (as in tests/e2e_state.rs).
        run(&["chmod", "0666", "/dev/net/tun"]);
        Unit {
            dir,
            pki,
            config,
            state,
        }
    }

    /// Starts a server under the emulated unit, as nobody, and checks that it is confined.
    pub fn start(&self, proto: Proto) -> Server {
        self.try_start(proto, true)
            .unwrap_or_else(|log| panic!("{proto:?} server did not start under the unit:\n{log}"))
    }

    /// The unit's command line: `--status %t/openvpn-server/status-%i.log --status-version 2
    /// --suppress-timestamps --config %i.conf`, its `%t/openvpn-server` made 0710 root:root as
    /// Debian's tmpfiles.d makes it. With `own_status`, server.conf names a status file of its
    /// own, in a directory of nobody's, which overrides the unit's (as the setup guide says).
    pub fn try_start(&self, proto: Proto, own_status: bool) -> Result<Server, String> {
        self.try_start_with_nproc(proto, own_status, DEBIAN_UNIT_NPROC)
    }

    /// [`Unit::start`] with `LimitNPROC=nproc` instead of the unit's 10.
    pub fn start_with_nproc(&self, proto: Proto, nproc: u32) -> Server {
        self.try_start_with_nproc(proto, true, nproc)
            .unwrap_or_else(|log| {
                panic!("{proto:?} server did not start under the unit with NPROC {nproc}:\n{log}")
            })
    }

    /// [`Unit::try_start`] with `LimitNPROC=nproc` instead of the unit's 10.
    pub fn try_start_with_nproc(
        &self,
        proto: Proto,
        own_status: bool,
        nproc: u32,
    ) -> Result<Server, String> {
        let runtime_dir = self.dir.path().join("run-openvpn-server");
        let runtime = runtime_dir.display().to_string();
        run(&[
            "install", "-d", "-m", "0710", "-o", "root", "-g", "root", &runtime,
        ]);
        let mut spec = ServerSpec::new(&self.pki, motp_harness::plugin_path(), self.config.clone());
        spec.proto = proto;
        spec.launcher = if nproc == DEBIAN_UNIT_NPROC {
            debian_unit_launcher()
        } else {
            debian_unit_launcher_with_nproc(nproc)
        };
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
        assert_confined_to(&server, nproc);
        Ok(server)
    }

    pub fn login(&self, server: &Server, password: &str) -> Outcome {
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
/// no CAP_FOWNER) and RLIMIT_NPROC `max_tasks` (the unit's 10 unless a test lowers it).
pub fn assert_confined_to(server: &Server, max_tasks: u32) {
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
    let limit = max_tasks.to_string();
    assert_eq!(&nproc[2..4], [limit.as_str(), limit.as_str()], "{nproc:?}");
}

/// The unit's capabilities as a CapBnd bit mask (numbers from linux/capability.h).
pub fn unit_capabilities() -> u64 {
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
pub fn reload(server: &mut Server, what: &str) {
    reload_confined_to(server, what, DEBIAN_UNIT_NPROC);
}

/// [`reload`] of a server started with RLIMIT_NPROC `nproc`.
pub fn reload_confined_to(server: &mut Server, what: &str, nproc: u32) {
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
    assert_confined_to(server, nproc);
}

/// The last plugin line about alice.
pub fn last_decision(server: &Server) -> String {
    server
        .plugin_lines()
        .into_iter()
        .rev()
        .find(|l| l.ends_with(" user=alice"))
        .unwrap_or_default()
}

pub fn assert_accepted(outcome: &Outcome, what: &str) {
    assert!(
        outcome.accepted,
        "{what}: expected the login to be accepted; client log:\n{}",
        outcome.log
    );
}

pub fn assert_replay(server: &Server, outcome: &Outcome, what: &str) {
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
pub fn assert_refused(outcome: &Outcome, what: &str) {
    assert!(
        outcome.rejected(),
        "{what}: expected AUTH_FAILED; client log:\n{}",
        outcome.log
    );
    let message = outcome.auth_failed_message().unwrap_or_default();
    assert!(!message.contains("TEMP"), "{what}: {message}");
}

/// How many of alice's logins this server logged as `reason=replay`.
pub fn replays_logged(server: &Server) -> usize {
    server
        .plugin_lines()
        .iter()
        .filter(|l| l.ends_with(" user=alice") && l.contains("reason=replay"))
        .count()
}

pub fn assert_no_plugin_trouble(server: &Server, what: &str) {
    let log = server.log();
    for bad in ["moved it aside", "cannot start", "cannot give"] {
        assert!(
            !log.contains(bad),
            "{what}: `{bad}` in the server log:\n{log}"
        );
    }
}

// Issue 12, "a small thread budget": the helpers of the last two tests of tests/e2e_systemd.rs.

/// The worker's start-up failure, as the plugin logs it (with the cause in the brackets).
pub const WORKER_FAILED: &str = "cannot start a worker thread (";
/// The config watcher's start-up failure.
pub const WATCHER_FAILED: &str = "cannot start the config watcher thread (";
/// What a thread that cannot start fails with under RLIMIT_NPROC (EAGAIN).
pub const EAGAIN: &str = "Resource temporarily unavailable";

/// The budget of a test: what nobody already holds, plus `room` tasks for this test's servers.
pub fn nproc_leaving_room_for(room: u32) -> u32 {
    let held = tasks_of_uid(NOBODY);
    eprintln!("tasks of nobody before the servers: {held:?}");
    u32::try_from(held.len()).expect("task count") + room
}

/// The names of a server's tasks (threads included), sorted: `openvpn`, `motp-config`, ...
pub fn task_names(server: &Server) -> Vec<String> {
    let pid = server.pid();
    let mut names: Vec<String> = fs::read_dir(format!("/proc/{pid}/task"))
        .expect("server's tasks")
        .flatten()
        .filter_map(|t| fs::read_to_string(t.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .collect();
    names.sort();
    names
}

pub fn assert_tasks(server: &Server, expected: &[&str], what: &str) {
    let mut expected: Vec<String> = expected.iter().map(|&n| n.to_owned()).collect();
    expected.sort();
    // A new thread names itself after it starts: until then it shows the process's name. On a
    // loaded machine that takes a while; a generous bound against a hang, not a timing check.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while task_names(server) != expected && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        task_names(server),
        expected,
        "{what}: tasks of the server; all tasks of nobody: {:?}",
        tasks_of_uid(NOBODY)
    );
}

/// Every `ready:` line (one per open of the plugin: start and each SIGHUP) comes right after
/// that open's `failures`, so `ready:` is never logged before a thread failed to start.
pub fn assert_ready_after(server: &Server, failures: &[&str], opens: usize, what: &str) {
    let lines = server.plugin_lines();
    let readies: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains("PLUGIN motp: ready: "))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(readies.len(), opens, "{what}: `ready:` lines: {lines:#?}");
    for i in readies {
        let open = &lines[i.saturating_sub(failures.len())..i];
        for failure in failures {
            assert!(
                open.iter().any(|l| l.contains(failure)),
                "{what}: `{failure}` must be logged just before `ready:` (line {i}): {lines:#?}"
            );
        }
    }
}

/// The first plugin line containing `needle`, which must name the cause (EAGAIN) and the fix
/// (LimitNPROC).
pub fn assert_explained(server: &Server, needle: &str, what: &str) {
    let lines = server.plugin_lines();
    let line = lines
        .iter()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{what}: no `{needle}` in the plugin's lines: {lines:#?}"));
    assert!(
        line.contains(EAGAIN) && line.contains("LimitNPROC"),
        "{what}: the line must name the cause and LimitNPROC: {line}"
    );
}

pub fn count_in_log(server: &Server, needle: &str) -> usize {
    server.log().matches(needle).count()
}

/// Waits (against hangs only) until nobody holds at most `tasks` tasks.
pub fn wait_until_nobody_holds_at_most(tasks: usize) {
    let start = Instant::now();
    loop {
        let held = tasks_of_uid(NOBODY);
        if held.len() <= tasks {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "nobody still holds {} tasks, expected at most {tasks}: {held:#?}",
            held.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Long enough after any worker failure for the plugin's retry (every 10 s) to be due.
pub const PAST_WORKER_RETRY: Duration = Duration::from_secs(11);

/// [`assert_no_plugin_trouble`], but the watcher's (expected) start-up failure.
pub fn assert_no_plugin_trouble_but_the_watcher(server: &Server) {
    let log = server.log();
    for line in log.lines().filter(|l| !l.contains(WATCHER_FAILED)) {
        for bad in ["moved it aside", "cannot start", "cannot give"] {
            assert!(!line.contains(bad), "`{bad}` in the server log: {line}");
        }
    }
}
