//! The `jwt_generate` policy: mint a signed, encrypted or nested (sign-then-encrypt) JWT in
//! the request flow — credential injection toward the upstream, a token for the client, or a
//! variable for later policies.
//!
//! Claims come from literals and from the value language (`header.*`, `query.*`, `cookie.*`,
//! `claims.*` of a token verified earlier, `identity`, `client_ip`, `env.*`, `now`, `uuid`,
//! ...), each converted to a declared JSON type, with a default when absent. Values are data:
//! nothing a client sends is evaluated. The signing and encryption keys may be embedded or
//! taken per request from a remote (per-client) JWKS, cached in the same key cache as
//! `jwt_verify` (signing keys in sources of their own that keep private members).
//!
//! Minted-token cache: a token whose rendered claims (without iat/exp/nbf/jti), header and
//! keys are unchanged is reused until `refresh_at` (default 80%) of its lifetime; bounded
//! (`capacity`; when full, expired entries are purged and otherwise the new token is simply
//! not cached); off when `jti` differs per token or there is no `expires_in`.

use crate::config::policy::jwt_generate as config;
mod fields;
mod source;
mod values;

use super::edits::{Body, Edits, HeaderEdit, QueryEdit};
use super::keyconf::{check_enc_keys, compile_keys, Fetch, Keys};
use super::Effects;
use crate::cache::expiring::{ExpiringMap, Expiry};
use crate::error::{Errors, GatewayError};
use crate::expr::{uuid_v4, Template, Var};
use crate::jose::{self, Alg, Enc, EncryptOptions, JwkSet, KeyAlg, KeyHint, KeyOp};
use crate::keys::KeyCache;
use crate::request::RequestView;
use config::{IssuedAtConfig, JwtGenerateConfig};
use fields::{compile_crit, compile_expires, compile_not_before, compile_output, compile_pbes2};
use http::{HeaderName, HeaderValue};
use serde_json::{Map, Value};
use source::{Name, Source};
use std::sync::Arc;
use values::{parse_offset, set_pointer, shift};
pub use values::{parse_rfc3339, parse_time};

/// Registered claims the policy sets itself: they cannot be set twice.
const MANAGED: &[&str] = &["iat", "exp", "nbf", "jti"];
/// Header parameters the policy or the JOSE engine owns.
const RESERVED_HEADER: &[&str] = &[
    "alg", "enc", "zip", "epk", "apu", "apv", "iv", "tag", "p2s", "p2c", "b64", "jwk", "jku",
    "x5u", "x5c",
];
/// Largest `claims_from` JSON accepted.
pub(super) const MAX_CLAIMS_JSON: usize = 64 * 1024;

/// A minted token and the Unix second from which it is minted again, cached under the
/// SHA-256 of the rendered inputs.
#[derive(Debug, Clone)]
struct Minted {
    token: Arc<str>,
    reuse_until: u64,
}

impl Expiry for Minted {
    fn valid_until(&self) -> u64 {
        self.reuse_until
    }
}

/// `nbf`: an offset from the time of minting, or an absolute time.
#[derive(Debug, Clone, Copy)]
enum NotBefore {
    Offset(i64),
    At(u64),
}

/// `exp` = now + a fixed lifetime, or one a request value asks for (bounded by `max`).
#[derive(Debug)]
enum Expires {
    Fixed(u64),
    From {
        var: Var,
        max: u64,
        default: Option<u64>,
    },
}

#[derive(Debug)]
enum Jti {
    None,
    Uuid,
    Template(Template),
}

#[derive(Debug)]
enum Output {
    Header {
        name: HeaderName,
        prefix: String,
    },
    Query(String),
    ResponseHeader(HeaderName),
    Variable(String),
    /// Replace the request body (None) or set this JSON pointer in it.
    RequestBody(Option<String>),
    ResponseBody,
}

#[derive(Debug)]
struct Encrypt {
    keys: Keys,
    kid: Option<Template>,
    alg: KeyAlg,
    enc: Enc,
    zip: bool,
    /// PBES2 iteration count and salt length (None: the engine's defaults).
    p2c: Option<u32>,
    p2s_len: Option<usize>,
}

