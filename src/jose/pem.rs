//! PEM import (PKCS#8, SPKI, PKCS#1, SEC1, X.509 certificate) and key generation.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use aws_lc_rs::{agreement, rand, rsa};
use zeroize::Zeroizing;

use super::der::{self, Reader};
use super::jwk::{
    base64_std, ec_private_scalar, ec_public_point, EcKey, Material, OctKey, OkpKey, RsaKey,
};
use super::{Curve, JoseError, Jwk};

fn pem_blocks(text: &str) -> Result<(String, Zeroizing<Vec<u8>>), JoseError> {
    let start = text
        .find("-----BEGIN ")
        .ok_or(JoseError::KeyMalformed("PEM"))?;
    let rest = text
        .get(start + 11..)
        .ok_or(JoseError::KeyMalformed("PEM"))?;
    let label_end = rest.find("-----").ok_or(JoseError::KeyMalformed("PEM"))?;
    let label = rest.get(..label_end).unwrap_or_default().to_owned();
    let body_start = label_end + 5;
    let end_marker = format!("-----END {label}-----");
    let body_end = rest
        .find(&end_marker)
        .ok_or(JoseError::KeyMalformed("PEM"))?;
    let body = rest
        .get(body_start..body_end)
        .ok_or(JoseError::KeyMalformed("PEM"))?;
    if body.contains("Proc-Type:") {
        return Err(JoseError::KeyRejected(
            "legacy PEM encryption: convert with openssl pkcs8 -topk8 -v2 aes-256-cbc",
        ));
    }
    let compact: Zeroizing<String> =
        Zeroizing::new(body.chars().filter(|c| !c.is_ascii_whitespace()).collect());
    Ok((label, Zeroizing::new(base64_std(&compact)?)))
}

fn curve_from(param: Option<&[u8]>) -> Result<Curve, JoseError> {
    param
        .and_then(der::curve_oid)
        .and_then(Curve::from_name)
        .ok_or(JoseError::KeyRejected("unsupported EC curve"))
}

fn ec_alg(crv: Curve) -> &'static signature::EcdsaSigningAlgorithm {
    match crv {
        Curve::P384 => &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
        Curve::P521 => &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
        _ => &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
    }
}

fn ec_from_pair(crv: Curve, pair: &EcdsaKeyPair) -> Result<Material, JoseError> {
    let d = ec_private_scalar(pair)?;
    let point = ec_public_point(pair);
    let l = crv.coord_len();
    let x = point
        .get(1..1 + l)
        .ok_or(JoseError::KeyMalformed("EC point"))?;
    let y = point
        .get(1 + l..)
        .ok_or(JoseError::KeyMalformed("EC point"))?;
    Ok(Material::Ec(Box::new(EcKey::new(crv, x, y, Some(&d))?)))
}

fn ec_public(crv: Curve, point: &[u8]) -> Result<Material, JoseError> {
    let l = crv.coord_len();
    match point.split_first() {
        Some((4, xy)) if xy.len() == 2 * l => {
            let (x, y) = xy.split_at(l);
            Ok(Material::Ec(Box::new(EcKey::new(crv, x, y, None)?)))
        }
        _ => Err(JoseError::KeyMalformed(
            "EC point (only uncompressed points)",
        )),
    }
}

fn rsa_private(der: &[u8]) -> Result<Material, JoseError> {
    let [n, e, d, p, q, dp, dq, qi] = der::rsa_private(der)?;
    Ok(Material::Rsa(Box::new(RsaKey::new(
        n,
        e,
        Some([d, p, q, dp, dq, qi]),
    )?)))
}

fn okp_private(crv: Curve, seed: &[u8]) -> Result<Material, JoseError> {
    let public = match crv {
        Curve::Ed25519 => Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|_| JoseError::KeyMalformed("Ed25519 seed"))?
            .public_key()
            .as_ref()
            .to_vec(),
        _ => agreement::PrivateKey::from_private_key(&agreement::X25519, seed)
            .map_err(|_| JoseError::KeyMalformed("X25519 key"))?
            .compute_public_key()?
            .as_ref()
            .to_vec(),
    };
    Ok(Material::Okp(Box::new(OkpKey::new(
        crv,
        &public,
        Some(seed),
    )?)))
}

fn from_pkcs8(der_bytes: &[u8]) -> Result<Material, JoseError> {
    let (oid, param, key) = der::pkcs8(der_bytes)?;
    match oid {
        der::OID_RSA => rsa_private(key),
        der::OID_EC => {
            let crv = curve_from(param)?;
            let pair = EcdsaKeyPair::from_pkcs8(ec_alg(crv), der_bytes)
                .map_err(|_| JoseError::KeyMalformed("EC PKCS#8"))?;
            ec_from_pair(crv, &pair)
        }
        der::OID_ED25519 | der::OID_X25519 => {
            let seed = Reader(key).expect(der::OCTET_STRING)?;
            let crv = if oid == der::OID_ED25519 {
                Curve::Ed25519
            } else {
                Curve::X25519
            };
            okp_private(crv, seed)
        }
        _ => Err(JoseError::KeyRejected("unsupported key algorithm")),
    }
}

fn from_spki(der_bytes: &[u8]) -> Result<Material, JoseError> {
    let (oid, param, key) = der::spki(der_bytes)?;
    match oid {
        der::OID_RSA => {
            let (n, e) = der::rsa_public(key)?;
            Ok(Material::Rsa(Box::new(RsaKey::new(n, e, None)?)))
        }
        der::OID_EC => ec_public(curve_from(param)?, key),
        der::OID_ED25519 => Ok(Material::Okp(Box::new(OkpKey::new(
            Curve::Ed25519,
            key,
            None,
        )?))),
        der::OID_X25519 => Ok(Material::Okp(Box::new(OkpKey::new(
            Curve::X25519,
            key,
            None,
        )?))),
        _ => Err(JoseError::KeyRejected("unsupported key algorithm")),
    }
}

