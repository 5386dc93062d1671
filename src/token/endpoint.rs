//! The HTTP side of the endpoints: method, TLS, query and content-type checks, the capped body
//! read, form parsing (RFC 6749 §3.2: no repeated parameters, empty means omitted), and client
//! authentication (exactly one method per request, RFC 6749 §2.3).

use super::config::AuthMethod;
use super::grants::GRANTS;
use super::oauth::{json_reply, OAuthError};
use super::{Client, ClientKeys, TokenService, SIGNING_ALGS};
use crate::identity::hash::PasswordHash;
use crate::identity::verify_off_runtime;
use crate::jose::{self, Alg, Limits};
use crate::metrics::Metrics;
use crate::reply::Reply;
use crate::store::{now_unix, TokenHash};
use base64::Engine as _;
use pingora_proxy::Session;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Instant;

/// The largest form body read (anything larger is refused before parsing).
pub const MAX_BODY: usize = 16 * 1024;
/// The largest client assertion or token parameter looked at.
pub const MAX_TOKEN: usize = 8 * 1024;
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Clock skew tolerated on assertion `nbf`/`iat`.
const LEEWAY: u64 = 30;
/// Longest wait for a free hash check before answering 503: enough for a burst of ordinary
/// requests, short enough that a flood's queue does not hold a real client for long.
const SECRET_QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Token,
    Introspect,
    Revoke,
    Jwks,
    Discovery,
}

/// What one endpoint request was, for the metrics and the access log. Bounded values only: a
/// client id the config names and a grant name the service knows.
#[derive(Debug, Clone)]
pub struct Served {
    pub endpoint: Endpoint,
    /// The client id the request named, authenticated or not, when it is a configured
    /// client. Any other id is dropped: it is text the caller chose (sometimes a secret pasted
    /// into the wrong field), of any length, and unbounded as a metric label.
    pub client: Option<String>,
    /// Token requests: the `grant_type` when the service knows it, else `other` (absent,
    /// unsupported, or the request failed before its form was read).
    pub grant_type: Option<&'static str>,
    /// `issued` (token), `ok` (others), or the refusal's [`OAuthError::outcome`].
    pub outcome: &'static str,
}

impl Served {
    /// Count the request in the token-service metrics (JWKS and discovery are not counted).
    pub fn count(&self, m: &Metrics) {
        let client = self.client.as_deref().unwrap_or("unknown");
        match self.endpoint {
            Endpoint::Token => m
                .token_requests
                .with_label_values(&[self.grant_type.unwrap_or("other"), client, self.outcome])
                .inc(),
            Endpoint::Introspect => m
                .token_operations
                .with_label_values(&["introspect", client, self.outcome])
                .inc(),
            Endpoint::Revoke => m
                .token_operations
                .with_label_values(&["revoke", client, self.outcome])
                .inc(),
            Endpoint::Jwks | Endpoint::Discovery => {}
        }
    }
}

fn grant_label(gt: Option<&str>) -> &'static str {
    GRANTS
        .iter()
        .find(|(n, _)| Some(*n) == gt)
        .map_or("other", |(n, _)| n)
}

/// Parsed form parameters (empty values dropped, repeats refused).
#[derive(Debug, Default)]
pub(crate) struct Form(HashMap<String, String>);

impl Form {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }

    pub fn parse(body: &[u8]) -> Result<Form, OAuthError> {
        let mut seen = HashSet::new();
        let mut m = HashMap::new();
        for (k, v) in form_urlencoded::parse(body) {
            if !seen.insert(k.to_string()) {
                return Err(OAuthError::InvalidRequest("a parameter is repeated"));
            }
            if !v.is_empty() {
                m.insert(k.into_owned(), v.into_owned());
            }
        }
        Ok(Form(m))
    }
}

fn form_decode(s: &str) -> Option<String> {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// `Authorization: Basic` credentials, form-urlencoded then base64 (RFC 6749 §2.3.1).
/// `Ok(None)`: no Authorization header. A non-Basic scheme or bad encoding is an error.
fn basic(h: Option<&str>) -> Result<Option<(String, String)>, OAuthError> {
    let Some(h) = h else { return Ok(None) };
    let (scheme, rest) = h.trim().split_once(' ').ok_or(OAuthError::InvalidClient)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::InvalidClient);
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .map_err(|_| OAuthError::InvalidClient)?;
    let text = String::from_utf8(raw).map_err(|_| OAuthError::InvalidClient)?;
    let (id, secret) = text.split_once(':').ok_or(OAuthError::InvalidClient)?;
    let id = form_decode(id).ok_or(OAuthError::InvalidClient)?;
    let secret = form_decode(secret).ok_or(OAuthError::InvalidClient)?;
    Ok(Some((id, secret)))
}

