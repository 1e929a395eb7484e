//! mOTP, the first token kind: `first 6 hex of md5(decimal(step) ‖ secret ‖ pin)`, step =
//! floor(t/10).
//!
//! Codes are compared as the 3 bytes they encode, not as text, so no hex string is built per
//! step. Every comparison is constant-time and a rejection always walks the whole window. The
//! window is hashed several steps at a time ([`md5_lanes`]): 37 one-block MD5s one after the
//! other leave most of the core idle.

use md5::{Digest, Md5};
use subtle::{Choice, ConstantTimeEq};
use zeroize::Zeroizing;

use super::{first_match, window_order, Match, TokenKind};
use crate::md5_lanes::{self, LANES};

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
    code_and_digits_at_step(step, key).0
}

/// [`code_at_step`], and how many digits the step's decimal text has.
fn code_and_digits_at_step(step: i64, key: &[u8]) -> (Code, usize) {
    let mut digits = itoa_buf(step);
    let mut hasher = Md5::new();
    hasher.update(digits.as_bytes());
    hasher.update(key);
    let digest = Zeroizing::new(<[u8; 16]>::from(hasher.finalize()));
    let count = digits.as_bytes().len();
    digits.clear();
    (Code([digest[0], digest[1], digest[2]]), count)
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
    let mut out = StepDigits::default();
    out.set(step);
    out
}

/// A step's decimal text, right-aligned in `buf` from `start` (i64::MIN takes all 20 bytes).
#[derive(Default)]
struct StepDigits {
    buf: [u8; 20],
    start: usize,
}

