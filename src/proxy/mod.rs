//! The data plane: `impl ProxyHttp`. Each hook is thin and says when it runs, what it may
//! change, and what its return means; the work lives in the router, the policies and
//! `respond.rs`.
//!
//! Phase chart (Pingora hook -> what tokengate does there):
//! 1. `new_ctx`: load the current snapshot ONCE; every later phase sees this generation.
//! 2. `request_filter`: the front door's canonical request (`front::admit`: method, path,
//!    Host, forwarding headers), client IP, request id, route match, the route's gateway-owned
//!    headers removed, request-phase policies, direct responses. Returns true when the gateway
//!    answered (no upstream is contacted). The HTTP/1 head was bounded before this
//!    (`front::head`).
//! 3. `upstream_peer`: pick a healthy target of the route's pool.
//! 4. `upstream_request_filter`: path rewrite, X-Forwarded-For, X-Request-Id, header policies.
//! 5. `response_filter`: response-phase policies (headers, CORS), X-Request-Id.
//! 6. `fail_to_proxy`: upstream failures (502/504/503) rendered by the one renderer.
//! 7. `logging`: metrics and the access log.

pub mod client_ip;

use crate::compile::{Action, Route, Snapshot};
use crate::error::GatewayError;
use crate::policy::{Flow, PolicyState};
use crate::reply::{render_error, Reply};
use crate::request::RequestView;
use crate::state::State;
use async_trait::async_trait;
use http::HeaderValue;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorSource, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// Per-request context.
pub struct Ctx {
    pub snap: Arc<Snapshot>,
    start: Instant,
    route: Option<usize>,
    client_ip: Option<IpAddr>,
    request_id: HeaderValue,
    policy: PolicyState,
    /// An error decided by the gateway (before or while choosing the upstream).
    pending: Option<GatewayError>,
    /// The policy whose error overrides apply to `pending`.
    pending_policy: Option<usize>,
    upstream: Option<pingora_core::protocols::l4::socket::SocketAddr>,
    error_code: Option<&'static str>,
    status: u16,
    /// The socket peer, and whether it is a trusted proxy (its forwarding headers and
    /// request id pass).
    peer: Option<IpAddr>,
    trusted_peer: bool,
    tls: bool,
}

impl Ctx {
    fn route(&self) -> Option<&Route> {
        self.route.and_then(|i| self.snap.routes.get(i))
    }

    /// The request as policies see it after the request phase.
    fn view<'a>(&'a self, req: &'a RequestHeader, route: &'a Route) -> RequestView<'a> {
        RequestView {
            req,
            client_ip: self.client_ip,
            route: &route.name,
            claims: self.policy.claims.as_deref(),
            identity: self.policy.identity.as_deref(),
            vars: self.policy.vars.as_deref(),
            body: self.policy.body.as_deref(),
            raw_body: self.policy.body_raw.as_deref(),
        }
    }
}

pub struct Gateway {
    pub state: Arc<State>,
}

/// A request id: a random per-process prefix and a counter (unique, cheap; not a secret).
/// The CSPRNG per request cost about 2.4k instructions (loadtest/README.md).
///
/// `server::run` draws the prefix before serving: a process without randomness stops there,
/// loudly, rather than issue ids that collide with another instance's (all-zero prefix).
pub(crate) fn new_request_id() -> HeaderValue {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        let mut b = [0u8; 8];
        if aws_lc_rs::rand::fill(&mut b).is_err() {
            log::error!("no random bytes from the system for the request-id prefix: aborting");
            eprintln!("tokengate: no random bytes from the system: aborting");
            std::process::abort();
        }
        u64::from_le_bytes(b)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    HeaderValue::from_str(&format!("{prefix:016x}{n:016x}"))
        .unwrap_or(HeaderValue::from_static("0"))
}

/// The most request body buffered for a policy (Pingora's retry buffer holds this much).
const MAX_BUFFERED_BODY: usize = 64 * 1024;

