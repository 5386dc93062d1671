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

/// A config whose `api` route verifies ES256 tokens from a remote JWKS (given to `simulate`
/// as a file), behind a `headers` policy that runs only with `x-debug: 1`; and a signed token
/// for alice that expires at 2000000000 (2033-05-18T03:33:20Z).
struct SimSetup {
    dir: tempfile::TempDir,
    token: String,
}

const SIM_JWKS_URL: &str = "https://idp.example/jwks.json";

impl SimSetup {
    fn new() -> SimSetup {
        let dir = tempfile::tempdir().unwrap();
        let (code, jwk, err) = pipe(
            &[
                "jose", "keygen", "--kty", "EC", "--crv", "P-256", "--kid", "k1",
            ],
            b"",
        );
        assert_eq!(code, 0, "{err}");
        let (code, public, err) = pipe(&["jose", "public"], &jwk);
        assert_eq!(code, 0, "{err}");
        let key = dir.path().join("k.jwk");
        std::fs::write(&key, &jwk).unwrap();
        let public: serde_json::Value = serde_json::from_slice(&public).unwrap();
        let set = serde_json::json!({ "keys": [public] });
        std::fs::write(dir.path().join("jwks.json"), set.to_string()).unwrap();
        let (code, token, err) = pipe(
            &[
                "jose",
                "sign",
                "--key",
                key.to_str().unwrap(),
                "--alg",
                "ES256",
            ],
            br#"{"sub":"alice","iss":"https://idp.example","aud":"api","exp":2000000000}"#,
        );
        assert_eq!(code, 0, "{err}");
        std::fs::write(
            dir.path().join("c.toml"),
            format!(
                r#"
[[listeners]]
address = "127.0.0.1:8080"

[upstreams.api]
targets = ["127.0.0.1:9001"]

[[routes]]
name = "api"
match = {{ path_prefix = "/api" }}
upstream = "api"
strip_prefix = true
policies = [
  {{ type = "headers", when = {{ var = "header.x-debug", equals = "1" }}, request = {{ set = {{ "x-debug-on" = "yes" }} }} }},
  {{ type = "jwt_verify", algorithms = ["ES256"], keys = {{ jwks_url = "{SIM_JWKS_URL}" }}, issuers = ["https://idp.example"], audiences = ["api"], claims_to_headers = [{{ claim = "sub", header = "x-user" }}] }},
]
"#
            ),
        )
        .unwrap();
        SimSetup {
            dir,
            token: String::from_utf8(token).unwrap().trim().to_string(),
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// `simulate -c CONFIG --jwks URL=FILE` and `args`: (exit code, stdout, stderr).
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let jwks = format!("{SIM_JWKS_URL}={}", self.path("jwks.json"));
        let out = tokengate()
            .args(["simulate", "-c", &self.path("c.toml"), "--jwks", &jwks])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn bearer(&self) -> String {
        format!("authorization: Bearer {}", self.token)
    }
}

#[test]
fn simulate_shows_a_verified_request_going_upstream_with_its_claims() {
    let s = SimSetup::new();
    let (code, out, err) = s.run(&[
        "--url",
        "http://api.example/api/v1/items?x=1",
        "-H",
        &s.bearer(),
        "--now",
        "1700000000",
    ]);
    assert_eq!(code, 0, "{err}");
    for want in [
        "route: api\n",
        "  jwt_verify [jwt_verify]: ran\n",
        "identity: alice\n",
        r#""sub":"alice""#,
        "upstream: pool api target 127.0.0.1:9001\n",
        "  GET /v1/items?x=1\n",
        "  x-user: alice\n",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
}

#[test]
fn simulate_judges_expiry_at_the_given_time() {
    let s = SimSetup::new();
    let (code, out, err) = s.run(&[
        "--url",
        "http://api.example/api/v1/items",
        "-H",
        &s.bearer(),
        "--now",
        "2033-06-01T00:00:00Z",
    ]);
    assert_eq!(code, 0, "{err}");
    for want in [
        "  jwt_verify [jwt_verify]: denied token_expired 401\n",
        "  status 401 (token_expired)\n",
        "  www-authenticate: Bearer error=\"invalid_token\"\n",
        r#"{"errorCode":"token_expired","message":"the token has expired","statusCode":401}"#,
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert!(!out.contains("upstream:"), "{out}");
}

#[test]
fn simulate_shows_a_policy_whose_when_is_false_as_skipped() {
    let s = SimSetup::new();
    let args = |debug: &'static str| {
        vec![
            "--url".to_string(),
            "http://api.example/api/x".into(),
            "-H".into(),
            s.bearer(),
            "-H".into(),
            format!("x-debug: {debug}"),
            "--now".into(),
            "1700000000".into(),
        ]
    };
    let run = |a: Vec<String>| s.run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let (code, out, err) = run(args("0"));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("  headers [headers]: skipped (when is false)\n"),
        "{out}"
    );
    assert!(!out.contains("x-debug-on"), "{out}");
    let (_, out, _) = run(args("1"));
    assert!(out.contains("  headers [headers]: ran\n"), "{out}");
    assert!(out.contains("  x-debug-on: yes\n"), "{out}");
}

#[test]
fn simulate_without_a_matching_route_answers_no_route() {
    let s = SimSetup::new();
    let (code, out, err) = s.run(&["--url", "http://api.example/elsewhere"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("route: (none)\n"), "{out}");
    assert!(out.contains("  status 404 (no_route)\n"), "{out}");
}

#[test]
fn simulate_refuses_at_the_front_door_like_the_proxy() {
    let s = SimSetup::new();
    let (code, out, err) = s.run(&["--url", "http://api.example/api/a%2fb"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("  status 400 (invalid_path)\n"), "{out}");
}

#[test]
fn simulate_names_remote_keys_it_was_not_given() {
    let s = SimSetup::new();
    let out = tokengate()
        .args(["simulate", "-c", &s.path("c.toml")])
        .args(["--url", "http://api.example/api/x", "-H", &s.bearer()])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.contains(&format!("needs remote keys from {SIM_JWKS_URL}")),
        "{out}"
    );
    assert!(out.contains("denied jwks_unavailable 503"), "{out}");
}

#[test]
fn simulate_json_output_is_machine_readable() {
    let s = SimSetup::new();
    let (code, out, err) = s.run(&[
        "--url",
        "http://api.example/api/v1/items?x=1",
        "-H",
        &s.bearer(),
        "--now",
        "1700000000",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["route"], "api");
    assert_eq!(v["identity"], "alice");
    assert_eq!(v["claims"]["sub"], "alice");
    assert_eq!(v["policies"][0]["decision"], "skipped");
    assert_eq!(v["policies"][1]["policy"], "jwt_verify");
    assert_eq!(v["policies"][1]["decision"], "ran");
    let up = &v["upstream"]["request"];
    assert_eq!(up["method"], "GET");
    assert_eq!(up["path"], "/v1/items?x=1");
    let headers = up["headers"].as_array().unwrap();
    assert!(
        headers.contains(&serde_json::json!(["x-user", "alice"])),
        "{headers:?}"
    );
    assert!(v["response"].is_null());
}

#[test]
fn simulate_reads_the_request_from_a_json_file() {
    let s = SimSetup::new();
    let req = serde_json::json!({
        "url": "http://api.example/api/x",
        "headers": [s.bearer()],
        "now": "2033-06-01T00:00:00Z",
        "jwks": { SIM_JWKS_URL: s.path("jwks.json") },
    });
    std::fs::write(s.path("req.json"), req.to_string()).unwrap();
    let out = tokengate()
        .args(["simulate", "-c", &s.path("c.toml"), "--json"])
        .args(["--request", &s.path("req.json")])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["response"]["status"], 401);
    assert_eq!(v["response"]["error_code"], "token_expired");
}
