//! jwt_generate parity with GenerateJWT/Flex: time formats and offsets, lifetimes from the
//! request, headers and claims. Tokens minted at a fixed `now`, decoded here.

use super::*;
use serde_json::Value;

const NOW: u64 = 1_800_000_000;

/// A signed-token policy with `extra` keys, its token in the variable `t`.
fn policy(extra: &str) -> String {
    format!(
        "[[routes.policies]]\ntype = \"jwt_generate\"\nalgorithm = \"ES256\"\nkey = {{ jwks = '{PRIVATE}' }}\ncache = {{ enabled = false }}\noutput = {{ variable = \"t\" }}\n{extra}\n"
    )
}

/// Mint with this policy at NOW: the decoded (header, claims), or the request's error.
fn mint(extra: &str, headers: &[(&str, &str)]) -> Result<(Value, Value), GatewayError> {
    let snap = snapshot(&policy(extra));
    let Some(super::super::Policy {
        kind: super::super::Kind::JwtGenerate(g),
        ..
    }) = snap.get(0)
    else {
        panic!("not jwt_generate")
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let r = req("GET", "/", headers);
    let mut fx = super::super::Effects::default();
    rt.block_on(g.mint_at(&facts(&r), &super::super::Edits::default(), &mut fx, NOW))?;
    let tok = fx.vars.pop().expect("variable").1;
    let part = |i: usize| -> Value {
        let seg = tok.split('.').nth(i).expect("segment");
        serde_json::from_slice(&crate::jose::b64_decode(seg).expect("b64")).expect("json")
    };
    Ok((part(0), part(1)))
}

fn claims(extra: &str, headers: &[(&str, &str)]) -> Value {
    mint(extra, headers).expect("minted").1
}

fn errors_at(extra: &str, field: &str) -> Vec<String> {
    let path = format!("routes[0].policies[0].{field}");
    refused(&policy(extra))
        .into_iter()
        .filter(|e| e.starts_with(&format!("{path}: ")))
        .collect()
}

// ---- not_before, issued_at, expires_in ----

#[test]
fn not_before_accepts_rfc3339_with_offsets_and_milliseconds() {
    for t in [
        "2027-01-15T01:00:00.250-07:00",
        "2027-01-15T01:00:00-0700",
        "2027-01-15T08:00:00Z",
    ] {
        let c = claims(&format!("not_before = \"{t}\""), &[]);
        assert_eq!(c["nbf"], 1800000000, "{t}");
    }
}

#[test]
fn not_before_accepts_the_three_http_date_formats() {
    for t in [
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
    ] {
        assert_eq!(
            claims(&format!("not_before = \"{t}\""), &[])["nbf"],
            784_111_777,
            "{t}"
        );
    }
}

#[test]
fn not_before_offsets_may_backdate() {
    assert_eq!(claims("not_before = \"-5m\"", &[])["nbf"], NOW - 300);
    assert_eq!(claims("not_before = \"30s\"", &[])["nbf"], NOW + 30);
    assert_eq!(claims("not_before = -60", &[])["nbf"], NOW - 60);
}

#[test]
fn not_before_zero_omits_the_claim() {
    for v in ["0", "\"0\"", "\"0s\""] {
        let c = claims(&format!("not_before = {v}"), &[]);
        assert!(c.get("nbf").is_none(), "{v}: {c}");
    }
}

#[test]
fn a_not_before_that_is_neither_offset_nor_time_is_refused_with_its_path() {
    for v in [
        "\"tomorrow\"",
        "\"2027-13-01T00:00:00Z\"",
        "\"Sun, 06 Nov 1994\"",
    ] {
        let e = errors_at(&format!("not_before = {v}"), "not_before");
        assert!(e.iter().any(|m| m.contains("RFC 1123")), "{v}: {e:?}");
    }
}

#[test]
fn issued_at_takes_an_offset() {
    assert_eq!(claims("issued_at = \"-30s\"", &[])["iat"], NOW - 30);
    assert_eq!(claims("", &[])["iat"], NOW);
    assert!(claims("issued_at = false", &[]).get("iat").is_none());
    assert_eq!(errors_at("issued_at = \"soon\"", "issued_at").len(), 1);
}

#[test]
fn expires_in_zero_omits_exp_and_under_a_second_is_refused() {
    for v in ["0", "\"0s\""] {
        let c = claims(&format!("expires_in = {v}"), &[]);
        assert!(c.get("exp").is_none(), "{v}: {c}");
    }
    for v in ["\"500ms\"", "\"999ms\""] {
        let e = errors_at(&format!("expires_in = {v}"), "expires_in");
        assert!(
            e.iter().any(|m| m.contains("measured in seconds")),
            "{v}: {e:?}"
        );
    }
    assert_eq!(claims("expires_in = \"1s\"", &[])["exp"], NOW + 1);
}

const TTL: &str = "expires_in = { from = \"header.x-ttl\", max = \"1h\" }";

#[test]
fn expires_in_from_a_request_value_in_seconds_or_a_duration() {
    assert_eq!(claims(TTL, &[("x-ttl", "300")])["exp"], NOW + 300);
    assert_eq!(claims(TTL, &[("x-ttl", "5m")])["exp"], NOW + 300);
    assert_eq!(claims(TTL, &[("x-ttl", "1h")])["exp"], NOW + 3600);
}

#[test]
fn expires_in_from_a_request_value_above_max_zero_or_garbage_is_denied() {
    for v in ["3601", "2h", "0", "-5", "5x", "1500ms"] {
        assert_eq!(
            mint(TTL, &[("x-ttl", v)]).unwrap_err(),
            GatewayError::ExpiresInInvalid,
            "{v}"
        );
    }
}

#[test]
fn expires_in_from_a_missing_value_uses_the_default_or_fails_even_when_ignoring() {
    let with_default = "expires_in = { from = \"header.x-ttl\", max = \"1h\", default = \"2m\" }";
    assert_eq!(claims(with_default, &[])["exp"], NOW + 120);
    assert_eq!(
        mint(&format!("{TTL}\nignore_unresolved = true"), &[]).unwrap_err(),
        GatewayError::ValueUnresolved
    );
}

#[test]
fn expires_in_from_needs_a_max_of_a_second_and_a_default_within_it() {
    assert!(!errors_at(
        "expires_in = { from = \"header.x-ttl\", max = \"0s\" }",
        "expires_in.max"
    )
    .is_empty());
    assert!(!errors_at(
        "expires_in = { from = \"header.x-ttl\", max = \"1m\", default = \"2m\" }",
        "expires_in.default"
    )
    .is_empty());
    assert!(!errors_at(
        "expires_in = { from = \"nope.x\", max = \"1m\" }",
        "expires_in.from"
    )
    .is_empty());
}

#[test]
fn the_minted_token_cache_keys_on_the_requested_lifetime() {
    let snap = snapshot(&format!(
        "[[routes.policies]]\ntype = \"jwt_generate\"\nalgorithm = \"ES256\"\nkey = {{ jwks = '{PRIVATE}' }}\noutput = {{ variable = \"t\" }}\n{TTL}\n"
    ));
    let a = mint_at(chain(&snap), &req("GET", "/", &[("x-ttl", "60")]), NOW);
    let b = mint_at(chain(&snap), &req("GET", "/", &[("x-ttl", "120")]), NOW);
    assert_ne!(a, b);
}

// ---- critical headers ----

#[test]
fn crit_lists_header_members_of_the_signed_token() {
    let (h, _) = mint(
        "header = { exp-sig = \"${header.x-sig}\" }\ncrit = [\"exp-sig\"]",
        &[("x-sig", "v1")],
    )
    .expect("minted");
    assert_eq!(h["crit"], serde_json::json!(["exp-sig"]));
    assert_eq!(h["exp-sig"], "v1");
}

#[test]
fn a_critical_header_without_its_value_fails_even_when_ignoring_unresolved() {
    let extra = "header = { exp-sig = \"${header.x-sig}\" }\ncrit = [\"exp-sig\"]\nignore_unresolved = true";
    assert_eq!(mint(extra, &[]).unwrap_err(), GatewayError::ValueUnresolved);
}

#[test]
fn crit_naming_no_header_member_a_registered_name_or_twice_is_refused() {
    for (crit, at) in [
        ("[\"exp-sig\"]", "crit[0]"),
        ("[\"kid\"]", "crit[0]"),
        ("[\"x\", \"x\"]", "crit[1]"),
    ] {
        let e = errors_at(&format!("header = {{ x = \"1\" }}\ncrit = {crit}"), at);
        assert_eq!(e.len(), 1, "{crit}: {e:?}");
    }
    assert_eq!(
        errors_at("header = { crit = \"x\" }", "header.crit").len(),
        1
    );
}

#[test]
fn known_headers_naming_a_registered_parameter_or_b64_is_refused() {
    for (i, name) in ["kid", "b64"].iter().enumerate() {
        let errs = refused(&verify_policy(&format!("known_headers = [\"{name}\"]")));
        assert!(
            errs.iter()
                .any(|e| e.starts_with("routes[0].policies[0].known_headers[0]: ")),
            "{i}: {errs:?}"
        );
    }
}

// ---- typed header members, templates, claim names, typed arrays ----

#[test]
fn header_members_keep_their_toml_type() {
    let (h, _) = mint(
        "[routes.policies.header]\nx-n = 3\nx-b = true\nx-a = [1, \"two\"]\nx-o = { k = \"v\", n = [1] }",
        &[],
    )
    .expect("minted");
    assert_eq!(h["x-n"], 3);
    assert_eq!(h["x-b"], true);
    assert_eq!(h["x-a"], serde_json::json!([1, "two"]));
    assert_eq!(h["x-o"], serde_json::json!({"k": "v", "n": [1]}));
}

#[test]
fn header_members_from_request_values_are_typed_and_defaulted() {
    let extra = "[routes.policies.header]\nx-level = { from = \"header.x-level\", type = \"number\", default = 0 }\nx-tenant = { template = \"t-${header.x-tenant}\", default = \"t-none\" }";
    let (h, _) = mint(extra, &[("x-level", "7"), ("x-tenant", "acme")]).expect("minted");
    assert_eq!(h["x-level"], 7);
    assert_eq!(h["x-tenant"], "t-acme");
    let (h, _) = mint(extra, &[]).expect("minted");
    assert_eq!(h["x-level"], 0);
    assert_eq!(h["x-tenant"], "t-none");
}

#[test]
fn claim_values_from_templates() {
    let extra = "[routes.policies.claims]\nsub = { template = \"user:${header.x-client}\" }";
    assert_eq!(claims(extra, &[("x-client", "c1")])["sub"], "user:c1");
    assert_eq!(mint(extra, &[]).unwrap_err(), GatewayError::ValueUnresolved);
}

#[test]
fn claim_names_from_templates_never_replace_fixed_or_managed_claims() {
    let extra = "[routes.policies.claims]\n\"${header.x-name}\" = { from = \"header.x-value\" }\nsub = \"fixed\"";
    let c = claims(extra, &[("x-name", "team"), ("x-value", "core")]);
    assert_eq!(c["team"], "core");
    for taken in ["sub", "exp", ""] {
        let c = claims(
            &format!("{extra}\n"),
            &[("x-name", taken), ("x-value", "evil")],
        );
        assert_eq!(c["sub"], "fixed", "{taken}");
        assert!(
            c.as_object().expect("object").values().all(|v| v != "evil"),
            "{taken}: {c}"
        );
    }
}

#[test]
fn typed_arrays_from_comma_separated_values() {
    let extra = "[routes.policies.claims]\nn = { from = \"header.x-n\", type = \"array\", items = \"number\" }\nb = { from = \"header.x-b\", type = \"array\", items = \"boolean\", default = [] }";
    let c = claims(extra, &[("x-n", "1, 2,3"), ("x-b", "true,false")]);
    assert_eq!(c["n"], serde_json::json!([1, 2, 3]));
    assert_eq!(c["b"], serde_json::json!([true, false]));
    // An element that does not convert: the default, or a failed request.
    let c = claims(extra, &[("x-n", "1"), ("x-b", "true,maybe")]);
    assert_eq!(c["b"], serde_json::json!([]));
    assert_eq!(
        mint(extra, &[("x-n", "1,x"), ("x-b", "true")]).unwrap_err(),
        GatewayError::ValueUnresolved
    );
}

#[test]
fn a_request_value_needs_exactly_one_input_and_items_only_on_arrays() {
    assert_eq!(
        errors_at(
            "claims = { a = { from = \"header.a\", template = \"x\" } }",
            "claims.a"
        )
        .len(),
        1
    );
    assert_eq!(
        errors_at(
            "claims = { a = { from = \"header.a\", items = \"number\" } }",
            "claims.a.items"
        )
        .len(),
        1
    );
}

// ---- PBES2 parameters ----

fn pbes2(extra: &str) -> String {
    format!(
        "[[routes.policies]]\ntype = \"jwt_generate\"\nexpires_in = \"1m\"\noutput = {{ variable = \"t\" }}\nclaims = {{ sub = \"s\" }}\nencrypt = {{ key = {{ secret = \"{SECRET_32}\" }}, key_algorithm = \"PBES2-HS256+A128KW\", encryption = \"A128GCM\"{extra} }}\n"
    )
}

#[test]
fn pbes2_salt_length_and_iterations_are_minted_as_configured() {
    let snap = snapshot(&pbes2(", salt_length = 32, iterations = 2000"));
    let tok = mint_at(chain(&snap), &req("GET", "/", &[]), NOW);
    let h: Value = serde_json::from_slice(
        &crate::jose::b64_decode(tok.split('.').next().expect("header")).expect("b64"),
    )
    .expect("json");
    assert_eq!(h["p2c"], 2000);
    let salt = crate::jose::b64_decode(h["p2s"].as_str().expect("p2s")).expect("b64");
    assert_eq!(salt.len(), 32);
}

#[test]
fn pbes2_parameters_outside_the_verifiers_limits_or_without_pbes2_are_refused() {
    for (extra, field) in [
        (", iterations = 999", "encrypt.iterations"),
        (", iterations = 10001", "encrypt.iterations"),
        (", salt_length = 7", "encrypt.salt_length"),
        (", salt_length = 65", "encrypt.salt_length"),
    ] {
        let path = format!("routes[0].policies[0].{field}: ");
        let errs = refused(&pbes2(extra));
        assert!(
            errs.iter().any(|e| e.starts_with(&path)),
            "{extra}: {errs:?}"
        );
    }
    let errs = refused(&pbes2(", iterations = 2000").replace("PBES2-HS256+A128KW", "A256KW"));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("routes[0].policies[0].encrypt.iterations: ")),
        "{errs:?}"
    );
}

