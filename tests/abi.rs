//! `motp.so` through its C ABI, loaded and called the way OpenVPN 2.6 does
//! (`motp_harness::abi`): dlopen with RTLD_NOW|RTLD_LOCAL, `open_v3` with
//! `OPENVPN_PLUGINv3_STRUCTVER`, `func_v3` with a realistic `AUTH_USER_PASS_VERIFY` env,
//! `close_v1` and dlclose.
//!
//! Every test works in its own temp dir with its own plugin instance, so they run in parallel.
//! Every test also checks, when its [`Fixture`] is dropped, that no secret, PIN, code or
//! password it used appears in anything the plugin logged (open, calls and close).
//!
//! The PINs are not all-digit on purpose: log lines carry timestamps, ports and pids, and a
//! 4-digit PIN would show up in those by chance and make the leak check flaky.

use std::ffi::c_int;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use motp::engine::code_at_time;
use motp_harness::abi::{Env, LogHandle, LogLine, OpenError, OpenOptions, Plugin};
use motp_harness::temp::TempDir;
use openvpn_plugin_sys as sys;

const SUCCESS: c_int = sys::OPENVPN_PLUGIN_FUNC_SUCCESS;
const ERROR: c_int = sys::OPENVPN_PLUGIN_FUNC_ERROR;

const ALICE_SECRET: &str = "0123456789abcdef";
const ALICE_PIN: &str = "q7x2";
const BOB_SECRET: &str = "fedcba98765432100123456789abcdef";
const BOB_PIN: &str = "k4w9z";
const BOB_CN: &str = "bob-laptop";
/// A plain failure leaves `auth_failed_reason_file` empty: OpenVPN then sends a bare
/// `AUTH_FAILED`, which says nothing about which factor was wrong.
const GENERIC_REASON: &str = "";

/// The shared test config. Every rejection counts towards the lockout, so most tests use a
/// high `max_failures`; the lockout test uses 3. State is explicitly in memory, so every plugin
/// instance starts clean and tests running in parallel cannot lock each other's users.
fn config_text() -> String {
    config_with_max_failures(1000)
}

