//! `[upstreams.NAME]`: pools of targets, their timeouts and health checks.

use super::d_true;
use crate::units::HumanDuration;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum SelectionConfig {
    #[default]
    RoundRobin,
    Random,
    ConsistentHash,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum TargetConfig {
    Address(String),
    Weighted { address: String, weight: usize },
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `"host:port"` or `{ address = "host:port", weight = 2 }`.
    pub targets: Vec<TargetConfig>,
    #[serde(default)]
    pub selection: SelectionConfig,
    /// For `consistent_hash`: the request value hashed, e.g. `header.x-user-id` or `client_ip`.
    #[serde(default)]
    pub hash_key: Option<String>,
    #[serde(default = "d_connect_timeout")]
    pub connect_timeout: HumanDuration,
    #[serde(default = "d_read_timeout")]
    pub read_timeout: HumanDuration,
    #[serde(default = "d_read_timeout")]
    pub write_timeout: HumanDuration,
    /// How long an idle upstream connection is kept in the keepalive pool.
    #[serde(default = "d_idle_timeout")]
    pub idle_timeout: HumanDuration,
    /// Connect to the targets over TLS, with this SNI.
    #[serde(default)]
    pub tls: bool,
    #[serde(default)]
    pub sni: String,
    /// Send the client's Host header upstream (default) or the target address.
    #[serde(default = "d_true")]
    pub preserve_host: bool,
    #[serde(default)]
    pub health_check: Option<HealthCheckConfig>,
}

fn d_connect_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(2))
}
fn d_read_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
fn d_idle_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HealthCheckKind {
    Tcp,
    Http,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    pub kind: HealthCheckKind,
    #[serde(default = "d_hc_interval")]
    pub interval: HumanDuration,
    #[serde(default = "d_hc_timeout")]
    pub timeout: HumanDuration,
    /// Consecutive successes that mark a target healthy again.
    #[serde(default = "d_one")]
    pub healthy_threshold: usize,
    /// Consecutive failures that eject a target.
    #[serde(default = "d_one")]
    pub unhealthy_threshold: usize,
    /// HTTP checks: the path requested and the Host sent.
    #[serde(default = "d_hc_path")]
    pub path: String,
    #[serde(default = "d_hc_host")]
    pub host: String,
    /// HTTP checks: accepted status codes (default: any 2xx).
    #[serde(default)]
    pub expected_status: Vec<u16>,
}

fn d_hc_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(5))
}
fn d_hc_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(1))
}
fn d_one() -> usize {
    1
}
fn d_hc_path() -> String {
    "/".into()
}
fn d_hc_host() -> String {
    "localhost".into()
}
