//! `motp::password::parse_parts` (the password of a user with a token kind, a static password
//! or recovery codes) on arbitrary bytes: never panics, and what it accepts is what the client
//! sent: a bare response (the password, trimmed), or an `SCRV1:` answer's two fields decoded.
#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(parts) = motp::password::parse_parts(data) else {
        return;
    };
    assert!(!parts.response.is_empty());
    assert!(parts.response.len() <= motp::password::MAX_RESPONSE_LEN);
    match data.strip_prefix(b"SCRV1:") {
        None => {
            assert!(parts.static_part.is_none());
            assert_eq!(&parts.response[..], data.trim_ascii());
        }
        Some(rest) => {
            let fields: Vec<&[u8]> = rest.split(|&b| b == b':').collect();
            assert_eq!(fields.len(), 2, "SCRV1 accepted with {} fields", fields.len());
            let static_part = STANDARD.decode(fields[0]).expect("accepted bad base64");
            let response = STANDARD.decode(fields[1]).expect("accepted bad base64");
            assert_eq!(parts.static_part.as_deref().map(|p| &p[..]), Some(&static_part[..]));
            assert_eq!(&parts.response[..], response.trim_ascii());
        }
    }
});
