//! `motp::password::parse` on arbitrary bytes: never panics, and whatever it accepts is a code
//! the client really sent (a bare 6-hex code, or the response field of an `SCRV1:` answer).
#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(code) = motp::password::parse(data) else {
        return;
    };
    let hex = code.to_hex();
    assert_eq!(hex.len(), 6);
    assert!(hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));

    let trimmed = data.trim_ascii();
    let bare = trimmed.len() == 6 && trimmed.iter().all(u8::is_ascii_hexdigit);
    assert!(
        bare || data.starts_with(b"SCRV1:"),
        "accepted something that is neither a bare code nor SCRV1"
    );
    if let Some(rest) = data.strip_prefix(b"SCRV1:") {
        // Exactly two fields, and the second decodes to the code (whitespace around it allowed).
        let fields: Vec<&[u8]> = rest.split(|&b| b == b':').collect();
        assert_eq!(
            fields.len(),
            2,
            "SCRV1 accepted with {} fields",
            fields.len()
        );
        let decoded = STANDARD
            .decode(fields[1])
            .expect("accepted a response with bad base64");
        assert_eq!(decoded.trim_ascii().to_ascii_lowercase(), hex.as_bytes());
    } else {
        assert_eq!(trimmed.to_ascii_lowercase(), hex.as_bytes());
    }
});
