//! What the token service's endpoints tell the operator: Prometheus counters by grant type,
//! client and outcome on the admin /metrics, and `client_id` / `grant_type` in the access log,
//! with label values bounded by the config and no secret or token anywhere.

use crate::harness::*;
use crate::identity::metric;
use crate::token::{cc, embedded, hash, post};
use serde_json::Value;
use std::path::Path;

const SECRET: &str = "Zq9-svc-s3cret";

/// A token service with one client (`svc`, [`SECRET`]).
fn config(dir: &Path) -> String {
    format!(
        r#"
[token_service]
issuer = "https://issuer.test"
require_tls = false
signing_alg = "ES256"
key_dir = "{d}/keys"

[token_service.store]
{store}

[[token_service.clients]]
client_id = "svc"
secret_hash = "{h}"
scopes = ["read"]
"#,
        d = dir.display(),
        store = embedded(dir),
        h = hash(SECRET),
    )
}

async fn gateway() -> (Gateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&config(dir.path())).await;
    (gw, dir)
}

const TOKENS: &str = "tokengate_token_requests_total";
const OPERATIONS: &str = "tokengate_token_operations_total";

/// Wait until the counter with these labels reaches `want`.
async fn counted(gw: &Gateway, name: &str, labels: &[(&str, &str)], want: f64) {
    eventually(&format!("{name}{labels:?} = {want}"), || async {
        metric(gw.admin_port, name, labels).await == want
    })
    .await;
}

async fn metrics_text(gw: &Gateway) -> String {
    String::from_utf8_lossy(&get(gw.admin_port, "/metrics").await.body).to_string()
}

/// The access log line of the last request to `path`.
async fn log_line(gw: &Gateway, path: &str) -> (Value, String) {
    let file = gw.dir.path().join("access.log");
    let needle = format!("\"path\":\"{path}\"");
    eventually("the access log line", || async {
        std::fs::read_to_string(&file).is_ok_and(|l| l.contains(&needle))
    })
    .await;
    let text = std::fs::read_to_string(&file).unwrap();
    let line = text.lines().rfind(|l| l.contains(&needle)).unwrap();
    (serde_json::from_str(line).unwrap(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issued_token_is_counted_by_grant_type_client_and_outcome() {
    let (gw, _d) = gateway().await;
    assert_eq!(cc(gw.port, "svc", SECRET, None).await.status, 200);
    let labels = [
        ("grant_type", "client_credentials"),
        ("client", "svc"),
        ("outcome", "issued"),
    ];
    counted(&gw, TOKENS, &labels, 1.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_client_secret_counts_invalid_client() {
    let (gw, _d) = gateway().await;
    assert_eq!(cc(gw.port, "svc", "wrong", None).await.status, 401);
    let labels = [
        ("grant_type", "client_credentials"),
        ("client", "svc"),
        ("outcome", "invalid_client"),
    ];
    counted(&gw, TOKENS, &labels, 1.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_client_id_and_grant_type_become_fixed_labels() {
    let (gw, _d) = gateway().await;
    let r = post(
        gw.port,
        "/oauth2/token",
        Some(("made-up-client-7f3", SECRET)),
        &[("grant_type", "urn:made-up-grant")],
    )
    .await;
    assert_eq!(r.status, 401);
    let labels = [
        ("grant_type", "other"),
        ("client", "unknown"),
        ("outcome", "invalid_client"),
    ];
    counted(&gw, TOKENS, &labels, 1.0).await;
    let text = metrics_text(&gw).await;
    assert!(!text.contains("made-up"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsupported_grant_type_of_a_known_client_is_counted() {
    let (gw, _d) = gateway().await;
    let r = post(
        gw.port,
        "/oauth2/token",
        Some(("svc", SECRET)),
        &[("grant_type", "implicit")],
    )
    .await;
    assert_eq!(r.status, 400);
    let labels = [
        ("grant_type", "other"),
        ("client", "svc"),
        ("outcome", "unsupported_grant_type"),
    ];
    counted(&gw, TOKENS, &labels, 1.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_is_counted_by_client_and_outcome() {
    let (gw, _d) = gateway().await;
    let t = cc(gw.port, "svc", SECRET, None).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let auth = Some(("svc", SECRET));
    let r = post(gw.port, "/oauth2/introspect", auth, &[("token", &t)]).await;
    assert_eq!(r.json()["active"], true);
    let labels = [
        ("operation", "introspect"),
        ("client", "svc"),
        ("outcome", "ok"),
    ];
    counted(&gw, OPERATIONS, &labels, 1.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_without_a_token_is_counted_as_invalid_request() {
    let (gw, _d) = gateway().await;
    let r = post(gw.port, "/oauth2/revoke", Some(("svc", SECRET)), &[]).await;
    assert_eq!(r.status, 400);
    let labels = [
        ("operation", "revoke"),
        ("client", "svc"),
        ("outcome", "invalid_request"),
    ];
    counted(&gw, OPERATIONS, &labels, 1.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_request_logs_client_id_and_grant_type_and_no_secret_or_token() {
    let (gw, _d) = gateway().await;
    let r = cc(gw.port, "svc", SECRET, None).await;
    assert_eq!(r.status, 200);
    let token = r.json()["access_token"].as_str().unwrap().to_string();
    let (entry, text) = log_line(&gw, "/oauth2/token").await;
    assert_eq!(entry["client_id"], "svc");
    assert_eq!(entry["grant_type"], "client_credentials");
    assert!(
        !text.contains(SECRET),
        "the client secret in the access log"
    );
    let sig = token.rsplit('.').next().unwrap();
    assert!(!text.contains(sig), "the access token in the access log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_client_id_is_left_out_of_the_access_log() {
    let (gw, _d) = gateway().await;
    let r = cc(gw.port, "made-up-client-7f3", SECRET, None).await;
    assert_eq!(r.status, 401);
    let (entry, text) = log_line(&gw, "/oauth2/token").await;
    assert_eq!(entry["status"], 401);
    assert!(entry.get("client_id").is_none(), "{entry}");
    assert!(!text.contains("made-up"), "{text}");
}
