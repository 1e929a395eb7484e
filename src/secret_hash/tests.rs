use super::*;

/// Made by the reference implementation's CLI (Debian's `argon2` package):
/// `echo -n 'correct horse' | argon2 motpsaltmotpsalt -id -t 1 -m 13 -p 1 -l 32 -e`.
const REFERENCE: &str =
    "$argon2id$v=19$m=8192,t=1,p=1$bW90cHNhbHRtb3Rwc2FsdA$9EdQYFRykJTS/Z1zkgk1llEAlGcnKh9LvZ/IFd+JCWk";
/// `echo -n 'pässwörd' | argon2 saltsaltsalt -id -t 3 -m 14 -p 2 -l 16 -e`.
const REFERENCE_P2: &str = "$argon2id$v=19$m=16384,t=3,p=2$c2FsdHNhbHRzYWx0$632uXehMvv2yCM443qsvAQ";

/// A syntactically valid hash with these parameters (the output is not of any password).
fn with_params(params: &str) -> String {
    format!("$argon2id$v=19${params}$bW90cHNhbHRtb3Rwc2FsdA$9EdQYFRykJTS/Z1zkgk1llEAlGcnKh9LvZ/IFd+JCWk")
}

#[test]
fn hash_then_verify_round_trip() {
    let phc = hash_password(b"hunter2 is long enough");
    assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    let parsed = parse_password_hash(&phc).unwrap();
    assert_eq!(parsed.params(), (19_456, 2, 1));
    assert!(verify_password(&parsed, b"hunter2 is long enough"));
    assert!(!verify_password(&parsed, b"hunter2 is long enougH"));
    assert!(!verify_password(&parsed, b""));
    // A new salt every time.
    assert_ne!(phc, hash_password(b"hunter2 is long enough"));
}

#[test]
fn hashes_of_the_reference_implementation_verify() {
    let parsed = parse_password_hash(REFERENCE).unwrap();
    assert_eq!(parsed.params(), (8192, 1, 1));
    assert!(verify_password(&parsed, b"correct horse"));
    assert!(!verify_password(&parsed, b"correct horse "));
    assert!(!verify_password(&parsed, b"Correct horse"));
    let parsed = parse_password_hash(REFERENCE_P2).unwrap();
    assert_eq!(parsed.params(), (16_384, 3, 2));
    assert!(verify_password(&parsed, "pässwörd".as_bytes()));
    assert!(!verify_password(&parsed, b"passwort"));
}

#[test]
fn the_crates_own_phc_encoder_agrees() {
    use argon2::password_hash::CustomizedPasswordHasher;
    let made = Argon2::default()
        .hash_password_customized(
            b"pw",
            b"0123456789abcdef",
            Some("argon2id"),
            Some(19),
            Params::new(8192, 1, 1, Some(32)).unwrap(),
        )
        .unwrap()
        .to_string();
    assert!(verify_password(&parse_password_hash(&made).unwrap(), b"pw"));
}

#[test]
fn weak_absurd_and_foreign_hashes_are_refused() {
    for (text, why) in [
        (with_params("m=4096,t=3,p=1"), "too weak"),
        (with_params("m=7168,t=5,p=1"), "too weak"),
        (with_params("m=8192,t=0,p=1"), "too weak"),
        (with_params("m=8192,t=1,p=0"), "too weak"),
        (with_params("m=2097152,t=1,p=4"), "slow"),
        (with_params("m=8192,t=11,p=1"), "slow"),
        (with_params("m=524288,t=3,p=1"), "slow"),
        (with_params("m=65536,t=1,p=17"), "slow"),
        (with_params("m=8192,t=1"), "lacks"),
        (with_params("m=8192,t=1,p=1,keyid=AAAA"), "other than"),
        (with_params("m=8192,t=1,t=1,p=1"), ""),
        (REFERENCE.replace("argon2id", "argon2i"), "not argon2id"),
        (REFERENCE.replace("argon2id", "argon2d"), "not argon2id"),
        (REFERENCE.replace("v=19", "v=16"), "version 19"),
        (REFERENCE.replace("$v=19", ""), "version 19"),
        (
            "$argon2id$v=19$m=8192,t=1,p=1$bW90cHNhbA$9EdQYFRykJTS/Z1zkgk1llEAlGcnKh9LvZ/IFd+JCWk"
                .into(),
            "salt",
        ),
        (
            "$argon2id$v=19$m=8192,t=1,p=1$bW90cHNhbHRtb3Rwc2FsdA$9EdQYFRykJTS/Z1zkg".into(),
            "hash must be",
        ),
        (
            "$argon2id$v=19$m=8192,t=1,p=1$bW90cHNhbHRtb3Rwc2FsdA".into(),
            "hash must be",
        ),
        ("$2b$12$abcdefghijklmnopqrstuv".into(), "PHC"),
        ("$6$salt$hash".into(), "PHC"),
        ("correct horse".into(), "PHC"),
        ("".into(), "PHC"),
        (format!(" {REFERENCE}"), "PHC"),
        (format!("{REFERENCE}\n"), "PHC"),
        (format!("{REFERENCE}$extra"), "PHC"),
    ] {
        let e = parse_password_hash(&text).expect_err(&text);
        assert!(e.contains(why), "{text}: {e}");
        // Never the value, nor its salt or hash part.
        assert!(!e.contains("bW90cHNhbHR") && !e.contains("9EdQ"), "{e}");
    }
    // The bounds themselves are accepted.
    for params in [
        "m=8192,t=1,p=1",
        "m=1048576,t=1,p=1",
        "m=104857,t=10,p=1",
        "m=65536,t=3,p=4",
        "m=8192,t=1,p=16",
    ] {
        parse_password_hash(&with_params(params)).expect(params);
    }
}

