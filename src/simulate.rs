//! `tokengate simulate`: what the gateway would do with one request, without a network.
//!
//! The config is compiled as `check` compiles it; the request goes through the same front
//! door (`front::admit`), route match and owned-header stripping (`proxy::route_request`),
//! policy runner (`policy::Chain`), renderer (`proxy::render`, `proxy::decorate`) and
//! upstream-head builder (`proxy::upstream_head`) as a served request. Only the connection is
//! made up (the peer is `client_ip`), the clock is fixed by `now`, and remote key sets come
//! from the files given per URL ([`crate::keys::OfflineKeys`]): a policy needing one that was
//! not given is denied `jwks_unavailable` and the report names the URL.
//!
//! Not simulated (reported as such, never faked): token-service endpoints and routes whose
//! chain holds `jwt_auth`, since both need the token store.

use crate::compile::{Action, Route, Snapshot};
use crate::error::GatewayError;
use crate::keys::{KeyCache, KeyCacheOptions, OfflineKeys};
use crate::policy::{Kind, Mode, Outcome, Run};
use crate::reply::Reply;
use crate::request::RequestView;
use bytes::Bytes;
use http::HeaderValue;
use pingora_http::{RequestHeader, ResponseHeader};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

/// The request to simulate, as given on the command line or in a `--request` JSON file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    /// Default GET.
    pub method: Option<String>,
    /// `http://host[:port]/path?query`; the scheme says whether the connection is TLS.
    pub url: String,
    /// `name: value`, in order.
    #[serde(default)]
    pub headers: Vec<String>,
    /// The body, or `@FILE` for a file's content.
    pub body: Option<String>,
    /// The socket peer; default 127.0.0.1.
    pub client_ip: Option<String>,
    /// RFC 3339 or Unix seconds; default the system clock.
    pub now: Option<Now>,
    /// JWK Set (or OIDC discovery) files by source URL.
    #[serde(default)]
    pub jwks: BTreeMap<String, String>,
}

/// A time as JSON: a number of Unix seconds, or a string (RFC 3339 or digits).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Now {
    Unix(u64),
    Text(String),
}

/// The request, parsed and read.
#[derive(Debug)]
pub struct Input {
    pub head: RequestHeader,
    pub tls: bool,
    pub local_port: u16,
    pub body: Option<Bytes>,
    pub peer: IpAddr,
    pub now: Option<u64>,
    pub keys: OfflineKeys,
}

/// `URL=FILE` (the last `=` splits: a URL query may hold one).
pub fn parse_jwks_arg(s: &str) -> Result<(String, String), String> {
    match s.rsplit_once('=') {
        Some((url, file)) if !url.is_empty() && !file.is_empty() => {
            Ok((url.to_string(), file.to_string()))
        }
        _ => Err(format!("--jwks {s:?}: expected URL=FILE")),
    }
}

/// `name: value`.
pub fn parse_header(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((n, v)) if !n.trim().is_empty() => Ok((n.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("header {s:?}: expected \"name: value\"")),
    }
}

/// RFC 3339 or Unix seconds.
pub fn parse_now(n: &Now) -> Result<u64, String> {
    match n {
        Now::Unix(u) => Ok(*u),
        Now::Text(t) => t
            .trim()
            .parse::<u64>()
            .ok()
            .or_else(|| crate::policy::jwt_generate::parse_rfc3339(t.trim()))
            .ok_or_else(|| format!("now {t:?}: expected RFC 3339 or Unix seconds")),
    }
}

fn read_file(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(Path::new(path)).map_err(|e| format!("{path}: {e}"))
}

