//! JWE key management (RFC 7518 §4): produce or recover the content encryption key.

use std::num::NonZeroU32;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_192_GCM, AES_256_GCM};
use aws_lc_rs::{agreement, digest, pbkdf2, rand, rsa};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::kw;
use crate::jose::curve::Curve;
use crate::jose::jwk::{EcKey, KeyOp, Material, OkpKey};
use crate::jose::{b64, Enc, Header, JoseError, Jwk, KeyAlg, Limits};

/// The CEK plus what the JWE carries for it.
pub(crate) struct Wrapped {
    pub cek: Zeroizing<Vec<u8>>,
    pub encrypted_key: Vec<u8>,
    /// Header members this algorithm adds (epk, iv, tag, p2s, p2c, apu, apv).
    pub header: Map<String, Value>,
}

/// The PBES2 iteration count used when the caller names none.
pub const PBES2_DEFAULT_P2C: u32 = 8192;

/// Caller choices for key management on encryption.
#[derive(Debug, Clone, Default)]
pub struct KeyMgmtOptions {
    /// ECDH-ES `apu` (PartyUInfo).
    pub apu: Option<Vec<u8>>,
    /// ECDH-ES `apv` (PartyVInfo).
    pub apv: Option<Vec<u8>>,
    /// PBES2 iteration count (default [`PBES2_DEFAULT_P2C`]).
    pub p2c: Option<u32>,
    /// PBES2 salt input length in bytes (default [`PBES2_DEFAULT_P2S_LEN`]); at least
    /// [`Limits::min_p2s`](super::Limits::min_p2s).
    pub p2s_len: Option<usize>,
}

/// The PBES2 salt input length used when the caller names none.
pub const PBES2_DEFAULT_P2S_LEN: usize = 16;

fn random(len: usize) -> Result<Zeroizing<Vec<u8>>, JoseError> {
    let mut v = Zeroizing::new(vec![0u8; len]);
    rand::fill(&mut v)?;
    Ok(v)
}

fn oaep(alg: KeyAlg) -> Option<&'static rsa::OaepAlgorithm> {
    match alg {
        KeyAlg::RsaOaep => Some(&rsa::OAEP_SHA1_MGF1SHA1),
        KeyAlg::RsaOaep256 => Some(&rsa::OAEP_SHA256_MGF1SHA256),
        KeyAlg::RsaOaep384 => Some(&rsa::OAEP_SHA384_MGF1SHA384),
        KeyAlg::RsaOaep512 => Some(&rsa::OAEP_SHA512_MGF1SHA512),
        _ => None,
    }
}

fn gcm(len: usize) -> Option<&'static aws_lc_rs::aead::Algorithm> {
    match len {
        16 => Some(&AES_128_GCM),
        24 => Some(&AES_192_GCM),
        32 => Some(&AES_256_GCM),
        _ => None,
    }
}

fn gcmkw_len(alg: KeyAlg) -> Option<usize> {
    match alg {
        KeyAlg::A128GCMKW => Some(16),
        KeyAlg::A192GCMKW => Some(24),
        KeyAlg::A256GCMKW => Some(32),
        _ => None,
    }
}

fn pbes2_prf(alg: KeyAlg) -> Option<pbkdf2::Algorithm> {
    match alg {
        KeyAlg::Pbes2Hs256A128KW => Some(pbkdf2::PBKDF2_HMAC_SHA256),
        KeyAlg::Pbes2Hs384A192KW => Some(pbkdf2::PBKDF2_HMAC_SHA384),
        KeyAlg::Pbes2Hs512A256KW => Some(pbkdf2::PBKDF2_HMAC_SHA512),
        _ => None,
    }
}

