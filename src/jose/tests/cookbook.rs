//! RFC 7520 cookbook (and RFC 8037 / RFC 7797 entries): every compact example verifies or
//! decrypts; reproducible ones are also known-answer tests of our encrypt/sign side.

use serde_json::Value;

use super::{load, vectors};
use crate::jose::*;

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(*k))?.as_str()
}

fn d(v: &str) -> Vec<u8> {
    crate::jose::b64::decode(v.as_bytes()).unwrap()
}

fn check_jws(name: &str, doc: &Value) {
    let Some(tok) = s(doc, &["output", "compact"]) else {
        return;
    };
    let key = Jwk::from_value(&doc["input"]["key"]).unwrap();
    let alg = Alg::from_name(s(doc, &["input", "alg"]).unwrap()).unwrap();
    let keys = JwkSet::single(
        key.to_public()
            .unwrap_or_else(|_| Jwk::from_value(&doc["input"]["key"]).unwrap()),
    );
    let res = verify(tok, &keys, &[alg], &Limits::default());
    if name.contains("4_5") {
        // Detached content (empty payload segment): the signature covers a payload we do not
        // have, so it must not verify.
        assert_eq!(res.unwrap_err(), JoseError::SignatureInvalid, "{name}");
        return;
    }
    if name.contains("b64_false") {
        // RFC 7797 b64:false is refused for JWTs (H52).
        assert!(
            matches!(
                res,
                Err(JoseError::UnencodedPayloadRejected | JoseError::CriticalHeaderUnsupported)
            ),
            "{name}: {res:?}"
        );
        return;
    }
    let v = res.unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(
        v.payload,
        s(doc, &["input", "payload"]).unwrap().as_bytes(),
        "{name}"
    );
    // Deterministic algorithms: our signer reproduces the exact token.
    if matches!(alg, Alg::HS256 | Alg::RS256 | Alg::EdDSA) {
        let h = tok.split('.').next().unwrap();
        let ours = crate::jose::jws::sign_raw(
            h,
            s(doc, &["input", "payload"]).unwrap().as_bytes(),
            &key,
            alg,
        )
        .unwrap();
        assert_eq!(ours, tok, "{name}");
    }
}

fn check_jwe(name: &str, doc: &Value) {
    let Some(tok) = s(doc, &["output", "compact"]) else {
        return;
    };
    let key = match s(doc, &["input", "pwd"]) {
        Some(p) => Jwk::from_secret(p.as_bytes()).unwrap(),
        None => Jwk::from_value(&doc["input"]["key"]).unwrap(),
    };
    let alg = KeyAlg::from_name(s(doc, &["input", "alg"]).unwrap()).unwrap();
    let enc = Enc::from_name(s(doc, &["input", "enc"]).unwrap()).unwrap();
    let algs = [alg];
    let encs = [enc];
    let mut policy = DecryptPolicy::new(&algs, &encs);
    policy.allow_rsa1_5 = true;
    policy.allow_zip = true;
    let keys = JwkSet::single(key);
    let out = decrypt(tok, &keys, &policy).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(
        *out.plaintext,
        s(doc, &["input", "plaintext"]).unwrap().as_bytes(),
        "{name}"
    );
    // Encrypt-side KAT of the content encryption with the recorded CEK and IV.
    let parts: Vec<&str> = tok.split('.').collect();
    let Some(cek) = s(doc, &["generated", "cek"])
        .or(s(doc, &["encrypting_key", "cek"]))
        .map(d)
    else {
        return;
    };
    let iv = d(s(doc, &["generated", "iv"]).unwrap());
    if out.header.zip.is_none() && cek.len() == enc.cek_len() {
        let (ct, tag) =
            crate::jose::jwe::content_encrypt(enc, &cek, &iv, parts[0].as_bytes(), &out.plaintext)
                .unwrap();
        assert_eq!(crate::jose::b64::encode(&ct), parts[3], "{name}");
        assert_eq!(crate::jose::b64::encode(&tag), parts[4], "{name}");
    }
    if matches!(alg, KeyAlg::A128KW | KeyAlg::A192KW | KeyAlg::A256KW) {
        let k = d(s(doc, &["input", "key", "k"]).unwrap());
        assert_eq!(
            crate::jose::b64::encode(&crate::jose::jwe::kw_wrap(&k, &cek).unwrap()),
            parts[1],
            "{name}"
        );
    }
}

#[test]
fn rfc7520_cookbook_and_rfc8037_rfc7797() {
    let Some(dir) = vectors("rfc7520-cookbook") else {
        return;
    };
    let mut n = 0;
    for sub in ["jws", "jwe", "curve25519", "rfc7797"] {
        let mut files: Vec<_> = std::fs::read_dir(dir.join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            let doc = load(&f);
            if s(&doc, &["output", "compact"]).is_none() {
                continue; // JSON serialization only: compact-only engine
            }
            n += 1;
            if doc["input"].get("enc").is_some() {
                check_jwe(&name, &doc);
            } else {
                check_jws(&name, &doc);
            }
        }
    }
    assert_eq!(n, 17);
}
