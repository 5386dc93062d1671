//! The private admin listener (loopback by default): health, readiness, metrics, reload and
//! config inspection. Never exposed on the data-plane listeners.
//!
//! | endpoint                    | answer                                                   |
//! |-----------------------------|----------------------------------------------------------|
//! | `GET /healthz`              | 200 while the process runs                               |
//! | `GET /readyz`               | 200 when a config is loaded and prefetches are ready     |
//! | `GET /metrics`              | Prometheus text                                          |
//! | `POST /admin/reload`        | reload now; 200 applied/unchanged, 422 refused (errors)  |
//! | `GET /admin/config/status`  | generation, content hash, last error, restart_required   |
//! | `GET /admin/config`         | the running config as JSON, secrets redacted             |
//! | `GET /admin/jwks`           | remote key sources: age, keys, last error, readiness     |
//! | `POST /admin/jwks/flush`    | drop cached keys (all, or `?source=URL-or-label`)         |
//! | `POST /admin/keys/rotate`   | token service: previous <- current <- next <- new key    |
//!
//! Every request passes the [`Guard`] first: an allowed Host (else 403), a bearer token when
//! `[admin] tokens` are set (else 401; the probes are open), the endpoint's method (else 405),
//! and for the POST endpoints a same-origin or absent Origin (else 403) and a JSON content type
//! (else 415).

use crate::config::AdminConfig;
use crate::error::Errors;
use crate::state::{ReloadOutcome, State};
use async_trait::async_trait;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;

pub struct Admin {
    pub state: Arc<State>,
    pub guard: Guard,
}

fn reply(status: StatusCode, ctype: &str, body: Vec<u8>) -> Response<Vec<u8>> {
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

fn json_reply(status: StatusCode, v: Value) -> Response<Vec<u8>> {
    reply(status, "application/json", v.to_string().into_bytes())
}

/// Keys whose string values are secrets wherever they appear: key material (`key`, `pem`,
/// `jwks`) and the private members of a JWK.
const SECRET_KEYS: &[&str] = &["key", "k", "d", "p", "q", "dp", "dq", "qi", "jwks", "pem"];

/// A key containing one of these words names a secret (`client_secret`, `bind_password`,
/// `secret_env`, `tokens`, `private_key`, ...).
const SECRET_WORDS: &[&str] = &["secret", "password", "token", "private", "credential"];

/// Keys with a secret word in their name that hold settings, not secrets.
const SETTINGS: &[&str] = &[
    "max_token_size",
    "token_format",
    "access_token_lifetime",
    "refresh_token_lifetime",
    "password_source",
];

const REDACTED: &str = "[redacted]";

/// Replace every secret in the config's JSON form with "[redacted]". The rule:
/// * a string (or each string of an array) is a secret when its key names one: a key in
///   [`SECRET_KEYS`] or containing a word of [`SECRET_WORDS`], except the [`SETTINGS`] and the
///   entries of a `paths` table (endpoint paths such as `token_service.paths.token`);
/// * in a header table (`headers`, and the `set` / `add` tables of a `headers` policy) a value
///   is a secret when its header name looks like a credential ([`secret_header`]);
/// * booleans and numbers are never secrets (`allow_query_token`, `forward_token` stay);
/// * any other string keeps everything but the credentials of a URL ([`redact_url`]).
pub fn redact(v: &mut Value) {
    walk(v, false, Table::Plain);
}

/// What an object's keys are: config keys, header names, or endpoint paths.
#[derive(Clone, Copy)]
enum Table {
    Plain,
    Headers,
    Paths,
}

fn walk(v: &mut Value, secret: bool, table: Table) {
    match v {
        Value::Object(m) => {
            for (k, val) in m.iter_mut() {
                let k = k.to_ascii_lowercase();
                let secret = match table {
                    Table::Plain => secret_key(&k),
                    Table::Headers => secret_header(&k),
                    Table::Paths => false,
                };
                let inner = match k.as_str() {
                    "headers" | "set" | "add" => Table::Headers,
                    "paths" => Table::Paths,
                    _ => Table::Plain,
                };
                walk(val, secret, inner);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| walk(x, secret, table)),
        Value::String(s) if secret => *s = REDACTED.into(),
        Value::String(s) => {
            if let Some(r) = redact_url(s) {
                *s = r;
            }
        }
        _ => {}
    }
}

/// A config key (lowercase) whose string value is a secret.
fn secret_key(k: &str) -> bool {
    SECRET_KEYS.contains(&k)
        || (SECRET_WORDS.iter().any(|w| k.contains(w)) && !SETTINGS.contains(&k))
}

/// A header (or query parameter) name, lowercase, whose value is a credential:
/// Authorization, Proxy-Authorization, Cookie, Set-Cookie, X-Api-Key, X-Session-Id, ...
fn secret_header(name: &str) -> bool {
    [
        "auth", "cookie", "key", "token", "secret", "session", "password",
    ]
    .iter()
    .any(|w| name.contains(w))
}

/// Credentials in a URL: `scheme://user:secret@host/...` (database and Redis URLs) and
/// query parameters such as `password=`, `api_key=`, `token=`.
fn redact_url(s: &str) -> Option<String> {
    let (scheme, rest) = s.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = rest.get(..end)?;
    let tail = rest.get(end..).unwrap_or_default();
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:[redacted]@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let q: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _))
                        if secret_header(&k.to_ascii_lowercase())
                            || k.eq_ignore_ascii_case("pwd") =>
                    {
                        format!("{k}=[redacted]")
                    }
                    _ => kv.to_string(),
                })
                .collect();
            format!("{path}?{}", q.join("&"))
        }
        None => tail.to_string(),
    };
    let out = format!("{scheme}://{authority}{tail}");
    (out != s).then_some(out)
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
            | "/admin/jwks" => "GET",
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

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let path = req.uri.path().to_string();
        if let Some(refused) = self.guard.refusal(&req.method, &path, &req.headers) {
            return refused;
        }
        self.serve(session, &path).await
    }
}