/// JWA Concat KDF (NIST SP 800-56A one-step, SHA-256), RFC 7518 §4.6.2.
pub(crate) fn concat_kdf(
    z: &[u8],
    alg_id: &str,
    apu: &[u8],
    apv: &[u8],
    len: usize,
) -> Zeroizing<Vec<u8>> {
    let mut other = Vec::with_capacity(alg_id.len() + apu.len() + apv.len() + 16);
    for part in [alg_id.as_bytes(), apu, apv] {
        other.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
        other.extend_from_slice(part);
    }
    other.extend_from_slice(&u32::try_from(len * 8).unwrap_or(u32::MAX).to_be_bytes());
    let mut out = Zeroizing::new(Vec::with_capacity(len + 32));
    let mut counter: u32 = 1;
    while out.len() < len {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(&counter.to_be_bytes());
        ctx.update(z);
        ctx.update(&other);
        out.extend_from_slice(ctx.finish().as_ref());
        counter = counter.wrapping_add(1);
    }
    out.truncate(len);
    out
}

fn pbes2_kek(
    alg: KeyAlg,
    password: &[u8],
    p2s: &[u8],
    p2c: u32,
) -> Result<Zeroizing<Vec<u8>>, JoseError> {
    let prf = pbes2_prf(alg).ok_or(JoseError::CryptoFailure)?;
    let len = alg.kw_len().ok_or(JoseError::CryptoFailure)?;
    let mut salt = Vec::with_capacity(alg.name().len() + 1 + p2s.len());
    salt.extend_from_slice(alg.name().as_bytes());
    salt.push(0);
    salt.extend_from_slice(p2s);
    let iterations = NonZeroU32::new(p2c).ok_or(JoseError::DecryptionFailed)?;
    let mut kek = Zeroizing::new(vec![0u8; len]);
    pbkdf2::derive(prf, iterations, &salt, password, &mut kek);
    Ok(kek)
}

/// The ECDH curve and public point encoding of a recipient key.
fn ecdh_peer(key: &Jwk) -> Result<(Curve, Vec<u8>), JoseError> {
    match &key.material {
        Material::Ec(e) => Ok((e.crv, e.point())),
        Material::Okp(o) if o.crv == Curve::X25519 => Ok((o.crv, o.x.clone())),
        _ => Err(JoseError::KeyRejected("ECDH-ES needs an EC or X25519 key")),
    }
}

fn derive_len(alg: KeyAlg, enc: Enc) -> (usize, &'static str) {
    match alg.kw_len() {
        Some(l) => (l, alg.name()),
        None => (enc.cek_len(), enc.name()),
    }
}

fn agree(
    private: &agreement::PrivateKey,
    crv: Curve,
    peer: &[u8],
) -> Result<Zeroizing<Vec<u8>>, JoseError> {
    let peer = agreement::UnparsedPublicKey::new(crv.agreement_alg(), peer);
    let z = agreement::agree(private, peer, JoseError::DecryptionFailed, |z| {
        Ok(Zeroizing::new(z.to_vec()))
    })?;
    // RFC 7748 §6.1: refuse the all-zero X25519 output (low-order peer point).
    if z.iter().all(|b| *b == 0) {
        return Err(JoseError::DecryptionFailed);
    }
    Ok(z)
}

