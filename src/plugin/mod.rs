//! One loaded instance of the plugin: the config it serves, its state store, and its log.
//! Safe Rust; `ffi` turns OpenVPN's calls into calls on this.
//!
//! The user table and policy are reloaded live, off OpenVPN's thread: a watcher thread stats
//! motp.toml once a second, and when its inode, size, mode or times changed and then stayed so
//! for one more check, reads and validates it, then swaps the new table in. Logins never wait
//! for that (a large user table takes a second or more to load, and OpenVPN's single event loop
//! would stall for all clients); they use the table in service until the new one is ready, so
//! an edit takes effect one to two seconds later, and a file still being written is not read.
//! An invalid file is logged once (file, line, key) and the previous table keeps serving. The
//! `[state]` table and `crtext_prompt` are only read at open: they stay the same until a SIGHUP.
//! The watcher's log lines, like the workers', go to syslog at once and to OpenVPN's log at the
//! next call (see below).
//!
//! **Deferred decisions.** With the Redis backend a decision waits on the network, which must
//! never stall OpenVPN's one event loop. When OpenVPN offers an `auth_control_file`, the login
//! is copied out of envp (the password into a buffer wiped on drop) and queued for a small pool
//! of worker threads ([`crate::deferred`]); OpenVPN is told `DEFERRED`. The worker decides,
//! writes `auth_failed_reason_file` and then `1`/`0` into `auth_control_file`. A full queue is
//! a synchronous rejection (`TEMP[backoff N]`). Without an `auth_control_file` the decision is
//! made in the call, with the store's timeouts bounding it.
//!
//! **Log lines of the plugin's own threads.** OpenVPN's `plugin_log` may only be called on
//! OpenVPN's thread, so a line logged by a worker or the watcher is sent at once, from that
//! thread, to the local syslog socket ([`log::Syslog`]: `/dev/log`, identifier `openvpn-motp`,
//! facility authpriv for login decisions and daemon for the rest; non-blocking, a missing
//! socket is said once), and also queued: the next call from OpenVPN (any login, or the close)
//! writes the queued copy to OpenVPN's log, so `--log` files and `--status`-only set-ups still
//! get every line. Lines logged on OpenVPN's thread go to OpenVPN's log only, at once.
//!
//! **Closing** (`openvpn_plugin_close_v1`, at every SIGHUP) must not leave a thread running
//! (OpenVPN `dlclose`s the library right after), so it joins the worker, and it must not hang
//! OpenVPN, so it first raises the pool's closing flag: logins still queued are answered `0`
//! (`TEMP[backoff 5]` to the client) without deciding (a job reads the flag right before its
//! decision, not when it is dequeued), and only the decision already in the store's hands is
//! waited for, bounded by the store's timeouts.
//!
//! **crtext prompting** (`crtext_prompt = true`, OpenVPN 2.6+). A client that announces
//! `IV_SSO=...crtext...` and sends a password that is not a code (empty, or a placeholder
//! such as `-`: anything [`password::parse`] does not read as a code) is asked for the code:
//! the plugin writes `auth_pending_file` (`<timeout>`, `crtext`, `CR_TEXT:E,R:<prompt>`) and
//! returns `DEFERRED`. OpenVPN sends the prompt, and the client's answer arrives as
//! `OPENVPN_PLUGIN_CLIENT_CRRESPONSE` with env `crresponse` (base64) in the same per-client env
//! (username, common_name, addresses, and the `auth_control_file` of that login). The plugin
//! decides it like a password and answers through that `auth_control_file`; OpenVPN ignores
//! the return value of the CRRESPONSE call. A cr-response for a login that was not prompted is
//! ignored. Every other client keeps the normal path.
//!
//! Prompts awaiting an answer are bounded ([`Prompts`]): at most [`PROMPTS_PER_ADDRESS`] per
//! client address (its network, as the per-address limit counts it: by default an IPv6 /64; not
//! at all when that limit is off), [`PROMPTS_PER_USER`] per username and certificate, and
//! [`MAX_PENDING_PROMPTS`] in all, each forgotten [`PROMPT_EXPIRY`] after it was sent (when
//! OpenVPN has given up on it). A login over a limit is refused with `TEMP[backoff 10]`, not
//! counted as a failure, so a flood from one address or naming one user cannot switch prompting
//! off for others, nor lock a user out. An address locked for failures is refused as `address
//! locked` before any prompt is sent.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};
use tracing::{error, info, warn};
use zeroize::Zeroizing;

use crate::auth::{Authenticator, Decision, LoginRequest};
use crate::clock;
use crate::config::{Config, StateConfig, TrustedOwners};
use crate::deferred::{Job, WorkerPool};
use crate::env::{AuthEnv, OwnedAuthEnv};
use crate::ip_limit::{self, IpLimiter};
use crate::log::{self, Sink};
use crate::password;
use crate::state::{MemoryStore, RedisStore, SqliteStore, StateStore};

/// What OpenVPN is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Reject,
}

/// What OpenVPN is told when the plugin may defer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Accept,
    Reject,
    /// The answer goes to `auth_control_file` later (or a `CR_TEXT` prompt was sent).
    Deferred,
}

impl From<Verdict> for Answer {
    fn from(v: Verdict) -> Answer {
        match v {
            Verdict::Accept => Answer::Accept,
            Verdict::Reject => Answer::Reject,
        }
    }
}

/// Worker threads deciding deferred logins (Redis backend). One: a decision waits on Redis for
/// a fraction of a millisecond, and systemd's `LimitNPROC` (10 in Debian's unit) counts every
/// thread of the runtime user, across all OpenVPN instances running as that user.
pub const WORKER_THREADS: usize = 1;
/// How long after a worker thread could not be started the plugin tries again.
const WORKER_RETRY: Duration = Duration::from_secs(10);
/// Logins waiting for a worker; one more is rejected at once with `TEMP[backoff N]`.
pub const WORKER_QUEUE: usize = 256;
/// Seconds the client is given to answer a `CR_TEXT` prompt, as written in the prompt. OpenVPN
/// waits at most that long, less if `max(reneg-sec / 2, hand-window)` minus the time the
/// handshake already took is shorter (`send_auth_pending_messages` in OpenVPN 2.6's push.c;
/// with the defaults, 3600 s and 60 s, the cap is 1800 s and 120 s stands).
pub const CRTEXT_TIMEOUT_SECS: u32 = 120;
pub const CRTEXT_PROMPT: &str = "Enter your mOTP code";
/// Prompts awaiting an answer from one client address (its network: `ip_prefix_v4` and
/// `ip_prefix_v6`, by default /32 and /64; not counted with `max_failures_per_ip = 0`). A user
/// has one login waiting at a time, a few when a client retries or several devices connect;
/// eight leaves room for a handful of people behind one NAT answering at the same moment, while
/// a flood from one address holds at most eight of the table's entries.
pub const PROMPTS_PER_ADDRESS: usize = 8;
/// Prompts awaiting an answer for one username presented with one certificate (common name):
/// a retry or two and a second device. Counted per certificate too, so a holder of another
/// certificate naming this user fills only their own four, never the user's.
pub const PROMPTS_PER_USER: usize = 4;
/// Prompts awaiting an answer in all (memory bound: a flood needs 512 addresses to reach it).
pub const MAX_PENDING_PROMPTS: usize = 4096;
/// How long a prompt is remembered: the prompt's own timeout, which OpenVPN never exceeds (it
/// can only shorten it, see [`CRTEXT_TIMEOUT_SECS`]), and a few seconds for OpenVPN to read the
/// prompt file after the plugin wrote it. OpenVPN passes no `hand-window` or `reneg-sec` to a
/// plugin, so the prompt cannot be forgotten sooner without dropping answers OpenVPN still
/// takes.
pub const PROMPT_EXPIRY: Duration = Duration::from_secs(CRTEXT_TIMEOUT_SECS as u64 + 5);
/// What the client is told when a prompt limit is reached.
const PROMPT_LIMIT_REASON: &str =
    "TEMP[backoff 10]: too many logins waiting for a code, try again shortly";
