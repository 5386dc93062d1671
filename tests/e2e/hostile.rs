//! The front door under hostile input, over raw TCP where clients like curl cannot send it:
//! path, method and Host spellings that walk around route policies (from CVEs of other
//! proxies), unbounded and slow heads, forged gateway headers, forwarding headers from
//! untrusted peers, Content-Length lists, upgrades, and configs that deploy a hole. Each case
//! asserts what the upstream received (or that it received nothing).

use crate::harness::*;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "0123456789abcdef0123456789abcdef";

/// Send raw bytes on a fresh connection and read until the peer closes (bounded).
async fn raw(port: u16, req: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    // The gateway may answer and close before a large request is written: ignore that.
    let _ = s.write_all(req).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn status(resp: &str) -> u16 {
    resp.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The JSON the echo upstream answered with.
fn echoed(resp: &str) -> serde_json::Value {
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|_| panic!("no echo in {resp:?}"))
}

fn get_raw(target: &str, extra: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nhost: 127.0.0.1\r\n{extra}connection: close\r\n\r\n")
        .into_bytes()
}

/// `/admin` needs a token, `/svc` strips its prefix, everything else is public; a host route
/// for `internal.example` needs a token too.
async fn setup(extra: &str) -> (Gateway, Upstream, Upstream) {
    let admin = Upstream::start("admin").await;
    let public = Upstream::start("public").await;
    let gw = Gateway::start(&format!(
        r#"
{extra}
[upstreams.admin]
targets = ["{a}"]
[upstreams.public]
targets = ["{p}"]

[policies.verify]
type = "jwt_verify"
algorithms = ["HS256"]
keys = {{ secret = "{SECRET}" }}

[[routes]]
name = "internal"
match = {{ hosts = ["internal.example"] }}
upstream = "admin"
policies = [{{ use = "verify" }}]

[[routes]]
name = "admin"
match = {{ path_prefix = "/admin" }}
upstream = "admin"
policies = [{{ use = "verify" }}]

[[routes]]
name = "writes"
match = {{ path_prefix = "/w", methods = ["POST"] }}
upstream = "admin"
policies = [{{ use = "verify" }}]

[[routes]]
name = "svc"
match = {{ path_prefix = "/svc" }}
upstream = "public"
strip_prefix = true

[[routes]]
name = "ws"
match = {{ path_prefix = "/ws" }}
upstream = "public"
websocket = true

[[routes]]
name = "public"
upstream = "public"
"#,
        a = admin.addr,
        p = public.addr
    ))
    .await;
    (gw, admin, public)
}

#[tokio::test]
async fn path_spellings_never_reach_a_protected_upstream_without_a_token() {
    let (gw, admin, public) = setup("").await;
    // Each is refused (400) or lands on the protected route (401); nothing is proxied.
    let spellings = [
        "//admin/x",
        "///admin/x",
        "/./admin/x",
        "/public/../admin/x",
        "/public/%2e%2e/admin/x",
        "/public/%2E%2E/admin/x",
        "/public/.%2e/admin/x",
        "/public/%2e./admin/x",
        "/%2e%2e/admin/x",
        "/%61dmin/x",
        "/%61%64%6d%69%6e/x",
        "/public/..;/admin/x",
        "/admin;/x",
        "/admin;jsessionid=1/x",
        "/svc/../admin/x",
        "/svc/..%2Fadmin/x",
        "/public%2F..%2Fadmin/x",
        "/public/..%5Cadmin/x",
        "/public/..\\admin/x",
        "/admin%2Fx",
        "/admin%00/x",
        "/admin%0d%0a/x",
        "/admin/./x",
        "/admin/x/..",
        "/public/./../admin/x",
        "/public/%2e%2e%2fadmin/x",
        "/ad%6din/../admin/x",
        "admin/x",
        "*",
        "http://127.0.0.1/public/../admin/x",
        "HTTP://127.0.0.1//admin/x",
    ];
    for p in spellings {
        let r = raw(gw.port, &get_raw(p, "")).await;
        let s = status(&r);
        assert!(s == 400 || s == 401, "{p}: {s} {r}");
    }
    assert_eq!(admin.hits.load(Ordering::SeqCst), 0);
    assert_eq!(public.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_upstream_receives_the_canonical_path_and_the_query_as_sent() {
    let (gw, _admin, _public) = setup("").await;
    let r = raw(
        gw.port,
        &get_raw("/public/a/./b//c/%7e/%3a?q=%2e&r=a/../b", ""),
    )
    .await;
    assert_eq!(status(&r), 200, "{r}");
    let e = echoed(&r);
    assert_eq!(e["path"], "/public/a/b/c/~/%3A");
    assert_eq!(e["query"], "q=%2e&r=a/../b");
}

#[tokio::test]
async fn strip_prefix_works_on_the_canonical_path() {
    let (gw, _admin, _public) = setup("").await;
    let r = raw(gw.port, &get_raw("/svc/./x/../y", "")).await;
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(echoed(&r)["path"], "/y");
}

#[tokio::test]
async fn path_rules_are_configurable() {
    let (gw, _admin, _public) = setup(
        "[front_door]\nmerge_slashes = false\nescaped_slash = \"keep\"\npath_parameters = \"strip\"",
    )
    .await;
    let r = raw(gw.port, &get_raw("/public//a%2fb;x=1/c", "")).await;
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(echoed(&r)["path"], "/public//a%2Fb/c");
}

#[tokio::test]
async fn method_spellings_cannot_escape_a_method_rule() {
    let (gw, admin, public) = setup("").await;
    for m in ["post", "Post", "pOST"] {
        let r = raw(
            gw.port,
            format!("{m} /w HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await;
        assert_eq!(status(&r), 400, "{m}: {r}");
        assert!(r.contains("invalid_method"), "{r}");
    }
    let r = raw(
        gw.port,
        b"POST /w HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status(&r), 401, "{r}");
    assert_eq!(admin.hits.load(Ordering::SeqCst), 0);
    assert_eq!(public.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn host_spellings_land_on_the_host_route() {
    let (gw, admin, public) = setup("").await;
    let port = gw.port;
    for h in [
        "internal.example".to_string(),
        "INTERNAL.Example".to_string(),
        "internal.example.".to_string(),
        "internal.example.:80".to_string(),
        format!("internal.example:{port}"),
        format!("Internal.Example.:{port}"),
    ] {
        let r = raw(
            port,
            format!("GET /x HTTP/1.1\r\nhost: {h}\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        assert_eq!(status(&r), 401, "{h}: {r}");
    }
    assert_eq!(admin.hits.load(Ordering::SeqCst), 0);
    assert_eq!(public.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn malformed_or_missing_hosts_are_refused() {
    let (gw, _admin, public) = setup("").await;
    for head in [
        "host: internal.example:abc\r\n",
        "host: a.example, internal.example\r\n",
        "host: user@internal.example\r\n",
        "host: internal..example\r\n",
        "host: a\r\nhost: internal.example\r\n",
        "",
    ] {
        let r = raw(
            gw.port,
            format!("GET /x HTTP/1.1\r\n{head}connection: close\r\n\r\n").as_bytes(),
        )
        .await;
        assert_eq!(status(&r), 400, "{head:?}: {r}");
    }
    assert_eq!(public.hits.load(Ordering::SeqCst), 0);
    // HTTP/1.0 may omit Host.
    let r = raw(gw.port, b"GET /x HTTP/1.0\r\n\r\n").await;
    assert_eq!(status(&r), 200, "{r}");
}

#[tokio::test]
async fn a_large_header_is_refused_with_431() {
    let (gw, _admin, public) = setup("").await;
    let big = "a".repeat(1 << 20);
    let r = raw(gw.port, &get_raw("/x", &format!("x-big: {big}\r\n"))).await;
    assert_eq!(status(&r), 431, "{}", &r[..r.len().min(200)]);
    let r = raw(
        gw.port,
        &get_raw("/x", &format!("x-big: {}\r\n", "a".repeat(33 * 1024))),
    )
    .await;
    assert_eq!(status(&r), 431);
    assert_eq!(public.hits.load(Ordering::SeqCst), 0);
    // Just under the limit passes.
    let r = raw(
        gw.port,
        &get_raw("/x", &format!("x-big: {}\r\n", "a".repeat(30 * 1024))),
    )
    .await;
    assert_eq!(status(&r), 200);
}

#[tokio::test]
async fn too_many_headers_are_refused_with_431() {
    let (gw, _admin, public) = setup("").await;
    let many: String = (0..101).map(|i| format!("x-h{i}: v\r\n")).collect();
    let r = raw(gw.port, &get_raw("/x", &many)).await;
    assert_eq!(status(&r), 431, "{r}");
    assert_eq!(public.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_long_request_line_is_refused_with_414() {
    let (gw, _admin, public) = setup("").await;
    let r = raw(gw.port, &get_raw(&format!("/{}", "a".repeat(9000)), "")).await;
    assert_eq!(status(&r), 414, "{}", &r[..r.len().min(200)]);
    assert_eq!(public.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_slow_head_is_cut_off_with_408() {
    let (gw, _admin, public) = setup("[front_door]\nheader_timeout = \"1s\"").await;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", gw.port))
        .await
        .unwrap();
    s.write_all(b"GET /x HTTP/1.1\r\nhost: a\r\n")
        .await
        .unwrap();
    // Keep trickling bytes: each one arrives well within any per-read timeout.
    let mut out = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        for i in 0..200 {
            if s.write_all(format!("x-{i}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
            let mut b = [0u8; 512];
            match tokio::time::timeout(Duration::from_millis(100), s.read(&mut b)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => out.extend_from_slice(&b[..n]),
                Err(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the head was never cut off");
    let r = String::from_utf8_lossy(&out);
    assert_eq!(status(&r), 408, "{r}");
    assert_eq!(public.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_idle_keepalive_connection_is_closed() {
    let (gw, _admin, _public) = setup("[front_door]\nidle_timeout = \"1s\"").await;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", gw.port))
        .await
        .unwrap();
    s.write_all(b"GET /x HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    // Read the first response, then wait: the gateway must close the idle connection.
    let mut out = Vec::new();
    let res = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out)).await;
    assert!(res.is_ok(), "the idle connection was never closed");
    assert_eq!(status(&String::from_utf8_lossy(&out)), 200);
}

/// A route whose identity header is set by a policy that is skipped, shadowed or disabled.
async fn forged_setup(policy: &str) -> (Gateway, Upstream) {
    let up = Upstream::start("up").await;
    let gw = Gateway::start(&format!(
        r#"
[upstreams.up]
targets = ["{a}"]

[[routes]]
name = "r"
upstream = "up"
policies = [{policy}]
"#,
        a = up.addr
    ))
    .await;
    (gw, up)
}

const FORGED: &str = "x-user: admin\r\nX_User: admin\r\nx_USER: admin\r\nx-payload: e30\r\n";

fn assert_no_forged(resp: &str) {
    assert_eq!(status(resp), 200, "{resp}");
    let h = &echoed(resp)["headers"];
    for n in ["x-user", "x_user", "x-payload"] {
        assert!(h.get(n).is_none(), "{n} reached the upstream: {h}");
    }
}

fn verify_policy(extra: &str) -> String {
    format!(
        r#"{{ type = "jwt_verify", algorithms = ["HS256"], keys = {{ secret = "{SECRET}" }}, claims_to_headers = [{{ claim = "sub", header = "X-User" }}], payload_header = "x-payload"{extra} }}"#
    )
}

#[tokio::test]
async fn gateway_headers_are_stripped_when_the_policy_is_skipped() {
    let (gw, _up) = forged_setup(&verify_policy(
        r#", when = { var = "header.x-check", exists = true }"#,
    ))
    .await;
    assert_no_forged(&raw(gw.port, &get_raw("/x", FORGED)).await);
}

#[tokio::test]
async fn gateway_headers_are_stripped_in_shadow_mode() {
    let (gw, _up) = forged_setup(&verify_policy(r#", enabled = "shadow""#)).await;
    assert_no_forged(
        &raw(
            gw.port,
            &get_raw("/x", &format!("{FORGED}authorization: Bearer nope\r\n")),
        )
        .await,
    );
}

#[tokio::test]
async fn gateway_headers_are_stripped_when_the_policy_is_disabled() {
    let (gw, _up) = forged_setup(&verify_policy(", enabled = false")).await;
    assert_no_forged(&raw(gw.port, &get_raw("/x", FORGED)).await);
}

#[tokio::test]
async fn other_headers_pass() {
    let (gw, _up) = forged_setup(&verify_policy(", enabled = false")).await;
    let r = raw(gw.port, &get_raw("/x", "x-users: a\r\nx_other: b\r\n")).await;
    let h = &echoed(&r)["headers"];
    assert_eq!(h["x-users"][0], "a");
    assert_eq!(h["x_other"][0], "b");
}

const FORWARDING: &str = "forwarded: for=6.6.6.6;host=evil;proto=https\r\nx-real-ip: 6.6.6.6\r\nx-forwarded-host: evil\r\nx-forwarded-proto: https\r\nx-forwarded-for: 6.6.6.6\r\nX_Forwarded_For: 6.6.6.6\r\nx-request-id: chosen-by-client\r\n";

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_peer_are_replaced() {
    let (gw, _admin, _public) = setup("").await;
    let r = raw(gw.port, &get_raw("/x", FORWARDING)).await;
    let h = &echoed(&r)["headers"];
    for n in [
        "forwarded",
        "x-real-ip",
        "x-forwarded-host",
        "x_forwarded_for",
    ] {
        assert!(h.get(n).is_none(), "{n} passed: {h}");
    }
    assert_eq!(h["x-forwarded-for"][0], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"][0], "http");
    assert_ne!(h["x-request-id"][0], "chosen-by-client");
    assert!(!r
        .to_ascii_lowercase()
        .contains("x-request-id: chosen-by-client"));
}

#[tokio::test]
async fn forwarding_headers_from_a_trusted_proxy_pass() {
    let (gw, _admin, _public) = setup("").await;
    let text = std::fs::read_to_string(&gw.config).unwrap().replace(
        "reload_poll_interval",
        "trusted_proxies = [\"127.0.0.1/32\"]\nreload_poll_interval",
    );
    let tmp = gw.dir.path().join("next.toml");
    std::fs::write(&tmp, text).unwrap();
    let g = gw.generation();
    std::fs::rename(&tmp, &gw.config).unwrap();
    eventually("reload", || async { gw.generation() > g }).await;
    let r = raw(gw.port, &get_raw("/x", FORWARDING)).await;
    let h = &echoed(&r)["headers"];
    assert_eq!(h["x-request-id"][0], "chosen-by-client");
    assert_eq!(h["x-forwarded-proto"][0], "https");
    assert_eq!(h["x-forwarded-host"][0], "evil");
    assert_eq!(h["x-forwarded-for"][0], "6.6.6.6, 127.0.0.1");
    assert!(h.get("x_forwarded_for").is_none(), "{h}");
}

#[tokio::test]
async fn content_length_lists_are_collapsed_or_refused() {
    let (gw, _admin, public) = setup("").await;
    let r = raw(
        gw.port,
        b"POST /x HTTP/1.1\r\nhost: a\r\ncontent-length: 5, 5\r\nconnection: close\r\n\r\nhello",
    )
    .await;
    assert_eq!(status(&r), 200, "{r}");
    let e = echoed(&r);
    assert_eq!(e["headers"]["content-length"], serde_json::json!(["5"]));
    assert_eq!(e["body"], "hello");
    let hits = public.hits.load(Ordering::SeqCst);
    let r = raw(
        gw.port,
        b"POST /x HTTP/1.1\r\nhost: a\r\ncontent-length: 5, 6\r\nconnection: close\r\n\r\nhello",
    )
    .await;
    assert_eq!(status(&r), 400, "{r}");
    assert_eq!(public.hits.load(Ordering::SeqCst), hits);
}

#[tokio::test]
async fn upgrades_pass_only_on_routes_that_allow_them() {
    let (gw, _admin, _public) = setup("").await;
    let up = "upgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n";
    let r = raw(
        gw.port,
        format!("GET /x HTTP/1.1\r\nhost: a\r\n{up}\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status(&r), 200, "{r}");
    let h = &echoed(&r)["headers"];
    assert!(h.get("upgrade").is_none(), "{h}");
    let r = raw(
        gw.port,
        format!("GET /ws HTTP/1.1\r\nhost: a\r\n{up}\r\n").as_bytes(),
    )
    .await;
    assert_eq!(echoed(&r)["headers"]["upgrade"][0], "websocket");
}

#[tokio::test]
async fn token_endpoint_lookalikes_are_never_proxied() {
    let up = Upstream::start("up").await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&format!(
        r#"
[upstreams.up]
targets = ["{a}"]

[[routes]]
name = "all"
upstream = "up"

[token_service]
issuer = "https://issuer.test"
require_tls = false
signing_alg = "ES256"
key_dir = "{d}/keys"
[token_service.store]
path = "{d}/tokens.redb"
"#,
        a = up.addr,
        d = dir.path().display()
    ))
    .await;
    for p in [
        "/oauth2/token/",
        "//oauth2/token",
        "/OAUTH2/token",
        "/oauth2/Token/",
        "/./oauth2/token",
    ] {
        let r = raw(
            gw.port,
            format!(
                "POST {p} HTTP/1.1\r\nhost: a\r\nauthorization: Basic YTpi\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 29\r\nconnection: close\r\n\r\ngrant_type=client_credentials"
            )
            .as_bytes(),
        )
        .await;
        let s = status(&r);
        assert!(s == 401 || s == 404 || s == 400, "{p}: {r}");
    }
    assert_eq!(up.hits.load(Ordering::SeqCst), 0);
}

#[test]
fn jwe_only_with_public_key_management_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = tokengate::jose::Jwk::generate("RSA", Some(2048), None)
        .unwrap()
        .with_kid("k");
    let jwks = serde_json::json!({"keys": [key.to_value(true).unwrap()]}).to_string();
    let cfg = |ack: &str| {
        format!(
            r#"
[[listeners]]
address = "127.0.0.1:1"
[[routes]]
name = "r"
respond = {{ status = 200 }}
policies = [{{ type = "jwt_verify", forms = ["jwe"], key_algorithms = ["RSA-OAEP-256"], encryptions = ["A256GCM"], decryption_keys = {{ jwks = '{jwks}' }}{ack} }}]
"#
        )
    };
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, cfg("")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokengate"))
        .arg("check")
        .arg(&bad)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("routes[0].policies[0].key_algorithms[0]"),
        "{text}"
    );
    let ok = dir.path().join("ok.toml");
    std::fs::write(&ok, cfg(", allow_unsigned_jwe = true")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokengate"))
        .arg("check")
        .arg(&ok)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
