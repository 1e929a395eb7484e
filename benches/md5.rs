//! MD5 implementations compared on the one message mOTP hashes: `decimal(step) ‖ secret ‖ pin`,
//! 9 digits + 16 hex + a 4-digit PIN = 29 bytes, i.e. one 64-byte block after padding.
//!
//! - `md-5 0.10 Digest`: RustCrypto `md-5` through the `Digest` API (two `update`s), exactly as
//!   the engine is built: with its `asm` feature (Cargo.toml), so on x86_64 its compression
//!   function is `md5-asm`'s. Features cannot differ within one build: the pure-Rust `md-5` is
//!   measured by removing `features = ["asm"]` from the `md-5` line and running this bench
//!   again;
//! - `md5-asm compress (one padded block)`: RustCrypto `md5-asm` 0.5 (Project Nayuki's x86-64
//!   assembly, the backend of `md-5`'s `asm` feature), fed a block padded here by hand: the
//!   floor of that backend without any buffering;
//! - `md5 0.8 Context`: the `md5` crate (stainless-steel), pure safe Rust, with two `consume`s
//!   as the engine calls it;
//! - `motp::engine::code_at_step`: the engine's whole code computation (step to decimal, hash,
//!   first 3 bytes, wiping the digest), for reference;
//! - `md5_lanes::digest::<1>`: the engine's multi-lane MD5 (src/md5_lanes.rs) with one lane, the
//!   cost of the lane code when only one code is wanted.
//!
//! Then the job the engine does per wrong code: the 37 codes of a ±180 s window
//! (`window_37`), hashed one after the other with `md-5`, and in batches of N lanes with
//! `motp::md5_lanes::digest::<N>` for N = 4, 8, 16 (the last batch padded with empty
//! messages, as the engine does). The engine's `md5_lanes::LANES` is the fastest of these here.
//!
//! Every implementation is checked against the others before it is timed.
//!
//! On a shared machine criterion's wall-clock medians move with the other load. So, when run
//! as a benchmark, this also prints an interleaved A/B: the implementations take turns, one
//! batch of 100,000 hashes each per round, for 31 rounds, and for each the minimum and the
//! median ns per hash over the rounds are printed. Turns spread any background load evenly,
//! and the minimum is the least disturbed batch.
//!
//! Run: `cargo bench --bench md5`.

use std::time::Instant;

use criterion::{black_box, criterion_group, Criterion};
use md5::{Digest, Md5};

const STEP: &[u8] = b"176431680";
const KEY: &[u8] = b"0123456789abcdef1234";

fn message() -> Vec<u8> {
    [STEP, KEY].concat()
}

fn md5_rustcrypto(step: &[u8], key: &[u8]) -> [u8; 16] {
    let mut hasher = Md5::new();
    hasher.update(step);
    hasher.update(key);
    hasher.finalize().into()
}

/// MD5 of a message shorter than 56 bytes: one padded block through the assembly compressor.
#[cfg(target_arch = "x86_64")]
fn md5_asm_one_block(message: &[u8]) -> [u8; 16] {
    assert!(message.len() < 56, "one block holds at most 55 bytes");
    let mut block = [0u8; 64];
    block[..message.len()].copy_from_slice(message);
    block[message.len()] = 0x80;
    block[56..].copy_from_slice(&((message.len() as u64) * 8).to_le_bytes());
    let mut state = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    md5_asm::compress(&mut state, &[block]);
    let mut out = [0u8; 16];
    for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    out
}

/// The 37 step texts of a ±180 s window around [`STEP`], the centre first and then outward.
fn window_steps() -> Vec<Vec<u8>> {
    let center: i64 = std::str::from_utf8(STEP).unwrap().parse().unwrap();
    let mut offsets = vec![0];
    for distance in 1..=18 {
        offsets.extend([distance, -distance]);
    }
    offsets
        .into_iter()
        .map(|o| (center + o).to_string().into_bytes())
        .collect()
}

/// The 37 codes' digests one at a time; returns a fold of their first bytes.
fn window_sequential(steps: &[Vec<u8>], key: &[u8]) -> u8 {
    steps
        .iter()
        .fold(0, |acc, step| acc ^ md5_rustcrypto(step, key)[0])
}

