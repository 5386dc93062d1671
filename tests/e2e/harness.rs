//! Test harness: real loopback upstreams (hyper), the gateway in-process with its own shutdown
//! signal, and a small HTTP/1.1 client. No fixed ports, no sleeps to "hope" things are ready.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use pingora_core::server::{RunArgs, ShutdownSignal, ShutdownSignalWatch};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// A free loopback port (bound then released; the gateway binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A loopback HTTP upstream that echoes what it received as JSON.
/// `/slow?ms=N` answers after N ms; `/status/N` answers with status N.
pub struct Upstream {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Upstream {
    pub async fn start(name: &'static str) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let h = hits.clone();
        tokio::spawn(async move {
            loop {
                let conn = tokio::select! {
                    _ = &mut rx => return,
                    c = listener.accept() => c,
                };
                let Ok((stream, _)) = conn else { continue };
                let h = h.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let h = h.clone();
                        async move { Ok::<_, hyper::Error>(echo(name, req, &h).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Upstream {
            addr,
            hits,
            stop: Some(tx),
        }
    }

    /// Stop accepting connections (the port then refuses).
    pub fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn echo(name: &str, req: Request<Incoming>, hits: &AtomicUsize) -> Response<Full<Bytes>> {
    hits.fetch_add(1, Ordering::SeqCst);
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    if let Some(ms) = query
        .strip_prefix("ms=")
        .and_then(|m| m.parse::<u64>().ok())
    {
        if path.starts_with("/slow") {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
    let status = path
        .strip_prefix("/status/")
        .and_then(|s| s.parse::<u16>().ok())
        .unwrap_or(200);
    let mut headers = BTreeMap::new();
    for (k, v) in req.headers() {
        headers
            .entry(k.as_str().to_string())
            .or_insert_with(Vec::new)
            .push(String::from_utf8_lossy(v.as_bytes()).into_owned());
    }
    let method = req.method().to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let v = serde_json::json!({
        "upstream": name,
        "method": method,
        "path": path,
        "query": query,
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-upstream", name)
        .body(Full::new(Bytes::from(v.to_string())))
        .unwrap()
}

struct ChannelSignal(Mutex<Option<tokio::sync::oneshot::Receiver<()>>>);

#[async_trait::async_trait]
impl ShutdownSignalWatch for ChannelSignal {
    async fn recv(&self) -> ShutdownSignal {
        let rx = self.0.lock().unwrap().take();
        if let Some(rx) = rx {
            let _ = rx.await;
        }
        ShutdownSignal::FastShutdown
    }
}

/// A gateway running in-process on its own thread, from a config file in a temp dir.
pub struct Gateway {
    pub port: u16,
    pub admin_port: u16,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub state: Arc<tokengate::state::State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The `[server]`, `[admin]` and `[[listeners]]` part of a test config.
pub fn preamble(port: u16, admin_port: u16, dir: &std::path::Path) -> String {
    format!(
        r#"
[server]
threads = 2
# Pingora's no-steal runtime does not start again in a process where an earlier server ran
# (later gateways never listen), so the in-process gateways use work stealing; the default
# (no stealing) is covered by the process tests, which run the binary.
work_stealing = true
pid_file = "{d}/tg.pid"
upgrade_sock = "{d}/tg_upgrade.sock"
reload_poll_interval = "100ms"
graceful_shutdown_timeout = "1s"

[admin]
listen = "127.0.0.1:{admin_port}"

[access_log]
enabled = true
path = "{d}/access.log"

[[listeners]]
address = "127.0.0.1:{port}"
"#,
        d = dir.display()
    )
}

impl Gateway {
    /// Start with `body` appended to the standard preamble.
    pub async fn start(body: &str) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut admin_port = free_port();
        while admin_port == port {
            admin_port = free_port();
        }
        let config = dir.path().join("tokengate.toml");
        std::fs::write(
            &config,
            format!("{}{}", preamble(port, admin_port, dir.path()), body),
        )
        .unwrap();
        let (server, state) =
            tokengate::server::build(config.clone(), &tokengate::server::RunOptions::default())
                .unwrap_or_else(|e| panic!("config refused: {e:?}"));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || {
            server.run(RunArgs {
                shutdown_signal: Box::new(ChannelSignal(Mutex::new(Some(rx)))),
            });
        });
        let gw = Gateway {
            port,
            admin_port,
            dir,
            config,
            state,
            stop: Some(tx),
            thread: Some(thread),
        };
        // Ready when both listeners answer.
        for _ in 0..200 {
            if get(gw.admin_port, "/healthz").await.status == 200
                && tokio::net::TcpStream::connect(("127.0.0.1", gw.port))
                    .await
                    .is_ok()
            {
                return gw;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "gateway did not become ready: admin {} data {}",
            get(gw.admin_port, "/healthz").await.status,
            tokio::net::TcpStream::connect(("127.0.0.1", gw.port))
                .await
                .is_ok()
        );
    }

    /// Replace the config body (same preamble) on disk.
    pub fn write_body(&self, body: &str) {
        let text = format!(
            "{}{}",
            preamble(self.port, self.admin_port, self.dir.path()),
            body
        );
        let tmp = self.dir.path().join("next.toml");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &self.config).unwrap();
    }

    pub fn generation(&self) -> u64 {
        self.state.status().generation
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
    pub fn header(&self, n: &str) -> Option<&str> {
        self.headers.get(n).and_then(|v| v.to_str().ok())
    }
}

/// One request on a fresh connection. Status 0 when the connection failed.
pub async fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Resp {
    let fail = Resp {
        status: 0,
        headers: http::HeaderMap::new(),
        body: Bytes::new(),
    };
    let Ok(stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return fail;
    };
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    else {
        return fail;
    };
    tokio::spawn(conn);
    let mut b = Request::builder().method(method).uri(path);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        b = b.header("host", format!("127.0.0.1:{port}"));
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Full::new(Bytes::from(body.to_string()))).unwrap();
    let Ok(resp) = sender.send_request(req).await else {
        return fail;
    };
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Resp {
        status,
        headers,
        body,
    }
}

pub async fn get(port: u16, path: &str) -> Resp {
    request(port, "GET", path, &[], "").await
}

/// Wait until `f` holds, polling; panics with `what` after 10 s.
pub async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..400 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Run a batch of JSON requests through a Python script in tests/fixtures (stdin -> stdout);
/// every answer must say `"ok": true`.
pub fn run_script(name: &str, reqs: &[serde_json::Value]) -> Vec<serde_json::Value> {
    use std::io::Write;
    let script = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let mut child = std::process::Command::new("python3")
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 and the peers are needed (scripts/setup.sh installs them)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            serde_json::Value::Array(reqs.to_vec())
                .to_string()
                .as_bytes(),
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{name} failed");
    let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    for r in &v {
        assert_eq!(r["ok"], true, "{name} error: {r}");
    }
    v
}
