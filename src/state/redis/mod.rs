//! State shared by several OpenVPN servers in one Redis (or Valkey).
//!
//! Keys: `<prefix>user:<name>` holds the user's state (`last_step:failures:locked_until` and
//! more, see `value`), with an expiry unless it must be kept; `<prefix>epoch` names
//! the data (a random id made when the data was first created); `<prefix>lost_at` is the time
//! from which the data is known to be incomplete (a quarantine, see `epoch`).
//!
//! This module holds [`RedisStore`]: its opening and its [`StateStore`] impl (the decision, and
//! `update`); the rest is in its parts, each with one job:
//! - `script`: the Lua scripts ([`DECIDE_SCRIPT`], the epoch and the compare-and-set one), the
//!   arguments of a decision and the parsing of its reply;
//! - `value`: a user's state as a Redis value;
//! - `epoch`: the data epoch, its file in `[state] dir`, and the quarantine after lost data;
//! - `fallback`: the local fallback (write-through, deciding during an outage, the merge after);
//! - `connect`: the client (password file, CA, Sentinel), connections, their pool and retry,
//!   outages and their backoff, and the `WAIT` for `min_replicas`.
//!
//! **One round trip per decision.** The window search needs no state, so it runs first (in
//! [`crate::auth`]); then one Lua script ([`DECIDE_SCRIPT`]) applies [`crate::rule::apply`] to
//! the user's key atomically: lock, replay (including the lost-data floor), failure count,
//! acceptance, and the write with its expiry. Two servers racing on the same code serialise in
//! Redis: the second sees the step used. The script is a transcription of the Rust rule,
//! pinned to it by tests against a real Redis (`tests/redis_options.rs`); the rule itself
//! lives once, in `rule.rs`, for every other store. `update` (motpctl's status and unlock) keeps a
//! compare-and-set loop: it runs any closure, and it is not on the login path.
//!
//! **Expiry.** A user key lives at least as long as a used step can come back into a window
//! with any window and offset the config allows ([`KEEP_USED_STEP_SECS`]), so widening the
//! window or changing an offset by a live reload cannot outlive a key; longer while locked. A
//! key whose state is [kept](UserState::keep) (a counter token's counter, used recovery codes)
//! has no expiry: forgetting it would make used codes acceptable again.

mod connect;
mod epoch;
mod fallback;
mod script;
#[cfg(test)]
mod tests;
mod value;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tracing::warn;

use super::{StateError, StateStore, UserState};
use crate::auth::Decision;
use crate::config::{RedisConfig, TrustedOwners, MAX_OFFSET_SECS, MAX_WINDOW_SECS};
use crate::engine::STEP_SECS;
use crate::rule::{Found, Limits};
use connect::{describe_error, is_outage, Health, Target, BACKOFF_MIN};
use epoch::Epoch;
use fallback::{merge_floor, used_part};
pub use script::DECIDE_SCRIPT;
use script::{
    Ask, Reply, ANSWER_ACCEPTED, ANSWER_BAD_CODE, ANSWER_BAD_PASSWORD, ANSWER_LOCKED,
    ANSWER_MALFORMED, ANSWER_RECOVERY_ACCEPTED, ANSWER_REPLAY, CAS_SCRIPT, EPOCH_SCRIPT,
    KIND_BAD_PASSWORD, KIND_MALFORMED, KIND_NO_MATCH, KIND_RECOVERY, KIND_SETTLED_ACCEPTED,
    KIND_SETTLED_REPLAY, KIND_STEP,
};
use value::{decode, encode};

/// The least time a user key is kept: a used step can come back into a window for twice the
/// widest window plus a change of offset across the whole allowed range, plus a margin.
pub const KEEP_USED_STEP_SECS: u64 =
    2 * MAX_WINDOW_SECS as u64 + 2 * MAX_OFFSET_SECS as u64 + 2 * STEP_SECS as u64 + 60;

/// The limits of a merge after an outage that no decision asked for (`peek`): a merge only
/// reads the offset, for a last step recorded without one.
const MERGE_LIMITS: Limits = Limits {
    max_failures: u32::MAX,
    lockout_secs: 0,
    offset_secs: 0,
    radius: 0,
    counter_based: false,
    learned_offset_secs: 0,
};

/// Re-reads in `update` after a lost race before giving up.
const MAX_ATTEMPTS: u32 = 32;

pub struct RedisStore {
    target: Target,
    min_replicas: u32,
    where_: String,
    prefix: String,
    timeout: Duration,
    dir: PathBuf,
    pool: Mutex<Vec<redis::Connection>>,
    health: Mutex<Health>,
    decide_script: redis::Script,
    epoch_script: redis::Script,
    cas_script: redis::Script,
    /// Seconds a user key is kept at least; set from the policy, never below
    /// [`KEEP_USED_STEP_SECS`].
    retention: AtomicU64,
    epoch: Mutex<Epoch>,
    fallback: Option<Box<dyn StateStore>>,
    decided_locally: Mutex<HashSet<String>>,
    /// Set when the plugin closes: no command starts after it (see `begin_closing`).
    closing: AtomicBool,
}

