//! Remote key sources against real loopback servers (no mocks, no fixed ports, no timing
//! assertions: short durations only make the tests quick).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::*;
use crate::jose::{Curve, Jwk, JwkSet};
use crate::units::{HumanDuration, HumanSize};

const HUGE_TOTAL: u64 = 64 << 20;

#[derive(Clone, Debug)]
enum Mode {
    Serve,
    Status(u16),
    Huge { declared: bool },
    Redirect(String),
}

struct ServerState {
    mode: Mode,
    body: Vec<u8>,
    cache_control: Option<String>,
    delay: Duration,
    discovery_jwks_uri: Option<String>,
    hits: HashMap<String, usize>,
}

/// A JWKS server on 127.0.0.1:0 whose behaviour is switched at runtime.
struct JwksServer {
    addr: SocketAddr,
    state: Arc<Mutex<ServerState>>,
    huge_sent: Arc<AtomicU64>,
    huge_done: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl JwksServer {
    async fn start(body: Vec<u8>) -> JwksServer {
        Self::start_with(body, None).await
    }

    /// `tls`: serve HTTPS with this configuration.
    async fn start_with(body: Vec<u8>, tls: Option<Arc<rustls::ServerConfig>>) -> JwksServer {
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(ServerState {
            mode: Mode::Serve,
            body,
            cache_control: None,
            delay: Duration::ZERO,
            discovery_jwks_uri: None,
            hits: HashMap::new(),
        }));
        let huge_sent = Arc::new(AtomicU64::new(0));
        let huge_done = Arc::new(AtomicBool::new(false));
        let (st, hs, hd) = (state.clone(), huge_sent.clone(), huge_done.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (st, hs, hd) = (st.clone(), hs.clone(), hd.clone());
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match acceptor {
                        Some(acceptor) => {
                            if let Ok(tls) = acceptor.accept(stream).await {
                                let _ = serve(tls, addr, st, hs, hd).await;
                            }
                        }
                        None => {
                            let _ = serve(stream, addr, st, hs, hd).await;
                        }
                    }
                });
            }
        });
        JwksServer {
            addr,
            state,
            huge_sent,
            huge_done,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.addr.port(), path)
    }

    fn set(&self, f: impl FnOnce(&mut ServerState)) {
        f(&mut self.state.lock().unwrap());
    }

    fn hits(&self, path: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .hits
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    addr: SocketAddr,
    state: Arc<Mutex<ServerState>>,
    huge_sent: Arc<AtomicU64>,
    huge_done: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() > 16 << 10 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let path = text
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .split('?')
        .next()
        .unwrap_or("/")
        .to_owned();
    let (mode, body, cc, delay, disc) = {
        let mut s = state.lock().unwrap();
        *s.hits.entry(path.clone()).or_default() += 1;
        (
            s.mode.clone(),
            s.body.clone(),
            s.cache_control.clone(),
            s.delay,
            s.discovery_jwks_uri.clone(),
        )
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let ok = |body: &[u8], cc: Option<&str>| {
        let mut r = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
            body.len()
        );
        if let Some(cc) = cc {
            r.push_str(&format!("cache-control: {cc}\r\n"));
        }
        r.push_str("\r\n");
        let mut out = r.into_bytes();
        out.extend_from_slice(body);
        out
    };
    let redirect = |loc: &str| {
        format!("HTTP/1.1 302 Found\r\nlocation: {loc}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .into_bytes()
    };
    let response = match path.as_str() {
        "/.well-known/openid-configuration" => {
            let uri = disc.unwrap_or_else(|| format!("http://127.0.0.1:{}/jwks", addr.port()));
            let doc =
                json!({"issuer": format!("http://127.0.0.1:{}", addr.port()), "jwks_uri": uri});
            ok(doc.to_string().as_bytes(), None)
        }
        "/same-redirect" => redirect("/jwks"),
        "/jwks" => match mode {
            Mode::Serve => ok(&body, cc.as_deref()),
            Mode::Status(code) => format!(
                "HTTP/1.1 {code} Oops\r\ncontent-length: 5\r\nconnection: close\r\n\r\noops!"
            )
            .into_bytes(),
            Mode::Redirect(loc) => redirect(&loc),
            Mode::Huge { declared } => {
                let len = if declared {
                    format!("content-length: {HUGE_TOTAL}\r\n")
                } else {
                    String::new()
                };
                let head = format!("HTTP/1.1 200 OK\r\n{len}connection: close\r\n\r\n");
                stream.write_all(head.as_bytes()).await?;
                let chunk = vec![b' '; 64 << 10];
                let mut sent = 0u64;
                while sent < HUGE_TOTAL {
                    if stream.write_all(&chunk).await.is_err() {
                        break;
                    }
                    sent += chunk.len() as u64;
                }
                huge_sent.store(sent, Ordering::SeqCst);
                huge_done.store(true, Ordering::SeqCst);
                return Ok(());
            }
        },
        _ => b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_vec(),
    };
    stream.write_all(&response).await?;
    stream.shutdown().await
}

fn ec_key(kid: &str) -> Value {
    Jwk::generate("EC", None, Some(Curve::P256))
        .unwrap()
        .with_kid(kid)
        .to_value(false)
        .unwrap()
}

fn jwks(keys: &[&Value]) -> Vec<u8> {
    json!({ "keys": keys }).to_string().into_bytes()
}

fn kids(set: &JwkSet) -> Vec<String> {
    set.keys()
        .iter()
        .filter_map(|k| k.kid().map(str::to_owned))
        .collect()
}

fn ms(n: u64) -> HumanDuration {
    HumanDuration(Duration::from_millis(n))
}

/// Test settings: short, but long enough that nothing expires unless the test wants it.
fn settings() -> JwksSettings {
    JwksSettings {
        min_refresh: ms(60_000),
        max_refresh: ms(600_000),
        max_stale: ms(600_000),
        unknown_kid_cooldown: ms(60_000),
        timeout: ms(5_000),
        max_size: HumanSize(64 << 10),
        prefetch: true,
    }
}

fn cache() -> KeyCache {
    KeyCache::new(&prometheus::Registry::new()).unwrap()
}

#[tokio::test]
async fn first_fetch_then_cached() {
    let a = ec_key("a");
    let srv = JwksServer::start(jwks(&[&a])).await;
    let cache = cache();
    let src = cache.source(&srv.url("/jwks"), settings()).unwrap();
    assert!(src.current().is_none());
    assert!(!src.is_ready());
    assert_eq!(src.generation(), 0);
    let set = src.keys().await.unwrap();
    assert_eq!(kids(&set), ["a"]);
    assert_eq!(srv.hits("/jwks"), 1);
    assert_eq!(src.generation(), 1);
    assert!(src.is_ready() && cache.is_ready());
    // Cached: no second fetch, same Arc.
    let again = src.keys().await.unwrap();
    assert!(Arc::ptr_eq(&set, &again));
    assert!(Arc::ptr_eq(&set, &src.current().unwrap()));
    assert_eq!(srv.hits("/jwks"), 1);
    // The same URL is the same source.
    let same = cache.source(&srv.url("/jwks"), settings()).unwrap();
    assert!(Arc::ptr_eq(&src, &same));
    assert_eq!(cache.len(), 1);
}

#[tokio::test]
async fn cache_control_clamped_into_min_max() {
    let a = ec_key("a");
    let srv = JwksServer::start(jwks(&[&a])).await;
    let cache = cache();
    let s = JwksSettings {
        min_refresh: ms(10_000),
        max_refresh: ms(100_000),
        ..settings()
    };
    let src = cache.source(&srv.url("/jwks"), s).unwrap();
    let cases: [(Option<&str>, u64); 6] = [
        (None, 100),
        (Some("public, max-age=50"), 50),
        (Some("max-age=1"), 10),
        (Some("max-age=999999"), 100),
        (Some("no-store"), 10),
        (Some("max-age=nonsense"), 100),
    ];
    for (cc, secs) in cases {
        srv.set(|s| s.cache_control = cc.map(str::to_owned));
        src.refresh().await.unwrap();
        assert_eq!(src.ttl(), Some(Duration::from_secs(secs)), "{cc:?}");
        let next = src.next_refresh().unwrap();
        assert!(next > Instant::now(), "{cc:?}");
    }
    assert_eq!(srv.hits("/jwks"), cases.len());
    assert_eq!(src.generation(), 1, "same keys every time");
}

#[tokio::test]
async fn rotation_picked_up_by_unknown_kid_refresh() {
    let (a, b) = (ec_key("a"), ec_key("b"));
    let srv = JwksServer::start(jwks(&[&a])).await;
    let cache = cache();
    let src = cache.source(&srv.url("/jwks"), settings()).unwrap();
    assert_eq!(kids(&src.keys().await.unwrap()), ["a"]);
    srv.set(|s| s.body = jwks(&[&a, &b]));
    // Nothing refetches on its own while the set is fresh.
    assert_eq!(kids(&src.keys().await.unwrap()), ["a"]);
    let set = src.refresh_unknown_kid().await.unwrap();
    assert_eq!(kids(&set), ["a", "b"]);
    assert_eq!(src.generation(), 2);
    assert_eq!(kids(&src.current().unwrap()), ["a", "b"]);
    assert_eq!(srv.hits("/jwks"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kid_flood_costs_one_fetch_per_cooldown() {
    let (a, b) = (ec_key("a"), ec_key("b"));
    let srv = JwksServer::start(jwks(&[&a])).await;
    let registry = prometheus::Registry::new();
    let cache = KeyCache::new(&registry).unwrap();
    let src = cache.source(&srv.url("/jwks"), settings()).unwrap();
    src.keys().await.unwrap();
    assert_eq!(srv.hits("/jwks"), 1);
    // Rotate, and make the fetch slow enough that the whole flood arrives while it runs.
    srv.set(|s| {
        s.body = jwks(&[&a, &b]);
        s.delay = Duration::from_millis(200);
    });
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let src = src.clone();
        tasks.push(tokio::spawn(async move { src.refresh_unknown_kid().await }));
    }
    for t in tasks {
        let set = t.await.unwrap().unwrap();
        assert_eq!(kids(&set), ["a", "b"]);
    }
    assert_eq!(srv.hits("/jwks"), 2, "exactly one fetch for the flood");
    // Within the cooldown: answered from the cache, no fetch.
    srv.set(|s| s.delay = Duration::ZERO);
    for _ in 0..100 {
        src.refresh_unknown_kid().await.unwrap();
    }
    assert_eq!(srv.hits("/jwks"), 2);
    let label = src.label().to_owned();
    let fetch = cache
        .metrics
        .unknown_kid
        .with_label_values(&[label.as_str(), "fetch"])
        .get();
    assert_eq!(fetch, 1);
    // After the cooldown, one more.
    let short = JwksSettings {
        unknown_kid_cooldown: ms(1),
        ..settings()
    };
    cache.source(&srv.url("/jwks"), short).unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    src.refresh_unknown_kid().await.unwrap();
    assert_eq!(srv.hits("/jwks"), 3);
    assert!(!registry.gather().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cold_keys_share_one_fetch() {
    let a = ec_key("a");
    let srv = JwksServer::start(jwks(&[&a])).await;
    srv.set(|s| s.delay = Duration::from_millis(200));
    let cache = cache();
    let src = cache.source(&srv.url("/jwks"), settings()).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let src = src.clone();
        tasks.push(tokio::spawn(async move { src.keys().await }));
    }
    for t in tasks {
        assert_eq!(kids(&t.await.unwrap().unwrap()), ["a"]);
    }
    assert_eq!(srv.hits("/jwks"), 1);
}

/// On paused time: the refresh falls due exactly at `max_refresh`, and the retry after a failed
/// one after its backoff (1 s for a first failure).
#[tokio::test(start_paused = true)]
async fn stale_keys_served_when_refresh_fails() {
    let a = ec_key("a");
    let srv = JwksServer::start(jwks(&[&a])).await;
    let cache = cache();
    let s = JwksSettings {
        min_refresh: ms(20_000),
        max_refresh: ms(20_000),
        ..settings()
    };
    let src = cache.source(&srv.url("/jwks"), s).unwrap();
    cache.refresh_due().await;
    assert_eq!(srv.hits("/jwks"), 1);
    assert!(cache.is_ready());
    srv.set(|s| s.mode = Mode::Status(500));
    tokio::time::advance(Duration::from_millis(20_000)).await;
    cache.refresh_due().await;
    assert_eq!(srv.hits("/jwks"), 2, "refresh was due and attempted");
    assert_eq!(kids(&src.current().unwrap()), ["a"], "stale set served");
    assert_eq!(kids(&src.keys().await.unwrap()), ["a"]);
    let st = &cache.sources()[0];
    assert!(st.stale && st.usable && st.ready);
    assert_eq!(st.last_error.as_deref(), Some("jwks_unavailable"));
    assert_eq!(st.consecutive_failures, 1);
    // Recovery clears the error.
    srv.set(|s| s.mode = Mode::Serve);
    tokio::time::advance(Duration::from_millis(1_000)).await;
    cache.refresh_due().await;
    let st = &cache.sources()[0];
    assert_eq!(st.last_error, None);
    assert_eq!(src.generation(), 1);
}

/// On paused time: the set is served until `max_stale` past its refresh time, not one
/// millisecond longer.
#[tokio::test(start_paused = true)]
async fn fail_closed_past_max_stale() {
    let a = ec_key("a");
    let srv = JwksServer::start(jwks(&[&a])).await;
    let cache = cache();
    let s = JwksSettings {
        min_refresh: ms(10_000),
        max_refresh: ms(10_000),
        max_stale: ms(30_000),
        ..settings()
    };
    let src = cache.source(&srv.url("/jwks"), s).unwrap();
    src.keys().await.unwrap();
    srv.set(|s| s.mode = Mode::Status(503));
    tokio::time::advance(Duration::from_millis(39_999)).await;
    assert!(src.current().is_some(), "stale, within max_stale: served");
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(src.current().is_none(), "past max_stale: nothing served");
    assert!(!src.is_ready() && !cache.is_ready());
    let err = src.keys().await.unwrap_err();
    assert_eq!(err.code(), "jwks_unavailable");
    // The server was asked again (the failed fetch), and did not give keys.
    assert_eq!(srv.hits("/jwks"), 2);
}

#[tokio::test]
async fn failed_fetch_backs_off() {
    let srv = JwksServer::start(Vec::new()).await;
    srv.set(|s| s.mode = Mode::Status(500));
    let cache = cache();
    let src = cache.source(&srv.url("/jwks"), settings()).unwrap();
    assert_eq!(src.keys().await.unwrap_err().code(), "jwks_unavailable");
    for _ in 0..50 {
        assert_eq!(src.keys().await.unwrap_err().code(), "jwks_unavailable");
    }
    assert_eq!(srv.hits("/jwks"), 1, "no fetch storm while backing off");
    cache.refresh_due().await;
    assert_eq!(srv.hits("/jwks"), 1, "retry not due yet");
}

#[tokio::test]
async fn slow_source_times_out() {
    let a = ec_key("a");
    let srv = JwksServer::start(jwks(&[&a])).await;
    srv.set(|s| s.delay = Duration::from_secs(30));
    let cache = cache();
    let s = JwksSettings {
        timeout: ms(100),
        ..settings()
    };
    let src = cache.source(&srv.url("/jwks"), s).unwrap();
    let err = tokio::time::timeout(Duration::from_secs(20), src.keys())
        .await
        .expect("the source timeout bounds the call")
        .unwrap_err();
    assert_eq!(err, KeyError::Timeout);
    assert_eq!(err.code(), "jwks_timeout");
}

#[tokio::test]
async fn huge_body_refused_without_reading_it_all() {
    let srv = JwksServer::start(Vec::new()).await;
    let cache = cache();
    let s = JwksSettings {
        max_size: HumanSize(16 << 10),
        ..settings()
    };
    // Declared: refused on the header.
    srv.set(|s| s.mode = Mode::Huge { declared: true });
    let src = cache.source(&srv.url("/jwks?declared"), s).unwrap();
    assert_eq!(src.keys().await.unwrap_err(), KeyError::TooLarge);
    // Undeclared (close-delimited): refused while streaming.
    srv.set(|s| s.mode = Mode::Huge { declared: false });
    srv.huge_done.store(false, Ordering::SeqCst);
    let src = cache.source(&srv.url("/jwks"), s).unwrap();
    let err = src.keys().await.unwrap_err();
    assert_eq!(err, KeyError::TooLarge);
    assert_eq!(err.code(), "jwks_too_large");
    for _ in 0..1000 {
        if srv.huge_done.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(srv.huge_done.load(Ordering::SeqCst));
    assert!(
        srv.huge_sent.load(Ordering::SeqCst) < HUGE_TOTAL,
        "the client hung up before the end"
    );
}

#[tokio::test]
async fn redirects_only_to_the_same_origin() {
    let a = ec_key("a");
    let srv = JwksServer::start(jwks(&[&a])).await;
    let other = JwksServer::start(jwks(&[&a])).await;
    let cache = cache();
    // Same origin: followed.
    let src = cache
        .source(&srv.url("/same-redirect"), settings())
        .unwrap();
    assert_eq!(kids(&src.keys().await.unwrap()), ["a"]);
    assert_eq!(srv.hits("/jwks"), 1);
    // Another port, another host name, another scheme: refused, never contacted.
    for loc in [
        other.url("/jwks"),
        format!("http://localhost:{}/jwks", srv.addr.port()),
        format!("https://127.0.0.1:{}/jwks", srv.addr.port()),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
    ] {
        srv.set(|s| s.mode = Mode::Redirect(loc.clone()));
        let src = cache
            .source(&srv.url(&format!("/jwks?{}", cache.len())), settings())
            .unwrap();
        assert_eq!(
            src.keys().await.unwrap_err(),
            KeyError::RedirectRefused,
            "{loc}"
        );
    }
    assert_eq!(other.hits("/jwks"), 0);
    // A redirect loop on the same origin stops after 3 hops.
    srv.set(|s| s.mode = Mode::Redirect("/jwks".into()));
    let before = srv.hits("/jwks");
    let src = cache.source(&srv.url("/jwks?loop"), settings()).unwrap();
    assert_eq!(src.keys().await.unwrap_err(), KeyError::RedirectRefused);
    assert_eq!(srv.hits("/jwks") - before, 4);
}

#[tokio::test]
async fn flush_drops_keys_and_next_use_refetches() {
    let a = ec_key("a");
    let srv = JwksServer::start(jwks(&[&a])).await;
    let cache = cache();
    let url = srv.url("/jwks");
    let src = cache.source(&url, settings()).unwrap();
    src.keys().await.unwrap();
    assert_eq!(cache.flush(Some("http://nope/")), 0);
    assert_eq!(cache.flush(Some(&url)), 1);
    assert!(src.current().is_none());
    // By label too (what /admin/status shows; a query string is never shown).
    assert_eq!(cache.flush(Some(src.label())), 1);
    assert_eq!(src.generation(), 3, "flush invalidates verified tokens");
    src.keys().await.unwrap();
    assert_eq!(srv.hits("/jwks"), 2);
    assert_eq!(src.generation(), 3, "same content after the refetch");
    assert_eq!(cache.flush(None), 1);
    cache.refresh_due().await;
    assert_eq!(
        srv.hits("/jwks"),
        3,
        "a prefetched source is refetched in the background"
    );
    assert!(src.current().is_some());
}

#[tokio::test(start_paused = true)]
async fn capacity_is_bounded_with_lru_eviction() {
    let registry = prometheus::Registry::new();
    let cache = KeyCache::with_options(
        &registry,
        KeyCacheOptions {
            capacity: 2,
            tls: None,
            offline: None,
        },
    )
    .unwrap();
    let url = |p: &str| format!("http://127.0.0.1:9{p}");
    drop(cache.source(&url("/a"), settings()).unwrap());
    drop(cache.source(&url("/b"), settings()).unwrap());
    tokio::time::advance(Duration::from_millis(5)).await;
    drop(cache.source(&url("/a"), settings()).unwrap()); // a is now more recent than b
    drop(cache.source(&url("/c"), settings()).unwrap());
    let labels: Vec<String> = cache.sources().into_iter().map(|s| s.source).collect();
    assert_eq!(labels, ["127.0.0.1:9/a", "127.0.0.1:9/c"]);
    // Sources held elsewhere (compiled policies) are never evicted.
    let held_a = cache.source(&url("/a"), settings()).unwrap();
    let held_c = cache.source(&url("/c"), settings()).unwrap();
    assert_eq!(
        cache.source(&url("/d"), settings()).unwrap_err(),
        KeyError::TooManySources
    );
    drop(held_c);
    cache.source(&url("/d"), settings()).unwrap();
    assert_eq!(cache.len(), 2);
    assert!(cache.sources().iter().any(|s| s.source == held_a.label()));
    assert_eq!(cache.metrics.sources.get(), 2);
}

#[tokio::test]
async fn discovery_document_leads_to_jwks_uri() {
    let a = ec_key("a");
    let srv = JwksServer::start(jwks(&[&a])).await;
    let cache = cache();
    let src = cache
        .discovery(&srv.url("/.well-known/openid-configuration"), settings())
        .unwrap();
    assert_eq!(kids(&src.keys().await.unwrap()), ["a"]);
    assert_eq!(srv.hits("/.well-known/openid-configuration"), 1);
    assert_eq!(srv.hits("/jwks"), 1);
    assert_eq!(cache.sources()[0].kind, "discovery");
    // A discovery source is distinct from a JWKS source.
    assert_eq!(
        cache.flush(Some(&srv.url("/.well-known/openid-configuration"))),
        1
    );
    // jwks_uri to plain http on a non-loopback host, or not a URL: refused, nothing fetched.
    for uri in ["http://idp.example/jwks", "file:///etc/passwd"] {
        let doc_srv = JwksServer::start(jwks(&[&a])).await;
        doc_srv.set(|s| s.discovery_jwks_uri = Some(uri.to_owned()));
        let src = cache
            .discovery(
                &doc_srv.url("/.well-known/openid-configuration"),
                settings(),
            )
            .unwrap();
        assert_eq!(
            src.keys().await.unwrap_err(),
            KeyError::DiscoveryInvalid("jwks_uri refused"),
            "{uri}"
        );
        assert_eq!(doc_srv.hits("/jwks"), 0);
    }
    // A document without jwks_uri (served at /jwks here).
    let doc_srv = JwksServer::start(br#"{"issuer":"x"}"#.to_vec()).await;
    let src = cache.discovery(&doc_srv.url("/jwks"), settings()).unwrap();
    assert_eq!(
        src.keys().await.unwrap_err(),
        KeyError::DiscoveryInvalid("no jwks_uri")
    );
}

#[tokio::test]
async fn generation_bumps_only_when_content_changes() {
    let (a, b) = (ec_key("a"), ec_key("b"));
    let srv = JwksServer::start(jwks(&[&a])).await;
    let cache = cache();
    let src = cache.source(&srv.url("/jwks"), settings()).unwrap();
    src.keys().await.unwrap();
    assert_eq!(src.generation(), 1);
    src.refresh().await.unwrap();
    assert_eq!(src.generation(), 1);
    // Same keys, other formatting and member order, plus an unusable key: same content.
    let pretty = serde_json::to_vec_pretty(&json!({
        "keys": [a.clone(), {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "kid": "bad"}],
        "extra": true
    }))
    .unwrap();
    srv.set(|s| s.body = pretty);
    src.refresh().await.unwrap();
    assert_eq!(src.generation(), 1);
    srv.set(|s| s.body = jwks(&[&a, &b]));
    src.refresh().await.unwrap();
    assert_eq!(src.generation(), 2);
    srv.set(|s| s.body = jwks(&[&b]));
    src.refresh().await.unwrap();
    assert_eq!(src.generation(), 3);
    assert_eq!(kids(&src.current().unwrap()), ["b"]);
}

#[tokio::test]
async fn invalid_sets_refused_and_good_set_kept() {
    let a = ec_key("a");
    let srv = JwksServer::start(jwks(&[&a])).await;
    let cache = cache();
    let src = cache.source(&srv.url("/jwks"), settings()).unwrap();
    src.keys().await.unwrap();
    let secret = json!({"kty": "oct", "k": crate::jose::b64_encode(&[7u8; 32]), "kid": "s"});
    let dup = jwks(&[&a, &a]);
    let many: Vec<Value> = (0..=MAX_KEYS).map(|i| ec_key(&i.to_string())).collect();
    let many_refs: Vec<&Value> = many.iter().collect();
    for body in [
        b"not json".to_vec(),
        br#"{"keys":[]}"#.to_vec(),
        br#"{"keys":{}}"#.to_vec(),
        jwks(&[&secret]),
        dup,
        jwks(&many_refs),
    ] {
        srv.set(|s| s.body = body);
        assert_eq!(src.refresh().await.unwrap_err().code(), "jwks_invalid");
        assert_eq!(kids(&src.current().unwrap()), ["a"], "good set kept");
    }
    assert_eq!(src.generation(), 1);
}

#[tokio::test]
async fn private_members_are_dropped() {
    let k = Jwk::generate("EC", None, Some(Curve::P256))
        .unwrap()
        .with_kid("p")
        .to_value(true)
        .unwrap();
    assert!(k.get("d").is_some());
    let srv = JwksServer::start(jwks(&[&k])).await;
    let cache = cache();
    let src = cache.source(&srv.url("/jwks"), settings()).unwrap();
    let set = src.keys().await.unwrap();
    assert_eq!(kids(&set), ["p"]);
    assert!(set.keys().iter().all(|k| !k.is_private()));
}

#[tokio::test]
async fn signing_source_keeps_private_members_apart_from_the_public_source() {
    let k = Jwk::generate("EC", None, Some(Curve::P256))
        .unwrap()
        .with_kid("s")
        .to_value(true)
        .unwrap();
    let srv = JwksServer::start(jwks(&[&k])).await;
    let cache = cache();
    let url = srv.url("/jwks");
    let signing = cache.signing_source(&url, settings()).unwrap();
    let public = cache.source(&url, settings()).unwrap();
    assert!(!Arc::ptr_eq(&signing, &public));
    let set = signing.keys().await.unwrap();
    assert!(set.keys().iter().all(Jwk::is_private));
    let set = public.keys().await.unwrap();
    assert!(set.keys().iter().all(|k| !k.is_private()));
    assert_eq!(signing.status().kind, "signing_jwks");
}

#[tokio::test]
async fn signing_source_still_refuses_secrets() {
    let oct = Jwk::generate("oct", Some(256), None)
        .unwrap()
        .with_kid("hs")
        .to_value(true)
        .unwrap();
    let srv = JwksServer::start(jwks(&[&oct])).await;
    let cache = cache();
    let src = cache.signing_source(&srv.url("/jwks"), settings()).unwrap();
    assert!(src.keys().await.is_err());
}

#[tokio::test]
async fn refresh_due_prefetches_only_prefetch_sources() {
    let a = ec_key("a");
    let srv = JwksServer::start(jwks(&[&a])).await;
    let cache = cache();
    let eager = cache.source(&srv.url("/jwks?eager"), settings()).unwrap();
    let lazy_settings = JwksSettings {
        prefetch: false,
        ..settings()
    };
    let lazy = cache.source(&srv.url("/jwks?lazy"), lazy_settings).unwrap();
    assert!(!cache.is_ready());
    assert!(lazy.is_ready(), "a lazy source does not hold readiness");
    cache.refresh_due().await;
    assert_eq!(srv.hits("/jwks"), 1);
    assert!(eager.current().is_some() && lazy.current().is_none());
    assert!(cache.is_ready());
    cache.refresh_due().await;
    assert_eq!(srv.hits("/jwks"), 1, "nothing due");
    lazy.keys().await.unwrap();
    assert_eq!(srv.hits("/jwks"), 2);
}

#[tokio::test]
async fn settings_updated_on_reload() {
    let cache = cache();
    let url = "https://idp.example/jwks";
    let src = cache.source(url, settings()).unwrap();
    let s2 = JwksSettings {
        max_stale: ms(1),
        ..settings()
    };
    let again = cache.source(url, s2).unwrap();
    assert!(Arc::ptr_eq(&src, &again));
    assert_eq!(src.settings(), s2);
}

#[tokio::test]
async fn metrics_label_has_no_query() {
    let a = ec_key("a");
    let srv = JwksServer::start(jwks(&[&a])).await;
    let registry = prometheus::Registry::new();
    let cache = KeyCache::new(&registry).unwrap();
    let src = cache
        .source(&srv.url("/jwks?client_secret=hunter2"), settings())
        .unwrap();
    src.keys().await.unwrap();
    srv.set(|s| s.mode = Mode::Status(500));
    assert_eq!(src.refresh().await.unwrap_err().code(), "jwks_unavailable");
    assert!(src.keys().await.is_ok(), "stale keys still served");
    cache.refresh_due().await;
    let text = format!("{:?}", registry.gather());
    assert!(!text.contains("hunter2"));
    let label = format!("127.0.0.1:{}/jwks", srv.addr.port());
    assert_eq!(src.label(), label);
    let m = &cache.metrics;
    assert_eq!(m.fetches.with_label_values(&[&label, "ok"]).get(), 1);
    assert_eq!(
        m.fetches
            .with_label_values(&[&label, "jwks_unavailable"])
            .get(),
        1
    );
    assert_eq!(m.keys.with_label_values(&[&label]).get(), 1);
    assert_eq!(m.usable.with_label_values(&[&label]).get(), 1);
    assert!(m.age.with_label_values(&[&label]).get() >= 0.0);
    let st = serde_json::to_value(cache.sources()).unwrap();
    assert!(!st.to_string().contains("hunter2"));
}

#[tokio::test]
async fn urls_refused_before_any_network() {
    let cache = cache();
    for bad in [
        "http://idp.example/jwks",
        "https://user:pw@idp.example/jwks",
        "http://169.254.169.254/latest/meta-data/",
        "file:///etc/passwd",
        "https://idp.example/jwks#x",
        "not a url",
    ] {
        assert_eq!(
            cache.source(bad, settings()).unwrap_err().code(),
            "jwks_url_invalid",
            "{bad}"
        );
    }
    assert!(cache.is_empty());
}

#[test]
fn settings_from_config() {
    let s: JwksSettings = serde_json::from_value(json!({
        "min_refresh": "250ms", "max_refresh": "2h", "max_stale": 60,
        "unknown_kid_cooldown": "10s", "timeout": "2s", "max_size": "1MiB", "prefetch": false
    }))
    .unwrap();
    assert_eq!(s.min_refresh.0, Duration::from_millis(250));
    assert_eq!(s.max_refresh.0, Duration::from_secs(7200));
    assert_eq!(s.max_stale.0, Duration::from_secs(60));
    assert_eq!(s.max_size.0, 1 << 20);
    assert!(!s.prefetch);
    assert!(s.validate().is_ok());
    let d: JwksSettings = serde_json::from_value(json!({})).unwrap();
    assert_eq!(d, JwksSettings::default());
    assert_eq!(d.max_size.0, 512 << 10);
    assert!(serde_json::from_value::<JwksSettings>(json!({"ttl": "1m"})).is_err());
    let bad = |f: fn(&mut JwksSettings)| {
        let mut s = JwksSettings::default();
        f(&mut s);
        s.validate().is_err()
    };
    assert!(bad(|s| s.min_refresh = ms(0)));
    assert!(bad(|s| s.max_refresh = ms(1)));
    assert!(bad(|s| s.timeout = ms(0)));
    assert!(bad(|s| s.max_size = HumanSize(MAX_SIZE_LIMIT + 1)));
    // Backoff: 1s doubling, capped at min_refresh.
    let s = JwksSettings::default();
    assert_eq!(s.retry_backoff(1), Duration::from_secs(1));
    assert_eq!(s.retry_backoff(3), Duration::from_secs(4));
    assert_eq!(s.retry_backoff(99), Duration::from_secs(60));
}

/// A CA and a leaf certificate for `localhost` / 127.0.0.1, made with the `openssl` CLI
/// (None when it is not installed). Returns (CA DER, leaf DER, leaf PKCS#8 DER).
fn test_pki() -> Option<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    use std::process::Command;
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tokengate-keys-pki-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let steps: [&[&str]; 5] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "1",
            "-subj",
            "/CN=tokengate test CA",
        ],
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=localhost",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.der",
            "-outform",
            "DER",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
        ],
        &["x509", "-in", "ca.pem", "-outform", "DER", "-out", "ca.der"],
        &[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            "leaf.key",
            "-outform",
            "DER",
            "-out",
            "leaf.key.der",
        ],
    ];
    for args in steps {
        let ok = Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !ok {
            eprintln!("openssl unavailable or failed ({args:?}): HTTPS test skipped");
            return None;
        }
    }
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let out = (read("ca.der"), read("leaf.der"), read("leaf.key.der"));
    let _ = std::fs::remove_dir_all(&dir);
    Some(out)
}

#[tokio::test]
async fn https_source_with_aws_lc_rs() {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let Some((ca, leaf, key)) = test_pki() else {
        return;
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server_cfg = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        )
        .unwrap();
    let a = ec_key("a");
    let srv = JwksServer::start_with(jwks(&[&a]), Some(Arc::new(server_cfg))).await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(ca)).unwrap();
    let client_cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let cache = KeyCache::with_options(
        &prometheus::Registry::new(),
        KeyCacheOptions {
            capacity: 8,
            tls: Some(Arc::new(client_cfg)),
            offline: None,
        },
    )
    .unwrap();
    let port = srv.addr.port();
    for host in ["localhost", "127.0.0.1"] {
        let src = cache
            .source(&format!("https://{host}:{port}/jwks"), settings())
            .unwrap();
        assert_eq!(kids(&src.keys().await.unwrap()), ["a"], "{host}");
    }
    assert_eq!(srv.hits("/jwks"), 2);
    // The default client trusts the system roots only: the test CA is refused.
    let default = KeyCache::new(&prometheus::Registry::new()).unwrap();
    let src = default
        .source(&format!("https://localhost:{port}/jwks"), settings())
        .unwrap();
    assert_eq!(
        src.keys().await.unwrap_err(),
        KeyError::Unavailable("TLS handshake failed")
    );
    assert_eq!(srv.hits("/jwks"), 2);
}

async fn wait_hits(srv: &JwksServer, path: &str, n: usize) {
    for _ in 0..2000 {
        if srv.hits(path) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("server never got {n} requests on {path}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kid_does_not_settle_for_a_fetch_that_started_before_it() {
    let (a, b) = (ec_key("a"), ec_key("b"));
    let srv = JwksServer::start(jwks(&[&a])).await;
    let cache = cache();
    let src = cache.source(&srv.url("/jwks"), settings()).unwrap();
    srv.set(|s| s.delay = Duration::from_millis(300));
    // A background refresh is answered with set A, slowly...
    let bg = tokio::spawn({
        let src = src.clone();
        async move { src.refresh().await }
    });
    wait_hits(&srv, "/jwks", 1).await;
    // ...while the provider publishes b and a token signed with b arrives.
    srv.set(|s| {
        s.body = jwks(&[&a, &b]);
        s.delay = Duration::ZERO;
    });
    let set = src.refresh_unknown_kid().await.unwrap();
    assert_eq!(kids(&set), ["a", "b"]);
    assert_eq!(kids(&bg.await.unwrap().unwrap()), ["a"]);
    assert_eq!(srv.hits("/jwks"), 2);
}

#[tokio::test]
async fn cancelled_fetch_is_redone_by_the_next_caller() {
    let a = ec_key("a");
    let srv = JwksServer::start(jwks(&[&a])).await;
    srv.set(|s| s.delay = Duration::from_millis(200));
    let cache = cache();
    let src = cache.source(&srv.url("/jwks"), settings()).unwrap();
    // The caller gives up (client disconnect) before the fetch ends.
    let gave_up = tokio::time::timeout(Duration::from_millis(20), src.keys()).await;
    assert!(gave_up.is_err());
    assert!(src.current().is_none());
    srv.set(|s| s.delay = Duration::ZERO);
    assert_eq!(kids(&src.keys().await.unwrap()), ["a"]);
}

#[test]
fn types_and_futures_are_send() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>(_: T) {}
    send_sync::<KeyCache>();
    send_sync::<RemoteJwks>();
    send_sync::<KeyError>();
    let cache = cache();
    let src = cache
        .source("https://idp.example/jwks", settings())
        .unwrap();
    // Pingora's phases need Send futures; these are built, never polled.
    send(src.keys());
    send(src.refresh_unknown_kid());
    send(src.refresh());
    send(cache.refresh_due());
}