/// Produces the CEK for `enc` under `key` with `alg`.
pub(crate) fn wrap(
    alg: KeyAlg,
    enc: Enc,
    key: &Jwk,
    opts: &KeyMgmtOptions,
) -> Result<Wrapped, JoseError> {
    key.fits_key_alg(alg, enc, KeyOp::Encrypt)?;
    let mut header = Map::new();
    let cek_len = enc.cek_len();
    let wrong = || JoseError::KeyTypeMismatch("the key does not fit the algorithm");
    let (cek, encrypted_key) = if let Some(oaep_alg) = oaep(alg) {
        let Material::Rsa(r) = &key.material else {
            return Err(wrong());
        };
        let cek = random(cek_len)?;
        let k = rsa::OaepPublicEncryptingKey::new(r.enc.clone())?;
        let mut out = vec![0u8; k.ciphertext_size()];
        let n = k.encrypt(oaep_alg, &cek, &mut out, None)?.len();
        out.truncate(n);
        (cek, out)
    } else if alg == KeyAlg::Rsa1_5 {
        let Material::Rsa(r) = &key.material else {
            return Err(wrong());
        };
        let cek = random(cek_len)?;
        let k = rsa::Pkcs1PublicEncryptingKey::new(r.enc.clone())?;
        let mut out = vec![0u8; k.ciphertext_size()];
        let n = k.encrypt(&cek, &mut out)?.len();
        out.truncate(n);
        (cek, out)
    } else if alg == KeyAlg::Dir {
        let o = key.oct().ok_or_else(wrong)?;
        if o.k.len() != cek_len {
            return Err(JoseError::KeyRejected(
                "dir key length must equal the enc key length",
            ));
        }
        (Zeroizing::new(o.k.to_vec()), Vec::new())
    } else if let Some(l) = gcmkw_len(alg) {
        let o = key.oct().ok_or_else(wrong)?;
        if o.k.len() != l {
            return Err(JoseError::KeyRejected("AES-GCM key wrap key length"));
        }
        let cek = random(cek_len)?;
        let iv = random(12)?;
        let g = LessSafeKey::new(UnboundKey::new(gcm(l).ok_or_else(wrong)?, &o.k)?);
        let mut ek = cek.to_vec();
        let tag = g.seal_in_place_separate_tag(
            Nonce::try_assume_unique_for_key(&iv)?,
            Aad::empty(),
            &mut ek,
        )?;
        header.insert("iv".into(), Value::String(b64::encode(&iv)));
        header.insert("tag".into(), Value::String(b64::encode(tag.as_ref())));
        (cek, ek)
    } else if alg.is_ecdh() {
        let (crv, peer) = ecdh_peer(key)?;
        let eph = agreement::PrivateKey::generate(crv.agreement_alg())?;
        let eph_pub = eph.compute_public_key()?;
        let z = agree(&eph, crv, &peer).map_err(|_| JoseError::CryptoFailure)?;
        let apu = opts.apu.clone().unwrap_or_default();
        let apv = opts.apv.clone().unwrap_or_default();
        let (len, id) = derive_len(alg, enc);
        let derived = concat_kdf(&z, id, &apu, &apv, len);
        header.insert("epk".into(), epk_value(crv, eph_pub.as_ref())?);
        if !apu.is_empty() {
            header.insert("apu".into(), Value::String(b64::encode(&apu)));
        }
        if !apv.is_empty() {
            header.insert("apv".into(), Value::String(b64::encode(&apv)));
        }
        if alg == KeyAlg::EcdhEs {
            (derived, Vec::new())
        } else {
            let cek = random(cek_len)?;
            let ek = kw::wrap(&derived, &cek)?;
            (cek, ek)
        }
    } else if alg.is_pbes2() {
        let o = key.oct().ok_or_else(wrong)?;
        let p2c = opts.p2c.unwrap_or(PBES2_DEFAULT_P2C);
        let p2s_len = opts.p2s_len.unwrap_or(PBES2_DEFAULT_P2S_LEN);
        if p2s_len < super::Limits::default().min_p2s {
            return Err(JoseError::InvalidInput("PBES2 salt shorter than 8 bytes"));
        }
        let p2s = random(p2s_len)?;
        let kek = pbes2_kek(alg, &o.k, &p2s, p2c)?;
        header.insert("p2s".into(), Value::String(b64::encode(&p2s)));
        header.insert("p2c".into(), Value::from(p2c));
        let cek = random(cek_len)?;
        let ek = kw::wrap(&kek, &cek)?;
        (cek, ek)
    } else {
        let l = alg.kw_len().ok_or_else(wrong)?;
        let o = key.oct().ok_or_else(wrong)?;
        if o.k.len() != l {
            return Err(JoseError::KeyRejected("AES key wrap key length"));
        }
        let cek = random(cek_len)?;
        let ek = kw::wrap(&o.k, &cek)?;
        (cek, ek)
    };
    Ok(Wrapped {
        cek,
        encrypted_key,
        header,
    })
}

