//! `[token_service]`: the serde model of the OAuth2 token service (unknown keys refused).
//! Compiled by [`super::TokenService::compile`]; nothing here is read at request time.

use super::store::StoreConfig;
use crate::units::HumanDuration;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TokenServiceConfig {
    /// The issuer identifier (RFC 8414): `iss` of every token, the only accepted `aud` of
    /// client assertions, and the base of the endpoint URLs in discovery.
    pub issuer: String,
    #[serde(default)]
    pub paths: PathsConfig,
    /// Refuse plain-HTTP requests to the endpoints (RFC 6749 §3.2). Turn off only behind a
    /// TLS-terminating proxy, or in tests.
    #[serde(default = "crate::config::d_true")]
    pub require_tls: bool,
    /// `jwt` (RFC 9068) or `opaque` (random, stored hashed). Per client overridable.
    #[serde(default)]
    pub token_format: TokenFormat,
    /// Access-token lifetime; "0s" = never expires (warned at load).
    #[serde(default = "d_access_lifetime")]
    pub access_token_lifetime: HumanDuration,
    /// Refresh-token lifetime; "0s" = never expires.
    #[serde(default = "d_refresh_lifetime")]
    pub refresh_token_lifetime: HumanDuration,
    /// Uses allowed per refresh-token family (the N+1th fails); unset = unlimited.
    #[serde(default)]
    pub refresh_max_uses: Option<u32>,
    /// JWS algorithm of issued JWTs (RS256 default; any asymmetric JWS alg of the engine).
    #[serde(default = "d_alg")]
    pub signing_alg: String,
    /// Where signing keys live (created 0700, key files 0600). Share it between gateways that
    /// serve one issuer.
    #[serde(default = "d_key_dir")]
    pub key_dir: String,
    /// Longest accepted lifetime (exp - now) of a private_key_jwt client assertion.
    #[serde(default = "d_assertion_lifetime")]
    pub client_assertion_max_lifetime: HumanDuration,
    /// Also accept the token endpoint URL as a client assertion `aud` (compatibility;
    /// draft-ietf-oauth-rfc7523bis wants the issuer only).
    #[serde(default = "crate::config::d_true")]
    pub accept_endpoint_audience: bool,
    #[serde(default)]
    pub backoff: BackoffConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
    #[serde(default)]
    pub users: Vec<UserConfig>,
    /// The identity source of the password grant (a name from `identity_sources`, or
    /// "static" for `users`). Default: "static" when users are configured.
    #[serde(default)]
    pub password_source: Option<String>,
    /// LDAP, database and HTTP identity sources (see src/config/identity.rs).
    #[serde(default)]
    pub identity_sources: Vec<super::identity::IdentitySourceConfig>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenFormat {
    #[default]
    Jwt,
    Opaque,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PathsConfig {
    pub token: String,
    pub introspect: String,
    pub revoke: String,
    pub jwks: String,
    pub discovery: String,
    pub openid_configuration: String,
}

impl Default for PathsConfig {
    fn default() -> Self {
        PathsConfig {
            token: "/oauth2/token".into(),
            introspect: "/oauth2/introspect".into(),
            revoke: "/oauth2/revoke".into(),
            jwks: "/.well-known/jwks.json".into(),
            discovery: "/.well-known/oauth-authorization-server".into(),
            openid_configuration: "/.well-known/openid-configuration".into(),
        }
    }
}

/// Failed-authentication backoff, per (client id or username, source IP): after
/// `max_failures` failures within `window`, requests get 429 + Retry-After for `base_delay`,
/// doubling with every further failure up to `max_delay`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackoffConfig {
    pub max_failures: u32,
    pub window: HumanDuration,
    pub base_delay: HumanDuration,
    pub max_delay: HumanDuration,
    /// Most (name, IP) pairs tracked at once (memory bound).
    pub capacity: usize,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            max_failures: 5,
            window: HumanDuration(std::time::Duration::from_secs(60)),
            base_delay: HumanDuration(std::time::Duration::from_secs(2)),
            max_delay: HumanDuration(std::time::Duration::from_secs(300)),
            capacity: 100_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Grant {
    ClientCredentials,
    /// Legacy (RFC 9700 §2.4: MUST NOT be used); only for clients that opt in.
    Password,
    RefreshToken,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
}

/// A client in the static identity store.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub client_id: String,
    /// PHC string `$pbkdf2-sha256$i=N$salt$hash` (see `tokengate hash-secret`). Never the
    /// secret itself.
    #[serde(default)]
    pub secret_hash: Option<String>,
    /// private_key_jwt: the client's public keys, a JWKS as JSON text...
    #[serde(default)]
    pub jwks: Option<String>,
    /// ...or fetched from this URL.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Allowed authentication methods (default: the secret methods when `secret_hash` is
    /// set, private_key_jwt when keys are).
    #[serde(default)]
    pub auth_methods: Vec<AuthMethod>,
    #[serde(default = "d_grants")]
    pub grants: Vec<Grant>,
    /// Scopes this client may obtain.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Scopes granted when the request names none (default: all of `scopes`).
    #[serde(default)]
    pub default_scopes: Option<Vec<String>>,
    /// `aud` of its access tokens (default: the issuer).
    #[serde(default)]
    pub audience: Vec<String>,
    /// Roles of the client itself (client_credentials tokens).
    #[serde(default)]
    pub roles: Vec<String>,
    /// CIDRs or addresses the client may call from (empty: anywhere).
    #[serde(default)]
    pub source_ips: Vec<String>,
    /// Bind issued tokens to the requesting IP (jwt_auth then refuses them from elsewhere).
    #[serde(default)]
    pub bind_client_ip: bool,
    /// Tokens of other clients may be introspected (resource servers).
    #[serde(default)]
    pub introspect_any: bool,
    #[serde(default = "crate::config::d_true")]
    pub enabled: bool,
    #[serde(default)]
    pub token_format: Option<TokenFormat>,
    #[serde(default)]
    pub access_token_lifetime: Option<HumanDuration>,
    #[serde(default)]
    pub refresh_token_lifetime: Option<HumanDuration>,
    #[serde(default)]
    pub refresh_max_uses: Option<u32>,
    /// Encrypt this client's JWT access tokens to its key (nested: sign, then encrypt with
    /// `cty: JWT`, RFC 7519 §11.2). Only a holder of the client's private key reads them.
    #[serde(default)]
    pub encrypt_to: Option<EncryptConfig>,
    /// The identity source of this client's password grants (default:
    /// `token_service.password_source`).
    #[serde(default)]
    pub identity_source: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptConfig {
    /// The client's public encryption key, a JWK as JSON text.
    pub jwk: String,
    /// Key management (default: RSA-OAEP-256 for RSA keys, ECDH-ES+A256KW otherwise).
    #[serde(default)]
    pub alg: Option<String>,
    /// Content encryption.
    #[serde(default = "d_enc")]
    pub enc: String,
}

fn d_enc() -> String {
    "A256GCM".into()
}

/// A resource owner (password grant only).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub username: String,
    /// PHC string, as for client secrets.
    pub password_hash: String,
    #[serde(default)]
    pub roles: Vec<String>,
    /// Scopes the user may delegate (empty: any the client may obtain).
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default = "crate::config::d_true")]
    pub enabled: bool,
}

fn d_access_lifetime() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(900))
}
fn d_refresh_lifetime() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(30 * 86400))
}
fn d_assertion_lifetime() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(300))
}
fn d_alg() -> String {
    "RS256".into()
}
fn d_key_dir() -> String {
    "data/keys".into()
}
fn d_grants() -> Vec<Grant> {
    vec![Grant::ClientCredentials]
}
