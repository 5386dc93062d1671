//! The front door: what every request passes before anything routes on it.
//!
//! * [`head`]: the HTTP/1 request head is read here, bounded in size, header count, request-line
//!   length and time, before Pingora parses it (431 / 414 / closed connection).
//! * [`admit`]: one canonical request: a method spelled as a token and never as a lower-case
//!   standard method, an origin-form (or HTTP/1.1 absolute-form) target turned into the
//!   canonical path ([`path`]), one normalized Host ([`host`]), one Content-Length, and no
//!   forwarding header from a peer that is not a trusted proxy.
//! * [`strip_owned`]: after the route is known, every spelling of every header the route's
//!   policies may set upstream is removed from the client's request, whatever the policies
//!   then do.
//!
//! Routes, conditions, ACLs, templates, the access log and the upstream all read the request
//! as `admit` left it.

pub mod head;
pub mod host;
pub mod path;

use crate::config::{FrontDoorConfig, PathParamsConfig, SlashActionConfig};
use crate::error::{Errors, GatewayError};
use http::header::{CONTENT_LENGTH, HOST};
use http::{HeaderName, HeaderValue, Method, Version};
pub use path::PathRules;
use pingora_http::RequestHeader;

/// The compiled `[front_door]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrontDoor {
    pub rules: PathRules,
    pub limits: head::HeadLimits,
}

impl FrontDoor {
    pub fn compile(c: &FrontDoorConfig, errs: &mut Errors) -> FrontDoor {
        let FrontDoorConfig {
            merge_slashes,
            escaped_slash,
            path_parameters,
            max_head_size,
            max_headers,
            max_request_line,
            header_timeout,
            idle_timeout,
            body_timeout,
            max_requests_per_connection,
            h2_max_concurrent_streams,
        } = c;
        let p = "front_door";
        let size = |v: u64, key: &str, min: u64, errs: &mut Errors| {
            if v < min || v > 1 << 20 {
                errs.push(
                    format!("{p}.{key}"),
                    format!("must be between {min} and 1MiB"),
                );
            }
            v as usize
        };
        let max_head_size = size(max_head_size.0, "max_head_size", 1024, errs);
        let max_request_line = size(max_request_line.0, "max_request_line", 256, errs);
        if max_request_line > max_head_size {
            errs.push(
                format!("{p}.max_request_line"),
                "must not exceed max_head_size",
            );
        }
        if *max_headers == 0 || *max_headers > 256 {
            // Pingora's parser holds at most 256 fields.
            errs.push(format!("{p}.max_headers"), "must be between 1 and 256");
        }
        for (key, d) in [
            ("header_timeout", header_timeout),
            ("idle_timeout", idle_timeout),
            ("body_timeout", body_timeout),
        ] {
            if d.0.is_zero() {
                errs.push(format!("{p}.{key}"), "must be more than 0s");
            }
        }
        if *max_requests_per_connection == 0 {
            errs.push(format!("{p}.max_requests_per_connection"), "must be >= 1");
        }
        if *h2_max_concurrent_streams == 0 {
            errs.push(format!("{p}.h2_max_concurrent_streams"), "must be >= 1");
        }
        FrontDoor {
            rules: PathRules {
                merge_slashes: *merge_slashes,
                escaped_slash: match escaped_slash {
                    SlashActionConfig::Reject => path::EscapedSlash::Reject,
                    SlashActionConfig::Keep => path::EscapedSlash::Keep,
                    SlashActionConfig::Decode => path::EscapedSlash::Decode,
                },
                path_params: match path_parameters {
                    PathParamsConfig::Reject => path::PathParams::Reject,
                    PathParamsConfig::Keep => path::PathParams::Keep,
                    PathParamsConfig::Strip => path::PathParams::Strip,
                },
            },
            limits: head::HeadLimits {
                max_head_size,
                max_headers: *max_headers,
                max_request_line,
                header_timeout: header_timeout.0,
                idle_timeout: idle_timeout.0,
                body_timeout: body_timeout.0,
            },
        }
    }
}

