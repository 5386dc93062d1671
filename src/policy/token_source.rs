//! Finding the token in a request, in the configured order, and removing it before the
//! request goes upstream when asked: the `sources` of the token policies (`jwt_verify`,
//! `jwt_auth`). Two different tokens in one request are refused, never silently resolved by
//! picking one.

use crate::config::policy::token_source::TokenSourceConfig;
use crate::error::{Errors, GatewayError};
use crate::policy::edits::{Body, Edits, HeaderEdit, QueryEdit};
use crate::request::RequestView;
use http::{HeaderName, HeaderValue};

#[derive(Debug, Clone)]
pub enum Source {
    Header {
        name: HeaderName,
        prefix: Option<String>,
    },
    Cookie(String),
    Query(String),
    Form(String),
}

impl Source {
    pub fn compile(c: &TokenSourceConfig, path: &str, errs: &mut Errors) -> Option<Source> {
        let TokenSourceConfig {
            header,
            prefix,
            cookie,
            query,
            form,
        } = c;
        let n = [
            header.is_some(),
            cookie.is_some(),
            query.is_some(),
            form.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if n != 1 {
            errs.push(
                path,
                "a token source is exactly one of header, cookie, query or form",
            );
            return None;
        }
        if prefix.is_some() && header.is_none() {
            errs.push(format!("{path}.prefix"), "prefix is for header sources");
            return None;
        }
        if let Some(h) = header {
            return match HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()) {
                Ok(name) => Some(Source::Header {
                    name,
                    prefix: prefix.clone(),
                }),
                Err(_) => {
                    errs.push(format!("{path}.header"), "invalid header name");
                    None
                }
            };
        }
        if let Some(c) = cookie {
            return Some(Source::Cookie(c.clone()));
        }
        if let Some(f) = form {
            return Some(Source::Form(f.clone()));
        }
        query.clone().map(Source::Query)
    }

    /// Every token this source finds (a header may be repeated).
    fn find<'a>(
        &self,
        v: &RequestView<'a>,
        out: &mut Vec<(usize, std::borrow::Cow<'a, str>)>,
        i: usize,
    ) {
        match self {
            Source::Header { name, prefix } => {
                for h in v.req.headers.get_all(name) {
                    let Ok(s) = h.to_str() else {
                        out.push((i, std::borrow::Cow::Borrowed("")));
                        continue;
                    };
                    let s = s.trim();
                    match prefix {
                        None => out.push((i, std::borrow::Cow::Borrowed(s))),
                        Some(p) => {
                            if s.len() >= p.len()
                                && s.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p))
                            {
                                let t = s.get(p.len()..).unwrap_or("").trim();
                                out.push((i, std::borrow::Cow::Borrowed(t)));
                            }
                            // Another scheme (e.g. Basic) is not ours: not a token.
                        }
                    }
                }
            }
            Source::Cookie(name) => {
                if let Some(c) = v.cookie(name) {
                    out.push((i, std::borrow::Cow::Borrowed(c)));
                }
            }
            Source::Query(name) => {
                if let Some(q) = v.query(name) {
                    out.push((i, q));
                }
            }
            Source::Form(name) => {
                if let Some(f) = v.form_field(name) {
                    out.push((i, f));
                }
            }
        }
    }
}

/// A policy's `sources` list, in order (at least one).
pub fn compile_all(c: &[TokenSourceConfig], path: &str, errs: &mut Errors) -> Vec<Source> {
    if c.is_empty() {
        errs.push(format!("{path}.sources"), "list at least one token source");
    }
    c.iter()
        .enumerate()
        .filter_map(|(i, s)| Source::compile(s, &format!("{path}.sources[{i}]"), errs))
        .collect()
}

/// Whether the body must be read before the policy runs (a form source).
pub fn reads_body(sources: &[Source]) -> bool {
    sources.iter().any(|s| matches!(s, Source::Form(_)))
}

/// The token and the index of the source it came from.
pub fn extract<'a>(
    sources: &[Source],
    v: &RequestView<'a>,
) -> Result<(usize, std::borrow::Cow<'a, str>), GatewayError> {
    let mut found = Vec::new();
    for (i, s) in sources.iter().enumerate() {
        s.find(v, &mut found, i);
    }
    let mut it = found.into_iter();
    let Some((i, first)) = it.next() else {
        return Err(GatewayError::TokenMissing);
    };
    for (_, other) in it {
        if other != first {
            return Err(GatewayError::TokenAmbiguous);
        }
    }
    if first.is_empty() {
        return Err(GatewayError::TokenMalformed);
    }
    Ok((i, first))
}

/// The edits that remove the token from the request sent upstream, wherever it was: the
/// headers, cookie and query parameter of every source, and the form field from the body.
pub fn remove(sources: &[Source], v: &RequestView<'_>, edits: &mut Edits) {
    strip(sources, v, edits);
    if let Some(bytes) = strip_form(sources, v) {
        let content_type = v
            .req
            .headers
            .get(http::header::CONTENT_TYPE)
            .cloned()
            .unwrap_or(HeaderValue::from_static(
                "application/x-www-form-urlencoded",
            ));
        edits.upstream_body = Some(Body {
            bytes,
            content_type,
        });
    }
}

