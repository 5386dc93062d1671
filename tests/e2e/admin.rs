//! The admin listener: Host allow-list, bearer tokens, cross-site request refusal, redaction.

use crate::harness::*;
use std::io::{Read, Write};

/// The admin token of these tests and its config line.
const TOKEN: &str = "test-admin-token-0123456789abcdef0123456789";

fn tokens() -> String {
    format!(
        "tokens = [\"sha256:{}\"]",
        tokengate::config::content_hash(TOKEN.as_bytes())
    )
}

/// A token service (for key rotation) and a route.
fn body(dir: &std::path::Path) -> String {
    format!(
        r#"
[[routes]]
name = "hello"
match = {{ path_exact = "/hello" }}
respond = {{ status = 204 }}

[token_service]
issuer = "http://127.0.0.1"
require_tls = false
signing_alg = "ES256"
key_dir = "{d}/keys"

[[token_service.clients]]
client_id = "svc"
secret_hash = "{h}"
"#,
        d = dir.display(),
        h = crate::token::hash("svc-secret"),
    )
}

async fn start() -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    Gateway::start(&body(dir.path())).await
}

/// Exactly these request bytes on a fresh connection; the status and the raw response.
fn raw(port: u16, head: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    s.write_all(head.replace('\n', "\r\n").as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// The signing key ids the data plane publishes.
async fn kids(gw: &Gateway) -> serde_json::Value {
    let jwks = get(gw.port, "/.well-known/jwks.json").await.json();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_text_plain_post_cannot_rotate_keys() {
    let gw = start().await;
    let before = kids(&gw).await;
    let a = gw.admin_port;
    // What a browser sends for a cross-site form or fetch without preflight.
    for _ in 0..2 {
        let (status, text) = raw(
            a,
            &format!(
                "POST /admin/keys/rotate HTTP/1.1\nHost: 127.0.0.1:{a}\nOrigin: https://evil.example\n\
                 Content-Type: text/plain;charset=UTF-8\nContent-Length: 2\nConnection: close\n\n{{}}"
            ),
        );
        assert_eq!(status, 403, "{text}");
        assert!(text.contains(r#"{"error":"origin_not_allowed"}"#), "{text}");
    }
    assert_eq!(kids(&gw).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_plain_post_cannot_reload() {
    let gw = start().await;
    let a = gw.admin_port;
    let (status, text) = raw(
        a,
        &format!(
            "POST /admin/reload HTTP/1.1\nHost: 127.0.0.1:{a}\nContent-Type: text/plain\n\
             Content-Length: 2\nConnection: close\n\n{{}}"
        ),
    );
    assert_eq!(status, 415, "{text}");
    // An admin reload always compiles and swaps (generation 2); the file did not change.
    assert_eq!(gw.generation(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_post_from_the_same_origin_rotates_keys() {
    let gw = start().await;
    let before = kids(&gw).await;
    let a = gw.admin_port;
    let (status, text) = raw(
        a,
        &format!(
            "POST /admin/keys/rotate HTTP/1.1\nHost: 127.0.0.1:{a}\nOrigin: http://127.0.0.1:{a}\n\
             Content-Type: application/json; charset=utf-8\nContent-Length: 2\nConnection: close\n\n{{}}"
        ),
    );
    assert_eq!(status, 200, "{text}");
    assert_ne!(kids(&gw).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_on_a_state_changing_endpoint_is_405() {
    let gw = start().await;
    let r = get(gw.admin_port, "/admin/keys/rotate").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_host_cannot_read_the_config() {
    let gw = start().await;
    let host = [("host", "evil.example")];
    let r = request(gw.admin_port, "GET", "/admin/config", &host, "").await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json(), serde_json::json!({"error": "host_not_allowed"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_hosts_can_read_the_config() {
    let gw = start().await;
    let a = gw.admin_port;
    for host in [
        format!("127.0.0.1:{a}"),
        format!("localhost:{a}"),
        format!("[::1]:{a}"),
        "LOCALHOST.".to_string(),
    ] {
        let r = request(a, "GET", "/admin/config", &[("host", &host)], "").await;
        assert_eq!(r.status, 200, "{host}");
        assert_eq!(r.json()["routes"][0]["name"], "hello");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_wrong_token_is_401() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start_admin(&tokens(), &body(dir.path())).await;
    let wrong = [("authorization", "Bearer not-the-token")];
    for h in [&[][..], &wrong[..]] {
        let r = request(gw.admin_port, "GET", "/admin/config", h, "").await;
        assert_eq!(r.status, 401);
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        assert_eq!(r.json()["error"], "unauthorized");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn right_token_is_200() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start_admin(&tokens(), &body(dir.path())).await;
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("authorization", bearer.as_str())];
    let r = request(gw.admin_port, "GET", "/admin/config", &auth, "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["routes"][0]["name"], "hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_need_no_token() {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start_admin(&tokens(), &body(dir.path())).await;
    assert_eq!(get(gw.admin_port, "/healthz").await.status, 200);
    assert_eq!(get(gw.admin_port, "/readyz").await.status, 200);
    assert_eq!(get(gw.admin_port, "/metrics").await.status, 401);
}

#[test]
fn public_listen_without_tokens_is_refused_by_check() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("public.toml");
    std::fs::write(
        &cfg,
        "[admin]\nlisten = \"0.0.0.0:9180\"\n\n[[listeners]]\naddress = \"127.0.0.1:8080\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokengate"))
        .arg("check")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("public.toml: admin.listen: 0.0.0.0:9180 is not a loopback address"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_redacts_a_headers_policy_authorization() {
    let dir = tempfile::tempdir().unwrap();
    let more = r#"
[policies.creds]
type = "headers"
request = { set = { Authorization = "Bearer upstream-s3cr3t", X-Tenant = "acme" } }

[[routes]]
name = "up"
match = { path_prefix = "/up" }
respond = { status = 204 }
policies = [{ use = "creds" }]
"#;
    let gw = Gateway::start(&(body(dir.path()) + more)).await;
    let cfg = get(gw.admin_port, "/admin/config").await;
    let text = String::from_utf8_lossy(&cfg.body);
    assert!(!text.contains("upstream-s3cr3t"), "{text}");
    let set = &cfg.json()["policies"]["creds"]["request"]["set"];
    assert_eq!(set["Authorization"], "[redacted]");
    assert_eq!(set["X-Tenant"], "acme");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_redacts_secret_env_and_password_keys() {
    // Process-wide, but no other test reads this name.
    std::env::set_var("TG_ADMIN_TEST_HMAC", "0123456789abcdef0123456789abcdef");
    let dir = tempfile::tempdir().unwrap();
    let more = format!(
        r#"
[[token_service.users]]
username = "alice"
password_hash = "{h}"

[policies.v]
type = "jwt_verify"
algorithms = ["HS256"]
keys = {{ secret_env = "TG_ADMIN_TEST_HMAC" }}
"#,
        h = crate::token::hash("alice-pw")
    );
    let gw = Gateway::start(&(body(dir.path()) + &more)).await;
    let cfg = get(gw.admin_port, "/admin/config").await.json();
    assert_eq!(cfg["policies"]["v"]["keys"]["secret_env"], "[redacted]");
    assert_eq!(
        cfg["token_service"]["users"][0]["password_hash"],
        "[redacted]"
    );
    assert_eq!(cfg["token_service"]["users"][0]["username"], "alice");
    assert_eq!(cfg["token_service"]["paths"]["token"], "/oauth2/token");
}
