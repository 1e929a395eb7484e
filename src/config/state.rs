//! `[state]`: where replay and lockout state lives (the local SQLite store, memory, or Redis),
//! and the validation of its keys. A Redis URL may carry a password: it is wiped on drop,
//! never printed by `Debug`, and never echoed in a refusal.

use std::fmt;
use std::path::PathBuf;

use toml::Spanned;
use zeroize::Zeroizing;

use super::diagnostics::{printable, Checker};
use super::raw::{RawState, SecretText};
use super::ConfigError;

pub const DEFAULT_STATE_DIR: &str = "/var/lib/openvpn-motp";

/// Where replay and lockout state lives (`[state]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateConfig {
    /// `backend = "local"` (the default): an SQLite database in `dir`, shared by every OpenVPN
    /// process on this host that names the same directory, kept across SIGHUP and restarts.
    Local { dir: PathBuf },
    /// In this process only: lost when OpenVPN reloads the plugin (SIGHUP).
    Memory,
    /// `backend = "redis"`: one Redis (or Valkey) shared by several OpenVPN servers, so a code
    /// accepted on one is refused on the others and a lock holds on all of them.
    Redis(RedisConfig),
}

pub const DEFAULT_REDIS_KEY_PREFIX: &str = "motp:";
pub const DEFAULT_REDIS_TIMEOUT_MS: u64 = 500;
/// A decision must come well within OpenVPN's `hand-window` (60 s by default).
pub const MAX_REDIS_TIMEOUT_MS: u64 = 10_000;

/// `[state] backend = "redis"`. The URL may carry a password, so it is wiped on drop and never
/// printed by `Debug`; [`RedisConfig::describe`] gives a printable form without credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://` or `rediss://` (TLS) URL, checked to parse at load time. Empty when the
    /// master is found through `sentinels`.
    pub url: Zeroizing<String>,
    /// Redis Sentinel: the sentinels' URLs (all `redis://` or all `rediss://`), asked for the
    /// current master of `master_name` at every new connection. Empty with `url`.
    pub sentinels: Vec<Zeroizing<String>>,
    pub master_name: Option<String>,
    /// An acceptance is confirmed only after `WAIT` reports this many replicas within
    /// `timeout_ms` (0: no wait).
    pub min_replicas: u32,
    /// A file holding the password (first line), read when the store is opened.
    pub password_file: Option<PathBuf>,
    /// `rediss://` only: the PEM file of the CA that signed the server's certificate, trusted
    /// instead of the system's CAs (a private CA, as most Redis TLS setups use). Read when the
    /// store is opened.
    pub ca_file: Option<PathBuf>,
    pub key_prefix: String,
    pub timeout_ms: u64,
    /// `[state] dir` (default `/var/lib/openvpn-motp`): where this server remembers the Redis
    /// data epoch it last saw (to notice a Redis that lost its data), and the fallback store.
    pub dir: PathBuf,
    /// `fallback = "local"`: the SQLite store in `dir` decides while Redis is down.
    /// `None` (`fallback = "none"`, the default): logins fail closed during an outage.
    pub fallback_dir: Option<PathBuf>,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.describe())
            .field("min_replicas", &self.min_replicas)
            .field("password_file", &self.password_file)
            .field("ca_file", &self.ca_file)
            .field("key_prefix", &self.key_prefix)
            .field("timeout_ms", &self.timeout_ms)
            .field("dir", &self.dir)
            .field("fallback_dir", &self.fallback_dir)
            .finish()
    }
}

