//! Property-based fuzz targets for every parser that reads hostile input: JOSE compact
//! tokens, the strict JSON parser, JWK/JWKS, PEM/DER key import, form bodies, the value
//! language (variables, templates, conditions), and the front door's canonical path and Host.
//!
//! Stable Rust has no libFuzzer, so each target is a proptest property run by [`fuzz`] for
//! `FUZZ_CASES` cases (default: a count that keeps the whole binary well under a minute in a
//! debug build), optionally stopped early after `FUZZ_SECONDS`. Every target prints its
//! figures (cases, wall time, rate) so a long run can be recorded:
//!
//! ```text
//! FUZZ_CASES=10000000 cargo test --release --test fuzz -- --test-threads=1 --nocapture
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use base64::Engine as _;
use pingora_http::RequestHeader;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Map, Number, Value};

use tokengate::config::ConditionConfig;
use tokengate::error::Errors;
use tokengate::expr::{Condition, Template, Var};
use tokengate::front::host;
use tokengate::front::path::{canonicalize, EscapedSlash, PathParams, PathRules};
use tokengate::jose::{
    self, decrypt, encrypt, sign, verify, Alg, DecryptPolicy, Enc, EncryptOptions, Header,
    JoseError, Jwk, JwkSet, KeyAlg, Limits, Verified,
};
use tokengate::request::RequestView;

// ---------------------------------------------------------------------------------------------
// Runner
// ---------------------------------------------------------------------------------------------

/// Cases per runner: a fresh runner (fresh seed) per chunk keeps memory flat on long runs.
const CHUNK: u64 = 100_000;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Runs `test` on values of `strategy` for `FUZZ_CASES` cases (else `default_cases`), or
/// until `FUZZ_SECONDS` have passed, and prints the figures. A failure panics with the
/// shrunk input. Nothing is persisted: a found case belongs in a named regression test.
fn fuzz<S: Strategy>(
    name: &str,
    default_cases: u64,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let total = env_u64("FUZZ_CASES").unwrap_or(default_cases);
    let deadline = env_u64("FUZZ_SECONDS").map(Duration::from_secs);
    let start = Instant::now();
    let mut done = 0u64;
    while done < total && deadline.is_none_or(|d| start.elapsed() < d) {
        let n = (total - done).min(CHUNK);
        let mut runner = TestRunner::new(Config {
            cases: u32::try_from(n).unwrap(),
            failure_persistence: None,
            ..Config::default()
        });
        if let Err(e) = runner.run(&strategy, &test) {
            panic!("fuzz target {name} failed after {done} passing cases: {e}");
        }
        done += n;
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "fuzz {name}: {done} cases in {secs:.1} s ({:.0} cases/s)",
        done as f64 / secs.max(1e-9)
    );
}

// ---------------------------------------------------------------------------------------------
// Shared generators and fixed keys
// ---------------------------------------------------------------------------------------------

/// RFC 7515 A.1 HMAC key (64 bytes: long enough for HS256/384/512).
const HMAC_KEY: &str = r#"{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}"#;
/// RFC 7518 C (Bob): a P-256 private key.
const EC_KEY: &str = r#"{"kty":"EC","crv":"P-256","x":"weNJy2HscCSM6AEDTDg04biOvhFhyyWvOHQfeF_PxMQ","y":"e8lnCO-AlStT-NJVX-crhB7QRYhiix03illJOVAOyck","d":"VEmDZpDXXK8p8N0Cndsxs924q6nS1RXFASRl6BfUqdw"}"#;
/// RFC 8037 A.1: an Ed25519 private key.
const ED_KEY: &str = r#"{"kty":"OKP","crv":"Ed25519","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;

fn key(json: &str) -> Jwk {
    Jwk::from_json(json.as_bytes()).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    jose::b64_encode(bytes)
}

/// Any JSON value, nested a few levels deep, with arbitrary Unicode strings and member names.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // serde_json reads back exactly the floats with a short decimal form (without its
        // float_roundtrip feature, 17-digit values may come back one ulp off, in the strict
        // parser as in serde_json itself); `any_f64_reads_as_serde_json` covers every float.
        (any::<i32>(), -9i32..=6).prop_map(|(m, e)| {
            let f: f64 = format!("{m}e{e}").parse().unwrap();
            Number::from_f64(f).map_or(Value::Null, Value::Number)
        }),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A byte mutation applied to a valid input: flip, overwrite, insert, delete or truncate.
#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Set(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    Truncate(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 1..=255u8).prop_map(|(i, m)| Mutation::Flip(i, m)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<Index>().prop_map(Mutation::Delete),
        any::<Index>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(bytes: &mut Vec<u8>, ms: &[Mutation]) {
    for m in ms {
        if bytes.is_empty() {
            if let Mutation::Insert(_, b) = m {
                bytes.push(*b);
            }
            continue;
        }
        let len = bytes.len();
        match m {
            Mutation::Flip(i, x) => bytes[i.index(len)] ^= x,
            Mutation::Set(i, b) => bytes[i.index(len)] = *b,
            Mutation::Insert(i, b) => bytes.insert(i.index(len + 1), *b),
            Mutation::Delete(i) => {
                bytes.remove(i.index(len));
            }
            Mutation::Truncate(i) => bytes.truncate(i.index(len)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// JOSE compact serialization (JWS and JWE)
// ---------------------------------------------------------------------------------------------

fn all_key_algs() -> Vec<KeyAlg> {
    KeyAlg::ALL.to_vec()
}

/// A permissive inbound policy: every algorithm the engine knows, zip allowed, so the fuzzer
/// reaches every header and key-management path.
fn open_policy<'a>(algs: &'a [KeyAlg]) -> DecryptPolicy<'a> {
    let mut p = DecryptPolicy::new(algs, &Enc::ALL);
    p.allow_zip = true;
    p
}

/// Key sets the garbage targets verify and decrypt against.
struct Keys {
    hmac: JwkSet,
    asym: JwkSet,
    sym: JwkSet,
    ec: JwkSet,
}

fn keys() -> Keys {
    let sym = [16usize, 24, 32, 48, 64]
        .iter()
        .map(|n| {
            Jwk::from_secret(&vec![0x5a; *n])
                .unwrap()
                .with_kid(format!("s{n}"))
        })
        .collect();
    Keys {
        hmac: JwkSet::single(key(HMAC_KEY)),
        asym: JwkSet::new(vec![key(EC_KEY), key(ED_KEY)]).unwrap(),
        sym: JwkSet::new(sym).unwrap(),
        ec: JwkSet::single(key(EC_KEY)),
    }
}

/// Header member names: every registered one, the key-carrying ones, and anything.
fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "alg", "enc", "kid", "typ", "cty", "zip", "crit", "b64", "x5t", "x5t#S256", "epk",
            "apu", "apv", "iv", "tag", "p2s", "p2c", "jwk", "jku", "x5c", "x5u",
        ])
        .prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

