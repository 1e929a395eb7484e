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

/// `resync` run by root: the codes are recorded in the runtime user's store (by a child that
/// switched to nobody), and the offset written to root's motp.toml, which keeps its owner.
#[test]
fn resync_as_root_records_the_codes_in_the_runtime_users_store_and_writes_roots_config() {
    let s_ = setup("motpctl-resync");
    let now = motp::clock::now();
    let phone_now = now + 300;
    let code = |at: i64| motp::engine::code_at_time("0123456789abcdef", "1234", at).to_hex();
    let (code1, code2) = (code(phone_now - 10), code(phone_now));
    let (status, out) = motpctl(&["resync", "alice", &code1, &code2, "-c", s(&s_.config)]);
    assert_eq!(status, 0, "{out}");
    assert!(out.contains("offset_secs 0 → 300"), "{out}");
    let meta = fs::metadata(&s_.config).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (0, NOGROUP),
        "motp.toml stays root's"
    );
    let (status, out) = motpctl(&["verify", "alice", &code2, "-c", s(&s_.config)]);
    assert_eq!(status, 1, "{out}");
    assert!(out.contains("replay"), "{out}");
    for entry in fs::read_dir(&s_.state).unwrap() {
        let entry = entry.unwrap();
        assert_eq!(
            entry.metadata().unwrap().uid(),
            NOBODY,
            "{} must be the runtime user's",
            entry.path().display()
        );
    }
}
