//! Key material as operators hold it, over real sockets: encoded secrets, password-protected
//! PEM keys, and signing keys served by a JWKS. Tokens are minted or checked by independent
//! implementations (joserfc, jwcrypto).

use crate::harness::*;
use crate::jwks::JwksServer;
use crate::jwt_verify::{gen, peer, public};
use serde_json::{json, Value};
use tokengate::jose::{b64_decode, b64_encode, Jwk};

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&b64_decode(payload).unwrap()).unwrap()
}

fn verify_with(lib: &str, key: &Value, alg: &str, token: &str) -> Value {
    let out = peer(&[json!({"lib": lib, "op": "verify", "key": key, "alg": alg, "token": token})]);
    let payload = b64_decode(out[0]["payload"].as_str().unwrap()).unwrap();
    serde_json::from_slice(&payload).unwrap()
}

fn bearer_of(r: &Resp) -> String {
    let v = r.json();
    let h = v["headers"]["authorization"][0]
        .as_str()
        .unwrap_or_else(|| panic!("no authorization: {v}"));
    h.strip_prefix("Bearer ").unwrap_or(h).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hex_encoded_hs256_secret_verifies_a_token_signed_with_the_raw_bytes() {
    let up = Upstream::start("u").await;
    // Bytes that are not UTF-8 text: only the decoded secret can verify.
    let raw: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(37) ^ 0xa5).collect();
    let hex: String = raw.iter().map(|b| format!("{b:02X}")).collect();
    let gw = Gateway::start(&format!(
        r#"
[upstreams.pool]
targets = ["{up}"]

[[routes]]
name = "hs"
match = {{ path_prefix = "/hs" }}
upstream = "pool"
policies = [{{ type = "jwt_verify", algorithms = ["HS256"], keys = {{ secret = "{hex}", encoding = "hex" }}, claims_to_headers = [{{ claim = "sub", header = "x-user" }}] }}]
"#,
        up = up.addr,
    ))
    .await;
    let key = json!({"kty": "oct", "k": b64_encode(&raw)});
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 300;
    let out = peer(&[
        json!({"lib": "joserfc", "op": "sign", "key": key, "alg": "HS256", "header": {},
                            "payload": b64_encode(json!({"sub": "hex-user", "exp": exp}).to_string().as_bytes())}),
    ]);
    let tok = out[0]["token"].as_str().unwrap();
    let r = request(
        gw.port,
        "GET",
        "/hs/x",
        &[("authorization", &format!("Bearer {tok}"))],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["headers"]["x-user"][0], "hex-user");
}

fn openssl(args: &[&str], input: &[u8]) -> String {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl is installed");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl {args:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_generate_signs_with_a_password_protected_pem_file() {
    let up = Upstream::start("u").await;
    let dir = tempfile::tempdir().unwrap();
    let pass = "operator pass phrase";
    let encrypted = openssl(
        &[
            "genpkey",
            "-algorithm",
            "ED25519",
            "-aes256",
            "-pass",
            &format!("pass:{pass}"),
        ],
        b"",
    );
    let public_pem = openssl(
        &["pkey", "-pubout", "-passin", &format!("pass:{pass}")],
        encrypted.as_bytes(),
    );
    let (kf, pf) = (dir.path().join("sign.pem"), dir.path().join("sign.pass"));
    std::fs::write(&kf, &encrypted).unwrap();
    std::fs::write(&pf, format!("{pass}\n")).unwrap();
    let gw = Gateway::start(&format!(
        r#"
[upstreams.pool]
targets = ["{up}"]

[[routes]]
name = "gen"
match = {{ path_prefix = "/gen" }}
upstream = "pool"
policies = [{{ type = "jwt_generate", algorithm = "EdDSA", key = {{ file = "{kf}", password_file = "{pf}" }}, expires_in = "5m", claims = {{ sub = {{ from = "header.x-user" }} }} }}]
"#,
        up = up.addr,
        kf = kf.display(),
        pf = pf.display(),
    ))
    .await;
    let r = request(gw.port, "GET", "/gen/x", &[("x-user", "erin")], "").await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let token = bearer_of(&r);
    let key = public(&Jwk::from_pem(&public_pem).unwrap());
    assert_eq!(
        verify_with("jwcrypto", &key, "EdDSA", &token)["sub"],
        "erin"
    );
    assert_eq!(claims_of(&token)["sub"], "erin");
}

