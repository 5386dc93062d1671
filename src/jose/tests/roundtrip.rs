//! Pure-Rust round trips: every JWS alg, every JWE alg × enc, PEM import, JWKS selection,
//! JWK export, and the operator CLI.

use std::io::Cursor;

use serde_json::{json, Map, Value};

use crate::jose::cli::{run, JoseCommand, KeyFormat};
use crate::jose::*;

fn key_for(alg: Alg) -> Jwk {
    match alg {
        Alg::HS256 | Alg::HS384 | Alg::HS512 => Jwk::generate("oct", Some(512), None).unwrap(),
        Alg::ES256 => Jwk::generate("EC", None, Some(Curve::P256)).unwrap(),
        Alg::ES384 => Jwk::generate("EC", None, Some(Curve::P384)).unwrap(),
        Alg::ES512 => Jwk::generate("EC", None, Some(Curve::P521)).unwrap(),
        Alg::EdDSA => Jwk::generate("OKP", None, Some(Curve::Ed25519)).unwrap(),
        _ => Jwk::generate("RSA", Some(2048), None).unwrap(),
    }
}

#[test]
fn every_jws_alg() {
    for alg in Alg::ALL {
        let k = key_for(alg).with_kid("k1");
        let t = sign(b"{\"a\":1}", &k, alg, &Map::new()).unwrap();
        let verifier = if k.is_symmetric() {
            Jwk::from_value(&k.to_value(true).unwrap()).unwrap()
        } else {
            k.to_public().unwrap()
        };
        let set = JwkSet::single(verifier);
        let v = verify(&t, &set, &[alg], &Limits::default()).unwrap();
        assert_eq!(v.alg, alg);
        // The policy, not the token, decides: the same token under another allow-list.
        let other: Vec<Alg> = Alg::ALL.into_iter().filter(|a| *a != alg).collect();
        assert_eq!(
            verify(&t, &set, &other, &Limits::default()).unwrap_err(),
            JoseError::AlgorithmNotAllowed
        );
        // Public keys cannot sign.
        if !k.is_symmetric() {
            assert_eq!(
                sign(b"{}", &k.to_public().unwrap(), alg, &Map::new()).unwrap_err(),
                JoseError::PrivateKeyRequired
            );
        }
    }
}

fn jwe_key(alg: KeyAlg, enc: Enc, rsa: &Jwk) -> Jwk {
    match alg {
        a if a.is_rsa() => Jwk::from_value(&rsa.to_value(true).unwrap()).unwrap(),
        a if a.is_ecdh() => Jwk::generate("EC", None, Some(Curve::P521)).unwrap(),
        a if a.is_pbes2() => Jwk::from_secret(b"password").unwrap(),
        KeyAlg::Dir => Jwk::from_secret(&vec![1; enc.cek_len()]).unwrap(),
        a => Jwk::from_secret(&vec![
            2;
            a.kw_len().unwrap_or(match a {
                KeyAlg::A128GCMKW => 16,
                KeyAlg::A192GCMKW => 24,
                _ => 32,
            })
        ])
        .unwrap(),
    }
}

#[test]
fn every_jwe_alg_and_enc() {
    let rsa = Jwk::generate("RSA", Some(2048), None).unwrap();
    for alg in KeyAlg::ALL {
        for enc in Enc::ALL {
            let k = jwe_key(alg, enc, &rsa);
            let sender = if k.is_symmetric() {
                Jwk::from_value(&k.to_value(true).unwrap()).unwrap()
            } else {
                k.to_public().unwrap()
            };
            let opts = EncryptOptions {
                zip: enc == Enc::A128Gcm,
                ..EncryptOptions::default()
            };
            let t = encrypt(b"plaintext \x00\xff", &sender, alg, enc, &opts).unwrap();
            let algs = [alg];
            let mut policy = DecryptPolicy::new(&algs, &Enc::ALL);
            policy.allow_rsa1_5 = true;
            policy.allow_zip = true;
            let d = decrypt(&t, &JwkSet::single(k), &policy)
                .unwrap_or_else(|e| panic!("{alg}/{enc}: {e}"));
            assert_eq!(&d.plaintext[..], b"plaintext \x00\xff");
            assert_eq!((d.alg, d.enc), (alg, enc));
        }
    }
}