/// Worker log lines kept for OpenVPN's thread at most; more are counted and dropped.
const MAX_QUEUED_LOG_LINES: usize = 4096;

/// How often the watcher stats motp.toml.
pub const CONFIG_CHECK_INTERVAL: Duration = Duration::from_secs(1);

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
    /// What the watcher knows of motp.toml's versions.
    seen: Mutex<Seen>,
    /// The `[state]` the store was opened with; a reload cannot change it.
    state: StateConfig,
    store: Box<dyn StateStore>,
    /// Failures per source address: in this process only, bounded in size.
    addresses: IpLimiter,
    /// Logs straight to the host: OpenVPN's thread only.
    dispatch: tracing::Dispatch,
    /// Logs into `queued`: worker threads.
    worker_dispatch: tracing::Dispatch,
    /// The sinks behind the two dispatchers, for the per-login line written without `tracing`.
    worker_sink: Sink,
    queued: Arc<Mutex<LogQueue>>,
    sink: Sink,
}

/// The worker pool of the Redis backend, started again later when its thread could not be.
struct Workers {
    pool: Option<WorkerPool>,
    /// When to try starting the pool again (it is `None`).
    retry_at: Instant,
}

impl Workers {
    fn start(now: Instant) -> Workers {
        let mut workers = Workers {
            pool: None,
            retry_at: now,
        };
        workers.try_start(now);
        workers
    }

    /// Starts the pool if it is missing and the retry time has come. Failures are logged with
    /// the cause and the fix; the caller then decides in the call.
    fn try_start(&mut self, now: Instant) {
        if self.pool.is_some() || now < self.retry_at {
            return;
        }
        match WorkerPool::new(WORKER_THREADS, WORKER_QUEUE) {
            Ok(pool) => {
                if self.retry_at != now {
                    info!("started the worker thread; logins are deferred again");
                }
                self.pool = Some(pool);
            }
            Err(e) => {
                self.retry_at = now + WORKER_RETRY;
                error!(
                    "cannot start a worker thread ({e}); logins are decided on OpenVPN's thread \
                     meanwhile, each waiting for Redis up to timeout_ms; trying again in {} s. \
                     The usual cause is a task limit: systemd's LimitNPROC counts every thread \
                     of the user OpenVPN runs as, in every instance (the plugin needs {} per \
                     instance with Redis); raise LimitNPROC for the unit or run fewer daemons \
                     as that user",
                    WORKER_RETRY.as_secs(),
                    TASKS_PER_REDIS_INSTANCE,
                );
            }
        }
    }
}

/// The tasks one OpenVPN instance with the Redis backend needs: OpenVPN's own thread, the
/// config watcher and the worker.
const TASKS_PER_REDIS_INSTANCE: usize = 2 + WORKER_THREADS;

#[derive(Default)]
struct LogQueue {
    lines: Vec<(tracing::Level, String)>,
    dropped: usize,
}

impl LogQueue {
    fn push(&mut self, level: tracing::Level, line: &str) {
        if self.lines.len() < MAX_QUEUED_LOG_LINES {
            self.lines.push((level, line.to_owned()));
        } else {
            self.dropped += 1;
        }
    }
}

/// The watcher's view of motp.toml. A version is `None` when the file could not be examined.
struct Seen {
    /// The version last acted upon: loaded, or refused and logged.
    acted: Option<FileVersion>,
    /// A newer version seen at the last check; acted upon if the next check still sees it.
    settling: Option<Option<FileVersion>>,
}

