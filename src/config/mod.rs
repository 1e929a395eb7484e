//! `motp.toml`: reading, validating and turning it into the user table and policy.
//!
//! Every refusal names the file, the line and the key, and says what to do. No message ever
//! contains a secret or a PIN: those two fields are read through [`SecretText`], whose errors
//! never echo the value, and TOML syntax errors are reported without the source snippet.
//!
//! Files of the usual shape are read by a fast path (`config/fast.rs`) that never refuses anything
//! itself: whatever it does not accept, `toml` reads and words the refusal, as it always did.

use std::fmt;
use std::fs;
use std::hash::{BuildHasher, RandomState};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use toml::Spanned;
use zeroize::Zeroizing;

mod fast;

pub use crate::os::TrustedOwners;

pub const DEFAULT_CONFIG_PATH: &str = "/etc/openvpn/motp.toml";

/// A config larger than this is not a hand-written user table; refuse before parsing it.
pub const MAX_CONFIG_BYTES: u64 = 256 * 1024 * 1024;
pub const MAX_WINDOW_SECS: u32 = 3600;
pub const MAX_LOCKOUT_SECS: u64 = 30 * 24 * 3600;
pub const MAX_OFFSET_SECS: i64 = 24 * 3600;
/// OpenVPN's `USER_PASS_LEN` without PKCS#11: no username OpenVPN passes is longer.
pub const MAX_USERNAME_LEN: usize = 128;
pub const MAX_PIN_LEN: usize = 64;

/// How the plugin decides; global keys of motp.toml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub window_secs: u32,
    pub max_failures: u32,
    pub lockout_secs: u64,
    pub require_common_name: bool,
    /// Failed logins from one source address, across all usernames, that lock the address
    /// (0: no per-address limit).
    pub max_failures_per_ip: u32,
    pub ip_lockout_secs: u64,
    /// Leading bits of a client address that count as one source (32 and 64 by default).
    pub ip_prefix_v4: u8,
    pub ip_prefix_v6: u8,
}

impl Policy {
    /// Steps searched each side of the expected one (180 s → 18, i.e. 37 codes in all).
    pub fn window_steps(&self) -> i64 {
        i64::from(self.window_secs) / crate::engine::STEP_SECS
    }

    /// How long a store that expires entries (Redis) keeps a user's entry at least: the
    /// acceptance span (a used step is outside every window after twice the window plus a
    /// step, with margin), and the lockout while failures count.
    pub fn retention_secs(&self) -> u64 {
        let span = 2 * u64::from(self.window_secs) + 2 * crate::engine::STEP_SECS as u64 + 30;
        span.max(self.lockout_secs)
    }

    pub fn ip_policy(&self) -> crate::ip_limit::IpPolicy {
        crate::ip_limit::IpPolicy {
            max_failures: self.max_failures_per_ip,
            lockout_secs: self.ip_lockout_secs,
            prefix_v4: self.ip_prefix_v4,
            prefix_v6: self.ip_prefix_v6,
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            window_secs: 180,
            max_failures: 5,
            lockout_secs: 300,
            require_common_name: true,
            max_failures_per_ip: 20,
            ip_lockout_secs: 600,
            ip_prefix_v4: crate::ip_limit::DEFAULT_PREFIX_V4,
            ip_prefix_v6: crate::ip_limit::DEFAULT_PREFIX_V6,
        }
    }
}

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

/// One user's entry, borrowed from the [`UserTable`]. `key` is `secret ‖ pin`, the bytes that
/// follow the step in the hash.
#[derive(Clone, Copy)]
pub struct User<'a> {
    pub key: &'a [u8],
    pub offset_secs: i64,
    pub common_name: Option<&'a str>,
    pub disabled: bool,
}

impl fmt::Debug for User<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("key", &"<redacted>")
            .field("offset_secs", &self.offset_secs)
            .field("common_name", &self.common_name)
            .field("disabled", &self.disabled)
            .finish()
    }
}

impl<'a> User<'a> {
    /// The certificate CN this user must present: `common_name`, or the username itself.
    pub fn expected_common_name<'n>(&self, username: &'n str) -> &'n str
    where
        'a: 'n,
    {
        self.common_name.unwrap_or(username)
    }
}

/// Where one user's bytes are in [`UserTable::text`]: name, then `secret ‖ pin`, then the
/// common name. 16 bytes, where a `HashMap` entry with three boxed strings cost ~160 live bytes
/// in scattered small blocks that kept ~1,350 resident bytes per user pinned (issue 7).
#[derive(Clone, Copy)]
struct Entry {
    start: u32,
    cn_len: u32,
    offset_secs: i32,
    name_len: u8,
    key_len: u8,
    has_cn: bool,
    disabled: bool,
}

/// Slot value of an empty index slot.
const EMPTY: u32 = u32::MAX;

/// The users, in file order, in three allocations whatever their number.
pub struct UserTable {
    /// Every name, key and common name back to back. Wiped on drop: it holds every secret and
    /// PIN. A `String` so that names and common names slice out as `&str` without `unsafe`
    /// (secrets are hex and PINs printable, so the keys are UTF-8 too).
    text: Zeroizing<String>,
    entries: Vec<Entry>,
    /// Open addressing with linear probing over `entries`, at most half full so a probe for an
    /// unknown name ends after ~2.5 slots. Keyed with a per-table random SipHash key: lookups
    /// are by attacker-chosen usernames, which must not be able to aim at long probe chains.
    slots: Box<[u32]>,
    hasher: RandomState,
    /// The longest `secret ‖ pin` of the table: every code search is made to cost what this
    /// key costs, so timing does not tell a long key's user, a short key's and no user apart.
    longest_key: usize,
}

impl Default for UserTable {
    fn default() -> Self {
        UserTable {
            text: Zeroizing::new(String::new()),
            entries: Vec::new(),
            slots: Box::new([]),
            hasher: RandomState::new(),
            longest_key: 0,
        }
    }
}

impl fmt::Debug for UserTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|e| (self.name(e), self.user(e))))
            .finish()
    }
}

impl UserTable {
    pub fn get(&self, username: &str) -> Option<User<'_>> {
        let index = self.find(username)?;
        Some(self.user(&self.entries[index as usize]))
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// The length of the longest `secret ‖ pin` in the table (0 when empty).
    pub fn longest_key(&self) -> usize {
        self.longest_key
    }
    /// The usernames, in the order of the file.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| self.name(e))
    }

    fn name(&self, e: &Entry) -> &str {
        let start = e.start as usize;
        &self.text[start..start + usize::from(e.name_len)]
    }

    fn user(&self, e: &Entry) -> User<'_> {
        let key_start = e.start as usize + usize::from(e.name_len);
        let cn_start = key_start + usize::from(e.key_len);
        User {
            key: &self.text.as_bytes()[key_start..cn_start],
            offset_secs: i64::from(e.offset_secs),
            common_name: e
                .has_cn
                .then(|| &self.text[cn_start..cn_start + e.cn_len as usize]),
            disabled: e.disabled,
        }
    }

    /// The entry index of `name`, by the index.
    fn find(&self, name: &str) -> Option<u32> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.hasher.hash_one(name) as usize & mask;
        loop {
            let slot = self.slots[i];
            if slot == EMPTY {
                return None;
            }
            if self.name(&self.entries[slot as usize]) == name {
                return Some(slot);
            }
            i = (i + 1) & mask;
        }
    }
}

