//! `motpctl` CLI tests: TOTP and HOTP users (add-user --kind, code, verify, resync, status;
//! helpers in `common/mod.rs`).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use motp::config::{Config, Token};
use motp::engine::base32;
use motp_harness::temp::TempDir;

mod common;
use common::*;

/// The value of `prefix` on a line of the output.
fn field(r: &Run, prefix: &str) -> String {
    r.stdout
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in {r:?}"))
        .to_owned()
}

/// The query parameter `key` of a Key URI.
fn uri_param(uri: &str, key: &str) -> Option<String> {
    let query = uri.split_once('?')?.1;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
}

fn code_of(user: &str, config: &Path, extra: &[&str]) -> String {
    let mut args = vec!["code", user, "-c", s(config), NOW_ARG];
    args.extend(extra);
    let r = run(&args);
    assert_eq!(r.code, 0, "{r:?}");
    r.stdout.trim().to_owned()
}

#[test]
fn add_user_totp_generate_writes_a_config_the_plugin_loads() {
    let dir = TempDir::new("tok-totp");
    let path = dir.config(CLEAN, 0o600);
    let r = run(&[
        "add-user",
        "carol",
        "--kind",
        "totp",
        "--generate",
        "--issuer",
        "ACME VPN",
        "-c",
        s(&path),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.is_empty(), "defaults warn about nothing: {r:?}");
    let secret = field(&r, "secret (base32): ");
    let uri = field(&r, "provisioning URI: ");
    assert!(
        uri.starts_with("otpauth://totp/ACME%20VPN:carol?secret="),
        "{uri}"
    );
    assert_eq!(uri_param(&uri, "issuer").as_deref(), Some("ACME%20VPN"));
    for absent in ["algorithm", "digits", "period", "counter"] {
        assert_eq!(uri_param(&uri, absent), None, "{uri}");
    }
    assert!(r.stdout.contains('█'), "a QR code: {r:?}");
    let config = Config::load(&path).unwrap();
    let carol = config.users.get("carol").unwrap();
    assert!(matches!(carol.token, Token::Totp(t) if t.period == 30 && t.digits == 6));
    // The URI's secret is the stored key: 20 random bytes for SHA-1.
    let from_uri = base32::decode(&uri_param(&uri, "secret").unwrap()).unwrap();
    assert_eq!(&from_uri[..], carol.key);
    assert_eq!(carol.key.len(), 20);
    assert_eq!(base32::decode(&secret).unwrap()[..], carol.key[..]);
    let r = run(&["check-config", s(&path), "--no-clock-check"]);
    assert_eq!(r.code, 0, "base32 in upper case is no warning: {r:?}");

    // What `code` prints, `verify` accepts, and the code is not echoed.
    let code = code_of("carol", &path, &[]);
    assert_eq!(code.len(), 6);
    let r = run(&["verify", "carol", &code, "-c", s(&path), NOW_ARG]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.starts_with("valid: matches step +0"), "{r:?}");
    // One period later, the next code; an hour off, the phone's clock is explained.
    let later = code_of("carol", &path, &["--at", &(NOW + 30).to_string()]);
    let r = run(&["verify", "carol", &later, "-c", s(&path), NOW_ARG]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("step +1 (phone 30 s ahead"), "{r:?}");
    let far = code_of("carol", &path, &["--at", &(NOW - 3600).to_string()]);
    let r = run(&["verify", "carol", &far, "-c", s(&path), NOW_ARG]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("offset_secs = -3600"), "{r:?}");
    // A code of the wrong shape is an error naming the shape.
    let r = run(&["verify", "carol", "6ed4e4", "-c", s(&path), NOW_ARG]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("6 digits"), "{r:?}");
    assert!(!r.all().contains(&secret));
}

#[test]
fn totp_resync_writes_the_offset_in_periods() {
    let dir = TempDir::new("tok-totp-resync");
    let path = dir.config(CLEAN, 0o600);
    let r = run(&[
        "add-user",
        "carol",
        "--kind",
        "totp",
        "--period",
        "60",
        "--generate",
        "--no-qr",
        "-c",
        s(&path),
    ]);
    assert_eq!(r.code, 1, "a 60 s period is warned about: {r:?}");
    assert!(r.stderr.contains("Google Authenticator"), "{r:?}");
    let uri = field(&r, "provisioning URI: ");
    assert_eq!(uri_param(&uri, "period").as_deref(), Some("60"));
    // The phone runs two hours behind.
    let phone = NOW - 7200;
    let c1 = code_of("carol", &path, &["--at", &(phone - 60).to_string()]);
    let c2 = code_of("carol", &path, &["--at", &phone.to_string()]);
    let r = run(&["resync", "carol", &c1, &c2, "-c", s(&path), NOW_ARG]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("offset_secs 0 → -7200"), "{r:?}");
    assert_eq!(
        Config::load(&path)
            .unwrap()
            .users
            .get("carol")
            .unwrap()
            .offset_secs,
        -7200
    );
    // `code NAME` now follows the phone's clock.
    let next = code_of("carol", &path, &["--at", &(NOW + 60).to_string()]);
    let r = run(&["verify", "carol", &next, "-c", s(&path), NOW_ARG]);
    assert_eq!(r.code, 0, "{r:?}");
}

fn local_hotp_config(dir: &TempDir) -> std::path::PathBuf {
    let state = dir.join("state");
    fs::create_dir(&state).unwrap();
    fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).unwrap();
    dir.config(
        &format!(
            "[users.alice]\nsecret = \"0123456789abcdef\"\npin = \"1234\"\n\n\
             [state]\nbackend = \"local\"\ndir = \"{}\"\n",
            state.display()
        ),
        0o600,
    )
}

