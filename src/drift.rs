//! Drift tracking: a phone's clock drifts, and the window follows it. Each accepted code shows
//! where the phone's clock stands (the offset the window was centred on, plus how far from the
//! centre the code matched); the store keeps that offset with the step
//! ([`crate::state::UserState::last_offset_secs`]), and the next login's window is centred
//! there, never further than `max_drift_secs` from the configured `offset_secs`. A code
//! accepted before stays used whatever the window does (the replay rule orders codes by when
//! they were shown, see [`crate::state::UserState::may_have_been_used`]).
//!
//! Where the store's copy costs a round trip (Redis), [`LearnedOffsets`] keeps what this
//! process last saw per user: one read at a user's first login after open, none after. It also
//! holds, for every store, the centres an admin moved by changing `offset_secs`.

use std::collections::HashMap;

use parking_lot::Mutex;

/// The window's centre offset for a login: the learned one, within `max_drift_secs` of the
/// configured one; the configured one when nothing was learned or tracking is off (0).
pub fn effective_offset(configured: i64, learned: Option<i64>, max_drift_secs: u32) -> i64 {
    let bound = i64::from(max_drift_secs);
    match learned {
        Some(learned) if bound > 0 => learned.clamp(
            configured.saturating_sub(bound),
            configured.saturating_add(bound),
        ),
        _ => configured,
    }
}

/// The offset an accepted code shows: the window's centre offset plus how far from the
/// centre it matched (`step_offset` steps of `step_secs`).
pub fn shown_offset(center_offset: i64, step_offset: i64, step_secs: i64) -> i64 {
    center_offset.saturating_add(step_offset.saturating_mul(step_secs))
}

/// The offsets this process learned, per store row (a user, or a user's further token). Only
/// rows of configured users are entered, so it is bounded by the user table.
///
/// `keep_all` (Redis): every row read or accepted is kept, so a decision stays one command
/// after a user's first login. Otherwise (a local store, where reading the row is a lookup)
/// only the rows whose configured offset an admin changed are kept, which must override what
/// the store holds until the next accepted code stores the new centre.
#[derive(Default)]
pub struct LearnedOffsets {
    keep_all: bool,
    /// Whether any row is held: a local store's logins then skip the lock.
    any: std::sync::atomic::AtomicBool,
    rows: Mutex<HashMap<Box<str>, Option<i64>, foldhash::quality::RandomState>>,
}

impl LearnedOffsets {
    pub fn new(keep_all: bool) -> LearnedOffsets {
        LearnedOffsets {
            keep_all,
            ..LearnedOffsets::default()
        }
    }

    /// What is held for `row`: `Some(None)` when the store had nothing; `None` when this
    /// process holds nothing for it (then read the store).
    pub fn get(&self, row: &str) -> Option<Option<i64>> {
        if !self.any.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        self.rows.lock().get(row).copied()
    }

    /// What the store holds for `row`, just read.
    pub fn note_read(&self, row: &str, offset: Option<i64>) {
        if self.keep_all {
            self.set(row, offset);
        }
    }

    /// Where an accepted code showed the phone's clock.
    pub fn note_accepted(&self, row: &str, offset: i64) {
        if self.keep_all {
            self.set(row, Some(offset));
        } else if self.any.load(std::sync::atomic::Ordering::Acquire) {
            if let Some(known) = self.rows.lock().get_mut(row) {
                *known = Some(offset);
            }
        }
    }

    fn set(&self, row: &str, offset: Option<i64>) {
        let mut rows = self.rows.lock();
        match rows.get_mut(row) {
            Some(known) => *known = offset,
            None => {
                rows.insert(row.into(), offset);
            }
        }
        self.any.store(true, std::sync::atomic::Ordering::Release);
    }

    /// A new config: every row whose configured offset changed (an admin's `motpctl resync`
    /// or edit says where the phone's clock is) is centred on the new offset from now on; the
    /// next accepted code stores that in the state store too.
    pub fn follow_config(&self, old: &crate::config::UserTable, new: &crate::config::UserTable) {
        let mut changed = Vec::new();
        for name in new.names() {
            let (Some(before), Some(after)) = (old.get(name), new.get(name)) else {
                continue;
            };
            if before.offset_secs != after.offset_secs {
                changed.push((name.to_owned(), after.offset_secs));
            }
            for token in after.more_tokens {
                let was = before
                    .more_tokens
                    .iter()
                    .find(|t| t.name == token.name)
                    .map(|t| t.offset_secs);
                if was.is_some_and(|was| was != token.offset_secs) {
                    changed.push((token.state_key(name), token.offset_secs));
                }
            }
        }
        for (row, offset) in changed {
            self.set(&row, Some(offset));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_learned_offset_is_bounded_around_the_configured_one() {
        assert_eq!(effective_offset(0, None, 3600), 0);
        assert_eq!(effective_offset(0, Some(450), 3600), 450);
        assert_eq!(effective_offset(0, Some(5000), 3600), 3600);
        assert_eq!(effective_offset(100, Some(-5000), 3600), -3500);
        assert_eq!(effective_offset(100, Some(450), 0), 100, "tracking off");
        assert_eq!(shown_offset(150, 3, 10), 180);
        assert_eq!(shown_offset(150, -2, 30), 90);
    }
}

#[cfg(test)]
#[path = "drift_tests.rs"]
mod decision_tests;
