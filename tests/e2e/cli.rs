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
