//! The rule that turns what the window search found into a decision and a new stored state:
//! lock first, then replay, then the failure count. Pure: no clock, no I/O, so it reads and
//! tests on its own, and every store applies exactly this (the Redis store runs a Lua
//! transcription of it in one script, pinned to this function by tests against a real Redis).

use crate::auth::Decision;
use crate::password::Malformed;
use crate::state::UserState;

/// What the window search found in the password, before any state was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Not a code at all (or no password).
    Malformed(Malformed),
    /// A code, but no step of the window gives it.
    NoMatch,
    /// The code of phone step `step`, `step_offset` steps from the window's centre (for a
    /// counter token, HOTP: counter `step`, `step_offset` counters past the next expected one).
    Step { step: i64, step_offset: i64 },
    /// Recovery code `index` of the user's set `set` (one of the hashes in motp.toml).
    Recovery { set: u32, index: u8 },
    /// A code or recovery code, but the static password in front of it was wrong: a failure,
    /// and the code stays unused.
    BadPassword,
    /// The code of one of the user's further tokens, already decided on that token's own row
    /// (accepted there, or a replay there): the user's row only applies the lock and counts.
    Settled { accepted: bool, step_offset: i64 },
}

/// The user's and the policy's numbers the rule needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_failures: u32,
    pub lockout_secs: u64,
    /// The user's clock offset (for the lost-history floor).
    pub offset_secs: i64,
    /// Steps each side of the centre.
    pub radius: i64,
    /// The user's token counts logins, not time (HOTP): a step is a counter.
    pub counter_based: bool,
    /// The clock offset an accepted code shows the phone at (`offset_secs` plus how far from
    /// the window's centre the code matched): stored with the step, the next login's window is
    /// centred there (drift tracking, bounded by `max_drift_secs`). `offset_secs` without it.
    pub learned_offset_secs: i64,
}