fn header_of(token: &str) -> Value {
    let h = token.split('.').next().unwrap();
    serde_json::from_slice(&b64_decode(h).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_generate_signs_with_a_private_key_served_by_a_jwks() {
    let up = Upstream::start("u").await;
    // The set also holds an RSA key: the configured algorithm picks the EC one.
    let rsa = gen("RSA", Some(2048), None, "rsa-1");
    let ec = gen("EC", None, Some("P-256"), "ec-1");
    let idp = JwksServer::default();
    idp.set_private("/signing.json", &[&rsa, &ec]);
    let addr = idp.start().await;
    let gw = Gateway::start(&format!(
        r#"
[upstreams.pool]
targets = ["{up}"]

[[routes]]
name = "gen"
match = {{ path_prefix = "/gen" }}
upstream = "pool"
policies = [{{ type = "jwt_generate", algorithm = "ES256", key = {{ jwks_url = "http://{addr}/signing.json" }}, expires_in = "5m", claims = {{ sub = {{ from = "header.x-user" }} }} }}]
"#,
        up = up.addr,
    ))
    .await;
    let r = request(gw.port, "GET", "/gen/x", &[("x-user", "frank")], "").await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let token = bearer_of(&r);
    assert_eq!(header_of(&token)["kid"], "ec-1");
    assert_eq!(header_of(&token)["alg"], "ES256");
    assert_eq!(
        verify_with("joserfc", &public(&ec), "ES256", &token)["sub"],
        "frank"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_generate_refuses_a_jwks_without_private_keys() {
    let up = Upstream::start("u").await;
    let ec = gen("EC", None, Some("P-256"), "ec-pub");
    let idp = JwksServer::default();
    idp.set("/public.json", &[&ec]);
    let addr = idp.start().await;
    let gw = Gateway::start(&format!(
        r#"
[upstreams.pool]
targets = ["{up}"]

[[routes]]
name = "gen"
match = {{ path_prefix = "/gen" }}
upstream = "pool"
policies = [{{ type = "jwt_generate", algorithm = "ES256", key = {{ jwks_url = "http://{addr}/public.json" }}, claims = {{ sub = "x" }} }}]
"#,
        up = up.addr,
    ))
    .await;
    let r = request(gw.port, "GET", "/gen/x", &[], "").await;
    assert_eq!(r.status, 503, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["errorCode"], "key_unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_generate_signs_with_a_per_client_key_from_the_allow_list() {
    let up = Upstream::start("u").await;
    let a = gen("EC", None, Some("P-256"), "tenant-a");
    let b = gen("OKP", None, Some("Ed25519"), "tenant-b");
    let idp = JwksServer::default();
    idp.set_private("/a/signing.json", &[&a]);
    idp.set_private("/b/signing.json", &[&b]);
    let addr = idp.start().await;
    let gw = Gateway::start(&format!(
        r#"
[upstreams.pool]
targets = ["{up}"]

[[routes]]
name = "gen"
match = {{ path_prefix = "/gen" }}
upstream = "pool"
policies = [{{ type = "jwt_generate", algorithm = "ES256", key = {{ per_client_url = "http://{addr}/${{header.x-tenant}}/signing.json", per_client_allow = ["http://{addr}/*/signing.json"] }}, claims = {{ sub = {{ from = "header.x-tenant" }} }} }}]
"#,
        up = up.addr,
    ))
    .await;
    let r = request(gw.port, "GET", "/gen/x", &[("x-tenant", "a")], "").await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let token = bearer_of(&r);
    assert_eq!(
        verify_with("jwcrypto", &public(&a), "ES256", &token)["sub"],
        "a"
    );
    // Tenant b's key is Ed25519: the configured ES256 fixes the algorithm, so it is not used.
    let r = request(gw.port, "GET", "/gen/x", &[("x-tenant", "b")], "").await;
    assert_eq!(r.status, 503, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["errorCode"], "key_unavailable");
    // Outside the allow-list: nothing is fetched.
    let before = idp.fetches();
    let r = request(gw.port, "GET", "/gen/x", &[("x-tenant", "a/../b")], "").await;
    assert_eq!(r.status, 503);
    assert_eq!(idp.fetches(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_generate_encrypts_to_a_public_key_the_request_carries() {
    let up = Upstream::start("u").await;
    let client = gen("EC", None, Some("P-256"), "client-enc");
    let gw = Gateway::start(&format!(
        r#"
[upstreams.pool]
targets = ["{up}"]

[[routes]]
name = "gen"
match = {{ path_prefix = "/gen" }}
upstream = "pool"
policies = [{{ type = "jwt_generate", claims = {{ sub = "for-the-client" }}, encrypt = {{ key = {{ from = "header.x-client-key" }}, key_algorithm = "ECDH-ES+A128KW", encryption = "A128GCM" }} }}]
"#,
        up = up.addr,
    ))
    .await;
    let key = public(&client).to_string();
    let r = request(gw.port, "GET", "/gen/x", &[("x-client-key", &key)], "").await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let jwe = bearer_of(&r);
    let out = peer(&[
        json!({"lib": "joserfc", "op": "decrypt", "key": client.to_value(true).unwrap(),
                            "alg": "ECDH-ES+A128KW", "enc": "A128GCM", "token": jwe}),
    ]);
    let claims: Value =
        serde_json::from_slice(&b64_decode(out[0]["payload"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(claims["sub"], "for-the-client");
    // A private key in the header is refused, not used.
    let r = request(
        gw.port,
        "GET",
        "/gen/x",
        &[("x-client-key", &client.to_value(true).unwrap().to_string())],
        "",
    )
    .await;
    assert_eq!(r.status, 503, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["errorCode"], "key_unavailable");
}
