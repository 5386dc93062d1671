//! The JOSE engine: JWS, JWE, nested JWTs, JWK/JWKS and JWT claim validation (issue 3).
//!
//! Pure library code: no I/O and no network (the operator CLI in [`cli`] reads its `--key`
//! file and nothing else). Every token policy of the gateway goes through this module.
//!
//! # Why hand-written on aws-lc-rs rather than the `jsonwebtoken` crate
//!
//! Probes of jsonwebtoken 11.1 (aws_lc_rs backend) found it accepts unknown `crit` headers
//! and `b64:false`; treats `aud`/`iss`/`sub` of the wrong JSON type as absent; accepts
//! 1-byte and empty HMAC keys and validly signed 16 MiB headers; leaves `nbf` unchecked by
//! default and never checks `iat`/`typ`; and re-parses keys on every call. It has no JWE.
//! aws-lc-rs `key_wrap` lacks AES-192 (A192KW is done here with RFC 3394 over the AES-192
//! block) and its RSA PKCS#1 v1.5 decryption signals failure, so the RFC 7516 §11.5
//! random-CEK defence lives here. So the engine sits directly on aws-lc-rs primitives:
//!
//! * keys are parsed once ([`Jwk`], [`JwkSet`]) into `ParsedPublicKey`, `RsaKeyPair`,
//!   `EcdsaKeyPair`, `Ed25519KeyPair`, `agreement::PrivateKey`, `hmac::Key`; secrets are
//!   zeroized on drop and never printed by `Debug`;
//! * the caller's policy fixes the algorithms ([`verify`] takes `&[Alg]`,
//!   [`DecryptPolicy`] lists `KeyAlg`/`Enc`); the token's `alg` only selects among them;
//!   `none` has no representation; an asymmetric key is never an HMAC secret; keys are
//!   selected by (kid, alg) and never from `jwk`/`jku`/`x5u`/`x5c` header members;
//! * size caps ([`Limits`]) are checked before decoding; base64url is strict; JSON with
//!   duplicate member names is rejected at every depth; `crit` is processed;
//! * HMAC tags are compared in constant time (`hmac::verify`); every JWE decryption failure
//!   is the single [`JoseError::DecryptionFailed`].
//!
//! # Entry points for policies
//!
//! * JWS: [`sign`], [`verify`] → [`Verified`] (`header`, `alg`, `payload`, `claims()`).
//! * JWE: [`encrypt`] with [`EncryptOptions`], [`decrypt`] with [`DecryptPolicy`] →
//!   [`Decrypted`].
//! * Nested: [`sign_then_encrypt`], [`decrypt_then_verify`].
//! * Claims: [`ClaimRules::validate`] on `Verified::claims()` with an injected `now`.
//! * Keys: [`Jwk::from_json`], [`Jwk::from_pem`], [`Jwk::generate`], [`Jwk::from_secret`],
//!   [`JwkSet::from_json`] / [`JwkSet::from_json_lenient`], [`Jwk::thumbprint`].
mod alg;
pub(crate) mod b64;
mod claims;
pub mod cli;
mod curve;
mod der;
mod error;
mod fit;
mod header;
pub(crate) mod json;
mod jwe;
mod jwk;
mod jwks;
mod jws;
mod limits;
mod material;
mod nested;
mod pbes2;
mod pem;

pub use alg::{Alg, Enc, KeyAlg};
pub use claims::{claim_at, typ_matches, ClaimRules};
pub use curve::Curve;
pub use error::JoseError;
pub use header::Header;
pub use jwe::{
    decrypt, encrypt, DecryptPolicy, Decrypted, EncryptOptions, KeyMgmtOptions, PBES2_DEFAULT_P2C,
    PBES2_DEFAULT_P2S_LEN,
};
pub use jwk::{Jwk, KeyOp};
pub use jwks::{JwkSet, KeyHint};
pub use jws::{sign, verify, verify_with, Verified, VerifyOptions};
pub use limits::Limits;
pub use nested::{decrypt_then_verify, sign_then_encrypt};
pub use pbes2::MAX_ITERATIONS as MAX_PBKDF2_ITERATIONS;

#[cfg(test)]
mod tests;

/// Strict base64url decoding (no padding, URL-safe alphabet, canonical trailing bits).
pub fn b64_decode(text: &str) -> Result<Vec<u8>, JoseError> {
    b64::decode(text.as_bytes())
}

/// Base64url encoding without padding.
pub fn b64_encode(bytes: &[u8]) -> String {
    b64::encode(bytes)
}
