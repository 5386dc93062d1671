//! The `jwt_verify` policy: verify JWS, JWE or nested (sign-then-encrypt) tokens on a route,
//! apply claim rules, establish the client identity, enforce an ACL, and pass claims upstream.
//!
//! Request phase: find the token (configured sources, in order; two different tokens are
//! refused), check its size, look it up in the verified-token cache, else verify with the JOSE
//! engine under this policy's algorithm allow-lists and keys, validate the claims, cache the
//! result (never past `exp`, dropped when the key set changes), then check the ACL for the
//! request method. Verified claims and the identity become variables (`claims.*`, `identity`)
//! for later policies and conditions. Upstream phase: claims to headers, payload header,
//! token stripping (all computed in the request phase, applied by the proxy).
//!
//! `enabled = "shadow"` runs everything and records the decision (access log + metric) but
//! never denies and never changes the request.

use crate::config::policy::jwt_verify as config;

use super::edits::HeaderEdit;
use super::keyconf::{check_enc_keys, check_sig_keys, compile_keys, Fetch, Keys, Resolved};
use super::token_source::{self, Source};
use super::Effects;
use crate::cache::verified::{token_key, Entry, VerifiedCache};
use crate::error::{Errors, GatewayError};
use crate::jose::{self, Alg, ClaimRules, DecryptPolicy, Enc, JwkSet, KeyAlg, KeyOp, Limits};
use crate::keys::KeyCache;
use crate::request::RequestView;
use config::{AclConfig, AclRuleConfig, HeaderFormat, JwtVerifyConfig, SubjectConfig, TokenForm};
use http::{HeaderName, HeaderValue, Method};
use regex::Regex;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug)]
enum Subject {
    Prefix(String),
    Regex(Regex),
}

#[derive(Debug, Default)]
struct AclRule {
    identities: Vec<String>,
    roles: Vec<String>,
    scopes: Vec<String>,
}

#[derive(Debug)]
struct Acl {
    default: AclRule,
    methods: HashMap<Method, AclRule>,
    roles_claim: String,
    scope_claim: String,
}

#[derive(Debug)]
struct ClaimHeader {
    claim: String,
    header: HeaderName,
    format: HeaderFormat,
}

#[derive(Debug)]
pub struct JwtVerify {
    sources: Vec<Source>,
    jws: bool,
    jwe: bool,
    nested: bool,
    algs: Vec<Alg>,
    key_algs: Vec<KeyAlg>,
    encs: Vec<Enc>,
    allow_zip: bool,
    limits: Limits,
    /// Header parameters `crit` may list.
    known_headers: Vec<String>,
    require_kid: bool,
    keys: Option<Keys>,
    dec_keys: Option<Keys>,
    rules: ClaimRules,
    subject: Option<Subject>,
    one_of: Vec<(String, Vec<Value>)>,
    contains: Vec<(String, Vec<String>)>,
    identity_claim: String,
    acl: Option<Acl>,
    to_headers: Vec<ClaimHeader>,
    payload_header: Option<HeaderName>,
    pub forward_token: bool,
    /// A form source: the body is read before this policy runs.
    pub reads_body: bool,
    cache: Option<Arc<VerifiedCache>>,
    cache_ttl: u64,
    pub realm: Option<String>,
}

/// What verification produced.
struct Outcome {
    claims: Arc<Map<String, Value>>,
    identity: Option<Arc<str>>,
}

/// Headers the gateway will not let a claim mapping write.
const FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-connection",
];

fn header_name(name: &str, path: &str, errs: &mut Errors) -> Option<HeaderName> {
    let lower = name.to_ascii_lowercase();
    if FORBIDDEN_HEADERS.contains(&lower.as_str()) {
        errs.push(path, format!("{name:?} cannot be set from a claim"));
        return None;
    }
    HeaderName::from_bytes(lower.as_bytes())
        .map_err(|_| errs.push(path, format!("invalid header name {name:?}")))
        .ok()
}

fn acl_rule(r: &AclRuleConfig) -> AclRule {
    let AclRuleConfig {
        identities,
        roles,
        scopes,
    } = r;
    AclRule {
        identities: identities.clone(),
        roles: roles.clone(),
        scopes: scopes.clone(),
    }
}

