//! The operator's contract: the TOML model, deserialized with serde and nothing else.
//!
//! One file per area, named like the runtime module it configures (`config/front.rs` for
//! `front`, `config/policy/jwt_verify.rs` for `policy/jwt_verify`). This module sits at layer 1:
//! it imports only the leaves (`units`, `error`), never a runtime module, so a config type that
//! needs a runtime notion gets a pure copy here or in a leaf.
//!
//! Unknown keys are rejected everywhere (`deny_unknown_fields`). Each runtime module compiles its
//! own section (`FrontDoor::compile`, `JwtVerify::compile`…); the request path only sees the
//! compiled [`crate::Snapshot`].
//! Deserialization errors carry the TOML path (e.g. `routes[2].match.path_regex`) through
//! `serde_path_to_error`.

pub mod accesslog;
pub mod admin;
pub mod expr;
pub mod front;
pub mod group;
pub mod identity;
pub mod keys;
pub mod policy;
pub mod reply;
pub mod route;
pub mod server;
pub mod store;
pub mod token;
pub mod upstream;

pub use accesslog::AccessLogConfig;
pub use admin::AdminConfig;
pub use expr::ConditionConfig;
pub use front::{FrontDoorConfig, PathParamsConfig, SlashActionConfig};
pub use group::{AttachConfig, PolicyGroupConfig};
pub use policy::{
    CorsConfig, DenyConfig, EnabledConfig, HeaderOpsConfig, HeadersConfig, InlinePolicy,
    PolicyBody, PolicyEntry,
};
pub use reply::ErrorOverrideConfig;
pub use route::{DirectResponseConfig, MatchConfig, RouteConfig};
pub use server::{ListenerConfig, ServerConfig, TlsConfig};
pub use upstream::{
    HealthCheckConfig, HealthCheckKind, SelectionConfig, TargetConfig, UpstreamConfig,
};

use crate::error::ConfigError;
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
    /// Named sets of policies, referenced as `{ group = "name" }` or attached by selector.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub policy_groups: BTreeMap<String, PolicyGroupConfig>,
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
    pub token_service: Option<token::TokenServiceConfig>,
}

pub(crate) fn d_true() -> bool {
    true
}

/// The most characters a `description` or `display_name` may have.
pub const FREE_TEXT_MAX: usize = 1024;

/// Operator's free text (`description`, `display_name`): shown by `/admin/config`,
/// `/admin/usage` and `check --usage`, never interpreted; at most [`FREE_TEXT_MAX`] characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct FreeText(String);

impl FreeText {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for FreeText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let n = s.chars().count();
        if n > FREE_TEXT_MAX {
            return Err(serde::de::Error::custom(format!(
                "at most {FREE_TEXT_MAX} characters (this one has {n})"
            )));
        }
        Ok(FreeText(s))
    }
}

/// Read and parse a config file: the parsed config, the hash of the exact bytes loaded, and the
/// text.
pub fn load_file(path: &std::path::Path) -> Result<(RawConfig, String, String), Vec<ConfigError>> {
    let bytes = std::fs::read(path).map_err(|e| {
        vec![ConfigError::new(
            "",
            format!("cannot read {}: {e}", path.display()),
        )]
    })?;
    let text = String::from_utf8(bytes)
        .map_err(|_| vec![ConfigError::new("", "the file is not UTF-8")])?;
    let raw = parse_str(&text)?;
    let hash = content_hash(text.as_bytes());
    Ok((raw, hash, text))
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
