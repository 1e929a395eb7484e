//! `motpctl` CLI tests: hash-password, set-password, recovery-codes (helpers in
//! `common/mod.rs`).
//!
//! The edits write `password` and `recovery_codes`, which the file is checked with the plugin's
//! own loader before it is replaced. Where the loader in this tree does not know these keys yet
//! (issue 16 lands them in src/config separately), the editing tests check the refusal instead:
//! exit 2, the file untouched, no secret printed. Once it does, they check the edits.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use motp::config::Config;
use motp::secret_hash::{self, RecoveryHash};
use motp_harness::temp::TempDir;
use toml_edit::DocumentMut;

mod common;
use common::*;

const PASSWORD: &str = "Tr0ub4dor&3 horse";

/// Whether the loader accepts a user with `password` and `recovery_codes`.
fn loader_knows_new_keys() -> bool {
    let text = format!(
        "[users.a]\nsecret = \"0123456789abcdef\"\npin = \"1234\"\npassword = \"{}\"\n\
         recovery_codes = [\"{}\"]\n",
        secret_hash::hash_password(b"x"),
        secret_hash::hash_recovery_code(b"12345678"),
    );
    let known = Config::parse(Path::new("probe.toml"), &text).is_ok();
    if !known {
        eprintln!(
            "note: this tree's config loader refuses `password`/`recovery_codes`; checking that \
             motpctl refuses to write and changes nothing"
        );
    }
    known
}

/// The loader refused the edit: exit 2, the file exactly as before, no temporary file left.
fn assert_refused_unchanged(r: &Run, dir: &TempDir, path: &Path, before: &str) {
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("unknown field"), "{r:?}");
    assert!(r.stdout.is_empty(), "{r:?}");
    assert_eq!(fs::read_to_string(path).unwrap(), before);
    assert_eq!(dir.entries(), ["motp.toml"], "no temporary file left");
}

/// Every line of `original` is still in `text`, in the same order.
fn assert_keeps_lines(original: &str, text: &str) {
    let mut rest = text;
    for line in original.lines().filter(|l| !l.is_empty()) {
        let at = rest
            .find(line)
            .unwrap_or_else(|| panic!("lost {line:?}:\n{text}"));
        rest = &rest[at + line.len()..];
    }
}

fn user_str(text: &str, user: &str, key: &str) -> Option<String> {
    let doc: DocumentMut = text.parse().unwrap();
    doc["users"][user]
        .get(key)
        .map(|v| v.as_str().unwrap().to_owned())
}

