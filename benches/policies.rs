//! Policy-level benchmarks: the work a request pays inside `jwt_verify` and `jwt_generate`
//! (token extraction, crypto, claims, caches, header mapping), each printed next to the raw
//! aws-lc-rs primitive measured in the same run. `cargo bench --bench policies`.
//!
//! Ratios printed: policy ops/s ÷ raw ops/s. A ratio > 1 for cached paths means the cache
//! skipped the crypto entirely.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use criterion::Criterion;
use pingora_http::RequestHeader;
use std::hint::black_box;
use std::time::{Duration, Instant};
use tokengate::jose::{Alg, Jwk};
use tokengate::policy::{Outcome, Run};
use tokengate::request::RequestView;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

fn snapshot(policy_toml: &str) -> tokengate::Snapshot {
    let text = format!(
        "[[listeners]]\naddress = \"127.0.0.1:1\"\n[admin]\nenabled = false\n[[routes]]\nname = \"r\"\nrespond = {{ status = 200 }}\n[[routes.policies]]\n{policy_toml}\n"
    );
    let raw = tokengate::config::parse_str(&text).unwrap_or_else(|e| panic!("{e:?}"));
    let shared = tokengate::shared::Shared::detached().unwrap();
    tokengate::compile::compile(&raw, "h", 1, None, &shared).unwrap_or_else(|e| panic!("{e:?}"))
}

