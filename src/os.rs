//! Facts about this process and this machine that the plugin and motpctl both need: who we run
//! as, the names of users and groups, which boot this is and how long the machine has been up,
//! and the checks that decide whether a file or directory is under the control of someone we
//! must not trust. Safe Rust: everything comes from `/proc` and `stat`.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Who this process is: effective ids and, where `/etc/passwd` and `/etc/group` know them,
/// their names.
#[derive(Debug, Clone)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub user: Option<String>,
    pub group: Option<String>,
}

impl Identity {
    pub fn current() -> Identity {
        let (uid, gid) = effective_ids();
        Identity {
            uid,
            gid,
            user: user_name(uid),
            group: group_name(gid),
        }
    }

    /// The user's name, or the number where it has none.
    pub fn user_label(&self) -> String {
        self.user.clone().unwrap_or_else(|| self.uid.to_string())
    }

    /// The group's name, or the number where it has none.
    pub fn group_label(&self) -> String {
        self.group.clone().unwrap_or_else(|| self.gid.to_string())
    }
}

/// The effective uid and gid, from `/proc/self/status`. `u32::MAX` where that cannot be read:
/// such a process matches no owner, so every ownership check below refuses rather than trusts.
pub fn effective_ids() -> (u32, u32) {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let effective = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u32>().ok())
    };
    (
        effective("Uid:").unwrap_or(u32::MAX),
        effective("Gid:").unwrap_or(u32::MAX),
    )
}

pub fn effective_uid() -> u32 {
    effective_ids().0
}

/// The name of a uid in `/etc/passwd`.
pub fn user_name(uid: u32) -> Option<String> {
    name_in("/etc/passwd", uid)
}

/// The name of a gid in `/etc/group`.
pub fn group_name(gid: u32) -> Option<String> {
    name_in("/etc/group", gid)
}

/// The name of a uid, or the number.
pub fn user_label(uid: u32) -> String {
    user_name(uid).unwrap_or_else(|| uid.to_string())
}

/// The name of a gid, or the number.
pub fn group_label(gid: u32) -> String {
    group_name(gid).unwrap_or_else(|| gid.to_string())
}

/// The name of `id` in a passwd-style file (`name:x:id:...`).
fn name_in(file: &str, id: u32) -> Option<String> {
    let text = fs::read_to_string(file).ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id_field = fields.nth(1)?;
        (id_field.parse::<u32>().ok() == Some(id) && !name.is_empty()).then(|| name.to_owned())
    })
}

/// The kernel's id of this boot, from `/proc/sys/kernel/random/boot_id`.
pub fn boot_id() -> Option<String> {
    let id = fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(id.trim().to_owned())
}

/// The boot time (Unix seconds), from the `btime` line of `/proc/stat`.
pub fn boot_time() -> Option<i64> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// Whole seconds since boot, from `/proc/uptime` (CLOCK_BOOTTIME: suspend included, not moved
/// by setting the clock).
pub fn uptime_secs() -> Option<i64> {
    let text = fs::read_to_string("/proc/uptime").ok()?;
    let first = text.split_whitespace().next()?;
    let whole = first.split('.').next()?;
    whole.parse().ok()
}

/// Why a file or directory could be changed by someone outside `trusted`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untrusted {
    /// The file or directory at fault.
    pub path: PathBuf,
    pub problem: String,
    /// A command that fixes it.
    pub fix: String,
}

/// The owners whose files the plugin may act on: root and, where given, one other user (the user
/// the host process started as, when that is not root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedOwners {
    pub other: Option<u32>,
}

impl TrustedOwners {
    /// Root and the given uid.
    pub fn root_and(uid: u32) -> TrustedOwners {
        TrustedOwners {
            other: (uid != 0).then_some(uid),
        }
    }

    pub fn contains(&self, uid: u32) -> bool {
        uid == 0 || self.other == Some(uid)
    }

    fn describe(&self) -> String {
        match self.other {
            Some(uid) => format!("root or {}", user_label(uid)),
            None => "root".to_owned(),
        }
    }
}

/// Checks that only `trusted` owners can change `file` (already opened and `fstat`ed as
/// `meta`) or any directory on the way to it: each must be owned by a trusted owner and not be
/// writable by its group or by everyone. A world-writable directory with the sticky bit that
/// root owns (`/tmp`) is accepted on the way: there nobody can rename or remove an entry they
/// do not own. Symlinks are resolved first, so the directories checked are the real ones.
pub fn check_trusted_file(
    file: &Path,
    meta: &fs::Metadata,
    trusted: TrustedOwners,
) -> Result<(), Untrusted> {
    if !trusted.contains(meta.uid()) {
        return Err(Untrusted {
            path: file.to_owned(),
            problem: format!(
                "belongs to {} (uid {}), but only {} may own it: whoever runs as that user \
                 could change it",
                user_label(meta.uid()),
                meta.uid(),
                trusted.describe()
            ),
            fix: format!("chown root {}", file.display()),
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(Untrusted {
            path: file.to_owned(),
            problem: format!(
                "is writable by its group or by everyone (mode {mode:04o}), so others than its \
                 owner could change it"
            ),
            fix: format!("chmod go-w {}", file.display()),
        });
    }
    let real = fs::canonicalize(file).map_err(|e| Untrusted {
        path: file.to_owned(),
        problem: format!("cannot be resolved to a real path: {e}"),
        fix: "check the path".to_owned(),
    })?;
    for dir in real.ancestors().skip(1) {
        let dir_meta = fs::metadata(dir).map_err(|e| Untrusted {
            path: dir.to_owned(),
            problem: format!("cannot be examined: {e}"),
            fix: "check the path".to_owned(),
        })?;
        check_trusted_dir(dir, &dir_meta, trusted)?;
    }
    Ok(())
}

/// One directory on the way to a trusted file (see [`check_trusted_file`]).
fn check_trusted_dir(
    dir: &Path,
    meta: &fs::Metadata,
    trusted: TrustedOwners,
) -> Result<(), Untrusted> {
    let mode = meta.mode() & 0o7777;
    let sticky_root_dir = mode & 0o1000 != 0 && meta.uid() == 0;
    if !trusted.contains(meta.uid()) {
        return Err(Untrusted {
            path: dir.to_owned(),
            problem: format!(
                "is a directory owned by {} (uid {}): that user could replace the files in it",
                user_label(meta.uid()),
                meta.uid()
            ),
            fix: format!("chown root {}", dir.display()),
        });
    }
    if mode & 0o022 != 0 && !sticky_root_dir {
        return Err(Untrusted {
            path: dir.to_owned(),
            problem: format!(
                "is a directory writable by its group or by everyone (mode {mode:04o}): others \
                 could replace the files in it"
            ),
            fix: format!("chmod go-w {}", dir.display()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_owners_always_include_root() {
        assert!(TrustedOwners::root_and(0).contains(0));
        assert!(!TrustedOwners::root_and(0).contains(65534));
        assert!(TrustedOwners::root_and(65534).contains(65534));
        assert!(TrustedOwners::root_and(65534).contains(0));
        assert!(!TrustedOwners::root_and(65534).contains(1000));
    }

    #[test]
    fn this_process_has_an_identity() {
        let me = Identity::current();
        assert_ne!(me.uid, u32::MAX);
        assert_eq!(effective_uid(), me.uid);
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
}
