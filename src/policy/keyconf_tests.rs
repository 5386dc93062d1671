//! Key tables compiled without sockets: secret encodings and password-protected PEM keys.
//! Each error is checked for its TOML path.

use super::{compile_keys, Fetch, Keys};
use crate::config::policy::jwt_verify::KeysConfig;
use crate::error::{ConfigError, Errors};
use crate::jose::JwkSet;
use crate::keys::KeyCache;
use std::sync::Arc;

const PASSWORD: &str = "s3cret pass";

fn cache() -> Arc<KeyCache> {
    Arc::new(KeyCache::new(&prometheus::Registry::new()).expect("key cache"))
}

fn compile(table: &str) -> Result<Arc<JwkSet>, Vec<ConfigError>> {
    let c: KeysConfig = toml::from_str(table).expect("a keys table");
    let mut errs = Errors::default();
    match compile_keys(&c, "p.key", &mut errs, &cache(), Fetch::PublicKeys) {
        Some(Some(Keys::Static(set, _))) if errs.is_empty() => Ok(set),
        _ => Err(errs.0),
    }
}

/// The single error of a refused table, as (path, message).
fn refused(table: &str) -> (String, String) {
    let errs = compile(table).map(|_| ()).expect_err("refused");
    assert_eq!(errs.len(), 1, "{errs:?}");
    (errs[0].path.clone(), errs[0].message.clone())
}

/// The bytes of the (single, symmetric) key.
fn secret_bytes(table: &str) -> Vec<u8> {
    let set = compile(table).unwrap_or_else(|e| panic!("{table}: {e:?}"));
    let v = set.keys()[0].to_value(true).expect("export");
    crate::jose::b64_decode(v["k"].as_str().expect("k")).expect("base64url")
}

const RAW: &[u8; 32] = b"\x00\x01\x02\xfe\xff0123456789abcdefghijklmnopq";

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn secret_without_encoding_is_its_utf8_bytes() {
    let s = "a-secret-of-at-least-32-bytes-long!";
    assert_eq!(
        secret_bytes(&format!("secret = \"{s}\"\nalg = \"HS256\"")),
        s.as_bytes()
    );
}

#[test]
fn hex_secret_accepts_either_case_and_whitespace() {
    let lower = hex_of(RAW);
    let spaced_upper: String = lower
        .to_ascii_uppercase()
        .as_bytes()
        .chunks(8)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(" \n\t");
    for text in [lower, spaced_upper] {
        let t = format!("secret = '''{text}'''\nencoding = \"hex\"");
        assert_eq!(secret_bytes(&t), RAW);
    }
}

#[test]
fn base64_secret_accepts_padding_or_not() {
    use base64::Engine as _;
    let padded = base64::engine::general_purpose::STANDARD.encode(&RAW[..]);
    assert!(padded.ends_with('='));
    let bare = padded.trim_end_matches('=').to_string();
    for text in [padded, bare] {
        let t = format!("secret = \"{text}\"\nencoding = \"base64\"");
        assert_eq!(secret_bytes(&t), &RAW[..]);
    }
}

#[test]
fn base64url_secret_accepts_padding_or_not() {
    use base64::Engine as _;
    let padded = base64::engine::general_purpose::URL_SAFE.encode(&RAW[..]);
    assert!(padded.contains(['-', '_']) && padded.ends_with('='));
    let bare = padded.trim_end_matches('=').to_string();
    for text in [padded, bare] {
        let t = format!("secret = \"{text}\"\nencoding = \"base64url\"");
        assert_eq!(secret_bytes(&t), &RAW[..]);
    }
}

#[test]
fn base64_secret_refuses_the_url_alphabet() {
    let (path, msg) =
        refused("secret = \"-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_\"\nencoding = \"base64\"");
    assert_eq!(path, "p.key.secret");
    assert!(msg.contains("base64"), "{msg}");
}

#[test]
fn bad_hex_secret_is_refused_at_its_path_without_echoing_it() {
    let (path, msg) =
        refused("secret = \"00112233445566778899aabbccddeeffzz\"\nencoding = \"hex\"");
    assert_eq!(path, "p.key.secret");
    assert!(msg.contains("hex") && !msg.contains("zz"), "{msg}");
}

#[test]
fn odd_length_hex_is_refused() {
    let (path, _) = refused("secret = \"001\"\nencoding = \"hex\"");
    assert_eq!(path, "p.key.secret");
}

#[test]
fn hex_secret_file_is_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("hs.hex");
    std::fs::write(&f, format!("{}\n", hex_of(RAW))).unwrap();
    let t = format!(
        "secret_file = {:?}\nencoding = \"hex\"",
        f.display().to_string()
    );
    assert_eq!(secret_bytes(&t), RAW);
}

#[test]
fn encoding_without_a_secret_is_refused() {
    let (path, _) = refused("jwks_url = \"https://idp.example/jwks.json\"\nencoding = \"hex\"");
    assert_eq!(path, "p.key.encoding");
}

