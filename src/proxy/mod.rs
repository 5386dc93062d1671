//! The data plane: `impl ProxyHttp`. Each hook is thin and says when it runs, what it may
//! change, and what its return means; the work lives in the front door, the router, the
//! policy runner (`policy::chain`) and the renderer (`reply`). Nothing here knows a policy
//! type: policies return outcomes and edits, applied here generically.
//!
//! Phase chart (Pingora hook -> what tokengate does there):
//! 1. `new_ctx`: load the current snapshot ONCE; every later phase sees this generation.
//! 2. `request_filter`: the front door's canonical request (`front::admit`: method, path,
//!    Host, forwarding headers), client IP, request id, route match (token-service endpoints
//!    are routes too), the route's gateway-owned headers removed, the request-phase chain,
//!    then the route's action: direct response, token endpoint, or upstream. Returns true
//!    when the gateway answered. The HTTP/1 head was bounded before this (`front::head`).
//! 3. `upstream_peer`: pick a healthy target of the route's pool.
//! 4. `upstream_request_filter`: path rewrite, forwarding headers, request id, the queued
//!    edits, the upstream-request chain.
//! 5. `request_body_filter` / `response_body_filter`: a policy's new body replaces the stream.
//! 6. `response_filter`: the response chain (also on gateway answers), request id.
//! 7. `fail_to_proxy`: upstream failures (502/504/503) rendered by the one renderer.
//! 8. `logging`: metrics and the access log.

pub mod client_ip;

use crate::compile::{Action, Route, Snapshot};
use crate::error::GatewayError;
use crate::policy::edits::{apply_headers, apply_query, body_headers};
use crate::policy::{Mode, Outcome, Run};
use crate::reply::{render_error, Reply};
use crate::request::RequestView;
use crate::state::State;
use async_trait::async_trait;
use bytes::Bytes;
use http::HeaderValue;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorSource, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};
use serde_json::Value;
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
    /// The route's policy chain state: what ran, what it established and queued.
    run: Run,
    /// The request body as read (when a policy of the route needs it), raw and as JSON.
    body_raw: Option<Bytes>,
    body_json: Option<Arc<Value>>,
    /// An error decided while choosing the upstream (rendered in fail_to_proxy).
    pending: Option<GatewayError>,
    upstream: Option<pingora_core::protocols::l4::socket::SocketAddr>,
    error_code: Option<&'static str>,
    status: u16,
    /// The socket peer, and whether it is a trusted proxy (its forwarding headers and
    /// request id pass).
    peer: Option<IpAddr>,
    trusted_peer: bool,
    tls: bool,
    /// A token-service endpoint's request, as the service described it (for the log).
    token: Option<crate::token::Served>,
}

impl Ctx {
    fn route(&self) -> Option<&Route> {
        self.route.and_then(|i| self.snap.routes.get(i))
    }

    /// The request as policies see it before anything is established.
    fn facts<'a>(&'a self, req: &'a RequestHeader, route: &'a Route) -> RequestView<'a> {
        RequestView {
            req,
            client_ip: self.client_ip,
            route: &route.name,
            claims: None,
            identity: None,
            vars: None,
            body: self.body_json.as_deref(),
            raw_body: self.body_raw.as_deref(),
            now: None,
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
    // Hex by hand: `format!` with padding cost about 1.2k instructions per request.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        let word = if i < 16 { prefix } else { n };
        let shift = 60 - 4 * (i % 16);
        *b = HEX[usize::try_from((word >> shift) & 0xf).unwrap_or(0)];
    }
    HeaderValue::from_bytes(&out).unwrap_or(HeaderValue::from_static("0"))
}

/// An IP address as header text. IPv4, the common case, is written by hand: `Display` cost
/// about 2.6k instructions per request.
fn ip_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let mut s = String::with_capacity(15);
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    s.push('.');
                }
                if o >= 100 {
                    s.push(char::from(b'0' + o / 100));
                }
                if o >= 10 {
                    s.push(char::from(b'0' + (o / 10) % 10));
                }
                s.push(char::from(b'0' + o % 10));
            }
            s
        }
        IpAddr::V6(_) => ip.to_string(),
    }
}

