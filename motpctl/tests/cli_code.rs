//! `motpctl` CLI tests: code (helpers in `common/mod.rs`).

use motp::engine::Code;

mod common;
use common::*;

#[test]
fn code_matches_the_published_vectors() {
    // Reference vectors (facts §2): counter 129612120 and 0.
    assert_eq!(code_at("0123456789abcdef", "6666", 1_296_121_200), "6ed4e4");
    assert_eq!(code_at("0123456789abcdef", "6666", 1_296_121_209), "6ed4e4");
    assert_eq!(code_at("0123456789abcdef", "1", 0), "bd94a4");
    // The secret is hashed as written.
    assert_eq!(code_at("0123456789ABCDEF", "6666", 1_296_121_200), "ebad68");
}

#[test]
fn code_reads_secret_and_pin_from_stdin() {
    let r = run_with_stdin(
        &["code", "--secret", "-", "--pin", "-", "--at", "1296121200"],
        "0123456789abcdef\n6666\n",
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout, "6ed4e4\n");
    let r = run_with_stdin(&["code", "--secret", "-", "--pin", "1"], "");
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("standard input"), "{r:?}");
}

#[test]
fn code_needs_secret_and_pin() {
    let r = run(&["code", "--secret", "0123456789abcdef"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--pin"), "{r:?}");
    let r = run(&["code", "--secret", "x", "--pin", "1", "--at", "soon"]);
    assert_eq!(r.code, 2, "{r:?}");
}

#[test]
fn code_watch_counts_down_and_stops_when_bounded() {
    let r = run(&[
        "code",
        "--secret",
        "0123456789abcdef",
        "--pin",
        "6666",
        "--watch",
        "--watch-for",
        "1",
        "--now",
        "1296121208",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines.len() >= 2, "{r:?}");
    assert_eq!(lines[0], "6ed4e4  next in  2 s");
    // Later lines follow the real clock from there (a slow machine may skip a second).
    for line in &lines[1..] {
        let (code, countdown) = line.split_once("  next in ").expect("format");
        assert!(Code::parse(code.as_bytes()).is_some(), "{line}");
        let secs: i64 = countdown.trim_end_matches(" s").trim().parse().unwrap();
        assert!((1..=10).contains(&secs), "{line}");
    }
}
