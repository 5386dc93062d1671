//! The token service: the gateway as an OAuth2 authorization server.
//!
//! Endpoints on the data-plane listener, as route actions (one route per endpoint is generated
//! ahead of the configured routes unless a route places it with `token_endpoint`, so global
//! and route policies apply to them):
//! token (RFC 6749: client_credentials, password for clients that opt in, refresh_token with
//! rotation and reuse detection), introspection (RFC 7662), revocation (RFC 7009), JWKS, and
//! discovery (RFC 8414 and `openid-configuration`). Access tokens are RFC 9068 JWTs signed with
//! the service's own keys ([`keys`]), or opaque random strings stored hashed. The `jwt_auth`
//! policy (src/policy/jwt_auth.rs) accepts them on routes.
//!
//! What lives where, and why:
//! * [`TokenService`] is compiled per snapshot (clients, users, lifetimes, paths), so a reload
//!   changes clients atomically with the routes.
//! * The signing keys, the opened token store and the failure backoff outlive reloads
//!   ([`TokenShared`], held by the composition root and handed to `compile`): a reload must
//!   not forget keys, drop the store connection, or reset a brute-force lockout.
//! * The store is opened lazily on first use (inside Pingora's runtime; Redis connects lazily
//!   anyway). Every store failure fails closed: 503 `temporarily_unavailable`, introspection
//!   never `active:true`, and `/readyz` reports `token_store` until the store answers again.
//! * Nothing secret is logged: neither secrets, passwords, assertions nor tokens; log lines
//!   carry client ids and error codes only.

pub mod backoff;
use crate::config::token as config;
mod endpoint;
mod grants;
pub mod keys;
mod oauth;
/// Client secrets hash like user passwords; the module lives with the identity sources.
use crate::identity::secret;

pub use config::TokenServiceConfig;
pub use endpoint::{Endpoint, Served};
pub use grants::AccessInfo;
pub use oauth::OAuthError;

use crate::cache::verified::VerifiedCache;
use crate::error::Errors;
use crate::expr::parse_net;
use crate::identity::Source;
use crate::jose::{Alg, Enc, EncryptOptions, Jwk, JwkSet, KeyAlg};
use crate::keys::RemoteJwks;
use crate::store::{StoreError, StoreSpec, TokenStore};
use backoff::Backoff;
use config::{AuthMethod, ClientConfig, Grant, TokenFormat, UserConfig};
use dashmap::DashMap;
use ipnet::IpNet;
use keys::KeyRing;
use secret::SecretHash;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The state of the token service that survives reloads.
pub struct TokenShared {
    persist: bool,
    rings: DashMap<PathBuf, Arc<KeyRing>>,
    stores: DashMap<String, Arc<StoreHandle>>,
    backoff: DashMap<String, Arc<Backoff>>,
    /// Signature-verified JWTs (by SHA-256), so a repeated token skips the crypto; the
    /// revocation lookup in the store still happens on every request.
    verified: Arc<VerifiedCache>,
}

/// Entries of the verified-JWT cache (see `cache/verified.rs` for its rules).
const VERIFIED_CAPACITY: usize = 100_000;
/// Longest time a verified JWT stays cached (its `exp` bounds it too).
const VERIFIED_TTL: u64 = 300;

impl std::fmt::Debug for TokenShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenShared").finish_non_exhaustive()
    }
}

impl TokenShared {
    /// `persist = false` (for `tokengate check`): keys stay in memory, nothing is written.
    pub fn new(persist: bool) -> TokenShared {
        TokenShared {
            persist,
            rings: DashMap::new(),
            stores: DashMap::new(),
            backoff: DashMap::new(),
            verified: Arc::new(VerifiedCache::new(VERIFIED_CAPACITY)),
        }
    }

