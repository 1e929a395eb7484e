//! One open plugin instance.

use std::ffi::{c_int, CStr};
use std::path::Path;
use std::time::{Duration, Instant};

use motp_harness::abi::{OpenOptions, Plugin};
use openvpn_plugin_sys as sys;

use crate::env::CallEnv;
use crate::floors::{measure, motp_test_host_log_ns};
use crate::stderr::{stderr_restore, stderr_silence};

pub struct Instance {
    pub plugin: Plugin,
}

impl Instance {
    pub fn open(config: &Path) -> Result<Instance, String> {
        let options = OpenOptions::new(config);
        stderr_silence();
        let opened = options.open();
        stderr_restore();
        match opened {
            Ok(plugin) => {
                plugin.take_logs();
                Ok(Instance { plugin })
            }
            Err(e) => Err(e.messages().join(" | ")),
        }
    }

    /// One `AUTH_USER_PASS_VERIFY`, built as OpenVPN builds it. The caller silences stderr.
    #[inline]
    pub fn call(&self, env: &CallEnv) -> c_int {
        // SAFETY: `env.ptrs` is a NULL-terminated array of C strings owned by `env` and its
        // template, both alive for the call.
        unsafe {
            self.plugin
                .call_envp(sys::OPENVPN_PLUGIN_AUTH_USER_PASS_VERIFY, env.ptrs.as_ptr())
        }
    }

    /// Calls every env untimed (pre-passes, warm-up); returns the log lines.
    pub fn run_untimed(&self, envs: &[CallEnv]) -> Vec<String> {
        stderr_silence();
        for env in envs {
            self.call(env);
        }
        stderr_restore();
        self.take_messages()
    }

    /// Reads and clears the instance's log.
    pub fn take_messages(&self) -> Vec<String> {
        self.plugin
            .take_logs()
            .into_iter()
            .map(|l| l.message)
            .collect()
    }
}

impl CallEnv<'_> {
    /// Reads every byte of the env, as OpenVPN has just done when it calls a plugin (it builds
    /// the array and writes the per-client strings right before the call), so the plugin meets
    /// it in the CPU cache, not in memory last touched a batch ago.
    pub fn touch(&self) -> usize {
        let mut sum = 0usize;
        for &p in &self.ptrs[..self.ptrs.len() - 1] {
            // SAFETY: every pointer is a NUL-terminated string owned by this env or its template.
            sum = sum.wrapping_add(unsafe { CStr::from_ptr(p) }.to_bytes().len());
        }
        std::hint::black_box(sum)
    }
}

/// Times one batch, each call on its own: the env is touched (untimed) right before its call,
/// and the timer's own cost ([`timer_overhead`]) is subtracted. Returns the time in the calls,
/// the part of it spent in the host's `plugin_log` (formatting and writing the plugin's
/// lines, OpenVPN's work in a real server), and how many calls returned `expected`.
pub fn timed_batch(
    instance: &Instance,
    envs: &[CallEnv],
    expected: c_int,
) -> (Duration, Duration, usize) {
    stderr_silence();
    let mut matching = 0usize;
    // SAFETY: a plain read of the C shim's counter, on the only thread that updates it.
    let host_before = unsafe { motp_test_host_log_ns() };
    let mut in_calls = Duration::ZERO;
    for env in envs {
        env.touch();
        let start = Instant::now();
        let code = instance.call(env);
        in_calls += start.elapsed();
        matching += usize::from(code == expected);
    }
    // SAFETY: as above.
    let host = unsafe { motp_test_host_log_ns() } - host_before;
    stderr_restore();
    let overhead = timer_overhead() * envs.len() as u32;
    (
        in_calls.saturating_sub(overhead),
        Duration::from_nanos(host),
        matching,
    )
}

/// What `Instant::now()` twice and an `elapsed()` cost with nothing between them: the median
/// over 21 batches of 10,000, measured once.
pub fn timer_overhead() -> Duration {
    static OVERHEAD: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *OVERHEAD.get_or_init(|| {
        let ns = measure(21, 10_000, |_| {
            let start = Instant::now();
            std::hint::black_box(start.elapsed());
        });
        Duration::from_nanos(ns as u64)
    })
}
