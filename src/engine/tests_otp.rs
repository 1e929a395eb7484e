//! Tests of the TOTP and HOTP engine and of base32: the RFCs' vectors, the window and
//! look-ahead edges, the constant-time search against a naive one, the cost padding.

use super::base32::{self, Base32Error};
use super::hmac_otp::{pad_key_cost, Keyed};
use super::*;

const RFC4226_KEY: &[u8] = b"12345678901234567890";
const SHA256_KEY: &[u8] = b"12345678901234567890123456789012";
const SHA512_KEY: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

/// RFC 4226 Appendix D: counters 0..9, their 31-bit truncated values and 6-digit codes.
const RFC4226: [(u32, &str); 10] = [
    (1284755224, "755224"),
    (1094287082, "287082"),
    (137359152, "359152"),
    (1726969429, "969429"),
    (1640338314, "338314"),
    (868254676, "254676"),
    (1918287922, "287922"),
    (82162583, "162583"),
    (673399871, "399871"),
    (645520489, "520489"),
];

/// RFC 6238 Appendix B: time, then the 8-digit SHA-1, SHA-256 and SHA-512 codes.
const RFC6238: [(i64, [&str; 3]); 6] = [
    (59, ["94287082", "46119246", "90693936"]),
    (1111111109, ["07081804", "68084774", "25091201"]),
    (1111111111, ["14050471", "67062674", "99943326"]),
    (1234567890, ["89005924", "91819424", "93441116"]),
    (2000000000, ["69279037", "90698825", "38618901"]),
    (20000000000, ["65353130", "77737706", "47863826"]),
];

const ALGORITHMS: [(Algorithm, &[u8]); 3] = [
    (Algorithm::Sha1, RFC4226_KEY),
    (Algorithm::Sha256, SHA256_KEY),
    (Algorithm::Sha512, SHA512_KEY),
];

fn code(text: &str) -> OtpCode {
    OtpCode::parse(text.as_bytes(), text.len() as u8).expect("a valid code")
}

fn totp(algorithm: Algorithm, digits: u8) -> Totp {
    Totp {
        algorithm,
        digits,
        period: 30,
    }
}

fn at(step: i64, center: i64) -> Option<Match> {
    Some(Match {
        step,
        step_offset: step - center,
    })
}

/// The search without any of the constant-time care: the first step in window order.
fn naive(t: &Totp, code: OtpCode, key: &[u8], center: i64, radius: i64) -> Option<Match> {
    window_order(center, radius)
        .find(|&(step, _)| {
            code.digits() == t.digits
                && hotp_value(key, step as u64, t.algorithm, t.digits) == code.value()
        })
        .map(|(step, step_offset)| Match { step, step_offset })
}

#[test]
fn rfc4226_appendix_d() {
    let hotp = Hotp::default();
    for (counter, &(truncated, text)) in RFC4226.iter().enumerate() {
        let counter = counter as u64;
        // More than 9 digits: the whole 31-bit value, as the appendix lists it.
        assert_eq!(
            hotp_value(RFC4226_KEY, counter, Algorithm::Sha1, 10),
            truncated
        );
        assert_eq!(
            hotp_value(RFC4226_KEY, counter, Algorithm::Sha1, 6),
            truncated % 1_000_000
        );
        assert_eq!(hotp_text(RFC4226_KEY, counter, Algorithm::Sha1, 6), text);
        assert_eq!(
            hotp.find_ahead(code(text), RFC4226_KEY, counter, 0, 0),
            Some(counter)
        );
        assert_eq!(
            hotp.find_ahead(code(text), RFC4226_KEY, 0, 9, 0),
            Some(counter)
        );
    }
}

