//! The operator's contract: the TOML model, deserialized with serde and nothing else.
//!
//! Unknown keys are rejected everywhere (`deny_unknown_fields`). Nothing outside `config/` and
//! `compile.rs` depends on these types: the request path only sees the compiled [`crate::Snapshot`].
//! Deserialization errors carry the TOML path (e.g. `routes[2].match.path_regex`) through
//! `serde_path_to_error`.

mod policy;

pub use policy::{
    ConditionConfig, CorsConfig, DenyConfig, EnabledConfig, ErrorOverrideConfig, HeaderOpsConfig,
    HeadersConfig, InlinePolicy, PolicyBody, PolicyEntry,
};

use crate::error::ConfigError;
use crate::units::HumanDuration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub front_door: FrontDoorConfig,
    #[serde(default)]
    pub access_log: AccessLogConfig,
    #[serde(default)]
    pub listeners: Vec<ListenerConfig>,
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// Named policies, referenced from routes as `{ use = "name" }`.
    #[serde(default)]
    pub policies: BTreeMap<String, PolicyEntry>,
    /// Policies run on every route, before the route's own.
    #[serde(default)]
    pub global_policies: Vec<PolicyEntry>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Default error response customisation for every route.
    #[serde(default)]
    pub errors: Option<ErrorOverrideConfig>,
    /// The OAuth2 token service (endpoints on the data-plane listeners).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_service: Option<crate::token::TokenServiceConfig>,
}

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

/// What every request passes before routing: the canonical path and the request-head limits.
/// Reloadable, except `h2_max_concurrent_streams` and the HTTP/2 header-list size (taken from
/// `max_head_size`), which are set when a connection's HTTP/2 session starts.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FrontDoorConfig {
    /// Merge repeated slashes in the path (nginx and Envoy `merge_slashes`).
    pub merge_slashes: bool,
    /// `%2F` and `%5C` in the path: "reject" (400), "keep" (stay encoded) or "decode" (to `/`).
    pub escaped_slash: SlashActionConfig,
    /// `;` in a path segment: "reject" (400), "keep", or "strip" (`/a;x/b` is `/a/b`).
    pub path_parameters: PathParamsConfig,
    /// The whole request head (request line and fields); beyond it 431.
    pub max_head_size: crate::units::HumanSize,
    /// Header fields in one request; beyond it 431.
    pub max_headers: usize,
    /// The request line; beyond it 414.
    pub max_request_line: crate::units::HumanSize,
    /// From the first byte of a request to the end of its head; then 408 and close.
    pub header_timeout: HumanDuration,
    /// A keep-alive connection waiting for its next request is closed after this.
    pub idle_timeout: HumanDuration,
    /// Longest wait for the next piece of a request body.
    pub body_timeout: HumanDuration,
    /// Requests on one HTTP/1 connection before it is closed (nginx `keepalive_requests`).
    pub max_requests_per_connection: u32,
    /// Concurrent streams on one HTTP/2 connection.
    pub h2_max_concurrent_streams: u32,
}

