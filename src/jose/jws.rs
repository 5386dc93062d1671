//! JWS compact serialization: sign and verify (RFC 7515) over aws-lc-rs keys parsed once.

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature;
use serde_json::{Map, Value};

use super::jwk::{KeyOp, Material};
use super::{b64, json, Alg, Curve, Header, JoseError, Jwk, JwkSet, KeyHint, Limits};

/// Largest signature we decode (RSA-8192).
const MAX_SIG: usize = 1024;

/// A verified JWS.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The protected header.
    pub header: Header,
    /// The algorithm that verified.
    pub alg: Alg,
    /// The decoded payload bytes.
    pub payload: Vec<u8>,
}

impl Verified {
    /// The payload as a JSON object (duplicate members rejected).
    pub fn claims(&self) -> Result<Map<String, Value>, JoseError> {
        json::parse_object(&self.payload).map_err(|_| JoseError::ClaimsMalformed)
    }
}

/// Splits a compact token into exactly `N` segments (no allocation; one pass).
pub(crate) fn split<const N: usize>(token: &[u8]) -> Result<[&[u8]; N], JoseError> {
    let mut out: [&[u8]; N] = [&[]; N];
    let mut rest = token;
    for (i, slot) in out.iter_mut().enumerate() {
        if i + 1 == N {
            if rest.contains(&b'.') {
                return Err(JoseError::TokenMalformed);
            }
            *slot = rest;
        } else {
            let dot = rest
                .iter()
                .position(|b| *b == b'.')
                .ok_or(JoseError::TokenMalformed)?;
            let (seg, tail) = rest.split_at(dot);
            *slot = seg;
            rest = tail.get(1..).unwrap_or_default();
        }
    }
    Ok(out)
}

fn hmac_index(alg: Alg) -> Option<usize> {
    match alg {
        Alg::HS256 => Some(0),
        Alg::HS384 => Some(1),
        Alg::HS512 => Some(2),
        _ => None,
    }
}

fn ec_curve(alg: Alg) -> Option<Curve> {
    match alg {
        Alg::ES256 => Some(Curve::P256),
        Alg::ES384 => Some(Curve::P384),
        Alg::ES512 => Some(Curve::P521),
        _ => None,
    }
}

/// Verifies with one key. `None` when the key cannot serve `alg` (wrong family, wrong curve,
/// HMAC key too short): an asymmetric key is never an HMAC secret.
fn verify_one(key: &Jwk, alg: Alg, msg: &[u8], sig: &[u8]) -> Option<bool> {
    match &key.material {
        Material::Oct(o) => {
            let k = o.hmac.get(hmac_index(alg)?)?.as_ref()?;
            Some(hmac::verify(k, msg, sig).is_ok())
        }
        Material::Rsa(r) => Some(r.verifier(alg)?.verify_sig(msg, sig).is_ok()),
        Material::Ec(e) => (ec_curve(alg)? == e.crv).then(|| e.verify.verify_sig(msg, sig).is_ok()),
        Material::Okp(o) => match (alg, &o.verify) {
            (Alg::EdDSA, Some(v)) => Some(v.verify_sig(msg, sig).is_ok()),
            _ => None,
        },
    }
}

/// What a caller adds to the checks of [`verify`].
#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyOptions<'a> {
    /// Header parameters the caller processes: `crit` may list these (RFC 7515 §4.1.11).
    pub known_crit: &'a [String],
    /// Refuse a token without `kid` when the key set holds more than one key (rather than
    /// trying each key).
    pub require_kid: bool,
}

