//! Base32 (RFC 4648 §6), the encoding of TOTP and HOTP secrets in phone apps, Key URIs and
//! `~/.google_authenticator`. Written here rather than taken from a crate because secrets are
//! typed by people: lower case and the spaces apps insert in groups of four are accepted, and
//! neither an error nor its message ever shows the text, which is a secret.
//!
//! The unused bits of the last symbol are ignored, not refused: phone apps ignore them too, so
//! refusing them would refuse a secret the phone accepted.

use zeroize::{Zeroize, Zeroizing};

/// The shortest secret accepted: 10 bytes (80 bits, 16 characters), what several apps and
/// services issue. RFC 4226 §4 requires 128 bits and recommends 160 (20 bytes, 32 characters),
/// the most common length.
pub const MIN_SECRET_LEN: usize = 10;

/// The longest secret accepted: 128 bytes, twice SHA-512's 64-byte output (RFC 6238's longest
/// test key is 64 bytes), 205 characters.
pub const MAX_SECRET_LEN: usize = 128;

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Why a text is not base32. No variant holds any of the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base32Error {
    /// A character outside A-Z, a-z, 2-7, space, tab and '='; `position` counts characters
    /// from 1.
    InvalidCharacter { position: usize },
    /// A letter or digit after '=' padding.
    MisplacedPadding,
    /// '=' padding that does not end the last group of 8 exactly.
    WrongPadding,
    /// A number of symbols (1, 3 or 6 past a multiple of 8) that no byte string encodes.
    ImpossibleLength { symbols: usize },
}

impl std::fmt::Display for Base32Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidCharacter { position } => {
                write!(f, "character {position} is not base32 (A-Z, 2-7)")
            }
            Self::MisplacedPadding => f.write_str("'=' padding is followed by more characters"),
            Self::WrongPadding => f.write_str("the '=' padding does not end a group of 8"),
            Self::ImpossibleLength { symbols } => write!(
                f,
                "{symbols} base32 characters is a length no secret encodes (one may be missing \
                 or extra)"
            ),
        }
    }
}

impl std::error::Error for Base32Error {}

fn symbol_value(c: char) -> Option<u8> {
    match c {
        'A'..='Z' => Some(c as u8 - b'A'),
        'a'..='z' => Some(c as u8 - b'a'),
        '2'..='7' => Some(c as u8 - b'2' + 26),
        _ => None,
    }
}

/// Decodes base32 in either case, ignoring spaces and tabs, with or without '=' padding (if
/// present it must be complete and at the end).
pub fn decode(text: &str) -> Result<Zeroizing<Vec<u8>>, Base32Error> {
    // A first pass checks everything and counts, so the output is allocated once at its size
    // and never reallocated (which would leave a copy of the secret in freed memory).
    let mut symbols = 0usize;
    let mut padding = 0usize;
    for (index, c) in text.chars().enumerate() {
        match c {
            ' ' | '\t' => {}
            '=' => padding += 1,
            _ if symbol_value(c).is_some() => {
                if padding > 0 {
                    return Err(Base32Error::MisplacedPadding);
                }
                symbols += 1;
            }
            _ => {
                return Err(Base32Error::InvalidCharacter {
                    position: index + 1,
                })
            }
        }
    }
    if matches!(symbols % 8, 1 | 3 | 6) {
        return Err(Base32Error::ImpossibleLength { symbols });
    }
    if padding != 0 && padding != (8 - symbols % 8) % 8 {
        return Err(Base32Error::WrongPadding);
    }
    let mut out = Zeroizing::new(Vec::with_capacity(symbols * 5 / 8));
    let mut buffer = 0u32;
    let mut bits = 0u32;
    for value in text.chars().filter_map(symbol_value) {
        buffer = (buffer << 5) | u32::from(value);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    buffer.zeroize();
    debug_assert_eq!(out.len(), symbols * 5 / 8);
    Ok(out)
}

/// Encodes in upper case without padding, as Key URIs carry secrets.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity((bytes.len() * 8).div_ceil(5));
    let mut buffer = 0u32;
    let mut bits = 0u32;
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    buffer.zeroize();
    out
}

/// Why `text` cannot be a TOTP/HOTP secret ("must be ..."), naming neither the text nor any of
/// it; `None` if it can: base32 of [`MIN_SECRET_LEN`] to [`MAX_SECRET_LEN`] bytes.
pub fn secret_problem(text: &str) -> Option<String> {
    let key = match decode(text) {
        Ok(key) => key,
        Err(e) => {
            return Some(format!(
                "must be base32 as the app or Key URI shows it (letters A-Z, digits 2-7; spaces \
                 and '=' padding allowed); {e}"
            ))
        }
    };
    if (MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&key.len()) {
        return None;
    }
    Some(format!(
        "must decode to {MIN_SECRET_LEN} to {MAX_SECRET_LEN} bytes (16 to 205 base32 \
         characters); this one decodes to {} bytes",
        key.len()
    ))
}
