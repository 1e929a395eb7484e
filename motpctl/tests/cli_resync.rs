//! `motpctl` CLI tests: resync (helpers in `common/mod.rs`).

use std::fs;
use std::os::unix::fs::MetadataExt;

use motp::config::Config;
use motp_harness::temp::TempDir;

mod common;
use common::*;

#[test]
fn resync_finds_a_phone_five_and_a_half_hours_behind() {
    let dir = TempDir::new("resync");
    let path = dir.config(COMMENTED, 0o640);
    let p = s(&path);
    // The phone runs 5:30 h behind: it showed CODE1, then CODE2, which it shows now.
    let phone_now = NOW - 19_800;
    let code1 = code_at("0123456789abcdef", "1234", phone_now - 10);
    let code2 = code_at("0123456789abcdef", "1234", phone_now);
    let r = run(&["resync", "alice", &code1, &code2, "-c", p, NOW_ARG]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("alice: offset_secs 0 → -19800"), "{r:?}");
    assert!(r.stdout.contains("5 h 30 min behind"), "{r:?}");
    let config = Config::load(&path).unwrap();
    assert_eq!(config.users.get("alice").unwrap().offset_secs, -19_800);
    let text = fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("pin = \"1234\"\noffset_secs = -19800\n"),
        "{text}"
    );
    assert!(text.contains("# Alice's phone (Aegis)"), "{text}");
    assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, 0o640);

    // The phone's next code is now valid in the plugin's window.
    let code3 = code_at("0123456789abcdef", "1234", phone_now + 10);
    let r = run(&["verify", "alice", &code3, "-c", p, NOW_ARG]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("offset_secs = -19800"), "{r:?}");

    // Running it again changes nothing.
    let r = run(&["resync", "alice", &code1, &code2, "-c", p, NOW_ARG]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("already -19800"), "{r:?}");

    // A later resync moves it back, replacing the value in place.
    let c1 = code_at("0123456789abcdef", "1234", NOW + 30);
    let c2 = code_at("0123456789abcdef", "1234", NOW + 40);
    let r = run(&["resync", "alice", &c1, &c2, "-c", p, NOW_ARG]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("-19800 → 40"), "{r:?}");
    let text = fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("offset_secs = 40\n") && !text.contains("-19800"),
        "{text}"
    );
}

#[test]
fn resync_error_paths_change_nothing() {
    let dir = TempDir::new("resync-err");
    let path = dir.config(COMMENTED, 0o600);
    let p = s(&path);
    let code1 = code_at("0123456789abcdef", "1234", NOW - 10);
    let code2 = code_at("0123456789abcdef", "1234", NOW);
    for (args, expect) in [
        (vec!["resync", "alice", &code2, &code1], "older code first"),
        (
            vec!["resync", "alice", "000000", "111111"],
            "not two consecutive codes",
        ),
        (vec!["resync", "alice", "12345", &code2], "CODE1 must be"),
        (vec!["resync", "alice", &code1, "xyzxyz"], "CODE2 must be"),
        (vec!["resync", "nobody", &code1, &code2], "no user `nobody`"),
    ] {
        let mut all = args.clone();
        all.extend(["-c", p, NOW_ARG]);
        let r = run(&all);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.stderr.contains(expect), "{args:?}: {r:?}");
        assert_eq!(fs::read_to_string(&path).unwrap(), COMMENTED);
    }
    let r = run(&[
        "resync",
        "alice",
        &code1,
        &code2,
        "-c",
        s(&dir.join("no.toml")),
        NOW_ARG,
    ]);
    assert_eq!(r.code, 2, "{r:?}");
}
