//! JOSE engine.
mod alg;
mod claims;
pub mod cli;
pub(crate) mod b64;
mod der;
mod error;
mod header;
pub(crate) mod json;
mod jwe;
mod jwk;
mod jws;
mod nested;
mod limits;
mod jwks;
mod pem;

pub use alg::{Alg, Enc, KeyAlg};
pub use error::JoseError;
pub use header::Header;
pub use jwk::{Curve, Jwk, KeyOp};
pub use jwks::{JwkSet, KeyHint};
pub use limits::Limits;
pub use jws::{sign, verify, Verified};
pub use claims::{claim_at, typ_matches, ClaimRules};
pub use jwe::{decrypt, encrypt, Decrypted, DecryptPolicy, EncryptOptions, KeyMgmtOptions};
pub use nested::{decrypt_then_verify, sign_then_encrypt};

#[cfg(test)]
mod tests;