/// Headers only a trusted proxy may send: the gateway sets or removes them otherwise.
const FORWARDING: &[&str] = &[
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-real-ip",
    "x-request-id",
];

/// What the front door knows about the connection.
#[derive(Debug, Clone, Copy)]
pub struct Conn {
    /// The listener's port (a Host naming it has the port dropped).
    pub local_port: Option<u16>,
    pub tls: bool,
    /// The peer is a trusted proxy: its forwarding headers pass.
    pub trusted_peer: bool,
}

/// Standard methods: a request spelling one of these in another case is refused, since many
/// backends upper-case methods and would run `post` as POST behind a rule written for POST.
const STANDARD: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

fn check_method(m: &Method) -> Result<(), GatewayError> {
    let s = m.as_str();
    if s.is_empty() || s.len() > 32 {
        return Err(GatewayError::InvalidMethod);
    }
    if STANDARD
        .iter()
        .any(|std| std.eq_ignore_ascii_case(s) && *std != s)
    {
        return Err(GatewayError::InvalidMethod);
    }
    Ok(())
}

/// The request target as origin-form path and query, plus the authority of an absolute-form
/// target (RFC 9112 §3.2.2: it replaces Host).
fn split_target(req: &RequestHeader) -> Result<(&[u8], Option<&[u8]>), GatewayError> {
    let raw = req.raw_path();
    if raw.first() == Some(&b'/') {
        return Ok((raw, None));
    }
    if req.version != Version::HTTP_11 && req.version != Version::HTTP_10 {
        return Err(GatewayError::InvalidPath);
    }
    let rest = strip_prefix_ci(raw, b"http://")
        .or_else(|| strip_prefix_ci(raw, b"https://"))
        .ok_or(GatewayError::InvalidPath)?;
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let (authority, pq) = rest.split_at(end);
    if pq.first() != Some(&b'/') {
        // `http://a?x` has an empty path: that is `/`, but a query without a path is odd
        // enough at the edge to refuse.
        if pq.is_empty() {
            return Ok((b"/", Some(authority)));
        }
        return Err(GatewayError::InvalidPath);
    }
    Ok((pq, Some(authority)))
}

fn strip_prefix_ci<'a>(b: &'a [u8], pre: &[u8]) -> Option<&'a [u8]> {
    (b.len() >= pre.len() && b[..pre.len()].eq_ignore_ascii_case(pre)).then(|| &b[pre.len()..])
}

/// Canonicalise the request in place, or say why it is refused.
pub fn admit(req: &mut RequestHeader, conn: Conn, rules: &PathRules) -> Result<(), GatewayError> {
    check_method(&req.method)?;
    // Host first: rewriting the target below drops an HTTP/2 request's authority from the URI.
    let abs_authority = split_target(req)?.1.map(<[u8]>::to_vec);
    normalize_host(req, conn, abs_authority.as_deref())?;
    let (target, _) = split_target(req)?;
    let (p, q) = match target.iter().position(|&b| b == b'?') {
        Some(i) => (&target[..i], Some(&target[i + 1..])),
        None => (target, None),
    };
    if q.is_some_and(|q| !path::query_ok(q)) {
        return Err(GatewayError::InvalidPath);
    }
    let p = std::str::from_utf8(p).map_err(|_| GatewayError::InvalidPath)?;
    let canon = path::canonicalize(p, rules).map_err(|e| {
        log::debug!("refused path ({e:?})");
        GatewayError::InvalidPath
    })?;
    if matches!(canon, std::borrow::Cow::Owned(_)) || abs_authority.is_some() {
        let pq = match q {
            Some(q) => {
                let q = std::str::from_utf8(q).map_err(|_| GatewayError::InvalidPath)?;
                format!("{canon}?{q}")
            }
            None => canon.into_owned(),
        };
        let uri = http::Uri::builder()
            .path_and_query(pq)
            .build()
            .map_err(|_| GatewayError::InvalidPath)?;
        req.set_uri(uri);
    }
    collapse_content_length(req)?;
    if !conn.trusted_peer {
        remove_spellings(req, |folded| FORWARDING.contains(&folded));
    } else {
        // A trusted proxy uses the standard spellings; underscore ones are never believed.
        remove_underscored(req, |folded| FORWARDING.contains(&folded));
    }
    Ok(())
}

