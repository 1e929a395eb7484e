//! What OpenVPN and the client are told: the answer files OpenVPN hands the plugin
//! (`auth_control_file`, `auth_pending_file`, `auth_failed_reason_file`), the reason a client
//! is given, and the one log line of every decision.

use std::path::Path;

use tracing::{error, warn};

use crate::auth::Decision;
use crate::env::AuthEnv;
use crate::log::{self, Sink};

pub(super) fn path_of(raw: &[u8]) -> &Path {
    use std::os::unix::ffi::OsStrExt;
    Path::new(std::ffi::OsStr::from_bytes(raw))
}

/// Writes one of the files OpenVPN hands the plugin for its answer (`auth_control_file`,
/// `auth_pending_file`, `auth_failed_reason_file`). OpenVPN creates each one empty before the
/// call, so the plugin never creates a file (a removed one stays removed: the login is then
/// refused at hand-window) and never follows a symlink put in its place. Opening without
/// `O_TRUNC` matters: on ext4 a truncating open forces writeback at close, tens of microseconds
/// per rejection on OpenVPN's single event loop (docs/performance.md, "Figures behind design
/// choices"); a file that was not empty is cut after writing.
pub(super) fn write_answer_file(raw_path: &[u8], content: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path_of(raw_path))?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    file.write_all(content)?;
    if meta.len() > content.len() as u64 {
        file.set_len(content.len() as u64)?;
    }
    Ok(())
}

/// The decision for OpenVPN's deferred auth: `1` or `0` as the file's first byte.
pub(super) fn write_control(acf: &[u8], accept: bool) {
    let path = path_of(acf);
    if let Err(e) = write_answer_file(acf, if accept { b"1" } else { b"0" }) {
        error!(
            "cannot write auth_control_file {}: {e}; OpenVPN rejects the login at hand-window",
            path.display()
        );
    }
}

/// The `TEMP[backoff N]` text for the client, through [`write_answer_file`].
pub(super) fn write_client_reason(path: &[u8], reason: &str) {
    if let Err(e) = write_answer_file(path, reason.as_bytes()) {
        warn!(
            "cannot write auth_failed_reason_file {}: {e}",
            path_of(path).display()
        );
    }
}

/// What the client is told beyond `AUTH_FAILED`, if anything. Only "wait and retry" is worth
/// saying; every other failure leaves `auth_failed_reason_file` empty, so OpenVPN sends a bare
/// `AUTH_FAILED` — no hint of which factor was wrong, and no file write (time on OpenVPN's
/// event loop) per rejected login. A locked user is told so only when
/// `disclose_lock` (the client holds that user's certificate, see
/// [`crate::auth::Authenticator::may_disclose_lock`]); anyone else gets the answer an unknown
/// name gets.
pub(super) fn client_reason(decision: &Decision, now: i64, disclose_lock: bool) -> Option<String> {
    match decision {
        Decision::Locked { .. } if !disclose_lock => None,
        Decision::Locked { until } | Decision::AddressLocked { until } => {
            let wait = until.saturating_sub(now).max(1);
            Some(format!(
                "TEMP[backoff {wait}]: too many failed logins, try again later"
            ))
        }
        Decision::StateUnavailable => {
            Some("TEMP[backoff 30]: authentication temporarily unavailable".to_owned())
        }
        _ => None,
    }
}

/// The one line every login writes: `login accepted|rejected ip=... ... user=...`, the fixed
/// fields first and the client's username last (`login rejected ip=127.0.0.1 reason="bad code"
/// user=alice`, `login accepted ip=... step_offset=+0 user=alice`).
pub(super) fn log_decision(env: &AuthEnv, decision: &Decision, sink: &Sink) {
    let (message, level) = if decision.is_accepted() {
        ("login accepted", tracing::Level::INFO)
    } else {
        // The store logs an outage once (error); each login refused meanwhile is a warning.
        ("login rejected", tracing::Level::WARN)
    };
    let mut line = log::Line::new(message);
    log_ip(env, &mut line);
    match decision {
        Decision::Accepted { step_offset } => line.int_field("step_offset", *step_offset, true),
        // A recovery login stands out in the log: the admin may want to give the user a new
        // token. The number is the code's place in motp.toml's list, from 1.
        Decision::RecoveryAccepted { index } => line
            .str_field("via", "recovery code")
            .int_field("recovery_code", i64::from(*index) + 1, false),
        Decision::MalformedPassword(why) => line
            .str_field("reason", decision.reason())
            .field("detail", why),
        Decision::Locked { until } | Decision::AddressLocked { until } => line
            .str_field("reason", decision.reason())
            .int_field("until", *until, false),
        _ => line.str_field("reason", decision.reason()),
    };
    log_user_field(env, &mut line);
    line.send(sink, level);
}

/// The username for a `tracing` field (the layer writes it in logfmt, escaped): lossy UTF-8,
/// at most `MAX_USERNAME_LEN` bytes.
pub(super) fn log_user(env: &AuthEnv) -> String {
    match env.username {
        Some(u) => {
            String::from_utf8_lossy(&u[..u.len().min(crate::config::MAX_USERNAME_LEN)]).into_owned()
        }
        None => "(none)".to_owned(),
    }
}

/// ` ip=...`: the first field of every login line, OpenVPN's address of the client (never
/// chosen by it), so a filter anchored on `login rejected ip=` reads the real address.
#[inline(always)]
pub(super) fn log_ip(env: &AuthEnv, line: &mut log::Line) {
    match env.untrusted_ip.or(env.untrusted_ip6) {
        Some(ip) => line.bytes_field("ip", ip, 64),
        None => line.field("ip", "unknown"),
    };
}

/// ` user=...`: the last field of every login line (the client chose it).
#[inline(always)]
pub(super) fn log_user_field(env: &AuthEnv, line: &mut log::Line) {
    match env.username {
        Some(user) => line.bytes_field("user", user, crate::config::MAX_USERNAME_LEN),
        None => line.field("user", "(none)"),
    };
}
