//! Clients: [`Credentials`] (how one authenticates), [`Client`] (a running `openvpn` client),
//! its [`Outcome`], and [`login`] (one attempt).

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use super::management::{answer_crtext, answer_static_challenge};
use super::{b64, default_openvpn, wait_for_log, Server, CLIENT_OPENVPN_ENV};
use crate::pki::Pki;
use crate::process::{read_log, Proc};

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
