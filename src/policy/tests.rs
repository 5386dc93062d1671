//! Policies and the runner without sockets: a route compiled from TOML, its chain run on a
//! request head built here. One behaviour per test.

use super::edits::{apply_headers, Body, HeaderEdit, QueryEdit};
use super::{Chain, Outcome, Run};
use crate::error::GatewayError;
use crate::request::RequestView;
use http::{HeaderName, HeaderValue};
use pingora_http::{RequestHeader, ResponseHeader};

mod generate;

/// An EC P-256 key pair (from `tokengate jose keygen --kty EC --crv P-256 --kid gw-1`).
const PRIVATE: &str = r#"{"crv":"P-256","d":"gp_mQZ9OWcxsuukqWXMUc1zuQk2UeeUB8cp-0FWOGYM","kid":"gw-1","kty":"EC","x":"PUDDq388hA1YhXfnEgm9vwXpK12z4ra-PX02f7i3eeg","y":"bpFK-ocPMbkLoP9LeBdpFm0N06PdT_B5AYg69qAY_ow"}"#;
const PUBLIC: &str = r#"{"keys":[{"crv":"P-256","kid":"gw-1","kty":"EC","x":"PUDDq388hA1YhXfnEgm9vwXpK12z4ra-PX02f7i3eeg","y":"bpFK-ocPMbkLoP9LeBdpFm0N06PdT_B5AYg69qAY_ow"}]}"#;

/// The long-lived state policies compile against (the composition root holds the same).
struct Deps {
    keys: std::sync::Arc<crate::keys::KeyCache>,
    verified: crate::cache::verified::VerifiedCaches,
}

impl Deps {
    fn new() -> Deps {
        let registry = prometheus::Registry::new();
        Deps {
            keys: std::sync::Arc::new(crate::keys::KeyCache::new(&registry).expect("key cache")),
            verified: crate::cache::verified::VerifiedCaches::default(),
        }
    }
}

/// The chain of one route with these `[[routes.policies]]` tables, or the config errors.
fn compile_route(policies: &str, deps: &Deps) -> Result<Chain, Vec<crate::error::ConfigError>> {
    let text = format!("[[routes]]\nname = \"r\"\nrespond = {{ status = 200 }}\n{policies}\n");
    let raw = crate::config::parse_str(&text)?;
    let mut errs = crate::error::Errors::default();
    let mut cx = super::CompileCtx {
        keys: &deps.keys,
        verified: &deps.verified,
        used_caches: std::collections::HashSet::new(),
        token: None,
    };
    let named = super::compile_named(&raw.policies, &mut errs, &mut cx);
    let groups = super::group::compile_groups(
        &raw.policy_groups,
        &named,
        &raw.policies,
        &mut errs,
        &mut cx,
    );
    let lib = super::Library {
        named: &named,
        raw_named: &raw.policies,
        groups: &groups,
        raw_groups: &raw.policy_groups,
    };
    let route = raw.routes.first().expect("route");
    let list = super::compile_chain(
        &route.policies,
        &lib,
        "routes[0].policies",
        &mut errs,
        &mut cx,
    );
    if errs.is_empty() {
        Ok(Chain::new(list))
    } else {
        Err(errs.0)
    }
}

fn snapshot(policies: &str) -> Chain {
    snapshot_with(policies, &Deps::new())
}

fn snapshot_with(policies: &str, deps: &Deps) -> Chain {
    compile_route(policies, deps).unwrap_or_else(|e| panic!("{e:?}"))
}

fn chain(c: &Chain) -> &Chain {
    c
}

fn req(method: &str, uri: &str, headers: &[(&str, &str)]) -> RequestHeader {
    let mut r = RequestHeader::build(method, uri.as_bytes(), None).expect("request");
    for (k, v) in headers {
        r.append_header(k.to_string(), *v).expect("header");
    }
    r
}

fn facts(r: &RequestHeader) -> RequestView<'_> {
    RequestView {
        route: "r",
        ..RequestView::new(r, None)
    }
}

fn run(c: &Chain, r: &RequestHeader) -> (Outcome, Run) {
    let mut run = Run::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let out = rt.block_on(c.request_filter(&facts(r), &mut run));
    (out, run)
}

fn response_after(c: &Chain, r: &RequestHeader, run: &Run) -> ResponseHeader {
    let mut resp = ResponseHeader::build(200, None).expect("response");
    c.response_filter(&facts(r), run, &mut resp)
        .expect("response edits");
    resp
}

fn upstream_after(c: &Chain, r: &RequestHeader, run: &Run) -> RequestHeader {
    let mut up = r.clone();
    apply_headers(&mut up, &run.edits.upstream).expect("edits");
    crate::policy::edits::apply_query(&mut up, &run.edits.query).expect("query");
    let later = c.upstream_request_filter(&facts(r), run);
    apply_headers(&mut up, &later).expect("edits");
    up
}

fn header<'a>(h: &'a http::HeaderMap, n: &str) -> Vec<&'a str> {
    h.get_all(n)
        .iter()
        .map(|v| v.to_str().expect("text"))
        .collect()
}

fn token(claims: &str) -> String {
    let key = crate::jose::Jwk::from_json(PRIVATE.as_bytes()).expect("jwk");
    let mut header = serde_json::Map::new();
    header.insert("kid".into(), "gw-1".into());
    crate::jose::sign(claims.as_bytes(), &key, crate::jose::Alg::ES256, &header).expect("sign")
}

