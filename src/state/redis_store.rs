//! State shared by several OpenVPN servers in one Redis (or Valkey).
//!
//! One key per user, `<prefix>user:<name>`, holding `last_step:failures:locked_until`.
//!
//! **Atomicity: optimistic compare-and-set.** `update` reads the key (`GET`), runs the
//! decision closure on what it read, and writes the result with a small Lua script that
//! replaces the value only if it is still the one read (else it returns 0 and `update` reads
//! again and re-runs the closure, as the [`StateStore`] contract allows). Two servers racing on
//! the same code therefore serialise in Redis: the second one's write fails, it re-reads, sees
//! the step used and decides "replay". The same holds for failure counts and locks.
//!
//! Why not the whole decision in Lua: the decision (window search, replay rule, lock rule,
//! lost-history rule) then exists twice, in Rust for the memory/SQLite stores and in Lua, and the
//! two drift apart. Why not WATCH/MULTI/EXEC: WATCH binds the transaction to one connection's
//! state, which a reconnect after a timeout silently loses; the CAS script is stateless, costs
//! the same two round trips, and Redis runs it atomically.
//!
//! **Expiry.** Every write sets `EX`: at least the acceptance span (a used step can no longer be
//! inside any window after that), at least `lockout_secs` while failures are counted, and at
//! least until `locked_until`. Redis holds at most one small key per configured user who
//! logged in recently.
//!
//! **Outages.** Connect, read and write are bounded by `timeout_ms`. The first failure marks
//! Redis down, logs one error and starts a reconnect backoff (250 ms doubling to 5 s); while
//! down, logins fail at once ([`StateError`], the client hears `TEMP[backoff N]`) except when a
//! reconnect attempt is due. The first success after that logs one "recovered" line.
//! With `fallback = "local"` the local SQLite store decides during the outage instead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::IntoConnectionInfo;
use tracing::{error, info, warn};
use zeroize::Zeroizing;

use super::{StateError, StateStore, UserState};
use crate::config::RedisConfig;

/// Compare-and-set: KEYS[1] user key; ARGV[1] value read ("" = absent); ARGV[2] new value
/// ("" = delete); ARGV[3] expiry in seconds. Returns 1 if written, 0 if the value changed.
const CAS_SCRIPT: &str = r"
local cur = redis.call('GET', KEYS[1])
if (cur or '') ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  if cur then redis.call('DEL', KEYS[1]) end
else
  redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
end
return 1
";

/// Re-reads after a lost race before giving up (each one means another server just decided a
/// login of the same user, so this is only reached under pathological contention).
const MAX_ATTEMPTS: u32 = 32;
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Connections kept for reuse (one per worker thread plus the synchronous path is enough).
const POOL_MAX: usize = 8;

struct Health {
    down: bool,
    next_attempt: Instant,
    backoff: Duration,
}

pub struct RedisStore {
    client: redis::Client,
    where_: String,
    prefix: String,
    timeout: Duration,
    pool: Mutex<Vec<redis::Connection>>,
    health: Mutex<Health>,
    script: redis::Script,
    /// Seconds a user key is kept at least (see the module docs); set from the policy.
    retention: AtomicU64,
    fallback: Option<Box<dyn StateStore>>,
}

