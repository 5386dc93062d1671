//! Named curves (RFC 7518 §6.2.1.1, RFC 8037) and the aws-lc-rs algorithms each maps to. A
//! leaf of the JOSE engine: both key parsing (`jwk`) and key material (`material`) use it.

use aws_lc_rs::{agreement, signature};

/// A named curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Curve {
    P256,
    P384,
    P521,
    Ed25519,
    X25519,
}

impl Curve {
    /// The registered `crv` name.
    pub const fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
            Curve::Ed25519 => "Ed25519",
            Curve::X25519 => "X25519",
        }
    }

    /// Lookup by `crv` name.
    pub fn from_name(n: &str) -> Option<Curve> {
        [
            Curve::P256,
            Curve::P384,
            Curve::P521,
            Curve::Ed25519,
            Curve::X25519,
        ]
        .into_iter()
        .find(|c| c.name() == n)
    }

    /// Coordinate / scalar length in bytes.
    pub const fn coord_len(self) -> usize {
        match self {
            Curve::P256 | Curve::Ed25519 | Curve::X25519 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }

    pub(crate) fn agreement_alg(self) -> &'static agreement::Algorithm {
        match self {
            Curve::P256 => &agreement::ECDH_P256,
            Curve::P384 => &agreement::ECDH_P384,
            Curve::P521 => &agreement::ECDH_P521,
            Curve::Ed25519 | Curve::X25519 => &agreement::X25519,
        }
    }

    pub(crate) fn ecdsa(
        self,
    ) -> Option<(
        &'static signature::EcdsaSigningAlgorithm,
        &'static signature::EcdsaVerificationAlgorithm,
    )> {
        match self {
            Curve::P256 => Some((
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &signature::ECDSA_P256_SHA256_FIXED,
            )),
            Curve::P384 => Some((
                &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                &signature::ECDSA_P384_SHA384_FIXED,
            )),
            Curve::P521 => Some((
                &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
                &signature::ECDSA_P521_SHA512_FIXED,
            )),
            _ => None,
        }
    }
}
