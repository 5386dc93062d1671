//! JOSE engine benchmarks: sign/verify per JWS algorithm next to the raw aws-lc-rs
//! primitive (overhead ratio printed first), and encrypt/decrypt for representative
//! alg x enc pairs. Fast by design: `cargo bench --bench jose`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use aws_lc_rs::{aead, hmac, rand::SystemRandom, rsa};
use base64::Engine as _;
use criterion::Criterion;
use serde_json::Map;
use tokengate::jose::{self, Alg, DecryptPolicy, Enc, EncryptOptions, Jwk, JwkSet, KeyAlg, Limits};

const CLAIMS: &[u8] = br#"{"iss":"https://idp.example.com","sub":"user-1234567890","aud":"api.example.com","exp":1900000000,"iat":1700000000,"scope":"read write","jti":"abcdef0123456789"}"#;

fn pem(label: &str, der: &[u8]) -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(der);
    format!("-----BEGIN {label}-----\n{b}\n-----END {label}-----\n")
}

type RawSign = Box<dyn Fn(&[u8]) -> Vec<u8>>;
type RawVerify = Box<dyn Fn(&[u8], &[u8]) -> bool>;

/// One algorithm: our key, the raw aws-lc-rs signer/verifier.
struct Case {
    alg: Alg,
    key: Jwk,
    public: JwkSet,
    raw_sign: RawSign,
    raw_verify: RawVerify,
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    let rng = SystemRandom::new();
    let rsa_pair = RsaKeyPair::generate(rsa::KeySize::Rsa2048).unwrap();
    let rsa_pem = pem(
        "PRIVATE KEY",
        AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&rsa_pair)
            .unwrap()
            .as_ref(),
    );
    let rsa_pub = rsa_pair.public_key().as_ref().to_vec();
    let rsa_pair = std::sync::Arc::new(rsa_pair);
    for (alg, enc, params) in [
        (
            Alg::RS256,
            &signature::RSA_PKCS1_SHA256 as &'static dyn signature::RsaEncoding,
            &signature::RSA_PKCS1_2048_8192_SHA256,
        ),
        (
            Alg::PS256,
            &signature::RSA_PSS_SHA256,
            &signature::RSA_PSS_2048_8192_SHA256,
        ),
        (
            Alg::RS512,
            &signature::RSA_PKCS1_SHA512,
            &signature::RSA_PKCS1_2048_8192_SHA512,
        ),
    ] {
        let pair = rsa_pair.clone();
        let parsed = signature::ParsedPublicKey::new(params, &rsa_pub).unwrap();
        let key = Jwk::from_pem(&rsa_pem).unwrap();
        out.push(Case {
            alg,
            public: JwkSet::single(key.to_public().unwrap()),
            key,
            raw_sign: Box::new(move |m| {
                let mut s = vec![0; pair.public_modulus_len()];
                pair.sign(enc, &SystemRandom::new(), m, &mut s).unwrap();
                s
            }),
            raw_verify: Box::new(move |m, s| parsed.verify_sig(m, s).is_ok()),
        });
    }
    for (alg, sa, va) in [
        (
            Alg::ES256,
            &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &signature::ECDSA_P256_SHA256_FIXED,
        ),
        (
            Alg::ES384,
            &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            &signature::ECDSA_P384_SHA384_FIXED,
        ),
        (
            Alg::ES512,
            &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
            &signature::ECDSA_P521_SHA512_FIXED,
        ),
    ] {
        let pair = EcdsaKeyPair::generate(sa).unwrap();
        let key = Jwk::from_pem(&pem("PRIVATE KEY", pair.to_pkcs8v1().unwrap().as_ref())).unwrap();
        let parsed = signature::ParsedPublicKey::new(va, pair.public_key().as_ref()).unwrap();
        let rng = rng.clone();
        out.push(Case {
            alg,
            public: JwkSet::single(key.to_public().unwrap()),
            key,
            raw_sign: Box::new(move |m| pair.sign(&rng, m).unwrap().as_ref().to_vec()),
            raw_verify: Box::new(move |m, s| parsed.verify_sig(m, s).is_ok()),
        });
    }
    let ed = Ed25519KeyPair::generate().unwrap();
    let key = Jwk::from_pem(&pem("PRIVATE KEY", ed.to_pkcs8().unwrap().as_ref())).unwrap();
    let parsed =
        signature::ParsedPublicKey::new(&signature::ED25519, ed.public_key().as_ref()).unwrap();
    out.push(Case {
        alg: Alg::EdDSA,
        public: JwkSet::single(key.to_public().unwrap()),
        key,
        raw_sign: Box::new(move |m| ed.sign(m).as_ref().to_vec()),
        raw_verify: Box::new(move |m, s| parsed.verify_sig(m, s).is_ok()),
    });
    for (alg, halg, len) in [
        (Alg::HS256, hmac::HMAC_SHA256, 32),
        (Alg::HS512, hmac::HMAC_SHA512, 64),
    ] {
        let secret = vec![0x5a; len];
        let hk = hmac::Key::new(halg, &secret);
        let hk2 = hk.clone();
        out.push(Case {
            alg,
            key: Jwk::from_secret(&secret).unwrap(),
            public: JwkSet::single(Jwk::from_secret(&secret).unwrap()),
            raw_sign: Box::new(move |m| hmac::sign(&hk, m).as_ref().to_vec()),
            raw_verify: Box::new(move |m, s| hmac::verify(&hk2, m, s).is_ok()),
        });
    }
    out
}