fn user_hashes(text: &str, user: &str) -> Vec<String> {
    let doc: DocumentMut = text.parse().unwrap();
    doc["users"][user]["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn hash_password_prints_a_phc_string_that_verifies() {
    let r = run_with_stdin(&["hash-password"], &format!("{PASSWORD}\n"));
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.all().contains(PASSWORD), "{r:?}");
    assert!(
        r.stderr.is_empty(),
        "no prompt when stdin is no terminal: {r:?}"
    );
    let line = r.stdout.strip_suffix('\n').unwrap();
    assert!(!line.contains('\n'), "one line: {r:?}");
    assert!(line.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{r:?}");
    let parsed = secret_hash::parse_password_hash(line).unwrap();
    assert!(secret_hash::verify_password(&parsed, PASSWORD.as_bytes()));
    assert!(!secret_hash::verify_password(
        &parsed,
        b"Tr0ub4dor&3 horse\n"
    ));
    // The line end is not part of the password, whether \n or \r\n, or missing.
    for input in [format!("{PASSWORD}\r\n"), PASSWORD.to_owned()] {
        let r = run_with_stdin(&["hash-password"], &input);
        assert_eq!(r.code, 0, "{r:?}");
        let parsed = secret_hash::parse_password_hash(r.stdout.trim_end()).unwrap();
        assert!(secret_hash::verify_password(&parsed, PASSWORD.as_bytes()));
    }
    // Only the first line is read.
    let r = run_with_stdin(&["hash-password"], &format!("{PASSWORD}\nsecond\n"));
    let parsed = secret_hash::parse_password_hash(r.stdout.trim_end()).unwrap();
    assert!(secret_hash::verify_password(&parsed, PASSWORD.as_bytes()));
}

#[test]
fn hash_password_refuses_empty_and_untypable_passwords() {
    for (input, why) in [
        ("", "no password"),
        ("\n", "empty"),
        ("\r\n", "empty"),
        ("tab\there\n", "control character"),
        ("esc\x1b[0m\n", "control character"),
    ] {
        let r = run_with_stdin(&["hash-password"], input);
        assert_eq!(r.code, 2, "{input:?}: {r:?}");
        assert!(r.stdout.is_empty(), "{input:?}: {r:?}");
        assert!(r.stderr.contains(why), "{input:?}: {r:?}");
        assert!(
            !r.stderr.contains("\there") && !r.stderr.contains("[0m"),
            "{r:?}"
        );
    }
    let long = "x".repeat(1025);
    let r = run_with_stdin(&["hash-password"], &format!("{long}\n"));
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("longer than 1024 bytes"), "{r:?}");
    let r = run_with_stdin(&["hash-password"], &format!("{}\n", &long[1..]));
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn set_password_keeps_comments_and_other_users() {
    let dir = TempDir::new("set-pw");
    let path = dir.config(COMMENTED, 0o640);
    let args = ["set-password", "alice", "--config", s(&path)];
    let r = run_with_stdin(&args, &format!("{PASSWORD}\n"));
    assert!(!r.all().contains(PASSWORD), "{r:?}");
    if !loader_knows_new_keys() {
        assert_refused_unchanged(&r, &dir, &path, COMMENTED);
        return;
    }
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains(&format!("user alice in {}", path.display())),
        "{r:?}"
    );
    assert!(r.stdout.contains("within one to two seconds"), "{r:?}");
    let text = fs::read_to_string(&path).unwrap();
    assert!(!text.contains(PASSWORD), "{text}");
    assert_keeps_lines(COMMENTED, &text);
    let phc = user_str(&text, "alice", "password").expect("alice has a password");
    let parsed = secret_hash::parse_password_hash(&phc).unwrap();
    assert!(secret_hash::verify_password(&parsed, PASSWORD.as_bytes()));
    assert_eq!(user_str(&text, "bob", "password"), None);
    assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, 0o640);
    assert_eq!(dir.entries(), ["motp.toml"], "no temporary file left");
    assert_eq!(Config::load(&path).unwrap().users.len(), 2);

    // A second run replaces the hash in place.
    let r = run_with_stdin(&args, "another one\n");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("replaced"), "{r:?}");
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(text.matches("password =").count(), 1, "{text}");
    let parsed =
        secret_hash::parse_password_hash(&user_str(&text, "alice", "password").unwrap()).unwrap();
    assert!(secret_hash::verify_password(&parsed, b"another one"));
    assert!(!secret_hash::verify_password(&parsed, PASSWORD.as_bytes()));

    // --remove gives back the original file, byte for byte.
    let r = run(&["set-password", "alice", "--remove", "--config", s(&path)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("removed the static password"), "{r:?}");
    assert_eq!(fs::read_to_string(&path).unwrap(), COMMENTED);
    let r = run(&["set-password", "alice", "--remove", "--config", s(&path)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("nothing changed"), "{r:?}");
}

#[test]
fn set_password_refusals_change_nothing() {
    let dir = TempDir::new("set-pw-no");
    let path = dir.config(CLEAN, 0o600);
    for (args, input, why) in [
        (&["set-password", "carol"][..], "pw\n", "no user `carol`"),
        (&["set-password", "alice"][..], "\n", "empty"),
        (&["set-password", "alice"][..], "", "no password"),
        (
            &["set-password", "carol", "--remove"][..],
            "",
            "no user `carol`",
        ),
    ] {
        let mut args = args.to_vec();
        args.extend(["--config", s(&path)]);
        let r = run_with_stdin(&args, input);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.stderr.contains(why), "{args:?}: {r:?}");
        assert_eq!(fs::read_to_string(&path).unwrap(), CLEAN);
    }
    assert_eq!(dir.entries(), ["motp.toml"]);
}