#[test]
fn pem_import_all_forms() {
    // A P-256 PKCS#8 test key (test-only material).
    let ec_pkcs8 = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgevZzL1gdAFr88hb2\nOF/2NxApJCzGCEDdfSp6VQO30hyhRANCAAQRWz+jn65BtOMvdyHKcvjBeBSDZH2r\n1RTwjmYSi9R/zpBnuQ4EiMnCqfMPWiZqB4QdbAd0E7oH50VpuZ1P087G\n-----END PRIVATE KEY-----\n";
    let k = Jwk::from_pem(ec_pkcs8).unwrap();
    assert_eq!(k.kty(), "EC");
    assert!(k.is_private());
    // Round trip through our own export of every generated key type via the CLI-independent
    // path: JWK -> public JWK -> thumbprint equality.
    for (kty, crv) in [
        ("RSA", None),
        ("EC", Some(Curve::P384)),
        ("OKP", Some(Curve::Ed25519)),
        ("OKP", Some(Curve::X25519)),
    ] {
        let k = Jwk::generate(kty, None, crv).unwrap();
        assert_eq!(k.thumbprint(), k.to_public().unwrap().thumbprint());
    }
    assert!(Jwk::from_pem(
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----"
    )
    .is_err());
}

#[test]
fn pem_import_matches_peer_export() {
    // PEM produced by the Python `cryptography` package in every encoding, compared by
    // thumbprint with the JWK export of the same key.
    let script = r#"
import json,base64
from cryptography.hazmat.primitives.asymmetric import rsa, ec, ed25519, x25519
from cryptography.hazmat.primitives import serialization as s
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes
import datetime
from jwcrypto import jwk
out=[]
def add(key, priv_formats, pub_formats):
    j=jwk.JWK.from_pyca(key); tp=j.thumbprint()
    for enc,fmt in priv_formats:
        out.append([tp, key.private_bytes(s.Encoding.PEM, fmt, s.NoEncryption()).decode()])
    pub=key.public_key()
    for fmt in pub_formats:
        out.append([tp, pub.public_bytes(s.Encoding.PEM, fmt).decode()])
r=rsa.generate_private_key(65537,2048)
add(r,[(0,s.PrivateFormat.PKCS8),(0,s.PrivateFormat.TraditionalOpenSSL)],[s.PublicFormat.SubjectPublicKeyInfo,s.PublicFormat.PKCS1])
for c in (ec.SECP256R1(),ec.SECP384R1(),ec.SECP521R1()):
    add(ec.generate_private_key(c),[(0,s.PrivateFormat.PKCS8),(0,s.PrivateFormat.TraditionalOpenSSL)],[s.PublicFormat.SubjectPublicKeyInfo])
add(ed25519.Ed25519PrivateKey.generate(),[(0,s.PrivateFormat.PKCS8)],[s.PublicFormat.SubjectPublicKeyInfo])
add(x25519.X25519PrivateKey.generate(),[(0,s.PrivateFormat.PKCS8)],[s.PublicFormat.SubjectPublicKeyInfo])
name=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,"t")])
now=datetime.datetime(2024,1,1)
cert=x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(r.public_key()).serial_number(1).not_valid_before(now).not_valid_after(now+datetime.timedelta(days=1)).sign(r,hashes.SHA256())
out.append([jwk.JWK.from_pyca(r).thumbprint(), cert.public_bytes(s.Encoding.PEM).decode()])
print(json.dumps(out))
"#;
    if std::env::var("TOKENGATE_SKIP_PEERS").as_deref() == Ok("1") {
        return;
    }
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cases: Vec<(String, String)> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cases.len(), 18);
    for (tp, pem) in cases {
        let k =
            Jwk::from_pem(&pem).unwrap_or_else(|e| panic!("{e}: {}", pem.lines().next().unwrap()));
        assert_eq!(k.thumbprint(), tp, "{}", pem.lines().next().unwrap());
    }
}

