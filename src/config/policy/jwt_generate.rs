//! The `jwt_generate` policy's config (operator contract). Compiled by `mod.rs`.

use super::jwt_verify::KeysConfig;
use crate::units::HumanDuration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The JSON type a request value is converted to.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    /// Text as is (the default for request values; claims keep their JSON type).
    #[default]
    Auto,
    String,
    Number,
    Boolean,
    /// Split on "," (or an array claim as is).
    Array,
    /// Parse the text as JSON (e.g. an object).
    Json,
}

/// A value from the request: `{ from = "header.x-user", type = "string", default = "anon" }`
/// or `{ template = "user:${header.x-client}", default = "user:none" }`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClaimFromConfig {
    /// One request value (keeps its JSON type, e.g. an array claim of a verified token).
    #[serde(default)]
    pub from: Option<String>,
    /// Text with `${...}` references; absent when any reference is.
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: ValueType,
    /// With `type = "array"`: the type of every element (`"1,2,3"` -> `[1,2,3]`).
    #[serde(default)]
    pub items: Option<ValueType>,
    /// Used when the value is absent or does not convert (any TOML value).
    #[serde(default)]
    pub default: Option<toml::Value>,
}

/// A claim: a request value (a table with `from` or `template`), or any other TOML value as
/// a literal.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(untagged)]
pub enum ClaimConfig {
    From(ClaimFromConfig),
    Literal(toml::Value),
}

/// A header member: text is a template (`"${query.tenant}"`); a table with `from` or
/// `template` is a typed request value; any other number, boolean, array or table is a
/// literal.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(untagged)]
pub enum HeaderConfig {
    Template(String),
    From(ClaimFromConfig),
    Literal(toml::Value),
}

/// Only a table naming `from` or `template` is a request value: an array or another table
/// is always a literal, whatever its members look like.
fn request_value(v: &toml::Value) -> bool {
    v.as_table()
        .is_some_and(|t| t.contains_key("from") || t.contains_key("template"))
}

impl<'de> Deserialize<'de> for ClaimConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = toml::Value::deserialize(d)?;
        if request_value(&v) {
            v.try_into()
                .map(ClaimConfig::From)
                .map_err(serde::de::Error::custom)
        } else {
            Ok(ClaimConfig::Literal(v))
        }
    }
}

impl<'de> Deserialize<'de> for HeaderConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match toml::Value::deserialize(d)? {
            toml::Value::String(s) => Ok(HeaderConfig::Template(s)),
            v if request_value(&v) => v
                .try_into()
                .map(HeaderConfig::From)
                .map_err(serde::de::Error::custom),
            v => Ok(HeaderConfig::Literal(v)),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EncryptConfig {
    /// The recipient's key: embedded (public key or secret), or a remote/per-client JWKS.
    pub key: KeysConfig,
    /// Pick this kid from the key set (a template, e.g. "${header.x-client-kid}").
    #[serde(default)]
    pub kid: Option<String>,
    pub key_algorithm: String,
    pub encryption: String,
    #[serde(default)]
    pub zip: bool,
    /// PBES2 only: the salt input length in bytes (default 16; 8 to 64).
    #[serde(default)]
    pub salt_length: Option<usize>,
    /// PBES2 only: the PBKDF2 iteration count (default 8192), within what verifiers here
    /// accept (1000 to 10000).
    #[serde(default)]
    pub iterations: Option<u32>,
}

/// Where the token goes: exactly one.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// A request header sent upstream (default `authorization` with prefix "Bearer ").
    #[serde(default)]
    pub header: Option<String>,
    #[serde(default)]
    pub prefix: Option<String>,
    /// A query parameter of the request sent upstream.
    #[serde(default)]
    pub query: Option<String>,
    /// A header of the response to the client.
    #[serde(default)]
    pub response_header: Option<String>,
    /// A variable for later policies (`${var.NAME}`).
    #[serde(default)]
    pub variable: Option<String>,
    /// The request body sent upstream: `"replace"` (the body becomes the token) or a JSON
    /// pointer (`"/auth/token"`) set in the JSON body (created when the body is empty).
    #[serde(default)]
    pub request_body: Option<String>,
    /// The response body sent to the client becomes the token (`application/jwt`).
    #[serde(default)]
    pub response_body: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MintCacheConfig {
    #[serde(default = "crate::config::d_true")]
    pub enabled: bool,
    #[serde(default = "d_capacity")]
    pub capacity: usize,
    /// Reuse a token until this fraction of its lifetime has passed.
    #[serde(default = "d_refresh_at")]
    pub refresh_at: f64,
}

impl Default for MintCacheConfig {
    fn default() -> Self {
        MintCacheConfig {
            enabled: true,
            capacity: d_capacity(),
            refresh_at: d_refresh_at(),
        }
    }
}

fn d_capacity() -> usize {
    10_000
}
fn d_refresh_at() -> f64 {
    0.8
}
fn d_typ() -> Option<String> {
    Some("JWT".into())
}

/// A number of seconds or a text (a duration or a time).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum NumOrText {
    Seconds(i64),
    Text(String),
}

