//! The credential cache of one identity source: a burst of password grants for one user
//! costs one LDAP bind or one database query and hash check, not one each.
//!
//! * Key: HMAC-SHA256 under a random key made when the cache is, over the length-prefixed
//!   username and the password. Neither is stored, and the key never leaves memory, so the
//!   map holds nothing an offline guesser can test passwords against.
//! * Value: the identity (accepted) until `insert + ttl`, or "rejected" until
//!   `insert + negative_ttl` (at most 10 s). Source errors and timeouts are never cached.
//! * Bound: `capacity` entries. When full, expired entries are purged; if it is still full,
//!   the new result is not cached (a flood of distinct guesses cannot push out hot entries).
//! * Single flight: concurrent logins of one pair share one lookup and its answer (errors
//!   included, each waiter within its own deadline); the map holds only pairs in flight.
//! * A password change at the source takes effect for this gateway within `ttl`; an entry
//!   dies with the source's config (a reload that changes the source starts a new cache).

use super::Identity;
use aws_lc_rs::hmac;
use dashmap::DashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest a rejection is remembered, whatever the config says.
pub const MAX_NEGATIVE_TTL: Duration = Duration::from_secs(10);

pub struct CredCache {
    key: hmac::Key,
    map: DashMap<[u8; 32], (Instant, Option<Arc<Identity>>)>,
    /// Lookups in flight (single flight): the first login of a pair runs the lookup, the
    /// others await its answer here; removed when it lands.
    inflight: DashMap<[u8; 32], Flight>,
    ttl: Duration,
    negative_ttl: Duration,
    capacity: usize,
}

impl std::fmt::Debug for CredCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredCache")
            .field("entries", &self.map.len())
            .finish_non_exhaustive()
    }
}

/// What the cache knows of a pair.
pub enum Cached {
    Accepted(Arc<Identity>),
    Rejected,
}

impl CredCache {
    /// Err when the system RNG fails (the HMAC key must be secret: no fallback).
    pub fn new(
        ttl: Duration,
        negative_ttl: Duration,
        capacity: usize,
    ) -> Result<CredCache, String> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng)
            .map_err(|_| "no random bytes from the system for the credential cache key")?;
        Ok(CredCache {
            key,
            map: DashMap::new(),
            inflight: DashMap::new(),
            ttl,
            negative_ttl: negative_ttl.min(MAX_NEGATIVE_TTL),
            capacity,
        })
    }

    pub fn enabled(&self) -> bool {
        self.capacity > 0 && !(self.ttl.is_zero() && self.negative_ttl.is_zero())
    }

    pub fn key(&self, username: &str, password: &str) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(&(username.len() as u64).to_be_bytes());
        ctx.update(username.as_bytes());
        ctx.update(password.as_bytes());
        let mut k = [0u8; 32];
        k.copy_from_slice(ctx.sign().as_ref());
        k
    }

    pub fn get(&self, k: &[u8; 32], now: Instant) -> Option<Cached> {
        let e = self.map.get(k)?;
        if now < e.0 {
            return Some(match &e.1 {
                Some(id) => Cached::Accepted(id.clone()),
                None => Cached::Rejected,
            });
        }
        drop(e);
        // Only if still expired: another login may have just put a fresh answer.
        self.map.remove_if(k, |_, v| now >= v.0);
        None
    }

    /// Remember an answer: `Some` accepted, `None` rejected.
    pub fn put(&self, k: [u8; 32], id: Option<Arc<Identity>>, now: Instant) {
        let ttl = if id.is_some() {
            self.ttl
        } else {
            self.negative_ttl
        };
        if ttl.is_zero() || self.capacity == 0 {
            return;
        }
        if self.map.len() >= self.capacity {
            self.map.retain(|_, v| now < v.0);
            if self.map.len() >= self.capacity {
                return;
            }
        }
        self.map.insert(k, (now + ttl, id));
    }

    /// The pair's lookup in flight, joined or started. Dropping the guard (answered, timed
    /// out, or the request went away) lands it: once answered, or abandoned by every other
    /// waiter, later logins start afresh.
    pub fn flight(&self, k: [u8; 32]) -> FlightGuard<'_> {
        FlightGuard {
            flight: self.inflight.entry(k).or_default().clone(),
            cache: self,
            key: k,
        }
    }

    /// Pairs in flight (tests).
    pub fn in_flight(&self) -> usize {
        self.inflight.len()
    }
}

/// One lookup's answer, shared by every login of the pair that arrived while it ran.
pub type Flight = Arc<tokio::sync::OnceCell<Result<Option<Arc<Identity>>, super::IdentityError>>>;

/// A login's part in a flight; lands it when dropped.
pub struct FlightGuard<'a> {
    flight: Flight,
    cache: &'a CredCache,
    key: [u8; 32],
}

impl FlightGuard<'_> {
    pub fn get(&self) -> &Flight {
        &self.flight
    }
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        let f = &self.flight;
        self.cache.inflight.remove_if(&self.key, |_, v| {
            Arc::ptr_eq(v, f) && (v.initialized() || Arc::strong_count(v) <= 2)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Option<Arc<Identity>> {
        Some(Arc::new(Identity {
            subject: s.into(),
            roles: vec![],
            scopes: vec![],
        }))
    }

    #[test]
    fn ttl_negative_cap_and_capacity() {
        let c = CredCache::new(Duration::from_secs(30), Duration::from_secs(60), 2).unwrap();
        let t0 = Instant::now();
        let (a, b, x) = (c.key("a", "pw"), c.key("b", "pw"), c.key("x", "pw"));
        // Length prefix: ("ab", "c") and ("a", "bc") differ.
        assert_ne!(c.key("ab", "c"), c.key("a", "bc"));
        c.put(a, id("a"), t0);
        c.put(b, None, t0);
        assert!(matches!(c.get(&a, t0), Some(Cached::Accepted(_))));
        assert!(matches!(c.get(&b, t0), Some(Cached::Rejected)));
        // Full: the third is not cached.
        c.put(x, id("x"), t0);
        assert!(c.get(&x, t0).is_none());
        // The rejection is capped at 10 s although 60 s were asked for.
        assert!(c.get(&b, t0 + Duration::from_secs(11)).is_none());
        assert!(c.get(&a, t0 + Duration::from_secs(29)).is_some());
        assert!(c.get(&a, t0 + Duration::from_secs(31)).is_none());
        // Expired entries make room.
        c.put(x, id("x"), t0 + Duration::from_secs(31));
        assert!(c.get(&x, t0 + Duration::from_secs(32)).is_some());
        // Another cache (another key) never matches.
        let d = CredCache::new(Duration::from_secs(30), Duration::ZERO, 2).unwrap();
        assert_ne!(d.key("a", "pw"), a);
    }
}
