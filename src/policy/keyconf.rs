//! Embedded key material from the config: inline JWK/JWKS/PEM, a file, or a secret (inline,
//! from an environment variable or a file). Parsed once at load into the JOSE engine's types.
//! Remote sources (`jwks_url`, `discovery_url`) are resolved by the caller.

use super::keytext::{decode_secret, read_password, trim_newline};
use super::reqkey::RequestKey;
use crate::config::policy::jwt_verify::KeysConfig;
use crate::error::{Errors, GatewayError};
use crate::expr::{Template, Var};
use crate::jose::{Alg, Enc, JoseError, Jwk, JwkSet, KeyAlg, KeyOp};
use crate::keys::{JwksSettings, KeyCache, RemoteJwks};
use crate::request::RequestView;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Where the keys of a policy come from, after compile.
pub enum KeyOrigin {
    Embedded(JwkSet),
    JwksUrl(String),
    Discovery(String),
    /// (URL template, allowed URL globs)
    PerClient(String, Vec<String>),
    /// A request variable.
    FromRequest(String),
    None,
}

pub(super) fn parse_text(
    text: &str,
    kid: &Option<String>,
    alg: &Option<String>,
    password: Option<&[u8]>,
) -> Result<JwkSet, String> {
    let t = text.trim_start();
    if t.starts_with("-----BEGIN") {
        let mut k =
            Jwk::from_pem_with_password(text, password).map_err(|e| format!("invalid PEM: {e}"))?;
        if let Some(kid) = kid {
            k = k.with_kid(kid.clone());
        }
        if let Some(alg) = alg {
            k = k.with_alg(alg.clone());
        }
        return Ok(JwkSet::single(k));
    }
    if password.is_some() {
        return Err("a password is for an ENCRYPTED PRIVATE KEY in PEM".into());
    }
    let v: serde_json::Value =
        serde_json::from_str(t).map_err(|e| format!("expected a JWK, a JWKS or PEM: {e}"))?;
    if v.get("keys").is_some() {
        return JwkSet::from_json(t.as_bytes()).map_err(|e| format!("invalid JWKS: {e}"));
    }
    let mut k = Jwk::from_value(&v).map_err(|e| format!("invalid JWK: {e}"))?;
    if let (Some(kid), None) = (kid, k.kid()) {
        k = k.with_kid(kid.clone());
    }
    if let Some(alg) = alg {
        k = k.with_alg(alg.clone());
    }
    Ok(JwkSet::single(k))
}

