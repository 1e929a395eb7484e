//! TOTP (RFC 6238): the HOTP code ([`super::hmac_otp`]) of the time step, step =
//! floor(unix time / period). What Google Authenticator and nearly every phone app show.
//!
//! The window search has mOTP's guarantees: the centre step (a phone in sync) is checked on
//! its own first and an accept there returns at once; otherwise every other step of the window
//! is computed and compared in constant time and the first match, in [`window_order`], is
//! chosen without a data-dependent branch. A rejection always computes the whole window, and
//! [`Totp::burn`] does the same work with a dummy key.

use super::hmac_otp::{pad_key_cost, Algorithm, Keyed, OtpCode, DUMMY_KEY};
use super::{window_order, Match, TokenKind};

/// One TOTP configuration: the HMAC's hash, the digits shown, the step length in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totp {
    pub algorithm: Algorithm,
    pub digits: u8,
    pub period: u32,
}

impl Default for Totp {
    /// The apps' defaults (and the Key URI's when it names none): SHA-1, 6 digits, 30 s.
    fn default() -> Self {
        Totp {
            algorithm: Algorithm::Sha1,
            digits: 6,
            period: 30,
        }
    }
}

impl Totp {
    /// The step a clock reading falls in (floor division, so negative times round down and
    /// are then skipped by the search).
    pub fn step_of(&self, unix_secs: i64) -> i64 {
        unix_secs.div_euclid(self.step_secs().max(1))
    }

    /// The code a token shows during `step` (a negative step has none: its counter would be
    /// meaningless, and the search never looks there).
    pub fn value_at_step(&self, key: &[u8], step: u64) -> u32 {
        Keyed::new(self.algorithm, key).value(step, self.digits)
    }

    fn search(
        &self,
        code: OtpCode,
        key: &[u8],
        center: i64,
        radius: i64,
        cost_key_len: usize,
        stop_at_match: bool,
    ) -> Option<Match> {
        let keyed = Keyed::new(self.algorithm, key);
        pad_key_cost(self.algorithm, key.len(), cost_key_len);
        // `window_order` yields only steps >= 0, so the casts to a counter are exact.
        let mut order = window_order(center, radius).peekable();
        let mut found = None;
        // The centre alone first: a phone in sync (most logins) is accepted after one code.
        if let Some(&(step, 0)) = order.peek() {
            order.next();
            if bool::from(keyed.matches(step as u64, code, self.digits)) {
                found = Some(Match {
                    step,
                    step_offset: 0,
                });
                if stop_at_match {
                    return found;
                }
            }
        }
        // The tag is the offset's bits, to hand back the pair exactly as `window_order` made it.
        let rest = keyed.first_match(
            order.map(|(step, offset)| (step as u64, offset as u64)),
            code,
            self.digits,
        );
        match (found, rest) {
            (None, Some(offset)) => {
                let step_offset = offset as i64;
                Some(Match {
                    step: center.saturating_add(step_offset),
                    step_offset,
                })
            }
            _ => found,
        }
    }
}

impl TokenKind for Totp {
    type Code = OtpCode;

    fn step_secs(&self) -> i64 {
        i64::from(self.period)
    }

    fn parse(&self, text: &[u8]) -> Option<OtpCode> {
        OtpCode::parse(text, self.digits)
    }

    fn find(
        &self,
        code: OtpCode,
        key: &[u8],
        center: i64,
        radius: i64,
        cost_key_len: usize,
    ) -> Option<Match> {
        self.search(code, key, center, radius, cost_key_len, true)
    }

    fn burn(&self, code: OtpCode, center: i64, radius: i64, cost_key_len: usize) {
        std::hint::black_box(self.search(code, DUMMY_KEY, center, radius, cost_key_len, false));
    }
}
