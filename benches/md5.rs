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
//!   first 3 bytes, wiping the digest), for reference.
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
    group.finish();
}

type Contender = (&'static str, Box<dyn Fn(&[u8]) -> u8>);

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
    let mut samples = vec![Vec::with_capacity(ROUNDS); contenders.len()];
    for _ in 0..ROUNDS {
        for (i, (_, f)) in contenders.iter().enumerate() {
            let start = Instant::now();
            let mut acc = 0u8;
            for _ in 0..PER_BATCH {
                acc ^= f(black_box(&msg));
            }
            black_box(acc);
            samples[i].push(start.elapsed().as_nanos() as f64 / PER_BATCH as f64);
        }
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "interleaved A/B, {ROUNDS} rounds x {PER_BATCH} hashes each (load average {}):",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    for ((name, _), mut v) in contenders.iter().zip(samples) {
        v.sort_by(f64::total_cmp);
        println!(
            "  {name:<40} min {:>6.1} ns  median {:>6.1} ns",
            v[0],
            v[v.len() / 2]
        );
    }
}

criterion_group!(benches, bench);

fn main() {
    if std::env::args().any(|a| a == "--bench") {
        interleaved();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
