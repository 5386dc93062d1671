use crate::harness::*;
use std::sync::atomic::Ordering;

/// `text` is what this config generation answers with: the `hello` body and, on proxied
/// answers, the `x-snapshot` response header.
fn body(text: &str, up: &std::net::SocketAddr) -> String {
    format!(
        r#"
[upstreams.pool]
targets = ["{up}"]
read_timeout = "5s"

[[routes]]
name = "slow"
match = {{ path_prefix = "/slow" }}
upstream = "pool"
policies = [{{ type = "headers", response = {{ set = {{ "x-snapshot" = "{text}" }} }} }}]

[[routes]]
name = "hello"
match = {{ path_exact = "/hello" }}
respond = {{ status = 200, body = "{text}" }}
"#
    )
}

/// A request keeps the snapshot it started on: held open at the upstream while a reload lands,
/// its answer still carries the old config's response header; the next request gets the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_request_finishes_on_its_snapshot() {
    let up = Upstream::start("u").await;
    let gw = Gateway::start(&body("v1", &up.addr)).await;
    let port = gw.port;
    let held = tokio::spawn(async move { get(port, "/slow/hold").await });
    eventually("the request is held at the upstream", || async {
        up.hits.load(Ordering::SeqCst) == 1
    })
    .await;

    gw.write_body(&body("v2", &up.addr));
    eventually("v2 loaded", || async { gw.generation() == 2 }).await;
    let after = get(gw.port, "/slow/after").await;
    assert_eq!(
        after.header("x-snapshot"),
        Some("v2"),
        "a new request sees v2"
    );
    assert!(!held.is_finished(), "the held request is still in flight");

    up.release();
    let r = held.await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("x-snapshot"),
        Some("v1"),
        "finished on its own snapshot"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_change_swaps_and_bad_config_keeps_serving() {
    let up = Upstream::start("u").await;
    let gw = Gateway::start(&body("v1", &up.addr)).await;
    assert_eq!(&get(gw.port, "/hello").await.body[..], b"v1");

    gw.write_body(&body("v2", &up.addr));
    eventually("v2 served", || async {
        &get(gw.port, "/hello").await.body[..] == b"v2"
    })
    .await;
    assert_eq!(gw.generation(), 2);

    // A broken config: refused with its path, old config keeps serving.
    gw.write_body(
        r#"
[[routes]]
name = "hello"
match = { path_regex = "(" }
respond = { status = 200, body = "broken" }
"#,
    );
    eventually("reload refused", || async {
        gw.state.status().reloads_failed == 1
    })
    .await;
    assert_eq!(&get(gw.port, "/hello").await.body[..], b"v2");
    let st = get(gw.admin_port, "/admin/config/status").await.json();
    assert_eq!(st["generation"], 2);
    let err = st["last_error"][0].as_str().unwrap();
    assert!(
        err.starts_with("routes[0].match.path_regex: invalid regex"),
        "{err}"
    );
    let m = String::from_utf8_lossy(&get(gw.admin_port, "/metrics").await.body).to_string();
    assert!(
        m.contains("tokengate_config_reloads_total{result=\"failed\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("tokengate_config_reloads_total{result=\"ok\"} 1"),
        "{m}"
    );

    // Unknown keys are refused too, with the TOML path.
    gw.write_body("[[routes]]\nname = \"x\"\nrespnd = {}\n");
    eventually("second refusal", || async {
        gw.state.status().reloads_failed == 2
    })
    .await;
    let st = get(gw.admin_port, "/admin/config/status").await.json();
    let err = st["last_error"][0].as_str().unwrap();
    assert!(err.contains("routes[0]") && err.contains("respnd"), "{err}");
    assert_eq!(&get(gw.port, "/hello").await.body[..], b"v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_reload_endpoint_and_restart_required() {
    let up = Upstream::start("u").await;
    let gw = Gateway::start(&body("v1", &up.addr)).await;
    // Change a restart-only setting and the content; disable polling to use the endpoint.
    let text = std::fs::read_to_string(&gw.config)
        .unwrap()
        .replace("threads = 2", "threads = 3")
        .replace(
            "reload_poll_interval = \"100ms\"",
            "reload_poll_interval = \"0s\"",
        )
        .replace("body = \"v1\"", "body = \"v3\"");
    std::fs::write(&gw.config, text).unwrap();
    let r = admin_post(gw.admin_port, "/admin/reload").await;
    // The poller may have won the race; either way v3 is applied.
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(&get(gw.port, "/hello").await.body[..], b"v3");
    let st = get(gw.admin_port, "/admin/config/status").await.json();
    assert_eq!(st["restart_required"], serde_json::json!(["server"]));

    std::fs::write(&gw.config, "not = [valid").unwrap();
    let r = admin_post(gw.admin_port, "/admin/reload").await;
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["result"], "refused");
    assert_eq!(&get(gw.port, "/hello").await.body[..], b"v3");

    // Health, readiness, config export with secrets redacted.
    assert_eq!(get(gw.admin_port, "/healthz").await.status, 200);
    assert_eq!(get(gw.admin_port, "/readyz").await.status, 200);
    gw.state.set_ready("jwks:idp", false);
    let r = get(gw.admin_port, "/readyz").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["waiting_for"], serde_json::json!(["jwks:idp"]));
    gw.state.set_ready("jwks:idp", true);
    assert_eq!(get(gw.admin_port, "/readyz").await.status, 200);
    let cfg = get(gw.admin_port, "/admin/config").await.json();
    assert_eq!(cfg["routes"][1]["name"], "hello");
    assert_eq!(get(gw.admin_port, "/nope").await.status, 404);
}