/// Parses and checks the protected header of a JWS (alg allow-list, crit, b64, zip).
fn jws_header(
    h: &[u8],
    algs: &[Alg],
    limits: &Limits,
    opts: &VerifyOptions<'_>,
) -> Result<(Header, Alg), JoseError> {
    if h.len() > limits.max_header {
        return Err(JoseError::TokenTooLarge);
    }
    let header = Header::parse(&b64::decode(h)?)?;
    let alg = Alg::from_name(&header.alg)
        .filter(|a| algs.contains(a))
        .ok_or(JoseError::AlgorithmNotAllowed)?;
    if header.enc.is_some() {
        return Err(JoseError::TokenMalformed);
    }
    if header.zip.is_some() {
        return Err(JoseError::CompressionNotAllowed);
    }
    header.check_crit(opts.known_crit)?;
    if header.b64.is_some() {
        return Err(JoseError::UnencodedPayloadRejected);
    }
    Ok((header, alg))
}

/// Verifies a compact JWS against `keys`, allowing only `algs` (the caller's policy; the
/// token's `alg` merely selects among them). The signature is checked over the exact
/// received bytes. Key selection: (kid, alg), or x5t#S256 / x5t when no kid; keys whose
/// `use`, `key_ops` or `alg` forbid verification are skipped; without a kid every
/// permitted key is tried.
pub fn verify(
    token: &str,
    keys: &JwkSet,
    algs: &[Alg],
    limits: &Limits,
) -> Result<Verified, JoseError> {
    verify_with(token, keys, algs, limits, &VerifyOptions::default())
}

/// [`verify`] with the caller's additions ([`VerifyOptions`]).
pub fn verify_with(
    token: &str,
    keys: &JwkSet,
    algs: &[Alg],
    limits: &Limits,
    opts: &VerifyOptions<'_>,
) -> Result<Verified, JoseError> {
    let t = token.as_bytes();
    if t.len() > limits.max_token {
        return Err(JoseError::TokenTooLarge);
    }
    let [h, p, s] = split::<3>(t)?;
    if h.is_empty() || s.is_empty() {
        return Err(JoseError::TokenMalformed);
    }
    let (header, alg) = jws_header(h, algs, limits, opts)?;
    if opts.require_kid && header.kid.is_none() && keys.keys().len() > 1 {
        return Err(JoseError::KidMissing);
    }
    let mut sig_buf = [0u8; MAX_SIG];
    if s.len() > MAX_SIG * 4 / 3 + 4 {
        return Err(JoseError::SignatureInvalid);
    }
    let sig_len = b64::decode_slice(s, &mut sig_buf)?;
    let sig = sig_buf.get(..sig_len).ok_or(JoseError::TokenMalformed)?;
    let payload = b64::decode(p)?;
    let signing_input = t
        .get(..h.len() + 1 + p.len())
        .ok_or(JoseError::TokenMalformed)?;
    let names = [alg.name()];
    let hint = KeyHint {
        kid: header.kid.as_deref(),
        x5t: header.x5t.as_deref(),
        x5t_s256: header.x5t_s256.as_deref(),
    };
    let mut outcome = Err(JoseError::NoMatchingKey);
    for key in keys.candidates(hint, KeyOp::Verify, &names) {
        match verify_one(key, alg, signing_input, sig) {
            Some(true) => {
                outcome = Ok(());
                break;
            }
            Some(false) => outcome = Err(JoseError::SignatureInvalid),
            None => {}
        }
    }
    outcome?;
    Ok(Verified {
        header,
        alg,
        payload,
    })
}

