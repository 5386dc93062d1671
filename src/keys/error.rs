//! The one error type of remote key sources.

use std::fmt;

/// Why a remote key set could not be had. Each variant has a stable snake_case
/// [`KeyError::code`]; the jwt_verify policy maps every one of them to `503 jwks_unavailable`
/// (a key-source failure is never reported as an invalid token).
///
/// Display never includes a response body, key material or a URL query string: only the
/// condition and a static detail.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The source could not be reached or answered badly (DNS, connect, TLS, HTTP status,
    /// connection reset), or its keys are past `max_stale`, and nothing usable is cached.
    Unavailable(&'static str),
    /// The response is not a usable JWK Set (not JSON, no `keys`, ambiguous, zero usable keys).
    Invalid(&'static str),
    /// The response is larger than `max_size` (declared or streamed).
    TooLarge,
    /// The fetch (DNS + connect + TLS + response) took longer than `timeout`.
    Timeout,
    /// The source answered with a redirect that is not followed (another scheme, host or
    /// port, or more than 3 hops).
    RedirectRefused,
    /// The OIDC discovery document is unusable (not JSON, no `jwks_uri`, bad `jwks_uri`).
    DiscoveryInvalid(&'static str),
    /// The URL is refused (scheme, userinfo, plain http to a non-loopback host, length...).
    UrlInvalid(&'static str),
    /// The cache holds its maximum number of sources and none of them can be evicted.
    TooManySources,
}

impl KeyError {
    /// A stable, machine-readable code for this error (also the `result` label of
    /// `tokengate_jwks_fetches_total`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "jwks_unavailable",
            Self::Invalid(_) => "jwks_invalid",
            Self::TooLarge => "jwks_too_large",
            Self::Timeout => "jwks_timeout",
            Self::RedirectRefused => "jwks_redirect_refused",
            Self::DiscoveryInvalid(_) => "jwks_discovery_invalid",
            Self::UrlInvalid(_) => "jwks_url_invalid",
            Self::TooManySources => "jwks_too_many_sources",
        }
    }

    /// Every code [`KeyError::code`] can return (used to clean metric label values).
    pub const CODES: [&'static str; 8] = [
        "jwks_unavailable",
        "jwks_invalid",
        "jwks_too_large",
        "jwks_timeout",
        "jwks_redirect_refused",
        "jwks_discovery_invalid",
        "jwks_url_invalid",
        "jwks_too_many_sources",
    ];
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(d) => write!(f, "key source unavailable: {d}"),
            Self::Invalid(d) => write!(f, "key source returned an invalid JWK Set: {d}"),
            Self::TooLarge => f.write_str("key source response exceeds max_size"),
            Self::Timeout => f.write_str("key source fetch timed out"),
            Self::RedirectRefused => f.write_str("key source redirect refused"),
            Self::DiscoveryInvalid(d) => write!(f, "OIDC discovery document invalid: {d}"),
            Self::UrlInvalid(d) => write!(f, "key source URL refused: {d}"),
            Self::TooManySources => f.write_str("too many key sources"),
        }
    }
}

impl std::error::Error for KeyError {}
