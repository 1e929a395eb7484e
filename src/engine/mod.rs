//! The code check, one interface per token kind ([`TokenKind`]), so that each kind is a module
//! of its own, not a branch through one: [`motp`], [`totp`] (a [`TokenKind`] too), and [`hotp`]
//! (counter-based, with its own search), the last two on the HMAC code of [`hmac_otp`]; their
//! secrets are [`base32`]. What every kind shares lives here: where a match is in the window,
//! the window's search order, and the constant-time choice of the first match in a batch.
//!
//! Codes are compared as the bytes they encode, not as text. Every comparison is constant-time
//! and a rejection always walks the whole window, so the time of a rejection says nothing about
//! how close the guess was.

use subtle::{Choice, ConditionallySelectable};

use crate::md5_lanes::LANES;

pub mod base32;
pub mod hmac_otp;
pub mod hotp;
pub mod motp;
pub mod totp;

#[cfg(test)]
mod tests_otp;

pub use hmac_otp::{hotp_text, hotp_value, Algorithm, OtpCode};
pub use hotp::Hotp;
pub use motp::{
    burn_window, burn_window_costing, code_at_step, code_at_time, find_step, find_step_costing,
    step_of, Code, Motp, STEP_SECS,
};
pub use totp::Totp;

/// One kind of one-time code: how long its step is, how a typed code reads, and the window
/// search. A rejection must cost the same whatever was typed and whichever user was named:
/// `find` and `burn` with the same `cost_key_len` spend the same work.
pub trait TokenKind {
    /// A typed code, as the bytes it encodes.
    type Code: Copy;

    /// Seconds per step.
    fn step_secs(&self) -> i64;

    /// Reads a code exactly as the user types it; `None` for anything else.
    fn parse(&self, text: &[u8]) -> Option<Self::Code>;

    /// Searches `center ± radius` steps for `code` under `key`, each code costing what it costs
    /// for a key of `cost_key_len` bytes if that is more.
    fn find(
        &self,
        code: Self::Code,
        key: &[u8],
        center: i64,
        radius: i64,
        cost_key_len: usize,
    ) -> Option<Match>;

    /// The work of a full-window rejection, without a key (a user that does not exist).
    fn burn(&self, code: Self::Code, center: i64, radius: i64, cost_key_len: usize);
}

/// Where in the window a code matched: its step, and how far that is from the expected step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    pub step: i64,
    pub step_offset: i64,
}

/// The window's steps in search order, `(step, step_offset)`; negative steps are skipped.
pub(super) fn window_order(center: i64, radius: i64) -> impl Iterator<Item = (i64, i64)> {
    let count = radius.max(0).saturating_mul(2).saturating_add(1);
    (0..count)
        .map(|k| if k % 2 == 1 { k / 2 + 1 } else { -(k / 2) })
        .map(move |offset| (center.saturating_add(offset), offset))
        .filter(|&(step, _)| step >= 0)
}

/// The first lane (in lane order) whose `equal` is set among the first `count`, without a
/// data-dependent branch: whether any lane matched, and which.
pub(super) fn first_match(equal: &[Choice; LANES], count: usize) -> (Choice, u64) {
    let mut seen = Choice::from(0);
    let mut first = 0u64;
    for (lane, eq) in equal.iter().enumerate() {
        let hit = *eq & Choice::from(u8::from(lane < count));
        first.conditional_assign(&(lane as u64), hit & !seen);
        seen |= hit;
    }
    (seen, first)
}