#[test]
fn rfc6238_appendix_b_all_hashes() {
    for &(time, codes) in &RFC6238 {
        for (&(algorithm, key), text) in ALGORITHMS.iter().zip(codes) {
            let t = totp(algorithm, 8);
            let step = t.step_of(time);
            assert_eq!(step, time / 30);
            assert_eq!(
                hotp_text(key, step as u64, algorithm, 8),
                text,
                "{algorithm:?} {time}"
            );
            assert_eq!(t.value_at_step(key, step as u64), code(text).value());
            let typed = t.parse(text.as_bytes()).expect("8 digits");
            assert_eq!(
                t.find(typed, key, step, 0, 0),
                at(step, step),
                "{algorithm:?} {time}"
            );
            assert_eq!(t.find(typed, key, step + 1, 0, 0), None);
            assert_eq!(t.find(typed, key, step + 1, 1, 0), at(step, step + 1));
        }
    }
}

#[test]
fn six_digits_are_the_last_six_of_eight() {
    for &(time, codes) in &RFC6238 {
        for (&(algorithm, key), text) in ALGORITHMS.iter().zip(codes) {
            let t = totp(algorithm, 6);
            let step = t.step_of(time);
            assert_eq!(hotp_text(key, step as u64, algorithm, 6), text[2..]);
            let typed = t.parse(&text.as_bytes()[2..]).expect("6 digits");
            assert_eq!(t.find(typed, key, step, 0, 0), at(step, step));
            // The 8-digit code is not a 6-digit one, and a 6-digit code is refused by an
            // 8-digit configuration even if its value matched.
            assert!(t.parse(text.as_bytes()).is_none());
            assert_eq!(t.find(code(text), key, step, 0, 0), None);
            assert_eq!(totp(algorithm, 8).find(typed, key, step, 0, 0), None);
        }
    }
}

#[test]
fn oathtool_cross_checks() {
    // Computed once with oathtool 2.6.7 (`oathtool --totp[=sha256] --digits=N
    // --time-step-size=Ns -N @T -b SECRET`, `oathtool -c N -b SECRET`); not run by the tests.
    let key = base32::decode("JBSW Y3DP EHPK 3PXP").expect("base32");
    let t = Totp::default();
    let step = t.step_of(1_700_000_000);
    assert_eq!(hotp_text(&key, step as u64, Algorithm::Sha1, 6), "324550");
    let t60 = Totp {
        algorithm: Algorithm::Sha256,
        digits: 8,
        period: 60,
    };
    let step = t60.step_of(1_700_000_000);
    assert_eq!(
        hotp_text(&key, step as u64, Algorithm::Sha256, 8),
        "71205722"
    );
    assert_eq!(hotp_text(&key, 42, Algorithm::Sha1, 6), "090604");
    // `oathtool --totp=sha512 --digits=8 -N @1111111111` with the RFC 6238 SHA-512 key in hex.
    let t = totp(Algorithm::Sha512, 8);
    assert_eq!(t.value_at_step(SHA512_KEY, 1111111111 / 30), 99943326);
}

#[test]
fn code_parse_takes_exactly_the_digits() {
    assert_eq!(OtpCode::parse(b"004217", 6).map(OtpCode::value), Some(4217));
    assert_eq!(OtpCode::parse(b"00000000", 8).map(OtpCode::value), Some(0));
    assert_eq!(
        OtpCode::parse(b"99999999", 8).map(OtpCode::value),
        Some(99_999_999)
    );
    for (bad, digits) in [
        (&b""[..], 6),
        (b"12345", 6),
        (b"1234567", 6),
        (b"123456", 8),
        (b"1234567", 7),
        (b"12345678", 7),
        (b"12345a", 6),
        (b"+12345", 6),
        (b"-12345", 6),
        (b" 12345", 6),
        (b"123456\n", 6),
        ("１２３４５６".as_bytes(), 6),
        (b"123456", 0),
        (b"", 0),
    ] {
        assert!(OtpCode::parse(bad, digits).is_none(), "{bad:?} {digits}");
    }
    assert_eq!(OtpCode::from_value(999_999, 6), Some(code("999999")));
    assert_eq!(OtpCode::from_value(1_000_000, 6), None);
    assert_eq!(OtpCode::from_value(1, 7), None);
    assert_eq!(code("00123456").digits(), 8);
}

#[test]
fn debug_never_shows_a_code() {
    let shown = format!("{:?}", code("755224"));
    assert!(
        !shown.contains("755224") && !shown.contains("755"),
        "{shown}"
    );
}