/// Header member values: mostly well-typed values that reach deep paths, sometimes anything.
fn header_value() -> impl Strategy<Value = Value> {
    let names: Vec<&'static str> = Alg::ALL
        .iter()
        .map(|a| a.name())
        .chain(KeyAlg::ALL.iter().map(|a| a.name()))
        .chain(Enc::ALL.iter().map(|e| e.name()))
        .chain(["none", "DEF", "JWT", "s16", "s32", "hs256", ""])
        .collect();
    prop_oneof![
        4 => prop::sample::select(names).prop_map(Value::from),
        1 => prop::collection::vec(any::<u8>(), 0..48).prop_map(|b| Value::from(b64(&b))),
        1 => prop::sample::select(vec![0u64, 1, 999, 1000, 1001, 10_001, u64::MAX])
            .prop_map(Value::from),
        1 => prop::collection::vec(header_name(), 0..3).prop_map(Value::from),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => (prop::collection::vec(any::<u8>(), 0..40), prop::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(x, y)| json!({"kty":"EC","crv":"P-256","x":b64(&x),"y":b64(&y)})),
        1 => json_value(),
    ]
}

/// One segment of a compact token: base64url of random bytes, raw text, or empty.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..300).prop_map(|b| b64(&b)),
        1 => "[A-Za-z0-9_=+/ .-]{0,40}",
        1 => Just(String::new()),
    ]
}

/// A structured compact token: a JSON header (possibly with a repeated member) and 1..7
/// further segments, each dot-separated.
fn structured_token() -> impl Strategy<Value = String> {
    (
        prop::collection::vec((header_name(), header_value()), 0..6),
        any::<bool>(),
        prop_oneof![Just(2usize), Just(4usize), 0usize..7],
        prop::collection::vec(segment(), 7),
        prop::collection::vec(mutation(), 0..2),
    )
        .prop_map(|(members, dup, n, segs, muts)| {
            let mut m = Map::new();
            for (k, v) in &members {
                m.insert(k.clone(), v.clone());
            }
            let mut text = serde_json::to_string(&Value::Object(m)).unwrap();
            if let (true, Some((k, v))) = (dup, members.first()) {
                // A second copy of the first member, written after the others.
                text.pop();
                let sep = if members.is_empty() { "" } else { "," };
                text.push_str(&format!("{sep}{}:{v}}}", Value::from(k.clone())));
            }
            let mut head = text.into_bytes();
            mutate(&mut head, &muts);
            let mut t = b64(&head);
            for s in segs.iter().take(n) {
                t.push('.');
                t.push_str(s);
            }
            t
        })
}

/// Nothing forged from random bytes verifies or decrypts, whatever it holds.
fn refused_everywhere(k: &Keys, token: &str) -> Result<(), TestCaseError> {
    let lim = Limits::default();
    let r = verify(token, &k.hmac, &Alg::ALL, &lim);
    prop_assert!(r.is_err(), "forged JWS verified (HMAC): {token:?}");
    let r = verify(token, &k.asym, &Alg::ALL, &lim);
    prop_assert!(r.is_err(), "forged JWS verified (EC/Ed25519): {token:?}");
    let algs = all_key_algs();
    let policy = open_policy(&algs);
    for set in [&k.sym, &k.ec] {
        let r = decrypt(token, set, &policy);
        prop_assert!(r.is_err(), "forged JWE decrypted: {token:?}");
    }
    // A token is refused as malformed when it does not have the right number of parts.
    let dots = token.bytes().filter(|b| *b == b'.').count();
    if token.len() <= lim.max_token {
        if dots != 2 {
            prop_assert_eq!(
                verify(token, &k.hmac, &Alg::ALL, &lim).unwrap_err(),
                JoseError::TokenMalformed
            );
        }
        if dots != 4 {
            prop_assert_eq!(
                decrypt(token, &k.sym, &policy).unwrap_err(),
                JoseError::TokenMalformed
            );
        }
    }
    Ok(())
}

#[test]
fn fuzz_jose_compact_arbitrary_bytes() {
    let k = keys();
    fuzz(
        "jose_compact_arbitrary_bytes",
        3_000,
        prop::collection::vec(any::<u8>(), 0..400),
        |bytes| {
            let text = String::from_utf8_lossy(&bytes);
            refused_everywhere(&k, &text)?;
            // The header parser takes decoded bytes: anything accepted has an `alg`.
            if let Ok(h) = Header::parse(&bytes) {
                prop_assert!(h.to_value().get("alg").is_some_and(Value::is_string));
            }
            // Strict base64url: decoding accepts only the canonical encoding of its output.
            if let Ok(decoded) = jose::b64_decode(&text) {
                prop_assert_eq!(b64(&decoded), text.as_ref());
            }
            prop_assert_eq!(jose::b64_decode(&b64(&bytes)).unwrap(), bytes);
            Ok(())
        },
    );
}

#[test]
fn fuzz_jose_compact_structured() {
    let k = keys();
    fuzz(
        "jose_compact_structured",
        2_000,
        structured_token(),
        |token| refused_everywhere(&k, &token),
    );
}

#[test]
fn fuzz_jose_size_limits_hold() {
    let k = keys();
    fuzz(
        "jose_size_limits_hold",
        3_000,
        (
            1usize..200,
            1usize..100,
            0usize..300,
            0usize..300,
            0usize..300,
        ),
        |(max_token, max_header, h, p, s)| {
            let limits = Limits {
                max_token,
                max_header,
                ..Limits::default()
            };
            let token = format!("{}.{}.{}", "e".repeat(h), "A".repeat(p), "B".repeat(s));
            let r = verify(&token, &k.hmac, &Alg::ALL, &limits).unwrap_err();
            if token.len() > max_token {
                prop_assert_eq!(r, JoseError::TokenTooLarge);
            } else if h > 0 && s > 0 && h > max_header {
                prop_assert_eq!(r, JoseError::TokenTooLarge);
            } else {
                prop_assert_ne!(r, JoseError::TokenTooLarge);
            }
            let jwe = format!(
                "{}.{}.AAAA.{}.AAAA",
                "e".repeat(h),
                "A".repeat(p),
                "B".repeat(s)
            );
            let algs = all_key_algs();
            let mut policy = open_policy(&algs);
            policy.limits = limits;
            let r = decrypt(&jwe, &k.sym, &policy).unwrap_err();
            if jwe.len() > max_token || (h > 0 && (h > max_header || p > limits.max_encrypted_key))
            {
                prop_assert_eq!(r, JoseError::TokenTooLarge);
            }
            Ok(())
        },
    );
}

