//! Explicit edits: what a policy asks to change on the request sent upstream and on the
//! response sent to the client. Policies only describe changes; the proxy applies them with
//! the functions here, in the order they were queued, without knowing which policy asked.

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use pingora_http::{RequestHeader, ResponseHeader};

/// One header change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderEdit {
    /// Remove every field of this name.
    Remove(HeaderName),
    /// Replace every field of this name by one.
    Set(HeaderName, HeaderValue),
    /// Add a field, keeping those of the same name.
    Append(HeaderName, HeaderValue),
}

/// One query-parameter change on the request sent upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryEdit {
    /// Replace every parameter of this (decoded) name by one.
    Set(String, String),
    /// Remove every parameter of this (decoded) name.
    Remove(String),
}

/// A new body and the media type that goes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    pub bytes: Bytes,
    pub content_type: HeaderValue,
}

/// Changes queued by the policies of one request, applied by the proxy.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Edits {
    /// Header changes on the request sent upstream.
    pub upstream: Vec<HeaderEdit>,
    /// Query changes on the request sent upstream.
    pub query: Vec<QueryEdit>,
    /// A new request body for the upstream.
    pub upstream_body: Option<Body>,
    /// Header changes on the response sent to the client (upstream or gateway answer).
    pub response: Vec<HeaderEdit>,
    /// A new response body for the client.
    pub response_body: Option<Body>,
}

impl Edits {
    pub fn is_empty(&self) -> bool {
        self.upstream.is_empty()
            && self.query.is_empty()
            && self.upstream_body.is_none()
            && self.response.is_empty()
            && self.response_body.is_none()
    }

    /// Append `later`'s edits after these (a later body replaces an earlier one).
    pub fn extend(&mut self, later: Edits) {
        let Edits {
            upstream,
            query,
            upstream_body,
            response,
            response_body,
        } = later;
        append(&mut self.upstream, upstream);
        append(&mut self.query, query);
        append(&mut self.response, response);
        if upstream_body.is_some() {
            self.upstream_body = upstream_body;
        }
        if response_body.is_some() {
            self.response_body = response_body;
        }
    }
}

fn append<T>(to: &mut Vec<T>, mut from: Vec<T>) {
    if to.is_empty() {
        *to = from;
    } else {
        to.append(&mut from);
    }
}

/// The two header maps edits apply to.
pub trait Headers {
    fn remove(&mut self, n: &HeaderName);
    fn set(&mut self, n: HeaderName, v: HeaderValue) -> pingora_error::Result<()>;
    fn append(&mut self, n: HeaderName, v: HeaderValue) -> pingora_error::Result<()>;
}

impl Headers for RequestHeader {
    fn remove(&mut self, n: &HeaderName) {
        self.remove_header(n);
    }
    fn set(&mut self, n: HeaderName, v: HeaderValue) -> pingora_error::Result<()> {
        self.insert_header(n, v)
    }
    fn append(&mut self, n: HeaderName, v: HeaderValue) -> pingora_error::Result<()> {
        self.append_header(n, v).map(|_| ())
    }
}

impl Headers for ResponseHeader {
    fn remove(&mut self, n: &HeaderName) {
        self.remove_header(n);
    }
    fn set(&mut self, n: HeaderName, v: HeaderValue) -> pingora_error::Result<()> {
        self.insert_header(n, v)
    }
    fn append(&mut self, n: HeaderName, v: HeaderValue) -> pingora_error::Result<()> {
        self.append_header(n, v).map(|_| ())
    }
}

/// Apply header edits in order.
pub fn apply_headers<H: Headers>(h: &mut H, edits: &[HeaderEdit]) -> pingora_error::Result<()> {
    for e in edits {
        match e {
            HeaderEdit::Remove(n) => h.remove(n),
            HeaderEdit::Set(n, v) => h.set(n.clone(), v.clone())?,
            HeaderEdit::Append(n, v) => h.append(n.clone(), v.clone())?,
        }
    }
    Ok(())
}

