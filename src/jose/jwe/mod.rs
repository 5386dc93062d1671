//! JWE compact serialization (RFC 7516): encrypt and decrypt.

mod content;
mod keymgmt;
mod kw;

use std::io::{Read as _, Write as _};

use serde_json::{Map, Value};
use zeroize::Zeroizing;

pub use keymgmt::{KeyMgmtOptions, PBES2_DEFAULT_P2C, PBES2_DEFAULT_P2S_LEN};

use super::jwk::KeyOp;
use super::jws::split;
use super::{b64, Enc, Header, JoseError, Jwk, JwkSet, KeyAlg, KeyHint, Limits};

#[cfg(test)]
pub(crate) use content::{decrypt as content_decrypt, encrypt as content_encrypt};
#[cfg(test)]
pub(crate) use keymgmt::{concat_kdf, ecdh_shared};
#[cfg(test)]
pub(crate) use kw::{unwrap as kw_unwrap, wrap as kw_wrap};

/// What an inbound JWE may use. Everything is refused unless listed.
#[derive(Debug, Clone)]
pub struct DecryptPolicy<'a> {
    /// Allowed key management algorithms.
    pub algs: &'a [KeyAlg],
    /// Allowed content encryption algorithms.
    pub encs: &'a [Enc],
    /// Accept `zip: DEF` (decompressed size capped by `limits.max_plaintext`).
    pub allow_zip: bool,
    /// Accept RSA1_5 (also needs `KeyAlg::Rsa1_5` in `algs`).
    pub allow_rsa1_5: bool,
    /// Size and work caps.
    pub limits: Limits,
    /// Header parameters the caller processes: `crit` may list these.
    pub known_crit: &'a [String],
    /// Refuse a token without `kid` when the key set holds more than one key.
    pub require_kid: bool,
}

impl<'a> DecryptPolicy<'a> {
    /// A policy with default limits, no zip, no RSA1_5.
    pub fn new(algs: &'a [KeyAlg], encs: &'a [Enc]) -> Self {
        DecryptPolicy {
            algs,
            encs,
            allow_zip: false,
            allow_rsa1_5: false,
            limits: Limits::default(),
            known_crit: &[],
            require_kid: false,
        }
    }
}

/// Options for encryption.
#[derive(Debug, Clone, Default)]
pub struct EncryptOptions {
    /// Extra protected header members (`typ`, `cty`, `kid`...). The key's kid is used
    /// when none is given.
    pub header: Map<String, Value>,
    /// Compress the plaintext with DEFLATE (`zip: DEF`).
    pub zip: bool,
    /// Key management options (ECDH `apu`/`apv`, PBES2 `p2c`).
    pub key_mgmt: KeyMgmtOptions,
}

/// A decrypted JWE. `Debug` shows the plaintext length only.
pub struct Decrypted {
    /// The protected header.
    pub header: Header,
    /// The key management algorithm.
    pub alg: KeyAlg,
    /// The content encryption algorithm.
    pub enc: Enc,
    /// The plaintext (decompressed when `zip` was used).
    pub plaintext: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decrypted")
            .field("header", &self.header)
            .field("alg", &self.alg)
            .field("enc", &self.enc)
            .field("plaintext_len", &self.plaintext.len())
            .finish()
    }
}

const RESERVED: [&str; 12] = [
    "alg", "enc", "zip", "crit", "epk", "apu", "apv", "iv", "tag", "p2s", "p2c", "b64",
];

/// Encrypts `plaintext` to `key` as a compact JWE.
pub fn encrypt(
    plaintext: &[u8],
    key: &Jwk,
    alg: KeyAlg,
    enc: Enc,
    opts: &EncryptOptions,
) -> Result<String, JoseError> {
    let names = [alg.name(), enc.name()];
    let alg_names: &[&str] = if alg == KeyAlg::Dir {
        &names
    } else {
        &names[..1]
    };
    key.permits(KeyOp::Encrypt, alg_names)?;
    if RESERVED.iter().any(|k| opts.header.contains_key(*k)) {
        return Err(JoseError::InvalidInput("reserved JWE header member"));
    }
    let wrapped = keymgmt::wrap(alg, enc, key, &opts.key_mgmt)?;
    let mut h = opts.header.clone();
    h.extend(wrapped.header);
    h.insert("alg".into(), Value::String(alg.name().into()));
    h.insert("enc".into(), Value::String(enc.name().into()));
    if let (Some(kid), false) = (key.kid(), h.contains_key("kid")) {
        h.insert("kid".into(), Value::String(kid.into()));
    }
    let compressed;
    let body = if opts.zip {
        h.insert("zip".into(), Value::String("DEF".into()));
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(plaintext)
            .map_err(|_| JoseError::CryptoFailure)?;
        compressed = z.finish().map_err(|_| JoseError::CryptoFailure)?;
        compressed.as_slice()
    } else {
        plaintext
    };
    let header = serde_json::to_string(&h).map_err(|_| JoseError::InvalidInput("header"))?;
    let header_b64 = b64::encode(header.as_bytes());
    let mut iv = vec![0u8; enc.iv_len()];
    aws_lc_rs::rand::fill(&mut iv)?;
    let (ct, tag) = content::encrypt(enc, &wrapped.cek, &iv, header_b64.as_bytes(), body)?;
    let mut out = header_b64;
    for part in [&wrapped.encrypted_key, &iv, &ct, &tag] {
        out.push('.');
        b64::encode_into(part, &mut out);
    }
    Ok(out)
}

