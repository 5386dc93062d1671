//! Whether a key can serve an algorithm. Checked once when a config is compiled, so a key that
//! cannot work is refused with its TOML path, and again before each signature or key wrap, so
//! a remote key that does not fit fails with its own code rather than a generic one.

use super::curve::Curve;
use super::jwk::{KeyOp, Material};
use super::{Alg, Enc, JoseError, Jwk, KeyAlg};

/// What a JWS algorithm needs, said when another kind of key is offered.
const fn sig_family(alg: Alg) -> &'static str {
    match alg {
        Alg::HS256 | Alg::HS384 | Alg::HS512 => "HS256, HS384 and HS512 need an oct secret",
        Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512 => {
            "RS256..PS512 need an RSA key"
        }
        Alg::ES256 | Alg::ES384 | Alg::ES512 => "ES256, ES384 and ES512 need an EC key",
        Alg::EdDSA => "EdDSA needs an OKP (Ed25519) key",
    }
}

/// The shortest HMAC secret for `alg` (RFC 7518 §3.2: at least the hash output).
const fn hmac_min(alg: Alg) -> Option<(usize, &'static str)> {
    match alg {
        Alg::HS256 => Some((
            32,
            "an HS256 secret needs at least 32 bytes (RFC 7518 §3.2)",
        )),
        Alg::HS384 => Some((
            48,
            "an HS384 secret needs at least 48 bytes (RFC 7518 §3.2)",
        )),
        Alg::HS512 => Some((
            64,
            "an HS512 secret needs at least 64 bytes (RFC 7518 §3.2)",
        )),
        _ => None,
    }
}

const fn ec_curve(alg: Alg) -> Option<(Curve, &'static str)> {
    match alg {
        Alg::ES256 => Some((Curve::P256, "ES256 needs a P-256 key")),
        Alg::ES384 => Some((Curve::P384, "ES384 needs a P-384 key")),
        Alg::ES512 => Some((Curve::P521, "ES512 needs a P-521 key")),
        _ => None,
    }
}

/// The exact AES key length of a key management algorithm that uses the key as an AES key.
const fn aes_len(alg: KeyAlg, enc: Enc) -> Option<(usize, &'static str)> {
    match alg {
        KeyAlg::A128KW | KeyAlg::A128GCMKW => Some((16, "A128KW and A128GCMKW need a 16-byte key")),
        KeyAlg::A192KW | KeyAlg::A192GCMKW => Some((24, "A192KW and A192GCMKW need a 24-byte key")),
        KeyAlg::A256KW | KeyAlg::A256GCMKW => Some((32, "A256KW and A256GCMKW need a 32-byte key")),
        KeyAlg::Dir => Some(match enc {
            Enc::A128Gcm => (16, "dir with A128GCM needs a 16-byte key"),
            Enc::A192Gcm => (24, "dir with A192GCM needs a 24-byte key"),
            Enc::A256Gcm => (32, "dir with A256GCM needs a 32-byte key"),
            Enc::A128CbcHs256 => (32, "dir with A128CBC-HS256 needs a 32-byte key"),
            Enc::A192CbcHs384 => (48, "dir with A192CBC-HS384 needs a 48-byte key"),
            Enc::A256CbcHs512 => (64, "dir with A256CBC-HS512 needs a 64-byte key"),
        }),
        _ => None,
    }
}

impl Jwk {
    /// Whether this key can perform `op` (sign or verify) with `alg`: the key type, the curve,
    /// the HMAC secret's length, and a private part to sign.
    pub fn fits_alg(&self, alg: Alg, op: KeyOp) -> Result<(), JoseError> {
        match &self.material {
            Material::Oct(o) => {
                let (min, why) =
                    hmac_min(alg).ok_or(JoseError::KeyTypeMismatch(sig_family(alg)))?;
                if o.k.len() < min {
                    return Err(JoseError::KeyTooShort(why));
                }
            }
            Material::Rsa(_) => {
                if !matches!(
                    alg,
                    Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512
                ) {
                    return Err(JoseError::KeyTypeMismatch(sig_family(alg)));
                }
            }
            Material::Ec(e) => {
                let (crv, why) =
                    ec_curve(alg).ok_or(JoseError::KeyTypeMismatch(sig_family(alg)))?;
                if e.crv != crv {
                    return Err(JoseError::InvalidCurve(why));
                }
            }
            Material::Okp(o) => {
                if alg != Alg::EdDSA {
                    return Err(JoseError::KeyTypeMismatch(sig_family(alg)));
                }
                if o.crv != Curve::Ed25519 {
                    return Err(JoseError::InvalidCurve("EdDSA needs an Ed25519 key"));
                }
            }
        }
        if op == KeyOp::Sign && !self.is_private() {
            return Err(JoseError::PrivateKeyRequired);
        }
        Ok(())
    }

    /// Whether this key can perform `op` (encrypt or decrypt) with key management `alg` and
    /// content encryption `enc`: the key type, the curve, the exact AES or `dir` key length,
    /// and a private part to decrypt with a public-key algorithm.
    pub fn fits_key_alg(&self, alg: KeyAlg, enc: Enc, op: KeyOp) -> Result<(), JoseError> {
        if let Some((len, why)) = aes_len(alg, enc) {
            let o = self.oct().ok_or(JoseError::KeyTypeMismatch(
                "AES key wrap, AES-GCM key wrap and dir need an oct key",
            ))?;
            if o.k.len() != len {
                return Err(JoseError::KeyLengthMismatch(why));
            }
            return Ok(());
        }
        if alg.is_pbes2() {
            return match self.material {
                Material::Oct(_) => Ok(()),
                _ => Err(JoseError::KeyTypeMismatch(
                    "PBES2 needs a password (an oct key)",
                )),
            };
        }
        match &self.material {
            Material::Rsa(_) if !alg.is_ecdh() => {}
            Material::Ec(_) if alg.is_ecdh() => {}
            Material::Okp(o) if alg.is_ecdh() => {
                if o.crv != Curve::X25519 {
                    return Err(JoseError::InvalidCurve(
                        "ECDH-ES needs a P-256, P-384, P-521 or X25519 key",
                    ));
                }
            }
            _ if alg.is_ecdh() => {
                return Err(JoseError::KeyTypeMismatch(
                    "ECDH-ES needs an EC or X25519 key",
                ))
            }
            _ => {
                return Err(JoseError::KeyTypeMismatch(
                    "RSA-OAEP and RSA1_5 need an RSA key",
                ))
            }
        }
        if op == KeyOp::Decrypt && !self.is_private() {
            return Err(JoseError::PrivateKeyRequired);
        }
        Ok(())
    }
}
