//! What TOTP ([`super::totp`]) and HOTP ([`super::hotp`]) share: RFC 4226's code, a truncated
//! HMAC of an 8-byte big-endian counter, and the constant-time search over a run of counters.
//!
//! A search keys the HMAC once (the key, padded or first hashed, XORed into the inner and outer
//! blocks) and clones that state per counter, so each code costs two compressions whatever the
//! key. The key's own cost is then paid once per search and only depends on its length above
//! the hash's block size, where HMAC hashes the key first; [`pad_key_cost`] makes a search with
//! a shorter key spend those compressions too, so that every user's search (and the burn of an
//! unknown user) costs the same.

use hmac::digest::{FixedOutput, KeyInit, Output};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroize;

/// The HMAC's hash function. RFC 4226 has SHA-1 only; RFC 6238 adds SHA-256 and SHA-512, which
/// some hardware tokens use and several phone apps ignore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    #[default]
    Sha1,
    Sha256,
    Sha512,
}

impl Algorithm {
    /// Reads "sha1", "sha256" or "sha512", in any case (URIs write `SHA1`, configs `sha1`).
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Sha1, Self::Sha256, Self::Sha512]
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }

    /// The lowercase name [`Algorithm::from_name`] reads.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
        }
    }

    /// The hash's block size in bytes: HMAC hashes a longer key first, at extra cost.
    pub fn block_len(self) -> usize {
        match self {
            Self::Sha1 | Self::Sha256 => 64,
            Self::Sha512 => 128,
        }
    }

    /// Bytes of the message-length field in the hash's final block.
    fn length_field_len(self) -> usize {
        match self {
            Self::Sha1 | Self::Sha256 => 8,
            Self::Sha512 => 16,
        }
    }

    /// Compressions HMAC spends on hashing a key of `key_len` bytes before keying (none up to
    /// the block size: a shorter key is only padded).
    pub(super) fn key_hash_blocks(self, key_len: usize) -> usize {
        let block = self.block_len();
        if key_len <= block {
            0
        } else {
            (key_len + 1 + self.length_field_len()).div_ceil(block)
        }
    }
}

/// A typed code: its value and how many digits were typed. Zero-padded codes are common
/// ("004217"), so the digit count is part of the code, not read off the value.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct OtpCode {
    value: u32,
    digits: u8,
}

impl std::fmt::Debug for OtpCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OtpCode(<redacted>, {} digits)", self.digits)
    }
}

impl OtpCode {
    /// Whether codes of `digits` digits are supported: 6 (every phone app) or 8 (RFC 6238's
    /// vectors, some hardware tokens). RFC 4226 allows 7 too, which nothing common uses.
    pub fn supports(digits: u8) -> bool {
        matches!(digits, 6 | 8)
    }

    /// Reads exactly `digits` ASCII digits; `None` for anything else (signs, spaces, another
    /// length, or a digit count [`OtpCode::supports`] refuses).
    pub fn parse(text: &[u8], digits: u8) -> Option<OtpCode> {
        if !Self::supports(digits) || text.len() != usize::from(digits) {
            return None;
        }
        let mut value = 0u32;
        for &c in text {
            if !c.is_ascii_digit() {
                return None;
            }
            value = value * 10 + u32::from(c - b'0');
        }
        Some(OtpCode { value, digits })
    }

    /// The code whose value is `value` (below 10^digits), as [`hotp_value`] computes it.
    pub fn from_value(value: u32, digits: u8) -> Option<OtpCode> {
        (Self::supports(digits) && u64::from(value) < 10u64.pow(u32::from(digits)))
            .then_some(OtpCode { value, digits })
    }

    pub fn value(self) -> u32 {
        self.value
    }

    pub fn digits(self) -> u8 {
        self.digits
    }
}

/// The HOTP value of `counter` (RFC 4226 §5.3): HMAC of the big-endian counter, dynamic
/// truncation to 31 bits, modulo 10^digits.
pub fn hotp_value(key: &[u8], counter: u64, algorithm: Algorithm, digits: u8) -> u32 {
    Keyed::new(algorithm, key).value(counter, digits)
}

/// [`hotp_value`] as a phone shows it, zero-padded to `digits`.
pub fn hotp_text(key: &[u8], counter: u64, algorithm: Algorithm, digits: u8) -> String {
    format!(
        "{:0width$}",
        hotp_value(key, counter, algorithm, digits),
        width = usize::from(digits)
    )
}

/// An HMAC keyed once, cloned per counter. The keyed states (the key XORed into the pads, one
/// compression each) are not wiped when dropped: hmac 0.12 and the hashes' cores offer no
/// zeroize, and the key they derive from is in the caller's memory for as long anyway.
pub(super) enum Keyed {
    Sha1(Hmac<Sha1>),
    Sha256(Hmac<Sha256>),
    Sha512(Hmac<Sha512>),
}

