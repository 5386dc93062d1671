//! Password-protected PKCS#8 keys written by the `openssl` command line: each decrypted key
//! is the key openssl encrypted (same thumbprint), signs, and the signature verifies with the
//! public key openssl exported.

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::Map;

use crate::jose::{sign, verify, Alg, JoseError, Jwk, JwkSet, Limits, MAX_PBKDF2_ITERATIONS};

const PASSWORD: &str = "correct horse battery staple";

fn openssl(args: &[&str], input: &[u8]) -> String {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is installed");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write");
    let out = child.wait_with_output().expect("openssl ran");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("PEM is text")
}

/// A fresh unencrypted PKCS#8 key of this `genpkey` kind.
fn genpkey(opts: &[&str]) -> String {
    let mut args = vec!["genpkey"];
    args.extend_from_slice(opts);
    openssl(&args, b"")
}

fn encrypt(plain: &str, cipher: &str, prf: &str) -> String {
    let pass = format!("pass:{PASSWORD}");
    openssl(
        &[
            "pkcs8", "-topk8", "-v2", cipher, "-v2prf", prf, "-passout", &pass,
        ],
        plain.as_bytes(),
    )
}

fn public_of(plain: &str) -> JwkSet {
    let pem = openssl(&["pkey", "-pubout"], plain.as_bytes());
    JwkSet::single(Jwk::from_pem(&pem).expect("public key"))
}

fn assert_signs(encrypted: &str, plain: &str, alg: Alg) {
    assert!(encrypted.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    let key = Jwk::from_pem_with_password(encrypted, Some(PASSWORD.as_bytes()))
        .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
    let reference = Jwk::from_pem(plain).expect("plain key");
    assert_eq!(key.thumbprint(), reference.thumbprint());
    let token = sign(br#"{"sub":"a"}"#, &key, alg, &Map::new()).expect("signs");
    verify(&token, &public_of(plain), &[alg], &Limits::default()).expect("verifies");
}

const KINDS: [(&[&str], Alg); 3] = [
    (
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        Alg::RS256,
    ),
    (
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        Alg::ES256,
    ),
    (&["-algorithm", "ED25519"], Alg::EdDSA),
];

#[test]
fn pkcs8_v2_aes256_with_sha256_prf_decrypts_and_signs() {
    for (opts, alg) in KINDS {
        let plain = genpkey(opts);
        assert_signs(
            &encrypt(&plain, "aes-256-cbc", "hmacWithSHA256"),
            &plain,
            alg,
        );
    }
}

#[test]
fn pkcs8_v2_aes128_with_sha1_prf_decrypts_and_signs() {
    for (opts, alg) in KINDS {
        let plain = genpkey(opts);
        assert_signs(&encrypt(&plain, "aes-128-cbc", "hmacWithSHA1"), &plain, alg);
    }
}

#[test]
fn genpkey_aes256_output_decrypts_and_signs() {
    let pass = format!("pass:{PASSWORD}");
    let encrypted = genpkey(&[
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-aes256",
        "-pass",
        &pass,
    ]);
    let plain = openssl(&["pkey", "-passin", &pass], encrypted.as_bytes());
    assert_signs(&encrypted, &plain, Alg::ES256);
}

#[test]
fn wrong_password_is_refused_as_such() {
    let plain = genpkey(KINDS[1].0);
    let encrypted = encrypt(&plain, "aes-256-cbc", "hmacWithSHA256");
    match Jwk::from_pem_with_password(&encrypted, Some(b"not the password")) {
        Err(JoseError::KeyRejected(why)) => assert!(why.contains("wrong password"), "{why}"),
        other => panic!("{:?}", other.map(|k| k.thumbprint())),
    }
}

#[test]
fn encrypted_key_without_password_is_refused() {
    let plain = genpkey(KINDS[2].0);
    let encrypted = encrypt(&plain, "aes-256-cbc", "hmacWithSHA256");
    assert!(matches!(
        Jwk::from_pem(&encrypted),
        Err(JoseError::KeyRejected(why)) if why.contains("no password")
    ));
}

#[test]
fn password_for_a_plain_key_is_refused() {
    let plain = genpkey(KINDS[2].0);
    assert!(matches!(
        Jwk::from_pem_with_password(&plain, Some(b"pw")),
        Err(JoseError::KeyRejected(why)) if why.contains("not encrypted")
    ));
}

fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = body.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(body);
    out
}

/// An EncryptedPrivateKeyInfo with this iteration count (big-endian INTEGER contents).
fn with_iterations(count: &[u8]) -> String {
    let pbkdf2_oid = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0c];
    let pbes2_oid = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d];
    let aes256_oid = [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];
    let kdf_params = [tlv(0x04, &[7; 16]), tlv(0x02, count)].concat();
    let kdf = [tlv(0x06, &pbkdf2_oid), tlv(0x30, &kdf_params)].concat();
    let scheme = [tlv(0x06, &aes256_oid), tlv(0x04, &[9; 16])].concat();
    let params = [tlv(0x30, &kdf), tlv(0x30, &scheme)].concat();
    let alg = [tlv(0x06, &pbes2_oid), tlv(0x30, &params)].concat();
    let der = tlv(0x30, &[tlv(0x30, &alg), tlv(0x04, &[0; 48])].concat());
    format!(
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\n{}\n-----END ENCRYPTED PRIVATE KEY-----\n",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der)
    )
}

#[test]
fn iteration_count_above_the_bound_is_refused_before_deriving() {
    let over = (MAX_PBKDF2_ITERATIONS + 1).to_be_bytes();
    // DER INTEGERs are signed: a leading zero keeps the value positive.
    let count = [&[0u8][..], &over[..]].concat();
    let started = std::time::Instant::now();
    let r = Jwk::from_pem_with_password(&with_iterations(&count), Some(b"pw"));
    assert!(
        matches!(&r, Err(JoseError::KeyRejected(why)) if why.contains("iterations")),
        "{:?}",
        r.map(|k| k.thumbprint())
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}

#[test]
fn zero_iterations_are_refused() {
    let r = Jwk::from_pem_with_password(&with_iterations(&[0]), Some(b"pw"));
    assert!(matches!(&r, Err(JoseError::KeyRejected(why)) if why.contains("iterations")));
}

#[test]
fn bounded_iteration_count_reaches_decryption() {
    // Within the bound the parameters are accepted and the (wrong) data fails to decrypt.
    let r = Jwk::from_pem_with_password(&with_iterations(&[0x08, 0x00]), Some(b"pw"));
    assert!(matches!(&r, Err(JoseError::KeyRejected(why)) if why.contains("wrong password")));
}
