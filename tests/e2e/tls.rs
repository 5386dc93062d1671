//! TLS and HTTP/2 listeners, exercised with curl (an independent client) over loopback.

use crate::harness::*;
use std::process::Command;

fn self_signed(dir: &std::path::Path) -> (String, String) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let st = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args([
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl must be installed (scripts/setup.sh installs it)");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    (cert.display().to_string(), key.display().to_string())
}

fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args([
            "-s",
            "-S",
            "--max-time",
            "10",
            "-w",
            "\n%{http_version} %{http_code}",
        ])
        .args(args)
        .output()
        .expect("curl must be installed (scripts/setup.sh installs it)");
    let s = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, meta) = s.rsplit_once('\n').unwrap_or((&s, ""));
    (body.to_string(), meta.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_h2_and_cleartext_h2c() {
    let certdir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(certdir.path());
    let up = Upstream::start("u").await;
    // Held while the gateway binds them (Pingora sets SO_REUSEADDR) and until the test ends.
    let (tls_reserved, h2c_reserved) = (reserve_port(), reserve_port());
    let (tls_port, h2c_port) = (tls_reserved.port, h2c_reserved.port);
    let gw = Gateway::start(&format!(
        r#"
[[listeners]]
address = "127.0.0.1:{tls_port}"
tls = {{ cert = "{cert}", key = "{key}" }}
http2 = true

[[listeners]]
address = "127.0.0.1:{h2c_port}"
http2 = true

[upstreams.pool]
targets = ["{up}"]

[[routes]]
name = "hello"
match = {{ path_exact = "/hello" }}
respond = {{ status = 200, body = "hi" }}

[[routes]]
name = "api"
upstream = "pool"
"#,
        up = up.addr
    ))
    .await;
    let _ = &gw;
    let base = format!("https://127.0.0.1:{tls_port}");
    let (body, meta) = curl(&["--cacert", &cert, "--http2", &format!("{base}/hello")]);
    assert_eq!((body.as_str(), meta.as_str()), ("hi", "2 200"));

    // Proxied over h2 from the client, h1 to the upstream.
    let (body, meta) = curl(&["--cacert", &cert, "--http2", &format!("{base}/x/y")]);
    assert_eq!(meta, "2 200");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["path"], "/x/y");

    // HTTP/1.1 over TLS still works on the same listener.
    let (_, meta) = curl(&["--cacert", &cert, "--http1.1", &format!("{base}/hello")]);
    assert_eq!(meta, "1.1 200");

    // Cleartext HTTP/2 with prior knowledge.
    let (body, meta) = curl(&[
        "--http2-prior-knowledge",
        &format!("http://127.0.0.1:{h2c_port}/hello"),
    ]);
    assert_eq!((body.as_str(), meta.as_str()), ("hi", "2 200"));
}