/// Decides one login on the user's stored `state` at `now`, and leaves in `state` what must
/// be stored: a locked user is refused without anything changing; a step already used (or
/// possibly used before a loss of history) is a replay; every refusal counts as a failure,
/// and `max_failures` of them lock the user for `lockout_secs` (the count then starts over).
pub fn apply(state: &mut UserState, found: &Found, now: i64, limits: &Limits) -> Decision {
    if state.locked_until > now {
        return Decision::Locked {
            until: state.locked_until,
        };
    }
    let decision = match *found {
        Found::Malformed(why) => Decision::MalformedPassword(why),
        Found::NoMatch => Decision::BadCode,
        Found::BadPassword => Decision::BadPassword,
        Found::Step { step, .. }
            if state.may_have_been_used_as(
                step,
                limits.offset_secs,
                limits.radius,
                limits.counter_based,
            ) =>
        {
            Decision::Replay
        }
        Found::Step { step, step_offset } => {
            state.record_accepted(step, limits.learned_offset_secs);
            state.keep |= limits.counter_based;
            Decision::Accepted { step_offset }
        }
        Found::Recovery { set, index } if state.recovery_code_used(set, index) => {
            Decision::Replay
        }
        Found::Recovery { set, index } => {
            state.record_recovery_use(set, index);
            Decision::RecoveryAccepted { index }
        }
        Found::Settled {
            accepted: true,
            step_offset,
        } => Decision::Accepted { step_offset },
        Found::Settled {
            accepted: false, ..
        } => Decision::Replay,
    };
    if decision.is_accepted() {
        state.failures = 0;
    } else {
        state.failures = state.failures.saturating_add(1);
        if state.failures >= limits.max_failures {
            state.failures = 0;
            state.locked_until = now.saturating_add_unsigned(limits.lockout_secs);
        }
    }
    decision
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_failures: 3,
        lockout_secs: 300,
        offset_secs: 0,
        radius: 18,
        counter_based: false,
        learned_offset_secs: 0,
    };
    const NOW: i64 = 1_700_000_000;

    #[test]
    fn a_fresh_step_is_accepted_and_clears_the_failures() {
        let mut s = UserState {
            failures: 2,
            ..UserState::default()
        };
        let found = Found::Step {
            step: 170_000_000,
            step_offset: 0,
        };
        assert_eq!(
            apply(&mut s, &found, NOW, &LIMITS),
            Decision::Accepted { step_offset: 0 }
        );
        assert_eq!((s.last_step, s.failures), (Some(170_000_000), 0));
        // The same step again, or an earlier one: replays, and they count.
        assert_eq!(apply(&mut s, &found, NOW, &LIMITS), Decision::Replay);
        let earlier = Found::Step {
            step: 169_999_999,
            step_offset: -1,
        };
        assert_eq!(apply(&mut s, &earlier, NOW, &LIMITS), Decision::Replay);
        assert_eq!(s.failures, 2);
    }

    #[test]
    fn the_third_failure_locks_and_a_lock_changes_nothing_while_it_lasts() {
        let mut s = UserState::default();
        assert_eq!(
            apply(&mut s, &Found::NoMatch, NOW, &LIMITS),
            Decision::BadCode
        );
        assert_eq!(
            apply(&mut s, &Found::Malformed(Malformed::NotACode), NOW, &LIMITS),
            Decision::MalformedPassword(Malformed::NotACode)
        );
        assert_eq!(
            apply(&mut s, &Found::NoMatch, NOW, &LIMITS),
            Decision::BadCode
        );
        assert_eq!((s.failures, s.locked_until), (0, NOW + 300));
        let before = s;
        let right = Found::Step {
            step: 170_000_000,
            step_offset: 0,
        };
        assert_eq!(
            apply(&mut s, &right, NOW + 299, &LIMITS),
            Decision::Locked { until: NOW + 300 }
        );
        assert_eq!(s, before, "a lock does not extend or count");
        assert!(apply(&mut s, &right, NOW + 300, &LIMITS).is_accepted());
    }

    #[test]
    fn steps_the_window_could_reach_before_a_loss_are_replays() {
        let mut s = UserState {
            history_lost_at: Some(NOW),
            ..UserState::default()
        };
        let floor = crate::engine::step_of(NOW) + LIMITS.radius;
        let at = |step| Found::Step {
            step,
            step_offset: 0,
        };
        assert_eq!(apply(&mut s, &at(floor), NOW, &LIMITS), Decision::Replay);
        assert!(apply(&mut s, &at(floor + 1), NOW, &LIMITS).is_accepted());
    }

    #[test]
    fn a_counter_is_accepted_once_and_only_forward() {
        let limits = Limits {
            counter_based: true,
            learned_offset_secs: 0,
            ..LIMITS
        };
        let mut s = UserState::default();
        let at = |step| Found::Step {
            step,
            step_offset: 0,
        };
        assert!(apply(&mut s, &at(7), NOW, &limits).is_accepted());
        assert!(s.keep, "a counter's row outlives pruning");
        assert_eq!(apply(&mut s, &at(7), NOW, &limits), Decision::Replay);
        assert_eq!(apply(&mut s, &at(3), NOW, &limits), Decision::Replay);
        assert!(apply(&mut s, &at(8), NOW, &limits).is_accepted());
        // Without its history every counter may have been used: fail closed.
        let mut lost = UserState {
            history_lost_at: Some(NOW),
            ..UserState::default()
        };
        assert_eq!(apply(&mut lost, &at(1_000), NOW, &limits), Decision::Replay);
    }

    #[test]
    fn a_recovery_code_works_once_per_set_and_a_bad_password_uses_nothing() {
        let mut s = UserState::default();
        let code = |set, index| Found::Recovery { set, index };
        assert_eq!(
            apply(&mut s, &code(9, 2), NOW, &LIMITS),
            Decision::RecoveryAccepted { index: 2 }
        );
        assert!(s.keep);
        assert_eq!(apply(&mut s, &code(9, 2), NOW, &LIMITS), Decision::Replay);
        assert!(apply(&mut s, &code(9, 3), NOW, &LIMITS).is_accepted());
        // A new set: its codes start unused.
        assert!(apply(&mut s, &code(10, 2), NOW, &LIMITS).is_accepted());
        assert_eq!(s.recovery_used, 1 << 2);
        let before = s;
        assert_eq!(
            apply(&mut s, &Found::BadPassword, NOW, &LIMITS),
            Decision::BadPassword
        );
        assert_eq!(s.failures, 1);
        assert_eq!((s.last_step, s.recovery_used), (before.last_step, before.recovery_used));
    }
}