/// What tells one version of the config file from another, from one `stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileVersion {
    dev: u64,
    ino: u64,
    size: u64,
    mode: u32,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileVersion {
    fn of(path: &Path) -> Option<FileVersion> {
        let m = std::fs::metadata(path).ok()?;
        Some(FileVersion {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mode: m.mode(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }
}

impl Plugin {
    /// Loads the config and opens the state store. Every problem is logged through `sink` and
    /// returned, so OpenVPN refuses to start rather than run with a config the admin did not mean.
    /// motp.toml must be changeable by root and this process's user only.
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
        let queued: Arc<Mutex<LogQueue>> = Arc::default();
        // A line of a worker or the watcher: to syslog now, from that thread (never blocking),
        // and queued for OpenVPN's log at its next call.
        let worker_sink: Sink = {
            let queued = queued.clone();
            let syslog = log::Syslog::open();
            Arc::new(move |level, line: &str| {
                let trouble = syslog.send(level, line);
                let mut q = queued.lock();
                q.push(level, line);
                if let Some(trouble) = trouble {
                    q.push(tracing::Level::WARN, &trouble);
                }
            })
        };
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
            let store = open_store(&config, trusted).map_err(refuse)?;
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
            let workers = match &config.state {
                StateConfig::Redis(_) => Some(Mutex::new(Workers::start(Instant::now()))),
                _ => None,
            };
            let ready = format!(
                "ready: {} users from {}, {}, {}{}",
                config.users.len(),
                config.path.display(),
                describe_policy(&config.policy),
                describe_state(&config.state),
                if config.crtext_prompt {
                    ", crtext prompting on"
                } else {
                    ""
                },
            );
            let crtext = config.crtext_prompt;
            let core = Arc::new(Core {
                path: config.path.clone(),
                trusted,
                state: config.state.clone(),
                config: RwLock::new(Arc::new(config)),
                seen: Mutex::new(Seen {
                    acted: seen,
                    settling: None,
                }),
                store,
                addresses: IpLimiter::new(ip_limit::DEFAULT_CAPACITY),
                dispatch: dispatch.clone(),
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

    pub fn config_path(&self) -> &PathBuf {
        &self.core.path
    }

    /// Whether OpenVPN should call `OPENVPN_PLUGIN_CLIENT_CRRESPONSE` (`crtext_prompt = true`).
    pub fn wants_crresponse(&self) -> bool {
        self.crtext
    }

    /// Decides one `AUTH_USER_PASS_VERIFY` in the call, logs the decision once, and writes the
    /// client-facing reason when OpenVPN offers `auth_failed_reason_file`.
    pub fn authenticate(&self, env: &AuthEnv) -> Verdict {
        self.flush_logs();
        let verdict = tracing::dispatcher::with_default(&self.core.dispatch, || {
            self.core.decide(env, &self.core.sink)
        });
        self.flush_logs();
        verdict
    }

    /// `AUTH_USER_PASS_VERIFY` as OpenVPN calls it: prompts a crtext client for its code,
    /// defers to a worker with the Redis backend, else decides in the call.
    pub fn auth_user_pass_verify(&self, env: &AuthEnv) -> Answer {
        self.flush_logs();
        let answer = tracing::dispatcher::with_default(&self.core.dispatch, || {
            self.check_config_without_watcher();
            if self.should_prompt(env) {
                match self.prompt(env) {
                    Prompted::Sent => return Answer::Deferred,
                    Prompted::Refused => return Answer::Reject,
                    Prompted::NotSent => {}
                }
            }
            if env.auth_control_file.is_some() {
                if let Some(answer) = self.with_pool(|pool| self.defer(pool, env.to_owned_env())) {
                    return answer;
                }
            }
            self.core.decide(env, &self.core.sink).into()
        });
        self.flush_logs();
        answer
    }

    /// `OPENVPN_PLUGIN_CLIENT_CRRESPONSE`: the answer to a `CR_TEXT` prompt. Decides it as a
    /// password and writes the result into the prompted login's `auth_control_file`.
    pub fn cr_response(&self, env: &AuthEnv) {
        self.flush_logs();
        tracing::dispatcher::with_default(&self.core.dispatch, || {
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
            let deferred = self.with_pool(|pool| {
                let login = owned.take().expect("taken once");
                if self.defer(pool, login) == Answer::Reject {
                    write_control(acf, false);
                }
            });
            if deferred.is_none() {
                if let Some(owned) = owned {
                    let verdict = self.core.decide(&owned.borrow(), &self.core.sink);
                    write_control(acf, verdict == Verdict::Accept);
                }
            }
        });
        self.flush_logs();
    }

    /// Writes the lines workers logged since the last call. OpenVPN's thread only.
    pub fn flush_logs(&self) {
        let (lines, dropped) = {
            let mut q = self.core.queued.lock();
            (std::mem::take(&mut q.lines), std::mem::take(&mut q.dropped))
        };
        for (level, line) in lines {
            (self.core.sink)(level, &line);
        }
        if dropped > 0 {
            (self.core.sink)(
                tracing::Level::WARN,
                &format!("{dropped} log lines of worker threads were dropped (too many at once)"),
            );
        }
    }

    /// Runs `job` with the worker pool, starting it if it is missing and due for a retry.
    /// `None` without a pool (no Redis backend, or its thread cannot be started).
    fn with_pool<T>(&self, job: impl FnOnce(&WorkerPool) -> T) -> Option<T> {
        let mut workers = self.workers.as_ref()?.lock();
        workers.try_start(Instant::now());
        workers.pool.as_ref().map(job)
    }

    /// Without a watcher thread, a login looks at motp.toml at most once a check interval
    /// (a `stat`; the file is read only when it changed and then stayed the same for a check).
    fn check_config_without_watcher(&self) {
        if self.watcher.is_some() {
            return;
        }
        {
            let mut checked = self.checked_at_login.lock();
            if checked.elapsed() < CONFIG_CHECK_INTERVAL {
                return;
            }
            *checked = Instant::now();
        }
        self.core.reload_if_changed();
    }

    fn should_prompt(&self, env: &AuthEnv) -> bool {
        self.crtext
            && env.supports_crtext()
            && env.auth_pending_file.is_some()
            && env.auth_control_file.is_some()
            && !matches!(env.password.map(password::parse), Some(Ok(_)))
    }

    /// Writes the `CR_TEXT` prompt, unless the client's address is locked or a prompt limit
    /// is reached (then the login is refused, with `TEMP[backoff N]` for the client). `NotSent`
    /// (normal path) if the prompt file cannot be written.
    fn prompt(&self, env: &AuthEnv) -> Prompted {
        let (Some(acf), Some(apf)) = (env.auth_control_file, env.auth_pending_file) else {
            return Prompted::NotSent;
        };
        let client = env
            .untrusted_ip
            .or(env.untrusted_ip6)
            .and_then(ip_limit::parse_ip);
        let now = clock::now();
        // As the decision would: a locked address is refused whatever it sends, so asking it
        // for a code would only hold a prompt (and the client) for nothing.
        if let Some(until) = client.and_then(|ip| self.core.addresses.locked_until(ip, now)) {
            let decision = Decision::AddressLocked { until };
            log_decision(env, &decision, &self.core.sink);
            if let (Some(path), Some(reason)) = (
                env.auth_failed_reason_file,
                client_reason(&decision, now, false),
            ) {
                write_client_reason(path, &reason);
            }
            return Prompted::Refused;
        }
        // An address counts as its network, as for the per-address limit (`ip_prefix_v4`,
        // `ip_prefix_v6`); with that limit off (`max_failures_per_ip = 0`: every client comes
        // through one address) prompts are not counted per address either.
        let policy = self.core.current_config().policy.ip_policy();
        let address = client
            .filter(|_| policy.max_failures > 0)
            .map(|ip| ip_limit::network(ip, policy.prefix_v4, policy.prefix_v6));
        let admitted = self.prompted.lock().admit(
            acf,
            address,
            env.username.unwrap_or_default(),
            env.common_name.unwrap_or_default(),
            Instant::now(),
        );
        if let Err(limit) = admitted {
            log_prompt_limit(env, limit, &self.core.sink);
            if let Some(path) = env.auth_failed_reason_file {
                write_client_reason(path, PROMPT_LIMIT_REASON);
            }
            return Prompted::Refused;
        }
        let text = format!("{CRTEXT_TIMEOUT_SECS}\ncrtext\nCR_TEXT:E,R:{CRTEXT_PROMPT}\n");
        if let Err(e) = write_answer_file(apf, text.as_bytes()) {
            warn!(
                "cannot write auth_pending_file {}: {e}",
                path_of(apf).display()
            );
            self.prompted.lock().take(acf, Instant::now());
            return Prompted::NotSent;
        }
        info!(ip = %env.client_address(), user = %log_user(env), "asked for the code (crtext)");
        Prompted::Sent
    }

    /// Queues the decision for a worker; a full queue rejects now.
    fn defer(&self, pool: &WorkerPool, login: OwnedAuthEnv) -> Answer {
        let reason_file = login.auth_failed_reason_file.clone();
        let core = self.core.clone();
        let job: Job = Box::new(move |closing| core.decide_deferred(&login, closing));
        match pool.submit(job) {
            Ok(()) => Answer::Deferred,
            Err(job) => {
                drop(job);
                warn!("{WORKER_QUEUE} logins are waiting for a decision; rejecting one");
                if let Some(path) = reason_file {
                    write_client_reason(&path, "TEMP[backoff 5]: server busy, try again shortly");
                }
                Answer::Reject
            }
        }
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

/// What [`Plugin::prompt`] did.
enum Prompted {
    /// The prompt was written: the login is `DEFERRED` until the answer comes.
    Sent,
    /// The login was refused instead (address locked, or a prompt limit).
    Refused,
    /// No prompt could be written: the login takes the normal path.
    NotSent,
}

/// Which limit refused a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PromptLimit {
    Address,
    User,
    Table,
}

/// `CR_TEXT` prompts awaiting an answer, with the limits of the module doc. Every operation
/// first forgets the prompts older than [`PROMPT_EXPIRY`], oldest first (they expire in the
/// order they were sent), so the work per call is constant on average.
#[derive(Default)]
struct Prompts {
    pending: HashMap<Vec<u8>, Pending>,
    /// `(expiry, id, auth_control_file)` in the order prompts were sent. A prompt answered
    /// meanwhile leaves its entry here until it would have expired (or the queue is compacted).
    order: VecDeque<(Instant, u64, Vec<u8>)>,
    per_address: HashMap<IpAddr, usize>,
    per_user: HashMap<(Vec<u8>, Vec<u8>), usize>,
    next_id: u64,
}

struct Pending {
    id: u64,
    address: Option<IpAddr>,
    user: (Vec<u8>, Vec<u8>),
}

impl Prompts {
    /// Records a prompt about to be sent for the login answering through `acf`, or says which
    /// limit refuses it. `address` is the client's network, `None` for not counted per address.
    fn admit(
        &mut self,
        acf: &[u8],
        address: Option<IpAddr>,
        username: &[u8],
        common_name: &[u8],
        now: Instant,
    ) -> Result<(), PromptLimit> {
        self.expire(now);
        // OpenVPN makes a new auth_control_file per login; the same one again replaces it.
        self.take(acf, now);
        let user = (
            username[..username.len().min(crate::config::MAX_USERNAME_LEN + 1)].to_vec(),
            common_name[..common_name.len().min(256)].to_vec(),
        );
        let full =
            |a: &IpAddr| self.per_address.get(a).copied().unwrap_or(0) >= PROMPTS_PER_ADDRESS;
        if address.as_ref().is_some_and(full) {
            return Err(PromptLimit::Address);
        }
        if self.per_user.get(&user).copied().unwrap_or(0) >= PROMPTS_PER_USER {
            return Err(PromptLimit::User);
        }
        if self.pending.len() >= MAX_PENDING_PROMPTS {
            return Err(PromptLimit::Table);
        }
        let id = self.next_id;
        self.next_id += 1;
        if let Some(address) = address {
            *self.per_address.entry(address).or_default() += 1;
        }
        *self.per_user.entry(user.clone()).or_default() += 1;
        self.pending
            .insert(acf.to_vec(), Pending { id, address, user });
        self.order
            .push_back((now + PROMPT_EXPIRY, id, acf.to_vec()));
        if self.order.len() >= 2 * MAX_PENDING_PROMPTS {
            let pending = &self.pending;
            self.order
                .retain(|(_, id, acf)| pending.get(acf).is_some_and(|p| p.id == *id));
        }
        Ok(())
    }

    /// Forgets the prompt of `acf`; `true` if it was awaiting an answer and had not expired.
    fn take(&mut self, acf: &[u8], now: Instant) -> bool {
        self.expire(now);
        match self.pending.remove(acf) {
            Some(prompt) => {
                self.release(&prompt);
                true
            }
            None => false,
        }
    }

    fn expire(&mut self, now: Instant) {
        while self
            .order
            .front()
            .is_some_and(|(expiry, _, _)| *expiry <= now)
        {
            let Some((_, id, acf)) = self.order.pop_front() else {
                break;
            };
            if self.pending.get(&acf).is_some_and(|p| p.id == id) {
                if let Some(prompt) = self.pending.remove(&acf) {
                    self.release(&prompt);
                }
            }
        }
    }

    fn release(&mut self, prompt: &Pending) {
        fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
            if let Some(n) = map.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    map.remove(key);
                }
            }
        }
        if let Some(address) = &prompt.address {
            decrement(&mut self.per_address, address);
        }
        decrement(&mut self.per_user, &prompt.user);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.pending.len()
    }
}

/// `login rejected ip=... reason="too many prompts" detail="..." user=...`: a login over a
/// prompt limit.
fn log_prompt_limit(env: &AuthEnv, limit: PromptLimit, sink: &Sink) {
    let detail = match limit {
        PromptLimit::Address => {
            format!("{PROMPTS_PER_ADDRESS} prompts of this address await an answer")
        }
        PromptLimit::User => format!("{PROMPTS_PER_USER} prompts of this user await an answer"),
        PromptLimit::Table => format!("{MAX_PENDING_PROMPTS} prompts await an answer"),
    };
    let line = log_ip(env, log::Line::new("login rejected"))
        .field("reason", "too many prompts")
        .field("detail", detail);
    log_user_field(env, line).send(sink, tracing::Level::WARN);
}

impl Core {
    /// Decides with the current config, logs the decision to `log` (OpenVPN's log on its
    /// thread, the queue on a worker), writes the client reason on rejection.
    fn decide(&self, env: &AuthEnv, log: &Sink) -> Verdict {
        let config = self.current_config();
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
        };
        let client = env
            .untrusted_ip
            .or(env.untrusted_ip6)
            .and_then(ip_limit::parse_ip);
        let decision = auth.decide_from(&request, client, &self.addresses, now);
        log_decision(env, &decision, log);
        if decision.is_accepted() {
            return Verdict::Accept;
        }
        let disclose_lock = auth.may_disclose_lock(&request);
        if let (Some(path), Some(reason)) = (
            env.auth_failed_reason_file,
            client_reason(&decision, now, disclose_lock),
        ) {
            write_client_reason(path, &reason);
        }
        Verdict::Reject
    }

    /// A worker's job: decide (or, when closing, refuse without deciding), then write the
    /// reason and the control file, in that order. A panic still answers `0`. `closing` is read
    /// as late as possible, right before the decision (the pool may start closing while this
    /// job waited for the lock or ran the logging set-up).
    fn decide_deferred(&self, login: &OwnedAuthEnv, closing: &AtomicBool) {
        tracing::dispatcher::with_default(&self.worker_dispatch, || {
            let env = login.borrow();
            let Some(acf) = env.auth_control_file else {
                return;
            };
            let answer = AnswerOnDrop { acf, accept: false };
            if closing.load(Ordering::SeqCst) {
                if let Some(path) = env.auth_failed_reason_file {
                    write_client_reason(
                        path,
                        "TEMP[backoff 5]: server restarting, try again shortly",
                    );
                }
                warn!(
                    ip = %env.client_address(), reason = "closing", user = %log_user(&env),
                    "login rejected"
                );
                return;
            }
            let verdict = self.decide(&env, &self.worker_sink);
            let mut answer = answer;
            answer.accept = verdict == Verdict::Accept;
        });
    }

    /// The table in service. Never reads the file: that is the watcher's job.
    fn current_config(&self) -> Arc<Config> {
        self.config.read().clone()
    }

    /// Reloads motp.toml once a change has settled: a version is acted upon when two checks in
    /// a row saw it (an editor or `cp` writing the file in place is never read half-way), and
    /// only if the file did not change while it was being read. Each version is acted upon
    /// once, whether it loads or not. Runs on the watcher thread.
    fn reload_if_changed(&self) {
        let current = FileVersion::of(&self.path);
        {
            let mut seen = self.seen.lock();
            if current == seen.acted {
                seen.settling = None;
                return;
            }
            if seen.settling != Some(current) {
                seen.settling = Some(current);
                return;
            }
        }
        let loaded = Config::load_trusting(&self.path, self.trusted);
        if FileVersion::of(&self.path) != current {
            return; // written to while being read: the next checks see the newer version
        }
        {
            let mut seen = self.seen.lock();
            seen.acted = current;
            seen.settling = None;
        }
        self.apply(loaded);
    }

    fn apply(&self, loaded: Result<Config, crate::config::ConfigError>) {
        match loaded {
            Ok(new) => {
                if new.state != self.state {
                    warn!(
                        "{}: the [state] table changed; the state store changes only when \
                         OpenVPN reloads the plugin (SIGHUP) or restarts, still {}",
                        self.path.display(),
                        describe_state(&self.state),
                    );
                }
                info!(
                    "reloaded {}: {} users, {}",
                    self.path.display(),
                    new.users.len(),
                    describe_policy(&new.policy),
                );
                self.store.set_retention(new.policy.retention_secs());
                *self.config.write() = Arc::new(new);
            }
            Err(e) => error!(
                "{e}; the file changed but cannot be used, so the previous user table stays in \
                 use until it is fixed"
            ),
        }
    }
}

/// The thread that watches motp.toml. Its log lines go to syslog and to the queue OpenVPN's
/// thread writes out.
struct ConfigWatcher {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: std::thread::JoinHandle<()>,
}

impl ConfigWatcher {
    fn start(core: Arc<Core>, every: Duration) -> std::io::Result<ConfigWatcher> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = stop.clone();
        let thread = std::thread::Builder::new()
            .name("motp-config".into())
            .spawn(move || loop {
                {
                    let (stopped, wake) = &*signal;
                    let mut stopped = stopped.lock();
                    if !*stopped {
                        wake.wait_for(&mut stopped, every);
                    }
                    if *stopped {
                        return;
                    }
                }
                tracing::dispatcher::with_default(&core.worker_dispatch, || {
                    let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        core.reload_if_changed()
                    }));
                    if checked.is_err() {
                        error!(
                            "checking {} for changes failed unexpectedly; the table in service \
                             stays in use",
                            core.path.display()
                        );
                    }
                });
            })?;
        Ok(ConfigWatcher { stop, thread })
    }

    /// Wakes the thread and waits for it (a reload in progress finishes first).
    fn stop(self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock() = true;
        wake.notify_all();
        // A panic in the watcher was already contained to its thread; nothing to add here.
        let _ = self.thread.join();
    }
}

