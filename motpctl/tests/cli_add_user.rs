//! `motpctl` CLI tests: add-user, remove-user, disable, enable (helpers in `common/mod.rs`).

use std::fs;
use std::os::unix::fs::MetadataExt;

use motp::config::Config;
use motp_harness::temp::TempDir;

mod common;
use common::*;

#[test]
fn add_user_keeps_comments_order_and_mode() {
    let dir = TempDir::new("add-keep");
    let path = dir.config(COMMENTED, 0o640);
    let r = run(&[
        "add-user",
        "carol",
        "--secret",
        "00112233445566778899aabbccddeeff",
        "--pin",
        "9753",
        "--common-name",
        "carol-phone.example",
        "--config",
        s(&path),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        !r.all().contains("00112233445566778899aabbccddeeff"),
        "{r:?}"
    );
    assert!(!r.all().contains("9753"), "{r:?}");
    let text = fs::read_to_string(&path).unwrap();
    // Every original line is still there, in the same order.
    let mut rest = text.as_str();
    for line in COMMENTED.lines().filter(|l| !l.is_empty()) {
        let at = rest
            .find(line)
            .unwrap_or_else(|| panic!("lost {line:?}:\n{text}"));
        rest = &rest[at + line.len()..];
    }
    // The new user sits after bob and before [state].
    let carol = text.find("[users.carol]").unwrap();
    assert!(carol > text.find("[users.bob]").unwrap() && carol < text.find("[state]").unwrap());
    assert!(text.contains(
        "\n\n[users.carol]\nsecret = \"00112233445566778899aabbccddeeff\"\npin = \"9753\"\n\
         common_name = \"carol-phone.example\"\n"
    ));
    assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, 0o640);
    assert_eq!(dir.entries(), ["motp.toml"], "no temporary file left");
    let config = Config::load(&path).unwrap();
    assert_eq!(config.users.len(), 3);
}

