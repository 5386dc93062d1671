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

/// A loopback port held for a listener that something else binds (the gateway's own
/// listeners, a child process): bound with SO_REUSEADDR and never listening. Connections to it
/// are refused, the kernel hands it to no port-0 bind while it is held, and a listener that sets
/// SO_REUSEADDR too (Pingora, slapd, redis-server) can still bind it. Hold it for as long as the
/// port must stay ours; unused, it is a port where nothing answers.
pub struct PortReservation {
    pub port: u16,
    _socket: tokio::net::TcpSocket,
}

pub fn reserve_port() -> PortReservation {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind(([127, 0, 0, 1], 0).into()).unwrap();
    let port = socket.local_addr().unwrap().port();
    PortReservation {
        port,
        _socket: socket,
    }
}

/// A loopback HTTP upstream that echoes what it received as JSON.
/// `/slow?ms=N` answers after N ms; `/status/N` answers with status N; a path ending in
/// `/hold` is counted in `hits` on arrival and answered only after [`Upstream::release`].
pub struct Upstream {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    released: tokio::sync::watch::Sender<bool>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Upstream {
    pub async fn start(name: &'static str) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let (released, gate) = tokio::sync::watch::channel(false);
        let h = hits.clone();
        tokio::spawn(async move {
            loop {
                let conn = tokio::select! {
                    _ = &mut rx => return,
                    c = listener.accept() => c,
                };
                let Ok((stream, _)) = conn else { continue };
                let h = h.clone();
                let gate = gate.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let h = h.clone();
                        let gate = gate.clone();
                        async move { Ok::<_, hyper::Error>(echo(name, req, &h, gate).await) }
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
            released,
            stop: Some(tx),
        }
    }

    /// Answer the requests held on a `/hold` path, and any that arrive later.
    pub fn release(&self) {
        self.released.send_replace(true);
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

async fn echo(
    name: &str,
    req: Request<Incoming>,
    hits: &AtomicUsize,
    mut gate: tokio::sync::watch::Receiver<bool>,
) -> Response<Full<Bytes>> {
    hits.fetch_add(1, Ordering::SeqCst);
    let path = req.uri().path().to_string();
    if path.ends_with("/hold") {
        // An error means the upstream is gone: answer anyway, the test is over.
        let _ = gate.wait_for(|released| *released).await;
    }
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

/// What the gateway threads that ended in a panic said, by the ports they were given: a
/// request that cannot reach a port names the panic instead of a bare connection error.
static GATEWAY_PANICS: Mutex<BTreeMap<u16, String>> = Mutex::new(BTreeMap::new());

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(not a string)".to_string())
}

/// A gateway running in-process on its own thread, from a config file in a temp dir.
/// A panic of that thread is raised again in the test when the gateway is dropped.
pub struct Gateway {
    pub port: u16,
    pub admin_port: u16,
    /// The listeners' ports stay ours until the gateway has bound them, and after.
    _ports: [PortReservation; 2],
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub state: Arc<tokengate::state::State>,
    /// Extra `[admin]` keys, kept across `write_body`.
    admin: String,
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

/// The preamble with `admin` added to its `[admin]` table.
fn with_admin(preamble: String, admin: &str) -> String {
    preamble.replacen("[admin]\n", &format!("[admin]\n{admin}\n"), 1)
}

impl Gateway {
    /// Start with `body` appended to the standard preamble.
    pub async fn start(body: &str) -> Gateway {
        Gateway::start_admin("", body).await
    }

    /// Start with extra `[admin]` keys (e.g. `tokens = [...]`).
    pub async fn start_admin(admin: &str, body: &str) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let ports = [reserve_port(), reserve_port()];
        let (port, admin_port) = (ports[0].port, ports[1].port);
        let config = dir.path().join("tokengate.toml");
        std::fs::write(
            &config,
            format!(
                "{}{}",
                with_admin(preamble(port, admin_port, dir.path()), admin),
                body
            ),
        )
        .unwrap();
        let (server, state) =
            tokengate::server::build(config.clone(), &tokengate::server::RunOptions::default())
                .unwrap_or_else(|e| panic!("config refused: {e:?}"));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || {
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                server.run(RunArgs {
                    shutdown_signal: Box::new(ChannelSignal(Mutex::new(Some(rx)))),
                })
            }));
            if let Err(payload) = run {
                let text = panic_text(payload.as_ref());
                let mut panics = GATEWAY_PANICS.lock().unwrap();
                panics.insert(port, text.clone());
                panics.insert(admin_port, text);
                drop(panics);
                std::panic::resume_unwind(payload);
            }
        });
        let gw = Gateway {
            port,
            admin_port,
            _ports: ports,
            dir,
            config,
            state,
            admin: admin.to_string(),
            stop: Some(tx),
            thread: Some(thread),
        };
        // Ready when both listeners answer (the reservations refuse until then).
        for _ in 0..200 {
            gw.check_alive();
            if try_get(gw.admin_port, "/healthz")
                .await
                .is_ok_and(|r| r.status == 200)
                && tokio::net::TcpStream::connect(("127.0.0.1", gw.port))
                    .await
                    .is_ok()
            {
                return gw;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "gateway did not become ready: admin {:?} data {:?}",
            try_get(gw.admin_port, "/healthz").await.map(|r| r.status),
            tokio::net::TcpStream::connect(("127.0.0.1", gw.port)).await
        );
    }

    /// Panics with the gateway thread's own panic when that thread has ended.
    pub fn check_alive(&self) {
        if let Some(text) = GATEWAY_PANICS.lock().unwrap().get(&self.port) {
            panic!("the gateway thread panicked: {text}");
        }
        if self.thread.as_ref().is_some_and(|t| t.is_finished()) {
            panic!("the gateway thread ended before its shutdown signal");
        }
    }

    /// Replace the config body (same preamble) on disk.
    pub fn write_body(&self, body: &str) {
        let text = format!(
            "{}{}",
            with_admin(
                preamble(self.port, self.admin_port, self.dir.path()),
                &self.admin
            ),
            body
        );
        let tmp = self.dir.path().join("next.toml");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &self.config).unwrap();
    }