impl RequestSpec {
    /// Parse and read everything the simulation needs (files included).
    pub fn into_input(self) -> Result<Input, String> {
        let uri: http::Uri = self
            .url
            .parse()
            .map_err(|e| format!("url {:?}: {e}", self.url))?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(format!("url {:?}: expected http:// or https://", self.url)),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("url {:?}: no host", self.url))?;
        let local_port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
        let method = self.method.as_deref().unwrap_or("GET");
        let mut head = RequestHeader::build(method, target.as_bytes(), None)
            .map_err(|e| format!("request {method} {target}: {e}"))?;
        let mut has_host = false;
        for h in &self.headers {
            let (n, v) = parse_header(h)?;
            has_host |= n.eq_ignore_ascii_case("host");
            head.append_header(n.clone(), v.as_str())
                .map_err(|e| format!("header {n:?}: {e}"))?;
        }
        if !has_host {
            head.insert_header(http::header::HOST, authority.as_str())
                .map_err(|e| format!("host {authority}: {e}"))?;
        }
        let body = match self.body.as_deref() {
            None => None,
            Some(b) => Some(Bytes::from(match b.strip_prefix('@') {
                Some(path) => read_file(path)?,
                None => b.as_bytes().to_vec(),
            })),
        };
        let peer = match self.client_ip.as_deref() {
            None => IpAddr::from([127, 0, 0, 1]),
            Some(ip) => ip
                .parse()
                .map_err(|_| format!("client ip {ip:?}: not an IP address"))?,
        };
        let now = self.now.as_ref().map(parse_now).transpose()?;
        let mut keys = OfflineKeys::default();
        for (url, file) in &self.jwks {
            keys.insert(url, read_file(file)?)
                .map_err(|e| format!("jwks {url:?}: {e}"))?;
        }
        Ok(Input {
            head,
            tls,
            local_port,
            body,
            peer,
            now,
            keys,
        })
    }
}

/// What became of one policy of the route's chain.
#[derive(Debug, Serialize)]
pub struct Step {
    pub policy: String,
    pub kind: &'static str,
    /// ran, skipped (its `when` was false), not_reached, shadow, continue, handled, denied,
    /// answered.
    pub decision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// An `on_error` handler (runs only in place of a denial).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub handler: bool,
}

/// A request or response head and body as text.
#[derive(Debug, Serialize)]
pub struct Message {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Path and query.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<&'static str>,
    pub headers: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

/// Where the request goes upstream.
#[derive(Debug, Serialize)]
pub struct Upstream {
    pub pool: String,
    /// The target picked (None: the pool has no target to pick now).
    pub target: Option<String>,
    pub request: Message,
}

/// What the gateway would do.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The route that matched.
    pub route: Option<String>,
    /// Set when the request was not simulated past the route match, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_simulated: Option<String>,
    pub policies: Vec<Step>,
    pub claims: Option<Map<String, Value>>,
    pub identity: Option<String>,
    /// Remote key sets a policy asked for that were not given (`--jwks URL=FILE`).
    pub needs_remote_keys: Vec<String>,
    /// The request sent upstream, when the request goes there.
    pub upstream: Option<Upstream>,
    /// The response the gateway makes, when it answers itself.
    pub response: Option<Message>,
}

fn kind_name(k: &Kind) -> &'static str {
    match k {
        Kind::Headers(_) => "headers",
        Kind::Cors(_) => "cors",
        Kind::JwtVerify(_) => "jwt_verify",
        Kind::JwtGenerate(_) => "jwt_generate",
        Kind::JwtAuth(_) => "jwt_auth",
        Kind::Deny => "deny",
    }
}

fn status_of(code: &str) -> Option<u16> {
    GatewayError::ALL
        .iter()
        .find(|e| e.code() == code)
        .map(GatewayError::status)
}

/// Each policy's decision, from what the runner recorded: a policy with a recorded decision
/// shows it; an active one ran; a route policy before the one that ended the chain (or any,
/// when none did) that is not active had its `when` false; the rest were not reached.
fn steps(route: &Route, run: &Run, ended: bool) -> Vec<Step> {
    let chain = &route.chain;
    let last_active = (0..chain.entries()).rev().find(|&i| run.is_active(i));
    let mut out = Vec::new();
    for i in 0..chain.len() {
        let Some(p) = chain.get(i) else { continue };
        let handler = i >= chain.entries();
        let recorded = run.decisions.iter().find(|d| d.policy == i);
        let (decision, code) = match recorded {
            Some(d) => (
                match d.mode {
                    Mode::Shadow => "shadow",
                    Mode::Continue => "continue",
                    Mode::Handled => "handled",
                    Mode::Enforce if d.code == "answered" => "answered",
                    Mode::Enforce => "denied",
                },
                Some(d.code),
            ),
            None if run.is_active(i) => ("ran", None),
            None if handler => continue,
            None if !ended || last_active.is_some_and(|l| i < l) => ("skipped", None),
            None => ("not_reached", None),
        };
        out.push(Step {
            policy: p.label.clone(),
            kind: kind_name(&p.kind),
            decision,
            code,
            status: code.and_then(status_of),
            handler,
        });
    }
    out
}

