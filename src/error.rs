//! The two error tiers. [`ConfigError`] is a problem in the config, with its TOML path; all of
//! them are collected before a config is refused. [`GatewayError`] is a request-time condition
//! with an HTTP status and a stable code; only `reply.rs` turns it into a response.

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
/// `code()` (part of the API operators script against), a default `status()` and a fixed
/// client-facing `message()`. The detail (which claim, which rule) goes to the log, never into
/// the variant: `reply::render_error` is the only place that turns one into a response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GatewayError {
    /// No route matches the request. 404, from the proxy's route match.
    NoRoute,
    /// A CORS preflight (or request) from an origin the `cors` policy does not allow. 403, from
    /// `policy/cors`.
    CorsOriginDenied,
    /// The route's upstream pool has no healthy target. 503, from the proxy's peer selection.
    NoHealthyUpstream,
    /// Connecting to the upstream failed (refused, unreachable, TLS handshake). 502, from the
    /// proxy's `fail_to_proxy`.
    UpstreamConnect,
    /// The upstream did not connect, read or write in time. 504, from `fail_to_proxy`.
    UpstreamTimeout,
    /// The upstream answered with something that is not HTTP, or closed mid-response. 502, from
    /// `fail_to_proxy`.
    UpstreamProtocol,
    /// The client sent a request the gateway cannot process (unreadable body, bad framing).
    /// 400, from the front door and the proxy.
    BadRequest,
    /// The request target is not an origin-form path, or breaks the path rules (bad bytes or
    /// escapes, an escaped slash or a `;` parameter where those are refused). 400, from the
    /// front door.
    InvalidPath,
    /// The method is not a token, or spells a standard method in another case (`post`). 400,
    /// from the front door.
    InvalidMethod,
    /// Host is missing (HTTP/1.1), repeated, malformed, or differs from `:authority`. 400, from
    /// the front door.
    InvalidHost,
    /// The request head is larger than `max_head_size` or has more than `max_headers` fields.
    /// 431, from the front door's head reader.
    HeaderTooLarge,
    /// The request line is longer than `max_request_line`. 414, from the head reader.
    UriTooLong,
    /// The request head did not arrive within `header_timeout`. 408, from the head reader.
    RequestTimeout,
    /// A `deny` policy refused the request: an operator's rule (`when`) excludes it. 403, no
    /// challenge, from `policy` (`type = "deny"`).
    Forbidden,
    /// No token where the policy looks for one. 401 with a Bearer challenge without `error`
    /// (RFC 6750 §3.1), from `jwt_verify` / `jwt_auth` token extraction.
    TokenMissing,
    /// Two different tokens in one request (never silently pick one). 400, Bearer
    /// `invalid_request`, from token extraction.
    TokenAmbiguous,
    /// The token is not a well-formed JWS/JWE (or its claims are not a JSON object, the
    /// nesting is wrong). 401 `invalid_token`, from `jwt_verify`
    /// and `jwt_auth`.
    TokenMalformed,
    /// The token is longer than the policy's `max_token_size`. 401 `invalid_token`, from
    /// `jwt_verify` and the token service.
    TokenTooLarge,
    /// The token's `alg` / `enc` is not in the policy's allow-list. 401 `invalid_token`, from
    /// `jwt_verify` (via the JOSE engine).
    AlgorithmNotAllowed,
    /// The signature does not verify under the key it names. 401 `invalid_token`, from
    /// `jwt_verify` and the token service.
    SignatureInvalid,
    /// A JWE could not be decrypted with the policy's keys. 401 `invalid_token`, from
    /// `jwt_verify`.
    DecryptionFailed,
    /// No key of the policy's key set matches the token (`kid`, `alg`, key type). 401
    /// `invalid_token`, from `jwt_verify` and the key resolution of `policy/keyconf`.
    NoMatchingKey,
    /// The remote key set could not be fetched and nothing usable is cached. 503, from
    /// `policy/keyconf`.
    JwksUnavailable,
    /// `exp` is in the past (beyond the allowed skew). 401 `invalid_token`, from `jwt_verify`
    /// and the token service.
    TokenExpired,
    /// `nbf` is in the future (beyond the allowed skew). 401 `invalid_token`, from `jwt_verify`.
    TokenNotYetValid,
    /// The token lived or was issued longer ago than the policy allows (`max_lifetime`,
    /// `max_age`). 401 `invalid_token`, from `jwt_verify`.
    TokenTooOld,
    /// `iss` is not one the policy accepts. 401 `invalid_token`, from `jwt_verify`.
    IssuerMismatch,
    /// `aud` is not one the policy accepts. 401 `invalid_token`, from `jwt_verify` and
    /// `jwt_auth`.
    AudienceMismatch,
    /// `sub` does not match the policy's subject rule. 401 `invalid_token`, from `jwt_verify`.
    SubjectMismatch,
    /// A claim the policy requires is absent. 401 `invalid_token`, from `jwt_verify` and the
    /// token service.
    ClaimMissing,
    /// The token carries a claim the policy prohibits. 401 `invalid_token`, from `jwt_verify`.
    ClaimProhibited,
    /// A claim has a value (or type) the policy does not accept. 401 `invalid_token`, from
    /// `jwt_verify`.
    ClaimMismatch,
    /// Authenticated, but not allowed (identity, roles, scopes). 403, Bearer
    /// `insufficient_scope`, from the ACLs of `jwt_verify` and `jwt_auth`.
    AccessDenied,
    /// The request body is larger than what the gateway buffers for a policy. 413, from the
    /// proxy's body reader.
    BodyTooLarge,
    /// A value a minted token needs is absent from the request (and has no default). 400, from
    /// `jwt_generate`.
    ValueUnresolved,
    /// The key to sign or encrypt with cannot be had (remote JWKS down, no usable key). 503,
    /// from `jwt_generate`.
    KeyUnavailable,
    /// Signing a minted token failed. 500, from `jwt_generate`.
    SigningFailed,
    /// Encrypting a minted token failed. 500, from `jwt_generate`.
    EncryptionFailed,
    /// The key to sign or encrypt with is of a type the algorithm cannot use (an RSA key for
    /// HS256, an EC key for RSA-OAEP). A configured key is refused at load; this comes from a
    /// remote (per-client) key. 500, from `jwt_generate`.
    KeyTypeMismatch,
    /// The key is shorter than the algorithm needs (an HMAC secret under the hash output).
    /// 500, from `jwt_generate`.
    KeyTooShort,
    /// The key's length is not the one the algorithm fixes (`dir`, AES key wrap). 500, from
    /// `jwt_generate`.
    KeyLengthMismatch,
    /// The key is on another curve than the algorithm uses. 500, from `jwt_generate`.
    InvalidCurve,
    /// The token was revoked (or is unknown to the token store). 401 `invalid_token`, from
    /// `jwt_auth` via the token service.
    TokenRevoked,
    /// The token is bound to another client IP. 401 `invalid_token`, from `jwt_auth`.
    TokenBindingMismatch,
    /// The token store could not answer: fail closed. 503, from `jwt_auth` via the token
    /// service.
    TokenStoreUnavailable,
    /// The token lifetime a request asks for (`expires_in = { from = ... }`) is not a number
    /// of seconds or a duration, is zero, or is above the configured `max`. 400, from
    /// `jwt_generate`.
    ExpiresInInvalid,
    /// The token's `crit` header lists an extension the policy does not process (not in
    /// `known_headers`), or one absent from the header (RFC 7515 §4.1.11). 401 `invalid_token`,
    /// from `jwt_verify`.
    CritUnsupported,
    /// The token has no `kid` while the policy's key set holds more than one key and
    /// `require_kid` is set. 401 `invalid_token`, from `jwt_verify`.
    KidMissing,
    /// Anything unexpected inside the gateway (a JOSE key or input error that compiled keys
    /// cannot produce, a response that cannot be built). 500, from the proxy and from the
    /// JOSE mapping below.
    Internal,
}

