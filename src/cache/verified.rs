//! The verified-token cache: a repeated token skips all crypto and claim parsing.
//!
//! * Key: SHA-256 of the token (the raw token is never stored).
//! * Value: the verified claims and identity, valid until the earliest of the token's `exp`
//!   (minus nothing: the skew is not extended), `iat + max_lifetime` style bounds computed by
//!   the policy, and insertion + `ttl`.
//! * Invalidation: each entry records the generation of the key set that verified it; when
//!   the key set changes (rotation, flush), entries of older generations are misses.
//! * Bound: `capacity` entries. When full, expired entries are purged; if it is still full,
//!   the new result is simply not cached (no eviction storm under a flood of distinct
//!   tokens: an attacker sending random valid-looking tokens cannot push out hot entries).
//! * Concurrency: an [`ExpiringMap`]: a hit takes no lock and allocates nothing.
//!
//! The cache lives in the process state keyed by the policy's config fingerprint, so a
//! reload that leaves the policy unchanged keeps it warm.

use super::expiring::{ExpiringMap, Expiry};
use dashmap::DashMap;
use serde_json::{Map, Value};
use std::sync::Arc;

#[derive(Debug)]
pub struct Entry {
    pub claims: Arc<Map<String, Value>>,
    pub identity: Option<Arc<str>>,
    /// Unix seconds after which the entry is unusable.
    pub valid_until: u64,
    pub key_generation: u64,
}

impl Expiry for Arc<Entry> {
    fn valid_until(&self) -> u64 {
        self.valid_until
    }
}

#[derive(Debug)]
pub struct VerifiedCache {
    map: ExpiringMap<Arc<Entry>>,
}

pub fn token_key(token: &str) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut k = [0u8; 32];
    k.copy_from_slice(d.as_ref());
    k
}

/// The verified-token caches of every jwt_verify policy, by the policy's config fingerprint,
/// so that a reload leaving a policy unchanged finds its cache warm.
#[derive(Debug, Default)]
pub struct VerifiedCaches {
    by_config: DashMap<String, Arc<VerifiedCache>>,
}

impl VerifiedCaches {
    /// The cache of the policy with this fingerprint, created with `capacity` if new.
    pub fn get(&self, fingerprint: &str, capacity: usize) -> Arc<VerifiedCache> {
        self.by_config
            .entry(fingerprint.to_string())
            .or_insert_with(|| Arc::new(VerifiedCache::new(capacity)))
            .clone()
    }

    /// Entries across all caches (for status and tests).
    pub fn entries(&self) -> usize {
        self.by_config.iter().map(|c| c.len()).sum()
    }

    /// Drop the caches of policies the new snapshot no longer has.
    pub fn retain(&self, used: &std::collections::HashSet<String>) {
        self.by_config.retain(|k, _| used.contains(k));
    }
}

impl VerifiedCache {
    pub fn new(capacity: usize) -> VerifiedCache {
        VerifiedCache {
            map: ExpiringMap::preallocated(capacity),
        }
    }

    pub fn get(&self, key: &[u8; 32], now: u64, key_generation: u64) -> Option<Arc<Entry>> {
        let e = self.map.get(key)?;
        if now < e.valid_until && e.key_generation == key_generation {
            return Some(e);
        }
        self.map.remove(key);
        None
    }

    pub fn insert(&self, key: [u8; 32], entry: Entry, now: u64) {
        self.map.insert(key, Arc::new(entry), now);
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

    fn entry(until: u64, generation: u64) -> Entry {
        Entry {
            claims: Arc::new(Map::new()),
            identity: None,
            valid_until: until,
            key_generation: generation,
        }
    }

    #[test]
    fn expiry_generation_and_bound() {
        let c = VerifiedCache::new(2);
        let (a, b, d) = (token_key("a"), token_key("b"), token_key("d"));
        c.insert(a, entry(100, 1), 10);
        assert!(c.get(&a, 50, 1).is_some());
        assert!(c.get(&a, 50, 2).is_none(), "key set changed");
        assert!(c.get(&a, 50, 1).is_none(), "removed on the stale hit");
        c.insert(a, entry(100, 1), 10);
        c.insert(b, entry(20, 1), 10);
        c.insert(d, entry(100, 1), 10);
        assert!(c.get(&d, 15, 1).is_none(), "full: not admitted");
        c.insert(d, entry(100, 1), 30); // b expired at 20: purged, d admitted
        assert!(c.get(&d, 31, 1).is_some());
        assert!(c.get(&a, 100, 1).is_none(), "never at or past valid_until");
    }
}
