//! jwt_verify over real sockets, with tokens minted by independent implementations
//! (joserfc, jwcrypto) through tests/fixtures/jose_peer.py.

use crate::harness::*;
use serde_json::{json, Value};
use tokengate::jose::{b64_encode, Jwk};

/// Run a batch of requests through the Python peer.
pub fn peer(reqs: &[Value]) -> Vec<Value> {
    use std::io::Write;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jose_peer.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 is needed (scripts/setup.sh installs the peers)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(Value::Array(reqs.to_vec()).to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "peer failed");
    let v: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    for r in &v {
        assert_eq!(r["ok"], true, "peer error: {r}");
    }
    v
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
policies = [{{ type = "jwt_verify", forms = ["jwe"], key_algorithms = ["RSA-OAEP-256", "ECDH-ES+A256KW"], encryptions = ["A256GCM", "A128CBC-HS256"], decryption_keys = {{ jwks = '{dec_set}' }}, claims_to_headers = [{{ claim = "sub", header = "x-user" }}] }}]

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
