//! Replay and lockout state per user, behind one transactional operation so that every backend
//! (in memory, the durable SQLite one, and the shared Redis one) decides a login in a single atomic step.

pub(crate) mod build;
mod dir;
mod memory;
mod read_only;
mod redis;
pub(crate) mod sqlite;

pub use self::redis::{RedisStore, KEEP_USED_STEP_SECS};
pub use memory::MemoryStore;
pub use read_only::ReadOnly;
pub use sqlite::{Boot, Clock, Host, SqliteStore, BUSY_TIMEOUT, DB_FILE_NAME, PRUNE_AFTER_SECS};

use crate::auth::Decision;
use crate::engine;
use crate::rule::{self, Found, Limits};

/// What is remembered about one user between logins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserState {
    /// The phone step of the last accepted code.
    pub last_step: Option<i64>,
    /// The user's `offset_secs` when `last_step` was accepted; `None` when a store written by
    /// an older version did not record it (then taken to be the offset in force).
    pub last_offset_secs: Option<i64>,
    /// The phone steps of the last [`RECENT_STEPS`] accepted codes: what stays a replay after
    /// an offset change moves the window back over them.
    pub recent_steps: RecentSteps,
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
    /// The row must outlive pruning and expiry: it holds a counter-based token's counter (HOTP:
    /// forgetting it would make every code since the config's seed acceptable again) or used
    /// recovery codes.
    pub keep: bool,
    /// The set of recovery codes the uses in `recovery_used` belong to
    /// ([`crate::secret_hash::recovery_set_id`], truncated); 0 when none was ever used. A new
    /// set (motpctl recovery-codes) has another id, and its codes start unused.
    pub recovery_set: u32,
    /// Which codes of that set were used, one bit per code in the order of motp.toml.
    pub recovery_used: u32,
}

/// How many accepted steps a user's state names one by one.
pub const RECENT_STEPS: usize = 8;

/// The phone steps of the most recently accepted codes, oldest first, at most
/// [`RECENT_STEPS`]. Stored as text: the steps in decimal, separated by commas.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct RecentSteps {
    steps: [i64; RECENT_STEPS],
    len: u8,
}

impl RecentSteps {
    pub fn as_slice(&self) -> &[i64] {
        &self.steps[..usize::from(self.len)]
    }

    pub fn contains(&self, step: i64) -> bool {
        self.as_slice().contains(&step)
    }

    /// Adds `step` as the newest, forgetting the oldest when full. A step already named moves
    /// to the newest place.
    pub fn push(&mut self, step: i64) {
        // In place (this runs on every accepted login): drop `step` where it is, then the
        // oldest if still full, and append.
        let mut len = usize::from(self.len);
        if let Some(at) = self.steps[..len].iter().position(|s| *s == step) {
            self.steps.copy_within(at + 1..len, at);
            len -= 1;
        }
        if len == RECENT_STEPS {
            self.steps.copy_within(1..len, 0);
            len -= 1;
        }
        self.steps[len] = step;
        self.len = (len + 1) as u8;
    }

    pub fn to_text(&self) -> String {
        let parts: Vec<String> = self.as_slice().iter().map(i64::to_string).collect();
        parts.join(",")
    }

    /// The inverse of [`to_text`](Self::to_text); `None` for anything it does not write.
    pub fn from_text(text: &str) -> Option<RecentSteps> {
        let mut recent = RecentSteps::default();
        if text.is_empty() {
            return Some(recent);
        }
        for part in text.split(',') {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            if usize::from(recent.len) == RECENT_STEPS {
                return None;
            }
            recent.steps[usize::from(recent.len)] = part.parse().ok()?;
            recent.len += 1;
        }
        Some(recent)
    }
}

impl std::fmt::Debug for RecentSteps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// A phone step in the server's frame: where the server's clock stood when the phone, `offset_secs`
/// ahead, showed it. Under one offset this orders steps as the phone does; across an offset
/// change it still orders them by when they were shown.
fn server_frame(step: i64, offset_secs: i64) -> i64 {
    step.saturating_sub(offset_secs.div_euclid(engine::STEP_SECS))
}

