//! `motpctl status` and `unlock` run by root on a state directory that belongs to the runtime
//! user (`nobody`), as on a real server. motpctl switches to the directory's owner before it
//! opens anything there, so a racer running as nobody that swaps the database, `-wal`, `-shm`
//! and `-journal` for symlinks to root's files can never make root write, create, chmod or
//! chown them; and the files motpctl leaves behind stay the runtime user's.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use motp_harness::runtime_user::{Hostile, Racer, NOBODY, NOGROUP};

const BIN: &str = env!("CARGO_BIN_EXE_motpctl");

fn setup(label: &str) -> Hostile {
    Hostile::create(
        label,
        "[users.alice]\nsecret = \"0123456789abcdef\"\npin = \"1234\"\n",
    )
}

/// Runs motpctl as root; returns its exit code and output.
fn motpctl(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn status_and_unlock_as_root_never_touch_roots_files_through_planted_links() {
    let s_ = setup("motpctl-racer");
    let racer = Racer::start(&s_.state, &s_.victims);
    for _ in 0..20 {
        let (code, out) = motpctl(&["status", "-c", s(&s_.config)]);
        // Any outcome but a crash: the racer may leave a symlink, a fresh database or nothing.
        assert!(code == 0 || code == 1 || code == 2, "{out}");
        assert!(!out.contains("panicked"), "{out}");
        let (code, out) = motpctl(&["unlock", "alice", "-c", s(&s_.config)]);
        assert!(code == 0 || code == 2, "{out}");
    }
    drop(racer);
    s_.victims.assert_untouched();
}

#[test]
fn status_and_unlock_as_root_keep_the_state_files_the_runtime_users() {
    let s_ = setup("motpctl-owner");
    let (code, out) = motpctl(&["status", "-c", s(&s_.config)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no state recorded yet"), "{out}");
    // A database file of the runtime user's, empty (as a crash can leave it): the store starts
    // it afresh in place, as nobody.
    let db = s_.state.join("motp-state.db");
    fs::write(&db, b"").unwrap();
    std::os::unix::fs::chown(&db, Some(NOBODY), Some(NOGROUP)).unwrap();
    fs::set_permissions(&db, fs::Permissions::from_mode(0o600)).unwrap();
    let (code, out) = motpctl(&["unlock", "alice", "-c", s(&s_.config)]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = motpctl(&["status", "-c", s(&s_.config)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("alice: not locked"), "{out}");
    for entry in fs::read_dir(&s_.state).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        assert_eq!(
            meta.uid(),
            NOBODY,
            "{} must stay the runtime user's",
            entry.path().display()
        );
    }
}
