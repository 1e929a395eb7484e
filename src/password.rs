//! What the client sent as its password: a bare code, or OpenVPN's static-challenge form
//! `SCRV1:<base64 password>:<base64 response>` whose response is the code.
//!
//! The parser never allocates more than the decoded response (at most a few bytes are kept) and
//! wipes that copy; it has no recursion and no fixed-size buffers to overflow (the bug class of
//! CVE-2024-28820 in the C challenge parsers).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use zeroize::Zeroizing;

use crate::engine::Code;

/// OpenVPN's `USER_PASS_LEN` with PKCS#11 builds; anything longer is not from OpenVPN.
pub const MAX_PASSWORD_LEN: usize = 4096;

/// Why a password could not be read as a code. Never carries the password itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    TooLong,
    NotACode,
    BadChallengeFormat,
    BadBase64,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Malformed::TooLong => "password too long",
            Malformed::NotACode => "password is not a 6-character code",
            Malformed::BadChallengeFormat => "static-challenge answer is not SCRV1:<b64>:<b64>",
            Malformed::BadBase64 => "static-challenge answer has bad base64",
        })
    }
}

const SCRV1_PREFIX: &[u8] = b"SCRV1:";

/// Extracts the code from the raw password bytes.
pub fn parse(password: &[u8]) -> Result<Code, Malformed> {
    if password.len() > MAX_PASSWORD_LEN {
        return Err(Malformed::TooLong);
    }
    match password.strip_prefix(SCRV1_PREFIX) {
        Some(rest) => parse_scrv1(rest),
        None => Code::parse(password.trim_ascii()).ok_or(Malformed::NotACode),
    }
}

fn parse_scrv1(rest: &[u8]) -> Result<Code, Malformed> {
    // Base64 has no ':', so a well-formed answer splits into exactly two fields.
    let mut fields = rest.split(|&b| b == b':');
    let (Some(_password), Some(response), None) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(Malformed::BadChallengeFormat);
    };
    // A code is 6 characters; allow some whitespace around it, refuse anything far longer
    // before decoding.
    if response.len() > 64 {
        return Err(Malformed::NotACode);
    }
    let mut decoded = Zeroizing::new([0u8; 48]);
    let len = STANDARD
        .decode_slice(response, &mut decoded[..])
        .map_err(|_| Malformed::BadBase64)?;
    Code::parse(decoded[..len].trim_ascii()).ok_or(Malformed::NotACode)
}

/// The longest response [`parse_parts`] reads: a static password in front of a code, or a
/// recovery code.
pub const MAX_RESPONSE_LEN: usize = 1024;

/// A password as its parts, for users with more than a bare mOTP code: SCRV1's password part
/// (decoded) if the client used a static challenge, and the response (SCRV1's, decoded, or the
/// whole password), trimmed. Both wiped on drop.
pub struct Parts {
    pub static_part: Option<Zeroizing<Vec<u8>>>,
    pub response: Zeroizing<Vec<u8>>,
}

