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

use crate::state::{ReloadOutcome, State};
use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;
use serde_json::{json, Value};
use std::sync::Arc;

pub struct Admin {
    pub state: Arc<State>,
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

/// Keys whose values are secrets, wherever they appear in the config.
const SECRET_KEYS: &[&str] = &[
    "secret",
    "password",
    "key",
    "private_key",
    "client_secret",
    "secret_hash",
    "password_hash",
    "token",
    "k",
    "d",
    "p",
    "q",
    "dp",
    "dq",
    "qi",
    "jwks",
    "pem",
];

/// Replace every secret-looking value with "[redacted]".
pub fn redact(v: &mut Value) {
    redact_in(v, false);
}

/// A header whose value is a credential (`in_headers`: below a `headers` table).
fn secret_header(name: &str) -> bool {
    [
        "authorization",
        "cookie",
        "key",
        "token",
        "secret",
        "password",
        "auth",
    ]
    .iter()
    .any(|w| name.contains(w))
}

fn redact_in(v: &mut Value, in_headers: bool) {
    match v {
        Value::Object(m) => {
            for (k, val) in m.iter_mut() {
                let lk = k.to_ascii_lowercase();
                let secret = SECRET_KEYS.contains(&lk.as_str())
                    || lk.ends_with("_secret")
                    || lk.ends_with("password")
                    || (in_headers && secret_header(&lk));
                if secret && !val.is_object() {
                    *val = Value::String("[redacted]".into());
                    continue;
                }
                redact_in(val, in_headers || lk == "headers");
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| redact_in(x, in_headers)),
        Value::String(s) => {
            if let Some(r) = redact_url(s) {
                *s = r;
            }
        }
        _ => {}
    }
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
        let method = session.req_header().method.clone();
        let path = session.req_header().uri.path().to_string();
        match (method.as_str(), path.as_str()) {
            ("GET", "/healthz") => reply(StatusCode::OK, "text/plain", b"ok\n".to_vec()),
            ("GET", "/readyz") => {
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
            ("GET", "/metrics") => reply(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                self.state.metrics.render(),
            ),
            ("POST", "/admin/reload") => {
                let state = self.state.clone();
                let out = tokio::task::spawn_blocking(move || state.reload(true)).await;
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
            ("GET", "/admin/jwks") => json_reply(
                StatusCode::OK,
                json!({"sources": self.state.shared.keys.sources()}),
            ),
            ("POST", "/admin/jwks/flush") => {
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
            ("POST", "/admin/keys/rotate") => {
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
            ("GET", "/admin/config/status") => {
                json_reply(StatusCode::OK, json!(self.state.status()))
            }
            ("GET", "/admin/config") => {
                let snap = self.state.current.load();
                let mut v = serde_json::to_value(&snap.raw).unwrap_or(Value::Null);
                redact(&mut v);
                json_reply(StatusCode::OK, v)
            }
            (_, "/healthz" | "/readyz" | "/metrics" | "/admin/reload" | "/admin/config")
            | (_, "/admin/config/status") => json_reply(
                StatusCode::METHOD_NOT_ALLOWED,
                json!({"error": "method not allowed"}),
            ),
            _ => json_reply(StatusCode::NOT_FOUND, json!({"error": "not found"})),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
