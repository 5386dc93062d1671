//! Per-source settings of a remote JWKS (the `[...jwks]` table of a jwt_verify policy).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::units::{HumanDuration, HumanSize};

/// Upper bound for `max_size`: a JWK Set of a few hundred RSA keys is well below it.
pub const MAX_SIZE_LIMIT: u64 = 16 << 20;
/// Upper bound for `timeout`: a request waiting on a cold source never waits longer.
pub const TIMEOUT_LIMIT: Duration = Duration::from_secs(60);

/// How one remote key source is refreshed, cached and bounded. Every field has a default, so
/// an empty table is valid. Durations accept `"250ms"`, `"30s"`, `"5m"`, `"1h"`; sizes
/// `"512KiB"`, `"1MiB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwksSettings {
    /// Shortest time between two scheduled refreshes, whatever Cache-Control says
    /// (default 1m). Also the ceiling of the retry backoff after a failed fetch.
    pub min_refresh: HumanDuration,
    /// Longest time between two scheduled refreshes; also the refresh interval when the
    /// response has no `Cache-Control: max-age` (default 1h).
    pub max_refresh: HumanDuration,
    /// How long past its refresh time a key set is still served while refreshes fail
    /// (stale-if-error); after that the source fails closed (default 1h).
    pub max_stale: HumanDuration,
    /// After a refetch caused by an unknown `kid`, no other such refetch before this much
    /// time has passed (default 30s).
    pub unknown_kid_cooldown: HumanDuration,
    /// Deadline of one fetch: DNS, connect, TLS, redirects, discovery and the whole body
    /// (default 5s).
    pub timeout: HumanDuration,
    /// Largest accepted response body, enforced while streaming (default 512KiB).
    pub max_size: HumanSize,
    /// Fetch at start (and count the source in readiness) instead of on first use
    /// (default true).
    pub prefetch: bool,
}

impl Default for JwksSettings {
    fn default() -> Self {
        JwksSettings {
            min_refresh: HumanDuration(Duration::from_secs(60)),
            max_refresh: HumanDuration(Duration::from_secs(3600)),
            max_stale: HumanDuration(Duration::from_secs(3600)),
            unknown_kid_cooldown: HumanDuration(Duration::from_secs(30)),
            timeout: HumanDuration(Duration::from_secs(5)),
            max_size: HumanSize(512 << 10),
            prefetch: true,
        }
    }
}

impl JwksSettings {
    /// Checks the relations between fields; the message names the offending field.
    pub fn validate(&self) -> Result<(), String> {
        let JwksSettings {
            min_refresh,
            max_refresh,
            max_stale: _,
            unknown_kid_cooldown: _,
            timeout,
            max_size,
            prefetch: _,
        } = self;
        if min_refresh.0.is_zero() {
            return Err("min_refresh must be greater than 0".into());
        }
        if max_refresh.0 < min_refresh.0 {
            return Err("max_refresh must not be less than min_refresh".into());
        }
        if timeout.0.is_zero() || timeout.0 > TIMEOUT_LIMIT {
            return Err(format!(
                "timeout must be greater than 0 and at most {}s",
                TIMEOUT_LIMIT.as_secs()
            ));
        }
        if max_size.0 == 0 || max_size.0 > MAX_SIZE_LIMIT {
            return Err(format!(
                "max_size must be greater than 0 and at most {MAX_SIZE_LIMIT} bytes"
            ));
        }
        Ok(())
    }

    /// The refresh interval for a response whose Cache-Control gave `max_age` (None: absent,
    /// `no-cache` and `no-store` count as 0): clamped into `[min_refresh, max_refresh]`.
    pub fn ttl_for(&self, max_age: Option<Duration>) -> Duration {
        let ttl = max_age.unwrap_or(self.max_refresh.0);
        ttl.clamp(
            self.min_refresh.0,
            self.max_refresh.0.max(self.min_refresh.0),
        )
    }

    /// The wait before retry number `failures` (1-based) after failed fetches: 1s doubling,
    /// never more than `min_refresh` (so a short `min_refresh` also shortens retries).
    pub fn retry_backoff(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(16);
        let backoff = Duration::from_secs(1u64 << exp);
        backoff.min(self.min_refresh.0)
    }
}