fn headers_of<'a>(
    it: impl Iterator<Item = (&'a http::HeaderName, &'a HeaderValue)>,
) -> Vec<(String, String)> {
    it.map(|(n, v)| {
        (
            n.to_string(),
            String::from_utf8_lossy(v.as_bytes()).into_owned(),
        )
    })
    .collect()
}

fn body_text(b: &[u8]) -> Option<String> {
    (!b.is_empty()).then(|| String::from_utf8_lossy(b).into_owned())
}

/// The response the client gets for a gateway-made reply: the response-phase policies and
/// the request id, as `Gateway::send` writes it.
fn response(
    reply: Reply,
    route: Option<&Route>,
    facts: &RequestView<'_>,
    run: &Run,
    request_id: &HeaderValue,
) -> Result<Message, String> {
    let mut h: ResponseHeader = reply.header().map_err(|e| e.to_string())?;
    crate::proxy::decorate(&mut h, route, facts, run, request_id).map_err(|e| e.to_string())?;
    let head_only = facts.req.method == http::Method::HEAD;
    Ok(Message {
        method: None,
        path: None,
        status: Some(reply.status),
        error_code: reply.error_code,
        headers: headers_of(h.headers.iter()),
        body: if head_only {
            None
        } else {
            body_text(&reply.body)
        },
    })
}

/// A key cache whose every fetch is answered from `keys`.
pub fn offline_shared(keys: Arc<OfflineKeys>) -> Result<crate::shared::Shared, String> {
    let mut shared = crate::shared::Shared::detached().map_err(|e| e.to_string())?;
    let options = KeyCacheOptions {
        offline: Some(keys),
        ..KeyCacheOptions::default()
    };
    shared.keys = Arc::new(
        KeyCache::with_options(&prometheus::Registry::new(), options).map_err(|e| e.to_string())?,
    );
    Ok(shared)
}

fn blank(route: Option<String>) -> Report {
    Report {
        route,
        not_simulated: None,
        policies: Vec::new(),
        claims: None,
        identity: None,
        needs_remote_keys: Vec::new(),
        upstream: None,
        response: None,
    }
}

