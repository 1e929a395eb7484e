//! Real OpenVPN on loopback: a throw-away PKI, a server that loads `motp.so`, and clients.
//!
//! Every process is a direct child held in a guard that kills it on drop, so a failing
//! assertion never leaves an `openvpn` (or its tun device) behind. Each server gets its own port
//! and tun device name, so tests can run in parallel.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long any single wait for OpenVPN may take before the test gives up.
pub const WAIT: Duration = Duration::from_secs(30);

/// Fails early, with the fix, when one of these Debian packages' commands is missing (each
/// tool here is named like its package).
pub fn require(tools: &[&str]) {
    for tool in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            found,
            "`{tool}` is not installed; run: apt-get install -y {}",
            tools.join(" ")
        );
    }
}

/// `openvpn` and `openssl`, for every test that runs OpenVPN.
pub fn require_tools() {
    require(&["openvpn", "openssl"]);
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("motp-{label}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create temp dir");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
        TempDir { path }
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("MOTP_KEEP_TEMP").is_none() {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate, one client certificate per name, and a tls-crypt key.
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    /// EC P-256 keys: the whole PKI takes well under a second.
    pub fn create(dir: &Path, clients: &[&str]) -> Pki {
        let dir = dir.join("pki");
        fs::create_dir_all(&dir).expect("create pki dir");
        let openssl = |args: &[&str]| run(Command::new("openssl").args(args).current_dir(&dir));
        openssl(&[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "ca.key",
        ]);
        openssl(&[
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-days",
            "2",
            "-subj",
            "/CN=motp-test-ca",
            "-out",
            "ca.crt",
        ]);
        let mut names = vec![("server", true)];
        names.extend(clients.iter().map(|c| (*c, false)));
        for (name, is_server) in names {
            let ext = if is_server {
                "extendedKeyUsage=serverAuth"
            } else {
                "extendedKeyUsage=clientAuth"
            };
            fs::write(
                dir.join(format!("{name}.ext")),
                format!("{ext}\nkeyUsage=digitalSignature\n"),
            )
            .expect("write ext");
            openssl(&[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                &format!("{name}.key"),
            ]);
            openssl(&[
                "req",
                "-new",
                "-key",
                &format!("{name}.key"),
                "-subj",
                &format!("/CN={name}"),
                "-out",
                &format!("{name}.csr"),
            ]);
            openssl(&[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.crt"),
            ]);
        }
        run(Command::new("openvpn")
            .args(["--genkey", "secret"])
            .arg(dir.join("tls-crypt.key")));
        for entry in fs::read_dir(&dir).expect("read pki dir") {
            let path = entry.expect("entry").path();
            let mode = if path.extension().is_some_and(|e| e == "key") {
                0o600
            } else {
                0o644
            };
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod pki file");
        }
        Pki { dir }
    }

    pub fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

/// A loopback port free right now for both UDP and TCP.
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A child process killed (and reaped) on drop; or, once [`Proc::follow_daemon`] was called,
/// the daemon it forked (`--daemon`: the started process exits, its child serves).
pub struct Proc {
    child: Child,
    daemon: Option<u32>,
}

impl Proc {
    pub fn spawn(cmd: &mut Command) -> Proc {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        Proc {
            child,
            daemon: None,
        }
    }
    /// From now on stands for the daemon whose pid `pid_file` holds (the daemon writes it
    /// after the started process exited). `false` if the started process failed or no pid
    /// appeared within the harness's wait.
    pub fn follow_daemon(&mut self, pid_file: &Path) -> bool {
        if !self.child.wait().is_ok_and(|status| status.success()) {
            return false;
        }
        let start = Instant::now();
        while start.elapsed() < WAIT {
            let pid = fs::read_to_string(pid_file)
                .ok()
                .and_then(|text| text.trim().parse::<u32>().ok());
            if pid.is_some() {
                self.daemon = pid;
                return true;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        false
    }
    pub fn pid(&self) -> u32 {
        self.daemon.unwrap_or_else(|| self.child.id())
    }
    pub fn has_exited(&mut self) -> bool {
        match self.daemon {
            // Reparented to init, so never reaped by us: gone, or a zombie nobody reaped.
            Some(pid) => fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|stat| {
                    stat.rsplit(')')
                        .next()
                        .is_some_and(|rest| rest.trim_start().starts_with('Z'))
                })
                .unwrap_or(true),
            None => matches!(self.child.try_wait(), Ok(Some(_))),
        }
    }
    pub fn signal(&self, signal: &str) {
        run(Command::new("kill").args([&format!("-{signal}"), &self.pid().to_string()]));
    }
    pub fn kill(&mut self) {
        if let Some(pid) = self.daemon {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while !self.has_exited() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads a log file as text (missing file → empty).
pub fn read_log(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Waits until `done(log)` holds or the process exits or `WAIT` passes; returns the final log.
fn wait_for_log(proc: &mut Proc, log: &Path, done: impl Fn(&str) -> bool) -> (bool, String) {
    let start = Instant::now();
    loop {
        let text = read_log(log);
        if done(&text) {
            return (true, text);
        }
        if proc.has_exited() || start.elapsed() > WAIT {
            return (false, read_log(log));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Udp,
    Tcp,
}

impl Proto {
    fn server(self) -> &'static str {
        match self {
            Proto::Udp => "udp4",
            Proto::Tcp => "tcp4-server",
        }
    }
    fn client(self) -> &'static str {
        match self {
            Proto::Udp => "udp4",
            Proto::Tcp => "tcp4-client",
        }
    }
}

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
    pub launcher: Vec<String>,
    /// `openvpn` command-line options before `--config` (so server.conf can override them),
    /// e.g. the `--status` a systemd unit passes.
    pub args: Vec<String>,
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
        }
    }
}

/// `LimitNPROC=` of Debian 12's `openvpn-server@.service`.
pub const DEBIAN_UNIT_NPROC: u32 = 10;

/// `CapabilityBoundingSet=` of Debian 12's `openvpn-server@.service`, in `setpriv`'s names
/// (no `chown`, no `fowner`).
pub const DEBIAN_UNIT_CAPABILITIES: &[&str] = &[
    "ipc_lock",
    "net_admin",
    "net_bind_service",
    "net_raw",
    "setgid",
    "setuid",
    "setpcap",
    "sys_chroot",
    "dac_override",
    "audit_write",
];

/// [`ServerSpec::launcher`] emulating Debian's `openvpn-server@.service` without systemd:
/// `prlimit --nproc=10:10 setpriv --bounding-set -all,+ipc_lock,... openvpn ...`. Root keeps
/// only the unit's capabilities across the exec of `openvpn` (its permitted set becomes the
/// bounding set), and every task of the runtime user (counted over the whole machine, threads
/// included) beyond [`DEBIAN_UNIT_NPROC`] fails to start once OpenVPN dropped root. Only the
/// capability bounding set and `LimitNPROC` are emulated (not ProtectSystem, ProtectHome or
/// PrivateTmp). Needs `prlimit` and `setpriv` (util-linux).
pub fn debian_unit_launcher() -> Vec<String> {
    debian_unit_launcher_with_nproc(DEBIAN_UNIT_NPROC)
}

/// [`debian_unit_launcher`] with `LimitNPROC=nproc` instead of the unit's
/// [`DEBIAN_UNIT_NPROC`], e.g. a budget too small for the plugin's threads.
pub fn debian_unit_launcher_with_nproc(nproc: u32) -> Vec<String> {
    require(&["prlimit", "setpriv"]);
    let caps: Vec<String> = DEBIAN_UNIT_CAPABILITIES
        .iter()
        .map(|c| format!("+{c}"))
        .collect();
    vec![
        "prlimit".to_owned(),
        format!("--nproc={nproc}:{nproc}"),
        "setpriv".to_owned(),
        "--bounding-set".to_owned(),
        format!("-all,{}", caps.join(",")),
    ]
}

/// The tasks (threads included) whose real uid is `uid`, on the whole machine: what
/// RLIMIT_NPROC counts for that user. One `pid/tid comm` entry each.
pub fn tasks_of_uid(uid: u32) -> Vec<String> {
    let mut tasks = Vec::new();
    let Ok(procs) = fs::read_dir("/proc") else {
        return tasks;
    };
    for proc_entry in procs.flatten() {
        let pid = proc_entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(threads) = fs::read_dir(proc_entry.path().join("task")) else {
            continue;
        };
        for thread in threads.flatten() {
            let Ok(status) = fs::read_to_string(thread.path().join("status")) else {
                continue;
            };
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim().to_owned())
                    .unwrap_or_default()
            };
            let real_uid = field("Uid:")
                .split_whitespace()
                .next()
                .and_then(|u| u.parse::<u32>().ok());
            if real_uid == Some(uid) {
                tasks.push(format!(
                    "{pid}/{} {}",
                    thread.file_name().to_string_lossy(),
                    field("Name:")
                ));
            }
        }
    }
    tasks
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
        let mut cmd = match spec.launcher.split_first() {
            Some((first, rest)) => {
                let mut cmd = Command::new(first);
                cmd.args(rest).arg("openvpn");
                cmd
            }
            None => Command::new("openvpn"),
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

/// The result of one client login attempt.
#[derive(Debug)]
pub struct Outcome {
    pub accepted: bool,
    pub log: String,
}

impl Outcome {
    pub fn rejected(&self) -> bool {
        !self.accepted
            && self
                .log
                .contains("AUTH: Received control message: AUTH_FAILED")
    }
    /// The AUTH_FAILED control message the server sent, if any.
    pub fn auth_failed_message(&self) -> Option<&str> {
        self.log
            .lines()
            .find(|l| l.contains("AUTH_FAILED"))
            .map(str::trim)
    }
}

/// How a client authenticates.
pub enum Credentials<'a> {
    /// `auth-user-pass FILE` (mode 0600).
    File {
        username: &'a str,
        password: &'a str,
    },
    /// `static-challenge "Enter code" 1`, answered through the management socket with
    /// `SCRV1:<b64 password>:<b64 code>`.
    StaticChallenge {
        username: &'a str,
        password: &'a str,
        code: &'a str,
    },
    /// OpenVPN 2.6 pending auth: `auth-user-pass FILE` with `username` and a `placeholder`
    /// password, `setenv IV_SSO crtext` so the client announces crtext, and a management
    /// socket (`management-hold`) on which the harness waits for `>INFOMSG:CR_TEXT:` and
    /// answers `cr-response <base64 code>`, as a GUI would after asking the user.
    CrText {
        username: &'a str,
        placeholder: &'a str,
        code: &'a str,
    },
}

/// A client connection, running until dropped.
pub struct Client {
    pub log_path: PathBuf,
    proc: Proc,
}

static CLIENT_COUNTER: AtomicU32 = AtomicU32::new(0);

impl Client {
    /// Starts a client with `cert_name`'s certificate; `extra` adds client.conf lines.
    pub fn start(
        server: &Server,
        pki: &Pki,
        cert_name: &str,
        creds: &Credentials,
        extra: &[&str],
    ) -> Client {
        let n = CLIENT_COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = &server.dir;
        let tag = format!("client-{}-{n}", server.port);
        let mut conf = format!(
            "client\nproto {proto}\nremote 127.0.0.1 {port}\nnobind\ndev null\nifconfig-noexec\nroute-noexec\n\
             ca {ca}\ncert {cert}\nkey {key}\ntls-crypt {tc}\nremote-cert-tls server\n\
             auth-nocache\nauth-retry none\nconnect-retry 1 1\nconnect-retry-max 1\n\
             server-poll-timeout 20\nverb 4\nmute 0\n",
            proto = server.proto.client(),
            port = server.port,
            ca = pki.file("ca.crt"),
            cert = pki.file(&format!("{cert_name}.crt")),
            key = pki.file(&format!("{cert_name}.key")),
            tc = pki.file("tls-crypt.key"),
        );
        let mut management = None;
        match creds {
            Credentials::File { username, password } => {
                let path = dir.join(format!("{tag}.auth"));
                fs::write(&path, format!("{username}\n{password}\n")).expect("write auth file");
                fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
                    .expect("chmod auth file");
                let _ = writeln!(conf, "auth-user-pass {}", path.display());
            }
            Credentials::CrText {
                username,
                placeholder,
                ..
            } => {
                let path = dir.join(format!("{tag}.auth"));
                fs::write(&path, format!("{username}\n{placeholder}\n")).expect("write auth file");
                fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
                    .expect("chmod auth file");
                let sock = dir.join(format!("{tag}.sock"));
                let _ = writeln!(
                    conf,
                    "auth-user-pass {}\nsetenv IV_SSO crtext\nmanagement {} unix\nmanagement-hold",
                    path.display(),
                    sock.display()
                );
                management = Some(sock);
            }
            Credentials::StaticChallenge { .. } => {
                let sock = dir.join(format!("{tag}.sock"));
                let _ = writeln!(
                    conf,
                    "auth-user-pass\nstatic-challenge \"Enter code\" 1\nmanagement {} unix\n\
                     management-query-passwords",
                    sock.display()
                );
                management = Some(sock);
            }
        }
        for line in extra {
            let _ = writeln!(conf, "{line}");
        }
        let conf_path = dir.join(format!("{tag}.conf"));
        fs::write(&conf_path, conf).expect("write client.conf");
        let log_path = dir.join(format!("{tag}.log"));
        let proc = Proc::spawn(
            Command::new("openvpn")
                .arg("--config")
                .arg(&conf_path)
                .arg("--log")
                .arg(&log_path),
        );
        match (management, creds) {
            (
                Some(sock),
                Credentials::StaticChallenge {
                    username,
                    password,
                    code,
                },
            ) => answer_static_challenge(&sock, username, password, code),
            (Some(sock), Credentials::CrText { code, .. }) => {
                answer_crtext(&sock, code);
            }
            _ => {}
        }
        Client { log_path, proc }
    }

    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }

    /// Waits for the verdict: connection completed, or AUTH_FAILED (or exit / timeout).
    pub fn outcome(&mut self) -> Outcome {
        let log_path = self.log_path.clone();
        let (_, log) = wait_for_log(&mut self.proc, &log_path, |l| {
            l.contains("Initialization Sequence Completed") || l.contains("AUTH_FAILED")
        });
        Outcome {
            accepted: log.contains("Initialization Sequence Completed")
                && !log.contains("AUTH_FAILED"),
            log,
        }
    }

    pub fn is_running(&mut self) -> bool {
        !self.proc.has_exited()
    }
}

/// One login attempt: start a client, wait for the verdict, stop the client.
pub fn login(server: &Server, pki: &Pki, cert_name: &str, creds: &Credentials) -> Outcome {
    let mut client = Client::start(server, pki, cert_name, creds, &[]);
    client.outcome()
}

/// A connection to a client's management interface (as a GUI would hold it).
struct Management {
    sock: PathBuf,
    writer: UnixStream,
    lines: std::io::Lines<BufReader<UnixStream>>,
}

impl Management {
    /// Connects, waiting for the client to open the socket.
    fn connect(sock: &Path) -> Management {
        let start = Instant::now();
        let stream = loop {
            match UnixStream::connect(sock) {
                Ok(s) => break s,
                Err(e) if start.elapsed() > WAIT => {
                    panic!("management socket {} never came up: {e}", sock.display())
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        stream.set_read_timeout(Some(WAIT)).expect("set timeout");
        let writer = stream.try_clone().expect("clone socket");
        Management {
            sock: sock.to_owned(),
            writer,
            lines: BufReader::new(stream).lines(),
        }
    }

    /// Reads lines until one starts with `prefix`, and returns it.
    fn wait_for(&mut self, prefix: &str) -> String {
        loop {
            match self.lines.next() {
                Some(Ok(line)) if line.starts_with(prefix) => return line,
                Some(Ok(_)) => continue,
                _ => panic!(
                    "management interface closed before `{prefix}` on {}",
                    self.sock.display()
                ),
            }
        }
    }

    fn send(&mut self, command: &str) {
        writeln!(self.writer, "{command}")
            .unwrap_or_else(|e| panic!("send to {}: {e}", self.sock.display()));
    }
}

/// Plays the user at the client's management interface for a static challenge.
fn answer_static_challenge(sock: &Path, username: &str, password: &str, code: &str) {
    let mut m = Management::connect(sock);
    m.wait_for(">PASSWORD:Need 'Auth' username/password SC:");
    m.send(&format!("username \"Auth\" \"{username}\""));
    m.wait_for("SUCCESS: 'Auth' username");
    let answer = format!(
        "SCRV1:{}:{}",
        b64(password.as_bytes()),
        b64(code.as_bytes())
    );
    m.send(&format!("password \"Auth\" \"{answer}\""));
    m.wait_for("SUCCESS: 'Auth' password");
}

/// Plays the user (and the GUI) for a crtext prompt: releases the hold, waits for the
/// `CR_TEXT` prompt the server sent, answers it. Returns the prompt line.
fn answer_crtext(sock: &Path, code: &str) -> String {
    let mut m = Management::connect(sock);
    m.wait_for(">HOLD:");
    m.send("hold release");
    let prompt = m.wait_for(">INFOMSG:CR_TEXT:");
    m.send(&format!("cr-response {}", b64(code.as_bytes())));
    // The 2.6 client sends the answer as a control message and confirms nothing here.
    prompt
}

/// Standard base64, as OpenVPN's client encodes SCRV1 fields.
pub fn b64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Writes a motp.toml readable by owner and group only (the plugin refuses world-readable ones).
pub fn write_motp_config(path: &Path, text: &str) {
    fs::write(path, text).expect("write motp.toml");
    fs::set_permissions(path, fs::Permissions::from_mode(0o640)).expect("chmod motp.toml");
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// A private `redis-server` on a loopback port of its own, killed on drop, without
/// persistence unless started with [`RedisServer::start_persistent`]. [`RedisServer::stop`] and
/// [`RedisServer::start_again`] simulate an outage on the same port (a restarted Redis without
/// persistence comes back empty; a persistent one with its data).
pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    proc: Option<Proc>,
    tls: Option<RedisTls>,
    /// `--appendonly yes --appendfsync always` (every write on disk before the reply).
    persistent: bool,
}

/// A TLS port besides the plain one, with a throw-away private CA and a server certificate for
/// 127.0.0.1 signed by it (as a real Redis TLS setup with its own CA).
struct RedisTls {
    port: u16,
    ca_file: PathBuf,
    cert_file: PathBuf,
    key_file: PathBuf,
}

impl RedisTls {
    fn create(dir: &Path) -> RedisTls {
        let file = |name: &str| dir.join(name).display().to_string();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        run(Command::new("openssl")
            .args(["req", "-x509"])
            .args(ec)
            .args([
                "-keyout",
                &file("redis-ca.key"),
                "-out",
                &file("redis-ca.pem"),
            ])
            .args(["-days", "2", "-subj", "/CN=motp test Redis CA"])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]));
        run(Command::new("openssl")
            .args(["req"])
            .args(ec)
            .args(["-keyout", &file("redis.key"), "-out", &file("redis.csr")])
            .args(["-subj", "/CN=127.0.0.1"]));
        fs::write(
            dir.join("redis.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write redis.ext");
        run(Command::new("openssl")
            .args(["x509", "-req", "-in", &file("redis.csr")])
            .args([
                "-CA",
                &file("redis-ca.pem"),
                "-CAkey",
                &file("redis-ca.key"),
            ])
            .args(["-CAcreateserial", "-days", "2"])
            .args(["-extfile", &file("redis.ext"), "-out", &file("redis.crt")]));
        RedisTls {
            port: free_port(),
            ca_file: dir.join("redis-ca.pem"),
            cert_file: dir.join("redis.crt"),
            key_file: dir.join("redis.key"),
        }
    }
}

/// `redis-server`, for the tests that start their own Redis.
pub fn require_redis() {
    require(&["redis-server"]);
}

impl RedisServer {
    /// Starts `redis-server --port <free> --bind 127.0.0.1 --save "" --appendonly no` in `dir`
    /// and waits until it answers PING.
    pub fn start(dir: &Path) -> RedisServer {
        require_redis();
        let mut server = RedisServer {
            port: free_port(),
            dir: dir.to_owned(),
            proc: None,
            tls: None,
            persistent: false,
        };
        server.start_again();
        server
    }

    /// [`RedisServer::start`] with an append-only file synced at every write, so a restart
    /// keeps everything it acknowledged (the setup the docs advise).
    pub fn start_persistent(dir: &Path) -> RedisServer {
        require_redis();
        let mut server = RedisServer {
            port: free_port(),
            dir: dir.to_owned(),
            proc: None,
            tls: None,
            persistent: true,
        };
        server.start_again();
        server
    }

    /// [`RedisServer::start`] with a TLS port too ([`RedisServer::tls_url`]), its certificate
    /// signed by a private CA ([`RedisServer::ca_file`]) that no system trust store holds.
    pub fn start_tls(dir: &Path) -> RedisServer {
        require(&["redis-server", "openssl"]);
        let mut server = RedisServer {
            port: free_port(),
            dir: dir.to_owned(),
            proc: None,
            tls: Some(RedisTls::create(dir)),
            persistent: false,
        };
        server.start_again();
        server
    }

    /// `rediss://127.0.0.1:<tls port>/0` (a server from [`RedisServer::start_tls`]).
    pub fn tls_url(&self) -> String {
        let tls = self.tls.as_ref().expect("started with start_tls");
        format!("rediss://127.0.0.1:{}/0", tls.port)
    }

    /// The private CA's certificate (PEM) that signed the TLS port's certificate.
    pub fn ca_file(&self) -> &Path {
        &self.tls.as_ref().expect("started with start_tls").ca_file
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server (SIGKILL): clients see connection resets and refusals.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// Starts it again on the same port (empty without persistence) and waits for PING.
    pub fn start_again(&mut self) {
        self.stop();
        let start = Instant::now();
        let persistence: &[&str] = if self.persistent {
            &[
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ]
        } else {
            &["--save", "", "--appendonly", "no"]
        };
        loop {
            let proc = Proc::spawn(
                Command::new("redis-server")
                    .args(["--port", &self.port.to_string()])
                    .args(["--bind", "127.0.0.1"])
                    .args(persistence)
                    .args(["--protected-mode", "no", "--loglevel", "warning"])
                    .args(["--dir", &self.dir.display().to_string()])
                    .args(self.tls.iter().flat_map(|tls| {
                        [
                            "--tls-port".to_owned(),
                            tls.port.to_string(),
                            "--tls-cert-file".to_owned(),
                            tls.cert_file.display().to_string(),
                            "--tls-key-file".to_owned(),
                            tls.key_file.display().to_string(),
                            "--tls-ca-cert-file".to_owned(),
                            tls.ca_file.display().to_string(),
                            "--tls-auth-clients".to_owned(),
                            "no".to_owned(),
                        ]
                    })),
            );
            self.proc = Some(proc);
            let ping_start = Instant::now();
            while ping_start.elapsed() < Duration::from_secs(5) {
                if self.ping() {
                    return;
                }
                if self.proc.as_mut().is_some_and(Proc::has_exited) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // The port may still be in TIME_WAIT or taken; retry briefly.
            self.stop();
            assert!(
                start.elapsed() < WAIT,
                "redis-server did not come up on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Whether the server answers `PING` with `+PONG`.
    pub fn ping(&self) -> bool {
        self.command(&["PING"])
            .is_some_and(|r| r.starts_with("+PONG"))
    }

    /// Sends one command (RESP array of bulk strings); returns the first reply line.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        use std::io::Read;
        use std::net::TcpStream;
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            let _ = write!(req, "${}\r\n{a}\r\n", a.len());
        }
        stream.write_all(req.as_bytes()).ok()?;
        let mut buf = [0u8; 4096];
        let n = stream.read(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
