//! `motpctl` CLI tests: check-config (helpers in `common/mod.rs`).

use std::fs;
use std::os::unix::fs::MetadataExt;

use motp_harness::temp::TempDir;

mod common;
use common::*;

#[test]
fn check_config_clean_exits_0() {
    let dir = TempDir::new("check-clean");
    let path = dir.config(CLEAN, 0o600);
    let r = run(&["check-config", s(&path), "--no-clock-check"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("ok: "), "{r:?}");
    assert!(r.stdout.contains("2 users"), "{r:?}");
    assert!(r.stdout.contains("0 errors, 0 warnings"), "{r:?}");
    // --config is the same as the argument.
    let r = run(&["check-config", "--config", s(&path), "--no-clock-check"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = run(&["check-config", s(&path), "--config", s(&path)]);
    assert_eq!(r.code, 2, "both forms at once: {r:?}");
}

#[test]
fn check_config_warns_about_uppercase_and_shared_pins_without_showing_them() {
    let dir = TempDir::new("check-warn");
    let path = dir.config(
        "[users.alice]\nsecret = \"0123456789ABCDEF\"\npin = \"2468\"\n\
         [users.bob]\nsecret = \"fedcba9876543210\"\npin = \"2468\"\n\
         [users.carol]\nsecret = \"00112233445566778899aabbccddeef\"\npin = \"13579\"\n\
         [state]\nbackend = \"memory\"\n",
        0o640,
    );
    let r = run(&["check-config", s(&path), "--no-clock-check"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout
            .contains("warning: users.alice.secret has uppercase"),
        "{r:?}"
    );
    assert!(
        r.stdout
            .contains("users alice, bob have the same 4-digit PIN"),
        "{r:?}"
    );
    assert!(
        r.stdout.contains("users.carol.secret has an odd number"),
        "{r:?}"
    );
    // A 5-digit mOTP PIN: Aegis and Stratum take only 4 digits.
    assert!(
        r.stdout
            .contains("warning: users.carol.pin is not 4 digits: Aegis and Stratum"),
        "{r:?}"
    );
    assert!(r.stdout.contains("0 errors, 4 warnings"), "{r:?}");
    for secret in ["0123456789ABCDEF", "fedcba9876543210", "2468", "13579"] {
        assert!(!r.all().contains(secret), "{secret} printed: {r:?}");
    }
}

#[test]
fn check_config_warns_about_what_common_apps_cannot_take() {
    let dir = TempDir::new("check-apps");
    // Every setting the plugin accepts, none an error: warnings only (exit 1), for the user's
    // own token and for further tokens alike.
    let path = dir.config(
        "[users.dora]
secret = \"0123456789abcdef\"\npin = \"12345678\"\n\
         [[users.dora.tokens]]\nname = \"hw\"\nkind = \"totp\"\nsecret = \"JBSWY3DPEHPK3PXP\"\n\
         period = 60\n\
         [[users.dora.tokens]]\nname = \"old-phone\"\nsecret = \"fedcba9876543210\"\npin = \"12\"\n\
         [users.erin]\nkind = \"totp\"\nsecret = \"JBSWY3DPEHPK3PXP\"\nalgorithm = \"sha256\"\n\
         digits = 8\n\
         [users.finn]\nkind = \"hotp\"\nsecret = \"JBSWY3DPEHPK3PXP\"\nalgorithm = \"sha512\"\n\
         [users.gus]\nkind = \"totp\"\nsecret = \"JBSWY3DPEHPK3PXP\"\n\
         [users.hal]\nsecret = \"00112233445566778899aabbccddeeff\"\npin = \"0042\"\n\
         [state]\nbackend = \"memory\"\n",
        0o640,
    );
    let r = run(&["check-config", s(&path), "--no-clock-check"]);
    assert_eq!(r.code, 1, "warnings, not errors: {r:?}");
    for expected in [
        "warning: users.dora.pin is not 4 digits",
        "warning: users.dora.tokens[1].pin is not 4 digits",
        "warning: users.dora.tokens[0] (`hw`): a totp token with a period of 60 s: many apps",
        "warning: users.erin: a totp token with algorithm sha256, 8 digits: many apps",
        "warning: users.finn: a hotp token with algorithm sha512",
    ] {
        assert!(r.stdout.contains(expected), "{expected}: {r:?}");
    }
    assert!(!r.stdout.contains("users.gus"), "SHA-1/6/30 is fine: {r:?}");
    assert!(!r.stdout.contains("users.hal"), "4 digits are fine: {r:?}");
    assert!(r.stdout.contains("0 errors, 5 warnings"), "{r:?}");
    for secret in ["12345678", "\"12\"", "0042", "JBSWY3DP", "fedcba98"] {
        assert!(!r.all().contains(secret), "{secret} printed: {r:?}");
    }
}

#[test]
fn check_config_errors_exit_2() {
    let dir = TempDir::new("check-err");
    // Missing file.
    let r = run(&[
        "check-config",
        s(&dir.join("nope.toml")),
        "--no-clock-check",
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stdout.contains("error: ") && r.stdout.contains("nope.toml"),
        "{r:?}"
    );
    // Readable by everyone: the plugin refuses it.
    let path = dir.config(CLEAN, 0o644);
    let r = run(&["check-config", s(&path), "--no-clock-check"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stdout.contains("chmod 0640"), "{r:?}");
    // A secret the plugin refuses (too short): the error names the key, not the value.
    let path = dir.config(
        "[users.alice]\nsecret = \"0123456789abcd\"\npin = \"1234\"\n",
        0o600,
    );
    let r = run(&["check-config", s(&path), "--no-clock-check"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stdout.contains("users.alice.secret"), "{r:?}");
    assert!(!r.all().contains("0123456789abcd\""), "{r:?}");
    // A typo in a key.
    let path = dir.config("windwo_secs = 3\n", 0o600);
    let r = run(&["check-config", s(&path), "--no-clock-check"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stdout.contains("line 1") && r.stdout.contains("windwo_secs"),
        "{r:?}"
    );
}

#[test]
fn check_config_runtime_user_checks() {
    let dir = TempDir::new("check-user");
    let path = dir.config(CLEAN, 0o600);
    // `nobody` cannot read a 0600 file it does not own: a reload after a privilege drop fails.
    let r = run(&[
        "check-config",
        s(&path),
        "--no-clock-check",
        "--runtime-user",
        "nobody",
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout.contains("the runtime user nobody cannot read"),
        "{r:?}"
    );
    // The owner can.
    let me = fs::metadata(&path).unwrap().uid();
    let name = run_id_un(me);
    let r = run(&["check-config", s(&path), "--no-clock-check", "-u", &name]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = run(&[
        "check-config",
        s(&path),
        "--no-clock-check",
        "--runtime-user",
        "no-such-user-motpctl",
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stdout.contains("no such user"), "{r:?}");
}

#[test]
fn check_config_reports_on_the_clock() {
    let dir = TempDir::new("check-clock");
    let path = dir.config(CLEAN, 0o600);
    let r = run(&["check-config", s(&path)]);
    // Synchronised (exit 0), or not / not checkable (a warning, exit 1): never silent.
    assert!(r.code == 0 || r.code == 1, "{r:?}");
    assert!(
        r.stdout.contains("clock is synchronised")
            || r.stdout.contains("clock is not synchronised")
            || r.stdout
                .contains("could not check whether the system clock"),
        "{r:?}"
    );
}

/// A motp.toml the runtime user (or a group) could change is an error, as the plugin refuses
/// it: the message names the file and the command that fixes it. As root, as the suite runs.
#[test]
fn check_config_refuses_a_config_others_than_root_could_change() {
    use std::os::unix::fs::PermissionsExt;
    motp_harness::runtime_user::require_root();
    let dir = TempDir::new("check-owner");
    // Owned by nobody (mode 0600): whoever runs as nobody could add users.
    let path = dir.config(CLEAN, 0o600);
    std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    let r = run(&["check-config", s(&path), "--no-clock-check"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stdout.contains("error: "), "{r:?}");
    assert!(r.stdout.contains(s(&path)), "names the file: {r:?}");
    assert!(r.stdout.contains("belongs to nobody (uid 65534)"), "{r:?}");
    assert!(
        r.stdout.contains(&format!("chown root {}", path.display())),
        "says the fix: {r:?}"
    );
    assert!(!r.stdout.contains("0 errors"), "{r:?}");

    // Root's, but writable by its group (mode 0660).
    let path = dir.config(CLEAN, 0o660);
    std::os::unix::fs::chown(&path, Some(0), Some(0)).unwrap();
    assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o660);
    assert_eq!(fs::metadata(&path).unwrap().uid(), 0);
    let r = run(&["check-config", s(&path), "--no-clock-check"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stdout.contains(s(&path)), "names the file: {r:?}");
    assert!(
        r.stdout
            .contains("writable by its group or by everyone (mode 0660)"),
        "{r:?}"
    );
    assert!(
        r.stdout.contains(&format!("chmod go-w {}", path.display())),
        "says the fix: {r:?}"
    );

    // Fixed as told: accepted.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    let r = run(&["check-config", s(&path), "--no-clock-check"]);
    assert_eq!(r.code, 0, "{r:?}");
}
