//! Failed-authentication backoff (RFC 6749 §2.3.1, §4.3.2: protect secrets and passwords
//! against brute force). Keyed by (client id or username, source IP): a distributed attack on
//! one client id from many addresses does not lock out the real client calling from its own
//! address, while each address gets only `max_failures` guesses per window before waiting
//! `base_delay`, doubled with every further failure up to `max_delay`.
//!
//! Memory is bounded: at most `capacity` entries; when full, entries idle for longer than
//! the window are swept, and if it is still full a new key is not tracked (fail open on
//! tracking only; authentication itself is never skipped).

use super::config::BackoffConfig;
use dashmap::DashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

#[derive(Debug)]
pub struct Backoff {
    max_failures: u32,
    window: Duration,
    base: Duration,
    max: Duration,
    capacity: usize,
    map: DashMap<(String, Option<IpAddr>), Entry>,
}

impl Backoff {
    pub fn new(c: &BackoffConfig) -> Backoff {
        let BackoffConfig {
            max_failures,
            window,
            base_delay,
            max_delay,
            capacity,
        } = c;
        Backoff {
            max_failures: (*max_failures).max(1),
            window: window.0,
            base: base_delay.0,
            max: max_delay.0,
            capacity: *capacity,
            map: DashMap::new(),
        }
    }

    /// Seconds to wait when `name` from `ip` is locked out now.
    pub fn check(&self, name: &str, ip: Option<IpAddr>, now: Instant) -> Option<u64> {
        let e = self.map.get(&(name.to_string(), ip))?;
        let until = e.locked_until?;
        (until > now).then(|| until.duration_since(now).as_secs().max(1))
    }

    /// Record a failure; returns the lockout in seconds if this failure starts one.
    pub fn failure(&self, name: &str, ip: Option<IpAddr>, now: Instant) -> Option<u64> {
        let key = (name.to_string(), ip);
        if !self.map.contains_key(&key) && self.map.len() >= self.capacity {
            self.sweep(now);
            if self.map.len() >= self.capacity {
                return None;
            }
        }
        let mut e = self.map.entry(key).or_insert(Entry {
            failures: 0,
            last: now,
            locked_until: None,
        });
        let locked = e.locked_until.is_some_and(|u| u > now);
        if !locked && now.duration_since(e.last) > self.window {
            e.failures = 0;
        }
        e.failures = e.failures.saturating_add(1);
        e.last = now;
        if e.failures >= self.max_failures {
            let excess = (e.failures - self.max_failures).min(20);
            let d = self
                .base
                .saturating_mul(1u32 << excess)
                .min(self.max)
                .max(Duration::from_secs(1));
            e.locked_until = Some(now + d);
            return Some(d.as_secs().max(1));
        }
        None
    }

    /// A success clears the record.
    pub fn success(&self, name: &str, ip: Option<IpAddr>) {
        self.map.remove(&(name.to_string(), ip));
    }

    fn sweep(&self, now: Instant) {
        let w = self.window.max(self.max);
        self.map.retain(|_, e| {
            now.duration_since(e.last) <= w && e.locked_until.is_none_or(|u| u > now)
        });
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(cap: usize) -> BackoffConfig {
        BackoffConfig {
            max_failures: 3,
            capacity: cap,
            ..Default::default()
        }
    }

    #[test]
    fn locks_after_n_per_ip_and_doubles() {
        let b = Backoff::new(&cfg(100));
        let t = Instant::now();
        let a: Option<IpAddr> = "10.0.0.1".parse().ok();
        let other: Option<IpAddr> = "10.0.0.2".parse().ok();
        assert_eq!(b.failure("c", a, t), None);
        assert_eq!(b.failure("c", a, t), None);
        assert_eq!(b.failure("c", a, t), Some(2));
        assert_eq!(b.check("c", a, t), Some(2));
        assert_eq!(b.check("c", other, t), None);
        assert_eq!(b.failure("c", a, t), Some(4));
        b.success("c", a);
        assert_eq!(b.check("c", a, t), None);
    }

    #[test]
    fn bounded() {
        let b = Backoff::new(&cfg(10));
        let t = Instant::now();
        for i in 0..100 {
            b.failure(&format!("c{i}"), None, t);
        }
        assert!(b.len() <= 10);
    }
}