#[test]
fn recovery_codes_are_printed_once_and_stored_as_hashes() {
    let dir = TempDir::new("rc");
    let path = dir.config(COMMENTED, 0o600);
    let args = [
        "recovery-codes",
        "bob",
        "--count",
        "5",
        "--config",
        s(&path),
    ];
    let r = run(&args);
    if !loader_knows_new_keys() {
        assert_refused_unchanged(&r, &dir, &path, COMMENTED);
        return;
    }
    assert_eq!(r.code, 0, "{r:?}");
    let codes: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(codes.len(), 5, "{r:?}");
    for code in &codes {
        assert_eq!(code.len(), 14, "{code}");
        assert!(!r.stderr.contains(code), "{r:?}");
    }
    assert!(r.stderr.contains("shown only this once"), "{r:?}");
    assert!(r.stderr.contains("within one to two seconds"), "{r:?}");
    assert!(
        !r.stderr.contains("previous"),
        "there was no set before: {r:?}"
    );
    let text = fs::read_to_string(&path).unwrap();
    assert_keeps_lines(COMMENTED, &text);
    let stored = user_hashes(&text, "bob");
    assert_eq!(stored.len(), 5, "{text}");
    let hashes: Vec<RecoveryHash> = stored
        .iter()
        .map(|h| secret_hash::parse_recovery_hash(h).unwrap())
        .collect();
    for (i, code) in codes.iter().enumerate() {
        let bare = code.replace('-', "");
        assert!(!text.contains(code) && !text.contains(&bare), "{text}");
        let n = secret_hash::normalize_recovery_code(code.as_bytes()).unwrap();
        assert_eq!(secret_hash::recovery_match(&hashes, &n), Some(i), "{code}");
        // As a user types it: upper case, spaces.
        let typed = code.to_uppercase().replace('-', " ");
        let n = secret_hash::normalize_recovery_code(typed.as_bytes()).unwrap();
        assert_eq!(secret_hash::recovery_match(&hashes, &n), Some(i), "{typed}");
    }
    let doc: DocumentMut = text.parse().unwrap();
    assert!(
        doc["users"]["alice"].get("recovery_codes").is_none(),
        "{text}"
    );
    // One hash per line, readable in the file.
    assert!(
        text.contains("recovery_codes = [\n    \"$motp-rc$v=1$"),
        "{text}"
    );
    assert_eq!(Config::load(&path).unwrap().users.len(), 2);

    // A new set replaces the old one: the old codes match none of the new hashes.
    let r = run(&["recovery-codes", "bob", "--config", s(&path)]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.lines().count(), 10, "default count: {r:?}");
    assert!(
        r.stderr
            .contains("previous 5 recovery codes of bob no longer work"),
        "{r:?}"
    );
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(text.matches("recovery_codes").count(), 1, "{text}");
    let hashes: Vec<RecoveryHash> = user_hashes(&text, "bob")
        .iter()
        .map(|h| secret_hash::parse_recovery_hash(h).unwrap())
        .collect();
    assert_eq!(hashes.len(), 10);
    for code in codes {
        let n = secret_hash::normalize_recovery_code(code.as_bytes()).unwrap();
        assert_eq!(secret_hash::recovery_match(&hashes, &n), None);
    }
}

#[test]
fn recovery_code_count_is_1_to_32() {
    let dir = TempDir::new("rc-count");
    let path = dir.config(CLEAN, 0o600);
    for bad in ["0", "33", "-1", "ten"] {
        let r = run(&[
            "recovery-codes",
            "alice",
            "--count",
            bad,
            "--config",
            s(&path),
        ]);
        assert_eq!(r.code, 2, "{bad}: {r:?}");
        assert!(r.stdout.is_empty(), "{bad}: {r:?}");
        assert_eq!(fs::read_to_string(&path).unwrap(), CLEAN);
    }
    let known = loader_knows_new_keys();
    for (count, lines) in [("1", 1), ("32", 32)] {
        let r = run(&[
            "recovery-codes",
            "alice",
            "--count",
            count,
            "--config",
            s(&path),
        ]);
        if !known {
            assert_refused_unchanged(&r, &dir, &path, CLEAN);
            continue;
        }
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(r.stdout.lines().count(), lines, "{r:?}");
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(user_hashes(&text, "alice").len(), lines);
    }
    let r = run(&["recovery-codes", "carol", "--config", s(&path)]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("no user `carol`"), "{r:?}");
    assert!(
        r.stdout.is_empty(),
        "no code printed that was not stored: {r:?}"
    );
}
