//! Remote key sources: JWKS URLs and OIDC discovery, cached once per process, shared by every
//! worker thread and kept across config reloads (issue 4, item 3).
//!
//! # Shape
//!
//! [`KeyCache`] (one per process, in the long-lived state) maps a source URL to an
//! `Arc<`[`RemoteJwks`]`>`. A policy gets its source at compile time with
//! [`KeyCache::source`] / [`KeyCache::discovery`] (no network), or per request for a per-client
//! URL, then on the request path:
//!
//! 1. `let gen = src.generation();` then [`RemoteJwks::current`] (lock-free, never waits) or
//!    [`RemoteJwks::keys`] (fetches when nothing is usable);
//! 2. when the token's kid is not in the set, [`RemoteJwks::refresh_unknown_kid`];
//! 3. a [`KeyError`] is `503 jwks_unavailable`, never an invalid token.
//!
//! The maintenance loop calls [`KeyCache::refresh_due`] every 100 ms–1 s: it prefetches new
//! sources and refreshes every source whose refresh time has come. The module has no
//! long-lived task of its own (a fetch drives its connection in a task that is aborted when
//! the fetch ends), so nothing runs between tests or after shutdown.
//!
//! [`RemoteJwks::generation`] bumps when the key content changes and on flush; a verified-token
//! cache entry is valid while the generation is unchanged *and* `current()` is Some (past
//! `max_stale` the set is withdrawn without a bump).
//!
//! # Bounds, and why
//!
//! * **Capacity** (default [`DEFAULT_CAPACITY`] = 1024 sources): per-client JWKS URLs are
//!   rendered from request data, so the number of sources must not grow with traffic. When
//!   full, the least recently used source that nothing else holds (`Arc` strong count 1:
//!   not referenced by a compiled policy, not in use by a request) is evicted with its metric
//!   series. If every source is held, [`KeyCache::source`] fails with
//!   [`KeyError::TooManySources`]. Sources held by a compiled policy are never evicted, so
//!   static sources keep being refreshed.
//! * **Refresh** ([`JwksSettings`]): a fetched set is fresh for Cache-Control `max-age`
//!   clamped into `[min_refresh, max_refresh]` (no header: `max_refresh`; `no-cache` /
//!   `no-store`: `min_refresh`). `min_refresh` protects the identity provider from a tiny
//!   max-age; `max_refresh` bounds how long a removed (compromised) key is still trusted.
//! * **Stale-if-error**: a failed refresh never replaces a good set. The set is served up to
//!   `max_stale` past its refresh time; after that [`RemoteJwks::current`] is None and
//!   [`RemoteJwks::keys`] errs: fail closed, because a provider unreachable for that long may
//!   have revoked keys. Retries back off from 1 s doubling up to `min_refresh`; while backing
//!   off with nothing usable, callers get the last error at once (no fetch storm).
//! * **Single flight**: one fetch per source at a time; callers arriving meanwhile wait for
//!   it and share its outcome (a fetch abandoned by a cancelled caller is redone by the next
//!   waiter, never run twice at once).
//! * **Unknown-kid cooldown**: a token naming an unknown kid triggers one refetch (one that
//!   starts after the token arrived, so a refresh already running cannot answer for it);
//!   callers arriving while it runs share it; for `unknown_kid_cooldown` after the claim,
//!   further unknown kids get the current set without fetching. A flood of random kids costs
//!   one fetch per cooldown and never evicts good keys.
//! * **Per fetch**: `timeout` covers DNS, connect, TLS, redirects, discovery and the body;
//!   `max_size` is enforced on `Content-Length` and while streaming, before parsing; status
//!   must be 200; at most [`MAX_KEYS`] keys; keys that the JOSE engine refuses are
//!   skipped, a set with zero usable keys is refused; symmetric keys are refused (a shared
//!   secret is never fetched from a URL) and private members are dropped, except in the
//!   sources of signing keys ([`KeyCache::signing_source`]), which are cached apart from the
//!   public source of the same URL.
//! * **URLs**: `https`, or plain `http` to a loopback host only (tests, local sidecars); no
//!   userinfo, no fragment, at most 2048 bytes. Redirects are followed only to the same
//!   scheme, host and port, at most 3. Whatever DNS answers, link-local (cloud metadata),
//!   unspecified, multicast and broadcast addresses are never connected to. Key material
//!   named in a token (`jku`, `x5u`, `jwk`, `x5c`) is never fetched by this module: only URLs
//!   the policy passes in, which for per-client sources come from its allow-list.
//! * **Idle lazy sources**: a source with `prefetch = false` that was not used for
//!   `max_refresh` is no longer refreshed in the background; its next use fetches.
//! * **Clock**: every time here is monotonic (Tokio's `Instant`), so a wall-clock step neither
//!   expires nor revives a cached set, and tests run the TTLs on paused time.
//!
//! HTTPS uses rustls with the process's default crypto provider (aws-lc-rs when none is
//! installed) and the system's root certificates, or the `ClientConfig` given in
//! [`KeyCacheOptions`]; one connection per fetch (fetches are rare), HTTP/1.1.
//!
//! Nothing here logs a response body, a key or a URL query string: logs and metrics name a
//! source by `host[:port]/path`.

