//! Failed logins per source address, across all usernames (password spraying), with a hard cap
//! on memory: the table never holds more than `capacity` addresses, however many an attacker
//! uses.
//!
//! Eviction when full drops expired entries first, then the least recently seen addresses that
//! are not locked. Per-user locks live in the state store, not here, so no flood of addresses
//! can evict a user's lock; a flood can at worst make the table forget some unlocked addresses'
//! partial counts.

use std::collections::HashMap;
use std::net::IpAddr;

use parking_lot::Mutex;

/// Addresses tracked at most. Each entry is about 64 bytes with the map's overhead, so the cap
/// bounds the table near 6.5 MB.
pub const DEFAULT_CAPACITY: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpPolicy {
    pub max_failures: u32,
    pub lockout_secs: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    /// Failures older than `lockout_secs` before the latest one no longer count.
    last_failure: i64,
    locked_until: i64,
}

pub struct IpLimiter {
    capacity: usize,
    table: Mutex<HashMap<IpAddr, Entry>>,
}

impl IpLimiter {
    pub fn new(capacity: usize) -> IpLimiter {
        IpLimiter {
            capacity: capacity.max(1),
            table: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(until)` if this address is refused right now.
    pub fn locked_until(&self, ip: IpAddr, now: i64) -> Option<i64> {
        let table = self.table.lock();
        table
            .get(&ip)
            .map(|e| e.locked_until)
            .filter(|&until| until > now)
    }

    /// Counts one failed login from `ip`; returns `Some(until)` if this failure locked it.
    pub fn record_failure(&self, ip: IpAddr, now: i64, policy: IpPolicy) -> Option<i64> {
        let window = i64::try_from(policy.lockout_secs).unwrap_or(i64::MAX);
        let mut table = self.table.lock();
        if !table.contains_key(&ip) && table.len() >= self.capacity {
            evict(&mut table, self.capacity, now, window);
        }
        let entry = table.entry(ip).or_insert(Entry {
            failures: 0,
            last_failure: now,
            locked_until: 0,
        });
        if now.saturating_sub(entry.last_failure) > window {
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last_failure = now;
        if entry.failures >= policy.max_failures {
            entry.failures = 0;
            entry.locked_until = now.saturating_add(window);
            return Some(entry.locked_until);
        }
        None
    }

    pub fn len(&self) -> usize {
        self.table.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Frees at least a tenth of the table (so eviction's O(n) scan is paid rarely).
fn evict(table: &mut HashMap<IpAddr, Entry>, capacity: usize, now: i64, window: i64) {
    table.retain(|_, e| e.locked_until > now || now.saturating_sub(e.last_failure) <= window);
    let target = capacity - capacity / 10 - 1;
    if table.len() <= target {
        return;
    }
    let mut unlocked: Vec<(i64, IpAddr)> = table
        .iter()
        .filter(|(_, e)| e.locked_until <= now)
        .map(|(ip, e)| (e.last_failure, *ip))
        .collect();
    let excess = (table.len() - target).min(unlocked.len());
    if excess > 0 {
        unlocked.select_nth_unstable(excess - 1);
        for (_, ip) in &unlocked[..excess] {
            table.remove(ip);
        }
    }
    // Still full means every entry is a live lock: drop the ones expiring soonest.
    if table.len() >= capacity {
        let mut locked: Vec<(i64, IpAddr)> =
            table.iter().map(|(ip, e)| (e.locked_until, *ip)).collect();
        let excess = table.len() - target;
        locked.select_nth_unstable(excess - 1);
        for (_, ip) in &locked[..excess] {
            table.remove(ip);
        }
    }
}

/// Parses OpenVPN's `untrusted_ip` / `untrusted_ip6` value.
pub fn parse_ip(raw: &[u8]) -> Option<IpAddr> {
    std::str::from_utf8(raw).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(n))
    }

    const POLICY: IpPolicy = IpPolicy {
        max_failures: 3,
        lockout_secs: 600,
    };

    fn limiter(capacity: usize) -> IpLimiter {
        IpLimiter::new(capacity)
    }

    #[test]
    fn locks_after_max_failures_and_unlocks_after_the_period() {
        let l = limiter(100);
        assert_eq!(l.record_failure(ip(1), NOW, POLICY), None);
        assert_eq!(l.record_failure(ip(1), NOW + 1, POLICY), None);
        assert_eq!(l.record_failure(ip(1), NOW + 2, POLICY), Some(NOW + 602));
        assert_eq!(l.locked_until(ip(1), NOW + 601), Some(NOW + 602));
        assert_eq!(l.locked_until(ip(2), NOW + 601), None);
        assert_eq!(l.locked_until(ip(1), NOW + 602), None);
    }

    #[test]
    fn old_failures_stop_counting() {
        let l = limiter(100);
        l.record_failure(ip(1), NOW, POLICY);
        l.record_failure(ip(1), NOW + 1, POLICY);
        assert_eq!(l.record_failure(ip(1), NOW + 700, POLICY), None);
    }

    #[test]
    fn a_flood_of_addresses_stays_within_capacity_and_keeps_locks() {
        let l = limiter(1000);
        for _ in 0..3 {
            l.record_failure(ip(7), NOW, POLICY);
        }
        for n in 100..20_000 {
            l.record_failure(ip(n), NOW + 1, POLICY);
            assert!(l.len() <= 1000);
        }
        assert_eq!(l.locked_until(ip(7), NOW + 2), Some(NOW + 600));
    }

    #[test]
    fn parses_v4_and_v6() {
        assert_eq!(parse_ip(b"127.0.0.1"), Some(ip(0x7f00_0001)));
        assert!(parse_ip(b"::1").is_some());
        assert_eq!(parse_ip(b"not an ip"), None);
        assert_eq!(parse_ip(b"\xff"), None);
    }
}