impl Default for FrontDoorConfig {
    fn default() -> Self {
        let l = crate::front::head::HeadLimits::default();
        FrontDoorConfig {
            merge_slashes: true,
            escaped_slash: SlashActionConfig::Reject,
            path_parameters: PathParamsConfig::Reject,
            max_head_size: crate::units::HumanSize(l.max_head_size as u64),
            max_headers: l.max_headers,
            max_request_line: crate::units::HumanSize(l.max_request_line as u64),
            header_timeout: HumanDuration(l.header_timeout),
            idle_timeout: HumanDuration(l.idle_timeout),
            body_timeout: HumanDuration(l.body_timeout),
            max_requests_per_connection: 1000,
            h2_max_concurrent_streams: 100,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SlashActionConfig {
    Reject,
    Keep,
    Decode,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PathParamsConfig {
    Reject,
    Keep,
    Strip,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// The private admin listener. Loopback by default; `enabled = false` turns it off.
    pub listen: String,
    pub enabled: bool,
    /// Bearer tokens, as `"sha256:<64 hex>"` (`tokengate admin-token` makes one). Empty: no
    /// authentication, allowed only on a loopback `listen`.
    pub tokens: Vec<String>,
    /// Host header values accepted (port ignored). Empty: `localhost`, `127.0.0.1`, `[::1]`,
    /// `::1` and the host of `listen`.
    pub allowed_hosts: Vec<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: "127.0.0.1:9180".into(),
            enabled: true,
            tokens: Vec::new(),
            allowed_hosts: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AccessLogConfig {
    pub enabled: bool,
    /// "-" for stdout, or a file path (appended).
    pub path: String,
}

impl Default for AccessLogConfig {
    fn default() -> Self {
        AccessLogConfig {
            enabled: true,
            path: "-".into(),
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
    HumanDuration(std::time::Duration::from_secs(2))
}
fn d_read_timeout() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(30))
}
fn d_idle_timeout() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(60))
}
pub(crate) fn d_true() -> bool {
    true
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
    HumanDuration(std::time::Duration::from_secs(5))
}
fn d_hc_timeout() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(1))
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

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub name: String,
    #[serde(default, rename = "match")]
    pub matcher: MatchConfig,
    /// Proxy to this upstream pool...
    #[serde(default)]
    pub upstream: Option<String>,
    /// ...after removing the matched `path_prefix` from the path...
    #[serde(default)]
    pub strip_prefix: bool,
    /// ...or after replacing the path with this one.
    #[serde(default)]
    pub rewrite_path: Option<String>,
    /// Or answer at the gateway.
    #[serde(default)]
    pub respond: Option<DirectResponseConfig>,
    /// Or serve this endpoint of `[token_service]` (`token`, `introspect`, `revoke`, `jwks`,
    /// `discovery`, `openid_configuration`) with this route's policies. Its path comes from
    /// `token_service.paths`; `match` may narrow it by host, method or header. Without such a
    /// route, each endpoint gets a generated one (global policies only) ahead of all routes.
    #[serde(default)]
    pub token_endpoint: Option<String>,
    /// Let `Upgrade` requests (WebSocket) through to the upstream. Off: the `Upgrade` header is
    /// removed and the request proxied as an ordinary one, since nothing is checked once a
    /// connection is tunnelled.
    #[serde(default)]
    pub websocket: bool,
    #[serde(default)]
    pub policies: Vec<PolicyEntry>,
    /// Error response customisation for this route (policy overrides win).
    #[serde(default)]
    pub errors: Option<ErrorOverrideConfig>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// Exact host (`api.example.com`) or a leading wildcard (`*.example.com`); port ignored.
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub path_exact: Option<String>,
    #[serde(default)]
    pub path_prefix: Option<String>,
    #[serde(default)]
    pub path_regex: Option<String>,
    #[serde(default)]
    pub methods: Vec<String>,
    /// Header name -> exact value ("*" means: present with any value).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DirectResponseConfig {
    #[serde(default = "d_status")]
    pub status: u16,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: String,
}

fn d_status() -> u16 {
    200
}

/// Read and parse a config file. The returned hash identifies the exact bytes loaded.
pub fn load_file(path: &std::path::Path) -> Result<(RawConfig, String), Vec<ConfigError>> {
    let bytes = std::fs::read(path).map_err(|e| {
        vec![ConfigError::new(
            "",
            format!("cannot read {}: {e}", path.display()),
        )]
    })?;
    let text = String::from_utf8(bytes)
        .map_err(|_| vec![ConfigError::new("", "the file is not UTF-8")])?;
    let raw = parse_str(&text)?;
    Ok((raw, content_hash(text.as_bytes())))
}

/// Parse TOML text into the raw model, with the TOML path of the first error.
pub fn parse_str(text: &str) -> Result<RawConfig, Vec<ConfigError>> {
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let inner = e.into_inner();
        let msg = inner.message().to_string();
        let loc = inner
            .span()
            .map(|s| {
                let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                format!(" (line {line})")
            })
            .unwrap_or_default();
        vec![ConfigError::new(path, format!("{msg}{loc}"))]
    })
}

/// SHA-256 of the config bytes, hex, as shown by `/admin/config/status`.
pub fn content_hash(bytes: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}
