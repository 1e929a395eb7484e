//! The data epoch: how a server notices that Redis lost its data (the epoch file in
//! `[state] dir`, the sync with Redis), and the quarantine that follows.
//!
//! **Lost data.** A Redis restarted without persistence, a failover to an empty node, an
//! eviction or a `FLUSHALL` forget used steps, which would reopen replay. Every decision checks
//! the epoch the server expects; each server remembers the last epoch it saw in `[state] dir`
//! (`redis-epoch`), so this holds across SIGHUP and restarts. Epoch missing, or another one,
//! while the server remembered one: the data was lost. The server then makes (or adopts) the
//! new epoch and sets `lost_at` next to it, in one script, so every server refuses, for every
//! user, each step the window could have reached before the loss (as the local store does after
//! a corrupt file). A first contact with an empty Redis by a server that remembers nothing
//! starts without quarantine.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use tracing::{error, info, warn};

use super::{Failure, RedisStore};

pub(super) const EPOCH_FILE: &str = "redis-epoch";

const EPOCH_FILE_HEADER: &str = "motp redis epoch v1";

/// The epoch this server expects, and where it remembers it.
pub(super) struct Epoch {
    pub(super) known: Option<String>,
    /// `None` when the directory cannot be used: the epoch is then remembered in this process
    /// only (a loss while it runs is still noticed, not one across a SIGHUP).
    pub(super) file: Option<PathBuf>,
    pub(super) loaded: bool,
}

impl RedisStore {
    /// Brings this server's epoch in line with what Redis holds (`observed`), starting the
    /// quarantine when the data it knew is gone. Remembers the result in `[state] dir`.
    pub(super) fn sync_epoch(
        &self,
        conn: &mut redis::Connection,
        observed: Option<String>,
    ) -> Result<(), Failure> {
        self.load_epoch();
        let known = self.epoch.lock().known.clone();
        if observed.is_some() && observed == known {
            return Ok(());
        }
        if let Some(o) = &observed {
            if !valid_epoch(o) {
                return Err(Failure::Refused(
                    "its data epoch key holds something this plugin did not write; is \
                     key_prefix shared with another application?"
                        .into(),
                ));
            }
        }
        let lost = known.is_some();
        let now = crate::clock::now();
        let fresh = new_epoch_id().map_err(Failure::Refused)?;
        let actual: String = self
            .epoch_script
            .key(self.epoch_key())
            .key(self.lost_key())
            .arg(&fresh)
            .arg(if lost { "1" } else { "0" })
            .arg(now)
            .arg(self.ttl())
            .invoke(conn)
            .map_err(Failure::Redis)?;
        if !valid_epoch(&actual) {
            return Err(Failure::Refused(
                "its data epoch key holds something this plugin did not write".into(),
            ));
        }
        if lost {
            error!(
                "redis at {}: the data this server knew is gone ({}; a restart without \
                 persistence, a failover to an empty node, an eviction or a FLUSHALL?); codes \
                 that may have been used before are refused on every server for one window \
                 length (users wait for a later code). Run Redis with appendonly yes and \
                 maxmemory-policy noeviction",
                self.where_,
                if observed.is_none() {
                    "its data epoch is missing"
                } else {
                    "it holds another data epoch"
                }
            );
        } else if actual == fresh {
            info!("redis at {}: started its data epoch", self.where_);
        }
        let mut epoch = self.epoch.lock();
        epoch.known = Some(actual.clone());
        if let Some(file) = &epoch.file {
            if let Err(e) = save_epoch(file, &self.where_, &self.prefix, &actual) {
                warn!(
                    "cannot remember the Redis data epoch in {}: {e}; a Redis that loses its \
                     data while this server is stopped would go unnoticed",
                    file.display()
                );
            }
        }
        Ok(())
    }

    /// Reads the remembered epoch from `[state] dir` once (preparing the directory as the
    /// local store does).
    pub(super) fn load_epoch(&self) {
        let mut epoch = self.epoch.lock();
        if epoch.loaded {
            return;
        }
        epoch.loaded = true;
        match crate::state::dir::prepare_dir(&self.dir) {
            Ok(()) => {
                let file = self.dir.join(EPOCH_FILE);
                match load_epoch_file(&file, &self.where_, &self.prefix) {
                    Ok(known) => epoch.known = known,
                    Err(e) => warn!(
                        "{}: {e}; treating it as absent (a data loss before this start would \
                         go unnoticed once)",
                        file.display()
                    ),
                }
                epoch.file = Some(file);
            }
            Err(e) => warn!(
                "{e}; without it this server cannot remember the Redis data epoch, so a Redis \
                 that loses its data while this server is stopped goes unnoticed"
            ),
        }
    }
}

/// 32 lowercase hex digits (what [`new_epoch_id`] makes).
pub(super) fn valid_epoch(text: &str) -> bool {
    text.len() == 32
        && text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

pub(super) fn new_epoch_id() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("cannot read /dev/urandom for a data epoch: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The epoch remembered for this Redis and prefix, if the file says so. The file is in the
/// runtime user's directory and read as that user: its content is checked, never trusted.
pub(super) fn load_epoch_file(
    file: &Path,
    where_: &str,
    prefix: &str,
) -> Result<Option<String>, String> {
    let opened = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(file);
    let mut f = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot open it: {e}")),
    };
    let meta = f.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() || meta.size() > 4096 {
        return Err("is not a small regular file".to_owned());
    }
    let mut text = String::new();
    f.read_to_string(&mut text)
        .map_err(|_| "is not text".to_owned())?;
    let lines: Vec<&str> = text.lines().collect();
    match lines.as_slice() {
        [EPOCH_FILE_HEADER, w, p, epoch] if valid_epoch(epoch) => {
            Ok((*w == where_ && *p == prefix).then(|| (*epoch).to_owned()))
        }
        _ => Err("is not in the expected format".to_owned()),
    }
}

/// Writes the file anew (a fresh name, then rename), never through an existing name.
pub(super) fn save_epoch(
    file: &Path,
    where_: &str,
    prefix: &str,
    epoch: &str,
) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = file.with_extension(format!("tmp-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    f.write_all(format!("{EPOCH_FILE_HEADER}\n{where_}\n{prefix}\n{epoch}\n").as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, file)
}