    pub fn generation(&self) -> u64 {
        self.check_alive();
        self.state.status().generation
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            if let Err(payload) = t.join() {
                // Already unwinding: a second panic would abort and hide the first.
                if !std::thread::panicking() {
                    std::panic::resume_unwind(payload);
                }
            }
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

/// One request on a fresh connection. Panics, saying why, when no answer comes back (nothing
/// listens, the connection broke, the gateway thread panicked); [`try_request`] returns that.
pub async fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Resp {
    try_request(port, method, path, headers, body)
        .await
        .unwrap_or_else(|e| panic!("{method} {path} on 127.0.0.1:{port}: {e}"))
}

/// One request on a fresh connection, or why no answer came back.
pub async fn try_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Resp, String> {
    let dead = |what: String| match GATEWAY_PANICS.lock().unwrap().get(&port) {
        Some(text) => format!("{what} (the gateway thread panicked: {text})"),
        None => what,
    };
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| dead(format!("connect: {e}")))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| dead(format!("handshake: {e}")))?;
    tokio::spawn(conn);
    let mut b = Request::builder().method(method).uri(path);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        b = b.header("host", format!("127.0.0.1:{port}"));
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Full::new(Bytes::from(body.to_string()))).unwrap();
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| dead(format!("no answer: {e}")))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|e| dead(format!("body cut short: {e}")))?;
    Ok(Resp {
        status,
        headers,
        body,
    })
}

pub async fn get(port: u16, path: &str) -> Resp {
    request(port, "GET", path, &[], "").await
}

pub async fn try_get(port: u16, path: &str) -> Result<Resp, String> {
    try_request(port, "GET", path, &[], "").await
}

/// A state-changing admin request, as the admin listener requires: POST, JSON.
pub async fn admin_post(port: u16, path: &str) -> Resp {
    let json = [("content-type", "application/json")];
    request(port, "POST", path, &json, "").await
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
    let v = run_script_answers(name, reqs);
    for r in &v {
        assert_eq!(r["ok"], true, "{name} error: {r}");
    }
    v
}

/// Like [`run_script`], for batches where some answers are expected to be refusals.
pub fn run_script_answers(name: &str, reqs: &[serde_json::Value]) -> Vec<serde_json::Value> {
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
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A request that gets no answer fails the test, saying where and why (never a status 0).
#[tokio::test]
#[should_panic(expected = "connect: Connection refused")]
async fn a_request_without_answer_fails_with_the_reason() {
    let nothing_listens = reserve_port();
    get(nothing_listens.port, "/").await;
}