/// Compile a `keys` table. `path` is its TOML path.
fn compile(c: &KeysConfig, path: &str, errs: &mut Errors) -> Option<KeyOrigin> {
    let KeysConfig {
        jwks,
        pem,
        file,
        secret,
        secret_env,
        secret_file,
        encoding,
        password_env: _,
        password_file: _,
        kid,
        alg,
        jwks_url,
        discovery_url,
        per_client_url,
        per_client_allow,
        from,
        remote,
    } = c;
    let remote_form = jwks_url.is_some() || discovery_url.is_some() || per_client_url.is_some();
    if remote.is_some() && !remote_form {
        errs.push(
            format!("{path}.remote"),
            "remote settings need jwks_url, discovery_url or per_client_url",
        );
        return None;
    }
    if !per_client_allow.is_empty() && per_client_url.is_none() {
        errs.push(format!("{path}.per_client_allow"), "is for per_client_url");
        return None;
    }
    let forms = [
        jwks.is_some(),
        pem.is_some(),
        file.is_some(),
        secret.is_some(),
        secret_env.is_some(),
        secret_file.is_some(),
        jwks_url.is_some(),
        discovery_url.is_some(),
        per_client_url.is_some(),
        from.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if encoding.is_some() && secret.is_none() && secret_env.is_none() && secret_file.is_none() {
        errs.push(
            format!("{path}.encoding"),
            "is for secret, secret_env or secret_file",
        );
        return None;
    }
    let password = read_password(c, path, errs).ok()?;
    let password = password.as_deref().map(Vec::as_slice);
    if forms == 0 {
        return Some(KeyOrigin::None);
    }
    if forms > 1 {
        errs.push(
            path,
            "give exactly one of jwks, pem, file, secret, secret_env, secret_file, jwks_url, \
             discovery_url, per_client_url, from",
        );
        return None;
    }
    let set = |r: Result<JwkSet, String>, key: &str, errs: &mut Errors| match r {
        Ok(s) => Some(KeyOrigin::Embedded(s)),
        Err(e) => {
            errs.push(format!("{path}.{key}"), e);
            None
        }
    };
    let secret_set = |text: Zeroizing<Vec<u8>>| -> Result<JwkSet, String> {
        let bytes = decode_secret(&text, encoding.unwrap_or_default())?;
        let mut k = Jwk::from_secret(&bytes).map_err(|e| format!("unusable secret: {e}"))?;
        if let Some(kid) = kid {
            k = k.with_kid(kid.clone());
        }
        if let Some(alg) = alg {
            k = k.with_alg(alg.clone());
        }
        Ok(JwkSet::single(k))
    };
    if let Some(t) = jwks {
        return set(parse_text(t, kid, alg, password), "jwks", errs);
    }
    if let Some(t) = pem {
        return set(parse_text(t, kid, alg, password), "pem", errs);
    }
    if let Some(f) = file {
        let r = std::fs::read_to_string(f)
            .map_err(|e| format!("cannot read {f}: {e}"))
            .and_then(|t| parse_text(&t, kid, alg, password));
        return set(r, "file", errs);
    }
    if let Some(s) = secret {
        return set(
            secret_set(Zeroizing::new(s.as_bytes().to_vec())),
            "secret",
            errs,
        );
    }
    if let Some(name) = secret_env {
        let r = std::env::var(name)
            .map_err(|_| format!("environment variable {name} is not set"))
            .and_then(|s| secret_set(Zeroizing::new(s.into_bytes())));
        return set(r, "secret_env", errs);
    }
    if let Some(f) = secret_file {
        let r = std::fs::read(f)
            .map_err(|e| format!("cannot read {f}: {e}"))
            .map(trim_newline)
            .and_then(secret_set);
        return set(r, "secret_file", errs);
    }
    if let Some(u) = jwks_url {
        return Some(KeyOrigin::JwksUrl(u.clone()));
    }
    if let Some(u) = discovery_url {
        return Some(KeyOrigin::Discovery(u.clone()));
    }
    if let Some(u) = per_client_url {
        if per_client_allow.is_empty() {
            errs.push(
                format!("{path}.per_client_allow"),
                "a per-client URL needs an allow-list of URL patterns",
            );
            return None;
        }
        return Some(KeyOrigin::PerClient(u.clone(), per_client_allow.clone()));
    }
    if let Some(f) = from {
        return Some(KeyOrigin::FromRequest(f.clone()));
    }
    Some(KeyOrigin::None)
}

/// What remote sources of a key table serve: public keys (verification, encryption), or
/// private keys to sign with, cached apart so a verifier never holds a private key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetch {
    PublicKeys,
    SigningKeys,
}

/// Verification or decryption keys at run time.
pub enum Keys {
    /// Keys from the config (inline, PEM, file, secret) and a generation derived from them:
    /// a reload that changes a key file under the same config makes earlier verifications
    /// in the shared cache misses.
    Static(Arc<JwkSet>, u64),
    Remote(Arc<RemoteJwks>),
    /// A source per client: the URL is rendered per request and must match an allowed glob.
    PerClient {
        url: Template,
        allow: globset::GlobSet,
        settings: JwksSettings,
        cache: Arc<KeyCache>,
        fetch: Fetch,
    },
    /// Public keys carried by the request (a variable), parsed once per distinct value.
    FromRequest(Arc<RequestKey>),
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Keys::Static(s, _) => write!(f, "Static({} keys)", s.keys().len()),
            Keys::Remote(r) => write!(f, "Remote({})", r.label()),
            Keys::PerClient { .. } => write!(f, "PerClient"),
            Keys::FromRequest(r) => write!(f, "{r:?}"),
        }
    }
}

/// The key source chosen for one request.
pub enum Resolved {
    Static(Arc<JwkSet>, u64),
    Remote(Arc<RemoteJwks>, u64),
}

