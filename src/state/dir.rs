//! The state directory: created when missing, and checked before any store works in it.
//!
//! # Who may touch the directory
//! Only its owner, and only when writable by no one else: the store refuses to work in a
//! directory another user owns or can write, above all when it runs as root (see
//! docs/security.md). Every name in the directory is chosen by its owner, so root acting on
//! one (creating, truncating, chmod-ing or chown-ing by path) could be steered onto any file on
//! the system. OpenVPN opens the plugin after dropping privileges, so the runtime user creates
//! and owns every file; `motpctl` switches to the directory's owner before it opens the store.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use tracing::info;

use super::StateError;
use crate::os::Identity;

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
mod tests {
    use super::*;
    use crate::state::sqlite::tests::{capture, FakeHost, TempDir, T0};
    use crate::state::{SqliteStore, DB_FILE_NAME};
    use std::os::unix::fs::PermissionsExt;

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
}
