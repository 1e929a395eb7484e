//! One loaded instance of the plugin: the config it serves, its state store, and its log.
//! Safe Rust; `ffi` turns OpenVPN's calls into calls on this.

use std::path::{Path, PathBuf};

use tracing::{error, info, warn};

use crate::auth::{Authenticator, Decision, LoginRequest};
use crate::clock;
use crate::config::{Config, StateConfig};
use crate::env::AuthEnv;
use crate::log::{self, Sink};
use crate::state::{MemoryStore, StateStore};

/// What OpenVPN is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Reject,
}

pub struct Plugin {
    config: Config,
    store: Box<dyn StateStore>,
    dispatch: tracing::Dispatch,
}

/// The generic text the client sees on failure: never which factor was wrong.
const CLIENT_REASON_FAILED: &str = "Authentication failed";

impl Plugin {
    /// Loads the config and opens the state store. Every problem is logged through `sink` and
    /// returned, so OpenVPN refuses to start rather than run with a config the admin did not mean.
    pub fn open(config_path: &Path, sink: Sink) -> Result<Plugin, String> {
        let dispatch = log::dispatch(sink, tracing::Level::INFO);
        tracing::dispatcher::with_default(&dispatch, || {
            let config = Config::load(config_path).map_err(|e| {
                let message = format!("cannot start: {e}");
                error!("{message}");
                message
            })?;
            let store: Box<dyn StateStore> = match config.state {
                StateConfig::Memory => {
                    warn!(
                        "state backend is \"memory\": replay and lockout state is lost at every \
                         SIGHUP or restart"
                    );
                    Box::new(MemoryStore::new())
                }
            };
            if clock::test_hook_active() {
                warn!(
                    "TEST BUILD: {} is set and shifts the plugin's clock",
                    clock::TEST_SKEW_ENV
                );
            }
            info!(
                "ready: {} users from {}, window ±{} s, lock after {} failures for {} s, CN binding {}",
                config.users.len(),
                config.path.display(),
                config.policy.window_secs,
                config.policy.max_failures,
                config.policy.lockout_secs,
                if config.policy.require_common_name { "on" } else { "off" },
            );
            Ok(Plugin {
                config,
                store,
                dispatch: dispatch.clone(),
            })
        })
    }

    pub fn config_path(&self) -> &PathBuf {
        &self.config.path
    }

    /// Decides one `AUTH_USER_PASS_VERIFY`, logs the decision once, and writes the client-facing
    /// reason when OpenVPN offers `auth_failed_reason_file`.
    pub fn authenticate(&self, env: &AuthEnv) -> Verdict {
        tracing::dispatcher::with_default(&self.dispatch, || {
            let request = LoginRequest {
                username: env.username,
                password: env.password,
                common_name: env.common_name,
            };
            let now = clock::now();
            let auth = Authenticator {
                policy: &self.config.policy,
                users: &self.config.users,
                store: &*self.store,
            };
            let decision = auth.decide(&request, now);
            log_decision(env, &decision);
            if decision.is_accepted() {
                return Verdict::Accept;
            }
            if let Some(path) = env.auth_failed_reason_file {
                write_client_reason(path, &client_reason(&decision, now));
            }
            Verdict::Reject
        })
    }
}

fn log_decision(env: &AuthEnv, decision: &Decision) {
    let user = match env.username {
        Some(u) => log::sanitize(&String::from_utf8_lossy(
            &u[..u.len().min(crate::config::MAX_USERNAME_LEN)],
        )),
        None => "(none)".to_owned(),
    };
    let ip = env.client_address();
    match decision {
        Decision::Accepted { step_offset } => {
            info!(user = %user, ip = %ip, step_offset = %format_args!("{step_offset:+}"), "login accepted")
        }
        Decision::MalformedPassword(why) => {
            warn!(user = %user, ip = %ip, reason = decision.reason(), detail = %why, "login rejected")
        }
        Decision::Locked { until } => {
            warn!(user = %user, ip = %ip, reason = decision.reason(), until = until, "login rejected")
        }
        Decision::StateUnavailable => {
            error!(user = %user, ip = %ip, reason = decision.reason(), "login rejected")
        }
        _ => warn!(user = %user, ip = %ip, reason = decision.reason(), "login rejected"),
    }
}

fn client_reason(decision: &Decision, now: i64) -> String {
    match decision {
        Decision::Locked { until } => {
            let wait = until.saturating_sub(now).max(1);
            format!("TEMP[backoff {wait}]: too many failed logins, try again later")
        }
        Decision::StateUnavailable => {
            "TEMP[backoff 30]: authentication temporarily unavailable".to_owned()
        }
        _ => CLIENT_REASON_FAILED.to_owned(),
    }
}

fn write_client_reason(path: &[u8], reason: &str) {
    use std::os::unix::ffi::OsStrExt;
    let path = Path::new(std::ffi::OsStr::from_bytes(path));
    if let Err(e) = std::fs::write(path, reason) {
        warn!(
            "cannot write auth_failed_reason_file {}: {e}",
            path.display()
        );
    }
}
