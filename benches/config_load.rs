//! `Config::parse` for 10 / 1,000 / 100,000 / 1,000,000 users (the TOML text is generated in
//! memory, so no disk is involved), and, when run as a benchmark, a one-shot report of the
//! resident memory a 1,000,000-user table adds per user, with a breakdown of where the load
//! time goes (generic TOML parse, the `toml` path `Config::parse` falls back to, and the whole
//! `Config::parse`). Times are wall clock and this thread's CPU time: the machine is shared.
//!
//! Run: `cargo bench --bench config_load` (a few minutes; the `toml`-path runs dominate).

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, SamplingMode, Throughput};
use motp::config::Config;

const SIZES: [usize; 4] = [10, 1_000, 100_000, 1_000_000];

/// The system allocator, counting the bytes currently allocated: the live size of a structure,
/// whatever the allocator's fragmentation does to the resident set.
struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; only a counter is updated.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc`/`realloc` with this layout.
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
            LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// A motp.toml with `users` users, as an admin would write it: a header, then one table per
/// user with a 16-hex secret and a 4-digit PIN.
fn config_text(users: usize) -> String {
    let mut text = String::with_capacity(users * 64 + 128);
    text.push_str("window_secs = 180\nmax_failures = 5\nlockout_secs = 300\n\n");
    text.push_str("[state]\nbackend = \"memory\"\n\n");
    for i in 0..users {
        let secret = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        text.push_str(&format!(
            "[users.u{i:07}]\nsecret = \"{secret:016x}\"\npin = \"{:04}\"\n",
            (i * 7919) % 10_000
        ));
    }
    text
}

fn parse(text: &str) -> Config {
    Config::parse(Path::new("/etc/openvpn/motp.toml"), text).expect("generated config is valid")
}

/// CPU time of this thread so far, in seconds (`/proc/thread-self/schedstat`, first field).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("read schedstat");
    let ns: f64 = stat
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("schedstat run time in ns");
    ns / 1e9
}

/// Runs `f`, returning its result, wall seconds and CPU seconds.
fn timed<T>(f: impl FnOnce() -> T) -> (T, f64, f64) {
    let (start, cpu) = (Instant::now(), cpu_secs());
    let value = f();
    (value, start.elapsed().as_secs_f64(), cpu_secs() - cpu)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("config_parse");
    group.sample_size(10);
    group.sampling_mode(SamplingMode::Flat);
    group.warm_up_time(Duration::from_secs(1));
    for users in SIZES {
        let text = config_text(users);
        assert_eq!(parse(&text).users.len(), users);
        group.throughput(Throughput::Elements(users as u64));
        group.measurement_time(Duration::from_secs(if users >= 100_000 { 20 } else { 3 }));
        group.bench_with_input(BenchmarkId::from_parameter(users), &text, |b, text| {
            // The table is dropped outside the timed region: load time only.
            b.iter_with_large_drop(|| parse(text))
        });
    }
    group.finish();
}

/// `VmRSS` of this process, in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS in /proc/self/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmRSS value in kB");
    kib * 1024
}

extern "C" {
    /// glibc: return free heap memory to the kernel.
    fn malloc_trim(pad: usize) -> std::ffi::c_int;
}

fn trim_heap() {
    // SAFETY: malloc_trim only releases free memory of glibc's allocator (Rust's default global
    // allocator on this target); it touches no live allocation.
    unsafe { malloc_trim(0) };
}

/// One-shot report for 1,000,000 users: load time broken down, and resident memory per user.
fn memory_report() {
    const USERS: usize = 1_000_000;
    let text = config_text(USERS);
    println!(
        "config_load report: {USERS} users, {:.1} MB of TOML",
        text.len() as f64 / 1e6
    );

    let mut generic = Vec::new();
    for _ in 0..3 {
        let (table, wall, cpu) =
            timed(|| toml::from_str::<toml::Table>(&text).expect("valid TOML"));
        generic.push((wall, cpu));
        drop(table);
    }
    generic.sort_by(|a, b| a.0.total_cmp(&b.0));
    println!(
        "  toml::from_str::<toml::Table> alone (no validation, no user table): median of 3 {:.3} s \
         (CPU {:.3} s)",
        generic[1].0, generic[1].1
    );
    let (config, wall, cpu) = timed(|| {
        Config::parse_toml(Path::new("/etc/openvpn/motp.toml"), &text).expect("valid config")
    });
    assert_eq!(config.users.len(), USERS);
    drop(config);
    println!(
        "  Config::parse_toml (the path taken for files the fast path does not read): {wall:.3} s \
         (CPU {cpu:.3} s, one run)"
    );
    let mut fast = Vec::new();
    for _ in 0..3 {
        let (config, wall, cpu) = timed(|| parse(&text));
        fast.push((wall, cpu));
        drop(config);
    }
    fast.sort_by(|a, b| a.0.total_cmp(&b.0));
    println!(
        "  Config::parse: median of 3 {:.3} s (CPU {:.3} s); runs {}",
        fast[1].0,
        fast[1].1,
        fast.iter()
            .map(|(w, c)| format!("{w:.3} s (CPU {c:.3} s)"))
            .collect::<Vec<_>>()
            .join(", ")
    );

    trim_heap();
    let before = rss_bytes();
    let live_before = LIVE_BYTES.load(Ordering::Relaxed);
    let (config, load, load_cpu) = timed(|| parse(&text));
    let after = rss_bytes();
    let live_after = LIVE_BYTES.load(Ordering::Relaxed);
    trim_heap();
    let after_trim = rss_bytes();
    assert_eq!(config.users.len(), USERS);
    println!("  Config::parse for the memory figures: {load:.3} s (CPU {load_cpu:.3} s)");
    println!(
        "  live heap bytes held by the Config: {:.0} bytes/user (what the table needs; the \
         resident growth below adds the allocator's fragmentation)",
        live_after.saturating_sub(live_before) as f64 / USERS as f64
    );
    println!(
        "  VmRSS before {:.1} MB, after parse {:.1} MB (+{:.0} bytes/user), after malloc_trim {:.1} MB (+{:.0} bytes/user, the table that stays)",
        before as f64 / 1e6,
        after as f64 / 1e6,
        after.saturating_sub(before) as f64 / USERS as f64,
        after_trim as f64 / 1e6,
        after_trim.saturating_sub(before) as f64 / USERS as f64,
    );
    drop(config);

    // For comparison, the structure the table used to be, built straight from the values with no
    // text at all: a HashMap of boxed names to boxed secret‖pin keys.
    trim_heap();
    let before = rss_bytes();
    let live_before = LIVE_BYTES.load(Ordering::Relaxed);
    let start = Instant::now();
    let mut table: HashMap<Box<str>, (Box<[u8]>, i64)> = HashMap::with_capacity(USERS);
    for i in 0..USERS {
        let secret = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let key = format!("{secret:016x}{:04}", (i * 7919) % 10_000);
        table.insert(
            format!("u{i:07}").into_boxed_str(),
            (key.into_bytes().into_boxed_slice(), 0),
        );
    }
    let build = start.elapsed();
    println!(
        "  the old HashMap<Box<str>, Box<[u8]>> table built directly (no parsing): {:.3} s, \
         {:.0} live bytes/user, VmRSS +{:.0} bytes/user",
        build.as_secs_f64(),
        LIVE_BYTES
            .load(Ordering::Relaxed)
            .saturating_sub(live_before) as f64
            / USERS as f64,
        rss_bytes().saturating_sub(before) as f64 / USERS as f64
    );
    drop(table);
}

criterion_group!(benches, bench);

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not: skip the one-shot report
    // there (it takes several seconds).
    if std::env::args().any(|a| a == "--bench") {
        memory_report();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