impl UserState {
    /// Whether a code for phone step `step` may already have been accepted, so accepting it
    /// again would be a replay:
    /// - it is the last or one of the recently accepted steps;
    /// - it was shown before the last accepted code, in the server's frame (`offset_secs` for
    ///   `step`, the offset recorded with the last step for that one). Under an unchanged offset
    ///   this is "not after the last accepted step": an older unused code in the window is
    ///   refused too. After an offset change the phone's new codes are accepted, where the
    ///   phone's own order would refuse them for up to the old offset;
    /// - the store lost its history and the window (`radius` steps each side of the user's
    ///   clock, shifted by `offset_secs`) could have reached `step` before the loss.
    pub fn may_have_been_used(&self, step: i64, offset_secs: i64, radius: i64) -> bool {
        self.may_have_been_used_as(step, offset_secs, radius, false)
    }

    /// [`may_have_been_used`](Self::may_have_been_used) for a clock token, or for a counter
    /// token (`counter_based`, HOTP: `step` is the counter, the offset is 0): a counter is used
    /// when it is not above the last accepted one, and while the store is without its history
    /// every counter may have been used (how far the lost writes moved it is unknown).
    pub fn may_have_been_used_as(
        &self,
        step: i64,
        offset_secs: i64,
        radius: i64,
        counter_based: bool,
    ) -> bool {
        if counter_based {
            let used = self.last_step.is_some_and(|last| step <= last);
            return used || self.recent_steps.contains(step) || self.history_lost_at.is_some();
        }
        let recent = self.recent_steps.contains(step) || self.last_step == Some(step);
        let before_last = self.last_step.is_some_and(|last| {
            let last_offset = self.last_offset_secs.unwrap_or(offset_secs);
            server_frame(step, offset_secs) < server_frame(last, last_offset)
        });
        let before_loss = self.history_lost_at.is_some_and(|lost| {
            let floor = engine::step_of(lost.saturating_add(offset_secs)).saturating_add(radius);
            step <= floor
        });
        recent || before_last || before_loss
    }

    /// Records the code of phone step `step`, shown with the user's offset `offset_secs`, as
    /// used: the last accepted step and one of the recent ones.
    pub fn record_accepted(&mut self, step: i64, offset_secs: i64) {
        self.last_step = Some(step);
        self.last_offset_secs = Some(offset_secs);
        self.recent_steps.push(step);
    }

    /// The part a store keeps: everything but what the store itself supplies.
    #[allow(clippy::type_complexity)]
    fn persisted(
        &self,
    ) -> (
        Option<i64>,
        Option<i64>,
        RecentSteps,
        u32,
        i64,
        bool,
        u32,
        u32,
    ) {
        (
            self.last_step,
            self.last_offset_secs,
            self.recent_steps,
            self.failures,
            self.locked_until,
            self.keep,
            self.recovery_set,
            self.recovery_used,
        )
    }

    /// Whether recovery code `index` of set `set` was used.
    pub fn recovery_code_used(&self, set: u32, index: u8) -> bool {
        self.recovery_set == set && index < 32 && self.recovery_used & (1 << index) != 0
    }