#[test]
fn algorithm_names() {
    for (name, algorithm) in [
        ("sha1", Algorithm::Sha1),
        ("SHA1", Algorithm::Sha1),
        ("Sha256", Algorithm::Sha256),
        ("sha512", Algorithm::Sha512),
    ] {
        assert_eq!(Algorithm::from_name(name), Some(algorithm));
        assert_eq!(algorithm.name(), name.to_ascii_lowercase());
    }
    for bad in ["", "sha-1", "sha384", "md5", "sha1 "] {
        assert_eq!(Algorithm::from_name(bad), None);
    }
    assert_eq!(Algorithm::Sha1.block_len(), 64);
    assert_eq!(Algorithm::Sha256.block_len(), 64);
    assert_eq!(Algorithm::Sha512.block_len(), 128);
    assert_eq!(Algorithm::default(), Algorithm::Sha1);
}

#[test]
fn window_edges_and_order() {
    let t = Totp::default();
    let key = &*base32::decode("JBSWY3DPEHPK3PXP").unwrap();
    let now = 1_700_000_005;
    let center = t.step_of(now);
    // ±180 s at 30 s: 6 steps each side.
    for (phone_delta, accepted) in [
        (0, true),
        (30, true),
        (-30, true),
        (180, true),
        (-180, true),
        (210, false),
        (-210, false),
    ] {
        let step = t.step_of(now + phone_delta);
        let typed = OtpCode::from_value(t.value_at_step(key, step as u64), 6).unwrap();
        let found = t.find(typed, key, center, 6, 0);
        assert_eq!(found, naive(&t, typed, key, center, 6), "{phone_delta:+}");
        if accepted {
            let m = found.expect("inside the window");
            assert!(m.step_offset.abs() <= (phone_delta / 30).abs());
            assert_eq!(m.step, center + m.step_offset);
        }
    }
    for center in [0i64, 1, 5, 1_000, 56_666_666] {
        for radius in [0, 1, 2, 6, 12] {
            for offset in -radius - 1..=radius + 1 {
                let Some(step) = center.checked_add(offset).filter(|s| *s >= 0) else {
                    continue;
                };
                for algorithm in [Algorithm::Sha1, Algorithm::Sha512] {
                    let t = totp(algorithm, 8);
                    let typed = OtpCode::from_value(t.value_at_step(key, step as u64), 8).unwrap();
                    let found = t.find(typed, key, center, radius, 0);
                    assert_eq!(found, naive(&t, typed, key, center, radius));
                    assert_eq!(found.is_some(), offset.abs() <= radius);
                }
            }
        }
    }
}

#[test]
fn negative_steps_are_skipped() {
    let t = Totp::default();
    let key = RFC4226_KEY;
    // Step 0's code is found from centre 2 at offset -2; nothing below zero is searched.
    let zero = code(RFC4226[0].1);
    assert_eq!(t.find(zero, key, 2, 6, 0), at(0, 2));
    assert_eq!(t.find(zero, key, -1, 1, 0), at(0, -1));
    assert_eq!(t.find(zero, key, -20, 6, 0), None);
    t.burn(zero, -20, 6, 0);
    t.burn(zero, 2, 6, 0);
    assert_eq!(t.step_of(-1), -1);
}

/// Two steps with the same 6-digit code (birthday: expected within a few thousand steps): the
/// search returns the one first in window order, 0, +1, -1, ..., like the naive search.
#[test]
fn colliding_codes_resolve_to_the_first_in_window_order() {
    let t = Totp::default();
    let key = RFC4226_KEY;
    let keyed = Keyed::new(t.algorithm, key);
    let base = 56_666_666u64;
    let mut seen = std::collections::HashMap::new();
    let (low, high) = (base..base + 20_000)
        .find_map(|step| {
            seen.insert(keyed.value(step, 6), step)
                .map(|earlier| (earlier as i64, step as i64))
        })
        .expect("a collision within 20,000 steps");
    let typed = OtpCode::from_value(t.value_at_step(key, low as u64), 6).unwrap();
    let gap = high - low;
    let radius = gap + 1;
    for center in (low - 2..=low + 2)
        .chain(high - 2..=high + 2)
        .chain([low + gap / 2, low + (gap + 1) / 2])
    {
        let m = t
            .find(typed, key, center, radius, 0)
            .expect("both in the window");
        assert_eq!(
            Some(m),
            naive(&t, typed, key, center, radius),
            "centre {center}"
        );
        let expected = if (high - center).abs() <= (low - center).abs() {
            high
        } else {
            low
        };
        assert_eq!(m.step, expected, "centre {center}");
    }
}

