//! RFC 6749 §5 responses: JSON bodies, `Cache-Control: no-store` and `Pragma: no-cache` on
//! every answer of the token, introspection and revocation endpoints, and the §5.2 error
//! object (`error`, `error_description` with no internals). These are protocol answers, not
//! gateway errors, so they are rendered here rather than through the gateway error renderer.

use crate::reply::Reply;
use bytes::Bytes;
use http::{header, HeaderValue};

/// An RFC 6749 §5.2 (or RFC 7009 / RFC 7662) error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub status: u16,
    pub error: &'static str,
    pub description: Option<&'static str>,
    /// 429: seconds until the client may try again.
    pub retry_after: Option<u64>,
}

impl OAuthError {
    fn new(status: u16, error: &'static str, description: Option<&'static str>) -> Self {
        OAuthError {
            status,
            error,
            description,
            retry_after: None,
        }
    }
    pub fn invalid_request(d: &'static str) -> Self {
        Self::new(400, "invalid_request", Some(d))
    }
    /// The same answer for an unknown client, a wrong secret, a bad assertion.
    pub fn invalid_client() -> Self {
        Self::new(401, "invalid_client", Some("client authentication failed"))
    }
    pub fn invalid_grant(d: &'static str) -> Self {
        Self::new(400, "invalid_grant", Some(d))
    }
    pub fn unauthorized_client() -> Self {
        Self::new(
            400,
            "unauthorized_client",
            Some("the client may not use this grant type"),
        )
    }
    pub fn unsupported_grant_type() -> Self {
        Self::new(400, "unsupported_grant_type", None)
    }
    pub fn invalid_scope() -> Self {
        Self::new(
            400,
            "invalid_scope",
            Some("the requested scope is not allowed"),
        )
    }
    pub fn unsupported_token_type() -> Self {
        Self::new(400, "unsupported_token_type", None)
    }
    /// An identity source could not say (down, slow, broken answer).
    pub fn source_unavailable() -> Self {
        Self::new(
            503,
            "temporarily_unavailable",
            Some("the identity source is unavailable"),
        )
    }

    pub fn unavailable() -> Self {
        Self::new(
            503,
            "temporarily_unavailable",
            Some("the token store is unavailable"),
        )
    }
    /// The gateway's hash checks were all taken until the wait ran out.
    pub fn busy() -> Self {
        OAuthError {
            retry_after: Some(1),
            ..Self::new(
                503,
                "temporarily_unavailable",
                Some("too many credential checks in progress"),
            )
        }
    }
    pub fn too_many(secs: u64) -> Self {
        OAuthError {
            retry_after: Some(secs),
            ..Self::new(
                429,
                "temporarily_unavailable",
                Some("too many failed attempts"),
            )
        }
    }
    pub fn method_not_allowed() -> Self {
        Self::new(405, "invalid_request", Some("method not allowed"))
    }
    pub fn tls_required() -> Self {
        Self::new(400, "invalid_request", Some("TLS is required"))
    }
    pub fn too_large() -> Self {
        Self::new(413, "invalid_request", Some("request body too large"))
    }
    pub fn server_error() -> Self {
        Self::new(500, "server_error", None)
    }

    pub fn reply(&self) -> Reply {
        let mut body = serde_json::Map::new();
        body.insert("error".into(), self.error.into());
        if let Some(d) = self.description {
            body.insert("error_description".into(), d.into());
        }
        let mut r = json_reply(self.status, &serde_json::Value::Object(body));
        r.error_code = Some(self.error);
        if self.status == 401 {
            // RFC 6749 §5.2: 401 with the scheme the client should use.
            r.headers.push((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tokengate\", charset=\"UTF-8\""),
            ));
        }
        if self.status == 405 {
            r.headers
                .push((header::ALLOW, HeaderValue::from_static("POST")));
        }
        if let Some(s) = self.retry_after {
            r.headers.push((header::RETRY_AFTER, HeaderValue::from(s)));
        }
        r
    }
}

/// A JSON answer with the no-store headers of RFC 6749 §5.1.
pub fn json_reply(status: u16, v: &serde_json::Value) -> Reply {
    let mut r = Reply::new(status);
    r.headers.push((
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    ));
    r.headers
        .push((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
    r.headers
        .push((header::PRAGMA, HeaderValue::from_static("no-cache")));
    r.body = Bytes::from(v.to_string());
    r
}
