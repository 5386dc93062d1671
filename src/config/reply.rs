//! `errors = {...}`: how the gateway's own answers are rendered (compiled into `reply`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How an error is rendered: every field optional; unset fields keep the default.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ErrorOverrideConfig {
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub content_type: Option<String>,
    /// Body template; `{status}`, `{code}` and `{message}` are replaced (JSON-escaped).
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Overrides for one error code, e.g. `[routes.errors.codes.no_route]`.
    #[serde(default)]
    pub codes: BTreeMap<String, ErrorOverrideConfig>,
}