/// Reads the password into its [`Parts`].
pub fn parse_parts(password: &[u8]) -> Result<Parts, Malformed> {
    if password.len() > MAX_PASSWORD_LEN {
        return Err(Malformed::TooLong);
    }
    let Some(rest) = password.strip_prefix(SCRV1_PREFIX) else {
        let response = password.trim_ascii();
        if response.is_empty() || response.len() > MAX_RESPONSE_LEN {
            return Err(Malformed::NotACode);
        }
        return Ok(Parts {
            static_part: None,
            response: Zeroizing::new(response.to_vec()),
        });
    };
    let mut fields = rest.split(|&b| b == b':');
    let (Some(static_part), Some(response), None) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(Malformed::BadChallengeFormat);
    };
    // Each field is bounded by the whole password's limit (checked above), as for an mOTP
    // user's SCRV1 answer: a long static part is read as it is for them.
    let decode = |b64: &[u8]| -> Result<Zeroizing<Vec<u8>>, Malformed> {
        let mut out = Zeroizing::new(vec![0u8; b64.len() / 4 * 3 + 3]);
        let len = STANDARD
            .decode_slice(b64, &mut out[..])
            .map_err(|_| Malformed::BadBase64)?;
        out.truncate(len);
        Ok(out)
    };
    let static_part = decode(static_part)?;
    if response.len() > MAX_RESPONSE_LEN * 4 / 3 + 4 {
        return Err(Malformed::TooLong);
    }
    let decoded = decode(response)?;
    let response = Zeroizing::new(decoded.trim_ascii().to_vec());
    if response.is_empty() {
        return Err(Malformed::NotACode);
    }
    Ok(Parts {
        static_part: Some(static_part),
        response,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        STANDARD.encode(s)
    }

    #[test]
    fn bare_code_any_case_trimmed() {
        assert_eq!(parse(b"6ed4e4").unwrap().to_hex(), "6ed4e4");
        assert_eq!(parse(b"  6ED4E4\n").unwrap().to_hex(), "6ed4e4");
    }

    #[test]
    fn scrv1_valid() {
        let pw = format!("SCRV1:{}:{}", b64("static password"), b64("6ed4e4"));
        assert_eq!(parse(pw.as_bytes()).unwrap().to_hex(), "6ed4e4");
        // The password part may be empty, and a trailing newline in the response is trimmed.
        let pw = format!("SCRV1::{}", b64("6ED4E4\n"));
        assert_eq!(parse(pw.as_bytes()).unwrap().to_hex(), "6ed4e4");
    }

    #[test]
    fn scrv1_bad_base64() {
        assert_eq!(parse(b"SCRV1:cGFzcw==:!!!!"), Err(Malformed::BadBase64));
    }

    #[test]
    fn scrv1_missing_parts() {
        assert_eq!(parse(b"SCRV1:"), Err(Malformed::BadChallengeFormat));
        assert_eq!(parse(b"SCRV1:cGFzcw=="), Err(Malformed::BadChallengeFormat));
        assert_eq!(parse(b"SCRV1:cGFzcw==:"), Err(Malformed::NotACode));
    }

    #[test]
    fn scrv1_many_colons() {
        let pw = format!("SCRV1{}", ":".repeat(1000));
        assert_eq!(parse(pw.as_bytes()), Err(Malformed::BadChallengeFormat));
    }

    #[test]
    fn other_text_is_not_a_code() {
        for pw in [
            &b""[..],
            b"hunter2",
            b"6ed4e4x",
            b"\xff\xfe\xfd\xfc\xfb\xfa",
            b"=6ed4e",
        ] {
            assert!(parse(pw).is_err());
        }
        assert_eq!(parse(&[b'a'; 5000]), Err(Malformed::TooLong));
    }

    #[test]
    fn parts_of_bare_and_scrv1_passwords() {
        let bare = parse_parts(b" hunter2123456\n").unwrap();
        assert!(bare.static_part.is_none());
        assert_eq!(&bare.response[..], b"hunter2123456");
        let pw = format!("SCRV1:{}:{}", b64("hunter2"), b64("123456\n"));
        let scrv1 = parse_parts(pw.as_bytes()).unwrap();
        assert_eq!(scrv1.static_part.as_deref().map(|v| &v[..]), Some(&b"hunter2"[..]));
        assert_eq!(&scrv1.response[..], b"123456");
        assert_eq!(parse_parts(b"SCRV1:!!:MTIz").err(), Some(Malformed::BadBase64));
        assert_eq!(parse_parts(b"SCRV1:a:b:c").err(), Some(Malformed::BadChallengeFormat));
        assert_eq!(parse_parts(b"   ").err(), Some(Malformed::NotACode));
        assert_eq!(parse_parts(&[b'1'; 5000]).err(), Some(Malformed::TooLong));
        // A long static part is read as the mOTP parser reads it (bounded by the password's
        // limit only), so a table with token kinds changes nothing for an mOTP user's SCRV1.
        let long = format!("SCRV1:{}:{}", b64(&"p".repeat(2000)), b64("6ed4e4"));
        assert!(parse(long.as_bytes()).is_ok());
        assert_eq!(&parse_parts(long.as_bytes()).unwrap().response[..], b"6ed4e4");
    }
}