#[test]
fn jwks_selection_by_kid_x5t_and_alg() {
    let a = Jwk::generate("EC", None, None).unwrap().with_kid("a");
    let b = Jwk::generate("EC", None, None).unwrap().with_kid("b");
    let set = JwkSet::new(vec![a.to_public().unwrap(), b.to_public().unwrap()]).unwrap();
    let tb = sign(b"{}", &b, Alg::ES256, &Map::new()).unwrap();
    assert!(verify(&tb, &set, &[Alg::ES256], &Limits::default()).is_ok());
    // Without a kid every permitted key is tried.
    let mut no_kid = Map::new();
    no_kid.insert("kid".into(), Value::Null);
    let anon = sign(
        b"{}",
        &Jwk::from_value(
            &b.to_value(true)
                .unwrap()
                .as_object()
                .map(|m| {
                    let mut m = m.clone();
                    m.remove("kid");
                    Value::Object(m)
                })
                .unwrap(),
        )
        .unwrap(),
        Alg::ES256,
        &Map::new(),
    )
    .unwrap();
    assert!(verify(&anon, &set, &[Alg::ES256], &Limits::default()).is_ok());
    // x5t#S256 selection.
    let mut kv = b.to_value(false).unwrap();
    kv["kid"] = Value::Null;
    kv.as_object_mut().unwrap().remove("kid");
    kv["x5t#S256"] = "thumb".into();
    let set2 = JwkSet::new(vec![a.to_public().unwrap(), Jwk::from_value(&kv).unwrap()]).unwrap();
    let mut h = Map::new();
    h.insert("x5t#S256".into(), "thumb".into());
    let t = sign(
        b"{}",
        &Jwk::from_value(&{
            let mut p = b.to_value(true).unwrap();
            p.as_object_mut().unwrap().remove("kid");
            p
        })
        .unwrap(),
        Alg::ES256,
        &h,
    )
    .unwrap();
    assert!(verify(&t, &set2, &[Alg::ES256], &Limits::default()).is_ok());
    h.insert("x5t#S256".into(), "other".into());
    let t = sign(
        b"{}",
        &Jwk::from_value(&{
            let mut p = b.to_value(true).unwrap();
            p.as_object_mut().unwrap().remove("kid");
            p
        })
        .unwrap(),
        Alg::ES256,
        &h,
    )
    .unwrap();
    assert!(verify(&t, &set2, &[Alg::ES256], &Limits::default()).is_err());
    // A key without a kid serves a token with a kid; a key with another kid does not.
    let plain = Jwk::generate("EC", None, None).unwrap();
    let mut h = Map::new();
    h.insert("kid".into(), "zzz".into());
    let t = sign(b"{}", &plain, Alg::ES256, &h).unwrap();
    assert!(verify(
        &t,
        &JwkSet::single(plain.to_public().unwrap()),
        &[Alg::ES256],
        &Limits::default()
    )
    .is_ok());
    assert_eq!(
        verify(&t, &set, &[Alg::ES256], &Limits::default()).unwrap_err(),
        JoseError::NoMatchingKey
    );
    // Lenient parse skips a weak key but keeps the rest.
    let weak = json!({"kty":"RSA","n":crate::jose::b64::encode(&[0xc5; 128]),"e":"AQAB","kid":"w"});
    let doc = json!({"keys":[a.to_value(false).unwrap(), weak]}).to_string();
    assert!(JwkSet::from_json(doc.as_bytes()).is_err());
    let (s, skipped) = JwkSet::from_json_lenient(doc.as_bytes()).unwrap();
    assert_eq!((s.keys().len(), skipped), (1, 1));
    assert_eq!(set.to_public_value()["keys"].as_array().unwrap().len(), 2);
}

