//! Durable state: one SQLite database, `motp-state.db`, in the state directory.
//!
//! # Transactions and sharing
//! Every decision is one `BEGIN IMMEDIATE` transaction: it takes SQLite's write lock before it
//! reads the user's row, so two OpenVPN processes sharing the directory (a UDP and a TCP
//! instance) serialise on it and can never both accept the same code. A process waits up to
//! [`BUSY_TIMEOUT`] for the lock: a transaction of the plugin holds it for microseconds, so only
//! a foreign holder (an admin's `sqlite3` shell inside `BEGIN IMMEDIATE`, a backup tool) waits
//! that long, and then the login is refused with `TEMP[backoff]` instead of OpenVPN's only
//! thread stalling for every client. A database that is locked when the plugin opens it is
//! opened at a later login. The directory must be on a local filesystem (SQLite's WAL needs
//! shared memory between the processes; network filesystems do not provide it).
//!
//! # Who may touch the directory
//! Only its owner, and only when writable by no one else: the store refuses to work in a
//! directory another user owns or can write, above all when it runs as root (see
//! docs/security.md). Every name in the directory is chosen by its owner, so root acting on
//! one (creating, truncating, chmod-ing or chown-ing by path) could be steered onto any file on
//! the system. OpenVPN opens the plugin after dropping privileges, so the runtime user creates
//! and owns every file; `motpctl` switches to the directory's owner before it opens the store.
//!
//! # Only what the plugin made
//! The database must hold exactly the tables and indexes the plugin creates, with the same
//! SQL: a trigger, view or index added by whoever can write the file (the runtime user) makes
//! it count as corrupt. The connection also runs with triggers and views disabled and
//! `trusted_schema = OFF`, so such an object never runs even before it is noticed.
//!
//! # Durability: WAL with `synchronous = NORMAL`
//! A commit appends to the write-ahead log with `write()` but does not `fsync` it; the log is
//! synced at checkpoints (about every thousand pages). So:
//! - a crash of OpenVPN (or of the plugin) loses nothing: the data is in the kernel already;
//! - a power loss or kernel crash can lose the last commits before it, i.e. the last accepted
//!   steps and failure counts. A lost accepted step would let its code be replayed after the
//!   reboot. To close that gap the store remembers the kernel's boot id: on the first open
//!   after a reboot, if the previous boot left its log behind (it is deleted when the last
//!   process closes the database cleanly, e.g. when OpenVPN stops at shutdown), it treats the
//!   history as lost at the boot time (see [`UserState::history_lost_at`]): codes the window
//!   could have reached before the boot are refused. After a clean shutdown nothing changes.
//!
//! `synchronous = FULL` would `fsync` on every login instead, during which OpenVPN's single
//! event loop serves no one: measured on this project's machine (ext4 on a virtual disk,
//! release build) about 4 ms per decision with FULL against about 20 µs with NORMAL
//! (`decision_timing` below prints the numbers). With the boot check NORMAL gives the same
//! replay guarantee without that cost.
//!
//! # A corrupt or unreadable database
//! A file that SQLite rejects, that fails `quick_check`, that has another schema, that this
//! process cannot write, or a directory, symlink or device in place of the file, is renamed to
//! `motp-state.db.corrupt-<unix time>` (with its `-wal`/`-shm`), never deleted. A fresh
//! database starts, an error is logged, and the history counts as lost at the load time, so no
//! replay window opens: for one window length codes are refused as replays and users wait for
//! a later code. The same happens when the database file is removed or replaced while in use,
//! and when an existing file is empty. A missing file at start-up is a first start: no
//! quarantine.
//!
//! # Pruning
//! A row with no failures and no lock only remembers accepted steps, which matter while one
//! can still be inside someone's window (after any change of offset). Such rows untouched for
//! [`PRUNE_AFTER_SECS`] are deleted at open and every [`PRUNE_EVERY`] decisions.
//!
//! Age is measured on a clock that a jump of the wall clock cannot move forward: the time of
//! the last prune (kept in `meta`) plus the time the machine has really been up since then
//! (`/proc/uptime`, which counts suspend and ignores `settimeofday`), never more than the wall
//! clock. A clock set a day ahead therefore prunes nothing (and ends no lock) until a day has
//! really passed; after a reboot only the new boot's uptime counts, so rows are kept a little
//! longer, never shorter.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::config::DbConfig;
use rusqlite::ffi::ErrorCode;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use tracing::{error, info, warn};

use super::{RecentSteps, StateError, StateStore, UserState};
use crate::auth::Decision;
use crate::config::{MAX_OFFSET_SECS, MAX_WINDOW_SECS};
use crate::engine::STEP_SECS;
use crate::os::Identity;
use crate::rule::{Found, Limits};

pub const DB_FILE_NAME: &str = "motp-state.db";
const SCHEMA_VERSION: i64 = 2;
pub const BUSY_TIMEOUT: Duration = Duration::from_millis(50);
/// How long an idle row (no failures, no lock) is kept: two of the widest windows plus an
/// offset change across the whole allowed range (a used step can come back into the window
/// that far), with a margin; as long as Redis keeps a user key. Long past the point where its
/// steps could matter.
pub const PRUNE_AFTER_SECS: i64 = 2 * MAX_WINDOW_SECS as i64 + 2 * MAX_OFFSET_SECS + 2 * STEP_SECS;
/// After this long a lost-history mark cannot match any code in any allowed window.
const LOST_HISTORY_RELEVANT_SECS: i64 = 2 * MAX_WINDOW_SECS as i64 + 2 * STEP_SECS;
pub const PRUNE_EVERY: u32 = 1000;

/// Schema version 1: one row per user.
const SCHEMA_V1: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value);
CREATE TABLE users (
    username TEXT PRIMARY KEY NOT NULL,
    last_step INTEGER,
    failures INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
);
";
/// What version 2 adds: the offset the last code was accepted with, and the recently accepted
/// steps (see [`UserState::may_have_been_used`]). A user without a row here is one version 1
/// recorded. A version 1 database is upgraded in place by running this.
const SCHEMA_V2_ADDS: &str = "
CREATE TABLE recent_codes (
    username TEXT PRIMARY KEY NOT NULL,
    last_offset_secs INTEGER NOT NULL,
    steps TEXT NOT NULL
) WITHOUT ROWID;
";

const SELECT_USER: &str =
    "SELECT u.last_step, u.failures, u.locked_until, r.last_offset_secs, r.steps
     FROM users u LEFT JOIN recent_codes r ON r.username = u.username WHERE u.username = ?1";
const SELECT_LOST: &str = "SELECT value FROM meta WHERE key = 'history_lost_at'";
const UPSERT_USER: &str =
    "INSERT INTO users (username, last_step, failures, locked_until, updated_at)
     VALUES (?1, ?2, ?3, ?4, ?5)
     ON CONFLICT (username) DO UPDATE SET last_step = excluded.last_step,
         failures = excluded.failures, locked_until = excluded.locked_until,
         updated_at = excluded.updated_at";
const UPSERT_RECENT: &str = "INSERT INTO recent_codes (username, last_offset_secs, steps)
     VALUES (?1, ?2, ?3)
     ON CONFLICT (username) DO UPDATE SET last_offset_secs = excluded.last_offset_secs,
         steps = excluded.steps";
const TOUCH_DECOY: &str =
    "UPDATE users SET failures = (failures + 1) % 1000000000, updated_at = ?2 WHERE username = ?1";
const PRUNE: &str =
    "DELETE FROM users WHERE failures = 0 AND locked_until <= ?1 AND updated_at < ?2";
const PRUNE_RECENT: &str =
    "DELETE FROM recent_codes WHERE username NOT IN (SELECT username FROM users)";

/// A source of Unix seconds.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// What the store needs from the machine: the clock, which boot this is, and how long the
/// machine has been up. The plugin uses [`Host::current`]; tests pass fakes.
#[derive(Clone)]
pub struct Host {
    pub now: Clock,
    pub boot: Option<Boot>,
    /// Seconds since boot, suspend included; `None` where the machine does not say.
    pub uptime: Arc<dyn Fn() -> Option<i64> + Send + Sync>,
}

/// The kernel's boot id and the boot time (Unix seconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Boot {
    pub id: String,
    pub time: i64,
}

impl Host {
    /// The plugin's clock, and the boot from `/proc` (none where `/proc` does not tell it: then
    /// a power loss can cost the last few accepted steps, see the module doc).
    pub fn current() -> Host {
        Host {
            now: Arc::new(crate::clock::now),
            boot: Boot::current(),
            uptime: Arc::new(uptime_secs),
        }
    }
}

/// Whole seconds since boot, from `/proc/uptime` (CLOCK_BOOTTIME: suspend included, not moved
/// by setting the clock).
fn uptime_secs() -> Option<i64> {
    let text = fs::read_to_string("/proc/uptime").ok()?;
    let first = text.split_whitespace().next()?;
    let whole = first.split('.').next()?;
    whole.parse().ok()
}

impl Boot {
    fn current() -> Option<Boot> {
        let id = fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let stat = fs::read_to_string("/proc/stat").ok()?;
        let time = stat
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()?;
        Some(Boot {
            id: id.trim().to_owned(),
            time,
        })
    }
}

