//! Opening the state database: a missing file is created complete under a temporary name and
//! linked into place, an existing one is checked (and a version 1 or 2 database upgraded) in the
//! opening transaction, unusable files are moved aside and the history counts as lost, and a
//! reboot that left the write-ahead log behind is noticed (see the store's doc, [`super`]).
//!
//! # Only what the plugin made
//! The database must hold exactly the tables and indexes the plugin creates, with the same
//! SQL: a trigger, view or index added by whoever can write the file (the runtime user) makes
//! it count as corrupt. The connection also runs with triggers and views disabled and
//! `trusted_schema = OFF`, so such an object never runs even before it is noticed.
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

use std::fs;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use rusqlite::config::DbConfig;
use rusqlite::ffi::ErrorCode;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use tracing::{error, info, warn};

use super::{FileId, Host, Inner, BUSY_TIMEOUT};
use crate::state::StateError;

pub(super) const SCHEMA_VERSION: i64 = 3;

/// Schema version 1: one row per user.
pub(super) const SCHEMA_V1: &str = "
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
/// steps (see [`UserState::may_have_been_used`](crate::state::UserState::may_have_been_used)).
/// A user without a row here is one version 1 recorded. A version 1 database is upgraded in
/// place by running this (and [`SCHEMA_V3_ADDS`]).
pub(super) const SCHEMA_V2_ADDS: &str = "
CREATE TABLE recent_codes (
    username TEXT PRIMARY KEY NOT NULL,
    last_offset_secs INTEGER NOT NULL,
    steps TEXT NOT NULL
) WITHOUT ROWID;
";
/// What version 3 adds: what a user's row holds beyond replay and lockout (see
/// [`UserState::keep`](crate::state::UserState::keep)): `keep` (1: the row outlives pruning, it
/// holds a counter token's counter or used recovery codes), and the recovery code set and the
/// uses of its codes (a bit mask). Only users with one of them non-default have a row here; a
/// user without one has none of them, as versions 1 and 2 recorded. A version 2 database is
/// upgraded in place by running this.
pub(super) const SCHEMA_V3_ADDS: &str = "
CREATE TABLE kept (
    username TEXT PRIMARY KEY NOT NULL,
    keep INTEGER NOT NULL,
    recovery_set INTEGER NOT NULL,
    recovery_used INTEGER NOT NULL
) WITHOUT ROWID;
";
/// What each version adds to the one before it, from version 2 on (index 0: version 2).
const SCHEMA_ADDS: [&str; 2] = [SCHEMA_V2_ADDS, SCHEMA_V3_ADDS];
const _: () = assert!(SCHEMA_ADDS.len() as i64 == SCHEMA_VERSION - 1);

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
pub(super) enum OpenError {
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

/// Opens the database at `path`, moving unusable files aside until a usable one opens.
/// `lost` is a time at which the caller knows history was lost (the file was replaced).
pub(super) fn open_db(path: &Path, host: &Host, mut lost: Option<i64>) -> Result<Inner, OpenError> {
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
    for adds in SCHEMA_ADDS {
        conn.execute_batch(adds)?;
    }
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
/// A database exactly as an older version made it (1 or 2) is upgraded to the current one in
/// the same transaction (tables added; nothing in the existing ones changed).
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
    // Only a file with exactly an older version's objects, labelled with that version, is
    // upgraded: anything else is checked (and refused) below, unchanged.
    let older = (1..SCHEMA_VERSION).find(|v| found.as_slice() == expected_schema(*v));
    if let Some(old) = older {
        if version(tx)? == Some(old) {
            for adds in &SCHEMA_ADDS[usize::try_from(old - 1).expect("1 or more")..] {
                tx.execute_batch(adds).map_err(classify)?;
            }
            tx.execute(
                "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
                [SCHEMA_VERSION],
            )
            .map_err(classify)?;
            info!(
                "state database: upgraded from schema version {old} to {SCHEMA_VERSION} (every \
                 user's state kept)"
            );
            found = schema_objects(tx).map_err(classify)?;
        }
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
    static BUILT: [std::sync::OnceLock<Vec<SchemaObject>>; SCHEMA_VERSION as usize] =
        [const { std::sync::OnceLock::new() }; SCHEMA_VERSION as usize];
    let version = version.clamp(1, SCHEMA_VERSION);
    let index = usize::try_from(version - 1).expect("clamped to 1 or more");
    BUILT[index].get_or_init(|| {
        let conn = Connection::open_in_memory().expect("an in-memory SQLite database opens");
        conn.execute_batch(SCHEMA_V1)
            .expect("the plugin's own schema is valid SQL");
        for part in &SCHEMA_ADDS[..index] {
            conn.execute_batch(part)
                .expect("the plugin's own schema is valid SQL");
        }
        schema_objects(&conn).expect("an in-memory schema reads back")
    })
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

pub(super) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
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
