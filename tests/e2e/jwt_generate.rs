//! jwt_generate over real sockets: tokens minted by the gateway, sent to a loopback upstream
//! that echoes them, then checked by independent implementations (joserfc, jwcrypto).

use crate::harness::*;
use crate::jwt_verify::{gen, peer, private, public, public_set};
use serde_json::{json, Value};
use tokengate::jose::b64_encode;

fn bearer_of(r: &Resp, header: &str) -> String {
    let v = r.json();
    let h = v["headers"][header][0]
        .as_str()
        .unwrap_or_else(|| panic!("no {header}: {v}"));
    h.strip_prefix("Bearer ").unwrap_or(h).to_string()
}

fn verify(lib: &str, key: &Value, alg: &str, token: &str) -> Value {
    let out = peer(&[json!({"lib": lib, "op": "verify", "key": key, "alg": alg, "token": token})]);
    let payload = tokengate::jose::b64_decode(out[0]["payload"].as_str().unwrap()).unwrap();
    serde_json::from_slice(&payload).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_tokens_with_typed_claims_verified_by_peers() {
    let up = Upstream::start("u").await;
    let rs = gen("RSA", Some(2048), None, "rs");
    let es = gen("EC", None, Some("P-256"), "es");
    let ed = gen("OKP", None, Some("Ed25519"), "ed");
    let hs = gen("oct", Some(256), None, "hs");
    let mut routes = String::new();
    for (name, alg, key) in [
        ("rs", "RS256", &rs),
        ("es", "ES256", &es),
        ("ed", "EdDSA", &ed),
        ("hs", "HS256", &hs),
    ] {
        routes.push_str(&format!(
            r#"
[[routes]]
name = "{name}"
match = {{ path_prefix = "/{name}" }}
upstream = "pool"
[[routes.policies]]
type = "jwt_generate"
algorithm = "{alg}"
key = {{ jwks = '{key}' }}
typ = "at+jwt"
header = {{ x-tenant = "${{query.tenant}}" }}
expires_in = "15m"
jti = "uuid"
claims_from = "header.x-base-claims"
ignore_unresolved = false
[routes.policies.claims]
iss = "https://gateway.example"
aud = ["svc-a", "svc-b"]
sub = {{ from = "header.x-user", type = "string" }}
tenant = {{ from = "query.tenant" }}
roles = {{ from = "header.x-roles", type = "array" }}
level = {{ from = "header.x-level", type = "number", default = 1 }}
beta = {{ from = "cookie.beta", type = "boolean", default = false }}
profile = {{ from = "header.x-profile", type = "json", default = {{}} }}
ip = {{ from = "client_ip" }}
note = {{ from = "header.x-note", type = "string", default = "none" }}
"#,
            key = private(key),
        ));
    }
    let gw = Gateway::start(&format!(
        "[upstreams.pool]\ntargets = [\"{}\"]\n{routes}",
        up.addr
    ))
    .await;
    let hostile = r#"x", "admin": true, "y": "{\"a\":1}"#;
    for (i, (name, alg, key)) in [
        ("rs", "RS256", &rs),
        ("es", "ES256", &es),
        ("ed", "EdDSA", &ed),
        ("hs", "HS256", &hs),
    ]
    .into_iter()
    .enumerate()
    {
        let r = request(
            gw.port,
            "GET",
            &format!("/{name}/x?tenant=acme"),
            &[
                ("x-user", "alice"),
                ("x-roles", "reader, writer"),
                ("x-level", "3"),
                ("cookie", "beta=true"),
                ("x-profile", r#"{"team":"core","n":[1,2]}"#),
                ("x-note", hostile),
                (
                    "x-base-claims",
                    r#"{"base":"yes","exp":1,"sub":"overridden"}"#,
                ),
            ],
            "",
        )
        .await;
        assert_eq!(
            r.status,
            200,
            "{name}: {:?}",
            String::from_utf8_lossy(&r.body)
        );
        let tok = bearer_of(&r, "authorization");
        // joserfc refuses unregistered header parameters (x-tenant): jwcrypto checks these.
        let _ = i;
        let lib = "jwcrypto";
        let key = if alg == "HS256" {
            private(key)
        } else {
            public(key)
        };
        let c = verify(lib, &key, alg, &tok);
        assert_eq!(c["iss"], "https://gateway.example");
        assert_eq!(c["aud"], json!(["svc-a", "svc-b"]));
        assert_eq!(c["sub"], "alice");
        assert_eq!(c["tenant"], "acme");
        assert_eq!(c["roles"], json!(["reader", "writer"]));
        assert_eq!(c["level"], 3);
        assert_eq!(c["beta"], true);
        assert_eq!(c["profile"], json!({"team": "core", "n": [1, 2]}));
        assert_eq!(c["ip"], "127.0.0.1");
        assert_eq!(c["note"], hostile, "hostile text stays one plain string");
        assert!(c.get("admin").is_none());
        assert_eq!(c["base"], "yes");
        assert_eq!(
            c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(),
            900,
            "managed exp wins"
        );
        assert_eq!(c["jti"].as_str().unwrap().len(), 36);
        // The protected header, checked by decoding it.
        let h: Value = serde_json::from_slice(
            &tokengate::jose::b64_decode(tok.split('.').next().unwrap()).unwrap(),
        )
        .unwrap();
        assert_eq!(h["typ"], "at+jwt");
        assert_eq!(h["x-tenant"], "acme");
        assert_eq!(h["alg"], alg);
    }

    // A value with no default: the request fails with a stable code.
    let r = request(gw.port, "GET", "/es/x?tenant=acme", &[("x-roles", "r")], "").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["errorCode"], "value_unresolved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_and_per_client_encryption() {
    let up = Upstream::start("u").await;
    let sig = gen("EC", None, Some("P-256"), "sig");
    let rsa = gen("RSA", Some(2048), None, "gw-enc");
    // Two clients, each with its own encryption key published at its own JWKS URL.
    let c1 = gen("EC", None, Some("P-256"), "c1");
    let c2 = gen("RSA", Some(2048), None, "c2");
    let idp = crate::jwks::JwksServer::default();
    idp.set("/client1/jwks.json", &[&c1]);
    idp.set("/client2/jwks.json", &[&c2]);
    let addr = idp.start().await;
    let gw = Gateway::start(&format!(
        r#"
[upstreams.pool]
targets = ["{up}"]

[[routes]]
name = "nested"
match = {{ path_prefix = "/nested" }}
upstream = "pool"
policies = [{{ type = "jwt_generate", algorithm = "ES256", key = {{ jwks = '{sig}' }}, expires_in = "5m", claims = {{ sub = {{ from = "header.x-user" }} }}, encrypt = {{ key = {{ jwks = '{rsa_pub}' }}, key_algorithm = "RSA-OAEP-256", encryption = "A256GCM" }} }}]

[[routes]]
name = "per-client"
match = {{ path_prefix = "/client" }}
upstream = "pool"
policies = [{{ type = "jwt_generate", algorithm = "ES256", key = {{ jwks = '{sig}' }}, expires_in = "5m", claims = {{ sub = {{ from = "header.x-client" }} }}, encrypt = {{ key = {{ per_client_url = "http://{addr}/${{header.x-client}}/jwks.json", per_client_allow = ["http://{addr}/client*/jwks.json"] }}, key_algorithm = "{ka}", encryption = "A128CBC-HS256" }}, output = {{ header = "x-client-token" }} }}]

[[routes]]
name = "per-client-rsa"
match = {{ path_prefix = "/rsa-client" }}
upstream = "pool"
policies = [{{ type = "jwt_generate", algorithm = "ES256", key = {{ jwks = '{sig}' }}, expires_in = "5m", claims = {{ sub = {{ from = "header.x-client" }} }}, encrypt = {{ key = {{ per_client_url = "http://{addr}/${{header.x-client}}/jwks.json", per_client_allow = ["http://{addr}/client*/jwks.json"] }}, key_algorithm = "RSA-OAEP-256", encryption = "A256GCM" }}, output = {{ header = "x-client-token" }} }}]
"#,
        up = up.addr,
        sig = private(&sig),
        rsa_pub = public(&rsa),
        ka = "ECDH-ES+A128KW",
    ))
    .await;
    let r = request(gw.port, "GET", "/nested/x", &[("x-user", "bob")], "").await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let jwe = bearer_of(&r, "authorization");
    assert_eq!(jwe.split('.').count(), 5);
    let out = peer(&[
        json!({"lib": "jwcrypto", "op": "decrypt", "key": private(&rsa), "alg": "RSA-OAEP-256", "enc": "A256GCM", "token": jwe}),
    ]);
    assert_eq!(out[0]["header"]["cty"], "JWT");
    let inner = String::from_utf8(
        tokengate::jose::b64_decode(out[0]["payload"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    let c = verify("joserfc", &public(&sig), "ES256", &inner);
    assert_eq!(c["sub"], "bob");

    // Per client: each token opens only with that client's private key.
    let r = request(gw.port, "GET", "/client/x", &[("x-client", "client1")], "").await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let t1 = r.json()["headers"]["x-client-token"][0]
        .as_str()
        .unwrap()
        .to_string();
    let r = request(
        gw.port,
        "GET",
        "/rsa-client/x",
        &[("x-client", "client2")],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let t2 = r.json()["headers"]["x-client-token"][0]
        .as_str()
        .unwrap()
        .to_string();
    let out = peer(&[
        json!({"lib": "joserfc", "op": "decrypt", "key": private(&c1), "alg": "ECDH-ES+A128KW", "enc": "A128CBC-HS256", "token": t1}),
        json!({"lib": "joserfc", "op": "decrypt", "key": private(&c2), "alg": "RSA-OAEP-256", "enc": "A256GCM", "token": t2}),
    ]);
    for (o, who) in out.iter().zip(["client1", "client2"]) {
        let inner =
            String::from_utf8(tokengate::jose::b64_decode(o["payload"].as_str().unwrap()).unwrap())
                .unwrap();
        assert_eq!(
            verify("jwcrypto", &public(&sig), "ES256", &inner)["sub"],
            who
        );
    }
    // A client outside the allow-list: no key, a 503 with a stable code, nothing fetched.
    let before = idp.fetches();
    let r = request(gw.port, "GET", "/client/x", &[("x-client", "../evil")], "").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["errorCode"], "key_unavailable");
    assert_eq!(idp.fetches(), before);
    let _ = public_set(&[&sig]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minted_token_cache_and_outputs() {
    let up = Upstream::start("u").await;
    let es = gen("EC", None, Some("P-256"), "es");
    let gw = Gateway::start(&format!(
        r#"
[upstreams.pool]
targets = ["{up}"]

[[routes]]
name = "cached"
match = {{ path_prefix = "/cached" }}
upstream = "pool"
policies = [{{ type = "jwt_generate", algorithm = "ES256", key = {{ jwks = '{k}' }}, expires_in = "2s", cache = {{ refresh_at = 0.5 }}, claims = {{ sub = {{ from = "header.x-user" }} }} }}]

[[routes]]
name = "per-request"
match = {{ path_prefix = "/fresh" }}
upstream = "pool"
policies = [{{ type = "jwt_generate", algorithm = "ES256", key = {{ jwks = '{k}' }}, expires_in = "1h", jti = "uuid", claims = {{ sub = {{ from = "header.x-user" }} }} }}]

[[routes]]
name = "outputs"
match = {{ path_prefix = "/out" }}
upstream = "pool"
policies = [
  {{ type = "jwt_generate", algorithm = "ES256", key = {{ jwks = '{k}' }}, claims = {{ sub = "q" }}, output = {{ query = "access_token" }} }},
  {{ type = "jwt_generate", algorithm = "ES256", key = {{ jwks = '{k}' }}, claims = {{ sub = "r" }}, output = {{ response_header = "x-issued-token" }} }},
  {{ type = "jwt_generate", algorithm = "ES256", key = {{ jwks = '{k}' }}, claims = {{ sub = "v", nick = {{ from = "header.x-nick" }} }}, ignore_unresolved = true, output = {{ variable = "minted" }} }},
  {{ type = "headers", request = {{ set = {{ "x-from-var" = "${{var.minted}}" }} }} }},
]
"#,
        up = up.addr,
        k = private(&es),
    ))
    .await;
    let tok = |r: &Resp| bearer_of(r, "authorization");
    let a1 = tok(&request(gw.port, "GET", "/cached/1", &[("x-user", "a")], "").await);
    let a2 = tok(&request(gw.port, "GET", "/cached/2", &[("x-user", "a")], "").await);
    let b1 = tok(&request(gw.port, "GET", "/cached/3", &[("x-user", "b")], "").await);
    assert_eq!(a1, a2, "same claims: the minted token is reused");
    assert_ne!(a1, b1, "different claims: a different token");
    // Refresh at `refresh_at` of the lifetime: unit tests with explicit times
    // (src/policy/tests.rs, jwt_generate_mints_again_at_refresh_at).

    let f1 = tok(&request(gw.port, "GET", "/fresh/1", &[("x-user", "a")], "").await);
    let f2 = tok(&request(gw.port, "GET", "/fresh/2", &[("x-user", "a")], "").await);
    assert_ne!(f1, f2, "jti per request: never cached");

    let r = request(
        gw.port,
        "GET",
        "/out/x?keep=1&access_token=client-sent",
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    let q = v["query"].as_str().unwrap();
    assert!(q.starts_with("keep=1&access_token=ey"), "{q}");
    assert!(!q.contains("client-sent"));
    let issued = r.header("x-issued-token").unwrap();
    let var_tok = v["headers"]["x-from-var"][0].as_str().unwrap();
    for (t, sub) in [(issued, "r"), (var_tok, "v")] {
        let c = verify("joserfc", &public(&es), "ES256", t);
        assert_eq!(c["sub"], sub);
        assert!(c.get("nick").is_none(), "ignore_unresolved omits the claim");
        assert!(c.get("exp").is_none());
    }
    let _ = b64_encode(b"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_values_and_body_outputs() {
    let up = Upstream::start("u").await;
    let es = gen("EC", None, Some("P-256"), "es");
    let gw = Gateway::start(&format!(
        r#"
[upstreams.pool]
targets = ["{up}"]

[[routes]]
name = "field"
match = {{ path_prefix = "/field" }}
upstream = "pool"
policies = [{{ type = "jwt_generate", algorithm = "ES256", key = {{ jwks = '{k}' }}, claims = {{ sub = {{ from = "body./user/id" }}, amount = {{ from = "body./order/amount", type = "number" }}, items = {{ from = "body./order/items" }} }}, output = {{ request_body = "/auth/token" }} }}]

[[routes]]
name = "replace"
match = {{ path_prefix = "/replace" }}
upstream = "pool"
policies = [{{ type = "jwt_generate", algorithm = "ES256", key = {{ jwks = '{k}' }}, claims = {{ sub = "r" }}, output = {{ request_body = "replace" }} }}]

[[routes]]
name = "issue"
match = {{ path_exact = "/issue" }}
respond = {{ status = 200, body = "placeholder" }}
policies = [{{ type = "jwt_generate", algorithm = "ES256", key = {{ jwks = '{k}' }}, claims = {{ sub = {{ from = "header.x-user" }} }}, output = {{ response_body = true }} }}]

[[routes]]
name = "proxied-issue"
match = {{ path_prefix = "/proxied-issue" }}
upstream = "pool"
policies = [{{ type = "jwt_generate", algorithm = "ES256", key = {{ jwks = '{k}' }}, claims = {{ sub = "p" }}, output = {{ response_body = true }} }}]
"#,
        up = up.addr,
        k = private(&es),
    ))
    .await;
    let body = r#"{"user":{"id":"u-42"},"order":{"amount":"12.5","items":["a","b"]},"keep":true}"#;
    let r = request(
        gw.port,
        "POST",
        "/field/x",
        &[("content-type", "application/json")],
        body,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let sent: Value = serde_json::from_str(r.json()["body"].as_str().unwrap()).unwrap();
    assert_eq!(sent["keep"], true, "the rest of the body is kept");
    let c = verify(
        "joserfc",
        &public(&es),
        "ES256",
        sent["auth"]["token"].as_str().unwrap(),
    );
    assert_eq!(c["sub"], "u-42");
    assert_eq!(c["amount"], 12.5);
    assert_eq!(c["items"], json!(["a", "b"]));
    assert_eq!(
        r.json()["headers"]["content-length"][0],
        r.json()["body"].as_str().unwrap().len().to_string()
    );

    // A missing body value: 400 value_unresolved; a body over the buffer cap: 413.
    let r = request(
        gw.port,
        "POST",
        "/field/x",
        &[("content-type", "application/json")],
        r#"{"user":{}}"#,
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["errorCode"], "value_unresolved");
    let big = format!(r#"{{"user":{{"id":"{}"}}}}"#, "x".repeat(70 * 1024));
    let r = request(
        gw.port,
        "POST",
        "/field/x",
        &[("content-type", "application/json")],
        &big,
    )
    .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["errorCode"], "body_too_large");

    let r = request(gw.port, "POST", "/replace/x", &[], "original body").await;
    let sent = r.json()["body"].as_str().unwrap().to_string();
    assert_eq!(verify("jwcrypto", &public(&es), "ES256", &sent)["sub"], "r");
    assert_eq!(r.json()["headers"]["content-type"][0], "application/jwt");

    let r = request(gw.port, "GET", "/issue", &[("x-user", "dana")], "").await;
    assert_eq!(r.header("content-type"), Some("application/jwt"));
    let t = String::from_utf8(r.body.to_vec()).unwrap();
    assert_eq!(verify("joserfc", &public(&es), "ES256", &t)["sub"], "dana");

    let r = request(gw.port, "GET", "/proxied-issue/x", &[], "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/jwt"));
    let t = String::from_utf8(r.body.to_vec()).unwrap();
    assert_eq!(verify("joserfc", &public(&es), "ES256", &t)["sub"], "p");
}
