//! Building the state store that the `[state]` table of motp.toml asks for.

use crate::config::{Config, StateConfig, TrustedOwners};
use crate::state::{MemoryStore, RedisStore, SqliteStore, StateStore};
use tracing::warn;

/// Opens the store `[state]` asks for. Errors say what to fix.
pub fn open(config: &Config, trusted: TrustedOwners) -> Result<Box<dyn StateStore>, String> {
    match &config.state {
        StateConfig::Memory => {
            warn!(
                "state backend is \"memory\": replay and lockout state is lost at every \
                 SIGHUP or restart"
            );
            Ok(Box::new(MemoryStore::for_users(config.users.len())))
        }
        StateConfig::Local { dir } => match SqliteStore::open(dir) {
            Ok(store) => Ok(Box::new(store)),
            Err(e) => Err(e.to_string()),
        },
        StateConfig::Redis(redis) => {
            let fallback: Option<Box<dyn StateStore>> = match &redis.fallback_dir {
                Some(dir) => {
                    warn!(
                        "redis fallback = \"local\": while Redis is unreachable this server \
                         decides alone from {}; a code used on another server during the outage \
                         can be accepted here once more",
                        dir.display()
                    );
                    Some(Box::new(SqliteStore::open(dir).map_err(|e| e.to_string())?))
                }
                None => None,
            };
            let store = RedisStore::open_trusting(
                redis,
                config.policy.retention_secs(),
                fallback,
                trusted,
            )?;
            store.probe();
            Ok(Box::new(store))
        }
    }
}

/// `[state]` in the start-up and reload log lines.
pub fn describe(state: &StateConfig) -> String {
    match state {
        StateConfig::Memory => "state in memory".to_owned(),
        StateConfig::Local { dir } => format!("state in {}", dir.display()),
        StateConfig::Redis(r) => format!(
            "state on redis {} (prefix {}, timeout {} ms, fallback {})",
            r.describe(),
            crate::log::sanitize(&r.key_prefix),
            r.timeout_ms,
            match &r.fallback_dir {
                Some(dir) => format!("local in {}", dir.display()),
                None => "none".to_owned(),
            }
        ),
    }
}
