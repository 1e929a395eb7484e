//! The report of the benches' interleaved A/B runs (benches/md5.rs, benches/engine.rs): each
//! contender timed in turn, batch after batch, so background load on a shared machine spreads
//! evenly over them; the minimum is the least disturbed batch.

/// Prints `header` with the load average, then each contender's minimum and median ns.
pub fn report<'a>(header: &str, rows: impl IntoIterator<Item = (&'a str, Vec<f64>)>) {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "{header} (load average {}):",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    for (name, mut v) in rows {
        if v.is_empty() {
            continue;
        }
        v.sort_by(f64::total_cmp);
        println!(
            "  {name:<40} min {:>7.1} ns  median {:>7.1} ns",
            v[0],
            v[v.len() / 2]
        );
    }
}
