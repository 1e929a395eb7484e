//! One loaded instance of the plugin: the config it serves, its state store, and its log.
//! Safe Rust; `ffi` turns OpenVPN's calls into calls on this.
//!
//! This module holds the [`Plugin`] type, its open and close, and the dispatch of OpenVPN's
//! calls; the rest is in its parts, each with one job:
//! - `reload`: the config watcher thread and the live reload of motp.toml;
//! - `crtext`: crtext prompting (`CR_TEXT`) and the limits on prompts awaiting an answer;
//! - [`deferred`]: decisions deferred to worker threads (Redis backend), and their pool;
//! - `reply`: what OpenVPN and the client are told (answer files, reasons, the decision line).
//!
//! Lines logged on the plugin's own threads are queued for OpenVPN's log ([`log::Queued`]);
//! the state store is built from `[state]` by `state::build`.
//!
//! **Closing** (`openvpn_plugin_close_v1`, at every SIGHUP) must not leave a thread running
//! (OpenVPN `dlclose`s the library right after), so it joins the worker, and it must not hang
//! OpenVPN, so it first raises the pool's closing flag: logins still queued are answered `0`
//! (`TEMP[backoff 5]` to the client) without deciding (a job reads the flag right before its
//! decision, not when it is dequeued), and only the decision already in the store's hands is
//! waited for, bounded by the store's timeouts.

mod crtext;
pub mod deferred;
mod reload;
mod reply;
#[cfg(test)]
mod tests;

// The limits and intervals the tests measure against, at the paths they had before the split.
#[cfg(feature = "internals")]
pub use crtext::{
    CRTEXT_PROMPT, CRTEXT_TIMEOUT_SECS, MAX_PENDING_PROMPTS, PROMPTS_PER_ADDRESS, PROMPTS_PER_USER,
    PROMPT_EXPIRY,
};
#[cfg(feature = "internals")]
pub use deferred::{WORKER_QUEUE, WORKER_THREADS};
pub use reload::CONFIG_CHECK_INTERVAL;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use tracing::{error, info, warn};

use crate::auth::{Authenticator, LoginRequest};
use crate::clock;
use crate::config::{Config, StateConfig, TrustedOwners};
use crate::env::AuthEnv;
use crate::ip_limit::{self, IpLimiter};
use crate::log::{self, Sink};
use crate::state::{self, StateStore};

use crtext::{decode_cr_response, Prompted, Prompts};
use deferred::Workers;
use reload::{ConfigWatcher, FileVersion, Seen};
use reply::{client_reason, log_decision, log_user, write_client_reason, write_control};

/// What OpenVPN is told. A decision made in the call is `Accept` or `Reject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Accept,
    Reject,
    /// The answer goes to `auth_control_file` later (or a `CR_TEXT` prompt was sent).
    Deferred,
}

pub struct Plugin {
    core: Arc<Core>,
    /// Reloads motp.toml when it changes; stopped and joined at close. `None` when its thread
    /// could not be started: then logins check the file, at most once a [`CONFIG_CHECK_INTERVAL`].
    watcher: Option<ConfigWatcher>,
    /// When a login last checked motp.toml because there is no watcher.
    checked_at_login: Mutex<Instant>,
    /// With the Redis backend: decisions run on its thread, not on OpenVPN's.
    workers: Option<Mutex<Workers>>,
    crtext: bool,
    /// Logins that were sent a `CR_TEXT` prompt, by `auth_control_file` path.
    prompted: Mutex<Prompts>,
}