    fn ring(&self, dir: &str, alg: Alg) -> Result<Arc<KeyRing>, String> {
        let key = PathBuf::from(dir);
        if let Some(r) = self.rings.get(&key) {
            let r = r.clone();
            // Pick up a `tokengate keys rotate` done while running.
            r.reload(alg)?;
            return Ok(r);
        }
        let r = Arc::new(KeyRing::open(key.clone(), alg, self.persist)?);
        self.rings.insert(key, r.clone());
        Ok(r)
    }

    /// The store for `spec`, kept across reloads under its fingerprint (the Redis URL may
    /// carry a password: only its hash is in the key).
    fn store(&self, spec: &StoreSpec) -> Result<Arc<StoreHandle>, String> {
        let key = crate::fingerprint::of("store", &store_fingerprint_material(spec))?;
        Ok(self
            .stores
            .entry(key)
            .or_insert_with(|| {
                Arc::new(StoreHandle {
                    spec: spec.clone(),
                    cell: tokio::sync::OnceCell::new(),
                    healthy: AtomicBool::new(true),
                })
            })
            .clone())
    }

    fn backoff(&self, c: &config::BackoffConfig) -> Result<Arc<Backoff>, String> {
        let key = crate::fingerprint::of("backoff", c)?;
        Ok(self
            .backoff
            .entry(key)
            .or_insert_with(|| Arc::new(Backoff::new(c)))
            .clone())
    }
}

/// Every field of a store spec, as JSON (the spec is a checked value, not a serde type).
fn store_fingerprint_material(spec: &StoreSpec) -> serde_json::Value {
    match spec {
        StoreSpec::Embedded {
            path,
            purge_interval,
        } => serde_json::json!({
            "kind": "embedded",
            "path": path,
            "purge_interval_ms": purge_interval.as_millis().to_string(),
        }),
        StoreSpec::Redis {
            url,
            key_prefix,
            timeout,
        } => serde_json::json!({
            "kind": "redis",
            "url": url,
            "key_prefix": key_prefix,
            "timeout_ms": timeout.as_millis().to_string(),
        }),
    }
}

/// The token store, opened on first use and kept across reloads.
pub struct StoreHandle {
    spec: StoreSpec,
    cell: tokio::sync::OnceCell<Arc<dyn TokenStore>>,
    healthy: AtomicBool,
}

impl std::fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreHandle({:?})", self.spec)
    }
}

/// How often an opened store is pinged for /readyz.
const HEALTH_EVERY: Duration = Duration::from_millis(500);

impl StoreHandle {
    /// The store, opening it the first time (a failed open is retried by the next call).
    pub async fn get(self: &Arc<Self>) -> Result<Arc<dyn TokenStore>, StoreError> {
        let weak = Arc::downgrade(self);
        let r = self
            .cell
            .get_or_try_init(|| async {
                let s = crate::store::open(&self.spec).await?;
                spawn_health(weak, HEALTH_EVERY);
                Ok::<_, StoreError>(s)
            })
            .await;
        match r {
            Ok(s) => Ok(s.clone()),
            Err(e) => {
                self.mark(false);
                log::warn!("token store cannot be opened: {}", e.code());
                Err(StoreError::Unavailable(e.code().to_string()))
            }
        }
    }

    /// Record the outcome of a store call (for /readyz).
    pub fn mark(&self, ok: bool) {
        if self.healthy.swap(ok, Ordering::Relaxed) != ok {
            if ok {
                log::info!("token store answering again");
            } else {
                log::warn!("token store unavailable: failing closed");
            }
        }
    }

    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
}

fn spawn_health(weak: Weak<StoreHandle>, every: Duration) {
    if tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(h) = weak.upgrade() else { return };
            let Some(s) = h.cell.get().cloned() else {
                continue;
            };
            let ok = s.health().await.is_ok();
            h.mark(ok);
        }
    });
}

/// Keys of a private_key_jwt client.
#[derive(Debug)]
pub(crate) enum ClientKeys {
    None,
    Static(Arc<JwkSet>),
    Remote(Arc<RemoteJwks>),
}

