//! State that survives config reloads: warm caches that a reload must not throw away.
//! A policy whose config did not change finds its cache here under the same fingerprint.

use crate::policy::jwt_verify::cache::VerifiedCache;
use dashmap::DashMap;
use std::collections::HashSet;
use std::sync::Arc;

#[derive(Default)]
pub struct Shared {
    /// Verified-token caches by policy config fingerprint.
    verified: DashMap<String, Arc<VerifiedCache>>,
}

impl Shared {
    pub fn verified_cache(&self, fingerprint: &str, capacity: usize) -> Arc<VerifiedCache> {
        self.verified
            .entry(fingerprint.to_string())
            .or_insert_with(|| Arc::new(VerifiedCache::new(capacity)))
            .clone()
    }

    /// Entries across all verified-token caches (for status and tests).
    pub fn verified_entries(&self) -> usize {
        self.verified.iter().map(|c| c.len()).sum()
    }

    /// Drop the caches no policy of the new snapshot uses.
    pub fn retain(&self, used: &HashSet<String>) {
        self.verified.retain(|k, _| used.contains(k));
    }
}
