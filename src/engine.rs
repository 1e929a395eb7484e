//! The mOTP algorithm: `first 6 hex of md5(decimal(step) ‖ secret ‖ pin)`, step = floor(t/10).
//!
//! Codes are compared as the 3 bytes they encode, not as text, so no hex string is built per
//! step. Every comparison is constant-time and a rejection always walks the whole window.

use md5::{Digest, Md5};
use subtle::{ConditionallySelectable, ConstantTimeEq};
use zeroize::Zeroizing;

/// mOTP's fixed step length.
pub const STEP_SECS: i64 = 10;

/// A code as typed by the user: 6 hex characters, held as the 3 bytes they spell.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Code([u8; 3]);

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Code(<redacted>)")
    }
}

impl Code {
    /// Parses exactly 6 hex characters, upper or lower case.
    pub fn parse(text: &[u8]) -> Option<Code> {
        if text.len() != 6 {
            return None;
        }
        let mut bytes = [0u8; 3];
        for (i, pair) in text.chunks_exact(2).enumerate() {
            bytes[i] = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
        }
        Some(Code(bytes))
    }

    /// The code as a phone shows it (lowercase hex).
    pub fn to_hex(self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The step a clock reading falls in (floor division, so negative times round down too).
pub fn step_of(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(STEP_SECS)
}

/// The code for one step. `key` is `secret ‖ pin`, exactly as written in the config.
pub fn code_at_step(step: i64, key: &[u8]) -> Code {
    let mut digits = itoa_buf(step);
    let mut hasher = Md5::new();
    hasher.update(digits.as_bytes());
    hasher.update(key);
    let digest = Zeroizing::new(<[u8; 16]>::from(hasher.finalize()));
    digits.clear();
    Code([digest[0], digest[1], digest[2]])
}

/// The code a phone shows at `unix_secs` for this secret and PIN.
pub fn code_at_time(secret: &str, pin: &str, unix_secs: i64) -> Code {
    let mut key = Zeroizing::new(Vec::with_capacity(secret.len() + pin.len()));
    key.extend_from_slice(secret.as_bytes());
    key.extend_from_slice(pin.as_bytes());
    code_at_step(step_of(unix_secs), &key)
}

/// Decimal text of a step, with no padding (counter 4 hashes as "4").
fn itoa_buf(step: i64) -> StepDigits {
    let mut out = StepDigits {
        buf: [0; 20],
        len: 0,
    };
    let mut n = step.unsigned_abs();
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let digits = &tmp[i..];
    let mut at = 0;
    if step < 0 {
        out.buf[0] = b'-';
        at = 1;
    }
    out.buf[at..at + digits.len()].copy_from_slice(digits);
    out.len = at + digits.len();
    out
}

struct StepDigits {
    buf: [u8; 20],
    len: usize,
}

impl StepDigits {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
    fn clear(&mut self) {
        self.buf = [0; 20];
    }
}

/// Where in the window a code matched: its step, and how far that is from the expected step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    pub step: i64,
    pub step_offset: i64,
}

/// Searches `center ± radius` steps, starting at `center` and moving outward (0, +1, -1, +2, ...).
///
/// An accept may stop at the first match; a rejection always costs all `2*radius+1` hashes, and
/// each comparison is constant-time, so the time of a rejection says nothing about how close the
/// guess was.
pub fn find_step(code: Code, key: &[u8], center: i64, radius: i64) -> Option<Match> {
    for distance in 0..=radius {
        let candidates = if distance == 0 {
            [0, 0]
        } else {
            [distance, -distance]
        };
        let count = if distance == 0 { 1 } else { 2 };
        for &step_offset in &candidates[..count] {
            let step = center.saturating_add(step_offset);
            if step < 0 {
                continue;
            }
            if bool::from(code_at_step(step, key).0.ct_eq(&code.0)) {
                return Some(Match { step, step_offset });
            }
        }
    }
    None
}

/// Spends the same work as a full-window rejection, for logins that have no key to check
/// (unknown or disabled users), so their timing matches a wrong code for a real user.
pub fn burn_window(code: Code, center: i64, radius: i64) {
    const DUMMY_KEY: &[u8] = b"0000000000000000000000000000000000000000";
    let mut seen = subtle::Choice::from(0);
    for step_offset in -radius..=radius {
        let step = center.saturating_add(step_offset).max(0);
        let eq = code_at_step(step, DUMMY_KEY).0.ct_eq(&code.0);
        seen.conditional_assign(&eq, eq);
    }
    std::hint::black_box(seen);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret: &str, pin: &str) -> Vec<u8> {
        [secret.as_bytes(), pin.as_bytes()].concat()
    }

