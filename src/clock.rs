//! The server's clock in Unix seconds.
//!
//! Debug builds (never release builds) honour one test hook: if `MOTP_TEST_CLOCK_SKEW_FILE`
//! names a file holding an integer, that many seconds are added to the clock. The end-to-end
//! tests use it to move the plugin's time without touching the system clock.

use std::time::{SystemTime, UNIX_EPOCH};

pub const TEST_SKEW_ENV: &str = "MOTP_TEST_CLOCK_SKEW_FILE";

pub fn now() -> i64 {
    let system = match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => 0,
    };
    system.saturating_add(test_skew())
}

/// Whether the test hook is active (so the plugin can warn loudly at start-up).
pub fn test_hook_active() -> bool {
    cfg!(debug_assertions) && std::env::var_os(TEST_SKEW_ENV).is_some()
}

#[cfg(debug_assertions)]
fn test_skew() -> i64 {
    let Some(path) = std::env::var_os(TEST_SKEW_ENV) else {
        return 0;
    };
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(not(debug_assertions))]
fn test_skew() -> i64 {
    0
}