/// What workers share with OpenVPN's thread.
struct Core {
    path: PathBuf,
    /// Who may own motp.toml (and the directories above it) for it to be loaded.
    trusted: TrustedOwners,
    config: RwLock<Arc<Config>>,
    /// Where each phone's clock was last seen (drift tracking); forgotten at a config change.
    learned: crate::drift::LearnedOffsets,
    /// What the watcher knows of motp.toml's versions.
    seen: Mutex<Seen>,
    /// The `[state]` the store was opened with; a reload cannot change it.
    state: StateConfig,
    store: Box<dyn StateStore>,
    /// Failures per source address: in this process only, bounded in size.
    addresses: IpLimiter,
    /// How OpenVPN's calls log through `tracing`: straight to the host (`sink`), on
    /// OpenVPN's thread only.
    call_log: log::CallLog,
    /// Logs into `queued`: worker threads.
    worker_dispatch: tracing::Dispatch,
    /// The sinks behind the two dispatchers, for the per-login line written without `tracing`.
    worker_sink: Sink,
    queued: log::Queued,
    sink: Sink,
}

impl Plugin {
    /// Loads the config and opens the state store. Every problem is logged through `sink` and
    /// returned, so OpenVPN refuses to start rather than run with a config the admin did not mean.
    /// motp.toml must be changeable by root and this process's user only. (OpenVPN's path,
    /// `ffi`, says whom to trust itself: [`Plugin::open_trusting`].)
    #[cfg(any(test, feature = "internals"))]
    pub fn open(config_path: &Path, sink: Sink) -> Result<Plugin, String> {
        let trusted = TrustedOwners::root_and(crate::os::effective_uid());
        Plugin::open_watching(config_path, sink, trusted, CONFIG_CHECK_INTERVAL)
    }

    /// [`Plugin::open`], with motp.toml (at open and at every reload) held to `trusted` owners.
    pub fn open_trusting(
        config_path: &Path,
        sink: Sink,
        trusted: TrustedOwners,
    ) -> Result<Plugin, String> {
        Plugin::open_watching(config_path, sink, trusted, CONFIG_CHECK_INTERVAL)
    }

    /// [`Plugin::open_trusting`] with the watcher checking motp.toml every `check_interval`.
    pub fn open_watching(
        config_path: &Path,
        sink: Sink,
        trusted: TrustedOwners,
        check_interval: Duration,
    ) -> Result<Plugin, String> {
        let dispatch = log::dispatch(sink.clone(), tracing::Level::INFO);
        let queued = log::Queued::default();
        // A line of a worker or the watcher: to syslog now, from that thread (never blocking),
        // and queued for OpenVPN's log at its next call.
        let worker_sink = queued.thread_sink();
        let worker_dispatch = log::dispatch(worker_sink.clone(), tracing::Level::INFO);
        tracing::dispatcher::with_default(&dispatch, || {
            let refuse = |message: String| {
                let message = format!("cannot start: {message}");
                error!("{message}");
                message
            };
            let seen = FileVersion::of(config_path);
            let config =
                Config::load_trusting(config_path, trusted).map_err(|e| refuse(e.to_string()))?;
            let store = state::build::open(&config, trusted).map_err(refuse)?;
            if clock::test_hook_active() {
                warn!(
                    "TEST BUILD: {} is set and shifts the plugin's clock",
                    clock::TEST_SKEW_ENV
                );
            }
            if let Some(socket) = log::test_socket() {
                warn!(
                    "TEST BUILD: {} is set: lines of the plugin's threads go to {}, not {}",
                    log::TEST_SYSLOG_ENV,
                    socket.display(),
                    log::SYSLOG_SOCKET
                );
            }
            // Redis decisions wait on the network, and a static password's Argon2id costs
            // milliseconds: both are decided on a worker. The pool of the other backends starts
            // at the first login that needs it (a live reload may add a password).
            let workers = Some(Mutex::new(match &config.state {
                StateConfig::Redis(_) => Workers::start(Instant::now()),
                _ => Workers::idle(Instant::now()),
            }));
            let ready = format!(
                "ready: {} users from {}, {}, {}{}",
                config.users.len(),
                config.path.display(),
                describe_policy(&config.policy),
                state::build::describe(&config.state),
                if config.crtext_prompt {
                    ", crtext prompting on"
                } else {
                    ""
                },
            );
            let crtext = config.crtext_prompt;
            let remote = matches!(config.state, StateConfig::Redis(_));
            let core = Arc::new(Core {
                path: config.path.clone(),
                trusted,
                state: config.state.clone(),
                config: RwLock::new(Arc::new(config)),
                // A local store's row is read at each login (a lookup); Redis's costs a round
                // trip, so there this process's copy is read after a user's first login.
                learned: crate::drift::LearnedOffsets::new(remote),
                seen: Mutex::new(Seen {
                    acted: seen,
                    settling: None,
                }),
                store,
                addresses: IpLimiter::new(ip_limit::DEFAULT_CAPACITY),
                call_log: log::CallLog::new(sink.clone(), dispatch.clone()),
                worker_dispatch,
                worker_sink,
                queued,
                sink,
            });
            let watcher = match ConfigWatcher::start(core.clone(), check_interval) {
                Ok(watcher) => Some(watcher),
                Err(e) => {
                    warn!(
                        "cannot start the config watcher thread ({e}); logins check {} for \
                         changes instead, at most once a second. A task limit is the usual \
                         cause: systemd's LimitNPROC counts every thread of the user OpenVPN \
                         runs as",
                        core.path.display()
                    );
                    None
                }
            };
            info!("{ready}");
            Ok(Plugin {
                core,
                watcher,
                checked_at_login: Mutex::new(Instant::now()),
                workers,
                crtext,
                prompted: Mutex::new(Prompts::default()),
            })
        })
    }

