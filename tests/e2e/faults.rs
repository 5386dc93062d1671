//! continue_on_error and on_error over real sockets: a token policy's failure lets the request
//! reach the upstream (with the failure in variables), or runs another policy in its place.

use crate::harness::*;
use crate::jwt_verify::{gen, private, public_set};
use serde_json::{json, Value};
use tokengate::jose::{b64_decode, Jwk};

fn now() -> u64 {
    tokengate::expr::unix_now()
}

fn token(k: &Jwk, exp: u64) -> String {
    let payload = json!({"sub": "alice", "exp": exp}).to_string();
    tokengate::jose::sign(
        payload.as_bytes(),
        k,
        tokengate::jose::Alg::ES256,
        &serde_json::Map::new(),
    )
    .unwrap()
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

/// The claims of the bearer token the upstream received.
fn upstream_claims(r: &Resp) -> Value {
    let v = r.json();
    let h = v["headers"]["authorization"][0].as_str().unwrap();
    let payload = h
        .strip_prefix("Bearer ")
        .unwrap()
        .split('.')
        .nth(1)
        .unwrap();
    serde_json::from_slice(&b64_decode(payload).unwrap()).unwrap()
}

/// A gateway with `[policies.verify]` (ES256, `extra` keys added), `[policies.anon]` (mints
/// `sub = "anonymous"` into Authorization) and one proxied route with `policies`.
async fn gateway(k: &Jwk, extra: &str, policies: &str) -> (Gateway, Upstream) {
    let up = Upstream::start("u").await;
    let minter = gen("EC", None, Some("P-256"), "gw");
    let gw = Gateway::start(&format!(
        r#"
[upstreams.pool]
targets = ["{up}"]

[policies.verify]
type = "jwt_verify"
algorithms = ["ES256"]
keys = {{ jwks = '{set}' }}
{extra}

[policies.anon]
type = "jwt_generate"
algorithm = "ES256"
key = {{ jwks = '{minter}' }}
expires_in = "1m"
claims = {{ sub = "anonymous" }}

[[routes]]
name = "api"
upstream = "pool"
policies = [{policies}]
"#,
        up = up.addr,
        set = public_set(&[k]),
        minter = private(&minter),
    ))
    .await;
    (gw, up)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_on_error_lets_an_expired_token_through_with_its_error_in_variables() {
    let k = gen("EC", None, Some("P-256"), "k1");
    let (gw, _up) = gateway(
        &k,
        "continue_on_error = true",
        r#"{ use = "verify" }, { type = "headers", request = { set = { "x-jwt-failed" = "${jwt.verify.failed}", "x-jwt-error" = "${jwt.verify.error}" } } }"#,
    )
    .await;
    let t = token(&k, now() - 3600);
    let r = request(gw.port, "GET", "/x", &[("authorization", &bearer(&t))], "").await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let h = &r.json()["headers"];
    assert_eq!(h["x-jwt-failed"][0], "true");
    assert_eq!(h["x-jwt-error"][0], "token_expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_on_error_records_the_real_outcome_in_metrics_and_the_access_log() {
    let k = gen("EC", None, Some("P-256"), "k1");
    let (gw, _up) = gateway(&k, "continue_on_error = true", r#"{ use = "verify" }"#).await;
    let t = token(&k, now() - 3600);
    let r = request(gw.port, "GET", "/x", &[("authorization", &bearer(&t))], "").await;
    assert_eq!(r.status, 200);
    let want = r#"tokengate_policy_decisions_total{mode="continue",outcome="token_expired",policy="verify",route="api"} 1"#;
    eventually(want, || async {
        String::from_utf8_lossy(&get(gw.admin_port, "/metrics").await.body).contains(want)
    })
    .await;
    let log = gw.dir.path().join("access.log");
    eventually("the access log line", || async {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("verify:continue:token_expired"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_condition_on_the_failure_selects_a_later_policy() {
    let k = gen("EC", None, Some("P-256"), "k1");
    let (gw, _up) = gateway(
        &k,
        "continue_on_error = true",
        r#"{ use = "verify" }, { type = "jwt_generate", when = { var = "jwt.verify.failed", equals = "true" }, algorithm = "HS256", key = { secret = "0123456789abcdef0123456789abcdef" }, claims = { sub = "anonymous" } }"#,
    )
    .await;
    let expired = token(&k, now() - 3600);
    let r = request(
        gw.port,
        "GET",
        "/x",
        &[("authorization", &bearer(&expired))],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(upstream_claims(&r)["sub"], "anonymous");
    let valid = token(&k, now() + 300);
    let r = request(
        gw.port,
        "GET",
        "/x",
        &[("authorization", &bearer(&valid))],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(upstream_claims(&r)["sub"], "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_code_answer_applies_to_that_code_only() {
    let k = gen("EC", None, Some("P-256"), "k1");
    let (gw, _up) = gateway(
        &k,
        r#"errors = { codes = { token_expired = { status = 401, content_type = "text/plain", body = "session over, sign in again" } } }"#,
        r#"{ use = "verify" }"#,
    )
    .await;
    let t = token(&k, now() - 3600);
    let r = request(gw.port, "GET", "/x", &[("authorization", &bearer(&t))], "").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(&r.body[..], b"session over, sign in again");
    let r = get(gw.port, "/x").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["errorCode"], "token_missing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_error_runs_a_policy_in_place_of_the_denial() {
    let k = gen("EC", None, Some("P-256"), "k1");
    let (gw, _up) = gateway(
        &k,
        r#"on_error = { token_missing = { use = "anon" } }"#,
        r#"{ use = "verify" }"#,
    )
    .await;
    let r = get(gw.port, "/x").await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(upstream_claims(&r)["sub"], "anonymous");
    let want = r#"tokengate_policy_decisions_total{mode="handled",outcome="token_missing",policy="verify",route="api"} 1"#;
    eventually(want, || async {
        String::from_utf8_lossy(&get(gw.admin_port, "/metrics").await.body).contains(want)
    })
    .await;
    // Another code keeps its denial.
    let t = token(&k, now() - 3600);
    let r = request(gw.port, "GET", "/x", &[("authorization", &bearer(&t))], "").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["errorCode"], "token_expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handlers_header_is_stripped_from_the_client_when_it_does_not_run() {
    let k = gen("EC", None, Some("P-256"), "k1");
    let up = Upstream::start("u").await;
    let gw = Gateway::start(&format!(
        r#"
[upstreams.pool]
targets = ["{up}"]

[policies.guest]
type = "headers"
request = {{ set = {{ "x-guest" = "yes" }} }}

[[routes]]
name = "api"
upstream = "pool"
policies = [{{ type = "jwt_verify", algorithms = ["ES256"], keys = {{ jwks = '{set}' }}, on_error = {{ token_missing = {{ use = "guest" }} }} }}]
"#,
        up = up.addr,
        set = public_set(&[&k]),
    ))
    .await;
    let t = token(&k, now() + 300);
    let r = request(
        gw.port,
        "GET",
        "/x",
        &[("authorization", &bearer(&t)), ("x-guest", "forged")],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.json()["headers"].get("x-guest").is_none());
    let r = get(gw.port, "/x").await;
    assert_eq!(r.json()["headers"]["x-guest"][0], "yes");
}
