//! One test per hostile input of shared/research/security.md §1 that the JOSE module owns
//! (H1–H70; H71–H78 are transport and logging concerns of the gateway).

use std::time::Instant;

use serde_json::{json, Map};

use crate::jose::jws::sign_raw;
use crate::jose::*;

fn b(s: &[u8]) -> String {
    crate::jose::b64::encode(s)
}

fn hs_key() -> Jwk {
    Jwk::from_secret(&[0x42; 32]).unwrap()
}

/// An HS256 token with an exact header JSON and payload.
fn hs(header: &str, payload: &str) -> String {
    sign_raw(
        &b(header.as_bytes()),
        payload.as_bytes(),
        &hs_key(),
        Alg::HS256,
    )
    .unwrap()
}

fn v(tok: &str) -> Result<Verified, JoseError> {
    verify(
        tok,
        &JwkSet::single(hs_key()),
        &[Alg::HS256],
        &Limits::default(),
    )
}

#[test]
fn h1_dots_flood_rejected_fast() {
    let t = ".".repeat(16 * 1024 * 1024);
    let start = Instant::now();
    assert_eq!(v(&t).unwrap_err(), JoseError::TokenTooLarge);
    assert!(start.elapsed().as_millis() < 50);
}

#[test]
fn h2_huge_signed_header_rejected_before_decoding() {
    let pad = "A".repeat(1024 * 1024);
    let t = hs(&format!(r#"{{"alg":"HS256","pad":"{pad}"}}"#), "{}");
    let big = Limits {
        max_token: usize::MAX,
        ..Limits::default()
    };
    let r = verify(&t, &JwkSet::single(hs_key()), &[Alg::HS256], &big);
    assert_eq!(r.unwrap_err(), JoseError::TokenTooLarge);
}

#[test]
fn h3_segment_counts() {
    for t in ["", ".", "a.b", "a.b.c.d", "a.b.c.d.e.f", "..", "...."] {
        assert!(v(t).is_err(), "{t:?}");
    }
    let good = hs(r#"{"alg":"HS256"}"#, "{}");
    assert!(v(&good).is_ok());
    assert!(v(&format!("{good}.")).is_err());
}

#[test]
fn h4_h5_h6_strict_base64url() {
    let good = hs(r#"{"alg":"HS256"}"#, r#"{"a":1}"#);
    let (h, rest) = good.split_once('.').unwrap();
    for bad in [
        format!("{h} .{rest}"),
        format!("{h}\n.{rest}"),
        format!("{h}=.{rest}"),
        format!("{}.{rest}", h.replacen('J', "+", 1)),
        format!("{}.{rest}", h.replacen('J', "/", 1)),
        format!("{h}.{}", rest.replacen('.', "?.", 1)),
        format!("{good}#"),
    ] {
        assert_eq!(v(&bad).unwrap_err(), JoseError::TokenMalformed, "{bad}");
    }
    // H5: HS256 signature = 43 chars; the last carries 2 unused bits. Flip one of them.
    let sig = good.rsplit('.').next().unwrap();
    let last = sig.chars().last().unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let idx = alphabet.find(last).unwrap();
    let flipped = alphabet.chars().nth(idx ^ 1).unwrap();
    let bad = format!("{}{}", &good[..good.len() - 1], flipped);
    assert_eq!(v(&bad).unwrap_err(), JoseError::TokenMalformed);
}

#[test]
fn h7_h11_duplicate_members() {
    assert!(v(&hs(r#"{"alg":"HS256","alg":"HS256"}"#, "{}")).is_err());
    assert!(v(&hs(r#"{"alg":"HS256","\u0061lg":"HS256"}"#, "{}")).is_err());
    assert!(v(&hs(r#"{"alg":"HS256","x":1,"x":2}"#, "{}")).is_err());
    let ok = v(&hs(
        r#"{"alg":"HS256"}"#,
        r#"{"sub":"alice","sub":"admin"}"#,
    ))
    .unwrap();
    assert_eq!(ok.claims().unwrap_err(), JoseError::ClaimsMalformed);
    let ok = v(&hs(
        r#"{"alg":"HS256"}"#,
        r#"{"a":{"role":"user","role":"admin"}}"#,
    ))
    .unwrap();
    assert!(ok.claims().is_err());
    // NUL in kid: an exact-match lookup miss, never a crash.
    let k = hs_key().with_kid("ab");
    let t = sign_raw(
        &b(br#"{"alg":"HS256","kid":"a\u0000b"}"#),
        b"{}",
        &k,
        Alg::HS256,
    )
    .unwrap();
    assert_eq!(
        verify(&t, &JwkSet::single(k), &[Alg::HS256], &Limits::default()).unwrap_err(),
        JoseError::NoMatchingKey
    );
}

#[test]
fn h8_header_not_an_object() {
    for h in [
        "[]",
        "null",
        "\"x\"",
        "\u{feff}{\"alg\":\"HS256\"}",
        r#"{"alg":"HS256"}x"#,
        "{}",
    ] {
        assert!(v(&hs(h, "{}")).is_err(), "{h}");
    }
    let bad_utf8 = sign_raw(&b(b"\xff"), b"{}", &hs_key(), Alg::HS256).unwrap();
    assert!(v(&bad_utf8).is_err());
}

#[test]
fn h9_deep_nesting_rejected() {
    let deep = format!("{{\"x\":{}{}}}", "[".repeat(5_000), "]".repeat(5_000));
    let t = v(&hs(r#"{"alg":"HS256"}"#, &deep)).unwrap();
    let start = Instant::now();
    assert!(t.claims().is_err());
    assert!(start.elapsed().as_millis() < 100);
}

#[test]
fn h10_h59_out_of_range_and_mistyped_dates() {
    let rules = ClaimRules::default();
    for c in [
        r#"{"exp":1e400}"#,
        r#"{"exp":18446744073709551616}"#,
        r#"{"exp":-1}"#,
        r#"{"exp":1e20}"#,
        r#"{"exp":"9999999999"}"#,
        r#"{"exp":"never"}"#,
        r#"{"exp":null}"#,
        r#"{"exp":true}"#,
        r#"{"exp":[1]}"#,
    ] {
        let r = crate::jose::json::parse_object(c.as_bytes())
            .map_err(|_| JoseError::ClaimsMalformed)
            .and_then(|m| rules.validate(&m, None, 1000));
        assert!(r.is_err(), "{c}");
    }
}

#[test]
fn h12_h58_json_serialization_and_polyglot() {
    let good = hs(r#"{"alg":"HS256"}"#, "{}");
    let p: Vec<&str> = good.split('.').collect();
    let json_form = json!({"protected": p[0], "payload": p[1], "signature": p[2]}).to_string();
    assert!(v(&json_form).is_err());
    assert!(v(&format!(r#"{{"  {good}":"","protected":"{}"}}"#, p[0])).is_err());
}

#[test]
fn h13_alg_none_any_case() {
    for alg in ["none", "None", "NONE", "nOnE"] {
        let t = format!(
            "{}.{}.",
            b(format!(r#"{{"alg":"{alg}"}}"#).as_bytes()),
            b(b"{}")
        );
        assert!(v(&t).is_err());
        let t = format!(
            "{}.{}.{}",
            b(format!(r#"{{"alg":"{alg}"}}"#).as_bytes()),
            b(b"{}"),
            b(b"x")
        );
        assert_eq!(v(&t).unwrap_err(), JoseError::AlgorithmNotAllowed);
    }
}

#[test]
fn h14_public_key_as_hmac_secret_never() {
    let rsa = Jwk::generate("RSA", Some(2048), None).unwrap();
    let public = rsa.to_public().unwrap();
    let pub_json = public.to_value(false).unwrap().to_string();
    // The attacker signs HS256 with the public key bytes as the secret.
    let forged = sign_raw(
        &b(br#"{"alg":"HS256"}"#),
        b"{}",
        &Jwk::from_secret(pub_json.as_bytes()).unwrap(),
        Alg::HS256,
    )
    .unwrap();
    let keys = JwkSet::single(public);
    // Even if the policy wrongly allows HS256, an RSA key is never an HMAC secret.
    assert_eq!(
        verify(
            &forged,
            &keys,
            &[Alg::RS256, Alg::HS256],
            &Limits::default()
        )
        .unwrap_err(),
        JoseError::NoMatchingKey
    );
}

#[test]
fn h15_h20_cross_family_and_key_alg_binding() {
    let rsa = Jwk::generate("RSA", Some(2048), None)
        .unwrap()
        .with_alg("RS256");
    let ps = sign(
        b"{}",
        &Jwk::from_value(&rsa.to_value(true).unwrap())
            .unwrap()
            .with_alg("PS256"),
        Alg::PS256,
        &Map::new(),
    )
    .unwrap();
    let keys = JwkSet::single(rsa);
    assert_eq!(
        verify(&ps, &keys, &[Alg::PS256, Alg::RS256], &Limits::default()).unwrap_err(),
        JoseError::NoMatchingKey
    );
    let p384 = Jwk::generate("EC", None, Some(Curve::P384)).unwrap();
    let p256 = Jwk::generate("EC", None, Some(Curve::P256)).unwrap();
    let t = sign(b"{}", &p256, Alg::ES256, &Map::new()).unwrap();
    assert_eq!(
        verify(
            &t,
            &JwkSet::single(p384),
            &[Alg::ES256, Alg::ES384],
            &Limits::default()
        )
        .unwrap_err(),
        JoseError::NoMatchingKey
    );
}

#[test]
fn h16_key_use_and_key_ops() {
    let k = hs_key();
    let t = sign(b"{}", &k, Alg::HS256, &Map::new()).unwrap();
    let enc_use = Jwk::from_secret(&[0x42; 32]).unwrap().with_use("enc");
    assert_eq!(
        verify(
            &t,
            &JwkSet::single(enc_use),
            &[Alg::HS256],
            &Limits::default()
        )
        .unwrap_err(),
        JoseError::NoMatchingKey
    );
    let ops =
        Jwk::from_value(&json!({"kty":"oct","k":b(&[0x42; 32]),"key_ops":["encrypt"]})).unwrap();
    assert!(verify(&t, &JwkSet::single(ops), &[Alg::HS256], &Limits::default()).is_err());
    let sig_key = Jwk::from_value(&json!({"kty":"oct","k":b(&[1; 16]),"use":"sig"})).unwrap();
    assert!(encrypt(
        b"x",
        &sig_key,
        KeyAlg::A128KW,
        Enc::A128Gcm,
        &EncryptOptions::default()
    )
    .is_err());
}

#[test]
fn h17_weak_rsa_keys_refused() {
    // e = 1 and a short modulus.
    let n = b(&[0xc5; 256]);
    assert!(Jwk::from_value(&json!({"kty":"RSA","n":n,"e":"AQ"})).is_err());
    assert!(Jwk::from_value(&json!({"kty":"RSA","n":b(&[0xc5; 128]),"e":"AQAB"})).is_err());
    assert!(Jwk::generate("RSA", Some(1024), None).is_err());
    assert!(Jwk::from_value(&json!({"kty":"RSA","n":"","e":"AQAB"})).is_err());
    assert!(Jwk::from_value(&json!({"kty":"RSA","n":"AAAA","e":""})).is_err());
}

#[test]
fn h18_short_or_empty_hmac_secret() {
    assert!(Jwk::from_value(&json!({"kty":"oct","k":""})).is_err());
    assert!(Jwk::from_value(&json!({"kty":"oct","k":b(&[1; 31]),"alg":"HS256"})).is_err());
    assert!(Jwk::from_value(&json!({"kty":"oct","k":b(&[1; 47]),"alg":"HS384"})).is_err());
    // Without an alg binding, a short secret cannot sign or verify HS256 either.
    let short = Jwk::from_secret(&[1]).unwrap();
    assert!(sign(b"{}", &short, Alg::HS256, &Map::new()).is_err());
    let t = sign_raw(&b(br#"{"alg":"HS256"}"#), b"{}", &hs_key(), Alg::HS256).unwrap();
    assert_eq!(
        verify(
            &t,
            &JwkSet::single(short),
            &[Alg::HS256],
            &Limits::default()
        )
        .unwrap_err(),
        JoseError::NoMatchingKey
    );
}

#[test]
fn h19_ambiguous_key_sets() {
    let ec = Jwk::generate("EC", None, None)
        .unwrap()
        .to_value(false)
        .unwrap();
    let oct = json!({"kty":"oct","k":b(&[1; 32]),"kid":"a"});
    let mixed = json!({"keys":[oct, ec]}).to_string();
    assert_eq!(
        JwkSet::from_json(mixed.as_bytes()).unwrap_err(),
        JoseError::KeySetAmbiguous
    );
    let dup = json!({"keys":[oct, {"kty":"oct","k":b(&[2; 32]),"kid":"a"}]}).to_string();
    assert_eq!(
        JwkSet::from_json(dup.as_bytes()).unwrap_err(),
        JoseError::KeySetAmbiguous
    );
}

#[test]
fn h21_jwe_key_selection_is_by_kid_and_alg() {
    let k =
        Jwk::from_value(&json!({"kty":"oct","k":b(&[3; 32]),"kid":"k","alg":"A256KW"})).unwrap();
    let attacker = Jwk::from_value(&json!({"kty":"oct","k":b(&[3; 32]),"kid":"k"})).unwrap();
    let t = encrypt(
        b"x",
        &attacker,
        KeyAlg::Pbes2Hs512A256KW,
        Enc::A256Gcm,
        &EncryptOptions::default(),
    )
    .unwrap();
    let algs = [KeyAlg::A256KW, KeyAlg::Pbes2Hs512A256KW];
    let r = decrypt(
        &t,
        &JwkSet::single(k),
        &DecryptPolicy::new(&algs, &Enc::ALL),
    );
    assert_eq!(r.unwrap_err(), JoseError::NoMatchingKey);
}

#[test]
fn h22_to_h26_header_key_material_is_never_trusted() {
    let attacker = Jwk::generate("EC", None, None).unwrap();
    let mut extra = Map::new();
    extra.insert("jwk".into(), attacker.to_value(false).unwrap());
    extra.insert(
        "jku".into(),
        "http://169.254.169.254/latest/meta-data/".into(),
    );
    extra.insert("x5u".into(), "file:///etc/passwd".into());
    extra.insert("x5c".into(), json!(["MIIB"]));
    let t = sign(b"{}", &attacker, Alg::ES256, &extra).unwrap();
    let ours = Jwk::generate("EC", None, None)
        .unwrap()
        .to_public()
        .unwrap();
    assert_eq!(
        verify(&t, &JwkSet::single(ours), &[Alg::ES256], &Limits::default()).unwrap_err(),
        JoseError::SignatureInvalid
    );
    // H23: an embedded symmetric key.
    let mut extra = Map::new();
    extra.insert("jwk".into(), json!({"kty":"oct","k":b(&[0x42; 32])}));
    let t = sign(b"{}", &hs_key(), Alg::HS256, &extra).unwrap();
    assert!(verify(&t, &JwkSet::default(), &[Alg::HS256], &Limits::default()).is_err());
    // H26: kid of the wrong type is a parse error; hostile strings are lookup misses.
    assert_eq!(
        v(&hs(r#"{"alg":"HS256","kid":{"$ne":null}}"#, "{}")).unwrap_err(),
        JoseError::TokenMalformed
    );
    assert_eq!(
        v(&hs(r#"{"alg":"HS256","kid":7}"#, "{}")).unwrap_err(),
        JoseError::TokenMalformed
    );
    let keyed = JwkSet::single(hs_key().with_kid("real"));
    let t = hs(r#"{"alg":"HS256","kid":"../../../../dev/null"}"#, "{}");
    assert_eq!(
        verify(&t, &keyed, &[Alg::HS256], &Limits::default()).unwrap_err(),
        JoseError::NoMatchingKey
    );
}

#[test]
fn h28_h29_ecdsa_zero_and_wrong_length_signatures() {
    let k = Jwk::generate("EC", None, None).unwrap();
    let t = sign(b"{}", &k, Alg::ES256, &Map::new()).unwrap();
    let keys = JwkSet::single(k.to_public().unwrap());
    let (hp, sig) = t.rsplit_once('.').unwrap();
    let sig = crate::jose::b64::decode(sig.as_bytes()).unwrap();
    let mut padded = vec![0u8];
    padded.extend_from_slice(&sig[..32]);
    padded.push(0);
    padded.extend_from_slice(&sig[32..]);
    for bad in [
        vec![0u8; 64],
        vec![0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00],
        sig[..63].to_vec(),
        padded,
        vec![0; 10_000],
    ] {
        let tok = format!("{hp}.{}", b(&bad));
        assert!(verify(&tok, &keys, &[Alg::ES256], &Limits::default()).is_err());
    }
}

#[test]
fn h33_signature_over_exact_received_bytes() {
    let spaced = hs(r#"{"alg": "HS256"}"#, "{}");
    assert!(v(&spaced).is_ok());
    let (_, rest) = spaced.split_once('.').unwrap();
    let reencoded = format!("{}.{rest}", b(br#"{"alg":"HS256"}"#));
    assert_eq!(v(&reencoded).unwrap_err(), JoseError::SignatureInvalid);
}

fn ec_recipient(crv: Curve) -> Jwk {
    let kty = if crv == Curve::X25519 { "OKP" } else { "EC" };
    Jwk::generate(kty, None, Some(crv)).unwrap()
}

fn with_header(tok: &str, f: impl Fn(&mut serde_json::Value)) -> String {
    let mut parts: Vec<String> = tok.split('.').map(str::to_owned).collect();
    let mut h: serde_json::Value =
        serde_json::from_slice(&crate::jose::b64::decode(parts[0].as_bytes()).unwrap()).unwrap();
    f(&mut h);
    parts[0] = b(h.to_string().as_bytes());
    parts.join(".")
}

#[test]
fn h34_h35_h36_ecdh_points_and_curves() {
    let k = ec_recipient(Curve::P256);
    let t = encrypt(
        b"x",
        &k,
        KeyAlg::EcdhEs,
        Enc::A128Gcm,
        &EncryptOptions::default(),
    )
    .unwrap();
    let keys = JwkSet::single(k);
    let algs = [KeyAlg::EcdhEs];
    let policy = DecryptPolicy::new(&algs, &Enc::ALL);
    assert!(decrypt(&t, &keys, &policy).is_ok());
    // Off-curve point.
    let off = with_header(&t, |h| h["epk"]["y"] = b(&[1; 32]).into());
    assert!(decrypt(&off, &keys, &policy).is_err());
    // Other curve, RSA epk, epk with d.
    let p384 = Jwk::generate("EC", None, Some(Curve::P384))
        .unwrap()
        .to_value(false)
        .unwrap();
    assert!(decrypt(
        &with_header(&t, |h| h["epk"] = p384.clone()),
        &keys,
        &policy
    )
    .is_err());
    assert!(decrypt(
        &with_header(&t, |h| h["epk"] =
            json!({"kty":"RSA","n":"AQAB","e":"AQAB"})),
        &keys,
        &policy
    )
    .is_err());
    assert!(decrypt(
        &with_header(&t, |h| h["epk"]["d"] = "AAAA".into()),
        &keys,
        &policy
    )
    .is_err());
    // X25519 low-order point: all-zero shared secret.
    let x = ec_recipient(Curve::X25519);
    let t = encrypt(
        b"x",
        &x,
        KeyAlg::EcdhEs,
        Enc::A128Gcm,
        &EncryptOptions::default(),
    )
    .unwrap();
    let keys = JwkSet::single(x);
    assert!(decrypt(&t, &keys, &policy).is_ok());
    let low = with_header(&t, |h| h["epk"]["x"] = b(&[0; 32]).into());
    assert_eq!(
        decrypt(&low, &keys, &policy).unwrap_err(),
        JoseError::DecryptionFailed
    );
}

#[test]
fn h37_h38_pbes2_bounds() {
    let pw = Jwk::from_secret(b"a long enough passphrase").unwrap();
    let algs = [KeyAlg::Pbes2Hs256A128KW];
    let policy = DecryptPolicy::new(&algs, &Enc::ALL);
    let keys = JwkSet::single(Jwk::from_secret(b"a long enough passphrase").unwrap());
    let t = encrypt(
        b"x",
        &pw,
        KeyAlg::Pbes2Hs256A128KW,
        Enc::A128Gcm,
        &EncryptOptions::default(),
    )
    .unwrap();
    assert!(decrypt(&t, &keys, &policy).is_ok());
    for p2c in [
        json!(2147483647u64),
        json!(1_000_000_000u64),
        json!(-1),
        json!(0),
        json!("8192"),
        json!(1.5),
        json!(999),
    ] {
        let bad = with_header(&t, |h| h["p2c"] = p2c.clone());
        let start = Instant::now();
        assert_eq!(
            decrypt(&bad, &keys, &policy).unwrap_err(),
            JoseError::TokenMalformed,
            "{p2c}"
        );
        assert!(start.elapsed().as_millis() < 50);
    }
    for p2s in [None, Some(String::new()), Some(b(&[1; 7]))] {
        let bad = with_header(&t, |h| match &p2s {
            None => {
                h.as_object_mut().unwrap().remove("p2s");
            }
            Some(s) => h["p2s"] = s.clone().into(),
        });
        assert!(decrypt(&bad, &keys, &policy).is_err());
    }
}

#[test]
fn h39_h40_zip_bomb_and_zip_rules() {
    let k = Jwk::from_secret(&[9; 32]).unwrap();
    let bomb = vec![0u8; 4 * 1024 * 1024];
    let opts = EncryptOptions {
        zip: true,
        ..EncryptOptions::default()
    };
    let t = encrypt(&bomb, &k, KeyAlg::A256KW, Enc::A256Gcm, &opts).unwrap();
    let keys = JwkSet::single(Jwk::from_secret(&[9; 32]).unwrap());
    let algs = [KeyAlg::A256KW];
    let mut policy = DecryptPolicy::new(&algs, &Enc::ALL);
    assert_eq!(
        decrypt(&t, &keys, &policy).unwrap_err(),
        JoseError::CompressionNotAllowed
    );
    policy.allow_zip = true;
    assert_eq!(
        decrypt(&t, &keys, &policy).unwrap_err(),
        JoseError::TokenTooLarge
    );
    let small = encrypt(
        b"hello hello hello",
        &k,
        KeyAlg::A256KW,
        Enc::A256Gcm,
        &opts,
    )
    .unwrap();
    assert_eq!(
        &decrypt(&small, &keys, &policy).unwrap().plaintext[..],
        b"hello hello hello"
    );
    assert_eq!(
        decrypt(
            &with_header(&small, |h| h["zip"] = "GZIP".into()),
            &keys,
            &policy
        )
        .unwrap_err(),
        JoseError::CompressionNotAllowed
    );
    // zip on a JWS.
    assert_eq!(
        v(&hs(r#"{"alg":"HS256","zip":"DEF"}"#, "{}")).unwrap_err(),
        JoseError::CompressionNotAllowed
    );
}

#[test]
fn h41_rsa1_5_off_by_default_and_one_error_when_on() {
    let k = Jwk::generate("RSA", Some(2048), None).unwrap();
    let t = encrypt(
        b"secret",
        &k,
        KeyAlg::Rsa1_5,
        Enc::A128Gcm,
        &EncryptOptions::default(),
    )
    .unwrap();
    let keys = JwkSet::single(k);
    let algs = [KeyAlg::Rsa1_5];
    let mut policy = DecryptPolicy::new(&algs, &Enc::ALL);
    assert_eq!(
        decrypt(&t, &keys, &policy).unwrap_err(),
        JoseError::AlgorithmNotAllowed
    );
    policy.allow_rsa1_5 = true;
    assert_eq!(
        &decrypt(&t, &keys, &policy).unwrap().plaintext[..],
        b"secret"
    );
    let parts: Vec<&str> = t.split('.').collect();
    let mut ek = crate::jose::b64::decode(parts[1].as_bytes()).unwrap();
    for mutate in [0usize, 1, 100, 255] {
        ek[mutate] ^= 0x55;
        let bad = format!(
            "{}.{}.{}.{}.{}",
            parts[0],
            b(&ek),
            parts[2],
            parts[3],
            parts[4]
        );
        assert_eq!(
            decrypt(&bad, &keys, &policy).unwrap_err(),
            JoseError::DecryptionFailed
        );
    }
    let short = format!(
        "{}.{}.{}.{}.{}",
        parts[0],
        b(&ek[..100]),
        parts[2],
        parts[3],
        parts[4]
    );
    assert_eq!(
        decrypt(&short, &keys, &policy).unwrap_err(),
        JoseError::DecryptionFailed
    );
}

#[test]
fn h42_to_h48_tags_ivs_parts_and_key_sizes() {
    for enc in Enc::ALL {
        let k = Jwk::from_secret(&[5; 16]).unwrap();
        let t = encrypt(
            b"payload",
            &k,
            KeyAlg::A128KW,
            enc,
            &EncryptOptions::default(),
        )
        .unwrap();
        let keys = JwkSet::single(Jwk::from_secret(&[5; 16]).unwrap());
        let algs = [KeyAlg::A128KW];
        let policy = DecryptPolicy::new(&algs, &Enc::ALL);
        assert!(decrypt(&t, &keys, &policy).is_ok());
        let parts: Vec<&str> = t.split('.').collect();
        let tag = crate::jose::b64::decode(parts[4].as_bytes()).unwrap();
        let iv = crate::jose::b64::decode(parts[2].as_bytes()).unwrap();
        let mut cases = vec![
            [
                parts[0],
                parts[1],
                parts[2],
                parts[3],
                &b(&tag[..tag.len() - 1]),
            ]
            .join("."),
            [
                parts[0],
                parts[1],
                parts[2],
                parts[3],
                &b(&[&tag[..], &[0]].concat()),
            ]
            .join("."),
            [parts[0], parts[1], parts[2], parts[3], &b(&tag[..8])].join("."),
            [
                parts[0],
                parts[1],
                &b(&iv[..iv.len() - 1]),
                parts[3],
                parts[4],
            ]
            .join("."),
            [
                parts[0],
                parts[1],
                &b(&[&iv[..], &[0]].concat()),
                parts[3],
                parts[4],
            ]
            .join("."),
            [parts[0], parts[1], parts[2], "", parts[4]].join("."),
            [parts[0], "", parts[2], parts[3], parts[4]].join("."),
            [parts[0], parts[1], parts[2], parts[3]].join("."),
        ];
        let mut ct = crate::jose::b64::decode(parts[3].as_bytes()).unwrap();
        ct[0] ^= 1;
        cases.push([parts[0], parts[1], parts[2], &b(&ct), parts[4]].join("."));
        cases.push(with_header(&t, |h| h["kid"] = "x".into()));
        for c in cases {
            assert!(decrypt(&c, &keys, &policy).is_err(), "{enc}");
        }
    }
    // H48: dir with a wrong-size key, KW key of the wrong size, unknown enc.
    let k = Jwk::from_secret(&[1; 20]).unwrap();
    assert!(encrypt(
        b"x",
        &k,
        KeyAlg::Dir,
        Enc::A128Gcm,
        &EncryptOptions::default()
    )
    .is_err());
    assert!(encrypt(
        b"x",
        &k,
        KeyAlg::A128KW,
        Enc::A128Gcm,
        &EncryptOptions::default()
    )
    .is_err());
    let ok = encrypt(
        b"x",
        &Jwk::from_secret(&[1; 16]).unwrap(),
        KeyAlg::Dir,
        Enc::A128Gcm,
        &EncryptOptions::default(),
    )
    .unwrap();
    let algs = [KeyAlg::Dir];
    let keys = JwkSet::single(Jwk::from_secret(&[1; 16]).unwrap());
    let policy = DecryptPolicy::new(&algs, &Enc::ALL);
    assert_eq!(
        decrypt(
            &with_header(&ok, |h| h["enc"] = "A128CBC".into()),
            &keys,
            &policy
        )
        .unwrap_err(),
        JoseError::EncryptionNotAllowed
    );
}

#[test]
fn h44_cbc_padding_oracle_single_error() {
    let k = Jwk::from_secret(&[7; 32]).unwrap();
    let t = encrypt(
        b"0123456789abcdef0123",
        &k,
        KeyAlg::Dir,
        Enc::A128CbcHs256,
        &EncryptOptions::default(),
    )
    .unwrap();
    let keys = JwkSet::single(Jwk::from_secret(&[7; 32]).unwrap());
    let algs = [KeyAlg::Dir];
    let policy = DecryptPolicy::new(&algs, &Enc::ALL);
    let parts: Vec<&str> = t.split('.').collect();
    let ct = crate::jose::b64::decode(parts[3].as_bytes()).unwrap();
    for i in 0..ct.len() {
        let mut c = ct.clone();
        c[i] ^= 0x01;
        let bad = [parts[0], parts[1], parts[2], &b(&c), parts[4]].join(".");
        assert_eq!(
            decrypt(&bad, &keys, &policy).unwrap_err(),
            JoseError::DecryptionFailed
        );
    }
}

#[test]
fn h50_h51_h52_h53_crit_and_b64() {
    for h in [
        r#"{"alg":"HS256","crit":["x-unknown"],"x-unknown":1}"#,
        r#"{"alg":"HS256","crit":[]}"#,
        r#"{"alg":"HS256","crit":"b64","b64":true}"#,
        r#"{"alg":"HS256","crit":["alg"]}"#,
        r#"{"alg":"HS256","crit":["x"]}"#,
        r#"{"alg":"HS256","crit":["x","x"],"x":1}"#,
        r#"{"alg":"HS256","b64":false,"crit":["b64"]}"#,
        r#"{"alg":"HS256","b64":false}"#,
    ] {
        assert!(v(&hs(h, "{}")).is_err(), "{h}");
    }
    assert_eq!(
        v(&hs(
            r#"{"alg":"HS256","crit":["x-unknown"],"x-unknown":1}"#,
            "{}"
        ))
        .unwrap_err(),
        JoseError::CriticalHeaderUnsupported
    );
    assert_eq!(
        v(&hs(r#"{"alg":"HS256","b64":false,"crit":["b64"]}"#, "{}")).unwrap_err(),
        JoseError::UnencodedPayloadRejected
    );
}

/// `crit` with the caller's known header parameters (jwt_verify's `known_headers`).
fn v_known(tok: &str, known: &[&str]) -> Result<Verified, JoseError> {
    let known: Vec<String> = known.iter().map(ToString::to_string).collect();
    verify_with(
        tok,
        &JwkSet::single(hs_key()),
        &[Alg::HS256],
        &Limits::default(),
        &VerifyOptions {
            known_crit: &known,
            require_kid: false,
        },
    )
}

#[test]
fn crit_listing_only_known_present_headers_is_accepted() {
    let t = hs(r#"{"alg":"HS256","crit":["exp-sig"],"exp-sig":1}"#, "{}");
    assert!(v_known(&t, &["exp-sig"]).is_ok());
    assert_eq!(v(&t).unwrap_err(), JoseError::CriticalHeaderUnsupported);
}

#[test]
fn crit_naming_an_unknown_or_absent_header_is_unsupported() {
    for h in [
        r#"{"alg":"HS256","crit":["exp-sig","other"],"exp-sig":1,"other":2}"#,
        r#"{"alg":"HS256","crit":["exp-sig"]}"#,
    ] {
        assert_eq!(
            v_known(&hs(h, "{}"), &["exp-sig"]).unwrap_err(),
            JoseError::CriticalHeaderUnsupported,
            "{h}"
        );
    }
    // Knowing b64 never makes an unencoded payload acceptable.
    let t = hs(r#"{"alg":"HS256","b64":false,"crit":["b64"]}"#, "{}");
    assert_eq!(
        v_known(&t, &["b64"]).unwrap_err(),
        JoseError::UnencodedPayloadRejected
    );
}

#[test]
fn signing_produces_crit_only_for_members_of_the_header() {
    let k = hs_key();
    let mut extra = Map::new();
    extra.insert("exp-sig".into(), json!(1));
    extra.insert("crit".into(), json!(["exp-sig"]));
    let t = sign(b"{}", &k, Alg::HS256, &extra).unwrap();
    assert!(v_known(&t, &["exp-sig"]).is_ok());
    for crit in [
        json!(["absent"]),
        json!(["alg"]),
        json!([]),
        json!("exp-sig"),
        json!(["exp-sig", "exp-sig"]),
    ] {
        extra.insert("crit".into(), crit.clone());
        assert!(sign(b"{}", &k, Alg::HS256, &extra).is_err(), "{crit}");
    }
}

fn v_kid(tok: &str, keys: &JwkSet) -> Result<Verified, JoseError> {
    verify_with(
        tok,
        keys,
        &[Alg::HS256],
        &Limits::default(),
        &VerifyOptions {
            known_crit: &[],
            require_kid: true,
        },
    )
}

#[test]
fn require_kid_refuses_a_kidless_token_only_against_several_keys() {
    let two = JwkSet::new(vec![
        hs_key().with_kid("a"),
        Jwk::from_secret(&[0x43; 32]).unwrap().with_kid("b"),
    ])
    .unwrap();
    let kidless = hs(r#"{"alg":"HS256"}"#, "{}");
    assert_eq!(v_kid(&kidless, &two).unwrap_err(), JoseError::KidMissing);
    assert!(v_kid(&kidless, &JwkSet::single(hs_key())).is_ok());
    let named = hs(r#"{"alg":"HS256","kid":"a"}"#, "{}");
    assert!(v_kid(&named, &two).is_ok());
    // Without the option every key is tried.
    assert!(verify(&kidless, &two, &[Alg::HS256], &Limits::default()).is_ok());
}

#[test]
fn h54_jwe_is_not_a_jws() {
    let k = Jwk::generate("RSA", Some(2048), None).unwrap();
    let jwe = encrypt(
        br#"{"sub":"admin"}"#,
        &k.to_public().unwrap(),
        KeyAlg::RsaOaep256,
        Enc::A256Gcm,
        &EncryptOptions::default(),
    )
    .unwrap();
    assert_eq!(
        verify(&jwe, &JwkSet::single(k), &[Alg::RS256], &Limits::default()).unwrap_err(),
        JoseError::TokenMalformed
    );
}

#[test]
fn h55_h56_nested_shapes() {
    let sk = Jwk::generate("EC", None, None).unwrap();
    let ek = Jwk::from_secret(&[4; 32]).unwrap();
    let enc_keys = JwkSet::single(Jwk::from_secret(&[4; 32]).unwrap());
    let sig_keys = JwkSet::single(sk.to_public().unwrap());
    let algs = [KeyAlg::A256KW];
    let policy = DecryptPolicy::new(&algs, &Enc::ALL);
    let good = sign_then_encrypt(
        b"{}",
        &sk,
        Alg::ES256,
        &Map::new(),
        &ek,
        KeyAlg::A256KW,
        Enc::A256Gcm,
        &EncryptOptions::default(),
    )
    .unwrap();
    assert!(decrypt_then_verify(&good, &enc_keys, &policy, &sig_keys, &[Alg::ES256]).is_ok());
    let mut cty = EncryptOptions::default();
    cty.header.insert("cty".into(), "JWT".into());
    // Inner alg:none; inner plain JSON; inner JWE; no cty.
    let none = format!("{}.{}.", b(br#"{"alg":"none"}"#), b(b"{}"));
    let inner_jwe = encrypt(b"{}", &ek, KeyAlg::A256KW, Enc::A256Gcm, &cty).unwrap();
    for (inner, opts) in [
        (none.as_str(), &cty),
        ("{\"sub\":\"admin\"}", &cty),
        (inner_jwe.as_str(), &cty),
    ] {
        let t = encrypt(inner.as_bytes(), &ek, KeyAlg::A256KW, Enc::A256Gcm, opts).unwrap();
        assert!(decrypt_then_verify(&t, &enc_keys, &policy, &sig_keys, &[Alg::ES256]).is_err());
    }
    let jws = sign(b"{}", &sk, Alg::ES256, &Map::new()).unwrap();
    let no_cty = encrypt(
        jws.as_bytes(),
        &ek,
        KeyAlg::A256KW,
        Enc::A256Gcm,
        &EncryptOptions::default(),
    )
    .unwrap();
    assert_eq!(
        decrypt_then_verify(&no_cty, &enc_keys, &policy, &sig_keys, &[Alg::ES256]).unwrap_err(),
        JoseError::NestingInvalid
    );
    let mut lower = EncryptOptions::default();
    lower.header.insert("cty".into(), "jwt".into());
    let t = encrypt(jws.as_bytes(), &ek, KeyAlg::A256KW, Enc::A256Gcm, &lower).unwrap();
    assert!(decrypt_then_verify(&t, &enc_keys, &policy, &sig_keys, &[Alg::ES256]).is_ok());
}

#[test]
fn h57_typ_enforced() {
    let rules = ClaimRules {
        typ: Some("at+jwt".into()),
        ..ClaimRules::default()
    };
    let m = Map::new();
    assert_eq!(
        rules.validate(&m, Some("JWT"), 0).unwrap_err(),
        JoseError::TypeMismatch
    );
    assert_eq!(
        rules.validate(&m, None, 0).unwrap_err(),
        JoseError::TypeMismatch
    );
    assert!(rules.validate(&m, Some("application/AT+JWT"), 0).is_ok());
}

#[test]
fn h70_plaintext_cap() {
    let k = Jwk::from_secret(&[9; 32]).unwrap();
    let t = encrypt(
        &vec![1u8; 300 * 1024],
        &k,
        KeyAlg::Dir,
        Enc::A256Gcm,
        &EncryptOptions::default(),
    )
    .unwrap();
    let algs = [KeyAlg::Dir];
    let mut policy = DecryptPolicy::new(&algs, &Enc::ALL);
    policy.limits.max_token = usize::MAX;
    assert_eq!(
        decrypt(&t, &JwkSet::single(k), &policy).unwrap_err(),
        JoseError::TokenTooLarge
    );
}

#[test]
fn error_display_never_leaks_and_codes_are_stable() {
    let e = JoseError::ClaimMissing("a\nb".into());
    assert_eq!(e.code(), "claim_missing");
    assert!(!e.to_string().contains('\n'));
    let k = Jwk::from_secret(b"super-secret-value-super-secret-value").unwrap();
    assert!(!format!("{k:?}").contains("super"));
}

#[test]
fn h30_ecdsa_high_s_behaviour_is_pinned() {
    // n of P-256. aws-lc-rs accepts s' = n - s (JOSE does not require non-malleability), so
    // replay caches must not key on signature bytes. This test pins that behaviour.
    let n = super::hex("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
    let k = Jwk::generate("EC", None, None).unwrap();
    let t = sign(b"{}", &k, Alg::ES256, &Map::new()).unwrap();
    let (hp, sig) = t.rsplit_once('.').unwrap();
    let sig = crate::jose::b64::decode(sig.as_bytes()).unwrap();
    let mut s2 = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = i16::from(n[i]) - i16::from(sig[32 + i]) - borrow;
        borrow = i16::from(d < 0);
        s2[i] = (d + 256 * borrow) as u8;
    }
    let high = [&sig[..32], &s2[..]].concat();
    let tok = format!("{hp}.{}", b(&high));
    assert!(verify(
        &tok,
        &JwkSet::single(k.to_public().unwrap()),
        &[Alg::ES256],
        &Limits::default()
    )
    .is_ok());
}

#[test]
fn h46_gcmkw_iv_and_tag_lengths() {
    let k = Jwk::from_secret(&[6; 16]).unwrap();
    let t = encrypt(
        b"x",
        &k,
        KeyAlg::A128GCMKW,
        Enc::A128Gcm,
        &EncryptOptions::default(),
    )
    .unwrap();
    let keys = JwkSet::single(Jwk::from_secret(&[6; 16]).unwrap());
    let algs = [KeyAlg::A128GCMKW];
    let policy = DecryptPolicy::new(&algs, &Enc::ALL);
    assert!(decrypt(&t, &keys, &policy).is_ok());
    for iv in [0usize, 8, 16] {
        let bad = with_header(&t, |h| h["iv"] = b(&vec![1; iv]).into());
        assert_eq!(
            decrypt(&bad, &keys, &policy).unwrap_err(),
            JoseError::DecryptionFailed
        );
    }
    let bad = with_header(&t, |h| h["tag"] = b(&[1; 15]).into());
    assert_eq!(
        decrypt(&bad, &keys, &policy).unwrap_err(),
        JoseError::DecryptionFailed
    );
}

#[test]
fn h49_all_zero_cek_never_used() {
    let kek = [8u8; 16];
    let zero = [0u8; 16];
    let header = b(br#"{"alg":"A128KW","enc":"A128GCM"}"#);
    let ek = crate::jose::jwe::kw_wrap(&kek, &zero).unwrap();
    let iv = [1u8; 12];
    let (ct, tag) =
        crate::jose::jwe::content_encrypt(Enc::A128Gcm, &zero, &iv, header.as_bytes(), b"x")
            .unwrap();
    let t = [header, b(&ek), b(&iv), b(&ct), b(&tag)].join(".");
    let algs = [KeyAlg::A128KW];
    let r = decrypt(
        &t,
        &JwkSet::single(Jwk::from_secret(&kek).unwrap()),
        &DecryptPolicy::new(&algs, &Enc::ALL),
    );
    assert_eq!(r.unwrap_err(), JoseError::DecryptionFailed);
}
