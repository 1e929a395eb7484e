//! Unit tests of the parsers and converters of the import formats.

use super::google_authenticator::convert_google_authenticator;
use super::openvpn_otp::{convert_otp_field, split_words, Converted, OtpSettings};
use super::pam_motp::hours_to_secs;

#[test]
fn words_split_like_openvpn_otp() {
    let (w, c, cut) = split_words("bob otp 'motp:md5:text:0123456789abcdef:12 34:' * # phone");
    assert_eq!(
        w,
        ["bob", "otp", "motp:md5:text:0123456789abcdef:12 34:", "*"]
    );
    assert_eq!(c.as_deref(), Some(" phone"));
    assert!(!cut);
    let (w, c, cut) = split_words("  # only a comment");
    assert!(w.is_empty());
    assert_eq!(c.as_deref(), Some(" only a comment"));
    assert!(!cut);
    let (w, _, cut) = split_words(r"a\ b c#d");
    assert_eq!(w, ["a b", "c"]);
    assert!(cut);
    let (w, c, _) = split_words("u s 'motp:md5:text:0123456789abcdef:1#2:' *");
    assert_eq!(w[2], "motp:md5:text:0123456789abcdef:1#2:");
    assert_eq!(c, None);
}

#[test]
fn hours_convert_to_seconds() {
    assert_eq!(hours_to_secs("0"), Ok(0));
    assert_eq!(hours_to_secs("-5.5"), Ok(-19800));
    assert_eq!(hours_to_secs("+2"), Ok(7200));
    assert_eq!(hours_to_secs("24"), Ok(86400));
    assert!(hours_to_secs("25").is_err());
    assert!(hours_to_secs("1h").is_err());
    assert!(hours_to_secs("nan").is_err());
    assert!(hours_to_secs("1e3").is_err());
    assert!(hours_to_secs(".5").is_err());
}

#[test]
fn otp_fields() {
    let dir = std::env::temp_dir().join("motpctl-no-such-counters");
    let settings = OtpSettings {
        totp_step: 30,
        totp_digits: 6,
        udid_into_pin: false,
        hotp_counters: &dir,
    };
    let with_udid = OtpSettings {
        udid_into_pin: true,
        ..settings
    };
    let motp = |field: &str, s: &OtpSettings| match convert_otp_field(field, s, &mut vec![]) {
        Ok(Converted::Motp { secret, pin }) => Ok((secret, pin)),
        Ok(Converted::Hmac(_)) => panic!("{field} is mOTP"),
        Err(e) => Err(e),
    };
    let ok = motp("motp:md5:text:0123456789abcdef:1234:", &settings).unwrap();
    assert_eq!(ok, ("0123456789abcdef".into(), "1234".into()));
    let ok = motp("MOTP:MD5:TEXT:0123456789abcdef:1234", &settings).unwrap();
    assert_eq!(ok.1, "1234");
    assert!(motp("motp:md5:text:0123456789abcdef:1234:xxx", &settings)
        .unwrap_err()
        .contains("UDID"));
    let ok = motp("motp:md5:text:0123456789abcdef:1234:xxx", &with_udid).unwrap();
    assert_eq!(ok.1, "1234xxx");
    let Ok(Converted::Hmac(t)) = convert_otp_field(
        "totp-60-6:sha1:hex:5c5a75a87ba1b48cb0b6adfd3b7a5a0e:6543:xxx",
        &settings,
        &mut vec![],
    ) else {
        panic!("totp-60-6 converts");
    };
    assert_eq!((t.period, t.digits, t.key.len()), (Some(60), 6, 16));
    assert_eq!(t.password.as_deref().map(String::as_str), Some("6543"));
    let mut notes = vec![];
    let Ok(Converted::Hmac(h)) =
        convert_otp_field("hotp:sha1:base32:MT4GWEZTSRBV2QQC::", &settings, &mut notes)
    else {
        panic!("hotp converts");
    };
    assert_eq!((h.period, h.counter, h.password.is_none()), (None, 0, true));
    assert!(notes[0].contains("counter 0"), "{notes:?}");
    for (field, why) in [
        ("motp:md5:hex:0123456789abcdef:1234:", "hex"),
        ("hotp:sha1:base32::MT4GWEZTSRBV2QQC:xxx", "empty"),
        (
            "totp:md5:base32:K7BYLIU5D2V33X6S:1234:",
            "sha1, sha256 or sha512",
        ),
        ("totp:sha1:text:12345:1234:", "5 bytes"),
        ("totp:sha1:hex:0123456789abcdef012:1234:", "not hex"),
        ("totp:sha1:base32:K7BYLIU5D2V33X6!:1234:", "not base32"),
        ("plain:hunter2", "static password"),
        ("motp:sha1:text:0123456789abcdef:1234:", "sha1"),
        ("motp:md5:text:0123456789abcdef::", "PIN is empty"),
        ("motp:md5:text:0123:1234:", "16 to 32"),
        ("motp:md5", "METHOD"),
    ] {
        let e = match convert_otp_field(field, &settings, &mut vec![]) {
            Err(e) => e,
            Ok(_) => panic!("{field} converts"),
        };
        assert!(e.contains(why), "{field}: {e}");
        for secret in [
            "0123456789abcdef",
            "K7BYLIU5",
            "MT4GWEZT",
            "hunter2",
            "12345:",
        ] {
            assert!(!e.contains(secret), "{e}");
        }
    }
}

#[test]
fn google_authenticator_files() {
    let mut notes = vec![];
    let t = convert_google_authenticator(
        "JBSWY3DPEHPK3PXP\n\" RATE_LIMIT 3 30 1700000000\n\" WINDOW_SIZE 17\n\" \
         DISALLOW_REUSE\n\" TOTP_AUTH\n12345678\n87654321\n",
        &mut notes,
    )
    .unwrap();
    assert_eq!(
        (t.period, t.digits, t.recovery_codes.len()),
        (Some(30), 6, 2)
    );
    assert_eq!(&t.key[..], b"Hello!\xde\xad\xbe\xef");
    assert_eq!(notes.len(), 3, "{notes:?}");
    let h =
        convert_google_authenticator("JBSWY3DPEHPK3PXP\n\" HOTP_COUNTER 7\n", &mut vec![]).unwrap();
    assert_eq!((h.period, h.counter), (None, 7));
    for (text, line, why) in [
        ("JBSWY3DPEHPK3PXP\n", 0, "neither"),
        ("JBSWY3DP!\n\" TOTP_AUTH\n", 1, "base32"),
        (
            "JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n\" STEP_SIZE 45\n",
            0,
            "STEP_SIZE 45",
        ),
        ("JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n1234567\n", 3, "scratch"),
        (
            "JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n\" OTP_DISABLED\n",
            3,
            "OTP_DISABLED",
        ),
    ] {
        let Err((n, e)) = convert_google_authenticator(text, &mut vec![]) else {
            panic!("{text:?} converts");
        };
        assert_eq!(n, line, "{text:?}: {e}");
        assert!(e.contains(why), "{text:?}: {e}");
        assert!(!e.contains("JBSWY3DP") && !e.contains("1234567"), "{e}");
    }
}
