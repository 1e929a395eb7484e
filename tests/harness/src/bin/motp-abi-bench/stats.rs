//! Statistics.

#[derive(Clone, Debug)]
pub struct Stats {
    pub median: f64,
    /// Median over the batches of the ns per call spent in the host's `plugin_log`.
    pub host_median: f64,
    /// Median over the batches of the ns per call outside it: the plugin's own time.
    pub own_median: f64,
    pub min: f64,
    pub max: f64,
    pub batches: usize,
    pub calls: usize,
}

pub fn median_of(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return 0.0;
    }
    // The middle element, or the mean of the two middle ones.
    (v[(n - 1) / 2] + v[n / 2]) / 2.0
}

pub fn stats(per_call_ns: &[f64], calls: usize) -> Stats {
    stats_with_host(per_call_ns, &vec![0.0; per_call_ns.len()], calls)
}

pub fn stats_with_host(per_call_ns: &[f64], host_ns: &[f64], calls: usize) -> Stats {
    let mut v = per_call_ns.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let own: Vec<f64> = per_call_ns
        .iter()
        .zip(host_ns)
        .map(|(t, h)| t - h)
        .collect();
    Stats {
        median: median_of(per_call_ns),
        host_median: median_of(host_ns),
        own_median: median_of(&own),
        min: v[0],
        max: v[n - 1],
        batches: n,
        calls,
    }
}

pub fn fmt_ns(ns: f64) -> String {
    if ns >= 100_000.0 {
        format!("{:.0} us", ns / 1000.0)
    } else if ns >= 10_000.0 {
        format!("{:.1} us", ns / 1000.0)
    } else {
        format!("{ns:.0} ns")
    }
}

pub fn fmt_count(n: f64) -> String {
    let n = n.round() as u64;
    let digits: Vec<char> = n.to_string().chars().rev().collect();
    let groups: Vec<String> = digits
        .chunks(3)
        .map(|g| g.iter().rev().collect())
        .rev()
        .collect();
    groups.join(",")
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .expect("VmRSS in /proc/self/status")
        * 1024
}