impl RedisStore {
    /// Prepares the client; reads `password_file` now (refused unless only `trusted` owners
    /// can change it and not every user can read it). Does not need Redis to be up: an
    /// unreachable Redis is an outage (logged, failing closed), not a reason to stop OpenVPN.
    pub fn open(
        config: &RedisConfig,
        retention_secs: u64,
        fallback: Option<Box<dyn StateStore>>,
    ) -> Result<RedisStore, String> {
        RedisStore::open_trusting(
            config,
            retention_secs,
            fallback,
            TrustedOwners::root_and(crate::os::effective_uid()),
        )
    }

    /// [`RedisStore::open`] with the owners `password_file` may have.
    pub fn open_trusting(
        config: &RedisConfig,
        retention_secs: u64,
        fallback: Option<Box<dyn StateStore>>,
        trusted: TrustedOwners,
    ) -> Result<RedisStore, String> {
        let where_ = config.describe();
        let target = Target::open(config, &where_, trusted)?;
        Ok(RedisStore {
            target,
            min_replicas: config.min_replicas,
            where_,
            prefix: config.key_prefix.clone(),
            timeout: Duration::from_millis(config.timeout_ms),
            dir: config.dir.clone(),
            pool: Mutex::new(Vec::new()),
            health: Mutex::new(Health {
                down: false,
                next_attempt: Instant::now(),
                backoff: BACKOFF_MIN,
            }),
            decide_script: redis::Script::new(DECIDE_SCRIPT),
            epoch_script: redis::Script::new(EPOCH_SCRIPT),
            cas_script: redis::Script::new(CAS_SCRIPT),
            retention: AtomicU64::new(retention_secs.max(KEEP_USED_STEP_SECS)),
            epoch: Mutex::new(Epoch {
                known: None,
                file: None,
                loaded: false,
            }),
            fallback,
            decided_locally: Mutex::new(HashSet::new()),
            closing: AtomicBool::new(false),
        })
    }

    /// Where the store is (no credentials), for log lines.
    pub fn describe(&self) -> &str {
        &self.where_
    }

    /// Reads the remembered epoch and connects once now, so a wrong address or password, and
    /// a Redis that lost its data while OpenVPN was stopped, show in the log at start-up.
    pub fn probe(&self) {
        self.load_epoch();
        match self.connection() {
            Ok((mut conn, _)) => {
                let observed: redis::RedisResult<Option<String>> =
                    redis::cmd("GET").arg(self.epoch_key()).query(&mut conn);
                match observed
                    .map_err(Failure::Redis)
                    .and_then(|observed| self.sync_epoch(&mut conn, observed))
                {
                    Ok(()) => self.give_back(conn),
                    Err(Failure::Redis(e)) => self.mark_down(&e),
                    Err(Failure::Refused(why)) => warn!("redis at {}: {why}", self.where_),
                    Err(Failure::Unconfirmed(_) | Failure::Closing) => self.give_back(conn),
                }
            }
            Err(e) => self.mark_down(&e),
        }
    }

    fn key(&self, username: &str) -> String {
        format!("{}user:{username}", self.prefix)
    }

    fn epoch_key(&self) -> String {
        format!("{}epoch", self.prefix)
    }

    fn lost_key(&self) -> String {
        format!("{}lost_at", self.prefix)
    }

    fn ttl(&self) -> u64 {
        self.retention.load(Ordering::Relaxed)
    }

    /// One decision on Redis: the script, resynchronising the epoch when Redis names another
    /// (or none) and running it again.
    fn decide_on_redis(
        &self,
        conn: &mut redis::Connection,
        username: &str,
        ask: &Ask,
    ) -> Result<(i64, UserState), Failure> {
        for _ in 0..3 {
            self.not_closing()?;
            match self.run_decide(conn, username, ask)? {
                Reply::Decided { code, state } => return Ok((code, state)),
                Reply::Epoch(observed) => self.sync_epoch(conn, observed)?,
                Reply::Unreadable => {
                    return Err(Failure::Refused(
                        "the state of one user is not in this plugin's format; is key_prefix \
                         shared with another application?"
                            .into(),
                    ))
                }
            }
        }
        Err(Failure::Refused(
            "its data epoch kept changing; is another application flushing it?".into(),
        ))
    }