mod error;
pub(crate) mod http;
mod metrics;
mod offline;
mod remote;

#[cfg(test)]
mod tests;

pub use crate::config::keys::{JwksSettings, MAX_SIZE_LIMIT, TIMEOUT_LIMIT};
pub use error::KeyError;
pub use offline::OfflineKeys;
pub use remote::{RemoteJwks, SourceStatus, MAX_KEYS};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::time::Instant;

use dashmap::DashMap;

use self::http::{parse_url, HttpClient};
use self::metrics::Metrics;
use self::remote::SourceKind;

/// Default maximum number of sources in a [`KeyCache`].
pub const DEFAULT_CAPACITY: usize = 1024;
/// Sources refreshed at once by [`KeyCache::refresh_due`].
pub const REFRESH_CONCURRENCY: usize = 8;
/// Minimum interval between two updates of the age/usable gauges by `refresh_due`.
const GAUGE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Construction options of a [`KeyCache`].
#[derive(Clone)]
pub struct KeyCacheOptions {
    /// Maximum number of sources (JWKS and discovery together); at least 1.
    pub capacity: usize,
    /// TLS client configuration for HTTPS sources; None: the process's crypto provider with
    /// the system's root certificates.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Answer every fetch from these bodies instead of the network (`tokengate simulate`).
    pub offline: Option<Arc<OfflineKeys>>,
}

impl Default for KeyCacheOptions {
    fn default() -> Self {
        KeyCacheOptions {
            capacity: DEFAULT_CAPACITY,
            tls: None,
            offline: None,
        }
    }
}

/// The three kinds of source, each in its own map.
#[derive(Debug, Clone, Copy)]
enum Map {
    Jwks,
    Discovery,
    Signing,
}

impl Map {
    const ALL: [Map; 3] = [Map::Jwks, Map::Discovery, Map::Signing];
}

