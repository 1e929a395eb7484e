//! `motp.so` through its C ABI (`motp_harness::abi`): opening it (bad, world-readable or
//! missing configs, a host without callbacks), two instances from one `.so`, and dlclose and
//! reopen. Moved from tests/abi.rs; the [`Fixture`] and its leak check are in
//! tests/abi_fixture/.

use std::fs;
use std::path::{Path, PathBuf};

use motp::engine::code_at_time;
use motp_harness::abi::{Env, LogLine, OpenError, OpenOptions, Plugin};
use motp_harness::temp::TempDir;
use openvpn_plugin_sys as sys;

mod abi_fixture;

use abi_fixture::*;

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
