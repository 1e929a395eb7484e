//! `motpctl` CLI tests: users with several tokens (`[[users.NAME.tokens]]`): add-user --token,
//! code --token, verify with any token, status per token row with the learned drift, resync
//! --token (helpers in `common/mod.rs`).

use std::fs;

use motp::config::{Config, Token};
use motp::engine::{base32, hotp_text, step_of, Algorithm};
use motp::state::StateStore;
use motp_harness::temp::TempDir;

mod common;
use common::*;

const HOTP_KEY: &[u8] = b"12345678901234567890";

fn totp(key: &[u8], at: i64) -> String {
    hotp_text(key, (at / 30) as u64, Algorithm::Sha1, 6)
}

#[test]
fn further_tokens_from_enrolment_to_resync() {
    let dir = TempDir::new("several-tokens");
    let state = dir.join("state");
    let path = dir.config(
        &format!(
            "# office VPN\n[users.sam]\nsecret = \"0123456789abcdef\"\npin = \"1234\"\n\n\
             [users.zoe]\nsecret = \"fedcba9876543210\"\npin = \"4321\"\n\n\
             [state]\nbackend = \"local\"\ndir = \"{}\"\n",
            state.display()
        ),
        0o600,
    );
    let p = s(&path);
    drop(store(&state));

    // A TOTP phone beside sam's mOTP token: written after sam's table, before zoe's.
    let r = run(&[
        "add-user",
        "sam",
        "--token",
        "phone",
        "--kind",
        "totp",
        "--generate",
        "--no-qr",
        "--issuer",
        "VPN",
        "-c",
        p,
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("added totp token phone of user sam"),
        "{r:?}"
    );
    assert!(
        r.stdout
            .contains("otpauth://totp/VPN:sam%20%28phone%29?secret="),
        "{r:?}"
    );
    let fob = base32::encode(HOTP_KEY);
    let r = run(&[
        "add-user", "sam", "--token", "fob", "--kind", "hotp", "--secret", &fob, "-c", p,
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let text = fs::read_to_string(&path).unwrap();
    let (sam, phone, fob_at, zoe) = (
        text.find("[users.sam]").unwrap(),
        text.find("name = \"phone\"").unwrap(),
        text.find("name = \"fob\"").unwrap(),
        text.find("[users.zoe]").unwrap(),
    );
    assert!(sam < phone && phone < fob_at && fob_at < zoe, "{text}");
    assert!(text.starts_with("# office VPN\n"), "{text}");
    // An mOTP token with a PIN Aegis and Stratum cannot take: added, with a warning.
    let r = run(&[
        "add-user",
        "sam",
        "--token",
        "old.phone",
        "--secret",
        "00112233445566778899aabbccddeeff",
        "--pin",
        "123456",
        "-c",
        p,
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("warning: the PIN is not 4 digits"),
        "{r:?}"
    );
    assert!(!r.all().contains("123456"), "{r:?}");
    // Refused: a name taken, a bad name, no such user, a common name (shared by the tokens).
    for (args, why) in [
        (
            vec!["--token", "phone", "--kind", "totp", "--generate"],
            "already has a token named `phone`",
        ),
        (
            vec!["--token", "has space", "--kind", "totp", "--generate"],
            "--token must be 1 to 32",
        ),
        (
            vec![
                "--token",
                "x",
                "--kind",
                "totp",
                "--generate",
                "--common-name",
                "c",
            ],
            "cannot be used with",
        ),
    ] {
        let mut all = vec!["add-user", "sam"];
        all.extend(args);
        all.extend(["-c", p]);
        let r = run(&all);
        assert_eq!(r.code, 2, "{r:?}");
        assert!(r.all().contains(why), "{why}: {r:?}");
    }
    let r = run(&[
        "add-user",
        "nobody",
        "--token",
        "x",
        "--kind",
        "totp",
        "--generate",
        "-c",
        p,
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("add the user first"), "{r:?}");

    let config = Config::load(&path).unwrap();
    let user = config.users.get("sam").unwrap();
    let names: Vec<&str> = user.more_tokens.iter().map(|t| &*t.name).collect();
    assert_eq!(names, ["phone", "fob", "old.phone"]);
    let phone_key = user.more_tokens[0].key().to_vec();
    assert!(matches!(user.more_tokens[1].token, Token::Hotp { .. }));

    // code --token: each token's code, computed as the plugin does.
    let r = run(&["code", "sam", "--token", "phone", "-c", p, NOW_ARG]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.trim(), totp(&phone_key, NOW));
    let r = run(&["code", "sam", "--token", "fob", "-c", p, NOW_ARG]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.trim(), hotp_text(HOTP_KEY, 0, Algorithm::Sha1, 6));
    let r = run(&["code", "sam", "-c", p, NOW_ARG]);
    assert_eq!(r.stdout.trim(), code_at("0123456789abcdef", "1234", NOW));
    let r = run(&["code", "sam", "--token", "nope", "-c", p, NOW_ARG]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("phone, fob, old.phone"), "{r:?}");

    // verify: any token's code, named.
    let r = run(&["verify", "sam", &totp(&phone_key, NOW), "-c", p, NOW_ARG]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("(token `phone`)"), "{r:?}");
    let r = run(&[
        "verify",
        "sam",
        &hotp_text(HOTP_KEY, 0, Algorithm::Sha1, 6),
        "-c",
        p,
        NOW_ARG,
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("matches counter 0 (token `fob`)"),
        "{r:?}"
    );
    // A phone code 300 s ahead: outside the window, and the advice names the token.
    let r = run(&[
        "verify",
        "sam",
        &totp(&phone_key, NOW + 300),
        "-c",
        p,
        NOW_ARG,
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout.contains("resync sam --token phone CODE1 CODE2"),
        "{r:?}"
    );

    // resync --token phone: the phone runs 300 s ahead; its own entry gets offset_secs.
    let (c1, c2) = (totp(&phone_key, NOW + 270), totp(&phone_key, NOW + 300));
    let r = run(&[
        "resync", "sam", &c1, &c2, "--token", "phone", "-c", p, NOW_ARG,
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("sam token phone: offset_secs 0 → 300"),
        "{r:?}"
    );
    let config = Config::load(&path).unwrap();
    let user = config.users.get("sam").unwrap();
    assert_eq!(user.offset_secs, 0, "the user's own token is untouched");
    assert_eq!(user.more_tokens[0].offset_secs, 300);
    // Both codes were recorded on the token's own row.
    let phone_row = user.more_tokens[0].state_key("sam");
    let fob_row = user.more_tokens[1].state_key("sam");
    {
        let store = store(&state);
        let seen = store.peek(&phone_row).unwrap();
        assert!(seen.last_step.is_some(), "{seen:?}");
        assert_eq!(seen.last_offset_secs, Some(300));
        assert_eq!(store.peek("sam").unwrap().last_step, None);
    }
    let r = run(&["verify", "sam", &c2, "-c", p, NOW_ARG]);
    assert_eq!(r.code, 1, "read out to the admin: used: {r:?}");

    // resync --token fob: the fob was pressed 20 times; the record moves its row's counter.
    let (h1, h2) = (
        hotp_text(HOTP_KEY, 20, Algorithm::Sha1, 6),
        hotp_text(HOTP_KEY, 21, Algorithm::Sha1, 6),
    );
    let r = run(&[
        "resync", "sam", &h1, &h2, "--token", "fob", "-c", p, NOW_ARG,
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains("sam token fob: the token is at counter 20"),
        "{r:?}"
    );
    let r = run(&["code", "sam", "--token", "fob", "-c", p, NOW_ARG]);
    assert_eq!(
        r.stdout.trim(),
        hotp_text(HOTP_KEY, 22, Algorithm::Sha1, 6),
        "{r:?}"
    );

    // status: the user's row (lock, failures, drift of its own token), then each token's row.
    {
        let store = store(&state);
        store
            .update("sam", &mut |s| {
                s.record_accepted(step_of(NOW + 150) - 3, 150);
                s.failures = 1;
            })
            .unwrap();
        store
            .update(&phone_row, &mut |s| {
                s.record_accepted(step_of(NOW + 5300), 5300);
            })
            .unwrap();
    }
    let r = run(&["status", "sam", "-c", p, NOW_ARG]);
    assert_eq!(r.code, 0, "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{r:?}");
    assert!(
        lines[0].starts_with("sam: not locked, 1 failed login"),
        "{r:?}"
    );
    assert!(
        lines[0].contains("phone clock seen +150 s from offset_secs"),
        "{r:?}"
    );
    assert!(lines[0].ends_with("motp token"), "{r:?}");
    assert!(
        lines[1].starts_with("sam token phone: totp token, last code accepted"),
        "{r:?}"
    );
    assert!(
        lines[1]
            .contains("phone clock seen +5000 s from offset_secs (beyond max_drift_secs = 3600"),
        "{r:?}"
    );
    assert_eq!(
        lines[2],
        "sam token fob: hotp token, HOTP counter: last accepted 21, next expected 22, state kept \
         (never pruned)",
        "{r:?}"
    );
    assert_eq!(lines[3], "sam token old.phone: motp token", "{r:?}");
    // zoe has one token: one line, nothing learned yet.
    let r = run(&["status", "zoe", "-c", p, NOW_ARG]);
    assert_eq!(r.stdout.lines().count(), 1, "{r:?}");
    assert!(!r.stdout.contains("phone clock"), "{r:?}");

    // Drift tracking off: still shown, said to be off.
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, format!("max_drift_secs = 0\n{text}")).unwrap();
    let r = run(&["status", "sam", "-c", p, NOW_ARG]);
    assert!(
        r.stdout
            .contains("phone clock seen +150 s from offset_secs (drift tracking off"),
        "{r:?}"
    );
    let _ = fob_row;
}
