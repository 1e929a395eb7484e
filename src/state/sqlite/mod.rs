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
//! event loop serves no one: milliseconds per decision against microseconds with NORMAL
//! (README, "State"; `decision_timing` in `tests.rs` prints the numbers). With the boot check
//! NORMAL gives the same replay guarantee without that cost.
//!
//! # Pruning
//! A row with no failures and no lock only remembers accepted steps, which matter while one
//! can still be inside someone's window (after any change of offset). Such rows untouched for
//! [`PRUNE_AFTER_SECS`] are deleted at open and every [`PRUNE_EVERY`] decisions. A row marked
//! [`keep`](UserState::keep) (a counter token's counter, used recovery codes) is never pruned:
//! its steps matter whatever their age.
//!
//! Age is measured on a clock that a jump of the wall clock cannot move forward: the time of
//! the last prune (kept in `meta`) plus the time the machine has really been up since then
//! (`/proc/uptime`, which counts suspend and ignores `settimeofday`), never more than the wall
//! clock. A clock set a day ahead therefore prunes nothing (and ends no lock) until a day has
//! really passed; after a reboot only the new boot's uptime counts, so rows are kept a little
//! longer, never shorter.
//!
//! Opening the file (creation, the schema check and upgrade, quarantine, the boot check) is in
//! [`open`]; the state directory's checks are in [`crate::state::dir`].

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::ffi::ErrorCode;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tracing::{error, info, warn};

use super::dir::prepare_dir;
use super::{RecentSteps, StateError, StateStore, UserState};
use crate::auth::Decision;
use crate::config::{MAX_OFFSET_SECS, MAX_WINDOW_SECS};
use crate::engine::STEP_SECS;
use crate::rule::{Found, Limits};

mod open;
#[cfg(test)]
pub(crate) mod tests;

use open::{open_db, OpenError};

pub const DB_FILE_NAME: &str = "motp-state.db";
pub const BUSY_TIMEOUT: Duration = Duration::from_millis(50);
/// How long an idle row (no failures, no lock) is kept: two of the widest windows plus an
/// offset change across the whole allowed range (a used step can come back into the window
/// that far), with a margin; as long as Redis keeps a user key. Long past the point where its
/// steps could matter.
pub const PRUNE_AFTER_SECS: i64 = 2 * MAX_WINDOW_SECS as i64 + 2 * MAX_OFFSET_SECS + 2 * STEP_SECS;
/// After this long a lost-history mark cannot match any code in any allowed window.
const LOST_HISTORY_RELEVANT_SECS: i64 = 2 * MAX_WINDOW_SECS as i64 + 2 * STEP_SECS;
pub const PRUNE_EVERY: u32 = 1000;

const SELECT_USER: &str =
    "SELECT u.last_step, u.failures, u.locked_until, r.last_offset_secs, r.steps,
         k.keep, k.recovery_set, k.recovery_used
     FROM users u LEFT JOIN recent_codes r ON r.username = u.username
         LEFT JOIN kept k ON k.username = u.username
     WHERE u.username = ?1";
/// [`SELECT_USER`] and [`SELECT_LOST`] in one statement that always yields one row (all NULL
/// but the last column when the user has none): `peek`'s one read.
const PEEK_USER: &str =
    "SELECT u.last_step, u.failures, u.locked_until, r.last_offset_secs, r.steps,
         k.keep, k.recovery_set, k.recovery_used, u.username IS NOT NULL,
         (SELECT value FROM meta WHERE key = 'history_lost_at')
     FROM (SELECT ?1 AS name) q LEFT JOIN users u ON u.username = q.name
         LEFT JOIN recent_codes r ON r.username = q.name
         LEFT JOIN kept k ON k.username = q.name";
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
    "INSERT INTO users (username, last_step, failures, locked_until, updated_at)
     VALUES (?1, NULL, 1, 0, ?2)
     ON CONFLICT (username) DO UPDATE SET failures = (failures + 1) % 1000000000,
         updated_at = excluded.updated_at";
const UPSERT_KEPT: &str = "INSERT INTO kept (username, keep, recovery_set, recovery_used)
     VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (username) DO UPDATE SET keep = excluded.keep,
         recovery_set = excluded.recovery_set, recovery_used = excluded.recovery_used";
const DELETE_KEPT: &str = "DELETE FROM kept WHERE username = ?1";
/// Idle rows, but never one that must be kept (a counter, used recovery codes).
const PRUNE: &str =
    "DELETE FROM users WHERE failures = 0 AND locked_until <= ?1 AND updated_at < ?2
         AND username NOT IN (SELECT username FROM kept WHERE keep <> 0)";
const PRUNE_RECENT: &str =
    "DELETE FROM recent_codes WHERE username NOT IN (SELECT username FROM users)";