impl RedisStore {
    /// Prepares the client; reads `password_file` now. Does not need Redis to be up: an
    /// unreachable Redis is an outage (logged, failing closed), not a reason to stop OpenVPN.
    pub fn open(
        config: &RedisConfig,
        retention_secs: u64,
        fallback: Option<Box<dyn StateStore>>,
    ) -> Result<RedisStore, String> {
        let where_ = config.describe();
        let mut info = config
            .url
            .as_str()
            .into_connection_info()
            .map_err(|_| format!("redis URL for {where_} cannot be parsed"))?;
        if let Some(path) = &config.password_file {
            let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                format!(
                    "cannot read the Redis password_file {}: {e}; it must be readable by \
                     OpenVPN's runtime user",
                    path.display()
                )
            })?);
            let password = text.lines().next().unwrap_or("").trim();
            if password.is_empty() {
                return Err(format!(
                    "the Redis password_file {} is empty",
                    path.display()
                ));
            }
            info.redis.password = Some(password.to_owned());
        }
        let client = match &config.ca_file {
            None => redis::Client::open(info),
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    format!(
                        "cannot read the Redis ca_file {}: {e}; it must be readable by \
                         OpenVPN's runtime user",
                        path.display()
                    )
                })?;
                let certificates = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                };
                redis::Client::build_with_tls(info, certificates)
            }
        }
        .map_err(|e| {
            format!(
                "cannot set up the Redis client for {where_}: {}",
                describe_error(&e)
            )
        })?;
        Ok(RedisStore {
            client,
            where_,
            prefix: config.key_prefix.clone(),
            timeout: Duration::from_millis(config.timeout_ms),
            pool: Mutex::new(Vec::new()),
            health: Mutex::new(Health {
                down: false,
                next_attempt: Instant::now(),
                backoff: BACKOFF_MIN,
            }),
            script: redis::Script::new(CAS_SCRIPT),
            retention: AtomicU64::new(retention_secs.max(1)),
            fallback,
        })
    }

    /// Where the store is (no credentials), for log lines.
    pub fn describe(&self) -> &str {
        &self.where_
    }

    /// Whether the last contact with Redis failed (an outage is in progress).
    pub fn is_down(&self) -> bool {
        self.health.lock().down
    }

    /// Connects once now, so a wrong address or password shows in the log at start-up.
    pub fn probe(&self) {
        match self.connection() {
            Ok(conn) => self.give_back(conn),
            Err(e) => self.mark_down(&e),
        }
    }

    fn key(&self, username: &str) -> String {
        format!("{}user:{username}", self.prefix)
    }

    fn connection(&self) -> redis::RedisResult<redis::Connection> {
        if let Some(conn) = self.pool.lock().pop() {
            return Ok(conn);
        }
        let conn = self.client.get_connection_with_timeout(self.timeout)?;
        conn.set_read_timeout(Some(self.timeout))?;
        conn.set_write_timeout(Some(self.timeout))?;
        Ok(conn)
    }

    fn give_back(&self, conn: redis::Connection) {
        let mut pool = self.pool.lock();
        if pool.len() < POOL_MAX {
            pool.push(conn);
        }
    }

    fn mark_down(&self, e: &redis::RedisError) {
        // Connections made before the failure may be dead too; start afresh.
        self.pool.lock().clear();
        let mut h = self.health.lock();
        if !h.down {
            h.down = true;
            h.backoff = BACKOFF_MIN;
            error!(
                "redis at {} unreachable ({}); logins fail closed{} until it is back",
                self.where_,
                describe_error(e),
                if self.fallback.is_some() {
                    ", decided by the local fallback store,"
                } else {
                    ""
                }
            );
        } else {
            h.backoff = (h.backoff * 2).min(BACKOFF_MAX);
        }
        h.next_attempt = Instant::now() + h.backoff;
    }

    fn mark_up(&self) {
        let mut h = self.health.lock();
        if h.down {
            h.down = false;
            h.backoff = BACKOFF_MIN;
            info!(
                "redis at {} reachable again; shared state restored",
                self.where_
            );
        }
    }

    /// While down, only let a reconnect attempt through once its backoff has passed.
    fn may_try(&self) -> bool {
        let mut h = self.health.lock();
        if !h.down {
            return true;
        }
        let now = Instant::now();
        if now >= h.next_attempt {
            // One attempt per backoff period; the others fail fast meanwhile.
            h.next_attempt = now + h.backoff;
            true
        } else {
            false
        }
    }

    fn try_update(
        &self,
        conn: &mut redis::Connection,
        key: &str,
        decide: &mut dyn FnMut(&mut UserState),
    ) -> Result<(), Attempt> {
        for _ in 0..MAX_ATTEMPTS {
            let current: Option<String> = redis::cmd("GET").arg(key).query(conn)?;
            let current = current.unwrap_or_default();
            let mut state = decode(&current).ok_or(Attempt::Corrupt)?;
            decide(&mut state);
            let new = encode(&state);
            if new == current {
                return Ok(());
            }
            let now = crate::clock::now();
            let ttl = self
                .retention
                .load(Ordering::Relaxed)
                .max(u64::try_from(state.locked_until.saturating_sub(now)).unwrap_or(0) + 1);
            let written: i64 = self
                .script
                .key(key)
                .arg(&current)
                .arg(&new)
                .arg(ttl)
                .invoke(conn)?;
            if written == 1 {
                return Ok(());
            }
        }
        Err(Attempt::Contention)
    }
}

