//! The cost of the static-password and recovery-code checks (src/secret_hash.rs): one Argon2id
//! verification with the default parameters (OWASP's m=19456 KiB, t=2, p=1), right, wrong, empty
//! and 4 KiB passwords (the cost must not depend on which), the dummy verification run for an
//! unknown user (it must cost the same), and the recovery-code match over a set of 10 and 32.
//! docs/performance.md ("Static passwords") has the figures.
//!
//! Run: cargo bench --bench secret_hash

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use motp::secret_hash::{
    dummy_verify, generate_recovery_codes, hash_password, hash_recovery_code,
    normalize_recovery_code, parse_password_hash, parse_recovery_hash, recovery_match,
    verify_password, RecoveryHash,
};

fn argon2(c: &mut Criterion) {
    let phc = parse_password_hash(&hash_password(b"correct horse battery")).unwrap();
    let mut g = c.benchmark_group("argon2id_default");
    g.sample_size(20).measurement_time(Duration::from_secs(8));
    for (name, password) in [
        ("verify_right", b"correct horse battery".to_vec()),
        ("verify_wrong", b"correct horse batterx".to_vec()),
        ("verify_empty", Vec::new()),
        ("verify_4096_bytes", vec![b'x'; 4096]),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| black_box(verify_password(&phc, black_box(&password))))
        });
    }
    g.bench_function("dummy_verify", |b| {
        b.iter(|| dummy_verify(black_box(b"correct horse battery")))
    });
    g.finish();
}

fn recovery(c: &mut Criterion) {
    let mut g = c.benchmark_group("recovery_match");
    for n in [10usize, 32] {
        let codes = generate_recovery_codes(n);
        let hashes: Vec<RecoveryHash> = codes
            .iter()
            .map(|code| {
                let normalized = normalize_recovery_code(code.as_bytes()).unwrap();
                parse_recovery_hash(&hash_recovery_code(&normalized)).unwrap()
            })
            .collect();
        let first = normalize_recovery_code(codes[0].as_bytes()).unwrap();
        let none = normalize_recovery_code(b"2222-2222-2222").unwrap();
        g.bench_function(format!("{n}_first_matches"), |b| {
            b.iter(|| black_box(recovery_match(&hashes, black_box(&first))))
        });
        g.bench_function(format!("{n}_none_matches"), |b| {
            b.iter(|| black_box(recovery_match(&hashes, black_box(&none))))
        });
    }
    g.finish();
}

criterion_group!(benches, argon2, recovery);
criterion_main!(benches);
