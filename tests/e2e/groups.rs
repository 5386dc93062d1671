//! Policy groups over real sockets: a group named by several routes, a group attached by tag,
//! a group change reaching every route on reload, and the usage listing (`/admin/usage`,
//! `check --usage`).

use crate::harness::*;

/// Routes `/a` and `/b` name the group `stamp`; `/c` does not. `value` is what it sets.
fn named_by_two(up: &std::net::SocketAddr, value: &str) -> String {
    format!(
        r#"
[upstreams.pool]
targets = ["{up}"]

[policy_groups.stamp]
display_name = "Stamp"
policies = [{{ type = "headers", request = {{ set = {{ "x-group" = "{value}" }} }} }}]

[[routes]]
name = "a"
match = {{ path_prefix = "/a" }}
upstream = "pool"
policies = [{{ group = "stamp" }}]

[[routes]]
name = "b"
match = {{ path_prefix = "/b" }}
upstream = "pool"
policies = [{{ group = "stamp" }}]

[[routes]]
name = "c"
match = {{ path_prefix = "/c" }}
upstream = "pool"
"#
    )
}

/// The `x-group` values the upstream received for a GET of `path`.
async fn seen(port: u16, path: &str) -> serde_json::Value {
    let r = get(port, path).await;
    assert_eq!(r.status, 200, "{path}");
    r.json()["headers"]["x-group"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_named_by_two_routes_applies_on_both() {
    let up = Upstream::start("u").await;
    let gw = Gateway::start(&named_by_two(&up.addr, "one")).await;
    assert_eq!(seen(gw.port, "/a").await, serde_json::json!(["one"]));
    assert_eq!(seen(gw.port, "/b").await, serde_json::json!(["one"]));
    assert_eq!(seen(gw.port, "/c").await, serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_group_changes_every_route_naming_it_on_reload() {
    let up = Upstream::start("u").await;
    let gw = Gateway::start(&named_by_two(&up.addr, "one")).await;
    let before = gw.generation();
    gw.write_body(&named_by_two(&up.addr, "two"));
    eventually("the reload", || async { gw.generation() > before }).await;
    assert_eq!(seen(gw.port, "/a").await, serde_json::json!(["two"]));
    assert_eq!(seen(gw.port, "/b").await, serde_json::json!(["two"]));
}

/// `public` routes get the group's response header; others do not.
fn attached_by_tag() -> &'static str {
    r#"
[policy_groups.public]
policies = [{ type = "headers", response = { set = { "x-public" = "yes" } } }]
attach = { tags = ["public"] }

[[routes]]
name = "open"
tags = ["public"]
match = { path_exact = "/open" }
respond = { status = 204 }

[[routes]]
name = "closed"
tags = ["internal"]
match = { path_exact = "/closed" }
respond = { status = 204 }
"#
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_attached_by_tag_runs_on_the_tagged_routes_only() {
    let gw = Gateway::start(attached_by_tag()).await;
    let open = get(gw.port, "/open").await;
    assert_eq!(open.status, 204);
    assert_eq!(open.header("x-public"), Some("yes"));
    let closed = get(gw.port, "/closed").await;
    assert_eq!(closed.status, 204);
    assert_eq!(closed.header("x-public"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_an_attached_group_sets_is_removed_from_client_requests() {
    let up = Upstream::start("u").await;
    // The policy never runs (its condition is false), yet the header stays the gateway's.
    let gw = Gateway::start(&format!(
        r#"
[upstreams.pool]
targets = ["{up}"]

[policy_groups.ident]
policies = [{{ type = "headers", when = {{ var = "header.x-never", exists = true }}, request = {{ set = {{ "x-user" = "gw" }} }} }}]
attach = {{ routes = ["api"] }}

[[routes]]
name = "api"
upstream = "pool"
"#,
        up = up.addr
    ))
    .await;
    let r = request(gw.port, "GET", "/x", &[("x-user", "admin")], "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["headers"]["x-user"], serde_json::Value::Null);
}

/// A named policy used directly, through a group named by a route, through an attached group
/// and globally.
const USAGE: &str = r#"
[policies.auth]
type = "headers"
display_name = "Auth"
description = "who the caller is"

[policies.unused]
type = "deny"

[policies.everywhere]
type = "headers"

[[global_policies]]
use = "everywhere"

[policy_groups.api]
description = "the API baseline"
policies = [{ use = "auth" }, { type = "cors", allow_origins = ["https://a.test"], display_name = "CORS" }]

[policy_groups.public]
policies = [{ group = "api" }]
attach = { tags = ["public"] }

[[routes]]
name = "orders"
display_name = "Orders"
match = { path_exact = "/orders" }
respond = { status = 204 }
policies = [{ use = "auth" }, { group = "api" }]

[[routes]]
name = "shop"
tags = ["public"]
match = { path_exact = "/shop" }
respond = { status = 204 }
"#;

fn used_by(v: &serde_json::Value) -> Vec<String> {
    v["used_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            format!(
                "{} {}",
                u["route"].as_str().unwrap(),
                u["via"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_usage_lists_which_routes_use_each_policy_and_group() {
    let gw = Gateway::start(USAGE).await;
    let r = get(gw.admin_port, "/admin/usage").await;
    assert_eq!(r.status, 200);
    let v = r.json();
    let auth = &v["policies"]["auth"];
    assert_eq!(auth["display_name"], "Auth");
    assert_eq!(auth["description"], "who the caller is");
    assert_eq!(
        used_by(auth),
        [
            "orders policies",
            "orders policies > group:api",
            "shop attach > group:public > group:api",
        ]
    );
    assert_eq!(
        used_by(&v["policies"]["everywhere"]),
        ["orders global_policies", "shop global_policies"]
    );
    assert!(used_by(&v["policies"]["unused"]).is_empty());
    assert_eq!(v["groups"]["api"]["description"], "the API baseline");
    assert_eq!(
        used_by(&v["groups"]["api"]),
        ["orders policies", "shop attach > group:public"]
    );
    assert_eq!(used_by(&v["groups"]["public"]), ["shop attach"]);
    let shop = &v["routes"][1];
    assert_eq!(shop["name"], "shop");
    assert_eq!(shop["tags"], serde_json::json!(["public"]));
    let chain: Vec<String> = shop["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                s["policy"].as_str().unwrap_or(s["type"].as_str().unwrap()),
                s["via"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        chain,
        [
            "everywhere global_policies",
            "auth attach > group:public > group:api",
            "cors attach > group:public > group:api",
        ]
    );
    assert_eq!(shop["chain"][2]["display_name"], "CORS");
    assert_eq!(v["routes"][0]["display_name"], "Orders");
}

const TOKEN: &str = "usage-admin-token-0123456789abcdef0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_usage_is_behind_the_admin_guard() {
    let tokens = format!(
        "tokens = [\"sha256:{}\"]",
        tokengate::config::content_hash(TOKEN.as_bytes())
    );
    let gw = Gateway::start_admin(&tokens, USAGE).await;
    let a = gw.admin_port;
    assert_eq!(get(a, "/admin/usage").await.status, 401);
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("authorization", bearer.as_str())];
    assert_eq!(
        request(a, "GET", "/admin/usage", &auth, "").await.status,
        200
    );
    let foreign = [("authorization", bearer.as_str()), ("host", "evil.test")];
    assert_eq!(
        request(a, "GET", "/admin/usage", &foreign, "").await.status,
        403
    );
    let post = [
        ("authorization", bearer.as_str()),
        ("content-type", "application/json"),
    ];
    assert_eq!(
        request(a, "POST", "/admin/usage", &post, "").await.status,
        405
    );
}

#[test]
fn check_usage_prints_who_uses_each_policy_and_group() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("usage.toml");
    std::fs::write(
        &cfg,
        format!("[[listeners]]\naddress = \"127.0.0.1:8080\"\n{USAGE}"),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokengate"))
        .args(["check", "--usage"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for want in [
        "policy auth\n  display_name: Auth\n  description: who the caller is\n  used by route orders via policies\n  used by route orders via policies > group:api\n  used by route shop via attach > group:public > group:api\n",
        "policy unused\n  used by no route\n",
        "group public\n  used by route shop via attach\n",
        "route shop\n  tags: public\n  1. everywhere via global_policies\n  2. auth (Auth) via attach > group:public > group:api\n  3. cors (CORS) via attach > group:public > group:api\n",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_config_shows_descriptions_and_display_names() {
    let gw = Gateway::start(USAGE).await;
    let v = get(gw.admin_port, "/admin/config").await.json();
    assert_eq!(v["policies"]["auth"]["display_name"], "Auth");
    assert_eq!(v["policies"]["auth"]["description"], "who the caller is");
    assert_eq!(v["policy_groups"]["api"]["description"], "the API baseline");
    assert_eq!(
        v["policy_groups"]["api"]["policies"][1]["display_name"],
        "CORS"
    );
    assert_eq!(v["policy_groups"]["public"]["attach"]["tags"][0], "public");
    assert_eq!(v["routes"][0]["display_name"], "Orders");
    assert_eq!(v["routes"][1]["tags"][0], "public");
}
