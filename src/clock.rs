//! The server's clock in Unix seconds.
//!
//! Debug builds (never release builds) honour one test hook: if `MOTP_TEST_CLOCK_SKEW_FILE`
//! names a file holding an integer, that many seconds are added to the clock. The end-to-end
//! tests use it to move the plugin's time without touching the system clock.

pub const TEST_SKEW_ENV: &str = "MOTP_TEST_CLOCK_SKEW_FILE";

pub fn now() -> i64 {
    crate::ffi::unix_time().saturating_add(test_skew())
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

#[cfg(test)]
mod tests {
    fn system_seconds() -> i64 {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970");
        i64::try_from(since_epoch.as_secs()).expect("before year 292 billion")
    }

    #[test]
    fn now_is_the_system_clock_in_unix_seconds() {
        let before = system_seconds();
        let now = crate::ffi::unix_time();
        let after = system_seconds();
        // time(2) reads the second the kernel last ticked into: at a second's boundary it may
        // still show the one before for a tick.
        assert!(
            before - 1 <= now && now <= after,
            "{before} <= {now} <= {after}"
        );
    }
}