/// Ops per second of `f`, run for about `secs`.
fn rate(secs: f64, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        for _ in 0..16 {
            f();
        }
        n += 16;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn request(token: Option<&str>) -> RequestHeader {
    let mut r = RequestHeader::build("GET", b"/api/orders?x=1", None).unwrap();
    r.insert_header("host", "api.example.com").unwrap();
    r.insert_header("x-user", "alice").unwrap();
    if let Some(t) = token {
        r.insert_header("authorization", format!("Bearer {t}"))
            .unwrap();
    }
    r
}

fn run_policy(rt: &tokio::runtime::Runtime, snap: &tokengate::Snapshot, req: &RequestHeader) {
    let chain = &snap.routes[0].chain;
    let v = RequestView::new(req, None);
    let mut run = Run::default();
    let out = rt.block_on(chain.request_filter(&v, &mut run));
    assert!(matches!(out, Outcome::Continue), "{out:?}");
    black_box(run);
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(i: u64) -> Vec<u8> {
    format!(
        r#"{{"iss":"https://idp.example.com","sub":"user-{i}","aud":"api","exp":{},"iat":{},"scope":"read write","roles":["reader"],"jti":"{i:016x}"}}"#,
        now() + 3600,
        now()
    )
    .into_bytes()
}

fn verify_benches(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let mut table = Vec::new();
    for (alg, kty, bits, crv) in [
        (Alg::RS256, "RSA", Some(2048), None),
        (Alg::ES256, "EC", None, Some(tokengate::jose::Curve::P256)),
        (Alg::HS256, "oct", Some(256), None),
    ] {
        let key = Jwk::generate(kty, bits, crv).unwrap().with_kid("k");
        let set = if kty == "oct" {
            serde_json::json!({"keys": [key.to_value(true).unwrap()]})
        } else {
            serde_json::json!({"keys": [key.to_value(false).unwrap()]})
        };
        let tokens: Vec<String> = (0..512)
            .map(|i| tokengate::jose::sign(&claims(i), &key, alg, &Default::default()).unwrap())
            .collect();
        let policy = |cache: bool| {
            format!(
                "type = \"jwt_verify\"\nalgorithms = [\"{}\"]\nkeys = {{ jwks = '{set}' }}\nissuers = [\"https://idp.example.com\"]\naudiences = [\"api\"]\nclaims_to_headers = [{{ claim = \"sub\", header = \"x-user\" }}]\ncache = {{ enabled = {cache} }}",
                alg.name()
            )
        };
        let uncached = snapshot(&policy(false));
        let cached = snapshot(&policy(true));
        let reqs: Vec<RequestHeader> = tokens.iter().map(|t| request(Some(t))).collect();
        let mut i = 0usize;
        c.bench_function(&format!("jwt_verify/{}/distinct_tokens", alg.name()), |b| {
            b.iter(|| {
                i = (i + 1) % reqs.len();
                run_policy(rt, &uncached, &reqs[i]);
            })
        });
        c.bench_function(
            &format!("jwt_verify/{}/repeated_token_cache_hit", alg.name()),
            |b| b.iter(|| run_policy(rt, &cached, &reqs[0])),
        );
        let mut j = 0usize;
        let ours = rate(1.0, || {
            j = (j + 1) % reqs.len();
            run_policy(rt, &uncached, &reqs[j]);
        });
        let hit = rate(1.0, || run_policy(rt, &cached, &reqs[0]));
        let raw = raw_verify_rate(alg, &key, &tokens);
        table.push((alg.name(), ours, hit, raw));
    }
    println!("\njwt_verify policy vs raw aws-lc-rs verify (ops/s, one core)");
    println!("| alg | policy, distinct tokens | policy, cache hit | raw verify | distinct/raw | hit/raw |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (alg, ours, hit, raw) in table {
        println!(
            "| {alg} | {ours:.0} | {hit:.0} | {raw:.0} | {:.2} | {:.1} |",
            ours / raw,
            hit / raw
        );
    }
}

/// Raw verify over the signing input of the same tokens, with a pre-parsed key.
fn raw_verify_rate(alg: Alg, key: &Jwk, tokens: &[String]) -> f64 {
    let parts: Vec<(Vec<u8>, Vec<u8>)> = tokens
        .iter()
        .map(|t| {
            let i = t.rfind('.').unwrap();
            (
                t.as_bytes()[..i].to_vec(),
                tokengate::jose::b64_decode(&t[i + 1..]).unwrap(),
            )
        })
        .collect();
    let jwk = key.to_value(true).unwrap();
    let mut k = 0usize;
    match alg {
        Alg::HS256 => {
            let secret = tokengate::jose::b64_decode(jwk["k"].as_str().unwrap()).unwrap();
            let hk = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret);
            rate(1.0, || {
                k = (k + 1) % parts.len();
                let (m, s) = &parts[k];
                black_box(aws_lc_rs::hmac::verify(&hk, m, s).is_ok());
            })
        }
        _ => {
            let public = match alg {
                Alg::RS256 => {
                    let n = tokengate::jose::b64_decode(jwk["n"].as_str().unwrap()).unwrap();
                    let e = tokengate::jose::b64_decode(jwk["e"].as_str().unwrap()).unwrap();
                    let key = signature::ParsedPublicKey::new(
                        &signature::RSA_PKCS1_2048_8192_SHA256,
                        rsa_public_der(&n, &e),
                    )
                    .unwrap();
                    return rate(1.0, || {
                        k = (k + 1) % parts.len();
                        let (m, s) = &parts[k];
                        black_box(key.verify_sig(m, s).is_ok());
                    });
                }
                _ => {
                    let x = tokengate::jose::b64_decode(jwk["x"].as_str().unwrap()).unwrap();
                    let y = tokengate::jose::b64_decode(jwk["y"].as_str().unwrap()).unwrap();
                    let mut p = vec![4u8];
                    p.extend(x);
                    p.extend(y);
                    p
                }
            };
            let key = signature::ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, public)
                .unwrap();
            rate(1.0, || {
                k = (k + 1) % parts.len();
                let (m, s) = &parts[k];
                black_box(key.verify_sig(m, s).is_ok());
            })
        }
    }
}

/// DER RSAPublicKey (PKCS#1): SEQUENCE { INTEGER n, INTEGER e }.
fn rsa_public_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn len(out: &mut Vec<u8>, l: usize) {
        if l < 128 {
            out.push(l as u8);
        } else if l < 256 {
            out.extend([0x81, l as u8]);
        } else {
            out.extend([0x82, (l >> 8) as u8, l as u8]);
        }
    }
    fn int(out: &mut Vec<u8>, v: &[u8]) {
        out.push(0x02);
        let pad = v.first().is_some_and(|b| b & 0x80 != 0);
        len(out, v.len() + usize::from(pad));
        if pad {
            out.push(0);
        }
        out.extend_from_slice(v);
    }
    let mut body = Vec::new();
    int(&mut body, n);
    int(&mut body, e);
    let mut out = vec![0x30];
    len(&mut out, body.len());
    out.extend(body);
    out
}