/// The RFC 6750 §3.1 `error` of a Bearer challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerError {
    /// No token was sent: a challenge without an `error` parameter.
    NoToken,
    /// The request is malformed (two tokens).
    InvalidRequest,
    /// A token was presented and refused.
    InvalidToken,
    /// The token is fine, but not enough for this resource.
    InsufficientScope,
}

impl BearerError {
    /// The `error` parameter's value; None for [`BearerError::NoToken`].
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            BearerError::NoToken => None,
            BearerError::InvalidRequest => Some("invalid_request"),
            BearerError::InvalidToken => Some("invalid_token"),
            BearerError::InsufficientScope => Some("insufficient_scope"),
        }
    }
}

impl GatewayError {
    /// Every error, for checking the codes a config names (`errors.codes`, `on_error`).
    pub const ALL: &'static [GatewayError] = &[
        GatewayError::NoRoute,
        GatewayError::CorsOriginDenied,
        GatewayError::NoHealthyUpstream,
        GatewayError::UpstreamConnect,
        GatewayError::UpstreamTimeout,
        GatewayError::UpstreamProtocol,
        GatewayError::BadRequest,
        GatewayError::InvalidPath,
        GatewayError::InvalidMethod,
        GatewayError::InvalidHost,
        GatewayError::HeaderTooLarge,
        GatewayError::UriTooLong,
        GatewayError::RequestTimeout,
        GatewayError::TokenMissing,
        GatewayError::TokenAmbiguous,
        GatewayError::TokenMalformed,
        GatewayError::TokenTooLarge,
        GatewayError::AlgorithmNotAllowed,
        GatewayError::SignatureInvalid,
        GatewayError::DecryptionFailed,
        GatewayError::NoMatchingKey,
        GatewayError::JwksUnavailable,
        GatewayError::TokenExpired,
        GatewayError::TokenNotYetValid,
        GatewayError::TokenTooOld,
        GatewayError::IssuerMismatch,
        GatewayError::AudienceMismatch,
        GatewayError::SubjectMismatch,
        GatewayError::ClaimMissing,
        GatewayError::ClaimProhibited,
        GatewayError::ClaimMismatch,
        GatewayError::AccessDenied,
        GatewayError::Forbidden,
        GatewayError::BodyTooLarge,
        GatewayError::ValueUnresolved,
        GatewayError::KeyUnavailable,
        GatewayError::SigningFailed,
        GatewayError::EncryptionFailed,
        GatewayError::KeyTypeMismatch,
        GatewayError::KeyTooShort,
        GatewayError::KeyLengthMismatch,
        GatewayError::InvalidCurve,
        GatewayError::TokenRevoked,
        GatewayError::TokenBindingMismatch,
        GatewayError::TokenStoreUnavailable,
        GatewayError::ExpiresInInvalid,
        GatewayError::CritUnsupported,
        GatewayError::KidMissing,
        GatewayError::Internal,
    ];

    /// Whether `code` is the stable code of some error.
    pub fn is_code(code: &str) -> bool {
        GatewayError::ALL.iter().any(|e| e.code() == code)
    }

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
            GatewayError::KeyTypeMismatch => "key_type_mismatch",
            GatewayError::KeyTooShort => "key_too_short",
            GatewayError::KeyLengthMismatch => "key_length_mismatch",
            GatewayError::InvalidCurve => "invalid_curve",
            GatewayError::TokenRevoked => "token_revoked",
            GatewayError::TokenBindingMismatch => "token_binding_mismatch",
            GatewayError::TokenStoreUnavailable => "temporarily_unavailable",
            GatewayError::KidMissing => "kid_missing",
            GatewayError::CritUnsupported => "crit_unsupported",
            GatewayError::ExpiresInInvalid => "expires_in_invalid",
        }
    }

    /// The RFC 6750 Bearer challenge this error carries, if any (token errors only).
    pub fn bearer_error(&self) -> Option<BearerError> {
        match self {
            GatewayError::TokenMissing => Some(BearerError::NoToken),
            GatewayError::TokenAmbiguous => Some(BearerError::InvalidRequest),
            GatewayError::AccessDenied => Some(BearerError::InsufficientScope),
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
            | GatewayError::CritUnsupported
            | GatewayError::KidMissing => Some(BearerError::InvalidToken),
            GatewayError::NoRoute
            | GatewayError::CorsOriginDenied
            | GatewayError::Forbidden
            | GatewayError::NoHealthyUpstream
            | GatewayError::UpstreamConnect
            | GatewayError::UpstreamTimeout
            | GatewayError::UpstreamProtocol
            | GatewayError::BadRequest
            | GatewayError::InvalidPath
            | GatewayError::InvalidMethod
            | GatewayError::InvalidHost
            | GatewayError::HeaderTooLarge
            | GatewayError::UriTooLong
            | GatewayError::RequestTimeout
            | GatewayError::JwksUnavailable
            | GatewayError::BodyTooLarge
            | GatewayError::ValueUnresolved
            | GatewayError::KeyUnavailable
            | GatewayError::SigningFailed
            | GatewayError::EncryptionFailed
            | GatewayError::KeyTypeMismatch
            | GatewayError::KeyTooShort
            | GatewayError::KeyLengthMismatch
            | GatewayError::InvalidCurve
            | GatewayError::TokenStoreUnavailable
            | GatewayError::ExpiresInInvalid
            | GatewayError::Internal => None,
        }
    }

    /// The default HTTP status (an operator override may replace it).
    pub fn status(&self) -> u16 {
        match self {
            GatewayError::BadRequest
            | GatewayError::InvalidPath
            | GatewayError::InvalidMethod
            | GatewayError::InvalidHost
            | GatewayError::TokenAmbiguous
            | GatewayError::ValueUnresolved
            | GatewayError::ExpiresInInvalid => 400,
            GatewayError::TokenMissing
            | GatewayError::TokenMalformed
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
            | GatewayError::CritUnsupported
            | GatewayError::KidMissing => 401,
            GatewayError::CorsOriginDenied
            | GatewayError::AccessDenied
            | GatewayError::Forbidden => 403,
            GatewayError::NoRoute => 404,
            GatewayError::RequestTimeout => 408,
            GatewayError::BodyTooLarge => 413,
            GatewayError::UriTooLong => 414,
            GatewayError::HeaderTooLarge => 431,
            GatewayError::Internal
            | GatewayError::SigningFailed
            | GatewayError::EncryptionFailed
            | GatewayError::KeyTypeMismatch
            | GatewayError::KeyTooShort
            | GatewayError::KeyLengthMismatch
            | GatewayError::InvalidCurve => 500,
            GatewayError::UpstreamConnect | GatewayError::UpstreamProtocol => 502,
            GatewayError::NoHealthyUpstream
            | GatewayError::JwksUnavailable
            | GatewayError::KeyUnavailable
            | GatewayError::TokenStoreUnavailable => 503,
            GatewayError::UpstreamTimeout => 504,
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
            GatewayError::SigningFailed
            | GatewayError::EncryptionFailed
            | GatewayError::KeyTypeMismatch
            | GatewayError::KeyTooShort
            | GatewayError::KeyLengthMismatch
            | GatewayError::InvalidCurve => "the gateway could not produce a token",
            GatewayError::TokenRevoked => "the token is invalid",
            GatewayError::TokenBindingMismatch => "the token is invalid",
            GatewayError::TokenStoreUnavailable => "token validation is temporarily unavailable",
            GatewayError::KidMissing => "the token does not name its key",
            GatewayError::CritUnsupported => {
                "the token uses a critical header the gateway does not process"
            }
            GatewayError::ExpiresInInvalid => "the requested token lifetime is not accepted",
        }
    }
}

