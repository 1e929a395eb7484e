//! The plugin's log as the test host captures it: [`LogLine`], the per-thread "current
//! recorder" the C `plugin_log` reports to ([`motp_harness_record_log`]), and the lines that
//! arrived outside any call ([`unattributed_logs`]).

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};

use openvpn_plugin_sys as sys;

/// One message the plugin sent through `plugin_log`/`plugin_vlog`, formatted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// `PLOG_*` bits.
    pub flags: c_int,
    /// The plugin name argument (OpenVPN drops messages whose name is empty).
    pub name: String,
    /// The formatted text (lossily decoded if it was not UTF-8).
    pub message: String,
}

impl LogLine {
    /// `ERR`, `WARN`, `NOTE` or `DEBUG` (plus `|ERRNO`, `|NOMUTE`), for assertions and output.
    pub fn level(&self) -> String {
        let mut parts = Vec::new();
        for (bit, name) in [
            (sys::PLOG_ERR, "ERR"),
            (sys::PLOG_WARN, "WARN"),
            (sys::PLOG_NOTE, "NOTE"),
            (sys::PLOG_DEBUG, "DEBUG"),
            (sys::PLOG_ERRNO, "ERRNO"),
            (sys::PLOG_NOMUTE, "NOMUTE"),
        ] {
            if self.flags & bit != 0 {
                parts.push(name);
            }
        }
        if parts.is_empty() {
            format!("{:#x}", self.flags)
        } else {
            parts.join("|")
        }
    }
}

impl std::fmt::Display for LogLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.level(), self.name, self.message)
    }
}

pub(super) type Recorder = Arc<Mutex<Vec<LogLine>>>;

pub(super) fn lock(recorder: &Mutex<Vec<LogLine>>) -> MutexGuard<'_, Vec<LogLine>> {
    recorder
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

thread_local! {
    static CURRENT: RefCell<Option<Recorder>> = const { RefCell::new(None) };
}

/// Lines logged while no plugin call was in progress on the logging thread (a plugin logging
/// from a thread of its own, or after returning). OpenVPN's API does not allow that.
static UNATTRIBUTED: Mutex<Vec<LogLine>> = Mutex::new(Vec::new());

/// Lines that arrived outside any call made through this module (normally none).
pub fn unattributed_logs() -> Vec<LogLine> {
    lock(&UNATTRIBUTED).clone()
}

/// Called by the C `plugin_log`/`plugin_vlog` with the finished message.
///
/// # Safety
/// `name` and `message` must each be NULL or a NUL-terminated string valid for the call.
#[no_mangle]
pub unsafe extern "C" fn motp_harness_record_log(
    flags: c_int,
    name: *const c_char,
    message: *const c_char,
) {
    let text = |p: *const c_char| {
        if p.is_null() {
            "(NULL)".to_owned()
        } else {
            // SAFETY: non-NULL, and the caller promises a NUL-terminated string.
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    };
    let line = LogLine {
        flags,
        name: text(name),
        message: text(message),
    };
    // Never unwind into C (an unwind out of an extern "C" fn aborts the test binary).
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let current = CURRENT.try_with(|c| c.borrow().clone()).ok().flatten();
        match current {
            Some(recorder) => {
                // Shown by libtest only when the test fails.
                eprintln!("[motp.so] {line}");
                lock(&recorder).push(line);
            }
            None => {
                eprintln!("[motp.so, outside any call] {line}");
                lock(&UNATTRIBUTED).push(line);
            }
        }
    }));
}

/// Makes `recorder` the calling thread's log target until dropped.
pub(super) struct Capture {
    previous: Option<Recorder>,
}

impl Capture {
    pub(super) fn start(recorder: &Recorder) -> Capture {
        let previous = CURRENT.with(|c| c.replace(Some(recorder.clone())));
        Capture { previous }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let _ = CURRENT.try_with(|c| *c.borrow_mut() = previous);
    }
}

/// A plugin instance's log, readable after the instance is gone.
#[derive(Clone)]
pub struct LogHandle(pub(super) Recorder);

impl LogHandle {
    pub fn lines(&self) -> Vec<LogLine> {
        lock(&self.0).clone()
    }
}
