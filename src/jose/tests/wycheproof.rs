//! Every Wycheproof JOSE file. Where a vector labelled valid is rejected, the policy that
//! rejects it is named next to its tcId.

use serde_json::Value;

use super::{hex, load, vectors};
use crate::jose::*;

/// JWS vectors whose label we do not follow, and why. (tcId 349, `key_ops:["sign, verify"]`
/// on the private JWK, verifies because the group's `public` JWK carries no key_ops.)
const JWS_QUIRKS: [(u64, bool, &str); 8] = [
    (
        346,
        false,
        "strict key/alg binding: key alg PS256, token PS384",
    ),
    (
        350,
        false,
        "strict key/alg binding: key alg PS256, token PS384",
    ),
    (
        347,
        false,
        "strict key/alg binding: key alg 'ES521' is not a registered name (ES512)",
    ),
    (
        351,
        false,
        "strict key/alg binding: key alg 'ES521' is not a registered name (ES512)",
    ),
    (372, false, "strict base64url: '?' inside the token"),
    (373, false, "strict base64url: '?' inside the token"),
    (
        367,
        true,
        "labelled invalid but byte-identical to valid tcId 357",
    ),
    (
        370,
        true,
        "labelled invalid but byte-identical to valid tcId 357",
    ),
];

fn key_set(v: &Value) -> Result<JwkSet, JoseError> {
    if v.get("keys").is_some() {
        JwkSet::from_json(v.to_string().as_bytes())
    } else {
        Ok(JwkSet::single(Jwk::from_value(v)?))
    }
}

fn jws_algs(v: &Value) -> Vec<Alg> {
    match v
        .get("alg")
        .and_then(Value::as_str)
        .and_then(Alg::from_name)
    {
        Some(a) => vec![a],
        None => Alg::ALL.to_vec(),
    }
}

fn jwe_policy_algs(v: &Value) -> Vec<KeyAlg> {
    match v
        .get("alg")
        .and_then(Value::as_str)
        .and_then(KeyAlg::from_name)
    {
        Some(a) => vec![a],
        None => KeyAlg::ALL.to_vec(),
    }
}

fn check_jws(group: &Value, t: &Value) -> bool {
    let key_json = group.get("public").unwrap_or(&group["private"]);
    let Ok(keys) = key_set(key_json) else {
        return false;
    };
    let algs = jws_algs(&group["private"]);
    match t["jws"].as_str() {
        Some(tok) => verify(tok, &keys, &algs, &Limits::default()).is_ok(),
        None => false, // JSON serialization: compact only
    }
}

fn check_jwe(group: &Value, t: &Value) -> bool {
    let Ok(keys) = key_set(&group["private"]) else {
        return false;
    };
    let algs = jwe_policy_algs(&group["private"]);
    let mut policy = DecryptPolicy::new(&algs, &Enc::ALL);
    policy.allow_zip = true;
    policy.allow_rsa1_5 = true;
    match t["jwe"].as_str() {
        Some(tok) => match decrypt(tok, &keys, &policy) {
            Ok(d) => {
                let pt = t.get("pt").and_then(Value::as_str).map(hex);
                pt.is_none_or(|pt| pt == *d.plaintext)
            }
            Err(_) => false,
        },
        None => false,
    }
}

fn run_file(name: &str, quirks: &[(u64, bool, &str)]) -> usize {
    let Some(p) = vectors(&format!("wycheproof/{name}")) else {
        return 0;
    };
    let doc = load(&p);
    let mut mismatches = Vec::new();
    let mut n = 0;
    for g in doc["testGroups"].as_array().unwrap() {
        for t in g["tests"].as_array().unwrap() {
            n += 1;
            let id = t["tcId"].as_u64().unwrap();
            let got = if t.get("jws").is_some() {
                check_jws(g, t)
            } else {
                check_jwe(g, t)
            };
            let expected = quirks
                .iter()
                .find(|q| q.0 == id)
                .map_or(t["result"] == "valid", |q| q.1);
            if got != expected {
                mismatches.push(format!("tcId {id} ({}) got {got}", t["comment"]));
            }
        }
    }
    assert!(mismatches.is_empty(), "{name}: {mismatches:#?}");
    n
}

#[test]
fn wycheproof_json_web_signature() {
    let n = run_file("json_web_signature_test.json", &JWS_QUIRKS);
    assert!(n == 0 || n == 401);
}

#[test]
fn wycheproof_json_web_encryption() {
    // RSA1_5 and zip:DEF are enabled in this harness (policy opt-ins), so every valid
    // vector decrypts; with defaults they are refused (see hostile tests).
    let n = run_file("json_web_encryption_test.json", &[]);
    assert!(n == 0 || n == 139);
}

#[test]
fn wycheproof_json_web_key() {
    let n = run_file("json_web_key_test.json", &[]);
    assert!(n == 0 || n == 26);
}

#[test]
fn wycheproof_json_web_crypto() {
    let n = run_file("json_web_crypto_test.json", &[]);
    assert!(n == 0 || n == 83);
}

#[test]
fn wycheproof_x25519_jwk() {
    let Some(p) = vectors("wycheproof/x25519_jwk_test.json") else {
        return;
    };
    let doc = load(&p);
    let mut bad = Vec::new();
    let mut n = 0;
    for g in doc["testGroups"].as_array().unwrap() {
        for t in g["tests"].as_array().unwrap() {
            n += 1;
            let id = t["tcId"].as_u64().unwrap();
            let flags: Vec<&str> = t["flags"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let got = Jwk::from_value(&t["private"]).and_then(|private| {
                let public = Jwk::from_value(&t["public"])?;
                crate::jose::jwe::ecdh_shared(&private, &public)
            });
            let ok = match (t["result"].as_str().unwrap(), &got) {
                ("valid", Ok(z)) => **z == hex(t["shared"].as_str().unwrap()),
                ("invalid", r) => r.is_err(),
                // Policy (H36): an all-zero shared secret is refused; other "acceptable"
                // cases (twist, non-canonical) must give the right secret.
                ("acceptable", r) if flags.contains(&"ZeroSharedSecret") => r.is_err(),
                ("acceptable", Ok(z)) => **z == hex(t["shared"].as_str().unwrap()),
                _ => false,
            };
            if !ok {
                bad.push(format!("tcId {id} {:?} {:?}", t["comment"], got.err()));
            }
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
    assert_eq!(n, 531);
}