/// Read the whole request body (it is replayed to the upstream from Pingora's retry buffer)
/// and parse it as JSON when it is JSON.
async fn read_body(session: &mut Session, ctx: &mut Ctx) -> std::result::Result<(), GatewayError> {
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BUFFERED_BODY) {
        return Err(GatewayError::BodyTooLarge);
    }
    session.enable_retry_buffering();
    let mut buf = bytes::BytesMut::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if buf.len() + chunk.len() > MAX_BUFFERED_BODY {
                    return Err(GatewayError::BodyTooLarge);
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(_) => return Err(GatewayError::BadRequest),
        }
    }
    let raw = buf.freeze();
    if !raw.is_empty() {
        ctx.policy.body = crate::jose::json::parse_strict(&raw).ok().map(Arc::new);
    }
    ctx.policy.body_raw = Some(raw);
    Ok(())
}

/// Set query parameters (replacing any of the same name), keeping the others in order.
fn set_query(up: &mut RequestHeader, params: &[(String, String)]) {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    // RFC 3986 unreserved characters stay as they are (tokens are base64url).
    const QUERY: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let mut parts: Vec<String> = up
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let k = p.split_once('=').map(|(k, _)| k).unwrap_or(p);
            !params.iter().any(|(n, _)| n == k)
        })
        .map(str::to_string)
        .collect();
    for (n, v) in params {
        parts.push(format!(
            "{}={}",
            utf8_percent_encode(n, QUERY),
            utf8_percent_encode(v, QUERY)
        ));
    }
    let pq = format!("{}?{}", up.uri.path(), parts.join("&"));
    if let Ok(uri) = http::Uri::builder().path_and_query(pq).build() {
        up.set_uri(uri);
    }
}

/// An incoming X-Request-Id (only a trusted proxy's survives the front door) is kept when it
/// is short and printable; else a new one is made.
fn request_id(req: &RequestHeader) -> HeaderValue {
    match req.headers.get("x-request-id") {
        Some(v)
            if !v.is_empty()
                && v.len() <= 128
                && v.as_bytes().iter().all(|b| b.is_ascii_graphic()) =>
        {
            v.clone()
        }
        _ => new_request_id(),
    }
}

impl Gateway {
    /// Write a gateway-made reply, after the response-phase policies active so far.
    async fn send(&self, session: &mut Session, ctx: &mut Ctx, reply: Reply) -> Result<bool> {
        let mut h = reply.header()?;
        self.decorate_response(&mut h, session.req_header(), ctx);
        ctx.status = reply.status;
        ctx.error_code = reply.error_code;
        let head_only = session.req_header().method == http::Method::HEAD;
        if reply.body.is_empty() || head_only {
            session.write_response_header(Box::new(h), true).await?;
        } else {
            session.write_response_header(Box::new(h), false).await?;
            session.write_response_body(Some(reply.body), true).await?;
        }
        Ok(true)
    }

    fn render(&self, ctx: &Ctx, e: &GatewayError) -> Reply {
        let route = ctx.route();
        let policy = ctx.pending_policy.and_then(|i| route?.policies.get(i));
        render_error(
            e,
            &[
                policy.and_then(|p| p.errors.as_deref()),
                route.and_then(|r| r.errors.as_ref()),
                ctx.snap.errors.as_ref(),
            ],
            policy.and_then(|p| p.realm()),
        )
    }

