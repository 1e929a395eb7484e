//! **The local fallback** sees every decision: while Redis is up, the state Redis decided is
//! written through to the local store, and the local last step is passed into each script as a
//! floor (the larger wins). During an outage the local store decides and remembers whom it
//! decided; when Redis is back those users' local state is merged into Redis (larger step,
//! failures and lock win) before other servers can be asked about them again.

use std::sync::atomic::Ordering;

use tracing::{info, warn};

use super::script::{Ask, KIND_MERGE};
use super::RedisStore;
use crate::auth::Decision;
use crate::rule::{Found, Limits};
use crate::state::{StateError, UserState};

/// What of the local store's state counts in every Redis decision (the floor): its used steps
/// and recovery codes, and whether the user's key must be kept; not its failures or lock.
pub(super) fn used_part(local: UserState) -> UserState {
    UserState {
        last_step: local.last_step,
        last_offset_secs: local.last_offset_secs,
        recent_steps: local.recent_steps,
        keep: local.keep,
        recovery_set: local.recovery_set,
        recovery_used: local.recovery_used,
        ..UserState::default()
    }
}

/// The floor `floor` merged into `state` as [`DECIDE_SCRIPT`](super::DECIDE_SCRIPT) merges it
/// before a decision that is no recovery code (a last step recorded without its offset taken
/// at offset 0): the later last step, the recent steps of both, keep if either keeps, the
/// recovery uses of both when of one set.
pub(super) fn merge_floor(state: &mut UserState, floor: &UserState) {
    let frame = |step: i64, off: Option<i64>| {
        step.saturating_sub(off.unwrap_or(0).div_euclid(crate::engine::STEP_SECS))
    };
    if let Some(last) = floor.last_step {
        let later = state.last_step.is_none_or(|mine| {
            frame(last, floor.last_offset_secs) > frame(mine, state.last_offset_secs)
        });
        if later {
            state.last_step = Some(last);
            state.last_offset_secs = floor.last_offset_secs;
        }
    }
    for step in floor.recent_steps.as_slice() {
        if !state.recent_steps.contains(*step) {
            // Appended as the newest, the oldest forgotten when full, as the script does.
            state.recent_steps.push(*step);
        }
    }
    state.keep |= floor.keep;
    if (floor.recovery_set, floor.recovery_used) != (0, 0) {
        if floor.recovery_set == state.recovery_set {
            state.recovery_used |= floor.recovery_used;
        } else if (state.recovery_set, state.recovery_used) == (0, 0) {
            state.recovery_set = floor.recovery_set;
            state.recovery_used = floor.recovery_used;
        }
    }
}

/// Users decided by the local fallback during one outage that are merged into Redis after it;
/// past this many, the rest are only protected by their local floor on this server.
const MAX_DECIDED_LOCALLY: usize = 100_000;

impl RedisStore {
    /// The local fallback's view of a user (for the floor), or nothing.
    /// A read ([`StateStore::peek`](crate::state::StateStore::peek)): no write transaction on
    /// a durable fallback.
    pub(super) fn local_state(&self, username: &str) -> Option<UserState> {
        self.fallback.as_ref()?.peek(username).ok()
    }

    /// Writes what Redis decided through to the local fallback.
    pub(super) fn write_through(&self, username: &str, state: &UserState) {
        if let Some(local) = &self.fallback {
            // Redis merged the local used steps in before deciding: its view is the newer.
            let result = local.update(username, &mut |s| {
                if state.last_step.is_some() {
                    s.last_step = state.last_step;
                    s.last_offset_secs = state.last_offset_secs;
                    s.recent_steps = state.recent_steps;
                }
                s.failures = state.failures;
                s.locked_until = state.locked_until;
                s.keep |= state.keep;
                // The same set: Redis's uses include the local ones (merged in). Another set
                // (servers disagreeing on the current one): the local uses stay, so a decision
                // on the local set still counts them.
                if s.recovery_set == state.recovery_set
                    || (s.recovery_set, s.recovery_used) == (0, 0)
                {
                    s.recovery_set = state.recovery_set;
                    s.recovery_used |= state.recovery_used;
                }
            });
            if let Err(e) = result {
                warn!("cannot write the Redis decision through to the local store: {e}");
            }
        }
    }

    /// After an outage: merges the local state of every user the fallback decided into Redis.
    pub(super) fn push_decided_locally(&self, conn: &mut redis::Connection, limits: &Limits) {
        let names: Vec<String> = self.decided_locally.lock().drain().collect();
        if names.is_empty() {
            return;
        }
        let now = crate::clock::now();
        let mut failed = 0usize;
        for name in &names {
            if self.closing.load(Ordering::SeqCst) {
                self.decided_locally.lock().insert(name.clone());
                continue;
            }
            let Some(local) = self.local_state(name) else {
                continue;
            };
            let ask = Ask {
                kind: KIND_MERGE,
                step: 0,
                set: 0,
                now,
                limits,
                floor: &local,
            };
            if self.decide_on_redis(conn, name, &ask).is_err() {
                failed += 1;
                self.decided_locally.lock().insert(name.clone());
            }
        }
        info!(
            "redis at {}: merged what the local store decided during the outage for {} users{}",
            self.where_,
            names.len() - failed,
            if failed > 0 {
                format!(" ({failed} left for the next contact)")
            } else {
                String::new()
            }
        );
    }

    /// The outage path of a decision: the local store, or fail closed.
    pub(super) fn decide_locally(
        &self,
        username: &str,
        found: &Found,
        now: i64,
        limits: &Limits,
    ) -> Result<Decision, StateError> {
        match &self.fallback {
            Some(local) => {
                let decision = local.decide(username, found, now, limits)?;
                let mut pending = self.decided_locally.lock();
                if pending.len() < MAX_DECIDED_LOCALLY {
                    pending.insert(username.to_owned());
                }
                Ok(decision)
            }
            None => Err(StateError(format!("redis at {} unavailable", self.where_))),
        }
    }
}
