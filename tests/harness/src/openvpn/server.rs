//! The server: [`ServerSpec`] (how to start one) and [`Server`] (a running `openvpn` with the
//! plugin loaded, on a port and tun device of its own).

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{default_openvpn, wait_for_log, Proto, SERVER_OPENVPN_ENV};
use crate::pki::Pki;
use crate::process::{free_port, read_log, run, Proc};

/// How to start a server.
pub struct ServerSpec<'a> {
    pub pki: &'a Pki,
    pub plugin: PathBuf,
    pub motp_config: PathBuf,
    pub proto: Proto,
    /// Extra server.conf lines, e.g. `auth-gen-token`, `user nobody`.
    pub extra: Vec<String>,
    /// Environment for the server process (e.g. the plugin's debug clock hook).
    pub env: Vec<(String, String)>,
    /// Pre-create the tun device as a persistent one owned by this `(user, group)`, so a server
    /// that dropped privileges can reopen it after SIGHUP without CAP_NET_ADMIN. Removed when
    /// the server is dropped.
    pub tun_owner: Option<(String, String)>,
    /// Run with `--daemon` (and `--writepid`): OpenVPN forks, the started process exits.
    pub daemon: bool,
    /// Commands `openvpn` is started through, outermost first, e.g. [`debian_unit_launcher`].
    /// Each must exec the next (as `prlimit CMD` and `setpriv CMD` do), so the started process
    /// is `openvpn` itself and signals reach it. Empty: `openvpn` is started directly.
    ///
    /// [`debian_unit_launcher`]: super::debian_unit_launcher
    pub launcher: Vec<String>,
    /// `openvpn` command-line options before `--config` (so server.conf can override them),
    /// e.g. the `--status` a systemd unit passes.
    pub args: Vec<String>,
    /// The `openvpn` binary (or a wrapper that execs it) to start; `None`: the default of
    /// [`SERVER_OPENVPN_ENV`].
    pub openvpn: Option<PathBuf>,
}

impl<'a> ServerSpec<'a> {
    pub fn new(pki: &'a Pki, plugin: PathBuf, motp_config: PathBuf) -> ServerSpec<'a> {
        ServerSpec {
            pki,
            plugin,
            motp_config,
            proto: Proto::Udp,
            extra: Vec::new(),
            env: Vec::new(),
            tun_owner: None,
            daemon: false,
            launcher: Vec::new(),
            args: Vec::new(),
            openvpn: None,
        }
    }
}

/// A running `openvpn` server with the plugin loaded.
pub struct Server {
    pub port: u16,
    pub proto: Proto,
    pub log_path: PathBuf,
    pub dir: PathBuf,
    proc: Proc,
    _tun: Option<PersistentTun>,
}

/// A persistent tun device, deleted on drop (after the server using it was killed).
struct PersistentTun {
    name: String,
}

impl PersistentTun {
    fn create(name: &str, user: &str, group: &str) -> PersistentTun {
        run(Command::new("ip").args([
            "tuntap", "add", "dev", name, "mode", "tun", "user", user, "group", group,
        ]));
        PersistentTun {
            name: name.to_owned(),
        }
    }
}

impl Drop for PersistentTun {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.name])
            .status();
    }
}

static SUBNET: AtomicU32 = AtomicU32::new(0);

