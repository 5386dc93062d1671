//! The one error type of the JOSE engine.

use std::fmt;

/// Every way a JOSE operation can fail. Each variant has a stable snake_case [`JoseError::code`].
///
/// Display never includes key material, token bytes or plaintext: only the condition, and for
/// a few variants a static detail (an algorithm or claim name chosen by configuration, never by
/// secret data).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoseError {
    /// The token is not well formed (segments, base64url, JSON, header members).
    TokenMalformed,
    /// The token, or one of its parts, exceeds a configured size cap.
    TokenTooLarge,
    /// The token's algorithm is unknown, `none`, or not in the caller's allow-list.
    AlgorithmNotAllowed,
    /// The JWE `enc` is unknown or not in the caller's allow-list.
    EncryptionNotAllowed,
    /// A `crit` header parameter lists an extension this engine does not process.
    CriticalHeaderUnsupported,
    /// `b64: false` (RFC 7797) is not accepted for JWTs.
    UnencodedPayloadRejected,
    /// `zip` is not allowed by the policy or is not `DEF`, or appears on a JWS.
    CompressionNotAllowed,
    /// The signature does not verify.
    SignatureInvalid,
    /// Any JWE decryption failure (one error: no padding or format oracle).
    DecryptionFailed,
    /// No configured key matches the token (kid, alg, type, use).
    NoMatchingKey,
    /// The token names no `kid` and the caller requires one when its key set holds more
    /// than one key.
    KidMissing,
    /// A key was refused at load time or for the requested operation (weak, wrong use...).
    KeyRejected(&'static str),
    /// A key or key set could not be parsed.
    KeyMalformed(&'static str),
    /// The key's type cannot serve the algorithm (an RSA key for HS256, an oct secret for
    /// ES256, a public key where a private one is needed to decrypt).
    KeyTypeMismatch(&'static str),
    /// The key is shorter than the algorithm needs (an HMAC secret under the hash output).
    KeyTooShort(&'static str),
    /// The key has another length than the algorithm fixes (`dir`, AES key wrap).
    KeyLengthMismatch(&'static str),
    /// The key is on another curve than the algorithm uses (a P-384 key for ES256).
    InvalidCurve(&'static str),
    /// A JWK Set is ambiguous (duplicate kid, mixed symmetric and asymmetric keys).
    KeySetAmbiguous,
    /// An operation that needs a private key was given a public key.
    PrivateKeyRequired,
    /// The payload is not a JSON object when claims were expected.
    ClaimsMalformed,
    /// `exp` is in the past (after skew).
    TokenExpired,
    /// `nbf` is in the future (after skew), or `iat` is in the future.
    TokenNotYetValid,
    /// The token lifetime, or its age since `iat`, exceeds the configured maximum.
    TokenTooOld,
    /// `iss` is not one of the configured issuers.
    IssuerMismatch,
    /// `aud` contains none of the configured audiences.
    AudienceMismatch,
    /// `sub` differs from the configured subject.
    SubjectMismatch,
    /// `typ` differs from the configured type.
    TypeMismatch,
    /// A required claim is missing.
    ClaimMissing(String),
    /// A prohibited claim is present.
    ClaimProhibited(String),
    /// A claim differs from its configured exact value.
    ClaimMismatch(String),
    /// A claim has the wrong JSON type (e.g. `exp` as a string).
    ClaimInvalidType(String),
    /// A nested token does not have the configured shape.
    NestingInvalid,
    /// An internal cryptographic failure (RNG, key generation, encryption).
    CryptoFailure,
    /// Invalid caller input (unsupported parameter combination).
    InvalidInput(&'static str),
}

impl JoseError {
    /// A stable, machine-readable code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TokenMalformed => "token_malformed",
            Self::TokenTooLarge => "token_too_large",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::EncryptionNotAllowed => "encryption_not_allowed",
            Self::CriticalHeaderUnsupported => "crit_unsupported",
            Self::UnencodedPayloadRejected => "b64_rejected",
            Self::CompressionNotAllowed => "zip_not_allowed",
            Self::SignatureInvalid => "signature_invalid",
            Self::DecryptionFailed => "decryption_failed",
            Self::NoMatchingKey => "no_matching_key",
            Self::KidMissing => "kid_missing",
            Self::KeyRejected(_) => "key_rejected",
            Self::KeyMalformed(_) => "key_malformed",
            Self::KeyTypeMismatch(_) => "key_type_mismatch",
            Self::KeyTooShort(_) => "key_too_short",
            Self::KeyLengthMismatch(_) => "key_length_mismatch",
            Self::InvalidCurve(_) => "invalid_curve",
            Self::KeySetAmbiguous => "key_set_ambiguous",
            Self::PrivateKeyRequired => "private_key_required",
            Self::ClaimsMalformed => "claims_malformed",
            Self::TokenExpired => "token_expired",
            Self::TokenNotYetValid => "token_not_yet_valid",
            Self::TokenTooOld => "token_too_old",
            Self::IssuerMismatch => "issuer_mismatch",
            Self::AudienceMismatch => "audience_mismatch",
            Self::SubjectMismatch => "subject_mismatch",
            Self::TypeMismatch => "type_mismatch",
            Self::ClaimMissing(_) => "claim_missing",
            Self::ClaimProhibited(_) => "claim_prohibited",
            Self::ClaimMismatch(_) => "claim_mismatch",
            Self::ClaimInvalidType(_) => "claim_invalid_type",
            Self::NestingInvalid => "nesting_invalid",
            Self::CryptoFailure => "crypto_failure",
            Self::InvalidInput(_) => "invalid_input",
        }
    }
}

impl fmt::Display for JoseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::KeyRejected(why)
            | Self::KeyMalformed(why)
            | Self::KeyTypeMismatch(why)
            | Self::KeyTooShort(why)
            | Self::KeyLengthMismatch(why)
            | Self::InvalidCurve(why)
            | Self::InvalidInput(why) => write!(f, "{}: {why}", self.code()),
            // Claim names come from configuration; escape them so a hostile name in a token
            // path cannot inject control characters into a log line.
            Self::ClaimMissing(c)
            | Self::ClaimProhibited(c)
            | Self::ClaimMismatch(c)
            | Self::ClaimInvalidType(c) => write!(f, "{}: {}", self.code(), c.escape_debug()),
            _ => f.write_str(self.code()),
        }
    }
}

impl std::error::Error for JoseError {}

impl From<aws_lc_rs::error::Unspecified> for JoseError {
    fn from(_: aws_lc_rs::error::Unspecified) -> Self {
        Self::CryptoFailure
    }
}