/// The most request body buffered for a policy (Pingora's retry buffer holds this much).
pub(crate) const MAX_BUFFERED_BODY: usize = 64 * 1024;

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
        ctx.body_json = crate::jose::json::parse_strict(&raw).ok().map(Arc::new);
    }
    ctx.body_raw = Some(raw);
    Ok(())
}

/// The upstream path: the route's prefix removed, or a fixed path; the query is kept.
fn rewrite(up: &mut RequestHeader, strip_prefix: Option<&str>, fixed: Option<&str>) -> Result<()> {
    let path = match (strip_prefix, fixed) {
        (Some(pre), _) => {
            let rest = up.uri.path().strip_prefix(pre).unwrap_or("");
            if rest.starts_with('/') {
                rest.to_string()
            } else {
                format!("/{rest}")
            }
        }
        (None, Some(r)) => r.to_string(),
        (None, None) => return Ok(()),
    };
    let pq = match up.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let uri = http::Uri::builder()
        .path_and_query(pq)
        .build()
        .map_err(|e| Error::because(ErrorType::InternalError, "path rewrite", e))?;
    up.set_uri(uri);
    Ok(())
}

/// The connection facts the request sent upstream carries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hop {
    /// The socket peer.
    pub peer: Option<IpAddr>,
    /// The peer is a trusted proxy: its forwarding headers pass.
    pub trusted_peer: bool,
    pub tls: bool,
}

/// X-Forwarded-For and X-Forwarded-Proto on the request sent upstream. A trusted proxy's
/// values are extended or kept; the front door removed any other peer's.
fn forwarding_headers(up: &mut RequestHeader, ctx: Hop) -> Result<()> {
    if let Some(peer) = ctx.peer {
        let xff = match up
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
        {
            // A trusted proxy's chain is extended by the hop we saw; the front door removed
            // any other peer's claim.
            Some(prev) if ctx.trusted_peer => format!("{prev}, {peer}"),
            _ => ip_text(peer),
        };
        up.insert_header("x-forwarded-for", xff)?;
    }
    if !ctx.trusted_peer || !up.headers.contains_key("x-forwarded-proto") {
        let proto = if ctx.tls { "https" } else { "http" };
        up.insert_header("x-forwarded-proto", HeaderValue::from_static(proto))?;
    }
    Ok(())
}

/// The request head sent upstream, made from the client's (canonical, owned headers
/// stripped) head: path rewrite, X-Forwarded-For/-Proto, X-Request-Id, the edits the
/// request-phase policies queued, then the upstream-phase policies' header edits. Host is
/// the proxy's to set (it depends on the target picked).
pub(crate) fn upstream_head(
    up: &mut RequestHeader,
    route: &Route,
    facts: &RequestView<'_>,
    run: &Run,
    hop: Hop,
    request_id: &HeaderValue,
) -> Result<()> {
    if let Action::Proxy {
        strip_prefix,
        rewrite_path,
        ..
    } = &route.action
    {
        rewrite(up, strip_prefix.as_deref(), rewrite_path.as_deref())?;
    }
    forwarding_headers(up, hop)?;
    up.insert_header("x-request-id", request_id.clone())?;
    let edits = &run.edits;
    apply_headers(up, &edits.upstream)?;
    apply_query(up, &edits.query)?;
    if let Some(b) = &edits.upstream_body {
        body_headers(up, b)?;
    }
    let later = route.chain.upstream_request_filter(facts, run);
    apply_headers(up, &later)
}

/// The route for a request the front door admitted, and its head made ready for the chain:
/// the route's gateway-owned headers removed, an upgrade refused unless the route allows it.
pub(crate) fn route_request<'s>(
    snap: &'s Snapshot,
    req: &mut RequestHeader,
    client_ip: Option<IpAddr>,
) -> std::result::Result<(usize, &'s Route), GatewayError> {
    let (idx, route) = snap
        .route_for(&RequestView::new(req, client_ip))
        .ok_or(GatewayError::NoRoute)?;
    route.owned_headers.strip(req);
    if !route.websocket {
        crate::front::refuse_upgrade(req);
    }
    Ok((idx, route))
}