fn config_with_max_failures(max_failures: u32) -> String {
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

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// Strings that must never be logged: every secret and PIN in any config, plus whatever codes
/// and passwords a test adds.
fn always_forbidden() -> Vec<String> {
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

fn assert_no_leaks(lines: &[LogLine], forbidden: &[String]) {
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
struct Fixture {
    dir: TempDir,
    plugin: Option<Plugin>,
    log: LogHandle,
    forbidden: std::cell::RefCell<Vec<String>>,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with_config(&config_text())
    }

    fn with_config(text: &str) -> Fixture {
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

    fn plugin(&self) -> &Plugin {
        self.plugin.as_ref().expect("plugin is open")
    }

    fn forbid(&self, text: impl Into<String>) {
        let text = text.into();
        if text.len() >= 6 {
            self.forbidden.borrow_mut().push(text);
        }
    }

    /// The realistic OpenVPN env for `user` (CN = user) sending `password`. The password is
    /// added to the leak check.
    fn env(&self, user: &str, password: impl AsRef<[u8]>) -> Env {
        let password = password.as_ref();
        self.forbid(String::from_utf8_lossy(password));
        Env::openvpn_auth(self.dir.path(), user, password)
    }

    /// The code the user's phone shows `secs_ago` seconds ago (added to the leak check).
    fn code(&self, secret: &str, pin: &str, secs_ago: i64) -> String {
        let code = code_at_time(secret, pin, now() - secs_ago).to_hex();
        self.forbid(code.clone());
        code
    }

    fn alice_code(&self) -> String {
        self.code(ALICE_SECRET, ALICE_PIN, 0)
    }

    fn auth(&self, env: &Env) -> c_int {
        self.plugin().auth(env)
    }

    fn messages(&self) -> Vec<String> {
        self.log.lines().into_iter().map(|l| l.message).collect()
    }

    /// The single log line of the last call, which must start with `prefix`.
    fn last_line(&self) -> LogLine {
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
fn wrong_code(secret: &str, pin: &str) -> String {
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
fn logfmt(value: &str) -> String {
    if !value.is_empty() && !value.contains([' ', '=', '"', '\\', '\n']) {
        return value.to_owned();
    }
    let escaped = value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("\"{escaped}\"")
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    B64.encode(bytes)
}

/// Asserts `line` is `login rejected ip=192.0.2.10 reason=<reason> ... user=<user>` at WARN,
/// values in logfmt.
fn assert_rejected(line: &LogLine, user: &str, reason: &str) {
    assert_rejected_from(line, user, "192.0.2.10", reason);
}

/// [`assert_rejected`] for a client address other than the default env's.
fn assert_rejected_from(line: &LogLine, user: &str, ip: &str, reason: &str) {
    let expected = format!("login rejected ip={ip} reason={}", logfmt(reason));
    let last = format!(" user={}", logfmt(user));
    assert!(
        line.message.starts_with(&expected) && line.message.ends_with(&last),
        "expected a line starting {expected:?} and ending {last:?}, got {line}"
    );
    assert_eq!(line.name, "motp");
    assert_ne!(line.flags & (sys::PLOG_WARN | sys::PLOG_ERR), 0, "{line}");
}

// ---------------------------------------------------------------------------------------------

#[test]
fn accepts_a_valid_code() {
    let f = Fixture::new();
    let open_log = f.messages();
    assert!(
        open_log
            .iter()
            .any(|m| m.starts_with("ready: 2 users from ")
                && m.contains("window ±180 s, lock after 1000 failures for 300 s, CN binding on")),
        "{open_log:#?}"
    );

    let env = f.env("alice", f.alice_code());
    assert_eq!(f.auth(&env), SUCCESS);
    let line = f.last_line();
    // The step can tick between computing the code and the call: +0, or -1 right at a boundary.
    assert!(
        line.message == "login accepted ip=192.0.2.10 step_offset=+0 user=alice"
            || line.message == "login accepted ip=192.0.2.10 step_offset=-1 user=alice",
        "{line}"
    );
    assert_eq!((line.name.as_str(), line.flags), ("motp", sys::PLOG_NOTE));
    assert_eq!(
        env.client_reason(),
        "",
        "nothing is written for an accepted login"
    );

    // A phone 60 s behind is inside the ±180 s window and logged with its offset.
    let env = f
        .env("bob", f.code(BOB_SECRET, BOB_PIN, 60))
        .with("common_name", BOB_CN);
    assert_eq!(f.auth(&env), SUCCESS);
    let message = f.last_line().message;
    assert!(
        message.starts_with("login accepted ip=192.0.2.10 step_offset=-")
            && ["-6", "-7"]
                .iter()
                .any(|o| message.ends_with(&format!("step_offset={o} user=bob"))),
        "{message}"
    );
    // IPv6 clients are logged by their IPv6 address.
    let env = f
        .env("alice", f.code(ALICE_SECRET, ALICE_PIN, -20))
        .without("untrusted_ip")
        .with("untrusted_ip6", "2001:db8::7");
    assert_eq!(f.auth(&env), SUCCESS);
    assert!(f.last_line().message.contains(" ip=2001:db8::7 "));
}

#[test]
fn wrong_code_is_rejected_with_a_generic_reason() {
    let f = Fixture::new();
    let wrong = wrong_code(ALICE_SECRET, ALICE_PIN);
    let env = f.env("alice", &wrong);
    assert_eq!(f.auth(&env), ERROR);
    assert_rejected(&f.last_line(), "alice", "bad code");
    assert_eq!(env.client_reason(), GENERIC_REASON);
    // Bob's valid code is wrong for alice.
    let env = f.env("alice", f.code(BOB_SECRET, BOB_PIN, 0));
    assert_eq!(f.auth(&env), ERROR);
    assert_rejected(&f.last_line(), "alice", "bad code");
    // A code from 10 minutes ago is outside the window.
    let env = f.env("alice", f.code(ALICE_SECRET, ALICE_PIN, 600));
    assert_eq!(f.auth(&env), ERROR);
    assert_rejected(&f.last_line(), "alice", "bad code");
}

#[test]
fn replayed_code_is_rejected() {
    let f = Fixture::new();
    let code = f.alice_code();
    assert_eq!(f.auth(&f.env("alice", &code)), SUCCESS);
    let env = f.env("alice", &code);
    assert_eq!(f.auth(&env), ERROR);
    assert_rejected(&f.last_line(), "alice", "replay");
    assert_eq!(env.client_reason(), GENERIC_REASON);
    // An older code, still inside the window, is a replay too once a newer one was used.
    let older = f.code(ALICE_SECRET, ALICE_PIN, 60);
    assert_eq!(f.auth(&f.env("alice", older)), ERROR);
    assert_rejected(&f.last_line(), "alice", "replay");
    // The same code in static-challenge form is the same code.
    let env = f.env("alice", format!("SCRV1:{}:{}", b64("pw"), b64(&code)));
    assert_eq!(f.auth(&env), ERROR);
    assert_rejected(&f.last_line(), "alice", "replay");
}

#[test]
fn unknown_user_is_rejected() {
    let f = Fixture::new();
    let env = f.env("mallory", f.alice_code());
    assert_eq!(f.auth(&env), ERROR);
    assert_rejected(&f.last_line(), "mallory", "unknown user");
    assert_eq!(env.client_reason(), GENERIC_REASON);
    // Usernames are case-sensitive, as OpenVPN passes them.
    let env = f.env("Alice", f.alice_code());
    assert_eq!(f.auth(&env), ERROR);
    assert_rejected(&f.last_line(), "Alice", "unknown user");
}

#[test]
fn certificate_common_name_must_match() {
    let f = Fixture::new();
    let code = f.alice_code();
    // Alice's credentials over Bob's certificate.
    let env = f.env("alice", &code).with("common_name", BOB_CN);
    assert_eq!(f.auth(&env), ERROR);
    assert_rejected(&f.last_line(), "alice", "CN mismatch");
    assert_eq!(env.client_reason(), GENERIC_REASON);
    // No common_name at all.
    let env = f.env("alice", &code).without("common_name");
    assert_eq!(f.auth(&env), ERROR);
    assert_rejected(&f.last_line(), "alice", "CN mismatch");
    // The mismatching attempts did not use up the code.
    assert_eq!(f.auth(&f.env("alice", &code)), SUCCESS);
    // Bob is bound to an explicit CN, not to his username.
    let bob = f.code(BOB_SECRET, BOB_PIN, 0);
    assert_eq!(f.auth(&f.env("bob", &bob)), ERROR);
    assert_rejected(&f.last_line(), "bob", "CN mismatch");
    assert_eq!(
        f.auth(&f.env("bob", &bob).with("common_name", BOB_CN)),
        SUCCESS
    );
}

#[test]
fn scrv1_static_challenge_answer_is_accepted() {
    let f = Fixture::new();
    let env = f.env(
        "alice",
        format!("SCRV1:{}:{}", b64("static password"), b64(f.alice_code())),
    );
    f.forbid(b64("static password"));
    f.forbid("static password");
    assert_eq!(f.auth(&env), SUCCESS);
    assert!(f.last_line().message.ends_with(" user=alice"));

    // Empty password part; upper-case code with the trailing newline old GUIs add.
    let code = f.code(BOB_SECRET, BOB_PIN, 0).to_uppercase();
    let env = f
        .env("bob", format!("SCRV1::{}", b64(format!("{code}\n"))))
        .with("common_name", BOB_CN);
    assert_eq!(f.auth(&env), SUCCESS);

    // Bad base64 in the response.
    let env = f.env("alice", "SCRV1:cGFzcw==:!!!!!!!!");
    assert_eq!(f.auth(&env), ERROR);
    assert_rejected(&f.last_line(), "alice", "malformed password");
    assert_eq!(env.client_reason(), GENERIC_REASON);
}

#[test]
fn scrv1_with_1000_colons_is_rejected() {
    let f = Fixture::new();
    for password in [
        format!("SCRV1{}", ":".repeat(1000)),
        format!("SCRV1:{}{}", b64("pw"), ":".repeat(1000)),
        format!(
            "SCRV1:{}:{}{}",
            b64("pw"),
            b64(f.alice_code()),
            ":".repeat(1000)
        ),
    ] {
        let env = f.env("alice", &password);
        assert_eq!(f.auth(&env), ERROR);
        assert_rejected(&f.last_line(), "alice", "malformed password");
        assert_eq!(env.client_reason(), GENERIC_REASON);
    }
    assert_eq!(f.auth(&f.env("alice", f.alice_code())), SUCCESS);
}

#[test]
fn four_kib_passwords_are_handled() {
    let f = Fixture::new();
    // OpenVPN's USER_PASS_LEN with PKCS#11 is 4096 bytes (including the NUL).
    for len in [4095, 4096, 4097, 64 * 1024] {
        let env = f.env("alice", "a".repeat(len));
        assert_eq!(f.auth(&env), ERROR, "len {len}");
        assert_rejected(&f.last_line(), "alice", "malformed password");
        assert_eq!(env.client_reason(), GENERIC_REASON);
    }
    // A static-challenge answer with a long password part, 4095 bytes in all, still works.
    let tail = format!(":{}", b64(f.alice_code()));
    let static_b64_len = (4095 - "SCRV1:".len() - tail.len()) / 4 * 4;
    let password = format!("SCRV1:{}{tail}", "QUFB".repeat(static_b64_len / 4));
    assert!(password.len() <= 4095 && password.len() > 4090);
    assert_eq!(f.auth(&f.env("alice", &password)), SUCCESS);
    assert!(f.last_line().message.ends_with(" user=alice"));
}

#[test]
fn invalid_utf8_is_rejected_cleanly() {
    let f = Fixture::new();
    let code = f.alice_code();

    let mut env = f.env("alice", &code);
    env.set("username", b"\xff\xfealice\xc3");
    assert_eq!(f.auth(&env), ERROR);
    let line = f.last_line();
    assert_rejected(&line, "\u{fffd}\u{fffd}alice\u{fffd}", "bad username");
    assert_eq!(env.client_reason(), GENERIC_REASON);

    let env = f.env("alice", b"\xff\xfe\xfd\xfc\xfb\xfa");
    assert_eq!(f.auth(&env), ERROR);
    assert_rejected(&f.last_line(), "alice", "malformed password");

    let env = f.env("alice", &code).with("common_name", b"alice\xff");
    assert_eq!(f.auth(&env), ERROR);
    assert_rejected(&f.last_line(), "alice", "CN mismatch");

    // Control characters cannot forge a second log line, nor spaces and `=` a field.
    let env = f.env("alice\nlogin accepted user=root", &code);
    assert_eq!(f.auth(&env), ERROR);
    assert_rejected(
        &f.last_line(),
        "alice\nlogin accepted user=root",
        "unknown user",
    );
    assert!(f
        .last_line()
        .message
        .ends_with(r#" user="alice\nlogin accepted user=root""#));

    // The code is still unused.
    assert_eq!(f.auth(&f.env("alice", &code)), SUCCESS);
}

#[test]
fn missing_or_null_env_is_rejected_without_crashing() {
    let f = Fixture::new();
    let p = f.plugin();
    let code = f.alice_code();
    let event = sys::OPENVPN_PLUGIN_AUTH_USER_PASS_VERIFY;

    // NULL envp and an empty one.
    assert_eq!(p.call(event, None), ERROR);
    assert_rejected_from(&f.last_line(), "(none)", "unknown", "bad username");
    assert_eq!(p.call(event, Some(&Env::new())), ERROR);
    let line = f.last_line();
    assert_eq!(
        line.message,
        "login rejected ip=unknown reason=\"bad username\" user=(none)"
    );

    // No username, only a password.
    let env = f.env("alice", &code).without("username");
    assert_eq!(p.auth(&env), ERROR);
    assert_rejected(&f.last_line(), "(none)", "bad username");
    assert_eq!(env.client_reason(), GENERIC_REASON);
    // Empty username.
    assert_eq!(p.auth(&f.env("", &code)), ERROR);
    assert_rejected(&f.last_line(), "", "bad username");
    // No password.
    let env = f.env("alice", &code).without("password");
    assert_eq!(p.auth(&env), ERROR);
    assert_rejected(&f.last_line(), "alice", "malformed password");
    // Empty password.
    assert_eq!(p.auth(&f.env("alice", "")), ERROR);
    assert_rejected(&f.last_line(), "alice", "malformed password");
    // No auth_failed_reason_file (OpenVPN 2.5): still a clean reject.
    let env = f.env("alice", "zzzzzz").without("auth_failed_reason_file");
    assert_eq!(p.auth(&env), ERROR);
    // A reason file that cannot be written (nothing is written for a plain failure, and a
    // failed write of a TEMP reason is only logged): the reject stands.
    let env = f
        .env("alice", "zzzzzz")
        .with("auth_failed_reason_file", "/nonexistent-dir/afr");
    assert_eq!(p.auth(&env), ERROR);
    // Entries without '=', and a duplicate username: the first occurrence counts.
    let mut env = Env::new();
    env.push_raw(b"garbage".to_vec())
        .push_raw(b"".to_vec())
        .push("username", "mallory")
        .push("username", "alice")
        .push("password", &code)
        .push("common_name", "alice");
    assert_eq!(p.auth(&env), ERROR);
    assert_rejected_from(&f.last_line(), "mallory", "unknown", "unknown user");
    // Only the plugin-relevant variables, nothing else OpenVPN sets.
    assert_eq!(
        p.auth_pairs(&[
            ("username", "alice"),
            ("password", code.as_str()),
            ("common_name", "alice")
        ]),
        SUCCESS
    );
    let line = f.last_line();
    assert!(
        line.message
            .starts_with("login accepted ip=unknown step_offset=")
            && line.message.ends_with(" user=alice"),
        "{line}"
    );

    // NULL arguments and a NULL handle.
    let mut ret = sys::openvpn_plugin_args_func_return {
        return_list: std::ptr::null_mut(),
    };
    // SAFETY: the plugin checks `arguments` for NULL before touching it.
    let code_null_args =
        unsafe { p.func_v3_raw(sys::OPENVPN_PLUGINV3_STRUCTVER, std::ptr::null(), &mut ret) };
    assert_eq!(code_null_args, ERROR);
    let argv = [std::ptr::null()];
    let args = sys::openvpn_plugin_args_func_in {
        type_: event,
        argv: argv.as_ptr(),
        envp: std::ptr::null(),
        handle: std::ptr::null_mut(),
        per_client_context: std::ptr::null_mut(),
        current_cert_depth: -1,
        current_cert: std::ptr::null_mut(),
    };
    // SAFETY: a fully initialised struct; the plugin checks the NULL handle.
    let code_null_handle =
        unsafe { p.func_v3_raw(sys::OPENVPN_PLUGINV3_STRUCTVER, &args, &mut ret) };
    assert_eq!(code_null_handle, ERROR);
}

#[test]
fn lockout_after_max_failures_sends_temp_backoff() {
    let f = Fixture::with_config(&config_with_max_failures(3));
    let wrong = wrong_code(ALICE_SECRET, ALICE_PIN);
    for attempt in 1..=3 {
        let env = f.env("alice", &wrong);
        assert_eq!(f.auth(&env), ERROR, "attempt {attempt}");
        assert_rejected(&f.last_line(), "alice", "bad code");
        assert_eq!(env.client_reason(), GENERIC_REASON, "attempt {attempt}");
    }
    // Locked now: even the right code is refused, and the client is told to back off.
    let env = f.env("alice", f.alice_code());
    assert_eq!(f.auth(&env), ERROR);
    assert_rejected(&f.last_line(), "alice", "locked");
    let reason = env.client_reason();
    let backoff: i64 = reason
        .strip_prefix("TEMP[backoff ")
        .and_then(|r| r.split(']').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a TEMP[backoff N] reason: {reason:?}"));
    assert!((1..=300).contains(&backoff), "{reason}");
    for word in ["code", "PIN", "pin", "CN", "certificate", "user", "secret"] {
        assert!(
            !reason.contains(word),
            "the reason must not say which factor failed: {reason}"
        );
    }
    // Locking one user does not lock another.
    let env = f
        .env("bob", f.code(BOB_SECRET, BOB_PIN, 0))
        .with("common_name", BOB_CN);
    assert_eq!(f.auth(&env), SUCCESS);
}

#[test]
fn generic_reasons_never_name_the_failing_factor() {
    let f = Fixture::new();
    let code = f.alice_code();
    let wrong = wrong_code(ALICE_SECRET, ALICE_PIN);
    let cases = [
        f.env("alice", &wrong),
        f.env("mallory", &code),
        f.env("alice", &code).with("common_name", "eve"),
        f.env("alice", "not a code"),
        f.env("alice", format!("SCRV1{}", ":".repeat(5))),
    ];
    for env in &cases {
        assert_eq!(f.auth(env), ERROR);
        assert_eq!(env.client_reason(), GENERIC_REASON);
    }
}

#[test]
fn env_names_are_matched_whole() {
    let f = Fixture::new();
    let p = f.plugin();
    let code = f.alice_code();
    // Names that merely start like, end like, or repeat a wanted one are not it: the real
    // `password` (a wrong code) decides, not the decoys holding alice's valid code.
    let mut env = Env::new();
    env.push("passwordx", &code)
        .push("passwor", &code)
        .push(&"password".repeat(8), &code)
        .push("xpassword", &code)
        .push("PASSWORD", &code)
        .push_raw(format!("password{code}"))
        .push("username", "alice")
        .push("password", "000000")
        .push("common_name", "alice");
    assert_eq!(p.auth(&env), ERROR);
    assert_rejected_from(&f.last_line(), "alice", "unknown", "bad code");
    // A long value in an entry the plugin does not read, and an entry of only `=`, do not
    // disturb the ones it does.
    let mut env = f.env("alice", &code);
    env.push("IV_PLAT_LONG", "x".repeat(64 * 1024))
        .push_raw("=".to_owned());
    assert_eq!(p.auth(&env), SUCCESS);
}

#[test]
fn unknown_event_types_return_error() {
    let f = Fixture::new();
    let p = f.plugin();
    let code = f.alice_code();
    let env = f.env("alice", &code);
    for event in [
        sys::OPENVPN_PLUGIN_UP,
        sys::OPENVPN_PLUGIN_TLS_VERIFY,
        sys::OPENVPN_PLUGIN_CLIENT_CONNECT_V2,
        sys::OPENVPN_PLUGIN_TLS_FINAL,
        sys::OPENVPN_PLUGIN_CLIENT_CRRESPONSE,
        sys::OPENVPN_PLUGIN_N,
        99,
        -1,
        c_int::MAX,
    ] {
        assert_eq!(p.call(event, Some(&env)), ERROR, "event {event}");
    }
    // None of them consumed the code.
    assert_eq!(p.auth(&env), SUCCESS);
}

fn open_failure(dir: &TempDir, text: &str, mode: u32) -> (PathBuf, OpenError) {
    let path = dir.write(&format!("bad-{mode:o}.toml"), text, mode);
    match Plugin::open(&path) {
        Ok(_) => panic!("open_v3 accepted {}:\n{text}", path.display()),
        Err(e) => (path, e),
    }
}

/// The single PLOG_ERR line of a failed open, which must mention the file.
fn open_error_line(path: &Path, error: &OpenError) -> String {
    assert_eq!(error.code, ERROR, "{error:?}");
    assert!(!error.null_handle);
    assert_no_leaks(&error.logs, &always_forbidden());
    let errors: Vec<&LogLine> = error
        .logs
        .iter()
        .filter(|l| l.flags & sys::PLOG_ERR != 0)
        .collect();
    assert_eq!(errors.len(), 1, "{:#?}", error.logs);
    let message = &errors[0].message;
    assert!(
        message.contains(&path.display().to_string()),
        "the error names the file: {message}"
    );
    message.clone()
}

#[test]
fn open_fails_on_a_bad_config_naming_file_line_and_key() {
    let dir = TempDir::without_digits("abi");
    let good = config_text();
    // (config text, expected "line N", expected "key `...`")
    let cases = [
        (
            good.replace("max_failures = 1000", "max_failures = 0"),
            "line 2",
            "key `max_failures`",
        ),
        (
            format!("window_secs = 99999\n{good}"),
            "line 1",
            "key `window_secs`",
        ),
        // A global key after a table belongs to the table.
        (
            format!("{good}window_secs = 60\n"),
            "line 16",
            "key `state.window_secs`",
        ),
        (
            good.replace(
                &format!("secret = \"{ALICE_SECRET}\""),
                "secret = \"this-is-not-hex-zz\"",
            ),
            "line 6",
            "key `users.alice.secret`",
        ),
        (
            good.replace(&format!("pin = \"{BOB_PIN}\""), "pin = \"\""),
            "line 11",
            "key `users.bob.pin`",
        ),
        (
            good.replace("[users.bob]", "[users.bob]\nsecrett = \"x\""),
            "line 10",
            "users.bob",
        ),
        (
            good.replace("lockout_secs = 300", "lockout_secs = \"five minutes\""),
            "line 3",
            "key `lockout_secs`",
        ),
    ];
    for (text, line, key) in &cases {
        let (path, error) = open_failure(&dir, text, 0o600);
        let message = open_error_line(&path, &error);
        assert!(
            message.contains(line) && message.contains(key),
            "expected {line:?} and {key:?} in: {message}\nconfig:\n{text}"
        );
        assert!(!message.contains("this-is-not-hex"), "{message}");
        fs::remove_file(&path).unwrap();
    }

    // A missing file, and a directory.
    let missing = dir.path().join("missing.toml");
    let error = Plugin::open(&missing)
        .err()
        .expect("missing config refused");
    open_error_line(&missing, &error);
    let error = Plugin::open(dir.path())
        .err()
        .expect("a directory is refused");
    open_error_line(dir.path(), &error);
}

#[test]
fn open_fails_on_a_world_readable_config() {
    let dir = TempDir::without_digits("abi");
    for mode in [0o644, 0o604, 0o606, 0o666] {
        let (path, error) = open_failure(&dir, &config_text(), mode);
        let message = open_error_line(&path, &error);
        assert!(
            message.contains("readable or writable by every user") && message.contains("chmod"),
            "{message}"
        );
        fs::remove_file(&path).unwrap();
    }
    // Group-readable (for OpenVPN's runtime group) is fine.
    let path = dir.write("group.toml", &config_text(), 0o640);
    drop(Plugin::open(&path).expect("a 0640 config opens"));
}

#[test]
fn open_without_a_config_argument_uses_the_default_path() {
    let default = Path::new("/etc/openvpn/motp.toml");
    if default.exists() {
        eprintln!("skipped: {} exists on this machine", default.display());
        return;
    }
    let dir = TempDir::without_digits("abi");
    let mut options = OpenOptions::new(&dir.path().join("unused"));
    options.argv.truncate(1);
    let error = options.open().err().expect("no config at the default path");
    open_error_line(default, &error);
}

#[test]
fn open_tolerates_a_host_without_callbacks() {
    let dir = TempDir::without_digits("abi");
    let path = dir.write("motp.toml", &config_text(), 0o600);
    let mut options = OpenOptions::new(&path);
    options.callbacks = false;
    let plugin = options.open().expect("opens without plugin_log");
    let wrong = wrong_code(ALICE_SECRET, ALICE_PIN);
    assert_eq!(
        plugin.auth(&Env::openvpn_auth(dir.path(), "alice", wrong)),
        ERROR
    );
    assert!(plugin.logs().is_empty(), "no callbacks, nothing recorded");
}

#[test]
fn two_instances_from_one_so_are_independent() {
    let a = Fixture::new();
    let b = Fixture::new();
    let other_secret = "00112233445566778899aabbccddeeff";
    let other_pin = "z9y8";
    let c = Fixture::with_config(&format!(
        "[users.alice]\nsecret = \"{other_secret}\"\npin = \"{other_pin}\"\n\
         [state]\nbackend = \"memory\"\n"
    ));
    c.forbid(other_secret);
    c.forbid(format!("{other_secret}{other_pin}"));
    assert!(c
        .messages()
        .iter()
        .any(|m| m.starts_with("ready: 1 users from ")));

    // The same code is accepted once by each of a and b: separate replay state.
    let code = a.alice_code();
    b.forbid(code.clone());
    c.forbid(code.clone());
    assert_eq!(a.auth(&a.env("alice", &code)), SUCCESS);
    assert_eq!(b.auth(&b.env("alice", &code)), SUCCESS);
    // c has another secret for alice.
    assert_eq!(c.auth(&c.env("alice", &code)), ERROR);
    assert_rejected(&c.last_line(), "alice", "bad code");
    let c_code = c.code(other_secret, other_pin, 0);
    assert_eq!(c.auth(&c.env("alice", c_code)), SUCCESS);

    // Each instance logged only its own decisions.
    let decisions = |f: &Fixture| {
        f.messages()
            .into_iter()
            .filter(|m| m.starts_with("login "))
            .count()
    };
    assert_eq!((decisions(&a), decisions(&b), decisions(&c)), (1, 1, 2));

    // Closing a leaves b's state and log intact.
    drop(a);
    assert_eq!(b.auth(&b.env("alice", &code)), ERROR);
    assert_rejected(&b.last_line(), "alice", "replay");
    assert_eq!(decisions(&b), 2);
}

#[test]
fn dlclose_and_reopen_100_times() {
    let dir = TempDir::without_digits("abi");
    let path = dir.write("motp.toml", &config_text(), 0o600);
    let mut forbidden = always_forbidden();
    let mappings = || {
        fs::read_to_string("/proc/self/maps")
            .expect("read /proc/self/maps")
            .lines()
            .filter(|l| l.contains("libmotp.so"))
            .count()
    };
    let mut mapped_while_open = 0;
    for round in 0..100 {
        let plugin = Plugin::open(&path).unwrap_or_else(|e| panic!("round {round}: {e:?}"));
        let code = code_at_time(ALICE_SECRET, ALICE_PIN, now()).to_hex();
        forbidden.push(code.clone());
        let env = Env::openvpn_auth(dir.path(), "alice", &code);
        // A reload forgets the in-memory replay state, so the same code is good again
        // (the "memory" backend warns about exactly this at every open).
        assert_eq!(plugin.auth(&env), SUCCESS, "round {round}");
        assert_eq!(plugin.auth(&env), ERROR, "round {round}: replay");
        if round == 0 {
            mapped_while_open = mappings();
            assert!(
                mapped_while_open > 0,
                "libmotp.so is not in /proc/self/maps"
            );
        }
        let lines = plugin.close();
        assert!(
            lines
                .iter()
                .any(|l| l.message.contains("state backend is \"memory\"")),
            "round {round}: {lines:#?}"
        );
        assert_no_leaks(&lines, &forbidden);
        for name in [
            "auth_control_file",
            "auth_pending_file",
            "auth_failed_reason_file",
        ] {
            let _ = fs::remove_file(std::ffi::OsStr::new(
                std::str::from_utf8(env.get(name).unwrap()).unwrap(),
            ));
        }
    }
    // glibc keeps a library mapped after dlclose while it has thread-local destructors
    // registered (Rust's std and tracing register some), so whether it really went away is not
    // asserted; what must hold is that 100 reloads did not map 100 copies.
    let mapped_after = mappings();
    eprintln!("libmotp.so mappings: {mapped_while_open} while open, {mapped_after} after close");
    assert!(
        mapped_after <= mapped_while_open,
        "reloading leaked mappings"
    );
    assert!(
        motp_harness::abi::unattributed_logs().is_empty(),
        "the plugin logged outside a call: {:#?}",
        motp_harness::abi::unattributed_logs()
    );
}
