//! code, verify and resync: everything that computes one-time codes (mOTP, TOTP, HOTP).

use motp::config::MAX_OFFSET_SECS;
use motp::engine::{Code, STEP_SECS};

use crate::Fail;

mod code;
mod explain;
mod resync;
mod verify;
mod window;

pub use code::code;
pub use resync::resync;
pub use verify::verify;

/// How far `verify` and `resync` look for a phone's clock: ±24 h, the largest offset_secs the
/// plugin accepts.
pub const SEARCH_STEPS: i64 = MAX_OFFSET_SECS / STEP_SECS;

/// Parses a code as typed, or says what is wrong with it.
fn parse_code(text: &str, what: &str) -> Result<Code, Fail> {
    Code::parse(text.trim().as_bytes()).ok_or_else(|| {
        Fail(format!(
            "{what} must be the 6 hex characters the phone shows (0-9, a-f), e.g. 6ed4e4; \
             got {} characters",
            text.trim().chars().count()
        ))
    })
}