#[test]
fn add_user_generate_then_verify_a_code_from_motpctl_code() {
    let dir = TempDir::new("add-gen");
    let path = dir.config(CLEAN, 0o600);
    let r = run(&[
        "add-user",
        "dave",
        "--generate",
        "--issuer",
        "ACME VPN",
        "--config",
        s(&path),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let field = |prefix: &str| {
        r.stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {r:?}"))
            .to_owned()
    };
    let secret = field("secret: ");
    assert_eq!(secret.len(), 16);
    assert!(secret
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_eq!(
        field("provisioning URI: "),
        format!("motp://ACME%20VPN:dave?secret={secret}")
    );
    let pin = field("PIN: ");
    let pin = pin.split_whitespace().next().unwrap().to_owned();
    assert_eq!(pin.len(), 4);
    assert!(
        r.stdout.contains('█') || r.stdout.contains('▀'),
        "QR code: {r:?}"
    );

    let code = code_at(&secret, &pin, NOW);
    let r = run(&["verify", "dave", &code, "--config", s(&path), NOW_ARG]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.starts_with("valid: matches step +0"), "{r:?}");
    // A second generated secret differs.
    let r2 = run(&[
        "add-user",
        "erin",
        "--generate",
        "--pin",
        "1111",
        "--no-qr",
        "-c",
        s(&path),
    ]);
    assert_eq!(r2.code, 0, "{r2:?}");
    assert!(!r2.stdout.contains(&secret));
    assert!(
        !r2.stdout.contains("PIN:"),
        "a given PIN is not printed: {r2:?}"
    );
    assert!(!r2.stdout.contains('█'), "{r2:?}");
}

#[test]
fn add_user_errors_leave_the_file_alone() {
    let dir = TempDir::new("add-err");
    let path = dir.config(COMMENTED, 0o600);
    let check = |args: &[&str], expect: &str| {
        let mut all = args.to_vec();
        all.extend(["--config", s(&path)]);
        let r = run(&all);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.stderr.contains(expect), "{args:?}: {r:?}");
        assert_eq!(fs::read_to_string(&path).unwrap(), COMMENTED, "{args:?}");
        assert_eq!(dir.entries(), ["motp.toml"]);
    };
    check(
        &[
            "add-user",
            "alice",
            "--secret",
            "00112233445566778899aabbccddeeff",
            "--pin",
            "1",
        ],
        "already exists",
    );
    check(
        &["add-user", "zed", "--secret", "0123", "--pin", "1"],
        "16 to 32 hex",
    );
    check(&["add-user", "zed", "--pin", "1"], "--secret");
    check(
        &[
            "add-user",
            "zed",
            "--generate",
            "--secret",
            "0123456789abcdef",
        ],
        "cannot be used with",
    );
    // The plugin would refuse a PIN with a space: nothing is written.
    check(
        &[
            "add-user",
            "zed",
            "--secret",
            "0123456789abcdef",
            "--pin",
            "12 34",
        ],
        "refusing to write",
    );
    check(
        &[
            "add-user",
            "zed",
            "--secret",
            "0123456789abcdef",
            "--pin",
            "1",
            "--common-name",
            "",
        ],
        "refusing to write",
    );
    // Missing config.
    let r = run(&[
        "add-user",
        "zed",
        "--secret",
        "0123456789abcdef",
        "--pin",
        "1",
        "-c",
        s(&dir.join("missing.toml")),
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("missing.toml"), "{r:?}");
    // A config that is already broken is not edited.
    let broken = dir.join("broken.toml");
    fs::write(&broken, "windwo = 1\n").unwrap();
    let r = run(&["add-user", "zed", "--generate", "-c", s(&broken)]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("already invalid"), "{r:?}");
    assert!(
        !r.stdout.contains("secret:"),
        "no secret for an enrolment that failed"
    );
}

#[test]
fn add_user_warns_about_an_uppercase_secret() {
    let dir = TempDir::new("add-upper");
    let path = dir.config(CLEAN, 0o600);
    let r = run(&[
        "add-user",
        "carol",
        "--secret",
        "ABCDEF0123456789",
        "--pin",
        "1",
        "-c",
        s(&path),
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("warning: the secret has uppercase"),
        "{r:?}"
    );
    assert!(Config::load(&path).unwrap().users.get("carol").is_some());
}

#[test]
fn add_user_into_an_empty_config_and_through_a_symlink() {
    let dir = TempDir::new("add-empty");
    let path = dir.config("# nothing yet\n", 0o600);
    let link = dir.join("link.toml");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    let r = run(&[
        "add-user",
        "first.last@example.com",
        "--secret",
        "0123456789abcdef",
        "--pin",
        "1234",
        "-c",
        s(&link),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("# nothing yet\n"), "{text}");
    assert!(
        text.contains("[users.\"first.last@example.com\"]"),
        "{text}"
    );
    assert!(!text.contains("[users]\n"), "{text}");
    let config = Config::load(&path).unwrap();
    assert!(config.users.get("first.last@example.com").is_some());
}

#[test]
fn disable_enable_remove() {
    let dir = TempDir::new("disable");
    let path = dir.config(COMMENTED, 0o640);
    let p = s(&path);
    let code = code_at("0123456789abcdef", "1234", NOW);

    let r = run(&["disable", "alice", "-c", p]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        Config::load(&path)
            .unwrap()
            .users
            .get("alice")
            .unwrap()
            .disabled
    );
    assert!(fs::read_to_string(&path)
        .unwrap()
        .contains("pin = \"1234\"\ndisabled = true\n"));
    let r = run(&["verify", "alice", &code, "-c", p, NOW_ARG]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("disabled"), "{r:?}");
    let r = run(&["disable", "alice", "-c", p]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("already disabled"), "{r:?}");

    let r = run(&["enable", "alice", "-c", p]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(fs::read_to_string(&path).unwrap(), COMMENTED);
    let r = run(&["verify", "alice", &code, "-c", p, NOW_ARG]);
    assert_eq!(r.code, 0, "{r:?}");

    let r = run(&["remove-user", "alice", "-c", p]);
    assert_eq!(r.code, 0, "{r:?}");
    let text = fs::read_to_string(&path).unwrap();
    assert!(!text.contains("alice") && !text.contains("Aegis"), "{text}");
    assert!(
        text.contains("# --- users ---") && text.contains("# Bob: laptop"),
        "{text}"
    );
    assert!(text.contains("# end of file"), "{text}");
    assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, 0o640);

    for cmd in ["remove-user", "disable", "enable"] {
        let r = run(&[cmd, "alice", "-c", p]);
        assert_eq!(r.code, 2, "{cmd}: {r:?}");
        assert!(r.stderr.contains("no user `alice`"), "{cmd}: {r:?}");
        let r = run(&[cmd, "bob", "-c", s(&dir.join("missing.toml"))]);
        assert_eq!(r.code, 2, "{cmd}: {r:?}");
    }
}
