//! Where a token policy (`jwt_verify`, `jwt_auth`) looks for the token: the `sources` list
//! both spell the same way.

use serde::{Deserialize, Serialize};

/// Where a token is looked for. Exactly one key per entry.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TokenSourceConfig {
    /// A header, e.g. `authorization` (with `prefix = "Bearer "`), or `x-api-token`.
    #[serde(default)]
    pub header: Option<String>,
    /// The prefix stripped from the header value (case-insensitive), e.g. "Bearer ".
    #[serde(default)]
    pub prefix: Option<String>,
    /// A cookie: the recommended place for browser clients, set by the application as
    /// `Secure; HttpOnly; SameSite=Strict` (or `Lax`) so scripts cannot read the token and it
    /// never travels in clear.
    #[serde(default)]
    pub cookie: Option<String>,
    /// A query parameter. Discouraged (RFC 9700 §4.3.2: tokens in URLs leak into logs and
    /// Referer headers); the gateway never logs query strings.
    #[serde(default)]
    pub query: Option<String>,
    /// A field of an `application/x-www-form-urlencoded` body (RFC 6750 §2.2); the body is
    /// buffered (64 KiB cap) when a policy of the route reads it.
    #[serde(default)]
    pub form: Option<String>,
}

pub fn default_sources() -> Vec<TokenSourceConfig> {
    vec![TokenSourceConfig {
        header: Some("authorization".into()),
        prefix: Some("Bearer ".into()),
        ..Default::default()
    }]
}
