#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Route matching and condition evaluation: the per-request work of the gateway core that
//! does not touch a socket. `cargo bench --bench routing`.

use criterion::{criterion_group, criterion_main, Criterion};
use pingora_http::RequestHeader;
use std::hint::black_box;
use tokengate::request::RequestView;

fn compile(text: &str) -> tokengate::Snapshot {
    let raw = tokengate::config::parse_str(text).unwrap();
    let shared = tokengate::shared::Shared::detached().unwrap();
    tokengate::compile::compile(&raw, "h", 1, None, &shared).unwrap()
}

fn snapshot(routes: usize) -> tokengate::Snapshot {
    let mut text =
        String::from("[[listeners]]\naddress = \"127.0.0.1:1\"\n[admin]\nenabled = false\n");
    for i in 0..routes {
        text.push_str(&format!(
            "[[routes]]\nname = \"r{i}\"\nmatch = {{ hosts = [\"*.svc{i}.example.com\"], path_prefix = \"/api/v{i}\", methods = [\"GET\", \"POST\"] }}\nrespond = {{ status = 200 }}\n"
        ));
    }
    text.push_str(
        r#"[[routes]]
name = "last"
match = { path_regex = "^/items/[0-9]+$", headers = { "x-env" = "prod" } }
respond = { status = 200 }
"#,
    );
    compile(&text)
}

fn req() -> RequestHeader {
    let mut r = RequestHeader::build("GET", b"/items/42?x=1", None).unwrap();
    r.insert_header("host", "api.example.com").unwrap();
    r.insert_header("x-env", "prod").unwrap();
    r.insert_header("cookie", "a=1; sid=abc; theme=dark")
        .unwrap();
    r
}

fn bench_routes(c: &mut Criterion) {
    let r = req();
    for n in [1usize, 10, 100] {
        let snap = snapshot(n);
        c.bench_function(&format!("route_match/{n}_routes_then_regex"), |b| {
            b.iter(|| {
                let v = RequestView::new(black_box(&r), None);
                black_box(snap.route_for(&v).map(|(i, _)| i))
            })
        });
    }
}

/// `n` prefix routes `/api/v{i}` answered at the gateway (no host, any method).
fn prefix_snapshot(n: usize) -> tokengate::Snapshot {
    let mut text =
        String::from("[[listeners]]\naddress = \"127.0.0.1:1\"\n[admin]\nenabled = false\n");
    for i in 0..n {
        text.push_str(&format!(
            "[[routes]]\nname = \"r{i}\"\nmatch = {{ path_prefix = \"/api/v{i}\" }}\nrespond = {{ status = 200 }}\n"
        ));
    }
    compile(&text)
}

/// Lookup at 1 to 10,000 routes: the first, middle and last route and a miss, through the
/// index (`route_for`) and, for reference, the linear scan.
fn bench_scale(c: &mut Criterion) {
    for n in [1usize, 100, 1_000, 10_000] {
        let snap = prefix_snapshot(n);
        for (what, i) in [
            ("first", 0),
            ("middle", n / 2),
            ("last", n - 1),
            ("miss", n),
        ] {
            let mut r =
                RequestHeader::build("GET", format!("/api/v{i}/items").as_bytes(), None).unwrap();
            r.insert_header("host", "api.example.com").unwrap();
            let want = (i < n).then_some(i);
            let v = RequestView::new(&r, None);
            assert_eq!(snap.route_for(&v).map(|(i, _)| i), want);
            c.bench_function(&format!("route_index/{n}/{what}"), |b| {
                b.iter(|| {
                    let v = RequestView::new(black_box(&r), None);
                    black_box(snap.route_for(&v).map(|(i, _)| i))
                })
            });
            if what != "middle" {
                c.bench_function(&format!("route_linear/{n}/{what}"), |b| {
                    b.iter(|| {
                        let v = RequestView::new(black_box(&r), None);
                        black_box(snap.route_for_linear(&v))
                    })
                });
            }
        }
    }
}

fn bench_conditions(c: &mut Criterion) {
    let r = req();
    let cond: tokengate::config::ConditionConfig = toml::from_str(
        r#"all = [
  { var = "method", in = ["GET", "HEAD"] },
  { var = "path", glob = "/items/*" },
  { var = "header.x-env", equals = "prod" },
  { var = "cookie.sid", exists = true },
  { var = "client_ip", cidr = ["10.0.0.0/8", "192.168.0.0/16"] },
  { not = { var = "query.debug", exists = true } },
]"#,
    )
    .unwrap();
    let mut errs = tokengate::error::Errors::default();
    let cond = tokengate::expr::Condition::compile(&cond, "when", &mut errs).unwrap();
    let ip = "10.1.2.3".parse().ok();
    c.bench_function("condition/six_tests_all_true", |b| {
        b.iter(|| {
            let mut v = RequestView::new(black_box(&r), ip);
            v.route = "r";
            black_box(cond.eval(&v))
        })
    });
}

criterion_group!(benches, bench_routes, bench_scale, bench_conditions);
criterion_main!(benches);
