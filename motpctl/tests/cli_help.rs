//! `motpctl` CLI tests: help, version, completions, man pages (helpers in `common/mod.rs`).

use std::fs;

use motp_harness::temp::TempDir;

mod common;
use common::*;

#[test]
fn every_subcommand_has_help_with_exit_codes() {
    for sub in [
        &["code"][..],
        &["check-config"],
        &["add-user"],
        &["remove-user"],
        &["disable"],
        &["enable"],
        &["hash-password"],
        &["set-password"],
        &["recovery-codes"],
        &["verify"],
        &["resync"],
        &["status"],
        &["unlock"],
        &["import", "pam-motp"],
        &["import", "openvpn-otp"],
        &["completions"],
    ] {
        let mut args = sub.to_vec();
        args.push("--help");
        let r = run(&args);
        assert_eq!(r.code, 0, "{sub:?}: {r:?}");
        assert!(r.stdout.contains("Exit status"), "{sub:?}: {r:?}");
        assert!(r.stdout.contains("Usage: motpctl"), "{sub:?}: {r:?}");
    }
    let r = run(&["--help"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("check-config"), "{r:?}");
    assert!(!r.stdout.contains("\n  man "), "man is hidden: {r:?}");
    let r = run(&["import", "--help"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("pam-motp") && r.stdout.contains("openvpn-otp"));
}

#[test]
fn version_and_usage_errors() {
    let r = run(&["--version"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.starts_with("motpctl "), "{r:?}");
    let r = run(&["no-such-command"]);
    assert_eq!(r.code, 2, "{r:?}");
    let r = run(&[]);
    assert_eq!(r.code, 2, "{r:?}");
}

#[test]
fn completions_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let r = run(&["completions", shell]);
        assert_eq!(r.code, 0, "{shell}: {r:?}");
        assert!(r.stdout.contains("check-config"), "{shell}");
    }
    assert_eq!(run(&["completions", "tcsh"]).code, 2);
}

#[test]
fn man_pages_are_generated() {
    let dir = TempDir::new("man");
    let out = dir.join("man1");
    let r = run(&["man", "--out", s(&out)]);
    assert_eq!(r.code, 0, "{r:?}");
    for page in [
        "motpctl.1",
        "motpctl-verify.1",
        "motpctl-check-config.1",
        "motpctl-import-pam-motp.1",
    ] {
        let text = fs::read_to_string(out.join(page)).unwrap();
        assert!(text.contains(".TH"), "{page}");
    }
    let main = fs::read_to_string(out.join("motpctl.1")).unwrap();
    assert!(main.contains("Exit status"));
    assert!(!out.join("motpctl-man.1").exists());
}
