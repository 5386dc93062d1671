//! jwt_generate parity with GenerateJWT/Flex over real sockets: what a request may ask of a
//! minted token, and the minted headers checked by independent implementations.

use crate::harness::*;
use crate::jwt_verify::{gen, peer, private, public};
use serde_json::{json, Value};

/// The token the upstream saw in `authorization`.
fn bearer(r: &Resp) -> String {
    let v = r.json();
    let h = v["headers"]["authorization"][0]
        .as_str()
        .unwrap_or_else(|| panic!("no token: {v}"));
    h.strip_prefix("Bearer ").unwrap_or(h).to_string()
}

/// The decoded segment `i` of a compact token.
fn segment(tok: &str, i: usize) -> Value {
    let s = tok.split('.').nth(i).unwrap();
    serde_json::from_slice(&tokengate::jose::b64_decode(s).unwrap()).unwrap()
}

async fn gateway(up: &Upstream, policy: &str) -> Gateway {
    Gateway::start(&format!(
        "[upstreams.pool]\ntargets = [\"{}\"]\n[[routes]]\nname = \"g\"\nmatch = {{ path_prefix = \"/\" }}\nupstream = \"pool\"\n[[routes.policies]]\n{policy}\n",
        up.addr
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requested_lifetime_is_honoured_up_to_max_and_denied_above() {
    let up = Upstream::start("u").await;
    let es = gen("EC", None, Some("P-256"), "es");
    let gw = gateway(
        &up,
        &format!(
            "type = \"jwt_generate\"\nalgorithm = \"ES256\"\nkey = {{ jwks = '{}' }}\nexpires_in = {{ from = \"header.x-ttl\", max = \"10m\" }}\nnot_before = \"-5m\"\nclaims = {{ sub = \"svc\" }}",
            private(&es)
        ),
    )
    .await;
    let r = request(gw.port, "GET", "/a", &[("x-ttl", "2m")], "").await;
    assert_eq!(r.status, 200);
    let tok = bearer(&r);
    let out = peer(&[
        json!({"lib": "joserfc", "op": "verify", "key": public(&es), "alg": "ES256", "token": tok}),
    ]);
    assert_eq!(out[0]["ok"], true, "{out:?}");
    let c = segment(&tok, 1);
    let iat = c["iat"].as_u64().unwrap();
    assert_eq!(c["exp"].as_u64().unwrap() - iat, 120);
    assert_eq!(iat - c["nbf"].as_u64().unwrap(), 300, "backdated nbf");

    let r = request(gw.port, "GET", "/a", &[("x-ttl", "11m")], "").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["errorCode"], "expires_in_invalid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn critical_headers_are_minted_and_accepted_only_where_known() {
    let up = Upstream::start("u").await;
    let es = gen("EC", None, Some("P-256"), "es");
    let verify = |name: &str, known: &str| {
        format!(
            "[[routes]]\nname = \"{name}\"\nmatch = {{ path_prefix = \"/{name}\" }}\nupstream = \"pool\"\n[[routes.policies]]\ntype = \"jwt_verify\"\nalgorithms = [\"ES256\"]\nkeys = {{ jwks = '{}' }}\n{known}\n",
            public(&es)
        )
    };
    let gw = Gateway::start(&format!(
        "[upstreams.pool]\ntargets = [\"{up}\"]\n{}{}[[routes]]\nname = \"mint\"\nmatch = {{ path_prefix = \"/mint\" }}\nupstream = \"pool\"\n[[routes.policies]]\ntype = \"jwt_generate\"\nalgorithm = \"ES256\"\nkey = {{ jwks = '{k}' }}\nexpires_in = \"5m\"\nheader = {{ exp-sig = \"${{header.x-sig}}\" }}\ncrit = [\"exp-sig\"]\nclaims = {{ sub = \"svc\" }}\n",
        verify("known", "known_headers = [\"exp-sig\"]"),
        verify("unknown", ""),
        up = up.addr,
        k = private(&es),
    ))
    .await;
    let tok = bearer(&request(gw.port, "GET", "/mint", &[("x-sig", "s1")], "").await);
    let h = segment(&tok, 0);
    assert_eq!(h["crit"], json!(["exp-sig"]));
    assert_eq!(h["exp-sig"], "s1");

    // Independent verifiers accept it once told they process exp-sig, and refuse it otherwise.
    let mut reqs = Vec::new();
    for lib in ["joserfc", "jwcrypto"] {
        for known in [json!(["exp-sig"]), json!([])] {
            reqs.push(json!({"lib": lib, "op": "verify", "key": public(&es), "alg": "ES256", "token": tok, "known": known}));
        }
    }
    let out = run_script_answers("jose_peer.py", &reqs);
    for (i, o) in out.iter().enumerate() {
        assert_eq!(o["ok"], i % 2 == 0, "{i}: {o}");
    }

    let auth = format!("Bearer {tok}");
    let r = request(gw.port, "GET", "/known", &[("authorization", &auth)], "").await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let r = request(gw.port, "GET", "/unknown", &[("authorization", &auth)], "").await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["errorCode"], "crit_unsupported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_headers_and_templated_claims_read_by_peers() {
    let up = Upstream::start("u").await;
    let rs = gen("RSA", Some(2048), None, "rs");
    let gw = gateway(
        &up,
        &format!(
            r#"type = "jwt_generate"
algorithm = "PS256"
key = {{ jwks = '{}' }}
expires_in = "5m"
[routes.policies.header]
x-n = 3
x-flag = true
x-list = [1, "a"]
x-obj = {{ k = "v" }}
x-tenant = {{ template = "t-${{header.x-tenant}}", default = "t-none" }}
[routes.policies.claims]
sub = {{ template = "user:${{header.x-client}}" }}
"${{header.x-claim}}" = {{ from = "header.x-claim-value" }}
ids = {{ from = "header.x-ids", type = "array", items = "number" }}
"#,
            private(&rs)
        ),
    )
    .await;
    let r = request(
        gw.port,
        "GET",
        "/a",
        &[
            ("x-client", "c1"),
            ("x-claim", "team"),
            ("x-claim-value", "core"),
            ("x-ids", "1,2,3"),
        ],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let tok = bearer(&r);
    let known = json!(["x-n", "x-flag", "x-list", "x-obj", "x-tenant"]);
    let out = peer(&[
        json!({"lib": "joserfc", "op": "verify", "key": public(&rs), "alg": "PS256", "token": tok, "known": known}),
        json!({"lib": "jwcrypto", "op": "verify", "key": public(&rs), "alg": "PS256", "token": tok}),
    ]);
    for o in &out {
        let h = &o["header"];
        assert_eq!(h["x-n"], 3, "{o}");
        assert_eq!(h["x-flag"], true);
        assert_eq!(h["x-list"], json!([1, "a"]));
        assert_eq!(h["x-obj"], json!({"k": "v"}));
        assert_eq!(h["x-tenant"], "t-none");
        let c: Value = serde_json::from_slice(
            &tokengate::jose::b64_decode(o["payload"].as_str().unwrap()).unwrap(),
        )
        .unwrap();
        assert_eq!(c["sub"], "user:c1");
        assert_eq!(c["team"], "core");
        assert_eq!(c["ids"], json!([1, 2, 3]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pbes2_parameters_as_configured_decrypted_by_peers() {
    let up = Upstream::start("u").await;
    let password = "correct horse battery staple 01";
    let gw = gateway(
        &up,
        &format!(
            "type = \"jwt_generate\"\nexpires_in = \"5m\"\nclaims = {{ sub = \"svc\" }}\nencrypt = {{ key = {{ secret = \"{password}\" }}, key_algorithm = \"PBES2-HS512+A256KW\", encryption = \"A256GCM\", salt_length = 24, iterations = 3000 }}"
        ),
    )
    .await;
    let r = request(gw.port, "GET", "/a", &[], "").await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    let tok = bearer(&r);
    let h = segment(&tok, 0);
    assert_eq!(h["p2c"], 3000);
    let salt = tokengate::jose::b64_decode(h["p2s"].as_str().unwrap()).unwrap();
    assert_eq!(salt.len(), 24);
    let key = json!({"kty": "oct", "k": tokengate::jose::b64_encode(password.as_bytes())});
    let out = peer(
        &["joserfc", "jwcrypto"].map(|lib| {
            json!({"lib": lib, "op": "decrypt", "key": key, "alg": "PBES2-HS512+A256KW", "enc": "A256GCM", "token": tok})
        }),
    );
    for o in &out {
        assert_eq!(o["header"]["p2c"], 3000, "{o}");
        let c: Value = serde_json::from_slice(
            &tokengate::jose::b64_decode(o["payload"].as_str().unwrap()).unwrap(),
        )
        .unwrap();
        assert_eq!(c["sub"], "svc");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_kid_refuses_a_kidless_token_against_a_key_set_of_two() {
    let up = Upstream::start("u").await;
    let a = gen("EC", None, Some("P-256"), "a");
    let b = gen("EC", None, Some("P-256"), "b");
    let set = json!({"keys": [public(&a), public(&b)]});
    let gw = gateway(
        &up,
        &format!("type = \"jwt_verify\"\nalgorithms = [\"ES256\"]\nkeys = {{ jwks = '{set}' }}\nrequire_kid = true"),
    )
    .await;
    let claims = tokengate::jose::b64_encode(
        json!({"sub": "s", "exp": 4_000_000_000u64})
            .to_string()
            .as_bytes(),
    );
    let mut kidless = private(&a);
    kidless.as_object_mut().unwrap().remove("kid");
    let toks = peer(&[
        json!({"lib": "joserfc", "op": "sign", "key": kidless, "alg": "ES256", "payload": claims}),
        json!({"lib": "joserfc", "op": "sign", "key": private(&a), "alg": "ES256", "header": {"kid": "a"}, "payload": claims}),
    ]);
    let call = |t: &Value| format!("Bearer {}", t["token"].as_str().unwrap());
    let r = request(
        gw.port,
        "GET",
        "/x",
        &[("authorization", &call(&toks[0]))],
        "",
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["errorCode"], "kid_missing");
    let r = request(
        gw.port,
        "GET",
        "/x",
        &[("authorization", &call(&toks[1]))],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
}