#[derive(Debug)]
pub(crate) struct Client {
    pub id: String,
    pub secret: Option<SecretHash>,
    pub keys: ClientKeys,
    pub methods: Vec<AuthMethod>,
    pub grants: Vec<Grant>,
    pub scopes: Vec<String>,
    pub default_scopes: Vec<String>,
    pub audience: Vec<String>,
    pub roles: Vec<String>,
    pub source_ips: Vec<IpNet>,
    pub bind_ip: bool,
    pub introspect_any: bool,
    pub format: TokenFormat,
    pub access_lifetime: Option<u64>,
    pub refresh_lifetime: Option<u64>,
    pub max_uses: Option<u32>,
    /// Nested tokens: encrypt the signed JWT to this key.
    pub encrypt: Option<(Jwk, KeyAlg, Enc)>,
    /// Who checks this client's password grants.
    pub identity: Option<Arc<Source>>,
}

/// The compiled `[token_service]`.
#[derive(Debug)]
pub struct TokenService {
    pub issuer: String,
    paths: config::PathsConfig,
    require_tls: bool,
    assertion_max: u64,
    accept_endpoint_aud: bool,
    token_url: String,
    clients: HashMap<String, Client>,
    /// Identity sources by name (`static` is `users`).
    sources: HashMap<String, Arc<Source>>,
    dummy: SecretHash,
    pub ring: Arc<KeyRing>,
    pub store: Arc<StoreHandle>,
    backoff: Arc<Backoff>,
    verified: Arc<VerifiedCache>,
    discovery: bytes::Bytes,
}

/// The JWS algorithms tokens may be signed with (asymmetric: verifiers use the JWKS).
const SIGNING_ALGS: [&str; 10] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
];

/// A token lifetime in seconds; "0s" (None) means tokens that never expire.
fn lifetime(d: Duration, path: &str, errs: &mut Errors) -> Option<u64> {
    match crate::units::whole_seconds(d) {
        Ok(s) => (s != 0).then_some(s),
        Err(e) => {
            errs.push(path, e);
            None
        }
    }
}

/// RFC 8414 §2: the issuer is an https URL without query or fragment. http is accepted for
/// a loopback host only (tests, local examples), where nothing crosses a network.
fn check_issuer(issuer: &str) -> Result<(), &'static str> {
    const WHY: &str = "must be an https:// URL without query or fragment (RFC 8414 §2; http:// \
                       only to a loopback host)";
    // The URI parser drops a fragment without a word: look for it in the text.
    if issuer.contains(['#', '?']) {
        return Err(WHY);
    }
    let u = http::Uri::try_from(issuer).map_err(|_| WHY)?;
    let host = u.host().ok_or(WHY)?;
    let loopback =
        crate::keys::http::is_loopback_host(host.trim_start_matches('[').trim_end_matches(']'));
    match u.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if loopback => Ok(()),
        _ => Err(WHY),
    }
}

fn check_path(p: &str, path: &str, errs: &mut Errors) {
    if !p.starts_with('/') || p.contains(['?', '#']) {
        errs.push(path, "must be an absolute path without query or fragment");
    }
}