fn epk_value(crv: Curve, public: &[u8]) -> Result<Value, JoseError> {
    let mut m = Map::new();
    m.insert("crv".into(), Value::String(crv.name().into()));
    if crv == Curve::X25519 {
        m.insert("kty".into(), Value::String("OKP".into()));
        m.insert("x".into(), Value::String(b64::encode(public)));
    } else {
        let l = crv.coord_len();
        let x = public.get(1..1 + l).ok_or(JoseError::CryptoFailure)?;
        let y = public.get(1 + l..).ok_or(JoseError::CryptoFailure)?;
        m.insert("kty".into(), Value::String("EC".into()));
        m.insert("x".into(), Value::String(b64::encode(x)));
        m.insert("y".into(), Value::String(b64::encode(y)));
    }
    Ok(Value::Object(m))
}

/// Parses `epk`: a public key on the recipient's curve (points are validated on the curve
/// by aws-lc-rs when the key is built). `d` is refused.
fn parse_epk(epk: &Value, crv: Curve) -> Result<Vec<u8>, JoseError> {
    let m = epk.as_object().ok_or(JoseError::TokenMalformed)?;
    if m.contains_key("d") {
        return Err(JoseError::TokenMalformed);
    }
    let s = |k: &str| -> Result<Vec<u8>, JoseError> {
        let v = m
            .get(k)
            .and_then(Value::as_str)
            .ok_or(JoseError::TokenMalformed)?;
        b64::decode(v.as_bytes())
    };
    let kty = m.get("kty").and_then(Value::as_str);
    let ecrv = m.get("crv").and_then(Value::as_str);
    if ecrv != Some(crv.name()) {
        return Err(JoseError::DecryptionFailed);
    }
    match (crv, kty) {
        (Curve::X25519, Some("OKP")) => {
            let x = s("x")?;
            OkpKey::new(crv, &x, None).map_err(|_| JoseError::DecryptionFailed)?;
            Ok(x)
        }
        (Curve::P256 | Curve::P384 | Curve::P521, Some("EC")) => {
            let e = EcKey::new(crv, &s("x")?, &s("y")?, None)
                .map_err(|_| JoseError::DecryptionFailed)?;
            Ok(e.point())
        }
        _ => Err(JoseError::DecryptionFailed),
    }
}

fn header_bytes(v: &Option<String>) -> Result<Vec<u8>, JoseError> {
    match v {
        Some(s) => b64::decode(s.as_bytes()),
        None => Ok(Vec::new()),
    }
}

