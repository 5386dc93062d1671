//! The `jwt_verify` policy's config (operator contract). Compiled by `mod.rs`.

use super::token_source::{default_sources, TokenSourceConfig};
use crate::units::{HumanDuration, HumanSize};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TokenForm {
    /// A signed JWT (JWS compact).
    Jws,
    /// An encrypted JWT whose plaintext is the claims (JWE compact).
    Jwe,
    /// Sign-then-encrypt: a JWE (cty JWT) around a JWS.
    Nested,
}

pub fn default_forms() -> Vec<TokenForm> {
    vec![TokenForm::Jws]
}

/// Key material: exactly one of the embedded forms, or a remote source.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// A JWK or a JWKS as inline JSON.
    #[serde(default)]
    pub jwks: Option<String>,
    /// A PEM key or certificate, inline.
    #[serde(default)]
    pub pem: Option<String>,
    /// A file holding a JWK, a JWKS or PEM.
    #[serde(default)]
    pub file: Option<String>,
    /// An HMAC (or dir/A*KW) secret, inline; prefer `secret_env` / `secret_file`.
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub secret_env: Option<String>,
    #[serde(default)]
    pub secret_file: Option<String>,
    /// How the text of `secret`, `secret_env` or `secret_file` encodes the key bytes.
    #[serde(default)]
    pub encoding: Option<SecretEncoding>,
    /// The password of an `ENCRYPTED PRIVATE KEY` (`pem` or `file`), from an environment
    /// variable or a file (a trailing newline is not part of it); never inline.
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default)]
    pub password_file: Option<String>,
    /// `kid` and `alg` given to PEM keys and secrets.
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub alg: Option<String>,
    /// A remote JWKS.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// An OIDC discovery document whose `jwks_uri` is used.
    #[serde(default)]
    pub discovery_url: Option<String>,
    /// A JWKS URL per client, rendered per request from request values or unverified claims
    /// (JWS only), e.g. `"https://${claims.iss}/jwks.json"`; used only when it matches one
    /// of `per_client_allow`.
    #[serde(default)]
    pub per_client_url: Option<String>,
    /// Globs the rendered URL must match, e.g. `"https://*.idp.example.com/jwks.json"`.
    #[serde(default)]
    pub per_client_allow: Vec<String>,
    /// A request variable holding a public JWK, JWKS or PEM key, e.g. `"claims.cnf.jwk"` of a
    /// token verified earlier; parsed once per distinct value, size-bounded.
    #[serde(default)]
    pub from: Option<String>,
    /// Refresh, staleness, size and time bounds of remote sources.
    #[serde(default)]
    pub remote: Option<crate::config::keys::JwksSettings>,
}

/// How a configured secret's text becomes key bytes.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SecretEncoding {
    /// The UTF-8 bytes of the text as is.
    #[default]
    Utf8,
    /// Hex digits of either case; whitespace is ignored.
    Hex,
    /// Standard base64, padded or not; whitespace is ignored.
    Base64,
    /// URL-safe base64, padded or not; whitespace is ignored.
    Base64url,
}

/// `subject = { equals = "..." }`, `{ prefix = "..." }` or `{ regex = "..." }`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SubjectConfig {
    #[serde(default)]
    pub equals: Option<String>,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub regex: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AclRuleConfig {
    /// The identity must be one of these.
    #[serde(default)]
    pub identities: Vec<String>,
    /// At least one of these roles.
    #[serde(default)]
    pub roles: Vec<String>,
    /// All of these scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AclConfig {
    #[serde(default)]
    pub identities: Vec<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The claim holding roles (array or space-separated string).
    #[serde(default = "d_roles_claim")]
    pub roles_claim: String,
    /// The claim holding scopes (`scope` space-separated, or an array such as `scp`).
    #[serde(default = "d_scope_claim")]
    pub scope_claim: String,
    /// Per HTTP method: replaces the rule above for that method.
    #[serde(default)]
    pub methods: BTreeMap<String, AclRuleConfig>,
}

