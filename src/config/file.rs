//! Reading motp.toml off the disk: opened without blocking, then checked on the open file
//! (`fstat`) to be a regular file, neither readable nor writable by everyone, changeable only
//! by trusted owners (the file and every directory above it), and of a bounded size; read into
//! a buffer that is wiped when dropped, since the text holds every secret and PIN.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use zeroize::Zeroizing;

use super::{ConfigError, TrustedOwners, MAX_CONFIG_BYTES};

/// The file's text, wiped when dropped: it holds every secret and PIN.
pub(super) fn read_protected(
    path: &Path,
    trusted: TrustedOwners,
) -> Result<Zeroizing<String>, ConfigError> {
    let fail = |message: String| ConfigError {
        path: path.to_owned(),
        line: None,
        key: None,
        message,
    };
    // Non-blocking, so that a FIFO or a device in its place cannot hold the caller (OpenVPN's
    // thread at start and SIGHUP, the watcher at close) in `open`; regular files ignore the
    // flag. Nothing is read before `fstat` has said it is a regular file.
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| {
            fail(format!(
                "cannot open the config: {e}; check the path given on the `plugin` line"
            ))
        })?;
    let meta = file
        .metadata()
        .map_err(|e| fail(format!("cannot stat the config: {e}")))?;
    if !meta.is_file() {
        return Err(fail(
            "is not a regular file (a FIFO, device or directory?); give the path of the \
             motp.toml file itself"
                .into(),
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o006 != 0 {
        return Err(fail(format!(
            "is readable or writable by every user (mode {mode:04o}) but holds secrets and PINs; \
             run `chmod 0640 {}` and give its group to OpenVPN's runtime group",
            path.display()
        )));
    }
    if let Err(untrusted) = crate::os::check_trusted_file(path, &meta, trusted) {
        let at = if untrusted.path == path {
            String::new()
        } else {
            format!("{} ", untrusted.path.display())
        };
        return Err(fail(format!(
            "{at}{}; motp.toml decides who may log in, so only root (or the user OpenVPN \
             starts as) may be able to change it. Fix: run `{}` as root",
            untrusted.problem, untrusted.fix
        )));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(fail(format!(
            "is larger than {MAX_CONFIG_BYTES} bytes; is this the right file?"
        )));
    }
    // Sized up front so reading never reallocates (a reallocation would free an unwiped copy).
    let mut text = Zeroizing::new(String::with_capacity(meta.len() as usize + 1));
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| {
            fail(format!(
                "cannot read the config: {e} (it must be UTF-8 text)"
            ))
        })?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(fail(format!(
            "is larger than {MAX_CONFIG_BYTES} bytes; is this the right file?"
        )));
    }
    Ok(text)
}
