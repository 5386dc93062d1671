//! A deliberately small HTTP(S)/1.1 GET for key sources: one connection per fetch (fetches
//! are rare: at most one per `min_refresh` or cooldown per source), rustls on the process's
//! crypto provider (aws-lc-rs), a streaming body cap, same-origin redirects only.
//!
//! The caller wraps the whole exchange in the source's `timeout`.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, CACHE_CONTROL, CONNECTION, CONTENT_LENGTH, HOST, LOCATION, USER_AGENT};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

use super::KeyError;

/// Longest accepted source URL.
pub(crate) const MAX_URL_LEN: usize = 2048;
/// Same-origin redirects followed before giving up.
pub(crate) const MAX_REDIRECTS: usize = 3;
const USER_AGENT_VALUE: &str = concat!("tokengate/", env!("CARGO_PKG_VERSION"));

/// A parsed, checked source URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub https: bool,
    /// Lower-cased host, IPv6 without brackets.
    pub host: String,
    pub port: u16,
    /// `host[:port]` as sent in the Host header.
    pub authority: String,
    /// Origin-form request target (`/path?query`).
    pub path_and_query: String,
    /// `authority` + path, never the query (may hold secrets): metrics and logs.
    pub label: String,
}

impl Target {
    fn same_origin(&self, other: &Target) -> bool {
        self.https == other.https && self.host == other.host && self.port == other.port
    }
}

/// True for `localhost` and loopback IP literals.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// Parses and checks a source URL: `https://`, or `http://` to a loopback host only; no
/// userinfo, no fragment, at most [`MAX_URL_LEN`] bytes.
pub(crate) fn parse_url(url: &str) -> Result<Target, KeyError> {
    if url.len() > MAX_URL_LEN {
        return Err(KeyError::UrlInvalid("too long"));
    }
    if url.contains('#') {
        return Err(KeyError::UrlInvalid("fragment"));
    }
    let uri: Uri = url.parse().map_err(|_| KeyError::UrlInvalid("syntax"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(KeyError::UrlInvalid("scheme must be https")),
    };
    let auth = uri.authority().ok_or(KeyError::UrlInvalid("no host"))?;
    if auth.as_str().contains('@') {
        return Err(KeyError::UrlInvalid("userinfo"));
    }
    let host = auth
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    if host.is_empty() {
        return Err(KeyError::UrlInvalid("no host"));
    }
    let port = match auth.port_u16() {
        Some(0) => return Err(KeyError::UrlInvalid("port")),
        Some(p) => p,
        None if https => 443,
        None => 80,
    };
    if !https && !is_loopback_host(&host) {
        return Err(KeyError::UrlInvalid(
            "plain http is only allowed to a loopback host",
        ));
    }
    let path_and_query = match uri.path_and_query().map(|p| p.as_str()) {
        Some(p) if p.starts_with('/') => p.to_owned(),
        Some(p) if !p.is_empty() => format!("/{p}"),
        _ => "/".to_owned(),
    };
    let authority = auth.as_str().to_ascii_lowercase();
    let path = match uri.path() {
        "" => "/",
        p => p,
    };
    Ok(Target {
        https,
        label: format!("{authority}{path}"),
        host,
        port,
        authority,
        path_and_query,
    })
}

/// Resolves a `Location` against `base`; only the same scheme, host and port are followed.
fn resolve_redirect(base: &Target, location: &str) -> Result<Target, KeyError> {
    if location.starts_with('/') && !location.starts_with("//") {
        let url = format!(
            "{}://{}{}",
            if base.https { "https" } else { "http" },
            base.authority,
            location
        );
        let t = parse_url(&url).map_err(|_| KeyError::RedirectRefused)?;
        return Ok(t);
    }
    let t = parse_url(location).map_err(|_| KeyError::RedirectRefused)?;
    if t.same_origin(base) {
        Ok(t)
    } else {
        Err(KeyError::RedirectRefused)
    }
}

/// Addresses never connected to, whatever DNS says: unspecified, multicast, broadcast,
/// link-local (169.254.0.0/16 and fe80::/10 hold cloud metadata services) and AWS's IPv6
/// metadata address.
pub(crate) fn forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_unspecified() || v4.is_link_local() || v4.is_broadcast() || v4.is_multicast()
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_ip(IpAddr::V4(v4));
            }
            let [s0, ..] = v6.segments();
            v6.is_unspecified()
                || v6.is_multicast()
                || (s0 & 0xffc0) == 0xfe80
                || v6.segments() == [0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x254]
        }
    }
}

/// A successful response.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub body: Vec<u8>,
    /// From `Cache-Control`: `max-age`, or zero for `no-cache` / `no-store`.
    pub max_age: Option<Duration>,
}