#[derive(Debug)]
pub struct JwtGenerate {
    alg: Option<Alg>,
    /// Embedded: a set holding exactly one key that can sign with `alg` (checked at load).
    /// Remote or per client: a key that can is picked per request.
    sign_keys: Option<Keys>,
    header: Vec<(String, Source)>,
    /// Names of `header` members listed in `crit` (present in every token: a missing value
    /// fails the request even with `ignore_unresolved`).
    crit: Vec<String>,
    /// Claims with a rendered name first (so a fixed name always wins), then fixed names.
    claims: Vec<(Name, Source)>,
    claims_from: Option<Var>,
    expires_in: Option<Expires>,
    not_before: Option<NotBefore>,
    /// `iat` = now + this offset; None: no `iat`.
    issued_at: Option<i64>,
    jti: Jti,
    ignore_unresolved: bool,
    encrypt: Option<Encrypt>,
    output: Output,
    cache: Option<ExpiringMap<Minted>>,
    refresh_at: f64,
    /// Whether the request body must be read before this policy runs.
    pub reads_body: bool,
}

/// The distinct code of a key that cannot serve the algorithm (None: another failure).
fn key_error(e: &jose::JoseError) -> Option<GatewayError> {
    use jose::JoseError as J;
    match e {
        J::KeyTypeMismatch(_)
        | J::KeyTooShort(_)
        | J::KeyLengthMismatch(_)
        | J::InvalidCurve(_) => Some(GatewayError::from(e)),
        _ => None,
    }
}