/// `issued_at = true | false | "-30s"`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum IssuedAtConfig {
    Flag(bool),
    Offset(String),
}

impl Default for IssuedAtConfig {
    fn default() -> Self {
        IssuedAtConfig::Flag(true)
    }
}

/// `expires_in = "15m"`, or `{ from = "header.x-ttl", max = "1h", default = "5m" }`: the
/// request value is a number of seconds or a duration, refused above `max`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum ExpiresInConfig {
    Fixed(HumanDuration),
    From(ExpiresFromConfig),
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExpiresFromConfig {
    pub from: String,
    pub max: HumanDuration,
    /// Used when the value is absent.
    #[serde(default)]
    pub default: Option<HumanDuration>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JwtGenerateConfig {
    /// The JWS algorithm. Omit it (with `encrypt`) for an encrypted, unsigned token.
    #[serde(default)]
    pub algorithm: Option<String>,
    /// The signing key (private key or secret).
    #[serde(default)]
    pub key: KeysConfig,
    /// The `kid` header; default: the key's kid.
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default = "d_typ")]
    pub typ: Option<String>,
    /// `cty` of the signed token.
    #[serde(default)]
    pub cty: Option<String>,
    /// Extra protected header parameters.
    #[serde(default)]
    pub header: BTreeMap<String, HeaderConfig>,
    /// Critical header parameters: names of `header` members the recipient must process
    /// (RFC 7515 §4.1.11), sent as the `crit` header of the signed token.
    #[serde(default)]
    pub crit: Vec<String>,
    /// Claims by name (a name with `${...}` is rendered per request): literals or request
    /// values.
    #[serde(default)]
    pub claims: BTreeMap<String, ClaimConfig>,
    /// A value holding a whole JSON object of claims (e.g. "header.x-claims"), merged first.
    #[serde(default)]
    pub claims_from: Option<String>,
    /// `exp` = now + this (`0` omits `exp`), or taken per request from a value, bounded.
    #[serde(default)]
    pub expires_in: Option<ExpiresInConfig>,
    /// `nbf`: an offset from now (`"30s"`, `"-5m"` to backdate; `0` omits `nbf`) or an
    /// absolute time (RFC 3339, RFC 1123, RFC 850 or asctime).
    #[serde(default)]
    pub not_before: Option<NumOrText>,
    /// `iat`: `true` (now), `false` (omitted) or an offset from now (`"-30s"`).
    #[serde(default)]
    pub issued_at: IssuedAtConfig,
    /// `jti`: "uuid" for a random one per token, or a template.
    #[serde(default)]
    pub jti: Option<String>,
    /// A missing value without a default omits the claim instead of failing the request.
    #[serde(default)]
    pub ignore_unresolved: bool,
    #[serde(default)]
    pub encrypt: Option<EncryptConfig>,
    #[serde(default)]
    pub output: OutputConfig,
    #[serde(default)]
    pub cache: MintCacheConfig,
}
