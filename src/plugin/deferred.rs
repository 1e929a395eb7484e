//! Logins decided on worker threads, off OpenVPN's thread.
//!
//! **Deferred decisions.** With the Redis backend a decision waits on the network, which must
//! never stall OpenVPN's one event loop. When OpenVPN offers an `auth_control_file`, the login
//! is copied out of envp (the password into a buffer wiped on drop) and queued for a small pool
//! of worker threads ([`WorkerPool`]); OpenVPN is told `DEFERRED`. The worker decides,
//! writes `auth_failed_reason_file` and then `1`/`0` into `auth_control_file`. A full queue is
//! a synchronous rejection (`TEMP[backoff N]`). Without an `auth_control_file` the decision is
//! made in the call, with the store's timeouts bounding it.
//!
//! **The worker pool** ([`WorkerPool`]): a small, bounded pool of worker threads for deferred
//! decisions, so a slow state store (Redis over the network) never stalls OpenVPN's single
//! event loop.
//!
//! - a fixed number of threads and a bounded queue: [`WorkerPool::submit`] never blocks, it
//!   hands the job back when the queue is full (the caller then rejects synchronously);
//! - [`WorkerPool::shutdown`] (also on drop) raises the closing flag every job is handed, so the
//!   jobs still queued answer `0` without deciding and a job in progress starts no further slow
//!   step; it waits for the one in progress and joins every thread, so no thread outlives
//!   `openvpn_plugin_close_v1` (and the `dlclose` after it). How long that wait can be is the
//!   job's to bound: a job checks the flag before each slow step, and each step is bounded.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tracing::{error, info, warn};

use super::reply::{log_user, write_client_reason, write_control};
use super::{Answer, Core, Plugin};
use crate::env::OwnedAuthEnv;

/// Worker threads deciding deferred logins (Redis backend). One: a decision waits on Redis for
/// a fraction of a millisecond, and systemd's `LimitNPROC` (10 in Debian's unit) counts every
/// thread of the runtime user, across all OpenVPN instances running as that user.
pub const WORKER_THREADS: usize = 1;
/// How long after a worker thread could not be started the plugin tries again.
const WORKER_RETRY: Duration = Duration::from_secs(10);
/// Logins waiting for a worker; one more is rejected at once with `TEMP[backoff N]`.
pub const WORKER_QUEUE: usize = 256;

/// The worker pool of the Redis backend, started again later when its thread could not be.
pub(super) struct Workers {
    pub(super) pool: Option<WorkerPool>,
    /// When to try starting the pool again (it is `None`).
    retry_at: Instant,
    /// A start failed before: the next one that works says logins are deferred again.
    failed: bool,
}

impl Workers {
    pub(super) fn start(now: Instant) -> Workers {
        let mut workers = Workers {
            pool: None,
            retry_at: now,
            failed: false,
        };
        workers.try_start(now);
        workers
    }

    /// No pool yet: [`Plugin::with_pool`] starts it when a login first needs it.
    pub(super) fn idle(now: Instant) -> Workers {
        Workers {
            pool: None,
            retry_at: now,
            failed: false,
        }
    }

