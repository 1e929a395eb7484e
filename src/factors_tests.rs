//! The token kinds, static passwords and recovery codes through [`crate::auth::Authenticator`].

use std::path::Path;

use crate::auth::Decision;
use crate::config::Config;
use crate::engine::{base32, hotp_text, Algorithm, Totp};
use crate::login_fixture::Fixture;
use crate::secret_hash;

const NOW: i64 = 1_700_000_000;
/// RFC 4226's key, `12345678901234567890`, in base32.
const RFC_KEY_B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
const RFC_KEY: &[u8] = b"12345678901234567890";

fn totp_code(at: i64) -> String {
    let totp = Totp::default();
    let value = totp.value_at_step(RFC_KEY, totp.step_of(at) as u64);
    format!("{value:06}")
}

fn hotp_code(counter: u64) -> String {
    hotp_text(RFC_KEY, counter, Algorithm::Sha1, 6)
}

fn mixed_table(extra: &str) -> String {
    format!(
        r#"
max_failures = 100
[users.alice]
secret = "0123456789abcdef"
pin = "1234"
[users.tina]
kind = "totp"
secret = "{RFC_KEY_B32}"
[users.hank]
kind = "hotp"
secret = "{}"
counter = 0
{extra}
"#,
        base32::encode(RFC_KEY).to_lowercase()
    )
}

#[test]
fn totp_codes_are_accepted_once_within_the_window() {
    let f = Fixture::new(&mixed_table(""));
    assert_eq!(
        f.login_own_cert("tina", &totp_code(NOW), NOW),
        Decision::Accepted { step_offset: 0 }
    );
    assert_eq!(
        f.login_own_cert("tina", &totp_code(NOW), NOW + 1),
        Decision::Replay
    );
    assert_eq!(
        f.login_own_cert("tina", &totp_code(NOW - 60), NOW + 2),
        Decision::Replay
    );
    assert_eq!(
        f.login_own_cert("tina", &totp_code(NOW + 60), NOW + 3),
        Decision::Accepted { step_offset: 2 }
    );
    assert_eq!(
        f.login_own_cert("tina", &totp_code(NOW + 300), NOW + 4),
        Decision::BadCode
    );
    assert_eq!(
        f.login_own_cert("tina", "12345", NOW + 5),
        Decision::BadCode
    );
    // alice's mOTP in the same table is unchanged.
    let alice = crate::engine::code_at_time("0123456789abcdef", "1234", NOW).to_hex();
    assert!(f.login_own_cert("alice", &alice, NOW).is_accepted());
    assert_eq!(
        f.login_own_cert("nobody", "123456", NOW),
        Decision::UnknownUser
    );
}

#[test]
fn the_rfc_6238_vectors_log_in() {
    for (algorithm, key) in [
        ("sha1", &b"12345678901234567890"[..]),
        ("sha256", &b"12345678901234567890123456789012"[..]),
        (
            "sha512",
            &b"1234567890123456789012345678901234567890123456789012345678901234"[..],
        ),
    ] {
        let config = format!(
            "window_secs = 0\n[users.v]\nkind = \"totp\"\nsecret = \"{}\"\nalgorithm = \
             \"{algorithm}\"\ndigits = 8\n",
            base32::encode(key)
        );
        let f = Fixture::new(&config);
        let expected = match algorithm {
            "sha1" => "94287082",
            "sha256" => "46119246",
            _ => "90693936",
        };
        assert!(
            f.login_own_cert("v", expected, 59).is_accepted(),
            "{algorithm}"
        );
        let f = Fixture::new(&config);
        let expected = match algorithm {
            "sha1" => "89005924",
            "sha256" => "91819424",
            _ => "93441116",
        };
        assert!(
            f.login_own_cert("v", expected, 1_234_567_890).is_accepted(),
            "{algorithm}"
        );
    }
}

#[test]
fn hotp_moves_its_counter_past_each_accepted_code() {
    let f = Fixture::new(&mixed_table(""));
    // RFC 4226: counter 0 is 755224.
    assert_eq!(hotp_code(0), "755224");
    assert_eq!(
        f.login_own_cert("hank", "755224", NOW),
        Decision::Accepted { step_offset: 0 }
    );
    // Used: the search now starts after it, so it is no code of the window at all.
    assert_eq!(f.login_own_cert("hank", "755224", NOW), Decision::BadCode);
    // Three presses without logging in: still within the look-ahead.
    assert_eq!(
        f.login_own_cert("hank", &hotp_code(4), NOW),
        Decision::Accepted { step_offset: 3 }
    );
    // An older, never used code is no longer acceptable: the counter moved past it.
    assert_eq!(
        f.login_own_cert("hank", &hotp_code(2), NOW),
        Decision::BadCode
    );
    // Past the look-ahead (10 after the next counter, 5).
    assert_eq!(
        f.login_own_cert("hank", &hotp_code(16), NOW),
        Decision::BadCode
    );
    assert!(f.login_own_cert("hank", &hotp_code(15), NOW).is_accepted());
}

