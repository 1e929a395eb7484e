//! A user's state as a Redis value, as the decision script reads and writes it.

use crate::state::{RecentSteps, UserState};

/// A user's state as a Redis value (what [`DECIDE_SCRIPT`] reads and writes): empty for nothing
/// to remember; `last:failures:locked` (`last` empty when none); with the offset of the last
/// step and the recent steps `last:failures:locked:last_offset:recent`; and when the state has
/// any of [`keep`](UserState::keep), a recovery set or used recovery codes, those three after
/// it, `last:failures:locked:last_offset:recent:keep:recovery_set:recovery_used` (`keep` 0 or 1,
/// the mask in decimal; `last_offset` and `recent` empty when there is no offset). Users without
/// the new fields keep the shorter forms, which older versions wrote and read.
///
/// [`DECIDE_SCRIPT`]: super::DECIDE_SCRIPT
pub(super) fn encode(state: &UserState) -> String {
    let (last, last_offset, recent, failures, locked, keep, set, used) = state.persisted();
    let kept = (keep, set, used) != (false, 0, 0);
    if (last, failures, locked) == (None, 0, 0) && !kept {
        return String::new();
    }
    let last_text = last.map(|s| s.to_string()).unwrap_or_default();
    let mut value = format!("{last_text}:{failures}:{locked}");
    match last_offset {
        Some(offset) if last.is_some() => {
            value.push_str(&format!(":{offset}:{}", recent.to_text()));
        }
        _ if kept => value.push_str("::"),
        _ => {}
    }
    if kept {
        value.push_str(&format!(":{}:{set}:{used}", u8::from(keep)));
    }
    value
}

pub(super) fn decode(text: &str) -> Option<UserState> {
    if text.is_empty() {
        return Some(UserState::default());
    }
    let parts: Vec<&str> = text.split(':').collect();
    let (last, failures, locked, extra, kept) = match parts.as_slice() {
        [last, failures, locked] => (*last, *failures, *locked, None, None),
        [last, failures, locked, offset, recent] => {
            (*last, *failures, *locked, Some((*offset, *recent)), None)
        }
        [last, failures, locked, "", "", keep, set, used] => {
            (*last, *failures, *locked, None, Some((*keep, *set, *used)))
        }
        [last, failures, locked, offset, recent, keep, set, used] => (
            *last,
            *failures,
            *locked,
            Some((*offset, *recent)),
            Some((*keep, *set, *used)),
        ),
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
    let (keep, recovery_set, recovery_used) = match kept {
        None => (false, 0, 0),
        Some((keep, set, used)) => {
            let keep = match keep {
                "0" => false,
                "1" => true,
                _ => return None,
            };
            if !digits(set) || !digits(used) {
                return None;
            }
            (keep, set.parse().ok()?, used.parse().ok()?)
        }
    };
    Some(UserState {
        last_step,
        last_offset_secs,
        recent_steps,
        failures: failures.parse().ok()?,
        locked_until: locked.parse().ok()?,
        history_lost_at: None,
        keep,
        recovery_set,
        recovery_used,
    })
}