/// Run `input` through `snap` (compiled with [`offline_shared`] over `keys`).
pub async fn simulate(
    snap: &Snapshot,
    mut input: Input,
    keys: &OfflineKeys,
) -> Result<Report, String> {
    let peer = Some(input.peer);
    let trusted_peer = crate::proxy::client_ip::trusted(&input.peer, &snap.trusted_proxies);
    let conn = crate::front::Conn {
        local_port: Some(input.local_port),
        tls: input.tls,
        trusted_peer,
    };
    let req = &mut input.head;
    let empty = Run::default();
    if let Err(e) = crate::front::admit(req, conn, &snap.front.rules) {
        let reply = crate::proxy::render(snap, None, &empty, &e, false);
        let id = crate::proxy::new_request_id();
        let facts = RequestView {
            now: input.now,
            ..RequestView::new(req, None)
        };
        let mut r = blank(None);
        r.response = Some(response(reply, None, &facts, &empty, &id)?);
        return Ok(r);
    }
    let client_ip = crate::proxy::client_ip::client_ip(peer, req, &snap.trusted_proxies);
    let request_id = crate::proxy::request_id(req);
    let (_, route) = match crate::proxy::route_request(snap, req, client_ip) {
        Ok(found) => found,
        Err(e) => {
            let reply = crate::proxy::render(snap, None, &empty, &e, false);
            let facts = RequestView {
                now: input.now,
                ..RequestView::new(req, client_ip)
            };
            let mut r = blank(None);
            r.response = Some(response(reply, None, &facts, &empty, &request_id)?);
            return Ok(r);
        }
    };
    let mut report = blank(Some(route.name.clone()));
    let needs_store = (0..route.chain.len())
        .filter_map(|i| route.chain.get(i))
        .any(|p| matches!(p.kind, Kind::JwtAuth(_)));
    if matches!(route.action, Action::Token { .. }) || needs_store {
        report.not_simulated = Some("needs the token store".into());
        return Ok(report);
    }
    let req: &RequestHeader = req;
    let (body_raw, body_json) = match &input.body {
        Some(b) if route.chain.reads_body() => {
            let json = (!b.is_empty())
                .then(|| crate::jose::json::parse_strict(b).ok())
                .flatten();
            (Some(b.clone()), json)
        }
        _ => (None, None),
    };
    let facts = RequestView {
        req,
        client_ip,
        route: &route.name,
        claims: None,
        identity: None,
        vars: None,
        body: body_json.as_ref(),
        raw_body: body_raw.as_deref(),
        now: input.now,
    };
    let mut run = Run::default();
    let too_large = body_raw
        .as_ref()
        .is_some_and(|b| b.len() > crate::proxy::MAX_BUFFERED_BODY);
    let outcome = if too_large {
        Outcome::Deny(GatewayError::BodyTooLarge)
    } else {
        route.chain.request_filter(&facts, &mut run).await
    };
    report.policies = steps(route, &run, !matches!(outcome, Outcome::Continue));
    report.claims = run.established.claims.as_deref().cloned();
    report.identity = run.established.identity.as_deref().map(str::to_string);
    report.needs_remote_keys = keys.missing();
    let reply = match outcome {
        Outcome::Continue => match &route.action {
            Action::Respond(r) => crate::proxy::respond(r, &mut run),
            Action::Proxy { pool, .. } => {
                report.upstream = Some(upstream(
                    route,
                    pool,
                    &facts,
                    &run,
                    peer,
                    trusted_peer,
                    input.tls,
                    &request_id,
                )?);
                return Ok(report);
            }
            Action::Token { .. } => return Ok(report),
        },
        Outcome::Answer(r) => r,
        Outcome::Deny(e) => crate::proxy::render(snap, Some(route), &run, &e, !too_large),
    };
    report.response = Some(response(reply, Some(route), &facts, &run, &request_id)?);
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
fn upstream(
    route: &Route,
    pool: &crate::upstream::Pool,
    facts: &RequestView<'_>,
    run: &Run,
    peer: Option<IpAddr>,
    trusted_peer: bool,
    tls: bool,
    request_id: &HeaderValue,
) -> Result<Upstream, String> {
    let mut up = facts.req.clone();
    let target = pool
        .select_peer(&run.view(facts))
        .map(|p| pingora_core::upstreams::peer::Peer::address(&*p).to_string());
    if !pool.preserve_host {
        if let Some(t) = &target {
            up.insert_header(http::header::HOST, t.as_str())
                .map_err(|e| e.to_string())?;
        }
    }
    let hop = crate::proxy::Hop {
        peer,
        trusted_peer,
        tls,
    };
    crate::proxy::upstream_head(&mut up, route, facts, run, hop, request_id)
        .map_err(|e| e.to_string())?;
    let body = match &run.edits.upstream_body {
        Some(b) => body_text(&b.bytes),
        None => None,
    };
    Ok(Upstream {
        pool: pool.name.clone(),
        target,
        request: Message {
            method: Some(up.method.to_string()),
            path: Some(
                up.uri
                    .path_and_query()
                    .map_or("/", |pq| pq.as_str())
                    .to_string(),
            ),
            status: None,
            error_code: None,
            headers: headers_of(up.headers.iter()),
            body,
        },
    })
}

/// Load and compile `config` with remote keys from `spec`, then simulate `spec`'s request.
/// Err: each line says what is wrong with the config or the request.
pub fn run(config: &Path, spec: RequestSpec) -> Result<Report, Vec<String>> {
    let mut input = spec.into_input().map_err(|e| vec![e])?;
    let keys = Arc::new(std::mem::take(&mut input.keys));
    let (raw, hash, _) = crate::config::load_file(config).map_err(|errs| {
        errs.iter()
            .map(|e| format!("{}: {e}", config.display()))
            .collect::<Vec<_>>()
    })?;
    let shared = offline_shared(keys.clone()).map_err(|e| vec![e])?;
    let snap = crate::compile::compile(&raw, &hash, 1, None, &shared).map_err(|errs| {
        errs.iter()
            .map(|e| format!("{}: {e}", config.display()))
            .collect::<Vec<_>>()
    })?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| vec![e.to_string()])?;
    rt.block_on(simulate(&snap, input, &keys))
        .map_err(|e| vec![e])
}