/// The request body without the token's form field, when a form source is configured and the
/// body holds that field (None: leave the body as it is).
fn strip_form(sources: &[Source], v: &RequestView<'_>) -> Option<bytes::Bytes> {
    let names: Vec<&str> = sources
        .iter()
        .filter_map(|s| match s {
            Source::Form(n) => Some(n.as_str()),
            _ => None,
        })
        .collect();
    if names.is_empty() || names.iter().all(|n| v.form_field(n).is_none()) {
        return None;
    }
    let body = std::str::from_utf8(v.raw_body?).ok()?;
    let kept: Vec<&str> = body
        .split('&')
        .filter(|p| {
            let k = p.split_once('=').map(|(k, _)| k).unwrap_or(p);
            let k = percent_encoding::percent_decode_str(&k.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned();
            !names.contains(&k.as_str())
        })
        .collect();
    Some(bytes::Bytes::from(kept.join("&")))
}

/// The edits that remove the token (every source of this policy) from the request sent
/// upstream, computed from the client's request. A form-body token is removed by
/// [`strip_form`] instead.
fn strip(sources: &[Source], v: &RequestView<'_>, out: &mut Edits) {
    let req = v.req;
    for s in sources {
        match s {
            Source::Form(_) => {}
            Source::Header { name, prefix } => {
                out.upstream.push(HeaderEdit::Remove(name.clone()));
                let Some(p) = prefix else {
                    continue;
                };
                // Keep other schemes (e.g. Basic) on a shared header.
                out.upstream.extend(
                    req.headers
                        .get_all(name)
                        .iter()
                        .filter(|h| {
                            !h.to_str().is_ok_and(|s| {
                                s.trim()
                                    .get(..p.len())
                                    .is_some_and(|x| x.eq_ignore_ascii_case(p))
                            })
                        })
                        .map(|h| HeaderEdit::Append(name.clone(), h.clone())),
                );
            }
            Source::Cookie(c) => {
                let mut kept = Vec::new();
                for h in req.headers.get_all(http::header::COOKIE) {
                    if let Ok(s) = h.to_str() {
                        kept.extend(
                            s.split(';')
                                .map(str::trim)
                                .filter(|p| !p.is_empty())
                                .filter(|p| p.split_once('=').map(|(k, _)| k) != Some(c.as_str())),
                        );
                    }
                }
                out.upstream.push(HeaderEdit::Remove(http::header::COOKIE));
                if let Ok(v) = HeaderValue::from_str(&kept.join("; ")) {
                    if !kept.is_empty() {
                        out.upstream.push(HeaderEdit::Set(http::header::COOKIE, v));
                    }
                }
            }
            Source::Query(q) => out.query.push(QueryEdit::Remove(q.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(src: &str) -> Vec<Source> {
        #[derive(serde::Deserialize)]
        struct W {
            s: Vec<TokenSourceConfig>,
        }
        let w: W = toml::from_str(src).unwrap();
        let mut e = Errors::default();
        let out: Vec<_> =
            w.s.iter()
                .filter_map(|c| Source::compile(c, "s", &mut e))
                .collect();
        assert!(e.is_empty(), "{:?}", e.0);
        out
    }

    use pingora_http::RequestHeader;

    fn req(uri: &str, h: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", uri.as_bytes(), None).unwrap();
        for (k, v) in h {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn order_ambiguity_and_strip() {
        let s = sources(
            r#"s = [{ header = "authorization", prefix = "Bearer " }, { cookie = "at" }, { query = "access_token" }]"#,
        );
        let r = req(
            "/x?a=1&access_token=T1",
            &[("authorization", "bearer T1"), ("cookie", "x=1; at=T1")],
        );
        let (i, t) = extract(&s, &RequestView::new(&r, None)).unwrap();
        assert_eq!((i, t.as_ref()), (0, "T1"));

        let r = req("/x", &[("authorization", "Bearer T1"), ("cookie", "at=T2")]);
        assert_eq!(
            extract(&s, &RequestView::new(&r, None)).unwrap_err(),
            GatewayError::TokenAmbiguous
        );

        let r = req("/x", &[("authorization", "Basic dXNlcjpwdw==")]);
        assert_eq!(
            extract(&s, &RequestView::new(&r, None)).unwrap_err(),
            GatewayError::TokenMissing
        );

        let r = req(
            "/x",
            &[("authorization", "Bearer A"), ("authorization", "Bearer B")],
        );
        assert_eq!(
            extract(&s, &RequestView::new(&r, None)).unwrap_err(),
            GatewayError::TokenAmbiguous
        );

        let mut r = req(
            "/x?a=1&access_token=T1&b=2",
            &[
                ("authorization", "Bearer T1"),
                ("cookie", "x=1; at=T1; y=2"),
            ],
        );
        let mut edits = crate::policy::Edits::default();
        strip(&s, &RequestView::new(&r, None), &mut edits);
        crate::policy::edits::apply_headers(&mut r, &edits.upstream).unwrap();
        crate::policy::edits::apply_query(&mut r, &edits.query).unwrap();
        assert!(r.headers.get("authorization").is_none());
        assert_eq!(r.headers.get("cookie").unwrap(), "x=1; y=2");
        assert_eq!(r.uri.to_string(), "/x?a=1&b=2");
    }
}