fn compile_acl(a: &AclConfig, path: &str, errs: &mut Errors) -> Acl {
    let AclConfig {
        identities,
        roles,
        scopes,
        roles_claim,
        scope_claim,
        methods,
    } = a;
    let mut m = HashMap::new();
    for (name, rule) in methods {
        match Method::from_bytes(name.to_ascii_uppercase().as_bytes()) {
            Ok(meth) => {
                m.insert(meth, acl_rule(rule));
            }
            Err(_) => errs.push(format!("{path}.methods.{name}"), "invalid method"),
        }
    }
    Acl {
        default: AclRule {
            identities: identities.clone(),
            roles: roles.clone(),
            scopes: scopes.clone(),
        },
        methods: m,
        roles_claim: roles_claim.clone(),
        scope_claim: scope_claim.clone(),
    }
}

fn toml_to_json(v: &toml::Value) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

impl JwtVerify {
    /// `cache` is the shared verified-token cache for this config (kept across reloads).
    pub fn compile(
        c: &JwtVerifyConfig,
        path: &str,
        errs: &mut Errors,
        cache: Option<Arc<VerifiedCache>>,
        key_cache: &Arc<KeyCache>,
    ) -> Option<JwtVerify> {
        let JwtVerifyConfig {
            sources,
            forms,
            algorithms,
            key_algorithms,
            encryptions,
            allow_zip,
            allow_unsigned_jwe,
            max_token_size,
            keys,
            decryption_keys,
            issuers,
            audiences,
            subject,
            required_claims,
            prohibited_claims,
            claims,
            contains,
            clock_skew,
            require_exp,
            max_lifetime,
            known_headers,
            require_kid,
            typ,
            identity_claim,
            acl,
            claims_to_headers,
            payload_header,
            forward_token,
            cache: cache_cfg,
            realm,
        } = c;
        let before = errs.0.len();
        let sources = token_source::compile_all(sources, path, errs);
        if forms.is_empty() {
            errs.push(
                format!("{path}.forms"),
                "list at least one of jws, jwe, nested",
            );
        }
        let jws = forms.contains(&TokenForm::Jws);
        let jwe = forms.contains(&TokenForm::Jwe);
        let nested = forms.contains(&TokenForm::Nested);
        let mut algs = Vec::new();
        for (i, a) in algorithms.iter().enumerate() {
            match Alg::from_name(a) {
                Some(a) => algs.push(a),
                None => errs.push(
                    format!("{path}.algorithms[{i}]"),
                    format!("{a:?} is not an accepted JWS algorithm (\"none\" never is)"),
                ),
            }
        }
        let mut key_algs = Vec::new();
        for (i, a) in key_algorithms.iter().enumerate() {
            match KeyAlg::from_name(a) {
                Some(a) => key_algs.push(a),
                None => errs.push(
                    format!("{path}.key_algorithms[{i}]"),
                    format!("unknown JWE key management algorithm {a:?}"),
                ),
            }
        }
        let mut encs = Vec::new();
        for (i, e) in encryptions.iter().enumerate() {
            match Enc::from_name(e) {
                Some(e) => encs.push(e),
                None => errs.push(
                    format!("{path}.encryptions[{i}]"),
                    format!("unknown JWE content encryption {e:?}"),
                ),
            }
        }
        let keys = compile_keys(
            keys,
            &format!("{path}.keys"),
            errs,
            key_cache,
            Fetch::PublicKeys,
        );
        let dec_keys = compile_keys(
            decryption_keys,
            &format!("{path}.decryption_keys"),
            errs,
            key_cache,
            Fetch::PublicKeys,
        );
        if let (true, Some(Some(k))) = (jws || nested, &keys) {
            check_sig_keys(k, &algs, KeyOp::Verify, &format!("{path}.keys"), errs);
        }
        if let (true, Some(Some(k))) = (jwe || nested, &dec_keys) {
            check_enc_keys(
                k,
                &key_algs,
                &encs,
                KeyOp::Decrypt,
                &format!("{path}.decryption_keys"),
                errs,
            );
        }
        if jws || nested {
            if algorithms.is_empty() {
                errs.push(
                    format!("{path}.algorithms"),
                    "list the JWS algorithms accepted",
                );
            }
            if matches!(keys, Some(None)) {
                errs.push(
                    format!("{path}.keys"),
                    "signature verification keys are needed",
                );
            }
        }
        if jwe || nested {
            if key_algorithms.is_empty() || encryptions.is_empty() {
                errs.push(
                    path,
                    "jwe and nested forms need key_algorithms and encryptions",
                );
            }
            if matches!(dec_keys, Some(None)) {
                errs.push(
                    format!("{path}.decryption_keys"),
                    "decryption keys are needed",
                );
            }
        }
        if matches!(dec_keys, Some(Some(Keys::FromRequest(_)))) {
            errs.push(
                format!("{path}.decryption_keys.from"),
                "a private key never comes from the request",
            );
        }
        if jwe && !allow_unsigned_jwe {
            if let Some(i) = key_algs.iter().position(|a| a.is_public_key()) {
                errs.push(
                    format!("{path}.key_algorithms[{i}]"),
                    "the jwe form with a public-key key management algorithm accepts tokens \
                     anyone holding the public key can make; use the nested form (signed, then \
                     encrypted), a symmetric algorithm, or set allow_unsigned_jwe = true",
                );
            }
        }
        let max = usize::try_from(max_token_size.0).unwrap_or(usize::MAX);
        if max < 64 {
            errs.push(
                format!("{path}.max_token_size"),
                "must be at least 64 bytes",
            );
        }
        let limits = Limits {
            max_token: max,
            ..Limits::default()
        };
        for (i, h) in known_headers.iter().enumerate() {
            if h.is_empty() || jose::Header::is_registered(h) || h == "b64" {
                errs.push(
                    format!("{path}.known_headers[{i}]"),
                    format!("{h:?} is registered or processed by the JOSE engine itself"),
                );
            }
        }
        let (subject_exact, subject) = match subject {
            None => (None, None),
            Some(SubjectConfig {
                equals,
                prefix,
                regex,
            }) => {
                let n = [equals.is_some(), prefix.is_some(), regex.is_some()]
                    .iter()
                    .filter(|b| **b)
                    .count();
                if n != 1 {
                    errs.push(
                        format!("{path}.subject"),
                        "exactly one of equals, prefix, regex",
                    );
                }
                let re = regex.as_ref().and_then(|r| {
                    Regex::new(r)
                        .map_err(|e| {
                            errs.push(
                                format!("{path}.subject.regex"),
                                format!("invalid regex: {e}"),
                            )
                        })
                        .ok()
                });
                (
                    equals.clone(),
                    prefix
                        .clone()
                        .map(Subject::Prefix)
                        .or(re.map(Subject::Regex)),
                )
            }
        };
        let mut one_of = Vec::new();
        for (k, v) in claims {
            let vals = match v {
                toml::Value::Array(items) => items.iter().map(toml_to_json).collect(),
                other => vec![toml_to_json(other)],
            };
            if vals.is_empty() {
                errs.push(
                    format!("{path}.claims.{k}"),
                    "an empty list matches nothing",
                );
            }
            one_of.push((k.clone(), vals));
        }
        if identity_claim.is_empty() {
            errs.push(format!("{path}.identity_claim"), "must name a claim");
        }
        let acl = acl
            .as_ref()
            .map(|a| compile_acl(a, &format!("{path}.acl"), errs));
        let mut to_headers = Vec::new();
        for (i, m) in claims_to_headers.iter().enumerate() {
            let p = format!("{path}.claims_to_headers[{i}]");
            if let Some(h) = header_name(&m.header, &format!("{p}.header"), errs) {
                to_headers.push(ClaimHeader {
                    claim: m.claim.clone(),
                    header: h,
                    format: m.format,
                });
            }
        }
        let payload_header = payload_header
            .as_ref()
            .and_then(|h| header_name(h, &format!("{path}.payload_header"), errs));
        if cache_cfg.enabled && cache_cfg.capacity == 0 {
            errs.push(
                format!("{path}.cache.capacity"),
                "must be >= 1 (or enabled = false)",
            );
        }
        let mut secs = |d: &crate::units::HumanDuration, key: &str| {
            crate::units::whole_seconds(d.0)
                .map_err(|e| errs.push(format!("{path}.{key}"), e))
                .unwrap_or(0)
        };
        let leeway = secs(clock_skew, "clock_skew");
        let max_lifetime = max_lifetime.as_ref().map(|d| secs(d, "max_lifetime"));
        let cache_ttl = secs(&cache_cfg.ttl, "cache.ttl");
        if errs.0.len() > before {
            return None;
        }
        let reads_body = token_source::reads_body(&sources);
        let rules = ClaimRules {
            issuers: issuers.clone(),
            audiences: audiences.clone(),
            subject: subject_exact,
            typ: typ.clone(),
            leeway,
            require_exp: *require_exp,
            require_iat: max_lifetime.is_some(),
            max_lifetime,
            max_age: None,
            required: required_claims.clone(),
            prohibited: prohibited_claims.clone(),
            exact: Vec::new(),
        };
        Some(JwtVerify {
            sources,
            jws,
            jwe,
            nested,
            algs,
            key_algs,
            encs,
            allow_zip: *allow_zip,
            limits,
            known_headers: known_headers.clone(),
            require_kid: *require_kid,
            keys: keys.flatten(),
            dec_keys: dec_keys.flatten(),
            rules,
            subject,
            one_of,
            contains: contains
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            identity_claim: identity_claim.clone(),
            acl,
            to_headers,
            payload_header,
            forward_token: *forward_token,
            reads_body,
            cache: if cache_cfg.enabled { cache } else { None },
            cache_ttl,
            realm: realm.clone(),
        })
    }