    fn try_update(
        &self,
        conn: &mut redis::Connection,
        key: &str,
        decide: &mut dyn FnMut(&mut UserState),
    ) -> Result<(), Failure> {
        for _ in 0..MAX_ATTEMPTS {
            let (current, lost): (Option<String>, Option<i64>) = redis::cmd("MGET")
                .arg(key)
                .arg(self.lost_key())
                .query(conn)
                .map_err(Failure::Redis)?;
            let current = current.unwrap_or_default();
            let mut state = decode(&current).ok_or_else(|| {
                Failure::Refused("the state of one user is not in this plugin's format".into())
            })?;
            state.history_lost_at = lost;
            decide(&mut state);
            let new = encode(&state);
            if new == current {
                return Ok(());
            }
            let now = crate::clock::now();
            // 0: no expiry, for a value that must outlive it (as the decision script writes it).
            let ttl = if state.keep {
                0
            } else {
                self.ttl()
                    .max(u64::try_from(state.locked_until.saturating_sub(now)).unwrap_or(0) + 1)
            };
            let written: i64 = self
                .cas_script
                .key(key)
                .arg(&current)
                .arg(&new)
                .arg(ttl)
                .invoke(conn)
                .map_err(Failure::Redis)?;
            if written == 1 {
                return Ok(());
            }
        }
        Err(Failure::Refused("redis state kept changing".into()))
    }

    /// One MGET of the user's key, the lost-data mark and the epoch: the state as a decision
    /// would see it (a quarantine from now on when the epoch is not the one this server knows,
    /// as the decision would start one), with the local store's used steps and codes merged
    /// in as the script merges them.
    fn try_peek(&self, conn: &mut redis::Connection, username: &str) -> Result<UserState, Failure> {
        self.load_epoch();
        let (current, lost, observed): (Option<String>, Option<i64>, Option<String>) =
            redis::cmd("MGET")
                .arg(self.key(username))
                .arg(self.lost_key())
                .arg(self.epoch_key())
                .query(conn)
                .map_err(Failure::Redis)?;
        let mut state = decode(current.as_deref().unwrap_or_default()).ok_or_else(|| {
            Failure::Refused("the state of one user is not in this plugin's format".into())
        })?;
        let known = self.epoch.lock().known.clone();
        let lost_now = known.is_some() && observed != known;
        state.history_lost_at = if lost_now {
            Some(lost.unwrap_or(i64::MAX).min(crate::clock::now()))
        } else {
            lost
        };
        if let Some(local) = self.local_state(username) {
            merge_floor(&mut state, &used_part(local));
        }
        Ok(state)
    }

    fn refused(&self, why: &str) -> StateError {
        warn!("redis at {}: {why}", self.where_);
        StateError(format!("redis at {} refused the update", self.where_))
    }
}

enum Failure {
    /// The plugin is closing; nothing was asked of Redis.
    Closing,
    /// An acceptance reached fewer replicas than `min_replicas` in time.
    Unconfirmed(i64),
    Redis(redis::RedisError),
    /// Redis answered, but not in a way the plugin can use.
    Refused(String),
}