/// The unverified `sub` of a JWS (to find the client's keys; verified afterwards).
fn unverified_sub(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = jose::b64_decode(payload).ok()?;
    let claims = jose::json::parse_object(&bytes).ok()?;
    claims.get("sub")?.as_str().map(str::to_string)
}

fn is_form(ct: Option<&str>) -> bool {
    ct.and_then(|c| c.split(';').next()).is_some_and(|m| {
        m.trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    })
}

async fn read_body(session: &mut Session) -> Result<Vec<u8>, OAuthError> {
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(OAuthError::BodyTooLarge);
    }
    let mut buf = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if buf.len() + chunk.len() > MAX_BODY {
                    return Err(OAuthError::BodyTooLarge);
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(buf),
            Err(_) => return Err(OAuthError::InvalidRequest("unreadable request body")),
        }
    }
}

impl TokenService {
    /// Answer one endpoint request, and say what it was. Never fails: errors become RFC 6749
    /// answers. `buffered`: the request body, when a policy of the route already read it
    /// (else it is read here).
    pub async fn serve(
        &self,
        ep: Endpoint,
        session: &mut Session,
        ip: Option<IpAddr>,
        buffered: Option<bytes::Bytes>,
    ) -> (Reply, Served) {
        let mut served = Served {
            endpoint: ep,
            client: None,
            grant_type: (ep == Endpoint::Token).then_some("other"),
            outcome: "ok",
        };
        let reply = match self
            .serve_inner(ep, session, ip, buffered, &mut served)
            .await
        {
            Ok(r) => {
                if ep == Endpoint::Token {
                    served.outcome = "issued";
                }
                r
            }
            Err(e) => {
                served.outcome = e.outcome();
                crate::reply::render_oauth_error(&e)
            }
        };
        (reply, served)
    }

    async fn serve_inner(
        &self,
        ep: Endpoint,
        session: &mut Session,
        ip: Option<IpAddr>,
        buffered: Option<bytes::Bytes>,
        served: &mut Served,
    ) -> Result<Reply, OAuthError> {
        let method = session.req_header().method.clone();
        if matches!(ep, Endpoint::Jwks | Endpoint::Discovery) {
            if method != http::Method::GET && method != http::Method::HEAD {
                let mut r = crate::reply::render_oauth_error(&OAuthError::MethodNotAllowed);
                r.headers.retain(|(n, _)| n != http::header::ALLOW);
                r.headers.push((
                    http::header::ALLOW,
                    http::HeaderValue::from_static("GET, HEAD"),
                ));
                return Ok(r);
            }
            return Ok(self.public_doc(ep));
        }
        if method != http::Method::POST {
            return Err(OAuthError::MethodNotAllowed);
        }
        let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        if self.require_tls && !tls {
            return Err(OAuthError::TlsRequired);
        }
        let req = session.req_header();
        if req.uri.query().is_some_and(|q| !q.is_empty()) {
            return Err(OAuthError::InvalidRequest(
                "parameters must be sent in the body, not the URI",
            ));
        }
        let ct = req
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        if !is_form(ct) {
            return Err(OAuthError::InvalidRequest(
                "Content-Type must be application/x-www-form-urlencoded",
            ));
        }
        let mut auths = req.headers.get_all(http::header::AUTHORIZATION).iter();
        let authz = match (auths.next(), auths.next()) {
            (None, _) => None,
            (Some(v), None) => Some(
                v.to_str()
                    .map_err(|_| OAuthError::InvalidClient)?
                    .to_string(),
            ),
            (Some(_), Some(_)) => {
                return Err(OAuthError::InvalidRequest(
                    "more than one Authorization header",
                ))
            }
        };
        let body = match buffered {
            Some(b) => b.to_vec(),
            None => read_body(session).await?,
        };
        let form = Form::parse(&body)?;
        if ep == Endpoint::Token {
            served.grant_type = Some(grant_label(form.get("grant_type")));
        }
        let client = self
            .authenticate(&form, authz.as_deref(), ip, &mut served.client)
            .await?;
        match ep {
            Endpoint::Token => self.token(client, &form, ip, session.req_header()).await,
            Endpoint::Introspect => self.introspect(client, &form).await,
            _ => self.revoke(client, &form).await,
        }
    }

