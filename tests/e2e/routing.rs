use crate::harness::*;
use std::collections::HashMap;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_direct_response_and_no_route() {
    let gw = Gateway::start(
        r#"
[[routes]]
name = "hello"
match = { path_exact = "/hello", methods = ["GET"] }
respond = { status = 201, headers = { "content-type" = "text/plain", "x-a" = "1" }, body = "hi" }

[[routes]]
name = "host-only"
match = { hosts = ["*.example.com"] }
respond = { status = 200, body = "wild" }
"#,
    )
    .await;
    let r = get(gw.port, "/hello").await;
    assert_eq!(r.status, 201);
    assert_eq!(&r.body[..], b"hi");
    assert_eq!(r.header("x-a"), Some("1"));
    assert!(r.header("x-request-id").is_some_and(|v| v.len() == 32));

    // Method not in the list: no route.
    let r = request(gw.port, "POST", "/hello", &[], "").await;
    assert_eq!(r.status, 404);
    let v = r.json();
    assert_eq!(v["errorCode"], "no_route");
    assert_eq!(v["statusCode"], 404);

    let r = request(gw.port, "GET", "/x", &[("host", "api.example.com")], "").await;
    assert_eq!(&r.body[..], b"wild");

    // A request id from a peer that is not a trusted proxy is replaced.
    let r = request(gw.port, "GET", "/hello", &[("x-request-id", "abc-123")], "").await;
    let id = r.header("x-request-id").unwrap();
    assert!(id != "abc-123" && id.len() == 32, "{id}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_prefix_strip_and_rewrite() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let gw = Gateway::start(&format!(
        r#"
[upstreams.pool]
targets = ["{a}", "{b}"]

[[routes]]
name = "strip"
match = {{ path_prefix = "/svc" }}
upstream = "pool"
strip_prefix = true

[[routes]]
name = "rewrite"
match = {{ path_exact = "/old" }}
upstream = "pool"
rewrite_path = "/new"
"#,
        a = a.addr,
        b = b.addr
    ))
    .await;
    let mut seen = HashMap::new();
    for _ in 0..10 {
        let r = get(gw.port, "/svc/items/7?x=1").await;
        assert_eq!(r.status, 200);
        let v = r.json();
        assert_eq!(v["path"], "/items/7");
        assert_eq!(v["query"], "x=1");
        assert_eq!(v["headers"]["x-forwarded-for"][0], "127.0.0.1");
        *seen
            .entry(v["upstream"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    assert_eq!(seen.get("a"), Some(&5), "{seen:?}");
    assert_eq!(seen.get("b"), Some(&5), "{seen:?}");

    let r = get(gw.port, "/old").await;
    assert_eq!(r.json()["path"], "/new");
    let r = get(gw.port, "/svc").await;
    assert_eq!(r.json()["path"], "/");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_upstream_is_ejected_by_health_checks() {
    let a = Upstream::start("a").await;
    let mut b = Upstream::start("b").await;
    let gw = Gateway::start(&format!(
        r#"
[upstreams.pool]
targets = ["{a}", "{b}"]
[upstreams.pool.health_check]
kind = "tcp"
interval = "100ms"
timeout = "200ms"

[[routes]]
name = "all"
upstream = "pool"
"#,
        a = a.addr,
        b = b.addr
    ))
    .await;
    b.stop();
    // Once the check has run, every request goes to "a".
    eventually("b ejected", || async {
        let gw_port = gw.port;
        let mut all_a = true;
        for _ in 0..4 {
            let r = get(gw_port, "/").await;
            all_a &= r.status == 200 && r.json()["upstream"] == "a";
        }
        all_a
    })
    .await;
    let want = format!(
        "tokengate_upstream_healthy{{target=\"{}\",upstream=\"pool\"}} 0",
        b.addr
    );
    eventually("health gauge", || async {
        String::from_utf8_lossy(&get(gw.admin_port, "/metrics").await.body).contains(&want)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hash_sticks_to_one_target() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let gw = Gateway::start(&format!(
        r#"
[upstreams.pool]
targets = ["{a}", "{b}"]
selection = "consistent_hash"
hash_key = "header.x-user"

[[routes]]
name = "all"
upstream = "pool"
"#,
        a = a.addr,
        b = b.addr
    ))
    .await;
    let mut distinct = std::collections::HashSet::new();
    for user in ["u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8"] {
        let first = request(gw.port, "GET", "/", &[("x-user", user)], "")
            .await
            .json()["upstream"]
            .clone();
        for _ in 0..3 {
            let again = request(gw.port, "GET", "/", &[("x-user", user)], "")
                .await
                .json()["upstream"]
                .clone();
            assert_eq!(first, again, "user {user} moved");
        }
        distinct.insert(first.to_string());
    }
    assert_eq!(distinct.len(), 2, "8 users should spread over both targets");
}