    /// The cache capacity this config asks for (None: no cache).
    pub fn cache_capacity(c: &JwtVerifyConfig) -> Option<usize> {
        c.cache.enabled.then_some(c.cache.capacity)
    }

    fn resolve(keys: &Option<Keys>, v: &RequestView<'_>) -> Result<Resolved, GatewayError> {
        match keys {
            Some(k) => k.resolve(v),
            None => Ok(Resolved::Static(Arc::new(JwkSet::default()), 0)),
        }
    }

    /// The view used to render a per-client JWKS URL: request values plus the token's
    /// *unverified* claims (JWS only; the URL must still match the allow-list).
    fn unverified_claims(&self, token: &str) -> Option<Map<String, Value>> {
        if !matches!(self.keys, Some(Keys::PerClient { .. })) {
            return None;
        }
        let mut parts = token.split('.');
        let (_, payload, _, None) = (parts.next(), parts.next()?, parts.next()?, parts.next())
        else {
            return None;
        };
        let bytes = jose::b64_decode(payload).ok()?;
        jose::json::parse_object(&bytes).ok()
    }

    /// The JOSE engine's additions for this policy.
    fn opts(&self) -> jose::VerifyOptions<'_> {
        jose::VerifyOptions {
            known_crit: &self.known_headers,
            require_kid: self.require_kid,
        }
    }

    /// Verify (or decrypt) and return the claims with the header `typ`.
    fn open(
        &self,
        token: &str,
        sign: &JwkSet,
        dec: &JwkSet,
    ) -> Result<(Map<String, Value>, Option<String>), jose::JoseError> {
        let dots = token.bytes().filter(|b| *b == b'.').count();
        match dots {
            2 if self.jws => {
                let v = jose::verify_with(token, sign, &self.algs, &self.limits, &self.opts())?;
                let claims = v.claims()?;
                Ok((claims, v.header.typ.clone()))
            }
            4 if self.jwe || self.nested => {
                let mut policy = DecryptPolicy::new(&self.key_algs, &self.encs);
                policy.allow_zip = self.allow_zip;
                policy.limits = self.limits;
                policy.known_crit = &self.known_headers;
                policy.require_kid = self.require_kid;
                let d = jose::decrypt(token, dec, &policy)?;
                if d.header.cty_is_jwt() {
                    if !self.nested {
                        return Err(jose::JoseError::NestingInvalid);
                    }
                    let inner = std::str::from_utf8(&d.plaintext)
                        .map_err(|_| jose::JoseError::NestingInvalid)?;
                    if inner.bytes().filter(|b| *b == b'.').count() != 2 {
                        return Err(jose::JoseError::NestingInvalid);
                    }
                    let v = jose::verify_with(inner, sign, &self.algs, &self.limits, &self.opts())?;
                    let claims = v.claims()?;
                    Ok((claims, v.header.typ.clone()))
                } else {
                    if !self.jwe {
                        // Only nested tokens are accepted: the signature is required.
                        return Err(jose::JoseError::NestingInvalid);
                    }
                    let claims = jose::json::parse_object(&d.plaintext)
                        .map_err(|_| jose::JoseError::ClaimsMalformed)?;
                    Ok((claims, d.header.typ.clone()))
                }
            }
            _ => Err(jose::JoseError::TokenMalformed),
        }
    }

    /// The subject, one-of and contains rules. Err: the error and which rule failed (for logs).
    fn check_extra_rules(&self, claims: &Map<String, Value>) -> Result<(), (GatewayError, String)> {
        let fail = |e: GatewayError, what: &str, path: &str| Err((e, format!("{what}: {path}")));
        if let Some(s) = &self.subject {
            let sub = match claims.get("sub") {
                None => return fail(GatewayError::ClaimMissing, "subject rule", "sub"),
                Some(Value::String(s)) => s,
                Some(_) => return fail(GatewayError::ClaimMismatch, "subject rule", "sub"),
            };
            let ok = match s {
                Subject::Prefix(p) => sub.starts_with(p.as_str()),
                Subject::Regex(r) => r.is_match(sub),
            };
            if !ok {
                return fail(GatewayError::SubjectMismatch, "subject rule", "sub");
            }
        }
        for (path, allowed) in &self.one_of {
            match jose::claim_at(claims, path)
                .map_err(|e| (GatewayError::from(&e), e.to_string()))?
            {
                None => return fail(GatewayError::ClaimMissing, "claims rule", path),
                Some(v) if allowed.contains(v) => {}
                Some(_) => return fail(GatewayError::ClaimMismatch, "claims rule", path),
            }
        }
        for (path, needed) in &self.contains {
            let v = jose::claim_at(claims, path)
                .map_err(|e| (GatewayError::from(&e), e.to_string()))?;
            let Some(v) = v else {
                return fail(GatewayError::ClaimMissing, "contains rule", path);
            };
            let Some(members) = members(v) else {
                return fail(GatewayError::ClaimMismatch, "contains rule", path);
            };
            if !needed.iter().all(|n| members.contains(&n.as_str())) {
                return fail(GatewayError::ClaimMismatch, "contains rule", path);
            }
        }
        Ok(())
    }

    fn identity_of(&self, claims: &Map<String, Value>) -> Option<Arc<str>> {
        match jose::claim_at(claims, &self.identity_claim)
            .ok()
            .flatten()?
        {
            Value::String(s) => Some(Arc::from(s.as_str())),
            Value::Number(n) => Some(Arc::from(n.to_string())),
            _ => None,
        }
    }

    fn check_acl(
        &self,
        method: &Method,
        out: &Outcome,
    ) -> Result<(), (GatewayError, &'static str)> {
        let Some(acl) = &self.acl else { return Ok(()) };
        let rule = acl.methods.get(method).unwrap_or(&acl.default);
        if !rule.identities.is_empty()
            && !out
                .identity
                .as_deref()
                .is_some_and(|id| rule.identities.iter().any(|x| x == id))
        {
            return Err((GatewayError::AccessDenied, "acl: identity not listed"));
        }
        if !rule.roles.is_empty() {
            let roles = jose::claim_at(&out.claims, &acl.roles_claim)
                .ok()
                .flatten()
                .and_then(members)
                .unwrap_or_default();
            if !rule.roles.iter().any(|r| roles.contains(&r.as_str())) {
                return Err((GatewayError::AccessDenied, "acl: none of the roles"));
            }
        }
        if !rule.scopes.is_empty() {
            let scopes = jose::claim_at(&out.claims, &acl.scope_claim)
                .ok()
                .flatten()
                .and_then(members)
                .unwrap_or_default();
            if !rule.scopes.iter().all(|s| scopes.contains(&s.as_str())) {
                return Err((GatewayError::AccessDenied, "acl: a scope is missing"));
            }
        }
        Ok(())
    }

    /// Verify and validate. On failure `detail` says why (which claim or rule), for logs.
    async fn verify(
        &self,
        token: &str,
        now: u64,
        v: &RequestView<'_>,
        detail: &mut Option<String>,
    ) -> Result<Outcome, GatewayError> {
        let unverified = self.unverified_claims(token);
        let sign_src = match &unverified {
            Some(c) => {
                let mut pv = RequestView::new(v.req, v.client_ip);
                pv.route = v.route;
                pv.claims = Some(c);
                Self::resolve(&self.keys, &pv)?
            }
            None => Self::resolve(&self.keys, v)?,
        };
        let dec_src = Self::resolve(&self.dec_keys, v)?;
        let (mut sign, mut sg) = sign_src.get().await?;
        let (mut dec, mut dg) = dec_src.get().await?;
        let key = self.cache.as_ref().map(|_| token_key(token));
        let generation = |s: u64, d: u64| s.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ d;
        if let (Some(c), Some(k)) = (&self.cache, &key) {
            if let Some(e) = c.get(k, now, generation(sg, dg)) {
                return Ok(Outcome {
                    claims: e.claims.clone(),
                    identity: e.identity.clone(),
                });
            }
        }
        let mut opened = self.open(token, &sign, &dec);
        if matches!(opened, Err(jose::JoseError::NoMatchingKey)) {
            // An unknown kid: the issuer may have rotated. One single-flight refetch.
            let mut again = false;
            if let Some((s, g)) = sign_src.refresh_unknown().await {
                (sign, sg, again) = (s, g, true);
            }
            if let Some((d, g)) = dec_src.refresh_unknown().await {
                (dec, dg, again) = (d, g, true);
            }
            if again {
                opened = self.open(token, &sign, &dec);
            }
        }
        let (claims, typ) = opened.map_err(|e| {
            *detail = Some(e.to_string());
            GatewayError::from(&e)
        })?;
        self.rules
            .validate(&claims, typ.as_deref(), now)
            .map_err(|e| {
                *detail = Some(e.to_string());
                GatewayError::from(&e)
            })?;
        self.check_extra_rules(&claims).map_err(|(e, d)| {
            *detail = Some(d);
            e
        })?;
        let identity = self.identity_of(&claims);
        let claims = Arc::new(claims);
        if let (Some(c), Some(k)) = (&self.cache, key) {
            let exp = claims
                .get("exp")
                .and_then(Value::as_f64)
                .map(|e| e.max(0.0) as u64)
                .unwrap_or(u64::MAX);
            c.insert(
                k,
                Entry {
                    claims: claims.clone(),
                    identity: identity.clone(),
                    valid_until: exp.min(now.saturating_add(self.cache_ttl)),
                    key_generation: generation(sg, dg),
                },
                now,
            );
        }
        Ok(Outcome { claims, identity })
    }

    /// Request phase: find the token, verify it, check the claim rules and the ACL. Ok: the
    /// claims and identity are established, the token's removal (`forward_token = false`) and
    /// the claim headers are queued for the upstream request.
    pub async fn request_filter(
        &self,
        v: &RequestView<'_>,
        fx: &mut Effects,
    ) -> Result<(), GatewayError> {
        let (_, token) = token_source::extract(&self.sources, v)?;
        if token.len() > self.limits.max_token {
            return Err(GatewayError::TokenTooLarge);
        }
        let out = self.verify(&token, v.now(), v, &mut fx.detail).await?;
        self.check_acl(&v.req.method, &out).map_err(|(e, d)| {
            fx.detail = Some(d.to_string());
            e
        })?;
        let edits = &mut fx.edits;
        if !self.forward_token {
            token_source::remove(&self.sources, v, edits);
        }
        for m in &self.to_headers {
            edits.upstream.push(HeaderEdit::Remove(m.header.clone()));
            let Ok(Some(val)) = jose::claim_at(&out.claims, &m.claim) else {
                continue;
            };
            for hv in header_values(val, m.format) {
                edits
                    .upstream
                    .push(HeaderEdit::Append(m.header.clone(), hv));
            }
        }
        if let Some(h) = &self.payload_header {
            edits.upstream.push(HeaderEdit::Remove(h.clone()));
            let json = serde_json::to_vec(&*out.claims).map_err(|_| GatewayError::Internal)?;
            if let Ok(hv) = HeaderValue::from_str(&jose::b64_encode(&json)) {
                edits.upstream.push(HeaderEdit::Append(h.clone(), hv));
            }
        }
        fx.claims = Some(out.claims);
        fx.identity = out.identity;
        Ok(())
    }
}