impl Keyed {
    pub(super) fn new(algorithm: Algorithm, key: &[u8]) -> Keyed {
        // HMAC takes a key of any length (a long one is hashed first): never an error.
        const ANY_LENGTH: &str = "HMAC accepts keys of any length";
        match algorithm {
            Algorithm::Sha1 => Keyed::Sha1(KeyInit::new_from_slice(key).expect(ANY_LENGTH)),
            Algorithm::Sha256 => Keyed::Sha256(KeyInit::new_from_slice(key).expect(ANY_LENGTH)),
            Algorithm::Sha512 => Keyed::Sha512(KeyInit::new_from_slice(key).expect(ANY_LENGTH)),
        }
    }

    /// The code's value at `counter`.
    pub(super) fn value(&self, counter: u64, digits: u8) -> u32 {
        match self {
            Keyed::Sha1(mac) => truncated(mac, counter, digits),
            Keyed::Sha256(mac) => truncated(mac, counter, digits),
            Keyed::Sha512(mac) => truncated(mac, counter, digits),
        }
    }

    /// Whether `code` is the code at `counter` for `digits`-digit codes, in constant time.
    pub(super) fn matches(&self, counter: u64, code: OtpCode, digits: u8) -> Choice {
        // The digit count is configuration, not secret; it takes part so that a code typed for
        // another length never matches.
        self.value(counter, digits).ct_eq(&code.value) & code.digits.ct_eq(&digits)
    }

    /// The tag of the first `(counter, tag)` (in their order) whose code is `code`: every code
    /// is computed and compared, and the first chosen without a data-dependent branch, so the
    /// time says nothing about which counter matched, or how close a wrong code was.
    pub(super) fn first_match(
        &self,
        candidates: impl Iterator<Item = (u64, u64)>,
        code: OtpCode,
        digits: u8,
    ) -> Option<u64> {
        let mut seen = Choice::from(0);
        let mut first = 0u64;
        for (counter, tag) in candidates {
            let hit = self.matches(counter, code, digits);
            first.conditional_assign(&tag, hit & !seen);
            seen |= hit;
        }
        bool::from(seen).then_some(first)
    }
}

fn truncated<M: Mac + FixedOutput + Clone>(keyed: &M, counter: u64, digits: u8) -> u32 {
    let mut mac = keyed.clone();
    Mac::update(&mut mac, &counter.to_be_bytes());
    let mut out = Output::<M>::default();
    FixedOutput::finalize_into(mac, &mut out);
    let offset = out[out.len() - 1] & 0x0f;
    // The offset comes from the MAC: an indexed load could show in the cache, so every one of
    // the 16 possible words is read and the one at `offset` selected.
    let mut word = 0u32;
    for start in 0..16u8 {
        let i = usize::from(start);
        let candidate = u32::from_be_bytes([out[i], out[i + 1], out[i + 2], out[i + 3]]);
        word.conditional_assign(&candidate, start.ct_eq(&offset));
    }
    out.as_mut_slice().zeroize();
    let value = modulo(word & 0x7fff_ffff, digits);
    word.zeroize();
    value
}

/// `value mod 10^digits`, each divisor a constant: a division by a variable is a `div`
/// instruction whose time can depend on the operands, a division by a constant is a multiply.
fn modulo(value: u32, digits: u8) -> u32 {
    match digits {
        0 => 0,
        1 => value % 10,
        2 => value % 100,
        3 => value % 1_000,
        4 => value % 10_000,
        5 => value % 100_000,
        6 => value % 1_000_000,
        7 => value % 10_000_000,
        8 => value % 100_000_000,
        9 => value % 1_000_000_000,
        // 10 digits and more: the 31-bit value is already smaller than 10^10.
        _ => value,
    }
}

/// A key for searches that have none (unknown users): 20 bytes like most TOTP secrets, and as
/// costly as any key up to the block size.
pub(super) const DUMMY_KEY: &[u8] = &[0u8; 20];

/// Spends the compressions that hashing a key of `cost_key_len` bytes costs beyond one of
/// `key_len` bytes (none unless `cost_key_len` exceeds the block size), so that a search with
/// any key costs what one with the table's longest does.
pub(super) fn pad_key_cost(algorithm: Algorithm, key_len: usize, cost_key_len: usize) {
    let extra = algorithm
        .key_hash_blocks(cost_key_len)
        .saturating_sub(algorithm.key_hash_blocks(key_len));
    if extra == 0 {
        return;
    }
    // A message of this length is exactly `extra` blocks once padded.
    let len = extra * algorithm.block_len() - 1 - algorithm.length_field_len();
    match algorithm {
        Algorithm::Sha1 => hash_zeros::<Sha1>(len),
        Algorithm::Sha256 => hash_zeros::<Sha256>(len),
        Algorithm::Sha512 => hash_zeros::<Sha512>(len),
    }
}

fn hash_zeros<D: Digest>(len: usize) {
    const ZEROS: [u8; 128] = [0; 128];
    let mut hasher = D::new();
    let mut remaining = len;
    while remaining > 0 {
        let n = remaining.min(ZEROS.len());
        hasher.update(&ZEROS[..n]);
        remaining -= n;
    }
    std::hint::black_box(hasher.finalize());
}