fn now() -> u64 {
    crate::expr::unix_now()
}

fn verify_policy(extra: &str) -> String {
    format!(
        "[[routes.policies]]\ntype = \"jwt_verify\"\nalgorithms = [\"ES256\"]\nkeys = {{ jwks = '{PUBLIC}' }}\n{extra}\n"
    )
}

fn valid_token() -> String {
    token(&format!(
        r#"{{"sub":"alice","exp":{},"roles":["reader"]}}"#,
        now() + 300
    ))
}

const CORS: &str = "[[routes.policies]]\ntype = \"cors\"\nallow_origins = [\"https://app.example\"]\nallow_methods = [\"GET\", \"POST\"]\nallow_headers = [\"authorization\"]\n";

fn headers_policy(body: &str) -> String {
    format!("[[routes.policies]]\ntype = \"headers\"\n{body}\n")
}

// ---- the runner ----

#[test]
fn a_policy_whose_when_is_false_takes_part_in_no_phase() {
    let snap = snapshot(&headers_policy(
        "when = { var = \"header.x-on\", equals = \"1\" }\nresponse = { set = { x-mark = \"yes\" } }",
    ));
    let r = req("GET", "/", &[]);
    let (_, run) = run(chain(&snap), &r);
    let resp = response_after(chain(&snap), &r, &run);
    assert!(resp.headers.get("x-mark").is_none());
}

#[test]
fn a_policy_whose_when_holds_takes_part_in_later_phases() {
    let snap = snapshot(&headers_policy(
        "when = { var = \"header.x-on\", equals = \"1\" }\nresponse = { set = { x-mark = \"yes\" } }",
    ));
    let r = req("GET", "/", &[("x-on", "1")]);
    let (_, run) = run(chain(&snap), &r);
    let resp = response_after(chain(&snap), &r, &run);
    assert_eq!(header(&resp.headers, "x-mark"), ["yes"]);
}

#[test]
fn a_disabled_policy_is_not_in_the_chain() {
    let snap = snapshot(&headers_policy(
        "enabled = false\nresponse = { set = { x-mark = \"yes\" } }",
    ));
    assert!(chain(&snap).is_empty());
}

#[test]
fn the_first_denial_ends_the_request_phase() {
    let snap = snapshot(&format!("{}{}", verify_policy(""), verify_policy("")));
    let r = req("GET", "/", &[]);
    let (out, run) = run(chain(&snap), &r);
    assert!(matches!(out, Outcome::Deny(GatewayError::TokenMissing)));
    assert_eq!(run.decided_by, Some(0));
    assert_eq!(run.decisions.len(), 1);
}

#[test]
fn a_later_policy_reads_what_an_earlier_one_established() {
    let gen = |name: &str, sub: &str, out: &str| {
        format!(
            "[[routes.policies]]\ntype = \"jwt_generate\"\nalgorithm = \"ES256\"\nkey = {{ jwks = '{PRIVATE}' }}\nexpires_in = \"1m\"\ncache = {{ enabled = false }}\noutput = {out}\nclaims = {{ n = \"{name}\", sub = {sub} }}\n"
        )
    };
    let snap = snapshot(&format!(
        "{}{}",
        gen("first", "\"a\"", "{ variable = \"t1\" }"),
        gen("second", "{ from = \"var.t1\" }", "{ header = \"x-t\" }"),
    ));
    let r = req("GET", "/", &[]);
    let (out, run) = run(chain(&snap), &r);
    assert!(matches!(out, Outcome::Continue), "{out:?}");
    let minted_first = run
        .established
        .vars
        .as_ref()
        .and_then(|v| v.get("t1"))
        .expect("t1")
        .clone();
    let up = upstream_after(chain(&snap), &r, &run);
    let second = header(&up.headers, "x-t")[0].to_string();
    let payload = second.split('.').nth(1).expect("jws");
    let claims: serde_json::Value =
        serde_json::from_slice(&crate::jose::b64_decode(payload).expect("b64")).expect("json");
    assert_eq!(claims["sub"], serde_json::Value::String(minted_first));
}

#[test]
fn a_shadow_denial_lets_the_request_through_and_is_recorded() {
    let snap = snapshot(&verify_policy("enabled = \"shadow\""));
    let r = req("GET", "/", &[]);
    let (out, run) = run(chain(&snap), &r);
    assert!(matches!(out, Outcome::Continue));
    assert_eq!(run.decisions[0].code, "token_missing");
    assert_eq!(run.decisions[0].mode, super::Mode::Shadow);
}

#[test]
fn a_shadow_policy_establishes_and_edits_nothing() {
    let snap = snapshot(&verify_policy(
        "enabled = \"shadow\"\nforward_token = false\nclaims_to_headers = [{ claim = \"sub\", header = \"x-user\" }]",
    ));
    let t = valid_token();
    let r = req("GET", "/", &[("authorization", &format!("Bearer {t}"))]);
    let (_, run) = run(chain(&snap), &r);
    assert_eq!(run.decisions[0].code, "ok");
    assert!(run.established.claims.is_none());
    assert!(run.edits.is_empty());
}