fn d_roles_claim() -> String {
    "roles".into()
}
fn d_scope_claim() -> String {
    "scope".into()
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HeaderFormat {
    /// Arrays joined with ", "; scalars as text; objects as JSON.
    #[default]
    Csv,
    /// The claim as JSON.
    Json,
    /// One header per array element.
    Repeat,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClaimHeaderConfig {
    /// Dotted claim path.
    pub claim: String,
    pub header: String,
    #[serde(default)]
    pub format: HeaderFormat,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    #[serde(default = "crate::config::d_true")]
    pub enabled: bool,
    #[serde(default = "d_capacity")]
    pub capacity: usize,
    /// Upper bound on how long a verification result is reused (never past `exp`).
    #[serde(default = "d_ttl")]
    pub ttl: HumanDuration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: true,
            capacity: d_capacity(),
            ttl: d_ttl(),
        }
    }
}

fn d_capacity() -> usize {
    10_000
}
fn d_ttl() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(300))
}
fn d_max_token() -> HumanSize {
    HumanSize(8 * 1024)
}
fn d_skew() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(30))
}
fn d_identity() -> String {
    "sub".into()
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JwtVerifyConfig {
    #[serde(default = "default_sources")]
    pub sources: Vec<TokenSourceConfig>,
    #[serde(default = "default_forms")]
    pub forms: Vec<TokenForm>,
    /// JWS algorithms accepted (for `jws` and `nested`).
    #[serde(default)]
    pub algorithms: Vec<String>,
    /// JWE key management algorithms accepted (for `jwe` and `nested`).
    #[serde(default)]
    pub key_algorithms: Vec<String>,
    /// JWE content encryption algorithms accepted.
    #[serde(default)]
    pub encryptions: Vec<String>,
    /// Accept `zip: DEF` in JWEs (decompressed size is capped).
    #[serde(default)]
    pub allow_zip: bool,
    /// The `jwe` form with a public-key key management algorithm (RSA-OAEP*, RSA1_5,
    /// ECDH-ES*) authenticates nobody: anyone holding the public key makes tokens it accepts.
    /// Such a config is refused unless this acknowledgement is set.
    #[serde(default)]
    pub allow_unsigned_jwe: bool,
    #[serde(default = "d_max_token")]
    pub max_token_size: HumanSize,
    /// Signature verification keys.
    #[serde(default)]
    pub keys: KeysConfig,
    /// JWE decryption keys (private keys or secrets).
    #[serde(default)]
    pub decryption_keys: KeysConfig,
    #[serde(default)]
    pub issuers: Vec<String>,
    /// Any-of: the token's `aud` (string or array) must contain one.
    #[serde(default)]
    pub audiences: Vec<String>,
    #[serde(default)]
    pub subject: Option<SubjectConfig>,
    #[serde(default)]
    pub required_claims: Vec<String>,
    #[serde(default)]
    pub prohibited_claims: Vec<String>,
    /// Exact match on dotted paths: a value, or a list meaning "one of".
    #[serde(default)]
    pub claims: BTreeMap<String, toml::Value>,
    /// Membership: the claim (array, or space-separated string such as `scope`) must contain
    /// every listed value.
    #[serde(default)]
    pub contains: BTreeMap<String, Vec<String>>,
    #[serde(default = "d_skew")]
    pub clock_skew: HumanDuration,
    #[serde(default = "crate::config::d_true")]
    pub require_exp: bool,
    /// Longest accepted `exp - iat`.
    #[serde(default)]
    pub max_lifetime: Option<HumanDuration>,
    /// Header parameters this policy processes: a token whose `crit` lists only these (each
    /// present in its header) is accepted; any other `crit` is refused.
    #[serde(default)]
    pub known_headers: Vec<String>,
    /// Refuse a token without `kid` when the key set holds more than one key.
    #[serde(default)]
    pub require_kid: bool,
    /// The header `typ` required, e.g. "at+jwt".
    #[serde(default)]
    pub typ: Option<String>,
    /// The claim that identifies the client (`sub`, `client_id`, `iss`, ...).
    #[serde(default = "d_identity")]
    pub identity_claim: String,
    #[serde(default)]
    pub acl: Option<AclConfig>,
    #[serde(default)]
    pub claims_to_headers: Vec<ClaimHeaderConfig>,
    /// Send the whole verified payload upstream in this header (base64url JSON).
    #[serde(default)]
    pub payload_header: Option<String>,
    /// Keep the original token in the request sent upstream (false strips it).
    #[serde(default = "crate::config::d_true")]
    pub forward_token: bool,
    #[serde(default)]
    pub cache: CacheConfig,
    /// The `realm` of the WWW-Authenticate challenge.
    #[serde(default)]
    pub realm: Option<String>,
}