/// Recovers the CEK. Every failure after header validation is `DecryptionFailed`; for
/// RSA1_5 a random CEK is substituted on any failure (RFC 7516 §11.5), so the failure
/// surfaces only at the content tag check.
pub(crate) fn unwrap(
    alg: KeyAlg,
    enc: Enc,
    key: &Jwk,
    header: &Header,
    ek: &[u8],
    limits: &Limits,
) -> Result<Zeroizing<Vec<u8>>, JoseError> {
    let fail = || JoseError::DecryptionFailed;
    let cek_len = enc.cek_len();
    let cek = if let Some(oaep_alg) = oaep(alg) {
        let Material::Rsa(r) = &key.material else {
            return Err(fail());
        };
        let p = r.private.as_ref().ok_or_else(fail)?;
        if ek.len() != r.modulus_len() {
            return Err(fail());
        }
        let k = rsa::OaepPrivateDecryptingKey::new(p.dec.clone()).map_err(|_| fail())?;
        let mut out = Zeroizing::new(vec![0u8; k.min_output_size()]);
        let n = k
            .decrypt(oaep_alg, ek, &mut out, None)
            .map_err(|_| fail())?
            .len();
        out.truncate(n);
        out
    } else if alg == KeyAlg::Rsa1_5 {
        let Material::Rsa(r) = &key.material else {
            return Err(fail());
        };
        let p = r.private.as_ref().ok_or_else(fail)?;
        let substitute = random(cek_len)?;
        let k = rsa::Pkcs1PrivateDecryptingKey::new(p.dec.clone()).map_err(|_| fail())?;
        let mut out = Zeroizing::new(vec![0u8; k.min_output_size()]);
        let got = if ek.len() == r.modulus_len() {
            k.decrypt(ek, &mut out).map(|s| s.len()).ok()
        } else {
            None
        };
        match got {
            Some(n) if n == cek_len => {
                out.truncate(n);
                out
            }
            _ => substitute,
        }
    } else if alg == KeyAlg::Dir {
        let o = key.oct().ok_or_else(fail)?;
        if !ek.is_empty() {
            return Err(fail());
        }
        Zeroizing::new(o.k.to_vec())
    } else if let Some(l) = gcmkw_len(alg) {
        let o = key.oct().ok_or_else(fail)?;
        if o.k.len() != l {
            return Err(fail());
        }
        let iv = header_bytes(&header.iv)?;
        let tag = header_bytes(&header.tag)?;
        if iv.len() != 12 || tag.len() != 16 {
            return Err(fail());
        }
        let g =
            LessSafeKey::new(UnboundKey::new(gcm(l).ok_or_else(fail)?, &o.k).map_err(|_| fail())?);
        let mut buf = Zeroizing::new(ek.to_vec());
        let nonce = Nonce::try_assume_unique_for_key(&iv).map_err(|_| fail())?;
        let n = g
            .open_in_place_separate_tag(nonce, Aad::empty(), &tag, &mut buf)
            .map_err(|_| fail())?
            .len();
        buf.truncate(n);
        buf
    } else if alg.is_ecdh() {
        let (crv, private) = match &key.material {
            Material::Ec(e) => (e.crv, e.private.as_ref().map(|p| &p.agree)),
            Material::Okp(o) if o.crv == Curve::X25519 => {
                (o.crv, o.private.as_ref().and_then(|p| p.agree.as_ref()))
            }
            _ => return Err(fail()),
        };
        let private = private.ok_or_else(fail)?;
        let epk = header.epk.as_ref().ok_or(JoseError::TokenMalformed)?;
        let peer = parse_epk(epk, crv)?;
        let z = agree(private, crv, &peer)?;
        let apu = header_bytes(&header.apu)?;
        let apv = header_bytes(&header.apv)?;
        let (len, id) = derive_len(alg, enc);
        let derived = concat_kdf(&z, id, &apu, &apv, len);
        if alg == KeyAlg::EcdhEs {
            if !ek.is_empty() {
                return Err(fail());
            }
            derived
        } else {
            kw::unwrap(&derived, ek)?
        }
    } else if alg.is_pbes2() {
        let o = key.oct().ok_or_else(fail)?;
        let p2c = header.p2c.ok_or(JoseError::TokenMalformed)?;
        if p2c < u64::from(limits.min_p2c) || p2c > u64::from(limits.max_p2c) {
            return Err(JoseError::TokenMalformed);
        }
        let p2s = header_bytes(&header.p2s)?;
        if p2s.len() < limits.min_p2s {
            return Err(JoseError::TokenMalformed);
        }
        let kek = pbes2_kek(alg, &o.k, &p2s, u32::try_from(p2c).map_err(|_| fail())?)?;
        kw::unwrap(&kek, ek)?
    } else {
        let l = alg.kw_len().ok_or_else(fail)?;
        let o = key.oct().ok_or_else(fail)?;
        if o.k.len() != l {
            return Err(fail());
        }
        kw::unwrap(&o.k, ek)?
    };
    // H49: a wrong-length or all-zero CEK (a buggy or hostile unwrap) is never used.
    if cek.len() != cek_len || cek.iter().all(|b| *b == 0) {
        return Err(fail());
    }
    Ok(cek)
}

/// Raw ECDH shared secret between a private key and a public key (test vectors only).
#[cfg(test)]
pub(crate) fn ecdh_shared(private: &Jwk, public: &Jwk) -> Result<Zeroizing<Vec<u8>>, JoseError> {
    let (crv, peer) = ecdh_peer(public)?;
    let p = match &private.material {
        Material::Ec(e) if e.crv == crv => e.private.as_ref().map(|p| &p.agree),
        Material::Okp(o) if o.crv == crv => o.private.as_ref().and_then(|p| p.agree.as_ref()),
        _ => None,
    };
    agree(p.ok_or(JoseError::DecryptionFailed)?, crv, &peer)
}
