//! Shared helpers of the `motpctl` CLI tests (`tests/cli_*.rs`), which run the real `motpctl`
//! binary on temporary files: every subcommand, its error paths, and the round trips an admin
//! does (enrol then verify, resync, import).
//!
//! Each test file uses only some of these.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use motp_harness::temp::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_motpctl");
/// A fixed "now" for every command that reads the clock (the hidden --now), so no test depends
/// on where in a 10-second step it runs.
pub const NOW: i64 = 1_700_000_005;
pub const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

/// The test's own helpers on the harness's [`TempDir`].
pub trait TempDirExt {
    /// Writes a config with the given mode.
    fn config(&self, text: &str, mode: u32) -> PathBuf;
}

impl TempDirExt for TempDir {
    fn config(&self, text: &str, mode: u32) -> PathBuf {
        let path = self.join("motp.toml");
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

pub fn run_with_stdin(args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("motpctl runs");
    // A command that refuses before reading its input may exit first: a broken pipe then.
    match child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        written => written.unwrap(),
    }
    let out: Output = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().expect("exited"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

pub fn run(args: &[&str]) -> Run {
    run_with_stdin(args, "")
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub fn code_at(secret: &str, pin: &str, at: i64) -> String {
    let r = run(&[
        "code",
        "--secret",
        secret,
        "--pin",
        pin,
        "--at",
        &at.to_string(),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    r.stdout.trim().to_owned()
}

pub const NOW_ARG: &str = "--now=1700000005";

pub const COMMENTED: &str = "\
# motp.toml for the office VPN
window_secs = 180 # three minutes

# --- users ---

# Alice's phone (Aegis)
[users.alice]
secret = \"0123456789abcdef\"
pin = \"1234\"

# Bob: laptop certificate bob-laptop
[users.bob]
secret = \"fedcba9876543210\"
pin = \"4321\"
common_name = \"bob-laptop\"

[state]
backend = \"memory\"
# end of file
";

pub const CLEAN: &str = "\
[users.alice]
secret = \"0123456789abcdef\"
pin = \"1234\"

[users.bob]
secret = \"fedcba9876543210\"
pin = \"4321\"

[state]
backend = \"memory\"
";

pub fn run_id_un(uid: u32) -> String {
    let out = Command::new("id").args(["-un", &uid.to_string()]).output();
    match out {
        Ok(o) if o.status.success() => String::from_utf8(o.stdout).unwrap().trim().to_owned(),
        _ => "root".to_owned(),
    }
}

/// A config whose local state store lives in the test directory.
pub fn local_state_config(dir: &TempDir) -> (PathBuf, PathBuf) {
    let state = dir.join("state");
    let text = format!(
        "max_failures = 3\n\
         [users.alice]\nsecret = \"0123456789abcdef\"\npin = \"1234\"\n\
         [users.bob]\nsecret = \"fedcba9876543210\"\npin = \"4321\"\n\
         [state]\nbackend = \"local\"\ndir = \"{}\"\n",
        state.display()
    );
    (dir.config(&text, 0o600), state)
}

pub fn store(state: &Path) -> motp::state::SqliteStore {
    let host = motp::state::Host {
        now: std::sync::Arc::new(|| NOW),
        boot: None,
        uptime: std::sync::Arc::new(|| None),
    };
    motp::state::SqliteStore::open_with(state, host).unwrap()
}
