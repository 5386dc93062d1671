//! Token service benchmarks (issue 6, item 11): client_credentials issuance for ES256 JWT,
//! RS256 JWT and opaque tokens, next to the raw aws-lc-rs sign operation of the same
//! algorithm; and the jwt_auth check of a repeated token. `cargo bench --bench token`.
//!
//! Issuance here is the service minus HTTP (`TokenService::mint`). Opaque tokens are written
//! to the embedded store, durably: each issuance waits for an fsync'd commit (group commit
//! helps only under concurrency), so opaque issuance measures the disk.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use criterion::Criterion;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;
use tokengate::jose::{self, Alg, Jwk};
use tokengate::token::TokenService;

fn service(dir: &std::path::Path, alg: &str, format: &str) -> Arc<TokenService> {
    let text = format!(
        r#"
[[listeners]]
address = "127.0.0.1:1"
[[routes]]
name = "r"
respond = {{ status = 200 }}
[token_service]
issuer = "https://bench.example"
signing_alg = "{alg}"
token_format = "{format}"
key_dir = "{d}/keys-{alg}"
[token_service.store]
path = "{d}/tokens-{alg}-{format}.redb"
[[token_service.clients]]
client_id = "svc"
secret_hash = "{h}"
scopes = ["read", "write"]
audience = ["api"]
"#,
        d = dir.display(),
        h = tokengate::identity::secret::SecretHash::create(b"s", 1000).unwrap(),
    );
    let raw = tokengate::config::parse_str(&text).unwrap();
    let shared = tokengate::shared::Shared::new(&prometheus::Registry::new()).unwrap();
    let snap = tokengate::compile::compile(&raw, "bench", 1, None, &shared).unwrap();
    snap.token.clone().unwrap()
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let claims = br#"{"iss":"https://bench.example","sub":"svc","aud":"api","client_id":"svc","scope":"read write","iat":1700000000,"exp":1900000000,"jti":"abcdefabcdefabcdefabcd"}"#;
    for (alg, kty, crv) in [("ES256", "EC", Some("P-256")), ("RS256", "RSA", None)] {
        let a = Alg::from_name(alg).unwrap();
        let key: Jwk = Jwk::generate(kty, None, crv.and_then(jose::Curve::from_name)).unwrap();
        let hdr = serde_json::Map::new();
        c.bench_function(&format!("sign/{alg} (jose::sign, the floor)"), |b| {
            b.iter(|| black_box(jose::sign(claims, &key, a, &hdr).unwrap()))
        });
        let svc = service(dir.path(), alg, "jwt");
        c.bench_function(&format!("issue/{alg} JWT client_credentials"), |b| {
            b.iter(|| black_box(rt.block_on(svc.mint("svc", None)).unwrap()))
        });
        let token = rt.block_on(svc.mint("svc", None)).unwrap();
        c.bench_function(
            &format!("check/{alg} JWT (jwt_auth core, repeated token)"),
            |b| {
                b.iter(|| {
                    black_box(
                        rt.block_on(svc.check_access(&token, 1_700_000_100))
                            .unwrap(),
                    )
                })
            },
        );
    }
    let svc = service(dir.path(), "ES256", "opaque");
    c.bench_function("issue/opaque (embedded store, durable)", |b| {
        b.iter(|| black_box(rt.block_on(svc.mint("svc", None)).unwrap()))
    });
    let token = rt.block_on(svc.mint("svc", None)).unwrap();
    c.bench_function("check/opaque (embedded store lookup)", |b| {
        b.iter(|| {
            black_box(
                rt.block_on(svc.check_access(&token, tokengate::store::now_unix()))
                    .unwrap(),
            )
        })
    });
    c.final_summary();
}
