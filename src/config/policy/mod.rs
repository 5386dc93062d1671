//! Policy entries in the config: `{ use = "name" }` for a named policy, `{ group = "name" }` for
//! a `[policy_groups.NAME]`, or an inline table whose `type` selects the policy body. Every entry
//! is a table whose first key says what it is, so an error keeps the entry's TOML path. The
//! common keys (`enabled`, `when`, `errors`, `continue_on_error`, `on_error`, `display_name`,
//! `description`) are read here for every policy type (the compiler refuses those a type cannot
//! use); the body keys are checked by the policy's own `deny_unknown_fields` struct.

pub mod cors;
pub mod deny;
pub mod headers;
pub mod jwt_auth;
pub mod jwt_generate;
pub mod jwt_verify;
pub mod token_source;

pub use cors::CorsConfig;
pub use deny::DenyConfig;
pub use headers::{HeaderOpsConfig, HeadersConfig};

use super::{ConditionConfig, ErrorOverrideConfig, FreeText};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

/// One entry of a policy list.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyEntry {
    /// A reference to `[policies.NAME]`.
    Use(String),
    /// A reference to `[policy_groups.NAME]`, expanded in place.
    Group(String),
    Inline(Box<InlinePolicy>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct InlinePolicy {
    pub enabled: EnabledConfig,
    pub when: Option<ConditionConfig>,
    pub errors: Option<ErrorOverrideConfig>,
    /// A failure lets the request go on; the failure is recorded in variables.
    pub continue_on_error: bool,
    /// Per error code, what runs instead of the denial.
    pub on_error: BTreeMap<String, OnErrorConfig>,
    pub display_name: Option<FreeText>,
    pub description: Option<FreeText>,
    pub body: PolicyBody,
    /// The table as written, for `GET /admin/config` (redacted there).
    pub original: toml::Table,
}

/// `on_error.CODE = { use = "NAME" }`: when the policy fails with CODE, `[policies.NAME]` runs
/// in its place (a per-code answer is `errors.codes.CODE`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OnErrorConfig {
    #[serde(rename = "use")]
    pub use_policy: String,
}

/// The policy types.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyBody {
    Headers(HeadersConfig),
    Cors(CorsConfig),
    JwtVerify(Box<jwt_verify::JwtVerifyConfig>),
    JwtGenerate(Box<jwt_generate::JwtGenerateConfig>),
    JwtAuth(Box<jwt_auth::JwtAuthConfig>),
    Deny(DenyConfig),
}

const POLICY_TYPES: &[&str] = &[
    "headers",
    "cors",
    "jwt_verify",
    "jwt_generate",
    "jwt_auth",
    "deny",
];

/// `enabled = true | false | "shadow"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EnabledConfig {
    #[default]
    On,
    Off,
    /// Evaluate and record the decision, never enforce it.
    Shadow,
}

impl<'de> Deserialize<'de> for EnabledConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match toml::Value::deserialize(d)? {
            toml::Value::Boolean(true) => Ok(EnabledConfig::On),
            toml::Value::Boolean(false) => Ok(EnabledConfig::Off),
            toml::Value::String(s) if s == "shadow" => Ok(EnabledConfig::Shadow),
            _ => Err(serde::de::Error::custom(
                "expected true, false or \"shadow\"",
            )),
        }
    }
}

fn body_from<T: serde::de::DeserializeOwned>(table: toml::Table) -> Result<T, String> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.into_inner().to_string();
        let msg = msg.trim_end();
        if path == "." {
            msg.to_string()
        } else {
            format!("{path}: {msg}")
        }
    })
}

fn take<T: serde::de::DeserializeOwned>(
    t: &mut toml::Table,
    key: &str,
) -> Result<Option<T>, String> {
    match t.remove(key) {
        None => Ok(None),
        Some(v) => body_from_value(v)
            .map(Some)
            .map_err(|m| format!("{key}: {m}")),
    }
}

fn body_from_value<T: serde::de::DeserializeOwned>(v: toml::Value) -> Result<T, String> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.into_inner().to_string();
        if path == "." {
            msg.trim_end().to_string()
        } else {
            format!("{path}: {}", msg.trim_end())
        }
    })
}

impl PolicyEntry {
    /// A `{ use = "name" }` or `{ group = "name" }` entry: the name, and no other key.
    fn reference(mut t: toml::Table, key: &str, table: &str) -> Result<String, String> {
        let name = t
            .remove(key)
            .and_then(|v| v.as_str().map(str::to_string))
            .ok_or_else(|| format!("{key}: expected the name of a [{table}.NAME] table"))?;
        match t.keys().next() {
            Some(k) => Err(format!(
                "{k}: a `{key}` entry takes no other keys (configure the [{table}.NAME] table instead)"
            )),
            None => Ok(name),
        }
    }

