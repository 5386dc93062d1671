use std::process::Command;

fn tokengate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tokengate"))
}

#[test]
fn check_reports_every_error_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        r#"
[[listeners]]
address = "127.0.0.1:8080"

[upstreams.p]
targets = ["127.0.0.1:1"]
selection = "consistent_hash"

[[routes]]
name = "a"
upstream = "missing"

[[routes]]
name = "b"
match = { path_prefix = "/b" }
upstream = "p"
policies = [{ type = "headers", when = { var = "nope" , equals = "1" } }, { use = "ghost" }]
"#,
    )
    .unwrap();
    let out = tokengate().arg("check").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "upstreams.p.hash_key: consistent_hash needs a hash_key",
        "routes[0].upstream: no upstream named \"missing\"",
        "routes[1].policies[0].when.var: unknown variable \"nope\"",
        "routes[1].policies[1].use: no policy named \"ghost\"",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }

    let unknown = dir.path().join("unknown.toml");
    std::fs::write(
        &unknown,
        "[[listeners]]\naddress = \"127.0.0.1:1\"\nhttp3 = true\n",
    )
    .unwrap();
    let out = tokengate().arg("check").arg(&unknown).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("listeners[0]") && err.contains("http3"),
        "{err}"
    );
}

#[test]
fn shipped_configs_pass_check() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut files = vec![format!("{root}/conf/tokengate.toml")];
    for e in std::fs::read_dir(format!("{root}/conf/examples")).unwrap() {
        files.push(e.unwrap().path().display().to_string());
    }
    let out = tokengate().arg("check").args(&files).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn version_flag() {
    let out = tokengate().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("tokengate "));
}

fn pipe(args: &[&str], input: &[u8]) -> (i32, Vec<u8>, String) {
    use std::io::Write;
    let mut child = tokengate()
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn jose_cli_keygen_sign_verify_encrypt_decrypt() {
    let dir = tempfile::tempdir().unwrap();
    let (code, jwk, err) = pipe(
        &[
            "jose", "keygen", "--kty", "EC", "--crv", "P-256", "--kid", "k1",
        ],
        b"",
    );
    assert_eq!(code, 0, "{err}");
    let key = dir.path().join("ec.jwk");
    std::fs::write(&key, &jwk).unwrap();
    let (code, public, _) = pipe(&["jose", "public"], &jwk);
    assert_eq!(code, 0);
    let pubv: serde_json::Value = serde_json::from_slice(&public).unwrap();
    assert!(pubv.get("d").is_none(), "public JWK has no private part");
    let pubkey = dir.path().join("ec.pub.jwk");
    std::fs::write(&pubkey, &public).unwrap();

    let key_s = key.to_str().unwrap();
    let (code, token, err) = pipe(
        &["jose", "sign", "--key", key_s, "--alg", "ES256"],
        br#"{"sub":"alice"}"#,
    );
    assert_eq!(code, 0, "{err}");
    let token = String::from_utf8(token).unwrap();
    let (code, out, _) = pipe(
        &[
            "jose",
            "verify",
            "--key",
            pubkey.to_str().unwrap(),
            "--alg",
            "ES256",
        ],
        token.trim().as_bytes(),
    );
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["payload"]["sub"], "alice");
    assert_eq!(v["header"]["kid"], "k1");

    // Wrong algorithm allow-list: exit 1 with the stable code on stderr.
    let (code, _, err) = pipe(
        &[
            "jose",
            "verify",
            "--key",
            pubkey.to_str().unwrap(),
            "--alg",
            "RS256",
        ],
        token.trim().as_bytes(),
    );
    assert_eq!(code, 1);
    assert!(err.contains("algorithm_not_allowed"), "{err}");

    let (code, ct, err) = pipe(
        &[
            "jose",
            "encrypt",
            "--key",
            pubkey.to_str().unwrap(),
            "--alg",
            "ECDH-ES+A128KW",
            "--enc",
            "A256GCM",
        ],
        b"secret data",
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = pipe(
        &[
            "jose",
            "decrypt",
            "--key",
            key_s,
            "--alg",
            "ECDH-ES+A128KW",
            "--enc",
            "A256GCM",
        ],
        String::from_utf8(ct).unwrap().trim().as_bytes(),
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["plaintext"], "c2VjcmV0IGRhdGE");
}

#[test]
fn admin_token_prints_a_random_token_and_its_config_hash() {
    let run = || {
        let out = tokengate().arg("admin-token").output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        assert_eq!(lines.len(), 2, "{text}");
        lines
    };
    let (a, b) = (run(), run());
    assert_ne!(a[0], b[0]);
    assert_eq!(a[0].len(), 43, "32 bytes, base64url without padding");
    let hash = tokengate::config::content_hash(a[0].as_bytes());
    assert_eq!(a[1], format!("tokens = [\"sha256:{hash}\"]"));
}

#[test]
fn check_prints_warnings_with_their_paths_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("warn.toml");
    std::fs::write(
        &f,
        r#"
[[listeners]]
address = "127.0.0.1:8080"

[[routes]]
name = "api"
match = { path_prefix = "/api" }
respond = { status = 200 }
policies = [
  { type = "jwt_verify", algorithms = ["HS256"], keys = { secret = "0123456789abcdef0123456789abcdef" }, sources = [{ query = "access_token" }] },
]
"#,
    )
    .unwrap();
    let out = tokengate().arg("check").arg(&f).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(": ok"));
    for path in [
        "routes[0].policies[0].issuers: ",
        "routes[0].policies[0].audiences: ",
        "routes[0].policies[0].sources[0].query: ",
        "routes[0].policies[0].keys.secret: ",
    ] {
        assert!(
            err.contains(&format!("warn.toml: warning: {path}")),
            "missing {path:?} in:\n{err}"
        );
    }
    // The warning names the setting, never the secret itself.
    assert!(!err.contains("0123456789abcdef"), "{err}");
}

#[test]
fn check_refuses_a_key_that_cannot_serve_its_algorithm_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("short.toml");
    std::fs::write(
        &f,
        r#"
[[routes]]
name = "api"
respond = { status = 200 }
policies = [{ type = "jwt_verify", algorithms = ["HS256"], keys = { secret = "too-short" } }]
"#,
    )
    .unwrap();
    let out = tokengate().arg("check").arg(&f).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "routes[0].policies[0].keys: no key here can be used with HS256: key_too_short"
        ),
        "{err}"
    );
}

#[test]
fn jose_verify_refuses_a_payload_with_duplicate_members() {
    let dir = tempfile::tempdir().unwrap();
    let (code, jwk, err) = pipe(&["jose", "keygen", "--kty", "EC", "--crv", "P-256"], b"");
    assert_eq!(code, 0, "{err}");
    let key = dir.path().join("ec.jwk");
    std::fs::write(&key, &jwk).unwrap();
    let key_s = key.to_str().unwrap();
    let sign = |payload: &[u8]| {
        let (code, token, err) = pipe(&["jose", "sign", "--key", key_s, "--alg", "ES256"], payload);
        assert_eq!(code, 0, "{err}");
        token
    };
    let verify = &["jose", "verify", "--key", key_s, "--alg", "ES256"];
    let (code, _, err) = pipe(verify, &sign(br#"{"sub":"alice","sub":"admin"}"#));
    assert_ne!(code, 0);
    assert!(err.contains("claims_malformed"), "{err}");
    // Unique members verify, and a payload that is not JSON is still shown (as base64url).
    let (code, _, err) = pipe(verify, &sign(br#"{"sub":"alice"}"#));
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = pipe(verify, &sign(b"not json"));
    assert_eq!(code, 0, "{err}");
}