    fn public_doc(&self, ep: Endpoint) -> Reply {
        let mut r = Reply::new(200);
        r.headers.push((
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        ));
        r.headers.push((
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("public, max-age=60"),
        ));
        r.body = match ep {
            Endpoint::Jwks => {
                bytes::Bytes::from(self.ring.get().verify.to_public_value().to_string())
            }
            _ => self.discovery.clone(),
        };
        r
    }

    /// Authenticate the client with exactly one method. Every failure is the same
    /// `invalid_client`; repeated failures from one address lock that (client, address) out,
    /// known client or not, before any hash is computed. Secrets are checked on the bounded
    /// blocking pool of the identity sources; when it stays full, 503 and nothing counted.
    /// `named`: the client id the request named, once known, when it is a configured client.
    pub(crate) async fn authenticate(
        &self,
        form: &Form,
        authz: Option<&str>,
        ip: Option<IpAddr>,
        named: &mut Option<String>,
    ) -> Result<&Client, OAuthError> {
        let basic = basic(authz)?;
        let post = form.get("client_secret");
        let assertion = form.get("client_assertion");
        let assertion_type = form.get("client_assertion_type");
        let n = usize::from(basic.is_some())
            + usize::from(post.is_some())
            + usize::from(assertion.is_some() || assertion_type.is_some());
        if n > 1 {
            return Err(OAuthError::InvalidRequest(
                "more than one client authentication method",
            ));
        }
        let form_id = form.get("client_id");
        let (method, id, secret) = match (&basic, post, assertion) {
            (Some((id, s)), _, _) => {
                if form_id.is_some_and(|f| f != id) {
                    return Err(OAuthError::InvalidRequest("client_id differs"));
                }
                (AuthMethod::ClientSecretBasic, id.clone(), Some(s.as_str()))
            }
            (None, Some(s), _) => {
                let id = form_id.ok_or(OAuthError::InvalidClient)?;
                (AuthMethod::ClientSecretPost, id.to_string(), Some(s))
            }
            (None, None, Some(a)) => {
                if assertion_type != Some(JWT_BEARER) || a.len() > MAX_TOKEN {
                    return Err(OAuthError::InvalidClient);
                }
                let id = match form_id {
                    Some(i) => i.to_string(),
                    None => unverified_sub(a).ok_or(OAuthError::InvalidClient)?,
                };
                (AuthMethod::PrivateKeyJwt, id, None)
            }
            _ => return Err(OAuthError::InvalidClient),
        };
        if self.clients.contains_key(&id) {
            *named = Some(id.clone());
        }
        let key = format!("client:{id}");
        if let Some(secs) = self.backoff.check(&key, ip, Instant::now()) {
            return Err(OAuthError::TooManyAttempts { retry_after: secs });
        }
        let client = self
            .clients
            .get(&id)
            .filter(|c| c.methods.contains(&method));
        let ok = match (method, secret) {
            (AuthMethod::PrivateKeyJwt, _) => match (client, assertion) {
                (Some(c), Some(a)) => self.verify_assertion(c, a).await?,
                _ => false,
            },
            (_, Some(s)) => {
                let known = client.and_then(|c| c.secret.as_ref());
                // Same work for an unknown client as for a wrong secret.
                let hash = PasswordHash::Pbkdf2(known.unwrap_or(&self.dummy).clone());
                let deadline = tokio::time::Instant::now() + SECRET_QUEUE_WAIT;
                // A full queue says nothing about the credentials: no failure is counted.
                let matched = verify_off_runtime(hash, s, deadline)
                    .await
                    .map_err(|_| OAuthError::Busy)?;
                matched && known.is_some()
            }
            _ => false,
        };
        let client = match (ok, client) {
            (true, Some(c)) => c,
            _ => {
                self.backoff.failure(&key, ip, Instant::now());
                log::info!("token service: client authentication failed ({method:?})");
                return Err(OAuthError::InvalidClient);
            }
        };
        if !client.source_ips.is_empty()
            && !ip.is_some_and(|ip| client.source_ips.iter().any(|n| n.contains(&ip)))
        {
            log::info!(
                "token service: client {:?} called from a refused address",
                client.id
            );
            return Err(OAuthError::InvalidClient);
        }
        self.backoff.success(&key, ip);
        Ok(client)
    }