impl TokenService {
    pub fn compile(
        c: &TokenServiceConfig,
        errs: &mut Errors,
        tokens: &TokenShared,
        identity: &crate::identity::IdentityShared,
        key_cache: &Arc<crate::keys::KeyCache>,
    ) -> Option<TokenService> {
        let TokenServiceConfig {
            issuer,
            paths,
            require_tls,
            token_format,
            access_token_lifetime,
            refresh_token_lifetime,
            refresh_max_uses,
            signing_alg,
            key_dir,
            client_assertion_max_lifetime,
            accept_endpoint_audience,
            backoff,
            store,
            clients,
            users,
            password_source,
            identity_sources,
        } = c;
        let p = "token_service";
        let before = errs.0.len();
        let issuer = issuer.trim_end_matches('/').to_string();
        if let Err(e) = check_issuer(&issuer) {
            errs.push(format!("{p}.issuer"), e);
        }
        let config::PathsConfig {
            token,
            introspect,
            revoke,
            jwks,
            discovery,
            openid_configuration,
        } = paths;
        let all = [
            ("token", token),
            ("introspect", introspect),
            ("revoke", revoke),
            ("jwks", jwks),
            ("discovery", discovery),
            ("openid_configuration", openid_configuration),
        ];
        for (i, (k, v)) in all.iter().enumerate() {
            check_path(v, &format!("{p}.paths.{k}"), errs);
            if all.iter().skip(i + 1).any(|(_, o)| o == v) {
                errs.push(format!("{p}.paths.{k}"), "used by two endpoints");
            }
        }
        let alg = match Alg::from_name(signing_alg) {
            Some(a) if SIGNING_ALGS.contains(&a.name()) => a,
            _ => {
                errs.push(
                    format!("{p}.signing_alg"),
                    format!("{signing_alg:?} is not an asymmetric JWS algorithm"),
                );
                Alg::RS256
            }
        };
        let store_spec = match store.compile() {
            Ok(s) => Some(s),
            Err(es) => {
                for (k, m) in es {
                    errs.push(format!("{p}.store.{k}"), m);
                }
                None
            }
        };
        let access = lifetime(
            access_token_lifetime.0,
            &format!("{p}.access_token_lifetime"),
            errs,
        );
        if access.is_none() {
            log::warn!("token_service.access_token_lifetime = 0: access tokens never expire");
        }
        let refresh = lifetime(
            refresh_token_lifetime.0,
            &format!("{p}.refresh_token_lifetime"),
            errs,
        );
        let mut cmap = HashMap::new();
        let mut max_iter = secret::MIN_ITERATIONS;
        for (i, cc) in clients.iter().enumerate() {
            let cp = format!("{p}.clients[{i}]");
            if let Some(cl) = compile_client(
                cc,
                &cp,
                errs,
                key_cache,
                *token_format,
                access,
                refresh,
                *refresh_max_uses,
            ) {
                if let Some(s) = &cl.secret {
                    max_iter = max_iter.max(s.iterations());
                }
                if cmap.contains_key(&cl.id) {
                    errs.push(format!("{cp}.client_id"), "duplicate client_id");
                }
                cmap.insert(cl.id.clone(), cl);
            }
        }
        let sources = compile_sources(users, identity_sources, errs, identity);
        let default_source = match password_source {
            Some(n) if !sources.contains_key(n) => {
                errs.push(
                    format!("{p}.password_source"),
                    format!("no identity source named {n:?}"),
                );
                None
            }
            Some(n) => Some(n.as_str()),
            None => sources.contains_key("static").then_some("static"),
        };
        for (i, cc) in clients.iter().enumerate() {
            let cp = format!("{p}.clients[{i}]");
            let name = match &cc.identity_source {
                Some(n) if !sources.contains_key(n) => {
                    errs.push(
                        format!("{cp}.identity_source"),
                        format!("no identity source named {n:?}"),
                    );
                    continue;
                }
                Some(n) => Some(n.as_str()),
                None => default_source,
            };
            if cc.grants.contains(&Grant::Password) && name.is_none() {
                errs.push(
                    format!("{cp}.grants"),
                    "the password grant needs an identity source: [[token_service.users]], \
                     token_service.password_source or this client's identity_source",
                );
            }
            if let (Some(cl), Some(n)) = (cmap.get_mut(&cc.client_id), name) {
                cl.identity = sources.get(n).cloned();
            }
        }
        let dummy = SecretHash::dummy(max_iter)
            .map_err(|e| errs.push(p, e))
            .ok();
        let assertion_max = match crate::units::whole_seconds(client_assertion_max_lifetime.0) {
            Ok(0) => {
                errs.push(
                    format!("{p}.client_assertion_max_lifetime"),
                    "must be at least 1s: no assertion could be accepted",
                );
                1
            }
            Ok(s) => s,
            Err(e) => {
                errs.push(format!("{p}.client_assertion_max_lifetime"), e);
                1
            }
        };
        let ring = match tokens.ring(key_dir, alg) {
            Ok(r) => Some(r),
            Err(e) => {
                errs.push(format!("{p}.key_dir"), e);
                None
            }
        };
        if errs.0.len() > before {
            return None;
        }
        let ring = ring?;
        let store_spec = store_spec?;
        let dummy = dummy?;
        let store = tokens
            .store(&store_spec)
            .map_err(|e| errs.push(format!("{p}.store"), e))
            .ok()?;
        let backoff = tokens
            .backoff(backoff)
            .map_err(|e| errs.push(format!("{p}.backoff"), e))
            .ok()?;
        let token_url = format!("{issuer}{token}");
        let discovery = discovery_doc(&issuer, paths, &ring);
        Some(TokenService {
            token_url,
            issuer,
            paths: paths.clone(),
            require_tls: *require_tls,
            assertion_max,
            accept_endpoint_aud: *accept_endpoint_audience,
            clients: cmap,
            sources,
            dummy,
            ring,
            store,
            backoff,
            verified: tokens.verified.clone(),
            discovery,
        })
    }

