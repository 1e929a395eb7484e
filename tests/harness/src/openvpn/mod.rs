//! Real OpenVPN on loopback: a server that loads `motp.so`, and clients, with a throw-away PKI
//! ([`crate::pki`]).
//!
//! Every process is a direct child held in a guard that kills it on drop, so a failing
//! assertion never leaves an `openvpn` (or its tun device) behind. Each server gets its own port
//! and tun device name, so tests can run in parallel.
//!
//! - `server`: [`ServerSpec`] and the running [`Server`].
//! - `debian_unit`: Debian 12's `openvpn-server@.service` emulated without systemd
//!   ([`debian_unit_launcher`], [`tasks_of_uid`]).
//! - `client`: [`Credentials`], [`Client`], its [`Outcome`], [`login`].
//! - `management`: a client's management interface, answered as the user and the GUI would.
//!
//! Their public items are re-exported here. The process helpers ([`crate::process`]), the PKI,
//! the Redis server ([`crate::redis`]) and [`TempDir`] ([`crate::temp`]) are re-exported here
//! too, where the tests have always found them.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod client;
mod debian_unit;
mod management;
mod server;

pub use client::{login, login_with, Client, Credentials, Outcome};
pub use debian_unit::{
    debian_unit_launcher, debian_unit_launcher_with_nproc, tasks_of_uid, DEBIAN_UNIT_CAPABILITIES,
    DEBIAN_UNIT_NPROC,
};
pub use server::{Server, ServerSpec};

pub use crate::pki::Pki;
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
