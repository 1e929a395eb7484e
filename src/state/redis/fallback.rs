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

/// Users decided by the local fallback during one outage that are merged into Redis after it;
/// past this many, the rest are only protected by their local floor on this server.
const MAX_DECIDED_LOCALLY: usize = 100_000;

impl RedisStore {
    /// The local fallback's view of a user (for the floor), or nothing.
    pub(super) fn local_state(&self, username: &str) -> Option<UserState> {
        let local = self.fallback.as_ref()?;
        let mut seen = UserState::default();
        local.update(username, &mut |s| seen = *s).ok()?;
        Some(seen)
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
