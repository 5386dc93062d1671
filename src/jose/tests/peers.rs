//! Cross-implementation tests against joserfc and jwcrypto (PyPI), both directions, via
//! tests/fixtures/jose_peer.py. They FAIL when python3 or the packages are missing, unless
//! TOKENGATE_SKIP_PEERS=1.

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::{json, Map, Value};

use crate::jose::*;

const LIBS: [&str; 2] = ["joserfc", "jwcrypto"];

fn peer(reqs: &[Value]) -> Option<Vec<Value>> {
    if std::env::var("TOKENGATE_SKIP_PEERS").as_deref() == Ok("1") {
        eprintln!("SKIPPED: TOKENGATE_SKIP_PEERS=1");
        return None;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jose_peer.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is required for the JOSE peer tests (or set TOKENGATE_SKIP_PEERS=1)");
    let input = serde_json::to_vec(reqs).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "jose_peer.py failed (pip install joserfc jwcrypto, or TOKENGATE_SKIP_PEERS=1): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.len(), reqs.len());
    Some(v)
}

fn b64(b: &[u8]) -> String {
    crate::jose::b64::encode(b)
}

fn jws_key(alg: Alg, rsa: &Jwk, ec: &[Jwk; 3], ed: &Jwk, oct: &Jwk) -> Value {
    let k = match alg {
        Alg::HS256 | Alg::HS384 | Alg::HS512 => oct,
        Alg::ES256 => &ec[0],
        Alg::ES384 => &ec[1],
        Alg::ES512 => &ec[2],
        Alg::EdDSA => ed,
        _ => rsa,
    };
    k.to_value(true).unwrap()
}

#[test]
fn peers_jws_every_alg_both_directions() {
    let rsa = Jwk::generate("RSA", Some(2048), None).unwrap();
    let ec = [
        Jwk::generate("EC", None, Some(Curve::P256)).unwrap(),
        Jwk::generate("EC", None, Some(Curve::P384)).unwrap(),
        Jwk::generate("EC", None, Some(Curve::P521)).unwrap(),
    ];
    let ed = Jwk::generate("OKP", None, Some(Curve::Ed25519)).unwrap();
    let oct = Jwk::generate("oct", Some(512), None).unwrap();
    let payload = br#"{"sub":"alice","n":1}"#;
    let mut ours = Vec::new();
    let mut reqs = Vec::new();
    for alg in Alg::ALL {
        let kv = jws_key(alg, &rsa, &ec, &ed, &oct);
        let key = Jwk::from_value(&kv).unwrap();
        let tok = sign(payload, &key, alg, &Map::new()).unwrap();
        for lib in LIBS {
            reqs.push(
                json!({"lib": lib, "op": "verify", "key": kv, "alg": alg.name(), "token": tok}),
            );
            reqs.push(json!({"lib": lib, "op": "sign", "key": kv, "alg": alg.name(), "payload": b64(payload)}));
            ours.push((alg, key.to_value(true).unwrap()));
        }
    }
    let Some(res) = peer(&reqs) else { return };
    for (i, pair) in res.chunks(2).enumerate() {
        let (alg, kv) = &ours[i];
        assert_eq!(
            pair[0]["ok"], true,
            "{alg} peer verify of ours: {}",
            pair[0]
        );
        assert_eq!(pair[0]["payload"], b64(payload));
        assert_eq!(pair[1]["ok"], true, "{alg} peer sign: {}", pair[1]);
        let keys = JwkSet::single(Jwk::from_value(kv).unwrap());
        let v = verify(
            pair[1]["token"].as_str().unwrap(),
            &keys,
            &[*alg],
            &Limits::default(),
        )
        .unwrap_or_else(|e| panic!("{alg} verify of peer token #{i}: {e}"));
        assert_eq!(v.payload, payload);
    }
}

fn jwe_key(alg: KeyAlg, enc: Enc, rsa: &Jwk, ec: &Jwk) -> Value {
    let oct = |n: usize| json!({"kty": "oct", "k": b64(&vec![7u8; n])});
    match alg {
        a if a.is_rsa() => rsa.to_value(true).unwrap(),
        a if a.is_ecdh() => ec.to_value(true).unwrap(),
        a if a.is_pbes2() => json!({"kty": "oct", "k": b64(b"correct horse battery staple")}),
        KeyAlg::Dir => oct(enc.cek_len()),
        KeyAlg::A128KW | KeyAlg::A128GCMKW => oct(16),
        KeyAlg::A192KW | KeyAlg::A192GCMKW => oct(24),
        _ => oct(32),
    }
}

fn jwe_matrix(cases: &[(KeyAlg, Enc, Value)]) {
    let pt = b"hello peers \xe2\x9c\x93";
    let mut reqs = Vec::new();
    for (alg, enc, kv) in cases {
        let key = Jwk::from_value(kv).unwrap();
        let tok = encrypt(pt, &key, *alg, *enc, &EncryptOptions::default()).unwrap();
        for lib in LIBS {
            let base = json!({"lib": lib, "key": kv, "alg": alg.name(), "enc": enc.name()});
            let mut d = base.clone();
            d["op"] = "decrypt".into();
            d["token"] = tok.clone().into();
            let mut e = base;
            e["op"] = "encrypt".into();
            e["payload"] = b64(pt).into();
            reqs.push(d);
            reqs.push(e);
        }
    }
    let Some(res) = peer(&reqs) else { return };
    let mut failures = Vec::new();
    for (i, pair) in res.chunks(2).enumerate() {
        let (alg, enc, kv) = &cases[i / 2];
        let lib = LIBS[i % 2];
        if pair[0]["ok"] != true || pair[0]["payload"] != b64(pt) {
            failures.push(format!("{lib} decrypt of ours {alg}/{enc}: {}", pair[0]));
        }
        if pair[1]["ok"] != true {
            failures.push(format!("{lib} encrypt {alg}/{enc}: {}", pair[1]));
            continue;
        }
        let keys = JwkSet::single(Jwk::from_value(kv).unwrap());
        let algs = [*alg];
        let mut policy = DecryptPolicy::new(&algs, &Enc::ALL);
        policy.allow_rsa1_5 = true;
        match decrypt(pair[1]["token"].as_str().unwrap(), &keys, &policy) {
            Ok(d) if *d.plaintext == pt[..] => {}
            other => failures.push(format!("our decrypt of {lib} {alg}/{enc}: {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn peers_jwe_every_alg_and_enc_both_directions() {
    let rsa = Jwk::generate("RSA", Some(2048), None).unwrap();
    let ec = Jwk::generate("EC", None, Some(Curve::P256)).unwrap();
    let mut cases = Vec::new();
    for alg in KeyAlg::ALL {
        // RSA-OAEP-384/512 are not implemented by the Python peers.
        if matches!(alg, KeyAlg::RsaOaep384 | KeyAlg::RsaOaep512) {
            continue;
        }
        for enc in Enc::ALL {
            cases.push((alg, enc, jwe_key(alg, enc, &rsa, &ec)));
        }
    }
    jwe_matrix(&cases);
}

#[test]
fn peers_ecdh_each_curve() {
    let mut cases = Vec::new();
    for (kty, crv) in [
        ("EC", Curve::P384),
        ("EC", Curve::P521),
        ("OKP", Curve::X25519),
    ] {
        let k = Jwk::generate(kty, None, Some(crv))
            .unwrap()
            .to_value(true)
            .unwrap();
        for alg in [
            KeyAlg::EcdhEs,
            KeyAlg::EcdhEsA128KW,
            KeyAlg::EcdhEsA192KW,
            KeyAlg::EcdhEsA256KW,
        ] {
            cases.push((alg, Enc::A256Gcm, k.clone()));
            cases.push((alg, Enc::A128CbcHs256, k.clone()));
        }
    }
    jwe_matrix(&cases);
}

#[test]
fn peers_nested_both_directions() {
    let sk = Jwk::generate("EC", None, Some(Curve::P256)).unwrap();
    let ek = Jwk::generate("RSA", Some(2048), None).unwrap();
    let skv = sk.to_value(true).unwrap();
    let ekv = ek.to_value(true).unwrap();
    let claims = br#"{"iss":"https://idp","sub":"bob"}"#;
    let ours = sign_then_encrypt(
        claims,
        &sk,
        Alg::ES256,
        &Map::new(),
        &ek,
        KeyAlg::RsaOaep256,
        Enc::A256Gcm,
        &EncryptOptions::default(),
    )
    .unwrap();
    let mut reqs = Vec::new();
    for lib in LIBS {
        reqs.push(json!({"lib": lib, "op": "decrypt", "key": ekv, "alg": "RSA-OAEP-256", "enc": "A256GCM", "token": ours}));
        reqs.push(
            json!({"lib": lib, "op": "sign", "key": skv, "alg": "ES256", "payload": b64(claims)}),
        );
    }
    let Some(res) = peer(&reqs) else { return };
    let mut second = Vec::new();
    for (i, lib) in LIBS.iter().enumerate() {
        let dec = &res[2 * i];
        assert_eq!(dec["ok"], true, "{lib}: {dec}");
        assert_eq!(dec["header"]["cty"], "JWT");
        let inner = String::from_utf8(
            crate::jose::b64::decode(dec["payload"].as_str().unwrap().as_bytes()).unwrap(),
        )
        .unwrap();
        second
            .push(json!({"lib": lib, "op": "verify", "key": skv, "alg": "ES256", "token": inner}));
        let jws = res[2 * i + 1]["token"].as_str().unwrap().to_owned();
        second.push(json!({"lib": lib, "op": "encrypt", "key": ekv, "alg": "RSA-OAEP-256", "enc": "A256GCM", "payload": b64(jws.as_bytes()), "header": {"cty": "JWT"}}));
    }
    let res = peer(&second).unwrap();
    let enc_keys = JwkSet::single(Jwk::from_value(&ekv).unwrap());
    let sig_keys = JwkSet::single(Jwk::from_value(&skv).unwrap().to_public().unwrap());
    let algs = [KeyAlg::RsaOaep256];
    let policy = DecryptPolicy::new(&algs, &[Enc::A256Gcm]);
    for pair in res.chunks(2) {
        assert_eq!(pair[0]["ok"], true, "{}", pair[0]);
        assert_eq!(pair[0]["payload"], b64(claims));
        assert_eq!(pair[1]["ok"], true, "{}", pair[1]);
        let (_, v) = decrypt_then_verify(
            pair[1]["token"].as_str().unwrap(),
            &enc_keys,
            &policy,
            &sig_keys,
            &[Alg::ES256],
        )
        .unwrap();
        assert_eq!(v.payload, claims);
    }
}
