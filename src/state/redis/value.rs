//! A user's state as a Redis value, as the decision script reads and writes it.

use crate::state::{RecentSteps, UserState};

/// `last_step:failures:locked_until`, `last_step` empty when none; "" for the default state.
/// A user's state as a Redis value (what [`DECIDE_SCRIPT`] reads and writes): empty for nothing
/// to remember, `last:failures:locked`, or with the offset of the last step and the recent steps
/// `last:failures:locked:last_offset:recent`.
///
/// [`DECIDE_SCRIPT`]: super::DECIDE_SCRIPT
pub(super) fn encode(state: &UserState) -> String {
    let (last, last_offset, recent, failures, locked, ..) = state.persisted();
    if (last, failures, locked) == (None, 0, 0) {
        return String::new();
    }
    let last_text = last.map(|s| s.to_string()).unwrap_or_default();
    match last_offset {
        Some(offset) if last.is_some() => {
            format!(
                "{last_text}:{failures}:{locked}:{offset}:{}",
                recent.to_text()
            )
        }
        _ => format!("{last_text}:{failures}:{locked}"),
    }
}

pub(super) fn decode(text: &str) -> Option<UserState> {
    if text.is_empty() {
        return Some(UserState::default());
    }
    let parts: Vec<&str> = text.split(':').collect();
    let (last, failures, locked, extra) = match parts.as_slice() {
        [last, failures, locked] => (*last, *failures, *locked, None),
        [last, failures, locked, offset, recent] => {
            (*last, *failures, *locked, Some((*offset, *recent)))
        }
        _ => return None,
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(failures) || !digits(locked) || !(last.is_empty() || digits(last)) {
        return None;
    }
    let last_step = if last.is_empty() {
        None
    } else {
        Some(last.parse().ok()?)
    };
    let (last_offset_secs, recent_steps) = match extra {
        None => (None, RecentSteps::default()),
        Some((offset, recent)) => {
            let magnitude = offset.strip_prefix('-').unwrap_or(offset);
            if !digits(magnitude) || last_step.is_none() {
                return None;
            }
            (Some(offset.parse().ok()?), RecentSteps::from_text(recent)?)
        }
    };
    Some(UserState {
        last_step,
        last_offset_secs,
        recent_steps,
        failures: failures.parse().ok()?,
        locked_until: locked.parse().ok()?,
        history_lost_at: None,
        ..UserState::default()
    })
}