fn cli(cmd: JoseCommand, input: &[u8]) -> (i32, String, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = run(cmd, &mut Cursor::new(input.to_vec()), &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

fn tmp(name: &str, content: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("jose-cli-{}-{name}", std::process::id()));
    std::fs::write(&p, content).unwrap();
    p
}

#[test]
fn cli_commands() {
    let (code, private, _) = cli(
        JoseCommand::Keygen {
            kty: "EC".into(),
            bits: None,
            crv: Some("P-256".into()),
            kid: Some("c1".into()),
        },
        b"",
    );
    assert_eq!(code, 0);
    let (code, public, _) = cli(JoseCommand::Public, private.as_bytes());
    assert_eq!(code, 0);
    assert!(!public.contains("\"d\""));
    let (_, tp1, _) = cli(JoseCommand::Thumbprint, private.as_bytes());
    let (_, tp2, _) = cli(JoseCommand::Thumbprint, public.as_bytes());
    assert_eq!(tp1, tp2);
    let kf = tmp("priv.jwk", &private);
    let pf = tmp("pub.jwk", &public);
    let (code, tok, _) = cli(
        JoseCommand::Sign {
            key: kf.clone(),
            alg: "ES256".into(),
            header: Some(r#"{"typ":"JWT"}"#.into()),
            key_format: KeyFormat::Auto,
        },
        br#"{"sub":"op"}"#,
    );
    assert_eq!(code, 0);
    let (code, out, _) = cli(
        JoseCommand::Verify {
            key: pf.clone(),
            alg: "ES256,RS256".into(),
            key_format: KeyFormat::Auto,
        },
        tok.as_bytes(),
    );
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["payload"]["sub"], "op");
    assert_eq!(v["header"]["typ"], "JWT");
    let (code, _, err) = cli(
        JoseCommand::Verify {
            key: pf.clone(),
            alg: "RS256".into(),
            key_format: KeyFormat::Auto,
        },
        tok.as_bytes(),
    );
    assert_eq!((code, err.trim()), (1, "algorithm_not_allowed"));
    // Encrypt / decrypt with a raw PBES2 password and with the EC key.
    let pw = tmp("pw", "correct horse\n");
    let (code, jwe, _) = cli(
        JoseCommand::Encrypt {
            key: pw.clone(),
            alg: "PBES2-HS256+A128KW".into(),
            enc: "A128GCM".into(),
            cty: None,
            zip: true,
            key_format: KeyFormat::Raw,
        },
        b"hello",
    );
    assert_eq!(code, 0);
    let (code, out, _) = cli(
        JoseCommand::Decrypt {
            key: pw.clone(),
            alg: "PBES2-HS256+A128KW".into(),
            enc: "A128GCM".into(),
            key_format: KeyFormat::Raw,
        },
        jwe.as_bytes(),
    );
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["plaintext"], crate::jose::b64::encode(b"hello"));
    let (code, jwe, _) = cli(
        JoseCommand::Encrypt {
            key: pf.clone(),
            alg: "ECDH-ES+A256KW".into(),
            enc: "A256GCM".into(),
            cty: Some("JWT".into()),
            zip: false,
            key_format: KeyFormat::Auto,
        },
        tok.trim().as_bytes(),
    );
    assert_eq!(code, 0);
    let (code, out, _) = cli(
        JoseCommand::Decrypt {
            key: kf.clone(),
            alg: "ECDH-ES+A256KW".into(),
            enc: "A256GCM".into(),
            key_format: KeyFormat::Auto,
        },
        jwe.as_bytes(),
    );
    assert_eq!(code, 0, "{out}");
    let (code, _, err) = cli(
        JoseCommand::Decrypt {
            key: kf.clone(),
            alg: "ECDH-ES+A256KW".into(),
            enc: "A256GCM".into(),
            key_format: KeyFormat::Auto,
        },
        format!("{}x", jwe.trim()).as_bytes(),
    );
    assert_eq!(code, 1);
    assert!(["decryption_failed", "token_malformed"].contains(&err.trim()));
    for f in [kf, pf, pw] {
        let _ = std::fs::remove_file(f);
    }
}

#[test]
fn keys_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Jwk>();
    check::<JwkSet>();
    check::<Verified>();
    check::<Decrypted>();
    check::<JoseError>();
}
