//! Nested JWTs (RFC 7519 §5.2, §7.2 step 8): a JWS inside a JWE with `cty: JWT`.

use serde_json::{Map, Value};

use super::{decrypt, encrypt, sign, verify, Alg, DecryptPolicy, Decrypted, Enc, EncryptOptions};
use super::{JoseError, Jwk, JwkSet, KeyAlg, Verified};

/// Signs `claims` with `sign_key`/`alg`, then encrypts the JWS to `enc_key` with `cty: JWT`.
#[allow(clippy::too_many_arguments)]
pub fn sign_then_encrypt(
    claims: &[u8],
    sign_key: &Jwk,
    alg: Alg,
    jws_header: &Map<String, Value>,
    enc_key: &Jwk,
    key_alg: KeyAlg,
    enc: Enc,
    opts: &EncryptOptions,
) -> Result<String, JoseError> {
    let jws = sign(claims, sign_key, alg, jws_header)?;
    let mut opts = opts.clone();
    opts.header
        .insert("cty".into(), Value::String("JWT".into()));
    encrypt(jws.as_bytes(), enc_key, key_alg, enc, &opts)
}

/// Decrypts, requires `cty: JWT` (case-insensitive), and verifies the inner JWS with
/// `sign_keys` under `algs`. Exactly one level of nesting: plain JSON or a JWE inside is
/// `NestingInvalid`.
pub fn decrypt_then_verify(
    token: &str,
    enc_keys: &JwkSet,
    policy: &DecryptPolicy<'_>,
    sign_keys: &JwkSet,
    algs: &[Alg],
) -> Result<(Decrypted, Verified), JoseError> {
    let outer = decrypt(token, enc_keys, policy)?;
    if !outer.header.cty_is_jwt() {
        return Err(JoseError::NestingInvalid);
    }
    let inner = std::str::from_utf8(&outer.plaintext).map_err(|_| JoseError::NestingInvalid)?;
    if inner.bytes().filter(|b| *b == b'.').count() != 2 {
        return Err(JoseError::NestingInvalid);
    }
    let verified = verify(inner, sign_keys, algs, &policy.limits)?;
    Ok((outer, verified))
}
