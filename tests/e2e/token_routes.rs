//! The token service's endpoints are routes: global policies reach the generated ones, and a
//! configured route can place an endpoint with its own policies.

use crate::harness::*;
use crate::token::{cc, embedded, hash};
use std::path::Path;

/// A token service with one client (`svc`/`pw`), and `extra` appended (policies, routes).
fn config(dir: &Path, extra: &str) -> String {
    format!(
        r#"
{extra}

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
audience = ["api"]
"#,
        d = dir.display(),
        store = embedded(dir),
        h = hash("pw"),
    )
}

async fn gateway(extra: &str) -> (Gateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&config(dir.path(), extra)).await;
    (gw, dir)
}

const CORS: &str = r#"
[[global_policies]]
type = "cors"
allow_origins = ["https://spa.example"]
allow_methods = ["POST"]
allow_headers = ["authorization", "content-type"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_cors_policy_answers_the_token_endpoint_preflight() {
    let (gw, _d) = gateway(CORS).await;
    let r = request(
        gw.port,
        "OPTIONS",
        "/oauth2/token",
        &[
            ("origin", "https://spa.example"),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "authorization, content-type",
            ),
        ],
        "",
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://spa.example")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_response_carries_the_cors_headers_for_an_allowed_origin() {
    let (gw, _d) = gateway(CORS).await;
    let b = crate::token::basic("svc", "pw");
    let r = request(
        gw.port,
        "POST",
        "/oauth2/token",
        &[
            ("origin", "https://spa.example"),
            ("content-type", "application/x-www-form-urlencoded"),
            ("authorization", &b),
        ],
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://spa.example")
    );
}

/// Tokens are issued only to 10.0.0.0/8 (the tests come from 127.0.0.1).
const ISSUANCE_FROM_10_ONLY: &str = r#"
[[global_policies]]
type = "deny"
when = { all = [{ var = "route", equals = "token_service.token" }, { not = { var = "client_ip", cidr = ["10.0.0.0/8"] } }] }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ip_rule_restricts_issuance_with_403_forbidden() {
    let (gw, _d) = gateway(ISSUANCE_FROM_10_ONLY).await;
    let r = cc(gw.port, "svc", "pw", None).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["errorCode"], "forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ip_rule_on_issuance_leaves_the_jwks_endpoint_open() {
    let (gw, _d) = gateway(ISSUANCE_FROM_10_ONLY).await;
    assert_eq!(get(gw.port, "/.well-known/jwks.json").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_response_headers_appear_on_token_endpoint_answers() {
    let (gw, _d) = gateway(
        r#"
[[global_policies]]
type = "headers"
response = { set = { x-frame-options = "DENY" } }
"#,
    )
    .await;
    let r = cc(gw.port, "svc", "pw", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placed_token_endpoint_runs_its_route_policies() {
    let (gw, _d) = gateway(
        r#"
[[routes]]
name = "issue"
token_endpoint = "token"
policies = [{ type = "deny", when = { var = "header.x-block", exists = true } }]
"#,
    )
    .await;
    let b = crate::token::basic("svc", "pw");
    let blocked = request(
        gw.port,
        "POST",
        "/oauth2/token",
        &[
            ("x-block", "1"),
            ("content-type", "application/x-www-form-urlencoded"),
            ("authorization", &b),
        ],
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(blocked.status, 403);
    assert_eq!(cc(gw.port, "svc", "pw", None).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_endpoint_lookalike_reaches_no_catch_all_route() {
    let (gw, _d) = gateway(
        r#"
[[routes]]
name = "all"
respond = { status = 200, body = "catch-all" }
"#,
    )
    .await;
    let r = request(gw.port, "POST", "/OAuth2/Token/", &[], "").await;
    assert_eq!(r.status, 404);
}

fn check(extra: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[[listeners]]\naddress = \"127.0.0.1:1\"\n[admin]\nenabled = false\n{}",
        config(dir.path(), extra)
    );
    let raw = tokengate::config::parse_str(&text).unwrap_or_else(|e| panic!("{e:?}"));
    let shared = tokengate::shared::Shared::detached().unwrap();
    match tokengate::compile::compile(&raw, "h", 1, None, &shared) {
        Ok(_) => Vec::new(),
        Err(errs) => errs.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn an_unknown_token_endpoint_is_refused_with_its_path() {
    let errs = check("[[routes]]\nname = \"x\"\ntoken_endpoint = \"tokens\"\n");
    assert!(
        errs.iter()
            .any(|e| e.starts_with("routes[0].token_endpoint: unknown endpoint")),
        "{errs:?}"
    );
}

#[test]
fn a_placed_token_endpoint_takes_its_path_from_the_service() {
    let errs = check(
        "[[routes]]\nname = \"x\"\ntoken_endpoint = \"token\"\nmatch = { path_exact = \"/t\" }\n",
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("routes[0].match: a token endpoint's path")),
        "{errs:?}"
    );
}
