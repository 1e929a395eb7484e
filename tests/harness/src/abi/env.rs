//! [`Env`]: the `envp` of one plugin call, and [`Env::openvpn_auth`], what OpenVPN 2.6 passes at
//! `AUTH_USER_PASS_VERIFY`.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{path_bytes, OVPN_VERSION};

/// The `envp` of one plugin call: `name=value` entries in order (an entry may also be raw bytes
/// without `=`, as a hostile or buggy host might pass).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    pub(super) entries: Vec<Vec<u8>>,
}

impl Env {
    pub fn new() -> Env {
        Env::default()
    }

    pub fn from_pairs<V: AsRef<[u8]>>(pairs: &[(&str, V)]) -> Env {
        let mut env = Env::new();
        for (name, value) in pairs {
            env.push(name, value);
        }
        env
    }

    /// What OpenVPN 2.6.14 passes at `AUTH_USER_PASS_VERIFY` for a client whose certificate CN is
    /// `username`: username and password first, then the certificate, address, deferral files,
    /// peer info and general variables. The three deferral files are created, empty, in
    /// `tmp_dir` (OpenVPN creates them in `--tmp-dir`).
    pub fn openvpn_auth(tmp_dir: &Path, username: &str, password: impl AsRef<[u8]>) -> Env {
        static FILES: AtomicU64 = AtomicU64::new(0);
        let n = FILES.fetch_add(1, Ordering::Relaxed);
        let file = |kind: &str| {
            let path = tmp_dir.join(format!(
                "openvpn_{kind}_{:016x}{:016x}.tmp",
                std::process::id(),
                n
            ));
            std::fs::write(&path, b"").unwrap_or_else(|e| {
                panic!("cannot create {}: {e}", path.display());
            });
            path
        };
        let control = file("acf");
        let pending = file("apf");
        let reason = file("afr");

        let mut env = Env::new();
        env.push("username", username)
            .push("password", password)
            .push("common_name", username)
            .push("X509_0_CN", username)
            .push("X509_0_O", "Example VPN")
            .push("X509_1_CN", "Example VPN CA")
            .push("X509_1_O", "Example VPN")
            .push("tls_id_0", format!("CN={username}, O=Example VPN"))
            .push("tls_id_1", "CN=Example VPN CA, O=Example VPN")
            .push("tls_serial_0", "161793207837393437474126390238373920551")
            .push(
                "tls_serial_hex_0",
                "79:b8:3e:0f:6a:3c:9e:47:15:0c:77:dc:1c:27:49:27",
            )
            .push("tls_serial_1", "501916426216823452117217373216112338458")
            .push(
                "tls_serial_hex_1",
                "7a:0c:4f:32:b5:e1:2e:55:a0:c4:65:f1:0b:9e:1d:1a",
            )
            .push(
                "tls_digest_0",
                "5e:84:5a:0d:3b:5e:cd:2a:9b:22:3f:c8:3b:1a:ab:6d:58:4b:89:c2",
            )
            .push(
                "tls_digest_sha256_0",
                "a1:0b:9f:6f:53:88:62:9c:49:8f:0e:6b:6c:40:91:7a:2c:1b:f4:13:22:8d:7e:6f:0c:\
                 9a:f1:3c:57:21:0d:94",
            )
            .push(
                "tls_digest_1",
                "0d:27:bb:f9:66:e0:5a:8c:2f:70:b4:19:43:6e:d0:9e:3c:5a:71:18",
            )
            .push(
                "tls_digest_sha256_1",
                "3f:41:c2:08:9d:72:e5:6b:b0:5e:13:a4:8c:27:f9:60:11:de:4b:93:7a:c8:06:52:e1:\
                 b7:2d:08:9f:44:c6:1e",
            )
            .push("untrusted_ip", "192.0.2.10")
            .push("untrusted_port", "51234")
            .push("auth_control_file", path_bytes(&control))
            .push("auth_pending_file", path_bytes(&pending))
            .push("auth_failed_reason_file", path_bytes(&reason))
            .push("IV_VER", OVPN_VERSION)
            .push("IV_PLAT", "linux")
            .push("IV_PLAT_VER", "6.1.0-28-amd64")
            .push("IV_TCPNL", "1")
            .push("IV_MTU", "1600")
            .push("IV_NCP", "2")
            .push("IV_CIPHERS", "AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305")
            .push("IV_PROTO", "990")
            .push("IV_LZ4", "1")
            .push("IV_LZ4v2", "1")
            .push("IV_LZO", "1")
            .push("IV_COMP_STUB", "1")
            .push("IV_COMP_STUBv2", "1")
            .push("IV_HWADDR", "02:00:5e:10:00:01")
            .push("IV_SSL", "OpenSSL_3.0.17_1_Jul_2025")
            .push("script_type", "user-pass-verify")
            .push("config", "/etc/openvpn/server/server.conf")
            .push("daemon", "0")
            .push("daemon_log_redirect", "0")
            .push("daemon_start_time", "1764316800")
            .push("daemon_pid", "4242")
            .push("proto_1", "udp")
            .push("local_port_1", "1194")
            .push("remote_port_1", "1194")
            .push("dev", "tun0")
            .push("verb", "3")
            .push("tun_mtu", "1500")
            .push("ifconfig_local", "10.8.0.1")
            .push("ifconfig_netmask", "255.255.255.0")
            .push("script_context", "init");
        env
    }