impl JwtGenerate {
    pub fn compile(
        c: &JwtGenerateConfig,
        path: &str,
        errs: &mut Errors,
        key_cache: &Arc<KeyCache>,
    ) -> Option<JwtGenerate> {
        let JwtGenerateConfig {
            algorithm,
            key,
            kid,
            typ,
            cty,
            header,
            crit,
            claims,
            claims_from,
            expires_in,
            not_before,
            issued_at,
            jti,
            ignore_unresolved,
            encrypt,
            output,
            cache,
        } = c;
        let before = errs.0.len();
        let alg = algorithm.as_ref().and_then(|a| {
            Alg::from_name(a)
                .ok_or_else(|| {
                    errs.push(
                        format!("{path}.algorithm"),
                        format!("{a:?} is not a JWS algorithm (\"none\" never is)"),
                    )
                })
                .ok()
        });
        if algorithm.is_none() && encrypt.is_none() {
            errs.push(
                path,
                "set `algorithm` (signed), `encrypt` (encrypted), or both (nested)",
            );
        }
        let sign_keys = match (
            algorithm.is_some(),
            compile_keys(
                key,
                &format!("{path}.key"),
                errs,
                key_cache,
                Fetch::SigningKeys,
            ),
        ) {
            (_, None) => None,
            (true, Some(Some(Keys::Static(set, g)))) => match set.keys() {
                [k] if k.is_private() => {
                    if let Some(a) = alg {
                        if let Err(e) = k.fits_alg(a, KeyOp::Sign) {
                            errs.push(format!("{path}.key"), format!("cannot sign {a}: {e}"));
                        }
                    }
                    Some(Keys::Static(set.clone(), g))
                }
                [_] => {
                    errs.push(
                        format!("{path}.key"),
                        "a private key (or a secret) is needed to sign",
                    );
                    None
                }
                _ => {
                    errs.push(format!("{path}.key"), "give exactly one signing key");
                    None
                }
            },
            // A remote or per-client source: the key is picked per request.
            (true, Some(Some(k))) => Some(k),
            (true, Some(None)) => {
                errs.push(format!("{path}.key"), "a signing key is needed");
                None
            }
            (false, Some(Some(_))) => {
                errs.push(
                    format!("{path}.key"),
                    "a key without `algorithm` is never used",
                );
                None
            }
            (false, Some(None)) => None,
        };
        let mut hdr = Vec::new();
        for (name, t) in [("typ", typ), ("cty", cty), ("kid", kid)] {
            if let Some(s) = t
                .as_ref()
                .and_then(|t| Source::text(t, &format!("{path}.{name}"), errs))
            {
                hdr.push((name.to_string(), s));
            }
        }
        for (k, v) in header {
            if RESERVED_HEADER.contains(&k.as_str()) || ["typ", "cty", "kid"].contains(&k.as_str())
            {
                errs.push(
                    format!("{path}.header.{k}"),
                    "set by the policy (use typ / cty / kid) or not allowed",
                );
                continue;
            }
            if k == "crit" {
                errs.push(
                    format!("{path}.header.crit"),
                    "list critical header names in `crit`",
                );
                continue;
            }
            if let Some(s) = Source::header(v, &format!("{path}.header.{k}"), errs) {
                hdr.push((k.clone(), s));
            }
        }
        compile_crit(
            crit,
            header,
            algorithm.is_some(),
            &format!("{path}.crit"),
            errs,
        );
        let mut cl = Vec::new();
        for (name, spec) in claims {
            let p = format!("{path}.claims.{name}");
            if MANAGED.contains(&name.as_str()) {
                errs.push(
                    &p,
                    "set by the policy: use expires_in, not_before, issued_at or jti",
                );
                continue;
            }
            if let (Some(n), Some(s)) = (Name::parse(name, &p, errs), Source::claim(spec, &p, errs))
            {
                cl.push((n, s));
            }
        }
        cl.sort_by_key(|(n, _)| matches!(n, Name::Fixed(_)));
        let claims_from = claims_from.as_ref().and_then(|f| {
            Var::parse(f)
                .map_err(|e| errs.push(format!("{path}.claims_from"), e))
                .ok()
        });
        let not_before = not_before
            .as_ref()
            .and_then(|n| compile_not_before(n, &format!("{path}.not_before"), errs));
        let issued_at = match issued_at {
            IssuedAtConfig::Flag(true) => Some(0),
            IssuedAtConfig::Flag(false) => None,
            IssuedAtConfig::Offset(o) => parse_offset(o)
                .map_err(|e| errs.push(format!("{path}.issued_at"), e))
                .ok(),
        };
        let jti = match jti.as_deref() {
            None => Jti::None,
            Some("uuid") => Jti::Uuid,
            Some(t) => match Template::parse(t) {
                Ok(t) => Jti::Template(t),
                Err(e) => {
                    errs.push(format!("{path}.jti"), e);
                    Jti::None
                }
            },
        };
        let encrypt = encrypt.as_ref().and_then(|e| {
            let p = format!("{path}.encrypt");
            let ka = KeyAlg::from_name(&e.key_algorithm);
            if ka.is_none() {
                errs.push(
                    format!("{p}.key_algorithm"),
                    format!("unknown {:?}", e.key_algorithm),
                );
            }
            let en = Enc::from_name(&e.encryption);
            if en.is_none() {
                errs.push(
                    format!("{p}.encryption"),
                    format!("unknown {:?}", e.encryption),
                );
            }
            let keys = match compile_keys(
                &e.key,
                &format!("{p}.key"),
                errs,
                key_cache,
                Fetch::PublicKeys,
            ) {
                Some(Some(k)) => {
                    if let (Some(a), Some(n)) = (ka, en) {
                        check_enc_keys(&k, &[a], &[n], KeyOp::Encrypt, &format!("{p}.key"), errs);
                    }
                    Some(k)
                }
                Some(None) => {
                    errs.push(format!("{p}.key"), "the recipient's key is needed");
                    None
                }
                None => None,
            };
            let kid = e.kid.as_ref().and_then(|k| {
                Template::parse(k)
                    .map_err(|m| errs.push(format!("{p}.kid"), m))
                    .ok()
            });
            let (p2c, p2s_len) = compile_pbes2(e, ka, &p, errs);
            Some(Encrypt {
                keys: keys?,
                kid,
                alg: ka?,
                enc: en?,
                zip: e.zip,
                p2c,
                p2s_len,
            })
        });
        let expires_in = expires_in
            .as_ref()
            .and_then(|e| compile_expires(e, &format!("{path}.expires_in"), errs));
        let output = compile_output(output, &format!("{path}.output"), errs);
        if !(cache.refresh_at > 0.0 && cache.refresh_at <= 1.0) {
            errs.push(format!("{path}.cache.refresh_at"), "a fraction in (0, 1]");
        }
        if cache.enabled && cache.capacity == 0 {
            errs.push(
                format!("{path}.cache.capacity"),
                "must be >= 1 (or enabled = false)",
            );
        }
        if errs.0.len() > before {
            return None;
        }
        let volatile_jti = match &jti {
            Jti::Uuid => true,
            Jti::Template(t) => t.is_volatile(),
            Jti::None => false,
        };
        let cacheable = cache.enabled && expires_in.is_some() && !volatile_jti;
        let reads_body = cl.iter().any(|(n, s)| n.reads_body() || s.reads_body())
            || claims_from.as_ref().is_some_and(Var::reads_body)
            || hdr.iter().any(|(_, s)| s.reads_body())
            || matches!(&jti, Jti::Template(t) if t.reads_body())
            || matches!(&expires_in, Some(Expires::From { var, .. }) if var.reads_body())
            || encrypt
                .as_ref()
                .is_some_and(|e| e.kid.as_ref().is_some_and(Template::reads_body))
            || matches!(output, Some(Output::RequestBody(_)));
        Some(JwtGenerate {
            alg,
            sign_keys,
            header: hdr,
            crit: crit.clone(),
            claims: cl,
            claims_from,
            expires_in,
            not_before,
            issued_at,
            jti,
            ignore_unresolved: *ignore_unresolved,
            encrypt,
            output: output?,
            cache: cacheable.then(|| ExpiringMap::new(cache.capacity)),
            refresh_at: cache.refresh_at,
            reads_body,
        })
    }

