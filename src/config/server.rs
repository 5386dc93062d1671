//! `[server]` and `[[listeners]]`: process settings, read once at start (a change needs a restart).

use crate::units::HumanDuration;
use serde::{Deserialize, Serialize};

/// Process-wide settings. Changing any of these needs a restart (reported on reload).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Worker threads of the data-plane service.
    pub threads: usize,
    /// Tokio work stealing between worker threads.
    pub work_stealing: bool,
    pub pid_file: String,
    pub upgrade_sock: String,
    /// Wait before starting to close listeners on SIGTERM.
    pub grace_period: HumanDuration,
    /// Longest time in-flight requests get to finish on shutdown or upgrade.
    pub graceful_shutdown_timeout: HumanDuration,
    /// Idle upstream connections kept for reuse (all pools together).
    pub upstream_keepalive_pool_size: usize,
    /// Peers whose X-Forwarded-For / Forwarded headers are believed. CIDRs or addresses.
    pub trusted_proxies: Vec<String>,
    /// How often the config file is checked for changes ("0s" disables polling).
    pub reload_poll_interval: HumanDuration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            threads: 1,
            // Measured: no work stealing + mimalloc was the fastest proxy variant (loadtest/).
            work_stealing: false,
            pid_file: "/tmp/tokengate.pid".into(),
            upgrade_sock: "/tmp/tokengate_upgrade.sock".into(),
            grace_period: HumanDuration(std::time::Duration::from_secs(0)),
            graceful_shutdown_timeout: HumanDuration(std::time::Duration::from_secs(5)),
            upstream_keepalive_pool_size: 128,
            trusted_proxies: Vec::new(),
            reload_poll_interval: HumanDuration(std::time::Duration::from_secs(2)),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    pub address: String,
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// HTTP/2: negotiated by ALPN with TLS, or cleartext h2c (prior knowledge) without.
    #[serde(default)]
    pub http2: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: String,
    pub key: String,
}