/// The report for a person.
pub fn text(r: &Report) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "route: {}", r.route.as_deref().unwrap_or("(none)"));
    if let Some(why) = &r.not_simulated {
        let _ = writeln!(s, "not simulated: {why}");
    }
    if !r.policies.is_empty() {
        let _ = writeln!(s, "policies:");
    }
    for p in &r.policies {
        let role = if p.handler { " (on_error handler)" } else { "" };
        let _ = write!(s, "  {} [{}]{role}: {}", p.policy, p.kind, p.decision);
        if p.decision == "skipped" {
            let _ = write!(s, " (when is false)");
        }
        if let Some(c) = p.code {
            let _ = write!(s, " {c}");
        }
        if let Some(st) = p.status {
            let _ = write!(s, " {st}");
        }
        let _ = writeln!(s);
    }
    for url in &r.needs_remote_keys {
        let _ = writeln!(
            s,
            "needs remote keys from {url} (give them with --jwks URL=FILE)"
        );
    }
    if let Some(id) = &r.identity {
        let _ = writeln!(s, "identity: {id}");
    }
    if let Some(c) = &r.claims {
        let _ = writeln!(s, "claims: {}", Value::Object(c.clone()));
    }
    if let Some(u) = &r.upstream {
        let target = u.target.as_deref().unwrap_or("(picked at run time)");
        let _ = writeln!(s, "upstream: pool {} target {target}", u.pool);
        message(&mut s, &u.request);
    }
    if let Some(m) = &r.response {
        let _ = writeln!(s, "response:");
        message(&mut s, m);
    }
    s
}