fn from_sec1(der_bytes: &[u8]) -> Result<Material, JoseError> {
    let mut s = Reader(Reader(der_bytes).expect(der::SEQUENCE)?);
    s.expect(der::INTEGER)?;
    s.expect(der::OCTET_STRING)?;
    let param = if s.peek() == Some(0xa0) {
        Some(Reader(s.expect(0xa0)?).expect(der::OID)?)
    } else {
        None
    };
    let crv = curve_from(param)?;
    let pair = EcdsaKeyPair::from_private_key_der(ec_alg(crv), der_bytes)
        .map_err(|_| JoseError::KeyMalformed("EC private key"))?;
    ec_from_pair(crv, &pair)
}

impl Jwk {
    /// Imports the first PEM block of `text`: `PRIVATE KEY` (PKCS#8), `PUBLIC KEY` (SPKI),
    /// `RSA PRIVATE KEY` / `RSA PUBLIC KEY` (PKCS#1), `EC PRIVATE KEY` (SEC1) or
    /// `CERTIFICATE` (its public key; the certificate itself is not validated).
    pub fn from_pem(text: &str) -> Result<Jwk, JoseError> {
        Self::from_pem_with_password(text, None)
    }

    /// Like [`Jwk::from_pem`], and also `ENCRYPTED PRIVATE KEY` (PKCS#8 with PBES2), which
    /// needs `password`. A password given for an unencrypted key is refused: the operator
    /// believes the file is protected and it is not.
    pub fn from_pem_with_password(text: &str, password: Option<&[u8]>) -> Result<Jwk, JoseError> {
        let (label, der_bytes) = pem_blocks(text)?;
        if password.is_some() && label != "ENCRYPTED PRIVATE KEY" {
            return Err(JoseError::KeyRejected(
                "a password was given but the key is not encrypted",
            ));
        }
        let material = match label.as_str() {
            "ENCRYPTED PRIVATE KEY" => {
                let password = password.ok_or(JoseError::KeyRejected(
                    "the key is encrypted and no password was given",
                ))?;
                from_pkcs8(&super::pbes2::decrypt(&der_bytes, password)?)?
            }
            "PRIVATE KEY" => from_pkcs8(&der_bytes)?,
            "PUBLIC KEY" => from_spki(&der_bytes)?,
            "RSA PRIVATE KEY" => rsa_private(&der_bytes)?,
            "RSA PUBLIC KEY" => {
                let (n, e) = der::rsa_public(&der_bytes)?;
                Material::Rsa(Box::new(RsaKey::new(n, e, None)?))
            }
            "EC PRIVATE KEY" => from_sec1(&der_bytes)?,
            "CERTIFICATE" => from_spki(der::cert_spki(&der_bytes)?)?,
            _ => return Err(JoseError::KeyRejected("unsupported PEM label")),
        };
        Ok(Jwk::from_material(material))
    }

    /// Generates a private key: `RSA` (bits 2048, 3072, 4096), `EC` (P-256/384/521), `OKP`
    /// (Ed25519, X25519) or `oct` (bits, default 256; at least 128).
    pub fn generate(kty: &str, bits: Option<usize>, crv: Option<Curve>) -> Result<Jwk, JoseError> {
        let material = match kty {
            "RSA" => {
                let size = match bits.unwrap_or(2048) {
                    2048 => rsa::KeySize::Rsa2048,
                    3072 => rsa::KeySize::Rsa3072,
                    4096 => rsa::KeySize::Rsa4096,
                    _ => return Err(JoseError::InvalidInput("RSA bits: 2048, 3072 or 4096")),
                };
                let pair = RsaKeyPair::generate(size)?;
                let pkcs8: Pkcs8V1Der = pair.as_der()?;
                from_pkcs8(pkcs8.as_ref())?
            }
            "EC" => {
                let crv = crv.unwrap_or(Curve::P256);
                if !matches!(crv, Curve::P256 | Curve::P384 | Curve::P521) {
                    return Err(JoseError::InvalidInput("EC curve: P-256, P-384 or P-521"));
                }
                ec_from_pair(crv, &EcdsaKeyPair::generate(ec_alg(crv))?)?
            }
            "OKP" => {
                let crv = crv.unwrap_or(Curve::Ed25519);
                if !matches!(crv, Curve::Ed25519 | Curve::X25519) {
                    return Err(JoseError::InvalidInput("OKP curve: Ed25519 or X25519"));
                }
                let mut seed = Zeroizing::new([0u8; 32]);
                rand::fill(seed.as_mut())?;
                okp_private(crv, seed.as_ref())?
            }
            "oct" => {
                let bits = bits.unwrap_or(256);
                if bits < 128 || bits % 8 != 0 || bits > 4096 {
                    return Err(JoseError::InvalidInput(
                        "oct bits: a multiple of 8, 128..4096",
                    ));
                }
                let mut k = Zeroizing::new(vec![0u8; bits / 8]);
                rand::fill(k.as_mut())?;
                Material::Oct(Box::new(OctKey::new(k)?))
            }
            _ => return Err(JoseError::InvalidInput("kty: RSA, EC, OKP or oct")),
        };
        Ok(Jwk::from_material(material))
    }
}