#[test]
fn redaction_hides_secrets() {
    let mut v = serde_json::json!({"a": {"client_secret": "s", "key": "k", "name": "n", "list": [{"password": "p"}], "keys": {"jwks": "{\"d\":\"x\"}"}}});
    tokengate::admin::redact(&mut v);
    assert_eq!(v["a"]["client_secret"], "[redacted]");
    assert_eq!(v["a"]["key"], "[redacted]");
    assert_eq!(v["a"]["name"], "n");
    assert_eq!(v["a"]["list"][0]["password"], "[redacted]");
    assert_eq!(
        v["a"]["keys"]["jwks"], "[redacted]",
        "inline key sets may hold private keys"
    );
}

/// Many routes reloaded again and again under traffic: every request is answered by a complete
/// snapshot (no error, no 404 while a new one compiles), the last reload's value is served, and
/// the replaced snapshots are freed by the maintenance task once traffic has moved on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_of_many_routes_under_traffic_fail_no_request() {
    const ROUTES: usize = 2_000;
    const RELOADS: usize = 10;
    let up = Upstream::start("u").await;
    let config = |gen: usize| {
        let mut t = format!("[upstreams.pool]\ntargets = [\"{}\"]\n", up.addr);
        for i in 0..ROUTES {
            let v = if i == ROUTES - 1 {
                format!("g{gen}")
            } else {
                format!("r{i}")
            };
            t.push_str(&format!(
                "[[routes]]\nname = \"r{i}\"\nmatch = {{ path_prefix = \"/r/{i}\" }}\nupstream = \"pool\"\n\
                 policies = [{{ type = \"headers\", response = {{ set = {{ \"x-snapshot\" = \"{v}\" }} }} }}]\n"
            ));
        }
        t
    };
    let gw = Gateway::start(&config(0)).await;
    let path = format!("/r/{}/x", ROUTES - 1);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, path, port) = (stop.clone(), path.clone(), gw.port);
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0u32, Vec::new());
                while !stop.load(Ordering::SeqCst) {
                    match try_get(port, &path).await {
                        Ok(r) if r.status == 200 && r.header("x-snapshot").is_some() => ok += 1,
                        Ok(r) => failed.push(format!("status {}", r.status)),
                        Err(e) => failed.push(e),
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    for g in 1..=RELOADS {
        gw.write_body(&config(g));
        let r = admin_post(gw.admin_port, "/admin/reload").await;
        assert_eq!(r.status, 200, "reload {g}: {:?}", r.body);
    }
    let last = format!("g{RELOADS}");
    eventually("the last reload is served", || async {
        get(gw.port, &path).await.header("x-snapshot") == Some(last.as_str())
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let mut answered = 0;
    for c in clients {
        let (ok, failed) = c.await.unwrap();
        assert!(failed.is_empty(), "failed requests: {failed:?}");
        answered += ok;
    }
    assert!(answered > 0);
    eventually("replaced snapshots freed", || async {
        gw.state.retired() == 0
    })
    .await;
}