fn generate_benches(c: &mut Criterion, rt: &tokio::runtime::Runtime) {
    let rsa = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let es_raw = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let ed_raw = signature::Ed25519KeyPair::generate().unwrap();
    let msg =
        b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MTkwMDAwMDAwMCwiaWF0IjoxNzAwMDAwMDAwfQ";
    let raw_rs = rate(1.0, || {
        let mut sig = vec![0u8; rsa.public_modulus_len()];
        rsa.sign(&signature::RSA_PKCS1_SHA256, &rng, msg, &mut sig)
            .unwrap();
        black_box(sig);
    });
    let raw_es = rate(1.0, || {
        black_box(es_raw.sign(&rng, msg).unwrap());
    });
    let raw_ed = rate(1.0, || {
        black_box(ed_raw.sign(msg));
    });
    let _ = es_raw.public_key();
    let enc = Jwk::generate("RSA", Some(2048), None)
        .unwrap()
        .with_kid("enc");
    let mut table = Vec::new();
    for (alg, kty, bits, crv, raw) in [
        ("RS256", "RSA", Some(2048), None, raw_rs),
        (
            "ES256",
            "EC",
            None,
            Some(tokengate::jose::Curve::P256),
            raw_es,
        ),
        (
            "EdDSA",
            "OKP",
            None,
            Some(tokengate::jose::Curve::Ed25519),
            raw_ed,
        ),
    ] {
        let key = Jwk::generate(kty, bits, crv).unwrap().with_kid("k");
        let k = key.to_value(true).unwrap();
        let policy = |extra: &str| {
            format!(
                "type = \"jwt_generate\"\nalgorithm = \"{alg}\"\nkey = {{ jwks = '{k}' }}\nexpires_in = \"5m\"\nclaims = {{ iss = \"gw\", sub = {{ from = \"header.x-user\" }}, aud = \"svc\" }}\n{extra}"
            )
        };
        let uncached = snapshot(&policy("cache = { enabled = false }"));
        let cached = snapshot(&policy(""));
        let req = request(None);
        c.bench_function(&format!("jwt_generate/{alg}/uncached"), |b| {
            b.iter(|| run_policy(rt, &uncached, &req))
        });
        c.bench_function(&format!("jwt_generate/{alg}/cached"), |b| {
            b.iter(|| run_policy(rt, &cached, &req))
        });
        let u = rate(1.0, || run_policy(rt, &uncached, &req));
        let h = rate(1.0, || run_policy(rt, &cached, &req));
        table.push((alg.to_string(), u, h, raw));
        if alg == "ES256" {
            let nested = snapshot(&policy(&format!(
                "cache = {{ enabled = false }}\nencrypt = {{ key = {{ jwks = '{}' }}, key_algorithm = \"RSA-OAEP-256\", encryption = \"A256GCM\" }}",
                enc.to_value(false).unwrap()
            )));
            c.bench_function("jwt_generate/ES256+RSA-OAEP-256+A256GCM/uncached", |b| {
                b.iter(|| run_policy(rt, &nested, &req))
            });
            let n = rate(1.0, || run_policy(rt, &nested, &req));
            table.push(("ES256 nested RSA-OAEP-256/A256GCM".into(), n, f64::NAN, raw));
        }
    }
    println!("\njwt_generate policy vs raw aws-lc-rs sign (ops/s, one core)");
    println!(
        "| token | policy, uncached | policy, cached | raw sign | uncached/raw | cached/raw |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (alg, u, h, raw) in table {
        println!(
            "| {alg} | {u:.0} | {h:.0} | {raw:.0} | {:.2} | {:.1} |",
            u / raw,
            h / raw
        );
    }
}

fn main() {
    let rt = rt();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20)
        .configure_from_args();
    verify_benches(&mut c, &rt);
    generate_benches(&mut c, &rt);
    c.final_summary();
}