/// Returns `token` with the byte at `at` XORed with `mask` (nonzero), when still UTF-8.
fn flip(token: &str, at: Index, mask: u8) -> Option<String> {
    let mut b = token.as_bytes().to_vec();
    let i = at.index(b.len());
    b[i] ^= mask;
    String::from_utf8(b).ok()
}

#[test]
fn fuzz_jws_one_flipped_byte_never_verifies() {
    let signers = [
        (key(HMAC_KEY), Alg::HS256),
        (key(HMAC_KEY), Alg::HS512),
        (key(EC_KEY), Alg::ES256),
        (key(ED_KEY), Alg::EdDSA),
    ];
    let sets: Vec<JwkSet> = signers
        .iter()
        .map(|(k, _)| JwkSet::single(Jwk::from_value(&k.to_value(true).unwrap()).unwrap()))
        .collect();
    fuzz(
        "jws_one_flipped_byte_never_verifies",
        1_000,
        (
            0..signers.len(),
            prop::collection::vec(any::<u8>(), 0..64),
            any::<Index>(),
            1..=255u8,
        ),
        |(which, payload, at, mask)| {
            let (key, alg) = &signers[which];
            let token = sign(&payload, key, *alg, &Map::new()).unwrap();
            let lim = Limits::default();
            let ok = verify(&token, &sets[which], &[*alg], &lim).unwrap();
            prop_assert_eq!(&ok.payload, &payload);
            if let Some(bad) = flip(&token, at, mask) {
                let r = verify(&bad, &sets[which], &Alg::ALL, &lim);
                prop_assert!(r.is_err(), "flipped token verified: {bad:?}");
            }
            Ok(())
        },
    );
}