    fn from_table(mut t: toml::Table) -> Result<PolicyEntry, String> {
        let original = t.clone();
        if t.contains_key("use") {
            return Self::reference(t, "use", "policies").map(PolicyEntry::Use);
        }
        if t.contains_key("group") {
            return Self::reference(t, "group", "policy_groups").map(PolicyEntry::Group);
        }
        let kind = match t.remove("type") {
            Some(toml::Value::String(s)) => s,
            Some(_) => return Err("type: expected a string".into()),
            None => {
                return Err(format!(
                    "missing `type` (one of {}), `use` or `group`",
                    POLICY_TYPES.join(", ")
                ))
            }
        };
        let enabled = take(&mut t, "enabled")?.unwrap_or_default();
        let when = take(&mut t, "when")?;
        let errors = take(&mut t, "errors")?;
        let continue_on_error = take(&mut t, "continue_on_error")?.unwrap_or(false);
        let on_error = take(&mut t, "on_error")?.unwrap_or_default();
        let display_name = take(&mut t, "display_name")?;
        let description = take(&mut t, "description")?;
        let body = match kind.as_str() {
            "headers" => PolicyBody::Headers(body_from(t)?),
            "cors" => PolicyBody::Cors(body_from(t)?),
            "jwt_verify" => PolicyBody::JwtVerify(Box::new(body_from(t)?)),
            "jwt_generate" => PolicyBody::JwtGenerate(Box::new(body_from(t)?)),
            "jwt_auth" => PolicyBody::JwtAuth(Box::new(body_from(t)?)),
            "deny" => PolicyBody::Deny(body_from(t)?),
            other => {
                return Err(format!(
                    "type: unknown policy type {other:?}, expected one of {}",
                    POLICY_TYPES.join(", ")
                ))
            }
        };
        Ok(PolicyEntry::Inline(Box::new(InlinePolicy {
            enabled,
            when,
            errors,
            continue_on_error,
            on_error,
            display_name,
            description,
            body,
            original,
        })))
    }
}

impl<'de> Deserialize<'de> for PolicyEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let t = toml::Table::deserialize(d)?;
        PolicyEntry::from_table(t).map_err(serde::de::Error::custom)
    }
}

impl Serialize for PolicyEntry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PolicyEntry::Use(name) => {
                let mut t = toml::Table::new();
                t.insert("use".into(), toml::Value::String(name.clone()));
                t.serialize(s)
            }
            PolicyEntry::Group(name) => {
                let mut t = toml::Table::new();
                t.insert("group".into(), toml::Value::String(name.clone()));
                t.serialize(s)
            }
            PolicyEntry::Inline(p) => p.original.serialize(s),
        }
    }
}

impl PolicyBody {
    /// The `type` this body was written with.
    pub fn type_name(&self) -> &'static str {
        match self {
            PolicyBody::Headers(_) => "headers",
            PolicyBody::Cors(_) => "cors",
            PolicyBody::JwtVerify(_) => "jwt_verify",
            PolicyBody::JwtGenerate(_) => "jwt_generate",
            PolicyBody::JwtAuth(_) => "jwt_auth",
            PolicyBody::Deny(_) => "deny",
        }
    }

    /// Request headers this policy may set upstream, and the request headers it reads a
    /// token from. The route's front door removes the first minus the second from every
    /// client request, in every spelling, whatever the policy then does (skipped by `when`,
    /// disabled, shadow, denied).
    pub fn upstream_headers(&self) -> (Vec<String>, Vec<String>) {
        let mut sets = Vec::new();
        let mut reads = Vec::new();
        match self {
            PolicyBody::Headers(h) => sets.extend(h.request.set.keys().cloned()),
            PolicyBody::Cors(_) | PolicyBody::Deny(_) => {}
            PolicyBody::JwtVerify(v) => {
                sets.extend(v.claims_to_headers.iter().map(|c| c.header.clone()));
                sets.extend(v.payload_header.iter().cloned());
                reads.extend(v.sources.iter().filter_map(|s| s.header.clone()));
            }
            PolicyBody::JwtGenerate(g) => {
                let o = &g.output;
                let elsewhere = o.query.is_some()
                    || o.response_header.is_some()
                    || o.variable.is_some()
                    || o.request_body.is_some()
                    || o.response_body;
                match &o.header {
                    Some(h) => sets.push(h.clone()),
                    // The default output is `Authorization: Bearer`.
                    None if !elsewhere => sets.push("authorization".into()),
                    None => {}
                }
            }
            PolicyBody::JwtAuth(a) => {
                sets.extend([a.user_header.clone(), a.roles_header.clone()]);
                reads.push("authorization".into());
            }
        }
        sets.retain(|s| !s.is_empty());
        (sets, reads)
    }
}
