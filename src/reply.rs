//! The ONE place where errors and gateway answers become HTTP responses: gateway errors
//! (JSON body, operator overrides, the RFC 6750 Bearer challenge) and the token service's
//! RFC 6749 answers (JSON error object, `no-store`, the Basic challenge of `invalid_client`).
//!
//! Default error body: `{"statusCode":404,"errorCode":"no_route","message":"..."}` as JSON.
//! Operators override any part per policy, per route, or globally (`ErrorOverride`), and per
//! error code within each level; the most specific setting wins, field by field.
//!
//! A leaf module: it imports only `error` and external crates, so every layer may use it.

use crate::error::{GatewayError, OAuthError};
use bytes::Bytes;
use http::{header, HeaderName, HeaderValue};
use pingora_http::ResponseHeader;
use std::collections::HashMap;
/// A response produced at the gateway (direct response, preflight, or rendered error).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    /// The stable error code when this reply renders an error (for logs and metrics).
    pub error_code: Option<&'static str>,
}

impl Reply {
    pub fn new(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
            error_code: None,
        }
    }

    /// The response header, with Content-Length set from the body.
    pub fn header(&self) -> pingora_error::Result<ResponseHeader> {
        let mut h = ResponseHeader::build(self.status, Some(self.headers.len() + 2))?;
        for (n, v) in &self.headers {
            h.append_header(n.clone(), v.clone())?;
        }
        h.insert_header(http::header::CONTENT_LENGTH, self.body.len())?;
        Ok(h)
    }
}

/// A compiled error customisation (one level: policy, route or global). Built from the
/// config by `policy::errors::compile_override`, which checks every value.
#[derive(Debug, Default)]
pub struct ErrorOverride {
    pub status: Option<u16>,
    pub error_code: Option<String>,
    pub message: Option<String>,
    pub content_type: Option<HeaderValue>,
    /// Body template; `{status}`, `{code}` and `{message}` are replaced, JSON-escaped.
    pub body: Option<String>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Overrides for one error code, consulted before this level's own settings.
    pub codes: HashMap<String, ErrorOverride>,
}