/// The state database of one state directory, shared safely with other processes.
pub struct SqliteStore {
    path: PathBuf,
    host: Host,
    /// `None` while the database could not be opened because another process held it locked:
    /// each decision tries again.
    inner: Mutex<Option<Inner>>,
    decisions: AtomicU32,
}

struct Inner {
    conn: Connection,
    /// The file the connection has open, to notice it being replaced under us.
    file: FileId,
    /// A query reported corruption: check the file again before the next decision.
    suspect: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(meta: &fs::Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// Why opening the database file failed.
enum Failure {
    /// The file is unusable (corrupt, other schema, unwritable): move it aside.
    Unusable(String),
    /// Another process holds it locked: try again later.
    Busy(String),
    /// Anything else: the plugin cannot run.
    Fatal(String),
}

/// Why [`open_db`] gave up.
enum OpenError {
    /// Another process holds the database locked; nothing was changed.
    Busy(StateError),
    Other(StateError),
}

impl From<OpenError> for StateError {
    fn from(e: OpenError) -> StateError {
        match e {
            OpenError::Busy(e) | OpenError::Other(e) => e,
        }
    }
}

impl SqliteStore {
    /// Opens (creating when missing) the state in `dir` with the real clock and boot.
    pub fn open(dir: &Path) -> Result<SqliteStore, StateError> {
        SqliteStore::open_with(dir, Host::current())
    }

    /// Prepares `dir` (created 0700 when missing; must be writable), then opens the database,
    /// moving a corrupt one aside. Errors name the directory, the user and the fix.
    pub fn open_with(dir: &Path, host: Host) -> Result<SqliteStore, StateError> {
        let store = SqliteStore::open_without_pruning(dir, host)?;
        store.prune();
        Ok(store)
    }

    /// [`SqliteStore::open_with`] without the prune at open: for `motpctl`, whose reading
    /// commands must change nothing the plugin keeps.
    pub fn open_without_pruning(dir: &Path, host: Host) -> Result<SqliteStore, StateError> {
        prepare_dir(dir)?;
        let path = dir.join(DB_FILE_NAME);
        let inner = match open_db(&path, &host, None) {
            Ok(inner) => Some(inner),
            Err(OpenError::Busy(e)) => {
                warn!(
                    "{e}; logins are refused with TEMP[backoff] until it is released, and the \
                     database is opened at the first login after that"
                );
                None
            }
            Err(OpenError::Other(e)) => return Err(e),
        };
        let store = SqliteStore {
            path,
            host,
            inner: Mutex::new(inner),
            decisions: AtomicU32::new(0),
        };
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Deletes rows that no longer protect anything (see the module doc). Failures are logged.
    pub fn prune(&self) {
        let now = (self.host.now)();
        let inner = self.inner.lock();
        let Some(inner) = inner.as_ref() else {
            return;
        };
        if let Err(e) = prune(&inner.conn, &self.host, now) {
            warn!(
                "state database {}: pruning old rows failed: {e}",
                self.path.display()
            );
        }
    }

    /// Reopens the database if its file was replaced or removed since we opened it, or a query
    /// reported corruption.
    fn ensure_current(&self, inner: &mut Inner, now: i64) -> Result<(), StateError> {
        let same = match fs::symlink_metadata(&self.path) {
            Ok(m) => FileId::of(&m) == inner.file,
            Err(_) => false,
        };
        if same && !inner.suspect {
            return Ok(());
        }
        let lost = if same {
            None
        } else {
            error!(
                "state database {} was removed or replaced while in use; reopened it; codes \
                 that may have been used before are refused for one window length (users wait \
                 for a later code)",
                self.path.display()
            );
            Some(now)
        };
        *inner = open_db(&self.path, &self.host, lost)?;
        Ok(())
    }

    /// The open database, opening it first if it was locked when the store was opened.
    fn opened<'a>(&self, slot: &'a mut Option<Inner>) -> Result<&'a mut Inner, StateError> {
        if slot.is_none() {
            let inner = open_db(&self.path, &self.host, None).map_err(|e| {
                let e = StateError::from(e);
                error!("{e}; the login is refused");
                e
            })?;
            *slot = Some(inner);
            info!(
                "state database {} is no longer locked; opened it",
                self.path.display()
            );
        }
        Ok(slot.as_mut().expect("set above"))
    }
}

impl StateStore for SqliteStore {
    fn update(
        &self,
        username: &str,
        decide: &mut dyn FnMut(&mut UserState),
    ) -> Result<(), StateError> {
        self.transact(username, decide, Write::IfChanged)
    }

    /// As the default, but the row is written even when nothing changed (a locked user): every
    /// decision then costs one write, so the time of a refusal does not tell a locked user from
    /// any other (see [`crate::auth`]'s decoy row).
    fn decide(
        &self,
        username: &str,
        found: &Found,
        now: i64,
        limits: &Limits,
    ) -> Result<Decision, StateError> {
        let mut decision = Decision::StateUnavailable;
        self.transact(
            username,
            &mut |state| decision = crate::rule::apply(state, found, now, limits),
            Write::Always,
        )?;
        Ok(decision)
    }
}

/// When [`decide_in_transaction`] writes the row back.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Write {
    IfChanged,
    Always,
}

impl SqliteStore {
    fn transact(
        &self,
        username: &str,
        decide: &mut dyn FnMut(&mut UserState),
        write: Write,
    ) -> Result<(), StateError> {
        let now = (self.host.now)();
        let mut slot = self.inner.lock();
        let inner = self.opened(&mut slot)?;
        self.ensure_current(inner, now)?;
        let result = decide_in_transaction(&mut inner.conn, username, now, decide, write);
        if let Err(e) = &result {
            if is_corruption(e) {
                inner.suspect = true;
            }
            error!(
                "state database {}: {e}; the login is refused",
                self.path.display()
            );
        }
        let count = self.decisions.fetch_add(1, Ordering::Relaxed);
        if count % PRUNE_EVERY == PRUNE_EVERY - 1 {
            if let Err(e) = prune(&inner.conn, &self.host, now) {
                warn!(
                    "state database {}: pruning old rows failed: {e}",
                    self.path.display()
                );
            }
        }
        result.map_err(|e| StateError(format!("state database {}: {e}", self.path.display())))
    }
}

/// Reads the user's row, runs `decide`, writes back what changed: one IMMEDIATE transaction.
fn decide_in_transaction(
    conn: &mut Connection,
    username: &str,
    now: i64,
    decide: &mut dyn FnMut(&mut UserState),
    write: Write,
) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    type Row = (Option<i64>, i64, i64, Option<i64>, Option<String>);
    let row: Option<Row> = tx
        .prepare_cached(SELECT_USER)?
        .query_row([username], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()?;
    let history_lost_at: Option<i64> = tx
        .prepare_cached(SELECT_LOST)?
        .query_row([], |r| r.get(0))
        .optional()?;
    let mut state = match &row {
        Some((last_step, failures, locked_until, last_offset_secs, steps)) => UserState {
            last_step: *last_step,
            last_offset_secs: *last_offset_secs,
            recent_steps: match steps.as_deref().map(RecentSteps::from_text) {
                None => RecentSteps::default(),
                Some(Some(recent)) => recent,
                Some(None) => {
                    return Err(rusqlite::Error::InvalidColumnType(
                        4,
                        "recent_codes.steps (not a list of steps)".to_owned(),
                        rusqlite::types::Type::Text,
                    ))
                }
            },
            failures: u32::try_from((*failures).max(0)).unwrap_or(u32::MAX),
            locked_until: *locked_until,
            history_lost_at,
        },
        None => UserState {
            history_lost_at,
            ..UserState::default()
        },
    };
    let before = state.persisted();
    decide(&mut state);
    let after = state.persisted();
    let changed = match row {
        Some(_) => after != before,
        None => after != UserState::default().persisted(),
    };
    if !changed && write == Write::Always {
        // Nothing to store (a locked user): the write a decision costs goes to the decoy row,
        // whose count always changes. Writing the user's row unchanged would cost less: SQLite
        // skips a page whose bytes stay the same.
        tx.prepare_cached(TOUCH_DECOY)?
            .execute(params![crate::auth::DECOY_USERNAME, now])?;
    }
    if changed {
        tx.prepare_cached(UPSERT_USER)?.execute(params![
            username,
            state.last_step,
            state.failures,
            state.locked_until,
            now
        ])?;
        if let Some(offset) = state.last_offset_secs {
            tx.prepare_cached(UPSERT_RECENT)?.execute(params![
                username,
                offset,
                state.recent_steps.to_text()
            ])?;
        }
    }
    tx.commit()
}