/// Opens the store `[state]` asks for. Errors say what to fix.
fn open_store(config: &Config, trusted: TrustedOwners) -> Result<Box<dyn StateStore>, String> {
    match &config.state {
        StateConfig::Memory => {
            warn!(
                "state backend is \"memory\": replay and lockout state is lost at every \
                 SIGHUP or restart"
            );
            Ok(Box::new(MemoryStore::new()))
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

/// Writes `1` or `0` into `auth_control_file` when dropped: a worker that panics still answers.
struct AnswerOnDrop<'a> {
    acf: &'a [u8],
    accept: bool,
}

impl Drop for AnswerOnDrop<'_> {
    fn drop(&mut self) {
        write_control(self.acf, self.accept);
    }
}

fn path_of(raw: &[u8]) -> &Path {
    use std::os::unix::ffi::OsStrExt;
    Path::new(std::ffi::OsStr::from_bytes(raw))
}

/// Writes one of the files OpenVPN hands the plugin for its answer (`auth_control_file`,
/// `auth_pending_file`, `auth_failed_reason_file`). OpenVPN creates each one empty before the
/// call, so the plugin never creates a file (a removed one stays removed: the login is then
/// refused at hand-window) and never follows a symlink put in its place. Opening without
/// `O_TRUNC` matters: on ext4 a truncating open forces writeback at close (measured ~45 µs per
/// rejection, on OpenVPN's single event loop); a file that was not empty is cut after writing.
fn write_answer_file(raw_path: &[u8], content: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path_of(raw_path))?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    file.write_all(content)?;
    if meta.len() > content.len() as u64 {
        file.set_len(content.len() as u64)?;
    }
    Ok(())
}

