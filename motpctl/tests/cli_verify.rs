//! `motpctl` CLI tests: verify (helpers in `common/mod.rs`).

use std::fs;
use std::os::unix::fs::PermissionsExt;

use motp_harness::temp::TempDir;

mod common;
use common::*;

#[test]
fn verify_reports_the_step_offset() {
    let dir = TempDir::new("verify");
    let path = dir.config(COMMENTED, 0o600);
    let before = fs::read(&path).unwrap();
    let p = s(&path);
    for (phone, expect) in [
        (0, "valid: matches step +0 (phone in step with the server)"),
        (
            10,
            "valid: matches step +1 (phone 10 s ahead of the server)",
        ),
        (
            -180,
            "valid: matches step -18 (phone 3 min behind the server)",
        ),
    ] {
        let code = code_at("0123456789abcdef", "1234", NOW + phone);
        let r = run(&["verify", "alice", &code, "--config", p, NOW_ARG]);
        assert_eq!(r.code, 0, "{r:?}");
        assert!(r.stdout.starts_with(expect), "{r:?}");
        assert!(!r.all().contains(&code), "the code is not echoed: {r:?}");
        // Upper case input is the same code.
        let r = run(&["verify", "alice", &code.to_uppercase(), "-c", p, NOW_ARG]);
        assert_eq!(r.code, 0, "{r:?}");
    }
    // Nothing was recorded.
    assert_eq!(fs::read(&path).unwrap(), before);
}

#[test]
fn verify_explains_a_phone_clock_that_is_off() {
    let dir = TempDir::new("verify-far");
    let path = dir.config(COMMENTED, 0o600);
    let code = code_at("0123456789abcdef", "1234", NOW - 19_800);
    let r = run(&["verify", "alice", &code, "-c", s(&path), NOW_ARG]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout.contains("not within the window of ±180 s"),
        "{r:?}"
    );
    assert!(r.stdout.contains("5 h 30 min behind the server"), "{r:?}");
    assert!(r.stdout.contains("motpctl resync alice"), "{r:?}");
}

#[test]
fn verify_invalid_and_error_paths() {
    let dir = TempDir::new("verify-err");
    let path = dir.config(
        "[users.alice]\nsecret = \"0123456789ABCDEF\"\npin = \"1234\"\n",
        0o600,
    );
    let p = s(&path);
    // Unknown user: invalid (1).
    let r = run(&["verify", "mallory", "123456", "-c", p, NOW_ARG]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("no user `mallory`"), "{r:?}");
    // Bad code format: error (2).
    for bad in ["12345", "1234567", "12345g", ""] {
        let r = run(&["verify", "alice", bad, "-c", p, NOW_ARG]);
        assert_eq!(r.code, 2, "{bad:?}: {r:?}");
        assert!(r.stderr.contains("6 hex characters"), "{r:?}");
    }
    // The phone lowercases the secret (Aegis): motpctl says so.
    let code = code_at("0123456789abcdef", "1234", NOW);
    let r = run(&["verify", "alice", &code, "-c", p, NOW_ARG]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("secret written in lowercase"), "{r:?}");
    // A wrong PIN matches nowhere.
    let code = code_at("0123456789ABCDEF", "9999", NOW);
    let r = run(&["verify", "alice", &code, "-c", p, NOW_ARG]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("does not match"), "{r:?}");
    // Missing or world-readable config: error.
    let r = run(&[
        "verify",
        "alice",
        "123456",
        "-c",
        s(&dir.join("x.toml")),
        NOW_ARG,
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o604)).unwrap();
    let r = run(&["verify", "alice", "123456", "-c", p, NOW_ARG]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("chmod 0640"), "{r:?}");
}