#[test]
fn a_route_runs_more_than_64_policies() {
    let many: String = (0..70)
        .map(|i| headers_policy(&format!("response = {{ add = {{ x-n = \"{i}\" }} }}")))
        .collect();
    let snap = snapshot(&many);
    let r = req("GET", "/", &[]);
    let (_, run) = run(chain(&snap), &r);
    let resp = response_after(chain(&snap), &r, &run);
    let got = header(&resp.headers, "x-n");
    assert_eq!(got.len(), 70);
    assert_eq!(got[69], "69");
}

// ---- cors ----

#[test]
fn cors_answers_an_allowed_preflight() {
    let snap = snapshot(CORS);
    let r = req(
        "OPTIONS",
        "/",
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "POST"),
        ],
    );
    let (out, _) = run(chain(&snap), &r);
    let Outcome::Answer(reply) = out else {
        panic!("{out:?}")
    };
    assert_eq!(reply.status, 204);
    assert!(reply
        .headers
        .iter()
        .any(|(n, v)| n == "access-control-allow-origin" && v == "https://app.example"));
}

#[test]
fn cors_denies_a_preflight_from_another_origin() {
    let snap = snapshot(CORS);
    let r = req(
        "OPTIONS",
        "/",
        &[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "POST"),
        ],
    );
    let (out, _) = run(chain(&snap), &r);
    assert!(matches!(out, Outcome::Deny(GatewayError::CorsOriginDenied)));
}

#[test]
fn cors_denies_a_preflight_for_a_method_not_allowed() {
    let snap = snapshot(CORS);
    let r = req(
        "OPTIONS",
        "/",
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "DELETE"),
        ],
    );
    let (out, _) = run(chain(&snap), &r);
    assert!(matches!(out, Outcome::Deny(GatewayError::CorsOriginDenied)));
}

#[test]
fn cors_decorates_the_response_to_an_allowed_origin() {
    let snap = snapshot(CORS);
    let r = req("GET", "/", &[("origin", "https://app.example")]);
    let (out, run) = run(chain(&snap), &r);
    assert!(matches!(out, Outcome::Continue));
    let resp = response_after(chain(&snap), &r, &run);
    assert_eq!(
        header(&resp.headers, "access-control-allow-origin"),
        ["https://app.example"]
    );
}

#[test]
fn cors_leaves_the_response_to_another_origin_alone() {
    let snap = snapshot(CORS);
    let r = req("GET", "/", &[("origin", "https://evil.example")]);
    let (_, run) = run(chain(&snap), &r);
    let resp = response_after(chain(&snap), &r, &run);
    assert!(resp.headers.get("access-control-allow-origin").is_none());
}

#[test]
fn cors_keeps_an_upstream_allow_origin() {
    let snap = snapshot(CORS);
    let r = req("GET", "/", &[("origin", "https://app.example")]);
    let (_, run) = run(chain(&snap), &r);
    let mut resp = ResponseHeader::build(200, None).expect("response");
    resp.insert_header("access-control-allow-origin", "https://other.example")
        .expect("h");
    chain(&snap)
        .response_filter(&facts(&r), &run, &mut resp)
        .expect("edits");
    assert_eq!(
        header(&resp.headers, "access-control-allow-origin"),
        ["https://other.example"]
    );
}

// ---- headers ----

#[test]
fn headers_removes_then_sets_then_adds_upstream() {
    let snap = snapshot(&headers_policy(
        "request = { remove = [\"x-a\"], set = { x-b = \"set\" }, add = { x-a = \"added\" } }",
    ));
    let r = req("GET", "/", &[("x-a", "client"), ("x-b", "client")]);
    let (_, run) = run(chain(&snap), &r);
    let up = upstream_after(chain(&snap), &r, &run);
    assert_eq!(header(&up.headers, "x-a"), ["added"]);
    assert_eq!(header(&up.headers, "x-b"), ["set"]);
}

#[test]
fn headers_set_with_an_absent_variable_removes_the_client_value() {
    let snap = snapshot(&headers_policy(
        "request = { set = { x-user = \"${claims.sub}\" } }",
    ));
    let r = req("GET", "/", &[("x-user", "forged")]);
    let (_, run) = run(chain(&snap), &r);
    let up = upstream_after(chain(&snap), &r, &run);
    assert!(up.headers.get("x-user").is_none());
}

#[test]
fn headers_render_what_a_token_policy_established() {
    let snap = snapshot(&format!(
        "{}{}",
        verify_policy(""),
        headers_policy("request = { set = { x-user = \"${claims.sub}\" } }")
    ));
    let t = valid_token();
    let r = req("GET", "/", &[("authorization", &format!("Bearer {t}"))]);
    let (_, run) = run(chain(&snap), &r);
    let up = upstream_after(chain(&snap), &r, &run);
    assert_eq!(header(&up.headers, "x-user"), ["alice"]);
}

// ---- jwt_verify ----

#[test]
fn jwt_verify_establishes_the_claims_of_a_valid_token() {
    let snap = snapshot(&verify_policy(""));
    let t = valid_token();
    let r = req("GET", "/", &[("authorization", &format!("Bearer {t}"))]);
    let (out, run) = run(chain(&snap), &r);
    assert!(matches!(out, Outcome::Continue), "{out:?}");
    let claims = run.established.claims.expect("claims");
    assert_eq!(claims["sub"], "alice");
}