enum Outcome {
    Body(Fetched),
    Redirect(String),
}

/// Parses the freshness directives of a Cache-Control value.
pub(crate) fn cache_max_age(value: &str) -> Option<Duration> {
    let mut max_age = None;
    for directive in value.split(',') {
        let d = directive.trim();
        let (name, arg) = match d.split_once('=') {
            Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
            None => (d, None),
        };
        if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
            return Some(Duration::ZERO);
        }
        if name.eq_ignore_ascii_case("max-age") && max_age.is_none() {
            max_age = arg
                .and_then(|a| a.parse::<u64>().ok())
                .map(Duration::from_secs);
        }
    }
    max_age
}

/// Aborts the connection driver when the exchange ends or is cancelled.
pub(crate) struct AbortOnDrop<T>(pub JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The HTTP client shared by every source of one [`super::KeyCache`].
pub(crate) struct HttpClient {
    tls_config: Option<Arc<rustls::ClientConfig>>,
    default_tls: OnceLock<Option<TlsConnector>>,
    offline: Option<Arc<super::OfflineKeys>>,
}

impl HttpClient {
    /// `tls_config`: None builds one on first HTTPS use from the process's default crypto
    /// provider (aws-lc-rs when none is installed) and the system's root certificates.
    /// `offline`: every GET is answered from it, never from the network.
    pub fn new(
        tls_config: Option<Arc<rustls::ClientConfig>>,
        offline: Option<Arc<super::OfflineKeys>>,
    ) -> HttpClient {
        HttpClient {
            tls_config,
            default_tls: OnceLock::new(),
            offline,
        }
    }

    fn connector(&self) -> Result<TlsConnector, KeyError> {
        if let Some(cfg) = &self.tls_config {
            return Ok(TlsConnector::from(cfg.clone()));
        }
        self.default_tls
            .get_or_init(default_connector)
            .clone()
            .ok_or(KeyError::Unavailable("no TLS configuration"))
    }

    /// GET `target`, following at most [`MAX_REDIRECTS`] same-origin redirects.
    pub async fn get(&self, target: &Target, max_size: u64) -> Result<Fetched, KeyError> {
        if let Some(o) = &self.offline {
            return o.get(target).map(|body| Fetched {
                body,
                max_age: None,
            });
        }
        let mut current = target.clone();
        for _ in 0..=MAX_REDIRECTS {
            match self.get_once(&current, max_size).await? {
                Outcome::Body(f) => return Ok(f),
                Outcome::Redirect(loc) => current = resolve_redirect(&current, &loc)?,
            }
        }
        Err(KeyError::RedirectRefused)
    }

    async fn get_once(&self, t: &Target, max_size: u64) -> Result<Outcome, KeyError> {
        let req = Request::get(t.path_and_query.as_str())
            .header(HOST, t.authority.as_str())
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, USER_AGENT_VALUE)
            .header(CONNECTION, "close")
            .body(Empty::<Bytes>::new())
            .map_err(|_| KeyError::UrlInvalid("request"))?;
        let tcp = connect(t).await?;
        if t.https {
            let name = ServerName::try_from(t.host.clone())
                .map_err(|_| KeyError::UrlInvalid("host is not a valid TLS server name"))?;
            let tls = self.connector()?.connect(name, tcp).await.map_err(|e| {
                log::debug!("jwks {}: TLS handshake failed: {e}", t.label);
                KeyError::Unavailable("TLS handshake failed")
            })?;
            exchange(TokioIo::new(tls), req, max_size, &t.label).await
        } else {
            exchange(TokioIo::new(tcp), req, max_size, &t.label).await
        }
    }
}

fn default_connector() -> Option<TlsConnector> {
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let mut roots = rustls::RootCertStore::empty();
    match rustls_native_certs::load_native_certs() {
        Ok(certs) => {
            let (added, ignored) = roots.add_parsable_certificates(certs);
            log::debug!("jwks client: {added} system root certificates ({ignored} ignored)");
        }
        Err(e) => log::warn!("jwks client: cannot load system root certificates: {e}"),
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| log::error!("jwks client: TLS configuration failed: {e}"))
        .ok()?;
    let mut cfg = builder.with_root_certificates(roots).with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Some(TlsConnector::from(Arc::new(cfg)))
}

