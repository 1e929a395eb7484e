//! Unit tests of motp.toml's reading: the accepted shapes, every refusal's line, key and
//! wording (never a secret or a PIN), and the user table's lookups. `[state]`, the file checks
//! and the fast path have their own files under `tests/`.

use std::path::Path;

use super::*;

mod fast_path;
mod file;
mod state;

const GOOD: &str = r#"
window_secs = 120
max_failures = 3

[users.alice]
secret = "0123456789abcdef"
pin = "1234"
offset_secs = -30
common_name = "alice.example"

[users.bob]
secret = "0123456789ABCDEF0123456789abcdef"
pin = "0007"
disabled = true
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("/etc/openvpn/motp.toml"), text)
}

fn refused(text: &str) -> ConfigError {
    match parse(text) {
        Ok(_) => panic!("config was accepted:\n{text}"),
        Err(e) => e,
    }
}

#[test]
fn good_config_loads() {
    let c = parse(GOOD).unwrap();
    assert_eq!(
        c.policy,
        Policy {
            window_secs: 120,
            max_failures: 3,
            lockout_secs: 300,
            require_common_name: true,
            max_failures_per_ip: 20,
            ip_lockout_secs: 600,
            ip_prefix_v4: 32,
            ip_prefix_v6: 64,
            hotp_window: 10,
            max_drift_secs: 3600,
        }
    );
    let alice = c.users.get("alice").unwrap();
    assert_eq!(alice.key, b"0123456789abcdef1234");
    assert_eq!(alice.offset_secs, -30);
    assert_eq!(alice.expected_common_name("alice"), "alice.example");
    let bob = c.users.get("bob").unwrap();
    assert!(bob.disabled);
    assert_eq!(bob.expected_common_name("bob"), "bob");
    assert_eq!(c.users.len(), 2);
    let longest = c
        .users
        .names()
        .map(|n| c.users.get(n).unwrap().key.len())
        .max();
    assert_eq!(Some(c.users.longest_key()), longest);
    assert_eq!(parse("").unwrap().users.longest_key(), 0);
}

#[test]
fn empty_config_has_defaults() {
    let c = parse("").unwrap();
    assert_eq!(c.policy, Policy::default());
    assert!(c.users.is_empty());
}

fn assert_names(err: &ConfigError, line: usize, key: &str) {
    let text = err.to_string();
    assert_eq!(err.line, Some(line), "{text}");
    assert_eq!(err.key.as_deref(), Some(key), "{text}");
    assert!(text.contains("/etc/openvpn/motp.toml"), "{text}");
    assert!(text.contains(key), "{text}");
}

#[test]
fn unknown_key_is_refused() {
    let e = refused("window_secs = 60\nwindwo = 3\n");
    assert_names(&e, 2, "windwo");
    let e = refused("[users.alice]\nsecret = \"0123456789abcdef\"\npin = \"1\"\nsecrte = \"x\"\n");
    assert_names(&e, 4, "users.alice.secrte");
}

#[test]
fn missing_secret_or_pin_is_refused() {
    let e = refused("[users.alice]\npin = \"1234\"\n");
    assert!(e.message.contains("secret"), "{e}");
    assert!(e.key.as_deref().unwrap().contains("users.alice"), "{e}");
    let e = refused("[users.alice]\nsecret = \"0123456789abcdef\"\n");
    assert!(e.message.contains("pin"), "{e}");
}

#[test]
fn bad_secret_is_refused_without_showing_it() {
    for secret in [
        "0123456789abcde",
        "0123456789abcdef0123456789abcdef0",
        "0123456789abcdeg",
        "",
    ] {
        let e = refused(&format!(
            "[users.alice]\nsecret = \"{secret}\"\npin = \"1234\"\n"
        ));
        assert_names(&e, 2, "users.alice.secret");
        if !secret.is_empty() {
            assert!(!e.to_string().contains(secret), "{e}");
        }
    }
}

#[test]
fn bad_pin_is_refused_without_showing_it() {
    for pin in ["", "12\u{7}4", "12 34"] {
        let e = refused(&format!(
            "[users.alice]\nsecret = \"0123456789abcdef\"\npin = \"{pin}\"\n"
        ));
        assert_names(&e, 3, "users.alice.pin");
    }
    let e = refused("[users.alice]\nsecret = \"0123456789abcdef\"\npin = 98765\n");
    assert_names(&e, 3, "users.alice.pin");
    assert!(!e.to_string().contains("98765"), "{e}");
    let e = refused("[users.alice]\nsecret = 1234567890123456789\npin = \"1\"\n");
    assert!(!e.to_string().contains("1234567890123456789"), "{e}");
}

#[test]
fn syntax_error_does_not_echo_the_line() {
    let e = refused("[users.alice]\nsecret = \"0123456789abcdef\npin = \"4321\"\n");
    assert_eq!(e.line, Some(2), "{e}");
    assert!(!e.to_string().contains("0123456789abcdef"), "{e}");
}

