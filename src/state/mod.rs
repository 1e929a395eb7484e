//! Replay and lockout state per user, behind one transactional operation so that every backend
//! (in memory, the durable SQLite one, and the shared Redis one) decides a login in a single atomic step.

mod memory;
mod redis_store;
pub(crate) mod sqlite;

pub use memory::MemoryStore;
pub use redis_store::{RedisStore, KEEP_USED_STEP_SECS};
pub use sqlite::{Boot, Clock, Host, SqliteStore, BUSY_TIMEOUT, DB_FILE_NAME, PRUNE_AFTER_SECS};

use crate::auth::Decision;
use crate::engine;
use crate::rule::{self, Found, Limits};

/// What is remembered about one user between logins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserState {
    /// The phone step of the last accepted code; codes at or before it are replays.
    pub last_step: Option<i64>,
    /// Consecutive failed logins since the last success or lock.
    pub failures: u32,
    /// Unix seconds until which every login is refused (0 = not locked).
    pub locked_until: i64,
    /// Set by a durable store that had to start without its history (a corrupt or unreadable
    /// database moved aside, or a reboot that may have cost the last unsynced writes): the Unix
    /// time from which it remembers. Read-only for the decision; never stored per user.
    ///
    /// Any code accepted before then was accepted with a window centred no later than that
    /// moment, so its step is at most `step_of(history_lost_at + offset) + radius`. Every such
    /// step counts as used (see [`UserState::may_have_been_used`]): for one window length after
    /// the loss the current code is refused as a replay and users wait for a later code; after
    /// two window lengths no code in the window can fall under the rule any more.
    pub history_lost_at: Option<i64>,
}

impl UserState {
    /// Whether a code for phone step `step` may already have been accepted, so accepting it
    /// again would be a replay: it is not after the last accepted step, or the store lost its
    /// history and the window (`radius` steps each side of the user's clock, shifted by
    /// `offset_secs`) could have reached `step` before the loss.
    pub fn may_have_been_used(&self, step: i64, offset_secs: i64, radius: i64) -> bool {
        let after_last = self.last_step.is_some_and(|last| step <= last);
        let before_loss = self.history_lost_at.is_some_and(|lost| {
            let floor = engine::step_of(lost.saturating_add(offset_secs)).saturating_add(radius);
            step <= floor
        });
        after_last || before_loss
    }

    /// The part a store keeps: everything but what the store itself supplies.
    fn persisted(&self) -> (Option<i64>, u32, i64) {
        (self.last_step, self.failures, self.locked_until)
    }
}

#[derive(Debug)]
pub struct StateError(pub String);

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StateError {}

/// A place to keep [`UserState`]. `update` runs `decide` on the user's current state and stores
/// what it leaves behind, as one transaction: no other login for that user interleaves, in this
/// process or (for a durable store) in another process sharing the store.
pub trait StateStore: Send + Sync {
    fn update(
        &self,
        username: &str,
        decide: &mut dyn FnMut(&mut UserState),
    ) -> Result<(), StateError>;

    /// Decides one login with [`rule::apply`] on the user's state, and stores what it leaves, in
    /// one transaction. Stores that can run the rule closer to their data (Redis, in one
    /// script) override this; the result must be the same.
    fn decide(
        &self,
        username: &str,
        found: &Found,
        now: i64,
        limits: &Limits,
    ) -> Result<Decision, StateError> {
        let mut decision = Decision::StateUnavailable;
        self.update(username, &mut |state| {
            decision = rule::apply(state, found, now, limits);
        })?;
        Ok(decision)
    }

    /// The plugin is closing: start no more slow work (network), fail closed instead. What is
    /// in progress finishes within its own bound.
    fn begin_closing(&self) {}

    /// How long, in seconds, a store that expires entries must keep one at least (the
    /// acceptance span, and `lockout_secs` while failures count). Set at open and on reload.
    fn set_retention(&self, _secs: u64) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_history_blocks_every_step_the_window_could_have_reached() {
        let lost = 1_700_000_005; // step 170_000_000
        let s = UserState {
            history_lost_at: Some(lost),
            ..UserState::default()
        };
        assert!(s.may_have_been_used(170_000_018, 0, 18));
        assert!(!s.may_have_been_used(170_000_019, 0, 18));
        // A phone an hour ahead used codes an hour ahead.
        assert!(s.may_have_been_used(170_000_378, 3600, 18));
        assert!(!s.may_have_been_used(170_000_379, 3600, 18));
        let fresh = UserState {
            last_step: Some(5),
            ..UserState::default()
        };
        assert!(fresh.may_have_been_used(5, 0, 18));
        assert!(!fresh.may_have_been_used(6, 0, 18));
    }
}