/// The process-wide cache of remote key sources. `Send + Sync`; see the module docs.
pub struct KeyCache {
    jwks: DashMap<String, Arc<RemoteJwks>>,
    discovery: DashMap<String, Arc<RemoteJwks>>,
    /// JWKS URLs whose private keys are kept (signing keys): a URL named both for public
    /// keys and for signing keys is two sources, so a verifier never holds private keys.
    signing: DashMap<String, Arc<RemoteJwks>>,
    capacity: usize,
    serial: AtomicU64,
    epoch: Instant,
    /// Serializes insertions so the capacity is exact; lookups never take it.
    insert: Mutex<()>,
    /// When `refresh_due` last updated the per-source gauges (at most once a second).
    gauges_at: Mutex<Option<Instant>>,
    http: Arc<HttpClient>,
    metrics: Metrics,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("sources", &self.len())
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl KeyCache {
    /// A cache with default options, registering its metrics on `registry`.
    pub fn new(registry: &prometheus::Registry) -> Result<KeyCache, prometheus::Error> {
        Self::with_options(registry, KeyCacheOptions::default())
    }

    /// A cache with explicit capacity and TLS configuration.
    pub fn with_options(
        registry: &prometheus::Registry,
        options: KeyCacheOptions,
    ) -> Result<KeyCache, prometheus::Error> {
        let KeyCacheOptions {
            capacity,
            tls,
            offline,
        } = options;
        Ok(KeyCache {
            jwks: DashMap::new(),
            discovery: DashMap::new(),
            signing: DashMap::new(),
            capacity: capacity.max(1),
            serial: AtomicU64::new(0),
            epoch: Instant::now(),
            insert: Mutex::new(()),
            gauges_at: Mutex::new(None),
            http: Arc::new(HttpClient::new(tls, offline)),
            metrics: Metrics::new(registry)?,
        })
    }

    /// The source for a JWKS URL, created (without fetching) when absent. An existing source
    /// takes `settings` (a reload; when two policies name one URL, the last call wins).
    pub fn source(&self, url: &str, settings: JwksSettings) -> Result<Arc<RemoteJwks>, KeyError> {
        self.get_or_create(Map::Jwks, url, settings)
    }

    /// The source for a JWKS URL that serves private keys (signing keys): private members
    /// are kept, symmetric keys are still refused. Created without fetching, like
    /// [`KeyCache::source`], and separate from the public source of the same URL.
    pub fn signing_source(
        &self,
        url: &str,
        settings: JwksSettings,
    ) -> Result<Arc<RemoteJwks>, KeyError> {
        self.get_or_create(Map::Signing, url, settings)
    }

    /// The source for an OIDC discovery URL (e.g.
    /// `https://idp.example/.well-known/openid-configuration`): every fetch reads the
    /// document and then its `jwks_uri`, which must be https (or http when the discovery URL
    /// is http on a loopback host). Created without fetching, like [`KeyCache::source`].
    pub fn discovery(
        &self,
        discovery_url: &str,
        settings: JwksSettings,
    ) -> Result<Arc<RemoteJwks>, KeyError> {
        self.get_or_create(Map::Discovery, discovery_url, settings)
    }

    fn map(&self, which: Map) -> &DashMap<String, Arc<RemoteJwks>> {
        match which {
            Map::Jwks => &self.jwks,
            Map::Discovery => &self.discovery,
            Map::Signing => &self.signing,
        }
    }

    fn lookup(&self, which: Map, url: &str, settings: JwksSettings) -> Option<Arc<RemoteJwks>> {
        let src = self.map(which).get(url).map(|e| e.value().clone())?;
        src.touch(Instant::now());
        src.update_settings(settings);
        Some(src)
    }

    fn get_or_create(
        &self,
        which: Map,
        url: &str,
        settings: JwksSettings,
    ) -> Result<Arc<RemoteJwks>, KeyError> {
        if let Some(src) = self.lookup(which, url, settings) {
            return Ok(src);
        }
        let target = parse_url(url)?;
        let _insert = self.insert.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(src) = self.lookup(which, url, settings) {
            return Ok(src);
        }
        while self.len() >= self.capacity {
            self.evict_one()?;
        }
        let kind = match which {
            Map::Jwks => SourceKind::Jwks(target),
            Map::Discovery => SourceKind::Discovery(target),
            Map::Signing => SourceKind::SigningJwks(target),
        };
        let src = Arc::new(RemoteJwks::new(
            url,
            kind,
            settings,
            self.serial.fetch_add(1, Ordering::Relaxed),
            self.epoch,
            self.http.clone(),
            self.metrics.clone(),
        ));
        self.map(which).insert(url.to_owned(), src.clone());
        self.metrics.sources.set(self.len_i64());
        Ok(src)
    }

    /// Removes the least recently used source that nothing else holds.
    fn evict_one(&self) -> Result<(), KeyError> {
        for _ in 0..3 {
            let mut victim: Option<(Map, String, (u64, u64))> = None;
            for which in Map::ALL {
                for e in self.map(which).iter() {
                    if Arc::strong_count(e.value()) != 1 {
                        continue;
                    }
                    let rank = (e.value().last_used_ms(), e.value().serial);
                    if victim.as_ref().is_none_or(|(_, _, r)| rank < *r) {
                        victim = Some((which, e.key().clone(), rank));
                    }
                }
            }
            let Some((which, key, _)) = victim else {
                return Err(KeyError::TooManySources);
            };
            // Re-checked under the shard's write lock: nobody can clone it meanwhile.
            if let Some((_, src)) = self
                .map(which)
                .remove_if(&key, |_, v| Arc::strong_count(v) == 1)
            {
                log::info!("jwks {}: evicted (least recently used)", src.label());
                self.metrics.forget(src.label());
                self.metrics.sources.set(self.len_i64());
                return Ok(());
            }
        }
        Err(KeyError::TooManySources)
    }

    /// Drops the cached keys of every source (`None`), or of the source with that exact JWKS
    /// or discovery URL, or else of every source whose label (`host[:port]/path`, as shown by
    /// [`KeyCache::sources`]) is that string; the next use refetches. Returns how many
    /// sources were flushed (0: no such source).
    pub fn flush(&self, url: Option<&str>) -> usize {
        let targets: Vec<Arc<RemoteJwks>> = match url {
            None => self.all(),
            Some(u) => {
                let exact: Vec<_> = Map::ALL
                    .into_iter()
                    .filter_map(|d| self.map(d).get(u).map(|e| e.value().clone()))
                    .collect();
                if exact.is_empty() {
                    self.all().into_iter().filter(|s| s.label() == u).collect()
                } else {
                    exact
                }
            }
        };
        for src in &targets {
            src.flush();
        }
        targets.len()
    }

    /// The status of every source, sorted by label.
    pub fn sources(&self) -> Vec<SourceStatus> {
        let mut out: Vec<SourceStatus> = self.all().iter().map(|s| s.status()).collect();
        out.sort_by(|a, b| a.source.cmp(&b.source));
        out
    }

    /// Number of sources.
    pub fn len(&self) -> usize {
        self.jwks.len() + self.discovery.len() + self.signing.len()
    }

    fn len_i64(&self) -> i64 {
        i64::try_from(self.len()).unwrap_or(i64::MAX)
    }

    /// True when no source exists.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when every prefetched source has a usable set (for `/readyz`).
    pub fn is_ready(&self) -> bool {
        self.all().iter().all(|s| s.is_ready())
    }

    fn all(&self) -> Vec<Arc<RemoteJwks>> {
        self.jwks
            .iter()
            .chain(self.discovery.iter())
            .chain(self.signing.iter())
            .map(|e| e.value().clone())
            .collect()
    }

    /// Fetches every source that is due (new prefetched sources, refresh time reached, retry
    /// backoff over), [`REFRESH_CONCURRENCY`] at a time, and updates the age gauges. Returns
    /// when those fetches are done (each is bounded by its `timeout`). Call it from the
    /// maintenance loop every 100 ms–1 s, inside a tokio runtime.
    pub async fn refresh_due(&self) {
        let now = Instant::now();
        let gauges = {
            let mut at = self
                .gauges_at
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let stale = at.is_none_or(|t| now.saturating_duration_since(t) >= GAUGE_INTERVAL);
            if stale {
                *at = Some(now);
            }
            stale
        };
        let mut due = Vec::new();
        for src in self.all() {
            if gauges {
                src.update_gauges(now);
            }
            if src.is_due(now) {
                due.push(src);
            }
        }
        let mut pending = due.into_iter();
        let mut running = tokio::task::JoinSet::new();
        loop {
            while running.len() < REFRESH_CONCURRENCY {
                let Some(src) = pending.next() else { break };
                running.spawn(async move {
                    // Failures are logged, counted and scheduled for retry by the source.
                    let _ = src.refresh().await;
                });
            }
            if running.join_next().await.is_none() {
                break;
            }
        }
    }
}
