//! Who may use the admin listener: the [`Guard`] compiled from `[admin]`, and the JSON answers
//! of the admin plane. A block of its own, below the composition root, so that `compile` checks
//! `[admin]` with the very code that enforces it.

use crate::config::AdminConfig;
use crate::error::Errors;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use serde_json::{json, Value};
use std::net::SocketAddr;

pub(crate) fn reply(status: StatusCode, ctype: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(ctype) {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    let len = r.body().len();
    r.headers_mut()
        .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
    r
}

pub(crate) fn json_reply(status: StatusCode, v: Value) -> Response<Vec<u8>> {
    reply(status, "application/json", v.to_string().into_bytes())
}

/// Who may use the admin listener and how, compiled from `[admin]` (a restart-only section).
///
/// Checked in this order: the Host (DNS rebinding: a browser that resolves an attacker's name to
/// 127.0.0.1 still sends that name), the bearer token (every endpoint but the probes), the
/// method, and for state-changing endpoints the Origin and the JSON content type: a cross-site
/// page can send a "simple" POST (`text/plain`, form) without a preflight, never an
/// `application/json` one, and a browser always names a foreign page in Origin.
#[derive(Debug)]
pub struct Guard {
    /// Lowercase hex SHA-256 of each accepted bearer token. A fast unsalted hash is right here:
    /// the tokens are 256-bit random strings, not passwords, so there is nothing to brute-force.
    tokens: Vec<String>,
    /// Accepted Host values, as [`host_name`] leaves them.
    hosts: Vec<String>,
}

impl Guard {
    /// Check `[admin]` (with `listen` already parsed by the caller) and build the guard; every
    /// problem is pushed with its TOML path.
    pub fn compile(cfg: &AdminConfig, errs: &mut Errors) -> Option<Guard> {
        let before = errs.0.len();
        let mut tokens = Vec::new();
        for (i, t) in cfg.tokens.iter().enumerate() {
            match t.strip_prefix("sha256:") {
                Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    tokens.push(h.to_ascii_lowercase())
                }
                _ => errs.push(
                    format!("admin.tokens[{i}]"),
                    "expected \"sha256:\" and 64 hex digits (`tokengate admin-token` prints one)",
                ),
            }
        }
        let listen = cfg.listen.parse::<SocketAddr>().ok();
        if let Some(a) = listen {
            if !a.ip().is_loopback() && cfg.tokens.is_empty() {
                errs.push(
                    "admin.listen",
                    format!(
                        "{a} is not a loopback address: without [admin] tokens the admin \
                         listener must stay on loopback (`tokengate admin-token` makes one)"
                    ),
                );
            }
        }
        let hosts = if cfg.allowed_hosts.is_empty() {
            let mut h: Vec<String> = ["localhost", "127.0.0.1", "[::1]", "::1"]
                .map(String::from)
                .to_vec();
            if let Some(a) = listen {
                h.push(host_name(&a.to_string()));
            }
            h
        } else {
            cfg.allowed_hosts.iter().map(|h| host_name(h)).collect()
        };
        (errs.0.len() == before).then_some(Guard { tokens, hosts })
    }

    /// The answer that refuses this request, or `None` when it may reach its endpoint.
    pub fn refusal(&self, method: &Method, path: &str, h: &HeaderMap) -> Option<Response<Vec<u8>>> {
        let (status, code, header) = self.check(method, path, h)?;
        let mut r = json_reply(status, json!({ "error": code }));
        if let Some((name, value)) = header {
            r.headers_mut()
                .insert(name, HeaderValue::from_static(value));
        }
        Some(r)
    }

    /// The status, error code and header of a refusal, in the order the type's doc gives.
    fn check(&self, method: &Method, path: &str, h: &HeaderMap) -> Option<Refusal> {
        let host = match one(h, header::HOST) {
            Ok(Some(host)) if self.host_allowed(host) => host,
            _ => return Some((StatusCode::FORBIDDEN, "host_not_allowed", None)),
        };
        let probe = method == Method::GET && matches!(path, "/healthz" | "/readyz");
        if !probe && !self.authorized(one(h, header::AUTHORIZATION).ok().flatten()) {
            let challenge = (header::WWW_AUTHENTICATE, "Bearer");
            return Some((StatusCode::UNAUTHORIZED, "unauthorized", Some(challenge)));
        }
        let want = match path {
            "/healthz"
            | "/readyz"
            | "/metrics"
            | "/admin/config"
            | "/admin/config/status"
            | "/admin/jwks"
            | "/admin/usage" => "GET",
            "/admin/reload" | "/admin/jwks/flush" | "/admin/keys/rotate" => "POST",
            _ => return Some((StatusCode::NOT_FOUND, "not found", None)),
        };
        if method.as_str() != want {
            let allow = (header::ALLOW, want);
            return Some((
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed",
                Some(allow),
            ));
        }
        if want == "POST" {
            if !one(h, header::ORIGIN).is_ok_and(|o| same_origin(o, host)) {
                return Some((StatusCode::FORBIDDEN, "origin_not_allowed", None));
            }
            if !json_content_type(one(h, header::CONTENT_TYPE).ok().flatten()) {
                let code = "content_type_not_json";
                return Some((StatusCode::UNSUPPORTED_MEDIA_TYPE, code, None));
            }
        }
        None
    }

    fn host_allowed(&self, host: &str) -> bool {
        self.hosts.contains(&host_name(host))
    }

    /// Without tokens everyone is (the listener is on loopback, checked at load).
    fn authorized(&self, authorization: Option<&str>) -> bool {
        if self.tokens.is_empty() {
            return true;
        }
        let Some((scheme, token)) = authorization.and_then(|a| a.trim().split_once(' ')) else {
            return false;
        };
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return false;
        }
        let digest = crate::config::content_hash(token.as_bytes());
        // Constant time, so the comparison tells nothing about how close a guess was.
        self.tokens.iter().any(|t| {
            aws_lc_rs::constant_time::verify_slices_are_equal(t.as_bytes(), digest.as_bytes())
                .is_ok()
        })
    }
}