#[test]
fn a_secret_in_the_wrong_place_is_not_echoed() {
    // Found by the config fuzzer: a username left out of the table header.
    let e = refused("[users]\nsecret = \"0123456789abcdef\"\npin = \"4321\"\n");
    let text = e.to_string();
    assert!(!text.contains("0123456789abcdef"), "{text}");
    assert!(!text.contains("4321"), "{text}");
    let e = refused("[users]\npin = 98765\n");
    assert!(!e.to_string().contains("98765"), "{e}");
}

#[test]
fn parser_errors_are_single_lines() {
    // Found by the config fuzzer: TOML messages with newlines, control characters in keys.
    for text in [
        "[a]\n[a]\n",
        "a = \"\\q\"\n",
        "a = 1_\n",
        "window\rsecs = 1\n",
    ] {
        let e = refused(text).to_string();
        assert!(!e.contains(['\n', '\r']), "{e:?}");
    }
}

#[test]
fn duplicate_user_is_refused() {
    let text = "[users.alice]\nsecret = \"0123456789abcdef\"\npin = \"1\"\n\
                [users.alice]\nsecret = \"0123456789abcdef\"\npin = \"2\"\n";
    let e = refused(text);
    assert_eq!(e.line, Some(4), "{e}");
    assert_eq!(e.key.as_deref(), Some("users.alice"), "{e}");
}

#[test]
fn window_over_an_hour_is_refused() {
    assert_names(&refused("window_secs = 3601\n"), 1, "window_secs");
    assert!(parse("window_secs = 3600\n").is_ok());
}

#[test]
fn negative_and_huge_numbers_are_refused() {
    assert_names(&refused("window_secs = -5\n"), 1, "window_secs");
    assert_names(&refused("max_failures = 0\n"), 1, "max_failures");
    assert_eq!(
        parse("max_failures_per_ip = 0\n")
            .unwrap()
            .policy
            .max_failures_per_ip,
        0,
        "0 turns the per-address limit off"
    );
    assert_names(&refused("ip_prefix_v4 = 33\n"), 1, "ip_prefix_v4");
    assert_names(&refused("ip_prefix_v6 = 0\n"), 1, "ip_prefix_v6");
    let p = parse("ip_prefix_v4 = 24\nip_prefix_v6 = 48\n")
        .unwrap()
        .policy;
    assert_eq!((p.ip_prefix_v4, p.ip_prefix_v6), (24, 48));
    assert_names(
        &refused("ip_lockout_secs = 99999999999\n"),
        1,
        "ip_lockout_secs",
    );
    assert_names(&refused("ip_lockout_secs = -1\n"), 1, "ip_lockout_secs");
    assert_names(&refused("lockout_secs = 99999999999\n"), 1, "lockout_secs");
    assert_names(
        &refused("max_failures = 99999999999999\n"),
        1,
        "max_failures",
    );
    let e =
        refused("[users.a]\nsecret = \"0123456789abcdef\"\npin = \"1\"\noffset_secs = 999999\n");
    assert_names(&e, 4, "users.a.offset_secs");
}

#[test]
fn bad_usernames_are_refused() {
    let long = "u".repeat(MAX_USERNAME_LEN + 1);
    let e = refused(&format!(
        "[users.{long}]\nsecret = \"0123456789abcdef\"\npin = \"1\"\n"
    ));
    assert_eq!(e.line, Some(1), "{e}");
    let e = refused("[users.\"\"]\nsecret = \"0123456789abcdef\"\npin = \"1\"\n");
    assert_eq!(e.line, Some(1), "{e}");
}

#[test]
fn debug_output_redacts_secrets() {
    let c = parse(GOOD).unwrap();
    let shown = format!("{c:?}");
    assert!(!shown.contains("0123456789abcdef"), "{shown}");
    assert!(!shown.contains("1234"), "{shown}");
}

#[test]
fn lookups_find_every_user_and_no_other() {
    let mut text = String::new();
    for i in 0..5000 {
        text.push_str(&format!(
            "[users.u{i}]\nsecret = \"{:016x}\"\npin = \"{i}\"\n{}",
            (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            if i % 3 == 0 {
                format!("common_name = \"cn{i}\"\noffset_secs = -{i}\n")
            } else {
                String::new()
            }
        ));
    }
    let path = Path::new("/etc/openvpn/motp.toml");
    for c in [
        parse(&text).unwrap(),
        Config::parse_toml(path, &text).unwrap(),
    ] {
        assert_eq!(c.users.len(), 5000);
        for i in 0..5000 {
            let name = format!("u{i}");
            let u = c.users.get(&name).unwrap();
            let key = format!("{:016x}{i}", (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            assert_eq!(u.key, key.as_bytes());
            let (cn, offset) = if i % 3 == 0 {
                (format!("cn{i}"), -i64::from(i))
            } else {
                (name.clone(), 0)
            };
            assert_eq!(u.expected_common_name(&name), cn);
            assert_eq!(u.offset_secs, offset);
            assert!(c.users.get(&format!("v{i}")).is_none());
        }
        assert!(c.users.get("").is_none());
    }
    assert_eq!(parse(&text).unwrap().users.names().count(), 5000);
    assert_eq!(
        parse(&text)
            .unwrap()
            .users
            .names()
            .take(3)
            .collect::<Vec<_>>(),
        ["u0", "u1", "u2"]
    );
    assert!(UserTable::default().get("u0").is_none());
}