    /// Whether OpenVPN should call `OPENVPN_PLUGIN_CLIENT_CRRESPONSE` (`crtext_prompt = true`).
    pub fn wants_crresponse(&self) -> bool {
        self.crtext
    }

    /// `AUTH_USER_PASS_VERIFY` as OpenVPN calls it: prompts a crtext client for its code,
    /// defers to a worker with the Redis backend, else decides in the call. (OpenVPN's calls
    /// come through [`auth_user_pass_verify_with`](Self::auth_user_pass_verify_with).)
    #[cfg(any(test, feature = "internals"))]
    pub fn auth_user_pass_verify(&self, env: &AuthEnv) -> Answer {
        self.auth_user_pass_verify_with(env, self.core.current_config())
    }

    /// [`auth_user_pass_verify`](Self::auth_user_pass_verify) with the config the caller took
    /// from [`config_in_service`](Self::config_in_service) before it read the env (to
    /// [`prefetch`](crate::config::UserTable::prefetch_slot) the user's entry); a config this
    /// call reloads replaces it.
    pub fn auth_user_pass_verify_with(&self, env: &AuthEnv, config: Arc<Config>) -> Answer {
        self.flush_logs();
        let answer = self.core.call_log.scope(|| {
            let config = if self.check_config_without_watcher() {
                self.core.current_config()
            } else {
                config
            };
            if self.should_prompt(env) {
                match self.prompt(env) {
                    Prompted::Sent => return Answer::Deferred,
                    Prompted::Refused => return Answer::Reject,
                    Prompted::NotSent => {}
                }
            }
            if env.auth_control_file.is_some() && self.defers_logins() {
                if let Some(answer) = self.with_pool(|pool| self.defer(pool, env.to_owned_env())) {
                    return answer;
                }
            }
            self.core.decide_with(&config, env, &self.core.sink)
        });
        self.flush_logs();
        answer
    }

    /// Starts loading the state a decision for `username` will touch
    /// ([`crate::state::StateStore::prefetch`]).
    pub fn prefetch_state(&self, username: &[u8]) {
        self.core.store.prefetch(username);
    }

    /// The config in service now (the watcher may replace it at any time).
    pub fn config_in_service(&self) -> Arc<Config> {
        self.core.current_config()
    }

