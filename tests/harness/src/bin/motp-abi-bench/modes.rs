//! One mode at one user count ([`run_mode`]), and all of them ([`run_all`]).

use std::collections::BTreeMap;

use motp::engine::step_of;
use motp_harness::openvpn::unix_now;

use crate::env::{CallEnv, Template};
use crate::instance::{timed_batch, Instance};
use crate::options::{Backend, Mode, Options};
use crate::stats::{fmt_count, fmt_ns, load_average, stats_with_host, Stats};
use crate::stderr::stderr_restore;
use crate::workspace::{
    address, unknown_name, user_name, users_toml, valid_code, wrong_code, Workspace, WARM_INDEX,
    WARM_USER,
};
use crate::{LOCKOUT_SECS, NO_LOCKOUT};

pub struct ModeRun<'a> {
    pub backend: Backend,
    pub users: usize,
    pub users_toml: &'a str,
    pub mode: Mode,
    pub batches: usize,
    pub batch_size: usize,
    pub template: &'a Template,
}

pub fn run_mode(ws: &mut Workspace, r: &ModeRun) -> Result<Stats, String> {
    let mode = r.mode;
    let (max_failures, lockout) = match mode {
        Mode::Locked => (1, LOCKOUT_SECS),
        _ => (NO_LOCKOUT, 300),
    };
    let mut config = ws.config(r.backend, max_failures, lockout, r.users_toml);
    let mut instance = Instance::open(&config)?;
    // A valid batch uses each user once; the others cycle through the table.
    let batch = if mode == Mode::Valid {
        r.batch_size.min(r.users)
    } else {
        r.batch_size
    };
    let mut cursor = 0usize;
    let mut used_since_open = 0usize;
    let mut per_call = Vec::with_capacity(r.batches);
    let mut host_per_call = Vec::with_capacity(r.batches);
    let mut calls = 0usize;
    let mut warmed = false;
    let mut straddled = 0;

    while per_call.len() < r.batches {
        if mode == Mode::Valid && used_since_open + batch > r.users {
            // Every user has accepted a code in this instance: start a fresh one.
            drop(instance);
            if r.backend == Backend::Local {
                config = ws.config(r.backend, max_failures, lockout, r.users_toml);
            }
            instance = Instance::open(&config)?;
            used_since_open = 0;
            cursor = 0;
        }
        if !warmed || mode == Mode::Valid {
            // After an open: a few unknown-user logins and one accept of the extra user wake up
            // lazy state and caches (no user of the table is touched).
            let mut warm: Vec<CallEnv> = (0..4)
                .map(|i| r.template.build(&unknown_name(i), "000000", None))
                .collect();
            warm.push(
                r.template
                    .build(WARM_USER, &valid_code(WARM_INDEX, unix_now()), None),
            );
            instance.run_untimed(&warm);
        }

        let now = unix_now();
        let step = step_of(now);
        let indices: Vec<usize> = (0..batch).map(|k| (cursor + k) % r.users).collect();
        cursor = (cursor + batch) % r.users;
        used_since_open += batch;

        // Pre-passes, untimed.
        match mode {
            Mode::Replay => {
                let first: Vec<CallEnv> = indices
                    .iter()
                    .map(|&i| {
                        let (ip, port) = address(i);
                        r.template
                            .build(&user_name(i), &valid_code(i, now), Some((&ip, port)))
                    })
                    .collect();
                instance.run_untimed(&first);
            }
            Mode::Locked => {
                let lock: Vec<CallEnv> = indices
                    .iter()
                    .map(|&i| {
                        let (ip, port) = address(i);
                        r.template
                            .build(&user_name(i), &wrong_code(i, now), Some((&ip, port)))
                    })
                    .collect();
                instance.run_untimed(&lock);
            }
            _ => {}
        }
        let envs: Vec<CallEnv> = indices
            .iter()
            .map(|&i| match mode {
                Mode::Valid | Mode::Replay | Mode::Locked => {
                    r.template.build(&user_name(i), &valid_code(i, now), None)
                }
                Mode::Wrong => r.template.build(&user_name(i), &wrong_code(i, now), None),
                Mode::Unknown => r
                    .template
                    .build(&unknown_name(i), &valid_code(i, now), None),
            })
            .collect();

        let (elapsed, host, matching) = timed_batch(&instance, &envs, mode.expected_return());

        let lines = instance.take_messages();
        let logged = lines
            .iter()
            .filter(|l| l.contains(mode.log_marker()))
            .count();
        if matching != envs.len() || logged != envs.len() {
            return Err(format!(
                "{} {} users, mode {}: {matching}/{} calls returned {}, {logged} log lines say \
                 `{}`; first lines: {:?}",
                r.backend.name(),
                r.users,
                mode.name(),
                envs.len(),
                mode.expected_return(),
                mode.log_marker(),
                lines.iter().take(3).collect::<Vec<_>>()
            ));
        }
        if step_of(unix_now()) != step {
            // The step changed during the batch: codes moved off the window's centre.
            straddled += 1;
            if straddled > 50 {
                return Err("the clock step keeps changing during batches".into());
            }
            continue;
        }
        if !warmed {
            warmed = true;
            continue; // the first batch of an instance warms caches; not counted
        }
        per_call.push(elapsed.as_nanos() as f64 / envs.len() as f64);
        host_per_call.push(host.as_nanos() as f64 / envs.len() as f64);
        calls += envs.len();
    }
    drop(instance);
    Ok(stats_with_host(&per_call, &host_per_call, calls))
}

