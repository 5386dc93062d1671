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
            GatewayError::Internal => "internal_error",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            GatewayError::NoRoute => 404,
            GatewayError::CorsOriginDenied => 403,
            GatewayError::NoHealthyUpstream => 503,
            GatewayError::UpstreamConnect => 502,
            GatewayError::UpstreamTimeout => 504,
            GatewayError::UpstreamProtocol => 502,
            GatewayError::BadRequest => 400,
            GatewayError::Internal => 500,
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
            GatewayError::Internal => "internal error",
        }
    }
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl std::error::Error for GatewayError {}