#[test]
fn a_wrong_code_is_rejected_everywhere() {
    for (algorithm, key) in ALGORITHMS {
        let t = totp(algorithm, 6);
        for center in [0, 3, 56_666_666] {
            let window: Vec<u32> = window_order(center, 6)
                .map(|(s, _)| t.value_at_step(key, s as u64))
                .collect();
            let wrong = (0..)
                .find(|v| !window.contains(v))
                .and_then(|v| OtpCode::from_value(v, 6))
                .unwrap();
            assert_eq!(t.find(wrong, key, center, 6, 0), None);
            assert_eq!(t.find(wrong, key, center, 6, 300), None);
            t.burn(wrong, center, 6, 0);
            t.burn(wrong, center, 6, 300);
        }
    }
}

#[test]
fn cost_padding_counts_the_key_hash_blocks() {
    use Algorithm::*;
    for (algorithm, len, blocks) in [
        (Sha1, 0, 0),
        (Sha1, 20, 0),
        (Sha1, 64, 0),
        // 65 bytes + 0x80 + 8-byte length = 74: two blocks.
        (Sha1, 65, 2),
        (Sha1, 119, 2),
        (Sha1, 120, 3),
        (Sha256, 128, 3),
        (Sha512, 64, 0),
        (Sha512, 128, 0),
        (Sha512, 129, 2),
        (Sha512, 239, 2),
        (Sha512, 240, 3),
    ] {
        assert_eq!(
            algorithm.key_hash_blocks(len),
            blocks,
            "{algorithm:?} {len}"
        );
    }
    for (algorithm, key) in ALGORITHMS {
        for cost in [0, 20, 64, 65, 128, 129, 300] {
            pad_key_cost(algorithm, key.len(), cost);
        }
    }
    // Answers never change with the cost.
    let long = [7u8; 200];
    for (algorithm, key) in [
        (Algorithm::Sha1, &long[..]),
        (Algorithm::Sha512, &long[..20]),
    ] {
        let t = totp(algorithm, 6);
        for offset in [-3, 0, 2] {
            let step = 1_000 + offset;
            let typed = OtpCode::from_value(t.value_at_step(key, step as u64), 6).unwrap();
            for cost in [0, 64, 129, 300] {
                assert_eq!(t.find(typed, key, 1_000, 3, cost), at(step, 1_000));
            }
        }
    }
}

#[test]
fn hotp_look_ahead_edges() {
    let hotp = Hotp::default();
    let key = RFC4226_KEY;
    let look_ahead = 10;
    let next = 1_000u64;
    let at_counter =
        |c: u64| OtpCode::from_value(hotp_value(key, c, hotp.algorithm, 6), 6).unwrap();
    // Pick counters whose codes do not also occur earlier in the window.
    let codes: Vec<OtpCode> = (next..=next + look_ahead + 1).map(at_counter).collect();
    let unique = |i: usize| !codes[..i].contains(&codes[i]);
    assert!(unique(0) && unique(10) && unique(11));
    assert_eq!(
        hotp.find_ahead(codes[0], key, next, look_ahead, 0),
        Some(next)
    );
    assert_eq!(
        hotp.find_ahead(codes[10], key, next, look_ahead, 0),
        Some(next + look_ahead)
    );
    assert_eq!(hotp.find_ahead(codes[11], key, next, look_ahead, 0), None);
    assert_eq!(hotp.find_ahead(codes[11], key, next, look_ahead, 300), None);
    assert_eq!(
        hotp.find_ahead(codes[11], key, next, look_ahead + 1, 300),
        Some(next + look_ahead + 1)
    );
    // An already used counter is behind the window.
    let used = at_counter(next - 1);
    assert!(!codes[..=10].contains(&used));
    assert_eq!(hotp.find_ahead(used, key, next, look_ahead, 0), None);
    hotp.burn(codes[11], look_ahead, 0);
    hotp.burn(codes[11], look_ahead, 300);
    // Every counter of the window, each found where the naive search finds it.
    for (i, &typed) in codes.iter().enumerate() {
        let naive = (next..=next + look_ahead).find(|&c| at_counter(c) == typed);
        assert_eq!(
            hotp.find_ahead(typed, key, next, look_ahead, 0),
            naive,
            "{i}"
        );
    }
}

