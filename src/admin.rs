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
//! | `GET /admin/usage`          | which routes use each named policy and group, and how    |
//! | `GET /admin/jwks`           | remote key sources: age, keys, last error, readiness     |
//! | `POST /admin/jwks/flush`    | drop cached keys (all, or `?source=URL-or-label`)         |
//! | `POST /admin/keys/rotate`   | token service: previous <- current <- next <- new key    |
//!
//! Every request passes the [`Guard`](crate::guard::Guard) first: an allowed Host (else 403),
//! a bearer token when `[admin] tokens` are set (else 401; the probes are open), the endpoint's
//! method (else 405), and for the POST endpoints a same-origin or absent Origin (else 403) and a
//! JSON content type (else 415).

use crate::guard::{json_reply, reply, Guard};
use crate::state::{ReloadOutcome, State};
use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;
use serde_json::{json, Value};
use std::sync::Arc;

pub struct Admin {
    pub state: Arc<State>,
    pub guard: Guard,
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
                let mut v = self
                    .state
                    .config()
                    .and_then(|c| serde_json::to_value(&c).ok())
                    .unwrap_or(Value::Null);
                redact(&mut v);
                json_reply(StatusCode::OK, v)
            }
            "/admin/usage" => {
                let v = self
                    .state
                    .config()
                    .and_then(|c| serde_json::to_value(crate::usage::of(&c)).ok())
                    .unwrap_or(Value::Null);
                json_reply(StatusCode::OK, v)
            }
            _ => json_reply(StatusCode::NOT_FOUND, json!({"error": "not found"})),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