#[test]
fn debug_shows_no_salt_or_hash() {
    let parsed = parse_password_hash(REFERENCE).unwrap();
    let shown = format!("{parsed:?}");
    assert_eq!(shown, "ParsedPasswordHash(argon2id m=8192,t=1,p=1)");
    let rc = parse_recovery_hash(&hash_recovery_code(b"23456789abcd")).unwrap();
    assert_eq!(format!("{rc:?}"), "RecoveryHash(..)");
}

#[test]
fn dummy_verify_runs_argon2_with_the_default_parameters() {
    // Cost comparisons are benches/secret_hash.rs's job; here: it runs, with any input.
    dummy_verify(b"");
    dummy_verify(&[0xff; 4096]);
}

#[test]
fn generated_codes_have_the_documented_shape() {
    let codes = generate_recovery_codes(32);
    assert_eq!(codes.len(), 32);
    let mut seen = std::collections::HashSet::new();
    for code in &codes {
        let b = code.as_bytes();
        assert_eq!(b.len(), 14, "{}", code.as_str());
        assert_eq!((b[4], b[9]), (b'-', b'-'));
        assert!(b
            .iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 9 || RECOVERY_ALPHABET.contains(c)));
        assert!(seen.insert(code.as_str().to_owned()));
        let n = normalize_recovery_code(b).unwrap();
        assert_eq!(n.len(), 12);
    }
    // Every character of the alphabet shows up in enough codes (uniform, no 31 left out).
    let many: String = generate_recovery_codes(400)
        .iter()
        .map(|c| c.as_str().to_owned())
        .collect();
    for &c in RECOVERY_ALPHABET {
        assert!(many.as_bytes().contains(&c), "{}", char::from(c));
    }
    for c in b"01oli" {
        assert!(!many.as_bytes().contains(c));
    }
    assert!(generate_recovery_codes(0).is_empty());
}

#[test]
fn recovery_code_normalization() {
    let n = |s: &str| normalize_recovery_code(s.as_bytes()).map(|v| v.to_vec());
    let want = Some(b"k7m2q9xp4tfr".to_vec());
    assert_eq!(n("k7m2-q9xp-4tfr"), want);
    assert_eq!(n("K7M2-Q9XP-4TFR"), want);
    assert_eq!(n("k7m2 q9xp 4tfr"), want);
    assert_eq!(n("k7m2q9xp4tfr"), want);
    assert_eq!(n(" k7m2--q9xp-4tfr "), want);
    // pam_google_authenticator scratch codes: 8 digits, including 0 and 1.
    assert_eq!(n("12345670"), Some(b"12345670".to_vec()));
    assert_eq!(n("1234-5670"), Some(b"12345670".to_vec()));
    for bad in [
        "",
        "----",
        "k7m2-q9xp-4tf",       // 11
        "k7m2-q9xp-4tfrr",     // 13
        "k7m2-q9xp-4tf0",      // 0 is not in the alphabet
        "k7m2-q9xp-4tfl",      // nor l
        "k7m2-q9xp-4tfo",      // nor o
        "k7m2_q9xp_4tfr",      // other separators
        "k7m2\tq9xp\t4tfr",    //
        "1234567",             // 7 digits
        "123456789",           // 9 digits
        "1234567a",            // 8, not all digits
        "k7m2-q9xp-4tfr\n",    //
        "k7m2-q9xp-4tf\u{e9}", // not ASCII
    ] {
        assert_eq!(n(bad), None, "{bad:?}");
    }
}