/// The decision for OpenVPN's deferred auth: `1` or `0` as the file's first byte.
fn write_control(acf: &[u8], accept: bool) {
    let path = path_of(acf);
    if let Err(e) = write_answer_file(acf, if accept { b"1" } else { b"0" }) {
        error!(
            "cannot write auth_control_file {}: {e}; OpenVPN rejects the login at hand-window",
            path.display()
        );
    }
}

/// The code out of a base64 cr-response (whitespace around it ignored), wiped on drop. Not
/// base64: the raw bytes, which the decision then rejects as a malformed password.
fn decode_cr_response(raw: Option<&[u8]>) -> Zeroizing<Vec<u8>> {
    use base64::Engine;
    let raw = raw.unwrap_or_default();
    let mut out = Zeroizing::new(Vec::with_capacity(raw.len()));
    match base64::engine::general_purpose::STANDARD.decode_vec(raw.trim_ascii(), &mut out) {
        Ok(()) => Zeroizing::new(out.trim_ascii().to_vec()),
        Err(_) => Zeroizing::new(raw.to_vec()),
    }
}

/// The username for a `tracing` field (the layer writes it in logfmt, escaped): lossy UTF-8,
/// at most `MAX_USERNAME_LEN` bytes.
fn log_user(env: &AuthEnv) -> String {
    match env.username {
        Some(u) => {
            String::from_utf8_lossy(&u[..u.len().min(crate::config::MAX_USERNAME_LEN)]).into_owned()
        }
        None => "(none)".to_owned(),
    }
}

/// ` ip=...`: the first field of every login line, OpenVPN's address of the client (never
/// chosen by it), so a filter anchored on `login rejected ip=` reads the real address.
fn log_ip(env: &AuthEnv, line: log::Line) -> log::Line {
    match env.untrusted_ip.or(env.untrusted_ip6) {
        Some(ip) => line.bytes_field("ip", ip, 64),
        None => line.field("ip", "unknown"),
    }
}

/// ` user=...`: the last field of every login line (the client chose it).
fn log_user_field(env: &AuthEnv, line: log::Line) -> log::Line {
    match env.username {
        Some(user) => line.bytes_field("user", user, crate::config::MAX_USERNAME_LEN),
        None => line.field("user", "(none)"),
    }
}

