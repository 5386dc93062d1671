//! Prometheus metrics, all named `tokengate_*`, in a registry of our own (not the global one),
//! so several gateways in one process (the e2e tests) do not collide.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::sync::OnceLock;

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub latency: HistogramVec,
    pub upstream_healthy: IntGaugeVec,
    pub reloads: IntCounterVec,
    pub config_errors: IntCounter,
    pub access_log_dropped: IntCounter,
    pub policy_decisions: IntCounterVec,
    /// Request heads refused before parsing (too large, too slow), by error code.
    pub front_door_refusals: IntCounterVec,
    /// Token endpoint requests by grant type, client and outcome (labels bounded by the
    /// token service: configured client ids and known grant names only).
    pub token_requests: IntCounterVec,
    /// Introspection and revocation requests by operation, client and outcome.
    pub token_operations: IntCounterVec,
    /// Handles for requests that matched no route (route label "").
    pub no_route: RouteMetrics,
}

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("tokengate_requests_total", "Requests by route and status"),
            &["route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "tokengate_request_duration_seconds",
                "Time from request start to the end of the response, by route",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["route"],
        )?;
        let upstream_healthy = IntGaugeVec::new(
            Opts::new(
                "tokengate_upstream_healthy",
                "1 when the target passes its health check",
            ),
            &["upstream", "target"],
        )?;
        let reloads = IntCounterVec::new(
            Opts::new("tokengate_config_reloads_total", "Config reloads by result"),
            &["result"],
        )?;
        let config_errors = IntCounter::new(
            "tokengate_config_errors_total",
            "Errors found in refused configs",
        )?;
        let access_log_dropped = IntCounter::new(
            "tokengate_access_log_dropped_total",
            "Access log lines dropped because the writer fell behind",
        )?;
        let policy_decisions = IntCounterVec::new(
            Opts::new(
                "tokengate_policy_decisions_total",
                "Policy decisions by route, policy, outcome code and mode (enforce or shadow)",
            ),
            &["route", "policy", "outcome", "mode"],
        )?;
        let front_door_refusals = IntCounterVec::new(
            Opts::new(
                "tokengate_front_door_refusals_total",
                "Request heads refused before parsing (size, request line, time), by error code",
            ),
            &["code"],
        )?;
        let token_requests = IntCounterVec::new(
            Opts::new(
                "tokengate_token_requests_total",
                "Token endpoint requests by grant type, client and outcome",
            ),
            &["grant_type", "client", "outcome"],
        )?;
        let token_operations = IntCounterVec::new(
            Opts::new(
                "tokengate_token_operations_total",
                "Introspection and revocation requests by operation, client and outcome",
            ),
            &["operation", "client", "outcome"],
        )?;
        registry.register(Box::new(token_requests.clone()))?;
        registry.register(Box::new(token_operations.clone()))?;
        registry.register(Box::new(front_door_refusals.clone()))?;
        registry.register(Box::new(policy_decisions.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(upstream_healthy.clone()))?;
        registry.register(Box::new(reloads.clone()))?;
        registry.register(Box::new(config_errors.clone()))?;
        registry.register(Box::new(access_log_dropped.clone()))?;
        Ok(Metrics {
            registry,
            requests,
            latency,
            upstream_healthy,
            reloads,
            config_errors,
            access_log_dropped,
            policy_decisions,
            front_door_refusals,
            token_requests,
            token_operations,
            no_route: RouteMetrics::default(),
        })
    }

    /// The registry, for subsystems that register their own `tokengate_*` metrics.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

/// How many distinct statuses a route keeps handles for; further ones are counted through the
/// label lookup. Routes answer with a handful of statuses (200, 304, 401, 404, 502...).
const STATUS_SLOTS: usize = 8;

/// A route's handles into `requests` and `latency`, each resolved on its first use.
/// `with_label_values` hashes the label values and takes the vector's lock on every call, and the
/// status label needs a formatted string; a handle is an `Arc` to the child's atomics. Children
/// are created on first use, so a route that served nothing shows no series and costs 16 bytes;
/// one that did holds a handle per status it answered, in slots claimed in order (lock-free: a
/// slot is claimed once, and a writer that loses the race for one moves to the next).
///
/// The handles belong to the `Metrics` they were first resolved from: a snapshot (and so a route)
/// is only ever served by the gateway state that compiled it.
#[derive(Default)]
pub struct RouteMetrics {
    latency: OnceLock<Histogram>,
    requests: OnceLock<Box<StatusSlots>>,
}

/// A status and its `requests` child, per slot.
type StatusSlots = [OnceLock<(u16, IntCounter)>; STATUS_SLOTS];

impl std::fmt::Debug for RouteMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteMetrics").finish_non_exhaustive()
    }
}

impl RouteMetrics {
    /// Count one finished request of `route` with `status` and record its duration.
    pub fn record(&self, m: &Metrics, route: &str, status: u16, seconds: f64) {
        self.latency
            .get_or_init(|| m.latency.with_label_values(&[route]))
            .observe(seconds);
        let child = || {
            m.requests
                .with_label_values(&[route, status.to_string().as_str()])
        };
        let slots = self.requests.get_or_init(Box::default);
        for slot in slots.iter() {
            let (s, c) = slot.get_or_init(|| (status, child()));
            if *s == status {
                c.inc();
                return;
            }
        }
        child().inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_handles_count_under_the_route_and_status_labels() {
        let m = Metrics::new().unwrap();
        let r = RouteMetrics::default();
        r.record(&m, "api", 200, 0.001);
        r.record(&m, "api", 200, 0.002);
        r.record(&m, "api", 404, 0.003);
        // 0: the client went away before any response.
        r.record(&m, "api", 0, 0.004);
        assert_eq!(m.requests.with_label_values(&["api", "200"]).get(), 2);
        assert_eq!(m.requests.with_label_values(&["api", "404"]).get(), 1);
        assert_eq!(m.requests.with_label_values(&["api", "0"]).get(), 1);
        assert_eq!(m.latency.with_label_values(&["api"]).get_sample_count(), 4);
    }

    #[test]
    fn statuses_beyond_the_slots_are_still_counted() {
        let m = Metrics::new().unwrap();
        let r = RouteMetrics::default();
        let statuses: Vec<u16> = (0..STATUS_SLOTS as u16 + 3).map(|i| 200 + i).collect();
        for s in statuses.iter().chain(statuses.iter()) {
            r.record(&m, "api", *s, 0.001);
        }
        for s in &statuses {
            let label = s.to_string();
            assert_eq!(
                m.requests.with_label_values(&["api", &label]).get(),
                2,
                "{s}"
            );
        }
    }
}
