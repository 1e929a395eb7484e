//! Property tests for the parsers that read untrusted input (the password, motp.toml) and for
//! the mOTP engine. They run in the normal `cargo test` and stay fast (at most 256 cases per
//! property); the cargo-fuzz targets in fuzz/ explore the same parsers much longer
//! (docs/fuzzing.md).

use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use motp::config::{Config, ConfigError};
use motp::engine::{self, Code};
use motp::password::{self, Malformed, MAX_PASSWORD_LEN};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

const PATH: &str = "/etc/openvpn/motp.toml";

fn parse_config(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new(PATH), text)
}

fn example_config() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/motp.toml");
    std::fs::read_to_string(path).expect("conf/motp.toml exists")
}

/// A TOML basic string holding `s`.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whitespace that `trim_ascii` removes.
fn ascii_ws() -> impl Strategy<Value = String> {
    "[ \t\n\r\x0c]{0,4}"
}

fn hex_code_any_case() -> impl Strategy<Value = String> {
    "[0-9a-fA-F]{6}"
}

fn valid_secret() -> impl Strategy<Value = String> {
    "[0-9a-fA-F]{16,32}"
}

/// What a PIN may be: printable, no whitespace, 1 to 16 characters (ASCII and some Latin).
fn valid_pin() -> impl Strategy<Value = String> {
    "[!-~\u{a1}-\u{17f}]{1,16}"
}

