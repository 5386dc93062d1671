use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_render_custom_errors() {
    let up = Upstream::start("u").await;
    // Held, never listening: connections to it are refused.
    let dead_port = reserve_port();
    let dead = dead_port.port;
    let gw = Gateway::start(&format!(
        r#"
[errors]
headers = {{ "x-error-source" = "gateway" }}

[upstreams.dead]
targets = ["127.0.0.1:{dead}"]
connect_timeout = "500ms"

[upstreams.slow]
targets = ["{up}"]
read_timeout = "200ms"

[[routes]]
name = "dead"
match = {{ path_prefix = "/dead" }}
upstream = "dead"
[routes.errors]
content_type = "application/problem+json"
body = '{{"type":"about:blank","status":{{status}},"code":"{{code}}","detail":"{{message}}"}}'
[routes.errors.codes.upstream_connect_failed]
message = "backend is down"

[[routes]]
name = "slow"
match = {{ path_prefix = "/slow" }}
upstream = "slow"
[routes.errors.codes.upstream_timeout]
status = 503
error_code = "backend_slow"
"#,
        up = up.addr
    ))
    .await;
    let r = get(gw.port, "/dead").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(r.header("x-error-source"), Some("gateway"));
    let v = r.json();
    assert_eq!(v["status"], 502);
    assert_eq!(v["code"], "upstream_connect_failed");
    assert_eq!(v["detail"], "backend is down");

    let r = get(gw.port, "/slow?ms=1500").await;
    assert_eq!(r.status, 503);
    let v = r.json();
    assert_eq!(v["errorCode"], "backend_slow");
    assert_eq!(v["statusCode"], 503);
    assert_eq!(r.header("x-error-source"), Some("gateway"));

    // Default 504 without the override (global headers still apply).
    gw.write_body(&format!(
        r#"
[upstreams.slow]
targets = ["{up}"]
read_timeout = "200ms"

[[routes]]
name = "slow"
upstream = "slow"
"#,
        up = up.addr
    ));
    eventually("reloaded", || async { gw.generation() == 2 }).await;
    let r = get(gw.port, "/slow?ms=1500").await;
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["errorCode"], "upstream_timeout");

    // The access log has the requests, and no query string (it may carry tokens).
    let log_path = gw.dir.path().join("access.log");
    eventually("access log written", || async {
        std::fs::read_to_string(&log_path).is_ok_and(|s| s.lines().count() >= 3)
    })
    .await;
    let log = std::fs::read_to_string(&log_path).unwrap();
    let first: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert_eq!(first["route"], "dead");
    assert_eq!(first["status"], 502);
    assert_eq!(first["error_code"], "upstream_connect_failed");
    assert!(!log.contains("ms=1500"), "query strings are not logged");
}