fn sign_bytes(key: &Jwk, alg: Alg, msg: &[u8]) -> Result<Vec<u8>, JoseError> {
    key.fits_alg(alg, KeyOp::Sign)?;
    let no_key = JoseError::KeyTypeMismatch("the key does not fit the algorithm");
    match &key.material {
        Material::Oct(o) => {
            let i = hmac_index(alg).ok_or(no_key.clone())?;
            let k = o.hmac.get(i).and_then(Option::as_ref).ok_or(no_key)?;
            Ok(hmac::sign(k, msg).as_ref().to_vec())
        }
        Material::Rsa(r) => {
            let enc: &'static dyn signature::RsaEncoding = match alg {
                Alg::RS256 => &signature::RSA_PKCS1_SHA256,
                Alg::RS384 => &signature::RSA_PKCS1_SHA384,
                Alg::RS512 => &signature::RSA_PKCS1_SHA512,
                Alg::PS256 => &signature::RSA_PSS_SHA256,
                Alg::PS384 => &signature::RSA_PSS_SHA384,
                Alg::PS512 => &signature::RSA_PSS_SHA512,
                _ => return Err(no_key),
            };
            let p = r.private.as_ref().ok_or(JoseError::PrivateKeyRequired)?;
            let mut sig = vec![0u8; p.pair.public_modulus_len()];
            p.pair.sign(enc, &SystemRandom::new(), msg, &mut sig)?;
            Ok(sig)
        }
        Material::Ec(e) => {
            if ec_curve(alg) != Some(e.crv) {
                return Err(no_key);
            }
            let p = e.private.as_ref().ok_or(JoseError::PrivateKeyRequired)?;
            Ok(p.pair.sign(&SystemRandom::new(), msg)?.as_ref().to_vec())
        }
        Material::Okp(o) => {
            if alg != Alg::EdDSA {
                return Err(no_key);
            }
            let p = o.private.as_ref().ok_or(JoseError::PrivateKeyRequired)?;
            let s = p.sign.as_ref().ok_or(no_key)?;
            Ok(s.sign(msg).as_ref().to_vec())
        }
    }
}

impl Jwk {
    /// Whether this key can sign with `alg`: it fits the algorithm (family, curve, HMAC
    /// length, a private part) and its `alg` / `use` / `key_ops` permit it.
    pub fn can_sign(&self, alg: Alg) -> bool {
        self.fits_alg(alg, KeyOp::Sign).is_ok() && self.permits(KeyOp::Sign, &[alg.name()]).is_ok()
    }
}

/// Builds the protected header JSON for signing: `extra` members, then `alg`, and the key's
/// `kid` unless `extra` sets one. `b64` and `zip` are refused; `crit` must list members of
/// `extra` (the caller's own extensions, RFC 7515 §4.1.11).
pub(crate) fn header_json(
    extra: &Map<String, Value>,
    alg: &str,
    kid: Option<&str>,
) -> Result<String, JoseError> {
    if ["b64", "zip"].iter().any(|k| extra.contains_key(*k)) {
        return Err(JoseError::InvalidInput("b64 and zip are not produced"));
    }
    if let Some(crit) = extra.get("crit") {
        if !Header::crit_is_valid(crit, extra) {
            return Err(JoseError::InvalidInput(
                "crit must list distinct, unregistered members of the header",
            ));
        }
    }
    let mut h = extra.clone();
    h.insert("alg".into(), Value::String(alg.into()));
    if let (Some(kid), false) = (kid, h.contains_key("kid")) {
        h.insert("kid".into(), Value::String(kid.into()));
    }
    serde_json::to_string(&h).map_err(|_| JoseError::InvalidInput("header"))
}

/// Signs `payload` as a compact JWS with `key` and `alg`. `extra` adds header members
/// (`typ`, `cty`, `kid`...). The key's `use`/`key_ops`/`alg` must permit signing.
pub fn sign(
    payload: &[u8],
    key: &Jwk,
    alg: Alg,
    extra: &Map<String, Value>,
) -> Result<String, JoseError> {
    key.permits(KeyOp::Sign, &[alg.name()])?;
    let header = header_json(extra, alg.name(), key.kid())?;
    sign_raw(&b64::encode(header.as_bytes()), payload, key, alg)
}

/// Signs with an already-encoded protected header (known-answer tests, reproducible output).
pub(crate) fn sign_raw(
    header_b64: &str,
    payload: &[u8],
    key: &Jwk,
    alg: Alg,
) -> Result<String, JoseError> {
    let mut out = String::with_capacity(header_b64.len() + payload.len() * 2 + 700);
    out.push_str(header_b64);
    out.push('.');
    b64::encode_into(payload, &mut out);
    let sig = sign_bytes(key, alg, out.as_bytes())?;
    out.push('.');
    b64::encode_into(&sig, &mut out);
    Ok(out)
}
