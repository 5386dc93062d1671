//! State that survives config reloads: warm caches that a reload must not throw away.
//! A policy whose config did not change finds its cache here under the same fingerprint.
//!
//! The composition root: compile functions never see [`Shared`], they get the one handle they
//! use (the key cache, the verified-token caches, the token service's or the identity sources'
//! state), so that the services and policies stay below this module.

use crate::cache::verified::VerifiedCaches;
use crate::keys::KeyCache;
use std::collections::HashSet;
use std::sync::Arc;

pub struct Shared {
    /// Verified-token caches by policy config fingerprint.
    pub verified: VerifiedCaches,
    /// Remote key sets (JWKS URLs, discovery), by URL.
    pub keys: Arc<KeyCache>,
    /// The token service's signing keys, store and backoff state.
    pub tokens: crate::token::TokenShared,
    /// Identity sources (connection pools, credential caches, health) by config fingerprint.
    pub identity: crate::identity::IdentityShared,
}

impl Shared {
    /// Long-lived state whose metrics register on `registry`.
    pub fn new(registry: &prometheus::Registry) -> Result<Shared, prometheus::Error> {
        Ok(Shared {
            verified: VerifiedCaches::default(),
            keys: Arc::new(KeyCache::new(registry)?),
            tokens: crate::token::TokenShared::new(true),
            identity: crate::identity::IdentityShared::new(registry)?,
        })
    }

    /// For `tokengate check` and benches: metrics go to a throwaway registry.
    /// Nothing is written to disk either (token signing keys stay in memory).
    pub fn detached() -> Result<Shared, prometheus::Error> {
        let mut s = Self::new(&prometheus::Registry::new())?;
        s.tokens = crate::token::TokenShared::new(false);
        Ok(s)
    }

    /// Entries across all verified-token caches (for status and tests).
    pub fn verified_entries(&self) -> usize {
        self.verified.entries()
    }

    /// Drop the caches no policy of the new snapshot uses.
    pub fn retain(&self, used: &HashSet<String>) {
        self.verified.retain(used);
    }
}