/// Checks the JWE protected header against the policy (before any crypto).
fn jwe_header(h: &[u8], policy: &DecryptPolicy<'_>) -> Result<(Header, KeyAlg, Enc), JoseError> {
    let header = Header::parse(&b64::decode(h)?)?;
    let alg = KeyAlg::from_name(&header.alg)
        .filter(|a| policy.algs.contains(a))
        .filter(|a| *a != KeyAlg::Rsa1_5 || policy.allow_rsa1_5)
        .ok_or(JoseError::AlgorithmNotAllowed)?;
    let enc = header
        .enc
        .as_deref()
        .ok_or(JoseError::TokenMalformed)
        .map(Enc::from_name)?
        .filter(|e| policy.encs.contains(e))
        .ok_or(JoseError::EncryptionNotAllowed)?;
    header.check_crit(policy.known_crit)?;
    if header.b64.is_some() {
        return Err(JoseError::TokenMalformed);
    }
    match header.zip.as_deref() {
        None => {}
        Some("DEF") if policy.allow_zip => {}
        Some(_) => return Err(JoseError::CompressionNotAllowed),
    }
    if alg.is_pbes2() {
        let p2c = header.p2c.ok_or(JoseError::TokenMalformed)?;
        let l = &policy.limits;
        if p2c < u64::from(l.min_p2c) || p2c > u64::from(l.max_p2c) {
            return Err(JoseError::TokenMalformed);
        }
        let salt_len = header.p2s.as_deref().map_or(0, |s| s.len() * 3 / 4);
        if salt_len < l.min_p2s {
            return Err(JoseError::TokenMalformed);
        }
    }
    Ok((header, alg, enc))
}

fn inflate(data: &[u8], cap: usize) -> Result<Zeroizing<Vec<u8>>, JoseError> {
    let mut out = Zeroizing::new(Vec::new());
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::DeflateDecoder::new(data)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|_| JoseError::DecryptionFailed)?;
    if out.len() > cap {
        return Err(JoseError::TokenTooLarge);
    }
    Ok(out)
}

/// Decrypts a compact JWE with `keys` under `policy`. Key selection is by (kid, alg): a key
/// bound to another algorithm is never used. Every cryptographic failure is the single
/// `DecryptionFailed`.
pub fn decrypt(
    token: &str,
    keys: &JwkSet,
    policy: &DecryptPolicy<'_>,
) -> Result<Decrypted, JoseError> {
    let t = token.as_bytes();
    let limits = &policy.limits;
    if t.len() > limits.max_token {
        return Err(JoseError::TokenTooLarge);
    }
    let [h, ek, iv, ct, tag] = split::<5>(t)?;
    if h.is_empty() || iv.is_empty() || tag.is_empty() {
        return Err(JoseError::TokenMalformed);
    }
    if h.len() > limits.max_header || ek.len() > limits.max_encrypted_key {
        return Err(JoseError::TokenTooLarge);
    }
    if ct.len() / 4 * 3 > limits.max_plaintext.saturating_add(64) {
        return Err(JoseError::TokenTooLarge);
    }
    let (header, alg, enc) = jwe_header(h, policy)?;
    if policy.require_kid && header.kid.is_none() && keys.keys().len() > 1 {
        return Err(JoseError::KidMissing);
    }
    let ek = b64::decode(ek)?;
    let iv = b64::decode(iv)?;
    let ct = b64::decode(ct)?;
    let tag = b64::decode(tag)?;
    let names = [alg.name(), enc.name()];
    let alg_names: &[&str] = if alg == KeyAlg::Dir {
        &names
    } else {
        &names[..1]
    };
    let hint = KeyHint {
        kid: header.kid.as_deref(),
        x5t: header.x5t.as_deref(),
        x5t_s256: header.x5t_s256.as_deref(),
    };
    let mut result = Err(JoseError::NoMatchingKey);
    for key in keys.candidates(hint, KeyOp::Decrypt, alg_names) {
        let attempt = keymgmt::unwrap(alg, enc, key, &header, &ek, limits)
            .and_then(|cek| content::decrypt(enc, &cek, &iv, h, &ct, &tag));
        match attempt {
            Ok(p) => {
                result = Ok(p);
                break;
            }
            Err(JoseError::TokenMalformed) => return Err(JoseError::TokenMalformed),
            Err(_) => result = Err(JoseError::DecryptionFailed),
        }
    }
    let mut plaintext = result?;
    if header.zip.is_some() {
        plaintext = inflate(&plaintext, limits.max_plaintext)?;
    }
    if plaintext.len() > limits.max_plaintext {
        return Err(JoseError::TokenTooLarge);
    }
    Ok(Decrypted {
        header,
        alg,
        enc,
        plaintext,
    })
}
