//! The two error tiers. [`ConfigError`] is a problem in the config, with its TOML path; all of
//! them are collected before a config is refused. [`GatewayError`] is a request-time condition
//! with an HTTP status and a stable code; only `proxy/respond.rs` turns it into a response.

use std::fmt;

/// One problem in a config file, with the TOML path it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Collects config errors with a path prefix while compiling.
#[derive(Debug, Default)]
pub struct Errors(pub Vec<ConfigError>);

impl Errors {
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError::new(path, message));
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A request-time failure or denial. Variants are named after the condition; each has a stable
/// `code()` (part of the API operators script against) and a default `status()`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GatewayError {
    /// No route matched the request.
    NoRoute,
    /// A policy denied the request (e.g. a CORS preflight from an origin not allowed).
    CorsOriginDenied,
    /// The upstream pool has no healthy target.
    NoHealthyUpstream,
    /// Connecting to the upstream failed.
    UpstreamConnect,
    /// The upstream did not answer in time.
    UpstreamTimeout,
    /// The upstream answered with something that is not HTTP, or closed mid-response.
    UpstreamProtocol,
    /// The client sent a request we cannot process.
    BadRequest,
    /// The request target is not an origin-form path, or breaks the path rules (bad bytes or
    /// escapes, an escaped slash or a `;` parameter where those are refused).
    InvalidPath,
    /// The method is not a token, or spells a standard method in another case (`post`).
    InvalidMethod,
    /// Host is missing (HTTP/1.1), repeated, malformed, or differs from `:authority`.
    InvalidHost,
    /// The request head is larger than `max_head_size` or has more than `max_headers` fields.
    HeaderTooLarge,
    /// The request line is longer than `max_request_line`.
    UriTooLong,
    /// The request head did not arrive within `header_timeout`.
    RequestTimeout,
    /// A `deny` policy refused the request (403): an operator's rule (`when`) excludes it.
    Forbidden,
    /// No token where the policy looks for one.
    TokenMissing,
    /// Two different tokens in one request (never silently pick one).
    TokenAmbiguous,
    TokenMalformed,
    TokenTooLarge,
    AlgorithmNotAllowed,
    SignatureInvalid,
    DecryptionFailed,
    NoMatchingKey,
    /// The remote key set could not be fetched and nothing usable is cached.
    JwksUnavailable,
    TokenExpired,
    TokenNotYetValid,
    TokenTooOld,
    IssuerMismatch,
    AudienceMismatch,
    SubjectMismatch,
    ClaimMissing,
    ClaimProhibited,
    ClaimMismatch,
    /// Authenticated, but not allowed (identity, roles, scopes).
    AccessDenied,
    /// The request body is larger than what the gateway buffers for a policy.
    BodyTooLarge,
    /// A value a minted token needs is absent from the request (and has no default).
    ValueUnresolved,
    /// The key to sign or encrypt with cannot be had (remote JWKS down, no usable key).
    KeyUnavailable,
    SigningFailed,
    EncryptionFailed,
    /// The token was revoked (or is unknown to the token store).
    TokenRevoked,
    /// The token is bound to another client IP.
    TokenBindingMismatch,
    /// The token store could not answer: fail closed.
    TokenStoreUnavailable,
    /// Anything unexpected inside the gateway.
    Internal,
}