impl StateStore for RedisStore {
    fn decide(
        &self,
        username: &str,
        found: &Found,
        now: i64,
        limits: &Limits,
    ) -> Result<Decision, StateError> {
        if !self.may_try() {
            return self.decide_locally(username, found, now, limits);
        }
        let (kind, step, set) = match found {
            Found::Malformed(_) => (KIND_MALFORMED, 0, 0),
            Found::NoMatch => (KIND_NO_MATCH, 0, 0),
            Found::Step { step, .. } => (KIND_STEP, *step, 0),
            Found::Recovery { set, index } => (KIND_RECOVERY, i64::from(*index), *set),
            Found::BadPassword => (KIND_BAD_PASSWORD, 0, 0),
            Found::Settled { accepted: true, .. } => (KIND_SETTLED_ACCEPTED, 0, 0),
            Found::Settled {
                accepted: false, ..
            } => (KIND_SETTLED_REPLAY, 0, 0),
        };
        // Only the local store's used steps and recovery codes count for a decision (its
        // failures and lock are the ones Redis wrote through, or merged in after an outage).
        let floor = self
            .local_state(username)
            .map(used_part)
            .unwrap_or_default();
        let mut recovered = false;
        let outcome = self.with_connection(|conn| {
            let ask = Ask {
                kind,
                step,
                set,
                now,
                limits,
                floor: &floor,
            };
            let decided = self.decide_on_redis(conn, username, &ask)?;
            if matches!(decided.0, ANSWER_ACCEPTED | ANSWER_RECOVERY_ACCEPTED)
                && self.min_replicas > 0
            {
                self.confirm_on_replicas(conn)?;
            }
            recovered = self.mark_up();
            if recovered && self.fallback.is_some() {
                self.push_decided_locally(conn, limits);
            }
            Ok(decided)
        });
        match outcome {
            Ok((code, state)) => {
                self.write_through(username, &state);
                Ok(match (code, found) {
                    (ANSWER_ACCEPTED, Found::Step { step_offset, .. })
                    | (
                        ANSWER_ACCEPTED,
                        Found::Settled {
                            accepted: true,
                            step_offset,
                        },
                    ) => Decision::Accepted {
                        step_offset: *step_offset,
                    },
                    (ANSWER_RECOVERY_ACCEPTED, Found::Recovery { index, .. }) => {
                        Decision::RecoveryAccepted { index: *index }
                    }
                    (ANSWER_ACCEPTED | ANSWER_RECOVERY_ACCEPTED, _) => {
                        return Err(self.refused("the decision script accepted something else"))
                    }
                    (ANSWER_BAD_CODE, _) => Decision::BadCode,
                    (ANSWER_BAD_PASSWORD, Found::BadPassword) => Decision::BadPassword,
                    (ANSWER_REPLAY, _) => Decision::Replay,
                    (ANSWER_LOCKED, _) => Decision::Locked {
                        until: state.locked_until,
                    },
                    (ANSWER_MALFORMED, Found::Malformed(why)) => Decision::MalformedPassword(*why),
                    _ => return Err(self.refused("the decision script answered oddly")),
                })
            }
            Err(Failure::Redis(e)) if is_outage(&e) => {
                self.mark_down(&e);
                self.decide_locally(username, found, now, limits)
            }
            Err(Failure::Redis(e)) => {
                self.mark_up();
                Err(self.refused(&format!("it refused a decision ({})", describe_error(&e))))
            }
            Err(Failure::Refused(why)) => Err(self.refused(&why)),
            Err(Failure::Closing) => Err(StateError("the plugin is closing".into())),
            Err(Failure::Unconfirmed(acked)) => {
                warn!(
                    "redis at {}: an acceptance reached {acked} of the {} replicas \
                     min_replicas asks for within timeout_ms; the login is refused (its code \
                     stays used)",
                    self.where_, self.min_replicas
                );
                Err(StateError("acceptance not confirmed by replicas".into()))
            }
        }
    }

    fn update(
        &self,
        username: &str,
        decide: &mut dyn FnMut(&mut UserState),
    ) -> Result<(), StateError> {
        let unavailable = |decide: &mut dyn FnMut(&mut UserState)| match &self.fallback {
            Some(local) => local.update(username, decide),
            None => Err(StateError(format!("redis at {} unavailable", self.where_))),
        };
        if !self.may_try() {
            return unavailable(decide);
        }
        let key = self.key(username);
        match self.with_connection(|conn| self.try_update(conn, &key, decide)) {
            Ok(()) => {
                self.mark_up();
                Ok(())
            }
            Err(Failure::Redis(e)) if is_outage(&e) => {
                self.mark_down(&e);
                unavailable(decide)
            }
            Err(Failure::Redis(e)) => {
                self.mark_up();
                Err(self.refused(&format!(
                    "it refused a state update ({})",
                    describe_error(&e)
                )))
            }
            Err(Failure::Refused(why)) => Err(self.refused(&why)),
            Err(Failure::Closing) => Err(StateError("the plugin is closing".into())),
            Err(Failure::Unconfirmed(_)) => Ok(()),
        }
    }

    fn peek(&self, username: &str) -> Result<UserState, StateError> {
        let unavailable = || match &self.fallback {
            Some(local) => local.peek(username),
            None => Err(StateError(format!("redis at {} unavailable", self.where_))),
        };
        if !self.may_try() {
            return unavailable();
        }
        let outcome = self.with_connection(|conn| {
            let state = self.try_peek(conn, username)?;
            // The end of an outage: merge what the fallback decided meanwhile now, as a
            // decision would (the next decision no longer sees the outage end).
            if self.mark_up() && self.fallback.is_some() {
                self.push_decided_locally(conn, &MERGE_LIMITS);
            }
            Ok(state)
        });
        match outcome {
            Ok(state) => Ok(state),
            Err(Failure::Redis(e)) if is_outage(&e) => {
                self.mark_down(&e);
                unavailable()
            }
            Err(Failure::Redis(e)) => {
                self.mark_up();
                Err(self.refused(&format!("it refused a read ({})", describe_error(&e))))
            }
            Err(Failure::Refused(why)) => Err(self.refused(&why)),
            Err(Failure::Closing) => Err(StateError("the plugin is closing".into())),
            Err(Failure::Unconfirmed(_)) => Err(StateError("unconfirmed read".into())),
        }
    }

    fn begin_closing(&self) {
        self.closing.store(true, Ordering::SeqCst);
    }

    fn set_retention(&self, secs: u64) {
        self.retention
            .store(secs.max(KEEP_USED_STEP_SECS), Ordering::Relaxed);
        if let Some(local) = &self.fallback {
            local.set_retention(secs);
        }
    }
}