enum Attempt {
    Redis(redis::RedisError),
    Corrupt,
    Contention,
}

impl From<redis::RedisError> for Attempt {
    fn from(e: redis::RedisError) -> Attempt {
        Attempt::Redis(e)
    }
}

impl StateStore for RedisStore {
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
        let mut conn = match self.connection() {
            Ok(conn) => conn,
            Err(e) => {
                self.mark_down(&e);
                return unavailable(decide);
            }
        };
        match self.try_update(&mut conn, &self.key(username), decide) {
            Ok(()) => {
                self.give_back(conn);
                self.mark_up();
                Ok(())
            }
            Err(Attempt::Redis(e)) if is_outage(&e) => {
                self.mark_down(&e);
                unavailable(decide)
            }
            Err(Attempt::Redis(e)) => {
                self.mark_up();
                warn!(
                    "redis at {} refused a state update ({})",
                    self.where_,
                    describe_error(&e)
                );
                Err(StateError("redis refused the update".into()))
            }
            Err(Attempt::Corrupt) => {
                self.give_back(conn);
                warn!(
                    "redis at {}: the state of one user is not in this plugin's format; \
                     is key_prefix shared with another application?",
                    self.where_
                );
                Err(StateError("unreadable state in redis".into()))
            }
            Err(Attempt::Contention) => {
                self.give_back(conn);
                Err(StateError("redis state kept changing".into()))
            }
        }
    }

    fn set_retention(&self, secs: u64) {
        self.retention.store(secs.max(1), Ordering::Relaxed);
        if let Some(local) = &self.fallback {
            local.set_retention(secs);
        }
    }
}

/// Connection-level trouble (refused, reset, timed out, Redis loading or read-only replica):
/// an outage. Anything else (e.g. a script error) is reported as such.
fn is_outage(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.kind(),
            redis::ErrorKind::BusyLoadingError
                | redis::ErrorKind::ReadOnly
                | redis::ErrorKind::TryAgain
                | redis::ErrorKind::MasterDown
                | redis::ErrorKind::AuthenticationFailed
        )
}

/// The error's category and, for I/O errors, the OS error: never a command or a value.
fn describe_error(e: &redis::RedisError) -> String {
    if e.is_timeout() {
        return "timed out".to_owned();
    }
    if e.is_connection_refusal() {
        return "connection refused".to_owned();
    }
    match e.kind() {
        redis::ErrorKind::IoError => "I/O error".to_owned(),
        redis::ErrorKind::AuthenticationFailed => {
            "authentication failed: check password_file".to_owned()
        }
        other => format!("{other:?}"),
    }
}

/// `last_step:failures:locked_until`, `last_step` empty when none; "" for the default state.
fn encode(state: &UserState) -> String {
    let (last, failures, locked) = state.persisted();
    if (last, failures, locked) == (None, 0, 0) {
        return String::new();
    }
    let last = last.map(|s| s.to_string()).unwrap_or_default();
    format!("{last}:{failures}:{locked}")
}

fn decode(text: &str) -> Option<UserState> {
    if text.is_empty() {
        return Some(UserState::default());
    }
    let mut parts = text.split(':');
    let last = parts.next()?;
    let failures = parts.next()?.parse().ok()?;
    let locked_until = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    let last_step = if last.is_empty() {
        None
    } else {
        Some(last.parse().ok()?)
    };
    Some(UserState {
        last_step,
        failures,
        locked_until,
        history_lost_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_and_rejects_foreign_values() {
        for s in [
            UserState::default(),
            UserState {
                last_step: Some(170_000_000),
                failures: 3,
                locked_until: 1_700_000_300,
                history_lost_at: None,
            },
            UserState {
                last_step: None,
                failures: 1,
                locked_until: 0,
                history_lost_at: None,
            },
        ] {
            assert_eq!(decode(&encode(&s)), Some(s));
        }
        assert_eq!(encode(&UserState::default()), "");
        for bad in ["x", "1:2", "1:2:3:4", "a:1:1", "1:-1:0"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }
}
