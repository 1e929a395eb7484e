//! Temporary directories for tests and benches, removed on drop.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh directory under the system temp dir, removed on drop (kept if `MOTP_KEEP_TEMP` is
/// set).
pub struct TempDir {
    path: PathBuf,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TempDir {
    /// `motp-<label>-<pid>-<n>`, mode 0755.
    pub fn new(label: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("motp-{label}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create temp dir");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
        TempDir { path }
    }

    /// A fresh 0700 directory whose name has no digits (`motp-<label>-<letters>-<letters>`, for
    /// a `label` without digits), so that no code or PIN can appear in a logged path by chance.
    pub fn without_digits(label: &str) -> TempDir {
        let letters = |mut n: u64| {
            let mut s = String::new();
            loop {
                s.push(char::from(b'g' + (n % 20) as u8));
                n /= 20;
                if n == 0 {
                    break s;
                }
            }
        };
        let name = format!(
            "motp-{label}-{}-{}",
            letters(u64::from(std::process::id())),
            letters(u64::from(COUNTER.fetch_add(1, Ordering::Relaxed)))
        );
        let path = std::env::temp_dir().join(name);
        let _ = fs::remove_dir_all(&path);
        fs::create_dir(&path).expect("create temp dir");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).expect("chmod temp dir");
        TempDir { path }
    }

    /// A fresh 0700 directory for a bench's state store, under `/var/tmp` (a disk, as
    /// `/var/lib/openvpn-motp` is; `/tmp` may be tmpfs) or `$MOTP_BENCH_STATE_PARENT`.
    pub fn for_bench_state(label: &str) -> TempDir {
        let parent = std::env::var_os("MOTP_BENCH_STATE_PARENT")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/tmp"));
        let path = parent.join(format!("motp-bench-{label}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir(&path).expect("create the state directory");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).expect("chmod state dir");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `name` inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `name` with mode `mode` (created 0600 first, so it is never briefly wider).
    pub fn write(&self, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = self.path.join(name);
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .expect("create config");
        file.write_all(text.as_bytes()).expect("write config");
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod config");
        path
    }

    /// The names in the directory, sorted.
    pub fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("MOTP_KEEP_TEMP").is_none() {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}