#[test]
fn hotp_counter_saturates_at_the_top() {
    let hotp = Hotp {
        algorithm: Algorithm::Sha256,
        digits: 8,
    };
    let key = SHA256_KEY;
    let top = OtpCode::from_value(hotp_value(key, u64::MAX, hotp.algorithm, 8), 8).unwrap();
    let found = hotp.find_ahead(top, key, u64::MAX - 2, 10, 0);
    assert!(found.is_some_and(|c| c >= u64::MAX - 2));
    assert_eq!(hotp.find_ahead(top, key, u64::MAX, 0, 0), Some(u64::MAX));
    assert_eq!(
        hotp.find_ahead(top, key, u64::MAX, u64::MAX, 0),
        Some(u64::MAX)
    );
    let second_last =
        OtpCode::from_value(hotp_value(key, u64::MAX - 1, hotp.algorithm, 8), 8).unwrap();
    assert_eq!(
        hotp.find_pair(second_last, top, key, u64::MAX - 5, u64::MAX),
        Some(u64::MAX - 1)
    );
    // No c with c + 1 beyond u64::MAX.
    assert_eq!(hotp.find_pair(top, top, key, u64::MAX, 10), None);
}

#[test]
fn hotp_resync_finds_the_pair() {
    let hotp = Hotp::default();
    let key = RFC4226_KEY;
    let c = |i: usize| code(RFC4226[i].1);
    assert_eq!(hotp.find_pair(c(4), c(5), key, 0, 100), Some(4));
    assert_eq!(hotp.find_pair(c(4), c(5), key, 4, 1), Some(4));
    assert_eq!(hotp.find_pair(c(4), c(5), key, 5, 100), None);
    assert_eq!(hotp.find_pair(c(4), c(5), key, 0, 4), None);
    assert_eq!(hotp.find_pair(c(4), c(6), key, 0, 100), None);
    assert_eq!(hotp.find_pair(c(5), c(4), key, 0, 100), None);
    assert_eq!(hotp.find_pair(c(0), c(1), key, 0, 0), None);
    let far = 123_456u64;
    let at = |n| OtpCode::from_value(hotp_value(key, n, Algorithm::Sha1, 6), 6).unwrap();
    assert_eq!(
        hotp.find_pair(at(far), at(far + 1), key, 100_000, 50_000),
        Some(far)
    );
}

#[test]
fn base32_rfc4648_vectors() {
    for (plain, padded) in [
        ("", ""),
        ("f", "MY======"),
        ("fo", "MZXQ===="),
        ("foo", "MZXW6==="),
        ("foob", "MZXW6YQ="),
        ("fooba", "MZXW6YTB"),
        ("foobar", "MZXW6YTBOI======"),
    ] {
        let bare = padded.trim_end_matches('=');
        assert_eq!(base32::encode(plain.as_bytes()), bare);
        for text in [padded.to_string(), bare.to_string(), bare.to_lowercase()] {
            assert_eq!(
                &**base32::decode(&text).unwrap(),
                plain.as_bytes(),
                "{text}"
            );
        }
    }
    assert_eq!(
        base32::encode(RFC4226_KEY),
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
    );
    assert_eq!(
        &**base32::decode("gezd gnbv gy3t qojq\tGEZD GNBV GY3T QOJQ").unwrap(),
        RFC4226_KEY
    );
    assert_eq!(&**base32::decode("MZXW 6YQ= ").unwrap(), b"foob");
    assert_eq!(&**base32::decode("  \t ").unwrap(), b"");
}