/// One user's fields as read from the file, borrowed (from the config text on the fast path,
/// from the parser's wiped strings on the `toml` path), each with its byte offset for messages.
struct UserFields<'a> {
    secret: (&'a str, usize),
    pin: (&'a str, usize),
    offset_secs: Option<(i64, usize)>,
    common_name: Option<(&'a str, usize)>,
    disabled: bool,
}

/// A refusal found while reading the users, before the path and text are at hand to make a
/// [`ConfigError`] of it.
struct Refusal {
    at: usize,
    key: String,
    message: String,
}

/// Builds a [`UserTable`] one validated user at a time, so no intermediate map of every user's
/// strings exists.
#[derive(Default)]
struct TableBuilder {
    table: UserTable,
}

impl TableBuilder {
    fn add(&mut self, name: &str, name_at: usize, user: UserFields<'_>) -> Result<(), Refusal> {
        let shown = printable(name);
        if name.is_empty() || name.len() > MAX_USERNAME_LEN || name.chars().any(char::is_control) {
            return Err(Refusal {
                at: name_at,
                key: format!("users.{shown}"),
                message: format!(
                    "a username must be 1 to {MAX_USERNAME_LEN} bytes without control characters"
                ),
            });
        }
        let refuse = |at: usize, field: &str, message: String| Refusal {
            at,
            key: format!("users.{shown}.{field}"),
            message,
        };

        let (secret, secret_at) = user.secret;
        let all_hex = secret.bytes().all(|b| b.is_ascii_hexdigit());
        if !(16..=32).contains(&secret.len()) || !all_hex {
            return Err(refuse(
                secret_at,
                "secret",
                format!(
                    "must be 16 to 32 hex characters (0-9, a-f) as the phone app shows it; \
                     this one has {} characters{}",
                    secret.chars().count(),
                    if all_hex { "" } else { ", some not hex" }
                ),
            ));
        }
        let (pin, pin_at) = user.pin;
        if pin.is_empty()
            || pin.len() > MAX_PIN_LEN
            || pin.chars().any(|c| c.is_control() || c.is_whitespace())
        {
            return Err(refuse(
                pin_at,
                "pin",
                format!("must be 1 to {MAX_PIN_LEN} printable characters without spaces (usually 4 digits)"),
            ));
        }
        let offset_secs = match user.offset_secs {
            Some((o, at)) if o.unsigned_abs() > MAX_OFFSET_SECS as u64 => {
                return Err(refuse(
                    at,
                    "offset_secs",
                    format!("must be within ±{MAX_OFFSET_SECS} seconds (one day); is the phone's clock set?"),
                ))
            }
            Some((o, _)) => o,
            None => 0,
        };
        let common_name = match user.common_name {
            Some((cn, at)) if cn.is_empty() || cn.chars().any(char::is_control) => {
                return Err(refuse(
                    at,
                    "common_name",
                    "must be the certificate's CN: non-empty, no control characters".to_owned(),
                ))
            }
            Some((cn, _)) => Some(cn),
            None => None,
        };

        let cn = common_name.unwrap_or("");
        let text = &mut self.table.text;
        let start = text.len();
        let needed = name.len() + secret.len() + pin.len() + cn.len();
        let (Ok(start32), Ok(cn_len), Ok(offset32), Ok(_)) = (
            u32::try_from(start),
            u32::try_from(cn.len()),
            i32::try_from(offset_secs),
            // Offsets into `text` are u32, and EMPTY must never be an entry's index.
            u32::try_from(start + needed).map(|end| end < EMPTY),
        ) else {
            return Err(Refusal {
                at: name_at,
                key: format!("users.{shown}"),
                message: "the user table is over 4 GiB; is this the right file?".to_owned(),
            });
        };
        if text.capacity() - start < needed {
            // Grown by hand: `String`'s own growth would free the old buffer unwiped.
            let capacity = (text.capacity() * 2).max(start + needed).max(4096);
            let mut bigger = Zeroizing::new(String::with_capacity(capacity));
            bigger.push_str(text);
            *text = bigger;
        }
        text.push_str(name);
        text.push_str(secret);
        text.push_str(pin);
        text.push_str(cn);
        self.table.longest_key = self.table.longest_key.max(secret.len() + pin.len());
        self.table.entries.push(Entry {
            start: start32,
            cn_len,
            offset_secs: offset32,
            // Both bounded above by the checks: name ≤ 128, secret ≤ 32 and PIN ≤ 64 bytes.
            name_len: name.len() as u8,
            key_len: (secret.len() + pin.len()) as u8,
            has_cn: common_name.is_some(),
            disabled: user.disabled,
        });
        Ok(())
    }

    /// The finished table, or the index of an entry whose name is taken by an earlier one.
    fn finish(self) -> Result<UserTable, usize> {
        let mut table = self.table;
        if table.text.capacity() > table.text.len() + table.text.len() / 64 {
            // A copy of exactly the size needed; the larger buffer is wiped as it drops.
            table.text = Zeroizing::new(String::from(table.text.as_str()));
        }
        table.entries.shrink_to_fit();
        let slots = (table.entries.len() * 2).next_power_of_two().max(8);
        let mut index = vec![EMPTY; slots].into_boxed_slice();
        let mask = slots - 1;
        for (n, entry) in table.entries.iter().enumerate() {
            let name = table.name(entry);
            let mut i = table.hasher.hash_one(name) as usize & mask;
            while index[i] != EMPTY {
                if table.name(&table.entries[index[i] as usize]) == name {
                    return Err(n);
                }
                i = (i + 1) & mask;
            }
            // n < EMPTY: `add` keeps every entry's start, hence the entry count, below it.
            index[i] = n as u32;
        }
        table.slots = index;
        Ok(table)
    }
}

#[derive(Debug)]
pub struct Config {
    pub path: PathBuf,
    pub policy: Policy,
    pub state: StateConfig,
    /// `crtext_prompt = true`: clients that announce `IV_SSO=crtext` and send no code are asked
    /// for it (OpenVPN 2.6 pending auth, `CR_TEXT`). Only read when the plugin is opened.
    pub crtext_prompt: bool,
    pub users: UserTable,
}

/// A config that cannot be used. `Display` gives the one line the admin needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, " line {line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ", key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and validates the file, refusing it if it is readable or writable by everyone, or
    /// if anyone but root or this process's user could change it (see [`Config::load_trusting`]).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_trusting(path, TrustedOwners::root_and(crate::os::effective_uid()))
    }

    /// Reads and validates the file, refusing it unless only `trusted` owners can change it:
    /// the file and every directory above it owned by one of them and writable by no one else.
    /// The plugin passes root and the user OpenVPN started as, so that once OpenVPN has
    /// dropped privileges the runtime user cannot edit the user table it is checked against.
    pub fn load_trusting(path: &Path, trusted: TrustedOwners) -> Result<Config, ConfigError> {
        let text = read_protected(path, trusted)?;
        Config::parse(path, &text)
    }

    /// Validates config text; `path` is only used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        match fast::parse(path, text) {
            Some(config) => Ok(config),
            None => Config::parse_toml(path, text),
        }
    }

    /// [`Config::parse`] without the fast path: the `toml` crate reads the whole file. For
    /// tests and benches that compare the two.
    #[doc(hidden)]
    pub fn parse_toml(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start);
            ConfigError {
                path: path.to_owned(),
                line: offset.map(|o| line_of(text, o)),
                key: offset
                    .and_then(|o| key_at(text, o))
                    .map(|k| one_line(&k, MAX_USERNAME_LEN)),
                message: format!("{}{}", safe_parser_message(e.message()), HINT_SYNTAX),
            }
        })?;
        raw.validate(path, text)
    }
}

