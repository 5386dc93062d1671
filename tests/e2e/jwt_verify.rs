//! jwt_verify over real sockets, with tokens minted by independent implementations
//! (joserfc, jwcrypto) through tests/fixtures/jose_peer.py.

use crate::harness::*;
use serde_json::{json, Value};
use tokengate::jose::{b64_encode, Jwk};

/// Run a batch of requests through the Python peer.
pub fn peer(reqs: &[Value]) -> Vec<Value> {
    run_script("jose_peer.py", reqs)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn sign_req(lib: &str, key: &Value, alg: &str, claims: &Value, header: Value) -> Value {
    json!({"lib": lib, "op": "sign", "key": key, "alg": alg, "header": header,
           "payload": b64_encode(claims.to_string().as_bytes())})
}

pub fn gen(kty: &str, bits: Option<usize>, crv: Option<&str>, kid: &str) -> Jwk {
    let crv = crv.map(|c| tokengate::jose::Curve::from_name(c).unwrap());
    Jwk::generate(kty, bits, crv).unwrap().with_kid(kid)
}

pub fn private(k: &Jwk) -> Value {
    k.to_value(true).unwrap()
}

pub fn public(k: &Jwk) -> Value {
    k.to_value(false).unwrap()
}

pub fn public_set(keys: &[&Jwk]) -> String {
    json!({"keys": keys.iter().map(|k| public(k)).collect::<Vec<_>>()}).to_string()
}

fn claims(sub: &str) -> Value {
    let t = now();
    json!({"sub": sub, "iss": "https://idp.example", "aud": ["api", "other"], "iat": t, "exp": t + 300,
           "roles": ["reader", "admin"], "scope": "read write", "tenant": {"id": "t1"}})
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_jws_alg_from_both_peers() {
    let up = Upstream::start("u").await;
    let asym: Vec<(&str, Jwk)> = vec![
        ("RS256", gen("RSA", Some(2048), None, "rs")),
        ("RS384", gen("RSA", Some(2048), None, "rs384")),
        ("RS512", gen("RSA", Some(2048), None, "rs512")),
        ("PS256", gen("RSA", Some(2048), None, "ps")),
        ("PS384", gen("RSA", Some(2048), None, "ps384")),
        ("PS512", gen("RSA", Some(2048), None, "ps512")),
        ("ES256", gen("EC", None, Some("P-256"), "es256")),
        ("ES384", gen("EC", None, Some("P-384"), "es384")),
        ("ES512", gen("EC", None, Some("P-521"), "es512")),
        ("EdDSA", gen("OKP", None, Some("Ed25519"), "ed")),
    ];
    let hs: Vec<(&str, Jwk)> = vec![
        ("HS256", gen("oct", Some(256), None, "hs256")),
        ("HS384", gen("oct", Some(384), None, "hs384")),
        ("HS512", gen("oct", Some(512), None, "hs512")),
    ];
    let asym_set = public_set(&asym.iter().map(|(_, k)| k).collect::<Vec<_>>());
    let hs_set =
        json!({"keys": hs.iter().map(|(_, k)| private(k)).collect::<Vec<_>>()}).to_string();
    let gw = Gateway::start(&format!(
        r#"
[upstreams.pool]
targets = ["{up}"]

[[routes]]
name = "asym"
match = {{ path_prefix = "/asym" }}
upstream = "pool"
policies = [{{ type = "jwt_verify", algorithms = ["RS256","RS384","RS512","PS256","PS384","PS512","ES256","ES384","ES512","EdDSA"], keys = {{ jwks = '{asym_set}' }}, issuers = ["https://idp.example"], audiences = ["api"], claims_to_headers = [{{ claim = "sub", header = "x-user" }}] }}]

[[routes]]
name = "hs"
match = {{ path_prefix = "/hs" }}
upstream = "pool"
policies = [{{ type = "jwt_verify", algorithms = ["HS256","HS384","HS512"], keys = {{ jwks = '{hs_set}' }}, claims_to_headers = [{{ claim = "sub", header = "x-user" }}] }}]
"#,
        up = up.addr
    ))
    .await;
    let mut reqs = Vec::new();
    let mut expect = Vec::new();
    for (i, (alg, k)) in asym.iter().chain(hs.iter()).enumerate() {
        let lib = if i % 2 == 0 { "joserfc" } else { "jwcrypto" };
        let sub = format!("{lib}-{alg}");
        reqs.push(sign_req(
            lib,
            &private(k),
            alg,
            &claims(&sub),
            json!({"kid": k.kid()}),
        ));
        let path = if alg.starts_with("HS") {
            "/hs/x"
        } else {
            "/asym/x"
        };
        expect.push((path, sub));
    }
    let toks = peer(&reqs);
    for (t, (path, sub)) in toks.iter().zip(expect) {
        let tok = t["token"].as_str().unwrap();
        let r = request(gw.port, "GET", path, &[("authorization", &bearer(tok))], "").await;
        assert_eq!(
            r.status,
            200,
            "{sub}: {:?}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["headers"]["x-user"][0], sub.as_str());
    }
    // An HS token on the asymmetric route: the config fixes the algorithms, not the token.
    let hs_tok = toks.last().unwrap()["token"].as_str().unwrap();
    let r = request(
        gw.port,
        "GET",
        "/asym/x",
        &[("authorization", &bearer(hs_tok))],
        "",
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["errorCode"], "algorithm_not_allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwe_and_nested_tokens() {
    let up = Upstream::start("u").await;
    let sig = gen("EC", None, Some("P-256"), "sig");
    let rsa = gen("RSA", Some(2048), None, "enc-rsa");
    let ec = gen("EC", None, Some("P-384"), "enc-ec");
    let dir = gen("oct", Some(256), None, "dir");
    let dec_set = json!({"keys": [private(&rsa), private(&ec)]}).to_string();
    let gw = Gateway::start(&format!(
        r#"
[upstreams.pool]
targets = ["{up}"]

[[routes]]
name = "jwe"
match = {{ path_prefix = "/jwe" }}
upstream = "pool"
policies = [{{ type = "jwt_verify", forms = ["jwe"], allow_unsigned_jwe = true, key_algorithms = ["RSA-OAEP-256", "ECDH-ES+A256KW"], encryptions = ["A256GCM", "A128CBC-HS256"], decryption_keys = {{ jwks = '{dec_set}' }}, claims_to_headers = [{{ claim = "sub", header = "x-user" }}] }}]

[[routes]]
name = "nested"
match = {{ path_prefix = "/nested" }}
upstream = "pool"
policies = [{{ type = "jwt_verify", forms = ["nested"], algorithms = ["ES256"], keys = {{ jwks = '{sig_set}' }}, key_algorithms = ["RSA-OAEP-256", "ECDH-ES+A256KW"], encryptions = ["A256GCM"], decryption_keys = {{ jwks = '{dec_set}' }}, claims_to_headers = [{{ claim = "sub", header = "x-user" }}] }}]

[[routes]]
name = "dir"
match = {{ path_prefix = "/dir" }}
upstream = "pool"
policies = [{{ type = "jwt_verify", forms = ["jwe"], key_algorithms = ["dir"], encryptions = ["A128CBC-HS256"], decryption_keys = {{ jwks = '{dir_set}' }} }}]
"#,
        up = up.addr,
        sig_set = public_set(&[&sig]),
        dir_set = json!({"keys": [private(&dir)]}),
    ))
    .await;
    let c = claims("alice");
    let payload = b64_encode(c.to_string().as_bytes());
    let toks = peer(&[
        json!({"lib": "joserfc", "op": "encrypt", "key": public(&rsa), "alg": "RSA-OAEP-256", "enc": "A256GCM", "payload": payload, "header": {"kid": "enc-rsa"}}),
        json!({"lib": "jwcrypto", "op": "encrypt", "key": public(&ec), "alg": "ECDH-ES+A256KW", "enc": "A128CBC-HS256", "payload": payload, "header": {"kid": "enc-ec"}}),
        sign_req(
            "joserfc",
            &private(&sig),
            "ES256",
            &c,
            json!({"kid": "sig"}),
        ),
        json!({"lib": "jwcrypto", "op": "encrypt", "key": private(&dir), "alg": "dir", "enc": "A128CBC-HS256", "payload": payload}),
    ]);
    let jws = toks[2]["token"].as_str().unwrap();
    let nested = peer(&[
        json!({"lib": "jwcrypto", "op": "encrypt", "key": public(&ec), "alg": "ECDH-ES+A256KW", "enc": "A256GCM", "payload": b64_encode(jws.as_bytes()), "header": {"kid": "enc-ec", "cty": "JWT"}}),
    ]);
    for (path, t) in [
        ("/jwe/a", &toks[0]),
        ("/jwe/b", &toks[1]),
        ("/nested/c", &nested[0]),
        ("/dir/d", &toks[3]),
    ] {
        let tok = t["token"].as_str().unwrap();
        let r = request(gw.port, "GET", path, &[("authorization", &bearer(tok))], "").await;
        assert_eq!(
            r.status,
            200,
            "{path}: {:?}",
            String::from_utf8_lossy(&r.body)
        );
        if !path.starts_with("/dir") {
            assert_eq!(r.json()["headers"]["x-user"][0], "alice", "{path}");
        }
    }
    // A plain JWE (no signature) on the nested-only route is refused.
    let tok = toks[0]["token"].as_str().unwrap();
    let r = request(
        gw.port,
        "GET",
        "/nested/x",
        &[("authorization", &bearer(tok))],
        "",
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["errorCode"], "token_malformed");
    // A JWS on the JWE route: not an accepted form.
    let r = request(
        gw.port,
        "GET",
        "/jwe/x",
        &[("authorization", &bearer(jws))],
        "",
    )
    .await;
    assert_eq!(r.status, 401);
    // Tampered ciphertext: one error for every decryption failure, no detail.
    let mut bad = tok.to_string();
    let cut = bad.rfind('.').unwrap() - 3;
    bad.replace_range(
        cut..cut + 1,
        if &bad[cut..cut + 1] == "A" { "B" } else { "A" },
    );
    let r = request(
        gw.port,
        "GET",
        "/jwe/x",
        &[("authorization", &bearer(&bad))],
        "",
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["errorCode"], "decryption_failed");
    assert_eq!(r.json()["message"], "the token is invalid");
}

struct Fixture {
    gw: Gateway,
    _up: Upstream,
    rs: Jwk,
}

async fn rules_gateway() -> Fixture {
    let up = Upstream::start("u").await;
    let rs = gen("RSA", Some(2048), None, "k1");
    let gw = Gateway::start(&format!(
        r#"
[upstreams.pool]
targets = ["{up}"]

[policies.verify]
type = "jwt_verify"
algorithms = ["RS256"]
keys = {{ jwks = '{set}' }}
sources = [{{ header = "authorization", prefix = "Bearer " }}, {{ cookie = "at" }}, {{ form = "access_token" }}]
issuers = ["https://idp.example"]
audiences = ["api"]
subject = {{ prefix = "user-" }}
required_claims = ["tenant.id"]
prohibited_claims = ["impersonator"]
claims = {{ "tenant.id" = ["t1", "t2"] }}
contains = {{ scope = ["read"] }}
max_lifetime = "1h"
clock_skew = "5s"
realm = "api"
max_token_size = "4KiB"
identity_claim = "sub"
acl = {{ roles = ["reader"], methods = {{ DELETE = {{ roles = ["admin"], scopes = ["delete"] }} }} }}
claims_to_headers = [
  {{ claim = "sub", header = "x-user" }},
  {{ claim = "roles", header = "x-roles" }},
  {{ claim = "roles", header = "x-roles-json", format = "json" }},
  {{ claim = "roles", header = "x-role", format = "repeat" }},
  {{ claim = "missing", header = "x-missing" }},
]
payload_header = "x-jwt-payload"
forward_token = false

[[routes]]
name = "api"
match = {{ path_prefix = "/api" }}
upstream = "pool"
policies = [
  {{ use = "verify" }},
  {{ type = "headers", when = {{ var = "claims.roles", equals = "admin" }}, request = {{ set = {{ "x-is-admin" = "yes" }} }} }},
]

[[routes]]
name = "shadow"
match = {{ path_prefix = "/shadow" }}
upstream = "pool"
policies = [{{ type = "jwt_verify", enabled = "shadow", algorithms = ["RS256"], keys = {{ jwks = '{set}' }}, claims_to_headers = [{{ claim = "sub", header = "x-user" }}] }}]
"#,
        up = up.addr,
        set = public_set(&[&rs]),
    ))
    .await;
    Fixture { gw, _up: up, rs }
}

fn with(base: &Value, f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut v = base.clone();
    f(v.as_object_mut().unwrap());
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_codes_acl_headers_and_shadow() {
    let fx = rules_gateway().await;
    let port = fx.gw.port;
    let t = now();
    let good = claims("user-1");
    let other_key = gen("RSA", Some(2048), None, "k1");
    let cases: Vec<(&str, Value, Value, &Jwk)> = vec![
        ("ok", good.clone(), json!({"kid": "k1"}), &fx.rs),
        (
            "token_expired",
            with(&good, |m| {
                m.insert("exp".into(), json!(t - 60));
            }),
            json!({"kid": "k1"}),
            &fx.rs,
        ),
        (
            "token_not_yet_valid",
            with(&good, |m| {
                m.insert("nbf".into(), json!(t + 600));
            }),
            json!({"kid": "k1"}),
            &fx.rs,
        ),
        (
            "token_too_old",
            with(&good, |m| {
                m.insert("exp".into(), json!(t + 7200));
            }),
            json!({"kid": "k1"}),
            &fx.rs,
        ),
        (
            "issuer_mismatch",
            with(&good, |m| {
                m.insert("iss".into(), json!("https://evil"));
            }),
            json!({"kid": "k1"}),
            &fx.rs,
        ),
        (
            "audience_mismatch",
            with(&good, |m| {
                m.insert("aud".into(), json!("web"));
            }),
            json!({"kid": "k1"}),
            &fx.rs,
        ),
        (
            "subject_mismatch",
            with(&good, |m| {
                m.insert("sub".into(), json!("svc-1"));
            }),
            json!({"kid": "k1"}),
            &fx.rs,
        ),
        (
            "claim_missing",
            with(&good, |m| {
                m.remove("tenant");
            }),
            json!({"kid": "k1"}),
            &fx.rs,
        ),
        (
            "claim_prohibited",
            with(&good, |m| {
                m.insert("impersonator".into(), json!("x"));
            }),
            json!({"kid": "k1"}),
            &fx.rs,
        ),
        (
            "claim_mismatch",
            with(&good, |m| {
                m.insert("tenant".into(), json!({"id": "t9"}));
            }),
            json!({"kid": "k1"}),
            &fx.rs,
        ),
        (
            "claim_mismatch",
            with(&good, |m| {
                m.insert("scope".into(), json!("write"));
            }),
            json!({"kid": "k1"}),
            &fx.rs,
        ),
        (
            "claim_mismatch",
            with(&good, |m| {
                m.insert("aud".into(), json!(42));
            }),
            json!({"kid": "k1"}),
            &fx.rs,
        ),
        (
            "access_denied",
            with(&good, |m| {
                m.insert("roles".into(), json!(["guest"]));
            }),
            json!({"kid": "k1"}),
            &fx.rs,
        ),
        (
            "signature_invalid",
            good.clone(),
            json!({"kid": "k1"}),
            &other_key,
        ),
        (
            "no_matching_key",
            good.clone(),
            json!({"kid": "unknown"}),
            &fx.rs,
        ),
    ];
    let reqs: Vec<Value> = cases
        .iter()
        .map(|(_, c, h, k)| sign_req("joserfc", &private(k), "RS256", c, h.clone()))
        .collect();
    let toks = peer(&reqs);
    let tok = |i: usize| toks[i]["token"].as_str().unwrap().to_string();
    for (i, (code, ..)) in cases.iter().enumerate() {
        let r = request(
            port,
            "GET",
            "/api/x",
            &[("authorization", &bearer(&tok(i)))],
            "",
        )
        .await;
        if *code == "ok" {
            assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
            continue;
        }
        let want = if *code == "access_denied" { 403 } else { 401 };
        assert_eq!(r.status, want, "{code}");
        assert_eq!(r.json()["errorCode"], *code, "case {i}");
        let challenge = r.header("www-authenticate").unwrap();
        let err = if *code == "access_denied" {
            "insufficient_scope"
        } else {
            "invalid_token"
        };
        assert_eq!(challenge, format!("Bearer realm=\"api\", error=\"{err}\""));
    }
    let good_tok = tok(0);

    // The upstream sees mapped claims, not the token, and no forged x-user.
    let r = request(
        port,
        "GET",
        "/api/x",
        &[
            ("authorization", &bearer(&good_tok)),
            ("x-user", "forged"),
            ("x-missing", "forged"),
        ],
        "",
    )
    .await;
    let h = &r.json()["headers"];
    assert_eq!(h["x-user"], json!(["user-1"]));
    assert_eq!(h["x-roles"], json!(["reader, admin"]));
    assert_eq!(h["x-roles-json"], json!(["[\"reader\",\"admin\"]"]));
    assert_eq!(h["x-role"], json!(["reader", "admin"]));
    assert!(
        h.get("x-missing").is_none(),
        "spoofed header removed even when the claim is absent"
    );
    assert!(h.get("authorization").is_none(), "forward_token = false");
    assert_eq!(
        h["x-is-admin"],
        json!(["yes"]),
        "claims drive later conditions"
    );
    let payload = tokengate::jose::b64_decode(h["x-jwt-payload"][0].as_str().unwrap()).unwrap();
    let payload: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(payload["sub"], "user-1");

    // Cookie source; two different tokens -> refused; none -> token_missing.
    let r = request(
        port,
        "GET",
        "/api/x",
        &[("cookie", &format!("a=1; at={good_tok}"))],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    let r = request(
        port,
        "GET",
        "/api/x",
        &[
            ("cookie", &format!("at={}", tok(1))),
            ("authorization", &bearer(&good_tok)),
        ],
        "",
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["errorCode"], "token_ambiguous");
    let r = get(port, "/api/x").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["errorCode"], "token_missing");
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"api\""));
    let r = request(
        port,
        "GET",
        "/api/x",
        &[("authorization", "Bearer a.b")],
        "",
    )
    .await;
    assert_eq!(r.json()["errorCode"], "token_malformed");
    let huge = format!("{}.{}.{}", "a".repeat(3000), "b".repeat(2000), "c");
    let r = request(
        port,
        "GET",
        "/api/x",
        &[("authorization", &bearer(&huge))],
        "",
    )
    .await;
    assert_eq!(r.json()["errorCode"], "token_too_large");

    // Form field source (RFC 6750 §2.2): verified, then removed from the body sent upstream.
    let r = request(
        port,
        "POST",
        "/api/x",
        &[("content-type", "application/x-www-form-urlencoded")],
        &format!("a=1&access_token={good_tok}&b=two+words"),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["body"], "a=1&b=two+words");
    assert_eq!(r.json()["headers"]["x-user"][0], "user-1");

    // Method-level ACL: DELETE needs the admin role and the delete scope.
    let r = request(
        port,
        "DELETE",
        "/api/x",
        &[("authorization", &bearer(&good_tok))],
        "",
    )
    .await;
    assert_eq!(r.status, 403, "scope delete missing");

    // Shadow: invalid tokens pass, decisions are recorded, nothing is changed upstream.
    let r = request(
        port,
        "GET",
        "/shadow/x",
        &[("authorization", &bearer(&tok(13)))],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.json()["headers"].get("x-user").is_none());
    let r = get(port, "/shadow/x").await;
    assert_eq!(r.status, 200);
    // Metrics are counted in the logging phase, just after the response is written.
    for want in [
        r#"tokengate_policy_decisions_total{mode="shadow",outcome="signature_invalid",policy="jwt_verify",route="shadow"} 1"#,
        r#"tokengate_policy_decisions_total{mode="shadow",outcome="token_missing",policy="jwt_verify",route="shadow"} 1"#,
        r#"tokengate_policy_decisions_total{mode="enforce",outcome="token_expired",policy="verify",route="api"} 1"#,
    ] {
        eventually(want, || async {
            String::from_utf8_lossy(&get(fx.gw.admin_port, "/metrics").await.body).contains(want)
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_cache_survives_an_unrelated_reload() {
    let fx = rules_gateway().await;
    let tok = peer(&[sign_req(
        "jwcrypto",
        &private(&fx.rs),
        "RS256",
        &claims("user-2"),
        json!({"kid": "k1"}),
    )]);
    let tok = tok[0]["token"].as_str().unwrap();
    let r = request(
        fx.gw.port,
        "GET",
        "/api/x",
        &[("authorization", &bearer(tok))],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(fx.gw.state.shared.verified_entries(), 1);
    // Add a route: the policy config is unchanged, so its cache stays warm.
    let text = std::fs::read_to_string(&fx.gw.config).unwrap()
        + "\n[[routes]]\nname = \"extra\"\nmatch = { path_exact = \"/extra\" }\nrespond = { status = 204 }\n";
    std::fs::write(&fx.gw.config, text).unwrap();
    eventually("reloaded", || async { fx.gw.generation() == 2 }).await;
    assert_eq!(fx.gw.state.shared.verified_entries(), 1);
    let r = request(
        fx.gw.port,
        "GET",
        "/api/x",
        &[("authorization", &bearer(tok))],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    // Change the policy: its old cache is dropped.
    let text = std::fs::read_to_string(&fx.gw.config)
        .unwrap()
        .replace("clock_skew = \"5s\"", "clock_skew = \"6s\"");
    std::fs::write(&fx.gw.config, text).unwrap();
    eventually("reloaded again", || async { fx.gw.generation() == 3 }).await;
    assert_eq!(fx.gw.state.shared.verified_entries(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_edge_cases_and_log_hygiene() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fx = rules_gateway().await;
    let port = fx.gw.port;
    let tok = peer(&[sign_req(
        "joserfc",
        &private(&fx.rs),
        "RS256",
        &claims("user-9"),
        json!({"kid": "k1"}),
    )]);
    let tok = tok[0]["token"].as_str().unwrap().to_string();
    // H72: the scheme is case-insensitive; extra spaces are trimmed.
    for h in [
        format!("bearer {tok}"),
        format!("BEARER  {tok}"),
        format!("Bearer {tok} "),
    ] {
        let r = request(port, "GET", "/api/x", &[("authorization", &h)], "").await;
        assert_eq!(r.status, 200, "{h:?}");
    }
    // H71: two tokens in one header, or two Authorization headers: refused.
    let r = request(
        port,
        "GET",
        "/api/x",
        &[("authorization", &format!("Bearer {tok}, Bearer {tok}x"))],
        "",
    )
    .await;
    assert_eq!(r.status, 401);
    let r = request(
        port,
        "GET",
        "/api/x",
        &[
            ("authorization", &format!("Bearer {tok}")),
            ("authorization", "Bearer other"),
        ],
        "",
    )
    .await;
    assert_eq!(r.json()["errorCode"], "token_ambiguous");
    // H77: every crypto failure looks the same to the client.
    // Flip a character inside the signature (not the last one, whose trailing bits strict
    // base64url pins: changing it may make the token malformed rather than invalid).
    let mut bad_sig = tok.clone();
    let at = bad_sig.len() - 10;
    let c = if &bad_sig[at..at + 1] == "A" {
        "B"
    } else {
        "A"
    };
    bad_sig.replace_range(at..at + 1, c);
    let unknown_kid = peer(&[sign_req(
        "joserfc",
        &private(&fx.rs),
        "RS256",
        &claims("user-9"),
        json!({"kid": "zz"}),
    )]);
    let a = request(
        port,
        "GET",
        "/api/x",
        &[("authorization", &format!("Bearer {bad_sig}"))],
        "",
    )
    .await;
    let b = request(
        port,
        "GET",
        "/api/x",
        &[(
            "authorization",
            &format!("Bearer {}", unknown_kid[0]["token"].as_str().unwrap()),
        )],
        "",
    )
    .await;
    assert_eq!((a.status, b.status), (401, 401));
    assert_eq!(a.json()["message"], b.json()["message"]);
    assert_eq!(a.header("www-authenticate"), b.header("www-authenticate"));

    // R22/H74: CL + TE on a protected route: never reaches the upstream unauthenticated.
    let hits = fx._up.hits.load(std::sync::atomic::Ordering::SeqCst);
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(
        b"POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 60\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /api/y HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 8192];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf))
        .await
        .map(|r| r.unwrap_or(0))
        .unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(!text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(
        fx._up.hits.load(std::sync::atomic::Ordering::SeqCst),
        hits,
        "nothing proxied"
    );

    // H78: no token (or a piece of one) in the access log.
    let log_path = fx.gw.dir.path().join("access.log");
    eventually("access log", || async {
        std::fs::read_to_string(&log_path).is_ok_and(|s| s.lines().count() >= 6)
    })
    .await;
    let log = std::fs::read_to_string(&log_path).unwrap();
    let sig = tok.rsplit('.').next().unwrap();
    assert!(
        !log.contains(&sig[..20]),
        "a token signature leaked into the access log"
    );
    assert!(
        !log.contains("eyJ"),
        "something token-like in the access log"
    );
}

/// A denial's detail (which rule failed) reaches the access log, never the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denial_detail_goes_to_the_access_log_not_the_client() {
    let k = gen("EC", None, Some("P-256"), "k1");
    let gw = Gateway::start(&format!(
        r#"
[[routes]]
name = "tenant"
respond = {{ status = 200 }}
policies = [{{ type = "jwt_verify", algorithms = ["ES256"], keys = {{ jwks = '{set}' }}, claims = {{ tenant = "acme" }} }}]
"#,
        set = public_set(&[&k])
    ))
    .await;
    let payload = json!({"sub": "a", "tenant": "other", "exp": now() + 300}).to_string();
    let t = tokengate::jose::sign(
        payload.as_bytes(),
        &k,
        tokengate::jose::Alg::ES256,
        &serde_json::Map::new(),
    )
    .unwrap();
    let r = request(gw.port, "GET", "/", &[("authorization", &bearer(&t))], "").await;
    assert_eq!(r.status, 401);
    let body = String::from_utf8_lossy(&r.body).to_string();
    assert!(!body.contains("tenant"), "{body}");
    let log = gw.dir.path().join("access.log");
    eventually("the access log line", || async {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("error_detail"))
    })
    .await;
    let line = std::fs::read_to_string(&log).unwrap();
    let entry: Value = serde_json::from_str(line.lines().last().unwrap()).unwrap();
    assert_eq!(entry["error_code"], "claim_mismatch");
    assert_eq!(entry["error_detail"], "claims rule: tenant");
}
