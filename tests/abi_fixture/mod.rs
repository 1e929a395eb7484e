//! The shared world of the `tests/abi*.rs` C ABI tests (moved from tests/abi.rs): the test
//! config, the [`Fixture`] with its leak check on drop, and the assertion helpers.

#![allow(dead_code)]

use std::ffi::c_int;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use motp::engine::code_at_time;
use motp_harness::abi::{Env, LogHandle, LogLine, Plugin};
use motp_harness::temp::TempDir;
use openvpn_plugin_sys as sys;

pub const SUCCESS: c_int = sys::OPENVPN_PLUGIN_FUNC_SUCCESS;
pub const ERROR: c_int = sys::OPENVPN_PLUGIN_FUNC_ERROR;

pub const ALICE_SECRET: &str = "0123456789abcdef";
pub const ALICE_PIN: &str = "q7x2";
pub const BOB_SECRET: &str = "fedcba98765432100123456789abcdef";
pub const BOB_PIN: &str = "k4w9z";
pub const BOB_CN: &str = "bob-laptop";
/// A plain failure leaves `auth_failed_reason_file` empty: OpenVPN then sends a bare
/// `AUTH_FAILED`, which says nothing about which factor was wrong.
pub const GENERIC_REASON: &str = "";

/// The shared test config. Every rejection counts towards the lockout, so most tests use a
/// high `max_failures`; the lockout test uses 3. State is explicitly in memory, so every plugin
/// instance starts clean and tests running in parallel cannot lock each other's users.
pub fn config_text() -> String {
    config_with_max_failures(1000)
}

pub fn config_with_max_failures(max_failures: u32) -> String {
    format!(
        r#"# motp.toml for the ABI tests
max_failures = {max_failures}
lockout_secs = 300

[users.alice]
secret = "{ALICE_SECRET}"
pin = "{ALICE_PIN}"

[users.bob]
secret = "{BOB_SECRET}"
pin = "{BOB_PIN}"
common_name = "{BOB_CN}"

[state]
backend = "memory"
"#
    )
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// Strings that must never be logged: every secret and PIN in any config, plus whatever codes
/// and passwords a test adds.
pub fn always_forbidden() -> Vec<String> {
    [ALICE_SECRET, ALICE_PIN, BOB_SECRET, BOB_PIN]
        .iter()
        .map(|s| s.to_string())
        .chain([
            ALICE_SECRET.to_uppercase(),
            BOB_SECRET.to_uppercase(),
            format!("{ALICE_SECRET}{ALICE_PIN}"),
            format!("{BOB_SECRET}{BOB_PIN}"),
        ])
        .collect()
}

pub fn assert_no_leaks(lines: &[LogLine], forbidden: &[String]) {
    for line in lines {
        for secret in forbidden {
            assert!(
                !line.message.contains(secret.as_str()) && !line.name.contains(secret.as_str()),
                "a logged message contains {secret:?}, which must never be logged:\n  {line}"
            );
        }
        assert!(
            !line.message.contains('\n') && !line.message.contains('\r'),
            "a log message spans lines: {line}"
        );
    }
}

/// One test's world: a temp dir, a 0600 config, an open plugin, and the leak check on drop.
pub struct Fixture {
    pub dir: TempDir,
    pub plugin: Option<Plugin>,
    pub log: LogHandle,
    pub forbidden: std::cell::RefCell<Vec<String>>,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture::with_config(&config_text())
    }

    pub fn with_config(text: &str) -> Fixture {
        let dir = TempDir::without_digits("abi");
        let config = dir.write("motp.toml", text, 0o600);
        let plugin = match Plugin::open(&config) {
            Ok(p) => p,
            Err(e) => panic!("open_v3 failed: {e:?}"),
        };
        assert_eq!(
            plugin.type_mask(),
            sys::openvpn_plugin_mask(sys::OPENVPN_PLUGIN_AUTH_USER_PASS_VERIFY),
            "motp.so asks for AUTH_USER_PASS_VERIFY only"
        );
        Fixture {
            log: plugin.log_handle(),
            plugin: Some(plugin),
            dir,
            forbidden: std::cell::RefCell::new(always_forbidden()),
        }
    }

    pub fn plugin(&self) -> &Plugin {
        self.plugin.as_ref().expect("plugin is open")
    }

    pub fn forbid(&self, text: impl Into<String>) {
        let text = text.into();
        if text.len() >= 6 {
            self.forbidden.borrow_mut().push(text);
        }
    }

    /// The realistic OpenVPN env for `user` (CN = user) sending `password`. The password is
    /// added to the leak check.
    pub fn env(&self, user: &str, password: impl AsRef<[u8]>) -> Env {
        let password = password.as_ref();
        self.forbid(String::from_utf8_lossy(password));
        Env::openvpn_auth(self.dir.path(), user, password)
    }

    /// The code the user's phone shows `secs_ago` seconds ago (added to the leak check).
    pub fn code(&self, secret: &str, pin: &str, secs_ago: i64) -> String {
        let code = code_at_time(secret, pin, now() - secs_ago).to_hex();
        self.forbid(code.clone());
        code
    }

    pub fn alice_code(&self) -> String {
        self.code(ALICE_SECRET, ALICE_PIN, 0)
    }

    pub fn auth(&self, env: &Env) -> c_int {
        self.plugin().auth(env)
    }

    pub fn messages(&self) -> Vec<String> {
        self.log.lines().into_iter().map(|l| l.message).collect()
    }

    /// The single log line of the last call, which must start with `prefix`.
    pub fn last_line(&self) -> LogLine {
        self.log.lines().pop().expect("the plugin logged something")
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // Close first (close may log too), then check everything this instance ever logged.
        drop(self.plugin.take());
        if !std::thread::panicking() {
            assert_no_leaks(&self.log.lines(), &self.forbidden.borrow());
        }
    }
}

/// A 6-hex code that is not valid for `secret`/`pin` anywhere near now.
pub fn wrong_code(secret: &str, pin: &str) -> String {
    let t = now();
    let near: Vec<String> = (-40..=40)
        .map(|k| code_at_time(secret, pin, t + k * 10).to_hex())
        .collect();
    (0u32..)
        .map(|n| format!("{:06x}", n * 0x10101))
        .find(|c| !near.contains(c))
        .expect("some code is wrong")
}

/// A logfmt value as the plugin writes it: bare, or quoted with `\"`, `\\` and `\n` escaped
/// (enough for the values of these tests).
pub fn logfmt(value: &str) -> String {
    if !value.is_empty() && !value.contains([' ', '=', '"', '\\', '\n']) {
        return value.to_owned();
    }
    let escaped = value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("\"{escaped}\"")
}

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    B64.encode(bytes)
}

/// Asserts `line` is `login rejected ip=192.0.2.10 reason=<reason> ... user=<user>` at WARN,
/// values in logfmt.
pub fn assert_rejected(line: &LogLine, user: &str, reason: &str) {
    assert_rejected_from(line, user, "192.0.2.10", reason);
}

/// [`assert_rejected`] for a client address other than the default env's.
pub fn assert_rejected_from(line: &LogLine, user: &str, ip: &str, reason: &str) {
    let expected = format!("login rejected ip={ip} reason={}", logfmt(reason));
    let last = format!(" user={}", logfmt(user));
    assert!(
        line.message.starts_with(&expected) && line.message.ends_with(&last),
        "expected a line starting {expected:?} and ending {last:?}, got {line}"
    );
    assert_eq!(line.name, "motp");
    assert_ne!(line.flags & (sys::PLOG_WARN | sys::PLOG_ERR), 0, "{line}");
}