fn message(s: &mut String, m: &Message) {
    use std::fmt::Write;
    if let (Some(method), Some(path)) = (&m.method, &m.path) {
        let _ = writeln!(s, "  {method} {path}");
    }
    if let Some(st) = m.status {
        let code = m.error_code.map(|c| format!(" ({c})")).unwrap_or_default();
        let _ = writeln!(s, "  status {st}{code}");
    }
    for (n, v) in &m.headers {
        let _ = writeln!(s, "  {n}: {v}");
    }
    if let Some(b) = &m.body {
        let _ = writeln!(s, "\n  {b}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(url: &str) -> RequestSpec {
        RequestSpec {
            url: url.into(),
            ..RequestSpec::default()
        }
    }

    #[test]
    fn a_header_is_name_colon_value() {
        assert_eq!(
            parse_header("X-A:  b: c ").unwrap(),
            ("X-A".into(), "b: c".into())
        );
        assert!(parse_header("no colon").is_err());
        assert!(parse_header(": v").is_err());
    }

    #[test]
    fn jwks_splits_at_the_last_equals_sign() {
        assert_eq!(
            parse_jwks_arg("https://idp/jwks?a=b=keys.json").unwrap(),
            ("https://idp/jwks?a=b".into(), "keys.json".into())
        );
        assert!(parse_jwks_arg("https://idp/jwks").is_err());
        assert!(parse_jwks_arg("https://idp/jwks=").is_err());
    }

    #[test]
    fn now_is_unix_seconds_or_rfc3339() {
        assert_eq!(parse_now(&Now::Unix(5)).unwrap(), 5);
        assert_eq!(
            parse_now(&Now::Text("1700000000".into())).unwrap(),
            1_700_000_000
        );
        assert_eq!(
            parse_now(&Now::Text("2033-05-18T03:33:20Z".into())).unwrap(),
            2_000_000_000
        );
        assert!(parse_now(&Now::Text("tomorrow".into())).is_err());
    }

    #[test]
    fn the_url_gives_target_host_port_and_tls() {
        let i = spec("https://api.example:8443/a/b?q=1")
            .into_input()
            .unwrap();
        assert_eq!(i.head.uri.to_string(), "/a/b?q=1");
        assert_eq!(i.head.method, http::Method::GET);
        assert_eq!(i.head.headers["host"], "api.example:8443");
        assert!(i.tls);
        assert_eq!(i.local_port, 8443);
        assert_eq!(i.peer, IpAddr::from([127, 0, 0, 1]));
        let i = spec("http://api.example").into_input().unwrap();
        assert_eq!(i.head.uri.to_string(), "/");
        assert!(!i.tls);
        assert_eq!(i.local_port, 80);
    }

    #[test]
    fn a_host_header_overrides_the_url_host() {
        let i = RequestSpec {
            method: Some("POST".into()),
            headers: vec!["Host: other.example".into(), "x-a: 1".into()],
            client_ip: Some("10.0.0.9".into()),
            ..spec("http://api.example/x")
        }
        .into_input()
        .unwrap();
        assert_eq!(i.head.method, http::Method::POST);
        assert_eq!(i.head.headers.get_all("host").iter().count(), 1);
        assert_eq!(i.head.headers["host"], "other.example");
        assert_eq!(i.peer, IpAddr::from([10, 0, 0, 9]));
    }

    #[test]
    fn bad_inputs_are_refused_with_what_is_wrong() {
        for (s, want) in [
            (spec("/no/scheme"), "expected http:// or https://"),
            (spec("ftp://h/x"), "expected http:// or https://"),
            (
                RequestSpec {
                    client_ip: Some("nope".into()),
                    ..spec("http://h/")
                },
                "not an IP address",
            ),
            (
                RequestSpec {
                    body: Some("@/nonexistent/body".into()),
                    ..spec("http://h/")
                },
                "/nonexistent/body",
            ),
        ] {
            let e = s.into_input().unwrap_err();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn a_body_is_literal_or_read_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("b.json");
        std::fs::write(&f, "{\"a\":1}").unwrap();
        let i = RequestSpec {
            body: Some(format!("@{}", f.display())),
            ..spec("http://h/")
        }
        .into_input()
        .unwrap();
        assert_eq!(i.body.as_deref(), Some(&b"{\"a\":1}"[..]));
        let i = RequestSpec {
            body: Some("plain".into()),
            ..spec("http://h/")
        }
        .into_input()
        .unwrap();
        assert_eq!(i.body.as_deref(), Some(&b"plain"[..]));
    }

    #[test]
    fn the_request_file_has_the_cli_fields_and_no_others() {
        let s: RequestSpec = serde_json::from_str(
            r#"{"method":"PUT","url":"http://h/x","headers":["a: 1"],"body":"b",
                "client_ip":"10.1.1.1","now":1700000000,"jwks":{"https://idp/j":"f.json"}}"#,
        )
        .unwrap();
        assert_eq!(s.method.as_deref(), Some("PUT"));
        assert_eq!(parse_now(s.now.as_ref().unwrap()).unwrap(), 1_700_000_000);
        assert_eq!(s.jwks["https://idp/j"], "f.json");
        let s: RequestSpec =
            serde_json::from_str(r#"{"url":"http://h/","now":"2033-05-18T03:33:20Z"}"#).unwrap();
        assert_eq!(parse_now(s.now.as_ref().unwrap()).unwrap(), 2_000_000_000);
        assert!(serde_json::from_str::<RequestSpec>(r#"{"url":"http://h/","tls":true}"#).is_err());
    }

    #[test]
    fn offline_keys_answer_given_urls_and_record_missing_ones() {
        let mut k = OfflineKeys::default();
        k.insert("https://IDP.example/jwks.json", b"{}".to_vec())
            .unwrap();
        assert!(k.insert("ftp://x/", Vec::new()).is_err());
        assert!(k.missing().is_empty());
    }
}