/// Deletes what no longer protects anything, by the age the prune clock allows (see the module
/// doc), and advances that clock. One transaction.
fn prune(conn: &Connection, host: &Host, now: i64) -> rusqlite::Result<usize> {
    let tx = conn.unchecked_transaction()?;
    let meta = |key: &str| -> rusqlite::Result<Option<String>> {
        tx.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| {
            r.get::<_, rusqlite::types::Value>(0)
        })
        .optional()
        .map(|v| match v {
            Some(rusqlite::types::Value::Text(t)) => Some(t),
            Some(rusqlite::types::Value::Integer(i)) => Some(i.to_string()),
            _ => None,
        })
    };
    let stored_wall = meta("prune_clock")?.and_then(|v| v.parse::<i64>().ok());
    let stored_uptime = meta("prune_uptime")?.and_then(|v| v.parse::<i64>().ok());
    let stored_boot = meta("prune_boot")?;
    let uptime = (host.uptime)();
    let boot = host.boot.as_ref().map(|b| b.id.clone());
    let newest_row: Option<i64> =
        tx.query_row("SELECT max(updated_at) FROM users", [], |r| r.get(0))?;
    let reference = prune_reference(
        now,
        stored_wall,
        stored_uptime,
        stored_boot.as_deref(),
        uptime,
        boot.as_deref(),
        newest_row,
    );
    let deleted = tx.prepare_cached(PRUNE)?.execute(params![
        reference,
        reference.saturating_sub(PRUNE_AFTER_SECS)
    ])?;
    tx.prepare_cached(PRUNE_RECENT)?.execute([])?;
    tx.execute(
        "DELETE FROM meta WHERE key = 'history_lost_at' AND value < ?1",
        [reference.saturating_sub(LOST_HISTORY_RELEVANT_SECS)],
    )?;
    let mut set = tx.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?;
    set.execute(params!["prune_clock", reference.to_string()])?;
    match (uptime, &boot) {
        (Some(up), Some(id)) => {
            set.execute(params!["prune_uptime", up.to_string()])?;
            set.execute(params!["prune_boot", id])?;
        }
        _ => {
            tx.execute(
                "DELETE FROM meta WHERE key IN ('prune_uptime', 'prune_boot')",
                [],
            )?;
        }
    }
    drop(set);
    tx.commit()?;
    Ok(deleted)
}

/// The time pruning may take as "now": the wall clock, but no later than the last prune's
/// time plus the uptime since (the same boot) or since boot (a new one). Without a record of
/// a last prune, no later than the newest row: a first prune after an upgrade, or without
/// uptime, cannot be pushed by a jump either beyond what the rows themselves say.
fn prune_reference(
    now: i64,
    stored_wall: Option<i64>,
    stored_uptime: Option<i64>,
    stored_boot: Option<&str>,
    uptime: Option<i64>,
    boot: Option<&str>,
    newest_row: Option<i64>,
) -> i64 {
    let bound = match (stored_wall, uptime) {
        (Some(wall), Some(up)) => {
            let elapsed = match (stored_uptime, stored_boot, boot) {
                (Some(then), Some(a), Some(b)) if a == b => up.saturating_sub(then),
                _ => up, // another boot (or not recorded): only this boot's time is known
            };
            wall.saturating_add(elapsed.max(0))
        }
        _ => newest_row.unwrap_or(now),
    };
    now.min(bound)
}

fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    )
}

/// Opens the database at `path`, moving unusable files aside until a usable one opens.
/// `lost` is a time at which the caller knows history was lost (the file was replaced).
fn open_db(path: &Path, host: &Host, mut lost: Option<i64>) -> Result<Inner, OpenError> {
    let now = (host.now)();
    let other = |message: String| OpenError::Other(StateError(message));
    let wal_left_behind = fs::symlink_metadata(with_suffix(path, "-wal")).is_ok();
    for _ in 0..5 {
        let existing = match fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_file() => Some(m),
            Ok(m) => {
                move_aside(
                    path,
                    &m,
                    now,
                    "is not a regular file (a directory or symlink?)",
                )
                .map_err(OpenError::Other)?;
                lost = Some(now);
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(other(format!(
                    "cannot examine the state database {}: {e}",
                    path.display()
                )))
            }
        };
        // A new database is made complete under a name of its own and linked into place, so
        // no process ever opens a half-made one (two instances starting together must not
        // take each other's new file for a truncated one).
        if existing.is_none() {
            if create_database(path, now).map_err(other)? {
                info!("created the state database {}", path.display());
            }
            continue; // examine what is there now: ours, or the one another process linked
        }
        let opened = try_open(path, host, lost, wal_left_behind);
        match (opened, existing) {
            (Ok(conn), _) => {
                let meta = fs::symlink_metadata(path).map_err(|e| {
                    other(format!("state database {} vanished: {e}", path.display()))
                })?;
                return Ok(Inner {
                    conn,
                    file: FileId::of(&meta),
                    suspect: false,
                });
            }
            (Err(Failure::Unusable(why)), Some(m)) => {
                move_aside(path, &m, now, &why).map_err(OpenError::Other)?;
                lost = Some(now);
            }
            (Err(Failure::Busy(why)), _) => {
                return Err(OpenError::Busy(StateError(format!(
                    "cannot open the state database {}: {why}",
                    path.display()
                ))))
            }
            (Err(Failure::Unusable(why)), None) | (Err(Failure::Fatal(why)), _) => {
                return Err(other(format!(
                    "cannot open the state database {}: {why}",
                    path.display()
                )))
            }
        }
    }
    Err(other(format!(
        "cannot open the state database {}: it kept changing while being opened",
        path.display()
    )))
}

/// Builds a complete database (schema, version) under a fresh name beside `path` and links it
/// to `path`. `Ok(false)` when `path` exists meanwhile (another process linked its own first:
/// link(2) never replaces). The fresh name is created O_EXCL|O_NOFOLLOW, mode 0600, so no name
/// someone left in the directory is ever opened; SQLite later creates `-wal`/`-shm` with the
/// same mode.
fn create_database(path: &Path, now: i64) -> Result<bool, String> {
    static FRESH: AtomicU32 = AtomicU32::new(0);
    let fail = |e: &dyn std::fmt::Display| {
        format!("cannot create the state database {}: {e}", path.display())
    };
    let tmp = loop {
        let n = FRESH.fetch_add(1, Ordering::Relaxed);
        let candidate = with_suffix(path, &format!(".new-{}-{n}", std::process::id()));
        if create_empty(&candidate)? {
            break candidate;
        }
        if n > 64 {
            return Err(fail(&"too many stale .new files in the state directory"));
        }
    };
    let built = Connection::open_with_flags(
        &tmp,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NOFOLLOW
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .and_then(|conn| {
        write_schema(&conn, now)?;
        conn.close().map_err(|(_, e)| e)
    });
    let linked = match built {
        Ok(()) => fs::hard_link(&tmp, path),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(fail(&e));
        }
    };
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(fail(&e)),
    }
}

/// The plugin's tables and its schema version, in an empty database.
fn write_schema(conn: &Connection, now: i64) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA_V1)?;
    conn.execute_batch(SCHEMA_V2_ADDS)?;
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('schema_version', ?1), ('created_at', ?2)",
        params![SCHEMA_VERSION, now],
    )?;
    Ok(())
}

/// Creates `path` empty with mode 0600, refusing to follow or reuse any existing name.
/// `Ok(false)` when the name exists already (another process won the race, or someone planted
/// something there: the caller examines it again).
fn create_empty(path: &Path) -> Result<bool, String> {
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(format!(
            "cannot create the state database {}: {e}",
            path.display()
        )),
    }
}

/// Opens one file and brings it to a known state in one IMMEDIATE transaction: the schema
/// checked (or created in an empty file), the boot and any lost history recorded.
fn try_open(
    path: &Path,
    host: &Host,
    lost: Option<i64>,
    wal_left_behind: bool,
) -> Result<Connection, Failure> {
    let now = (host.now)();
    // Never SQLITE_OPEN_CREATE: a missing file is made by `create_database`, complete.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NOFOLLOW
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags).map_err(classify)?;
    // Before anything reads the schema: whatever was added to the file must not run.
    conn.pragma_update(None, "trusted_schema", "OFF")
        .map_err(classify)?;
    for feature in [
        DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER,
        DbConfig::SQLITE_DBCONFIG_ENABLE_VIEW,
    ] {
        if conn.set_db_config(feature, false).map_err(classify)? {
            return Err(Failure::Fatal(
                "SQLite refused to disable triggers and views".to_owned(),
            ));
        }
    }
    conn.busy_timeout(BUSY_TIMEOUT).map_err(classify)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(classify)?;
    if !mode.eq_ignore_ascii_case("wal") {
        warn!(
            "state database {}: SQLite could not switch to WAL mode (journal mode is {mode}); \
             is the state directory on a network filesystem? Logins still work, more slowly",
            path.display()
        );
    }
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(classify)?;

    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(classify)?;
    let tables: i64 = tx
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .map_err(classify)?;
    let mut lost_at = lost;
    if tables == 0 {
        write_schema(&tx, now).map_err(classify)?;
        error!(
            "state database {} was empty (truncated?); started it afresh; codes that may \
             have been used before are refused for one window length (users wait for a \
             later code)",
            path.display()
        );
        lost_at = Some(now);
    } else {
        check_schema(&tx)?;
    }
    if let Some(boot) = &host.boot {
        let stored: Option<String> = tx
            .query_row("SELECT value FROM meta WHERE key = 'boot_id'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(classify)?;
        let rebooted = stored.as_deref().is_some_and(|s| s != boot.id);
        if rebooted && wal_left_behind {
            warn!(
                "state database {}: the machine rebooted without the database being closed \
                 (power loss or crash?); its last writes may be lost, so codes the window \
                 could reach before the boot are refused (users wait for a later code)",
                path.display()
            );
            lost_at = lost_at.max(Some(boot.time.min(now)));
        }
        if stored.as_deref() != Some(boot.id.as_str()) {
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('boot_id', ?1)",
                [&boot.id],
            )
            .map_err(classify)?;
        }
    }
    if let Some(at) = lost_at {
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('history_lost_at', ?1)
             ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
            [at],
        )
        .map_err(classify)?;
    }
    tx.commit().map_err(classify)?;
    Ok(conn)
}