#[test]
fn jwt_verify_denies_an_expired_token() {
    let snap = snapshot(&verify_policy(""));
    let t = token(&format!(r#"{{"sub":"a","exp":{}}}"#, now() - 3600));
    let r = req("GET", "/", &[("authorization", &format!("Bearer {t}"))]);
    let (out, _) = run(chain(&snap), &r);
    assert!(
        matches!(out, Outcome::Deny(GatewayError::TokenExpired)),
        "{out:?}"
    );
}

#[test]
fn jwt_verify_denies_a_token_signed_by_another_key() {
    let snap = snapshot(&verify_policy(""));
    let t = valid_token();
    let (head, rest) = t.split_once('.').expect("jws");
    let (payload, sig) = rest.split_once('.').expect("jws");
    let mut sig = sig.to_string().into_bytes();
    sig[5] = if sig[5] == b'A' { b'B' } else { b'A' };
    let forged = format!("{head}.{payload}.{}", String::from_utf8(sig).expect("b64"));
    let r = req(
        "GET",
        "/",
        &[("authorization", &format!("Bearer {forged}"))],
    );
    let (out, _) = run(chain(&snap), &r);
    assert!(
        matches!(out, Outcome::Deny(GatewayError::SignatureInvalid)),
        "{out:?}"
    );
}

#[test]
fn jwt_verify_queues_claims_as_headers_after_clearing_the_name() {
    let snap = snapshot(&verify_policy(
        "claims_to_headers = [{ claim = \"sub\", header = \"x-user\" }]",
    ));
    let t = valid_token();
    let r = req("GET", "/", &[("authorization", &format!("Bearer {t}"))]);
    let (_, run) = run(chain(&snap), &r);
    let n = HeaderName::from_static("x-user");
    assert_eq!(
        run.edits.upstream,
        [
            HeaderEdit::Remove(n.clone()),
            HeaderEdit::Append(n, HeaderValue::from_static("alice"))
        ]
    );
}

#[test]
fn jwt_verify_without_forward_token_removes_the_token_upstream() {
    let snap = snapshot(&verify_policy("forward_token = false"));
    let t = valid_token();
    let r = req(
        "GET",
        "/",
        &[
            ("authorization", &format!("Bearer {t}")),
            ("authorization", "Basic dXNlcjpwdw=="),
        ],
    );
    let (_, run) = run(chain(&snap), &r);
    let up = upstream_after(chain(&snap), &r, &run);
    assert_eq!(header(&up.headers, "authorization"), ["Basic dXNlcjpwdw=="]);
}

#[test]
fn jwt_verify_forwards_the_token_by_default() {
    let snap = snapshot(&verify_policy(""));
    let t = valid_token();
    let r = req("GET", "/", &[("authorization", &format!("Bearer {t}"))]);
    let (_, run) = run(chain(&snap), &r);
    assert!(run.edits.upstream.is_empty());
}

// ---- jwt_generate ----

fn generate(output: &str) -> String {
    format!(
        "[[routes.policies]]\ntype = \"jwt_generate\"\nalgorithm = \"ES256\"\nkey = {{ jwks = '{PRIVATE}' }}\nexpires_in = \"1m\"\ncache = {{ enabled = false }}\noutput = {output}\nclaims = {{ sub = \"svc\" }}\n"
    )
}

#[test]
fn jwt_generate_sets_the_header_output() {
    let snap = snapshot(&generate(
        "{ header = \"authorization\", prefix = \"Bearer \" }",
    ));
    let r = req("GET", "/", &[("authorization", "Bearer client")]);
    let (_, run) = run(chain(&snap), &r);
    let up = upstream_after(chain(&snap), &r, &run);
    let got = header(&up.headers, "authorization");
    assert_eq!(got.len(), 1);
    assert!(got[0].starts_with("Bearer ey"), "{got:?}");
}

#[test]
fn jwt_generate_sets_the_query_output() {
    let snap = snapshot(&generate("{ query = \"t\" }"));
    let r = req("GET", "/p?t=client&a=1", &[]);
    let (_, run) = run(chain(&snap), &r);
    assert!(
        matches!(&run.edits.query[..], [QueryEdit::Set(n, v)] if n == "t" && v.starts_with("ey"))
    );
}

#[test]
fn jwt_generate_response_body_output_is_an_application_jwt_body() {
    let snap = snapshot(&generate("{ response_body = true }"));
    let r = req("GET", "/", &[]);
    let (_, run) = run(chain(&snap), &r);
    let Some(Body {
        bytes,
        content_type,
    }) = &run.edits.response_body
    else {
        panic!("no body")
    };
    assert_eq!(content_type, "application/jwt");
    assert!(bytes.starts_with(b"ey"));
}

#[test]
fn jwt_generate_request_body_pointer_builds_on_an_earlier_rewrite() {
    let snap = snapshot(&format!(
        "{}{}",
        generate("{ request_body = \"/a\" }"),
        generate("{ request_body = \"/b\" }")
    ));
    let r = req("POST", "/", &[("content-type", "application/json")]);
    let (out, run) = run(chain(&snap), &r);
    assert!(matches!(out, Outcome::Continue), "{out:?}");
    let body = run.edits.upstream_body.expect("body");
    assert_eq!(body.content_type, "application/json");
    let doc: serde_json::Value = serde_json::from_slice(&body.bytes).expect("json");
    assert!(doc["a"].is_string() && doc["b"].is_string(), "{doc}");
}

#[test]
fn a_denial_records_which_rule_failed_for_the_log() {
    let snap = snapshot(&verify_policy("claims = { tenant = \"acme\" }"));
    let t = token(&format!(
        r#"{{"sub":"a","tenant":"other","exp":{}}}"#,
        now() + 300
    ));
    let r = req("GET", "/", &[("authorization", &format!("Bearer {t}"))]);
    let (out, run) = run(chain(&snap), &r);
    assert!(
        matches!(out, Outcome::Deny(GatewayError::ClaimMismatch)),
        "{out:?}"
    );
    assert_eq!(run.detail.as_deref(), Some("claims rule: tenant"));
}

#[test]
fn an_acl_denial_records_the_rule() {
    let snap = snapshot(&verify_policy("acl = { roles = [\"admin\"] }"));
    let t = valid_token();
    let r = req("GET", "/", &[("authorization", &format!("Bearer {t}"))]);
    let (out, run) = run(chain(&snap), &r);
    assert!(
        matches!(out, Outcome::Deny(GatewayError::AccessDenied)),
        "{out:?}"
    );
    assert_eq!(run.detail.as_deref(), Some("acl: none of the roles"));
}

#[test]
fn a_key_file_changed_under_the_same_config_invalidates_cached_verifications() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("keys.json");
    std::fs::write(&file, PUBLIC).expect("write");
    let policy = format!(
        "[[routes.policies]]\ntype = \"jwt_verify\"\nalgorithms = [\"ES256\"]\nkeys = {{ file = \"{}\" }}\ncache = {{ enabled = true }}\n",
        file.display()
    );
    let deps = Deps::new();
    let t = valid_token();
    let r = req("GET", "/", &[("authorization", &format!("Bearer {t}"))]);
    let before = snapshot_with(&policy, &deps);
    let (out, _) = run(chain(&before), &r);
    assert!(matches!(out, Outcome::Continue), "{out:?}");
    let other = crate::jose::Jwk::generate("EC", None, crate::jose::Curve::from_name("P-256"))
        .expect("key")
        .with_kid("gw-1");
    let set = serde_json::json!({ "keys": [other.to_value(false).expect("public")] });
    std::fs::write(&file, set.to_string()).expect("write");
    let after = snapshot_with(&policy, &deps);
    let (out, _) = run(chain(&after), &r);
    assert!(
        matches!(out, Outcome::Deny(GatewayError::SignatureInvalid)),
        "{out:?}"
    );
}

#[test]
fn a_realm_that_cannot_be_a_header_value_is_refused_at_load() {
    let errs =
        compile_route(&verify_policy("realm = \"api\\u0007\""), &Deps::new()).expect_err("refused");
    assert!(
        errs.iter().any(|e| e.path == "routes[0].policies[0].realm"),
        "{errs:?}"
    );
}

#[test]
fn an_embedded_key_that_cannot_sign_with_the_algorithm_is_refused_at_load() {
    // An EC P-256 key configured for ES384: the curve does not fit.
    let policy = format!(
        "[[routes.policies]]\ntype = \"jwt_generate\"\nalgorithm = \"ES384\"\nkey = {{ jwks = '{PRIVATE}' }}\n"
    );
    let errs = compile_route(&policy, &Deps::new()).expect_err("refused");
    assert!(
        errs.iter()
            .any(|e| e.path == "routes[0].policies[0].key" && e.message.contains("ES384")),
        "{errs:?}"
    );
}

/// The minted token of one jwt_generate policy at `now`.
fn mint_at(c: &Chain, r: &RequestHeader, now: u64) -> String {
    let Some(super::Policy {
        kind: super::Kind::JwtGenerate(g),
        ..
    }) = c.get(0)
    else {
        panic!("not jwt_generate")
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut fx = super::Effects::default();
    rt.block_on(g.mint_at(&facts(r), &super::Edits::default(), &mut fx, now))
        .expect("minted");
    fx.vars.pop().expect("variable").1
}

const CACHED: &str = "[[routes.policies]]\ntype = \"jwt_generate\"\nalgorithm = \"ES256\"\nexpires_in = \"10s\"\ncache = { refresh_at = 0.5 }\noutput = { variable = \"t\" }\nclaims = { sub = { from = \"header.x-user\" } }\n";

fn cached_generate() -> Chain {
    snapshot(&CACHED.replace(
        "expires_in",
        &format!("key = {{ jwks = '{PRIVATE}' }}\nexpires_in"),
    ))
}

#[test]
fn jwt_generate_reuses_a_minted_token_before_refresh_at() {
    let snap = cached_generate();
    let r = req("GET", "/", &[("x-user", "a")]);
    let first = mint_at(chain(&snap), &r, 1_000_000);
    assert_eq!(mint_at(chain(&snap), &r, 1_000_004), first);
}

#[test]
fn jwt_generate_mints_again_at_refresh_at() {
    let snap = cached_generate();
    let r = req("GET", "/", &[("x-user", "a")]);
    let first = mint_at(chain(&snap), &r, 1_000_000);
    assert_ne!(mint_at(chain(&snap), &r, 1_000_005), first);
}

#[test]
fn jwt_generate_mints_per_claims_set() {
    let snap = cached_generate();
    let a = mint_at(
        chain(&snap),
        &req("GET", "/", &[("x-user", "a")]),
        1_000_000,
    );
    let b = mint_at(
        chain(&snap),
        &req("GET", "/", &[("x-user", "b")]),
        1_000_000,
    );
    assert_ne!(a, b);
}

#[test]
fn jwt_generate_caches_no_more_tokens_than_its_capacity() {
    let snap = snapshot(
        &CACHED
            .replace("refresh_at = 0.5", "refresh_at = 0.5, capacity = 1")
            .replace(
                "expires_in",
                &format!("key = {{ jwks = '{PRIVATE}' }}\nexpires_in"),
            ),
    );
    let (a, b) = (
        req("GET", "/", &[("x-user", "a")]),
        req("GET", "/", &[("x-user", "b")]),
    );
    let first_a = mint_at(chain(&snap), &a, 1_000_000);
    let first_b = mint_at(chain(&snap), &b, 1_000_000);
    assert_eq!(mint_at(chain(&snap), &a, 1_000_001), first_a);
    assert_ne!(
        mint_at(chain(&snap), &b, 1_000_001),
        first_b,
        "full: the second token was not cached"
    );
}

/// The config types whose fingerprints key shared state carry their secrets in their
/// JSON (not redacted), so the fingerprint changes with them.
#[test]
fn jwt_verify_configs_differing_only_by_the_secret_differ() {
    use crate::config::policy::jwt_verify::JwtVerifyConfig;
    use crate::fingerprint::of;
    let conf = |secret: &str| -> JwtVerifyConfig {
        toml::from_str(&format!(
            "algorithms = [\"HS256\"]\nkeys = {{ secret = \"{secret}\" }}"
        ))
        .unwrap()
    };
    let a = of("jwt_verify", &conf("first-secret-0123456789abcdef")).unwrap();
    let b = of("jwt_verify", &conf("other-secret-0123456789abcdef")).unwrap();
    assert_ne!(a, b);
    assert!(!a.contains("secret-0123") && !b.contains("secret-0123"));
}

// ---- config that cannot work is refused at load, with its path ----

/// The errors of a route with these policies (panics when it compiles).
fn refused(policies: &str) -> Vec<String> {
    match compile_route(policies, &Deps::new()) {
        Ok(_) => panic!("compiled:\n{policies}"),
        Err(errs) => errs.iter().map(ToString::to_string).collect(),
    }
}

fn assert_refused(policies: &str, path: &str, code: &str) {
    let errs = refused(policies);
    assert!(
        errs.iter()
            .any(|e| e.starts_with(&format!("{path}: ")) && e.contains(code)),
        "no {code} at {path} in {errs:?}"
    );
}

const SECRET_16: &str = "0123456789abcdef";
const SECRET_32: &str = "0123456789abcdef0123456789abcdef";

#[test]
fn jwt_verify_hs256_with_a_secret_under_32_bytes_is_refused() {
    let p = format!(
        "[[routes.policies]]\ntype = \"jwt_verify\"\nalgorithms = [\"HS256\"]\nkeys = {{ secret = \"{SECRET_16}\" }}\n"
    );
    assert_refused(&p, "routes[0].policies[0].keys", "key_too_short");
    assert!(compile_route(&p.replace(SECRET_16, SECRET_32), &Deps::new()).is_ok());
}

#[test]
fn jwt_verify_rs256_with_an_ec_key_is_refused() {
    let p = verify_policy("").replace("[\"ES256\"]", "[\"RS256\"]");
    assert_refused(&p, "routes[0].policies[0].keys", "key_type_mismatch");
}

#[test]
fn jwt_verify_es384_with_a_p256_key_is_refused() {
    let p = verify_policy("").replace("[\"ES256\"]", "[\"ES256\", \"ES384\"]");
    assert_refused(&p, "routes[0].policies[0].keys", "invalid_curve");
}

#[test]
fn jwt_verify_dir_key_of_another_length_than_the_encryption_is_refused() {
    let p = format!(
        "[[routes.policies]]\ntype = \"jwt_verify\"\nforms = [\"jwe\"]\nkey_algorithms = [\"dir\"]\nencryptions = [\"A256GCM\"]\ndecryption_keys = {{ secret = \"{SECRET_16}\" }}\n"
    );
    assert_refused(
        &p,
        "routes[0].policies[0].decryption_keys",
        "key_length_mismatch",
    );
    assert!(compile_route(&p.replace(SECRET_16, SECRET_32), &Deps::new()).is_ok());
}

fn generate_policy(extra: &str) -> String {
    format!(
        "[[routes.policies]]\ntype = \"jwt_generate\"\nalgorithm = \"ES256\"\nkey = {{ jwks = '{PRIVATE}' }}\noutput = {{ header = \"x-t\" }}\n{extra}\n"
    )
}

#[test]
fn jwt_generate_hs256_with_a_secret_under_32_bytes_is_refused() {
    let p = generate_policy("")
        .replace("\"ES256\"", "\"HS256\"")
        .replace(
            &format!("jwks = '{PRIVATE}'"),
            &format!("secret = \"{SECRET_16}\""),
        );
    assert_refused(&p, "routes[0].policies[0].key", "key_too_short");
}

#[test]
fn jwt_generate_rs256_with_an_ec_key_is_refused() {
    let p = generate_policy("").replace("\"ES256\"", "\"RS256\"");
    assert_refused(&p, "routes[0].policies[0].key", "key_type_mismatch");
}

#[test]
fn jwt_generate_key_wrap_key_of_another_length_is_refused() {
    let p = generate_policy(&format!(
        "encrypt = {{ key = {{ secret = \"{SECRET_32}\" }}, key_algorithm = \"A128KW\", encryption = \"A128GCM\" }}"
    ));
    assert_refused(
        &p,
        "routes[0].policies[0].encrypt.key",
        "key_length_mismatch",
    );
}

#[test]
fn a_fraction_of_a_second_on_a_field_in_seconds_is_refused_naming_the_unit() {
    for (policy, path) in [
        (generate_policy("expires_in = \"1500ms\""), "expires_in"),
        (generate_policy("not_before = \"1500ms\""), "not_before"),
        (verify_policy("clock_skew = \"1500ms\""), "clock_skew"),
        (verify_policy("max_lifetime = \"2500ms\""), "max_lifetime"),
        (CORS.to_string() + "max_age = \"1500ms\"\n", "max_age"),
    ] {
        let errs = refused(&policy);
        assert!(
            errs.iter().any(
                |e| e.starts_with(&format!("routes[0].policies[0].{path}: "))
                    && e.contains("measured in seconds")
            ),
            "{path}: {errs:?}"
        );
    }
}

// ---- continue_on_error and on_error ----

fn expired_token() -> String {
    token(&format!(r#"{{"sub":"a","exp":{}}}"#, now() - 3600))
}

fn bearer_req(t: &str) -> RequestHeader {
    req("GET", "/", &[("authorization", &format!("Bearer {t}"))])
}

fn var<'a>(run: &'a Run, name: &str) -> Option<&'a str> {
    run.established.vars.as_ref()?.get(name).map(String::as_str)
}

/// `[policies.anon]`: mints a token for `sub = "anonymous"` into Authorization.
fn anon_policy() -> String {
    format!(
        "[policies.anon]\ntype = \"jwt_generate\"\nalgorithm = \"ES256\"\nkey = {{ jwks = '{PRIVATE}' }}\nexpires_in = \"1m\"\nclaims = {{ sub = \"anonymous\" }}\n"
    )
}

#[test]
fn continue_on_error_lets_a_failed_request_go_on_with_its_error_in_variables() {
    let snap = snapshot(&verify_policy("continue_on_error = true"));
    let (out, run) = run(chain(&snap), &bearer_req(&expired_token()));
    assert!(matches!(out, Outcome::Continue), "{out:?}");
    assert_eq!(var(&run, "jwt.jwt_verify.failed"), Some("true"));
    assert_eq!(var(&run, "jwt.jwt_verify.error"), Some("token_expired"));
    assert!(run.established.claims.is_none());
}

#[test]
fn continue_on_error_records_the_denial_with_its_code() {
    let snap = snapshot(&verify_policy("continue_on_error = true"));
    let (_, run) = run(chain(&snap), &bearer_req(&expired_token()));
    assert_eq!(run.decisions[0].code, "token_expired");
    assert_eq!(run.decisions[0].mode, super::Mode::Continue);
    assert_eq!(run.decided_by, None);
}

#[test]
fn continue_on_error_records_a_success_as_not_failed() {
    let snap = snapshot(&verify_policy("continue_on_error = true"));
    let (_, run) = run(chain(&snap), &bearer_req(&valid_token()));
    assert_eq!(var(&run, "jwt.jwt_verify.failed"), Some("false"));
    assert_eq!(var(&run, "jwt.jwt_verify.error"), None);
    assert!(run.established.claims.is_some());
}

#[test]
fn a_condition_on_the_failure_variable_selects_a_later_policy() {
    let snap = snapshot(&format!(
        "{}{}",
        verify_policy("continue_on_error = true"),
        headers_policy(
            "when = { var = \"jwt.jwt_verify.failed\", equals = \"true\" }\nresponse = { set = { x-anon = \"yes\" } }"
        )
    ));
    let r = bearer_req(&expired_token());
    let (_, failed) = run(chain(&snap), &r);
    assert_eq!(
        header(&response_after(chain(&snap), &r, &failed).headers, "x-anon"),
        ["yes"]
    );
    let r = bearer_req(&valid_token());
    let (_, ok) = run(chain(&snap), &r);
    assert!(response_after(chain(&snap), &r, &ok)
        .headers
        .get("x-anon")
        .is_none());
}

#[test]
fn on_error_runs_the_named_policy_in_place_of_the_denial() {
    let snap = snapshot(&format!(
        "{}{}",
        anon_policy(),
        verify_policy("on_error = { token_missing = { use = \"anon\" } }")
    ));
    let r = req("GET", "/", &[]);
    let (out, run) = run(chain(&snap), &r);
    assert!(matches!(out, Outcome::Continue), "{out:?}");
    assert_eq!(run.decisions[0].code, "token_missing");
    assert_eq!(run.decisions[0].mode, super::Mode::Handled);
    let up = upstream_after(chain(&snap), &r, &run);
    let minted = header(&up.headers, "authorization")[0].to_string();
    let payload = minted.split('.').nth(1).expect("jws");
    let claims: serde_json::Value =
        serde_json::from_slice(&crate::jose::b64_decode(payload).expect("b64")).expect("json");
    assert_eq!(claims["sub"], "anonymous");
}

#[test]
fn on_error_leaves_the_other_codes_denied() {
    let snap = snapshot(&format!(
        "{}{}",
        anon_policy(),
        verify_policy("on_error = { token_missing = { use = \"anon\" } }")
    ));
    let (out, run) = run(chain(&snap), &bearer_req(&expired_token()));
    assert!(
        matches!(out, Outcome::Deny(GatewayError::TokenExpired)),
        "{out:?}"
    );
    assert_eq!(run.decided_by, Some(0));
    assert_eq!(run.decisions[0].mode, super::Mode::Enforce);
}

#[test]
fn a_handler_takes_part_in_the_later_phases() {
    let snap = snapshot(&format!(
        "[policies.mark]\ntype = \"headers\"\nrequest = {{ set = {{ x-anon = \"yes\" }} }}\n{}",
        verify_policy("on_error = { token_missing = { use = \"mark\" } }")
    ));
    let r = req("GET", "/", &[]);
    let (_, handled) = run(chain(&snap), &r);
    assert_eq!(
        header(
            &upstream_after(chain(&snap), &r, &handled).headers,
            "x-anon"
        ),
        ["yes"]
    );
    let r = bearer_req(&valid_token());
    let (_, ok) = run(chain(&snap), &r);
    assert!(upstream_after(chain(&snap), &r, &ok)
        .headers
        .get("x-anon")
        .is_none());
}

#[test]
fn a_handlers_denial_is_the_answer_and_its_own_decision() {
    let snap = snapshot(&format!(
        "[policies.no]\ntype = \"deny\"\n{}",
        verify_policy("on_error = { token_expired = { use = \"no\" } }")
    ));
    let (out, run) = run(chain(&snap), &bearer_req(&expired_token()));
    assert!(
        matches!(out, Outcome::Deny(GatewayError::Forbidden)),
        "{out:?}"
    );
    assert_eq!(run.decided_by, Some(1));
    let got: Vec<_> = chain(&snap)
        .decisions(&run)
        .map(|(l, c, m)| (l, c, m.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("jwt_verify", "token_expired", "handled"),
            ("no", "forbidden", "enforce")
        ]
    );
}

#[test]
fn on_error_with_an_unknown_code_is_refused() {
    let p = format!(
        "{}{}",
        anon_policy(),
        verify_policy("on_error = { token_expird = { use = \"anon\" } }")
    );
    assert_refused(
        &p,
        "routes[0].policies[0].on_error.token_expird",
        "unknown error code",
    );
}

#[test]
fn on_error_naming_no_policy_is_refused() {
    let p = verify_policy("on_error = { token_missing = { use = \"nope\" } }");
    assert_refused(
        &p,
        "routes[0].policies[0].on_error.token_missing.use",
        "no policy named",
    );
}

#[test]
fn an_on_error_cycle_is_refused() {
    let named = |name: &str, next: &str| {
        format!(
            "[policies.{name}]\ntype = \"jwt_verify\"\nalgorithms = [\"ES256\"]\nkeys = {{ jwks = '{PUBLIC}' }}\non_error = {{ token_missing = {{ use = \"{next}\" }} }}\n"
        )
    };
    let p = format!("{}{}", named("a", "b"), named("b", "a"));
    assert_refused(
        &p,
        "policies.b.on_error.token_missing.use",
        "cycle: a -> b -> a",
    );
    assert_refused(
        &named("a", "a"),
        "policies.a.on_error.token_missing.use",
        "cycle: a -> a",
    );
}

#[test]
fn continue_on_error_is_refused_where_it_cannot_act() {
    assert_refused(
        &headers_policy("continue_on_error = true"),
        "routes[0].policies[0].continue_on_error",
        "is for jwt_verify and jwt_generate",
    );
    assert_refused(
        &verify_policy("enabled = \"shadow\"\ncontinue_on_error = true"),
        "routes[0].policies[0].continue_on_error",
        "shadow",
    );
}

#[test]
fn a_minted_variable_cannot_take_a_result_name() {
    let p = format!(
        "[[routes.policies]]\ntype = \"jwt_generate\"\nalgorithm = \"ES256\"\nkey = {{ jwks = '{PRIVATE}' }}\noutput = {{ variable = \"jwt.jwt_verify.failed\" }}\n"
    );
    assert_refused(&p, "routes[0].policies[0].output.variable", "reserved");
}

#[test]
fn a_result_variable_other_than_failed_or_error_is_refused() {
    assert!(crate::expr::Var::parse("jwt.verify.failed").is_ok());
    assert!(crate::expr::Var::parse("jwt.verify.error").is_ok());
    assert!(crate::expr::Var::parse("jwt.verify.claims").is_err());
    assert!(crate::expr::Var::parse("jwt.failed").is_err());
}

#[test]
fn a_shadow_handler_is_refused() {
    let p = format!(
        "[policies.no]\ntype = \"deny\"\nenabled = \"shadow\"\n{}",
        verify_policy("on_error = { token_missing = { use = \"no\" } }")
    );
    assert_refused(
        &p,
        "routes[0].policies[0].on_error.token_missing.use",
        "shadow mode",
    );
}

#[test]
fn a_handlers_condition_reads_the_failure() {
    let snap = snapshot(&format!(
        "[policies.mark]\ntype = \"headers\"\nwhen = {{ var = \"jwt.jwt_verify.error\", equals = \"token_missing\" }}\nrequest = {{ set = {{ x-anon = \"yes\" }} }}\n{}",
        verify_policy("on_error = { token_missing = { use = \"mark\" } }")
    ));
    let r = req("GET", "/", &[]);
    let (out, run) = run(chain(&snap), &r);
    assert!(matches!(out, Outcome::Continue), "{out:?}");
    assert_eq!(
        header(&upstream_after(chain(&snap), &r, &run).headers, "x-anon"),
        ["yes"]
    );
}
