//! The request as conditions, templates and policies read it: the (canonical) request head,
//! the resolved client address, the route, and what earlier policies established. Borrowed
//! only: building one costs no allocation.

use pingora_http::RequestHeader;
use std::borrow::Cow;
use std::net::IpAddr;

/// What a variable can read: the request head, the resolved client address, the route name,
/// and what earlier policies established (verified claims, identity).
pub struct RequestView<'a> {
    pub req: &'a RequestHeader,
    pub client_ip: Option<IpAddr>,
    pub route: &'a str,
    pub claims: Option<&'a serde_json::Map<String, serde_json::Value>>,
    pub identity: Option<&'a str>,
    /// Named values set by earlier policies (`var.NAME`), e.g. a minted token.
    pub vars: Option<&'a std::collections::HashMap<String, String>>,
    /// The request body as JSON, when a policy of the route reads it (`body./json/pointer`).
    pub body: Option<&'a serde_json::Value>,
    /// The raw request body, when a policy of the route reads it.
    pub raw_body: Option<&'a [u8]>,
    /// The time policies judge the request at (Unix seconds): token expiry, minted
    /// `iat`/`exp`, `${now}`. None: the system clock at each use; `tokengate simulate` fixes it.
    pub now: Option<u64>,
}

impl<'a> RequestView<'a> {
    /// A view of the request alone (no route, no policy results yet).
    pub fn new(req: &'a RequestHeader, client_ip: Option<IpAddr>) -> Self {
        RequestView {
            req,
            client_ip,
            route: "",
            claims: None,
            identity: None,
            vars: None,
            body: None,
            raw_body: None,
            now: None,
        }
    }

    /// The time of the request in Unix seconds (see [`RequestView::now`]).
    pub fn now(&self) -> u64 {
        self.now.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        })
    }

    /// A field of an `application/x-www-form-urlencoded` body (read by a policy).
    pub fn form_field(&self, name: &str) -> Option<Cow<'a, str>> {
        let ct = self
            .req
            .headers
            .get(http::header::CONTENT_TYPE)?
            .to_str()
            .ok()?;
        if !ct.split(';').next().is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        }) {
            return None;
        }
        let body = std::str::from_utf8(self.raw_body?).ok()?;
        for pair in body.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if percent_decode(k).as_ref() == name {
                return Some(percent_decode(v));
            }
        }
        None
    }
}

impl<'a> RequestView<'a> {
    /// The request host without port: the Host header, or the URI authority (HTTP/2).
    pub fn host(&self) -> Option<&'a str> {
        let h = self
            .req
            .headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| self.req.uri.authority().map(|a| a.as_str()))?;
        Some(strip_port(h))
    }

    pub fn query(&self, name: &str) -> Option<Cow<'a, str>> {
        let q = self.req.uri.query()?;
        for pair in q.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if percent_decode(k).as_ref() == name {
                return Some(percent_decode(v));
            }
        }
        None
    }

    pub fn cookie(&self, name: &str) -> Option<&'a str> {
        for v in self.req.headers.get_all(http::header::COOKIE) {
            let Ok(s) = v.to_str() else { continue };
            for part in s.split(';') {
                if let Some((k, v)) = part.trim().split_once('=') {
                    if k == name {
                        return Some(v.trim_matches('"'));
                    }
                }
            }
        }
        None
    }
}

fn strip_port(h: &str) -> &str {
    if h.starts_with('[') {
        // [v6]:port
        return h
            .split_once(']')
            .map(|(a, _)| &h[..a.len() + 1])
            .unwrap_or(h);
    }
    match h.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => h,
    }
}

fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let plus = s.replace('+', " ");
    Cow::Owned(
        percent_encoding::percent_decode_str(&plus)
            .decode_utf8_lossy()
            .into_owned(),
    )
}