impl Admin {
    /// An admitted request: the method is the endpoint's.
    async fn serve(&self, session: &mut ServerSession, path: &str) -> Response<Vec<u8>> {
        match path {
            "/healthz" => reply(StatusCode::OK, "text/plain", b"ok\n".to_vec()),
            "/readyz" => {
                // A snapshot always exists once serving; prefetching policies register here.
                let st = self.state.status();
                let mut waiting = self.state.not_ready();
                if !self.state.shared.keys.is_ready() {
                    waiting.push("jwks".to_string());
                }
                // Degraded dependencies that do not make the gateway unready: a dead LDAP
                // fails password grants (503), not the proxy routes.
                let mut degraded = Vec::new();
                if let Some(t) = &self.state.current.load().token {
                    if !t.store.healthy() {
                        waiting.push("token_store".to_string());
                    }
                    degraded = t.degraded_sources();
                }
                let code = if waiting.is_empty() {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                json_reply(
                    code,
                    json!({"ready": waiting.is_empty(), "generation": st.generation,
                           "waiting_for": waiting, "degraded": degraded}),
                )
            }
            "/metrics" => reply(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                self.state.metrics.render(),
            ),
            "/admin/reload" => {
                let out = crate::reload::reload_blocking(self.state.clone(), true).await;
                match out {
                    Ok(ReloadOutcome::Applied { generation }) => json_reply(
                        StatusCode::OK,
                        json!({"result": "applied", "generation": generation,
                               "restart_required": self.state.status().restart_required}),
                    ),
                    Ok(ReloadOutcome::Unchanged) => {
                        json_reply(StatusCode::OK, json!({"result": "unchanged"}))
                    }
                    Ok(ReloadOutcome::Refused(errs)) => json_reply(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        json!({"result": "refused",
                               "errors": errs.iter().map(|e| e.to_string()).collect::<Vec<_>>()}),
                    ),
                    Err(_) => json_reply(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        json!({"result": "error"}),
                    ),
                }
            }
            "/admin/jwks" => json_reply(
                StatusCode::OK,
                json!({"sources": self.state.shared.keys.sources()}),
            ),
            "/admin/jwks/flush" => {
                let source = session.req_header().uri.query().and_then(|q| {
                    q.split('&').find_map(|p| {
                        p.strip_prefix("source=").map(|v| {
                            percent_encoding::percent_decode_str(v)
                                .decode_utf8_lossy()
                                .into_owned()
                        })
                    })
                });
                let n = self.state.shared.keys.flush(source.as_deref());
                if source.is_some() && n == 0 {
                    json_reply(StatusCode::NOT_FOUND, json!({"error": "no such source"}))
                } else {
                    json_reply(StatusCode::OK, json!({"flushed": n}))
                }
            }
            "/admin/keys/rotate" => {
                let Some(t) = self.state.current.load().token.clone() else {
                    return json_reply(
                        StatusCode::NOT_FOUND,
                        json!({"error": "no [token_service] configured"}),
                    );
                };
                let ring = t.ring.clone();
                match tokio::task::spawn_blocking(move || ring.rotate()).await {
                    Ok(Ok(kids)) => {
                        log::info!("token service: signing keys rotated");
                        json_reply(StatusCode::OK, json!({"kids": kids}))
                    }
                    Ok(Err(e)) => {
                        log::error!("token service: key rotation failed: {e}");
                        json_reply(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            json!({"error": "rotation failed"}),
                        )
                    }
                    Err(_) => json_reply(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        json!({"error": "rotation failed"}),
                    ),
                }
            }
            "/admin/config/status" => json_reply(StatusCode::OK, json!(self.state.status())),
            "/admin/config" => {
                let snap = self.state.current.load();
                let mut v = serde_json::to_value(&snap.raw).unwrap_or(Value::Null);
                redact(&mut v);
                json_reply(StatusCode::OK, v)
            }
            _ => json_reply(StatusCode::NOT_FOUND, json!({"error": "not found"})),
        }
    }
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

    #[test]
    fn secrets_are_redacted_and_settings_kept() {
        let mut v = json!({
            "admin": {"tokens": ["sha256:00"]},
            "policies": {"up": {"type": "headers",
                "request": {"set": {"Authorization": "Bearer s3cr1", "X-Trace": "on"},
                            "add": {"Cookie": "sid=s3cr2", "Proxy-Authorization": "s3cr3"}},
                "response": {"set": {"Set-Cookie": "s=s3cr4", "X-Session-Id": "s3cr5"}}}},
            "routes": [{"name": "r", "respond": {"status": 200, "headers": {"x-auth-token": "s3cr6",
                                                 "content-type": "text/plain"}}}],
            "k": {"secret_env": "S3CR7_ENV", "secret_file": "/run/s3cr8", "pem": "s3cr9",
                  "file": "/etc/keys/pub.pem"},
            "ldap": {"bind_password": "s3cr10", "client_credentials": "s3cr11",
                     "private_key": "s3cr12"},
            "token_service": {"paths": {"token": "/oauth2/token", "jwks": "/oauth2/jwks"},
                              "token_format": "jwt", "access_token_lifetime": "5m",
                              "refresh_token_lifetime": "1d", "password_source": "ldap",
                              "clients": [{"client_id": "a", "secret_hash": "s3cr13"}]},
            "jwt": {"max_token_size": "8KiB", "allow_query_token": false, "forward_token": true}
        });
        redact(&mut v);
        assert!(!v.to_string().contains("s3cr"), "{v}");
        assert!(!v.to_string().contains("S3CR"), "{v}");
        assert_eq!(v["policies"]["up"]["request"]["set"]["X-Trace"], "on");
        assert_eq!(
            v["policies"]["up"]["request"]["set"]["Authorization"],
            REDACTED
        );
        assert_eq!(
            v["routes"][0]["respond"]["headers"]["content-type"],
            "text/plain"
        );
        assert_eq!(v["routes"][0]["respond"]["status"], 200);
        assert_eq!(v["k"]["file"], "/etc/keys/pub.pem");
        let ts = &v["token_service"];
        assert_eq!(ts["paths"]["token"], "/oauth2/token");
        assert_eq!(ts["paths"]["jwks"], "/oauth2/jwks");
        assert_eq!(ts["token_format"], "jwt");
        assert_eq!(ts["access_token_lifetime"], "5m");
        assert_eq!(ts["refresh_token_lifetime"], "1d");
        assert_eq!(ts["password_source"], "ldap");
        assert_eq!(ts["clients"][0]["client_id"], "a");
        assert_eq!(v["jwt"]["max_token_size"], "8KiB");
        assert_eq!(v["jwt"]["allow_query_token"], false);
        assert_eq!(v["jwt"]["forward_token"], true);
    }

    #[test]
    fn url_passwords_and_secret_keys_are_redacted() {
        let mut v = json!({
            "db": {"url": "postgres://gw:s3cr%40t@127.0.0.1:5432/users?sslmode=require",
                   "bind_password": "pw"},
            "plain": "https://issuer.test/a@b",
            "user_only": "mysql://root@127.0.0.1/test",
            "query_url": "postgres://h/db?user=gw&password=s3crq&sslmode=require",
            "http": {"headers": {"Authorization": "Bearer s3crh", "x-api-key": "s3crk",
                                 "x-tenant": "acme"},
                     "token_format": "jwt"}
        });
        redact(&mut v);
        assert_eq!(
            v["query_url"],
            "postgres://h/db?user=gw&password=[redacted]&sslmode=require"
        );
        assert_eq!(v["http"]["headers"]["x-tenant"], "acme");
        assert_eq!(v["http"]["token_format"], "jwt");
        assert_eq!(
            v["db"]["url"],
            "postgres://gw:[redacted]@127.0.0.1:5432/users?sslmode=require"
        );
        assert_eq!(v["db"]["bind_password"], "[redacted]");
        assert_eq!(v["plain"], "https://issuer.test/a@b");
        assert_eq!(v["user_only"], "mysql://root@127.0.0.1/test");
        assert!(!v.to_string().contains("s3cr"));
    }
}
