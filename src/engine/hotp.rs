//! HOTP (RFC 4226): codes from a counter the token advances per press and the server stores.
//! Not a [`super::TokenKind`]: there is no clock, the window is the counters from the next
//! expected one forward (the look-ahead of RFC 4226 §7.2, for presses that never reached the
//! server), and a token that ran past it is resynchronised from two consecutive codes (§7.4).
//!
//! [`Hotp::find_ahead`] computes and compares every counter of the look-ahead, accept or
//! reject, and picks the first match without a data-dependent branch; [`Hotp::burn`] does the
//! same work with a dummy key.

use super::hmac_otp::{pad_key_cost, Algorithm, Keyed, OtpCode, DUMMY_KEY};

/// One HOTP configuration: the HMAC's hash and the digits shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hotp {
    pub algorithm: Algorithm,
    pub digits: u8,
}

impl Default for Hotp {
    /// RFC 4226's: SHA-1, 6 digits.
    fn default() -> Self {
        Hotp {
            algorithm: Algorithm::Sha1,
            digits: 6,
        }
    }
}

impl Hotp {
    /// Reads a code of this configuration's length.
    pub fn parse(&self, text: &[u8]) -> Option<OtpCode> {
        OtpCode::parse(text, self.digits)
    }

    /// The counter in `next_counter ..= next_counter + look_ahead` (cut at `u64::MAX`) whose
    /// code is `code`, the lowest if several; `None` if none. Costs what a key of `cost_key_len`
    /// bytes costs if that is more than `key`'s length.
    pub fn find_ahead(
        &self,
        code: OtpCode,
        key: &[u8],
        next_counter: u64,
        look_ahead: u64,
        cost_key_len: usize,
    ) -> Option<u64> {
        let keyed = Keyed::new(self.algorithm, key);
        pad_key_cost(self.algorithm, key.len(), cost_key_len);
        let last = next_counter.saturating_add(look_ahead);
        keyed.first_match((next_counter..=last).map(|c| (c, c)), code, self.digits)
    }

    /// The work of a rejection by [`Hotp::find_ahead`] with the same `look_ahead` and
    /// `cost_key_len`, without a key (a user that does not exist). (Only a counter within
    /// `look_ahead` of `u64::MAX` makes a real search shorter, which no token reaches.)
    pub fn burn(&self, code: OtpCode, look_ahead: u64, cost_key_len: usize) {
        let keyed = Keyed::new(self.algorithm, DUMMY_KEY);
        pad_key_cost(self.algorithm, DUMMY_KEY.len(), cost_key_len);
        std::hint::black_box(keyed.first_match(
            (0..=look_ahead).map(|c| (c, c)),
            code,
            self.digits,
        ));
    }

    /// Resynchronisation (RFC 4226 §7.4): the lowest counter `c` in `from .. from + span` with
    /// code(c) = `first` and code(c + 1) = `second`, `None` if none. For an administrator's
    /// tool, not a login: it stops at the first pair and is not constant-time. Each code is
    /// computed once.
    pub fn find_pair(
        &self,
        first: OtpCode,
        second: OtpCode,
        key: &[u8],
        from: u64,
        span: u64,
    ) -> Option<u64> {
        let keyed = Keyed::new(self.algorithm, key);
        let is = |value: u32, code: OtpCode| code.digits() == self.digits && value == code.value();
        let end = from.saturating_add(span);
        let mut value = keyed.value(from, self.digits);
        // c < end <= u64::MAX, so c + 1 exists.
        for c in from..end {
            let next = keyed.value(c + 1, self.digits);
            if is(value, first) && is(next, second) {
                return Some(c);
            }
            value = next;
        }
        None
    }
}