/// Operations per second of `f`, measured for about `ms` milliseconds.
fn rate(ms: u64, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    let mut n = 0u64;
    while t.elapsed() < Duration::from_millis(ms) {
        for _ in 0..16 {
            f();
        }
        n += 16;
    }
    n as f64 / t.elapsed().as_secs_f64()
}

fn ratios(cases: &[Case]) {
    println!(
        "\n{:<7} {:>12} {:>12} {:>6} | {:>12} {:>12} {:>6}",
        "alg", "sign/s", "raw sign/s", "ratio", "verify/s", "raw verify/s", "ratio"
    );
    for c in cases {
        let tok = jose::sign(CLAIMS, &c.key, c.alg, &Map::new()).unwrap();
        let (input, sig_b64) = tok.rsplit_once('.').unwrap();
        let sig = jose::b64_decode(sig_b64).unwrap();
        let algs = [c.alg];
        let limits = Limits::default();
        assert!((c.raw_verify)(input.as_bytes(), &sig));
        let ms = if matches!(c.alg, Alg::RS256 | Alg::PS256 | Alg::RS512) {
            600
        } else {
            300
        };
        let s = rate(ms, || {
            black_box(jose::sign(black_box(CLAIMS), &c.key, c.alg, &Map::new()).unwrap());
        });
        let rs = rate(ms, || {
            black_box((c.raw_sign)(black_box(input.as_bytes())));
        });
        let v = rate(ms, || {
            black_box(jose::verify(black_box(&tok), &c.public, &algs, &limits).unwrap());
        });
        let rv = rate(ms, || {
            black_box((c.raw_verify)(black_box(input.as_bytes()), &sig));
        });
        println!(
            "{:<7} {:>12.0} {:>12.0} {:>6.2} | {:>12.0} {:>12.0} {:>6.2}   (token {} bytes, verify {:.0} ns)",
            c.alg.name(), s, rs, s / rs, v, rv, v / rv, tok.len(), 1e9 / v
        );
    }
}

fn jwe_cases() -> Vec<(KeyAlg, Enc, Jwk)> {
    vec![
        (
            KeyAlg::Dir,
            Enc::A256Gcm,
            Jwk::from_secret(&[1; 32]).unwrap(),
        ),
        (
            KeyAlg::A256KW,
            Enc::A128CbcHs256,
            Jwk::from_secret(&[2; 32]).unwrap(),
        ),
        (
            KeyAlg::RsaOaep256,
            Enc::A256Gcm,
            Jwk::generate("RSA", Some(2048), None).unwrap(),
        ),
        (
            KeyAlg::EcdhEsA128KW,
            Enc::A128Gcm,
            Jwk::generate("EC", None, None).unwrap(),
        ),
        (
            KeyAlg::EcdhEs,
            Enc::A256Gcm,
            Jwk::generate("OKP", None, Some(jose::Curve::X25519)).unwrap(),
        ),
    ]
}

fn jwe_ratios() {
    // Raw reference: AES-256-GCM seal+open of the same claims (the content step alone).
    let key = aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_256_GCM, &[1; 32]).unwrap());
    let raw = rate(300, || {
        let mut buf = CLAIMS.to_vec();
        let tag = key
            .seal_in_place_separate_tag(
                aead::Nonce::assume_unique_for_key([0; 12]),
                aead::Aad::empty(),
                &mut buf,
            )
            .unwrap();
        key.open_in_place_separate_tag(
            aead::Nonce::assume_unique_for_key([0; 12]),
            aead::Aad::empty(),
            tag.as_ref(),
            &mut buf,
        )
        .unwrap();
        black_box(buf);
    });
    println!("\nraw AES-256-GCM seal+open of the claims: {raw:.0}/s");
    println!("{:<28} {:>12} {:>12}", "alg/enc", "encrypt/s", "decrypt/s");
    for (alg, enc, k) in jwe_cases() {
        let set = JwkSet::single(Jwk::from_value(&k.to_value(true).unwrap()).unwrap());
        let algs = [alg];
        let policy = DecryptPolicy::new(&algs, &Enc::ALL);
        let opts = EncryptOptions::default();
        let tok = jose::encrypt(CLAIMS, &k, alg, enc, &opts).unwrap();
        let e = rate(300, || {
            black_box(jose::encrypt(CLAIMS, &k, alg, enc, &opts).unwrap());
        });
        let d = rate(300, || {
            black_box(jose::decrypt(&tok, &set, &policy).unwrap());
        });
        println!("{:<28} {:>12.0} {:>12.0}", format!("{alg}/{enc}"), e, d);
    }
}

fn criterion_benches(c: &mut Criterion, cases: &[Case]) {
    let mut g = c.benchmark_group("jws");
    for case in cases
        .iter()
        .filter(|c| matches!(c.alg, Alg::HS256 | Alg::RS256 | Alg::ES256 | Alg::EdDSA))
    {
        let tok = jose::sign(CLAIMS, &case.key, case.alg, &Map::new()).unwrap();
        let algs = [case.alg];
        let limits = Limits::default();
        g.bench_function(format!("verify/{}", case.alg), |b| {
            b.iter(|| jose::verify(black_box(&tok), &case.public, &algs, &limits).unwrap())
        });
        let (input, sig_b64) = tok.rsplit_once('.').unwrap();
        let sig = jose::b64_decode(sig_b64).unwrap();
        g.bench_function(format!("raw_verify/{}", case.alg), |b| {
            b.iter(|| (case.raw_verify)(black_box(input.as_bytes()), &sig))
        });
    }
    g.finish();
}

fn main() {
    let cases = cases();
    ratios(&cases);
    jwe_ratios();
    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20);
    criterion_benches(&mut c, &cases);
    c.final_summary();
}