fn describe_state(state: &StateConfig) -> String {
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

/// The one line every login writes: `login accepted|rejected ip=... ... user=...`, the fixed
/// fields first and the client's username last (`login rejected ip=127.0.0.1 reason="bad code"
/// user=alice`, `login accepted ip=... step_offset=+0 user=alice`).
fn log_decision(env: &AuthEnv, decision: &Decision, sink: &Sink) {
    let (message, level) = if decision.is_accepted() {
        ("login accepted", tracing::Level::INFO)
    } else {
        // The store logs an outage once (error); each login refused meanwhile is a warning.
        ("login rejected", tracing::Level::WARN)
    };
    let line = log_ip(env, log::Line::new(message));
    let line = match decision {
        Decision::Accepted { step_offset } => {
            line.field("step_offset", format_args!("{step_offset:+}"))
        }
        Decision::MalformedPassword(why) => {
            line.field("reason", decision.reason()).field("detail", why)
        }
        Decision::Locked { until } | Decision::AddressLocked { until } => line
            .field("reason", decision.reason())
            .field("until", until),
        _ => line.field("reason", decision.reason()),
    };
    log_user_field(env, line).send(sink, level);
}

/// What the client is told beyond `AUTH_FAILED`, if anything. Only "wait and retry" is worth
/// saying; every other failure leaves `auth_failed_reason_file` empty, so OpenVPN sends a bare
/// `AUTH_FAILED` — no hint of which factor was wrong, and no file write (a few microseconds of
/// OpenVPN's event loop) per rejected login. A locked user is told so only when
/// `disclose_lock` (the client holds that user's certificate, see
/// [`Authenticator::may_disclose_lock`]); anyone else gets the answer an unknown name gets.
fn client_reason(decision: &Decision, now: i64, disclose_lock: bool) -> Option<String> {
    match decision {
        Decision::Locked { .. } if !disclose_lock => None,
        Decision::Locked { until } | Decision::AddressLocked { until } => {
            let wait = until.saturating_sub(now).max(1);
            Some(format!(
                "TEMP[backoff {wait}]: too many failed logins, try again later"
            ))
        }
        Decision::StateUnavailable => {
            Some("TEMP[backoff 30]: authentication temporarily unavailable".to_owned())
        }
        _ => None,
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

/// The `TEMP[backoff N]` text for the client, through [`write_answer_file`].
fn write_client_reason(path: &[u8], reason: &str) {
    if let Err(e) = write_answer_file(path, reason.as_bytes()) {
        warn!(
            "cannot write auth_failed_reason_file {}: {e}",
            path_of(path).display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::code_at_time;
    use crate::state::sqlite::tests::TempDir;
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, UNIX_EPOCH};
    use tracing::Level;

    const ALICE: &str = "[users.alice]\nsecret = \"0123456789abcdef\"\npin = \"1234\"\n";
    const BOB: &str = "[users.bob]\nsecret = \"fedcba9876543210\"\npin = \"4321\"\n";
    const CAROL: &str =
        "[users.carol]\nsecret = \"00112233445566778899aabbccddeeff\"\npin = \"77\"\n";

    type Lines = Arc<Mutex<Vec<(Level, String)>>>;

    struct Setup {
        dir: TempDir,
        config: PathBuf,
        lines: Lines,
        version: u64,
    }

    impl Setup {
        fn new(name: &str) -> Setup {
            let dir = TempDir::new(name);
            let config = dir.0.join("motp.toml");
            Setup {
                dir,
                config,
                lines: Lines::default(),
                version: 0,
            }
        }
        fn state_table(&self) -> String {
            format!(
                "[state]\ndir = \"{}\"\n",
                self.dir.0.join("state").display()
            )
        }
        /// Replaces motp.toml (mode 0640, a distinct mtime) in one rename, so the watcher
        /// never sees a version these tests did not mean.
        fn write(&mut self, text: &str) {
            let next = self.config.with_extension("toml.new");
            std::fs::write(&next, text).unwrap();
            std::fs::set_permissions(&next, std::fs::Permissions::from_mode(0o640)).unwrap();
            self.version += 1;
            std::fs::File::options()
                .write(true)
                .open(&next)
                .unwrap()
                .set_modified(UNIX_EPOCH + Duration::from_secs(1_600_000_000 + self.version))
                .unwrap();
            std::fs::rename(&next, &self.config).unwrap();
        }
        fn open(&self) -> Result<Plugin, String> {
            let lines = self.lines.clone();
            Plugin::open(
                &self.config,
                Arc::new(move |level, line: &str| lines.lock().push((level, line.to_owned()))),
            )
        }
        fn take_lines(&self) -> Vec<(Level, String)> {
            std::mem::take(&mut *self.lines.lock())
        }
        /// Opened with a watcher that checks every 10 ms, so tests need not wait a second.
        fn open_watching_fast(&self) -> Result<Plugin, String> {
            let lines = self.lines.clone();
            Plugin::open_watching(
                &self.config,
                Arc::new(move |level, line: &str| lines.lock().push((level, line.to_owned()))),
                TrustedOwners::root_and(crate::os::effective_uid()),
                Duration::from_millis(10),
            )
        }
        /// Takes the log lines once one matching `want` was written (the watcher's lines are
        /// written out at the plugin's next call, so this keeps calling `flush_logs`).
        fn wait_for_line(
            &self,
            plugin: &Plugin,
            want: impl Fn(Level, &str) -> bool,
        ) -> Vec<(Level, String)> {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                plugin.flush_logs();
                if self.lines.lock().iter().any(|(l, m)| want(*l, m)) {
                    return self.take_lines();
                }
                assert!(Instant::now() < deadline, "{:?}", self.lines.lock());
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    fn login(plugin: &Plugin, user: &str, secret: &str, pin: &str, step_ahead: i64) -> Verdict {
        let code = code_at_time(secret, pin, clock::now() + 10 * step_ahead).to_hex();
        let env = AuthEnv {
            username: Some(user.as_bytes()),
            password: Some(code.as_bytes()),
            common_name: Some(user.as_bytes()),
            ..AuthEnv::default()
        };
        plugin.authenticate(&env)
    }
    fn alice(p: &Plugin, ahead: i64) -> Verdict {
        login(p, "alice", "0123456789abcdef", "1234", ahead)
    }
    fn bob(p: &Plugin, ahead: i64) -> Verdict {
        login(p, "bob", "fedcba9876543210", "4321", ahead)
    }
    fn carol(p: &Plugin, ahead: i64) -> Verdict {
        login(p, "carol", "00112233445566778899aabbccddeeff", "77", ahead)
    }
    fn errors(lines: &[(Level, String)]) -> Vec<&String> {
        lines
            .iter()
            .filter(|(l, _)| *l == Level::ERROR)
            .map(|(_, m)| m)
            .collect()
    }

    #[test]
    fn user_table_reloads_live_and_a_broken_file_keeps_the_old_one() {
        let mut s = Setup::new("reload");
        let state = s.state_table();
        s.write(&format!("{state}{ALICE}"));
        let plugin = s.open_watching_fast().unwrap();
        assert_eq!(alice(&plugin, 0), Verdict::Accept);
        assert_eq!(bob(&plugin, 0), Verdict::Reject);
        s.take_lines();

        // A user added: no SIGHUP needed.
        s.write(&format!("{state}{ALICE}{BOB}"));
        s.wait_for_line(&plugin, |_, m| {
            m.starts_with("reloaded ") && m.contains("2 users")
        });
        assert_eq!(bob(&plugin, 0), Verdict::Accept);

        // Broken: the previous table keeps serving, one error names file, line and key.
        let broken = format!(
            "{state}{ALICE}{}",
            BOB.replace("fedcba9876543210", "fedcba98")
        );
        s.write(&broken);
        let mut lines = s.wait_for_line(&plugin, |l, _| l == Level::ERROR);
        assert_eq!(alice(&plugin, 1), Verdict::Accept);
        assert_eq!(bob(&plugin, 1), Verdict::Accept);
        // Many checks later the broken file is still not reported twice.
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(alice(&plugin, 2), Verdict::Accept);
        lines.extend(s.take_lines());
        let errs = errors(&lines);
        assert_eq!(errs.len(), 1, "{lines:?}");
        let line_no = broken
            .lines()
            .position(|l| l.starts_with("secret = \"fedcba98"))
            .unwrap()
            + 1;
        assert!(
            errs[0].contains(&s.config.display().to_string()),
            "{}",
            errs[0]
        );
        assert!(errs[0].contains(&format!("line {line_no}")), "{}", errs[0]);
        assert!(errs[0].contains("users.bob.secret"), "{}", errs[0]);
        assert!(
            !errs[0].contains("fedcba98"),
            "no secret in the log: {}",
            errs[0]
        );

        // Fixed, with bob removed and carol added: the new table.
        s.write(&format!("{state}{ALICE}{CAROL}"));
        let lines = s.wait_for_line(&plugin, |_, m| m.starts_with("reloaded "));
        assert!(errors(&lines).is_empty(), "{lines:?}");
        assert_eq!(carol(&plugin, 0), Verdict::Accept);
        assert_eq!(bob(&plugin, 2), Verdict::Reject);
        assert_eq!(alice(&plugin, 3), Verdict::Accept);

        // [state] cannot change without a SIGHUP: say so, keep serving.
        s.write(&format!("[state]\nbackend = \"memory\"\n{ALICE}{CAROL}"));
        s.wait_for_line(&plugin, |l, m| {
            l == Level::WARN && m.contains("[state] table changed")
        });
        assert_eq!(alice(&plugin, 4), Verdict::Accept);
    }

    #[test]
    fn the_watcher_stops_at_close_and_a_login_does_not_wait_for_a_reload() {
        let mut s = Setup::new("watcher");
        let state = s.state_table();
        s.write(&format!("{state}{ALICE}"));
        let lines = s.lines.clone();
        let hour = Duration::from_secs(3600);
        let plugin = Plugin::open_watching(
            &s.config,
            Arc::new(move |level, line: &str| lines.lock().push((level, line.to_owned()))),
            TrustedOwners::root_and(crate::os::effective_uid()),
            hour,
        )
        .unwrap();
        // Until the watcher looks again, logins use the table in service.
        s.write(&format!("{state}{ALICE}{BOB}"));
        assert_eq!(bob(&plugin, 0), Verdict::Reject);
        assert_eq!(alice(&plugin, 0), Verdict::Accept);
        // Closing wakes the watcher instead of waiting out its hour (this test would hang).
        let started = Instant::now();
        drop(plugin);
        assert!(started.elapsed() < hour / 2);
    }

    #[test]
    fn a_fifo_put_in_place_of_the_config_neither_hangs_the_reload_nor_the_close() {
        let mut s = Setup::new("fifo");
        let state = s.state_table();
        s.write(&format!("{state}{ALICE}"));
        let plugin = s.open_watching_fast().unwrap();
        s.take_lines();
        let fifo = s.config.with_extension("fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        std::fs::rename(&fifo, &s.config).unwrap();
        let lines = s.wait_for_line(&plugin, |l, m| {
            l == Level::ERROR && m.contains("is not a regular file")
        });
        assert!(!lines.is_empty());
        assert_eq!(
            alice(&plugin, 0),
            Verdict::Accept,
            "the table in service stays"
        );
        // The watcher is not stuck in open(): closing returns (a hang fails by the harness's
        // timeout; this bound is only against that).
        let started = Instant::now();
        drop(plugin);
        assert!(started.elapsed() < Duration::from_secs(10));
        // And at open: refused at once.
        let e = s.open().err().unwrap();
        assert!(e.contains("is not a regular file"), "{e}");
    }

    #[test]
    fn a_config_the_runtime_user_could_change_is_refused_at_open_and_at_reload() {
        let mut s = Setup::new("untrusted");
        let state = s.state_table();
        s.write(&format!("{state}{ALICE}"));
        let plugin = s.open_watching_fast().unwrap();
        s.take_lines();
        // Made group-writable: the reload is refused, the table in service stays.
        let next = s.config.with_extension("toml.new");
        std::fs::write(&next, format!("{state}{ALICE}{BOB}")).unwrap();
        std::fs::set_permissions(&next, std::fs::Permissions::from_mode(0o660)).unwrap();
        std::fs::rename(&next, &s.config).unwrap();
        let lines = s.wait_for_line(&plugin, |l, m| {
            l == Level::ERROR && m.contains("writable by its group")
        });
        assert!(
            errors(&lines).iter().all(|m| m.contains("chmod go-w")),
            "{lines:?}"
        );
        assert_eq!(bob(&plugin, 0), Verdict::Reject, "bob was not added");
        drop(plugin);
        let e = s.open().err().unwrap();
        assert!(e.contains("writable by its group"), "{e}");
    }

    #[test]
    fn answer_files_are_never_created_followed_or_waited_on() {
        use std::os::unix::ffi::OsStrExt;
        let s = Setup::new("answers");
        let raw = |p: &Path| p.as_os_str().as_bytes().to_vec();
        // OpenVPN's file, empty: written. A longer leftover is cut to the answer.
        let acf = s.dir.0.join("acf");
        std::fs::write(&acf, b"").unwrap();
        write_control(&raw(&acf), true);
        assert_eq!(std::fs::read(&acf).unwrap(), b"1");
        std::fs::write(&acf, b"0000").unwrap();
        write_control(&raw(&acf), true);
        assert_eq!(std::fs::read(&acf).unwrap(), b"1");
        // Removed: stays removed (OpenVPN then refuses the login at hand-window).
        let gone = s.dir.0.join("gone");
        write_control(&raw(&gone), true);
        write_client_reason(&raw(&gone), "TEMP[backoff 5]: x");
        assert!(!gone.exists());
        // A symlink in its place: not followed, the target keeps its content.
        let target = s.dir.0.join("target");
        std::fs::write(&target, b"precious").unwrap();
        let link = s.dir.0.join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_control(&raw(&link), true);
        write_client_reason(&raw(&link), "TEMP[backoff 5]: x");
        assert!(write_answer_file(&raw(&link), b"1").is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
        // A FIFO: refused at once, not waited on.
        let fifo = s.dir.0.join("fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        assert!(write_answer_file(&raw(&fifo), b"1").is_err());
    }

    #[test]
    fn state_survives_reopening_the_plugin() {
        let mut s = Setup::new("sighup");
        s.write(&format!("{}{ALICE}", s.state_table()));
        let plugin = s.open().unwrap();
        assert_eq!(alice(&plugin, 0), Verdict::Accept);
        drop(plugin);
        let plugin = s.open().unwrap();
        assert_eq!(alice(&plugin, 0), Verdict::Reject, "replay after SIGHUP");
        assert_eq!(alice(&plugin, 1), Verdict::Accept);
    }

    #[test]
    fn open_refuses_an_invalid_config_or_an_unusable_state_dir() {
        let mut s = Setup::new("refuse");
        s.write(&format!(
            "{}{}",
            s.state_table(),
            BOB.replace("pin = \"4321\"", "pin = \"\"")
        ));
        let e = s.open().err().unwrap();
        assert!(e.contains("users.bob.pin"), "{e}");

        let blocker = s.dir.0.join("blocker");
        std::fs::write(&blocker, b"").unwrap();
        let state_dir = blocker.join("state");
        s.write(&format!(
            "[state]\ndir = \"{}\"\n{ALICE}",
            state_dir.display()
        ));
        let e = s.open().err().unwrap();
        assert!(
            e.contains(&format!("state directory {}", state_dir.display())),
            "{e}"
        );
        assert!(e.contains("install -d"), "{e}");
        assert!(errors(&s.take_lines())
            .iter()
            .any(|m| m.contains("install -d")));
    }

    #[test]
    fn memory_backend_still_works_and_warns() {
        let mut s = Setup::new("memory");
        s.write(&format!("[state]\nbackend = \"memory\"\n{ALICE}"));
        let plugin = s.open().unwrap();
        assert!(s
            .take_lines()
            .iter()
            .any(|(l, m)| *l == Level::WARN && m.contains("\"memory\"")));
        assert_eq!(alice(&plugin, 0), Verdict::Accept);
        assert_eq!(alice(&plugin, 0), Verdict::Reject);
    }
    #[test]
    fn prompts_are_capped_per_address_and_user_and_expire_at_the_prompt_timeout() {
        let t0 = Instant::now();
        // As Plugin::prompt keys them: the network of the default prefixes (/32, /64).
        let ip = |s: &str| {
            Some(ip_limit::network(
                s.parse::<IpAddr>().unwrap(),
                ip_limit::DEFAULT_PREFIX_V4,
                ip_limit::DEFAULT_PREFIX_V6,
            ))
        };
        let acf = |n: usize| format!("/tmp/acf-{n}").into_bytes();
        let mut p = Prompts::default();
        // One address: eight prompts (any usernames), then refused; others still prompted.
        for n in 0..PROMPTS_PER_ADDRESS {
            let user = format!("u{n}");
            assert_eq!(
                p.admit(&acf(n), ip("198.51.100.7"), user.as_bytes(), b"x", t0),
                Ok(())
            );
        }
        assert_eq!(
            p.admit(&acf(100), ip("198.51.100.7"), b"other", b"x", t0),
            Err(PromptLimit::Address)
        );
        assert_eq!(
            p.admit(&acf(101), ip("203.0.113.9"), b"alice", b"alice", t0),
            Ok(())
        );
        // An answer frees its slot.
        assert!(p.take(&acf(0), t0));
        assert!(!p.take(&acf(0), t0), "answered once");
        assert_eq!(
            p.admit(&acf(102), ip("198.51.100.7"), b"u0", b"x", t0),
            Ok(())
        );
        // One IPv6 /64 is one address.
        for n in 0..PROMPTS_PER_ADDRESS {
            let addr = format!("2001:db8:1:2::{:x}", n + 1);
            let user = format!("v{n}");
            assert_eq!(
                p.admit(&acf(200 + n), ip(&addr), user.as_bytes(), b"x", t0),
                Ok(())
            );
        }
        assert_eq!(
            p.admit(&acf(300), ip("2001:db8:1:2:ffff::1"), b"w", b"x", t0),
            Err(PromptLimit::Address)
        );
        assert_eq!(
            p.admit(&acf(301), ip("2001:db8:1:3::1"), b"w", b"x", t0),
            Ok(())
        );
        // Not counted per address (the per-address limit is off): only the other limits.
        for n in 0..2 * PROMPTS_PER_ADDRESS {
            let user = format!("lb{n}");
            assert_eq!(
                p.admit(&acf(600 + n), None, user.as_bytes(), b"x", t0),
                Ok(())
            );
        }
        // One username with one certificate: four, from any addresses.
        for n in 0..PROMPTS_PER_USER {
            let addr = format!("192.0.2.{}", n + 1);
            assert_eq!(
                p.admit(&acf(400 + n), ip(&addr), b"bob", b"bob", t0),
                Ok(())
            );
        }
        assert_eq!(
            p.admit(&acf(410), ip("192.0.2.99"), b"bob", b"bob", t0),
            Err(PromptLimit::User)
        );
        // Another certificate naming bob fills its own slots, not bob's.
        assert_eq!(
            p.admit(&acf(411), ip("192.0.2.98"), b"bob", b"mallory", t0),
            Ok(())
        );

        // Expiry: still there just before the prompt's timeout, gone at it, slots released.
        let live = p.len();
        let before = t0 + PROMPT_EXPIRY - Duration::from_millis(1);
        assert_eq!(
            p.admit(&acf(500), ip("198.51.100.7"), b"z", b"z", before),
            Err(PromptLimit::Address)
        );
        assert_eq!(p.len(), live);
        let after = t0 + PROMPT_EXPIRY;
        assert!(
            !p.take(&acf(101), after),
            "an expired prompt is not answered"
        );
        assert_eq!(p.len(), 0);
        assert!(p.per_address.is_empty() && p.per_user.is_empty());
        assert_eq!(
            p.admit(&acf(501), ip("198.51.100.7"), b"bob", b"bob", after),
            Ok(())
        );
        assert!(PROMPT_EXPIRY >= Duration::from_secs(u64::from(CRTEXT_TIMEOUT_SECS)));
    }

    #[test]
    fn the_prompt_table_stays_bounded_however_many_come_and_go() {
        let t0 = Instant::now();
        let mut p = Prompts::default();
        let ip: Option<IpAddr> = Some("198.51.100.7".parse().unwrap());
        for n in 0..20_000u32 {
            let acf = n.to_be_bytes();
            assert_eq!(p.admit(&acf, ip, b"alice", b"alice", t0), Ok(()));
            assert!(p.take(&acf, t0));
            assert!(p.order.len() < 2 * MAX_PENDING_PROMPTS);
        }
        // Many addresses: the table's own limit.
        for n in 0..MAX_PENDING_PROMPTS as u32 {
            let addr = Some(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n)));
            assert_eq!(
                p.admit(&n.to_be_bytes(), addr, &n.to_be_bytes(), b"", t0),
                Ok(())
            );
        }
        assert_eq!(
            p.admit(
                b"one more",
                Some("192.0.2.1".parse().unwrap()),
                b"u",
                b"u",
                t0
            ),
            Err(PromptLimit::Table)
        );
    }
}
