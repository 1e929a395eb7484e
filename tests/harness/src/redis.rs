//! A private `redis-server` for the tests (plain, persistent, or with a TLS port).

use std::fmt::Write as _;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::process::{free_port, require, run, Proc, WAIT};

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