impl Server {
    /// Writes server.conf into `dir` and starts the server; returns once it is serving, or the
    /// error log if it stopped instead.
    pub fn start(dir: &Path, spec: &ServerSpec) -> Result<Server, String> {
        let port = free_port();
        // OpenVPN writes its per-login temp files here, also after dropping privileges.
        let tmp = dir.join(format!("tmp-{port}"));
        fs::create_dir_all(&tmp).expect("create tmp-dir");
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777)).expect("chmod tmp-dir");
        let tun = spec
            .tun_owner
            .as_ref()
            .map(|(user, group)| PersistentTun::create(&format!("e2e{port}"), user, group));
        let subnet = 10 + SUBNET.fetch_add(1, Ordering::Relaxed) % 200;
        let pki = spec.pki;
        let mut conf = String::new();
        let _ = writeln!(
            conf,
            "mode server\ntls-server\nproto {proto}\nlocal 127.0.0.1\nport {port}\n\
             dev e2e{port}\ndev-type tun\ntopology subnet\nserver 10.{a}.{b}.0 255.255.255.0\n\
             ifconfig-noexec\nroute-noexec\n\
             ca {ca}\ncert {cert}\nkey {key}\ndh none\ntls-crypt {tc}\n\
             keepalive 10 60\nhand-window 90\nverb 4\nmute 0\n\
             tmp-dir {dir}\nplugin {so} {cfg}",
            proto = spec.proto.server(),
            a = (port % 200) + 20,
            b = subnet,
            ca = pki.file("ca.crt"),
            cert = pki.file("server.crt"),
            key = pki.file("server.key"),
            tc = pki.file("tls-crypt.key"),
            dir = tmp.display(),
            so = spec.plugin.display(),
            cfg = spec.motp_config.display(),
        );
        for line in &spec.extra {
            let _ = writeln!(conf, "{line}");
        }
        let conf_path = dir.join(format!("server-{port}.conf"));
        fs::write(&conf_path, conf).expect("write server.conf");
        let log_path = dir.join(format!("server-{port}.log"));
        let openvpn = spec
            .openvpn
            .clone()
            .unwrap_or_else(|| default_openvpn(SERVER_OPENVPN_ENV));
        let mut cmd = match spec.launcher.split_first() {
            Some((first, rest)) => {
                let mut cmd = Command::new(first);
                cmd.args(rest).arg(&openvpn);
                cmd
            }
            None => Command::new(&openvpn),
        };
        cmd.args(&spec.args)
            .arg("--config")
            .arg(&conf_path)
            .arg("--log")
            .arg(&log_path)
            .current_dir(dir);
        for (k, v) in &spec.env {
            cmd.env(k, v);
        }
        let pid_file = dir.join(format!("server-{port}.pid"));
        if spec.daemon {
            cmd.arg("--daemon").arg("--writepid").arg(&pid_file);
        }
        let mut proc = Proc::spawn(&mut cmd);
        if spec.daemon && !proc.follow_daemon(&pid_file) {
            return Err(format!(
                "openvpn --daemon did not leave a daemon behind\n{}",
                read_log(&log_path)
            ));
        }
        let (ready, log) = wait_for_log(&mut proc, &log_path, |l| {
            l.contains("Initialization Sequence Completed")
        });
        if !ready {
            return Err(log);
        }
        Ok(Server {
            port,
            proto: spec.proto,
            log_path,
            dir: dir.to_owned(),
            proc,
            _tun: tun,
        })
    }

    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }

    /// Sends SIGHUP and waits until the reloaded server serves again.
    pub fn sighup(&mut self) {
        let before = self
            .log()
            .matches("Initialization Sequence Completed")
            .count();
        self.proc.signal("HUP");
        let log_path = self.log_path.clone();
        let (ok, log) = wait_for_log(&mut self.proc, &log_path, |l| {
            l.matches("Initialization Sequence Completed").count() > before
        });
        assert!(ok, "server did not come back after SIGHUP:\n{log}");
    }

    /// [`Server::sighup`] that reports instead of panicking: `Err(log)` when the server did
    /// not serve again (it exited, e.g. a plugin that failed to reopen, or the wait passed).
    pub fn try_sighup(&mut self) -> Result<(), String> {
        let completed = |l: &str| l.matches("Initialization Sequence Completed").count();
        let before = completed(&self.log());
        self.proc.signal("HUP");
        let log_path = self.log_path.clone();
        let (ok, log) = wait_for_log(&mut self.proc, &log_path, |l| completed(l) > before);
        if ok {
            Ok(())
        } else {
            Err(log)
        }
    }

    pub fn is_running(&mut self) -> bool {
        !self.proc.has_exited()
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The `PLUGIN motp:` lines of the server log.
    pub fn plugin_lines(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains("PLUGIN motp:"))
            .map(str::to_owned)
            .collect()
    }
}