#[test]
fn fuzz_jwe_one_flipped_byte_never_decrypts() {
    let cases: Vec<(Jwk, KeyAlg, Enc)> = vec![
        (
            Jwk::from_secret(&[7; 32]).unwrap(),
            KeyAlg::Dir,
            Enc::A256Gcm,
        ),
        (
            Jwk::from_secret(&[7; 32]).unwrap(),
            KeyAlg::Dir,
            Enc::A128CbcHs256,
        ),
        (
            Jwk::from_secret(&[9; 16]).unwrap(),
            KeyAlg::A128KW,
            Enc::A128CbcHs256,
        ),
        (
            Jwk::from_secret(&[9; 24]).unwrap(),
            KeyAlg::A192GCMKW,
            Enc::A192Gcm,
        ),
        (key(EC_KEY), KeyAlg::EcdhEsA128KW, Enc::A128Gcm),
        (key(EC_KEY), KeyAlg::EcdhEs, Enc::A256CbcHs512),
    ];
    let sets: Vec<JwkSet> = cases
        .iter()
        .map(|(k, _, _)| JwkSet::single(Jwk::from_value(&k.to_value(true).unwrap()).unwrap()))
        .collect();
    fuzz(
        "jwe_one_flipped_byte_never_decrypts",
        1_000,
        (
            0..cases.len(),
            prop::collection::vec(any::<u8>(), 0..64),
            any::<bool>(),
            any::<Index>(),
            1..=255u8,
        ),
        |(which, plaintext, zip, at, mask)| {
            let (key, alg, enc) = &cases[which];
            let opts = EncryptOptions {
                zip,
                ..EncryptOptions::default()
            };
            let token = encrypt(&plaintext, key, *alg, *enc, &opts).unwrap();
            let algs = [*alg];
            let encs = [*enc];
            let mut policy = DecryptPolicy::new(&algs, &encs);
            policy.allow_zip = true;
            let ok = decrypt(&token, &sets[which], &policy).unwrap();
            prop_assert_eq!(&ok.plaintext[..], &plaintext[..]);
            if let Some(bad) = flip(&token, at, mask) {
                let r = decrypt(&bad, &sets[which], &policy);
                prop_assert!(r.is_err(), "flipped token decrypted: {bad:?}");
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Strict JSON
// ---------------------------------------------------------------------------------------------

/// Parses through `Verified::claims`, the public path to the strict object parser.
fn strict_object(bytes: &[u8]) -> Result<Map<String, Value>, JoseError> {
    Verified {
        header: Header::default(),
        alg: Alg::HS256,
        payload: bytes.to_vec(),
    }
    .claims()
}

/// Parses `text` as one strict JSON value: inside an object (the claims parser) and as an
/// unregistered header member (the header parser, which keeps unknown members strictly).
fn strict_value(text: &str) -> Result<Value, TestCaseError> {
    let via_claims = strict_object(format!("{{\"v\":{text}}}").as_bytes())
        .ok()
        .and_then(|mut m| m.remove("v"));
    let via_header = Header::parse(format!("{{\"alg\":\"x\",\"x-v\":{text}}}").as_bytes())
        .ok()
        .and_then(|mut h| h.other.remove("x-v"));
    prop_assert_eq!(
        &via_claims,
        &via_header,
        "claims and header parsers disagree"
    );
    via_claims.ok_or_else(|| TestCaseError::fail("refused"))
}

/// A member name written with every character as a `\u` escape (surrogate pairs beyond the
/// BMP): the same name after unescaping.
fn escaped_name(k: &str) -> String {
    let mut out = String::from("\"");
    for u in k.encode_utf16() {
        out.push_str(&format!("\\u{u:04x}"));
    }
    out.push('"');
    out
}

fn nest(inner: String, layers: &[bool]) -> String {
    layers.iter().fold(inner, |acc, obj| {
        if *obj {
            format!("{{\"w\":{acc}}}")
        } else {
            format!("[1,{acc}]")
        }
    })
}

#[test]
fn fuzz_strict_json() {
    fuzz(
        "strict_json",
        2_000,
        (
            json_value(),
            any::<String>(),
            json_value(),
            json_value(),
            prop::collection::vec(any::<bool>(), 0..8),
            any::<bool>(),
            prop::collection::vec(mutation(), 1..4),
            1usize..200,
            any::<f64>(),
        ),
        |(v, k, a, b, layers, escape, muts, depth, any_f64)| {
            // Round trip: the serialization of any value parses back equal, compact or pretty.
            let text = serde_json::to_string(&v).unwrap();
            prop_assert_eq!(&strict_value(&text)?, &v);
            let pretty = serde_json::to_string_pretty(&v).unwrap();
            prop_assert_eq!(&strict_value(&pretty)?, &v);
            // At top level only an object is claims.
            match (&v, strict_object(text.as_bytes())) {
                (Value::Object(m), Ok(parsed)) => prop_assert_eq!(m, &parsed),
                (Value::Object(_), Err(e)) => {
                    return Err(TestCaseError::fail(format!("object refused: {e:?}")))
                }
                (_, r) => prop_assert_eq!(r.unwrap_err(), JoseError::ClaimsMalformed),
            }
            // Any float reads as serde_json reads it.
            let f = serde_json::to_string(
                &Number::from_f64(any_f64).map_or(Value::Null, Value::Number),
            )
            .unwrap();
            let lax: Value = serde_json::from_str(&f).unwrap();
            prop_assert_eq!(&strict_value(&f)?, &lax);
            // Trailing data is refused.
            let trailing = format!("{{\"v\":{text}}} x");
            prop_assert!(strict_object(trailing.as_bytes()).is_err());
            // A repeated member name is refused at any depth, also when spelled with escapes.
            let second = if escape {
                escaped_name(&k)
            } else {
                Value::from(k.clone()).to_string()
            };
            let first = Value::from(k.clone()).to_string();
            let dup = nest(format!("{{{first}:{a},{second}:{b}}}"), &layers);
            let in_claims = format!("{{\"d\":{dup}}}");
            let in_header = format!("{{\"alg\":\"x\",\"d\":{dup}}}");
            let in_jwks = format!("{{\"keys\":[],\"d\":{dup}}}");
            prop_assert!(strict_object(in_claims.as_bytes()).is_err());
            prop_assert!(Header::parse(in_header.as_bytes()).is_err());
            prop_assert!(JwkSet::from_json(in_jwks.as_bytes()).is_err());
            let other = Value::from(format!("{k}x")).to_string();
            let distinct = nest(format!("{{{first}:{a},{other}:{b}}}"), &layers);
            let in_claims = format!("{{\"d\":{distinct}}}");
            prop_assert!(strict_object(in_claims.as_bytes()).is_ok());
            // Depth: modest nesting parses, deep nesting is refused (never a stack overflow).
            let deep = format!("{{\"d\":{}{}}}", "[".repeat(depth), "]".repeat(depth));
            let r = strict_object(deep.as_bytes());
            if depth < 100 {
                prop_assert!(r.is_ok(), "depth {depth} refused");
            } else if depth > 128 {
                prop_assert!(r.is_err(), "depth {depth} accepted");
            }
            // Mutated text: never a panic; anything accepted is UTF-8 and what serde_json reads.
            let mut bytes = format!("{{\"v\":{text}}}").into_bytes();
            mutate(&mut bytes, &muts);
            if let Ok(m) = strict_object(&bytes) {
                prop_assert!(std::str::from_utf8(&bytes).is_ok());
                let lax: Value = serde_json::from_slice(&bytes).unwrap();
                prop_assert_eq!(&Value::Object(m), &lax);
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------------
// JWK, JWKS, PEM and DER
// ---------------------------------------------------------------------------------------------

fn pem_body(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

fn rsa_public_jwk() -> Value {
    let k = Jwk::from_pem(include_str!("fixtures/fuzz/rsapub.pem")).unwrap();
    k.to_value(false).unwrap()
}

/// Valid JWKs of every type, private and public, to mutate.
fn jwk_seeds() -> Vec<Value> {
    let ec: Value = serde_json::from_str(EC_KEY).unwrap();
    let mut ec_pub = ec.clone();
    ec_pub.as_object_mut().unwrap().remove("d");
    let ed: Value = serde_json::from_str(ED_KEY).unwrap();
    let x25519 = Jwk::from_pem(include_str!("fixtures/fuzz/x.pem"))
        .unwrap()
        .to_value(true)
        .unwrap();
    vec![
        serde_json::from_str(HMAC_KEY).unwrap(),
        json!({"kty":"oct","k":b64(&[1; 32]),"alg":"HS256","kid":"a","use":"sig"}),
        ec,
        ec_pub,
        ed,
        x25519,
        rsa_public_jwk(),
        json!({"kty":"EC","crv":"P-256","x":"weNJy2HscCSM6AEDTDg04biOvhFhyyWvOHQfeF_PxMQ","y":"e8lnCO-AlStT-NJVX-crhB7QRYhiix03illJOVAOyck","x5c":["MIIB"],"key_ops":["verify"]}),
    ]
}

#[derive(Debug, Clone)]
enum JwkEdit {
    Remove(Index),
    Replace(Index, Value),
    ReplaceB64(Index, Vec<u8>),
    MutateString(Index, Vec<Mutation>),
    Add(String, Value),
}

fn jwk_edit() -> impl Strategy<Value = JwkEdit> {
    let member = prop::sample::select(vec![
        "kty", "crv", "x", "y", "d", "n", "e", "p", "q", "dp", "dq", "qi", "k", "oth", "alg",
        "use", "key_ops", "kid", "x5c", "x5t", "x5t#S256",
    ]);
    prop_oneof![
        any::<Index>().prop_map(JwkEdit::Remove),
        (any::<Index>(), json_value()).prop_map(|(i, v)| JwkEdit::Replace(i, v)),
        (any::<Index>(), prop::collection::vec(any::<u8>(), 0..80))
            .prop_map(|(i, b)| JwkEdit::ReplaceB64(i, b)),
        (any::<Index>(), prop::collection::vec(mutation(), 1..3))
            .prop_map(|(i, m)| JwkEdit::MutateString(i, m)),
        (member, json_value()).prop_map(|(k, v)| JwkEdit::Add(k.to_owned(), v)),
    ]
}

fn apply_jwk_edits(mut v: Value, edits: &[JwkEdit]) -> Value {
    let Some(m) = v.as_object_mut() else {
        return v;
    };
    for e in edits {
        let keys: Vec<String> = m.keys().cloned().collect();
        let pick = |i: &Index| (!keys.is_empty()).then(|| keys[i.index(keys.len())].clone());
        match e {
            JwkEdit::Remove(i) => {
                if let Some(k) = pick(i) {
                    m.remove(&k);
                }
            }
            JwkEdit::Replace(i, val) => {
                if let Some(k) = pick(i) {
                    m.insert(k, val.clone());
                }
            }
            JwkEdit::ReplaceB64(i, b) => {
                if let Some(k) = pick(i) {
                    m.insert(k, Value::from(b64(b)));
                }
            }
            JwkEdit::MutateString(i, muts) => {
                if let Some(k) = pick(i) {
                    if let Some(Value::String(s)) = m.get(&k) {
                        let mut b = s.clone().into_bytes();
                        mutate(&mut b, muts);
                        m.insert(k, Value::from(String::from_utf8_lossy(&b).into_owned()));
                    }
                }
            }
            JwkEdit::Add(k, val) => {
                m.insert(k.clone(), val.clone());
            }
        }
    }
    v
}

/// A key accepted once is exported and re-imported as the same key.
fn check_key_roundtrip(k: &Jwk) -> Result<(), TestCaseError> {
    let exported = k.to_value(true).unwrap();
    let again = Jwk::from_value(&exported);
    prop_assert!(again.is_ok(), "re-import failed: {:?}", again.unwrap_err());
    let again = again.unwrap();
    prop_assert_eq!(again.thumbprint(), k.thumbprint());
    prop_assert_eq!(again.kty(), k.kty());
    prop_assert_eq!(again.is_private(), k.is_private());
    prop_assert_eq!(again.kid(), k.kid());
    prop_assert_eq!(again.alg(), k.alg());
    if !k.is_symmetric() {
        let public = k.to_public().unwrap();
        prop_assert!(!public.is_private());
        prop_assert_eq!(public.thumbprint(), k.thumbprint());
    }
    Ok(())
}

#[test]
fn fuzz_jwk_and_jwks() {
    let seeds = jwk_seeds();
    for s in &seeds {
        assert!(Jwk::from_value(s).is_ok(), "seed refused: {s}");
    }
    fuzz(
        "jwk_and_jwks",
        2_000,
        (
            prop::collection::vec(
                (0..seeds.len(), prop::collection::vec(jwk_edit(), 0..3)),
                0..4,
            ),
            any::<Option<Index>>(),
            prop::collection::vec(any::<u8>(), 0..200),
        ),
        |(keys, dup_kid, junk)| {
            let vals: Vec<Value> = keys
                .iter()
                .map(|(i, edits)| apply_jwk_edits(seeds[*i].clone(), edits))
                .collect();
            let mut parsed = Vec::new();
            let mut bad = 0usize;
            for v in &vals {
                let from_value = Jwk::from_value(v);
                let from_json = Jwk::from_json(v.to_string().as_bytes());
                prop_assert_eq!(from_value.is_ok(), from_json.is_ok());
                match from_value {
                    Ok(k) => {
                        check_key_roundtrip(&k)?;
                        parsed.push(k);
                    }
                    Err(_) => bad += 1,
                }
            }
            // A set: strict fails on any bad key; lenient skips exactly the bad keys and
            // refuses exactly the ambiguous sets.
            let mut arr = vals.clone();
            if let (Some(i), false) = (dup_kid, arr.is_empty()) {
                let n = arr.len();
                for v in &mut arr {
                    if let Some(m) = v.as_object_mut() {
                        m.insert("kid".into(), Value::from("same"));
                    }
                }
                arr.truncate(i.index(n) + 1);
            }
            let doc = json!({ "keys": arr }).to_string();
            let strict = JwkSet::from_json(doc.as_bytes());
            let lenient = JwkSet::from_json_lenient(doc.as_bytes());
            if dup_kid.is_none() {
                let expect_ok = JwkSet::new(parsed).is_ok();
                prop_assert_eq!(lenient.is_ok(), expect_ok);
                if let Ok((set, skipped)) = &lenient {
                    prop_assert_eq!(skipped, &bad);
                    prop_assert_eq!(set.keys().len() + skipped, vals.len());
                }
                prop_assert_eq!(strict.is_ok(), expect_ok && bad == 0);
            }
            if let Ok(set) = &strict {
                let (l, skipped) = lenient.as_ref().unwrap();
                prop_assert_eq!(*skipped, 0);
                prop_assert_eq!(l.keys().len(), set.keys().len());
            }
            // Arbitrary bytes as a key or a set: never a panic.
            let _ = Jwk::from_json(&junk);
            let _ = JwkSet::from_json(&junk);
            let _ = JwkSet::from_json_lenient(&junk);
            Ok(())
        },
    );
}

const PEM_LABELS: [&str; 7] = [
    "PRIVATE KEY",
    "PUBLIC KEY",
    "RSA PRIVATE KEY",
    "RSA PUBLIC KEY",
    "EC PRIVATE KEY",
    "CERTIFICATE",
    "ENCRYPTED PRIVATE KEY",
];

fn pem_seeds() -> Vec<(&'static str, &'static str)> {
    vec![
        ("CERTIFICATE", include_str!("fixtures/fuzz/cert.pem")),
        ("EC PRIVATE KEY", include_str!("fixtures/fuzz/ec.pem")),
        ("PRIVATE KEY", include_str!("fixtures/fuzz/ec8.pem")),
        ("PUBLIC KEY", include_str!("fixtures/fuzz/ecpub.pem")),
        ("PRIVATE KEY", include_str!("fixtures/fuzz/ed.pem")),
        ("PUBLIC KEY", include_str!("fixtures/fuzz/edpub.pem")),
        ("RSA PRIVATE KEY", include_str!("fixtures/fuzz/rsa.pem")),
        ("PUBLIC KEY", include_str!("fixtures/fuzz/rsapub.pem")),
        ("RSA PUBLIC KEY", include_str!("fixtures/fuzz/rsapub1.pem")),
        ("PRIVATE KEY", include_str!("fixtures/fuzz/x.pem")),
        ("PUBLIC KEY", include_str!("fixtures/fuzz/xpub.pem")),
    ]
}

fn wrap_pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

#[test]
fn fuzz_pem_and_der() {
    let seeds = pem_seeds();
    let ders: Vec<Vec<u8>> = seeds.iter().map(|(_, p)| pem_body(p)).collect();
    for (label, pem) in &seeds {
        let k = Jwk::from_pem(pem);
        assert!(k.is_ok(), "{label} seed refused: {:?}", k.unwrap_err());
        assert_eq!(
            Jwk::from_pem(&wrap_pem(label, &pem_body(pem)))
                .unwrap()
                .thumbprint(),
            k.unwrap().thumbprint()
        );
    }
    // Keeps RSA private keys (slow to validate) to a share of the cases comparable to the rest.
    let pick = prop_oneof![
        10 => prop::sample::select((0..seeds.len()).filter(|i| *i != 6).collect::<Vec<_>>()),
        1 => Just(6usize),
    ];
    fuzz(
        "pem_and_der",
        1_500,
        (
            pick,
            prop::option::of(prop::sample::select(PEM_LABELS.to_vec())),
            prop::collection::vec(mutation(), 0..4),
            prop::collection::vec(mutation(), 0..3),
            prop::collection::vec(any::<u8>(), 0..120),
        ),
        |(i, relabel, der_muts, text_muts, junk)| {
            let label = relabel.unwrap_or(seeds[i].0);
            let mut der = ders[i].clone();
            mutate(&mut der, &der_muts);
            let pem = wrap_pem(label, &der);
            if let Ok(k) = Jwk::from_pem(&pem) {
                check_key_roundtrip(&k)?;
                if der_muts.is_empty() && relabel.is_none() {
                    prop_assert_eq!(
                        k.thumbprint(),
                        Jwk::from_pem(seeds[i].1).unwrap().thumbprint()
                    );
                }
            }
            // The PEM text itself, mutated (markers, labels, base64): never a panic.
            let mut text = seeds[i].1.as_bytes().to_vec();
            mutate(&mut text, &text_muts);
            if let Ok(k) = Jwk::from_pem(&String::from_utf8_lossy(&text)) {
                check_key_roundtrip(&k)?;
            }
            // Random DER under every label.
            for l in PEM_LABELS {
                let _ = Jwk::from_pem(&wrap_pem(l, &junk));
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Form bodies
// ---------------------------------------------------------------------------------------------

fn form_request(content_type: &str) -> RequestHeader {
    let mut req = RequestHeader::build("POST", b"/token", None).unwrap();
    req.insert_header("content-type", content_type).unwrap();
    req
}

fn form_field(req: &RequestHeader, body: &[u8], name: &str) -> Option<String> {
    let mut v = RequestView::new(req, None);
    v.raw_body = Some(body);
    v.form_field(name).map(|c| c.into_owned())
}

/// Form bytes: mostly percent-escapes, `+`, `=` and `&`, with some arbitrary bytes.
fn form_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(b"ab=&+%2%41%zz%C3%A9%FF%e9".to_vec()),
            1 => any::<u8>(),
        ],
        0..80,
    )
}

#[test]
fn fuzz_form_bodies() {
    let form = form_request("application/x-www-form-urlencoded");
    let form_cs = form_request("Application/X-WWW-Form-Urlencoded ; charset=UTF-8");
    let json_ct = form_request("application/json");
    fuzz(
        "form_bodies",
        2_000,
        (
            prop::collection::btree_map(any::<String>(), any::<String>(), 0..6),
            form_bytes(),
            "[ab=+%&]{0,4}|\\PC{0,6}",
        ),
        |(map, junk, name)| {
            // Round trip: what a client encodes, each field reads back; as the token endpoint
            // parses it (form_urlencoded), the whole map reads back.
            let body = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(map.iter())
                .finish();
            for (k, v) in &map {
                prop_assert_eq!(form_field(&form, body.as_bytes(), k), Some(v.clone()));
                prop_assert_eq!(form_field(&form_cs, body.as_bytes(), k), Some(v.clone()));
                prop_assert_eq!(form_field(&json_ct, body.as_bytes(), k), None);
            }
            let back: BTreeMap<String, String> = form_urlencoded::parse(body.as_bytes())
                .into_owned()
                .collect();
            prop_assert_eq!(&back, &map);
            // Arbitrary bodies: the policy reader and the token endpoint's parser agree on
            // the first value of every non-empty name (never a panic on either).
            let first = form_urlencoded::parse(&junk)
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.into_owned());
            let ours = form_field(&form, &junk, &name);
            if std::str::from_utf8(&junk).is_ok() && !name.is_empty() {
                prop_assert_eq!(ours, first);
            } else if std::str::from_utf8(&junk).is_err() {
                prop_assert_eq!(ours, None);
            }
            Ok(())
        },
    );
}

#[test]
fn fuzz_request_head_readers() {
    fuzz(
        "request_head_readers",
        3_000,
        (
            form_bytes(),
            prop::collection::vec(("[a-z]{1,3}", "[a-zA-Z0-9\"]{0,6}"), 0..4),
            "[ -~]{0,30}",
            "[ -~]{0,30}",
            "[ab=+%&]{1,4}|[a-z]{1,3}|\\PC{1,6}",
        ),
        |(query, jar, junk_cookie, host, name)| {
            let mut path = b"/p?".to_vec();
            path.extend_from_slice(&query);
            let Ok(mut req) = RequestHeader::build("GET", &path, None) else {
                return Ok(());
            };
            let cookie: Vec<String> = jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req.insert_header("cookie", cookie.join("; ")).unwrap();
            let _ = req.append_header("cookie", junk_cookie.as_str());
            let host_ok = req.insert_header("host", host.as_str()).is_ok();
            let v = RequestView::new(&req, None);
            // The query is read as a form body is: first value of the name, same decoding.
            let expected = req.uri.query().and_then(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.into_owned())
            });
            prop_assert_eq!(v.query(&name).map(|c| c.into_owned()), expected);
            // A cookie reads back the first value set under its name, quotes removed.
            if let Some((k, val)) = jar.first() {
                prop_assert_eq!(v.cookie(k), Some(val.trim_matches('"')));
            }
            let _ = v.cookie(&name);
            // The host is the Host header without its port.
            if let (true, Some(h)) = (host_ok, v.host()) {
                let sent = req.headers.get("host").unwrap().to_str().unwrap();
                prop_assert!(sent.starts_with(h), "{h:?} is not a prefix of {sent:?}");
                if !sent.contains(':') && !sent.starts_with('[') {
                    prop_assert_eq!(h, sent);
                }
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------------
// The value language: variables, templates, conditions
// ---------------------------------------------------------------------------------------------

/// Variable names: known heads with random tails, and anything.
fn var_name() -> impl Strategy<Value = String> {
    let head = prop::sample::select(vec![
        "method",
        "path",
        "host",
        "client_ip",
        "route",
        "header.",
        "query.",
        "cookie.",
        "claims.",
        "identity",
        "identity.",
        "var.",
        "now",
        "uuid",
        "body.",
        "body./",
        "env.",
        "request.",
        "request.header.",
    ]);
    prop_oneof![
        4 => (head, "[a-z0-9_./~-]{0,8}|\\PC{0,4}").prop_map(|(h, t)| format!("{h}{t}")),
        1 => any::<String>(),
    ]
}

/// Template text built from pieces that stress the `$` syntax.
fn template_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => "[^$]{0,6}",
        1 => Just("$$".to_owned()),
        1 => Just("$".to_owned()),
        1 => Just("${".to_owned()),
        1 => Just("}".to_owned()),
        3 => var_name().prop_map(|v| format!("${{{v}}}")),
        1 => var_name().prop_map(|v| format!("${{ {v} }}")),
    ];
    prop_oneof![
        4 => prop::collection::vec(piece, 0..6).prop_map(|p| p.concat()),
        1 => any::<String>(),
    ]
}

/// Writes `s` so that the template language reads it back literally.
fn escape_template(s: &str) -> String {
    s.replace('$', "$$")
}

struct Fixture {
    req: RequestHeader,
    claims: Map<String, Value>,
    vars: HashMap<String, String>,
    body: Value,
}

fn fixture(header: &str, query: &str, claim: &Value, var: &str, body: &Value) -> Fixture {
    let path = format!("/p?q={}&x=1", query);
    let mut req = RequestHeader::build("GET", path.as_bytes(), None)
        .or_else(|_| RequestHeader::build("GET", b"/p", None))
        .unwrap();
    let _ = req.insert_header("x-fuzz", header);
    req.insert_header("host", "example.test:8443").unwrap();
    req.insert_header("cookie", "a=1; b=\"2\"").unwrap();
    let mut claims = Map::new();
    claims.insert("c".into(), claim.clone());
    claims.insert("n".into(), json!({"a": [1, "x", true]}));
    let mut vars = HashMap::new();
    vars.insert("v".to_owned(), var.to_owned());
    Fixture {
        req,
        claims,
        vars,
        body: body.clone(),
    }
}

fn view(f: &Fixture) -> RequestView<'_> {
    let mut v = RequestView::new(&f.req, Some("192.0.2.7".parse().unwrap()));
    v.route = "r";
    v.claims = Some(&f.claims);
    v.vars = Some(&f.vars);
    v.body = Some(&f.body);
    v.identity = Some("alice");
    v
}

#[test]
fn fuzz_templates_and_variables() {
    fuzz(
        "templates_and_variables",
        2_000,
        (
            template_text(),
            var_name(),
            "[^$]{0,8}",
            "[^$]{0,8}",
            "[ -~]{0,12}",
            "[a-zA-Z0-9%+]{0,8}",
            json_value(),
            any::<String>(),
        ),
        |(text, name, prefix, suffix, header, query, claim, var)| {
            let f = fixture(&header, &query, &claim, &var, &claim);
            let v = view(&f);
            // Any variable name: compiles or is refused; resolving never panics.
            if let Ok(var) = Var::parse(&name) {
                let one = var.resolve(&v);
                let each = var.resolve_each(&v);
                let _ = var.resolve_json(&v);
                if !var.is_volatile() && !matches!(var, Var::Claim(_)) {
                    prop_assert_eq!(
                        each.first().map(|c| c.to_string()),
                        one.map(|c| c.into_owned())
                    );
                }
            }
            // Any template text: compiles or is refused; rendering never panics.
            if let Ok(t) = Template::parse(&text) {
                let r = t.render(&v);
                if !t.is_volatile() {
                    prop_assert_eq!(&t.render_with(&v, |s, out| out.push_str(s)), &r);
                }
                if let Some(s) = t.as_static() {
                    prop_assert_eq!(r.as_deref(), Some(s));
                }
            }
            // Text without references renders as itself once `$` is escaped.
            let lit = format!("{prefix}${suffix}{text}");
            let t = Template::parse(&escape_template(&lit)).unwrap();
            prop_assert_eq!(t.as_static(), Some(lit.as_str()));
            // A reference renders as the value between literal text.
            let t = Template::parse(&format!(
                "{}${{ header.x-fuzz }}{}${{var.v}}",
                escape_template(&prefix),
                escape_template(&suffix)
            ))
            .unwrap();
            let expected = f.req.headers.get("x-fuzz").map(|h| {
                format!(
                    "{prefix}{}{suffix}{var}",
                    String::from_utf8_lossy(h.as_bytes())
                )
            });
            prop_assert_eq!(t.render(&v), expected);
            Ok(())
        },
    );
}

fn condition_config() -> impl Strategy<Value = ConditionConfig> {
    let strs = || prop::option::weighted(0.15, "\\PC{0,6}|[a-z/*?.\\[\\]{}^$|()+]{0,8}");
    let leaf = (
        prop::option::weighted(0.95, var_name()),
        (strs(), strs(), strs(), strs(), strs()),
        prop::option::weighted(0.1, prop::collection::vec("[a-z0-9.]{0,4}", 0..3)),
        prop::option::weighted(0.15, any::<bool>()),
        strs(),
        prop::option::weighted(
            0.1,
            prop::collection::vec("192\\.0\\.2\\.[0-9]{1,3}(/[0-9]{1,2})?|::1|\\PC{0,4}", 0..3),
        ),
    )
        .prop_map(
            |(
                var,
                (equals, starts_with, ends_with, contains, matches),
                in_list,
                exists,
                glob,
                cidr,
            )| {
                ConditionConfig {
                    var,
                    equals,
                    starts_with,
                    ends_with,
                    contains,
                    matches,
                    in_list,
                    exists,
                    glob,
                    cidr,
                    ..ConditionConfig::default()
                }
            },
        );
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| ConditionConfig {
                all: Some(v),
                ..ConditionConfig::default()
            }),
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| ConditionConfig {
                any: Some(v),
                ..ConditionConfig::default()
            }),
            inner.prop_map(|c| ConditionConfig {
                not: Some(Box::new(c)),
                ..ConditionConfig::default()
            }),
        ]
    })
}

/// Whether any variable of the condition changes between two evaluations.
fn volatile(c: &ConditionConfig) -> bool {
    c.var
        .as_deref()
        .is_some_and(|v| Var::parse(v).is_ok_and(|v| v.is_volatile()))
        || c.all.iter().chain(c.any.iter()).flatten().any(volatile)
        || c.not.as_deref().is_some_and(volatile)
}

#[test]
fn fuzz_conditions() {
    fuzz(
        "conditions",
        1_500,
        (
            condition_config(),
            "[ -~]{0,12}",
            "[a-zA-Z0-9%+]{0,8}",
            json_value(),
            any::<String>(),
        ),
        |(cfg, header, query, claim, var)| {
            // Compiles exactly when no problem was reported.
            let mut errs = Errors::default();
            let c = Condition::compile(&cfg, "when", &mut errs);
            prop_assert_eq!(c.is_some(), errs.is_empty(), "errors: {:?}", errs.0);
            let Some(c) = c else { return Ok(()) };
            let f = fixture(&header, &query, &claim, &var, &claim);
            let v = view(&f);
            let got = c.eval(&v);
            if volatile(&cfg) {
                return Ok(());
            }
            // `not`, and one-element `all`/`any`, compile and evaluate consistently.
            let mut errs = Errors::default();
            let wrap = |w: ConditionConfig, errs: &mut Errors| {
                Condition::compile(&w, "when", errs).unwrap().eval(&v)
            };
            let not = ConditionConfig {
                not: Some(Box::new(cfg.clone())),
                ..ConditionConfig::default()
            };
            prop_assert_eq!(wrap(not, &mut errs), !got);
            let all = ConditionConfig {
                all: Some(vec![cfg.clone()]),
                ..ConditionConfig::default()
            };
            prop_assert_eq!(wrap(all, &mut errs), got);
            let any = ConditionConfig {
                any: Some(vec![cfg.clone()]),
                ..ConditionConfig::default()
            };
            prop_assert_eq!(wrap(any, &mut errs), got);
            prop_assert!(errs.is_empty());
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Front door: the canonical path and Host
// ---------------------------------------------------------------------------------------------

/// Pieces that make the spellings proxies disagree on: dot segments, escapes of dots and
/// slashes, `;` parameters, backslashes, control escapes, bad escapes.
fn path_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "/", "//", ".", "..", "%2e", "%2E", "%2f", "%2F", "%5c", "%5C", ";", ";x=1", "a",
            "%61", "%41", "%", "%4", "%zz", "\\", "%00", "%0a", "~", "%7e", "%7E", "%3a", "%25",
            "%252e", "admin", "é", " ", "#", "?", ":", "@", "!", "*",
        ])
        .prop_map(str::to_string),
        "[ -~]{0,3}",
    ]
}

fn rules() -> impl Strategy<Value = PathRules> {
    (
        any::<bool>(),
        prop::sample::select(vec![
            EscapedSlash::Reject,
            EscapedSlash::Keep,
            EscapedSlash::Decode,
        ]),
        prop::sample::select(vec![
            PathParams::Reject,
            PathParams::Keep,
            PathParams::Strip,
        ]),
    )
        .prop_map(|(merge_slashes, escaped_slash, path_params)| PathRules {
            merge_slashes,
            escaped_slash,
            path_params,
        })
}

const UNRESERVED: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";

#[test]
fn fuzz_canonical_path() {
    fuzz(
        "canonical_path",
        20_000,
        (prop::collection::vec(path_piece(), 0..12), rules()),
        |(pieces, r)| {
            let p = format!("/{}", pieces.concat());
            let Ok(c) = canonicalize(&p, &r) else {
                return Ok(());
            };
            let b = c.as_bytes();
            prop_assert_eq!(b.first(), Some(&b'/'));
            if r.merge_slashes {
                prop_assert!(!c.contains("//"), "{p:?} -> {c:?}");
            }
            for seg in c.split('/') {
                prop_assert!(seg != "." && seg != "..", "{p:?} -> {c:?}");
            }
            let mut i = 0;
            while i < b.len() {
                let x = b[i];
                prop_assert!(x.is_ascii_graphic() && x != b'\\' && x != b'#' && x != b'?');
                if x == b'%' {
                    let hex = &c[i + 1..i + 3];
                    prop_assert_eq!(hex, hex.to_ascii_uppercase());
                    let v = u8::from_str_radix(hex, 16).unwrap();
                    prop_assert!(!UNRESERVED.contains(&v) && v >= 0x20, "{p:?} -> {c:?}");
                    if r.escaped_slash == EscapedSlash::Decode {
                        prop_assert!(v != b'/' && v != b'\\');
                    }
                    i += 3;
                    continue;
                }
                if r.path_params == PathParams::Strip {
                    prop_assert!(x != b';');
                }
                i += 1;
            }
            // A fixed point: the canonical path is its own canonical form, and one without
            // escapes or parameters is recognised without a copy.
            let again = canonicalize(&c, &r).unwrap();
            prop_assert_eq!(&again, &c);
            if !c.contains(['%', ';']) {
                prop_assert!(matches!(again, std::borrow::Cow::Borrowed(_)), "{c:?}");
            }
            Ok(())
        },
    );
}

#[test]
fn fuzz_canonical_path_arbitrary_bytes() {
    fuzz(
        "canonical_path_bytes",
        20_000,
        (any::<String>(), rules()),
        |(s, r)| {
            let _ = canonicalize(&s, &r);
            let _ = canonicalize(&format!("/{s}"), &r);
            Ok(())
        },
    );
}

fn host_piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::sample::select(vec![
            "a",
            "Example",
            ".",
            "..",
            ":",
            ":80",
            ":8080",
            ":0",
            ":65536",
            ":abc",
            "[",
            "]",
            "[::1]",
            "[::ffff:1.2.3.4]",
            "@",
            ",",
            " ",
            "%2e",
            "-",
            "_",
            "1.2.3.4",
            "xn--d",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 0..4),
    ]
}

#[test]
fn fuzz_host() {
    fuzz(
        "host",
        20_000,
        prop::collection::vec(host_piece(), 0..8),
        |pieces| {
            let v = pieces.concat();
            let Some(h) = host::parse(&v, &[80, 8080]) else {
                return Ok(());
            };
            prop_assert!(!h.name.is_empty() && !h.name.ends_with('.'));
            prop_assert_eq!(h.name.to_string(), h.name.to_ascii_lowercase());
            prop_assert!(!h.name.contains([',', '@', ' ', '%', '/', '\\']));
            prop_assert!(h.port.is_none_or(|p| p != 80 && p != 8080 && p != 0));
            let value = h.header_value();
            prop_assert!(h.is(value.as_bytes()));
            // Normalizing twice changes nothing.
            prop_assert_eq!(host::parse(value.as_bytes(), &[80, 8080]), Some(h));
            Ok(())
        },
    );
}
