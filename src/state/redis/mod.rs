//! State shared by several OpenVPN servers in one Redis (or Valkey).
//!
//! Keys: `<prefix>user:<name>` holds `last_step:failures:locked_until`; `<prefix>epoch` names
//! the data (a random id made when the data was first created); `<prefix>lost_at` is the time
//! from which the data is known to be incomplete (a quarantine, see below).
//!
//! **One round trip per decision.** The window search needs no state, so it runs first (in
//! [`crate::auth`]); then one Lua script ([`DECIDE_SCRIPT`]) applies [`crate::rule::apply`] to
//! the user's key atomically: lock, replay (including the lost-data floor), failure count,
//! acceptance, and the write with its expiry. Two servers racing on the same code serialise in
//! Redis: the second sees the step used. The script is a transcription of the Rust rule,
//! pinned to it by tests against a real Redis (`tests/redis.rs`); the rule itself lives once,
//! in `rule.rs`, for every other store. `update` (motpctl's status and unlock) keeps a
//! compare-and-set loop: it runs any closure, and it is not on the login path.
//!
//! **Lost data.** A Redis restarted without persistence, a failover to an empty node, an
//! eviction or a `FLUSHALL` forget used steps, which would reopen replay. Every decision checks
//! the epoch the server expects; each server remembers the last epoch it saw in `[state] dir`
//! (`redis-epoch`), so this holds across SIGHUP and restarts. Epoch missing, or another one,
//! while the server remembered one: the data was lost. The server then makes (or adopts) the
//! new epoch and sets `lost_at` next to it, in one script, so every server refuses, for every
//! user, each step the window could have reached before the loss (as the local store does after
//! a corrupt file). A first contact with an empty Redis by a server that remembers nothing
//! starts without quarantine.
//!
//! **Expiry.** A user key lives at least as long as a used step can come back into a window
//! with any window and offset the config allows ([`KEEP_USED_STEP_SECS`]), so widening the
//! window or changing an offset by a live reload cannot outlive a key; longer while locked.
//!
//! **Outages.** Connect, read and write are bounded by `timeout_ms`. A command that fails with
//! an I/O error on a pooled connection (stale after a Redis restart) is retried once at once on
//! a fresh connection (safe: the script is atomic, a retry can refuse but never accept twice).
//! Then an outage: one error logged, reconnects with backoff (250 ms doubling to 5 s), logins
//! fail closed ([`StateError`]; the client hears `TEMP[backoff N]`) or, with
//! `fallback = "local"`, the local store decides.
//!
//! **The local fallback** sees every decision: while Redis is up, the state Redis decided is
//! written through to the local store, and the local last step is passed into each script as a
//! floor (the larger wins). During an outage the local store decides and remembers whom it
//! decided; when Redis is back those users' local state is merged into Redis (larger step,
//! failures and lock win) before other servers can be asked about them again.

use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::IntoConnectionInfo;
use tracing::{error, info, warn};
use zeroize::Zeroizing;

use super::{RecentSteps, StateError, StateStore, UserState};
use crate::auth::Decision;
use crate::config::{RedisConfig, TrustedOwners, MAX_OFFSET_SECS, MAX_WINDOW_SECS};
use crate::engine::STEP_SECS;
use crate::rule::{Found, Limits};

/// The least time a user key is kept: a used step can come back into a window for twice the
/// widest window plus a change of offset across the whole allowed range, plus a margin.
pub const KEEP_USED_STEP_SECS: u64 =
    2 * MAX_WINDOW_SECS as u64 + 2 * MAX_OFFSET_SECS as u64 + 2 * STEP_SECS as u64 + 60;

