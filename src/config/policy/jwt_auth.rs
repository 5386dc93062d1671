//! The `jwt_auth` policy: tokens this gateway's token service issued.

use super::token_source::{default_sources, TokenSourceConfig};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Every one of these scopes is needed.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// One of these roles is needed.
    #[serde(default)]
    pub roles: Vec<String>,
    /// The token's client_id must be one of these.
    #[serde(default)]
    pub clients: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JwtAuthConfig {
    /// Where the token is looked for, in order, spelled as `jwt_verify`'s (default:
    /// `Authorization: Bearer`). A query source is read only when listed.
    #[serde(default = "default_sources")]
    pub sources: Vec<TokenSourceConfig>,
    /// The token's `aud` must contain one of these (empty: any audience).
    #[serde(default)]
    pub audiences: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub clients: Vec<String>,
    /// Rules for one method (`GET`, `POST`...), replacing the route-wide ones.
    #[serde(default)]
    pub methods: BTreeMap<String, RuleConfig>,
    /// Header carrying the token's subject upstream ("" = none).
    #[serde(default = "d_user_header")]
    pub user_header: String,
    /// Header carrying the roles, comma-separated ("" = none).
    #[serde(default = "d_roles_header")]
    pub roles_header: String,
    /// Remove the token from the request (every source: header, cookie, query, form field)
    /// before proxying.
    #[serde(default)]
    pub clear_authorization: bool,
    /// Refuse a token bound to another client IP.
    #[serde(default = "crate::config::d_true")]
    pub check_client_ip: bool,
    /// The realm of the Bearer challenge.
    #[serde(default)]
    pub realm: Option<String>,
}

fn d_user_header() -> String {
    "X-Authenticated-User".into()
}
fn d_roles_header() -> String {
    "X-Authenticated-UserRoles".into()
}