/// A refusal: status, error code, and a header to add.
type Refusal = (StatusCode, &'static str, Option<(HeaderName, &'static str)>);

/// A header that must appear at most once (a repeated Host, Origin or Authorization is a
/// request to refuse, not to guess about): `Err` when repeated or not visible ASCII.
fn one(h: &HeaderMap, name: HeaderName) -> Result<Option<&str>, ()> {
    let mut all = h.get_all(name).iter();
    match (all.next(), all.next()) {
        (None, _) => Ok(None),
        (Some(v), None) => v.to_str().map(Some).map_err(|_| ()),
        _ => Err(()),
    }
}

/// A Host value without its port and one trailing dot, lowercase: `Admin.Example.:9180` ->
/// `admin.example`, `[::1]:9180` -> `[::1]`. A bare IPv6 address (`::1`) is kept whole.
fn host_name(host: &str) -> String {
    let host = host.trim();
    let name = if host.starts_with('[') {
        host.find(']').and_then(|i| host.get(..=i)).unwrap_or(host)
    } else if host.matches(':').count() == 1 {
        host.split(':').next().unwrap_or(host)
    } else {
        host
    };
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// Origin absent (not a browser, or a same-origin GET), or exactly this listener's own origin.
fn same_origin(origin: Option<&str>, host: &str) -> bool {
    match origin {
        None => true,
        Some(o) => {
            o.strip_prefix("http://")
                .or_else(|| o.strip_prefix("https://"))
                == Some(host)
        }
    }
}

/// `application/json`, parameters allowed (`; charset=utf-8`).
fn json_content_type(ct: Option<&str>) -> bool {
    ct.and_then(|c| c.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(listen: &str, tokens: &[&str], hosts: &[&str]) -> Result<Guard, Vec<String>> {
        let cfg = AdminConfig {
            listen: listen.into(),
            tokens: tokens.iter().map(|t| t.to_string()).collect(),
            allowed_hosts: hosts.iter().map(|h| h.to_string()).collect(),
            ..AdminConfig::default()
        };
        let mut errs = Errors::default();
        Guard::compile(&cfg, &mut errs)
            .ok_or_else(|| errs.0.iter().map(|e| e.to_string()).collect())
    }

    fn hash(token: &str) -> String {
        format!("sha256:{}", crate::config::content_hash(token.as_bytes()))
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn status(g: &Guard, method: Method, path: &str, h: &[(&'static str, &str)]) -> u16 {
        g.refusal(&method, path, &headers(h))
            .map_or(200, |r| r.status().as_u16())
    }

    #[test]
    fn host_names_lose_port_and_trailing_dot_and_case() {
        assert_eq!(host_name("LocalHost.:9180"), "localhost");
        assert_eq!(host_name("[::1]:9180"), "[::1]");
        assert_eq!(host_name("::1"), "::1");
        assert_eq!(host_name("127.0.0.1"), "127.0.0.1");
        let g = guard("127.0.0.2:9180", &[], &[]).unwrap();
        for ok in [
            "localhost:9180",
            "127.0.0.1:9180",
            "[::1]:9180",
            "127.0.0.2:9180",
            "LOCALHOST.",
        ] {
            assert!(g.host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "localhost.evil.example",
            "localhost..",
            "127.0.0.3:9180",
        ] {
            assert!(!g.host_allowed(bad), "{bad}");
        }
        let g = guard("127.0.0.1:9180", &[], &["Admin.Example:443"]).unwrap();
        assert!(g.host_allowed("admin.example."));
        assert!(
            !g.host_allowed("localhost"),
            "a configured list replaces the default"
        );
    }

    #[test]
    fn foreign_or_missing_or_repeated_host_is_403_before_anything_else() {
        let g = guard("127.0.0.1:9180", &[&hash("t")], &[]).unwrap();
        assert_eq!(
            status(&g, Method::GET, "/healthz", &[("host", "evil.example")]),
            403
        );
        assert_eq!(status(&g, Method::GET, "/healthz", &[]), 403);
        let two = [("host", "localhost"), ("host", "evil.example")];
        assert_eq!(status(&g, Method::GET, "/healthz", &two), 403);
        assert_eq!(
            status(&g, Method::GET, "/healthz", &[("host", "localhost")]),
            200
        );
    }

    #[test]
    fn origin_must_be_absent_or_the_requests_own() {
        assert!(same_origin(None, "127.0.0.1:9180"));
        assert!(same_origin(Some("http://127.0.0.1:9180"), "127.0.0.1:9180"));
        assert!(same_origin(
            Some("https://127.0.0.1:9180"),
            "127.0.0.1:9180"
        ));
        assert!(!same_origin(Some("http://127.0.0.1"), "127.0.0.1:9180"));
        assert!(!same_origin(Some("https://evil.example"), "127.0.0.1:9180"));
        assert!(!same_origin(Some("null"), "127.0.0.1:9180"));
    }

    #[test]
    fn state_changes_need_post_json_and_same_origin() {
        let g = guard("127.0.0.1:9180", &[], &[]).unwrap();
        let host = ("host", "127.0.0.1:9180");
        let json = ("content-type", "application/json; charset=utf-8");
        assert_eq!(
            status(&g, Method::POST, "/admin/reload", &[host, json]),
            200
        );
        assert_eq!(status(&g, Method::POST, "/admin/reload", &[host]), 415);
        let text = ("content-type", "text/plain");
        assert_eq!(
            status(&g, Method::POST, "/admin/keys/rotate", &[host, text]),
            415
        );
        let evil = ("origin", "http://evil.example");
        assert_eq!(
            status(&g, Method::POST, "/admin/jwks/flush", &[host, json, evil]),
            403
        );
        let own = ("origin", "http://127.0.0.1:9180");
        assert_eq!(
            status(&g, Method::POST, "/admin/jwks/flush", &[host, json, own]),
            200
        );
        let r = g
            .refusal(&Method::GET, "/admin/reload", &headers(&[host]))
            .unwrap();
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers()["allow"], "POST");
        assert_eq!(
            status(&g, Method::POST, "/admin/config", &[host, json]),
            405
        );
        assert!(json_content_type(Some("Application/JSON")));
        assert!(!json_content_type(Some("application/jsonx")));
        assert!(!json_content_type(None));
    }

    #[test]
    fn tokens_are_bearer_sha256_and_probes_stay_open() {
        let g = guard("127.0.0.1:9180", &[&hash("right"), &hash("other")], &[]).unwrap();
        assert!(g.authorized(Some("Bearer right")));
        assert!(g.authorized(Some("bearer other")));
        assert!(!g.authorized(Some("Bearer wrong")));
        assert!(!g.authorized(Some("Basic right")));
        assert!(!g.authorized(Some("Bearer ")));
        assert!(!g.authorized(None));
        let host = ("host", "localhost");
        let r = g
            .refusal(&Method::GET, "/metrics", &headers(&[host]))
            .unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        assert_eq!(status(&g, Method::GET, "/healthz", &[host]), 200);
        assert_eq!(status(&g, Method::GET, "/readyz", &[host]), 200);
        let auth = ("authorization", "Bearer right");
        assert_eq!(status(&g, Method::GET, "/metrics", &[host, auth]), 200);
        assert!(guard("127.0.0.1:9180", &[], &[]).unwrap().authorized(None));
    }

    #[test]
    fn bad_token_hashes_and_open_public_listeners_are_config_errors() {
        let e = guard("127.0.0.1:9180", &[&hash("a"), "sha256:abc", "md5:00"], &[]).unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].starts_with("admin.tokens[1]: "), "{e:?}");
        assert!(e[1].starts_with("admin.tokens[2]: "), "{e:?}");
        let e = guard("0.0.0.0:9180", &[], &[]).unwrap_err();
        assert!(e[0].starts_with("admin.listen: "), "{e:?}");
        assert!(guard("0.0.0.0:9180", &[&hash("a")], &[]).is_ok());
        assert!(guard("[::1]:9180", &[], &[]).is_ok());
    }
}
