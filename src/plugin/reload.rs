//! Live reload of motp.toml.
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
//! next call (see [`crate::log`]).

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tracing::{error, info, warn};

use super::{describe_policy, Core, Plugin};
use crate::config::Config;
use crate::state;

/// How often the watcher stats motp.toml.
pub const CONFIG_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The watcher's view of motp.toml. A version is `None` when the file could not be examined.
pub(super) struct Seen {
    /// The version last acted upon: loaded, or refused and logged.
    pub(super) acted: Option<FileVersion>,
    /// A newer version seen at the last check; acted upon if the next check still sees it.
    pub(super) settling: Option<Option<FileVersion>>,
}

/// What tells one version of the config file from another, from one `stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileVersion {
    dev: u64,
    ino: u64,
    size: u64,
    mode: u32,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileVersion {
    pub(super) fn of(path: &Path) -> Option<FileVersion> {
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
    /// Without a watcher thread, a login looks at motp.toml at most once a check interval
    /// (a `stat`; the file is read only when it changed and then stayed the same for a check).
    /// Whether it looked (a new config may then be in service).
    pub(super) fn check_config_without_watcher(&self) -> bool {
        if self.watcher.is_some() {
            return false;
        }
        {
            let mut checked = self.checked_at_login.lock();
            if checked.elapsed() < CONFIG_CHECK_INTERVAL {
                return false;
            }
            *checked = Instant::now();
        }
        self.core.reload_if_changed();
        true
    }
}

impl Core {
    /// Reloads motp.toml once a change has settled: a version is acted upon when two checks in
    /// a row saw it (an editor or `cp` writing the file in place is never read half-way), and
    /// only if the file did not change while it was being read. Each version is acted upon
    /// once, whether it loads or not. Runs on the watcher thread.
    pub(super) fn reload_if_changed(&self) {
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
                        state::build::describe(&self.state),
                    );
                }
                info!(
                    "reloaded {}: {} users, {}",
                    self.path.display(),
                    new.users.len(),
                    describe_policy(&new.policy),
                );
                self.store.set_retention(new.policy.retention_secs());
                // An offset the admin changed (motpctl resync, an edit) replaces what was
                // learned of that phone's clock.
                self.learned
                    .follow_config(&self.config.read().users, &new.users);
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
pub(super) struct ConfigWatcher {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: std::thread::JoinHandle<()>,
}

impl ConfigWatcher {
    pub(super) fn start(core: Arc<Core>, every: Duration) -> std::io::Result<ConfigWatcher> {
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
    pub(super) fn stop(self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock() = true;
        wake.notify_all();
        // A panic in the watcher was already contained to its thread; nothing to add here.
        let _ = self.thread.join();
    }
}