/// The members of an array claim, or of a space-separated string (OAuth `scope`).
fn members(v: &Value) -> Option<Vec<&str>> {
    match v {
        Value::Array(items) => Some(items.iter().filter_map(Value::as_str).collect()),
        Value::String(s) => Some(s.split(' ').filter(|p| !p.is_empty()).collect()),
        _ => None,
    }
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => None,
        other => serde_json::to_string(other).ok(),
    }
}

/// Header values for a claim; values that are not valid header text (control characters)
/// are dropped, never passed on.
fn header_values(v: &Value, f: HeaderFormat) -> Vec<HeaderValue> {
    let texts: Vec<String> = match (f, v) {
        (HeaderFormat::Json, v) => serde_json::to_string(v).ok().into_iter().collect(),
        (HeaderFormat::Repeat, Value::Array(items)) => {
            items.iter().filter_map(scalar_text).collect()
        }
        (HeaderFormat::Csv, Value::Array(items)) => {
            vec![items
                .iter()
                .filter_map(scalar_text)
                .collect::<Vec<_>>()
                .join(", ")]
        }
        (_, v) => scalar_text(v).into_iter().collect(),
    };
    texts
        .into_iter()
        .filter_map(|t| HeaderValue::from_str(&t).ok())
        .collect()
}
