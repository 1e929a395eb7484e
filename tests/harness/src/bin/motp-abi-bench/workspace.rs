//! Users and configs.

use std::path::{Path, PathBuf};

use motp_harness::openvpn::{write_motp_config, TempDir};
use motp_harness::synthetic::{pin, secret};

use crate::options::Backend;
use crate::RADIUS;

/// One extra user in every config, never timed: accepted once after each open to warm up the
/// accept path (its code, the store) before a batch.
pub const WARM_USER: &str = "w0000000";
pub const WARM_INDEX: usize = 99_999_999;

pub fn user_name(i: usize) -> String {
    format!("u{i:07}")
}

/// Same length as a user name, never in the table.
pub fn unknown_name(i: usize) -> String {
    format!("x{i:07}")
}

pub fn valid_code(i: usize, now: i64) -> String {
    motp_harness::synthetic::code(i, now)
}

pub fn wrong_code(i: usize, now: i64) -> String {
    motp_harness::synthetic::wrong_code(i, now, RADIUS)
}

/// The `[users.*]` tables for `n` users (reused by every config of that size).
pub fn users_toml(n: usize) -> String {
    let mut text = String::with_capacity(n * 64);
    for i in 0..n {
        text.push_str(&format!(
            "[users.{}]\nsecret = \"{}\"\npin = \"{}\"\n",
            user_name(i),
            secret(i),
            pin(i)
        ));
    }
    text
}

/// `max_failures_per_ip = <max>` if this build knows the key (checked with the crate's own
/// parser, built from the same source as the `.so`), else nothing.
pub fn no_ip_limit() -> &'static str {
    static LINE: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    LINE.get_or_init(|| {
        let line = "max_failures_per_ip = 4294967295\n";
        match motp::config::Config::parse(Path::new("probe.toml"), line) {
            Ok(_) => line,
            Err(_) => "",
        }
    })
}

/// A stable client address per user index (10.0.0.0/8), as if each user had their own.
pub fn address(i: usize) -> (String, u16) {
    let n = (i as u32) % (1 << 24);
    (
        format!("10.{}.{}.{}", n >> 16, (n >> 8) & 0xff, n & 0xff),
        40_000 + (i % 20_000) as u16,
    )
}

pub struct Workspace {
    /// motp.toml files and the per-call reason files: `$TMPDIR`, like OpenVPN's `--tmp-dir`.
    pub dir: TempDir,
    /// The local backend's state directories: on disk, like /var/lib/openvpn-motp.
    pub state: PathBuf,
    pub files: usize,
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

impl Workspace {
    /// Writes a motp.toml (0640) and returns its path. `local` names a fresh state directory.
    /// The per-address failure limit, where this build has one, is lifted like the per-user
    /// one, so that wrong codes stay wrong codes (the attacker test keeps the defaults).
    pub fn config(
        &mut self,
        backend: Backend,
        max_failures: u32,
        lockout: u64,
        users: &str,
    ) -> PathBuf {
        self.config_with(backend, max_failures, lockout, users, no_ip_limit())
    }

    pub fn config_with(
        &mut self,
        backend: Backend,
        max_failures: u32,
        lockout: u64,
        users: &str,
        extra: &str,
    ) -> PathBuf {
        self.files += 1;
        let n = self.files;
        let state = match backend {
            Backend::Memory => "[state]\nbackend = \"memory\"\n".to_owned(),
            Backend::Local => {
                let dir = self.state.join(format!("state-{n}"));
                format!(
                    "[state]\nbackend = \"local\"\ndir = \"{}\"\n",
                    dir.display()
                )
            }
        };
        let path = self.dir.path().join(format!("motp-{n}.toml"));
        let mut text = String::with_capacity(users.len() + 256);
        text.push_str(&format!(
            "# motp-abi-bench\nmax_failures = {max_failures}\nlockout_secs = {lockout}\n{extra}{state}\n"
        ));
        text.push_str(users);
        text.push_str(&format!(
            "[users.{WARM_USER}]\nsecret = \"{}\"\npin = \"{}\"\n",
            secret(WARM_INDEX),
            pin(WARM_INDEX)
        ));
        write_motp_config(&path, &text);
        path
    }
}