    /// Records recovery code `index` of set `set` as used (the uses of an older set are
    /// forgotten: its codes no longer work).
    pub fn record_recovery_use(&mut self, set: u32, index: u8) {
        if self.recovery_set != set {
            self.recovery_set = set;
            self.recovery_used = 0;
        }
        if index < 32 {
            self.recovery_used |= 1 << index;
        }
        self.keep = true;
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

    /// The user's current state, changing nothing: what a decision now would start from (the
    /// default state for a user the store knows nothing of), with
    /// [`history_lost_at`](UserState::history_lost_at) as a decision would see it. For what
    /// must be known before deciding (HOTP: the look-ahead window starts after the stored
    /// counter) and for reading commands (`motpctl status`, `verify`). Cheap: one read, no
    /// write transaction; it may fail where a decision would (the store unavailable).
    fn peek(&self, username: &str) -> Result<UserState, StateError>;

    /// A hint, on OpenVPN's thread as soon as the env names the user: start loading what a
    /// decision for `username` will touch, without waiting for it. Only this process's memory
    /// store has something to load.
    fn prefetch(&self, _username: &[u8]) {}

    /// Whether no row holds a [`last_offset_secs`](UserState::last_offset_secs) other than 0:
    /// then a row whose configured offset is 0 is centred on 0 without a [`peek`](Self::peek)
    /// ([`crate::drift`]). Only a store that sees every write can say so (this process's
    /// memory); the others answer `false`.
    fn offsets_all_zero(&self) -> bool {
        false
    }

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
        apply_rule_through(|decide| self.update(username, decide), found, now, limits)
    }

    /// The plugin is closing: start no more slow work (network), fail closed instead. What is
    /// in progress finishes within its own bound.
    fn begin_closing(&self) {}

    /// How long, in seconds, a store that expires entries must keep one at least (the
    /// acceptance span, and `lockout_secs` while failures count). Set at open and on reload.
    fn set_retention(&self, _secs: u64) {}
}

/// [`rule::apply`] run inside `transaction` (a store's update of one user's state): the body of
/// every `decide` that applies the rule in Rust.
pub(crate) fn apply_rule_through(
    transaction: impl FnOnce(&mut dyn FnMut(&mut UserState)) -> Result<(), StateError>,
    found: &Found,
    now: i64,
    limits: &Limits,
) -> Result<Decision, StateError> {
    let mut decision = Decision::StateUnavailable;
    transaction(&mut |state| decision = rule::apply(state, found, now, limits))?;
    Ok(decision)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_steps_keep_the_newest_once_each() {
        let mut r = RecentSteps::default();
        for step in 1..=10 {
            r.push(step);
        }
        assert_eq!(r.as_slice(), &[3, 4, 5, 6, 7, 8, 9, 10]);
        r.push(5);
        assert_eq!(r.as_slice(), &[3, 4, 6, 7, 8, 9, 10, 5]);
        r.push(3);
        assert_eq!(r.as_slice(), &[4, 6, 7, 8, 9, 10, 5, 3]);
        let mut short = RecentSteps::default();
        short.push(1);
        short.push(2);
        short.push(1);
        assert_eq!(short.as_slice(), &[2, 1]);
        assert_eq!(RecentSteps::from_text(&r.to_text()), Some(r));
    }

    #[test]
    fn under_one_offset_only_later_steps_are_fresh() {
        for offset in [-86_400, -125, 0, 7, 120, 86_400] {
            let mut s = UserState::default();
            s.record_accepted(1_000, offset);
            for step in 980..1_020 {
                assert_eq!(
                    s.may_have_been_used(step, offset, 18),
                    step <= 1_000,
                    "step {step}, offset {offset}"
                );
            }
        }
    }

    #[test]
    fn after_an_offset_change_new_codes_are_fresh_and_used_ones_stay_used() {
        let mut s = UserState::default();
        // Accepted at server step 1_000 and 1_001 with the phone thought 60 s ahead.
        s.record_accepted(1_006, 60);
        s.record_accepted(1_007, 60);
        // The offset goes to 0 at server step 1_002: the phone's code for 1_002 is fresh, the
        // used ones are still used, and so is anything shown before the last one.
        assert!(!s.may_have_been_used(1_002, 0, 18));
        assert!(s.may_have_been_used(1_006, 0, 18));
        assert!(s.may_have_been_used(1_007, 0, 18));
        assert!(s.may_have_been_used(1_000, 0, 18));
        // Recent steps are bounded: the oldest is forgotten first.
        for step in 2_000..2_000 + RECENT_STEPS as i64 {
            s.record_accepted(step, 0);
        }
        assert!(!s.recent_steps.contains(1_006));
        assert_eq!(s.recent_steps.as_slice().len(), RECENT_STEPS);
    }

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