/// The 37 codes' digests `N` at a time through `md5_lanes::digest_prefixed`, as the engine
/// hashes them (the last batch filled up with the centre step, as the engine does); returns a
/// fold of their first bytes.
fn window_lanes<const N: usize>(steps: &[Vec<u8>], key: &[u8]) -> u8 {
    let mut acc = 0;
    for batch in steps.chunks(N) {
        let prefixes: [&[u8]; N] = std::array::from_fn(|i| &batch.get(i).unwrap_or(&steps[0])[..]);
        let digests = motp::md5_lanes::digest_prefixed(&prefixes, key);
        for digest in &digests[..batch.len()] {
            acc ^= digest[0];
        }
    }
    acc
}

/// The 37 digests `N` at a time, in window order, through both lane entry points.
fn window_digests<const N: usize>(steps: &[Vec<u8>]) -> Vec<[u8; 16]> {
    let mut out = Vec::new();
    for batch in steps.chunks(N) {
        let parts: [[&[u8]; 2]; N] = std::array::from_fn(|i| match batch.get(i) {
            Some(step) => [&step[..], KEY],
            None => [&[][..], &[][..]],
        });
        let lanes: [&[&[u8]]; N] = std::array::from_fn(|i| &parts[i][..]);
        let general = motp::md5_lanes::digest(&lanes);
        let prefixes: [&[u8]; N] = std::array::from_fn(|i| &batch.get(i).unwrap_or(&steps[0])[..]);
        let prefixed = motp::md5_lanes::digest_prefixed(&prefixes, KEY);
        assert_eq!(general[..batch.len()], prefixed[..batch.len()]);
        out.extend_from_slice(&general[..batch.len()]);
    }
    out
}

/// Every lane of every width against `md-5`, before anything is timed.
fn check_lanes(steps: &[Vec<u8>]) {
    let expected: Vec<[u8; 16]> = steps.iter().map(|s| md5_rustcrypto(s, KEY)).collect();
    assert_eq!(window_digests::<1>(steps), expected);
    assert_eq!(window_digests::<4>(steps), expected);
    assert_eq!(window_digests::<8>(steps), expected);
    assert_eq!(window_digests::<16>(steps), expected);
    assert_eq!(
        window_digests::<{ motp::md5_lanes::LANES }>(steps),
        expected
    );
}

/// One code through the lane code with a single lane.
fn md5_one_lane(step: &[u8], key: &[u8]) -> [u8; 16] {
    motp::md5_lanes::digest::<1>(&[&[step, key]])[0]
}

fn md5_stainless(step: &[u8], key: &[u8]) -> [u8; 16] {
    let mut context = md5_stainless::Context::new();
    context.consume(step);
    context.consume(key);
    context.finalize().0
}

fn bench(c: &mut Criterion) {
    let msg = message();
    assert_eq!(msg.len(), 29, "the mOTP message for a 9-digit step");
    let expected = md5_rustcrypto(STEP, KEY);
    assert_eq!(md5_stainless(STEP, KEY), expected);
    #[cfg(target_arch = "x86_64")]
    assert_eq!(md5_asm_one_block(&msg), expected);
    let step: i64 = std::str::from_utf8(STEP).unwrap().parse().unwrap();
    assert_eq!(
        motp::engine::code_at_step(step, KEY).to_hex(),
        expected[..3]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );

    assert_eq!(md5_one_lane(STEP, KEY), expected);
    let steps = window_steps();
    assert_eq!(steps.len(), 37);
    check_lanes(&steps);

    let mut group = c.benchmark_group("md5_29_bytes");
    group.bench_function("md-5 0.10 Digest", |b| {
        b.iter(|| md5_rustcrypto(black_box(STEP), black_box(KEY)))
    });
    #[cfg(target_arch = "x86_64")]
    group.bench_function("md5-asm compress (one padded block)", |b| {
        b.iter(|| md5_asm_one_block(black_box(&msg)))
    });
    group.bench_function("md5 0.8 Context", |b| {
        b.iter(|| md5_stainless(black_box(STEP), black_box(KEY)))
    });
    group.bench_function("motp::engine::code_at_step", |b| {
        b.iter(|| motp::engine::code_at_step(black_box(step), black_box(KEY)))
    });
    group.bench_function("md5_lanes::digest::<1>", |b| {
        b.iter(|| md5_one_lane(black_box(STEP), black_box(KEY)))
    });
    group.finish();

    let mut group = c.benchmark_group("window_37");
    group.bench_function("37 codes sequential md-5 asm", |b| {
        b.iter(|| window_sequential(black_box(&steps), black_box(KEY)))
    });
    group.bench_function("37 codes, 4 lanes", |b| {
        b.iter(|| window_lanes::<4>(black_box(&steps), black_box(KEY)))
    });
    group.bench_function("37 codes, 8 lanes", |b| {
        b.iter(|| window_lanes::<8>(black_box(&steps), black_box(KEY)))
    });
    group.bench_function("37 codes, 16 lanes", |b| {
        b.iter(|| window_lanes::<16>(black_box(&steps), black_box(KEY)))
    });
    group.finish();
}