/// An error `code` of the OAuth 2.0 endpoints: RFC 6749 §5.2 (token), RFC 7009 §2.2.1
/// (revocation), RFC 6749 §4.1.2.1 (`temporarily_unavailable`, `server_error`, which the token
/// service also uses for its endpoints).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    UnsupportedTokenType,
    TemporarilyUnavailable,
    ServerError,
}

impl OAuthErrorCode {
    /// The `error` member of the JSON body.
    pub fn as_str(self) -> &'static str {
        match self {
            OAuthErrorCode::InvalidRequest => "invalid_request",
            OAuthErrorCode::InvalidClient => "invalid_client",
            OAuthErrorCode::InvalidGrant => "invalid_grant",
            OAuthErrorCode::UnauthorizedClient => "unauthorized_client",
            OAuthErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            OAuthErrorCode::InvalidScope => "invalid_scope",
            OAuthErrorCode::UnsupportedTokenType => "unsupported_token_type",
            OAuthErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            OAuthErrorCode::ServerError => "server_error",
        }
    }
}

/// A refusal of the token service's endpoints (token, introspection, revocation), named after
/// the condition. Each has an RFC error `code()`, a `status()` and a fixed `description()`;
/// `reply::render_oauth_error` renders the RFC 6749 §5.2 JSON body. Emitted by `token/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuthError {
    /// A parameter is missing, repeated, unsupported or malformed; the text says which (a
    /// fixed string, never request data). 400 `invalid_request`.
    InvalidRequest(&'static str),
    /// The endpoint was called with another method than POST. 405 `invalid_request`, with
    /// `Allow: POST`.
    MethodNotAllowed,
    /// The endpoint requires TLS and the request came in clear. 400 `invalid_request`.
    TlsRequired,
    /// The request body is larger than the endpoint reads. 413 `invalid_request`.
    BodyTooLarge,
    /// Client authentication failed: the same answer for an unknown client, a wrong secret or
    /// a bad assertion. 401 `invalid_client` with `WWW-Authenticate: Basic` (RFC 6749 §5.2).
    InvalidClient,
    /// The grant (password, refresh token) is invalid, expired or revoked; the text says
    /// which in fixed words. 400 `invalid_grant`.
    InvalidGrant(&'static str),
    /// The client may not use this grant type. 400 `unauthorized_client`.
    UnauthorizedClient,
    /// The grant type is not one the service supports. 400 `unsupported_grant_type`.
    UnsupportedGrantType,
    /// The requested scope exceeds what the client may have. 400 `invalid_scope`.
    InvalidScope,
    /// Revocation of a token type the service does not revoke (RFC 7009 §2.2.1). 400
    /// `unsupported_token_type`.
    UnsupportedTokenType,
    /// An identity source could not say (down, slow, broken answer). 503
    /// `temporarily_unavailable`.
    SourceUnavailable,
    /// The token store could not answer: fail closed. 503 `temporarily_unavailable`.
    StoreUnavailable,
    /// Every credential-hashing slot stayed taken until the wait ran out. 503
    /// `temporarily_unavailable` with `Retry-After: 1`.
    Busy,
    /// Too many failed attempts from this client and address: locked out for `retry_after`
    /// seconds. 429 `temporarily_unavailable` with `Retry-After`.
    TooManyAttempts { retry_after: u64 },
    /// Anything unexpected (no randomness, a claim set that does not serialize, signing
    /// failed). 500 `server_error`.
    ServerError,
}

impl OAuthError {
    pub fn code(&self) -> OAuthErrorCode {
        match self {
            OAuthError::InvalidRequest(_)
            | OAuthError::MethodNotAllowed
            | OAuthError::TlsRequired
            | OAuthError::BodyTooLarge => OAuthErrorCode::InvalidRequest,
            OAuthError::InvalidClient => OAuthErrorCode::InvalidClient,
            OAuthError::InvalidGrant(_) => OAuthErrorCode::InvalidGrant,
            OAuthError::UnauthorizedClient => OAuthErrorCode::UnauthorizedClient,
            OAuthError::UnsupportedGrantType => OAuthErrorCode::UnsupportedGrantType,
            OAuthError::InvalidScope => OAuthErrorCode::InvalidScope,
            OAuthError::UnsupportedTokenType => OAuthErrorCode::UnsupportedTokenType,
            OAuthError::SourceUnavailable
            | OAuthError::StoreUnavailable
            | OAuthError::Busy
            | OAuthError::TooManyAttempts { .. } => OAuthErrorCode::TemporarilyUnavailable,
            OAuthError::ServerError => OAuthErrorCode::ServerError,
        }
    }

    /// The outcome label of the token-service metrics: the RFC code, except that the
    /// `temporarily_unavailable` causes are told apart.
    pub fn outcome(&self) -> &'static str {
        match self {
            OAuthError::SourceUnavailable => "source_unavailable",
            OAuthError::StoreUnavailable => "store_unavailable",
            OAuthError::Busy => "busy",
            OAuthError::TooManyAttempts { .. } => "throttled",
            OAuthError::InvalidRequest(_)
            | OAuthError::MethodNotAllowed
            | OAuthError::TlsRequired
            | OAuthError::BodyTooLarge
            | OAuthError::InvalidClient
            | OAuthError::InvalidGrant(_)
            | OAuthError::UnauthorizedClient
            | OAuthError::UnsupportedGrantType
            | OAuthError::InvalidScope
            | OAuthError::UnsupportedTokenType
            | OAuthError::ServerError => self.code().as_str(),
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            OAuthError::InvalidRequest(_)
            | OAuthError::TlsRequired
            | OAuthError::InvalidGrant(_)
            | OAuthError::UnauthorizedClient
            | OAuthError::UnsupportedGrantType
            | OAuthError::InvalidScope
            | OAuthError::UnsupportedTokenType => 400,
            OAuthError::InvalidClient => 401,
            OAuthError::MethodNotAllowed => 405,
            OAuthError::BodyTooLarge => 413,
            OAuthError::TooManyAttempts { .. } => 429,
            OAuthError::ServerError => 500,
            OAuthError::SourceUnavailable | OAuthError::StoreUnavailable | OAuthError::Busy => 503,
        }
    }

    /// The `error_description`: fixed words, never a detail of internals.
    pub fn description(&self) -> Option<&'static str> {
        match self {
            OAuthError::InvalidRequest(d) | OAuthError::InvalidGrant(d) => Some(d),
            OAuthError::MethodNotAllowed => Some("method not allowed"),
            OAuthError::TlsRequired => Some("TLS is required"),
            OAuthError::BodyTooLarge => Some("request body too large"),
            OAuthError::InvalidClient => Some("client authentication failed"),
            OAuthError::UnauthorizedClient => Some("the client may not use this grant type"),
            OAuthError::InvalidScope => Some("the requested scope is not allowed"),
            OAuthError::SourceUnavailable => Some("the identity source is unavailable"),
            OAuthError::StoreUnavailable => Some("the token store is unavailable"),
            OAuthError::Busy => Some("too many credential checks in progress"),
            OAuthError::TooManyAttempts { .. } => Some("too many failed attempts"),
            OAuthError::UnsupportedGrantType
            | OAuthError::UnsupportedTokenType
            | OAuthError::ServerError => None,
        }
    }

    /// Seconds the client should wait before trying again (`Retry-After`).
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            OAuthError::Busy => Some(1),
            OAuthError::TooManyAttempts { retry_after } => Some(*retry_after),
            OAuthError::InvalidRequest(_)
            | OAuthError::MethodNotAllowed
            | OAuthError::TlsRequired
            | OAuthError::BodyTooLarge
            | OAuthError::InvalidClient
            | OAuthError::InvalidGrant(_)
            | OAuthError::UnauthorizedClient
            | OAuthError::UnsupportedGrantType
            | OAuthError::InvalidScope
            | OAuthError::UnsupportedTokenType
            | OAuthError::SourceUnavailable
            | OAuthError::StoreUnavailable
            | OAuthError::ServerError => None,
        }
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code().as_str())
    }
}