const HINT_SYNTAX: &str = " (see conf/motp.toml or motp.toml(5) for the expected format)";

/// The parser's message, fit for a log line: on one line, and without the offending value.
/// Serde's type errors quote the value they met (`invalid type: string "0123…", expected …`),
/// and any value in motp.toml may be a secret or a PIN written in the wrong place, so the
/// "what was found" part is dropped and only "what was expected" is kept.
fn safe_parser_message(message: &str) -> String {
    let message = one_line(message.trim_end(), 512);
    for prefix in ["invalid type: ", "invalid value: ", "invalid length "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let expected = rest
                .rfind(", expected ")
                .map(|i| &rest[i + 2..])
                .unwrap_or("");
            let what = prefix.trim_end_matches([':', ' ']);
            return if expected.is_empty() {
                what.to_owned()
            } else {
                format!("{what}, {expected}")
            };
        }
    }
    message
}

/// `text` with line breaks turned into "; " and other control characters into '?', cut to
/// `max` characters.
fn one_line(text: &str, max: usize) -> String {
    text.split(['\n', '\r'])
        .filter(|part| !part.trim().is_empty())
        .collect::<Vec<_>>()
        .join("; ")
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(max)
        .collect()
}

/// The file's text, wiped when dropped: it holds every secret and PIN.
fn read_protected(path: &Path, trusted: TrustedOwners) -> Result<Zeroizing<String>, ConfigError> {
    let fail = |message: String| ConfigError {
        path: path.to_owned(),
        line: None,
        key: None,
        message,
    };
    // Non-blocking, so that a FIFO or a device in its place cannot hold the caller (OpenVPN's
    // thread at start and SIGHUP, the watcher at close) in `open`; regular files ignore the
    // flag. Nothing is read before `fstat` has said it is a regular file.
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| {
            fail(format!(
                "cannot open the config: {e}; check the path given on the `plugin` line"
            ))
        })?;
    let meta = file
        .metadata()
        .map_err(|e| fail(format!("cannot stat the config: {e}")))?;
    if !meta.is_file() {
        return Err(fail(
            "is not a regular file (a FIFO, device or directory?); give the path of the \
             motp.toml file itself"
                .into(),
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o006 != 0 {
        return Err(fail(format!(
            "is readable or writable by every user (mode {mode:04o}) but holds secrets and PINs; \
             run `chmod 0640 {}` and give its group to OpenVPN's runtime group",
            path.display()
        )));
    }
    if let Err(untrusted) = crate::os::check_trusted_file(path, &meta, trusted) {
        let at = if untrusted.path == path {
            String::new()
        } else {
            format!("{} ", untrusted.path.display())
        };
        return Err(fail(format!(
            "{at}{}; motp.toml decides who may log in, so only root (or the user OpenVPN \
             starts as) may be able to change it. Fix: run `{}` as root",
            untrusted.problem, untrusted.fix
        )));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(fail(format!(
            "is larger than {MAX_CONFIG_BYTES} bytes; is this the right file?"
        )));
    }
    // Sized up front so reading never reallocates (a reallocation would free an unwiped copy).
    let mut text = Zeroizing::new(String::with_capacity(meta.len() as usize + 1));
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| {
            fail(format!(
                "cannot read the config: {e} (it must be UTF-8 text)"
            ))
        })?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(fail(format!(
            "is larger than {MAX_CONFIG_BYTES} bytes; is this the right file?"
        )));
    }
    Ok(text)
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The dotted key written on the line holding `offset`: `table.key` for `key = ...` lines, the
/// table name for `[table]` lines. Only the text left of `=` is used, so values never leak.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let header = |l: &str| {
        let l = l.trim();
        l.strip_prefix('[')
            .and_then(|r| r.split(']').next())
            .map(|h| h.trim().trim_matches('[').to_owned())
    };
    if let Some(h) = header(line) {
        return Some(h);
    }
    let key = line.split('=').next()?.trim();
    if key.is_empty() || key.starts_with('#') || !line.contains('=') {
        return None;
    }
    let table = text[..line_start].lines().rev().find_map(header);
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_owned(),
    })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    window_secs: Option<Spanned<u32>>,
    max_failures: Option<Spanned<u32>>,
    lockout_secs: Option<Spanned<u64>>,
    max_failures_per_ip: Option<Spanned<u32>>,
    ip_lockout_secs: Option<Spanned<u64>>,
    ip_prefix_v4: Option<Spanned<u8>>,
    ip_prefix_v6: Option<Spanned<u8>>,
    require_common_name: Option<bool>,
    crtext_prompt: Option<bool>,
    state: Option<RawState>,
    #[serde(default)]
    users: RawUsers,
}

/// `[users]`, read straight into the compact table: each user is validated as the parser hands
/// it over, and only the first refusal is kept, to be reported after the global keys' checks
/// (the order the checks had when the users were collected first).
#[derive(Default)]
struct RawUsers {
    /// The key was there at all, even as an empty table (the fast path must then defer).
    present: bool,
    table: TableBuilder,
    refusal: Option<Refusal>,
}

impl<'de> Deserialize<'de> for RawUsers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct UsersVisitor;
        impl<'de> Visitor<'de> for UsersVisitor {
            type Value = RawUsers;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table of users")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<RawUsers, A::Error> {
                let mut users = RawUsers {
                    present: true,
                    ..RawUsers::default()
                };
                while let Some(name) = map.next_key::<Spanned<String>>()? {
                    let raw: RawUser = map.next_value()?;
                    if users.refusal.is_none() {
                        let added =
                            users
                                .table
                                .add(name.get_ref(), name.span().start, raw.fields());
                        users.refusal = added.err();
                    }
                }
                Ok(users)
            }
        }
        d.deserialize_map(UsersVisitor)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    backend: Option<Spanned<String>>,
    dir: Option<Spanned<String>>,
    url: Option<Spanned<SecretText>>,
    sentinels: Option<Spanned<Vec<SecretText>>>,
    master_name: Option<Spanned<String>>,
    min_replicas: Option<Spanned<u32>>,
    password_file: Option<Spanned<String>>,
    ca_file: Option<Spanned<String>>,
    key_prefix: Option<Spanned<String>>,
    timeout_ms: Option<Spanned<u64>>,
    fallback: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    secret: Spanned<SecretText>,
    pin: Spanned<SecretText>,
    #[serde(default)]
    offset_secs: Option<Spanned<i64>>,
    #[serde(default)]
    common_name: Option<Spanned<String>>,
    #[serde(default)]
    disabled: bool,
}