#[test]
fn arrays_and_tables_without_from_or_template_stay_literals() {
    let extra = "header = { x-pair = [\"a\", \"b\"] }\n[routes.policies.claims]\naud = [\"svc-a\", \"svc-b\"]\nempty = {}\nobj = { kind = \"number\" }";
    let (h, c) = mint(extra, &[]).expect("minted");
    assert_eq!(h["x-pair"], serde_json::json!(["a", "b"]));
    assert_eq!(c["aud"], serde_json::json!(["svc-a", "svc-b"]));
    assert_eq!(c["empty"], serde_json::json!({}));
    assert_eq!(c["obj"], serde_json::json!({"kind": "number"}));
    let errs = refused(&policy(
        "claims = { a = { from = \"header.a\", typo = 1 } }",
    ));
    assert!(
        errs.iter().any(|e| e.starts_with("routes[0].policies[0]")
            && e.contains("claims.a")
            && e.contains("typo")),
        "{errs:?}"
    );
}

#[test]
fn the_request_phase_mints_at_the_time_the_view_carries() {
    let snap = snapshot(&policy("issued_at = \"0s\"\nexpires_in = \"5m\""));
    let Some(super::super::Policy {
        kind: super::super::Kind::JwtGenerate(g),
        ..
    }) = snap.get(0)
    else {
        panic!("not jwt_generate")
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let r = req("GET", "/", &[]);
    let v = RequestView {
        now: Some(NOW),
        ..facts(&r)
    };
    let mut fx = super::super::Effects::default();
    rt.block_on(g.request_filter(&v, &super::super::Edits::default(), &mut fx))
        .expect("minted");
    let tok = fx.vars.pop().expect("variable").1;
    let seg = tok.split('.').nth(1).expect("claims");
    let c: Value =
        serde_json::from_slice(&crate::jose::b64_decode(seg).expect("b64")).expect("json");
    assert_eq!(c["iat"], NOW);
    assert_eq!(c["exp"], NOW + 300);
}