    /// Starts the pool if it is missing and the retry time has come. Failures are logged with
    /// the cause and the fix; the caller then decides in the call.
    fn try_start(&mut self, now: Instant) {
        if self.pool.is_some() || now < self.retry_at {
            return;
        }
        match WorkerPool::new(WORKER_THREADS, WORKER_QUEUE) {
            Ok(pool) => {
                if self.failed {
                    info!("started the worker thread; logins are deferred again");
                }
                self.pool = Some(pool);
            }
            Err(e) => {
                self.failed = true;
                self.retry_at = now + WORKER_RETRY;
                error!(
                    "cannot start a worker thread ({e}); logins are decided on OpenVPN's thread \
                     meanwhile, each waiting for Redis up to timeout_ms or for a static \
                     password's Argon2id check (tens of ms); trying again in {} s. \
                     The usual cause is a task limit: systemd's LimitNPROC counts every thread \
                     of the user OpenVPN runs as, in every instance (the plugin needs {} per \
                     instance with Redis or static passwords); raise LimitNPROC for the unit or \
                     run fewer daemons as that user",
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

impl Plugin {
    /// Runs `job` with the worker pool, starting it if it is missing and due for a retry.
    /// `None` without a pool (no Redis backend, or its thread cannot be started).
    /// Whether logins go to a worker (when OpenVPN offers an `auth_control_file`): with the
    /// Redis backend, and while any user has a static password (Argon2id costs milliseconds,
    /// never spent on OpenVPN's thread).
    pub(super) fn defers_logins(&self) -> bool {
        matches!(self.core.state, crate::config::StateConfig::Redis(_))
            || self.core.config.read().users.any_password()
    }

    pub(super) fn with_pool<T>(&self, job: impl FnOnce(&WorkerPool) -> T) -> Option<T> {
        let mut workers = self.workers.as_ref()?.lock();
        workers.try_start(Instant::now());
        workers.pool.as_ref().map(job)
    }

    /// Queues the decision for a worker; a full queue rejects now.
    pub(super) fn defer(&self, pool: &WorkerPool, login: OwnedAuthEnv) -> Answer {
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

impl Core {
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
            answer.accept = verdict == Answer::Accept;
        });
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

/// One deferred decision. The argument is the pool's closing flag, raised when the pool shuts
/// down: a job that finds it set must answer without doing slow work (and may look again
/// before each slow step, since it can be raised while the job runs).
pub type Job = Box<dyn FnOnce(&AtomicBool) + Send>;

pub const WORKER_THREAD_NAME: &str = "motp-worker";

pub struct WorkerPool {
    sender: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
    closing: Arc<AtomicBool>,
}

impl WorkerPool {
    pub fn new(threads: usize, queue: usize) -> std::io::Result<WorkerPool> {
        let (sender, receiver) = mpsc::sync_channel::<Job>(queue);
        let receiver = Arc::new(Mutex::new(receiver));
        let closing = Arc::new(AtomicBool::new(false));
        let mut pool = WorkerPool {
            sender: Some(sender),
            workers: Vec::with_capacity(threads),
            closing: closing.clone(),
        };
        for _ in 0..threads.max(1) {
            let receiver = receiver.clone();
            let closing = closing.clone();
            let handle = std::thread::Builder::new()
                .name(WORKER_THREAD_NAME.into())
                .spawn(move || work(&receiver, &closing))?;
            pool.workers.push(handle);
        }
        Ok(pool)
    }

    /// Queues `job`, or hands it back when the queue is full or the pool is closed.
    pub fn submit(&self, job: Job) -> Result<(), Job> {
        match &self.sender {
            Some(sender) => sender.try_send(job).map_err(|e| match e {
                TrySendError::Full(job) | TrySendError::Disconnected(job) => job,
            }),
            None => Err(job),
        }
    }

    /// Raises the closing flag without waiting: queued jobs then answer without deciding, and
    /// the running one starts no further slow step. [`WorkerPool::shutdown`] does this first.
    pub fn begin_closing(&self) {
        self.closing.store(true, Ordering::SeqCst);
    }

    /// Answers what is queued (closing), finishes what is running, joins every thread.
    pub fn shutdown(&mut self) {
        self.begin_closing();
        self.sender = None;
        for handle in self.workers.drain(..) {
            let _ = handle.join();
        }
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn work(receiver: &Mutex<Receiver<Job>>, closing: &AtomicBool) {
    loop {
        // The lock is held only while waiting; the job runs after it is released.
        let job = receiver.lock().recv();
        match job {
            // A panicking job must not take the thread (and its later jobs) down; the job
            // itself answers `0` from a guard when it unwinds.
            Ok(job) => {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(closing)));
            }
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[test]
    fn runs_jobs_rejects_when_full_and_answers_the_rest_at_shutdown() {
        let mut pool = WorkerPool::new(1, 2).unwrap();
        let (gate_tx, gate_rx) = mpsc::channel::<()>();
        let decided = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        // The first job blocks the only worker until the gate opens.
        let gate = Mutex::new(gate_rx);
        pool.submit(Box::new(move |_| {
            let _ = gate.lock().recv_timeout(Duration::from_secs(10));
        }))
        .unwrap_or_else(|_| panic!("first job refused"));
        std::thread::sleep(Duration::from_millis(50));
        let mut refused = 0;
        for _ in 0..5 {
            let (d, c) = (decided.clone(), closed.clone());
            let job: Job = Box::new(move |closing| {
                if closing.load(Ordering::SeqCst) {
                    c.fetch_add(1, Ordering::SeqCst);
                } else {
                    d.fetch_add(1, Ordering::SeqCst);
                }
            });
            if pool.submit(job).is_err() {
                refused += 1;
            }
        }
        assert_eq!(refused, 3, "queue of 2 behind one busy worker");
        let opener = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            let _ = gate_tx.send(());
        });
        pool.shutdown();
        opener.join().unwrap();
        assert_eq!(
            decided.load(Ordering::SeqCst) + closed.load(Ordering::SeqCst),
            2
        );
        assert_eq!(
            closed.load(Ordering::SeqCst),
            2,
            "queued jobs answered as closing"
        );
        assert!(pool.submit(Box::new(|_| {})).is_err());
    }
    #[test]
    fn a_running_job_sees_the_closing_flag_raised_while_it_runs() {
        let mut pool = WorkerPool::new(1, 2).unwrap();
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let saw = Arc::new(AtomicBool::new(false));
        let seen = saw.clone();
        pool.submit(Box::new(move |closing| {
            let _ = started_tx.send(());
            // A job between two slow steps: it looks at the flag before starting the next one.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !closing.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            seen.store(closing.load(Ordering::SeqCst), Ordering::SeqCst);
        }))
        .unwrap_or_else(|_| panic!("refused"));
        started_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        pool.shutdown();
        assert!(
            saw.load(Ordering::SeqCst),
            "the flag reached the running job"
        );
    }
}