    fn resolve_claims(&self, v: &RequestView<'_>) -> Result<Map<String, Value>, GatewayError> {
        let mut out = Map::new();
        if let Some(var) = &self.claims_from {
            match var.resolve(v) {
                Some(text) if text.len() <= MAX_CLAIMS_JSON => {
                    match jose::json::parse_object(text.as_bytes()) {
                        Ok(m) => {
                            for (k, val) in m {
                                if !MANAGED.contains(&k.as_str()) {
                                    out.insert(k, val);
                                }
                            }
                        }
                        Err(_) if self.ignore_unresolved => {}
                        Err(_) => return Err(GatewayError::ValueUnresolved),
                    }
                }
                _ if self.ignore_unresolved => {}
                _ => return Err(GatewayError::ValueUnresolved),
            }
        }
        for (name, src) in &self.claims {
            let name = match name {
                Name::Fixed(n) => n.clone(),
                Name::Template(t) => match t.render(v) {
                    Some(n) if self.name_is_free(&n) => n,
                    Some(_) => {
                        log::info!(
                            "jwt_generate: a rendered claim name is empty or taken: skipped"
                        );
                        continue;
                    }
                    None if self.ignore_unresolved => continue,
                    None => return Err(GatewayError::ValueUnresolved),
                },
            };
            match src.resolve(v) {
                Some(x) => {
                    out.insert(name, x);
                }
                None if self.ignore_unresolved => {}
                None => return Err(GatewayError::ValueUnresolved),
            }
        }
        Ok(out)
    }

    /// Whether a rendered claim name may be used: not empty, not managed by the policy, not
    /// one of the fixed names (a request value never replaces a claim the config sets).
    fn name_is_free(&self, n: &str) -> bool {
        !n.is_empty()
            && !MANAGED.contains(&n)
            && !self
                .claims
                .iter()
                .any(|(f, _)| matches!(f, Name::Fixed(f) if f == n))
    }

    fn render_header(&self, v: &RequestView<'_>) -> Result<Map<String, Value>, GatewayError> {
        let mut h = Map::new();
        for (name, s) in &self.header {
            match s.resolve(v) {
                Some(x) => {
                    h.insert(name.clone(), x);
                }
                None if self.ignore_unresolved && !self.crit.contains(name) => {}
                None => return Err(GatewayError::ValueUnresolved),
            }
        }
        if !self.crit.is_empty() {
            h.insert(
                "crit".into(),
                Value::Array(self.crit.iter().cloned().map(Value::String).collect()),
            );
        }
        Ok(h)
    }

