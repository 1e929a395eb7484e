//! `motp.toml`: reading, validating and turning it into the user table and policy.
//!
//! Every refusal names the file, the line and the key, and says what to do. No message ever
//! contains a secret or a PIN: those two fields are read through `raw::SecretText`, whose errors
//! never echo the value, and TOML syntax errors are reported without the source snippet.
//!
//! Files of the usual shape are read by a fast path (`config/fast.rs`) that never refuses anything
//! itself: whatever it does not accept, `toml` reads and words the refusal, as it always did.
//!
//! This module holds the public types and the entry points; the parts each have a file:
//! `file` reads the file, `raw` is what serde reads it into, `user_table` the compact user
//! table, `state` the `[state]` table, `diagnostics` the wording and location of refusals.

use std::path::{Path, PathBuf};

use toml::Spanned;

mod diagnostics;
pub mod entry;
mod fast;
mod file;
mod raw;
mod state;
#[cfg(test)]
mod tests;
pub mod token;
mod user_table;

pub use crate::os::TrustedOwners;
pub use diagnostics::ConfigError;
pub use state::{
    RedisConfig, StateConfig, DEFAULT_REDIS_KEY_PREFIX, DEFAULT_REDIS_TIMEOUT_MS,
    DEFAULT_STATE_DIR, MAX_REDIS_TIMEOUT_MS,
};
pub use token::Token;
pub use user_table::{User, UserTable, MAX_MORE_TOKENS, MAX_RECOVERY_CODES};

use diagnostics::Checker;
use raw::{RawConfig, RawUsers};
use user_table::{TableBuilder, UserFields};

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
    /// HOTP: how many counters past the next expected one a code may be (a button pressed
    /// without logging in moves the token ahead).
    pub hotp_window: u32,
    /// How far the window may follow a phone's clock from its `offset_secs` (drift tracking,
    /// see [`crate::drift`]); 0 turns tracking off.
    pub max_drift_secs: u32,
}

impl Policy {
    /// Steps searched each side of the expected one (180 s → 18, i.e. 37 codes in all).
    pub fn window_steps(&self) -> i64 {
        i64::from(self.window_secs) / crate::engine::STEP_SECS
    }

    /// The same for a step of `period` seconds (TOTP): whole steps within `window_secs`.
    pub fn window_steps_of(&self, period: u32) -> i64 {
        i64::from(self.window_secs) / i64::from(period.max(1))
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
            hotp_window: 10,
            max_drift_secs: 3600,
        }
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
        let text = file::read_protected(path, trusted)?;
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
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| diagnostics::syntax_error(path, text, &e))?;
        raw.validate(path, text)
    }
}

impl RawConfig {
    fn validate(self, path: &Path, text: &str) -> Result<Config, ConfigError> {
        let check = Checker { path, text };
        let defaults = Policy::default();

        if let Some(w) = &self.window_secs {
            if (1..crate::engine::STEP_SECS as u32).contains(w.get_ref()) {
                return Err(check.error(
                    w.span().start,
                    "window_secs",
                    "must be 0 (current step only) or at least 10 seconds (one mOTP step)",
                ));
            }
        }
        let window_secs = check.in_range(
            self.window_secs,
            "window_secs",
            0..=MAX_WINDOW_SECS,
            defaults.window_secs,
            |w| {
                format!(
                    "{w} is over one hour ({MAX_WINDOW_SECS}); a wide window multiplies an \
                     attacker's chances; fix the phone's clock or set offset_secs instead"
                )
            },
        )?;
        let max_failures = check.in_range(
            self.max_failures,
            "max_failures",
            1..=u32::MAX,
            defaults.max_failures,
            |_| "must be at least 1 (the number of failed logins that locks a user)".to_owned(),
        )?;
        let lockout_secs = check.in_range(
            self.lockout_secs,
            "lockout_secs",
            0..=MAX_LOCKOUT_SECS,
            defaults.lockout_secs,
            |_| {
                format!(
                    "must be at most {MAX_LOCKOUT_SECS} (30 days); use `disabled = true` to bar \
                     a user"
                )
            },
        )?;
        // 0 turns the per-address limit off (every client behind one address).
        let max_failures_per_ip = match self.max_failures_per_ip {
            Some(m) => m.into_inner(),
            None => defaults.max_failures_per_ip,
        };
        let prefix = |value: Option<Spanned<u8>>, key: &str, max: u8, default: u8| {
            check.in_range(value, key, 1..=max, default, |_| {
                format!(
                    "must be 1 to {max}: the leading bits of a client address that count as \
                     one source (default {default})"
                )
            })
        };
        let ip_prefix_v4 = prefix(self.ip_prefix_v4, "ip_prefix_v4", 32, defaults.ip_prefix_v4)?;
        let ip_prefix_v6 = prefix(
            self.ip_prefix_v6,
            "ip_prefix_v6",
            128,
            defaults.ip_prefix_v6,
        )?;
        let ip_lockout_secs = check.in_range(
            self.ip_lockout_secs,
            "ip_lockout_secs",
            0..=MAX_LOCKOUT_SECS,
            defaults.ip_lockout_secs,
            |_| format!("must be at most {MAX_LOCKOUT_SECS} (30 days)"),
        )?;
        let hotp_window = check.in_range(
            self.hotp_window,
            "hotp_window",
            0..=token::MAX_HOTP_WINDOW,
            defaults.hotp_window,
            |_| {
                format!(
                    "must be at most {}: the counters an HOTP code may run ahead (each costs                      an HMAC on every login)",
                    token::MAX_HOTP_WINDOW
                )
            },
        )?;
        let max_drift_secs = check.in_range(
            self.max_drift_secs,
            "max_drift_secs",
            0..=MAX_OFFSET_SECS as u32,
            defaults.max_drift_secs,
            |_| {
                format!(
                    "must be at most {MAX_OFFSET_SECS} (one day): how far the window may follow \
                     a phone's clock from its offset_secs; 0 turns tracking off"
                )
            },
        )?;
        let policy = Policy {
            hotp_window,
            max_drift_secs,
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
