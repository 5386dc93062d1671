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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::{sign, verify, JwkSet, Limits};

    fn ec(crv: Curve) -> Jwk {
        Jwk::generate("EC", None, Some(crv)).unwrap()
    }

    fn code(r: Result<(), JoseError>) -> &'static str {
        r.map_or_else(|e| e.code(), |()| "ok")
    }

    #[test]
    fn hmac_secrets_shorter_than_the_hash_output_are_too_short() {
        for (alg, min) in [(Alg::HS256, 32), (Alg::HS384, 48), (Alg::HS512, 64)] {
            let short = Jwk::from_secret(&vec![7; min - 1]).unwrap();
            assert_eq!(code(short.fits_alg(alg, KeyOp::Sign)), "key_too_short");
            let ok = Jwk::from_secret(&vec![7; min]).unwrap();
            assert_eq!(code(ok.fits_alg(alg, KeyOp::Sign)), "ok");
        }
    }

    #[test]
    fn each_signature_family_needs_its_key_type() {
        let rsa = Jwk::generate("RSA", Some(2048), None).unwrap();
        let secret = Jwk::from_secret(&[1; 64]).unwrap();
        let ed = Jwk::generate("OKP", None, Some(Curve::Ed25519)).unwrap();
        assert_eq!(
            code(rsa.fits_alg(Alg::HS256, KeyOp::Verify)),
            "key_type_mismatch"
        );
        assert_eq!(
            code(secret.fits_alg(Alg::RS256, KeyOp::Verify)),
            "key_type_mismatch"
        );
        assert_eq!(
            code(ec(Curve::P256).fits_alg(Alg::PS256, KeyOp::Verify)),
            "key_type_mismatch"
        );
        assert_eq!(
            code(ed.fits_alg(Alg::ES256, KeyOp::Verify)),
            "key_type_mismatch"
        );
        assert_eq!(code(rsa.fits_alg(Alg::PS512, KeyOp::Sign)), "ok");
        assert_eq!(code(ed.fits_alg(Alg::EdDSA, KeyOp::Sign)), "ok");
    }

    #[test]
    fn ecdsa_algorithms_need_their_curve() {
        assert_eq!(
            code(ec(Curve::P256).fits_alg(Alg::ES256, KeyOp::Sign)),
            "ok"
        );
        assert_eq!(
            code(ec(Curve::P384).fits_alg(Alg::ES256, KeyOp::Sign)),
            "invalid_curve"
        );
        assert_eq!(
            code(ec(Curve::P256).fits_alg(Alg::ES384, KeyOp::Sign)),
            "invalid_curve"
        );
        assert_eq!(
            code(ec(Curve::P384).fits_alg(Alg::ES512, KeyOp::Sign)),
            "invalid_curve"
        );
        let x = Jwk::generate("OKP", None, Some(Curve::X25519)).unwrap();
        assert_eq!(code(x.fits_alg(Alg::EdDSA, KeyOp::Verify)), "invalid_curve");
    }

    #[test]
    fn signing_reports_the_misfit_instead_of_a_generic_failure() {
        let e = sign(b"{}", &ec(Curve::P384), Alg::ES256, &Default::default()).unwrap_err();
        assert_eq!(e.code(), "invalid_curve");
    }

    #[test]
    fn a_key_of_another_type_is_skipped_when_verifying() {
        let signer = ec(Curve::P256);
        let t = sign(b"{}", &signer, Alg::ES256, &Default::default()).unwrap();
        let rsa = Jwk::generate("RSA", Some(2048), None)
            .unwrap()
            .to_public()
            .unwrap();
        let set = JwkSet::new(vec![rsa]).unwrap();
        let e = verify(&t, &set, &[Alg::ES256], &Limits::default()).unwrap_err();
        assert_eq!(e, JoseError::NoMatchingKey);
    }

    #[test]
    fn dir_keys_must_have_the_content_key_length() {
        for enc in Enc::ALL {
            let k = Jwk::from_secret(&vec![3; enc.cek_len()]).unwrap();
            assert_eq!(code(k.fits_key_alg(KeyAlg::Dir, enc, KeyOp::Decrypt)), "ok");
            let k = Jwk::from_secret(&vec![3; enc.cek_len() + 8]).unwrap();
            assert_eq!(
                code(k.fits_key_alg(KeyAlg::Dir, enc, KeyOp::Decrypt)),
                "key_length_mismatch",
                "{enc}"
            );
        }
    }

    #[test]
    fn key_wrap_algorithms_need_their_key_type_and_length() {
        let k16 = Jwk::from_secret(&[3; 16]).unwrap();
        let enc = Enc::A128Gcm;
        assert_eq!(
            code(k16.fits_key_alg(KeyAlg::A128KW, enc, KeyOp::Encrypt)),
            "ok"
        );
        assert_eq!(
            code(k16.fits_key_alg(KeyAlg::A256GCMKW, enc, KeyOp::Encrypt)),
            "key_length_mismatch"
        );
        assert_eq!(
            code(k16.fits_key_alg(KeyAlg::RsaOaep256, enc, KeyOp::Encrypt)),
            "key_type_mismatch"
        );
        assert_eq!(
            code(k16.fits_key_alg(KeyAlg::EcdhEsA128KW, enc, KeyOp::Encrypt)),
            "key_type_mismatch"
        );
        assert_eq!(
            code(k16.fits_key_alg(KeyAlg::Pbes2Hs256A128KW, enc, KeyOp::Encrypt)),
            "ok"
        );
        let ed = Jwk::generate("OKP", None, Some(Curve::Ed25519)).unwrap();
        assert_eq!(
            code(ed.fits_key_alg(KeyAlg::EcdhEs, enc, KeyOp::Encrypt)),
            "invalid_curve"
        );
        let p = ec(Curve::P384);
        assert_eq!(
            code(p.fits_key_alg(KeyAlg::EcdhEs, enc, KeyOp::Decrypt)),
            "ok"
        );
        let public = p.to_public().unwrap();
        assert_eq!(
            code(public.fits_key_alg(KeyAlg::EcdhEs, enc, KeyOp::Decrypt)),
            "private_key_required"
        );
        let rsa = Jwk::generate("RSA", Some(2048), None).unwrap();
        assert_eq!(
            code(rsa.fits_key_alg(KeyAlg::Dir, enc, KeyOp::Encrypt)),
            "key_type_mismatch"
        );
    }
}
