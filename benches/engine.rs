//! The mOTP engine on its own: one code (one MD5 of the 29-byte message), the window search
//! when it accepts at the current step, a full-window rejection, and the burn that unknown
//! users cost instead.
//!
//! Run: `cargo bench --bench engine`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
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
    group.bench_function("find_step accept at the current step (1 code)", |b| {
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

criterion_group!(benches, bench);
criterion_main!(benches);
