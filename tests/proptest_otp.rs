//! Property tests of the TOTP and HOTP searches and of base32: the constant-time searches pick
//! exactly what a naive first-match search picks, for random keys (across the block sizes),
//! hashes, digit counts and windows; base32 decodes what it encodes, in any case and spacing.

use motp::engine::{base32, hotp_value, Algorithm, Hotp, Match, OtpCode, TokenKind, Totp};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

fn algorithm() -> impl Strategy<Value = Algorithm> {
    prop_oneof![
        Just(Algorithm::Sha1),
        Just(Algorithm::Sha256),
        Just(Algorithm::Sha512)
    ]
}

fn digits() -> impl Strategy<Value = u8> {
    prop_oneof![Just(6u8), Just(8u8)]
}

/// The window's order written out again, not taken from the engine: 0, +1, -1, +2, -2, ...,
/// negative steps skipped.
fn naive_order(center: i64, radius: i64) -> Vec<(i64, i64)> {
    let mut out = vec![(center, 0)];
    for d in 1..=radius {
        out.push((center + d, d));
        out.push((center - d, -d));
    }
    out.retain(|&(step, _)| step >= 0);
    out
}

fn naive_find(t: &Totp, code: OtpCode, key: &[u8], center: i64, radius: i64) -> Option<Match> {
    naive_order(center, radius)
        .into_iter()
        .find(|&(step, _)| hotp_value(key, step as u64, t.algorithm, t.digits) == code.value())
        .map(|(step, step_offset)| Match { step, step_offset })
}

/// The typed code: the code of a step near the window (inside or just outside), or any value.
fn typed(t: &Totp, key: &[u8], center: i64, pick: Result<i64, u32>) -> OtpCode {
    let value = match pick {
        Ok(offset) => hotp_value(key, (center + offset).max(0) as u64, t.algorithm, t.digits),
        Err(any) => any % 10u32.pow(u32::from(t.digits)),
    };
    OtpCode::from_value(value, t.digits).expect("below 10^digits")
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..ProptestConfig::default()
    })]

    #[test]
    fn totp_find_is_the_first_match_in_window_order(
        key in proptest::collection::vec(any::<u8>(), 0..=150),
        algorithm in algorithm(),
        digits in digits(),
        center in 0i64..(1 << 40),
        radius in 0i64..=8,
        pick in prop_oneof![(-10i64..=10).prop_map(Ok), any::<u32>().prop_map(Err)],
        cost in prop_oneof![Just(0usize), 0usize..=300],
    ) {
        let t = Totp { algorithm, digits, period: 30 };
        let code = typed(&t, &key, center, pick);
        prop_assert_eq!(
            t.find(code, &key, center, radius, cost),
            naive_find(&t, code, &key, center, radius)
        );
        t.burn(code, center, radius, cost);
    }

    /// Windows that reach below step 0, where steps are skipped.
    #[test]
    fn totp_find_near_step_zero(
        key in proptest::collection::vec(any::<u8>(), 10..=40),
        center in -10i64..=10,
        radius in 0i64..=8,
        pick in (-10i64..=10).prop_map(Ok),
    ) {
        let t = Totp::default();
        let code = typed(&t, &key, center.max(0), pick);
        prop_assert_eq!(
            t.find(code, &key, center, radius, 0),
            naive_find(&t, code, &key, center, radius)
        );
    }

    #[test]
    fn hotp_find_ahead_is_the_first_match(
        key in proptest::collection::vec(any::<u8>(), 10..=130),
        algorithm in algorithm(),
        digits in digits(),
        next in prop_oneof![0u64..(1 << 32), (u64::MAX - 12)..=u64::MAX],
        look_ahead in 0u64..=10,
        offset in 0u64..=12,
    ) {
        let hotp = Hotp { algorithm, digits };
        let value = hotp_value(&key, next.saturating_add(offset), algorithm, digits);
        let code = OtpCode::from_value(value, digits).expect("below 10^digits");
        let naive = (next..=next.saturating_add(look_ahead))
            .find(|&c| hotp_value(&key, c, algorithm, digits) == value);
        prop_assert_eq!(hotp.find_ahead(code, &key, next, look_ahead, 0), naive);
        prop_assert_eq!(hotp.find_ahead(code, &key, next, look_ahead, 300), naive);
    }

    #[test]
    fn base32_decodes_what_it_encodes(
        bytes in proptest::collection::vec(any::<u8>(), 0..=140),
        lower in any::<bool>(),
        group in 1usize..=8,
    ) {
        let text = base32::encode(&bytes);
        prop_assert_eq!(&**base32::decode(&text).unwrap(), &bytes[..]);
        // As people type it: any case, in groups separated by spaces, padded or not.
        let cased = if lower { text.to_lowercase() } else { text.clone() };
        let spaced: Vec<String> = cased
            .as_bytes()
            .chunks(group)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        let padded = format!("{}{}", spaced.join(" "), "=".repeat((8 - text.len() % 8) % 8));
        prop_assert_eq!(&**base32::decode(&padded).unwrap(), &bytes[..]);
    }

    /// Any text: decoding never panics, and whatever decodes re-encodes to the same symbols
    /// (up to case, spacing, padding and the unused trailing bits).
    #[test]
    fn base32_decode_any_text(text in "[A-Za-z2-7=01 \t-]{0,40}") {
        if let Ok(bytes) = base32::decode(&text) {
            let again = base32::encode(&bytes);
            let symbols: String = text
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
                .to_uppercase();
            prop_assert_eq!(again.len(), symbols.len());
            let n = symbols.len().saturating_sub(1);
            prop_assert_eq!(&again[..n], &symbols[..n]);
        }
    }
}