/// Render an error. `by_policy`: the error is the denial of the policy that ended the
/// request phase, so that policy's error overrides and challenge realm apply.
pub(crate) fn render(
    snap: &Snapshot,
    route: Option<&Route>,
    run: &Run,
    e: &GatewayError,
    by_policy: bool,
) -> Reply {
    let policy = match (route, run.decided_by) {
        (Some(r), Some(i)) if by_policy => r.chain.get(i),
        _ => None,
    };
    render_error(
        e,
        &[
            policy.and_then(|p| p.errors.as_deref()),
            route.and_then(|r| r.errors.as_deref()),
            snap.errors.as_ref(),
        ],
        policy.and_then(|p| p.realm()),
    )
}

/// The response-phase policies of the route (when one matched) and the request id, on any
/// response.
pub(crate) fn decorate(
    resp: &mut ResponseHeader,
    route: Option<&Route>,
    facts: &RequestView<'_>,
    run: &Run,
    request_id: &HeaderValue,
) -> Result<()> {
    if let Some(route) = route {
        route.chain.response_filter(facts, run, resp)?;
    }
    resp.insert_header("x-request-id", request_id.clone())
}

/// A direct response, with the body a policy queued for it.
pub(crate) fn respond(r: &Reply, run: &mut Run) -> Reply {
    let mut r = r.clone();
    if let Some(b) = run.edits.response_body.take() {
        r.headers.retain(|(n, _)| n != http::header::CONTENT_TYPE);
        r.headers.push((http::header::CONTENT_TYPE, b.content_type));
        r.body = b.bytes;
    }
    r
}