impl GatewayError {
    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::NoRoute => "no_route",
            GatewayError::CorsOriginDenied => "cors_origin_denied",
            GatewayError::NoHealthyUpstream => "upstream_unavailable",
            GatewayError::UpstreamConnect => "upstream_connect_failed",
            GatewayError::UpstreamTimeout => "upstream_timeout",
            GatewayError::UpstreamProtocol => "upstream_protocol_error",
            GatewayError::BadRequest => "bad_request",
            GatewayError::InvalidPath => "invalid_path",
            GatewayError::InvalidMethod => "invalid_method",
            GatewayError::InvalidHost => "invalid_host",
            GatewayError::HeaderTooLarge => "request_header_too_large",
            GatewayError::UriTooLong => "uri_too_long",
            GatewayError::RequestTimeout => "request_timeout",
            GatewayError::Internal => "internal_error",
            GatewayError::TokenMissing => "token_missing",
            GatewayError::TokenAmbiguous => "token_ambiguous",
            GatewayError::TokenMalformed => "token_malformed",
            GatewayError::TokenTooLarge => "token_too_large",
            GatewayError::AlgorithmNotAllowed => "algorithm_not_allowed",
            GatewayError::SignatureInvalid => "signature_invalid",
            GatewayError::DecryptionFailed => "decryption_failed",
            GatewayError::NoMatchingKey => "no_matching_key",
            GatewayError::JwksUnavailable => "jwks_unavailable",
            GatewayError::TokenExpired => "token_expired",
            GatewayError::TokenNotYetValid => "token_not_yet_valid",
            GatewayError::TokenTooOld => "token_too_old",
            GatewayError::IssuerMismatch => "issuer_mismatch",
            GatewayError::AudienceMismatch => "audience_mismatch",
            GatewayError::SubjectMismatch => "subject_mismatch",
            GatewayError::ClaimMissing => "claim_missing",
            GatewayError::ClaimProhibited => "claim_prohibited",
            GatewayError::ClaimMismatch => "claim_mismatch",
            GatewayError::AccessDenied => "access_denied",
            GatewayError::Forbidden => "forbidden",
            GatewayError::ValueUnresolved => "value_unresolved",
            GatewayError::BodyTooLarge => "body_too_large",
            GatewayError::KeyUnavailable => "key_unavailable",
            GatewayError::SigningFailed => "signing_failed",
            GatewayError::EncryptionFailed => "encryption_failed",
            GatewayError::TokenRevoked => "token_revoked",
            GatewayError::TokenBindingMismatch => "token_binding_mismatch",
            GatewayError::TokenStoreUnavailable => "temporarily_unavailable",
        }
    }

    /// The RFC 6750 `error` parameter of the Bearer challenge, when this is a token error.
    /// `Some("")` means a challenge without an error (no token was sent, RFC 6750 §3.1).
    pub fn bearer_error(&self) -> Option<&'static str> {
        match self {
            GatewayError::TokenMissing => Some(""),
            GatewayError::AccessDenied => Some("insufficient_scope"),
            GatewayError::TokenAmbiguous => Some("invalid_request"),
            e if e.is_invalid_token() => Some("invalid_token"),
            _ => None,
        }
    }

    /// A token was presented and refused (RFC 6750 `invalid_token`, 401).
    fn is_invalid_token(&self) -> bool {
        matches!(
            self,
            GatewayError::TokenMalformed
                | GatewayError::TokenTooLarge
                | GatewayError::AlgorithmNotAllowed
                | GatewayError::SignatureInvalid
                | GatewayError::DecryptionFailed
                | GatewayError::NoMatchingKey
                | GatewayError::TokenExpired
                | GatewayError::TokenNotYetValid
                | GatewayError::TokenTooOld
                | GatewayError::IssuerMismatch
                | GatewayError::AudienceMismatch
                | GatewayError::SubjectMismatch
                | GatewayError::ClaimMissing
                | GatewayError::ClaimProhibited
                | GatewayError::ClaimMismatch
                | GatewayError::TokenRevoked
                | GatewayError::TokenBindingMismatch
        )
    }

    pub fn status(&self) -> u16 {
        match self {
            GatewayError::NoRoute => 404,
            GatewayError::CorsOriginDenied => 403,
            GatewayError::NoHealthyUpstream => 503,
            GatewayError::UpstreamConnect => 502,
            GatewayError::UpstreamTimeout => 504,
            GatewayError::UpstreamProtocol => 502,
            GatewayError::BadRequest
            | GatewayError::InvalidPath
            | GatewayError::InvalidMethod
            | GatewayError::InvalidHost => 400,
            GatewayError::HeaderTooLarge => 431,
            GatewayError::UriTooLong => 414,
            GatewayError::RequestTimeout => 408,
            GatewayError::Internal => 500,
            GatewayError::TokenAmbiguous => 400,
            GatewayError::JwksUnavailable => 503,
            GatewayError::AccessDenied => 403,
            GatewayError::Forbidden => 403,
            GatewayError::TokenStoreUnavailable => 503,
            GatewayError::ValueUnresolved => 400,
            GatewayError::BodyTooLarge => 413,
            GatewayError::KeyUnavailable => 503,
            GatewayError::SigningFailed | GatewayError::EncryptionFailed => 500,
            GatewayError::TokenMissing => 401,
            e if e.is_invalid_token() => 401,
            _ => 500,
        }
    }

    /// The client-facing message: short, and never a detail of crypto or internals.
    pub fn message(&self) -> &'static str {
        match self {
            GatewayError::NoRoute => "no route matches this request",
            GatewayError::CorsOriginDenied => "origin not allowed",
            GatewayError::NoHealthyUpstream => "no healthy upstream",
            GatewayError::UpstreamConnect => "upstream connection failed",
            GatewayError::UpstreamTimeout => "upstream timed out",
            GatewayError::UpstreamProtocol => "invalid upstream response",
            GatewayError::BadRequest => "bad request",
            GatewayError::InvalidPath => "the request path is not accepted",
            GatewayError::InvalidMethod => "the request method is not accepted",
            GatewayError::InvalidHost => "the Host header is missing or invalid",
            GatewayError::HeaderTooLarge => "the request header is too large",
            GatewayError::UriTooLong => "the request line is too long",
            GatewayError::RequestTimeout => "the request header took too long",
            GatewayError::Internal => "internal error",
            GatewayError::TokenMissing => "a bearer token is required",
            GatewayError::TokenAmbiguous => "more than one token in the request",
            GatewayError::TokenMalformed => "the token is malformed",
            GatewayError::TokenTooLarge => "the token is too large",
            GatewayError::AlgorithmNotAllowed => "the token algorithm is not allowed",
            // One message for every crypto failure: no oracle for attackers.
            GatewayError::SignatureInvalid
            | GatewayError::DecryptionFailed
            | GatewayError::NoMatchingKey => "the token is invalid",
            GatewayError::JwksUnavailable => "token keys are temporarily unavailable",
            GatewayError::TokenExpired => "the token has expired",
            GatewayError::TokenNotYetValid => "the token is not yet valid",
            GatewayError::TokenTooOld => "the token is too old",
            GatewayError::IssuerMismatch => "the token issuer is not accepted",
            GatewayError::AudienceMismatch => "the token audience is not accepted",
            GatewayError::SubjectMismatch => "the token subject is not accepted",
            GatewayError::ClaimMissing => "a required claim is missing",
            GatewayError::ClaimProhibited => "the token carries a prohibited claim",
            GatewayError::ClaimMismatch => "a claim has a value that is not accepted",
            GatewayError::AccessDenied => "access denied",
            GatewayError::Forbidden => "forbidden",
            GatewayError::ValueUnresolved => "a value required by the gateway is missing",
            GatewayError::BodyTooLarge => "the request body is too large",
            GatewayError::KeyUnavailable => "a key needed by the gateway is unavailable",
            GatewayError::SigningFailed | GatewayError::EncryptionFailed => {
                "the gateway could not produce a token"
            }
            GatewayError::TokenRevoked => "the token is invalid",
            GatewayError::TokenBindingMismatch => "the token is invalid",
            GatewayError::TokenStoreUnavailable => "token validation is temporarily unavailable",
        }
    }
}

