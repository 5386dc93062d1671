//! RFC appendix examples: RFC 7515 A.1/A.5, RFC 7518 B.1 and C, RFC 7638 §3.1, RFC 8037 A.3.

use serde_json::{json, Map};

use super::hex;
use crate::jose::*;

const A1_TOKEN: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const A1_KEY: &str = r#"{"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"}"#;

#[test]
fn rfc7515_a1_hs256_verifies_over_exact_bytes() {
    // The header contains CRLF and spaces: verification must use the received bytes.
    let keys = JwkSet::single(Jwk::from_json(A1_KEY.as_bytes()).unwrap());
    let v = verify(A1_TOKEN, &keys, &[Alg::HS256], &Limits::default()).unwrap();
    assert_eq!(v.header.typ.as_deref(), Some("JWT"));
    let claims = v.claims().unwrap();
    assert_eq!(claims["iss"], "joe");
    assert_eq!(claims["http://example.com/is_root"], true);
    // Reproduce the token with the same encoded header.
    let parts: Vec<&str> = A1_TOKEN.split('.').collect();
    let ours = crate::jose::jws::sign_raw(
        parts[0],
        &crate::jose::b64::decode(parts[1].as_bytes()).unwrap(),
        keys.keys().first().unwrap(),
        Alg::HS256,
    )
    .unwrap();
    assert_eq!(ours, A1_TOKEN);
}

#[test]
fn rfc7515_a5_unsecured_is_rejected() {
    let tok = "eyJhbGciOiJub25lIn0.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.";
    let keys = JwkSet::single(Jwk::from_json(A1_KEY.as_bytes()).unwrap());
    assert_eq!(
        verify(tok, &keys, &Alg::ALL, &Limits::default()).unwrap_err(),
        JoseError::TokenMalformed
    );
}

#[test]
fn rfc7518_b1_aes_128_cbc_hmac_sha256_kat() {
    let k: Vec<u8> = (0u8..32).collect();
    let p = b"A cipher system must not be required to be secret, and it must be able to fall into the hands of the enemy without inconvenience";
    let iv = hex("1af38c2dc2b96ffdd86694092341bc04");
    let a = b"The second principle of Auguste Kerckhoffs";
    let e = hex("c80edfa32ddf39d5ef00c0b468834279a2e46a1b8049f792f76bfe54b903a9c9a94ac9b47ad2655c5f10f9aef71427e2fc6f9b3f399a221489f16362c703233609d45ac69864e3321cf82935ac4096c86e133314c54019e8ca7980dfa4b9cf1b384c486f3a54c51078158ee5d79de59fbd34d848b3d69550a67646344427ade54b8851ffb598f7f80074b9473c82e2db");
    let t = hex("652c3fa36b0a7c5b3219fab3a30bc1c4");
    let (ct, tag) = crate::jose::jwe::content_encrypt(Enc::A128CbcHs256, &k, &iv, a, p).unwrap();
    assert_eq!(ct, e);
    assert_eq!(tag, t);
    let pt = crate::jose::jwe::content_decrypt(Enc::A128CbcHs256, &k, &iv, a, &e, &t).unwrap();
    assert_eq!(&pt[..], &p[..]);
    // H42: a truncated or extended tag is refused.
    for bad in [&t[..15], &t[..8]] {
        assert_eq!(
            crate::jose::jwe::content_decrypt(Enc::A128CbcHs256, &k, &iv, a, &e, bad).unwrap_err(),
            JoseError::DecryptionFailed
        );
    }
    let mut long = t.clone();
    long.push(0);
    assert!(crate::jose::jwe::content_decrypt(Enc::A128CbcHs256, &k, &iv, a, &e, &long).is_err());
}

#[test]
fn rfc7518_c_ecdh_es_concat_kdf() {
    let bob = Jwk::from_value(&json!({"kty":"EC","crv":"P-256",
        "x":"weNJy2HscCSM6AEDTDg04biOvhFhyyWvOHQfeF_PxMQ","y":"e8lnCO-AlStT-NJVX-crhB7QRYhiix03illJOVAOyck",
        "d":"VEmDZpDXXK8p8N0Cndsxs924q6nS1RXFASRl6BfUqdw"})).unwrap();
    let alice = Jwk::from_value(&json!({"kty":"EC","crv":"P-256",
        "x":"gI0GAILBdu7T53akrFmMyGcsF3n5dO7MmwNBHKW5SV0","y":"SLW_xSffzlPWrHEVI30DHM_4egVwt3NQqeUD7nMFpps"})).unwrap();
    let z = crate::jose::jwe::ecdh_shared(&bob, &alice).unwrap();
    assert_eq!(
        z.to_vec(),
        vec![
            158, 86, 217, 29, 129, 113, 53, 211, 114, 131, 66, 131, 191, 132, 38, 156, 251, 49,
            110, 163, 218, 128, 106, 72, 246, 218, 167, 121, 140, 254, 144, 196
        ]
    );
    let k = crate::jose::jwe::concat_kdf(&z, "A128GCM", b"Alice", b"Bob", 16);
    assert_eq!(crate::jose::b64::encode(&k), "VqqN6vgjbSBcIijNcacQGg");
}

#[test]
fn rfc7638_thumbprint() {
    let k = Jwk::from_value(&json!({"kty":"RSA","e":"AQAB","alg":"RS256","kid":"2011-04-29",
        "n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"})).unwrap();
    assert_eq!(
        k.thumbprint(),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
}

#[test]
fn rfc8037_a3_ed25519_thumbprint() {
    let k = Jwk::from_value(
        &json!({"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}),
    )
    .unwrap();
    assert_eq!(
        k.thumbprint(),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
}

#[test]
fn kw_rfc3394_192_bit_kek_vector() {
    // RFC 3394 §4.3: wrap 128 bits of key data with a 192-bit KEK.
    let kek = hex("000102030405060708090A0B0C0D0E0F1011121314151617");
    let data = hex("00112233445566778899AABBCCDDEEFF");
    let wrapped = crate::jose::jwe::kw_wrap(&kek, &data).unwrap();
    assert_eq!(
        wrapped,
        hex("96778B25AE6CA435F92B5B97C050AED2468AB8A17AD84E5D")
    );
    assert_eq!(
        &crate::jose::jwe::kw_unwrap(&kek, &wrapped).unwrap()[..],
        &data[..]
    );
    let mut bad = wrapped.clone();
    bad[3] ^= 1;
    assert_eq!(
        crate::jose::jwe::kw_unwrap(&kek, &bad).unwrap_err(),
        JoseError::DecryptionFailed
    );
}

#[test]
fn header_extra_members_are_signed() {
    let k = Jwk::generate("oct", Some(256), None)
        .unwrap()
        .with_kid("k1");
    let mut extra = Map::new();
    extra.insert("typ".into(), "at+jwt".into());
    let tok = sign(b"{}", &k, Alg::HS256, &extra).unwrap();
    let v = verify(&tok, &JwkSet::single(k), &[Alg::HS256], &Limits::default()).unwrap();
    assert_eq!(v.header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(v.header.kid.as_deref(), Some("k1"));
}
