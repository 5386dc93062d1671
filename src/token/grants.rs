//! The token endpoint's grants, introspection and revocation, and the access-token check
//! shared with the `jwt_auth` policy.
//!
//! Refresh flow (see src/store/mod.rs): `get_refresh` to check the requested scope against
//! the grant (RFC 6749 §6: never wider), then one atomic `use_refresh` with the rotation, so
//! 50 concurrent uses of one token yield exactly one new token and a replayed rotated-out
//! token revokes the whole family (RFC 9700 §4.14.2).

use super::config::{Grant, TokenFormat};
use super::endpoint::{ok_json, Form, MAX_TOKEN};
use super::oauth::{json_reply, OAuthError};
use super::{Client, TokenService, VERIFIED_TTL};
use crate::cache::verified::{token_key, Entry};
use crate::error::GatewayError;
use crate::identity::{Ctx, Identity, IdentityError, Lookup};
use crate::jose::{self, Limits};
use crate::reply::Reply;
use crate::store::{
    now_unix, AccessRecord, RefreshRecord, RefreshUse, Revocation, Rotation, TokenHash, TokenStore,
};
use pingora_http::RequestHeader;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// What an active access token says (from its signed claims or its store record).
#[derive(Debug, Clone)]
pub struct AccessInfo {
    pub client_id: String,
    pub sub: String,
    pub scope: Vec<String>,
    pub roles: Vec<String>,
    pub aud: Vec<String>,
    pub iat: u64,
    pub exp: Option<u64>,
    pub client_ip: Option<IpAddr>,
    pub jti: Option<String>,
}

impl AccessInfo {
    /// The claims view (`claims.*` variables of later policies).
    pub fn claims(&self, iss: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("iss".into(), iss.into());
        m.insert("sub".into(), self.sub.clone().into());
        m.insert("client_id".into(), self.client_id.clone().into());
        m.insert("aud".into(), self.aud.clone().into());
        m.insert("scope".into(), self.scope.join(" ").into());
        m.insert("roles".into(), self.roles.clone().into());
        m.insert("iat".into(), self.iat.into());
        if let Some(e) = self.exp {
            m.insert("exp".into(), e.into());
        }
        if let Some(j) = &self.jti {
            m.insert("jti".into(), j.clone().into());
        }
        m
    }
}

fn random_token(bytes: usize) -> Result<String, OAuthError> {
    let mut b = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut b).map_err(|_| OAuthError::ServerError)?;
    Ok(jose::b64_encode(&b))
}

