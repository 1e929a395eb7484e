//! The mOTP engine on its own: one code (one MD5 of the 29-byte message), the window search
//! when it accepts at the current step (one batch of `md5_lanes::LANES` codes), a full-window
//! rejection, and the burn that unknown users cost instead; and, as the baseline the batched
//! search replaced, the 37 codes of the window one at a time.
//!
//! On this shared machine criterion's medians move with the other load, so when run as a
//! benchmark this first prints an interleaved A/B (as benches/md5.rs does): the cases take
//! turns, one batch of calls each per round, and the minimum and median ns per call over the
//! rounds are printed.
//!
//! Run: `cargo bench --bench engine`.

use std::time::Instant;

use criterion::{black_box, criterion_group, Criterion};
use motp::engine::{burn_window, code_at_step, find_step, step_of, Code};

/// secret ‖ pin: 16 hex characters and a 4-digit PIN.
const KEY: &[u8] = b"0123456789abcdef1234";
/// The default window, ±180 s: 18 steps each side, 37 codes.
const RADIUS: i64 = 18;
/// 2025-11-28 08:00 UTC: a 9-digit step, so the message is 29 bytes.
const NOW: i64 = 1_764_316_800;

/// A code that matches no step of the window (nor one step beyond each edge).
fn wrong_code(center: i64) -> Code {
    let window: Vec<Code> = (center - RADIUS - 1..=center + RADIUS + 1)
        .map(|s| code_at_step(s, KEY))
        .collect();
    (0u32..)
        .map(|n| Code::parse(format!("{n:06x}").as_bytes()).expect("6 hex digits"))
        .find(|c| !window.contains(c))
        .expect("some code is outside a 39-code window")
}

fn bench(c: &mut Criterion) {
    let center = step_of(NOW);
    assert_eq!(center.to_string().len() + KEY.len(), 29);
    let current = code_at_step(center, KEY);
    let edge = code_at_step(center - RADIUS, KEY);
    let wrong = wrong_code(center);
    assert_eq!(
        find_step(current, KEY, center, RADIUS).unwrap().step_offset,
        0
    );
    assert_eq!(
        find_step(edge, KEY, center, RADIUS).unwrap().step_offset,
        -RADIUS
    );
    assert!(find_step(wrong, KEY, center, RADIUS).is_none());

    let mut group = c.benchmark_group("engine");
    group.bench_function("code_at_step (one MD5, 29-byte message)", |b| {
        b.iter(|| code_at_step(black_box(center), black_box(KEY)))
    });
    group.bench_function("37 x code_at_step, one at a time (the old search)", |b| {
        b.iter(|| sequential_window(black_box(wrong), black_box(center)))
    });
    group.bench_function("find_step accept at the current step (1 batch)", |b| {
        b.iter(|| find_step(black_box(current), black_box(KEY), center, RADIUS))
    });
    group.bench_function("find_step accept at the window edge (37 codes)", |b| {
        b.iter(|| find_step(black_box(edge), black_box(KEY), center, RADIUS))
    });
    group.bench_function("find_step reject, full window (37 codes)", |b| {
        b.iter(|| find_step(black_box(wrong), black_box(KEY), center, RADIUS))
    });
    group.bench_function("burn_window (37 codes, unknown user)", |b| {
        b.iter(|| burn_window(black_box(wrong), black_box(center), RADIUS))
    });
    group.finish();
}

/// The window one code at a time, as `find_step` searched before batching.
fn sequential_window(code: Code, center: i64) -> bool {
    (center - RADIUS..=center + RADIUS)
        .fold(false, |seen, step| seen | (code_at_step(step, KEY) == code))
}

type Case<'a> = (&'static str, Box<dyn Fn() -> bool + 'a>);

/// Interleaved A/B of the engine's cases; prints min and median ns per call.
fn interleaved() {
    const ROUNDS: usize = 31;
    const PER_BATCH: usize = 3_000;
    let center = step_of(NOW);
    let current = code_at_step(center, KEY);
    let wrong = wrong_code(center);
    let cases: Vec<Case> = vec![
        (
            "code_at_step (1 code)",
            Box::new(|| code_at_step(black_box(center), KEY) == current),
        ),
        (
            "37 x code_at_step (the old search)",
            Box::new(|| sequential_window(black_box(wrong), center)),
        ),
        (
            "find_step reject (37 codes)",
            Box::new(|| find_step(black_box(wrong), KEY, center, RADIUS).is_some()),
        ),
        (
            "find_step accept at the centre",
            Box::new(|| find_step(black_box(current), KEY, center, RADIUS).is_some()),
        ),
        (
            "burn_window (37 codes)",
            Box::new(|| {
                burn_window(black_box(wrong), center, RADIUS);
                false
            }),
        ),
    ];
    let mut samples = vec![Vec::with_capacity(ROUNDS); cases.len()];
    for _ in 0..ROUNDS {
        for (i, (_, f)) in cases.iter().enumerate() {
            let start = Instant::now();
            let mut acc = false;
            for _ in 0..PER_BATCH {
                acc ^= f();
            }
            black_box(acc);
            samples[i].push(start.elapsed().as_nanos() as f64 / PER_BATCH as f64);
        }
    }
    motp_harness::interleaved::report(
        &format!(
            "interleaved A/B, {ROUNDS} rounds x {PER_BATCH} calls each, {} lanes",
            motp::md5_lanes::LANES
        ),
        cases.iter().map(|(name, _)| *name).zip(samples),
    );
}

criterion_group!(benches, bench);

fn main() {
    if std::env::args().any(|a| a == "--bench") {
        interleaved();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
