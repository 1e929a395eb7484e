//! Stderr: the harness prints every plugin log line there; silence it while the plugin runs.

use std::ffi::c_int;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, Ordering};

extern "C" {
    pub fn dup(fd: c_int) -> c_int;
    pub fn dup2(old: c_int, new: c_int) -> c_int;
}

/// A duplicate of the original stderr, or -1 before [`stderr_setup`].
pub static SAVED_STDERR: AtomicI32 = AtomicI32::new(-1);
/// An fd open on /dev/null.
pub static DEV_NULL: AtomicI32 = AtomicI32::new(-1);

pub fn stderr_setup() {
    let null = File::options()
        .write(true)
        .open("/dev/null")
        .expect("open /dev/null");
    // SAFETY: dup of fd 2, which is open for the whole process; the copy is never closed.
    let saved = unsafe { dup(2) };
    assert!(saved >= 0, "dup(2) failed");
    SAVED_STDERR.store(saved, Ordering::SeqCst);
    // The /dev/null fd stays open for the life of the process.
    DEV_NULL.store(null.as_raw_fd(), Ordering::SeqCst);
    std::mem::forget(null);
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        stderr_restore();
        default_hook(info);
    }));
}

pub fn stderr_silence() {
    let null = DEV_NULL.load(Ordering::SeqCst);
    if null >= 0 {
        // SAFETY: both fds are open; dup2 atomically points fd 2 at /dev/null.
        unsafe { dup2(null, 2) };
    }
}

pub fn stderr_restore() {
    let saved = SAVED_STDERR.load(Ordering::SeqCst);
    if saved >= 0 {
        // SAFETY: `saved` is our open duplicate of the original stderr.
        unsafe { dup2(saved, 2) };
    }
}