/// Space-separated scope request checked against `allowed`; `None` gives `default`.
fn scopes(
    req: Option<&str>,
    allowed: &[String],
    default: &[String],
) -> Result<Vec<String>, OAuthError> {
    let Some(req) = req else {
        return Ok(default
            .iter()
            .filter(|s| allowed.contains(s))
            .cloned()
            .collect());
    };
    let mut out: Vec<String> = Vec::new();
    for s in req.split(' ').filter(|s| !s.is_empty()) {
        if !allowed.iter().any(|a| a == s) {
            return Err(OAuthError::InvalidScope);
        }
        if !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    Ok(out)
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => s
            .split(' ')
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// An issued access token.
struct Issued {
    token: String,
    exp: Option<u64>,
}

/// What an access token is issued for.
struct Subject<'a> {
    sub: &'a str,
    scope: &'a [String],
    roles: &'a [String],
    family: Option<&'a str>,
}

/// The grant types the service supports, by their RFC 6749 names.
pub(super) const GRANTS: [(&str, Grant); 3] = [
    ("client_credentials", Grant::ClientCredentials),
    ("password", Grant::Password),
    ("refresh_token", Grant::RefreshToken),
];

impl TokenService {
    pub(super) async fn token(
        &self,
        c: &Client,
        f: &Form,
        ip: Option<IpAddr>,
        req: &RequestHeader,
    ) -> Result<Reply, OAuthError> {
        let gt = f
            .get("grant_type")
            .ok_or(OAuthError::InvalidRequest("grant_type is required"))?;
        let grant = GRANTS
            .iter()
            .find(|(n, _)| *n == gt)
            .map(|(_, g)| *g)
            .ok_or(OAuthError::UnsupportedGrantType)?;
        if !c.grants.contains(&grant) {
            return Err(OAuthError::UnauthorizedClient);
        }
        match grant {
            Grant::ClientCredentials => {
                let scope = scopes(f.get("scope"), &c.scopes, &c.default_scopes)?;
                let store = self.store().await?;
                let subj = Subject {
                    sub: &c.id,
                    scope: &scope,
                    roles: &c.roles,
                    family: None,
                };
                let at = self.issue(&*store, c, &subj, ip, now_unix()).await?;
                // RFC 6749 §4.4.3: no refresh token.
                Ok(self.token_reply(&at, &scope, None))
            }
            Grant::Password => self.password(c, f, ip, req).await,
            Grant::RefreshToken => self.refresh(c, f, ip, req).await,
        }
    }

    /// Issue a client_credentials access token to a configured client without the HTTP
    /// endpoint and without client authentication (benchmarks, embedding). Returns the token.
    pub async fn mint(&self, client_id: &str, scope: Option<&str>) -> Result<String, OAuthError> {
        let c = self
            .clients
            .get(client_id)
            .ok_or(OAuthError::InvalidClient)?;
        let scope = scopes(scope, &c.scopes, &c.default_scopes)?;
        let store = self.store().await?;
        let subj = Subject {
            sub: &c.id,
            scope: &scope,
            roles: &c.roles,
            family: None,
        };
        Ok(self.issue(&*store, c, &subj, None, now_unix()).await?.token)
    }

    fn token_reply(&self, at: &Issued, scope: &[String], rt: Option<&str>) -> Reply {
        let mut v = json!({"access_token": at.token, "token_type": "Bearer"});
        if let Some(exp) = at.exp {
            v["expires_in"] = json!(exp.saturating_sub(now_unix()));
        }
        if !scope.is_empty() {
            v["scope"] = json!(scope.join(" "));
        }
        if let Some(rt) = rt {
            v["refresh_token"] = json!(rt);
        }
        ok_json(&v)
    }

    async fn password(
        &self,
        c: &Client,
        f: &Form,
        ip: Option<IpAddr>,
        req: &RequestHeader,
    ) -> Result<Reply, OAuthError> {
        let (Some(username), Some(password)) = (f.get("username"), f.get("password")) else {
            return Err(OAuthError::InvalidRequest(
                "username and password are required",
            ));
        };
        let source = c.identity.as_ref().ok_or(OAuthError::UnauthorizedClient)?;
        // Case and surrounding space do not make a new name to guess under (LDAP and MySQL
        // compare names that way).
        let key = format!("user:{}", username.trim().to_lowercase());
        if let Some(secs) = self.backoff.check(&key, ip, Instant::now()) {
            return Err(OAuthError::TooManyAttempts { retry_after: secs });
        }
        let ctx = Ctx { req, client_ip: ip };
        let user = match source.authenticate(username, password, ctx).await {
            Ok(Some(u)) => u,
            Ok(None) => {
                self.backoff.failure(&key, ip, Instant::now());
                log::info!("token service: password grant failed for client {:?}", c.id);
                return Err(OAuthError::InvalidGrant(
                    "invalid resource owner credentials",
                ));
            }
            Err(IdentityError::BadRequest(m)) => return Err(OAuthError::InvalidRequest(m)),
            // The source could not say: not the user's fault, not a failure to count.
            Err(_) => return Err(OAuthError::SourceUnavailable),
        };
        self.backoff.success(&key, ip);
        let allowed: Vec<String> = c
            .scopes
            .iter()
            .filter(|s| user.scopes.is_empty() || user.scopes.contains(s))
            .cloned()
            .collect();
        let scope = scopes(f.get("scope"), &allowed, &c.default_scopes)?;
        let store = self.store().await?;
        let now = now_unix();
        let family = if c.grants.contains(&Grant::RefreshToken) {
            let rt = random_token(32)?;
            let family_id = random_token(16)?;
            let mut extra = BTreeMap::new();
            extra.insert("grant".to_string(), json!("password"));
            extra.insert("source".to_string(), json!(source.name));
            // Sources look users up by username, which may differ from `sub`.
            extra.insert("username".to_string(), json!(username));
            let rec = RefreshRecord {
                hash: TokenHash::of(rt.as_bytes()),
                family_id: family_id.clone(),
                client_id: c.id.clone(),
                sub: user.subject.clone(),
                scope: scope.clone(),
                roles: user.roles.clone(),
                issued_at: now,
                exp: c.refresh_lifetime.map(|l| now + l),
                max_uses: c.max_uses,
                extra,
            };
            self.checked(store.put_refresh(rec, now).await)?;
            Some((rt, family_id))
        } else {
            None
        };
        let subj = Subject {
            sub: &user.subject,
            scope: &scope,
            roles: &user.roles,
            family: family.as_ref().map(|(_, f)| f.as_str()),
        };
        let at = self.issue(&*store, c, &subj, ip, now).await?;
        Ok(self.token_reply(&at, &scope, family.as_ref().map(|(rt, _)| rt.as_str())))
    }

    async fn refresh(
        &self,
        c: &Client,
        f: &Form,
        ip: Option<IpAddr>,
        req: &RequestHeader,
    ) -> Result<Reply, OAuthError> {
        let rt = f
            .get("refresh_token")
            .ok_or(OAuthError::InvalidRequest("refresh_token is required"))?;
        let bad = || OAuthError::InvalidGrant("the refresh token is invalid");
        if rt.len() > MAX_TOKEN {
            return Err(bad());
        }
        let hash = TokenHash::of(rt.as_bytes());
        let store = self.store().await?;
        let now = now_unix();
        let Some(rec) = self.checked(store.get_refresh(&hash, now).await)? else {
            // Unknown, expired, revoked or rotated out: use_refresh tells reuse apart and
            // revokes the family on reuse.
            let used = self.checked(store.use_refresh(&hash, &c.id, now, None).await)?;
            if matches!(used, RefreshUse::Reused) {
                log::warn!(
                    "token service: refresh token reuse by client {:?}: family revoked",
                    c.id
                );
            }
            return Err(bad());
        };
        if rec.client_id != c.id {
            return Err(bad());
        }
        // Refresh tokens of the password grant: the user must still be there (its source
        // may update the roles). Checked before the rotation, so a 503 consumes nothing.
        let mut fresh: Option<Identity> = None;
        if rec.extra.get("grant") == Some(&json!("password")) {
            let name = rec
                .extra
                .get("source")
                .and_then(Value::as_str)
                .unwrap_or("static");
            let source = self.sources.get(name).ok_or_else(bad)?;
            let username = rec
                .extra
                .get("username")
                .and_then(Value::as_str)
                .unwrap_or(&rec.sub);
            let ctx = Ctx { req, client_ip: ip };
            let ended = match source.lookup(username, ctx).await {
                // The same name now belongs to another account.
                Ok(Lookup::Found(id)) if !id.subject.is_empty() && id.subject != rec.sub => true,
                Ok(Lookup::Found(id)) => {
                    fresh = Some(id);
                    false
                }
                Ok(Lookup::Unchecked) => false,
                // Gone or disabled at the source.
                Ok(Lookup::Gone) => true,
                // The source answered but could not tell: this refresh fails, the grant stays.
                Ok(Lookup::Unsure) => return Err(bad()),
                Err(IdentityError::BadRequest(m)) => return Err(OAuthError::InvalidRequest(m)),
                Err(_) => return Err(OAuthError::SourceUnavailable),
            };
            if ended {
                // Nothing of this grant lives on (a name re-created later must not inherit it).
                self.checked(store.revoke_family(&rec.family_id, now).await)?;
                log::info!("token service: refresh for a user gone or changed at its source; grant revoked");
                return Err(bad());
            }
        }
        // The source may have narrowed what the user may delegate since the grant.
        let granted: Vec<String> = match fresh.as_ref().filter(|id| !id.scopes.is_empty()) {
            Some(id) => rec
                .scope
                .iter()
                .filter(|s| id.scopes.contains(s))
                .cloned()
                .collect(),
            None => rec.scope.clone(),
        };
        let scope = scopes(f.get("scope"), &granted, &granted)?;
        let new_rt = random_token(32)?;
        let rotation = Rotation {
            hash: TokenHash::of(new_rt.as_bytes()),
            issued_at: now,
            exp: c.refresh_lifetime.map(|l| now + l),
            scope: Some(scope.clone()),
        };
        let used = self.checked(store.use_refresh(&hash, &c.id, now, Some(rotation)).await)?;
        let RefreshUse::Used { record, .. } = used else {
            if matches!(used, RefreshUse::Reused) {
                log::warn!(
                    "token service: refresh token reuse by client {:?}: family revoked",
                    c.id
                );
            }
            return Err(bad());
        };
        let subj = Subject {
            sub: &record.sub,
            scope: &scope,
            roles: fresh.as_ref().map_or(&record.roles, |id| &id.roles),
            family: Some(&record.family_id),
        };
        let at = self.issue(&*store, c, &subj, ip, now).await?;
        Ok(self.token_reply(&at, &scope, Some(&new_rt)))
    }

    /// Mint an access token: an RFC 9068 JWT or an opaque token stored hashed.
    async fn issue(
        &self,
        store: &dyn TokenStore,
        c: &Client,
        s: &Subject<'_>,
        ip: Option<IpAddr>,
        now: u64,
    ) -> Result<Issued, OAuthError> {
        let exp = c.access_lifetime.map(|l| now + l);
        let aud = if c.audience.is_empty() {
            vec![self.issuer.clone()]
        } else {
            c.audience.clone()
        };
        let bound = if c.bind_ip { ip } else { None };
        let rec = |hash: TokenHash| AccessRecord {
            hash,
            client_id: c.id.clone(),
            sub: s.sub.to_string(),
            scope: s.scope.to_vec(),
            roles: s.roles.to_vec(),
            aud: aud.clone(),
            issued_at: now,
            exp,
            family_id: s.family.map(str::to_string),
            client_ip: bound,
            extra: BTreeMap::new(),
        };
        match c.format {
            TokenFormat::Opaque => {
                let token = random_token(32)?;
                self.checked(
                    store
                        .put_access(rec(TokenHash::of(token.as_bytes())), now)
                        .await,
                )?;
                Ok(Issued { token, exp })
            }
            TokenFormat::Jwt => {
                let jti = random_token(16)?;
                let mut claims = Map::new();
                claims.insert("iss".into(), self.issuer.clone().into());
                claims.insert("sub".into(), s.sub.into());
                claims.insert(
                    "aud".into(),
                    match aud.as_slice() {
                        [one] => one.clone().into(),
                        _ => aud.clone().into(),
                    },
                );
                claims.insert("client_id".into(), c.id.clone().into());
                if !s.scope.is_empty() {
                    claims.insert("scope".into(), s.scope.join(" ").into());
                }
                if !s.roles.is_empty() {
                    claims.insert("roles".into(), s.roles.to_vec().into());
                }
                claims.insert("iat".into(), now.into());
                if let Some(e) = exp {
                    claims.insert("exp".into(), e.into());
                }
                claims.insert("jti".into(), jti.clone().into());
                if let Some(ip) = bound {
                    claims.insert("client_ip".into(), ip.to_string().into());
                }
                let ring = self.ring.get();
                let mut hdr = Map::new();
                hdr.insert("typ".into(), "at+jwt".into());
                let payload = serde_json::to_vec(&claims).map_err(|_| OAuthError::ServerError)?;
                let signed = match &c.encrypt {
                    None => jose::sign(&payload, &ring.current, ring.alg, &hdr),
                    Some((key, ka, enc)) => jose::sign_then_encrypt(
                        &payload,
                        &ring.current,
                        ring.alg,
                        &hdr,
                        key,
                        *ka,
                        *enc,
                        &jose::EncryptOptions::default(),
                    ),
                };
                let token = signed.map_err(|e| {
                    log::error!("token service: signing failed: {e}");
                    OAuthError::ServerError
                })?;
                if c.encrypt.is_some() {
                    // The gateway cannot read a token encrypted to the client: it is tracked
                    // by its hash, like an opaque token (introspection, revocation, jwt_auth).
                    self.checked(
                        store
                            .put_access(rec(TokenHash::of(token.as_bytes())), now)
                            .await,
                    )?;
                } else if s.family.is_some() {
                    // Tracked so that revoking the grant revokes this token too.
                    self.checked(
                        store
                            .put_access(rec(TokenHash::of(jti.as_bytes())), now)
                            .await,
                    )?;
                }
                Ok(Issued { token, exp })
            }
        }
    }

    /// `open_jwt` through the verified-token cache (entries die with a key rotation).
    fn verified_jwt(&self, token: &str, now: u64) -> Result<Arc<Map<String, Value>>, GatewayError> {
        let generation = self.ring.get().generation;
        let key = token_key(token);
        if let Some(e) = self.verified.get(&key, now, generation) {
            return Ok(e.claims.clone());
        }
        let claims = Arc::new(self.open_jwt(token).ok_or(GatewayError::SignatureInvalid)?);
        let exp = claims
            .get("exp")
            .and_then(Value::as_u64)
            .unwrap_or(u64::MAX);
        self.verified.insert(
            key,
            Entry {
                claims: claims.clone(),
                identity: None,
                valid_until: exp.min(now.saturating_add(VERIFIED_TTL)),
                key_generation: generation,
            },
            now,
        );
        Ok(claims)
    }

    /// Verify one of our JWTs (signature, typ, iss); `exp` not checked here.
    fn open_jwt(&self, token: &str) -> Option<Map<String, Value>> {
        let ring = self.ring.get();
        let v = jose::verify(token, &ring.verify, &ring.algs, &Limits::default()).ok()?;
        if !v
            .header
            .typ
            .as_deref()
            .is_some_and(|t| jose::typ_matches(t, "at+jwt"))
        {
            return None;
        }
        let claims = v.claims().ok()?;
        (claims.get("iss").and_then(Value::as_str) == Some(self.issuer.as_str())).then_some(claims)
    }

    /// Check an access token this service issued. Errors are token errors (401) or
    /// `TokenStoreUnavailable` (503): a failed revocation lookup never accepts a token.
    pub async fn check_access(&self, token: &str, now: u64) -> Result<AccessInfo, GatewayError> {
        if token.len() > MAX_TOKEN {
            return Err(GatewayError::TokenTooLarge);
        }
        let unavailable = |_| GatewayError::TokenStoreUnavailable;
        let store = self.store.get().await.map_err(unavailable)?;
        if token.bytes().filter(|b| *b == b'.').count() == 2 {
            let claims = self.verified_jwt(token, now)?;
            let num = |k: &str| claims.get(k).and_then(Value::as_u64);
            let exp = num("exp");
            if exp.is_some_and(|e| now >= e) {
                return Err(GatewayError::TokenExpired);
            }
            let jti = claims
                .get("jti")
                .and_then(Value::as_str)
                .ok_or(GatewayError::ClaimMissing)?;
            let revoked = self
                .checked(
                    store
                        .is_access_revoked(&TokenHash::of(jti.as_bytes()))
                        .await,
                )
                .map_err(|_| GatewayError::TokenStoreUnavailable)?;
            if revoked {
                return Err(GatewayError::TokenRevoked);
            }
            let s = |k: &str| {
                claims
                    .get(k)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            return Ok(AccessInfo {
                client_id: s("client_id"),
                sub: s("sub"),
                scope: strings(claims.get("scope")),
                roles: strings(claims.get("roles")),
                aud: strings(claims.get("aud")),
                iat: num("iat").unwrap_or(0),
                exp,
                client_ip: claims
                    .get("client_ip")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse().ok()),
                jti: Some(jti.to_string()),
            });
        }
        let rec = self
            .checked(
                store
                    .get_access(&TokenHash::of(token.as_bytes()), now)
                    .await,
            )
            .map_err(|_| GatewayError::TokenStoreUnavailable)?
            .ok_or(GatewayError::TokenRevoked)?;
        Ok(AccessInfo {
            client_id: rec.client_id,
            sub: rec.sub,
            scope: rec.scope,
            roles: rec.roles,
            aud: rec.aud,
            iat: rec.issued_at,
            exp: rec.exp,
            client_ip: rec.client_ip,
            jti: None,
        })
    }

    /// RFC 7662. Anything not active is `{"active":false}` and nothing else.
    pub(super) async fn introspect(&self, c: &Client, f: &Form) -> Result<Reply, OAuthError> {
        let token = f
            .get("token")
            .ok_or(OAuthError::InvalidRequest("token is required"))?;
        let inactive = || ok_json(&json!({"active": false}));
        let now = now_unix();
        let info = match self.check_access(token, now).await {
            Ok(i) => Some((i, "access_token")),
            Err(GatewayError::TokenStoreUnavailable) => return Err(OAuthError::StoreUnavailable),
            Err(_) if token.len() <= MAX_TOKEN && !token.contains('.') => {
                let store = self.store().await?;
                let rt = self.checked(
                    store
                        .get_refresh(&TokenHash::of(token.as_bytes()), now)
                        .await,
                )?;
                rt.map(|r| {
                    (
                        AccessInfo {
                            client_id: r.client_id,
                            sub: r.sub,
                            scope: r.scope,
                            roles: r.roles,
                            aud: Vec::new(),
                            iat: r.issued_at,
                            exp: r.exp,
                            client_ip: None,
                            jti: None,
                        },
                        "refresh_token",
                    )
                })
            }
            Err(_) => None,
        };
        let Some((i, kind)) = info else {
            return Ok(inactive());
        };
        if i.client_id != c.id && !c.introspect_any {
            return Ok(inactive());
        }
        let mut v = json!({
            "active": true,
            "client_id": i.client_id,
            "sub": i.sub,
            "username": i.sub,
            "iss": self.issuer,
            "iat": i.iat,
            "token_type": if kind == "access_token" { "Bearer" } else { "refresh_token" },
        });
        if !i.scope.is_empty() {
            v["scope"] = json!(i.scope.join(" "));
        }
        if !i.aud.is_empty() {
            v["aud"] = json!(i.aud);
        }
        if let Some(e) = i.exp {
            v["exp"] = json!(e);
        }
        if let Some(j) = i.jti {
            v["jti"] = json!(j);
        }
        if !i.roles.is_empty() {
            v["roles"] = json!(i.roles);
        }
        Ok(ok_json(&v))
    }

    /// RFC 7009: 200 for anything, including unknown tokens and other clients' tokens (left
    /// alone). Revoking a refresh token revokes its family and the family's access tokens.
    pub(super) async fn revoke(&self, c: &Client, f: &Form) -> Result<Reply, OAuthError> {
        let token = f
            .get("token")
            .ok_or(OAuthError::InvalidRequest("token is required"))?;
        let hint = f.get("token_type_hint");
        if !matches!(hint, None | Some("access_token" | "refresh_token")) {
            return Err(OAuthError::UnsupportedTokenType);
        }
        let done = json_reply(200, &Value::Null);
        let mut done = done;
        done.body = bytes::Bytes::new();
        if token.len() > MAX_TOKEN {
            return Ok(done);
        }
        let store = self.store().await?;
        let now = now_unix();
        if token.bytes().filter(|b| *b == b'.').count() == 2 {
            if let Some(claims) = self.open_jwt(token) {
                let owner = claims.get("client_id").and_then(Value::as_str);
                let jti = claims.get("jti").and_then(Value::as_str);
                if let (Some(o), Some(jti)) = (owner, jti) {
                    if o == c.id {
                        let exp = claims.get("exp").and_then(Value::as_u64);
                        // A JWT without exp never expires: keep its tombstone for a long time.
                        let exp = Some(exp.unwrap_or(now + 10 * 365 * 86400));
                        self.checked(
                            store
                                .revoke_access(&TokenHash::of(jti.as_bytes()), &c.id, exp, now)
                                .await,
                        )?;
                    }
                }
            }
            return Ok(done);
        }
        let hash = TokenHash::of(token.as_bytes());
        let refresh_first = hint != Some("access_token");
        for step in 0..2 {
            let as_refresh = (step == 0) == refresh_first;
            let r = if as_refresh {
                self.checked(store.revoke_refresh(&hash, &c.id, now).await)?
            } else {
                self.checked(store.revoke_access(&hash, &c.id, None, now).await)?
            };
            if r != Revocation::NotFound {
                break;
            }
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// O19: 256 random bits per token, no duplicates, no structure.
    #[test]
    fn opaque_tokens_are_random() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100_000 {
            let t = random_token(32).unwrap();
            assert_eq!(jose::b64_decode(&t).unwrap().len(), 32);
            assert!(seen.insert(t));
        }
    }

    #[test]
    fn scope_rules() {
        let allowed = vec!["a".to_string(), "b".to_string()];
        assert_eq!(scopes(None, &allowed, &["a".into()]).unwrap(), vec!["a"]);
        assert_eq!(
            scopes(Some("b a b"), &allowed, &[]).unwrap(),
            vec!["b", "a"]
        );
        assert!(scopes(Some("a c"), &allowed, &[]).is_err());
    }
}
