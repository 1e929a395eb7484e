//! Real OpenVPN on loopback: a server that loads `motp.so`, and clients, with a throw-away PKI
//! ([`crate::pki`]).
//!
//! Every process is a direct child held in a guard that kills it on drop, so a failing
//! assertion never leaves an `openvpn` (or its tun device) behind. Each server gets its own port
//! and tun device name, so tests can run in parallel.
//!
//! The process helpers ([`crate::process`]), the PKI, the Redis server ([`crate::redis`]) and
//! [`TempDir`] ([`crate::temp`]) are re-exported here, where the tests have always found them.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub use crate::pki::Pki;
use crate::process::run;
pub use crate::process::{free_port, read_log, require, Proc, WAIT};
pub use crate::redis::{require_redis, RedisServer};
pub use crate::temp::TempDir;

/// `openvpn` and `openssl`, for every test that runs OpenVPN.
pub fn require_tools() {
    require(&["openvpn", "openssl"]);
}

/// The `openvpn` binary servers are started with unless [`ServerSpec::openvpn`] names one:
/// this variable's value if set (e.g. a wrapper of scripts/fetch-openvpn.sh), else `openvpn`
/// from `PATH` (the system's).
pub const SERVER_OPENVPN_ENV: &str = "MOTP_TEST_OPENVPN_SERVER";

/// The `openvpn` binary clients are started with unless [`Client::start_with`] names one:
/// this variable's value if set, else `openvpn` from `PATH`.
pub const CLIENT_OPENVPN_ENV: &str = "MOTP_TEST_OPENVPN_CLIENT";

/// `$var` if set and not empty, else `openvpn` (looked up in `PATH`).
pub fn default_openvpn(var: &str) -> PathBuf {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("openvpn"))
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
    /// OpenVPN 2.7's `static-challenge "Enter code" 1 concat`: the client announces `SC:3`
    /// (echo + concat) on its management interface, and the GUI answers with the static
    /// password and the code concatenated, `password "Auth" "<password><code>"`, which the
    /// client sends as it is (no SCRV1). `password` may be empty. 2.7 clients only.
    StaticChallengeConcat {
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
    /// The `>PASSWORD:Need 'Auth' ...` line of a static challenge (`SC:<flags>,<text>`).
    pub prompt: Option<String>,
    proc: Proc,
}

static CLIENT_COUNTER: AtomicU32 = AtomicU32::new(0);

impl Client {
    /// Starts a client with `cert_name`'s certificate; `extra` adds client.conf lines. The
    /// binary is the default of [`CLIENT_OPENVPN_ENV`].
    pub fn start(
        server: &Server,
        pki: &Pki,
        cert_name: &str,
        creds: &Credentials,
        extra: &[&str],
    ) -> Client {
        let openvpn = default_openvpn(CLIENT_OPENVPN_ENV);
        Client::start_with(&openvpn, server, pki, cert_name, creds, extra)
    }

    /// [`Client::start`] with this `openvpn` binary (or a wrapper that execs it).
    pub fn start_with(
        openvpn: &Path,
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
            Credentials::StaticChallenge { .. } | Credentials::StaticChallengeConcat { .. } => {
                let concat = if matches!(creds, Credentials::StaticChallengeConcat { .. }) {
                    " concat"
                } else {
                    ""
                };
                let sock = dir.join(format!("{tag}.sock"));
                let _ = writeln!(
                    conf,
                    "auth-user-pass\nstatic-challenge \"Enter code\" 1{concat}\n\
                     management {} unix\nmanagement-query-passwords",
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
            Command::new(openvpn)
                .arg("--config")
                .arg(&conf_path)
                .arg("--log")
                .arg(&log_path),
        );
        let prompt = match (management, creds) {
            (
                Some(sock),
                Credentials::StaticChallenge {
                    username,
                    password,
                    code,
                },
            ) => {
                let answer = format!(
                    "SCRV1:{}:{}",
                    b64(password.as_bytes()),
                    b64(code.as_bytes())
                );
                Some(answer_static_challenge(&sock, username, &answer))
            }
            (
                Some(sock),
                Credentials::StaticChallengeConcat {
                    username,
                    password,
                    code,
                },
            ) => Some(answer_static_challenge(
                &sock,
                username,
                &format!("{password}{code}"),
            )),
            (Some(sock), Credentials::CrText { code, .. }) => {
                answer_crtext(&sock, code);
                None
            }
            _ => None,
        };
        Client {
            log_path,
            prompt,
            proc,
        }
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

/// [`login`] with this `openvpn` binary as the client.
pub fn login_with(
    openvpn: &Path,
    server: &Server,
    pki: &Pki,
    cert_name: &str,
    creds: &Credentials,
) -> Outcome {
    let mut client = Client::start_with(openvpn, server, pki, cert_name, creds, &[]);
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

/// Plays the user (and the GUI) at the client's management interface for a static
/// challenge: sends `username` and `answer` (an SCRV1 string, or for `concat` the password and
/// code as typed). Returns the prompt line (`...SC:<flags>,<text>`).
fn answer_static_challenge(sock: &Path, username: &str, answer: &str) -> String {
    let mut m = Management::connect(sock);
    let prompt = m.wait_for(">PASSWORD:Need 'Auth' username/password SC:");
    m.send(&format!("username \"Auth\" \"{username}\""));
    m.wait_for("SUCCESS: 'Auth' username");
    m.send(&format!("password \"Auth\" \"{answer}\""));
    m.wait_for("SUCCESS: 'Auth' password");
    prompt
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