    /// `OPENVPN_PLUGIN_CLIENT_CRRESPONSE`: the answer to a `CR_TEXT` prompt. Decides it as a
    /// password and writes the result into the prompted login's `auth_control_file`.
    pub fn cr_response(&self, env: &AuthEnv) {
        self.flush_logs();
        self.core.call_log.scope(|| {
            let Some(acf) = env.auth_control_file else {
                warn!(
                    ip = %env.client_address(), user = %log_user(env),
                    "cr-response without auth_control_file; ignored"
                );
                return;
            };
            let was_prompted = self.prompted.lock().take(acf, Instant::now());
            if !was_prompted {
                warn!(
                    ip = %env.client_address(), user = %log_user(env),
                    "cr-response for a login that was not prompted; ignored"
                );
                return;
            }
            let mut owned = Some(env.to_owned_env());
            if let Some(owned) = owned.as_mut() {
                owned.password = Some(decode_cr_response(env.crresponse));
                owned.crresponse = None;
            }
            let deferred = if self.defers_logins() {
                self.with_pool(|pool| {
                    let login = owned.take().expect("taken once");
                    if self.defer(pool, login) == Answer::Reject {
                        write_control(acf, false);
                    }
                })
            } else {
                None
            };
            if deferred.is_none() {
                if let Some(owned) = owned {
                    let verdict = self.core.decide(&owned.borrow(), &self.core.sink);
                    write_control(acf, verdict == Answer::Accept);
                }
            }
        });
        self.flush_logs();
    }

    /// Writes the lines workers logged since the last call. OpenVPN's thread only.
    pub fn flush_logs(&self) {
        self.core.queued.flush(&self.core.sink);
    }
}

impl Drop for Plugin {
    /// Answers queued logins `0`, waits for the one being decided, joins the workers, and
    /// writes what they logged: nothing of this instance runs after `openvpn_plugin_close_v1`.
    /// The closing flag goes up first, so the worker stops taking on Redis work while the
    /// watcher is being stopped.
    fn drop(&mut self) {
        let pool = self.workers.take().and_then(|w| w.into_inner().pool);
        if let Some(pool) = &pool {
            pool.begin_closing();
        }
        // No new Redis command starts from here on: the worker finishes at most the one in
        // progress (bounded by timeout_ms).
        self.core.store.begin_closing();
        if let Some(watcher) = self.watcher.take() {
            watcher.stop();
        }
        if let Some(mut pool) = pool {
            pool.shutdown();
        }
        self.flush_logs();
    }
}

impl Core {
    /// Decides with the current config, logs the decision to `log` (OpenVPN's log on its
    /// thread, the queue on a worker), writes the client reason on rejection.
    fn decide(&self, env: &AuthEnv, log: &Sink) -> Answer {
        self.decide_with(&self.current_config(), env, log)
    }

    /// [`decide`](Self::decide) with `config`, the one in service when the login came in.
    fn decide_with(&self, config: &Config, env: &AuthEnv, log: &Sink) -> Answer {
        let request = LoginRequest {
            username: env.username,
            password: env.password,
            common_name: env.common_name,
        };
        let now = clock::now();
        let auth = Authenticator {
            policy: &config.policy,
            users: &config.users,
            store: &*self.store,
            learned: Some(&self.learned),
        };
        let client = env.untrusted_ip.or(env.untrusted_ip6);
        let decision = auth.decide_from(&request, client, &self.addresses, now);
        log_decision(env, &decision, log);
        if decision.is_accepted() {
            return Answer::Accept;
        }
        let disclose_lock = auth.may_disclose_lock(&request);
        if let (Some(path), Some(reason)) = (
            env.auth_failed_reason_file,
            client_reason(&decision, now, disclose_lock),
        ) {
            write_client_reason(path, &reason);
        }
        Answer::Reject
    }

    /// The table in service. Never reads the file: that is the watcher's job.
    fn current_config(&self) -> Arc<Config> {
        self.config.read().clone()
    }
}

/// The policy in the start-up and reload log lines.
fn describe_policy(policy: &crate::config::Policy) -> String {
    format!(
        "window ±{} s, lock after {} failures for {} s, CN binding {}",
        policy.window_secs,
        policy.max_failures,
        policy.lockout_secs,
        if policy.require_common_name {
            "on"
        } else {
            "off"
        },
    )
}