async fn connect(t: &Target) -> Result<TcpStream, KeyError> {
    let addrs = tokio::net::lookup_host((t.host.as_str(), t.port))
        .await
        .map_err(|_| KeyError::Unavailable("DNS resolution failed"))?;
    let mut err = KeyError::Unavailable("DNS returned no address");
    for addr in addrs {
        if forbidden_ip(addr.ip()) {
            err = KeyError::Unavailable("address refused");
            continue;
        }
        match TcpStream::connect(addr).await {
            Ok(s) => {
                // Small request, one response: latency matters more than batching.
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => {
                log::debug!("jwks {}: connect to {addr} failed: {e}", t.label);
                err = KeyError::Unavailable("connect failed");
            }
        }
    }
    Err(err)
}

async fn exchange<I>(
    io: I,
    req: Request<Empty<Bytes>>,
    max_size: u64,
    label: &str,
) -> Result<Outcome, KeyError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|_| KeyError::Unavailable("HTTP handshake failed"))?;
    let _driver = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let resp = sender.send_request(req).await.map_err(|e| {
        log::debug!("jwks {label}: request failed: {e}");
        KeyError::Unavailable("request failed")
    })?;
    let status = resp.status();
    if status.is_redirection() {
        return match resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()) {
            Some(loc) => Ok(Outcome::Redirect(loc.to_owned())),
            None => Err(KeyError::RedirectRefused),
        };
    }
    if status != StatusCode::OK {
        log::debug!("jwks {label}: HTTP status {status}");
        return Err(KeyError::Unavailable("HTTP status is not 200"));
    }
    let declared = resp
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_size) {
        return Err(KeyError::TooLarge);
    }
    let cc: Vec<&str> = resp
        .headers()
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let max_age = cache_max_age(&cc.join(","));
    let cap = usize::try_from(max_size).unwrap_or(usize::MAX);
    let mut body = Vec::with_capacity(
        declared
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0)
            .min(cap),
    );
    let mut stream = resp.into_body();
    while let Some(frame) = stream.frame().await {
        let frame = frame.map_err(|_| KeyError::Unavailable("response body interrupted"))?;
        if let Ok(data) = frame.into_data() {
            if body.len().saturating_add(data.len()) > cap {
                return Err(KeyError::TooLarge);
            }
            body.extend_from_slice(&data);
        }
    }
    Ok(Outcome::Body(Fetched { body, max_age }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = parse_url("https://IdP.example.com/a/jwks?secret=1").unwrap();
        assert!(t.https);
        assert_eq!(t.host, "idp.example.com");
        assert_eq!(t.port, 443);
        assert_eq!(t.path_and_query, "/a/jwks?secret=1");
        assert_eq!(t.label, "idp.example.com/a/jwks");
        let t = parse_url("http://127.0.0.1:8080").unwrap();
        assert_eq!((t.port, t.path_and_query.as_str()), (8080, "/"));
        let t = parse_url("http://[::1]:9/x").unwrap();
        assert_eq!(t.host, "::1");
        for bad in [
            "http://idp.example.com/jwks",
            "http://169.254.169.254/latest/meta-data/",
            "https://trusted@evil.example/jwks",
            "file:///etc/passwd",
            "ftp://x/y",
            "https://x/y#frag",
            "https://x:0/",
            "/relative",
            "https://x/a\r\nb",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        assert!(parse_url(&format!("https://x/{}", "a".repeat(MAX_URL_LEN))).is_err());
    }

    #[test]
    fn redirects() {
        let base = parse_url("https://idp.example/jwks").unwrap();
        assert_eq!(
            resolve_redirect(&base, "/v2/jwks").unwrap().path_and_query,
            "/v2/jwks"
        );
        assert!(resolve_redirect(&base, "https://idp.example/k").is_ok());
        for bad in [
            "https://evil.example/jwks",
            "//evil.example/jwks",
            "http://idp.example/jwks",
            "https://idp.example:8443/jwks",
            "relative",
        ] {
            assert_eq!(
                resolve_redirect(&base, bad),
                Err(KeyError::RedirectRefused),
                "{bad}"
            );
        }
    }

    #[test]
    fn ips() {
        for bad in [
            "169.254.169.254",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "fe80::1",
            "::",
            "::ffff:169.254.169.254",
            "fd00:ec2::254",
        ] {
            assert!(forbidden_ip(bad.parse().unwrap()), "{bad}");
        }
        for ok in ["127.0.0.1", "10.0.0.1", "::1", "2001:db8::1"] {
            assert!(!forbidden_ip(ok.parse().unwrap()), "{ok}");
        }
    }

    #[test]
    fn cache_control() {
        let s = Duration::from_secs;
        assert_eq!(cache_max_age("public, max-age=300"), Some(s(300)));
        assert_eq!(cache_max_age("max-age=\"60\""), Some(s(60)));
        assert_eq!(cache_max_age("no-cache"), Some(Duration::ZERO));
        assert_eq!(cache_max_age("max-age=60, no-store"), Some(Duration::ZERO));
        assert_eq!(cache_max_age("max-age=abc"), None);
        assert_eq!(cache_max_age(""), None);
    }
}
