//! jwt_verify with remote key sets: a real loopback JWKS server that rotates keys, fails,
//! and counts fetches; readiness, unknown-kid refetch with cooldown, stale-if-error, flush,
//! a reload that keeps the warm key cache, and per-client JWKS selected from an allow-list.

use crate::harness::*;
use crate::jwt_verify::{gen, public};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokengate::jose::{Alg, Jwk};

/// A JWKS server: path -> JWKS JSON; `fail` makes every answer a 500.
#[derive(Clone, Default)]
pub struct JwksServer {
    sets: Arc<Mutex<HashMap<String, String>>>,
    fetches: Arc<AtomicUsize>,
    status: Arc<AtomicU16>,
}

impl JwksServer {
    pub async fn start(&self) -> std::net::SocketAddr {
        self.status.store(200, Ordering::SeqCst);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let me = me.clone();
                tokio::spawn(async move {
                    let svc =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let me = me.clone();
                            async move {
                                me.fetches.fetch_add(1, Ordering::SeqCst);
                                let status = me.status.load(Ordering::SeqCst);
                                let body = me.sets.lock().unwrap().get(req.uri().path()).cloned();
                                let (status, body) = match (status, body) {
                                    (200, Some(b)) => (200, b),
                                    (200, None) => (404, String::new()),
                                    (s, _) => (s, "{}".into()),
                                };
                                Ok::<_, hyper::Error>(
                                    Response::builder()
                                        .status(status)
                                        .header("content-type", "application/json")
                                        .body(Full::new(Bytes::from(body)))
                                        .unwrap(),
                                )
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        addr
    }

    pub fn set(&self, path: &str, keys: &[&Jwk]) {
        let v = json!({"keys": keys.iter().map(|k| public(k)).collect::<Vec<Value>>()});
        self.sets.lock().unwrap().insert(path.into(), v.to_string());
    }

    /// Serves the keys with their private members (a source of signing keys).
    pub fn set_private(&self, path: &str, keys: &[&Jwk]) {
        let v =
            json!({"keys": keys.iter().map(|k| k.to_value(true).unwrap()).collect::<Vec<Value>>()});
        self.sets.lock().unwrap().insert(path.into(), v.to_string());
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

fn token(key: &Jwk, kid: &str, claims: Value) -> String {
    let mut h = serde_json::Map::new();
    h.insert("kid".into(), json!(kid));
    tokengate::jose::sign(claims.to_string().as_bytes(), key, Alg::ES256, &h).unwrap()
}

fn claims(iss: &str) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    json!({"sub": "alice", "iss": iss, "exp": now + 300})
}

async fn call(port: u16, path: &str, tok: &str) -> Resp {
    request(
        port,
        "GET",
        path,
        &[("authorization", &format!("Bearer {tok}"))],
        "",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_jwks_lifecycle() {
    let up = Upstream::start("u").await;
    let idp = JwksServer::default();
    let a = gen("EC", None, Some("P-256"), "a");
    let b = gen("EC", None, Some("P-256"), "b");
    idp.set("/jwks.json", &[&a]);
    let addr = idp.start().await;
    // The provider is down at start: not ready, and requests get 503, not 401.
    idp.status.store(500, Ordering::SeqCst);
    let gw = Gateway::start(&format!(
        r#"
[upstreams.pool]
targets = ["{up}"]

[[routes]]
name = "api"
upstream = "pool"
policies = [{{ type = "jwt_verify", algorithms = ["ES256"], keys = {{ jwks_url = "http://{addr}/jwks.json", remote = {{ min_refresh = "1s", max_refresh = "1h", unknown_kid_cooldown = "30s", timeout = "2s" }} }} }}]
"#,
        up = up.addr
    ))
    .await;
    let tok_a = token(&a, "a", claims("x"));
    let r = get(gw.admin_port, "/readyz").await;
    assert_eq!(r.status, 503, "waiting for the JWKS prefetch");
    assert_eq!(r.json()["waiting_for"], json!(["jwks"]));
    let r = call(gw.port, "/x", &tok_a).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["errorCode"], "jwks_unavailable");

    idp.status.store(200, Ordering::SeqCst);
    eventually("ready after the provider recovers", || async {
        get(gw.admin_port, "/readyz").await.status == 200
    })
    .await;
    assert_eq!(call(gw.port, "/x", &tok_a).await.status, 200);

    // Rotation: a token with a new kid triggers one refetch.
    idp.set("/jwks.json", &[&a, &b]);
    let before = idp.fetches();
    let tok_b = token(&b, "b", claims("x"));
    assert_eq!(call(gw.port, "/x", &tok_b).await.status, 200);
    assert_eq!(idp.fetches(), before + 1);

    // A flood of unknown kids within the cooldown: no fetch at all.
    let before = idp.fetches();
    for i in 0..20 {
        let t = token(&b, &format!("random-{i}"), claims("x"));
        let r = call(gw.port, "/x", &t).await;
        assert_eq!(r.status, 401);
        assert_eq!(r.json()["errorCode"], "no_matching_key");
    }
    assert_eq!(idp.fetches(), before, "cooldown: no refetch");

    // A reload that leaves the policy alone keeps the warm key set: no fetch.
    let before = idp.fetches();
    let text = std::fs::read_to_string(&gw.config).unwrap()
        + "\n[[routes]]\nname = \"other\"\nmatch = { path_exact = \"/other\" }\nrespond = { status = 204 }\n";
    // Insert before the catch-all route so it is reachable.
    let text = text.replace("[[routes]]\nname = \"api\"", "[[routes]]\nname = \"api0\"\nmatch = { path_exact = \"/never\" }\nrespond = { status = 204 }\n\n[[routes]]\nname = \"api\"");
    std::fs::write(&gw.config, text).unwrap();
    eventually("reloaded", || async { gw.generation() == 2 }).await;
    assert_eq!(call(gw.port, "/x", &tok_b).await.status, 200);
    assert_eq!(idp.fetches(), before, "reload kept the key cache");

    // Stale-if-error: the provider fails, cached keys keep serving.
    idp.status.store(500, Ordering::SeqCst);
    let r = admin_post(gw.admin_port, "/admin/jwks/flush?source=nope").await;
    assert_eq!(r.status, 404);
    assert_eq!(call(gw.port, "/x", &tok_a).await.status, 200);

    // Flush: keys dropped; with the provider down that is now a 503; back up, a refetch.
    let r = admin_post(gw.admin_port, "/admin/jwks/flush").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["flushed"], 1);
    // Bypass the verified-token cache with a fresh token.
    let fresh = token(&a, "a", with_jti(claims("x"), "f1"));
    assert_eq!(call(gw.port, "/x", &fresh).await.status, 503);
    idp.status.store(200, Ordering::SeqCst);
    eventually("refetched after flush", || async {
        call(gw.port, "/x", &token(&a, "a", with_jti(claims("x"), "f2")))
            .await
            .status
            == 200
    })
    .await;
    let st = get(gw.admin_port, "/admin/jwks").await.json();
    assert_eq!(st["sources"].as_array().unwrap().len(), 1);
    let m = String::from_utf8_lossy(&get(gw.admin_port, "/metrics").await.body).to_string();
    assert!(m.contains("tokengate_jwks_fetches_total"), "{m}");
}

fn with_jti(mut c: Value, jti: &str) -> Value {
    c["jti"] = json!(jti);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_client_jwks_from_an_allow_list() {
    let up = Upstream::start("u").await;
    let idp = JwksServer::default();
    let k1 = gen("EC", None, Some("P-256"), "k");
    let k2 = gen("EC", None, Some("P-256"), "k");
    idp.set("/c1/jwks.json", &[&k1]);
    idp.set("/c2/jwks.json", &[&k2]);
    let addr = idp.start().await;
    let gw = Gateway::start(&format!(
        r#"
[upstreams.pool]
targets = ["{up}"]

[[routes]]
name = "api"
upstream = "pool"
policies = [{{ type = "jwt_verify", algorithms = ["ES256"], keys = {{ per_client_url = "${{claims.iss}}/jwks.json", per_client_allow = ["http://{addr}/c*/jwks.json"] }}, claims_to_headers = [{{ claim = "iss", header = "x-iss" }}] }}]
"#,
        up = up.addr
    ))
    .await;
    assert_eq!(
        get(gw.admin_port, "/readyz").await.status,
        200,
        "per-client sources are lazy"
    );
    let c1 = format!("http://{addr}/c1");
    let c2 = format!("http://{addr}/c2");
    for (key, iss) in [(&k1, &c1), (&k2, &c2)] {
        let r = call(gw.port, "/x", &token(key, "k", claims(iss))).await;
        assert_eq!(r.status, 200, "{iss}");
        assert_eq!(r.json()["headers"]["x-iss"][0], iss.as_str());
    }
    // Client 1's issuer with client 2's key: verified against client 1's keys, refused.
    let r = call(gw.port, "/x", &token(&k2, "k", claims(&c1))).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["errorCode"], "signature_invalid");
    // An issuer outside the allow-list is never fetched.
    let before = idp.fetches();
    let r = call(
        gw.port,
        "/x",
        &token(&k1, "k", claims(&format!("http://{addr}/evil"))),
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["errorCode"], "no_matching_key");
    let r = call(
        gw.port,
        "/x",
        &token(&k1, "k", claims("http://169.254.169.254/latest")),
    )
    .await;
    assert_eq!(r.status, 401);
    // Patterns match the path; a query or dot segment smuggled in the claim is refused.
    for iss in [
        format!("http://{addr}/c1?x="),
        format!("http://{addr}/c1/.."),
    ] {
        let r = call(gw.port, "/x", &token(&k1, "k", claims(&iss))).await;
        assert_eq!(r.status, 401, "{iss}");
    }
    assert_eq!(idp.fetches(), before, "nothing fetched for refused URLs");
}
