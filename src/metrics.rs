//! Prometheus metrics, all named `tokengate_*`, in a registry of our own (not the global one),
//! so several gateways in one process (the e2e tests) do not collide.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

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