#[test]
fn base32_refuses_without_quoting() {
    use Base32Error::*;
    for (text, error) in [
        ("MZXW6YT0", InvalidCharacter { position: 8 }),
        ("1ZXW6YTB", InvalidCharacter { position: 1 }),
        ("MZXW8YTB", InvalidCharacter { position: 5 }),
        ("MZ9W6YTB", InvalidCharacter { position: 3 }),
        ("MZXW-6YTB", InvalidCharacter { position: 5 }),
        ("MZ\nXW", InvalidCharacter { position: 3 }),
        ("éMZXW6YTB", InvalidCharacter { position: 1 }),
        ("MZXW6YTB=", WrongPadding),
        ("MY=", WrongPadding),
        ("MY=======", WrongPadding),
        ("MZXW6YTB========", WrongPadding),
        ("MY======MY======", MisplacedPadding),
        ("=MZXW6YTB", MisplacedPadding),
        ("M", ImpossibleLength { symbols: 1 }),
        ("MZX", ImpossibleLength { symbols: 3 }),
        ("MZXW6Y", ImpossibleLength { symbols: 6 }),
        ("MZXW6YTBO", ImpossibleLength { symbols: 9 }),
        ("M=======", ImpossibleLength { symbols: 1 }),
    ] {
        assert_eq!(base32::decode(text), Err(error), "{text:?}");
        let shown = error.to_string();
        assert!(!shown.contains("MZ") && !shown.contains("MY"), "{shown}");
    }
}

#[test]
fn base32_round_trips_every_short_length() {
    for len in 0..=20usize {
        let bytes: Vec<u8> = (0..len)
            .map(|i| (i as u8).wrapping_mul(151).wrapping_add(len as u8))
            .collect();
        let text = base32::encode(&bytes);
        assert_eq!(text.len(), (len * 8).div_ceil(5));
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)));
        assert_eq!(&**base32::decode(&text).unwrap(), &bytes[..], "{len}");
        let padded = format!("{text}{}", "=".repeat((8 - text.len() % 8) % 8));
        assert_eq!(
            &**base32::decode(&padded).unwrap(),
            &bytes[..],
            "{len} padded"
        );
        for ones in [0x00, 0xff] {
            let all = vec![ones; len];
            assert_eq!(&**base32::decode(&base32::encode(&all)).unwrap(), &all[..]);
        }
    }
}

#[test]
fn base32_ignores_unused_trailing_bits() {
    // "MY" and "MZ" differ only in the two bits past the byte: both are "f", as in the apps.
    assert_eq!(&**base32::decode("MZ").unwrap(), b"f");
    assert_eq!(&**base32::decode("MY").unwrap(), b"f");
}

#[test]
fn secret_problems_name_no_secret() {
    assert_eq!(base32::secret_problem("JBSWY3DPEHPK3PXP"), None); // 10 bytes
    assert_eq!(base32::secret_problem("jbsw y3dp ehpk 3pxp"), None);
    assert_eq!(
        base32::secret_problem("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
        None
    );
    assert_eq!(base32::secret_problem(&base32::encode(&[1; 128])), None);
    for (text, needle) in [
        ("JBSWY3DPEHPK3", "decodes to 8 bytes"),
        ("", "decodes to 0 bytes"),
        (&base32::encode(&[1; 129]) as &str, "decodes to 129 bytes"),
        ("JBSWY3DPEHPK3PX0", "character 16"),
        ("JBSWY3DPEHPK3P", "14 base32 characters"),
    ] {
        let problem = base32::secret_problem(text).expect("refused");
        assert!(problem.starts_with("must "), "{problem}");
        assert!(problem.contains(needle), "{problem}");
        if text.len() > 4 {
            assert!(!problem.contains(&text[..4]), "{problem}");
        }
    }
}
