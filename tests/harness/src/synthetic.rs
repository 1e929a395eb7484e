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

/// User `i`'s code at `now`, as the phone shows it.
pub fn code(i: usize, now: i64) -> String {
    motp::engine::code_at_time(&secret(i), &pin(i), now).to_hex()
}

/// A code valid at no step of user `i`'s window of `radius` steps around `now` (one step of
/// margin each side): bits of the current code flipped until it leaves the window.
pub fn wrong_code(i: usize, now: i64, radius: i64) -> String {
    use motp::engine::{code_at_step, step_of, Code};
    let key = [secret(i), pin(i)].concat();
    let center = step_of(now);
    let window: Vec<Code> = (center - radius - 1..=center + radius + 1)
        .map(|s| code_at_step(s, key.as_bytes()))
        .collect();
    let current = code_at_step(center, key.as_bytes()).to_hex();
    (1u32..)
        .map(|flip| {
            let n = u32::from_str_radix(&current, 16).expect("hex") ^ (flip * 0x5a5a5b);
            Code::parse(format!("{:06x}", n & 0xff_ffff).as_bytes()).expect("6 hex digits")
        })
        .find(|c| !window.contains(c))
        .expect("some code is outside the window")
        .to_hex()
}