#[test]
fn a_static_password_goes_in_front_of_the_code_or_in_scrv1() {
    let hash = secret_hash::hash_password(b"hunter2");
    let f = Fixture::new(&mixed_table(&format!(
        "[users.pat]\nkind = \"totp\"\nsecret = \"{RFC_KEY_B32}\"\npassword = \"{hash}\"\n"
    )));
    let code = totp_code(NOW);
    assert_eq!(
        f.login_own_cert("pat", &format!("wrong{code}"), NOW),
        Decision::BadPassword
    );
    assert_eq!(f.login_own_cert("pat", &code, NOW), Decision::BadPassword);
    // The wrong password used nothing: the same code with the right one is accepted.
    assert!(f
        .login_own_cert("pat", &format!("hunter2{code}"), NOW)
        .is_accepted());
    assert_eq!(
        f.login_own_cert("pat", &format!("hunter2{code}"), NOW),
        Decision::Replay
    );
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let next = totp_code(NOW + 30);
    let scrv1 = format!("SCRV1:{}:{}", b64("hunter2"), b64(&next));
    assert!(f.login_own_cert("pat", &scrv1, NOW + 30).is_accepted());
    // Users without a password are unaffected by the table having one.
    assert!(f.login_own_cert("tina", &totp_code(NOW), NOW).is_accepted());
}

#[test]
fn a_recovery_code_is_accepted_once_in_place_of_the_code() {
    let codes = secret_hash::generate_recovery_codes(3);
    let hashes: Vec<String> = codes
        .iter()
        .map(|c| {
            let n = secret_hash::normalize_recovery_code(c.as_bytes()).unwrap();
            format!("\"{}\"", secret_hash::hash_recovery_code(&n))
        })
        .collect();
    let password = secret_hash::hash_password(b"pw");
    let f = Fixture::new(&mixed_table(&format!(
        "[users.rita]\nkind = \"totp\"\nsecret = \"{RFC_KEY_B32}\"\nrecovery_codes = [{}]\n\
         [users.paul]\nsecret = \"0123456789abcdef\"\npin = \"9\"\npassword = \"{password}\"\n\
         recovery_codes = [{}]\n",
        hashes.join(", "),
        hashes.join(", ")
    )));
    assert_eq!(
        f.login_own_cert("rita", &codes[1], NOW),
        Decision::RecoveryAccepted { index: 1 }
    );
    assert_eq!(f.login_own_cert("rita", &codes[1], NOW), Decision::Replay);
    assert_eq!(
        f.login_own_cert("rita", &codes[2].to_uppercase().replace('-', ""), NOW),
        Decision::RecoveryAccepted { index: 2 }
    );
    assert_eq!(
        f.login_own_cert("rita", "aaaa-bbbb-cccc", NOW),
        Decision::BadCode
    );
    // With a static password, in front of the recovery code.
    assert_eq!(
        f.login_own_cert("paul", &format!("xx{}", codes[0].as_str()), NOW),
        Decision::BadPassword
    );
    assert_eq!(
        f.login_own_cert("paul", &format!("pw{}", codes[0].as_str()), NOW),
        Decision::RecoveryAccepted { index: 0 }
    );
}

