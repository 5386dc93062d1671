//! The token service and jwt_auth over real sockets: grants through a real OAuth2 client
//! (Authlib, tests/fixtures/oauth_client.py), issued JWTs verified by joserfc, and the
//! RFC 6749 / 7009 / 7662 / 7523 cases of the security catalogue (O1-O30).

use crate::harness::*;
use serde_json::{json, Value};
use std::path::Path;
use tokengate::identity::secret::SecretHash;
use tokengate::jose::{Alg, Jwk};

pub const ISSUER: &str = "https://issuer.test";
pub const WEIRD_ID: &str = "we:rd %+é";
pub const WEIRD_SECRET: &str = "s3:cr%t+ é/x";

/// Run a batch through the Authlib client.
pub fn oauth(reqs: &[Value]) -> Vec<Value> {
    run_script("oauth_client.py", reqs)
}

pub fn hash(secret: &str) -> String {
    SecretHash::create(secret.as_bytes(), 1000).unwrap()
}

fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// The client's private_key_jwt key.
pub fn client_key() -> Jwk {
    Jwk::generate("EC", None, tokengate::jose::Curve::from_name("P-256"))
        .unwrap()
        .with_kid("ck1")
}

/// A `[token_service]` with the standard clients and users, and a jwt_auth route.
pub fn config(
    dir: &Path,
    store: &str,
    more: &str,
    upstream: std::net::SocketAddr,
    ck: &Jwk,
) -> String {
    let jwks = json!({"keys": [ck.to_value(false).unwrap()]}).to_string();
    format!(
        r#"
[upstreams.u]
targets = ["{upstream}"]

[[routes]]
name = "api"
match = {{ path_prefix = "/api" }}
upstream = "u"
policies = [{{ type = "jwt_auth", audiences = ["api"], scopes = ["read"], methods = {{ POST = {{ scopes = ["write"] }} }}, clear_authorization = true }}]

[[routes]]
name = "admin"
match = {{ path_prefix = "/adm" }}
upstream = "u"
policies = [{{ type = "jwt_auth", roles = ["admin"], user_header = "X-User", roles_header = "X-Roles" }}]

[token_service]
issuer = "{ISSUER}"
require_tls = false
signing_alg = "ES256"
key_dir = "{d}/keys"
{backoff}
{more}

[token_service.store]
{store}

[[token_service.clients]]
client_id = "svc"
secret_hash = "{svc}"
scopes = ["read", "write"]
default_scopes = ["read"]
audience = ["api"]
roles = ["service"]

[[token_service.clients]]
client_id = "app"
secret_hash = "{app}"
grants = ["password", "refresh_token", "client_credentials"]
scopes = ["read", "write", "admin"]
default_scopes = ["read", "write"]
audience = ["api"]
refresh_max_uses = 3

[[token_service.clients]]
client_id = "app2"
secret_hash = "{app2}"
grants = ["password", "refresh_token"]
scopes = ["read"]
audience = ["api"]

[[token_service.clients]]
client_id = {weird_id}
secret_hash = "{weird}"
scopes = ["read"]
audience = ["api"]

[[token_service.clients]]
client_id = "jwtc"
jwks = {jwks}
scopes = ["read"]
audience = ["api"]

[[token_service.clients]]
client_id = "opq"
secret_hash = "{opq}"
token_format = "opaque"
grants = ["client_credentials", "password", "refresh_token"]
scopes = ["read", "write"]
audience = ["api"]
bind_client_ip = true

[[token_service.clients]]
client_id = "enc"
secret_hash = "{enc}"
scopes = ["read"]
audience = ["api"]
encrypt_to = {{ jwk = {ckpub} }}

[[token_service.clients]]
client_id = "rs"
secret_hash = "{rs}"
scopes = []
introspect_any = true

[[token_service.users]]
username = "alice"
password_hash = "{alice}"
roles = ["user", "admin"]

[[token_service.users]]
username = "bob"
password_hash = "{bob}"
roles = ["user"]
scopes = ["read"]
"#,
        d = dir.display(),
        backoff = if more.contains("backoff") {
            ""
        } else {
            "backoff = { max_failures = 4, base_delay = \"30s\" }"
        },
        svc = hash("svc-secret"),
        app = hash("app-secret"),
        app2 = hash("app2-secret"),
        weird_id = toml_str(WEIRD_ID),
        weird = hash(WEIRD_SECRET),
        jwks = toml_str(&jwks),
        opq = hash("opq-secret"),
        rs = hash("rs-secret"),
        enc = hash("enc-secret"),
        ckpub = toml_str(&ck.to_value(false).unwrap().to_string()),
        alice = hash("alice-pw"),
        bob = hash("bob-pw"),
    )
}

pub fn embedded(dir: &Path) -> String {
    format!(
        "path = \"{}/tokens.redb\"\npurge_interval = \"1s\"",
        dir.display()
    )
}

pub fn redis_store(prefix: &str) -> String {
    format!("kind = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\nkey_prefix = \"{prefix}\"\ntimeout = \"300ms\"")
}

pub fn unique(name: &str) -> String {
    let mut b = [0u8; 6];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    format!("tg-test-{name}-{}:", tokengate::jose::b64_encode(&b))
}

pub fn basic(id: &str, secret: &str) -> String {
    use base64::Engine as _;
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
    )
}

pub fn form(params: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    s.finish()
}

/// POST a form to the gateway, with Basic credentials when given.
pub async fn post(
    port: u16,
    path: &str,
    auth: Option<(&str, &str)>,
    params: &[(&str, &str)],
) -> Resp {
    let b = auth.map(|(i, s)| basic(i, s));
    let mut h = vec![("content-type", "application/x-www-form-urlencoded")];
    if let Some(b) = &b {
        h.push(("authorization", b.as_str()));
    }
    request(port, "POST", path, &h, &form(params)).await
}

pub async fn cc(port: u16, id: &str, secret: &str, scope: Option<&str>) -> Resp {
    let mut p = vec![("grant_type", "client_credentials")];
    if let Some(s) = scope {
        p.push(("scope", s));
    }
    post(port, "/oauth2/token", Some((id, secret)), &p).await
}

pub async fn password(
    port: u16,
    client: (&str, &str),
    user: &str,
    pw: &str,
    scope: Option<&str>,
) -> Resp {
    let mut p = vec![
        ("grant_type", "password"),
        ("username", user),
        ("password", pw),
    ];
    if let Some(s) = scope {
        p.push(("scope", s));
    }
    post(port, "/oauth2/token", Some(client), &p).await
}

pub async fn refresh(port: u16, client: (&str, &str), rt: &str, scope: Option<&str>) -> Resp {
    let mut p = vec![("grant_type", "refresh_token"), ("refresh_token", rt)];
    if let Some(s) = scope {
        p.push(("scope", s));
    }
    post(port, "/oauth2/token", Some(client), &p).await
}

pub async fn api(port: u16, method: &str, path: &str, token: &str) -> Resp {
    let b = format!("Bearer {token}");
    request(port, method, path, &[("authorization", b.as_str())], "").await
}

