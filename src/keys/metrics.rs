//! Prometheus metrics of the key cache. The `source` label is the URL's `host[:port]/path`,
//! never its query string; label values of an evicted source are removed, so the series count
//! is bounded by the cache capacity.

use prometheus::{GaugeVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use super::KeyError;

#[derive(Clone)]
pub(crate) struct Metrics {
    /// `tokengate_jwks_fetches_total{source,result}`: result is `ok` or a [`KeyError`] code.
    pub fetches: IntCounterVec,
    /// `tokengate_jwks_keys{source}`: keys in the current set.
    pub keys: IntGaugeVec,
    /// `tokengate_jwks_age_seconds{source}`: age of the current set (updated by
    /// `refresh_due`).
    pub age: GaugeVec,
    /// `tokengate_jwks_usable{source}`: 1 while a set is served (fresh or stale), else 0.
    pub usable: IntGaugeVec,
    /// `tokengate_jwks_unknown_kid_total{source,action}`: action is `fetch` or `cooldown`.
    pub unknown_kid: IntCounterVec,
    /// `tokengate_jwks_sources`: sources in the cache.
    pub sources: IntGauge,
}

impl Metrics {
    pub fn new(registry: &Registry) -> Result<Metrics, prometheus::Error> {
        let m = Metrics {
            fetches: IntCounterVec::new(
                Opts::new(
                    "tokengate_jwks_fetches_total",
                    "Remote JWKS fetches by source and result",
                ),
                &["source", "result"],
            )?,
            keys: IntGaugeVec::new(
                Opts::new("tokengate_jwks_keys", "Keys in the cached JWK Set"),
                &["source"],
            )?,
            age: GaugeVec::new(
                Opts::new(
                    "tokengate_jwks_age_seconds",
                    "Seconds since the cached JWK Set was fetched",
                ),
                &["source"],
            )?,
            usable: IntGaugeVec::new(
                Opts::new(
                    "tokengate_jwks_usable",
                    "1 while the source has a usable (fresh or stale) JWK Set",
                ),
                &["source"],
            )?,
            unknown_kid: IntCounterVec::new(
                Opts::new(
                    "tokengate_jwks_unknown_kid_total",
                    "Unknown-kid refreshes: fetched or answered from cache (cooldown)",
                ),
                &["source", "action"],
            )?,
            sources: IntGauge::new("tokengate_jwks_sources", "Remote key sources cached")?,
        };
        registry.register(Box::new(m.fetches.clone()))?;
        registry.register(Box::new(m.keys.clone()))?;
        registry.register(Box::new(m.age.clone()))?;
        registry.register(Box::new(m.usable.clone()))?;
        registry.register(Box::new(m.unknown_kid.clone()))?;
        registry.register(Box::new(m.sources.clone()))?;
        Ok(m)
    }

    /// Drops every series of `label` (an evicted source).
    pub fn forget(&self, label: &str) {
        for result in KeyError::CODES.iter().chain(["ok"].iter()) {
            let _ = self.fetches.remove_label_values(&[label, result]);
        }
        for action in ["fetch", "cooldown"] {
            let _ = self.unknown_kid.remove_label_values(&[label, action]);
        }
        let _ = self.keys.remove_label_values(&[label]);
        let _ = self.age.remove_label_values(&[label]);
        let _ = self.usable.remove_label_values(&[label]);
    }
}