#[test]
fn kind_settings_are_checked_with_the_place_named() {
    let refused = |user: &str, key: &str| {
        let text = format!("[users.u]\n{user}\n");
        let e = Config::parse(Path::new("t.toml"), &text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some(key), "{text}: {e}");
        assert!(!e.to_string().contains(RFC_KEY_B32), "{e}");
    };
    refused(
        &format!("kind = \"totp\"\nsecret = \"{RFC_KEY_B32}\"\npin = \"1\""),
        "users.u.pin",
    );
    refused(
        "kind = \"totp\"\nsecret = \"not base32!\"",
        "users.u.secret",
    );
    refused(
        &format!("kind = \"totp\"\nsecret = \"{RFC_KEY_B32}\"\ndigits = 7"),
        "users.u.digits",
    );
    refused(
        &format!("kind = \"totp\"\nsecret = \"{RFC_KEY_B32}\"\nperiod = 45"),
        "users.u.period",
    );
    refused(
        &format!("kind = \"sms\"\nsecret = \"{RFC_KEY_B32}\""),
        "users.u.kind",
    );
    refused(
        &format!("kind = \"totp\"\nsecret = \"{RFC_KEY_B32}\"\nalgorithm = \"md5\""),
        "users.u.algorithm",
    );
    refused("secret = \"0123456789abcdef\"", "users.u.pin");
    refused(
        "secret = \"0123456789abcdef\"\npin = \"1\"\nperiod = 30",
        "users.u.period",
    );
    refused(
        &format!("kind = \"totp\"\nsecret = \"{RFC_KEY_B32}\"\npassword = \"plain\""),
        "users.u.password",
    );
}

#[test]
fn any_of_several_tokens_logs_in_and_each_keeps_its_own_replay_state() {
    let hotp_key = base32::encode(b"abcdefghijabcdefghij");
    let f = Fixture::new(&format!(
        r#"
max_failures = 3
[users.sam]
secret = "0123456789abcdef"
pin = "1234"
[[users.sam.tokens]]
name = "phone"
kind = "totp"
secret = "{RFC_KEY_B32}"
[[users.sam.tokens]]
name = "yubikey"
kind = "hotp"
secret = "{hotp_key}"
"#
    ));
    let motp = crate::engine::code_at_time("0123456789abcdef", "1234", NOW).to_hex();
    let key2 = b"abcdefghijabcdefghij";
    assert!(f.login_own_cert("sam", &motp, NOW).is_accepted());
    // The TOTP token's step is its own: the mOTP acceptance at the same moment does not use it.
    assert!(f.login_own_cert("sam", &totp_code(NOW), NOW).is_accepted());
    assert_eq!(
        f.login_own_cert("sam", &totp_code(NOW), NOW),
        Decision::Replay
    );
    let h0 = hotp_text(key2, 0, Algorithm::Sha1, 6);
    assert!(f.login_own_cert("sam", &h0, NOW).is_accepted());
    assert!(f
        .login_own_cert("sam", &hotp_text(key2, 1, Algorithm::Sha1, 6), NOW)
        .is_accepted());
    // The user's row keeps the lock for every token: after 3 failures the next good code of
    // any token is refused.
    for _ in 0..3 {
        assert_eq!(
            f.login_own_cert("sam", "000000", NOW + 1),
            Decision::BadCode
        );
    }
    let h2 = hotp_text(key2, 2, Algorithm::Sha1, 6);
    assert!(matches!(
        f.login_own_cert("sam", &h2, NOW + 2),
        Decision::Locked { .. }
    ));
    // ... and that code was not used up by the refused login.
    assert!(f.login_own_cert("sam", &h2, NOW + 400).is_accepted());
}

#[test]
fn token_names_are_checked() {
    let refused = |tokens: &str, key: &str| {
        let text = format!("[users.u]\nsecret = \"0123456789abcdef\"\npin = \"1\"\n{tokens}");
        let e = Config::parse(Path::new("t.toml"), &text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some(key), "{text}: {e}");
    };
    let token = |name: &str| {
        format!(
            "[[users.u.tokens]]\nname = \"{name}\"\nkind = \"totp\"\nsecret = \"{RFC_KEY_B32}\"\n"
        )
    };
    refused(&token("has space"), "users.u.tokens[0].name");
    refused(
        &format!("{}{}", token("a"), token("a")),
        "users.u.tokens[1].name",
    );
    refused(
        "[[users.u.tokens]]\nname = \"x\"\nkind = \"totp\"\nsecret = \"no!\"\n",
        "users.u.tokens[0].secret",
    );
}

#[test]
fn hotp_tokens_that_differ_only_in_their_seed_are_one_kind_of_work() {
    let f = Fixture::new(&format!(
        "[users.a]\nkind = \"hotp\"\nsecret = \"{RFC_KEY_B32}\"\ncounter = 5\n\
         [users.b]\nkind = \"hotp\"\nsecret = \"{RFC_KEY_B32}\"\ncounter = 9\n"
    ));
    assert_eq!(
        f.config.users.tokens().len(),
        1,
        "{:?}",
        f.config.users.tokens()
    );
    assert!(f.login_own_cert("b", &hotp_code(9), NOW).is_accepted());
}