    /// (counter, secret, pin, expected) from the reference file, section 2.
    const VECTORS: &[(i64, &str, &str, &str)] = &[
        (129612120, "0123456789abcdef", "6666", "6ed4e4"),
        (129612130, "0123456789abcdef", "6666", "502a59"),
        (0, "0123456789abcdef", "1", "bd94a4"),
        (4, "0123456789abcdef", "1", "fb596e"),
        (129612244, "0123456789abcdef", "77777777", "7abf75"),
        (129612253, "0123456789abcdef", "77777777", "4d4ac4"),
        (16589229, "e3152afee62599c8", "1234", "e7d8b6"),
        (12345678, "e3152afee62599c8", "1234", "4ebfb2"),
        (165954002, "bbb1912bb5c515be", "9999", "ced7b1"),
        (165953987, "bbb1912bb5c515be", "9999", "1a14f8"),
        (154461672, "1234567890123456", "1234", "488ccf"),
        (126753370, "1234567890123456", "1234", "7215e7"),
        (0, "7ac61d4736f51a2b", "5555", "c42a26"),
    ];

    #[test]
    fn published_vectors_match() {
        for &(counter, secret, pin, expected) in VECTORS {
            assert_eq!(
                code_at_step(counter, &key(secret, pin)).to_hex(),
                expected,
                "counter {counter}"
            );
        }
    }

    #[test]
    fn aegis_epoch_vectors_round_down() {
        let cases = [
            (165892298, "e3152afee62599c8", "1234", "e7d8b6"),
            (123456789, "e3152afee62599c8", "1234", "4ebfb2"),
            (1659540020, "bbb1912bb5c515be", "9999", "ced7b1"),
            (1659540022, "bbb1912bb5c515be", "9999", "ced7b1"),
            (1659539870, "bbb1912bb5c515be", "9999", "1a14f8"),
            (1659539878, "bbb1912bb5c515be", "9999", "1a14f8"),
            (1544616720, "1234567890123456", "1234", "488ccf"),
        ];
        for (epoch, secret, pin, expected) in cases {
            assert_eq!(
                code_at_time(secret, pin, epoch).to_hex(),
                expected,
                "epoch {epoch}"
            );
        }
    }

    #[test]
    fn zero_padding_would_give_a_different_code() {
        // Counter 4 zero-padded to 9 digits gives 7c2ee3: the engine must not pad.
        assert_ne!(
            code_at_step(4, &key("0123456789abcdef", "1")).to_hex(),
            "7c2ee3"
        );
    }

    #[test]
    fn deviating_implementations_do_not_match() {
        let k = key("0123456789abcdef", "6666");
        let ours = code_at_step(129612120, &k).to_hex();
        // openvpn-otp `hex` encoding, openvpn-otp udid "xxx", and PIN-before-secret.
        for wrong in ["f6a378", "4bd42d", "ff94ab"] {
            assert_ne!(ours, wrong);
        }
        // The secret is hashed as text: uppercase gives another code.
        assert_eq!(
            code_at_step(129612120, &key("0123456789ABCDEF", "6666")).to_hex(),
            "ebad68"
        );
    }

    #[test]
    fn code_parse_accepts_any_case_and_rejects_other_text() {
        assert_eq!(Code::parse(b"6ED4e4").unwrap().to_hex(), "6ed4e4");
        for bad in [
            &b""[..],
            b"6ed4e",
            b"6ed4e4a",
            b"6ed4eg",
            b" 6ed4e",
            "ééé".as_bytes(),
        ] {
            assert!(Code::parse(bad).is_none());
        }
    }

    #[test]
    fn window_edges() {
        let k = key("0123456789abcdef", "6666");
        let now = 1_700_000_005;
        let center = step_of(now);
        for (phone_delta, accepted) in [
            (0, true),
            (180, true),
            (-180, true),
            (190, false),
            (-190, false),
        ] {
            let code = code_at_step(step_of(now + phone_delta), &k);
            let found = find_step(code, &k, center, 18);
            assert_eq!(found.is_some(), accepted, "phone at {phone_delta:+} s");
            if let Some(m) = found {
                assert_eq!(m.step_offset, phone_delta / 10);
            }
        }
    }

    #[test]
    fn search_prefers_the_current_step() {
        let k = key("0123456789abcdef", "6666");
        let code = code_at_step(100, &k);
        assert_eq!(
            find_step(code, &k, 100, 18),
            Some(Match {
                step: 100,
                step_offset: 0
            })
        );
    }

    #[test]
    fn negative_steps_are_skipped() {
        let k = key("0123456789abcdef", "1");
        let code = code_at_step(0, &k);
        assert_eq!(find_step(code, &k, 2, 18).unwrap().step, 0);
        assert_eq!(itoa_buf(-12).as_bytes(), b"-12");
        assert_eq!(itoa_buf(i64::MIN).as_bytes(), b"-9223372036854775808");
    }

    #[test]
    fn debug_never_shows_a_code() {
        let code = Code::parse(b"6ed4e4").unwrap();
        assert!(!format!("{code:?}").contains("6ed4e4"));
    }
}