/// An incoming X-Request-Id (only a trusted proxy's survives the front door) is kept when it
/// is short and printable; else a new one is made.
pub(crate) fn request_id(req: &RequestHeader) -> HeaderValue {
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
        self.decorate_response(&mut h, session.req_header(), ctx)?;
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

    /// Render an error. `by_policy`: the error is the denial of the policy that ended the
    /// request phase, so that policy's error overrides and challenge realm apply.
    fn render(&self, ctx: &Ctx, e: &GatewayError, by_policy: bool) -> Reply {
        render(&ctx.snap, ctx.route(), &ctx.run, e, by_policy)
    }

    /// The response-phase policies and the request id, on any response.
    fn decorate_response(
        &self,
        resp: &mut ResponseHeader,
        req: &RequestHeader,
        ctx: &Ctx,
    ) -> Result<()> {
        let route = ctx.route();
        let facts = match route {
            Some(r) => ctx.facts(req, r),
            None => RequestView::new(req, ctx.client_ip),
        };
        decorate(resp, route, &facts, &ctx.run, &ctx.request_id)
    }

    /// The front door's checks and the connection facts: peer, trust, TLS, client IP,
    /// request id. Err: the request is refused before any route sees it.
    fn admit(&self, session: &mut Session, ctx: &mut Ctx) -> std::result::Result<(), GatewayError> {
        let snap = &ctx.snap;
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
            return Err(e);
        }
        let req = session.req_header();
        ctx.client_ip = client_ip::client_ip(peer, req, &snap.trusted_proxies);
        ctx.request_id = request_id(req);
        Ok(())
    }

    /// What the route does once its request-phase policies let the request through: answer
    /// at the gateway (`Some`: a direct response, a token-service endpoint) or go upstream
    /// (`None`).
    async fn act(&self, route: &Route, session: &mut Session, ctx: &mut Ctx) -> Option<Reply> {
        match &route.action {
            Action::Token { service, endpoint } => {
                let (reply, served) = service
                    .serve(*endpoint, session, ctx.client_ip, ctx.body_raw.clone())
                    .await;
                served.count(&self.state.metrics);
                ctx.token = Some(served);
                Some(reply)
            }
            Action::Respond(r) => Some(respond(r, &mut ctx.run)),
            Action::Proxy { .. } => None,
        }
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = Ctx;

    /// Runs first, once per request: the snapshot this request uses from start to end.
    fn new_ctx(&self) -> Ctx {
        Ctx {
            snap: self.state.current.load_full(),
            start: Instant::now(),
            route: None,
            client_ip: None,
            request_id: HeaderValue::from_static(""),
            run: Run::default(),
            body_raw: None,
            body_json: None,
            pending: None,
            upstream: None,
            error_code: None,
            status: 0,
            peer: None,
            trusted_peer: false,
            tls: false,
            token: None,
        }
    }

    /// Runs once the request head is read (bounded by the front door). May change the
    /// request head (canonical form, gateway-owned headers removed) and read the body (for
    /// policies that need it). Ok(true): the gateway answered (front-door refusal, token
    /// endpoint, no route, denial, policy answer, direct response) and no upstream is
    /// contacted; Ok(false): go on to the upstream. Err: Pingora ends the request.
    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let snap = ctx.snap.clone();
        if let Err(e) = self.admit(session, ctx) {
            let reply = self.render(ctx, &e, false);
            return self.send(session, ctx, reply).await;
        }
        let (idx, route) = match route_request(&snap, session.req_header_mut(), ctx.client_ip) {
            Ok(found) => found,
            Err(e) => {
                let reply = self.render(ctx, &e, false);
                return self.send(session, ctx, reply).await;
            }
        };
        ctx.route = Some(idx);
        if route.chain.reads_body() {
            if let Err(e) = read_body(session, ctx).await {
                let reply = self.render(ctx, &e, false);
                return self.send(session, ctx, reply).await;
            }
        }
        let mut run = std::mem::take(&mut ctx.run);
        let facts = ctx.facts(session.req_header(), route);
        let outcome = route.chain.request_filter(&facts, &mut run).await;
        ctx.run = run;
        let reply = match outcome {
            Outcome::Continue => match self.act(route, session, ctx).await {
                Some(r) => r,
                None => return Ok(false),
            },
            Outcome::Answer(r) => r,
            Outcome::Deny(e) => self.render(ctx, &e, true),
        };
        self.send(session, ctx, reply).await
    }

    /// Runs after request_filter let the request through, before each connection attempt:
    /// picks a healthy target of the route's pool (the hash of consistent_hash reads the
    /// request and what the policies established). Changes nothing. Err: no healthy target
    /// (rendered as 503 in fail_to_proxy).
    async fn upstream_peer(&self, session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        // Borrowed, not cloned: only other fields of ctx are written below.
        let route = ctx.route.and_then(|i| ctx.snap.routes.get(i));
        let Some(
            route @ Route {
                action: Action::Proxy { pool, .. },
                ..
            },
        ) = route
        else {
            ctx.pending = Some(GatewayError::Internal);
            return Err(Error::explain(ErrorType::InternalError, "no proxy action"));
        };
        let facts = ctx.facts(session.req_header(), route);
        let selected = pool.select_peer(&ctx.run.view(&facts));
        match selected {
            Some(p) => {
                ctx.upstream = Some(pingora_core::upstreams::peer::Peer::address(&*p).clone());
                Ok(p)
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

    /// Runs on the copy of the request head sent upstream (again on a retry). May change
    /// `up` only: path rewrite, Host, X-Forwarded-For/-Proto, X-Request-Id, then the edits
    /// the request-phase policies queued and the upstream-phase policies' header edits, in
    /// chain order. Err: the request fails (500 in fail_to_proxy).
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
        if let Action::Proxy { pool, .. } = &route.action {
            if !pool.preserve_host {
                if let Some(u) = &ctx.upstream {
                    up.insert_header(http::header::HOST, u.to_string())?;
                }
            }
        }
        let hop = Hop {
            peer: ctx.peer,
            trusted_peer: ctx.trusted_peer,
            tls: ctx.tls,
        };
        let facts = ctx.facts(session.req_header(), route);
        upstream_head(up, route, &facts, &ctx.run, hop, &ctx.request_id)
    }

    /// Runs on each chunk of the request body going upstream. A policy's new body replaces
    /// it: the client's body was read in full in request_filter, so this sends the new one
    /// once, at the end of the stream (again on a retry to another target).
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(b) = &ctx.run.edits.upstream_body {
            *body = end_of_stream.then(|| b.bytes.clone());
        }
        Ok(())
    }

    /// Runs on each chunk of the upstream's response body going to the client. A policy's
    /// new response body replaces it (sent once, at the end of the stream).
    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<std::time::Duration>> {
        if let Some(b) = &ctx.run.edits.response_body {
            *body = end_of_stream.then(|| b.bytes.clone());
        }
        Ok(None)
    }

    /// Runs on the upstream's response head before it goes to the client. May change
    /// `resp`: the response-phase policies' edits, the request id, the framing for a new
    /// body. Err: the response fails.
    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        self.decorate_response(resp, session.req_header(), ctx)?;
        if let Some(b) = &ctx.run.edits.response_body {
            body_headers(resp, b)?;
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
        let reply = self.render(ctx, &ge, false);
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

    /// Runs last, once, after the response was sent or the request failed: metrics and the
    /// access log (with the policies' decisions and a denial's detail). Changes nothing.
    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut Ctx) {
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(ctx.status);
        let route = ctx.route().map(|r| r.name.as_str()).unwrap_or("");
        let elapsed = ctx.start.elapsed();
        let m = &self.state.metrics;
        let log = self.state.access_log.as_ref();
        let mut outcomes = Vec::new();
        if let Some(r) = ctx.route() {
            for (label, code, mode) in r.chain.decisions(&ctx.run) {
                m.policy_decisions
                    .with_label_values(&[route, label, code, mode.as_str()])
                    .inc();
                // The strings are only for the access log.
                if log.is_some() {
                    outcomes.push(match mode {
                        Mode::Enforce => format!("{label}:{code}"),
                        Mode::Shadow | Mode::Continue | Mode::Handled => {
                            format!("{label}:{}:{code}", mode.as_str())
                        }
                    });
                }
            }
        }
        // Pre-resolved per route: no label hashing, lock or status string per request.
        ctx.route().map_or(&m.no_route, |r| &r.metrics).record(
            m,
            route,
            status,
            elapsed.as_secs_f64(),
        );
        if let Some(log) = log {
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
                error_detail: ctx.run.detail.take(),
                policies: outcomes,
                client_id: ctx.token.as_mut().and_then(|t| t.client.take()),
                grant_type: ctx.token.as_ref().and_then(|t| t.grant_type),
            };
            if !log.log(entry) {
                m.access_log_dropped.inc();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_text_writes_ipv4_like_display() {
        for a in [
            "0.0.0.0",
            "1.2.3.4",
            "10.20.30.40",
            "100.200.255.9",
            "255.255.255.255",
        ] {
            let ip: IpAddr = a.parse().expect("ip");
            assert_eq!(ip_text(ip), ip.to_string());
        }
    }

    #[test]
    fn ip_text_writes_ipv6_like_display() {
        let ip: IpAddr = "2001:db8::1".parse().expect("ip");
        assert_eq!(ip_text(ip), "2001:db8::1");
    }

    #[test]
    fn request_ids_are_32_hex_digits_and_differ() {
        let a = new_request_id();
        let b = new_request_id();
        assert_eq!(a.len(), 32);
        assert!(a
            .as_bytes()
            .iter()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
        assert_eq!(
            a.as_bytes()[..16],
            b.as_bytes()[..16],
            "one prefix per process"
        );
    }

    fn up(uri: &str) -> RequestHeader {
        RequestHeader::build("GET", uri.as_bytes(), None).expect("request")
    }

    #[test]
    fn strip_prefix_keeps_the_rest_and_the_query() {
        let mut r = up("/api/v1/x?a=1");
        rewrite(&mut r, Some("/api"), None).expect("rewrite");
        assert_eq!(r.uri.to_string(), "/v1/x?a=1");
    }

    #[test]
    fn strip_prefix_of_the_whole_path_leaves_the_root() {
        let mut r = up("/api");
        rewrite(&mut r, Some("/api"), None).expect("rewrite");
        assert_eq!(r.uri.to_string(), "/");
    }

    #[test]
    fn a_fixed_path_keeps_the_query() {
        let mut r = up("/anything?t=1");
        rewrite(&mut r, None, Some("/fixed")).expect("rewrite");
        assert_eq!(r.uri.to_string(), "/fixed?t=1");
    }
}