fn normalize_host(
    req: &mut RequestHeader,
    conn: Conn,
    abs_authority: Option<&[u8]>,
) -> Result<(), GatewayError> {
    let default = if conn.tls { 443 } else { 80 };
    let ports: [u16; 2] = [default, conn.local_port.unwrap_or(default)];
    let mut hosts = req.headers.get_all(HOST).iter();
    let header = hosts.next().cloned();
    if hosts.next().is_some() {
        return Err(GatewayError::InvalidHost);
    }
    fn parse<'a>(v: &'a [u8], ports: &[u16]) -> Result<host::Host<'a>, GatewayError> {
        host::parse(v, ports).ok_or(GatewayError::InvalidHost)
    }
    let header = header.as_ref().map(HeaderValue::as_bytes);
    let h = if let Some(a) = abs_authority {
        // The absolute-form authority wins over Host; it must still be a valid host.
        if let Some(h) = header {
            parse(h, &ports)?;
        }
        parse(a, &ports)?
    } else if req.version == Version::HTTP_2 {
        let authority = req
            .uri
            .authority()
            .map(|a| parse(a.as_str().as_bytes(), &ports));
        match (authority, header.map(|h| parse(h, &ports))) {
            (Some(a), Some(h)) => {
                let (a, h) = (a?, h?);
                if a != h {
                    return Err(GatewayError::InvalidHost);
                }
                a
            }
            (Some(a), None) => a?,
            (None, Some(h)) => h?,
            (None, None) => return Err(GatewayError::InvalidHost),
        }
    } else {
        match header {
            Some(h) => parse(h, &ports)?,
            // HTTP/1.0 may omit Host; HTTP/1.1 must send it (RFC 9112 §3.2).
            None if req.version == Version::HTTP_10 => return Ok(()),
            None => return Err(GatewayError::InvalidHost),
        }
    };
    if header.is_some_and(|v| h.is(v)) {
        return Ok(());
    }
    let v = HeaderValue::from_str(&h.header_value()).map_err(|_| GatewayError::InvalidHost)?;
    req.insert_header(HOST, v)
        .map_err(|_| GatewayError::InvalidHost)
}

/// RFC 9112 §6.3: identical Content-Length values (`5, 5`, or twice `5`) are one length; any
/// other list is refused.
fn collapse_content_length(req: &mut RequestHeader) -> Result<(), GatewayError> {
    let mut values = req.headers.get_all(CONTENT_LENGTH).iter();
    let Some(first) = values.next() else {
        return Ok(());
    };
    let simple = values.next().is_none() && first.as_bytes().iter().all(u8::is_ascii_digit);
    if simple && !first.is_empty() {
        return Ok(());
    }
    let mut len: Option<u64> = None;
    for v in req.headers.get_all(CONTENT_LENGTH) {
        let s = v.to_str().map_err(|_| GatewayError::BadRequest)?;
        for part in s.split(',') {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(GatewayError::BadRequest);
            }
            let n: u64 = part.parse().map_err(|_| GatewayError::BadRequest)?;
            if len.is_some_and(|l| l != n) {
                return Err(GatewayError::BadRequest);
            }
            len = Some(n);
        }
    }
    let n = len.ok_or(GatewayError::BadRequest)?;
    req.insert_header(CONTENT_LENGTH, n)
        .map_err(|_| GatewayError::BadRequest)
}