    fn decorate_response(&self, resp: &mut ResponseHeader, req: &RequestHeader, ctx: &Ctx) {
        if let Some(route) = ctx.route() {
            let v = ctx.view(req, route);
            for (i, p) in route.policies.iter().enumerate() {
                if ctx.policy.active & (1u64 << i) != 0 {
                    p.on_response(resp, &ctx.policy, &v);
                }
            }
        }
        for (n, v) in &ctx.policy.response_add {
            let _ = resp.append_header(n.clone(), v.clone());
        }
        let _ = resp.insert_header("x-request-id", ctx.request_id.clone());
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            snap: self.state.current.load_full(),
            start: Instant::now(),
            route: None,
            client_ip: None,
            request_id: HeaderValue::from_static(""),
            policy: PolicyState::default(),
            pending: None,
            pending_policy: None,
            upstream: None,
            error_code: None,
            status: 0,
            peer: None,
            trusted_peer: false,
            tls: false,
        }
    }

    /// Runs once the request header is read. Ok(true): the gateway answered (direct response,
    /// CORS preflight, denial, no route); Ok(false): go on to the upstream.
    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let snap = ctx.snap.clone();
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        ctx.peer = peer;
        ctx.trusted_peer = peer.is_some_and(|p| client_ip::trusted(&p, &snap.trusted_proxies));
        ctx.tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        let conn = crate::front::Conn {
            local_port: session
                .server_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.port()),
            tls: ctx.tls,
            trusted_peer: ctx.trusted_peer,
        };
        if let Err(e) = crate::front::admit(session.req_header_mut(), conn, &snap.front.rules) {
            ctx.request_id = new_request_id();
            let reply = self.render(ctx, &e);
            return self.send(session, ctx, reply).await;
        }
        let req = session.req_header();
        ctx.client_ip = client_ip::client_ip(peer, req, &snap.trusted_proxies);
        ctx.request_id = request_id(req);
        // The token service's endpoints come before routes (RFC 8414 paths are fixed).
        if let Some(ts) = &snap.token {
            if let Some(ep) = ts.endpoint(req.uri.path()) {
                let reply = ts.serve(ep, session, ctx.client_ip).await;
                return self.send(session, ctx, reply).await;
            }
            if ts.lookalike(req.uri.path()) {
                let reply = self.render(ctx, &GatewayError::NoRoute);
                return self.send(session, ctx, reply).await;
            }
        }
        let req = session.req_header();
        let Some((idx, route)) = snap.route_for(&RequestView::new(req, ctx.client_ip)) else {
            let reply = self.render(ctx, &GatewayError::NoRoute);
            return self.send(session, ctx, reply).await;
        };
        ctx.route = Some(idx);
        route.owned_headers.strip(session.req_header_mut());
        if !route.websocket {
            crate::front::refuse_upgrade(session.req_header_mut());
        }
        if route.reads_body {
            if let Err(e) = read_body(session, ctx).await {
                let reply = self.render(ctx, &e);
                return self.send(session, ctx, reply).await;
            }
        }
        let req = session.req_header();
        let mut flow = Flow::Continue;
        for (i, p) in route.policies.iter().enumerate() {
            // Rebuilt per policy: earlier policies may have added claims and an identity.
            let claims = ctx.policy.claims.clone();
            let identity = ctx.policy.identity.clone();
            let vars = ctx.policy.vars.clone();
            let body = ctx.policy.body.clone();
            let raw_body = ctx.policy.body_raw.clone();
            let view = RequestView {
                req,
                client_ip: ctx.client_ip,
                route: &route.name,
                claims: claims.as_deref(),
                identity: identity.as_deref(),
                vars: vars.as_deref(),
                body: body.as_deref(),
                raw_body: raw_body.as_deref(),
            };
            if !p.applies(&view) {
                continue;
            }
            ctx.policy.active |= 1u64 << i;
            match p.on_request(i, &view, &mut ctx.policy).await {
                Flow::Continue => {}
                other => {
                    ctx.pending_policy = Some(i);
                    let code = match &other {
                        Flow::Deny(e) => e.code(),
                        _ => "answered",
                    };
                    ctx.policy.decisions.push((i, code, false));
                    flow = other;
                    break;
                }
            }
        }
        let reply = match flow {
            Flow::Continue => match &route.action {
                Action::Respond(r) => {
                    let mut r = r.clone();
                    if let Some(b) = ctx.policy.response_body.take() {
                        r.headers.retain(|(n, _)| n != http::header::CONTENT_TYPE);
                        r.headers.push((
                            http::header::CONTENT_TYPE,
                            HeaderValue::from_static("application/jwt"),
                        ));
                        r.body = b;
                    }
                    r
                }
                Action::Proxy { .. } => return Ok(false),
            },
            Flow::Respond(r) => r,
            Flow::Deny(e) => self.render(ctx, &e),
        };
        self.send(session, ctx, reply).await
    }

    /// Chooses the target. Err when the pool has no healthy target (rendered in fail_to_proxy).
    async fn upstream_peer(&self, session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let snap = ctx.snap.clone();
        let route = ctx.route.and_then(|i| snap.routes.get(i));
        let Some(Route {
            action: Action::Proxy { pool, .. },
            name,
            ..
        }) = route
        else {
            ctx.pending = Some(GatewayError::Internal);
            return Err(Error::explain(ErrorType::InternalError, "no proxy action"));
        };
        let mut view = RequestView::new(session.req_header(), ctx.client_ip);
        view.route = name;
        view.claims = ctx.policy.claims.as_deref();
        view.identity = ctx.policy.identity.as_deref();
        view.vars = ctx.policy.vars.as_deref();
        match pool.select(&view) {
            Some(b) => {
                ctx.upstream = Some(b.addr.clone());
                Ok(Box::new(pool.peer(&b)))
            }
            None => {
                ctx.pending = Some(GatewayError::NoHealthyUpstream);
                Err(Error::explain(
                    ErrorType::HTTPStatus(503),
                    format!("upstream {}: no healthy target", pool.name),
                ))
            }
        }
    }

    /// Shapes the request sent upstream: path, forwarding headers, header policies.
    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        up: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let snap = ctx.snap.clone();
        let Some(route) = ctx.route.and_then(|i| snap.routes.get(i)) else {
            return Ok(());
        };
        if let Action::Proxy {
            pool,
            strip_prefix,
            rewrite_path,
        } = &route.action
        {
            let new_path = match (strip_prefix, rewrite_path) {
                (Some(pre), _) => {
                    let rest = up.uri.path().strip_prefix(pre.as_str()).unwrap_or("");
                    Some(if rest.starts_with('/') {
                        rest.to_string()
                    } else {
                        format!("/{rest}")
                    })
                }
                (None, Some(r)) => Some(r.clone()),
                (None, None) => None,
            };
            if let Some(p) = new_path {
                let pq = match up.uri.query() {
                    Some(q) => format!("{p}?{q}"),
                    None => p,
                };
                if let Ok(uri) = http::Uri::builder().path_and_query(pq).build() {
                    up.set_uri(uri);
                }
            }
            if !pool.preserve_host {
                if let Some(u) = &ctx.upstream {
                    let _ = up.insert_header(http::header::HOST, u.to_string());
                }
            }
        }
        if let Some(peer) = ctx.peer {
            let xff = match up
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
            {
                // A trusted proxy's chain is extended by the hop we saw; the front door removed
                // any other peer's claim.
                Some(prev) if ctx.trusted_peer => format!("{prev}, {peer}"),
                _ => peer.to_string(),
            };
            let _ = up.insert_header("x-forwarded-for", xff);
        }
        if !ctx.trusted_peer || !up.headers.contains_key("x-forwarded-proto") {
            let proto = if ctx.tls { "https" } else { "http" };
            let _ = up.insert_header("x-forwarded-proto", proto);
        }
        let _ = up.insert_header("x-request-id", ctx.request_id.clone());
        // Claims to headers: names are cleared first so a client cannot forge them.
        for n in &ctx.policy.upstream_remove {
            up.remove_header(n);
        }
        for (n, v) in &ctx.policy.upstream_add {
            let _ = up.append_header(n.clone(), v.clone());
        }
        if !ctx.policy.upstream_query.is_empty() {
            set_query(up, &ctx.policy.upstream_query);
        }
        if let Some(b) = &ctx.policy.request_body {
            up.remove_header(&http::header::TRANSFER_ENCODING);
            let _ = up.insert_header(http::header::CONTENT_LENGTH, b.len());
            let json = b.first() == Some(&b'{');
            let _ = up.insert_header(
                http::header::CONTENT_TYPE,
                if json {
                    "application/json"
                } else {
                    "application/jwt"
                },
            );
        }
        let v = ctx.view(session.req_header(), route);
        for (i, p) in route.policies.iter().enumerate() {
            if ctx.policy.active & (1u64 << i) != 0 {
                p.on_upstream_request(up, &v);
            }
        }
        Ok(())
    }

    /// The request body going upstream: replaced when a policy produced a new one. The body
    /// was read in full in request_filter, so this runs once, at the end of the stream (again
    /// on a retry to another target).
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(b) = &ctx.policy.request_body {
            *body = end_of_stream.then(|| b.clone());
        }
        Ok(())
    }

    /// The response body going to the client: replaced by a minted token when asked.
    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<std::time::Duration>> {
        if let Some(b) = &ctx.policy.response_body {
            *body = end_of_stream.then(|| b.clone());
        }
        Ok(None)
    }

    /// Runs on the upstream's response header before it goes to the client.
    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        self.decorate_response(resp, session.req_header(), ctx);
        if let Some(b) = &ctx.policy.response_body {
            resp.remove_header(&http::header::TRANSFER_ENCODING);
            let _ = resp.insert_header(http::header::CONTENT_LENGTH, b.len());
            let _ = resp.insert_header(http::header::CONTENT_TYPE, "application/jwt");
        }
        Ok(())
    }

    /// Any failure after request_filter (no healthy target, connect error, timeout): one
    /// rendered error response.
    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let ge = match ctx.pending.take() {
            Some(g) => Some(g),
            None => match e.esource() {
                ErrorSource::Upstream => Some(match e.etype() {
                    ErrorType::ConnectTimedout
                    | ErrorType::ReadTimedout
                    | ErrorType::WriteTimedout => GatewayError::UpstreamTimeout,
                    ErrorType::ConnectRefused
                    | ErrorType::ConnectNoRoute
                    | ErrorType::ConnectError
                    | ErrorType::TLSHandshakeFailure
                    | ErrorType::SocketError
                    | ErrorType::BindError => GatewayError::UpstreamConnect,
                    _ => GatewayError::UpstreamProtocol,
                }),
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed => {
                        None
                    }
                    _ => Some(GatewayError::BadRequest),
                },
                _ => Some(GatewayError::Internal),
            },
        };
        let Some(ge) = ge else {
            ctx.status = 0;
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        };
        // Policy overrides apply only to denials of that policy, not to upstream failures.
        ctx.pending_policy = None;
        let reply = self.render(ctx, &ge);
        let status = reply.status;
        if let Err(err) = self.send(session, ctx, reply).await {
            log::debug!("could not write the error response: {err}");
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    /// Whether Pingora's "Fail to proxy" error line is skipped. A client that goes away
    /// (read, write or close on the downstream side) is routine at the edge: debug, not error.
    fn suppress_error_log(&self, _session: &Session, _ctx: &Ctx, e: &Error) -> bool {
        let client_gone = matches!(e.esource(), ErrorSource::Downstream)
            && matches!(
                e.etype(),
                ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed
            );
        if client_gone {
            log::debug!("client went away: {e}");
        }
        client_gone
    }

    /// After the response is done (or failed): metrics and the access log.
    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Ctx) {
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(ctx.status);
        let route = ctx.route().map(|r| r.name.as_str()).unwrap_or("");
        let elapsed = ctx.start.elapsed();
        let m = &self.state.metrics;
        let mut outcomes = Vec::new();
        if let Some(r) = ctx.route() {
            for (i, code, shadow) in &ctx.policy.decisions {
                let label = r.policies.get(*i).map(|p| p.label.as_str()).unwrap_or("");
                let mode = if *shadow { "shadow" } else { "enforce" };
                m.policy_decisions
                    .with_label_values(&[route, label, code, mode])
                    .inc();
                outcomes.push(if *shadow {
                    format!("{label}:shadow:{code}")
                } else {
                    format!("{label}:{code}")
                });
            }
        }
        let code = status.to_string();
        m.requests.with_label_values(&[route, code.as_str()]).inc();
        m.latency
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
        if let Some(log) = &self.state.access_log {
            let req = session.req_header();
            let view = RequestView::new(req, None);
            let entry = crate::accesslog::Entry {
                ts: crate::accesslog::now_rfc3339(),
                request_id: String::from_utf8_lossy(ctx.request_id.as_bytes()).into_owned(),
                client_ip: ctx.client_ip.map(|i| i.to_string()).unwrap_or_default(),
                method: req.method.to_string(),
                host: view.host().unwrap_or("").to_string(),
                path: req.uri.path().to_string(),
                route: ctx.route().map(|r| r.name.clone()),
                status,
                latency_ms: elapsed.as_secs_f64() * 1000.0,
                upstream: ctx.upstream.take().map(|u| u.to_string()),
                error_code: ctx.error_code,
                policies: outcomes,
            };
            if !log.log(entry) {
                m.access_log_dropped.inc();
            }
        }
    }
}