fn assert_oauth_error(r: &Resp, status: u16, error: &str) {
    assert_eq!(r.status, status, "{:?}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["error"], error, "{v}");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("pragma"), Some("no-cache"));
    // O27: nothing but the RFC 6749 §5.2 members.
    for k in v.as_object().unwrap().keys() {
        assert!(
            ["error", "error_description", "error_uri"].contains(&k.as_str()),
            "{k}"
        );
    }
}

const SETUP: &str = "";

pub struct World {
    pub gw: Gateway,
    pub _up: Upstream,
    pub dir: tempfile::TempDir,
    pub ck: Jwk,
}

pub async fn world(store: Option<String>, more: &str) -> World {
    let up = Upstream::start("u").await;
    let dir = tempfile::tempdir().unwrap();
    let ck = client_key();
    let store = store.unwrap_or_else(|| embedded(dir.path()));
    let gw = Gateway::start(&format!(
        "{SETUP}{}",
        config(dir.path(), &store, more, up.addr, &ck)
    ))
    .await;
    World {
        gw,
        _up: up,
        dir,
        ck,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_grants_through_authlib_verified_by_joserfc() {
    let w = world(None, "").await;
    let p = w.gw.port;
    let url = format!("http://127.0.0.1:{p}/oauth2/token");
    let jwks = get(p, "/.well-known/jwks.json").await;
    assert_eq!(jwks.status, 200);
    let jwks = jwks.json();
    assert_eq!(
        jwks["keys"].as_array().unwrap().len(),
        2,
        "next and current"
    );
    for k in jwks["keys"].as_array().unwrap() {
        assert!(k.get("d").is_none(), "public keys only");
    }
    let base = |auth: &str, id: &str, secret: &str| {
        json!({"op": "token", "url": url, "client_id": id, "client_secret": secret,
               "auth": auth, "grant_type": "client_credentials"})
    };
    let mut pk = json!({"op": "token", "url": url, "client_id": "jwtc", "auth": "private_key_jwt",
                        "key": w.ck.to_value(true).unwrap(), "aud": ISSUER, "grant_type": "client_credentials"});
    pk["alg"] = json!("ES256");
    let res = oauth(&[
        base("client_secret_basic", "svc", "svc-secret"),
        base("client_secret_post", "svc", "svc-secret"),
        // O1: id and secret with : % + space é, form-urlencoded then base64 by Authlib.
        base("client_secret_basic", WEIRD_ID, WEIRD_SECRET),
        base("client_secret_post", WEIRD_ID, WEIRD_SECRET),
        pk,
        json!({"op": "token", "url": url, "client_id": "app", "client_secret": "app-secret",
               "grant_type": "password", "username": "alice", "password": "alice-pw"}),
    ]);
    let mut verify = Vec::new();
    for (i, r) in res.iter().enumerate() {
        let t = &r["token"];
        assert_eq!(t["token_type"], "Bearer", "request {i}: {r}");
        assert!(t["expires_in"].as_u64().unwrap() > 0);
        verify.push(
            json!({"op": "verify_jwt", "token": t["access_token"], "jwks": jwks,
                           "alg": "ES256", "iss": ISSUER}),
        );
    }
    // O12: no refresh token for client_credentials; the password grant has one.
    for r in &res[..5] {
        assert!(r["token"].get("refresh_token").is_none(), "{r}");
    }
    assert!(res[5]["token"]["refresh_token"].is_string());
    // Authlib's refresh through the same library.
    let rt = res[5]["token"]["refresh_token"].as_str().unwrap();
    let r2 = oauth(&[json!({"op": "refresh", "url": url, "client_id": "app",
                            "client_secret": "app-secret", "refresh_token": rt})]);
    assert!(r2[0]["token"]["access_token"].is_string(), "{}", r2[0]);
    assert_ne!(r2[0]["token"]["refresh_token"], json!(rt), "rotated");
    // O28/O29: joserfc verifies every issued JWT with the alg pinned.
    let checked = oauth(&verify);
    let mut jtis = std::collections::HashSet::new();
    for (c, r) in checked.iter().zip(&res) {
        assert_eq!(c["header"]["typ"], "at+jwt", "{c}");
        assert!(c["header"]["kid"].is_string());
        for k in ["crit", "zip", "b64"] {
            assert!(c["header"].get(k).is_none());
        }
        let cl = &c["claims"];
        for k in ["iss", "sub", "aud", "client_id", "iat", "exp", "jti"] {
            assert!(cl.get(k).is_some(), "{k} missing in {cl}");
        }
        assert!(jtis.insert(cl["jti"].as_str().unwrap().to_string()));
        assert_eq!(cl["aud"], "api");
        assert_eq!(r["token"]["scope"], cl["scope"]);
    }
    assert_eq!(checked[0]["claims"]["scope"], "read", "default scopes");
    assert_eq!(checked[2]["claims"]["sub"], WEIRD_ID);
    assert_eq!(checked[5]["claims"]["sub"], "alice");
    assert_eq!(checked[5]["claims"]["roles"], json!(["user", "admin"]));
    // The kid is the RFC 7638 thumbprint of a key in the JWKS.
    let kid = checked[0]["header"]["kid"].as_str().unwrap();
    assert!(jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["kid"] == kid));

    // jwt_auth: the tokens work on the route; user and roles go upstream; Authorization is
    // cleared on /api (clear_authorization) and kept on /adm.
    let svc = res[0]["token"]["access_token"].as_str().unwrap();
    let r = api(p, "GET", "/api/x", svc).await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let echo = r.json();
    assert_eq!(echo["headers"]["x-authenticated-user"][0], "svc");
    assert_eq!(echo["headers"]["x-authenticated-userroles"][0], "service");
    assert!(echo["headers"].get("authorization").is_none());
    // Read-only token: POST needs write (403); admin route needs a role (403).
    let r = api(p, "POST", "/api/x", svc).await;
    assert_eq!(r.status, 403);
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .contains("insufficient_scope"));
    assert_eq!(api(p, "GET", "/adm", svc).await.status, 403);
    let alice = res[5]["token"]["access_token"].as_str().unwrap();
    assert_eq!(api(p, "POST", "/api/x", alice).await.status, 200);
    let r = api(p, "GET", "/adm", alice).await;
    assert_eq!(r.status, 200);
    let echo = r.json();
    assert_eq!(echo["headers"]["x-user"][0], "alice");
    assert_eq!(echo["headers"]["x-roles"][0], "user,admin");
    assert!(echo["headers"]["authorization"].is_array());
    // A forged user header is replaced, never passed on.
    let b = format!("Bearer {svc}");
    let r = request(
        p,
        "GET",
        "/api/x",
        &[
            ("authorization", b.as_str()),
            ("x-authenticated-user", "root"),
        ],
        "",
    )
    .await;
    assert_eq!(r.json()["headers"]["x-authenticated-user"], json!(["svc"]));
    // 401s: none, garbage, tampered signature; O26: a query token is not read.
    assert_eq!(get(p, "/api/x").await.status, 401);
    assert_eq!(api(p, "GET", "/api/x", "garbage").await.status, 401);
    let mut tampered = svc.to_string();
    tampered.pop();
    tampered.push(if svc.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(api(p, "GET", "/api/x", &tampered).await.status, 401);
    let r = get(p, &format!("/api/x?access_token={svc}")).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    // Audience: the rs client's token (aud = issuer) is not for this API.
    let rs = cc(p, "rs", "rs-secret", None).await.json();
    let r = api(p, "GET", "/api/x", rs["access_token"].as_str().unwrap()).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["errorCode"], "audience_mismatch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_request_rules() {
    let w = world(None, "").await;
    let p = w.gw.port;
    // O11 on a success.
    let r = cc(p, "svc", "svc-secret", Some("read write")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("pragma"), Some("no-cache"));
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(r.json()["scope"], "read write");
    // O3: two authentication methods.
    let r = post(
        p,
        "/oauth2/token",
        Some(("svc", "svc-secret")),
        &[
            ("grant_type", "client_credentials"),
            ("client_secret", "svc-secret"),
            ("client_id", "svc"),
        ],
    )
    .await;
    assert_oauth_error(&r, 400, "invalid_request");
    // O4: parameters in the query.
    let h = basic("svc", "svc-secret");
    let r = request(
        p,
        "POST",
        "/oauth2/token?client_secret=svc-secret",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("authorization", &h),
        ],
        "grant_type=client_credentials",
    )
    .await;
    assert_oauth_error(&r, 400, "invalid_request");
    // O5: GET.
    let r = request(p, "GET", "/oauth2/token", &[("authorization", &h)], "").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    // O6: repeated parameters; an empty scope counts as omitted.
    let r = request(
        p,
        "POST",
        "/oauth2/token",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("authorization", &h),
        ],
        "grant_type=client_credentials&grant_type=client_credentials",
    )
    .await;
    assert_oauth_error(&r, 400, "invalid_request");
    let r = request(
        p,
        "POST",
        "/oauth2/token",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("authorization", &h),
        ],
        "grant_type=client_credentials&scope=read&scope=write",
    )
    .await;
    assert_oauth_error(&r, 400, "invalid_request");
    let r = request(
        p,
        "POST",
        "/oauth2/token",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("authorization", &h),
        ],
        "grant_type=client_credentials&scope=",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["scope"], "read");
    // O7: JSON or no content type.
    let r = request(
        p,
        "POST",
        "/oauth2/token",
        &[("content-type", "application/json"), ("authorization", &h)],
        r#"{"grant_type":"client_credentials"}"#,
    )
    .await;
    assert_oauth_error(&r, 400, "invalid_request");
    let r = request(
        p,
        "POST",
        "/oauth2/token",
        &[("authorization", &h)],
        "grant_type=client_credentials",
    )
    .await;
    assert_oauth_error(&r, 400, "invalid_request");
    // Too large a body.
    let big = format!("grant_type=client_credentials&x={}", "a".repeat(20_000));
    let r = request(
        p,
        "POST",
        "/oauth2/token",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("authorization", &h),
        ],
        &big,
    )
    .await;
    assert_eq!(r.status, 413);
    // O8: unknown client and wrong secret answer the same.
    let a = cc(p, "nobody", "svc-secret", None).await;
    let b = cc(p, "svc", "wrong", None).await;
    for r in [&a, &b] {
        assert_oauth_error(r, 401, "invalid_client");
        assert!(r.header("www-authenticate").unwrap().starts_with("Basic"));
    }
    assert_eq!(a.body, b.body);
    // O2: a raw (not form-encoded) secret with '+' is refused.
    use base64::Engine as _;
    let raw = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{WEIRD_ID}:{WEIRD_SECRET}"))
    );
    let r = request(
        p,
        "POST",
        "/oauth2/token",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("authorization", &raw),
        ],
        "grant_type=client_credentials",
    )
    .await;
    assert_oauth_error(&r, 401, "invalid_client");
    // No credentials at all.
    let r = request(
        p,
        "POST",
        "/oauth2/token",
        &[("content-type", "application/x-www-form-urlencoded")],
        "grant_type=client_credentials&client_id=svc",
    )
    .await;
    assert_oauth_error(&r, 401, "invalid_client");
    // Grant and scope errors.
    let r = post(
        p,
        "/oauth2/token",
        Some(("svc", "svc-secret")),
        &[("grant_type", "authorization_code")],
    )
    .await;
    assert_oauth_error(&r, 400, "unsupported_grant_type");
    let r = post(p, "/oauth2/token", Some(("svc", "svc-secret")), &[]).await;
    assert_oauth_error(&r, 400, "invalid_request");
    // O13: password grant needs the client's opt-in.
    let r = password(p, ("svc", "svc-secret"), "alice", "alice-pw", None).await;
    assert_oauth_error(&r, 400, "unauthorized_client");
    let r = cc(p, "svc", "svc-secret", Some("read admin")).await;
    assert_oauth_error(&r, 400, "invalid_scope");
    // Password grant: wrong password, unknown user: same invalid_grant; user scope limits.
    let a = password(p, ("app", "app-secret"), "alice", "nope", None).await;
    let b = password(p, ("app", "app-secret"), "mallory", "nope", None).await;
    assert_oauth_error(&a, 400, "invalid_grant");
    assert_eq!(a.body, b.body);
    let r = password(p, ("app", "app-secret"), "bob", "bob-pw", Some("write")).await;
    assert_oauth_error(&r, 400, "invalid_scope");
    let r = password(p, ("app", "app-secret"), "bob", "bob-pw", None).await;
    assert_eq!(r.json()["scope"], "read");
    // Discovery documents.
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let d = get(p, path).await;
        assert_eq!(d.status, 200);
        let d = d.json();
        assert_eq!(d["issuer"], ISSUER);
        assert_eq!(d["token_endpoint"], format!("{ISSUER}/oauth2/token"));
        assert_eq!(d["jwks_uri"], format!("{ISSUER}/.well-known/jwks.json"));
        assert!(d["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("private_key_jwt")));
    }
    assert_eq!(
        request(p, "POST", "/.well-known/jwks.json", &[], "")
            .await
            .status,
        405
    );
    // Nothing secret in the access log.
    let log = std::fs::read_to_string(w.gw.dir.path().join("access.log")).unwrap_or_default();
    for s in ["svc-secret", "alice-pw", "app-secret"] {
        assert!(!log.contains(s));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backoff_locks_out_with_429_and_retry_after() {
    let w = world(None, "").await;
    let p = w.gw.port;
    for _ in 0..4 {
        assert_eq!(cc(p, "svc", "bad", None).await.status, 401);
    }
    // O10: locked, even with the right secret.
    let r = cc(p, "svc", "svc-secret", None).await;
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    // Another client is not affected.
    assert_eq!(cc(p, WEIRD_ID, WEIRD_SECRET, None).await.status, 200);
    // Per username on the password grant.
    for _ in 0..4 {
        assert_eq!(
            password(p, ("app", "app-secret"), "bob", "bad", None)
                .await
                .status,
            400
        );
    }
    assert_eq!(
        password(p, ("app", "app-secret"), "bob", "bob-pw", None)
            .await
            .status,
        429
    );
    // Another spelling of the name is the same name to the backoff.
    assert_eq!(
        password(p, ("app", "app-secret"), " BOB", "bob-pw", None)
            .await
            .status,
        429
    );
    assert_eq!(
        password(p, ("app", "app-secret"), "alice", "alice-pw", None)
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_client_ids_are_backed_off_like_wrong_secrets() {
    let w = world(None, "").await;
    let p = w.gw.port;
    for _ in 0..4 {
        assert_oauth_error(&cc(p, "nobody", "guess", None).await, 401, "invalid_client");
    }
    let r = cc(p, "nobody", "guess", None).await;
    assert_oauth_error(&r, 429, "temporarily_unavailable");
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    // The same id sent as client_secret_post is the same name to the backoff.
    let r = post(
        p,
        "/oauth2/token",
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "nobody"),
            ("client_secret", "guess"),
        ],
    )
    .await;
    assert_eq!(r.status, 429);
    // Per source address: another one still gets its guesses, and real clients are unaffected.
    let ct = ("content-type", "application/x-www-form-urlencoded");
    let r = request_from(
        "127.0.0.4",
        p,
        "POST",
        "/oauth2/token",
        &[ct, ("authorization", &basic("nobody", "guess"))],
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(cc(p, "svc", "svc-secret", None).await.status, 200);
}

/// A gateway process (its own hash-check pool) on one worker thread of the default runtime,
/// with a client "slow" whose secret takes about `cpu_secs` of CPU to check (measured here, not
/// assumed), a direct-response route /hello, and a backoff after two failures.
async fn slow_gateway(cpu_secs: f64) -> (Proc, Upstream, tempfile::TempDir) {
    let t = std::time::Instant::now();
    SecretHash::create(b"calibrate", 100_000).unwrap();
    let per_iter = t.elapsed().as_secs_f64() / 100_000.0;
    let iters =
        ((cpu_secs / per_iter) as u32).clamp(100_000, tokengate::identity::secret::MAX_ITERATIONS);
    let slow = SecretHash::create(b"slow-secret", iters).unwrap();
    let up = Upstream::start("u").await;
    let dir = tempfile::tempdir().unwrap();
    let backoff = "backoff = { max_failures = 2, base_delay = \"30s\" }";
    let body = config(
        dir.path(),
        &embedded(dir.path()),
        backoff,
        up.addr,
        &client_key(),
    );
    let body = format!(
        r#"{body}
[[routes]]
name = "hello"
match = {{ path_exact = "/hello" }}
respond = {{ status = 200, body = "hello" }}

[[token_service.clients]]
client_id = "slow"
secret_hash = "{slow}"
scopes = ["read"]
audience = ["api"]
"#
    );
    let gw = Proc::start_with(&body, |p| {
        assert!(p.contains("\nthreads = 2\n") && p.contains("work_stealing = true"));
        p.replace("\nthreads = 2\n", "\nthreads = 1\n")
            .replace("work_stealing = true", "work_stealing = false")
    })
    .await;
    (gw, up, dir)
}

/// One worker thread, secrets that take about 1.5 s of CPU to check: the plain route
/// answers, and a locked-out (unknown client, address) gets its 429, while three checks are
/// still running. Only the order of the answers is asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn secret_checks_leave_the_worker_thread_free() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let (gw, _up, _dir) = slow_gateway(1.5).await;
    let p = gw.port;
    assert_eq!(get(p, "/hello").await.status, 200);
    // Lock an unknown id out from this address; its dummy check costs what slow's does.
    let (a, b) = tokio::join!(cc(p, "ghost", "x", None), cc(p, "ghost", "y", None));
    assert_eq!((a.status, b.status), (401, 401));
    let done = Arc::new(AtomicUsize::new(0));
    let mut checks = Vec::new();
    for _ in 0..3 {
        let done = done.clone();
        checks.push(tokio::spawn(async move {
            let r = cc(p, "slow", "slow-secret", None).await;
            done.fetch_add(1, Ordering::SeqCst);
            r.status
        }));
    }
    // Only so that the checks have started when the next requests arrive.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let hello = get(p, "/hello").await;
    assert_eq!(hello.status, 200);
    assert_eq!(
        done.load(Ordering::SeqCst),
        0,
        "the plain route waited for a secret check"
    );
    let r = cc(p, "ghost", "z", None).await;
    assert_eq!(r.status, 429);
    assert_eq!(
        done.load(Ordering::SeqCst),
        0,
        "the backoff waited for a secret check"
    );
    for c in checks {
        assert_eq!(c.await.unwrap(), 200);
    }
}

/// Three times as many right-secret requests as the pool checks at once (two per CPU, so each
/// wave takes at least twice a check's CPU time): the first wave is answered 200, and the
/// requests that get no turn within the 2 s wait 503 `temporarily_unavailable`, never 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_secret_queue_is_503_not_a_wrong_secret() {
    let (gw, _up, _dir) = slow_gateway(1.5).await;
    let p = gw.port;
    let pool = 2 * std::thread::available_parallelism().map_or(2, |n| n.get());
    let reqs: Vec<_> = (0..3 * pool)
        .map(|_| tokio::spawn(async move { cc(p, "slow", "slow-secret", None).await }))
        .collect();
    let (mut ok, mut busy) = (0, 0);
    for r in reqs {
        let r = r.await.unwrap();
        if r.status == 200 {
            ok += 1;
        } else {
            assert_oauth_error(&r, 503, "temporarily_unavailable");
            assert_eq!(r.header("retry-after"), Some("1"));
            busy += 1;
        }
    }
    assert!(ok >= 1 && busy >= 1, "{ok} answered, {busy} busy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_rotation_reuse_limits_and_scope() {
    let w = world(None, "").await;
    let p = w.gw.port;
    let app = ("app", "app-secret");
    let t1 = password(p, app, "alice", "alice-pw", None).await.json();
    let rt1 = t1["refresh_token"].as_str().unwrap().to_string();
    // O16: wider refused; narrower OK and the narrowing sticks.
    let r = refresh(p, app, &rt1, Some("read write admin")).await;
    assert_oauth_error(&r, 400, "invalid_scope");
    let t2 = refresh(p, app, &rt1, Some("read")).await;
    assert_eq!(t2.status, 200);
    let t2 = t2.json();
    assert_eq!(t2["scope"], "read");
    let rt2 = t2["refresh_token"].as_str().unwrap().to_string();
    assert_oauth_error(
        &refresh(p, app, &rt2, Some("read write")).await,
        400,
        "invalid_scope",
    );
    // O17: another client presents it.
    assert_oauth_error(
        &refresh(p, ("app2", "app2-secret"), &rt2, None).await,
        400,
        "invalid_grant",
    );
    // O14: reuse of RT1 revokes the family: RT2 and the family's access tokens die.
    let at2 = t2["access_token"].as_str().unwrap();
    assert_eq!(api(p, "GET", "/api/x", at2).await.status, 200);
    assert_oauth_error(&refresh(p, app, &rt1, None).await, 400, "invalid_grant");
    assert_oauth_error(&refresh(p, app, &rt2, None).await, 400, "invalid_grant");
    let r = api(p, "GET", "/api/x", at2).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["errorCode"], "token_revoked");
    // O15: use limit 3 for the family: 3 refreshes, the 4th fails.
    let mut rt = password(p, app, "alice", "alice-pw", None).await.json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    for i in 0..3 {
        let r = refresh(p, app, &rt, None).await;
        assert_eq!(r.status, 200, "use {i}");
        rt = r.json()["refresh_token"].as_str().unwrap().to_string();
    }
    assert_oauth_error(&refresh(p, app, &rt, None).await, 400, "invalid_grant");
    // O18: garbage and unknown tokens.
    assert_oauth_error(&refresh(p, app, "nope", None).await, 400, "invalid_grant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_and_revocation_per_rfc() {
    let w = world(None, "").await;
    let p = w.gw.port;
    let app = ("app", "app-secret");
    let t = password(p, app, "alice", "alice-pw", None).await.json();
    let at = t["access_token"].as_str().unwrap().to_string();
    let rt = t["refresh_token"].as_str().unwrap().to_string();
    // O20: no client authentication.
    let r = request(
        p,
        "POST",
        "/oauth2/introspect",
        &[("content-type", "application/x-www-form-urlencoded")],
        &form(&[("token", &at)]),
    )
    .await;
    assert_oauth_error(&r, 401, "invalid_client");
    let intro = |tok: String, who: (&'static str, &'static str), hint: Option<&'static str>| async move {
        let mut f = vec![("token", tok.as_str())];
        if let Some(h) = hint {
            f.push(("token_type_hint", h));
        }
        let r = post(p, "/oauth2/introspect", Some(who), &f).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("cache-control"), Some("no-store"));
        r.json()
    };
    let v = intro(at.clone(), app, None).await;
    assert_eq!(v["active"], true);
    assert_eq!(v["sub"], "alice");
    assert_eq!(v["client_id"], "app");
    assert_eq!(v["token_type"], "Bearer");
    // O21: a wrong hint still resolves.
    assert_eq!(
        intro(at.clone(), app, Some("refresh_token")).await["active"],
        true
    );
    let v = intro(rt.clone(), app, Some("access_token")).await;
    assert_eq!(v["active"], true);
    assert_eq!(v["token_type"], "refresh_token");
    // Another client's token: inactive, unless the caller may introspect any (a resource server).
    assert_eq!(
        intro(at.clone(), ("svc", "svc-secret"), None).await,
        json!({"active": false})
    );
    assert_eq!(
        intro(at.clone(), ("rs", "rs-secret"), None).await["active"],
        true
    );
    // Garbage, 10 KB, malformed: {"active":false} only.
    for g in ["x".to_string(), "a.b.c".to_string(), "z".repeat(10_000)] {
        assert_eq!(intro(g, app, None).await, json!({"active": false}));
    }
    // O22: unknown token 200; a bad hint 400; another client's token 200 but not revoked.
    let rv = |tok: String, who: (&'static str, &'static str), hint: Option<&'static str>| async move {
        let mut f = vec![("token", tok.as_str())];
        if let Some(h) = hint {
            f.push(("token_type_hint", h));
        }
        post(p, "/oauth2/revoke", Some(who), &f).await
    };
    assert_eq!(rv("unknown".into(), app, None).await.status, 200);
    assert_oauth_error(
        &rv(rt.clone(), app, Some("foo")).await,
        400,
        "unsupported_token_type",
    );
    assert_eq!(
        rv(rt.clone(), ("app2", "app2-secret"), None).await.status,
        200
    );
    assert_eq!(intro(rt.clone(), app, None).await["active"], true);
    assert_eq!(api(p, "GET", "/api/x", &at).await.status, 200);
    // Revoking the refresh token revokes its access tokens.
    let r = rv(rt.clone(), app, Some("refresh_token")).await;
    assert_eq!(r.status, 200);
    assert_eq!(intro(rt.clone(), app, None).await, json!({"active": false}));
    assert_eq!(intro(at.clone(), app, None).await, json!({"active": false}));
    assert_eq!(api(p, "GET", "/api/x", &at).await.status, 401);
    assert_oauth_error(&refresh(p, app, &rt, None).await, 400, "invalid_grant");
    // A client_credentials JWT revoked directly (tombstone by jti).
    let svc = cc(p, "svc", "svc-secret", None).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(api(p, "GET", "/api/x", &svc).await.status, 200);
    assert_eq!(
        rv(svc.clone(), ("app", "app-secret"), None).await.status,
        200
    );
    assert_eq!(
        api(p, "GET", "/api/x", &svc).await.status,
        200,
        "not the caller's token"
    );
    assert_eq!(
        rv(svc.clone(), ("svc", "svc-secret"), Some("access_token"))
            .await
            .status,
        200
    );
    assert_eq!(api(p, "GET", "/api/x", &svc).await.status, 401);
    // Opaque tokens: no structure, >= 128 bits, stored hashed, revocable.
    let o = cc(p, "opq", "opq-secret", None).await.json();
    let ot = o["access_token"].as_str().unwrap().to_string();
    assert!(!ot.contains('.') && ot.len() >= 43);
    assert_eq!(api(p, "GET", "/api/x", &ot).await.status, 200);
    assert_eq!(
        intro(ot.clone(), ("opq", "opq-secret"), None).await["active"],
        true
    );
    assert_eq!(
        rv(ot.clone(), ("opq", "opq-secret"), Some("access_token"))
            .await
            .status,
        200
    );
    assert_eq!(api(p, "GET", "/api/x", &ot).await.status, 401);
    // Via Authlib too.
    let url = format!("http://127.0.0.1:{p}");
    let t = password(p, app, "alice", "alice-pw", None).await.json();
    let res = oauth(&[
        json!({"op": "introspect", "url": format!("{url}/oauth2/introspect"), "client_id": "app",
               "client_secret": "app-secret", "token": t["access_token"]}),
        json!({"op": "revoke", "url": format!("{url}/oauth2/revoke"), "client_id": "app",
               "client_secret": "app-secret", "token": t["refresh_token"], "hint": "refresh_token"}),
        json!({"op": "introspect", "url": format!("{url}/oauth2/introspect"), "client_id": "app",
               "client_secret": "app-secret", "token": t["access_token"]}),
    ]);
    assert_eq!(res[0]["body"]["active"], true);
    assert_eq!(res[1]["status"], 200);
    assert_eq!(res[2]["body"], json!({"active": false}));
}