#[test]
fn hotp_code_verify_resync_and_status() {
    let dir = TempDir::new("tok-hotp");
    let path = local_hotp_config(&dir);
    let p = s(&path);
    let r = run(&[
        "add-user",
        "dan",
        "--kind",
        "hotp",
        "--counter",
        "5",
        "--generate",
        "--no-qr",
        "-c",
        p,
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let uri = field(&r, "provisioning URI: ");
    assert!(uri.starts_with("otpauth://hotp/"), "{uri}");
    assert_eq!(uri_param(&uri, "counter").as_deref(), Some("5"));
    // The next code is the seed's, and `verify` takes it without using it up.
    let next = code_of("dan", &path, &[]);
    assert_eq!(next, code_of("dan", &path, &["--counter", "5"]));
    for _ in 0..2 {
        let r = run(&["verify", "dan", &next, "-c", p, NOW_ARG]);
        assert_eq!(r.code, 0, "{r:?}");
        assert!(
            r.stdout.contains("counter 5, the next one expected"),
            "{r:?}"
        );
    }
    // The button was pressed 35 times without logging in.
    let c40 = code_of("dan", &path, &["--counter", "40"]);
    let c41 = code_of("dan", &path, &["--counter", "41"]);
    let r = run(&["verify", "dan", &c40, "-c", p, NOW_ARG]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("beyond hotp_window = 10"), "{r:?}");
    assert!(r.stdout.contains("motpctl resync dan"), "{r:?}");
    // Out of order: nothing found, nothing changed.
    let before = fs::read_to_string(&path).unwrap();
    let r = run(&["resync", "dan", &c41, &c40, "-c", p, NOW_ARG]);
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(fs::read_to_string(&path).unwrap(), before);
    let r = run(&["resync", "dan", &c40, &c41, "-c", p, NOW_ARG]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("at counter 40"), "{r:?}");
    assert!(r.stdout.contains("(counter 42)"), "{r:?}");
    // The store moved on, the config did not.
    assert_eq!(fs::read_to_string(&path).unwrap(), before);
    for used in [&c40, &c41, &next] {
        let r = run(&["verify", "dan", used, "-c", p, NOW_ARG]);
        assert_eq!(r.code, 1, "{r:?}");
    }
    let c42 = code_of("dan", &path, &["--counter", "42"]);
    let r = run(&["code", "dan", "-c", p, NOW_ARG]);
    assert_eq!(r.stdout.trim(), c42, "{r:?}");
    assert!(
        r.stderr.contains("last accepted, 41") || r.stderr.contains("(41"),
        "{r:?}"
    );
    let r = run(&["verify", "dan", &c42, "-c", p, NOW_ARG]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("counter 42, the next one expected"),
        "{r:?}"
    );
    let r = run(&["status", "dan", "-c", p, NOW_ARG]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains("HOTP counter: last accepted 41, next expected 42"),
        "{r:?}"
    );
    assert!(r.stdout.contains("hotp token"), "{r:?}");
    let r = run(&["status", "alice", "-c", p, NOW_ARG]);
    assert!(r.stdout.contains("motp token"), "{r:?}");
}

#[test]
fn hotp_resync_with_the_memory_backend_moves_the_seed() {
    let dir = TempDir::new("tok-hotp-mem");
    let path = dir.config(CLEAN, 0o600);
    let r = run(&[
        "add-user",
        "dan",
        "--kind",
        "hotp",
        "--algorithm",
        "sha512",
        "--digits",
        "8",
        "--generate",
        "--no-qr",
        "-c",
        s(&path),
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("algorithm sha512, 8 digits"), "{r:?}");
    let config = Config::load(&path).unwrap();
    assert_eq!(config.users.get("dan").unwrap().key.len(), 64);
    let c = |n: u64| code_of("dan", &path, &["--counter", &n.to_string()]);
    assert_eq!(c(3).len(), 8);
    let r = run(&["resync", "dan", &c(300), &c(301), "-c", s(&path), NOW_ARG]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("counter 0 → 302"), "{r:?}");
    let r = run(&["verify", "dan", &c(302), "-c", s(&path), NOW_ARG]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = run(&["verify", "dan", &c(301), "-c", s(&path), NOW_ARG]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("old code"), "{r:?}");
}

#[test]
fn add_user_kind_options_are_checked() {
    let dir = TempDir::new("tok-opts");
    let path = dir.config(CLEAN, 0o600);
    for (args, why) in [
        (
            vec!["--kind", "totp", "--generate", "--pin", "1234"],
            "set-password",
        ),
        (vec!["--generate", "--period", "60"], "--kind totp"),
        (
            vec!["--kind", "totp", "--generate", "--counter", "3"],
            "HOTP",
        ),
        (
            vec!["--kind", "hotp", "--generate", "--period", "60"],
            "TOTP",
        ),
        (
            vec!["--kind", "totp", "--generate", "--period", "45"],
            "multiple of 10",
        ),
        (
            vec!["--kind", "totp", "--generate", "--digits", "7"],
            "6 or 8",
        ),
        (vec!["--kind", "totp", "--secret", "not base32!"], "base32"),
    ] {
        let mut all = vec!["add-user", "eve"];
        all.extend(&args);
        all.extend(["-c", s(&path)]);
        let r = run(&all);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.stderr.contains(why), "{args:?}: {r:?}");
        assert_eq!(fs::read_to_string(&path).unwrap(), CLEAN);
    }
    // An existing token's secret (a hardware token's sheet), read from standard input.
    let r = run_with_stdin(
        &[
            "add-user",
            "eve",
            "--kind",
            "totp",
            "--secret",
            "-",
            "-c",
            s(&path),
        ],
        "jbsw y3dp ehpk 3pxp\n",
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.all().contains("jbsw"), "{r:?}");
    let config = Config::load(&path).unwrap();
    assert_eq!(
        config.users.get("eve").unwrap().key,
        b"Hello!\xde\xad\xbe\xef"
    );
}
