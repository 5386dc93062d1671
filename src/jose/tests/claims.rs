//! Claim validation (H59–H69 and the rule list).

use serde_json::{json, Map, Value};

use crate::jose::*;

const NOW: u64 = 1_700_000_000;

fn m(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn check(rules: &ClaimRules, v: Value) -> Result<(), JoseError> {
    rules.validate(&m(v), None, NOW)
}

#[test]
fn exp_boundaries_and_leeway() {
    let r = ClaimRules::default();
    assert!(check(&r, json!({"exp": NOW + 1})).is_ok());
    assert_eq!(
        check(&r, json!({"exp": NOW})).unwrap_err(),
        JoseError::TokenExpired
    );
    assert_eq!(
        check(&r, json!({"exp": NOW - 1})).unwrap_err(),
        JoseError::TokenExpired
    );
    let r = ClaimRules {
        leeway: 60,
        ..ClaimRules::default()
    };
    assert!(check(&r, json!({"exp": NOW - 59})).is_ok());
    assert_eq!(
        check(&r, json!({"exp": NOW - 60})).unwrap_err(),
        JoseError::TokenExpired
    );
    // H61: fractional NumericDate.
    assert!(check(&ClaimRules::default(), json!({"exp": NOW as f64 + 600.5})).is_ok());
}

#[test]
fn nbf_iat_require_and_lifetime() {
    let r = ClaimRules::default();
    assert_eq!(
        check(&r, json!({"nbf": NOW + 86_400})).unwrap_err(),
        JoseError::TokenNotYetValid
    );
    assert!(check(&r, json!({"nbf": NOW})).is_ok());
    assert_eq!(
        check(&r, json!({"iat": NOW + 86_400})).unwrap_err(),
        JoseError::TokenNotYetValid
    );
    assert_eq!(
        check(&r, json!({"iat": "x"})).unwrap_err(),
        JoseError::ClaimInvalidType("iat".into())
    );
    let r = ClaimRules {
        require_exp: true,
        ..ClaimRules::default()
    };
    assert_eq!(
        check(&r, json!({})).unwrap_err(),
        JoseError::ClaimMissing("exp".into())
    );
    let r = ClaimRules {
        max_lifetime: Some(3600),
        ..ClaimRules::default()
    };
    assert_eq!(
        check(&r, json!({"exp": NOW + 10 * 365 * 86_400})).unwrap_err(),
        JoseError::TokenTooOld
    );
    assert_eq!(
        check(&r, json!({"iat": NOW - 10, "exp": NOW + 3600})).unwrap_err(),
        JoseError::TokenTooOld
    );
    assert!(check(&r, json!({"iat": NOW, "exp": NOW + 3600})).is_ok());
    let r = ClaimRules {
        max_age: Some(60),
        ..ClaimRules::default()
    };
    assert_eq!(
        check(&r, json!({"iat": NOW - 61})).unwrap_err(),
        JoseError::TokenTooOld
    );
}

#[test]
fn audience_any_of_string_or_array() {
    let r = ClaimRules {
        audiences: vec!["api".into()],
        ..ClaimRules::default()
    };
    assert!(check(&r, json!({"aud": "api"})).is_ok());
    assert!(check(&r, json!({"aud": ["x", "api"]})).is_ok());
    assert_eq!(
        check(&r, json!({"aud": ["x"]})).unwrap_err(),
        JoseError::AudienceMismatch
    );
    assert_eq!(
        check(&r, json!({"aud": "apix"})).unwrap_err(),
        JoseError::AudienceMismatch
    );
    assert_eq!(
        check(&r, json!({"aud": "API"})).unwrap_err(),
        JoseError::AudienceMismatch
    );
    assert_eq!(
        check(&r, json!({"aud": []})).unwrap_err(),
        JoseError::AudienceMismatch
    );
    assert_eq!(
        check(&r, json!({"aud": 5})).unwrap_err(),
        JoseError::ClaimInvalidType("aud".into())
    );
    assert_eq!(
        check(&r, json!({"aud": {"0": "api"}})).unwrap_err(),
        JoseError::ClaimInvalidType("aud".into())
    );
    assert_eq!(
        check(&r, json!({"aud": ["api", 5]})).unwrap_err(),
        JoseError::ClaimInvalidType("aud".into())
    );
    assert_eq!(
        check(&r, json!({})).unwrap_err(),
        JoseError::ClaimMissing("aud".into())
    );
    // Wrong type is an error even when no audience is configured (never "absent").
    assert!(check(&ClaimRules::default(), json!({"aud": 5})).is_err());
}

#[test]
fn issuer_and_subject_exact() {
    let r = ClaimRules {
        issuers: vec!["https://issuer".into(), "https://other".into()],
        subject: Some("alice".into()),
        ..ClaimRules::default()
    };
    assert!(check(&r, json!({"iss": "https://other", "sub": "alice"})).is_ok());
    for iss in [json!(123), json!(["https://issuer"])] {
        assert_eq!(
            check(&r, json!({"iss": iss, "sub": "alice"})).unwrap_err(),
            JoseError::ClaimInvalidType("iss".into())
        );
    }
    for iss in ["https://issuer.evil", "https://issuer/"] {
        assert_eq!(
            check(&r, json!({"iss": iss, "sub": "alice"})).unwrap_err(),
            JoseError::IssuerMismatch
        );
    }
    assert_eq!(
        check(&r, json!({"sub": "alice"})).unwrap_err(),
        JoseError::ClaimMissing("iss".into())
    );
    assert_eq!(
        check(&r, json!({"iss": "https://issuer", "sub": 7})).unwrap_err(),
        JoseError::ClaimInvalidType("sub".into())
    );
    assert_eq!(
        check(&r, json!({"iss": "https://issuer", "sub": "bob"})).unwrap_err(),
        JoseError::SubjectMismatch
    );
}

#[test]
fn nested_required_prohibited_exact() {
    let r = ClaimRules {
        required: vec!["a.b.c".into()],
        prohibited: vec!["admin".into(), "x.y".into()],
        exact: vec![("realm.name".into(), json!("prod")), ("n".into(), json!(3))],
        ..ClaimRules::default()
    };
    let ok = json!({"a": {"b": {"c": false}}, "realm": {"name": "prod"}, "n": 3});
    assert!(check(&r, ok).is_ok());
    assert_eq!(
        check(
            &r,
            json!({"a": {"b": {}}, "realm": {"name": "prod"}, "n": 3})
        )
        .unwrap_err(),
        JoseError::ClaimMissing("a.b.c".into())
    );
    assert_eq!(
        check(
            &r,
            json!({"a": {"b": 1}, "realm": {"name": "prod"}, "n": 3})
        )
        .unwrap_err(),
        JoseError::ClaimInvalidType("a.b.c".into())
    );
    assert_eq!(
        check(
            &r,
            json!({"a": {"b": {"c": 1}}, "admin": true, "realm": {"name": "prod"}, "n": 3})
        )
        .unwrap_err(),
        JoseError::ClaimProhibited("admin".into())
    );
    assert_eq!(
        check(
            &r,
            json!({"a": {"b": {"c": 1}}, "x": {"y": null}, "realm": {"name": "prod"}, "n": 3})
        )
        .unwrap_err(),
        JoseError::ClaimProhibited("x.y".into())
    );
    assert_eq!(
        check(
            &r,
            json!({"a": {"b": {"c": 1}}, "realm": {"name": "dev"}, "n": 3})
        )
        .unwrap_err(),
        JoseError::ClaimMismatch("realm.name".into())
    );
    assert_eq!(
        check(
            &r,
            json!({"a": {"b": {"c": 1}}, "realm": {"name": "prod"}, "n": "3"})
        )
        .unwrap_err(),
        JoseError::ClaimInvalidType("n".into())
    );
    assert_eq!(
        check(&r, json!({"a": {"b": {"c": 1}}, "realm": {"name": "prod"}})).unwrap_err(),
        JoseError::ClaimMissing("n".into())
    );
}

#[test]
fn end_to_end_jws_with_claims() {
    let k = Jwk::generate("OKP", None, Some(Curve::Ed25519))
        .unwrap()
        .with_kid("ed");
    let claims =
        json!({"iss": "https://idp", "aud": ["api"], "sub": "u1", "exp": NOW + 300, "iat": NOW})
            .to_string();
    let mut h = Map::new();
    h.insert("typ".into(), "at+jwt".into());
    let t = sign(claims.as_bytes(), &k, Alg::EdDSA, &h).unwrap();
    let keys = JwkSet::single(k.to_public().unwrap());
    let v = verify(&t, &keys, &[Alg::EdDSA], &Limits::default()).unwrap();
    let rules = ClaimRules {
        issuers: vec!["https://idp".into()],
        audiences: vec!["api".into()],
        typ: Some("at+jwt".into()),
        require_exp: true,
        max_lifetime: Some(3600),
        ..ClaimRules::default()
    };
    rules
        .validate(&v.claims().unwrap(), v.header.typ.as_deref(), NOW)
        .unwrap();
    assert_eq!(
        rules
            .validate(&v.claims().unwrap(), v.header.typ.as_deref(), NOW + 300)
            .unwrap_err(),
        JoseError::TokenExpired
    );
}