#[test]
fn unknown_encoding_is_refused_at_its_toml_path() {
    let text = "[[routes]]\nname = \"r\"\nrespond = { status = 200 }\n[[routes.policies]]\n\
                type = \"jwt_verify\"\nalgorithms = [\"HS256\"]\n\
                keys = { secret = \"00\", encoding = \"base32\" }\n";
    let errs = crate::config::parse_str(text)
        .map(|_| ())
        .expect_err("refused");
    // Policy tables are typed after the route: the path names the policy, the message the key.
    assert_eq!(errs[0].path, "routes[0].policies[0]");
    assert!(errs[0].message.starts_with("keys.encoding:"), "{errs:?}");
}

fn openssl(args: &[&str], input: &[u8]) -> String {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl is installed");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// (encrypted PEM, its plain PKCS#8 PEM) for an EC P-256 key.
fn encrypted_ec() -> (String, String) {
    let plain = openssl(
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ],
        b"",
    );
    let pass = format!("pass:{PASSWORD}");
    let enc = openssl(
        &["pkcs8", "-topk8", "-v2", "aes-256-cbc", "-passout", &pass],
        plain.as_bytes(),
    );
    (enc, plain)
}

fn thumbprint_of(pem: &str) -> String {
    crate::jose::Jwk::from_pem(pem).unwrap().thumbprint()
}

#[test]
fn encrypted_pem_file_with_password_file_loads() {
    let (enc, plain) = encrypted_ec();
    let dir = tempfile::tempdir().unwrap();
    let (kf, pf) = (dir.path().join("k.pem"), dir.path().join("k.pass"));
    std::fs::write(&kf, enc).unwrap();
    std::fs::write(&pf, format!("{PASSWORD}\n")).unwrap();
    let t = format!(
        "file = {:?}\npassword_file = {:?}",
        kf.display().to_string(),
        pf.display().to_string()
    );
    let set = compile(&t).unwrap();
    assert_eq!(set.keys()[0].thumbprint(), thumbprint_of(&plain));
}

#[test]
fn encrypted_inline_pem_with_password_env_loads() {
    let (enc, plain) = encrypted_ec();
    std::env::set_var("TOKENGATE_TEST_KEYCONF_PASSWORD_OK", PASSWORD);
    let t = format!("pem = '''{enc}'''\npassword_env = \"TOKENGATE_TEST_KEYCONF_PASSWORD_OK\"");
    let set = compile(&t).unwrap();
    assert_eq!(set.keys()[0].thumbprint(), thumbprint_of(&plain));
}

#[test]
fn wrong_password_is_a_config_error_at_the_key_path() {
    let (enc, _) = encrypted_ec();
    std::env::set_var("TOKENGATE_TEST_KEYCONF_PASSWORD_BAD", "not it");
    let t = format!("pem = '''{enc}'''\npassword_env = \"TOKENGATE_TEST_KEYCONF_PASSWORD_BAD\"");
    let (path, msg) = refused(&t);
    assert_eq!(path, "p.key.pem");
    assert!(
        msg.contains("wrong password") && !msg.contains("not it"),
        "{msg}"
    );
}

#[test]
fn encrypted_pem_without_password_is_refused() {
    let (enc, _) = encrypted_ec();
    let (path, msg) = refused(&format!("pem = '''{enc}'''"));
    assert_eq!(path, "p.key.pem");
    assert!(msg.contains("no password"), "{msg}");
}

#[test]
fn unset_password_env_is_refused_at_its_path() {
    let (enc, _) = encrypted_ec();
    let t = format!("pem = '''{enc}'''\npassword_env = \"TOKENGATE_TEST_KEYCONF_UNSET\"");
    assert_eq!(refused(&t).0, "p.key.password_env");
}

#[test]
fn password_for_a_secret_is_refused() {
    std::env::set_var("TOKENGATE_TEST_KEYCONF_PASSWORD_SECRET", "x");
    let t = "secret = \"a-secret-of-at-least-32-bytes-long!\"\n\
             password_env = \"TOKENGATE_TEST_KEYCONF_PASSWORD_SECRET\"";
    assert_eq!(refused(t).0, "p.key.password_env");
}

#[test]
fn inline_password_is_not_a_field() {
    assert!(toml::from_str::<KeysConfig>("pem = \"x\"\npassword = \"pw\"").is_err());
}

#[test]
fn signing_keys_from_a_discovery_document_are_refused() {
    let c: KeysConfig =
        toml::from_str("discovery_url = \"https://idp.example/.well-known/openid-configuration\"")
            .unwrap();
    let mut errs = Errors::default();
    assert!(compile_keys(&c, "p.key", &mut errs, &cache(), Fetch::SigningKeys).is_none());
    assert_eq!(errs.0.len(), 1);
    assert_eq!(errs.0[0].path, "p.key.discovery_url");
}

#[test]
fn a_signing_key_from_the_request_is_refused() {
    let c: KeysConfig = toml::from_str("from = \"header.x-key\"").unwrap();
    let mut errs = Errors::default();
    assert!(compile_keys(&c, "p.key", &mut errs, &cache(), Fetch::SigningKeys).is_none());
    assert_eq!(errs.0[0].path, "p.key.from");
}

#[test]
fn a_key_from_the_body_is_refused() {
    let c: KeysConfig = toml::from_str("from = \"body./jwk\"").unwrap();
    let mut errs = Errors::default();
    assert!(compile_keys(&c, "p.key", &mut errs, &cache(), Fetch::PublicKeys).is_none());
    assert_eq!(errs.0[0].path, "p.key.from");
}