fn assertion(ck: &Jwk, claims: Value, header: Value) -> String {
    let hdr = header.as_object().cloned().unwrap_or_default();
    tokengate::jose::sign(claims.to_string().as_bytes(), ck, Alg::ES256, &hdr).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_key_jwt_rules() {
    let w = world(None, "backoff = { max_failures = 100 }").await;
    let p = w.gw.port;
    let now = tokengate::store::now_unix();
    let good = |jti: &str| json!({"iss": "jwtc", "sub": "jwtc", "aud": ISSUER, "exp": now + 60, "iat": now, "jti": jti});
    let send = |a: String| async move {
        post(
            p,
            "/oauth2/token",
            None,
            &[
                ("grant_type", "client_credentials"),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", &a),
            ],
        )
        .await
    };
    let r = send(assertion(
        &w.ck,
        good("j1"),
        json!({"typ": "client-authentication+jwt"}),
    ))
    .await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    // jti replay.
    assert_oauth_error(
        &send(assertion(&w.ck, good("j1"), json!({}))).await,
        401,
        "invalid_client",
    );
    // O23: token endpoint URL as aud is accepted (compat); another AS or two values are not.
    let mut c = good("j2");
    c["aud"] = json!(format!("{ISSUER}/oauth2/token"));
    assert_eq!(send(assertion(&w.ck, c, json!({}))).await.status, 200);
    let bad_claims: Vec<(&str, Value)> = vec![
        ("aud", json!("https://other-as.example")),
        ("aud", json!([ISSUER, "https://other-as.example"])),
        ("iss", json!("svc")),
        ("sub", json!("svc")),
        ("exp", Value::Null),
        ("exp", json!(now + 3600)),
        ("exp", json!(now - 10)),
        ("nbf", json!(now + 600)),
        ("jti", Value::Null),
    ];
    for (i, (k, v)) in bad_claims.into_iter().enumerate() {
        let mut c = good(&format!("bad{i}"));
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v;
        }
        assert_oauth_error(
            &send(assertion(&w.ck, c, json!({}))).await,
            401,
            "invalid_client",
        );
    }
    // Embedded jwk header, wrong typ, another key, and alg none.
    let other = client_key();
    let pubjwk = w.ck.to_value(false).unwrap();
    assert_oauth_error(
        &send(assertion(&w.ck, good("h1"), json!({"jwk": pubjwk}))).await,
        401,
        "invalid_client",
    );
    assert_oauth_error(
        &send(assertion(&w.ck, good("h2"), json!({"typ": "at+jwt"}))).await,
        401,
        "invalid_client",
    );
    assert_oauth_error(
        &send(assertion(&other, good("h3"), json!({}))).await,
        401,
        "invalid_client",
    );
    let none = format!(
        "{}.{}.",
        tokengate::jose::b64_encode(br#"{"alg":"none"}"#),
        tokengate::jose::b64_encode(good("h4").to_string().as_bytes())
    );
    assert_oauth_error(&send(none).await, 401, "invalid_client");
    // A secret method for a key-only client, and assertion + secret together.
    assert_oauth_error(&cc(p, "jwtc", "x", None).await, 401, "invalid_client");
    let r = post(
        p,
        "/oauth2/token",
        Some(("jwtc", "x")),
        &[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", &assertion(&w.ck, good("h5"), json!({}))),
        ],
    )
    .await;
    assert_oauth_error(&r, 400, "invalid_request");
}

async fn concurrent_refresh(store: Option<String>) {
    let w = world(store, "").await;
    let p = w.gw.port;
    let app = ("app2", "app2-secret");
    let t = password(p, app, "alice", "alice-pw", None).await;
    assert_eq!(t.status, 200, "{:?}", String::from_utf8_lossy(&t.body));
    let rt = t.json()["refresh_token"].as_str().unwrap().to_string();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let rt = rt.clone();
        tasks.push(tokio::spawn(async move {
            refresh(p, app, &rt, None).await.status
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    let ok = codes.iter().filter(|c| **c == 200).count();
    assert_eq!(ok, 1, "{codes:?}");
    assert!(codes.iter().all(|c| *c == 200 || *c == 400), "{codes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_refreshes_one_wins_embedded() {
    concurrent_refresh(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_refreshes_one_wins_redis() {
    concurrent_refresh(Some(redis_store(&unique("conc")))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_redis_revocation() {
    let prefix = unique("two");
    let a = world(Some(redis_store(&prefix)), "").await;
    // B shares A's key directory (one issuer) and Redis.
    let up = Upstream::start("b").await;
    let b = Gateway::start(&config(
        a.dir.path(),
        &redis_store(&prefix),
        "",
        up.addr,
        &a.ck,
    ))
    .await;
    let app = ("app", "app-secret");
    let t = password(a.gw.port, app, "alice", "alice-pw", None)
        .await
        .json();
    let at = t["access_token"].as_str().unwrap().to_string();
    let rt = t["refresh_token"].as_str().unwrap().to_string();
    let o = cc(a.gw.port, "opq", "opq-secret", None).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(api(b.port, "GET", "/api/x", &at).await.status, 200);
    assert_eq!(api(b.port, "GET", "/api/x", &o).await.status, 200);
    // A refresh on B, then the old token replayed on A: reuse detected across gateways.
    let t2 = refresh(b.port, app, &rt, None).await.json();
    let rt2 = t2["refresh_token"].as_str().unwrap().to_string();
    assert_oauth_error(
        &refresh(a.gw.port, app, &rt, None).await,
        400,
        "invalid_grant",
    );
    assert_oauth_error(
        &refresh(b.port, app, &rt2, None).await,
        400,
        "invalid_grant",
    );
    assert_eq!(api(b.port, "GET", "/api/x", &at).await.status, 401);
    // Revoke on A, rejected on B at the next request.
    let r = post(
        a.gw.port,
        "/oauth2/revoke",
        Some(("opq", "opq-secret")),
        &[("token", &o)],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(api(b.port, "GET", "/api/x", &o).await.status, 401);
}

// In-process "restart": under a loaded machine the previous gateway's runtime threads can
// outlive its shutdown and keep the redb file locked, so the second gateway never gets the
// store (seen in CI). A real restart is a new process: `embedded_store_survives_kill_9`
// covers keys, refresh tokens and revocations across one. Run with `--ignored` on a quiet box.
#[ignore = "in-process restart races the previous server's threads for the redb lock"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_keys_refresh_tokens_and_revocations() {
    let up = Upstream::start("u").await;
    let dir = tempfile::tempdir().unwrap();
    let ck = client_key();
    let body = config(dir.path(), &embedded(dir.path()), "", up.addr, &ck);
    let app = ("app", "app-secret");
    let (rt, at, revoked, jwks) = {
        let gw = Gateway::start(&body).await;
        let p = gw.port;
        let t = password(p, app, "alice", "alice-pw", None).await.json();
        let svc = cc(p, "svc", "svc-secret", None).await.json()["access_token"]
            .as_str()
            .unwrap()
            .to_string();
        let r = post(
            p,
            "/oauth2/revoke",
            Some(("svc", "svc-secret")),
            &[("token", &svc)],
        )
        .await;
        assert_eq!(r.status, 200);
        (
            t["refresh_token"].as_str().unwrap().to_string(),
            t["access_token"].as_str().unwrap().to_string(),
            svc,
            get(p, "/.well-known/jwks.json").await.json(),
        )
    };
    let gw = Gateway::start(&body).await;
    let p = gw.port;
    // The store file is released by the old process state asynchronously; the new gateway
    // reports not-ready (token_store) until it has it, as a load balancer would see.
    eventually("ready after restart", || async {
        get(gw.admin_port, "/readyz").await.status == 200
            && api(p, "GET", "/api/x", &at).await.status != 503
    })
    .await;
    assert_eq!(
        get(p, "/.well-known/jwks.json").await.json(),
        jwks,
        "same keys after restart"
    );
    let r = api(p, "GET", "/api/x", &at).await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(api(p, "GET", "/api/x", &revoked).await.status, 401);
    let r = refresh(p, app, &rt, None).await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["current.jwk", "next.jwk"] {
            let m = std::fs::metadata(dir.path().join("keys").join(f)).unwrap();
            assert_eq!(m.permissions().mode() & 0o777, 0o600);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_keeps_old_tokens_valid() {
    let w = world(None, "").await;
    let p = w.gw.port;
    let old = cc(p, "svc", "svc-secret", None).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let before = get(p, "/.well-known/jwks.json").await.json();
    let next_kid = before["keys"][0]["kid"].clone();
    let r = admin_post(w.gw.admin_port, "/admin/keys/rotate").await;
    assert_eq!(r.status, 200);
    let after = get(p, "/.well-known/jwks.json").await.json();
    assert_eq!(
        after["keys"].as_array().unwrap().len(),
        3,
        "next, current, previous"
    );
    assert_eq!(
        after["keys"][1]["kid"], next_kid,
        "the published next key signs now"
    );
    assert_eq!(
        api(p, "GET", "/api/x", &old).await.status,
        200,
        "previous key still verifies"
    );
    let new = cc(p, "svc", "svc-secret", None).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let res = oauth(&[
        json!({"op": "verify_jwt", "token": new, "jwks": after, "alg": "ES256", "iss": ISSUER}),
    ]);
    assert_eq!(res[0]["header"]["kid"], next_kid);
    // The CLI rotates the files; a reload picks them up.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokengate"))
        .args(["keys", "rotate", "-c"])
        .arg(&w.gw.config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = admin_post(w.gw.admin_port, "/admin/reload").await;
    assert_eq!(r.status, 200);
    let third = get(p, "/.well-known/jwks.json").await.json();
    assert_eq!(third["keys"][2]["kid"], after["keys"][1]["kid"]);
    assert_eq!(
        api(p, "GET", "/api/x", &old).await.status,
        401,
        "two rotations later"
    );
    assert_eq!(api(p, "GET", "/api/x", &new).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_refused_when_tls_required() {
    let w = world(None, "").await;
    // Same world with require_tls left at its default.
    let body = std::fs::read_to_string(&w.gw.config).unwrap();
    let body = body
        .split("[upstreams.u]")
        .nth(1)
        .unwrap()
        .replace("require_tls = false\n", "");
    let gw = Gateway::start(
        &format!("[upstreams.u]{body}")
            .replace(
                &format!("key_dir = \"{}/keys\"", w.dir.path().display()),
                &format!("key_dir = \"{}/keys2\"", w.dir.path().display()),
            )
            .replace("tokens.redb", "tokens2.redb"),
    )
    .await;
    let r = cc(gw.port, "svc", "svc-secret", None).await;
    assert_oauth_error(&r, 400, "invalid_request");
    assert_eq!(get(gw.port, "/.well-known/jwks.json").await.status, 200);
}

/// A private Redis on a free port, so the test can stop and restart it.
struct OwnRedis {
    port: u16,
    child: std::process::Child,
}

impl OwnRedis {
    async fn start(port: u16) -> OwnRedis {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is needed");
        eventually("redis up", || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        OwnRedis { port, child }
    }
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_closed_then_recovers() {
    // Held across the restart: redis-server sets SO_REUSEADDR and binds it again.
    let reserved = reserve_port();
    let port = reserved.port;
    let mut redis = OwnRedis::start(port).await;
    let store = format!("kind = \"redis\"\nurl = \"redis://127.0.0.1:{}\"\nkey_prefix = \"{}\"\ntimeout = \"300ms\"", redis.port, unique("down"));
    let w = world(Some(store), "").await;
    let p = w.gw.port;
    let app = ("app", "app-secret");
    let t = password(p, app, "alice", "alice-pw", None).await.json();
    let at = t["access_token"].as_str().unwrap().to_string();
    assert_eq!(api(p, "GET", "/api/x", &at).await.status, 200);
    assert_eq!(get(w.gw.admin_port, "/readyz").await.status, 200);
    redis.stop();
    // Fail closed everywhere; the process stays up.
    let r = cc(p, "opq", "opq-secret", None).await;
    assert_oauth_error(&r, 503, "temporarily_unavailable");
    let r = api(p, "GET", "/api/x", &at).await;
    assert_eq!(r.status, 503);
    let r = post(p, "/oauth2/introspect", Some(app), &[("token", &at)]).await;
    assert_eq!(r.status, 503);
    assert!(!String::from_utf8_lossy(&r.body).contains("\"active\":true"));
    assert_oauth_error(
        &refresh(p, app, t["refresh_token"].as_str().unwrap(), None).await,
        503,
        "temporarily_unavailable",
    );
    eventually("readyz degraded", || async {
        let r = get(w.gw.admin_port, "/readyz").await;
        r.status == 503
            && r.json()["waiting_for"]
                .as_array()
                .unwrap()
                .contains(&json!("token_store"))
    })
    .await;
    assert_eq!(get(w.gw.admin_port, "/healthz").await.status, 200);
    // Recovery.
    let _redis = OwnRedis::start(port).await;
    eventually("token endpoint recovers", || async {
        cc(p, "svc", "svc-secret", None).await.status == 200
    })
    .await;
    eventually("readyz recovers", || async {
        get(w.gw.admin_port, "/readyz").await.status == 200
    })
    .await;
}

/// The real binary, killed (SIGKILL) on drop.
pub struct Proc {
    child: std::process::Child,
    pub port: u16,
    pub admin: u16,
    _dir: tempfile::TempDir,
    _ports: [PortReservation; 2],
}

impl Proc {
    async fn start(body: &str) -> Proc {
        Proc::start_with(body, |p| p).await
    }

    /// `edit` may change the preamble (e.g. the runtime flavour).
    pub async fn start_with(body: &str, edit: impl Fn(String) -> String) -> Proc {
        let dir = tempfile::tempdir().unwrap();
        let ports = [reserve_port(), reserve_port()];
        let (port, admin) = (ports[0].port, ports[1].port);
        let cfg = dir.path().join("tokengate.toml");
        let pre = edit(preamble(port, admin, dir.path()));
        std::fs::write(&cfg, format!("{pre}{body}")).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_tokengate"))
            .arg("run")
            .arg("-c")
            .arg(&cfg)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // The admin listener can answer before the data listener is bound.
        eventually("gateway process up", || async move {
            try_get(admin, "/healthz")
                .await
                .is_ok_and(|r| r.status == 200)
                && tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
        })
        .await;
        Proc {
            child,
            port,
            admin,
            _dir: dir,
            _ports: ports,
        }
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_processes_share_redis_and_keys() {
    let prefix = unique("proc");
    let up = Upstream::start("u").await;
    let dir = tempfile::tempdir().unwrap();
    let ck = client_key();
    let body = config(dir.path(), &redis_store(&prefix), "", up.addr, &ck);
    let a = Proc::start(&body).await;
    let b = Proc::start(&body).await;
    let app = ("app", "app-secret");
    let t = password(a.port, app, "alice", "alice-pw", None)
        .await
        .json();
    let at = t["access_token"].as_str().unwrap().to_string();
    let rt = t["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(api(b.port, "GET", "/api/x", &at).await.status, 200);
    // Revoke the grant on B: A rejects both tokens at the next request.
    let r = post(b.port, "/oauth2/revoke", Some(app), &[("token", &rt)]).await;
    assert_eq!(r.status, 200);
    assert_eq!(api(a.port, "GET", "/api/x", &at).await.status, 401);
    assert_oauth_error(&refresh(a.port, app, &rt, None).await, 400, "invalid_grant");
    // A key rotation on A is seen by B after its reload (shared key_dir).
    let r = admin_post(a.admin, "/admin/keys/rotate").await;
    assert_eq!(r.status, 200);
    assert_eq!(admin_post(b.admin, "/admin/reload").await.status, 200);
    let new = cc(a.port, "svc", "svc-secret", None).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(api(b.port, "GET", "/api/x", &new).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_survives_kill_9() {
    let up = Upstream::start("u").await;
    let dir = tempfile::tempdir().unwrap();
    let ck = client_key();
    let body = config(dir.path(), &embedded(dir.path()), "", up.addr, &ck);
    let app = ("app", "app-secret");
    let mut a = Proc::start(&body).await;
    let t = password(a.port, app, "alice", "alice-pw", None)
        .await
        .json();
    let rt1 = t["refresh_token"].as_str().unwrap().to_string();
    let t2 = refresh(a.port, app, &rt1, None).await.json();
    let rt2 = t2["refresh_token"].as_str().unwrap().to_string();
    let o = password(a.port, ("opq", "opq-secret"), "bob", "bob-pw", None)
        .await
        .json();
    let ort = o["refresh_token"].as_str().unwrap().to_string();
    let oat = o["access_token"].as_str().unwrap().to_string();
    let r = post(
        a.port,
        "/oauth2/revoke",
        Some(("opq", "opq-secret")),
        &[("token", &ort)],
    )
    .await;
    assert_eq!(r.status, 200);
    a.kill9();
    let b = Proc::start(&body).await;
    // Nothing lost (the rotation), nothing resurrected (the revoked grant, the rotated-out token).
    assert_eq!(api(b.port, "GET", "/api/x", &oat).await.status, 401);
    assert_oauth_error(
        &refresh(b.port, ("opq", "opq-secret"), &ort, None).await,
        400,
        "invalid_grant",
    );
    let r = refresh(b.port, app, &rt2, None).await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert_oauth_error(
        &refresh(b.port, app, &rt1, None).await,
        400,
        "invalid_grant",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_tokens_encrypted_to_the_client() {
    let w = world(None, "").await;
    let p = w.gw.port;
    let t = cc(p, "enc", "enc-secret", None).await;
    assert_eq!(t.status, 200, "{:?}", String::from_utf8_lossy(&t.body));
    let tok = t.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(tok.matches('.').count(), 4, "a JWE");
    // joserfc decrypts with the client's key; the inner JWS verifies with the gateway's JWKS.
    let d = crate::jwt_verify::peer(&[
        json!({"lib": "joserfc", "op": "decrypt", "key": w.ck.to_value(true).unwrap(),
                                             "alg": "ECDH-ES+A256KW", "enc": "A256GCM", "token": tok}),
    ]);
    assert_eq!(d[0]["header"]["cty"], "JWT");
    let inner =
        String::from_utf8(tokengate::jose::b64_decode(d[0]["payload"].as_str().unwrap()).unwrap())
            .unwrap();
    let jwks = get(p, "/.well-known/jwks.json").await.json();
    let v = oauth(&[
        json!({"op": "verify_jwt", "token": inner, "jwks": jwks, "alg": "ES256", "iss": ISSUER}),
    ]);
    assert_eq!(v[0]["header"]["typ"], "at+jwt");
    assert_eq!(v[0]["claims"]["client_id"], "enc");
    // The gateway tracks it by hash: jwt_auth, introspection and revocation work.
    assert_eq!(api(p, "GET", "/api/x", &tok).await.status, 200);
    let r = post(
        p,
        "/oauth2/introspect",
        Some(("enc", "enc-secret")),
        &[("token", &tok)],
    )
    .await;
    assert_eq!(r.json()["active"], true);
    let r = post(
        p,
        "/oauth2/revoke",
        Some(("enc", "enc-secret")),
        &[("token", &tok)],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(api(p, "GET", "/api/x", &tok).await.status, 401);
}

/// Serves one body on every path until dropped.
struct StaticServer {
    addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl StaticServer {
    async fn start(body: String) -> StaticServer {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            loop {
                let conn = tokio::select! {
                    _ = &mut rx => return,
                    c = listener.accept() => c,
                };
                let Ok((mut s, _)) = conn else { continue };
                let body = body.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf).await;
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = s.write_all(resp.as_bytes()).await;
                });
            }
        });
        StaticServer {
            addr,
            stop: Some(tx),
        }
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_key_jwt_with_a_remote_jwks_fails_closed() {
    let key = client_key();
    let jwks = json!({"keys": [key.to_value(false).unwrap()]}).to_string();
    let srv = StaticServer::start(jwks).await;
    let more = format!(
        "\n[[token_service.clients]]\nclient_id = \"remote\"\njwks_uri = \"http://{}/jwks.json\"\nscopes = [\"read\"]\n",
        srv.addr
    );
    // The extra client goes after the standard ones.
    let up = Upstream::start("u").await;
    let dir = tempfile::tempdir().unwrap();
    let ck = client_key();
    let body = format!(
        "{}{more}",
        config(dir.path(), &embedded(dir.path()), "", up.addr, &ck)
    );
    let gw = Gateway::start(&body).await;
    let p = gw.port;
    let now = tokengate::store::now_unix();
    let send = |jti: &'static str| {
        let a = assertion(
            &key,
            json!({"iss": "remote", "sub": "remote", "aud": ISSUER, "exp": now + 60, "jti": jti}),
            json!({}),
        );
        async move {
            post(
                p,
                "/oauth2/token",
                None,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", "remote"),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", &a),
                ],
            )
            .await
        }
    };
    assert_eq!(send("r1").await.status, 200);
    // O25: the JWKS URI goes down and nothing is cached: fail closed for that client only.
    drop(srv);
    let r = admin_post(gw.admin_port, "/admin/jwks/flush").await;
    assert_eq!(r.status, 200);
    assert_oauth_error(&send("r2").await, 401, "invalid_client");
    assert_eq!(cc(p, "svc", "svc-secret", None).await.status, 200);
}

/// One request from another loopback source address (127.0.0.0/8 is all local on Linux).
async fn request_from(
    src: &str,
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Resp {
    use http_body_util::{BodyExt, Full};
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(format!("{src}:0").parse().unwrap()).unwrap();
    let stream = sock.connect(([127, 0, 0, 1], port).into()).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut b = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "gw");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = sender
        .send_request(
            b.body(Full::new(bytes::Bytes::from(body.to_string())))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Resp {
        status,
        headers,
        body,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_addresses_ip_binding_and_distributed_guessing() {
    let w = world(None, "").await;
    let p = w.gw.port;
    // A token bound to 127.0.0.1 (client opq has bind_client_ip) is refused from 127.0.0.2.
    let t = cc(p, "opq", "opq-secret", None).await.json();
    let tok = t["access_token"].as_str().unwrap().to_string();
    let bearer = format!("Bearer {tok}");
    assert_eq!(api(p, "GET", "/api/x", &tok).await.status, 200);
    let r = request_from(
        "127.0.0.2",
        p,
        "GET",
        "/api/x",
        &[("authorization", &bearer)],
        "",
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["errorCode"], "token_binding_mismatch");
    // O10: guessing svc's secret from 127.0.0.3 locks that address out, not the real client.
    let wrong = basic("svc", "guess");
    let ct = ("content-type", "application/x-www-form-urlencoded");
    for _ in 0..6 {
        let r = request_from(
            "127.0.0.3",
            p,
            "POST",
            "/oauth2/token",
            &[ct, ("authorization", &wrong)],
            "grant_type=client_credentials",
        )
        .await;
        assert!(r.status == 401 || r.status == 429);
    }
    let right = basic("svc", "svc-secret");
    let r = request_from(
        "127.0.0.3",
        p,
        "POST",
        "/oauth2/token",
        &[ct, ("authorization", &right)],
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(r.status, 429);
    assert_eq!(cc(p, "svc", "svc-secret", None).await.status, 200);
}
