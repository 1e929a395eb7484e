//! Reporting: the machine, the tables of the modes, the floors and the targets.

use std::path::Path;

use crate::floors::{floors, SEQUENTIAL_37};
use crate::modes::{Loads, Results};
use crate::options::{Backend, Mode, Options};
use crate::stats::{fmt_count, fmt_ns, load_average};
use crate::workspace::Workspace;

/// The type of the filesystem holding `path`, from /proc/mounts (longest matching mount point).
pub fn filesystem_of(path: &Path) -> String {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, point, kind) = (f.next()?, f.next()?, f.next()?);
            path.starts_with(point)
                .then(|| (point.len(), kind.to_owned()))
        })
        .max()
        .map_or_else(|| "?".into(), |(_, kind)| kind)
}

pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "?".into());
    format!("{cpus} CPUs ({model}), load average {}", load_average())
}

/// The tables of the modes, per backend.
pub fn tables(opts: &Options, results: &Results, loads: &Loads) {
    for (&backend, (load_before, load_after)) in loads {
        println!();
        println!(
            "## backend \"{}\": median ns per call (calls/s), load average {load_before} → {load_after}",
            backend.name()
        );
        println!();
        let mut header = "| mode |".to_owned();
        let mut rule = "|---|".to_owned();
        for &users in &opts.users {
            header.push_str(&format!(" {} users |", fmt_count(users as f64)));
            rule.push_str("---:|");
        }
        println!("{header}");
        println!("{rule}");
        for &mode in &opts.modes {
            let mut row = format!("| {} |", mode.describe());
            for &users in &opts.users {
                match results.get(&(backend, users, mode)) {
                    Some(s) => row.push_str(&format!(
                        " {} ({}/s) |",
                        fmt_ns(s.median),
                        fmt_count(1e9 / s.median)
                    )),
                    None => row.push_str(" - |"),
                }
            }
            println!("{row}");
        }
        println!();
        println!(
            "| users | mode | median | of which host plugin_log | plugin's own | min | max | calls/s | batches × calls |"
        );
        println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|");
        for &users in &opts.users {
            for &mode in &opts.modes {
                if let Some(s) = results.get(&(backend, users, mode)) {
                    println!(
                        "| {} | {} | {} | {} | {} | {} | {} | {} | {} × {} |",
                        fmt_count(users as f64),
                        mode.describe(),
                        fmt_ns(s.median),
                        fmt_ns(s.host_median),
                        fmt_ns(s.own_median),
                        fmt_ns(s.min),
                        fmt_ns(s.max),
                        fmt_count(1e9 / s.median),
                        s.batches,
                        s.calls / s.batches.max(1)
                    );
                }
            }
        }
    }
}

/// Measures and prints the floors; returns the cost of 37 MD5s one after another.
pub fn floors_table(ws: &mut Workspace) -> f64 {
    println!();
    println!(
        "## floors (this process, same machine), load average {}",
        load_average()
    );
    println!();
    let f = floors(ws);
    println!("| piece of a login | median ns |");
    println!("|---|---:|");
    for floor in &f {
        println!("| {} | {:.0} |", floor.what, floor.ns);
    }
    // The targets of issue 7 that these numbers decide.
    let md5x37 = f
        .iter()
        .find(|floor| floor.what == SEQUENTIAL_37)
        .expect("measured above")
        .ns;
    md5x37
}

/// The targets of issue 7 that these numbers decide, met or missed.
pub fn targets(opts: &Options, results: &Results, loads: &Loads, md5x37: f64) {
    println!();
    println!("## targets (memory backend)");
    println!();
    let get = |users: usize, mode: Mode| results.get(&(Backend::Memory, users, mode));
    if let Some(s) = get(1000, Mode::Valid) {
        println!(
            "- accept at 1,000 users: {} through the ABI (target < 500 ns): {}; the plugin's \
             own time, without the host's plugin_log: {}: {}",
            fmt_ns(s.median),
            verdict(s.median < 500.0),
            fmt_ns(s.own_median),
            verdict(s.own_median < 500.0)
        );
    }
    let accepts: Vec<(usize, f64)> = opts
        .users
        .iter()
        .filter_map(|&u| get(u, Mode::Valid).map(|s| (u, s.median)))
        .collect();
    if let Some(&(u, worst)) = accepts.iter().max_by(|a, b| a.1.total_cmp(&b.1)) {
        println!(
            "- accept at every user count: worst {} at {} users (target < 1 us): {}",
            fmt_ns(worst),
            fmt_count(u as f64),
            verdict(worst < 1000.0)
        );
    }
    let own_accepts = opts
        .users
        .iter()
        .filter_map(|&u| get(u, Mode::Valid).map(|s| (u, s.own_median)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((u, worst)) = own_accepts {
        println!(
            "- accept at every user count, the plugin's own time: worst {} at {} users \
             (target < 1 us): {}",
            fmt_ns(worst),
            fmt_count(u as f64),
            verdict(worst < 1000.0)
        );
    }
    for &users in &opts.users {
        if let Some(s) = get(users, Mode::Wrong) {
            println!(
                "- wrong code at {} users: {} = {:.2} × 37 MD5s ({:.0} ns here) (target ≤ 1.2×): {}; \
                 the plugin's own time {} = {:.2}×: {}",
                fmt_count(users as f64),
                fmt_ns(s.median),
                s.median / md5x37,
                md5x37,
                verdict(s.median <= 1.2 * md5x37),
                fmt_ns(s.own_median),
                s.own_median / md5x37,
                verdict(s.own_median <= 1.2 * md5x37)
            );
        }
        if let (Some(w), Some(u)) = (get(users, Mode::Wrong), get(users, Mode::Unknown)) {
            let diff = (u.median - w.median) / w.median;
            println!(
                "- unknown user vs wrong code at {} users: {} vs {} ({:+.1}%) (target within 10%): {}",
                fmt_count(users as f64),
                fmt_ns(u.median),
                fmt_ns(w.median),
                diff * 100.0,
                verdict(diff.abs() <= 0.10)
            );
        }
    }
    for &users in &opts.users {
        for mode in Mode::ALL {
            if let Some(s) = results.get(&(Backend::Local, users, mode)) {
                if s.median >= 100_000.0 {
                    println!(
                        "- local backend, {} at {} users: {} (target < 100 us): missed",
                        mode.describe(),
                        fmt_count(users as f64),
                        fmt_ns(s.median)
                    );
                }
            }
        }
    }
    if loads.contains_key(&Backend::Local) {
        let worst = results
            .iter()
            .filter(|((b, _, _), _)| *b == Backend::Local)
            .map(|(_, s)| s.median)
            .fold(0.0, f64::max);
        println!(
            "- local backend, every mode and user count: worst {} (target < 100 us): {}",
            fmt_ns(worst),
            verdict(worst < 100_000.0)
        );
    }
}

pub fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "missed"
    }
}
