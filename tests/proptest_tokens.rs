//! Property tests of the password and config forms of issue 16: `password::parse_parts` never
//! panics and gives back what was sent; a random valid TOTP or HOTP user loads, and its own code
//! logs in once (a static password in front when it has one); random token keys never panic.

use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use motp::auth::{Authenticator, LoginRequest};
use motp::config::Config;
use motp::engine::{base32, hotp_text, Algorithm, Totp};
use motp::password;
use motp::state::MemoryStore;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn parse_parts_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        let _ = password::parse_parts(&bytes);
    }

    #[test]
    fn scrv1_parts_round_trip(
        static_part in prop::collection::vec(any::<u8>(), 0..100),
        response in "[ -~]{1,60}",
    ) {
        let sent = format!("SCRV1:{}:{}", STANDARD.encode(&static_part), STANDARD.encode(&response));
        let parts = password::parse_parts(sent.as_bytes());
        if response.trim().is_empty() {
            prop_assert!(parts.is_err());
        } else {
            let parts = parts.unwrap();
            prop_assert_eq!(parts.static_part.as_deref().map(|p| p.to_vec()), Some(static_part));
            prop_assert_eq!(&parts.response[..], response.trim().as_bytes());
        }
    }

    #[test]
    fn random_token_keys_never_panic(
        kind in prop::sample::select(vec!["motp", "totp", "hotp", "x", ""]),
        secret in "[A-Za-z2-7 =!]{0,40}",
        algorithm in prop::sample::select(vec!["sha1", "sha256", "sha512", "md5", "SHA1"]),
        digits in 0u8..12,
        period in 0u32..400,
        counter in any::<u64>(),
    ) {
        let text = format!(
            "[users.u]\nkind = \"{kind}\"\nsecret = \"{secret}\"\nalgorithm = \"{algorithm}\"\n\
             digits = {digits}\nperiod = {period}\ncounter = {counter}\n"
        );
        if let Err(e) = Config::parse(Path::new("t.toml"), &text) {
            prop_assert!(!e.to_string().contains('\n'), "{}", e);
        }
    }

    #[test]
    fn a_random_valid_token_user_logs_in_once_with_its_own_code(
        key in prop::collection::vec(any::<u8>(), 10..64),
        hotp in any::<bool>(),
        algorithm in prop::sample::select(vec![Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512]),
        digits in prop::sample::select(vec![6u8, 8]),
        period in prop::sample::select(vec![10u32, 30, 60]),
        counter in 0u64..1_000_000,
        now in 1_000_000_000i64..2_000_000_000,
        with_password in any::<bool>(),
    ) {
        let mut text = format!(
            "[users.u]\nkind = \"{}\"\nsecret = \"{}\"\nalgorithm = \"{}\"\ndigits = {digits}\n",
            if hotp { "hotp" } else { "totp" },
            base32::encode(&key).to_lowercase(),
            algorithm.name(),
        );
        text.push_str(&if hotp { format!("counter = {counter}\n") } else { format!("period = {period}\n") });
        if with_password {
            // The property is where the code is in "password followed by code".
            text.push_str(&format!("password = \"{}\"\n", cheap_hash()));
        }
        let config = Config::parse(Path::new("t.toml"), &text).unwrap();
        let code = if hotp {
            hotp_text(&key, counter, algorithm, digits)
        } else {
            let totp = Totp { algorithm, digits, period };
            format!("{:0width$}", totp.value_at_step(&key, totp.step_of(now) as u64), width = usize::from(digits))
        };
        let typed = if with_password { format!("pw{code}") } else { code };
        let store = MemoryStore::new();
        let auth = Authenticator { policy: &config.policy, users: &config.users, store: &store, learned: None };
        let login = || auth.decide(&LoginRequest {
            username: Some(b"u"),
            password: Some(typed.as_bytes()),
            common_name: Some(b"u"),
        }, now);
        prop_assert!(login().is_accepted());
        prop_assert!(!login().is_accepted());
    }
}

/// An Argon2id hash of "pw", made once for all cases.
fn cheap_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| motp::secret_hash::hash_password(b"pw"))
}
