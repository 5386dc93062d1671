//! Where `jwt_auth` reads the token: the `sources` of `jwt_verify`, spelled the same, with the
//! same refusal of two different tokens, over real sockets with tokens the service issued.

use crate::harness::*;
use crate::token::{cc, embedded, hash};
use std::path::Path;

/// A token service with one client (`svc`/`pw`) and one jwt_auth route per source setup:
/// `/c` cookie then bearer header, `/f` form field (token removed before the upstream), `/d`
/// the default sources, `/q` bearer header then query parameter.
fn config(dir: &Path, upstream: std::net::SocketAddr) -> String {
    format!(
        r#"
[upstreams.u]
targets = ["{upstream}"]

[[routes]]
name = "cookie"
match = {{ path_prefix = "/c" }}
upstream = "u"
policies = [{{ type = "jwt_auth", sources = [{{ cookie = "at" }}, {{ header = "authorization", prefix = "Bearer " }}] }}]

[[routes]]
name = "form"
match = {{ path_prefix = "/f" }}
upstream = "u"
policies = [{{ type = "jwt_auth", sources = [{{ form = "access_token" }}], clear_authorization = true }}]

[[routes]]
name = "default"
match = {{ path_prefix = "/d" }}
upstream = "u"
policies = [{{ type = "jwt_auth" }}]

[[routes]]
name = "query"
match = {{ path_prefix = "/q" }}
upstream = "u"
policies = [{{ type = "jwt_auth", sources = [{{ header = "authorization", prefix = "Bearer " }}, {{ query = "access_token" }}] }}]

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
        h = hash("pw"),
    )
}

struct World {
    gw: Gateway,
    _up: Upstream,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let up = Upstream::start("u").await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&config(dir.path(), up.addr)).await;
    World {
        gw,
        _up: up,
        _dir: dir,
    }
}

async fn token(w: &World) -> String {
    let r = cc(w.gw.port, "svc", "pw", None).await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    r.json()["access_token"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_in_the_cookie_is_accepted() {
    let w = world().await;
    let t = token(&w).await;
    let cookie = format!("theme=dark; at={t}");
    let r = request(w.gw.port, "GET", "/c/x", &[("cookie", &cookie)], "").await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["headers"]["x-authenticated-user"][0], "svc");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_in_a_form_field_is_accepted_and_removed_before_the_upstream() {
    let w = world().await;
    let t = token(&w).await;
    let body = format!("a=1&access_token={t}&b=2");
    let ct = [("content-type", "application/x-www-form-urlencoded")];
    let r = request(w.gw.port, "POST", "/f/x", &ct, &body).await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["body"], "a=1&b=2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_token_is_not_read_unless_a_query_source_is_listed() {
    let w = world().await;
    let t = token(&w).await;
    let r = get(w.gw.port, &format!("/d/x?access_token={t}")).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["errorCode"], "token_missing");
    let r = get(w.gw.port, &format!("/q/x?access_token={t}")).await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_tokens_in_the_header_and_the_cookie_are_refused_as_ambiguous() {
    let w = world().await;
    let (a, b) = (token(&w).await, token(&w).await);
    assert_ne!(a, b);
    let cookie = format!("at={a}");
    let bearer = format!("Bearer {b}");
    let h = [
        ("cookie", cookie.as_str()),
        ("authorization", bearer.as_str()),
    ];
    let r = request(w.gw.port, "GET", "/c/x", &h, "").await;
    assert_eq!(r.status, 400);
    // The code jwt_verify answers for the same request.
    assert_eq!(r.json()["errorCode"], "token_ambiguous");
}

#[test]
fn bad_source_lists_are_refused_with_their_paths() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    let body = config(dir.path(), "127.0.0.1:1".parse().unwrap())
        .replace(
            r#"sources = [{ cookie = "at" }, { header = "authorization", prefix = "Bearer " }]"#,
            "sources = []",
        )
        .replace(
            r#"sources = [{ form = "access_token" }]"#,
            r#"sources = [{ form = "a", cookie = "b" }]"#,
        );
    let listener = "[[listeners]]\naddress = \"127.0.0.1:1\"\n";
    std::fs::write(&file, format!("{listener}{body}")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokengate"))
        .arg("check")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "routes[0].policies[0].sources: list at least one token source",
        "routes[1].policies[0].sources[0]: a token source is exactly one of",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
}