/// The inside of a JSON string literal for `s` (no surrounding quotes).
fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// Render an error through the override levels, most specific first (policy, route, global).
///
/// When the error carries an RFC 6750 Bearer challenge and no override set
/// `WWW-Authenticate`, the challenge is added, with `realm` when given. The body is the
/// error's fixed message (or the operator's), never a detail of the failure.
pub fn render_error(
    e: &GatewayError,
    levels: &[Option<&ErrorOverride>],
    realm: Option<&str>,
) -> Reply {
    let code = e.code();
    // Per level: the code-specific override, then the level's own.
    let chain: Vec<&ErrorOverride> = levels
        .iter()
        .flatten()
        .flat_map(|l| [l.codes.get(code), Some(*l)])
        .flatten()
        .collect();
    let status = chain.iter().find_map(|o| o.status).unwrap_or(e.status());
    let out_code = chain
        .iter()
        .find_map(|o| o.error_code.as_deref())
        .unwrap_or(code);
    let message = chain
        .iter()
        .find_map(|o| o.message.as_deref())
        .unwrap_or(e.message());
    let body = match chain.iter().find_map(|o| o.body.as_ref()) {
        Some(t) => t
            .replace("{status}", &status.to_string())
            .replace("{code}", &json_escape(out_code))
            .replace("{message}", &json_escape(message)),
        None => serde_json::json!({
            "statusCode": status,
            "errorCode": out_code,
            "message": message,
        })
        .to_string(),
    };
    let content_type = chain
        .iter()
        .find_map(|o| o.content_type.clone())
        .unwrap_or(HeaderValue::from_static("application/json"));
    let mut reply = Reply::new(status);
    reply.headers.push((header::CONTENT_TYPE, content_type));
    reply
        .headers
        .push((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
    let mut seen: Vec<&HeaderName> = Vec::new();
    for o in &chain {
        for (n, v) in &o.headers {
            if !seen.contains(&n) {
                reply.headers.push((n.clone(), v.clone()));
            }
        }
        seen.extend(o.headers.iter().map(|(n, _)| n));
    }
    if let Some(b) = e.bearer_error() {
        // RFC 6750 §3: the Bearer challenge, unless the operator set one.
        if !seen.iter().any(|n| **n == header::WWW_AUTHENTICATE) {
            reply
                .headers
                .push((header::WWW_AUTHENTICATE, bearer_challenge(b, realm)));
        }
    }
    reply.body = Bytes::from(body);
    reply.error_code = Some(code);
    reply
}

/// Why a realm cannot be put in a challenge.
pub const REALM_RULE: &str = "a realm is printable ASCII (quotes and backslashes are escaped)";

/// Whether `realm` can appear in a `WWW-Authenticate` quoted-string: visible ASCII and spaces
/// (RFC 9110 §5.6.4; `"` and `\` are escaped). Policies check this when they compile.
pub fn realm_is_valid(realm: &str) -> bool {
    realm.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
}

/// `Bearer realm="...", error="..."` (RFC 6750 §3). The realm is a quoted-string: `"` and `\`
/// are escaped as quoted-pairs. A realm that cannot be a header value (compile refuses one)
/// is left out rather than dropping the challenge.
pub fn bearer_challenge(e: crate::error::BearerError, realm: Option<&str>) -> HeaderValue {
    let mut params: Vec<String> = Vec::new();
    match realm {
        Some(r) if realm_is_valid(r) => {
            let mut q = String::with_capacity(r.len() + 2);
            for c in r.chars() {
                if c == '"' || c == '\\' {
                    q.push('\\');
                }
                q.push(c);
            }
            params.push(format!("realm=\"{q}\""));
        }
        Some(_) => log::warn!("Bearer challenge without its realm: {REALM_RULE}"),
        None => {}
    }
    if let Some(err) = e.as_str() {
        params.push(format!("error=\"{err}\""));
    }
    let c = if params.is_empty() {
        "Bearer".to_string()
    } else {
        format!("Bearer {}", params.join(", "))
    };
    HeaderValue::from_str(&c).unwrap_or_else(|_| {
        // Unreachable: the realm was checked above and the error codes are tokens.
        log::error!("Bearer challenge is not a header value; sending it bare");
        HeaderValue::from_static("Bearer")
    })
}

/// A JSON answer of the token service, with the no-store headers of RFC 6749 §5.1.
pub fn oauth_json(status: u16, v: &serde_json::Value) -> Reply {
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

/// The RFC 6749 §5.2 error answer: `{"error": ..., "error_description": ...}` with the error's
/// status, `WWW-Authenticate: Basic` for `invalid_client` (401), `Allow: POST` for a 405 and
/// `Retry-After` when the client should wait.
pub fn render_oauth_error(e: &OAuthError) -> Reply {
    let code = e.code().as_str();
    let mut body = serde_json::Map::new();
    body.insert("error".into(), code.into());
    if let Some(d) = e.description() {
        body.insert("error_description".into(), d.into());
    }
    let mut r = oauth_json(e.status(), &serde_json::Value::Object(body));
    r.error_code = Some(code);
    match e {
        OAuthError::InvalidClient => r.headers.push((
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"tokengate\", charset=\"UTF-8\""),
        )),
        OAuthError::MethodNotAllowed => r
            .headers
            .push((header::ALLOW, HeaderValue::from_static("POST"))),
        OAuthError::InvalidRequest(_)
        | OAuthError::TlsRequired
        | OAuthError::BodyTooLarge
        | OAuthError::InvalidGrant(_)
        | OAuthError::UnauthorizedClient
        | OAuthError::UnsupportedGrantType
        | OAuthError::InvalidScope
        | OAuthError::UnsupportedTokenType
        | OAuthError::SourceUnavailable
        | OAuthError::StoreUnavailable
        | OAuthError::Busy
        | OAuthError::TooManyAttempts { .. }
        | OAuthError::ServerError => {}
    }
    if let Some(s) = e.retry_after() {
        r.headers.push((header::RETRY_AFTER, HeaderValue::from(s)));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::OAuthErrorCode;

    fn hdr<'a>(r: &'a Reply, name: &str) -> Vec<&'a str> {
        r.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.to_str().unwrap())
            .collect()
    }

    fn json(r: &Reply) -> serde_json::Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    fn status(s: u16) -> ErrorOverride {
        ErrorOverride {
            status: Some(s),
            ..Default::default()
        }
    }

    fn for_code(code: &str, o: ErrorOverride) -> ErrorOverride {
        ErrorOverride {
            codes: HashMap::from([(code.to_string(), o)]),
            ..Default::default()
        }
    }

    fn header(name: &'static str, v: &'static str) -> ErrorOverride {
        ErrorOverride {
            headers: vec![(HeaderName::from_static(name), HeaderValue::from_static(v))],
            ..Default::default()
        }
    }

    /// Every gateway error; the match below fails to compile when a variant is added (then
    /// add it to `GatewayError::ALL` too).
    fn all_errors() -> Vec<GatewayError> {
        use GatewayError as G;
        let all = GatewayError::ALL.to_vec();
        for e in &all {
            match e {
                G::NoRoute
                | G::CorsOriginDenied
                | G::Forbidden
                | G::NoHealthyUpstream
                | G::UpstreamConnect
                | G::UpstreamTimeout
                | G::UpstreamProtocol
                | G::BadRequest
                | G::InvalidPath
                | G::InvalidMethod
                | G::InvalidHost
                | G::HeaderTooLarge
                | G::UriTooLong
                | G::RequestTimeout
                | G::TokenMissing
                | G::TokenAmbiguous
                | G::TokenMalformed
                | G::TokenTooLarge
                | G::AlgorithmNotAllowed
                | G::SignatureInvalid
                | G::DecryptionFailed
                | G::NoMatchingKey
                | G::JwksUnavailable
                | G::TokenExpired
                | G::TokenNotYetValid
                | G::TokenTooOld
                | G::IssuerMismatch
                | G::AudienceMismatch
                | G::SubjectMismatch
                | G::ClaimMissing
                | G::ClaimProhibited
                | G::ClaimMismatch
                | G::AccessDenied
                | G::BodyTooLarge
                | G::ValueUnresolved
                | G::KeyUnavailable
                | G::SigningFailed
                | G::EncryptionFailed
                | G::KeyTypeMismatch
                | G::KeyTooShort
                | G::KeyLengthMismatch
                | G::InvalidCurve
                | G::TokenRevoked
                | G::TokenBindingMismatch
                | G::TokenStoreUnavailable
                | G::ExpiresInInvalid
                | G::CritUnsupported
                | G::KidMissing
                | G::Internal => {}
            }
        }
        all
    }

    #[test]
    fn default_body_is_the_errors_status_code_and_message() {
        for e in all_errors() {
            let r = render_error(&e, &[], None);
            assert_eq!(r.status, e.status(), "{e:?}");
            assert_eq!(
                json(&r),
                serde_json::json!({
                    "statusCode": e.status(),
                    "errorCode": e.code(),
                    "message": e.message(),
                }),
                "{e:?}"
            );
            assert_eq!(hdr(&r, "content-type"), ["application/json"], "{e:?}");
            assert_eq!(hdr(&r, "cache-control"), ["no-store"], "{e:?}");
            assert_eq!(r.error_code, Some(e.code()));
        }
    }

    #[test]
    fn error_codes_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for e in all_errors() {
            assert!(seen.insert(e.code()), "{} used twice", e.code());
        }
    }

    #[test]
    fn policy_level_beats_route_and_global() {
        let (p, r, g) = (status(418), status(419), status(420));
        let reply = render_error(
            &GatewayError::NoRoute,
            &[Some(&p), Some(&r), Some(&g)],
            None,
        );
        assert_eq!(reply.status, 418);
    }

    #[test]
    fn route_level_beats_global() {
        let (r, g) = (status(419), status(420));
        let reply = render_error(&GatewayError::NoRoute, &[None, Some(&r), Some(&g)], None);
        assert_eq!(reply.status, 419);
    }

    #[test]
    fn global_level_applies_when_nothing_more_specific_is_set() {
        let g = status(420);
        let reply = render_error(&GatewayError::NoRoute, &[None, None, Some(&g)], None);
        assert_eq!(reply.status, 420);
        assert_eq!(json(&reply)["statusCode"], 420);
    }

    #[test]
    fn code_override_beats_its_levels_default() {
        let g = ErrorOverride {
            status: Some(420),
            ..for_code("no_route", status(421))
        };
        let reply = render_error(&GatewayError::NoRoute, &[None, None, Some(&g)], None);
        assert_eq!(reply.status, 421);
    }

    #[test]
    fn code_override_applies_to_its_code_only() {
        let g = for_code("upstream_timeout", status(421));
        let reply = render_error(&GatewayError::NoRoute, &[None, None, Some(&g)], None);
        assert_eq!(reply.status, 404);
    }

    #[test]
    fn more_specific_level_beats_a_code_override_of_a_less_specific_one() {
        let (r, g) = (status(419), for_code("no_route", status(421)));
        let reply = render_error(&GatewayError::NoRoute, &[None, Some(&r), Some(&g)], None);
        assert_eq!(reply.status, 419);
    }

    #[test]
    fn most_specific_wins_field_by_field() {
        let route = ErrorOverride {
            message: Some("route msg".into()),
            ..for_code("upstream_timeout", status(503))
        };
        let global = ErrorOverride {
            content_type: Some(HeaderValue::from_static("application/problem+json")),
            body: Some(r#"{"s":{status},"c":"{code}","m":"{message}"}"#.into()),
            ..Default::default()
        };
        let r = render_error(
            &GatewayError::UpstreamTimeout,
            &[None, Some(&route), Some(&global)],
            None,
        );
        assert_eq!(r.status, 503);
        assert_eq!(
            std::str::from_utf8(&r.body).unwrap(),
            r#"{"s":503,"c":"upstream_timeout","m":"route msg"}"#
        );
        assert_eq!(hdr(&r, "content-type"), ["application/problem+json"]);
    }

    #[test]
    fn override_header_of_the_most_specific_level_wins() {
        let route = header("x-a", "route");
        let mut global = header("x-a", "global");
        global.headers.push((
            HeaderName::from_static("x-b"),
            HeaderValue::from_static("global"),
        ));
        let r = render_error(
            &GatewayError::NoRoute,
            &[None, Some(&route), Some(&global)],
            None,
        );
        assert_eq!(hdr(&r, "x-a"), ["route"]);
        assert_eq!(hdr(&r, "x-b"), ["global"]);
    }

    #[test]
    fn template_values_are_escaped() {
        let o = ErrorOverride {
            message: Some("say \"hi\"\\\n\u{1}".into()),
            body: Some(r#"{"m":"{message}"}"#.into()),
            ..Default::default()
        };
        let r = render_error(&GatewayError::NoRoute, &[Some(&o)], None);
        assert_eq!(json(&r)["m"], "say \"hi\"\\\n\u{1}");
    }

    #[test]
    fn missing_token_challenge_has_no_error() {
        let r = render_error(&GatewayError::TokenMissing, &[], None);
        assert_eq!(hdr(&r, "www-authenticate"), ["Bearer"]);
    }

    #[test]
    fn refused_token_challenge_names_invalid_token() {
        let r = render_error(&GatewayError::TokenExpired, &[], None);
        assert_eq!(
            hdr(&r, "www-authenticate"),
            [r#"Bearer error="invalid_token""#]
        );
    }

    #[test]
    fn access_denied_challenge_names_insufficient_scope() {
        let r = render_error(&GatewayError::AccessDenied, &[], Some("api"));
        assert_eq!(
            hdr(&r, "www-authenticate"),
            [r#"Bearer realm="api", error="insufficient_scope""#]
        );
    }

    #[test]
    fn two_tokens_challenge_names_invalid_request() {
        let r = render_error(&GatewayError::TokenAmbiguous, &[], None);
        assert_eq!(
            hdr(&r, "www-authenticate"),
            [r#"Bearer error="invalid_request""#]
        );
    }

    #[test]
    fn challenge_carries_the_realm() {
        let r = render_error(&GatewayError::TokenMissing, &[], Some("my api"));
        assert_eq!(hdr(&r, "www-authenticate"), [r#"Bearer realm="my api""#]);
    }

    #[test]
    fn realm_quotes_and_backslashes_are_escaped() {
        let r = render_error(&GatewayError::SignatureInvalid, &[], Some(r#"a"b\c"#));
        assert_eq!(
            hdr(&r, "www-authenticate"),
            [r#"Bearer realm="a\"b\\c", error="invalid_token""#]
        );
    }

    #[test]
    fn realm_that_is_no_header_value_is_left_out_not_the_challenge() {
        let r = render_error(&GatewayError::SignatureInvalid, &[], Some("a\r\nb"));
        assert_eq!(
            hdr(&r, "www-authenticate"),
            [r#"Bearer error="invalid_token""#]
        );
    }

    #[test]
    fn operator_www_authenticate_replaces_the_challenge() {
        let g = header("www-authenticate", "Custom x");
        let r = render_error(
            &GatewayError::TokenExpired,
            &[None, None, Some(&g)],
            Some("api"),
        );
        assert_eq!(hdr(&r, "www-authenticate"), ["Custom x"]);
    }

    #[test]
    fn only_token_errors_carry_a_challenge() {
        for e in all_errors() {
            let r = render_error(&e, &[], Some("api"));
            assert_eq!(
                e.bearer_error().is_some(),
                !hdr(&r, "www-authenticate").is_empty(),
                "{e:?}"
            );
        }
        let r = render_error(&GatewayError::NoRoute, &[], Some("api"));
        assert!(hdr(&r, "www-authenticate").is_empty());
    }

    #[test]
    fn body_never_carries_the_detail_of_a_jose_error() {
        use crate::jose::JoseError as J;
        for j in [
            J::ClaimMissing("secret_claim_name".into()),
            J::ClaimMismatch("secret_claim_name".into()),
            J::ClaimProhibited("secret_claim_name".into()),
            J::ClaimInvalidType("secret_claim_name".into()),
            J::KeyRejected("secret_claim_name"),
        ] {
            let e = GatewayError::from(&j);
            let r = render_error(&e, &[], Some("api"));
            let text = std::str::from_utf8(&r.body).unwrap();
            assert_eq!(json(&r)["message"], e.message());
            assert!(!text.contains("secret_claim_name"), "{text}");
            assert!(r
                .headers
                .iter()
                .all(|(_, v)| !v.to_str().unwrap().contains("secret_claim_name")));
        }
    }

    /// Every OAuth error with (status, code, description); the match keeps it complete.
    fn all_oauth() -> Vec<(OAuthError, u16, &'static str, Option<&'static str>)> {
        use OAuthError as O;
        let all = vec![
            (
                O::InvalidRequest("x is required"),
                400,
                "invalid_request",
                Some("x is required"),
            ),
            (
                O::MethodNotAllowed,
                405,
                "invalid_request",
                Some("method not allowed"),
            ),
            (
                O::TlsRequired,
                400,
                "invalid_request",
                Some("TLS is required"),
            ),
            (
                O::BodyTooLarge,
                413,
                "invalid_request",
                Some("request body too large"),
            ),
            (
                O::InvalidClient,
                401,
                "invalid_client",
                Some("client authentication failed"),
            ),
            (
                O::InvalidGrant("expired"),
                400,
                "invalid_grant",
                Some("expired"),
            ),
            (
                O::UnauthorizedClient,
                400,
                "unauthorized_client",
                Some("the client may not use this grant type"),
            ),
            (O::UnsupportedGrantType, 400, "unsupported_grant_type", None),
            (
                O::InvalidScope,
                400,
                "invalid_scope",
                Some("the requested scope is not allowed"),
            ),
            (O::UnsupportedTokenType, 400, "unsupported_token_type", None),
            (
                O::SourceUnavailable,
                503,
                "temporarily_unavailable",
                Some("the identity source is unavailable"),
            ),
            (
                O::StoreUnavailable,
                503,
                "temporarily_unavailable",
                Some("the token store is unavailable"),
            ),
            (
                O::Busy,
                503,
                "temporarily_unavailable",
                Some("too many credential checks in progress"),
            ),
            (
                O::TooManyAttempts { retry_after: 7 },
                429,
                "temporarily_unavailable",
                Some("too many failed attempts"),
            ),
            (O::ServerError, 500, "server_error", None),
        ];
        for (e, ..) in &all {
            match e {
                O::InvalidRequest(_)
                | O::MethodNotAllowed
                | O::TlsRequired
                | O::BodyTooLarge
                | O::InvalidClient
                | O::InvalidGrant(_)
                | O::UnauthorizedClient
                | O::UnsupportedGrantType
                | O::InvalidScope
                | O::UnsupportedTokenType
                | O::SourceUnavailable
                | O::StoreUnavailable
                | O::Busy
                | O::TooManyAttempts { .. }
                | O::ServerError => {}
            }
        }
        all
    }

    #[test]
    fn oauth_error_has_its_status_and_rfc6749_body() {
        for (e, st, code, desc) in all_oauth() {
            let r = render_oauth_error(&e);
            assert_eq!(r.status, st, "{e:?}");
            let mut want = serde_json::json!({ "error": code });
            if let Some(d) = desc {
                want["error_description"] = d.into();
            }
            assert_eq!(json(&r), want, "{e:?}");
            assert_eq!(r.error_code, Some(code));
        }
    }

    #[test]
    fn oauth_error_is_not_stored() {
        for (e, ..) in all_oauth() {
            let r = render_oauth_error(&e);
            assert_eq!(hdr(&r, "cache-control"), ["no-store"], "{e:?}");
            assert_eq!(hdr(&r, "pragma"), ["no-cache"], "{e:?}");
            assert_eq!(hdr(&r, "content-type"), ["application/json;charset=UTF-8"]);
        }
    }

    #[test]
    fn invalid_client_carries_a_basic_challenge_and_nothing_else_does() {
        for (e, ..) in all_oauth() {
            let r = render_oauth_error(&e);
            let want: &[&str] = if e == OAuthError::InvalidClient {
                &[r#"Basic realm="tokengate", charset="UTF-8""#]
            } else {
                &[]
            };
            assert_eq!(hdr(&r, "www-authenticate"), want, "{e:?}");
        }
    }

    #[test]
    fn method_not_allowed_names_post() {
        let r = render_oauth_error(&OAuthError::MethodNotAllowed);
        assert_eq!(hdr(&r, "allow"), ["POST"]);
    }

    #[test]
    fn lockout_says_when_to_retry() {
        let r = render_oauth_error(&OAuthError::TooManyAttempts { retry_after: 7 });
        assert_eq!(hdr(&r, "retry-after"), ["7"]);
    }

    #[test]
    fn busy_says_retry_in_a_second() {
        let r = render_oauth_error(&OAuthError::Busy);
        assert_eq!(hdr(&r, "retry-after"), ["1"]);
    }

    #[test]
    fn oauth_code_strings_are_the_rfc_ones() {
        assert_eq!(OAuthErrorCode::InvalidClient.as_str(), "invalid_client");
        assert_eq!(
            OAuthErrorCode::UnsupportedTokenType.as_str(),
            "unsupported_token_type"
        );
    }
}