/// A header name as CGI/WSGI-style backends see it: lower case, `_` read as `-`.
fn fold(name: &str) -> std::borrow::Cow<'_, str> {
    if name.contains('_') {
        std::borrow::Cow::Owned(name.replace('_', "-"))
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

/// Remove every header whose folded name `owned` claims (every spelling).
pub fn remove_spellings(req: &mut RequestHeader, owned: impl Fn(&str) -> bool) {
    let doomed: Vec<HeaderName> = req
        .headers
        .keys()
        .filter(|n| owned(&fold(n.as_str())))
        .cloned()
        .collect();
    for n in doomed {
        req.remove_header(&n);
    }
}

/// Remove the underscore spellings of the headers `owned` claims, keeping the standard ones.
fn remove_underscored(req: &mut RequestHeader, owned: impl Fn(&str) -> bool) {
    let doomed: Vec<HeaderName> = req
        .headers
        .keys()
        .filter(|n| n.as_str().contains('_') && owned(&fold(n.as_str())))
        .cloned()
        .collect();
    for n in doomed {
        req.remove_header(&n);
    }
}

/// The folded names a route's policies may set upstream; removed from every request on it.
#[derive(Debug, Default, Clone)]
pub struct OwnedHeaders(Vec<String>);

impl OwnedHeaders {
    pub fn new(names: impl IntoIterator<Item = String>) -> Self {
        let mut v: Vec<String> = names
            .into_iter()
            .map(|n| n.to_ascii_lowercase().replace('_', "-"))
            .collect();
        v.sort();
        v.dedup();
        OwnedHeaders(v)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn names(&self) -> &[String] {
        &self.0
    }

    pub fn strip(&self, req: &mut RequestHeader) {
        if self.0.is_empty() {
            return;
        }
        remove_spellings(req, |f| self.0.iter().any(|o| o == f));
    }
}

/// On a route that does not allow upgrades, the request is an ordinary one: `Upgrade` and the
/// `upgrade` token of `Connection` are removed, so nothing is tunnelled past the policies.
pub fn refuse_upgrade(req: &mut RequestHeader) {
    if req.headers.get(http::header::UPGRADE).is_none() {
        return;
    }
    req.remove_header(&http::header::UPGRADE);
    let kept: Vec<String> = req
        .headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("upgrade"))
        .map(str::to_string)
        .collect();
    req.remove_header(&http::header::CONNECTION);
    if !kept.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&kept.join(", ")) {
            let _ = req.insert_header(http::header::CONNECTION, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Conn {
        Conn {
            local_port: Some(8080),
            tls: false,
            trusted_peer: false,
        }
    }

    fn req(method: &str, target: &[u8], headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build(method, target, None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    fn admitted(mut r: RequestHeader) -> Result<RequestHeader, GatewayError> {
        admit(&mut r, conn(), &PathRules::default()).map(|()| r)
    }

    #[test]
    fn lower_case_standard_methods_are_refused() {
        for m in ["post", "Post", "gEt", "delete"] {
            let r = req(m, b"/", &[("host", "a")]);
            assert_eq!(admitted(r).err(), Some(GatewayError::InvalidMethod), "{m}");
        }
        for m in ["GET", "POST", "PURGE", "PROPFIND", "purge"] {
            assert!(admitted(req(m, b"/", &[("host", "a")])).is_ok(), "{m}");
        }
    }

    #[test]
    fn the_path_is_rewritten_and_the_query_kept() {
        let r = admitted(req("GET", b"/a/../b//c?x=%2e&y", &[("host", "a")])).unwrap();
        assert_eq!(r.uri.path(), "/b/c");
        assert_eq!(r.uri.query(), Some("x=%2e&y"));
        assert_eq!(r.raw_path(), b"/b/c?x=%2e&y");
    }

    #[test]
    fn absolute_form_is_matched_by_its_path_and_authority() {
        let r = admitted(req(
            "GET",
            b"http://Internal.Example./admin/../x?q",
            &[("host", "other")],
        ))
        .unwrap();
        assert_eq!(r.raw_path(), b"/x?q");
        assert_eq!(r.headers.get(HOST).unwrap(), "internal.example");
    }

    #[test]
    fn other_target_forms_are_refused() {
        for t in [&b"admin/x"[..], b"*", b"ftp://a/x", b"http://a?x"] {
            assert_eq!(
                admitted(req("GET", t, &[("host", "a")])).err(),
                Some(GatewayError::InvalidPath),
                "{:?}",
                String::from_utf8_lossy(t)
            );
        }
    }

    #[test]
    fn hosts_are_normalized_and_required() {
        let r = admitted(req("GET", b"/", &[("host", "Internal.Example.:8080")])).unwrap();
        assert_eq!(r.headers.get(HOST).unwrap(), "internal.example");
        assert_eq!(
            admitted(req("GET", b"/", &[])).err(),
            Some(GatewayError::InvalidHost)
        );
        assert_eq!(
            admitted(req("GET", b"/", &[("host", "a"), ("host", "b")])).err(),
            Some(GatewayError::InvalidHost)
        );
        assert_eq!(
            admitted(req("GET", b"/", &[("host", "a:abc")])).err(),
            Some(GatewayError::InvalidHost)
        );
    }

    #[test]
    fn http2_authority_and_host_must_agree() {
        let h2 = |headers: &[(&str, &str)], target: &str| {
            let mut r = req("GET", b"/", headers);
            r.set_version(Version::HTTP_2);
            r.set_uri(target.parse().unwrap());
            admitted(r)
        };
        let r = h2(&[], "https://Internal.Example./a/../b").unwrap();
        assert_eq!(r.headers.get(HOST).unwrap(), "internal.example");
        assert_eq!(r.uri.path(), "/b");
        assert!(h2(&[("host", "internal.example")], "https://internal.example/").is_ok());
        assert_eq!(
            h2(&[("host", "other.example")], "https://internal.example/").err(),
            Some(GatewayError::InvalidHost)
        );
    }

    #[test]
    fn content_length_lists_collapse_or_are_refused() {
        let r = admitted(req(
            "POST",
            b"/",
            &[("host", "a"), ("content-length", "5, 5")],
        ))
        .unwrap();
        assert_eq!(r.headers.get_all(CONTENT_LENGTH).iter().count(), 1);
        assert_eq!(r.headers.get(CONTENT_LENGTH).unwrap(), "5");
        assert_eq!(
            admitted(req(
                "POST",
                b"/",
                &[("host", "a"), ("content-length", "5, 6")]
            ))
            .err(),
            Some(GatewayError::BadRequest)
        );
    }

    #[test]
    fn forwarding_headers_from_untrusted_peers_are_removed() {
        let r = admitted(req(
            "GET",
            b"/",
            &[
                ("host", "a"),
                ("forwarded", "for=1.2.3.4"),
                ("x-real-ip", "1.2.3.4"),
                ("x-forwarded-host", "evil"),
                ("x_forwarded_proto", "https"),
                ("x-request-id", "mine"),
                ("x-other", "kept"),
            ],
        ))
        .unwrap();
        let names: Vec<_> = r.headers.keys().map(|n| n.as_str().to_string()).collect();
        assert_eq!(names, ["host", "x-other"]);
    }

    #[test]
    fn owned_headers_are_stripped_in_every_spelling() {
        let owned = OwnedHeaders::new(["X-User".to_string()]);
        let mut r = req(
            "GET",
            b"/",
            &[
                ("x-user", "a"),
                ("X_User", "b"),
                ("x_USER", "c"),
                ("x-users", "d"),
            ],
        );
        owned.strip(&mut r);
        let names: Vec<_> = r.headers.keys().map(|n| n.as_str().to_string()).collect();
        assert_eq!(names, ["x-users"]);
    }

    #[test]
    fn upgrades_are_removed_keeping_other_connection_tokens() {
        let mut r = req(
            "GET",
            b"/",
            &[
                ("upgrade", "websocket"),
                ("connection", "keep-alive, Upgrade"),
            ],
        );
        refuse_upgrade(&mut r);
        assert!(r.headers.get("upgrade").is_none());
        assert_eq!(r.headers.get("connection").unwrap(), "keep-alive");
    }
}