type Contender<'a> = (&'static str, Box<dyn Fn(&[u8]) -> u8 + 'a>);

/// Interleaved A/B of the implementations; prints min and median ns per hash.
fn interleaved() {
    const ROUNDS: usize = 31;
    const PER_BATCH: usize = 100_000;
    let msg = message();
    let step = std::str::from_utf8(STEP).unwrap().parse::<i64>().unwrap();
    let mut contenders: Vec<Contender> = vec![(
        "md-5 0.10 Digest",
        Box::new(|m: &[u8]| md5_rustcrypto(&m[..9], &m[9..])[0]),
    )];
    #[cfg(target_arch = "x86_64")]
    contenders.push((
        "md5-asm compress (one padded block)",
        Box::new(|m: &[u8]| md5_asm_one_block(m)[0]),
    ));
    contenders.push((
        "md5 0.8 Context",
        Box::new(|m: &[u8]| md5_stainless(&m[..9], &m[9..])[0]),
    ));
    let reference = motp::engine::code_at_step(step, KEY);
    contenders.push((
        "motp::engine::code_at_step",
        Box::new(move |m: &[u8]| u8::from(motp::engine::code_at_step(step, &m[9..]) == reference)),
    ));
    contenders.push((
        "md5_lanes::digest::<1>",
        Box::new(|m: &[u8]| md5_one_lane(&m[..9], &m[9..])[0]),
    ));
    let per_hash = take_turns(&contenders, ROUNDS, PER_BATCH, &msg);
    report("hashes", ROUNDS, PER_BATCH, &contenders, per_hash);

    // The window: the unit a wrong code costs.
    const WINDOWS: usize = 3_000;
    let steps = window_steps();
    let windows: Vec<Contender> = vec![
        (
            "37 codes sequential md-5 asm",
            Box::new(|k: &[u8]| window_sequential(&steps, k)),
        ),
        (
            "37 codes, 4 lanes",
            Box::new(|k: &[u8]| window_lanes::<4>(&steps, k)),
        ),
        (
            "37 codes, 8 lanes",
            Box::new(|k: &[u8]| window_lanes::<8>(&steps, k)),
        ),
        (
            "37 codes, 16 lanes",
            Box::new(|k: &[u8]| window_lanes::<16>(&steps, k)),
        ),
    ];
    let per_window = take_turns(&windows, ROUNDS, WINDOWS, KEY);
    report("37-code windows", ROUNDS, WINDOWS, &windows, per_window);
}

/// Runs the contenders in turns, `per_batch` calls each per round; ns per call, per round.
fn take_turns(
    contenders: &[Contender],
    rounds: usize,
    per_batch: usize,
    input: &[u8],
) -> Vec<Vec<f64>> {
    let mut samples = vec![Vec::with_capacity(rounds); contenders.len()];
    for _ in 0..rounds {
        for (i, (_, f)) in contenders.iter().enumerate() {
            let start = Instant::now();
            let mut acc = 0u8;
            for _ in 0..per_batch {
                acc ^= f(black_box(input));
            }
            black_box(acc);
            samples[i].push(start.elapsed().as_nanos() as f64 / per_batch as f64);
        }
    }
    samples
}

fn report(
    unit: &str,
    rounds: usize,
    per_batch: usize,
    contenders: &[Contender],
    samples: Vec<Vec<f64>>,
) {
    motp_harness::interleaved::report(
        &format!("interleaved A/B, {rounds} rounds x {per_batch} {unit} each"),
        contenders.iter().map(|(name, _)| *name).zip(samples),
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