/// Refuses a database that is not exactly ours: damaged pages, other tables, other version.
/// A database exactly as version 1 made it is upgraded to version 2 in the same transaction
/// (one table added; nothing in it changed).
fn check_schema(tx: &rusqlite::Transaction) -> Result<(), Failure> {
    let check: String = tx
        .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
        .map_err(classify)?;
    if check != "ok" {
        return Err(Failure::Unusable(format!(
            "fails SQLite's integrity check ({})",
            crate::log::sanitize(&check.chars().take(200).collect::<String>())
        )));
    }
    let mut found = schema_objects(tx).map_err(classify)?;
    let version = |tx: &rusqlite::Transaction| -> Result<Option<i64>, Failure> {
        tx.query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(classify)
    };
    if found.as_slice() == expected_schema(1) && version(tx)? == Some(1) {
        tx.execute_batch(SCHEMA_V2_ADDS).map_err(classify)?;
        tx.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
            [SCHEMA_VERSION],
        )
        .map_err(classify)?;
        info!("state database: upgraded from schema version 1 to {SCHEMA_VERSION} (every user's state kept)");
        found = schema_objects(tx).map_err(classify)?;
    }
    let expected = expected_schema(SCHEMA_VERSION);
    let foreign: Vec<String> = found
        .iter()
        .filter(|object| !expected.contains(object))
        .map(|object| {
            format!(
                "{} `{}`",
                crate::log::sanitize(&object.kind),
                crate::log::sanitize(&object.name.chars().take(64).collect::<String>())
            )
        })
        .collect();
    if !foreign.is_empty() {
        return Err(Failure::Unusable(format!(
            "holds objects the plugin did not create ({}); triggers, views or changed tables \
             could turn replay protection or lockout off",
            foreign.join(", ")
        )));
    }
    if found.len() != expected.len() {
        return Err(Failure::Unusable(
            "is not a motp state database (some of its tables are missing)".to_owned(),
        ));
    }
    let version = version(tx)?;
    if version != Some(SCHEMA_VERSION) {
        return Err(Failure::Unusable(format!(
            "has schema version {}, this plugin uses {SCHEMA_VERSION}",
            version.map_or("(none)".to_owned(), |v| v.to_string())
        )));
    }
    Ok(())
}

/// One row of `sqlite_schema`: a table, index, view or trigger with the SQL that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SchemaObject {
    kind: String,
    name: String,
    table: String,
    sql: Option<String>,
}

