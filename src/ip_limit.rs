//! Failed logins per source address, across all usernames (password spraying), with a hard cap
//! on memory: the table never holds more than `capacity` addresses, however many an attacker
//! uses.
//!
//! Eviction when full drops expired entries first, then the least recently seen addresses that
//! are not locked. Per-user locks live in the state store, not here, so no flood of addresses
//! can evict a user's lock; a flood can at worst make the table forget some unlocked addresses'
//! partial counts.
//!
//! An address counts as its network: IPv4 per /32 and IPv6 per /64 by default (a client owns
//! a whole /64; counting each /128 alone would let it sidestep the limit), both configurable.
//! `max_failures_per_ip = 0` turns the limit off, for sites where every client arrives through
//! one address (a load balancer that does not pass the client's address on).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};

use parking_lot::Mutex;

/// Addresses tracked at most. Each entry is about 64 bytes with the map's overhead, so the cap
/// bounds the table near 6.5 MB.
pub const DEFAULT_CAPACITY: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpPolicy {
    /// 0: the per-address limit is off.
    pub max_failures: u32,
    pub lockout_secs: u64,
    /// Leading bits of an IPv4 / IPv6 address that name one source.
    pub prefix_v4: u8,
    pub prefix_v6: u8,
}

pub const DEFAULT_PREFIX_V4: u8 = 32;
pub const DEFAULT_PREFIX_V6: u8 = 64;

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
    /// The prefixes of the policy last used to count (v4 << 8 | v6): the table's keys are
    /// networks of these lengths. A reload that changes them starts the counts afresh.
    prefixes: AtomicU32,
    /// The latest `locked_until` ever set: once the clock is past it no address is locked, and
    /// a login need not take the table's lock to learn that (the usual case).
    latest_lock_end: AtomicI64,
}

impl IpLimiter {
    pub fn new(capacity: usize) -> IpLimiter {
        IpLimiter {
            capacity: capacity.max(1),
            table: Mutex::new(HashMap::new()),
            prefixes: AtomicU32::new(pack(DEFAULT_PREFIX_V4, DEFAULT_PREFIX_V6)),
            latest_lock_end: AtomicI64::new(i64::MIN),
        }
    }

    /// `Some(until)` if this address (its network) is refused right now.
    /// Whether any address can be locked at `now`; when not, [`locked_until`](Self::locked_until)
    /// is `None` for every address, and the client's address need not even be parsed.
    pub fn may_have_locked(&self, now: i64) -> bool {
        self.latest_lock_end.load(Ordering::Acquire) > now
    }

    pub fn locked_until(&self, ip: IpAddr, now: i64) -> Option<i64> {
        if !self.may_have_locked(now) {
            return None;
        }
        let (v4, v6) = unpack(self.prefixes.load(Ordering::Relaxed));
        let key = network(ip, v4, v6);
        let table = self.table.lock();
        table
            .get(&key)
            .map(|e| e.locked_until)
            .filter(|&until| until > now)
    }

    /// Counts one failed login from `ip` (its network); returns `Some(until)` if this failure
    /// locked it. With `max_failures = 0` nothing is counted.
    pub fn record_failure(&self, ip: IpAddr, now: i64, policy: IpPolicy) -> Option<i64> {
        if policy.max_failures == 0 {
            return None;
        }
        let window = i64::try_from(policy.lockout_secs).unwrap_or(i64::MAX);
        let prefixes = pack(policy.prefix_v4, policy.prefix_v6);
        let mut table = self.table.lock();
        if self.prefixes.swap(prefixes, Ordering::Relaxed) != prefixes {
            table.clear();
        }
        let ip = network(ip, policy.prefix_v4, policy.prefix_v6);
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
            // Under the table's lock, so a login that then takes it sees the entry too.
            self.latest_lock_end
                .fetch_max(entry.locked_until, Ordering::Release);
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

fn pack(v4: u8, v6: u8) -> u32 {
    (u32::from(v4) << 8) | u32::from(v6)
}

fn unpack(packed: u32) -> (u8, u8) {
    ((packed >> 8) as u8, packed as u8)
}

/// The network of `ip` with `v4` / `v6` leading bits kept (an IPv4-mapped IPv6 address counts
/// as the IPv4 address it carries).
pub fn network(ip: IpAddr, v4: u8, v6: u8) -> IpAddr {
    let mask_v4 = |a: Ipv4Addr| {
        let bits = u32::from(v4.min(32));
        let mask = if bits == 0 {
            0
        } else {
            u32::MAX << (32 - bits)
        };
        IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
    };
    match ip {
        IpAddr::V4(a) => mask_v4(a),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(mapped) => mask_v4(mapped),
            None => {
                let bits = u32::from(v6.min(128));
                let mask = if bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - bits)
                };
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        },
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
        prefix_v4: DEFAULT_PREFIX_V4,
        prefix_v6: DEFAULT_PREFIX_V6,
    };

    fn v6(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ipv6_counts_per_64_by_default_and_the_prefixes_are_configurable() {
        let l = limiter(100);
        for n in 1..=3 {
            l.record_failure(v6(&format!("2001:db8::{n}")), NOW, POLICY);
        }
        assert_eq!(
            l.locked_until(v6("2001:db8::ffff"), NOW + 1),
            Some(NOW + 600)
        );
        assert_eq!(
            l.locked_until(v6("2001:db8:0:1::1"), NOW + 1),
            None,
            "another /64"
        );
        let per_128 = IpPolicy {
            prefix_v6: 128,
            ..POLICY
        };
        let l = limiter(100);
        for n in 1..=3 {
            l.record_failure(v6(&format!("2001:db8::{n}")), NOW, per_128);
        }
        assert_eq!(l.locked_until(v6("2001:db8::1"), NOW + 1), None);
        let per_24 = IpPolicy {
            prefix_v4: 24,
            ..POLICY
        };
        let l = limiter(100);
        for n in 1..=3 {
            l.record_failure(ip(0x0a00_0000 + n), NOW, per_24);
        }
        assert_eq!(l.locked_until(ip(0x0a00_00fe), NOW + 1), Some(NOW + 600));
        assert_eq!(
            network(v6("::ffff:10.0.0.7"), 32, 64),
            ip(0x0a00_0007),
            "an IPv4-mapped address counts as its IPv4 address"
        );
    }

    #[test]
    fn zero_max_failures_turns_the_limit_off() {
        let l = limiter(100);
        let off = IpPolicy {
            max_failures: 0,
            ..POLICY
        };
        for _ in 0..1000 {
            assert_eq!(l.record_failure(ip(1), NOW, off), None);
        }
        assert_eq!(l.locked_until(ip(1), NOW), None);
        assert!(l.is_empty());
    }

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