#[test]
fn recovery_hash_round_trip_and_format() {
    let stored = hash_recovery_code(b"k7m2q9xp4tfr");
    let rest = stored.strip_prefix("$motp-rc$v=1$").unwrap();
    let (salt, digest) = rest.split_once('$').unwrap();
    assert_eq!(STANDARD_NO_PAD.decode(salt).unwrap().len(), 16);
    assert_eq!(STANDARD_NO_PAD.decode(digest).unwrap().len(), 32);
    let parsed = parse_recovery_hash(&stored).unwrap();
    assert_eq!(parsed.to_stored(), stored);
    assert_eq!(
        recovery_match(std::slice::from_ref(&parsed), b"k7m2q9xp4tfr"),
        Some(0)
    );
    assert_eq!(recovery_match(&[parsed], b"k7m2q9xp4tfs"), None);
    // SHA-256(salt ‖ code), checked against an independent computation.
    let salt = STANDARD_NO_PAD.decode(salt).unwrap();
    let mut input = salt.clone();
    input.extend_from_slice(b"k7m2q9xp4tfr");
    assert_eq!(
        STANDARD_NO_PAD.decode(digest).unwrap(),
        Sha256::digest(&input).to_vec()
    );
    assert_ne!(stored, hash_recovery_code(b"k7m2q9xp4tfr"), "salted");
}

#[test]
fn bad_recovery_hashes_are_refused_without_quoting() {
    let good = hash_recovery_code(b"12345678");
    let (head, digest) = good.rsplit_once('$').unwrap();
    for bad in [
        "k7m2-q9xp-4tfr".to_owned(),
        "12345678".to_owned(),
        String::new(),
        good.replace("v=1", "v=2"),
        good.replace("$motp-rc$", "$motp-rx$"),
        format!("{good}$"),
        format!("{good}="),
        format!("{head}$"),
        format!("{head}${}", &digest[..42]),
        format!("{head}${digest}A"),
        format!("{}${digest}", head.trim_end_matches(|c| c != '$')),
        format!(" {good}"),
    ] {
        let e = parse_recovery_hash(&bad).expect_err(&bad);
        assert!(
            !e.contains(&digest[..20]) && !e.contains(&head[13..]),
            "{e}"
        );
        assert!(!e.contains("k7m2") && !e.contains("12345678"), "{e}");
    }
    // A non-canonical last character (stray low bits) is refused, so the stored text is the
    // one the set id hashes.
    let mut chars: Vec<char> = digest.chars().collect();
    let last = chars.pop().unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let pos = alphabet.find(last).unwrap();
    let sibling = alphabet.as_bytes()[pos ^ 1] as char;
    let noncanonical = format!("{head}${}{sibling}", chars.iter().collect::<String>());
    assert!(parse_recovery_hash(&noncanonical).is_err());
}

#[test]
fn recovery_match_finds_the_right_index_among_many() {
    let codes = generate_recovery_codes(10);
    let normalized: Vec<_> = codes
        .iter()
        .map(|c| normalize_recovery_code(c.as_bytes()).unwrap())
        .collect();
    let hashes: Vec<RecoveryHash> = normalized
        .iter()
        .map(|n| parse_recovery_hash(&hash_recovery_code(n)).unwrap())
        .collect();
    for (i, n) in normalized.iter().enumerate() {
        assert_eq!(recovery_match(&hashes, n), Some(i));
    }
    assert_eq!(recovery_match(&hashes, b"222222222222"), None);
    assert_eq!(recovery_match(&[], &normalized[0]), None);
    // The same code twice (never generated so, but possible by hand): the first one.
    let twice = [hashes[3].clone(), hashes[3].clone()];
    assert_eq!(recovery_match(&twice, &normalized[3]), Some(0));
}

#[test]
fn set_id_is_stable_and_order_sensitive() {
    let texts: Vec<String> = (0..3)
        .map(|i| hash_recovery_code(format!("1234567{i}").as_bytes()))
        .collect();
    let parse = |t: &[String]| -> Vec<RecoveryHash> {
        t.iter().map(|s| parse_recovery_hash(s).unwrap()).collect()
    };
    let a = recovery_set_id(&parse(&texts));
    assert_eq!(a, recovery_set_id(&parse(&texts)), "stable across parses");
    let mut reversed = texts.clone();
    reversed.reverse();
    assert_ne!(a, recovery_set_id(&parse(&reversed)));
    assert_ne!(a, recovery_set_id(&parse(&texts[..2])));
    assert_ne!(recovery_set_id(&[]), a);
    // Pinned: the id of a fixed set never changes between versions (state keys on it).
    let fixed = parse_recovery_hash(
        "$motp-rc$v=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    )
    .unwrap();
    let mut sha = Sha256::new();
    sha.update(
        b"$motp-rc$v=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",
    );
    let d: [u8; 32] = sha.finalize().into();
    assert_eq!(
        recovery_set_id(&[fixed]),
        u64::from_be_bytes(d[..8].try_into().unwrap())
    );
}
