//! The TOTP and HOTP engine on its own: one code (keying the HMAC and one counter), the accept
//! of a phone in sync, a full-window rejection (±180 s at 30 s: 13 steps) for each hash, the
//! burn that unknown users cost instead, and an HOTP look-ahead of 10 (11 counters) rejected.
//!
//! Run: `cargo bench --bench engine_otp`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use motp::engine::{hotp_value, Algorithm, Hotp, OtpCode, TokenKind, Totp};

/// A 20-byte secret (160 bits, RFC 4226's recommendation and the apps' usual length).
const KEY: &[u8] = b"12345678901234567890";
/// ±180 s at 30 s.
const RADIUS: i64 = 6;
const LOOK_AHEAD: u64 = 10;
/// 2025-11-28 08:00 UTC.
const NOW: i64 = 1_764_316_800;

/// A code that matches no counter in `counters`.
fn wrong_code(t: &Totp, counters: impl Iterator<Item = u64>) -> OtpCode {
    let taken: Vec<u32> = counters
        .map(|c| hotp_value(KEY, c, t.algorithm, t.digits))
        .collect();
    let value = (0..).find(|v| !taken.contains(v)).expect("a free value");
    OtpCode::from_value(value, t.digits).expect("below 10^digits")
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine_otp");
    for algorithm in [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512] {
        let t = Totp {
            algorithm,
            digits: 6,
            period: 30,
        };
        let center = t.step_of(NOW);
        let window = (center - RADIUS - 1) as u64..=(center + RADIUS + 1) as u64;
        let wrong = wrong_code(&t, window);
        let current = OtpCode::from_value(hotp_value(KEY, center as u64, algorithm, 6), 6).unwrap();
        assert!(t.find(wrong, KEY, center, RADIUS, 0).is_none());
        assert!(t.find(current, KEY, center, RADIUS, 0).is_some());
        let name = algorithm.name();
        if algorithm == Algorithm::Sha1 {
            group.bench_function("hotp_value sha1 (one TOTP code, keying included)", |b| {
                b.iter(|| hotp_value(black_box(KEY), black_box(center as u64), algorithm, 6))
            });
            group.bench_function("Totp::find sha1 accept at the centre (±180 s)", |b| {
                b.iter(|| t.find(black_box(current), black_box(KEY), center, RADIUS, 0))
            });
            group.bench_function("Totp::burn sha1 (13 steps, unknown user)", |b| {
                b.iter(|| t.burn(black_box(wrong), black_box(center), RADIUS, 0))
            });
            group.bench_function("Totp::find sha1 reject, cost_key_len 128 (13 steps)", |b| {
                b.iter(|| t.find(black_box(wrong), black_box(KEY), center, RADIUS, 128))
            });
        }
        group.bench_function(
            format!("Totp::find {name} reject, ±180 s (13 steps)"),
            |b| b.iter(|| t.find(black_box(wrong), black_box(KEY), center, RADIUS, 0)),
        );
    }
    let hotp = Hotp::default();
    let next = 1_000_000u64;
    let t = Totp::default();
    let wrong = wrong_code(&t, next..=next + LOOK_AHEAD + 1);
    assert!(hotp.find_ahead(wrong, KEY, next, LOOK_AHEAD, 0).is_none());
    group.bench_function(
        "Hotp::find_ahead sha1 reject, look-ahead 10 (11 counters)",
        |b| b.iter(|| hotp.find_ahead(black_box(wrong), black_box(KEY), next, LOOK_AHEAD, 0)),
    );
    group.bench_function("Hotp::burn sha1, look-ahead 10", |b| {
        b.iter(|| hotp.burn(black_box(wrong), LOOK_AHEAD, 0))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