    /// RFC 7523 §3 checks of a private_key_jwt assertion. `Err` only when the store (jti
    /// replay record) is unavailable.
    async fn verify_assertion(&self, c: &Client, a: &str) -> Result<bool, OAuthError> {
        let set = match &c.keys {
            ClientKeys::None => return Ok(false),
            ClientKeys::Static(s) => s.clone(),
            ClientKeys::Remote(src) => match src.keys().await {
                Ok(s) => s,
                Err(e) => {
                    log::warn!("client {:?} JWKS unavailable: {}", c.id, e.code());
                    return Ok(false);
                }
            },
        };
        let algs: Vec<Alg> = SIGNING_ALGS
            .iter()
            .filter_map(|n| Alg::from_name(n))
            .collect();
        let Ok(v) = jose::verify(a, &set, &algs, &Limits::default()) else {
            return Ok(false);
        };
        if ["jwk", "jku", "x5u", "x5c"]
            .iter()
            .any(|k| v.header.other.contains_key(*k))
        {
            return Ok(false);
        }
        if let Some(t) = &v.header.typ {
            if !jose::typ_matches(t, "client-authentication+jwt") && !jose::typ_matches(t, "JWT") {
                return Ok(false);
            }
        }
        let Ok(claims) = v.claims() else {
            return Ok(false);
        };
        let now = now_unix();
        let s = |k: &str| claims.get(k).and_then(Value::as_str);
        let n = |k: &str| claims.get(k).map(|v| v.as_f64().map(|f| f as u64));
        if s("iss") != Some(c.id.as_str()) || s("sub") != Some(c.id.as_str()) {
            return Ok(false);
        }
        let aud_ok =
            |x: &str| x == self.issuer || (self.accept_endpoint_aud && x == self.token_url);
        let aud = match claims.get("aud") {
            Some(Value::String(x)) => aud_ok(x),
            Some(Value::Array(xs)) => matches!(xs.as_slice(), [Value::String(x)] if aud_ok(x)),
            _ => false,
        };
        if !aud {
            return Ok(false);
        }
        let exp = match n("exp") {
            Some(Some(e)) if e > now && e - now <= self.assertion_max => e,
            _ => return Ok(false),
        };
        for k in ["nbf", "iat"] {
            match n(k) {
                None => {}
                Some(Some(t)) if t <= now + LEEWAY => {}
                _ => return Ok(false),
            }
        }
        let Some(jti) = s("jti").filter(|j| !j.is_empty()) else {
            return Ok(false);
        };
        let key = TokenHash::of(format!("{}\0{jti}", c.id).as_bytes());
        let store = self.store().await?;
        let first = self.checked(store.remember_jti(&key, exp, now).await)?;
        if !first {
            log::info!("token service: client {:?} replayed an assertion jti", c.id);
        }
        Ok(first)
    }
}

/// A JSON reply with the RFC 6749 §5.1 headers.
pub(crate) fn ok_json(v: &Value) -> Reply {
    json_reply(200, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_labels_are_known_names_or_other() {
        assert_eq!(grant_label(Some("password")), "password");
        assert_eq!(grant_label(Some("refresh_token")), "refresh_token");
        assert_eq!(grant_label(Some("PASSWORD")), "other");
        assert_eq!(grant_label(Some("urn:x")), "other");
        assert_eq!(grant_label(None), "other");
    }

    #[test]
    fn form_rules() {
        assert!(Form::parse(b"a=1&a=2").is_err());
        let f = Form::parse(b"scope=&grant_type=client_credentials").unwrap();
        assert_eq!(f.get("scope"), None);
        assert_eq!(f.get("grant_type"), Some("client_credentials"));
    }

    #[test]
    fn basic_is_form_decoded() {
        use base64::engine::general_purpose::STANDARD;
        let h = format!("Basic {}", STANDARD.encode("a%3Ab+c:s%2B%25+%C3%A9"));
        let (id, s) = basic(Some(&h)).unwrap().unwrap();
        assert_eq!(id, "a:b c");
        assert_eq!(s, "s+% é");
        assert!(basic(Some("Bearer x")).is_err());
        assert!(basic(Some("Basic !!!")).is_err());
    }
}