fn schema_objects(conn: &Connection) -> rusqlite::Result<Vec<SchemaObject>> {
    let mut stmt =
        conn.prepare("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name")?;
    let rows = stmt.query_map([], |r| {
        Ok(SchemaObject {
            kind: r.get(0)?,
            name: r.get(1)?,
            table: r.get(2)?,
            sql: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// What the schema of each version creates, read back from a database made with it, so the
/// comparison follows SQLite's own rendering of the schema and there is one definition of it.
fn expected_schema(version: i64) -> &'static [SchemaObject] {
    static V1: std::sync::OnceLock<Vec<SchemaObject>> = std::sync::OnceLock::new();
    static V2: std::sync::OnceLock<Vec<SchemaObject>> = std::sync::OnceLock::new();
    let build = |parts: &[&str]| {
        let conn = Connection::open_in_memory().expect("an in-memory SQLite database opens");
        for part in parts {
            conn.execute_batch(part)
                .expect("the plugin's own schema is valid SQL");
        }
        schema_objects(&conn).expect("an in-memory schema reads back")
    };
    match version {
        1 => V1.get_or_init(|| build(&[SCHEMA_V1])),
        _ => V2.get_or_init(|| build(&[SCHEMA_V1, SCHEMA_V2_ADDS])),
    }
}

fn classify(e: rusqlite::Error) -> Failure {
    match e.sqlite_error_code() {
        Some(
            ErrorCode::DatabaseCorrupt
            | ErrorCode::NotADatabase
            | ErrorCode::ReadOnly
            | ErrorCode::PermissionDenied
            | ErrorCode::CannotOpen
            | ErrorCode::TypeMismatch,
        ) => Failure::Unusable(e.to_string()),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Failure::Busy(format!(
            "another process has held it locked for more than {} ms ({e}); is an `sqlite3` \
             shell or a backup tool holding a transaction on it?",
            BUSY_TIMEOUT.as_millis()
        )),
        _ => match e {
            rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::IntegralValueOutOfRange(..) => Failure::Unusable(e.to_string()),
            _ => Failure::Fatal(e.to_string()),
        },
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Renames an unusable database (and its `-wal`/`-shm`) to `<name>.corrupt-<now>`, unless some
/// other process already did. Never deletes anything.
fn move_aside(path: &Path, seen: &fs::Metadata, now: i64, why: &str) -> Result<(), StateError> {
    let mut target = with_suffix(path, &format!(".corrupt-{now}"));
    let mut n = 1;
    while fs::symlink_metadata(&target).is_ok() {
        target = with_suffix(path, &format!(".corrupt-{now}.{n}"));
        n += 1;
    }
    match fs::symlink_metadata(path) {
        Ok(m) if FileId::of(&m) == FileId::of(seen) => {}
        // Gone or replaced: another process moved it aside first.
        _ => return Ok(()),
    }
    fs::rename(path, &target).map_err(|e| {
        StateError(format!(
            "state database {} {why}, and it cannot be moved aside to {}: {e}",
            path.display(),
            target.display()
        ))
    })?;
    for suffix in ["-wal", "-shm"] {
        let from = with_suffix(path, suffix);
        if fs::symlink_metadata(&from).is_ok() {
            if let Err(e) = fs::rename(&from, with_suffix(&target, suffix)) {
                warn!("cannot move {} aside: {e}", from.display());
            }
        }
    }
    error!(
        "state database {} {why}; moved it aside to {} (kept for inspection) and started a \
         fresh one; codes that may have been used before are refused for one window length \
         (users wait for a later code)",
        path.display(),
        target.display()
    );
    Ok(())
}

/// Makes sure `dir` exists (creating it with mode 0700), belongs to this process's user, is
/// writable by no one else, and that this process can create files in it. The error says which
/// directory, which user we run as, and what to run.
pub(crate) fn prepare_dir(dir: &Path) -> Result<(), StateError> {
    let me = Identity::current();
    let meta = match fs::metadata(dir) {
        Ok(m) if m.is_dir() => m,
        Ok(_) => return Err(dir_error(dir, "exists but is not a directory".to_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            match fs::DirBuilder::new().mode(0o700).create(dir) {
                Ok(()) => info!("created the state directory {} (mode 0700)", dir.display()),
                // Another instance starting at the same moment made it: use it.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(dir_error(
                        dir,
                        format!("does not exist and cannot be created: {e}"),
                    ))
                }
            }
            fs::metadata(dir).map_err(|e| dir_error(dir, format!("cannot be examined: {e}")))?
        }
        Err(e) => return Err(dir_error(dir, format!("cannot be examined: {e}"))),
    };
    if meta.uid() != me.uid {
        let owner = crate::os::user_label(meta.uid());
        if me.uid == 0 {
            return Err(StateError(format!(
                "state directory {dir} belongs to {owner}, but the plugin runs as root here; \
                 root never works in a directory another user controls (every name in it is \
                 that user's choice). Fix: run OpenVPN with `user {owner}` (and its group) in \
                 server.conf, so that it opens the plugin only after switching to {owner}; or, \
                 if OpenVPN must keep running as root, give the directory to root: \
                 `chown root:root {dir}`",
                dir = dir.display()
            )));
        }
        return Err(dir_error(
            dir,
            format!("belongs to {owner}, not to the user the plugin runs as"),
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(dir_error(
            dir,
            format!(
                "is writable by its group or by everyone (mode {mode:04o}), so others could \
                 plant files in it"
            ),
        ));
    }
    // O_EXCL: an existing name (a symlink planted by someone) is never opened, let alone
    // truncated or followed; the name is new each time.
    for attempt in 0..16u32 {
        let probe = dir.join(format!(
            ".motp-write-test-{}-{}-{attempt}",
            std::process::id(),
            crate::clock::now()
        ));
        let created = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&probe);
        match created {
            Ok(_) => {
                let _ = fs::remove_file(&probe);
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(dir_error(dir, format!("is not writable: {e}"))),
        }
    }
    Err(dir_error(
        dir,
        "holds too many stale write-test files (.motp-write-test-*); remove them".to_owned(),
    ))
}

fn dir_error(dir: &Path, problem: String) -> StateError {
    StateError(dir_error_text(dir, &problem, &Identity::current()))
}

fn dir_error_text(dir: &Path, problem: &str, me: &Identity) -> String {
    let user = me.user_label();
    let group = me.group_label();
    format!(
        "state directory {dir} {problem}; the plugin runs as user {user} (uid {uid}), group \
         {group} (gid {gid}); OpenVPN opens it as the `user`/`group` of server.conf, at start \
         and at every SIGHUP. Fix: run `install -d -m 0700 -o {user} -g {group} {dir}` as root, \
         or set `dir` in the [state] table of motp.toml to a directory that user can write",
        dir = dir.display(),
        uid = me.uid,
        gid = me.gid,
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::auth::{Authenticator, Decision, LoginRequest};
    use crate::config::Config;
    use crate::engine::code_at_time;
    use crate::rule::{Found, Limits};
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::AtomicI64;
    use tracing::Level;

    pub(crate) const T0: i64 = 1_700_000_000;
    const CONFIG: &str = r#"
max_failures = 3
lockout_secs = 300
[users.alice]
secret = "0123456789abcdef"
pin = "1234"
[users.bob]
secret = "fedcba9876543210"
pin = "4321"
"#;

    /// A directory under the system temp dir, removed (with its contents) on drop.
    pub(crate) struct TempDir(pub PathBuf);

    impl TempDir {
        pub(crate) fn new(name: &str) -> TempDir {
            static COUNTER: AtomicU32 = AtomicU32::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir()
                .join(format!("motp-state-test-{name}-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }
        fn db(&self) -> PathBuf {
            self.0.join(DB_FILE_NAME)
        }
        fn aside_files(&self) -> Vec<PathBuf> {
            let mut found: Vec<PathBuf> = fs::read_dir(&self.0)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| {
                    let name = p.file_name().unwrap().to_string_lossy().into_owned();
                    name.starts_with("motp-state.db.corrupt-")
                        && !name.ends_with("-wal")
                        && !name.ends_with("-shm")
                })
                .collect();
            found.sort();
            found
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::set_permissions(&self.0, fs::Permissions::from_mode(0o700));
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// A settable clock and a fixed boot.
    #[derive(Clone)]
    struct FakeHost {
        now: Arc<AtomicI64>,
        boot: Option<Boot>,
    }

    impl FakeHost {
        fn at(now: i64) -> FakeHost {
            FakeHost {
                now: Arc::new(AtomicI64::new(now)),
                boot: Some(Boot {
                    id: "boot-a".into(),
                    time: T0 - 86_400,
                }),
            }
        }
        fn set(&self, now: i64) {
            self.now.store(now, Ordering::SeqCst);
        }
        /// The fake clock, and an uptime that follows it (a machine whose clock never jumps).
        fn host(&self) -> Host {
            let now = self.now.clone();
            let up = self.now.clone();
            let booted = self.boot.as_ref().map_or(T0 - 86_400, |b| b.time);
            Host {
                now: Arc::new(move || now.load(Ordering::SeqCst)),
                boot: self.boot.clone(),
                uptime: Arc::new(move || Some(up.load(Ordering::SeqCst) - booted)),
            }
        }
        fn open(&self, dir: &TempDir) -> SqliteStore {
            SqliteStore::open_with(&dir.0, self.host()).unwrap()
        }
    }

    fn config(text: &str) -> Config {
        Config::parse(Path::new("t.toml"), text).unwrap()
    }

    fn login(
        config: &Config,
        store: &dyn StateStore,
        user: &str,
        code: &str,
        now: i64,
    ) -> Decision {
        let auth = Authenticator {
            policy: &config.policy,
            users: &config.users,
            store,
        };
        let request = LoginRequest {
            username: Some(user.as_bytes()),
            password: Some(code.as_bytes()),
            common_name: Some(user.as_bytes()),
        };
        auth.decide(&request, now)
    }

    fn alice(at: i64) -> String {
        code_at_time("0123456789abcdef", "1234", at).to_hex()
    }

    /// Runs `f` with log events captured.
    pub(crate) fn capture<R>(f: impl FnOnce() -> R) -> (R, Vec<(Level, String)>) {
        let lines = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let seen = lines.clone();
        let dispatch = crate::log::dispatch(
            Arc::new(move |level, line: &str| seen.lock().push((level, line.to_owned()))),
            Level::INFO,
        );
        let result = tracing::dispatcher::with_default(&dispatch, f);
        let lines = lines.lock().clone();
        (result, lines)
    }

    fn count_rows(dir: &TempDir) -> i64 {
        let conn = Connection::open(dir.db()).unwrap();
        conn.query_row("SELECT count(*) FROM users", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn replay_is_rejected_after_reopen() {
        let dir = TempDir::new("reopen");
        let cfg = config(CONFIG);
        let host = FakeHost::at(T0);
        let store = host.open(&dir);
        assert_eq!(
            login(&cfg, &store, "alice", &alice(T0), T0),
            Decision::Accepted { step_offset: 0 }
        );
        drop(store);
        let db_mode = fs::metadata(dir.db()).unwrap().mode() & 0o777;
        assert_eq!(db_mode, 0o600);

        let store = host.open(&dir);
        assert_eq!(
            login(&cfg, &store, "alice", &alice(T0), T0 + 1),
            Decision::Replay
        );
        assert_eq!(
            login(&cfg, &store, "alice", &alice(T0 + 10), T0 + 2),
            Decision::Accepted { step_offset: 1 }
        );
        assert!(dir.aside_files().is_empty());
    }

    #[test]
    fn lock_survives_reopen_and_ends_after_the_period() {
        let dir = TempDir::new("lock");
        let cfg = config(CONFIG);
        let host = FakeHost::at(T0);
        let store = host.open(&dir);
        for _ in 0..3 {
            assert_eq!(
                login(&cfg, &store, "alice", "000000", T0),
                Decision::BadCode
            );
        }
        drop(store);
        host.set(T0 + 100);
        let store = host.open(&dir);
        assert_eq!(
            login(&cfg, &store, "alice", &alice(T0 + 100), T0 + 100),
            Decision::Locked { until: T0 + 300 }
        );
        // bob was never touched.
        let bob = code_at_time("fedcba9876543210", "4321", T0 + 100).to_hex();
        assert!(login(&cfg, &store, "bob", &bob, T0 + 100).is_accepted());
        drop(store);
        host.set(T0 + 300);
        let store = host.open(&dir);
        assert!(login(&cfg, &store, "alice", &alice(T0 + 300), T0 + 300).is_accepted());
    }

    #[test]
    fn two_stores_on_one_dir_accept_a_code_exactly_once() {
        let dir = TempDir::new("race");
        // Replays count as failures; keep the lock out of this test.
        let cfg = config(&CONFIG.replace("max_failures = 3", "max_failures = 1000000"));
        let host = FakeHost::at(T0);
        let stores = [host.open(&dir), host.open(&dir)];
        const THREADS: usize = 8;
        for round in 0..25 {
            let now = T0 + round * 10;
            host.set(now);
            let code = alice(now);
            let barrier = std::sync::Barrier::new(THREADS);
            let accepted = AtomicU32::new(0);
            std::thread::scope(|s| {
                for t in 0..THREADS {
                    let (store, code, barrier, accepted, cfg) =
                        (&stores[t % 2], &code, &barrier, &accepted, &cfg);
                    s.spawn(move || {
                        barrier.wait();
                        match login(cfg, store, "alice", code, now) {
                            Decision::Accepted { .. } => {
                                accepted.fetch_add(1, Ordering::SeqCst);
                            }
                            Decision::Replay => {}
                            other => panic!("unexpected {other:?}"),
                        }
                    });
                }
            });
            assert_eq!(accepted.load(Ordering::SeqCst), 1, "round {round}");
        }
    }

    /// Puts something bad at the database path, opens, and checks the recovery: the store
    /// opens, the old file is kept aside, codes from before the load are refused as replays,
    /// codes after one window length are accepted.
    fn recovers_from(name: &str, expect_aside: bool, make: impl FnOnce(&TempDir)) -> TempDir {
        let dir = TempDir::new(name);
        make(&dir);
        let host = FakeHost::at(T0);
        let (store, logs) = capture(|| host.open(&dir));
        assert!(
            logs.iter()
                .any(|(l, m)| *l == Level::ERROR && m.contains("refused")),
            "{name}: {logs:?}"
        );
        assert_eq!(dir.aside_files().len(), usize::from(expect_aside), "{name}");
        let cfg = config(CONFIG);
        assert_eq!(
            login(&cfg, &store, "alice", &alice(T0), T0),
            Decision::Replay,
            "{name}"
        );
        assert_eq!(
            login(&cfg, &store, "alice", &alice(T0 + 180), T0 + 190),
            Decision::Replay,
            "{name}"
        );
        assert_eq!(
            login(&cfg, &store, "alice", &alice(T0 + 190), T0 + 190),
            Decision::Accepted { step_offset: 0 },
            "{name}"
        );
        drop(store);
        // The fresh database is fine: reopening moves nothing more aside.
        let (_store, logs) = capture(|| host.open(&dir));
        assert!(
            logs.iter().all(|(l, _)| *l != Level::ERROR),
            "{name}: {logs:?}"
        );
        assert_eq!(dir.aside_files().len(), usize::from(expect_aside), "{name}");
        dir
    }

    fn noise(len: usize) -> Vec<u8> {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn random_bytes_are_moved_aside() {
        let bytes = noise(10_000);
        let dir = recovers_from("random", true, |d| fs::write(d.db(), &bytes).unwrap());
        let aside = &dir.aside_files()[0];
        assert_eq!(
            aside.file_name().unwrap().to_string_lossy(),
            format!("motp-state.db.corrupt-{T0}")
        );
        assert_eq!(fs::read(aside).unwrap(), bytes, "kept byte for byte");
    }

    /// A real database with enough rows to span several pages.
    fn populated(dir: &TempDir) -> Vec<u8> {
        let host = FakeHost::at(T0 - 10_000);
        let store = host.open(dir);
        for i in 0..400 {
            store
                .update(&format!("user-{i:04}-with-a-longish-name"), &mut |s| {
                    s.failures = 1
                })
                .unwrap();
        }
        drop(store);
        fs::read(dir.db()).unwrap()
    }

    #[test]
    fn truncated_database_is_moved_aside() {
        for keep in [0.5, 0.1] {
            let dir = recovers_from("truncated", true, |d| {
                let full = populated(d);
                assert!(full.len() > 8192, "{}", full.len());
                let cut = (full.len() as f64 * keep) as usize;
                fs::write(d.db(), &full[..cut]).unwrap();
            });
            assert!(fs::metadata(&dir.aside_files()[0]).unwrap().len() > 0);
        }
        recovers_from("truncated-header", true, |d| {
            let full = populated(d);
            fs::write(d.db(), &full[..60]).unwrap();
        });
    }

    #[test]
    fn empty_database_file_counts_as_lost_history() {
        recovers_from("empty", false, |d| fs::write(d.db(), b"").unwrap());
    }

    /// A database of the previous version (as 0.1 wrote it) is upgraded in place: every user's
    /// step, failures and lock kept, nothing moved aside, no quarantine.
    #[test]
    fn a_version_1_database_is_upgraded_in_place_and_keeps_every_user() {
        let dir = TempDir::new("schema-v1");
        {
            let conn = Connection::open(dir.db()).unwrap();
            conn.execute_batch(SCHEMA_V1).unwrap();
            conn.execute_batch(&format!(
                "INSERT INTO meta (key, value) VALUES ('schema_version', 1), ('created_at', {T0});
                 INSERT INTO users VALUES ('alice', 170000000, 2, 0, {T0});
                 INSERT INTO users VALUES ('bob', NULL, 0, {}, {T0});",
                T0 + 300
            ))
            .unwrap();
        }
        fs::set_permissions(dir.db(), fs::Permissions::from_mode(0o600)).unwrap();
        let host = FakeHost::at(T0 + 10);
        let store = host.open(&dir);
        let read = |name: &str| {
            let mut seen = UserState::default();
            store.update(name, &mut |s| seen = *s).unwrap();
            seen
        };
        let alice = read("alice");
        assert_eq!(
            (alice.last_step, alice.last_offset_secs, alice.failures),
            (Some(170_000_000), None, 2)
        );
        assert_eq!(alice.history_lost_at, None, "no quarantine");
        assert_eq!(read("bob").locked_until, T0 + 300);
        assert!(dir.aside_files().is_empty(), "nothing moved aside");
        // Alice's used step is still used; the next one is accepted, and recorded the new way.
        let limits = Limits {
            max_failures: 5,
            lockout_secs: 300,
            offset_secs: 0,
            radius: 18,
        };
        let at = |step| Found::Step {
            step,
            step_offset: 0,
        };
        assert_eq!(
            store
                .decide("alice", &at(170_000_000), T0 + 10, &limits)
                .unwrap(),
            Decision::Replay
        );
        assert!(store
            .decide("alice", &at(170_000_001), T0 + 11, &limits)
            .unwrap()
            .is_accepted());
        drop(store);
        let store = host.open(&dir);
        let mut alice = UserState::default();
        store.update("alice", &mut |s| alice = *s).unwrap();
        assert_eq!(alice.last_offset_secs, Some(0));
        assert_eq!(alice.recent_steps.as_slice(), &[170_000_001]);
        drop(store);
        let conn = Connection::open(dir.db()).unwrap();
        let version: i64 = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }

    /// A recent-steps list that is not one the plugin writes refuses the login (fail closed)
    /// rather than dropping the steps.
    #[test]
    fn an_unreadable_recent_steps_list_refuses_the_login() {
        let dir = TempDir::new("recent-garbage");
        let host = FakeHost::at(T0);
        let store = host.open(&dir);
        store
            .update("alice", &mut |s| s.record_accepted(170_000_000, 0))
            .unwrap();
        drop(store);
        let conn = Connection::open(dir.db()).unwrap();
        conn.execute("UPDATE recent_codes SET steps = '1,,x'", [])
            .unwrap();
        drop(conn);
        let store = host.open(&dir);
        assert!(store.update("alice", &mut |_| {}).is_err());
    }

    #[test]
    fn other_schemas_are_moved_aside() {
        recovers_from("foreign-schema", true, |d| {
            let conn = Connection::open(d.db()).unwrap();
            conn.execute_batch("CREATE TABLE users (name TEXT); INSERT INTO users VALUES ('x');")
                .unwrap();
        });
        recovers_from("future-version", true, |d| {
            populated(d);
            let conn = Connection::open(d.db()).unwrap();
            conn.execute(
                "UPDATE meta SET value = 99 WHERE key = 'schema_version'",
                [],
            )
            .unwrap();
        });
        recovers_from("bad-row", true, |d| {
            populated(d);
            let conn = Connection::open(d.db()).unwrap();
            conn.execute("DROP TABLE meta", []).unwrap();
        });
    }

    /// A trigger, view or index added by whoever can write the file (the runtime user, with
    /// `sqlite3`): the file counts as corrupt, and the code accepted before is still refused.
    #[test]
    fn objects_the_plugin_did_not_create_make_the_file_count_as_corrupt() {
        let additions = [
            (
                "trigger-update",
                "CREATE TRIGGER forget AFTER UPDATE ON users BEGIN \
                 UPDATE users SET last_step = NULL, failures = 0, locked_until = 0; END;",
            ),
            (
                "trigger-insert",
                "CREATE TRIGGER forget AFTER INSERT ON users BEGIN \
                 DELETE FROM users; END;",
            ),
            ("view", "CREATE VIEW v AS SELECT * FROM users;"),
            ("index", "CREATE INDEX i ON users (failures);"),
            (
                "changed-table",
                "DROP TABLE users; CREATE TABLE users (username TEXT PRIMARY KEY NOT NULL, \
                 last_step INTEGER, failures INTEGER NOT NULL DEFAULT 0 CHECK (failures < 1), \
                 locked_until INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL);",
            ),
        ];
        for (name, sql) in additions {
            let dir = TempDir::new(name);
            let cfg = config(CONFIG);
            let host = FakeHost::at(T0);
            let store = host.open(&dir);
            assert!(login(&cfg, &store, "alice", &alice(T0), T0).is_accepted());
            drop(store);
            Connection::open(dir.db())
                .unwrap()
                .execute_batch(sql)
                .unwrap();
            let (store, logs) = capture(|| host.open(&dir));
            assert_eq!(dir.aside_files().len(), 1, "{name}: {logs:?}");
            assert!(
                logs.iter()
                    .any(|(l, m)| *l == Level::ERROR && m.contains("did not create")),
                "{name}: {logs:?}"
            );
            for _ in 0..3 {
                assert_eq!(
                    login(&cfg, &store, "alice", &alice(T0), T0 + 1),
                    Decision::Replay,
                    "{name}"
                );
            }
        }
    }

    /// Even before the schema check has run, a trigger does not fire on the connection.
    #[test]
    fn triggers_never_run_on_the_plugins_connection() {
        let dir = TempDir::new("no-triggers");
        let host = FakeHost::at(T0);
        drop(host.open(&dir));
        let inner = open_db(&dir.db(), &host.host(), None).ok().unwrap();
        inner
            .conn
            .execute_batch("CREATE TRIGGER t AFTER INSERT ON users BEGIN DELETE FROM users; END;")
            .unwrap();
        inner
            .conn
            .execute(
                "INSERT INTO users (username, failures, updated_at) VALUES ('x', 1, 0)",
                [],
            )
            .unwrap();
        let rows: i64 = inner
            .conn
            .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1, "the trigger must not have run");
    }

    /// Another process (an admin's `sqlite3` shell) inside `BEGIN IMMEDIATE`.
    struct ForeignLock(std::process::Child);

    impl ForeignLock {
        fn hold(db: &Path) -> ForeignLock {
            use std::io::Write;
            let mut child = std::process::Command::new("sqlite3")
                .arg(db)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("the sqlite3 shell is installed (test.sh installs it)");
            let stdin = child.stdin.as_mut().unwrap();
            stdin
                .write_all(b"BEGIN IMMEDIATE;\nSELECT 'locked';\n")
                .unwrap();
            stdin.flush().unwrap();
            let mut line = String::new();
            std::io::BufRead::read_line(
                &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
                &mut line,
            )
            .unwrap();
            assert_eq!(line.trim(), "locked");
            ForeignLock(child)
        }
    }

    impl Drop for ForeignLock {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn a_database_locked_by_another_process_refuses_quickly_then_recovers() {
        use std::time::Instant;
        let dir = TempDir::new("foreign-lock");
        let cfg = config(CONFIG);
        let host = FakeHost::at(T0);
        let store = host.open(&dir);
        {
            let _lock = ForeignLock::hold(&dir.db());
            let started = Instant::now();
            let (decision, logs) = capture(|| login(&cfg, &store, "alice", &alice(T0), T0));
            // Against a hang only: the figure is in docs/performance.md.
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{:?}",
                started.elapsed()
            );
            assert_eq!(decision, Decision::StateUnavailable);
            assert!(logs.iter().any(|(_, m)| m.contains("locked")), "{logs:?}");
            // Opening while it is held: no error, the store opens at a later login.
            let started = Instant::now();
            let (second, logs) = capture(|| host.open(&dir));
            assert!(started.elapsed() < Duration::from_secs(1));
            assert!(
                logs.iter()
                    .any(|(l, m)| *l == Level::WARN && m.contains("opened at the first login")),
                "{logs:?}"
            );
            assert_eq!(
                login(&cfg, &second, "alice", &alice(T0), T0),
                Decision::StateUnavailable
            );
            drop(second);
        }
        assert!(login(&cfg, &store, "alice", &alice(T0), T0).is_accepted());
        let (reopened, _) = capture(|| host.open(&dir));
        assert_eq!(
            login(&cfg, &reopened, "alice", &alice(T0), T0 + 1),
            Decision::Replay
        );
        assert!(dir.aside_files().is_empty());
    }

    /// A store opened while the database was locked opens it at the first login after.
    #[test]
    fn a_store_opened_while_locked_opens_the_database_once_free() {
        let dir = TempDir::new("lazy-open");
        let cfg = config(CONFIG);
        let host = FakeHost::at(T0);
        drop(host.open(&dir));
        let lock = ForeignLock::hold(&dir.db());
        let (store, _) = capture(|| host.open(&dir));
        drop(lock);
        let (decision, logs) = capture(|| login(&cfg, &store, "alice", &alice(T0), T0));
        assert!(decision.is_accepted(), "{decision:?}");
        assert!(
            logs.iter().any(|(_, m)| m.contains("no longer locked")),
            "{logs:?}"
        );
    }

    #[test]
    fn a_forward_clock_jump_prunes_nothing_until_the_time_has_passed() {
        let dir = TempDir::new("clock-jump");
        let cfg = config(CONFIG);
        let wall = Arc::new(AtomicI64::new(T0));
        let up = Arc::new(AtomicI64::new(1000));
        let host = {
            let (wall, up) = (wall.clone(), up.clone());
            Host {
                now: Arc::new(move || wall.load(Ordering::SeqCst)),
                boot: Some(Boot {
                    id: "boot-a".into(),
                    time: T0 - 1000,
                }),
                uptime: Arc::new(move || Some(up.load(Ordering::SeqCst))),
            }
        };
        let store = SqliteStore::open_with(&dir.0, host.clone()).unwrap();
        assert!(login(&cfg, &store, "alice", &alice(T0), T0).is_accepted());
        store
            .update("bob", &mut |s| s.locked_until = T0 + 600)
            .unwrap();
        drop(store);

        // The clock is set two days ahead (a wrong NTP answer, `date -s`, an admin's typo).
        wall.store(T0 + 2 * PRUNE_AFTER_SECS, Ordering::SeqCst);
        up.fetch_add(5, Ordering::SeqCst);
        let store = SqliteStore::open_with(&dir.0, host.clone()).unwrap();
        store.prune();
        assert_eq!(count_rows(&dir), 2, "nothing pruned by the jump");
        drop(store);

        // Put right again: the replay is still refused, the lock still holds.
        wall.store(T0 + 10, Ordering::SeqCst);
        let store = SqliteStore::open_with(&dir.0, host.clone()).unwrap();
        assert_eq!(
            login(&cfg, &store, "alice", &alice(T0), T0 + 10),
            Decision::Replay
        );
        let mut bob = UserState::default();
        store.update("bob", &mut |s| bob = *s).unwrap();
        assert_eq!(bob.locked_until, T0 + 600);
        drop(store);

        // Once the time has really passed (uptime), bob's idle row goes; alice's stays, as
        // the refused replay counts as a failure.
        wall.store(T0 + PRUNE_AFTER_SECS + 100, Ordering::SeqCst);
        up.fetch_add(PRUNE_AFTER_SECS + 100, Ordering::SeqCst);
        let store = SqliteStore::open_with(&dir.0, host).unwrap();
        store.prune();
        let left: String = Connection::open(dir.db())
            .unwrap()
            .query_row("SELECT group_concat(username) FROM users", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, "alice");
    }

    #[test]
    fn the_prune_clock_follows_uptime_and_never_passes_the_wall_clock() {
        let r = |now, wall, up_then, boot_then, up, boot, newest| {
            prune_reference(now, wall, up_then, boot_then, up, boot, newest)
        };
        // Same boot: the last prune plus the uptime since.
        assert_eq!(
            r(
                5000,
                Some(1000),
                Some(10),
                Some("a"),
                Some(110),
                Some("a"),
                None
            ),
            1100
        );
        // Never more than the wall clock.
        assert_eq!(
            r(
                1050,
                Some(1000),
                Some(10),
                Some("a"),
                Some(110),
                Some("a"),
                None
            ),
            1050
        );
        // Another boot: only this boot's uptime counts.
        assert_eq!(
            r(
                9000,
                Some(1000),
                Some(10),
                Some("a"),
                Some(60),
                Some("b"),
                None
            ),
            1060
        );
        // No record yet: the newest row bounds it.
        assert_eq!(
            r(9000, None, None, None, Some(60), Some("a"), Some(2000)),
            2000
        );
        assert_eq!(r(9000, None, None, None, None, None, None), 9000);
    }

    #[test]
    fn as_root_a_directory_of_another_user_is_refused_untouched() {
        if crate::os::effective_uid() != 0 {
            return; // the rule under test is root's
        }
        let dir = TempDir::new("foreign-dir");
        let victim = dir.0.join("victim");
        fs::write(&victim, b"precious").unwrap();
        let state = dir.0.join("state");
        fs::create_dir(&state).unwrap();
        std::os::unix::fs::chown(&state, Some(65534), Some(65534)).unwrap();
        std::os::unix::fs::symlink(&victim, state.join(DB_FILE_NAME)).unwrap();
        std::os::unix::fs::symlink(&victim, state.join("motp-state.db-wal")).unwrap();
        let e = SqliteStore::open_with(&state, FakeHost::at(T0).host())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("belongs to nobody"), "{e}");
        assert!(e.contains("user nobody"), "{e}");
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert_eq!(fs::metadata(&victim).unwrap().uid(), 0);
        let names: Vec<_> = fs::read_dir(&state).unwrap().collect();
        assert_eq!(names.len(), 2, "nothing created, renamed or removed");
    }

    #[test]
    fn a_directory_others_can_write_is_refused() {
        let dir = TempDir::new("group-writable");
        let state = dir.0.join("state");
        fs::create_dir(&state).unwrap();
        fs::set_permissions(&state, fs::Permissions::from_mode(0o770)).unwrap();
        let e = SqliteStore::open_with(&state, FakeHost::at(T0).host())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("writable by its group or by everyone"), "{e}");
        assert!(!state.join(DB_FILE_NAME).exists());
    }

    #[test]
    fn a_directory_or_symlink_in_place_of_the_file_is_moved_aside() {
        let dir = recovers_from("directory", true, |d| {
            fs::create_dir(d.db()).unwrap();
            fs::write(d.db().join("inside"), b"x").unwrap();
        });
        assert!(dir.aside_files()[0].join("inside").exists());

        let elsewhere = TempDir::new("symlink-target");
        let target_bytes = populated(&elsewhere);
        let dir = recovers_from("symlink", true, |d| {
            std::os::unix::fs::symlink(elsewhere.db(), d.db()).unwrap();
        });
        let aside = &dir.aside_files()[0];
        assert!(fs::symlink_metadata(aside)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(
            fs::read(elsewhere.db()).unwrap(),
            target_bytes,
            "target untouched"
        );
    }

    #[test]
    fn a_file_replaced_while_in_use_is_noticed() {
        let dir = TempDir::new("replaced");
        let cfg = config(CONFIG);
        let host = FakeHost::at(T0);
        let store = host.open(&dir);
        assert!(login(&cfg, &store, "alice", &alice(T0), T0).is_accepted());
        for suffix in ["", "-wal", "-shm"] {
            let _ = fs::remove_file(with_suffix(&dir.db(), suffix));
        }
        host.set(T0 + 10);
        let (decision, logs) = capture(|| login(&cfg, &store, "alice", &alice(T0), T0 + 10));
        assert_eq!(decision, Decision::Replay);
        assert!(
            logs.iter().any(|(_, m)| m.contains("removed or replaced")),
            "{logs:?}"
        );
        assert!(dir.db().exists());
        assert_eq!(
            login(&cfg, &store, "alice", &alice(T0 + 20), T0 + 20),
            Decision::Replay,
            "the window could have reached it before the loss"
        );
        host.set(T0 + 200);
        assert!(login(&cfg, &store, "alice", &alice(T0 + 200), T0 + 200).is_accepted());
    }

    #[test]
    fn unclean_reboot_refuses_codes_from_before_the_boot() {
        let cfg = config(CONFIG);
        let boot_b = |time| Boot {
            id: "boot-b".into(),
            time,
        };
        // The machine lost power while the store was open: its log is left behind.
        let dir = TempDir::new("power-loss");
        let host = FakeHost::at(T0);
        let store = host.open(&dir);
        assert!(login(&cfg, &store, "alice", &alice(T0), T0).is_accepted());
        std::mem::forget(store);
        assert!(with_suffix(&dir.db(), "-wal").exists());
        let rebooted = FakeHost {
            boot: Some(boot_b(T0 + 40)),
            ..host.clone()
        };
        rebooted.set(T0 + 60);
        let (store, logs) = capture(|| rebooted.open(&dir));
        assert!(logs.iter().any(|(_, m)| m.contains("rebooted")), "{logs:?}");
        assert_eq!(
            login(&cfg, &store, "alice", &alice(T0 + 60), T0 + 60),
            Decision::Replay
        );
        assert!(login(&cfg, &store, "alice", &alice(T0 + 230), T0 + 230).is_accepted());

        // A clean stop before the reboot: nothing is refused.
        let dir = TempDir::new("clean-reboot");
        let store = host.open(&dir);
        assert!(login(&cfg, &store, "alice", &alice(T0), T0).is_accepted());
        drop(store);
        let (store, logs) = capture(|| rebooted.open(&dir));
        assert!(
            logs.iter().all(|(_, m)| !m.contains("rebooted")),
            "{logs:?}"
        );
        assert!(login(&cfg, &store, "alice", &alice(T0 + 60), T0 + 60).is_accepted());
    }

    #[test]
    fn idle_rows_are_pruned_and_others_kept() {
        let dir = TempDir::new("prune");
        let host = FakeHost::at(T0);
        let store = host.open(&dir);
        let set = |user: &str, f: &dyn Fn(&mut UserState)| {
            store.update(user, &mut |s| f(s)).unwrap();
        };
        set("accepted", &|s| s.last_step = Some(1));
        set("failing", &|s| s.failures = 2);
        set("locked-long", &|s| s.locked_until = T0 + 30 * 86_400);
        set("lock-over", &|s| s.locked_until = T0 + 300);
        host.set(T0 + PRUNE_AFTER_SECS - 1);
        set("recent", &|s| s.last_step = Some(2));
        store.prune();
        assert_eq!(count_rows(&dir), 5, "nothing old enough yet");

        host.set(T0 + PRUNE_AFTER_SECS + 1);
        store.prune();
        let conn = Connection::open(dir.db()).unwrap();
        let mut left: Vec<String> = conn
            .prepare("SELECT username FROM users")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        left.sort();
        assert_eq!(left, ["failing", "locked-long", "recent"]);

        // Pruning also runs by itself every PRUNE_EVERY decisions.
        host.set(T0 + 2 * PRUNE_AFTER_SECS + 10);
        for _ in 0..PRUNE_EVERY {
            store.update("failing", &mut |_| {}).unwrap();
        }
        assert_eq!(count_rows(&dir), 2, "recent has become old");
    }

    /// A UDP and a TCP instance starting at the same moment on a directory that does not
    /// exist yet: both open, one database, nothing set aside, no lost history.
    #[test]
    fn two_stores_opening_a_fresh_directory_at_once_share_one_database() {
        for round in 0..40 {
            let parent = TempDir::new(&format!("race-{round}"));
            let dir = parent.0.join("state");
            let host = FakeHost::at(T0);
            let barrier = Arc::new(std::sync::Barrier::new(2));
            let opened: Vec<_> = (0..2)
                .map(|_| {
                    let (dir, host, barrier) = (dir.clone(), host.host(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        capture(|| SqliteStore::open_with(&dir, host).map(|_| ()))
                    })
                })
                .collect();
            for handle in opened {
                let (result, logs) = handle.join().unwrap();
                result.unwrap_or_else(|e| panic!("round {round}: {e}"));
                assert!(
                    logs.iter().all(|(l, _)| *l != Level::ERROR),
                    "round {round}: {logs:?}"
                );
            }
            let names: Vec<String> = fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("motp-state.db."))
                .collect();
            assert!(names.is_empty(), "round {round}: {names:?}");
        }
    }

    #[test]
    fn a_missing_dir_is_created_with_mode_0700() {
        let parent = TempDir::new("create");
        let dir = parent.0.join("state");
        let host = FakeHost::at(T0);
        let (store, _logs) = capture(|| SqliteStore::open_with(&dir, host.host()));
        store.unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        assert!(dir.join(DB_FILE_NAME).exists());
    }

    #[test]
    fn an_unusable_dir_is_a_clear_error() {
        let parent = TempDir::new("unusable");
        let file = parent.0.join("a-file");
        fs::write(&file, b"x").unwrap();
        let host = FakeHost::at(T0);
        for dir in [file.clone(), file.join("state")] {
            let e = SqliteStore::open_with(&dir, host.host())
                .err()
                .unwrap()
                .to_string();
            assert!(
                e.contains(&format!("state directory {}", dir.display())),
                "{e}"
            );
            assert!(e.contains("runs as user"), "{e}");
            assert!(e.contains("install -d -m 0700 -o"), "{e}");
        }
        let me = Identity::current();
        if me.uid != 0 {
            let dir = parent.0.join("read-only");
            fs::create_dir(&dir).unwrap();
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o500)).unwrap();
            let e = SqliteStore::open_with(&dir, host.host())
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains("is not writable"), "{e}");
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        }
        let nobody = Identity {
            uid: 65534,
            gid: 65534,
            user: Some("nobody".into()),
            group: Some("nogroup".into()),
        };
        let text = dir_error_text(
            Path::new("/var/lib/openvpn-motp"),
            "is not writable: Permission denied (os error 13)",
            &nobody,
        );
        assert!(
            text.contains("state directory /var/lib/openvpn-motp is not writable"),
            "{text}"
        );
        assert!(
            text.contains("user nobody (uid 65534), group nogroup (gid 65534)"),
            "{text}"
        );
        assert!(
            text.contains("`install -d -m 0700 -o nobody -g nogroup /var/lib/openvpn-motp`"),
            "{text}"
        );
    }

    #[test]
    fn identity_reads_passwd_style_files() {
        let me = Identity::current();
        if Path::new("/proc/self/status").exists() {
            let owner = fs::metadata("/proc/self").unwrap().uid();
            assert_eq!(me.uid, owner);
        }
        if me.uid == 0 && Path::new("/etc/passwd").exists() {
            assert_eq!(me.user.as_deref(), Some("root"));
        }
    }

    /// Not a pass/fail test: prints what one decision costs with the durable store.
    /// `cargo test --release --lib decision_timing -- --nocapture` for the real numbers.
    #[test]
    fn decision_timing() {
        use std::time::Instant;
        let dir = TempDir::new("timing");
        let cfg = config(&CONFIG.replace("max_failures = 3", "max_failures = 4000000000"));
        let host = FakeHost::at(T0);
        let store = host.open(&dir);
        let median = |mut v: Vec<Duration>| {
            v.sort();
            v[v.len() / 2]
        };
        const N: i64 = 300;
        let (mut accept, mut reject, mut store_only) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..N {
            let now = T0 + 10 * i;
            host.set(now);
            let code = alice(now);
            let t = Instant::now();
            assert!(login(&cfg, &store, "alice", &code, now).is_accepted());
            accept.push(t.elapsed());
            let t = Instant::now();
            assert_eq!(
                login(&cfg, &store, "alice", "000000", now),
                Decision::BadCode
            );
            reject.push(t.elapsed());
            let t = Instant::now();
            store.update("bob", &mut |s| s.failures += 1).unwrap();
            store_only.push(t.elapsed());
        }
        let memory = crate::state::MemoryStore::new();
        let mut in_memory = Vec::new();
        for i in 0..N {
            let now = T0 + 10 * i;
            let t = Instant::now();
            assert!(login(&cfg, &memory, "alice", &alice(now), now).is_accepted());
            in_memory.push(t.elapsed());
        }
        println!(
            "decision medians over {N}: accept {:?}, reject (bad code) {:?}, store update alone \
             {:?}; accept with the memory store {:?} (debug builds are much slower than release)",
            median(accept),
            median(reject),
            median(store_only),
            median(in_memory)
        );
    }
}