    /// Appends `name=value` (even if `name` is already present).
    pub fn push(&mut self, name: &str, value: impl AsRef<[u8]>) -> &mut Env {
        let mut entry = Vec::with_capacity(name.len() + 1 + value.as_ref().len());
        entry.extend_from_slice(name.as_bytes());
        entry.push(b'=');
        entry.extend_from_slice(value.as_ref());
        self.entries.push(entry);
        self
    }

    /// Appends an entry verbatim (it need not contain `=`).
    pub fn push_raw(&mut self, entry: impl Into<Vec<u8>>) -> &mut Env {
        self.entries.push(entry.into());
        self
    }

    /// Replaces the value of the first `name=` entry in place, or appends one.
    pub fn set(&mut self, name: &str, value: impl AsRef<[u8]>) -> &mut Env {
        let position = self.position(name);
        let mut entry = name.as_bytes().to_vec();
        entry.push(b'=');
        entry.extend_from_slice(value.as_ref());
        match position {
            Some(i) => self.entries[i] = entry,
            None => self.entries.push(entry),
        }
        self
    }

    /// Removes every `name=` entry.
    pub fn remove(&mut self, name: &str) -> &mut Env {
        self.entries.retain(|e| !is_entry_for(e, name));
        self
    }

    /// [`Env::set`], by value.
    pub fn with(mut self, name: &str, value: impl AsRef<[u8]>) -> Env {
        self.set(name, value);
        self
    }

    /// [`Env::remove`], by value.
    pub fn without(mut self, name: &str) -> Env {
        self.remove(name);
        self
    }

    /// The value of the first `name=` entry.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.position(name)
            .map(|i| &self.entries[i][name.len() + 1..])
    }

    pub fn entries(&self) -> &[Vec<u8>] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `auth_failed_reason_file` this env names, if any.
    pub fn auth_failed_reason_file(&self) -> Option<PathBuf> {
        self.get("auth_failed_reason_file")
            .map(|p| PathBuf::from(std::ffi::OsStr::from_bytes(p)))
    }

    /// What the plugin wrote to `auth_failed_reason_file` (empty if nothing).
    pub fn client_reason(&self) -> String {
        let path = self
            .auth_failed_reason_file()
            .expect("this env has an auth_failed_reason_file");
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    }

    /// The `auth_control_file` this env names, if any.
    pub fn auth_control_file(&self) -> Option<PathBuf> {
        self.get("auth_control_file")
            .map(|p| PathBuf::from(std::ffi::OsStr::from_bytes(p)))
    }

    /// The `auth_pending_file` this env names, if any.
    pub fn auth_pending_file(&self) -> Option<PathBuf> {
        self.get("auth_pending_file")
            .map(|p| PathBuf::from(std::ffi::OsStr::from_bytes(p)))
    }

    /// The deferred answer: `Some(true)` once `1` is the first byte of `auth_control_file`,
    /// `Some(false)` for `0`, `None` if neither arrived within `timeout`.
    pub fn wait_for_control(&self, timeout: std::time::Duration) -> Option<bool> {
        let path = self
            .auth_control_file()
            .expect("this env has an auth_control_file");
        let start = std::time::Instant::now();
        loop {
            match std::fs::read(&path).ok().and_then(|b| b.first().copied()) {
                Some(b'1') => return Some(true),
                Some(b'0') => return Some(false),
                _ if start.elapsed() > timeout => return None,
                _ => std::thread::sleep(std::time::Duration::from_micros(200)),
            }
        }
    }

    /// The first byte of `auth_control_file` now (`None` while nothing is written).
    pub fn control_now(&self) -> Option<u8> {
        let path = self.auth_control_file()?;
        std::fs::read(path).ok().and_then(|b| b.first().copied())
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.entries.iter().position(|e| is_entry_for(e, name))
    }
}

fn is_entry_for(entry: &[u8], name: &str) -> bool {
    entry.len() > name.len() && entry.starts_with(name.as_bytes()) && entry[name.len()] == b'='
}
