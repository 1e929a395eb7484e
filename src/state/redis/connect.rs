//! Connections to Redis: the client (password file, CA, Sentinel), the pool, the retry on a
//! stale connection, outages and their backoff, and the `WAIT` for `min_replicas`.
//!
//! **Outages.** Connect, read and write are bounded by `timeout_ms`. A command that fails with
//! an I/O error on a pooled connection (stale after a Redis restart) is retried once at once on
//! a fresh connection (safe: the script is atomic, a retry can refuse but never accept twice).
//! Then an outage: one error logged, reconnects with backoff (250 ms doubling to 5 s), logins
//! fail closed ([`StateError`]; the client hears `TEMP[backoff N]`) or, with
//! `fallback = "local"`, the local store decides.
//!
//! [`StateError`]: crate::state::StateError

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::IntoConnectionInfo;
use tracing::{error, info};
use zeroize::Zeroizing;

use super::{Failure, RedisStore};
use crate::config::{RedisConfig, TrustedOwners};

pub(super) const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Connections kept for reuse (the worker and the synchronous path need one each).
const POOL_MAX: usize = 4;

pub(super) struct Health {
    pub(super) down: bool,
    pub(super) next_attempt: Instant,
    pub(super) backoff: Duration,
}

/// Where connections go: one Redis, or the master Redis Sentinel names at each connection.
pub(super) enum Target {
    Direct(redis::Client),
    /// Asked again at every new connection, so a failover is followed by the next reconnect
    /// (a command refused by a demoted master is an outage, which drops the pooled
    /// connections).
    Sentinel(Mutex<redis::sentinel::SentinelClient>),
}

impl Target {
    /// The client for `config`: reads `password_file` (see [`RedisStore::open`]) and `ca_file`
    /// now.
    pub(super) fn open(
        config: &RedisConfig,
        where_: &str,
        trusted: TrustedOwners,
    ) -> Result<Target, String> {
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
        Ok(match &config.master_name {
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
        })
    }
}

impl RedisStore {
    /// A connection, and whether it came from the pool (and so may be stale).
    pub(super) fn connection(&self) -> redis::RedisResult<(redis::Connection, bool)> {
        if let Some(conn) = self.pool.lock().pop() {
            return Ok((conn, true));
        }
        self.fresh_connection().map(|conn| (conn, false))
    }

    /// `Err` once the plugin is closing: the caller gives up without counting an outage.
    pub(super) fn not_closing(&self) -> Result<(), Failure> {
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

    pub(super) fn give_back(&self, conn: redis::Connection) {
        let mut pool = self.pool.lock();
        if pool.len() < POOL_MAX {
            pool.push(conn);
        }
    }

    pub(super) fn mark_down(&self, e: &redis::RedisError) {
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
    pub(super) fn mark_up(&self) -> bool {
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
    pub(super) fn may_try(&self) -> bool {
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
    pub(super) fn with_connection<T>(
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

    /// Waits until `min_replicas` replicas hold what was just written (`WAIT`, bounded by
    /// `timeout_ms`); fewer: the acceptance is not confirmed (the login is refused, its step
    /// stays used), so a failover cannot lose an acceptance the plugin confirmed.
    /// Any error here comes after the decision was stored: it is reported as unconfirmed, never
    /// retried (a retry would run the decision again and call the used step a replay).
    pub(super) fn confirm_on_replicas(&self, conn: &mut redis::Connection) -> Result<(), Failure> {
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
pub(super) fn is_outage(e: &redis::RedisError) -> bool {
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
pub(super) fn describe_error(e: &redis::RedisError) -> String {
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
