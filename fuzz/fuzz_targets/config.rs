//! `motp::config::Config::parse` on arbitrary UTF-8 text: never panics, an error is one line
//! (it goes to OpenVPN's log as is), it never echoes a secret written in the input, and what it
//! accepts, the `toml` path (`Config::parse_toml`) accepts with the same values.
//!
//! `MOTP_FUZZ_KNOWN` (a comma-separated list of `multiline`, `secret`) skips the matching check,
//! to fuzz past a known, still-open finding for other bugs (docs/fuzzing.md).
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match motp::config::Config::parse(Path::new("/etc/openvpn/motp.toml"), text) {
        Ok(config) => {
            // `Config::parse` reads common files with its own fast path: it must accept nothing
            // the `toml` path refuses, and read the same values.
            let slow = motp::config::Config::parse_toml(Path::new("/etc/openvpn/motp.toml"), text)
                .expect("the toml path accepts what Config::parse accepts");
            assert_eq!(config.policy, slow.policy);
            assert_eq!(config.state, slow.state);
            assert_eq!(config.crtext_prompt, slow.crtext_prompt);
            assert_eq!(config.users.len(), slow.users.len());
            for name in config.users.names() {
                let user = config.users.get(name).expect("listed user is present");
                let other = slow
                    .users
                    .get(name)
                    .expect("the toml path has the same users");
                assert_eq!(
                    (user.key, user.offset_secs, user.common_name, user.disabled),
                    (
                        other.key,
                        other.offset_secs,
                        other.common_name,
                        other.disabled
                    )
                );
                if user.token == motp::config::Token::Motp {
                    // secret (16..=32 hex) || pin (1..=64 bytes)
                    assert!((17..=32 + 64).contains(&user.key.len()));
                } else {
                    // A decoded base32 secret (TOTP, HOTP).
                    assert!((10..=128).contains(&user.key.len()));
                }
                assert!(!format!("{user:?}").contains(&*String::from_utf8_lossy(&user.key)));
            }
        }
        Err(e) => {
            let shown = e.to_string();
            assert!(
                known("multiline") || !shown.contains(['\n', '\r']),
                "multi-line config error: {shown:?}"
            );
            for secret in secret_values(text) {
                // A string that appears once in the input appears only as the secret's value,
                // so seeing it in the message means the message quoted the secret.
                if !known("secret") && text.matches(secret).count() == 1 {
                    assert!(!shown.contains(secret), "error shows a secret: {shown:?}");
                }
            }
        }
    }
});

/// Whether `check` is listed in `MOTP_FUZZ_KNOWN`.
fn known(check: &str) -> bool {
    static KNOWN: OnceLock<Vec<String>> = OnceLock::new();
    KNOWN
        .get_or_init(|| {
            let list = std::env::var("MOTP_FUZZ_KNOWN").unwrap_or_default();
            list.split(',').map(|s| s.trim().to_owned()).collect()
        })
        .iter()
        .any(|k| k == check)
}

/// Values of `secret = "..."` lines that look like real secrets (a run of 16+ hex characters).
fn secret_values(text: &str) -> impl Iterator<Item = &str> {
    text.lines().filter_map(|line| {
        let rest = line.trim_start().strip_prefix("secret")?;
        let rest = rest.trim_start().strip_prefix('=')?.trim_start();
        let rest = rest.strip_prefix('"')?;
        let value = &rest[..rest.find('"')?];
        (value.len() >= 16 && value.bytes().all(|b| b.is_ascii_hexdigit())).then_some(value)
    })
}