impl StepDigits {
    /// Formats `step` in place, two digits per division: the batched search formats a step per
    /// lane, and a digit-by-digit loop whose result was then returned by value (copied out with
    /// wide loads over the narrow stores just made, stalling on store-to-load forwarding) was a
    /// large share of the batch's cost.
    fn set(&mut self, step: i64) {
        const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
        let out = self;
        out.start = out.buf.len();
        let mut n = step.unsigned_abs();
        while n >= 100 {
            let pair = (n % 100) as usize * 2;
            n /= 100;
            out.start -= 2;
            out.buf[out.start..out.start + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
        }
        if n >= 10 {
            let pair = n as usize * 2;
            out.start -= 2;
            out.buf[out.start..out.start + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
        } else {
            out.start -= 1;
            out.buf[out.start] = b'0' + n as u8;
        }
        if step < 0 {
            out.start -= 1;
            out.buf[out.start] = b'-';
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
    fn clear(&mut self) {
        self.buf = [0; 20];
    }
}

/// Searches `center ± radius` steps, starting at `center` and moving outward (0, +1, -1, +2, ...).
///
/// The centre is hashed on its own first (a phone in sync is accepted after one hash); the
/// other steps are hashed [`LANES`] at a time (see [`md5_lanes`]), in batches taken in that
/// order, so the next batch holds the centre's nearest neighbours. An accept stops after the
/// centre or the batch that matched and returns the match nearest the centre in that order; a rejection
/// always hashes the whole window. Each comparison, and the choice of the first match within a
/// batch, is constant-time, so the time of a rejection says nothing about how close the guess
/// was.
pub fn find_step(code: Code, key: &[u8], center: i64, radius: i64) -> Option<Match> {
    search(code, key, center, radius, true, key.len())
}

/// [`find_step`], each code costing what it costs for a key of `cost_key_len` bytes if that is
/// more: with the table's longest key, every user's search, and [`burn_window_costing`], cost
/// the same number of MD5 blocks (a key over 46 bytes needs two per code).
pub fn find_step_costing(
    code: Code,
    key: &[u8],
    center: i64,
    radius: i64,
    cost_key_len: usize,
) -> Option<Match> {
    search(code, key, center, radius, true, cost_key_len)
}

/// The length of a typical `secret ‖ pin` (16 hex and a 4-digit PIN), hashed by the burn.
const DUMMY_KEY: &[u8] = b"00000000000000000000";

/// Spends the same work as a full-window rejection, for logins that have no key to check
/// (unknown or disabled users), so their timing matches a wrong code for a real user with a
/// typical key: the same batches, the same block count.
pub fn burn_window(code: Code, center: i64, radius: i64) {
    burn_window_costing(code, center, radius, DUMMY_KEY.len());
}

/// [`burn_window`] costing what a wrong code costs for a key of `cost_key_len` bytes (the
/// table's longest), as [`find_step_costing`] does for every user.
pub fn burn_window_costing(code: Code, center: i64, radius: i64, cost_key_len: usize) {
    std::hint::black_box(search(code, DUMMY_KEY, center, radius, false, cost_key_len));
}

/// MD5 blocks to spend per code, beyond the message's own, so that hashing `digits ‖ key`
/// costs what `digits ‖ (a key of cost_key_len bytes)` does.
fn padding_blocks(digits: usize, key_len: usize, cost_key_len: usize) -> usize {
    md5_lanes::blocks_for(digits + cost_key_len)
        .saturating_sub(md5_lanes::blocks_for(digits + key_len))
}

fn search(
    code: Code,
    key: &[u8],
    center: i64,
    radius: i64,
    stop_at_match: bool,
    cost_key_len: usize,
) -> Option<Match> {
    let mut order = window_order(center, radius).peekable();
    let mut found = None;
    // The centre alone first, with one scalar MD5: a phone in sync (most logins) is accepted
    // after one hash instead of a batch of eight (docs/performance.md, "Figures behind design
    // choices"); a
    // rejection pays one hash more.
    if let Some(&(step, 0)) = order.peek() {
        order.next();
        let (at_step, digits) = code_and_digits_at_step(step, key);
        let matched = at_step.0.ct_eq(&code.0);
        md5_lanes::burn_blocks::<1>(padding_blocks(digits, key.len(), cost_key_len));
        if bool::from(matched) {
            found = Some(Match {
                step,
                step_offset: 0,
            });
            if stop_at_match {
                return found;
            }
        }
    }
    let mut digits: [StepDigits; LANES] = Default::default();
    loop {
        let mut batch = [(0i64, 0i64); LANES];
        let mut count = 0;
        for (slot, candidate) in batch.iter_mut().zip(&mut order) {
            *slot = candidate;
            count += 1;
        }
        if count == 0 {
            return found;
        }
        // Spare lanes of the last batch hash the batch's first step again: as many digits as
        // the others, so the batch keeps `digest_prefixed`'s fast path, and never a match
        // (`first_match` ignores them).
        for (lane, text) in digits.iter_mut().enumerate() {
            text.set(batch[if lane < count { lane } else { 0 }].0);
        }
        let prefixes: [&[u8]; LANES] = std::array::from_fn(|lane| digits[lane].as_bytes());
        let digests = md5_lanes::digest_prefixed(&prefixes, key);
        md5_lanes::burn_blocks::<LANES>(padding_blocks(prefixes[0].len(), key.len(), cost_key_len));
        // One comparison of the 3 code bytes as a word per lane, rather than one per byte.
        let wanted = u32::from_le_bytes([code.0[0], code.0[1], code.0[2], 0]);
        let equal: [Choice; LANES] = std::array::from_fn(|lane| {
            let d = &digests[lane];
            u32::from_le_bytes([d[0], d[1], d[2], 0]).ct_eq(&wanted)
        });
        for step in &mut digits {
            step.clear();
        }
        let (seen, lane) = first_match(&equal, count);
        if bool::from(seen) && found.is_none() {
            let (step, step_offset) = batch[lane as usize];
            found = Some(Match { step, step_offset });
            if stop_at_match {
                return found;
            }
        }
    }
}

/// mOTP as a [`TokenKind`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Motp;

impl TokenKind for Motp {
    type Code = Code;

    fn step_secs(&self) -> i64 {
        STEP_SECS
    }

    fn parse(&self, text: &[u8]) -> Option<Code> {
        Code::parse(text)
    }

    fn find(
        &self,
        code: Code,
        key: &[u8],
        center: i64,
        radius: i64,
        cost_key_len: usize,
    ) -> Option<Match> {
        find_step_costing(code, key, center, radius, cost_key_len)
    }

    fn burn(&self, code: Code, center: i64, radius: i64, cost_key_len: usize) {
        burn_window_costing(code, center, radius, cost_key_len);
    }
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
    fn costing_pads_to_the_longest_key_without_changing_any_answer() {
        // 9 digits: a key up to 46 bytes fits one block, a longer one needs two.
        assert_eq!(padding_blocks(9, 20, 20), 0);
        assert_eq!(padding_blocks(9, 20, 46), 0);
        assert_eq!(padding_blocks(9, 20, 47), 1);
        assert_eq!(padding_blocks(9, 52, 52), 0);
        assert_eq!(
            padding_blocks(9, 52, 20),
            0,
            "never less than the key's own cost"
        );
        let short = key("0123456789abcdef", "6666");
        let long = key("00112233445566778899aabbccddeeff", "a-very-long-pin-of-20");
        for k in [&short, &long] {
            for offset in [-18, -3, 0, 1, 18] {
                let code = code_at_step(1_000 + offset, k);
                for cost in [0, k.len(), 96] {
                    assert_eq!(
                        find_step_costing(code, k, 1_000, 18, cost),
                        find_step(code, k, 1_000, 18),
                        "offset {offset}, cost {cost}"
                    );
                }
            }
            let wrong = Code::parse(b"000000").unwrap();
            if find_step(wrong, k, 1_000, 18).is_none() {
                assert_eq!(find_step_costing(wrong, k, 1_000, 18, 96), None);
            }
        }
        burn_window_costing(Code::parse(b"abcdef").unwrap(), 1_000, 18, 96);
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
        for n in (0..2_000).chain([9_999, 10_000, 99_999_999, 1_000_000_000, i64::MAX]) {
            assert_eq!(itoa_buf(n).as_bytes(), n.to_string().as_bytes());
            assert_eq!(itoa_buf(-n).as_bytes(), (-n).to_string().as_bytes());
        }
    }

    /// The search as it was before batching: one code at a time, nearest first.
    fn naive(code: Code, key: &[u8], center: i64, radius: i64) -> Option<Match> {
        window_order(center, radius)
            .find(|&(step, _)| code_at_step(step, key) == code)
            .map(|(step, step_offset)| Match { step, step_offset })
    }

    #[test]
    fn window_order_is_outward_and_skips_negative_steps() {
        let steps = |center, radius| window_order(center, radius).collect::<Vec<_>>();
        assert_eq!(
            steps(100, 2),
            [(100, 0), (101, 1), (99, -1), (102, 2), (98, -2)]
        );
        assert_eq!(steps(1, 2), [(1, 0), (2, 1), (0, -1), (3, 2)]);
        assert_eq!(steps(7, 0), [(7, 0)]);
        assert_eq!(steps(-5, 2), []);
        assert_eq!(steps(100, -3), [(100, 0)]);
    }

    #[test]
    fn first_match_takes_the_first_lane_that_counts() {
        let t = Choice::from(1);
        let f = Choice::from(0);
        let mut equal = [f; LANES];
        assert!(!bool::from(first_match(&equal, LANES).0));
        equal[LANES - 1] = t;
        assert_eq!(first_match(&equal, LANES).1, LANES as u64 - 1);
        // Spare lanes past `count` never match.
        assert!(!bool::from(first_match(&equal, LANES - 1).0));
        equal[2] = t;
        equal[5 % LANES] = t;
        let (seen, lane) = first_match(&equal, LANES);
        assert!(bool::from(seen));
        assert_eq!(lane, 2);
    }

    #[test]
    fn every_offset_matches_like_the_one_at_a_time_search() {
        let k = key("e3152afee62599c8", "1234");
        for center in [
            0i64,
            1,
            5,
            17,
            18,
            19,
            40,
            99_999_995,
            1_000_000_003,
            176_431_680,
        ] {
            for radius in [0, 1, 3, 4, 7, 8, 9, 18, 36] {
                for offset in -radius - 1..=radius + 1 {
                    let Some(step) = center.checked_add(offset).filter(|s| *s >= 0) else {
                        continue;
                    };
                    let code = code_at_step(step, &k);
                    let found = find_step(code, &k, center, radius);
                    assert_eq!(
                        found,
                        naive(code, &k, center, radius),
                        "{center} {radius} {offset}"
                    );
                    if offset.abs() <= radius {
                        let m = found.expect("a code inside the window is found");
                        assert_eq!(m.step, center + m.step_offset);
                        assert!(m.step_offset.abs() <= offset.abs());
                    }
                }
            }
        }
    }

    #[test]
    fn a_wrong_code_is_rejected_everywhere() {
        let k = key("0123456789abcdef", "6666");
        for center in [0, 3, 1_000_000_000, 176_431_680] {
            for radius in [0, 5, 18] {
                let window: Vec<Code> = window_order(center, radius)
                    .map(|(s, _)| code_at_step(s, &k))
                    .collect();
                let wrong = (0u32..)
                    .map(|n| Code::parse(format!("{n:06x}").as_bytes()).expect("6 hex"))
                    .find(|c| !window.contains(c))
                    .expect("some code is outside the window");
                assert_eq!(find_step(wrong, &k, center, radius), None);
                burn_window(wrong, center, radius);
            }
        }
    }

    #[test]
    fn radius_zero_checks_the_centre_only() {
        let k = key("0123456789abcdef", "6666");
        let center = 176_431_680;
        let here = code_at_step(center, &k);
        assert_eq!(
            find_step(here, &k, center, 0),
            Some(Match {
                step: center,
                step_offset: 0
            })
        );
        let next = code_at_step(center + 1, &k);
        if next != here {
            assert_eq!(find_step(next, &k, center, 0), None);
        }
    }

    #[test]
    fn windows_at_step_zero() {
        let k = key("0123456789abcdef", "1");
        for center in 0..6 {
            for step in 0..12 {
                let code = code_at_step(step, &k);
                assert_eq!(find_step(code, &k, center, 5), naive(code, &k, center, 5));
            }
        }
        // Entirely below zero: nothing to hash, nothing found.
        assert_eq!(find_step(code_at_step(0, &k), &k, -20, 5), None);
        burn_window(code_at_step(0, &k), -20, 5);
        burn_window(code_at_step(0, &k), 2, 18);
    }

    /// Two steps with the same code (6 hex digits collide about once in 2^24 pairs, so a window
    /// of a few thousand steps holds one): the search returns the one nearer the centre, in the
    /// order 0, +1, -1, ..., whichever batch or lane each falls in.
    #[test]
    fn colliding_codes_resolve_to_the_nearest_step() {
        let k = key("bbb1912bb5c515be", "9999");
        let base = 165_954_002;
        let mut seen = std::collections::HashMap::new();
        let (low, high) = (base..base + 20_000)
            .find_map(|step| {
                seen.insert(code_at_step(step, &k).0, step)
                    .map(|earlier| (earlier, step))
            })
            .expect("a collision within 20,000 steps");
        let code = code_at_step(low, &k);
        assert_eq!(code, code_at_step(high, &k));
        let gap = high - low;
        let radius = gap + 2;
        // Centres from just below `low` to just above `high`: each picks the nearer one, and
        // the one above on a tie (+d is searched before -d).
        for center in (low - 2..=low + 9)
            .chain(high - 9..=high + 2)
            .chain([low + gap / 2])
        {
            let m = find_step(code, &k, center, radius).expect("both are in the window");
            assert_eq!(Some(m), naive(code, &k, center, radius), "centre {center}");
            let (to_low, to_high) = ((low - center).abs(), (high - center).abs());
            let expected = if to_high <= to_low { high } else { low };
            assert_eq!(m.step, expected, "centre {center}");
        }
    }

    #[test]
    fn debug_never_shows_a_code() {
        let code = Code::parse(b"6ed4e4").unwrap();
        assert!(!format!("{code:?}").contains("6ed4e4"));
    }
}