impl RedisConfig {
    /// `scheme://host:port/db`, without user name or password, for log lines.
    pub fn describe(&self) -> String {
        match &self.master_name {
            Some(name) => format!(
                "master {} via sentinels {}",
                printable(name),
                self.sentinels
                    .iter()
                    .map(|s| describe_url(s))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            None => describe_url(&self.url),
        }
    }

    /// Whether connections use TLS (`rediss://`).
    pub fn tls(&self) -> bool {
        match self.sentinels.first() {
            Some(first) => first.starts_with("rediss://"),
            None => self.url.starts_with("rediss://"),
        }
    }
}

/// `scheme://host:port/db` of one URL, without user name or password.
fn describe_url(url: &str) -> String {
    use redis::IntoConnectionInfo;
    let tls = url.starts_with("rediss://");
    match url.into_connection_info() {
        Ok(info) => {
            let addr = match &info.addr {
                redis::ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
                redis::ConnectionAddr::TcpTls { host, port, .. } => format!("{host}:{port}"),
                redis::ConnectionAddr::Unix(path) => path.display().to_string(),
            };
            let scheme = if tls { "rediss" } else { "redis" };
            printable(&format!("{scheme}://{addr}/{}", info.redis.db))
        }
        Err(_) => "(unparsable URL)".to_owned(),
    }
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig::Local {
            dir: PathBuf::from(DEFAULT_STATE_DIR),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Backend {
    Local,
    Memory,
    Redis,
}

impl RawState {
    pub(super) fn validate(self, check: &Checker) -> Result<StateConfig, ConfigError> {
        let backend = match &self.backend {
            None => Backend::Local,
            Some(b) => match b.get_ref().as_str() {
                "local" => Backend::Local,
                "memory" => Backend::Memory,
                "redis" => Backend::Redis,
                other => {
                    return Err(check.error(
                        b.span().start,
                        "state.backend",
                        format!(
                            "unknown backend \"{}\"; this version supports \"local\" (the \
                             default), \"memory\" and \"redis\"",
                            printable(other)
                        ),
                    ))
                }
            },
        };
        if backend != Backend::Redis {
            let stray = [
                ("state.url", self.url.as_ref().map(|v| v.span().start)),
                (
                    "state.sentinels",
                    self.sentinels.as_ref().map(|v| v.span().start),
                ),
                (
                    "state.master_name",
                    self.master_name.as_ref().map(|v| v.span().start),
                ),
                (
                    "state.min_replicas",
                    self.min_replicas.as_ref().map(|v| v.span().start),
                ),
                (
                    "state.password_file",
                    self.password_file.as_ref().map(|v| v.span().start),
                ),
                (
                    "state.ca_file",
                    self.ca_file.as_ref().map(|v| v.span().start),
                ),
                (
                    "state.key_prefix",
                    self.key_prefix.as_ref().map(|v| v.span().start),
                ),
                (
                    "state.timeout_ms",
                    self.timeout_ms.as_ref().map(|v| v.span().start),
                ),
                (
                    "state.fallback",
                    self.fallback.as_ref().map(|v| v.span().start),
                ),
            ];
            if let Some((key, Some(at))) = stray.into_iter().find(|(_, at)| at.is_some()) {
                return Err(check.error(
                    at,
                    key,
                    "only applies to backend = \"redis\"; remove it, or set backend = \"redis\"",
                ));
            }
        }
        match backend {
            Backend::Memory => match self.dir {
                Some(dir) => Err(check.error(
                    dir.span().start,
                    "state.dir",
                    "only applies to backend = \"local\" or \"redis\"; remove it, or remove \
                     backend = \"memory\"",
                )),
                None => Ok(StateConfig::Memory),
            },
            Backend::Local => Ok(StateConfig::Local {
                dir: validate_dir(check, self.dir)?,
            }),
            Backend::Redis => validate_redis(check, self),
        }
    }
}

fn validate_dir(check: &Checker, dir: Option<Spanned<String>>) -> Result<PathBuf, ConfigError> {
    let Some(dir) = dir else {
        return Ok(PathBuf::from(DEFAULT_STATE_DIR));
    };
    let at = dir.span().start;
    let dir = dir.into_inner();
    if dir.chars().any(char::is_control) || !dir.starts_with('/') || dir.trim() == "/" {
        return Err(check.error(
            at,
            "state.dir",
            format!(
                "must be an absolute path to a directory without control characters, e.g. \
                 \"{DEFAULT_STATE_DIR}\" (OpenVPN may change its working directory)"
            ),
        ));
    }
    Ok(PathBuf::from(dir))
}

/// One Redis URL, checked to parse; never echoed (it may carry a password).
fn validate_url(
    check: &Checker,
    url: Spanned<SecretText>,
    key: &str,
) -> Result<Zeroizing<String>, ConfigError> {
    use redis::IntoConnectionInfo;
    let url_at = url.span().start;
    let url = url.into_inner().0;
    let scheme_ok = url.starts_with("redis://") || url.starts_with("rediss://");
    if !scheme_ok || url.chars().any(char::is_control) {
        return Err(check.error(
            url_at,
            key,
            "must start with redis:// or rediss:// (TLS), e.g. \"redis://127.0.0.1:6379/0\"",
        ));
    }
    if url.as_str().into_connection_info().is_err() {
        return Err(check.error(
            url_at,
            key,
            "is not a valid Redis URL; the form is redis://[user@]host[:port][/db] or \
             rediss://... (put the password in password_file)",
        ));
    }
    Ok(url)
}

fn validate_redis(check: &Checker, raw: RawState) -> Result<StateConfig, ConfigError> {
    let backend_at = raw.backend.as_ref().map_or(0, |b| b.span().start);
    let (url, sentinels, master_name) = match (raw.url, raw.sentinels, raw.master_name) {
        (Some(url), None, None) => (validate_url(check, url, "state.url")?, Vec::new(), None),
        (None, Some(list), Some(name)) => {
            let list_at = list.span().start;
            let list = list.into_inner();
            if list.is_empty() || list.len() > 16 {
                return Err(check.error(
                    list_at,
                    "state.sentinels",
                    "must list 1 to 16 sentinel URLs, e.g. [\"redis://10.0.0.1:26379\", \
                     \"redis://10.0.0.2:26379\", \"redis://10.0.0.3:26379\"]",
                ));
            }
            let mut urls = Vec::with_capacity(list.len());
            for text in list {
                urls.push(validate_url(
                    check,
                    Spanned::new(list_at..list_at, text),
                    "state.sentinels",
                )?);
            }
            let tls = urls[0].starts_with("rediss://");
            if urls.iter().any(|u| u.starts_with("rediss://") != tls) {
                return Err(check.error(
                    list_at,
                    "state.sentinels",
                    "mixes redis:// and rediss://; use TLS for all sentinels or for none",
                ));
            }
            let at = name.span().start;
            let name = name.into_inner();
            if name.is_empty()
                || name.len() > 64
                || name.chars().any(|c| c.is_control() || c == ' ')
            {
                return Err(check.error(
                    at,
                    "state.master_name",
                    "must be the name the sentinels monitor the master under (1 to 64 \
                     characters, no spaces), e.g. \"mymaster\"",
                ));
            }
            (Zeroizing::new(String::new()), urls, Some(name))
        }
        (Some(url), Some(_), _) => {
            return Err(check.error(
                url.span().start,
                "state.url",
                "and `sentinels` both name where Redis is; keep `url` for one Redis, or \
                 `sentinels` with `master_name` for Redis Sentinel",
            ))
        }
        (None, Some(list), None) => {
            return Err(check.error(
                list.span().start,
                "state.sentinels",
                "needs `master_name`, the name the sentinels monitor the master under",
            ))
        }
        (_, None, Some(name)) => {
            return Err(check.error(
                name.span().start,
                "state.master_name",
                "only applies with `sentinels`; remove it, or list the sentinels",
            ))
        }
        (None, None, None) => {
            return Err(check.error(
                backend_at,
                "state.url",
                "backend = \"redis\" needs `url`, e.g. url = \"redis://127.0.0.1:6379/0\" (or \
                 rediss:// for TLS), or `sentinels` and `master_name` for Redis Sentinel",
            ))
        }
    };
    let tls = match sentinels.first() {
        Some(first) => first.starts_with("rediss://"),
        None => url.starts_with("rediss://"),
    };
    let min_replicas = check.in_range(raw.min_replicas, "state.min_replicas", 0..=16, 0, |_| {
        "must be 0 (no wait) to 16 replicas".to_owned()
    })?;
    let password_file = match raw.password_file {
        None => None,
        Some(p) => {
            let at = p.span().start;
            let p = p.into_inner();
            if p.chars().any(char::is_control) || !p.starts_with('/') {
                return Err(check.error(
                    at,
                    "state.password_file",
                    "must be an absolute path to a file holding the Redis password",
                ));
            }
            Some(PathBuf::from(p))
        }
    };
    let ca_file = match raw.ca_file {
        None => None,
        Some(p) => {
            let at = p.span().start;
            let p = p.into_inner();
            if !tls {
                return Err(check.error(
                    at,
                    "state.ca_file",
                    "only applies to a TLS url (rediss://...); remove it, or use rediss://",
                ));
            }
            if p.chars().any(char::is_control) || !p.starts_with('/') {
                return Err(check.error(
                    at,
                    "state.ca_file",
                    "must be an absolute path to the PEM file of the CA that signed the Redis \
                     server's certificate",
                ));
            }
            Some(PathBuf::from(p))
        }
    };
    let key_prefix = match raw.key_prefix {
        None => DEFAULT_REDIS_KEY_PREFIX.to_owned(),
        Some(k) => {
            let at = k.span().start;
            let k = k.into_inner();
            if k.is_empty() || k.len() > 64 || k.chars().any(|c| c.is_control() || c == ' ') {
                return Err(check.error(
                    at,
                    "state.key_prefix",
                    "must be 1 to 64 characters without spaces or control characters, e.g. \
                     \"motp:\"",
                ));
            }
            k
        }
    };
    let timeout_ms = check.in_range(
        raw.timeout_ms,
        "state.timeout_ms",
        1..=MAX_REDIS_TIMEOUT_MS,
        DEFAULT_REDIS_TIMEOUT_MS,
        |_| {
            format!(
                "must be 1 to {MAX_REDIS_TIMEOUT_MS} milliseconds (a decision must come well \
                 within OpenVPN's hand-window)"
            )
        },
    )?;
    let fallback_local = match &raw.fallback {
        None => false,
        Some(f) => match f.get_ref().as_str() {
            "none" => false,
            "local" => true,
            other => {
                return Err(check.error(
                    f.span().start,
                    "state.fallback",
                    format!(
                        "unknown fallback \"{}\"; use \"none\" (the default: fail closed while \
                         Redis is down) or \"local\"",
                        printable(other)
                    ),
                ))
            }
        },
    };
    let dir = validate_dir(check, raw.dir)?;
    let fallback_dir = fallback_local.then(|| dir.clone());
    Ok(StateConfig::Redis(RedisConfig {
        url,
        sentinels,
        master_name,
        min_replicas,
        password_file,
        ca_file,
        key_prefix,
        timeout_ms,
        dir,
        fallback_dir,
    }))
}