const PRUNE_KEPT: &str = "DELETE FROM kept WHERE username NOT IN (SELECT username FROM users)";

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
            uptime: Arc::new(crate::os::uptime_secs),
        }
    }
}

impl Boot {
    /// This boot, from `/proc` (see [`crate::os::boot_id`] and [`crate::os::boot_time`]).
    fn current() -> Option<Boot> {
        let id = crate::os::boot_id()?;
        let time = crate::os::boot_time()?;
        Some(Boot { id, time })
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

    /// One SELECT (the user's row and the lost-history mark), no write transaction: it waits for
    /// no other process's write lock.
    fn peek(&self, username: &str) -> Result<UserState, StateError> {
        let now = (self.host.now)();
        let mut slot = self.inner.lock();
        let inner = self.opened(&mut slot)?;
        self.ensure_current(inner, now)?;
        peek_user(&inner.conn, username).map_err(|e| {
            if is_corruption(&e) {
                inner.suspect = true;
            }
            error!("state database {}: {e}", self.path.display());
            StateError(format!("state database {}: {e}", self.path.display()))
        })
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
        super::apply_rule_through(
            |decide| self.transact(username, decide, Write::Always),
            found,
            now,
            limits,
        )
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

/// One user's row as [`SELECT_USER`] and [`PEEK_USER`] read it (every column NULL for a user
/// without one in `peek`).
struct Row {
    last_step: Option<i64>,
    failures: Option<i64>,
    locked_until: Option<i64>,
    last_offset_secs: Option<i64>,
    steps: Option<String>,
    keep: Option<bool>,
    recovery_set: Option<u32>,
    recovery_used: Option<u32>,
}

impl Row {
    fn read(r: &rusqlite::Row) -> rusqlite::Result<Row> {
        Ok(Row {
            last_step: r.get(0)?,
            failures: r.get(1)?,
            locked_until: r.get(2)?,
            last_offset_secs: r.get(3)?,
            steps: r.get(4)?,
            keep: r.get(5)?,
            recovery_set: r.get(6)?,
            recovery_used: r.get(7)?,
        })
    }

    /// The state the row holds, with the store's `history_lost_at`. Fails (the login is
    /// refused) on a recent-steps list the plugin does not write.
    fn state(&self, history_lost_at: Option<i64>) -> rusqlite::Result<UserState> {
        Ok(UserState {
            last_step: self.last_step,
            last_offset_secs: self.last_offset_secs,
            recent_steps: match self.steps.as_deref().map(RecentSteps::from_text) {
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
            failures: u32::try_from(self.failures.unwrap_or(0).max(0)).unwrap_or(u32::MAX),
            locked_until: self.locked_until.unwrap_or(0),
            history_lost_at,
            keep: self.keep.unwrap_or(false),
            recovery_set: self.recovery_set.unwrap_or(0),
            recovery_used: self.recovery_used.unwrap_or(0),
        })
    }
}

/// The part of a state the `kept` table holds.
fn kept_part(state: &UserState) -> (bool, u32, u32) {
    (state.keep, state.recovery_set, state.recovery_used)
}

/// The user's state as a decision would see it, from one SELECT outside any write
/// transaction (SQLite reads it from one snapshot).
fn peek_user(conn: &Connection, username: &str) -> rusqlite::Result<UserState> {
    let (row, history_lost_at) = conn.prepare_cached(PEEK_USER)?.query_row(
        [username],
        |r| -> rusqlite::Result<(Option<Row>, Option<i64>)> {
            let exists: bool = r.get(8)?;
            let row = if exists { Some(Row::read(r)?) } else { None };
            Ok((row, r.get(9)?))
        },
    )?;
    match row {
        Some(row) => row.state(history_lost_at),
        None => Ok(UserState {
            history_lost_at,
            ..UserState::default()
        }),
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
    let row: Option<Row> = tx
        .prepare_cached(SELECT_USER)?
        .query_row([username], Row::read)
        .optional()?;
    let history_lost_at: Option<i64> = tx
        .prepare_cached(SELECT_LOST)?
        .query_row([], |r| r.get(0))
        .optional()?;
    let mut state = match &row {
        Some(row) => row.state(history_lost_at)?,
        None => UserState {
            history_lost_at,
            ..UserState::default()
        },
    };
    let before = state.persisted();
    let kept_before = kept_part(&state);
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
        let kept_after = kept_part(&state);
        if kept_after != kept_before {
            if kept_after == kept_part(&UserState::default()) {
                tx.prepare_cached(DELETE_KEPT)?.execute([username])?;
            } else {
                tx.prepare_cached(UPSERT_KEPT)?.execute(params![
                    username,
                    state.keep,
                    state.recovery_set,
                    state.recovery_used
                ])?;
            }
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
    tx.prepare_cached(PRUNE_KEPT)?.execute([])?;
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
