//! Embedded key material from the config: inline JWK/JWKS/PEM, a file, or a secret (inline,
//! from an environment variable or a file). Parsed once at load into the JOSE engine's types.
//! Remote sources (`jwks_url`, `discovery_url`) are resolved by the caller.

use super::jwt_verify::config::KeysConfig;
use crate::error::Errors;
use crate::jose::{Jwk, JwkSet};

/// Where the keys of a policy come from, after compile.
pub enum KeyOrigin {
    Embedded(JwkSet),
    JwksUrl(String),
    Discovery(String),
    /// (URL template, allowed URL globs)
    PerClient(String, Vec<String>),
    None,
}

fn parse_text(text: &str, kid: &Option<String>, alg: &Option<String>) -> Result<JwkSet, String> {
    let t = text.trim_start();
    if t.starts_with("-----BEGIN") {
        let mut k = Jwk::from_pem(text).map_err(|e| format!("invalid PEM: {e}"))?;
        if let Some(kid) = kid {
            k = k.with_kid(kid.clone());
        }
        if let Some(alg) = alg {
            k = k.with_alg(alg.clone());
        }
        return Ok(JwkSet::single(k));
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
pub fn compile(c: &KeysConfig, path: &str, errs: &mut Errors) -> Option<KeyOrigin> {
    let KeysConfig {
        jwks,
        pem,
        file,
        secret,
        secret_env,
        secret_file,
        kid,
        alg,
        jwks_url,
        discovery_url,
        per_client_url,
        per_client_allow,
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
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if forms == 0 {
        return Some(KeyOrigin::None);
    }
    if forms > 1 {
        errs.push(
            path,
            "give exactly one of jwks, pem, file, secret, secret_env, secret_file, jwks_url, \
             discovery_url, per_client_url",
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
    let secret_set = |bytes: Vec<u8>| -> Result<JwkSet, String> {
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
        return set(parse_text(t, kid, alg), "jwks", errs);
    }
    if let Some(t) = pem {
        return set(parse_text(t, kid, alg), "pem", errs);
    }
    if let Some(f) = file {
        let r = std::fs::read_to_string(f)
            .map_err(|e| format!("cannot read {f}: {e}"))
            .and_then(|t| parse_text(&t, kid, alg));
        return set(r, "file", errs);
    }
    if let Some(s) = secret {
        return set(secret_set(s.as_bytes().to_vec()), "secret", errs);
    }
    if let Some(name) = secret_env {
        let r = std::env::var(name)
            .map_err(|_| format!("environment variable {name} is not set"))
            .and_then(|s| secret_set(s.into_bytes()));
        return set(r, "secret_env", errs);
    }
    if let Some(f) = secret_file {
        let r = std::fs::read(f)
            .map_err(|e| format!("cannot read {f}: {e}"))
            .map(|mut b| {
                // A trailing newline from an editor is not part of the secret.
                while b.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
                    b.pop();
                }
                b
            })
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
    Some(KeyOrigin::None)
}