impl std::error::Error for OAuthError {}

impl From<&crate::jose::JoseError> for GatewayError {
    /// Request-time JOSE failures. Key and input errors cannot come from a token once keys
    /// are compiled; they map to Internal.
    fn from(e: &crate::jose::JoseError) -> Self {
        use crate::jose::JoseError as J;
        match e {
            J::CriticalHeaderUnsupported => GatewayError::CritUnsupported,
            J::TokenMalformed
            | J::ClaimsMalformed
            | J::UnencodedPayloadRejected
            | J::CompressionNotAllowed
            | J::NestingInvalid => GatewayError::TokenMalformed,
            J::TokenTooLarge => GatewayError::TokenTooLarge,
            J::AlgorithmNotAllowed | J::EncryptionNotAllowed => GatewayError::AlgorithmNotAllowed,
            J::SignatureInvalid => GatewayError::SignatureInvalid,
            J::DecryptionFailed => GatewayError::DecryptionFailed,
            J::NoMatchingKey => GatewayError::NoMatchingKey,
            J::KidMissing => GatewayError::KidMissing,
            J::KeyTypeMismatch(_) => GatewayError::KeyTypeMismatch,
            J::KeyTooShort(_) => GatewayError::KeyTooShort,
            J::KeyLengthMismatch(_) => GatewayError::KeyLengthMismatch,
            J::InvalidCurve(_) => GatewayError::InvalidCurve,
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
            // Key and input errors come from configured keys or the CLI, not from a token.
            J::KeyRejected(_)
            | J::KeyMalformed(_)
            | J::KeySetAmbiguous
            | J::PrivateKeyRequired
            | J::CryptoFailure
            | J::InvalidInput(_) => GatewayError::Internal,
        }
    }
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl std::error::Error for GatewayError {}