/// [`crate::rule::apply`] in one script.
/// KEYS: 1 user key, 2 epoch key, 3 lost_at key.
/// ARGV: 1 expected epoch, 2 now, 3 kind (0 malformed, 1 no match, 2 step, 5 merge only),
/// 4 step, 5 offset_secs, 6 radius, 7 max_failures, 8 lockout_secs, 9 ttl,
/// 10 the local store's state of the user, encoded as a value ("" none): its used steps are
/// used here too, and (kind 5 only) its failures and lock are merged in.
/// A value is `last:failures:locked` (written by older versions) or
/// `last:failures:locked:last_offset:recent` (recent: steps separated by commas, oldest first),
/// exactly as [`encode`] writes it.
/// Returns {-1} epoch missing, {-2, epoch} another epoch, {-3} unreadable value, or
/// {decision (0 accepted, 1 bad code, 2 replay, 3 locked, 4 malformed, 5 merged), value}.
pub const DECIDE_SCRIPT: &str = r"
local epoch = redis.call('GET', KEYS[2])
if not epoch then return {-1} end
if epoch ~= ARGV[1] then return {-2, epoch} end
local K = 8
local function steps(text)
  local out = {}
  if text == '' then return out end
  local start = 1
  while true do
    local i = string.find(text, ',', start, true)
    local part = i and string.sub(text, start, i - 1) or string.sub(text, start)
    if not string.match(part, '^%d+$') then return nil end
    out[#out + 1] = tonumber(part)
    if not i then break end
    start = i + 1
  end
  if #out > K then return nil end
  return out
end
local function parse(text)
  if text == '' then return {failures = 0, locked = 0, recent = {}} end
  local a, b, c, d, e = string.match(text, '^(%d*):(%d+):(%d+):(%-?%d+):([%d,]*)$')
  if not b then
    a, b, c = string.match(text, '^(%d*):(%d+):(%d+)$')
    if not b then return nil end
  end
  local recent = steps(e or '')
  if not recent then return nil end
  local state = {failures = tonumber(b), locked = tonumber(c), recent = recent}
  if a ~= '' then state.last = tonumber(a) end
  if d then state.last_off = tonumber(d) end
  return state
end
local function push(recent, step)
  local out = {}
  for _, s in ipairs(recent) do if s ~= step then out[#out + 1] = s end end
  out[#out + 1] = step
  while #out > K do table.remove(out, 1) end
  return out
end
local function frame(step, off) return step - math.floor(off / 10) end
local now = tonumber(ARGV[2])
local kind = tonumber(ARGV[3])
local off = tonumber(ARGV[5])
local cur = redis.call('GET', KEYS[1])
local st = parse(cur or '')
if not st then return {-3} end
local floor = parse(ARGV[10])
if not floor then return {-3} end
if floor.last and ((not st.last)
    or frame(floor.last, floor.last_off or off) > frame(st.last, st.last_off or off)) then
  st.last = floor.last
  st.last_off = floor.last_off
end
for _, s in ipairs(floor.recent) do
  local known = false
  for _, r in ipairs(st.recent) do if r == s then known = true end end
  if not known then
    st.recent[#st.recent + 1] = s
    while #st.recent > K do table.remove(st.recent, 1) end
  end
end
local decision = 5
if kind == 5 then
  if floor.failures > st.failures then st.failures = floor.failures end
  if floor.locked > st.locked then st.locked = floor.locked end
elseif st.locked > now then
  decision = 3
else
  if kind == 0 then
    decision = 4
  elseif kind == 1 then
    decision = 1
  else
    local step = tonumber(ARGV[4])
    local used = false
    if st.last and (step == st.last
        or frame(step, off) < frame(st.last, st.last_off or off)) then used = true end
    for _, r in ipairs(st.recent) do if r == step then used = true end end
    local lost = redis.call('GET', KEYS[3])
    if lost then
      local lfloor = math.floor((tonumber(lost) + off) / 10) + tonumber(ARGV[6])
      if step <= lfloor then used = true end
    end
    if used then
      decision = 2
    else
      decision = 0
      st.last = step
      st.last_off = off
      st.recent = push(st.recent, step)
    end
  end
  if decision == 0 then
    st.failures = 0
  else
    st.failures = st.failures + 1
    if st.failures >= tonumber(ARGV[7]) then
      st.failures = 0
      st.locked = now + tonumber(ARGV[8])
    end
  end
end
local value = ''
if st.last or st.failures ~= 0 or st.locked ~= 0 then
  value = (st.last and string.format('%d', st.last) or '') .. ':'
    .. string.format('%d', st.failures) .. ':' .. string.format('%d', st.locked)
  if st.last_off then
    local parts = {}
    for i, r in ipairs(st.recent) do parts[i] = string.format('%d', r) end
    value = value .. ':' .. string.format('%d', st.last_off) .. ':' .. table.concat(parts, ',')
  end
end
if value ~= (cur or '') then
  if value == '' then
    redis.call('DEL', KEYS[1])
  else
    local ttl = tonumber(ARGV[9])
    if st.locked - now + 1 > ttl then ttl = st.locked - now + 1 end
    redis.call('SET', KEYS[1], value, 'EX', ttl)
  end
end
return {decision, value}
";

/// Makes the epoch if there is none; with ARGV[2] = 1 (the data this server knew is gone) also
/// starts the quarantine, unless one is already running. KEYS: 1 epoch, 2 lost_at. ARGV: 1 a
/// fresh id, 2 lost (0/1), 3 now, 4 quarantine expiry. Returns the epoch now in force.
const EPOCH_SCRIPT: &str = r"
local cur = redis.call('GET', KEYS[1])
if not cur then
  redis.call('SET', KEYS[1], ARGV[1])
  cur = ARGV[1]
  if ARGV[2] == '1' then redis.call('SET', KEYS[2], ARGV[3], 'EX', tonumber(ARGV[4])) end
elseif ARGV[2] == '1' then
  redis.call('SET', KEYS[2], ARGV[3], 'NX', 'EX', tonumber(ARGV[4]))
end
return cur
";

/// Compare-and-set for `update`: KEYS[1] user key; ARGV[1] value read ("" = absent); ARGV[2]
/// new value ("" = delete); ARGV[3] expiry in seconds. Returns 1 if written, 0 if the value
/// changed meanwhile.
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

/// Re-reads in `update` after a lost race before giving up.
const MAX_ATTEMPTS: u32 = 32;
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Connections kept for reuse (the worker and the synchronous path need one each).
const POOL_MAX: usize = 4;
/// Users decided by the local fallback during one outage that are merged into Redis after it;
/// past this many, the rest are only protected by their local floor on this server.
const MAX_DECIDED_LOCALLY: usize = 100_000;
const EPOCH_FILE: &str = "redis-epoch";
const EPOCH_FILE_HEADER: &str = "motp redis epoch v1";

struct Health {
    down: bool,
    next_attempt: Instant,
    backoff: Duration,
}

/// The epoch this server expects, and where it remembers it.
struct Epoch {
    known: Option<String>,
    /// `None` when the directory cannot be used: the epoch is then remembered in this process
    /// only (a loss while it runs is still noticed, not one across a SIGHUP).
    file: Option<PathBuf>,
    loaded: bool,
}

/// Where connections go: one Redis, or the master Redis Sentinel names at each connection.
enum Target {
    Direct(redis::Client),
    /// Asked again at every new connection, so a failover is followed by the next reconnect
    /// (a command refused by a demoted master is an outage, which drops the pooled
    /// connections).
    Sentinel(Mutex<redis::sentinel::SentinelClient>),
}

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

/// What one decision script answered.
enum Reply {
    Decided {
        code: i64,
        state: UserState,
    },
    /// The epoch is missing (`None`) or another one.
    Epoch(Option<String>),
    Unreadable,
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
        let password = match &config.password_file {
            Some(path) => {
                let text = read_password_file(path, trusted)?;
                let password = Zeroizing::new(text.lines().next().unwrap_or("").trim().to_owned());
                if password.is_empty() {
                    return Err(format!(
                        "the Redis password_file {} is empty",
                        path.display()
                    ));
                }
                Some(password)
            }
            None => None,
        };
        let root_cert = match &config.ca_file {
            None => None,
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                format!(
                    "cannot read the Redis ca_file {}: {e}; it must be readable by OpenVPN's \
                     runtime user",
                    path.display()
                )
            })?),
        };
        let setup_error = |e: redis::RedisError| {
            format!(
                "cannot set up the Redis client for {where_}: {}",
                describe_error(&e)
            )
        };
        let target = match &config.master_name {
            None => {
                let mut info = config
                    .url
                    .as_str()
                    .into_connection_info()
                    .map_err(|_| format!("redis URL for {where_} cannot be parsed"))?;
                if let Some(password) = &password {
                    // The client keeps it as a plain String for reconnecting; ours is wiped.
                    info.redis.password = Some(password.to_string());
                }
                let client = match root_cert {
                    None => redis::Client::open(info),
                    Some(pem) => redis::Client::build_with_tls(
                        info,
                        redis::TlsCertificates {
                            client_tls: None,
                            root_cert: Some(pem),
                        },
                    ),
                }
                .map_err(setup_error)?;
                Target::Direct(client)
            }
            Some(master_name) => Target::Sentinel(Mutex::new(
                sentinel_client(
                    config,
                    master_name,
                    password.as_deref().map(String::as_str),
                    root_cert,
                )
                .map_err(setup_error)?,
            )),
        };
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

    /// A connection, and whether it came from the pool (and so may be stale).
    fn connection(&self) -> redis::RedisResult<(redis::Connection, bool)> {
        if let Some(conn) = self.pool.lock().pop() {
            return Ok((conn, true));
        }
        self.fresh_connection().map(|conn| (conn, false))
    }

    /// `Err` once the plugin is closing: the caller gives up without counting an outage.
    fn not_closing(&self) -> Result<(), Failure> {
        if self.closing.load(Ordering::SeqCst) {
            Err(Failure::Closing)
        } else {
            Ok(())
        }
    }

    fn fresh_connection(&self) -> redis::RedisResult<redis::Connection> {
        let conn = match &self.target {
            Target::Direct(client) => client.get_connection_with_timeout(self.timeout)?,
            Target::Sentinel(sentinel) => {
                // Which master: asked of the sentinels now (after a failover, the new one).
                let client = sentinel.lock().get_client()?;
                client.get_connection_with_timeout(self.timeout)?
            }
        };
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

    /// Records a successful contact; `true` when it ends an outage.
    fn mark_up(&self) -> bool {
        let mut h = self.health.lock();
        if h.down {
            h.down = false;
            h.backoff = BACKOFF_MIN;
            info!(
                "redis at {} reachable again; shared state restored",
                self.where_
            );
            return true;
        }
        false
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

    /// Runs `op` on a connection; an outage-type error on a pooled connection is retried once
    /// on a fresh one. A connection is given back only after success.
    fn with_connection<T>(
        &self,
        mut op: impl FnMut(&mut redis::Connection) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        self.not_closing()?;
        let (mut conn, pooled) = self.connection().map_err(Failure::Redis)?;
        let result = match op(&mut conn) {
            Err(Failure::Redis(e)) if pooled && is_outage(&e) => {
                self.not_closing()?;
                conn = self.fresh_connection().map_err(Failure::Redis)?;
                op(&mut conn)
            }
            other => other,
        };
        // A connection whose last command failed may hold an unread reply: never reused.
        let reusable = match &result {
            Err(Failure::Redis(e)) => !is_outage(e),
            Err(Failure::Unconfirmed(_)) => false,
            _ => true,
        };
        if reusable {
            self.give_back(conn);
        }
        result
    }

    fn ttl(&self) -> u64 {
        self.retention.load(Ordering::Relaxed)
    }

    /// Runs [`DECIDE_SCRIPT`] once.
    fn run_decide(
        &self,
        conn: &mut redis::Connection,
        username: &str,
        ask: &Ask,
    ) -> Result<Reply, Failure> {
        let Ask {
            kind,
            step,
            now,
            limits,
            floor,
        } = *ask;
        let expected = self.epoch.lock().known.clone().unwrap_or_default();
        let reply: redis::Value = self
            .decide_script
            .key(self.key(username))
            .key(self.epoch_key())
            .key(self.lost_key())
            .arg(expected)
            .arg(now)
            .arg(kind)
            .arg(step)
            .arg(limits.offset_secs)
            .arg(limits.radius)
            .arg(limits.max_failures)
            .arg(limits.lockout_secs)
            .arg(self.ttl())
            .arg(encode(floor))
            .invoke(conn)
            .map_err(Failure::Redis)?;
        parse_reply(&reply).ok_or_else(|| {
            Failure::Refused("the decision script answered in an unexpected form".into())
        })
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

    /// Waits until `min_replicas` replicas hold what was just written (`WAIT`, bounded by
    /// `timeout_ms`); fewer: the acceptance is not confirmed (the login is refused, its step
    /// stays used), so a failover cannot lose an acceptance the plugin confirmed.
    /// Any error here comes after the decision was stored: it is reported as unconfirmed, never
    /// retried (a retry would run the decision again and call the used step a replay).
    fn confirm_on_replicas(&self, conn: &mut redis::Connection) -> Result<(), Failure> {
        let timeout_ms = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX);
        // WAIT itself takes up to timeout_ms: the socket must wait a little longer for it.
        let waited = conn
            .set_read_timeout(Some(self.timeout * 2 + Duration::from_millis(100)))
            .and_then(|()| {
                redis::cmd("WAIT")
                    .arg(self.min_replicas)
                    .arg(timeout_ms)
                    .query::<i64>(conn)
            })
            .and_then(|acked| conn.set_read_timeout(Some(self.timeout)).map(|()| acked));
        match waited {
            Ok(acked) if acked >= i64::from(self.min_replicas) => Ok(()),
            Ok(acked) => Err(Failure::Unconfirmed(acked)),
            Err(_) => Err(Failure::Unconfirmed(0)),
        }
    }

    /// Brings this server's epoch in line with what Redis holds (`observed`), starting the
    /// quarantine when the data it knew is gone. Remembers the result in `[state] dir`.
    fn sync_epoch(
        &self,
        conn: &mut redis::Connection,
        observed: Option<String>,
    ) -> Result<(), Failure> {
        self.load_epoch();
        let known = self.epoch.lock().known.clone();
        if observed.is_some() && observed == known {
            return Ok(());
        }
        if let Some(o) = &observed {
            if !valid_epoch(o) {
                return Err(Failure::Refused(
                    "its data epoch key holds something this plugin did not write; is \
                     key_prefix shared with another application?"
                        .into(),
                ));
            }
        }
        let lost = known.is_some();
        let now = crate::clock::now();
        let fresh = new_epoch_id().map_err(Failure::Refused)?;
        let actual: String = self
            .epoch_script
            .key(self.epoch_key())
            .key(self.lost_key())
            .arg(&fresh)
            .arg(if lost { "1" } else { "0" })
            .arg(now)
            .arg(self.ttl())
            .invoke(conn)
            .map_err(Failure::Redis)?;
        if !valid_epoch(&actual) {
            return Err(Failure::Refused(
                "its data epoch key holds something this plugin did not write".into(),
            ));
        }
        if lost {
            error!(
                "redis at {}: the data this server knew is gone ({}; a restart without \
                 persistence, a failover to an empty node, an eviction or a FLUSHALL?); codes \
                 that may have been used before are refused on every server for one window \
                 length (users wait for a later code). Run Redis with appendonly yes and \
                 maxmemory-policy noeviction",
                self.where_,
                if observed.is_none() {
                    "its data epoch is missing"
                } else {
                    "it holds another data epoch"
                }
            );
        } else if actual == fresh {
            info!("redis at {}: started its data epoch", self.where_);
        }
        let mut epoch = self.epoch.lock();
        epoch.known = Some(actual.clone());
        if let Some(file) = &epoch.file {
            if let Err(e) = save_epoch(file, &self.where_, &self.prefix, &actual) {
                warn!(
                    "cannot remember the Redis data epoch in {}: {e}; a Redis that loses its \
                     data while this server is stopped would go unnoticed",
                    file.display()
                );
            }
        }
        Ok(())
    }

    /// Reads the remembered epoch from `[state] dir` once (preparing the directory as the
    /// local store does).
    fn load_epoch(&self) {
        let mut epoch = self.epoch.lock();
        if epoch.loaded {
            return;
        }
        epoch.loaded = true;
        match super::dir::prepare_dir(&self.dir) {
            Ok(()) => {
                let file = self.dir.join(EPOCH_FILE);
                match load_epoch_file(&file, &self.where_, &self.prefix) {
                    Ok(known) => epoch.known = known,
                    Err(e) => warn!(
                        "{}: {e}; treating it as absent (a data loss before this start would \
                         go unnoticed once)",
                        file.display()
                    ),
                }
                epoch.file = Some(file);
            }
            Err(e) => warn!(
                "{e}; without it this server cannot remember the Redis data epoch, so a Redis \
                 that loses its data while this server is stopped goes unnoticed"
            ),
        }
    }

    /// The local fallback's view of a user (for the floor), or nothing.
    fn local_state(&self, username: &str) -> Option<UserState> {
        let local = self.fallback.as_ref()?;
        let mut seen = UserState::default();
        local.update(username, &mut |s| seen = *s).ok()?;
        Some(seen)
    }

    /// Writes what Redis decided through to the local fallback.
    fn write_through(&self, username: &str, state: &UserState) {
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
    fn push_decided_locally(&self, conn: &mut redis::Connection, limits: &Limits) {
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
    fn decide_locally(
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
            let ttl = self
                .ttl()
                .max(u64::try_from(state.locked_until.saturating_sub(now)).unwrap_or(0) + 1);
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

    fn refused(&self, why: &str) -> StateError {
        warn!("redis at {}: {why}", self.where_);
        StateError(format!("redis at {} refused the update", self.where_))
    }
}

/// One run of [`DECIDE_SCRIPT`]: what was found (`kind`, `step`), when, under which limits,
/// and the local store's view merged in (`floor`).
#[derive(Clone, Copy)]
struct Ask<'a> {
    kind: i64,
    step: i64,
    now: i64,
    limits: &'a Limits,
    floor: &'a UserState,
}

/// [`DECIDE_SCRIPT`]'s kind for "merge the floor in, decide nothing".
const KIND_MERGE: i64 = 5;

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
        let (kind, step) = match found {
            Found::Malformed(_) => (0, 0),
            Found::NoMatch => (1, 0),
            Found::Step { step, .. } => (2, *step),
        };
        // Only the local store's used steps count for a decision (its failures and lock are
        // the ones Redis wrote through, or merged in after an outage).
        let floor = self
            .local_state(username)
            .map(|s| UserState {
                last_step: s.last_step,
                last_offset_secs: s.last_offset_secs,
                recent_steps: s.recent_steps,
                ..UserState::default()
            })
            .unwrap_or_default();
        let mut recovered = false;
        let outcome = self.with_connection(|conn| {
            let ask = Ask {
                kind,
                step,
                now,
                limits,
                floor: &floor,
            };
            let decided = self.decide_on_redis(conn, username, &ask)?;
            if decided.0 == 0 && self.min_replicas > 0 {
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
                Ok(match code {
                    0 => match found {
                        Found::Step { step_offset, .. } => Decision::Accepted {
                            step_offset: *step_offset,
                        },
                        _ => return Err(self.refused("the decision script accepted no code")),
                    },
                    1 => Decision::BadCode,
                    2 => Decision::Replay,
                    3 => Decision::Locked {
                        until: state.locked_until,
                    },
                    4 => match found {
                        Found::Malformed(why) => Decision::MalformedPassword(*why),
                        _ => return Err(self.refused("the decision script answered oddly")),
                    },
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

/// A client that asks `config.sentinels` for the master named `master_name`, with the password
/// and CA (if any) for both the sentinels and the master.
fn sentinel_client(
    config: &RedisConfig,
    master_name: &str,
    password: Option<&str>,
    root_cert: Option<Vec<u8>>,
) -> redis::RedisResult<redis::sentinel::SentinelClient> {
    use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
    let mut addrs = Vec::with_capacity(config.sentinels.len());
    for url in &config.sentinels {
        addrs.push(url.as_str().into_connection_info()?.addr);
    }
    let mut builder =
        SentinelClientBuilder::new(addrs, master_name.to_owned(), SentinelServerType::Master)?;
    if let Some(password) = password {
        builder = builder
            .set_client_to_redis_password(password.to_owned())
            .set_client_to_sentinel_password(password.to_owned());
    }
    if config.tls() {
        builder = builder
            .set_client_to_redis_tls_mode(redis::TlsMode::Secure)
            .set_client_to_sentinel_tls_mode(redis::TlsMode::Secure);
        if let Some(pem) = root_cert {
            let certificates = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem),
            };
            builder = builder
                .set_client_to_redis_certificates(certificates.clone())
                .set_client_to_sentinel_certificates(certificates);
        }
    }
    builder.build()
}

fn parse_reply(value: &redis::Value) -> Option<Reply> {
    use redis::Value;
    let Value::Array(items) = value else {
        return None;
    };
    let int = |v: &Value| match v {
        Value::Int(i) => Some(*i),
        _ => None,
    };
    match int(items.first()?)? {
        -1 => Some(Reply::Epoch(None)),
        -2 => match items.get(1)? {
            Value::BulkString(bytes) => {
                Some(Reply::Epoch(Some(String::from_utf8(bytes.clone()).ok()?)))
            }
            _ => None,
        },
        -3 => Some(Reply::Unreadable),
        code if (0..=5).contains(&code) && items.len() == 2 => match &items[1] {
            Value::BulkString(bytes) => Some(Reply::Decided {
                code,
                state: decode(std::str::from_utf8(bytes).ok()?)?,
            }),
            _ => None,
        },
        _ => None,
    }
}

/// 32 lowercase hex digits (what [`new_epoch_id`] makes).
fn valid_epoch(text: &str) -> bool {
    text.len() == 32
        && text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn new_epoch_id() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("cannot read /dev/urandom for a data epoch: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The epoch remembered for this Redis and prefix, if the file says so. The file is in the
/// runtime user's directory and read as that user: its content is checked, never trusted.
fn load_epoch_file(file: &Path, where_: &str, prefix: &str) -> Result<Option<String>, String> {
    let opened = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(file);
    let mut f = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot open it: {e}")),
    };
    let meta = f.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() || meta.size() > 4096 {
        return Err("is not a small regular file".to_owned());
    }
    let mut text = String::new();
    f.read_to_string(&mut text)
        .map_err(|_| "is not text".to_owned())?;
    let lines: Vec<&str> = text.lines().collect();
    match lines.as_slice() {
        [EPOCH_FILE_HEADER, w, p, epoch] if valid_epoch(epoch) => {
            Ok((*w == where_ && *p == prefix).then(|| (*epoch).to_owned()))
        }
        _ => Err("is not in the expected format".to_owned()),
    }
}

/// Writes the file anew (a fresh name, then rename), never through an existing name.
fn save_epoch(file: &Path, where_: &str, prefix: &str, epoch: &str) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = file.with_extension(format!("tmp-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    f.write_all(format!("{EPOCH_FILE_HEADER}\n{where_}\n{prefix}\n{epoch}\n").as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, file)
}

/// The password file's text, wiped on drop; refused when anyone but `trusted` owners could
/// change it, or everyone can read it.
fn read_password_file(path: &Path, trusted: TrustedOwners) -> Result<Zeroizing<String>, String> {
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            format!(
                "cannot read the Redis password_file {}: {e}; it must be readable by OpenVPN's \
                 runtime user",
                path.display()
            )
        })?;
    let meta = f.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err(format!(
            "the Redis password_file {} is not a regular file",
            path.display()
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o004 != 0 {
        return Err(format!(
            "the Redis password_file {} is readable by every user (mode {mode:04o}); run \
             `chmod 0640 {}` and give its group to OpenVPN's runtime group",
            path.display(),
            path.display()
        ));
    }
    if let Err(u) = crate::os::check_trusted_file(path, &meta, trusted) {
        return Err(format!(
            "the Redis password_file: {} {}; fix: `{}`",
            u.path.display(),
            u.problem,
            u.fix
        ));
    }
    let mut text = Zeroizing::new(String::with_capacity(meta.len() as usize + 1));
    f.by_ref()
        .take(64 * 1024)
        .read_to_string(&mut text)
        .map_err(|e| {
            format!(
                "cannot read the Redis password_file {}: {e}",
                path.display()
            )
        })?;
    Ok(text)
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
/// A user's state as a Redis value (what [`DECIDE_SCRIPT`] reads and writes): empty for nothing
/// to remember, `last:failures:locked`, or with the offset of the last step and the recent steps
/// `last:failures:locked:last_offset:recent`.
fn encode(state: &UserState) -> String {
    let (last, last_offset, recent, failures, locked) = state.persisted();
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

fn decode(text: &str) -> Option<UserState> {
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
                ..UserState::default()
            },
            UserState {
                last_step: None,
                failures: 1,
                locked_until: 0,
                ..UserState::default()
            },
            {
                let mut s = UserState::default();
                s.record_accepted(170_000_000, 3600);
                s.record_accepted(169_999_000, -7200);
                s
            },
        ] {
            assert_eq!(decode(&encode(&s)), Some(s));
        }
        assert_eq!(encode(&UserState::default()), "");
        // Written by an older version: no offset, no recent steps.
        assert_eq!(
            decode("170000000:0:0"),
            Some(UserState {
                last_step: Some(170_000_000),
                ..UserState::default()
            })
        );
        for bad in [
            "x",
            "1:2",
            "1:2:3:4",
            "a:1:1",
            "1:-1:0",
            "1:0:0:x:1",
            "1:0:0:0:1,,2",
            ":0:0:0:1",
            "1:0:0:0:1,2,3,4,5,6,7,8,9",
            "+1:0:0",
        ] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_epoch_file_is_checked_not_trusted() {
        let dir = std::env::temp_dir().join(format!("motp-epoch-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join(EPOCH_FILE);
        let epoch = "0123456789abcdef0123456789abcdef";
        assert_eq!(load_epoch_file(&file, "redis://h", "motp:"), Ok(None));
        save_epoch(&file, "redis://h", "motp:", epoch).unwrap();
        assert_eq!(
            load_epoch_file(&file, "redis://h", "motp:"),
            Ok(Some(epoch.to_owned()))
        );
        // Another Redis or prefix: nothing remembered for this one.
        assert_eq!(load_epoch_file(&file, "redis://other", "motp:"), Ok(None));
        fs::write(&file, "garbage\n").unwrap();
        assert!(load_epoch_file(&file, "redis://h", "motp:").is_err());
        fs::remove_file(&file).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", &file).unwrap();
        assert!(load_epoch_file(&file, "redis://h", "motp:").is_err());
        // Saving replaces the link, never writes through it.
        save_epoch(&file, "redis://h", "motp:", epoch).unwrap();
        assert!(fs::symlink_metadata(&file).unwrap().is_file());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn epochs_are_32_lowercase_hex_digits() {
        let id = new_epoch_id().unwrap();
        assert!(valid_epoch(&id), "{id}");
        assert!(!valid_epoch("0123456789ABCDEF0123456789abcdef"));
        assert!(!valid_epoch("short"));
    }
}