    /// The lifetime of this token in seconds (None: no `exp`). A lifetime asked for by the
    /// request must be a whole number of seconds (`"300"`) or a duration (`"5m"`), from 1s up
    /// to `max`; a missing one without a default fails even with `ignore_unresolved`, since
    /// omitting `exp` would make the token live forever.
    fn lifetime(&self, v: &RequestView<'_>) -> Result<Option<u64>, GatewayError> {
        let (var, max, default) = match &self.expires_in {
            None => return Ok(None),
            Some(Expires::Fixed(s)) => return Ok(Some(*s)),
            Some(Expires::From { var, max, default }) => (var, *max, *default),
        };
        let Some(text) = var.resolve(v) else {
            return default.map(Some).ok_or(GatewayError::ValueUnresolved);
        };
        let t = text.trim();
        let secs = match t.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => crate::units::parse_duration(t)
                .ok()
                .and_then(|d| crate::units::whole_seconds(d).ok()),
        };
        match secs {
            Some(s) if (1..=max).contains(&s) => Ok(Some(s)),
            _ => {
                log::info!("jwt_generate: requested lifetime refused (max {max}s)");
                Err(GatewayError::ExpiresInInvalid)
            }
        }
    }

    async fn encryption_key(
        &self,
        e: &Encrypt,
        v: &RequestView<'_>,
    ) -> Result<(Arc<JwkSet>, usize, String), GatewayError> {
        let src = e
            .keys
            .resolve(v)
            .map_err(|_| GatewayError::KeyUnavailable)?;
        let (set, _) = src.get().await.map_err(|_| GatewayError::KeyUnavailable)?;
        let kid = match &e.kid {
            Some(t) => Some(t.render(v).ok_or(GatewayError::ValueUnresolved)?),
            None => None,
        };
        let names = [e.alg.name()];
        let hint = KeyHint {
            kid: kid.as_deref(),
            ..KeyHint::default()
        };
        // A remote key that does not fit the algorithm is passed over; when none fits, the
        // first one's reason is the answer (its own code, not a generic failure).
        let mut misfit = None;
        let key = set
            .candidates(hint, KeyOp::Encrypt, &names)
            .find(|k| match k.fits_key_alg(e.alg, e.enc, KeyOp::Encrypt) {
                Ok(()) => true,
                Err(err) => {
                    misfit.get_or_insert(err);
                    false
                }
            })
            .ok_or_else(|| match misfit.as_ref() {
                Some(err) => {
                    log::warn!("jwt_generate: no usable encryption key: {err}");
                    key_error(err).unwrap_or(GatewayError::KeyUnavailable)
                }
                None => GatewayError::KeyUnavailable,
            })?;
        let id = format!("{}#{}", key.kid().unwrap_or(""), key.thumbprint());
        let idx = set
            .keys()
            .iter()
            .position(|k| std::ptr::eq(k, key))
            .ok_or(GatewayError::KeyUnavailable)?;
        Ok((set.clone(), idx, id))
    }

    /// The key to sign with, as (set, index, id for the minted-token cache): the embedded
    /// key, or the first key of the remote (per-client) set that can sign with `alg` and,
    /// when the header names a kid, has that kid. An unknown kid triggers the source's
    /// single-flight refetch once.
    async fn signing_key(
        keys: &Keys,
        alg: Alg,
        kid: Option<&str>,
        v: &RequestView<'_>,
    ) -> Result<(Arc<JwkSet>, usize, String), GatewayError> {
        if let Keys::Static(set, _) = keys {
            return Ok((set.clone(), 0, String::new()));
        }
        let src = keys.resolve(v).map_err(|_| GatewayError::KeyUnavailable)?;
        let (mut set, _) = src.get().await.map_err(|_| GatewayError::KeyUnavailable)?;
        let pick = |set: &JwkSet| {
            set.keys()
                .iter()
                .position(|k| kid.is_none_or(|want| k.kid() == Some(want)) && k.can_sign(alg))
        };
        let mut idx = pick(&set);
        if idx.is_none() && kid.is_some() {
            if let Some((fresh, _)) = src.refresh_unknown().await {
                idx = pick(&fresh);
                set = fresh;
            }
        }
        let Some(idx) = idx else {
            log::warn!(
                "jwt_generate: no key of the signing JWKS can sign with {}",
                alg.name()
            );
            return Err(GatewayError::KeyUnavailable);
        };
        let key = set.keys().get(idx).ok_or(GatewayError::KeyUnavailable)?;
        let id = format!("{}#{}", key.kid().unwrap_or(""), key.thumbprint());
        Ok((set, idx, id))
    }

    /// Request phase: mint (or reuse) the token and queue it for its destination (a header,
    /// query parameter or body of the upstream request, a response header or body, or a
    /// variable for later policies). `pending` is what earlier policies queued: a body
    /// output builds on an earlier body rewrite.
    pub async fn request_filter(
        &self,
        v: &RequestView<'_>,
        pending: &Edits,
        fx: &mut Effects,
    ) -> Result<(), GatewayError> {
        self.mint_at(v, pending, fx, v.now()).await
    }

    /// The request phase at a given time (Unix seconds): `iat`/`nbf`/`exp` and the reuse of
    /// a cached token are decided against `now`.
    pub(crate) async fn mint_at(
        &self,
        v: &RequestView<'_>,
        pending: &Edits,
        fx: &mut Effects,
        now: u64,
    ) -> Result<(), GatewayError> {
        let mut claims = self.resolve_claims(v)?;
        let header = self.render_header(v)?;
        let jti = match &self.jti {
            Jti::None => None,
            Jti::Uuid => Some(uuid_v4().map_err(|_| {
                log::error!("no random bytes from the system for a jti");
                GatewayError::SigningFailed
            })?),
            Jti::Template(t) => Some(t.render(v).ok_or(GatewayError::ValueUnresolved)?),
        };
        let sign_key = match (&self.sign_keys, self.alg) {
            (Some(keys), Some(alg)) => {
                let kid = header.get("kid").and_then(Value::as_str);
                Some(Self::signing_key(keys, alg, kid, v).await?)
            }
            _ => None,
        };
        let lifetime = self.lifetime(v)?;
        let enc_key = match &self.encrypt {
            Some(e) => Some(self.encryption_key(e, v).await?),
            None => None,
        };
        let cache_key = self.cache.as_ref().map(|_| {
            let material = serde_json::json!([
                claims,
                header,
                jti,
                enc_key.as_ref().map(|k| &k.2),
                sign_key.as_ref().map(|k| &k.2),
                lifetime
            ]);
            let d = aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA256,
                material.to_string().as_bytes(),
            );
            let mut k = [0u8; 32];
            k.copy_from_slice(d.as_ref());
            k
        });
        if let (Some(c), Some(k)) = (&self.cache, &cache_key) {
            let hit = c.read(k, |hit| {
                (now < hit.reuse_until).then(|| self.deliver(&hit.token, v, pending, fx))
            });
            if let Some(Some(delivered)) = hit {
                return delivered;
            }
        }
        if let Some(o) = self.issued_at {
            claims.insert("iat".into(), Value::from(shift(now, o)));
        }
        if let Some(nb) = self.not_before {
            let t = match nb {
                NotBefore::Offset(o) => shift(now, o),
                NotBefore::At(t) => t,
            };
            claims.insert("nbf".into(), Value::from(t));
        }
        if let Some(e) = lifetime {
            claims.insert("exp".into(), Value::from(now.saturating_add(e)));
        }
        if let Some(j) = jti {
            claims.insert("jti".into(), Value::String(j));
        }
        let payload = serde_json::to_vec(&claims).map_err(|_| GatewayError::SigningFailed)?;
        let sign_key = sign_key
            .as_ref()
            .and_then(|(set, idx, _)| set.keys().get(*idx));
        let signed = match (&self.alg, sign_key) {
            (Some(alg), Some(key)) => {
                Some(jose::sign(&payload, key, *alg, &header).map_err(|e| {
                    log::warn!("jwt_generate: signing failed: {e}");
                    key_error(&e).unwrap_or(GatewayError::SigningFailed)
                })?)
            }
            _ => None,
        };
        let token = match (&self.encrypt, enc_key) {
            (Some(e), Some((set, idx, _))) => {
                let key = set.keys().get(idx).ok_or(GatewayError::KeyUnavailable)?;
                let mut opts = EncryptOptions {
                    zip: e.zip,
                    key_mgmt: jose::KeyMgmtOptions {
                        p2c: e.p2c,
                        p2s_len: e.p2s_len,
                        ..jose::KeyMgmtOptions::default()
                    },
                    ..EncryptOptions::default()
                };
                let plaintext = match &signed {
                    Some(jws) => {
                        opts.header
                            .insert("cty".into(), Value::String("JWT".into()));
                        jws.as_bytes().to_vec()
                    }
                    None => {
                        opts.header = header.clone();
                        payload
                    }
                };
                jose::encrypt(&plaintext, key, e.alg, e.enc, &opts).map_err(|err| {
                    log::warn!("jwt_generate: encryption failed: {err}");
                    key_error(&err).unwrap_or(GatewayError::EncryptionFailed)
                })?
            }
            _ => signed.ok_or(GatewayError::SigningFailed)?,
        };
        let token: Arc<str> = Arc::from(token);
        if let (Some(c), Some(k), Some(life)) = (&self.cache, cache_key, lifetime) {
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )]
            let reuse = (life as f64 * self.refresh_at) as u64;
            let minted = Minted {
                token: token.clone(),
                reuse_until: now.saturating_add(reuse),
            };
            c.insert(k, minted, now);
        }
        self.deliver(&token, v, pending, fx)
    }

    /// The upstream request body with the token: the whole body, or set at a JSON pointer
    /// of the JSON body (as an earlier policy rewrote it, else as the client sent it).
    fn deliver_body(
        &self,
        ptr: &Option<String>,
        token: &str,
        v: &RequestView<'_>,
        pending: &Edits,
    ) -> Result<Body, GatewayError> {
        let Some(ptr) = ptr else {
            return Ok(Body {
                bytes: bytes::Bytes::from(token.to_string()),
                content_type: HeaderValue::from_static(JWT),
            });
        };
        let raw_empty = v.raw_body.is_none_or(<[u8]>::is_empty);
        let mut doc = match (&pending.upstream_body, v.body) {
            (Some(b), _) => {
                serde_json::from_slice(&b.bytes).map_err(|_| GatewayError::ValueUnresolved)?
            }
            (None, Some(b)) => b.clone(),
            (None, None) if raw_empty => Value::Object(Map::new()),
            // A body that is not JSON is never silently replaced.
            (None, None) => return Err(GatewayError::ValueUnresolved),
        };
        set_pointer(&mut doc, ptr, Value::String(token.to_string()))
            .ok_or(GatewayError::ValueUnresolved)?;
        let bytes = serde_json::to_vec(&doc).map_err(|_| GatewayError::SigningFailed)?;
        Ok(Body {
            bytes: bytes::Bytes::from(bytes),
            content_type: HeaderValue::from_static("application/json"),
        })
    }

    fn deliver(
        &self,
        token: &str,
        v: &RequestView<'_>,
        pending: &Edits,
        fx: &mut Effects,
    ) -> Result<(), GatewayError> {
        let edits = &mut fx.edits;
        match &self.output {
            Output::Header { name, prefix } => {
                let hv = HeaderValue::from_str(&format!("{prefix}{token}"))
                    .map_err(|_| GatewayError::SigningFailed)?;
                edits.upstream.push(HeaderEdit::Set(name.clone(), hv));
            }
            Output::Query(q) => edits
                .query
                .push(QueryEdit::Set(q.clone(), token.to_string())),
            Output::ResponseHeader(name) => {
                let hv = HeaderValue::from_str(token).map_err(|_| GatewayError::SigningFailed)?;
                edits.response.push(HeaderEdit::Append(name.clone(), hv));
            }
            Output::Variable(n) => fx.vars.push((n.clone(), token.to_string())),
            Output::RequestBody(ptr) => {
                edits.upstream_body = Some(self.deliver_body(ptr, token, v, pending)?);
            }
            Output::ResponseBody => {
                edits.response_body = Some(Body {
                    bytes: bytes::Bytes::from(token.to_string()),
                    content_type: HeaderValue::from_static(JWT),
                });
            }
        }
        Ok(())
    }
}

/// The media type of a bare token (RFC 7519 §10.3.1).
const JWT: &str = "application/jwt";