proptest! {
    // 256 cases (proptest's default; PROPTEST_CASES overrides it). A failing case is saved to
    // tests/proptest_parsers.regressions and replayed on later runs.
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    // ---- password ----

    #[test]
    fn password_parse_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = password::parse(&bytes);
    }

    #[test]
    fn password_parse_never_panics_on_scrv1_shapes(
        fields in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..6),
    ) {
        let mut pw = b"SCRV1".to_vec();
        for field in &fields {
            pw.push(b':');
            pw.extend_from_slice(field);
        }
        let _ = password::parse(&pw);
    }

    #[test]
    fn password_longer_than_the_limit_is_refused(extra in 1usize..64, byte in any::<u8>()) {
        let pw = vec![byte; MAX_PASSWORD_LEN + extra];
        prop_assert_eq!(password::parse(&pw), Err(Malformed::TooLong));
    }

    #[test]
    fn bare_code_in_any_case_with_whitespace_parses_to_lowercase(
        code in hex_code_any_case(),
        before in ascii_ws(),
        after in ascii_ws(),
    ) {
        let pw = format!("{before}{code}{after}");
        let parsed = password::parse(pw.as_bytes());
        prop_assert_eq!(parsed.map(Code::to_hex), Ok(code.to_ascii_lowercase()));
    }

    #[test]
    fn scrv1_answer_parses_to_its_code(
        static_password in prop::collection::vec(any::<u8>(), 0..64),
        code in hex_code_any_case(),
        before in ascii_ws(),
        after in ascii_ws(),
    ) {
        let response = format!("{before}{code}{after}");
        let pw = format!(
            "SCRV1:{}:{}",
            STANDARD.encode(&static_password),
            STANDARD.encode(response)
        );
        let parsed = password::parse(pw.as_bytes());
        prop_assert_eq!(parsed.map(Code::to_hex), Ok(code.to_ascii_lowercase()));
    }

    #[test]
    fn scrv1_with_more_than_two_fields_is_refused(
        static_password in prop::collection::vec(any::<u8>(), 0..32),
        code in hex_code_any_case(),
        extra in prop::collection::vec("[A-Za-z0-9+/=]{0,12}", 1..8),
    ) {
        // The first two fields are a valid answer; anything after a third ':' must still fail.
        let mut pw = format!(
            "SCRV1:{}:{}",
            STANDARD.encode(&static_password),
            STANDARD.encode(&code)
        );
        for field in &extra {
            pw.push(':');
            pw.push_str(field);
        }
        prop_assert_eq!(password::parse(pw.as_bytes()), Err(Malformed::BadChallengeFormat));
    }

    // ---- config ----

    #[test]
    fn config_parse_never_panics(text in any::<String>()) {
        let _ = parse_config(&text);
    }

    #[test]
    fn config_parse_never_panics_on_toml_like_text(
        text in "([\\[\\]\"'=.#\n ]|users|alice|secret|pin|state|backend|window_secs|[0-9a-f]{1,20}|-?[0-9]{1,22}|true|\\\\u0000|\u{0}|\r){0,60}",
    ) {
        let _ = parse_config(&text);
    }

    #[test]
    fn config_parse_never_panics_on_mutated_example(
        mutations in prop::collection::vec(
            (any::<prop::sample::Index>(), 0u8..5, snippet()),
            1..6,
        ),
    ) {
        let mut text = example_config();
        for (at, op, snippet) in &mutations {
            mutate(&mut text, at, *op, snippet);
        }
        if let Err(e) = parse_config(&text) {
            // Every refusal must still render (it goes to OpenVPN's log).
            let _ = e.to_string();
        }
    }

    #[test]
    fn generated_valid_user_loads_with_key_secret_then_pin(
        name in "[a-z][a-z0-9_-]{0,20}",
        secret in valid_secret(),
        pin in valid_pin(),
        offset in proptest::option::of(-86_400i64..=86_400),
        common_name in proptest::option::of("[a-zA-Z0-9][a-zA-Z0-9 .@_-]{0,30}"),
        disabled in any::<bool>(),
    ) {
        let mut text = format!(
            "[users.{name}]\nsecret = {}\npin = {}\ndisabled = {disabled}\n",
            toml_string(&secret),
            toml_string(&pin),
        );
        if let Some(offset) = offset {
            text.push_str(&format!("offset_secs = {offset}\n"));
        }
        if let Some(cn) = &common_name {
            text.push_str(&format!("common_name = {}\n", toml_string(cn)));
        }
        let config = parse_config(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let user = config.users.get(&name).expect("the user is in the table");
        let expected = [secret.as_bytes(), pin.as_bytes()].concat();
        prop_assert_eq!(user.key, &expected[..]);
        prop_assert_eq!(user.offset_secs, offset.unwrap_or(0));
        prop_assert_eq!(user.disabled, disabled);
        prop_assert_eq!(user.expected_common_name(&name), common_name.as_deref().unwrap_or(&name));
        prop_assert_eq!(config.users.len(), 1);
    }

    #[test]
    fn invalid_secret_is_refused_without_showing_it(secret in invalid_secret(), pin in valid_pin()) {
        let text = format!(
            "[users.alice]\nsecret = {}\npin = {}\n",
            toml_string(&secret),
            toml_string(&pin),
        );
        let e = match parse_config(&text) {
            Ok(_) => return Err(TestCaseError::fail(format!("secret {secret:?} was accepted"))),
            Err(e) => e,
        };
        let shown = e.to_string();
        prop_assert!(!shown.contains(&secret), "{}", shown);
        prop_assert!(!format!("{e:?}").contains(&secret), "{:?}", e);
        prop_assert_eq!(e.line, Some(2));
        prop_assert_eq!(e.key.as_deref(), Some("users.alice.secret"));
    }

    #[test]
    fn invalid_pin_is_refused_without_showing_it(
        left in "[0-9a-z]{4,8}",
        gap in "[ \t\u{7}\u{1b}\u{a0}]",
        right in "[0-9a-z]{4,8}",
    ) {
        let pin = format!("{left}{gap}{right}");
        let text = format!(
            "[users.alice]\nsecret = \"0123456789abcdef\"\npin = {}\n",
            toml_string(&pin),
        );
        let e = match parse_config(&text) {
            Ok(_) => return Err(TestCaseError::fail(format!("pin {pin:?} was accepted"))),
            Err(e) => e,
        };
        prop_assert!(!e.to_string().contains(&pin), "{}", e);
        prop_assert_eq!(e.key.as_deref(), Some("users.alice.pin"));
    }

    // ---- engine ----

    #[test]
    fn code_at_step_is_six_lowercase_hex(
        step in any::<i64>(),
        key in prop::collection::vec(any::<u8>(), 0..100),
    ) {
        let hex = engine::code_at_step(step, &key).to_hex();
        prop_assert_eq!(hex.len(), 6);
        prop_assert!(hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')), "{}", hex);
        // And it reads back as the same code.
        prop_assert_eq!(Code::parse(hex.as_bytes()), Some(engine::code_at_step(step, &key)));
    }

    #[test]
    fn find_step_finds_a_code_anywhere_in_the_window(
        secret in valid_secret(),
        pin in valid_pin(),
        center in 0i64..400_000_000,
        radius in 0i64..=36,
        pick in any::<prop::sample::Index>(),
    ) {
        let key = [secret.as_bytes(), pin.as_bytes()].concat();
        let offset = -radius + pick.index((2 * radius + 1) as usize) as i64;
        prop_assume!(center + offset >= 0);
        let code = engine::code_at_step(center + offset, &key);
        let found = engine::find_step(code, &key, center, radius)
            .ok_or_else(|| TestCaseError::fail(format!("offset {offset} not found")))?;
        prop_assert_eq!(found.step, center + found.step_offset);
        prop_assert_eq!(engine::code_at_step(found.step, &key), code);
        if found.step_offset != offset {
            // Only a code collision on a step searched earlier (nearer the centre) may win.
            prop_assert!(found.step_offset.abs() <= offset.abs(), "{:?} vs {}", found, offset);
        }
    }

    #[test]
    fn find_step_misses_a_code_just_outside_the_window(
        secret in valid_secret(),
        pin in valid_pin(),
        center in 1_000i64..400_000_000,
        radius in 0i64..=36,
        above in any::<bool>(),
    ) {
        let key = [secret.as_bytes(), pin.as_bytes()].concat();
        let step = if above { center + radius + 1 } else { center - radius - 1 };
        let code = engine::code_at_step(step, &key);
        // Unless the same code also appears inside the window (a 6-hex collision).
        let collides = (center - radius..=center + radius)
            .any(|s| engine::code_at_step(s, &key) == code);
        prop_assert_eq!(engine::find_step(code, &key, center, radius).is_some(), collides);
    }
}

/// Secrets the config must refuse: hex of a wrong length, or the right length with a non-hex
/// character. At least 8 characters, so finding one in a message is not a coincidence.
fn invalid_secret() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9a-f]{8,15}",
        "[0-9a-f]{33,64}",
        (
            "[0-9a-f]{8,16}",
            "[g-zG-Z!#$%&*+,./:;<=>?@^_~-]",
            "[0-9a-f]{7,15}"
        )
            .prop_map(|(a, bad, b)| format!("{a}{bad}{b}")),
    ]
}