/// Results of the modes: per backend, user count and mode.
pub type Results = BTreeMap<(Backend, usize, Mode), Stats>;
/// Load average before and after each backend's modes.
pub type Loads = BTreeMap<Backend, (String, String)>;

/// Every mode at every user count for every backend, printing a line per run as it is done.
pub fn run_all(opts: &Options, ws: &mut Workspace, template: &Template) -> (Results, Loads) {
    let mut results: Results = BTreeMap::new();
    let mut loads: Loads = BTreeMap::new();

    for &backend in opts.backends.iter().filter(|_| !opts.users.is_empty()) {
        let load_before = load_average();
        let batches = match backend {
            Backend::Memory => opts.batches,
            Backend::Local => opts.local_batches,
        };
        if backend == Backend::Local {
            // Does this build have the local backend?
            let probe = ws.config(Backend::Local, 5, 300, &users_toml(1));
            if let Err(e) = Instance::open(&probe) {
                println!();
                println!("backend \"local\" not measured: the plugin refused it: {e}");
                continue;
            }
        }
        for &users in &opts.users {
            let toml = users_toml(users);
            for &mode in &opts.modes {
                let run = ModeRun {
                    backend,
                    users,
                    users_toml: &toml,
                    mode,
                    batches,
                    batch_size: opts.batch_size,
                    template,
                };
                match run_mode(ws, &run) {
                    Ok(s) => {
                        println!(
                            "  {:<6} {:>9} users  {:<24} median {:>9}/call (host log {}, plugin {})  {:>9} calls/s  ({} batches, {} calls, load {})",
                            backend.name(),
                            fmt_count(users as f64),
                            mode.describe(),
                            fmt_ns(s.median),
                            fmt_ns(s.host_median),
                            fmt_ns(s.own_median),
                            fmt_count(1e9 / s.median),
                            s.batches,
                            fmt_count(s.calls as f64),
                            load_average()
                        );
                        let _ = std::io::Write::flush(&mut std::io::stdout());
                        results.insert((backend, users, mode), s);
                    }
                    Err(e) => {
                        stderr_restore();
                        eprintln!("motp-abi-bench: {e}");
                        std::process::exit(1);
                    }
                }
            }
        }
        loads.insert(backend, (load_before, load_average()));
    }
    (results, loads)
}