/// A string that is a secret: wiped on drop, and absent from every error and `Debug`.
pub struct SecretText(pub Zeroizing<String>);

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretText(<redacted>)")
    }
}

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SecretVisitor;
        // Serde's default type errors quote the value (`invalid type: integer `1234``); each
        // method here answers with a message that does not.
        const NOT_A_STRING: &str =
            "must be a quoted string, e.g. \"1234\" (a bare number would lose leading zeros)";
        impl<'de> Visitor<'de> for SecretVisitor {
            type Value = SecretText;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a quoted string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SecretText, E> {
                Ok(SecretText(Zeroizing::new(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<SecretText, E> {
                Ok(SecretText(Zeroizing::new(v)))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<SecretText, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<SecretText, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<SecretText, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<SecretText, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<SecretText, A::Error> {
                Err(de::Error::custom(NOT_A_STRING))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<SecretText, A::Error> {
                Err(de::Error::custom(NOT_A_STRING))
            }
        }
        d.deserialize_any(SecretVisitor)
    }
}

struct Checker<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Checker<'_> {
    fn error(
        &self,
        offset: usize,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            path: self.path.to_owned(),
            line: Some(line_of(self.text, offset)),
            key: Some(key.into()),
            message: message.into(),
        }
    }
}

impl RawConfig {
    fn validate(self, path: &Path, text: &str) -> Result<Config, ConfigError> {
        let check = Checker { path, text };
        let defaults = Policy::default();

        let window_secs = match self.window_secs {
            Some(w) if *w.get_ref() > MAX_WINDOW_SECS => {
                return Err(check.error(
                    w.span().start,
                    "window_secs",
                    format!(
                        "{} is over one hour ({MAX_WINDOW_SECS}); a wide window multiplies an \
                         attacker's chances; fix the phone's clock or set offset_secs instead",
                        w.get_ref()
                    ),
                ))
            }
            Some(w) if *w.get_ref() < crate::engine::STEP_SECS as u32 && *w.get_ref() != 0 => {
                return Err(check.error(
                    w.span().start,
                    "window_secs",
                    "must be 0 (current step only) or at least 10 seconds (one mOTP step)",
                ))
            }
            Some(w) => w.into_inner(),
            None => defaults.window_secs,
        };
        let max_failures = match self.max_failures {
            Some(m) if *m.get_ref() == 0 => {
                return Err(check.error(
                    m.span().start,
                    "max_failures",
                    "must be at least 1 (the number of failed logins that locks a user)",
                ))
            }
            Some(m) => m.into_inner(),
            None => defaults.max_failures,
        };
        let lockout_secs = match self.lockout_secs {
            Some(l) if *l.get_ref() > MAX_LOCKOUT_SECS => {
                return Err(check.error(
                    l.span().start,
                    "lockout_secs",
                    format!("must be at most {MAX_LOCKOUT_SECS} (30 days); use `disabled = true` to bar a user"),
                ))
            }
            Some(l) => l.into_inner(),
            None => defaults.lockout_secs,
        };
        // 0 turns the per-address limit off (every client behind one address).
        let max_failures_per_ip = match self.max_failures_per_ip {
            Some(m) => m.into_inner(),
            None => defaults.max_failures_per_ip,
        };
        let prefix = |value: Option<Spanned<u8>>, key: &str, max: u8, default: u8| match value {
            Some(p) if *p.get_ref() == 0 || *p.get_ref() > max => Err(check.error(
                p.span().start,
                key,
                format!(
                    "must be 1 to {max}: the leading bits of a client address that count as \
                     one source (default {default})"
                ),
            )),
            Some(p) => Ok(p.into_inner()),
            None => Ok(default),
        };
        let ip_prefix_v4 = prefix(self.ip_prefix_v4, "ip_prefix_v4", 32, defaults.ip_prefix_v4)?;
        let ip_prefix_v6 = prefix(
            self.ip_prefix_v6,
            "ip_prefix_v6",
            128,
            defaults.ip_prefix_v6,
        )?;
        let ip_lockout_secs = match self.ip_lockout_secs {
            Some(l) if *l.get_ref() > MAX_LOCKOUT_SECS => {
                return Err(check.error(
                    l.span().start,
                    "ip_lockout_secs",
                    format!("must be at most {MAX_LOCKOUT_SECS} (30 days)"),
                ))
            }
            Some(l) => l.into_inner(),
            None => defaults.ip_lockout_secs,
        };
        let policy = Policy {
            window_secs,
            max_failures,
            lockout_secs,
            max_failures_per_ip,
            ip_lockout_secs,
            ip_prefix_v4,
            ip_prefix_v6,
            require_common_name: self
                .require_common_name
                .unwrap_or(defaults.require_common_name),
        };

        let state = match self.state {
            None => StateConfig::default(),
            Some(raw) => raw.validate(&check)?,
        };

        if let Some(r) = self.users.refusal {
            return Err(check.error(r.at, r.key, r.message));
        }
        let users = self.users.table.finish().map_err(|n| {
            // `toml` refuses a key defined twice, so this is only a guard.
            check.error(
                0,
                "users",
                format!("user number {} is defined twice", n + 1),
            )
        })?;
        Ok(Config {
            path: path.to_owned(),
            policy,
            state,
            crtext_prompt: self.crtext_prompt.unwrap_or(false),
            users,
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Backend {
    Local,
    Memory,
    Redis,
}

impl RawState {
    fn validate(self, check: &Checker) -> Result<StateConfig, ConfigError> {
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
    let min_replicas = match raw.min_replicas {
        None => 0,
        Some(n) if *n.get_ref() > 16 => {
            return Err(check.error(
                n.span().start,
                "state.min_replicas",
                "must be 0 (no wait) to 16 replicas",
            ))
        }
        Some(n) => n.into_inner(),
    };
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
    let timeout_ms = match raw.timeout_ms {
        None => DEFAULT_REDIS_TIMEOUT_MS,
        Some(t) if *t.get_ref() == 0 || *t.get_ref() > MAX_REDIS_TIMEOUT_MS => {
            return Err(check.error(
                t.span().start,
                "state.timeout_ms",
                format!(
                    "must be 1 to {MAX_REDIS_TIMEOUT_MS} milliseconds (a decision must come well \
                     within OpenVPN's hand-window)"
                ),
            ))
        }
        Some(t) => t.into_inner(),
    };
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

impl RawUser {
    fn fields(&self) -> UserFields<'_> {
        UserFields {
            secret: (&self.secret.get_ref().0, self.secret.span().start),
            pin: (&self.pin.get_ref().0, self.pin.span().start),
            offset_secs: self
                .offset_secs
                .as_ref()
                .map(|o| (*o.get_ref(), o.span().start)),
            common_name: self
                .common_name
                .as_ref()
                .map(|cn| (cn.get_ref().as_str(), cn.span().start)),
            disabled: self.disabled,
        }
    }
}

/// A name safe to print in one log line.
fn printable(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(MAX_USERNAME_LEN)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
window_secs = 120
max_failures = 3

[users.alice]
secret = "0123456789abcdef"
pin = "1234"
offset_secs = -30
common_name = "alice.example"

[users.bob]
secret = "0123456789ABCDEF0123456789abcdef"
pin = "0007"
disabled = true
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/openvpn/motp.toml"), text)
    }

    fn refused(text: &str) -> ConfigError {
        match parse(text) {
            Ok(_) => panic!("config was accepted:\n{text}"),
            Err(e) => e,
        }
    }

    #[test]
    fn good_config_loads() {
        let c = parse(GOOD).unwrap();
        assert_eq!(
            c.policy,
            Policy {
                window_secs: 120,
                max_failures: 3,
                lockout_secs: 300,
                require_common_name: true,
                max_failures_per_ip: 20,
                ip_lockout_secs: 600,
                ip_prefix_v4: 32,
                ip_prefix_v6: 64,
            }
        );
        let alice = c.users.get("alice").unwrap();
        assert_eq!(alice.key, b"0123456789abcdef1234");
        assert_eq!(alice.offset_secs, -30);
        assert_eq!(alice.expected_common_name("alice"), "alice.example");
        let bob = c.users.get("bob").unwrap();
        assert!(bob.disabled);
        assert_eq!(bob.expected_common_name("bob"), "bob");
        assert_eq!(c.users.len(), 2);
        let longest = c
            .users
            .names()
            .map(|n| c.users.get(n).unwrap().key.len())
            .max();
        assert_eq!(Some(c.users.longest_key()), longest);
        assert_eq!(parse("").unwrap().users.longest_key(), 0);
    }

    #[test]
    fn empty_config_has_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.policy, Policy::default());
        assert!(c.users.is_empty());
    }

    fn assert_names(err: &ConfigError, line: usize, key: &str) {
        let text = err.to_string();
        assert_eq!(err.line, Some(line), "{text}");
        assert_eq!(err.key.as_deref(), Some(key), "{text}");
        assert!(text.contains("/etc/openvpn/motp.toml"), "{text}");
        assert!(text.contains(key), "{text}");
    }

    #[test]
    fn unknown_key_is_refused() {
        let e = refused("window_secs = 60\nwindwo = 3\n");
        assert_names(&e, 2, "windwo");
        let e =
            refused("[users.alice]\nsecret = \"0123456789abcdef\"\npin = \"1\"\nsecrte = \"x\"\n");
        assert_names(&e, 4, "users.alice.secrte");
    }

    #[test]
    fn missing_secret_or_pin_is_refused() {
        let e = refused("[users.alice]\npin = \"1234\"\n");
        assert!(e.message.contains("secret"), "{e}");
        assert!(e.key.as_deref().unwrap().contains("users.alice"), "{e}");
        let e = refused("[users.alice]\nsecret = \"0123456789abcdef\"\n");
        assert!(e.message.contains("pin"), "{e}");
    }

    #[test]
    fn bad_secret_is_refused_without_showing_it() {
        for secret in [
            "0123456789abcde",
            "0123456789abcdef0123456789abcdef0",
            "0123456789abcdeg",
            "",
        ] {
            let e = refused(&format!(
                "[users.alice]\nsecret = \"{secret}\"\npin = \"1234\"\n"
            ));
            assert_names(&e, 2, "users.alice.secret");
            if !secret.is_empty() {
                assert!(!e.to_string().contains(secret), "{e}");
            }
        }
    }

    #[test]
    fn bad_pin_is_refused_without_showing_it() {
        for pin in ["", "12\u{7}4", "12 34"] {
            let e = refused(&format!(
                "[users.alice]\nsecret = \"0123456789abcdef\"\npin = \"{pin}\"\n"
            ));
            assert_names(&e, 3, "users.alice.pin");
        }
        let e = refused("[users.alice]\nsecret = \"0123456789abcdef\"\npin = 98765\n");
        assert_names(&e, 3, "users.alice.pin");
        assert!(!e.to_string().contains("98765"), "{e}");
        let e = refused("[users.alice]\nsecret = 1234567890123456789\npin = \"1\"\n");
        assert!(!e.to_string().contains("1234567890123456789"), "{e}");
    }

    #[test]
    fn syntax_error_does_not_echo_the_line() {
        let e = refused("[users.alice]\nsecret = \"0123456789abcdef\npin = \"4321\"\n");
        assert_eq!(e.line, Some(2), "{e}");
        assert!(!e.to_string().contains("0123456789abcdef"), "{e}");
    }

    #[test]
    fn a_secret_in_the_wrong_place_is_not_echoed() {
        // Found by the config fuzzer: a username left out of the table header.
        let e = refused("[users]\nsecret = \"0123456789abcdef\"\npin = \"4321\"\n");
        let text = e.to_string();
        assert!(!text.contains("0123456789abcdef"), "{text}");
        assert!(!text.contains("4321"), "{text}");
        let e = refused("[users]\npin = 98765\n");
        assert!(!e.to_string().contains("98765"), "{e}");
    }

    #[test]
    fn parser_errors_are_single_lines() {
        // Found by the config fuzzer: TOML messages with newlines, control characters in keys.
        for text in [
            "[a]\n[a]\n",
            "a = \"\\q\"\n",
            "a = 1_\n",
            "window\rsecs = 1\n",
        ] {
            let e = refused(text).to_string();
            assert!(!e.contains(['\n', '\r']), "{e:?}");
        }
    }

    #[test]
    fn duplicate_user_is_refused() {
        let text = "[users.alice]\nsecret = \"0123456789abcdef\"\npin = \"1\"\n\
                    [users.alice]\nsecret = \"0123456789abcdef\"\npin = \"2\"\n";
        let e = refused(text);
        assert_eq!(e.line, Some(4), "{e}");
        assert_eq!(e.key.as_deref(), Some("users.alice"), "{e}");
    }

    #[test]
    fn window_over_an_hour_is_refused() {
        assert_names(&refused("window_secs = 3601\n"), 1, "window_secs");
        assert!(parse("window_secs = 3600\n").is_ok());
    }

    #[test]
    fn negative_and_huge_numbers_are_refused() {
        assert_names(&refused("window_secs = -5\n"), 1, "window_secs");
        assert_names(&refused("max_failures = 0\n"), 1, "max_failures");
        assert_eq!(
            parse("max_failures_per_ip = 0\n")
                .unwrap()
                .policy
                .max_failures_per_ip,
            0,
            "0 turns the per-address limit off"
        );
        assert_names(&refused("ip_prefix_v4 = 33\n"), 1, "ip_prefix_v4");
        assert_names(&refused("ip_prefix_v6 = 0\n"), 1, "ip_prefix_v6");
        let p = parse("ip_prefix_v4 = 24\nip_prefix_v6 = 48\n")
            .unwrap()
            .policy;
        assert_eq!((p.ip_prefix_v4, p.ip_prefix_v6), (24, 48));
        assert_names(
            &refused("ip_lockout_secs = 99999999999\n"),
            1,
            "ip_lockout_secs",
        );
        assert_names(&refused("ip_lockout_secs = -1\n"), 1, "ip_lockout_secs");
        assert_names(&refused("lockout_secs = 99999999999\n"), 1, "lockout_secs");
        assert_names(
            &refused("max_failures = 99999999999999\n"),
            1,
            "max_failures",
        );
        let e = refused(
            "[users.a]\nsecret = \"0123456789abcdef\"\npin = \"1\"\noffset_secs = 999999\n",
        );
        assert_names(&e, 4, "users.a.offset_secs");
    }

    #[test]
    fn bad_usernames_are_refused() {
        let long = "u".repeat(MAX_USERNAME_LEN + 1);
        let e = refused(&format!(
            "[users.{long}]\nsecret = \"0123456789abcdef\"\npin = \"1\"\n"
        ));
        assert_eq!(e.line, Some(1), "{e}");
        let e = refused("[users.\"\"]\nsecret = \"0123456789abcdef\"\npin = \"1\"\n");
        assert_eq!(e.line, Some(1), "{e}");
    }

    #[test]
    fn unknown_state_backend_is_refused() {
        assert_names(
            &refused("[state]\nbackend = \"floppy\"\n"),
            2,
            "state.backend",
        );
    }

    #[test]
    fn state_defaults_to_local_in_var_lib() {
        let local = |dir: &str| StateConfig::Local { dir: dir.into() };
        assert_eq!(parse("").unwrap().state, local(DEFAULT_STATE_DIR));
        assert_eq!(parse("[state]\n").unwrap().state, local(DEFAULT_STATE_DIR));
        assert_eq!(
            parse("[state]\nbackend = \"local\"\n").unwrap().state,
            local(DEFAULT_STATE_DIR)
        );
        assert_eq!(
            parse("[state]\nbackend = \"local\"\ndir = \"/srv/motp\"\n")
                .unwrap()
                .state,
            local("/srv/motp")
        );
        assert_eq!(
            parse("[state]\ndir = \"/srv/motp\"\n").unwrap().state,
            local("/srv/motp")
        );
        assert_eq!(
            parse("[state]\nbackend = \"memory\"\n").unwrap().state,
            StateConfig::Memory
        );
    }

    #[test]
    fn bad_state_dir_is_refused() {
        for dir in ["relative/dir", "", "/", "/var/lib/\\u0007x"] {
            let e = refused(&format!("[state]\ndir = \"{dir}\"\n"));
            assert_names(&e, 2, "state.dir");
            assert!(e.message.contains("absolute path"), "{e}");
        }
        let e = refused("[state]\nbackend = \"memory\"\n\ndir = \"/srv/motp\"\n");
        assert_names(&e, 4, "state.dir");
        assert!(e.message.contains("only applies"), "{e}");
        assert_names(&refused("[state]\nbackend = 3\n"), 2, "state.backend");
        assert_names(
            &refused("[state]\ndirectory = \"/x\"\n"),
            2,
            "state.directory",
        );
    }

    #[test]
    fn redis_state_is_parsed_with_defaults() {
        let c =
            parse("[state]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:6379/2\"\n").unwrap();
        let StateConfig::Redis(r) = &c.state else {
            panic!("{:?}", c.state)
        };
        assert_eq!(r.key_prefix, DEFAULT_REDIS_KEY_PREFIX);
        assert_eq!(r.timeout_ms, DEFAULT_REDIS_TIMEOUT_MS);
        assert_eq!(r.fallback_dir, None);
        assert_eq!(r.password_file, None);
        assert_eq!(r.describe(), "redis://127.0.0.1:6379/2");
        assert!(!c.crtext_prompt);

        let c = parse(
            "crtext_prompt = true\n[state]\nbackend = \"redis\"\n\
             url = \"rediss://:hunter2@redis.example:6380/0\"\npassword_file = \"/etc/openvpn/redis.pw\"\n\
             key_prefix = \"vpn1:\"\ntimeout_ms = 250\nfallback = \"local\"\ndir = \"/srv/motp\"\n",
        )
        .unwrap();
        assert!(c.crtext_prompt);
        let StateConfig::Redis(r) = &c.state else {
            panic!()
        };
        assert_eq!(r.key_prefix, "vpn1:");
        assert_eq!(r.timeout_ms, 250);
        assert_eq!(r.fallback_dir.as_deref(), Some(Path::new("/srv/motp")));
        assert_eq!(r.describe(), "rediss://redis.example:6380/0");
        assert_eq!(r.ca_file, None);
        let c = parse(
            "[state]\nbackend = \"redis\"\nurl = \"rediss://redis.example:6380/0\"\n\
             ca_file = \"/etc/openvpn/redis-ca.pem\"\n",
        )
        .unwrap();
        let StateConfig::Redis(r) = &c.state else {
            panic!()
        };
        assert_eq!(
            r.ca_file.as_deref(),
            Some(Path::new("/etc/openvpn/redis-ca.pem"))
        );
        let debug = format!("{c:?}");
        assert!(!debug.contains("hunter2"), "{debug}");

        let c = parse("[state]\nbackend = \"redis\"\nurl = \"redis://h\"\nfallback = \"local\"\n")
            .unwrap();
        let StateConfig::Redis(r) = &c.state else {
            panic!()
        };
        assert_eq!(
            r.fallback_dir.as_deref(),
            Some(Path::new(DEFAULT_STATE_DIR))
        );
    }

    #[test]
    fn redis_sentinel_and_min_replicas() {
        let c = parse(
            "[state]\nbackend = \"redis\"\n\
             sentinels = [\"redis://:pw-secret@10.0.0.1:26379\", \"redis://10.0.0.2:26379\"]\n\
             master_name = \"vpn\"\nmin_replicas = 1\n",
        )
        .unwrap();
        let StateConfig::Redis(r) = &c.state else {
            panic!()
        };
        assert_eq!(r.sentinels.len(), 2);
        assert_eq!(r.master_name.as_deref(), Some("vpn"));
        assert_eq!(r.min_replicas, 1);
        assert!(r.url.is_empty());
        assert!(!r.tls());
        let shown = r.describe();
        assert_eq!(
            shown,
            "master vpn via sentinels redis://10.0.0.1:26379/0,redis://10.0.0.2:26379/0"
        );
        assert!(!format!("{c:?}").contains("pw-secret"));

        let r = "[state]\nbackend = \"redis\"\n";
        let s = "sentinels = [\"redis://h:26379\"]\n";
        assert_names(&refused(&format!("{r}{s}")), 3, "state.sentinels");
        assert_names(
            &refused(&format!("{r}url = \"redis://h\"\n{s}master_name = \"m\"\n")),
            3,
            "state.url",
        );
        assert_names(
            &refused(&format!("{r}url = \"redis://h\"\nmaster_name = \"m\"\n")),
            4,
            "state.master_name",
        );
        assert_names(
            &refused(&format!("{r}sentinels = []\nmaster_name = \"m\"\n")),
            3,
            "state.sentinels",
        );
        assert_names(
            &refused(&format!(
                "{r}sentinels = [\"redis://a:1\", \"rediss://b:2\"]\nmaster_name = \"m\"\n"
            )),
            3,
            "state.sentinels",
        );
        assert_names(
            &refused(&format!("{r}{s}master_name = \"two words\"\n")),
            4,
            "state.master_name",
        );
        assert_names(
            &refused(&format!("{r}url = \"redis://h\"\nmin_replicas = 17\n")),
            4,
            "state.min_replicas",
        );
        assert_names(
            &refused("[state]\nmin_replicas = 1\n"),
            2,
            "state.min_replicas",
        );
    }

    #[test]
    fn bad_redis_state_is_refused_without_showing_the_url() {
        let r = "[state]\nbackend = \"redis\"\n";
        assert_names(&refused(r), 2, "state.url");
        for url in [
            "http://:pw-secret@h/",
            "redis//pw-secret",
            "redis://:pw-secret@h:notaport/",
        ] {
            let e = refused(&format!("{r}url = \"{url}\"\n"));
            assert_names(&e, 3, "state.url");
            assert!(!e.to_string().contains("pw-secret"), "{e}");
        }
        let u = "url = \"redis://127.0.0.1\"\n";
        assert_names(
            &refused(&format!("{r}{u}timeout_ms = 0\n")),
            4,
            "state.timeout_ms",
        );
        assert_names(
            &refused(&format!("{r}{u}timeout_ms = 60000\n")),
            4,
            "state.timeout_ms",
        );
        assert_names(
            &refused(&format!("{r}{u}key_prefix = \"a b\"\n")),
            4,
            "state.key_prefix",
        );
        assert_names(
            &refused(&format!("{r}{u}fallback = \"disk\"\n")),
            4,
            "state.fallback",
        );
        assert_names(
            &refused(&format!("{r}{u}password_file = \"rel\"\n")),
            4,
            "state.password_file",
        );
        // `dir` is where a Redis server remembers the data epoch; relative paths are refused.
        assert_names(&refused(&format!("{r}{u}dir = \"srv\"\n")), 4, "state.dir");
        let c = parse(&format!("{r}{u}dir = \"/srv\"\n")).unwrap();
        let StateConfig::Redis(redis) = &c.state else {
            panic!()
        };
        assert_eq!(
            (redis.dir.as_path(), redis.fallback_dir.as_deref()),
            (Path::new("/srv"), None)
        );
        // ca_file: TLS URLs only, an absolute path, and never outside the redis backend.
        let e = refused(&format!("{r}{u}ca_file = \"/etc/ca.pem\"\n"));
        assert_names(&e, 4, "state.ca_file");
        assert!(e.message.contains("rediss://"), "{e}");
        let tls = "url = \"rediss://127.0.0.1\"\n";
        let relative = refused(&format!("{r}{tls}ca_file = \"ca.pem\"\n"));
        assert!(
            !relative.message.contains("  "),
            "one space between words: {relative}"
        );
        assert_names(&relative, 4, "state.ca_file");
        assert_names(
            &refused("[state]\nbackend = \"memory\"\nca_file = \"/etc/ca.pem\"\n"),
            3,
            "state.ca_file",
        );
        assert_names(&refused(&format!("{r}{u}host = \"x\"\n")), 4, "state.host");
        assert_names(
            &refused("[state]\nbackend = \"local\"\nurl = \"redis://h\"\n"),
            3,
            "state.url",
        );
        assert_names(&refused("[state]\ntimeout_ms = 5\n"), 2, "state.timeout_ms");
        assert_names(&refused("crtext_prompt = \"yes\"\n"), 1, "crtext_prompt");
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let c = parse(GOOD).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert!(!shown.contains("1234"), "{shown}");
    }

    #[test]
    fn world_readable_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("motp-config-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("motp.toml");
        fs::write(&file, GOOD).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        let e = Config::load(&file).unwrap_err();
        assert!(e.to_string().contains("chmod 0640"), "{e}");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(Config::load(&file).unwrap().users.len(), 2);
        let e = Config::load(&dir.join("missing.toml")).unwrap_err();
        assert!(e.to_string().contains("missing.toml"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A directory of its own under the temp dir, removed on drop.
    struct ConfigDir(PathBuf);

    impl ConfigDir {
        fn new(label: &str) -> ConfigDir {
            let dir =
                std::env::temp_dir().join(format!("motp-config-{label}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            ConfigDir(dir)
        }
        fn file(&self, mode: u32) -> PathBuf {
            use std::os::unix::fs::PermissionsExt;
            let file = self.0.join("motp.toml");
            fs::write(&file, GOOD).unwrap();
            fs::set_permissions(&file, fs::Permissions::from_mode(mode)).unwrap();
            file
        }
    }

    impl Drop for ConfigDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_config_others_could_change_is_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = ConfigDir::new("writable");
        let file = dir.file(0o660);
        let e = Config::load(&file).unwrap_err().to_string();
        assert!(e.contains("writable by its group"), "{e}");
        assert!(e.contains(&format!("chmod go-w {}", file.display())), "{e}");

        let file = dir.file(0o640);
        fs::set_permissions(&dir.0, fs::Permissions::from_mode(0o777)).unwrap();
        let e = Config::load(&file).unwrap_err().to_string();
        assert!(
            e.contains(&format!("{} is a directory", dir.0.display())),
            "{e}"
        );
        assert!(e.contains("chmod go-w"), "{e}");
        fs::set_permissions(&dir.0, fs::Permissions::from_mode(0o755)).unwrap();
        assert!(Config::load(&file).is_ok());
    }

    #[test]
    fn a_config_owned_by_the_runtime_user_is_refused_when_root_started() {
        let dir = ConfigDir::new("owner");
        let file = dir.file(0o640);
        let me = crate::os::effective_uid();
        if me == 0 {
            std::os::unix::fs::chown(&file, Some(65534), None).unwrap();
            let e = Config::load(&file).unwrap_err().to_string();
            assert!(e.contains("belongs to nobody (uid 65534)"), "{e}");
            assert!(e.contains(&format!("chown root {}", file.display())), "{e}");
        }
        // Loaded by a process running as nobody (after OpenVPN's switch), trusting only root
        // and the user OpenVPN started as (root): refused too.
        let as_root_started = TrustedOwners::root_and(0);
        if me == 0 {
            let e = Config::load_trusting(&file, as_root_started)
                .unwrap_err()
                .to_string();
            assert!(e.contains("only root may own it"), "{e}");
        }
        // OpenVPN started by that user itself (no root anywhere): its own file is fine.
        let own = TrustedOwners::root_and(65534);
        if me == 0 {
            assert!(Config::load_trusting(&file, own).is_ok());
        }
    }

    #[test]
    fn a_fifo_in_place_of_the_config_is_refused_without_waiting() {
        let dir = ConfigDir::new("fifo");
        let fifo = dir.0.join("motp.toml");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // A blocking open would wait here for a writer forever.
        let e = Config::load(&fifo).unwrap_err().to_string();
        assert!(e.contains("is not a regular file"), "{e}");
    }

    /// Everything a config holds, keys included, for comparing the two parsers' results.
    fn dump(c: &Config) -> String {
        let mut users: Vec<String> = c
            .users
            .names()
            .map(|n| {
                let u = c.users.get(n).unwrap();
                format!(
                    "{n:?} {:?} {} {:?} {}",
                    u.key, u.offset_secs, u.common_name, u.disabled
                )
            })
            .collect();
        users.sort();
        format!("{:?} {:?} {} {users:?}", c.policy, c.state, c.crtext_prompt)
    }

    /// Whatever the fast path accepts, `toml` reads the same.
    fn fast_agrees(text: &str) -> bool {
        let path = Path::new("/etc/openvpn/motp.toml");
        let Some(fast) = fast::parse(path, text) else {
            return false;
        };
        let slow = Config::parse_toml(path, text)
            .unwrap_or_else(|e| panic!("fast path accepted what toml refuses ({e}):\n{text:?}"));
        assert_eq!(dump(&fast), dump(&slow), "{text:?}");
        true
    }

    #[test]
    fn fast_path_reads_the_usual_shapes_as_toml_does() {
        let example = include_str!("../../conf/motp.toml");
        let state_last =
            "window_secs = 60\n# users\n[users.alice]\nsecret = \"0123456789abcdef\"\n\
                          pin = \"1234\"\n\n# Bob\n[users.bob]\n  secret=\"fedcba9876543210\" # x\n\
                          pin = \"4321\"\ncommon_name = \"bob laptop ✓\"\n[state]\n\
                          backend = \"memory\"\n# end of file\n[users.carol]\n\
                          secret = \"0123456789abcdef0123456789ABCDEF\"\npin = \"p!n\"\n\
                          offset_secs = -86400\ndisabled = false";
        for text in [
            GOOD,
            "",
            "# nothing\n",
            example,
            &format!("{example}\n[users.alice]\nsecret = \"0123456789abcdef\"\npin = \"1234\"\n"),
            state_last,
            &state_last.replace('\n', "\r\n"),
            "[users.a]\nsecret = \"0123456789abcdef\"\npin = \"1\"\noffset_secs = +0\n\
             [users.B-_9]\nsecret = \"0123456789abcdef\"\npin = \"x\"\t#\ttab\n",
        ] {
            assert!(fast_agrees(text), "fast path declined:\n{text}");
        }
    }

    #[test]
    fn fast_path_leaves_everything_else_to_toml() {
        let user = "secret = \"0123456789abcdef\"\npin = \"1234\"\n";
        let cases = [
            // TOML errors.
            format!("[users.a]\n{user}[users.a]\n{user}"),
            format!("[users.a]\n{user}pin = \"1\"\n"),
            format!("[users.a]\n{user}[state]\n[state]\n"),
            format!("[state]\n[users.a]\n{user}[state]\n"),
            format!("users = {{}}\n[users.a]\n{user}"),
            format!("[users.a]\n{user}disabled = true # \u{7}\n"),
            format!("[users.a]\n{user}# \u{7f}\n"),
            format!("[users.a]\n{user}\r"),
            format!("[users.a]\n{user}common_name = \"a\rb\"\n"),
            format!("[users.a] x\n{user}"),
            format!("[users.a]]\n{user}"),
            format!("[[users.a]]\n{user}"),
            "[users.a]\nsecret = \"0123456789abcdef\"\npin = \"12\n".to_owned(),
            format!("[users.a]\n{user}offset_secs = 00\n"),
            format!("[users.a]\n{user}offset_secs = 1_0\n"),
            format!("[users.a]\n{user}offset_secs = 0x10\n"),
            format!("[users.a]\n{user}offset_secs = 99999999999999999999\n"),
            format!("[users.a]\n{user}offset_secs = -\n"),
            format!("[users.a]\n{user}disabled = yes\n"),
            format!("[users.a]\n{user}disabled = truex\n"),
            format!("[state]\nurl = \"\"\"\n[users.a]\n{user}\"\"\"\n"),
            format!("x = [\n[users.a]\n{user}]\n"),
            // Valid TOML this path does not read: `toml` decides.
            format!("[users]\n[users.a]\n{user}"),
            format!("[users.\"a\"]\n{user}"),
            format!("[ users.a ]\n{user}"),
            format!("[users.a.b]\n{user}"),
            "users.a.secret = \"0123456789abcdef\"\nusers.a.pin = \"1\"\n".to_owned(),
            format!("\"\\u0075sers\" = {{}}\n[users.a]\n{user}"),
            "[users.a]\nsecret = '0123456789abcdef'\npin = \"1234\"\n".to_owned(),
            "[users.a]\nsecret = \"0123456789abcde\\u0066\"\npin = \"1234\"\n".to_owned(),
            "[users.a]\n\"secret\" = \"0123456789abcdef\"\npin = \"1234\"\n".to_owned(),
            "[users.a]\nsecret = \"\"\"0123456789abcdef\"\"\"\npin = \"1234\"\n".to_owned(),
            format!("[users.a]\n{user}disabled = false\ndisabled = false\n"),
            format!("[users.a]\n{user}common_name = {{ x = 1 }}\n"),
            // Refusals: always worded by the `toml` path.
            format!("[users.a]\n{user}extra = 1\n"),
            "[users.a]\nsecret = \"0123456789abcdef\"\n".to_owned(),
            "[users.a]\nsecret = \"0123\"\npin = \"1\"\n".to_owned(),
            format!("[users.a]\n{user}offset_secs = 86401\n"),
            format!("[users.a]\n{user}common_name = \"\"\n"),
            format!("[users.{}]\n{user}", "u".repeat(MAX_USERNAME_LEN + 1)),
            format!("window_secs = 3601\n[users.a]\n{user}"),
            format!("[users.a]\n{user}[state]\nbackend = \"floppy\"\n"),
        ];
        for text in &cases {
            assert!(!fast_agrees(text), "fast path accepted:\n{text}");
        }
    }

    #[test]
    fn lookups_find_every_user_and_no_other() {
        let mut text = String::new();
        for i in 0..5000 {
            text.push_str(&format!(
                "[users.u{i}]\nsecret = \"{:016x}\"\npin = \"{i}\"\n{}",
                (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                if i % 3 == 0 {
                    format!("common_name = \"cn{i}\"\noffset_secs = -{i}\n")
                } else {
                    String::new()
                }
            ));
        }
        let path = Path::new("/etc/openvpn/motp.toml");
        for c in [
            parse(&text).unwrap(),
            Config::parse_toml(path, &text).unwrap(),
        ] {
            assert_eq!(c.users.len(), 5000);
            for i in 0..5000 {
                let name = format!("u{i}");
                let u = c.users.get(&name).unwrap();
                let key = format!("{:016x}{i}", (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                assert_eq!(u.key, key.as_bytes());
                let (cn, offset) = if i % 3 == 0 {
                    (format!("cn{i}"), -i64::from(i))
                } else {
                    (name.clone(), 0)
                };
                assert_eq!(u.expected_common_name(&name), cn);
                assert_eq!(u.offset_secs, offset);
                assert!(c.users.get(&format!("v{i}")).is_none());
            }
            assert!(c.users.get("").is_none());
        }
        assert_eq!(parse(&text).unwrap().users.names().count(), 5000);
        assert_eq!(
            parse(&text)
                .unwrap()
                .users
                .names()
                .take(3)
                .collect::<Vec<_>>(),
            ["u0", "u1", "u2"]
        );
        assert!(UserTable::default().get("u0").is_none());
    }

    fn lines(valid: &[&'static str], odd: &[&'static str]) -> impl Strategy<Value = &'static str> {
        use proptest::sample::select;
        proptest::prop_oneof![8 => select(valid.to_vec()), 1 => select(odd.to_vec())]
    }

    use proptest::prelude::Strategy;

    proptest::proptest! {
        /// Files stitched from lines the fast path reads and lines it must leave to `toml`.
        #[test]
        fn fast_path_never_disagrees_with_toml(
            head in proptest::collection::vec(lines(
                &["window_secs = 60", "crtext_prompt = true", "# comment", ""],
                &["max_failures = 0", "users = {}", "state = {}", "x = 1", "window_secs = ["],
            ), 0..3),
            tables in proptest::collection::vec((
                lines(
                    &["[users.alice]", "[users.bob]", "[users.b-o_b9]", " [users.carol] # c",
                      "[state]"],
                    &["[users]", "[users.\"alice\"]", "[[users.carol]]", "[users.dave]x",
                      "[users.a.b]", "[ users.erin ]", "[state.x]"],
                ),
                proptest::collection::vec(lines(
                    &["secret = \"0123456789abcdef\"", "secret=\"0123456789ABCDEF01\" # s",
                      "pin = \"1234\"", "\tpin = \"p!n\"", "offset_secs = -30",
                      "offset_secs = +30", "common_name = \"alice.example\"", "disabled = true",
                      "disabled = false # off", "backend = \"memory\"", "dir = \"/srv/motp\"",
                      "# comment", "", "  "],
                    &["secret = \"0123456789abcdeg\"", "secret = '0123456789abcdef'",
                      "pin = \"12 34\"", "pin = \"\"", "pin = 1234", "pin = \"\\u0031\"",
                      "offset_secs = 030", "offset_secs = 90000", "common_name = \"\"",
                      "disabled = 1", "#\u{1}", "\r", "url = \"\"\"", "\"\"\"", "]", "x = 1"],
                ), 0..6),
            ), 0..5),
            crlf in proptest::bool::ANY,
        ) {
            let mut all: Vec<&str> = head;
            for (header, fields) in tables {
                all.push(header);
                all.extend(fields);
            }
            let text = all.join(if crlf { "\r\n" } else { "\n" });
            fast_agrees(&text);
        }
    }
}