/// Fragments to splice into a config: TOML syntax, keys of this config, and odd values.
fn snippet() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just("\"".to_owned()),
        Just("=".to_owned()),
        Just("\n".to_owned()),
        Just("[users.x]\n".to_owned()),
        Just("[[users]]\n".to_owned()),
        Just("secret = ".to_owned()),
        Just("pin = 1234\n".to_owned()),
        Just("offset_secs = -9223372036854775808\n".to_owned()),
        Just("window_secs = 99999999999999999999\n".to_owned()),
        Just("\\u0000".to_owned()),
        Just("\u{0}".to_owned()),
        Just("\r".to_owned()),
        Just("é".to_owned()),
        any::<String>(),
    ]
}

/// One edit of `text` at a position chosen by `at`: insert, delete, replace a line, duplicate a
/// line or truncate.
fn mutate(text: &mut String, at: &prop::sample::Index, op: u8, snippet: &str) {
    let mut pos = at.index(text.len() + 1);
    while !text.is_char_boundary(pos) {
        pos -= 1;
    }
    match op {
        0 => text.insert_str(pos, snippet),
        1 => {
            let mut end = (pos + snippet.len().max(1)).min(text.len());
            while !text.is_char_boundary(end) {
                end += 1;
            }
            text.replace_range(pos..end, "");
        }
        2 | 3 => {
            let start = text[..pos].rfind('\n').map_or(0, |i| i + 1);
            let end = text[pos..].find('\n').map_or(text.len(), |i| pos + i);
            if op == 2 {
                text.replace_range(start..end, snippet);
            } else {
                let line = format!("\n{}", &text[start..end]);
                text.insert_str(end, &line);
            }
        }
        _ => text.truncate(pos),
    }
}