/// A generation for a fixed key set: the same keys give the same value, other keys another.
fn set_generation(set: &JwkSet) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for k in set.keys() {
        k.thumbprint().hash(&mut h);
    }
    h.finish()
}

fn url_tag(url: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    url.hash(&mut h);
    h.finish()
}

impl Keys {
    /// Pick the source for this request (per-client: render and check the URL).
    pub fn resolve(&self, v: &RequestView<'_>) -> Result<Resolved, GatewayError> {
        match self {
            Keys::Static(s, g) => Ok(Resolved::Static(s.clone(), *g)),
            Keys::Remote(r) => Ok(Resolved::Remote(r.clone(), 0)),
            Keys::FromRequest(r) => r.resolve(v).map(|(s, g)| Resolved::Static(s, g)),
            Keys::PerClient {
                url,
                allow,
                settings,
                cache,
                fetch,
            } => {
                let u = url.render(v).ok_or(GatewayError::NoMatchingKey)?;
                // Rendered from client data: no query, fragment, userinfo, escapes or dot
                // segments may ride along a pattern that allowed the path.
                let sneaky = u.contains(['?', '#', '@', '\\', '%'])
                    || u.split('/').any(|seg| seg == ".." || seg == ".");
                if sneaky || !allow.is_match(&u) {
                    log::warn!("per-client JWKS URL refused: not in the allow-list");
                    return Err(GatewayError::NoMatchingKey);
                }
                let src = match fetch {
                    Fetch::PublicKeys => cache.source(&u, *settings),
                    Fetch::SigningKeys => cache.signing_source(&u, *settings),
                };
                let src = src.map_err(|e| {
                    log::warn!("per-client JWKS source refused: {}", e.code());
                    GatewayError::JwksUnavailable
                })?;
                let tag = url_tag(&u);
                Ok(Resolved::Remote(src, tag))
            }
        }
    }
}

impl Resolved {
    /// The current key set and a generation that changes with the set (and the source).
    pub async fn get(&self) -> Result<(Arc<JwkSet>, u64), GatewayError> {
        match self {
            Resolved::Static(s, g) => Ok((s.clone(), *g)),
            Resolved::Remote(src, tag) => {
                // Read the generation before the set: a change in between makes a miss.
                let generation = src.generation() ^ tag;
                let set = match src.current() {
                    Some(s) => s,
                    None => src.keys().await.map_err(|e| {
                        log::warn!("JWKS {} unavailable: {}", src.label(), e.code());
                        GatewayError::JwksUnavailable
                    })?,
                };
                Ok((set, generation))
            }
        }
    }

    /// A token named a key we do not have: one single-flight refetch (remote sources only).
    pub async fn refresh_unknown(&self) -> Option<(Arc<JwkSet>, u64)> {
        match self {
            Resolved::Static(..) => None,
            Resolved::Remote(src, tag) => {
                let set = src.refresh_unknown_kid().await.ok()?;
                Some((set, src.generation() ^ tag))
            }
        }
    }
}

