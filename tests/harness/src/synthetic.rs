//! Synthetic users for benchmarks: user `i`'s secret and PIN, the same in every bench so their
//! figures compare.

/// 16 lowercase hex characters, distinct per user.
pub fn secret(i: usize) -> String {
    format!(
        "{:016x}",
        (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    )
}

/// A 4-digit PIN.
pub fn pin(i: usize) -> String {
    format!("{:04}", (i * 7919) % 10_000)
}