    /// Identity sources whose last lookup failed (`/readyz` lists them as degraded).
    pub fn degraded_sources(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .sources
            .values()
            .filter(|s| !s.healthy())
            .map(|s| format!("identity:{}", s.name))
            .collect();
        v.sort();
        v
    }

    /// Every identity source of this config.
    pub fn identity_sources(&self) -> Vec<Arc<Source>> {
        self.sources.values().cloned().collect()
    }

    /// An identity source by name (tests, benches).
    pub fn identity_source(&self, name: &str) -> Option<Arc<Source>> {
        self.sources.get(name).cloned()
    }

    /// Every endpoint with its name (as `routes[].token_endpoint` spells it) and its path.
    pub fn endpoints(&self) -> [(Endpoint, &'static str, &str); 6] {
        let p = &self.paths;
        [
            (Endpoint::Token, "token", &p.token),
            (Endpoint::Introspect, "introspect", &p.introspect),
            (Endpoint::Revoke, "revoke", &p.revoke),
            (Endpoint::Jwks, "jwks", &p.jwks),
            (Endpoint::Discovery, "discovery", &p.discovery),
            (
                Endpoint::Discovery,
                "openid_configuration",
                &p.openid_configuration,
            ),
        ]
    }

    /// The endpoint a request path names, if any.
    pub fn endpoint(&self, path: &str) -> Option<Endpoint> {
        let p = &self.paths;
        Some(if path == p.token {
            Endpoint::Token
        } else if path == p.introspect {
            Endpoint::Introspect
        } else if path == p.revoke {
            Endpoint::Revoke
        } else if path == p.jwks {
            Endpoint::Jwks
        } else if path == p.discovery || path == p.openid_configuration {
            Endpoint::Discovery
        } else {
            return None;
        })
    }

    /// A path that differs from an endpoint's only in case or a trailing slash
    /// (`/OAUTH2/token/`): refused, so it never reaches a catch-all route with the client's
    /// credentials. The path is already canonical (no `//`, no dot segments).
    pub fn lookalike(&self, path: &str) -> bool {
        let p = &self.paths;
        let t = path.trim_end_matches('/');
        [
            &p.token,
            &p.introspect,
            &p.revoke,
            &p.jwks,
            &p.discovery,
            &p.openid_configuration,
        ]
        .iter()
        .any(|e| t.eq_ignore_ascii_case(e.trim_end_matches('/')))
    }

    /// The store, marking readiness on failure.
    pub async fn store(&self) -> Result<Arc<dyn TokenStore>, OAuthError> {
        self.store
            .get()
            .await
            .map_err(|_| OAuthError::StoreUnavailable)
    }

    /// Map a store result, marking readiness.
    pub fn checked<T>(&self, r: Result<T, StoreError>) -> Result<T, OAuthError> {
        match r {
            Ok(v) => {
                self.store.mark(true);
                Ok(v)
            }
            Err(e) => {
                if e.is_unavailable() {
                    self.store.mark(false);
                }
                log::warn!("token store call failed: {}", e.code());
                Err(OAuthError::StoreUnavailable)
            }
        }
    }
}

/// The identity sources: `static` from `users`, then the configured ones, by name.
fn compile_sources(
    users: &[UserConfig],
    configured: &[crate::identity::IdentitySourceConfig],
    errs: &mut Errors,
    shared: &crate::identity::IdentityShared,
) -> HashMap<String, Arc<Source>> {
    let mut out = HashMap::new();
    if let Some(s) = crate::identity::compile_static(users, "token_service.users", errs, shared) {
        out.insert("static".to_string(), s);
    }
    for (i, c) in configured.iter().enumerate() {
        let path = format!("token_service.identity_sources[{i}]");
        if out.contains_key(&c.name) {
            errs.push(format!("{path}.name"), "duplicate identity source name");
            continue;
        }
        if let Some(s) = crate::identity::compile(c, &path, errs, shared) {
            out.insert(c.name.clone(), s);
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn compile_client(
    c: &ClientConfig,
    cp: &str,
    errs: &mut Errors,
    key_cache: &Arc<crate::keys::KeyCache>,
    format: TokenFormat,
    access: Option<u64>,
    refresh: Option<u64>,
    max_uses: Option<u32>,
) -> Option<Client> {
    let ClientConfig {
        client_id,
        secret_hash,
        jwks,
        jwks_uri,
        auth_methods,
        grants,
        scopes,
        default_scopes,
        audience,
        roles,
        source_ips,
        bind_client_ip,
        introspect_any,
        enabled,
        token_format,
        access_token_lifetime,
        refresh_token_lifetime,
        refresh_max_uses,
        encrypt_to,
        identity_source: _, // resolved by TokenService::compile
    } = c;
    let before = errs.0.len();
    let encrypt = encrypt_to
        .as_ref()
        .and_then(|e| compile_encrypt(e, &format!("{cp}.encrypt_to"), errs));
    if encrypt.is_some() && token_format == &Some(TokenFormat::Opaque) {
        errs.push(
            format!("{cp}.encrypt_to"),
            "only JWT access tokens are encrypted",
        );
    }
    if client_id.is_empty() || client_id.chars().any(char::is_control) {
        errs.push(
            format!("{cp}.client_id"),
            "must be non-empty printable text",
        );
    }
    let secret = secret_hash.as_ref().and_then(|s| {
        SecretHash::parse(s)
            .map_err(|e| errs.push(format!("{cp}.secret_hash"), e))
            .ok()
    });
    let keys = match (jwks, jwks_uri) {
        (Some(_), Some(_)) => {
            errs.push(cp, "use either jwks or jwks_uri");
            ClientKeys::None
        }
        (Some(j), None) => match JwkSet::from_json(j.as_bytes()) {
            Ok(set)
                if set
                    .keys()
                    .iter()
                    .all(|k| !k.is_symmetric() && !k.is_private()) =>
            {
                ClientKeys::Static(Arc::new(set))
            }
            Ok(_) => {
                errs.push(format!("{cp}.jwks"), "public asymmetric keys only");
                ClientKeys::None
            }
            Err(e) => {
                errs.push(format!("{cp}.jwks"), e.to_string());
                ClientKeys::None
            }
        },
        (None, Some(u)) => {
            let settings = crate::keys::JwksSettings {
                prefetch: false,
                ..Default::default()
            };
            match key_cache.source(u, settings) {
                Ok(s) => ClientKeys::Remote(s),
                Err(e) => {
                    errs.push(format!("{cp}.jwks_uri"), e.to_string());
                    ClientKeys::None
                }
            }
        }
        (None, None) => ClientKeys::None,
    };
    let mut methods = auth_methods.clone();
    if methods.is_empty() {
        if secret.is_some() {
            methods.extend([AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost]);
        }
        if !matches!(keys, ClientKeys::None) {
            methods.push(AuthMethod::PrivateKeyJwt);
        }
    }
    for m in &methods {
        let ok = match m {
            AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost => secret_hash.is_some(),
            AuthMethod::PrivateKeyJwt => jwks.is_some() || jwks_uri.is_some(),
        };
        if !ok {
            errs.push(
                format!("{cp}.auth_methods"),
                format!(
                    "{m:?} needs a secret_hash (secret methods) or jwks/jwks_uri (private_key_jwt)"
                ),
            );
        }
    }
    if methods.is_empty() {
        errs.push(cp, "a client needs secret_hash, jwks or jwks_uri");
    }
    if grants.is_empty() {
        errs.push(format!("{cp}.grants"), "list at least one grant");
    }
    if grants.contains(&Grant::Password) {
        log::warn!("client {client_id:?} may use the password grant (legacy, RFC 9700 §2.4)");
    }
    let default_scopes = default_scopes.clone().unwrap_or_else(|| scopes.clone());
    for s in &default_scopes {
        if !scopes.contains(s) {
            errs.push(
                format!("{cp}.default_scopes"),
                format!("{s:?} is not in scopes"),
            );
        }
    }
    for s in scopes {
        if s.is_empty()
            || s.contains(' ')
            || s.chars().any(|c| c.is_control() || c == '"' || c == '\\')
        {
            errs.push(format!("{cp}.scopes"), format!("invalid scope token {s:?}"));
        }
    }
    let mut nets = Vec::new();
    for (i, s) in source_ips.iter().enumerate() {
        match parse_net(s) {
            Ok(n) => nets.push(n),
            Err(e) => errs.push(format!("{cp}.source_ips[{i}]"), e),
        }
    }
    let access = access_token_lifetime.map_or(access, |d| {
        lifetime(d.0, &format!("{cp}.access_token_lifetime"), errs)
    });
    let refresh = refresh_token_lifetime.map_or(refresh, |d| {
        lifetime(d.0, &format!("{cp}.refresh_token_lifetime"), errs)
    });
    if access.is_none() {
        log::warn!("client {client_id:?}: access tokens never expire");
    }
    if errs.0.len() > before || !enabled {
        return None;
    }
    Some(Client {
        id: client_id.clone(),
        secret,
        keys,
        methods,
        grants: grants.clone(),
        scopes: scopes.clone(),
        default_scopes,
        audience: audience.clone(),
        roles: roles.clone(),
        source_ips: nets,
        bind_ip: *bind_client_ip,
        introspect_any: *introspect_any,
        format: token_format.unwrap_or(format),
        access_lifetime: access,
        refresh_lifetime: refresh,
        max_uses: refresh_max_uses.or(max_uses),
        encrypt,
        identity: None,
    })
}

fn compile_encrypt(
    c: &config::EncryptConfig,
    path: &str,
    errs: &mut Errors,
) -> Option<(Jwk, KeyAlg, Enc)> {
    let config::EncryptConfig { jwk, alg, enc } = c;
    let key = match Jwk::from_json(jwk.as_bytes()) {
        Ok(k) if !k.is_symmetric() && !k.is_private() => k,
        Ok(_) => {
            errs.push(format!("{path}.jwk"), "a public asymmetric key is expected");
            return None;
        }
        Err(e) => {
            errs.push(format!("{path}.jwk"), e.to_string());
            return None;
        }
    };
    let alg_name = alg.clone().unwrap_or_else(|| {
        if key.kty() == "RSA" {
            "RSA-OAEP-256".into()
        } else {
            "ECDH-ES+A256KW".into()
        }
    });
    let Some(ka) = KeyAlg::from_name(&alg_name) else {
        errs.push(
            format!("{path}.alg"),
            format!("unknown algorithm {alg_name:?}"),
        );
        return None;
    };
    let Some(e) = Enc::from_name(enc) else {
        errs.push(format!("{path}.enc"), format!("unknown encryption {enc:?}"));
        return None;
    };
    // A trial encryption proves the key and algorithms fit together.
    if let Err(err) = crate::jose::encrypt(b"{}", &key, ka, e, &EncryptOptions::default()) {
        errs.push(path, format!("cannot encrypt to this key: {err}"));
        return None;
    }
    Some((key, ka, e))
}

fn discovery_doc(issuer: &str, p: &config::PathsConfig, ring: &KeyRing) -> bytes::Bytes {
    let algs = SIGNING_ALGS;
    let methods = [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
    ];
    let signing: Vec<&str> = ring.get().algs.iter().map(|a| a.name()).collect();
    let v = serde_json::json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}{}", p.token),
        "introspection_endpoint": format!("{issuer}{}", p.introspect),
        "revocation_endpoint": format!("{issuer}{}", p.revoke),
        "jwks_uri": format!("{issuer}{}", p.jwks),
        "grant_types_supported": ["client_credentials", "password", "refresh_token"],
        // No authorization endpoint: no response type is supported (RFC 8414 §2 lists it).
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": methods,
        "token_endpoint_auth_signing_alg_values_supported": algs,
        "introspection_endpoint_auth_methods_supported": methods,
        "introspection_endpoint_auth_signing_alg_values_supported": algs,
        "revocation_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_signing_alg_values_supported": algs,
        "access_token_signing_alg_values_supported": signing,
    });
    bytes::Bytes::from(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis(url: &str) -> StoreSpec {
        StoreSpec::Redis {
            url: url.into(),
            key_prefix: "tg:".into(),
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn stores_differing_only_by_the_password_are_two_stores() {
        let t = TokenShared::new(false);
        let a = t.store(&redis("redis://:pass-one@127.0.0.1:6379")).unwrap();
        let b = t.store(&redis("redis://:pass-two@127.0.0.1:6379")).unwrap();
        assert!(!Arc::ptr_eq(&a, &b));
        let again = t.store(&redis("redis://:pass-one@127.0.0.1:6379")).unwrap();
        assert!(Arc::ptr_eq(&a, &again));
    }

    #[test]
    fn issuer_is_https_without_query_or_fragment() {
        assert!(check_issuer("https://auth.example.com").is_ok());
        assert!(check_issuer("https://auth.example.com/tenant-1").is_ok());
        for bad in [
            "http://auth.example.com",
            "https://auth.example.com/#frag",
            "https://auth.example.com#",
            "https://auth.example.com/?a=1",
            "https://auth.example.com?",
            "ftp://auth.example.com",
            "auth.example.com",
        ] {
            assert!(check_issuer(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_loopback_http_issuer_is_accepted_for_tests_but_never_with_a_fragment() {
        for ok in [
            "http://127.0.0.1",
            "http://localhost:8080",
            "http://[::1]:9000",
        ] {
            assert!(check_issuer(ok).is_ok(), "{ok}");
        }
        assert!(check_issuer("http://127.0.0.1/#x").is_err());
        assert!(check_issuer("http://127.0.0.1/?x").is_err());
    }

    #[test]
    fn a_lifetime_with_a_fraction_of_a_second_is_refused_and_zero_means_never() {
        let mut errs = Errors::default();
        assert_eq!(lifetime(Duration::ZERO, "p", &mut errs), None);
        assert_eq!(lifetime(Duration::from_secs(90), "p", &mut errs), Some(90));
        assert!(errs.is_empty());
        assert_eq!(lifetime(Duration::from_millis(1500), "p", &mut errs), None);
        assert_eq!(errs.0.len(), 1);
        assert_eq!(errs.0[0].path, "p");
        assert!(errs.0[0].message.contains("seconds"), "{}", errs.0[0]);
    }

    #[test]
    fn store_keys_do_not_carry_the_password() {
        let t = TokenShared::new(false);
        t.store(&redis("redis://:pass-one@127.0.0.1:6379")).unwrap();
        for k in t.stores.iter() {
            assert!(!k.key().contains("pass-one"), "{}", k.key());
        }
    }
}