/// Compile a `keys` table into run-time keys (None: no keys configured).
pub fn compile_keys(
    c: &KeysConfig,
    path: &str,
    errs: &mut Errors,
    cache: &Arc<KeyCache>,
    fetch: Fetch,
) -> Option<Option<Keys>> {
    let settings = c.remote.unwrap_or_default();
    if let Err(e) = settings.validate() {
        errs.push(format!("{path}.remote"), e);
        return None;
    }
    let remote =
        |r: Result<Arc<RemoteJwks>, crate::keys::KeyError>, key: &str, errs: &mut Errors| {
            r.map(|src| Some(Keys::Remote(src)))
                .map_err(|e| errs.push(format!("{path}.{key}"), e.to_string()))
                .ok()
        };
    match compile(c, path, errs)? {
        KeyOrigin::None => Some(None),
        KeyOrigin::Embedded(set) => {
            let g = set_generation(&set);
            Some(Some(Keys::Static(Arc::new(set), g)))
        }
        KeyOrigin::JwksUrl(u) => {
            let src = match fetch {
                Fetch::PublicKeys => cache.source(&u, settings),
                Fetch::SigningKeys => cache.signing_source(&u, settings),
            };
            remote(src, "jwks_url", errs)
        }
        KeyOrigin::Discovery(_) if fetch == Fetch::SigningKeys => {
            errs.push(
                format!("{path}.discovery_url"),
                "a discovery document publishes public keys: give the signing keys' jwks_url",
            );
            None
        }
        KeyOrigin::Discovery(u) => remote(cache.discovery(&u, settings), "discovery_url", errs),
        KeyOrigin::FromRequest(f) => {
            let p = format!("{path}.from");
            if fetch == Fetch::SigningKeys {
                errs.push(p, "a signing key never comes from the request");
                return None;
            }
            let var = Var::parse(&f).map_err(|e| errs.push(&p, e)).ok()?;
            if var.reads_body() {
                errs.push(p, "a key is not read from the body");
                return None;
            }
            Some(Some(Keys::FromRequest(Arc::new(RequestKey::new(var)))))
        }
        KeyOrigin::PerClient(url, allow) => {
            let url = Template::parse(&url)
                .map_err(|e| errs.push(format!("{path}.per_client_url"), e))
                .ok()?;
            let mut b = globset::GlobSetBuilder::new();
            for (i, g) in allow.iter().enumerate() {
                match globset::GlobBuilder::new(g).literal_separator(true).build() {
                    Ok(g) => {
                        b.add(g);
                    }
                    Err(e) => errs.push(format!("{path}.per_client_allow[{i}]"), e.to_string()),
                }
            }
            let allow = b
                .build()
                .map_err(|e| errs.push(format!("{path}.per_client_allow"), e.to_string()))
                .ok()?;
            // Per-client sources are fetched on first use and not held for readiness.
            let mut settings = settings;
            settings.prefetch = false;
            Some(Some(Keys::PerClient {
                url,
                allow,
                settings,
                cache: cache.clone(),
                fetch,
            }))
        }
    }
}

/// Why no key of `set` can `op` with `alg` (None when one can): the reason of the first key.
fn misfit(set: &JwkSet, fits: impl Fn(&Jwk) -> Result<(), JoseError>) -> Option<JoseError> {
    let mut first = None;
    for k in set.keys() {
        match fits(k) {
            Ok(()) => return None,
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    Some(first.unwrap_or(JoseError::NoMatchingKey))
}

/// Refuses, at `path`, configured keys with which an accepted JWS algorithm could never sign
/// (`op` Sign) or verify: wrong key type, wrong curve, an HMAC secret under the hash output,
/// or a key whose own `alg`/`use` excludes it. Remote keys are checked per key when fetched.
pub fn check_sig_keys(keys: &Keys, algs: &[Alg], op: KeyOp, path: &str, errs: &mut Errors) {
    let Keys::Static(set, _) = keys else { return };
    for alg in algs {
        let names = [alg.name()];
        if let Some(e) = misfit(set, |k| {
            k.permits(op, &names)?;
            k.fits_alg(*alg, op)
        }) {
            errs.push(path, format!("no key here can be used with {alg}: {e}"));
        }
    }
}

/// Refuses, at `path`, configured keys with which an accepted JWE key management algorithm
/// could never encrypt or decrypt (`op`) for one of the accepted content encryptions: wrong
/// key type or curve, an AES or `dir` key of another length, a public key to decrypt with.
pub fn check_enc_keys(
    keys: &Keys,
    algs: &[KeyAlg],
    encs: &[Enc],
    op: KeyOp,
    path: &str,
    errs: &mut Errors,
) {
    let Keys::Static(set, _) = keys else { return };
    for alg in algs {
        for enc in encs {
            let names = [alg.name(), enc.name()];
            let names: &[&str] = if *alg == KeyAlg::Dir {
                &names
            } else {
                &names[..1]
            };
            if let Some(e) = misfit(set, |k| {
                k.permits(op, names)?;
                k.fits_key_alg(*alg, *enc, op)
            }) {
                errs.push(
                    path,
                    format!("no key here can be used with {alg} and {enc}: {e}"),
                );
            }
        }
    }
}

#[cfg(test)]
#[path = "keyconf_tests.rs"]
mod tests;