/// Apply query edits in order, keeping the other parameters as they were.
pub fn apply_query(up: &mut RequestHeader, edits: &[QueryEdit]) -> pingora_error::Result<()> {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    // RFC 3986 unreserved characters stay as they are (tokens are base64url).
    const QUERY: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    if edits.is_empty() {
        return Ok(());
    }
    let mut parts: Vec<String> = up
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    for e in edits {
        let (QueryEdit::Set(name, _) | QueryEdit::Remove(name)) = e;
        parts.retain(|p| {
            let k = p.split_once('=').map(|(k, _)| k).unwrap_or(p);
            percent_encoding::percent_decode_str(&k.replace('+', " ")).decode_utf8_lossy()
                != name.as_str()
        });
        if let QueryEdit::Set(n, v) = e {
            parts.push(format!(
                "{}={}",
                utf8_percent_encode(n, QUERY),
                utf8_percent_encode(v, QUERY)
            ));
        }
    }
    let path = up.uri.path();
    let pq = if parts.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", parts.join("&"))
    };
    let uri = http::Uri::builder()
        .path_and_query(pq)
        .build()
        .map_err(|e| {
            pingora_error::Error::because(pingora_error::ErrorType::InternalError, "query edit", e)
        })?;
    up.set_uri(uri);
    Ok(())
}

/// Replace the body framing headers for a new body.
pub fn body_headers<H: Headers>(h: &mut H, b: &Body) -> pingora_error::Result<()> {
    h.remove(&http::header::TRANSFER_ENCODING);
    h.set(
        http::header::CONTENT_LENGTH,
        HeaderValue::from(b.bytes.len()),
    )?;
    h.set(http::header::CONTENT_TYPE, b.content_type.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &str) -> RequestHeader {
        RequestHeader::build("GET", uri.as_bytes(), None).expect("request")
    }

    #[test]
    fn header_edits_apply_in_order() {
        let mut r = req("/");
        r.insert_header("x-a", "client").expect("h");
        let n = HeaderName::from_static("x-a");
        apply_headers(
            &mut r,
            &[
                HeaderEdit::Remove(n.clone()),
                HeaderEdit::Append(n.clone(), HeaderValue::from_static("1")),
                HeaderEdit::Append(n.clone(), HeaderValue::from_static("2")),
            ],
        )
        .expect("apply");
        let got: Vec<_> = r.headers.get_all("x-a").iter().cloned().collect();
        assert_eq!(got, ["1", "2"]);
    }

    #[test]
    fn set_replaces_every_field_of_the_name() {
        let mut r = req("/");
        r.append_header("x-a", "1").expect("h");
        r.append_header("x-a", "2").expect("h");
        apply_headers(
            &mut r,
            &[HeaderEdit::Set(
                HeaderName::from_static("x-a"),
                HeaderValue::from_static("3"),
            )],
        )
        .expect("apply");
        let got: Vec<_> = r.headers.get_all("x-a").iter().cloned().collect();
        assert_eq!(got, ["3"]);
    }

    #[test]
    fn query_set_replaces_the_parameter_and_keeps_others() {
        let mut r = req("/p?a=1&t=old&b=2");
        apply_query(&mut r, &[QueryEdit::Set("t".into(), "n w".into())]).expect("q");
        assert_eq!(r.uri.to_string(), "/p?a=1&b=2&t=n%20w");
    }

    #[test]
    fn query_remove_matches_the_decoded_name() {
        let mut r = req("/p?acc%65ss_token=x&b=2");
        apply_query(&mut r, &[QueryEdit::Remove("access_token".into())]).expect("q");
        assert_eq!(r.uri.to_string(), "/p?b=2");
    }

    #[test]
    fn query_remove_of_the_last_parameter_drops_the_question_mark() {
        let mut r = req("/p?t=x");
        apply_query(&mut r, &[QueryEdit::Remove("t".into())]).expect("q");
        assert_eq!(r.uri.to_string(), "/p");
    }

    #[test]
    fn extend_keeps_order_and_the_later_body() {
        let body = |s: &'static str| Body {
            bytes: Bytes::from_static(s.as_bytes()),
            content_type: HeaderValue::from_static("text/plain"),
        };
        let n = HeaderName::from_static("x-a");
        let mut a = Edits {
            upstream: vec![HeaderEdit::Remove(n.clone())],
            upstream_body: Some(body("one")),
            ..Edits::default()
        };
        a.extend(Edits {
            upstream: vec![HeaderEdit::Append(n.clone(), HeaderValue::from_static("v"))],
            upstream_body: Some(body("two")),
            ..Edits::default()
        });
        assert_eq!(a.upstream.len(), 2);
        assert_eq!(a.upstream[0], HeaderEdit::Remove(n));
        assert_eq!(a.upstream_body, Some(body("two")));
    }
}
