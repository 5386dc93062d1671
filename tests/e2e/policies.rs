use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_policy_conditions_and_enabled_false() {
    let up = Upstream::start("u").await;
    let gw = Gateway::start(&format!(
        r#"
[upstreams.pool]
targets = ["{up}"]

[policies.tag]
type = "headers"
request = {{ set = {{ "x-tag" = "named" }} }}

[[global_policies]]
type = "headers"
response = {{ set = {{ "x-global" = "yes" }} }}

[[routes]]
name = "api"
match = {{ path_prefix = "/api" }}
upstream = "pool"
policies = [
  {{ use = "tag" }},
  {{ type = "headers", request = {{ set = {{ "x-set" = "1" }}, add = {{ "x-multi" = "two" }}, remove = ["x-secret"] }}, response = {{ set = {{ "x-resp" = "r" }}, remove = ["x-upstream"] }} }},
  {{ type = "headers", when = {{ var = "header.x-env", equals = "prod" }}, request = {{ set = {{ "x-prod" = "true" }} }} }},
  {{ type = "headers", when = {{ any = [{{ var = "query.debug", exists = true }}, {{ var = "client_ip", cidr = ["203.0.113.0/24"] }}] }}, response = {{ set = {{ "x-debug" = "on" }} }} }},
  {{ type = "headers", enabled = false, request = {{ set = {{ "x-disabled" = "1" }} }} }},
  {{ type = "headers", request = {{ set = {{ "x-tpl" = "${{route}}:${{header.x-multi}}:$${{lit}}", "x-absent" = "${{header.nope}}" }} }}, response = {{ set = {{ "x-echo-query" = "${{query.debug}}" }} }} }},
]
"#,
        up = up.addr
    ))
    .await;
    let r = request(
        gw.port,
        "GET",
        "/api/x",
        &[("x-secret", "s"), ("x-multi", "one")],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    let h = &v["headers"];
    assert_eq!(h["x-tag"][0], "named");
    assert_eq!(h["x-set"][0], "1");
    assert_eq!(h["x-multi"], serde_json::json!(["one", "two"]));
    assert!(h.get("x-secret").is_none());
    assert!(h.get("x-prod").is_none(), "condition false");
    assert!(h.get("x-disabled").is_none(), "enabled = false");
    assert_eq!(r.header("x-resp"), Some("r"));
    assert_eq!(r.header("x-global"), Some("yes"));
    assert!(r.header("x-upstream").is_none());
    assert!(r.header("x-debug").is_none());
    assert_eq!(h["x-tpl"][0], "api:one:${lit}");
    assert!(
        h.get("x-absent").is_none(),
        "absent variable: header not sent"
    );

    let r = request(gw.port, "GET", "/api/x?debug", &[("x-env", "prod")], "").await;
    assert_eq!(r.json()["headers"]["x-prod"][0], "true");
    assert_eq!(r.header("x-debug"), Some("on"));
    assert_eq!(r.header("x-echo-query"), Some(""));
    // A rendered value that is not header text is dropped, not forwarded.
    let r = request(gw.port, "GET", "/api/x?debug=a%0d%0aX-Evil:%201", &[], "").await;
    assert!(r.header("x-echo-query").is_none());
    assert!(r.header("x-evil").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ip_from_trusted_proxies_only() {
    let gw = Gateway::start(
        r#"
[[routes]]
name = "r"
respond = { status = 200, body = "ok" }
policies = [
  { type = "headers", when = { var = "client_ip", cidr = ["198.51.100.7"] }, response = { set = { "x-from" = "forwarded" } } },
]
"#,
    )
    .await;
    // The peer (127.0.0.1) is not trusted: the header is ignored.
    let r = request(
        gw.port,
        "GET",
        "/",
        &[("x-forwarded-for", "198.51.100.7")],
        "",
    )
    .await;
    assert!(r.header("x-from").is_none());

    let body = r#"
[[routes]]
name = "r"
respond = { status = 200, body = "ok" }
policies = [
  { type = "headers", when = { var = "client_ip", cidr = ["198.51.100.7"] }, response = { set = { "x-from" = "forwarded" } } },
]
"#;
    // Trust loopback: the forwarded address becomes the client.
    let text = std::fs::read_to_string(&gw.config).unwrap().replace(
        "[server]\n",
        "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n",
    );
    let _ = body;
    std::fs::write(&gw.config, text).unwrap();
    eventually("reload with trusted proxies", || async {
        gw.generation() == 2
    })
    .await;
    let r = request(
        gw.port,
        "GET",
        "/",
        &[("x-forwarded-for", "198.51.100.7")],
        "",
    )
    .await;
    assert_eq!(r.header("x-from"), Some("forwarded"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_and_actual_request() {
    let up = Upstream::start("u").await;
    let gw = Gateway::start(&format!(
        r#"
[upstreams.pool]
targets = ["{up}"]

[[routes]]
name = "api"
upstream = "pool"
policies = [
  {{ type = "cors", allow_origins = ["https://app.example.com"], allow_methods = ["GET", "PUT"], allow_headers = ["content-type"], allow_credentials = true, max_age = "10m", expose_headers = ["x-upstream"] }},
]
"#,
        up = up.addr
    ))
    .await;
    let pre = [
        ("origin", "https://app.example.com"),
        ("access-control-request-method", "PUT"),
        ("access-control-request-headers", "Content-Type"),
    ];
    let hits_before = up.hits.load(std::sync::atomic::Ordering::SeqCst);
    let r = request(gw.port, "OPTIONS", "/x", &pre, "").await;
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("access-control-allow-methods"), Some("GET, PUT"));
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    assert_eq!(
        up.hits.load(std::sync::atomic::Ordering::SeqCst),
        hits_before,
        "answered at the gateway"
    );

    let r = request(
        gw.port,
        "OPTIONS",
        "/x",
        &[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "GET"),
        ],
        "",
    )
    .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["errorCode"], "cors_origin_denied");
    assert!(r.header("access-control-allow-origin").is_none());

    let r = request(
        gw.port,
        "GET",
        "/x",
        &[("origin", "https://app.example.com")],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some("x-upstream")
    );
    assert_eq!(r.header("vary"), Some("Origin"));
}
