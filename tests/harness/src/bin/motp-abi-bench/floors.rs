//! Floors: what each piece of a call costs on this machine, measured in this process.

use std::ffi::{c_char, c_int, CString};
use std::fs::File;
use std::path::PathBuf;
use std::time::Instant;

use motp::engine::{
    burn_window, burn_window_costing, code_at_step, find_step, find_step_costing, step_of, Code,
};
use motp_harness::openvpn::unix_now;
use motp_harness::synthetic::{pin, secret};
use openvpn_plugin_sys as sys;

use crate::stats::stats;
use crate::stderr::{stderr_restore, stderr_silence};
use crate::workspace::{wrong_code, Workspace};
use crate::RADIUS;

pub struct Floor {
    pub what: &'static str,
    pub ns: f64,
}

/// Median ns per iteration of `f` over `batches` batches of `per_batch` iterations.
pub fn measure(batches: usize, per_batch: usize, mut f: impl FnMut(usize)) -> f64 {
    let mut v = Vec::with_capacity(batches);
    for b in 0..=batches {
        let start = Instant::now();
        for k in 0..per_batch {
            f(b * per_batch + k);
        }
        if b > 0 {
            v.push(start.elapsed().as_nanos() as f64 / per_batch as f64);
        }
    }
    stats(&v, batches * per_batch).median
}

extern "C" {
    /// The harness's `plugin_log` (c/host_callbacks.c), as the plugin calls it.
    pub fn motp_test_plugin_log(flags: c_int, name: *const c_char, format: *const c_char, ...);
    /// Nanoseconds spent in `motp_test_plugin_log` so far (c/host_callbacks.c).
    pub fn motp_test_host_log_ns() -> u64;
}

/// Issue 7's reference for a rejection: 37 MD5s of the mOTP message, one after another.
pub const SEQUENTIAL_37: &str = "37 MD5s one after another: 37 × engine::code_at_step";

pub fn floors(ws: &mut Workspace) -> Vec<Floor> {
    let key = [secret(1), pin(1)].concat();
    let key = key.as_bytes();
    let center = step_of(unix_now());
    let current = code_at_step(center, key);
    let wrong = Code::parse(wrong_code(1, unix_now()).as_bytes()).expect("code");
    let mut out = Vec::new();

    out.push(Floor {
        what: "1 MD5: engine::code_at_step (29-byte message)",
        ns: measure(21, 20_000, |i| {
            std::hint::black_box(code_at_step(center + (i & 1) as i64, key));
        }),
    });
    out.push(Floor {
        what: SEQUENTIAL_37,
        ns: measure(21, 2_000, |_| {
            for offset in -RADIUS..=RADIUS {
                std::hint::black_box(code_at_step(center + offset, std::hint::black_box(key)));
            }
        }),
    });
    out.push(Floor {
        what: "the window: engine::find_step, wrong code (all 37 codes)",
        ns: measure(21, 2_000, |_| {
            std::hint::black_box(find_step(std::hint::black_box(wrong), key, center, RADIUS));
        }),
    });
    out.push(Floor {
        what: "the window: engine::burn_window (unknown user)",
        ns: measure(21, 2_000, |_| {
            burn_window(std::hint::black_box(wrong), center, RADIUS);
        }),
    });
    // A table with one long key (a 32-hex secret and a 20-character PIN: two MD5 blocks per
    // code): every search, and the burn for unknown users, costs what that key costs.
    let long_key = b"00112233445566778899aabbccddeeffa-very-long-pin-of-20";
    let cost = long_key.len();
    out.push(Floor {
        what: "52-byte key (2 blocks per code): engine::find_step_costing, wrong code",
        ns: measure(21, 2_000, |_| {
            std::hint::black_box(find_step_costing(wrong, long_key, center, RADIUS, cost));
        }),
    });
    out.push(Floor {
        what: "20-byte key in that table: engine::find_step_costing padded to 52, wrong code",
        ns: measure(21, 2_000, |_| {
            std::hint::black_box(find_step_costing(wrong, key, center, RADIUS, cost));
        }),
    });
    out.push(Floor {
        what: "unknown user in that table: engine::burn_window_costing padded to 52",
        ns: measure(21, 2_000, |_| {
            burn_window_costing(std::hint::black_box(wrong), center, RADIUS, cost);
        }),
    });
    out.push(Floor {
        what: "accept search: engine::find_step at the current step",
        ns: measure(21, 20_000, |_| {
            std::hint::black_box(find_step(
                std::hint::black_box(current),
                key,
                center,
                RADIUS,
            ));
        }),
    });

    // Into fresh empty files, as OpenVPN hands them over (created and removed untimed).
    let mut per_write = Vec::new();
    for round in 0..=21 {
        let files: Vec<PathBuf> = (0..1_000)
            .map(|k| {
                let p = ws.dir.path().join(format!("afr-floor-{k}.tmp"));
                File::create(&p).expect("create");
                p
            })
            .collect();
        let start = Instant::now();
        for p in &files {
            std::fs::write(p, "Authentication failed").expect("write");
        }
        if round > 0 {
            per_write.push(start.elapsed().as_nanos() as f64 / files.len() as f64);
        }
        for p in &files {
            let _ = std::fs::remove_file(p);
        }
    }
    out.push(Floor {
        what: "write auth_failed_reason_file (fresh empty file: open, write, close; TEMP reasons only)",
        ns: stats(&per_write, per_write.len()).median,
    });

    // The host's plugin_log: formatting and recording a typical decision line. Outside any
    // plugin call the harness files lines as "unattributed" (kept for the process's life), so
    // this is measured on few lines.
    let line =
        CString::new("login rejected ip=192.0.2.10 reason=\"bad code\" user=u0000001".as_bytes())
            .expect("no NUL");
    stderr_silence();
    let host_log = measure(11, 1_000, |_| {
        // SAFETY: "%s" with one NUL-terminated string: a well-formed printf-style call.
        unsafe {
            motp_test_plugin_log(
                sys::PLOG_WARN,
                c"motp".as_ptr(),
                c"%s".as_ptr(),
                line.as_ptr(),
            )
        };
    });
    stderr_restore();
    out.push(Floor {
        what: "host plugin_log: the harness's C vsnprintf + record + stderr write",
        ns: host_log,
    });
    out
}
