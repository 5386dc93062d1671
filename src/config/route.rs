//! `[[routes]]`: what a request matches and where it goes.

use super::{ErrorOverrideConfig, FreeText, PolicyEntry};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<FreeText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<FreeText>,
    /// Labels that `[policy_groups.NAME] attach = { tags = [...] }` selects routes by.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
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