impl From<&crate::jose::JoseError> for GatewayError {
    /// Request-time JOSE failures. Key and input errors cannot come from a token once keys
    /// are compiled; they map to Internal.
    fn from(e: &crate::jose::JoseError) -> Self {
        use crate::jose::JoseError as J;
        match e {
            J::TokenMalformed
            | J::ClaimsMalformed
            | J::CriticalHeaderUnsupported
            | J::UnencodedPayloadRejected
            | J::CompressionNotAllowed
            | J::NestingInvalid => GatewayError::TokenMalformed,
            J::TokenTooLarge => GatewayError::TokenTooLarge,
            J::AlgorithmNotAllowed | J::EncryptionNotAllowed => GatewayError::AlgorithmNotAllowed,
            J::SignatureInvalid => GatewayError::SignatureInvalid,
            J::DecryptionFailed => GatewayError::DecryptionFailed,
            J::NoMatchingKey => GatewayError::NoMatchingKey,
            J::TokenExpired => GatewayError::TokenExpired,
            J::TokenNotYetValid => GatewayError::TokenNotYetValid,
            J::TokenTooOld => GatewayError::TokenTooOld,
            J::IssuerMismatch => GatewayError::IssuerMismatch,
            J::AudienceMismatch => GatewayError::AudienceMismatch,
            J::SubjectMismatch => GatewayError::SubjectMismatch,
            J::TypeMismatch | J::ClaimMismatch(_) | J::ClaimInvalidType(_) => {
                GatewayError::ClaimMismatch
            }
            J::ClaimMissing(_) => GatewayError::ClaimMissing,
            J::ClaimProhibited(_) => GatewayError::ClaimProhibited,
            _ => GatewayError::Internal,
        }
    }
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl std::error::Error for GatewayError {}
