//! The `cors` policy: answers preflights at the gateway and decorates actual responses.
//! Origins are compared exactly (scheme://host[:port]); `"*"` allows any origin but is refused
//! together with `allow_credentials` (browsers reject that pair, and reflecting any origin with
//! credentials would be a security hole).

use super::{Effects, HeaderEdit, Outcome};
use crate::config::CorsConfig;
use crate::error::{Errors, GatewayError};
use crate::reply::Reply;
use crate::request::RequestView;
use http::{HeaderName, HeaderValue, Method};
use pingora_http::ResponseHeader;

#[derive(Debug)]
pub struct Cors {
    any_origin: bool,
    origins: Vec<String>,
    methods: Vec<Method>,
    methods_value: HeaderValue,
    headers: Vec<String>,
    headers_value: Option<HeaderValue>,
    expose_value: Option<HeaderValue>,
    credentials: bool,
    max_age: Option<HeaderValue>,
}

fn join(items: &[String]) -> Option<HeaderValue> {
    if items.is_empty() {
        return None;
    }
    HeaderValue::from_str(&items.join(", ")).ok()
}

impl Cors {
    pub fn compile(c: &CorsConfig, path: &str, errs: &mut Errors) -> Option<Cors> {
        let CorsConfig {
            allow_origins,
            allow_methods,
            allow_headers,
            expose_headers,
            allow_credentials,
            max_age,
        } = c;
        let before = errs.0.len();
        let any_origin = allow_origins.iter().any(|o| o == "*");
        if any_origin && *allow_credentials {
            errs.push(
                format!("{path}.allow_origins"),
                "\"*\" cannot be combined with allow_credentials = true; list the origins",
            );
        }
        if allow_origins.is_empty() {
            errs.push(
                format!("{path}.allow_origins"),
                "list at least one origin or \"*\"",
            );
        }
        for (i, o) in allow_origins.iter().enumerate() {
            if o != "*" && !(o.starts_with("http://") || o.starts_with("https://")) {
                errs.push(
                    format!("{path}.allow_origins[{i}]"),
                    "an origin is scheme://host[:port], e.g. \"https://app.example.com\"",
                );
            }
        }
        let mut methods = Vec::new();
        for (i, m) in allow_methods.iter().enumerate() {
            match Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
                Ok(m) => methods.push(m),
                Err(_) => errs.push(format!("{path}.allow_methods[{i}]"), "invalid method"),
            }
        }
        for (i, h) in allow_headers.iter().chain(expose_headers).enumerate() {
            if HeaderName::from_bytes(h.as_bytes()).is_err() {
                errs.push(
                    format!("{path}.allow_headers[{i}]"),
                    format!("invalid header name {h:?}"),
                );
            }
        }
        let max_age = max_age.and_then(|d| {
            crate::units::whole_seconds(d.0)
                .map_err(|e| errs.push(format!("{path}.max_age"), e))
                .ok()
        });
        if errs.0.len() > before {
            return None;
        }
        let method_names: Vec<String> = methods.iter().map(|m| m.to_string()).collect();
        Some(Cors {
            any_origin,
            origins: allow_origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
            methods_value: join(&method_names).unwrap_or(HeaderValue::from_static("GET")),
            methods,
            headers: allow_headers
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            headers_value: join(allow_headers),
            expose_value: join(expose_headers),
            credentials: *allow_credentials,
            max_age: max_age.map(HeaderValue::from),
        })
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        self.any_origin || self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }

    /// The request's Origin, when this policy allows it.
    fn allowed_origin<'a>(&self, v: &RequestView<'a>) -> Option<&'a str> {
        let origin = v.req.headers.get(http::header::ORIGIN)?.to_str().ok()?;
        self.origin_allowed(origin).then_some(origin)
    }

    /// Request phase: a preflight from an allowed origin is answered here (204); one from
    /// another origin, or asking for a method or header not allowed, is denied
    /// (`cors_origin_denied`). Actual requests go on; the browser enforces the response headers.
    pub fn request_filter(&self, v: &RequestView<'_>, _fx: &mut Effects) -> Outcome {
        let req = v.req;
        let Some(origin) = req
            .headers
            .get(http::header::ORIGIN)
            .and_then(|o| o.to_str().ok())
        else {
            return Outcome::Continue; // not a CORS request
        };
        let preflight = req.method == Method::OPTIONS
            && req
                .headers
                .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD);
        if !self.origin_allowed(origin) {
            return if preflight {
                Outcome::Deny(GatewayError::CorsOriginDenied)
            } else {
                // The browser enforces: without our headers it withholds the response.
                Outcome::Continue
            };
        }
        if !preflight {
            return Outcome::Continue;
        }
        let method_ok = req
            .headers
            .get(http::header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
            .is_some_and(|m| self.methods.contains(&m));
        let headers_ok = req
            .headers
            .get(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
            .and_then(|h| h.to_str().ok())
            .is_none_or(|list| {
                list.split(',')
                    .map(|h| h.trim().to_ascii_lowercase())
                    .filter(|h| !h.is_empty())
                    .all(|h| self.headers.contains(&h))
            });
        if !method_ok || !headers_ok {
            return Outcome::Deny(GatewayError::CorsOriginDenied);
        }
        let mut reply = Reply::new(204);
        self.decorate(&mut reply.headers, origin);
        reply.headers.push((
            http::header::ACCESS_CONTROL_ALLOW_METHODS,
            self.methods_value.clone(),
        ));
        if let Some(h) = &self.headers_value {
            reply
                .headers
                .push((http::header::ACCESS_CONTROL_ALLOW_HEADERS, h.clone()));
        }
        if let Some(m) = &self.max_age {
            reply
                .headers
                .push((http::header::ACCESS_CONTROL_MAX_AGE, m.clone()));
        }
        Outcome::Answer(reply)
    }

    fn decorate(&self, out: &mut Vec<(HeaderName, HeaderValue)>, origin: &str) {
        let value = if self.any_origin && !self.credentials {
            HeaderValue::from_static("*")
        } else {
            match HeaderValue::from_str(origin) {
                Ok(v) => v,
                Err(_) => return,
            }
        };
        out.push((http::header::ACCESS_CONTROL_ALLOW_ORIGIN, value));
        out.push((http::header::VARY, HeaderValue::from_static("Origin")));
        if self.credentials {
            out.push((
                http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            ));
        }
    }

    /// Response phase: the allow-origin headers on a response to an allowed origin, unless
    /// the response has them already (a preflight answered here, or an upstream doing CORS).
    pub fn response_filter(
        &self,
        v: &RequestView<'_>,
        resp: &ResponseHeader,
        out: &mut Vec<HeaderEdit>,
    ) {
        let Some(origin) = self.allowed_origin(v) else {
            return;
        };
        if resp
            .headers
            .contains_key(http::header::ACCESS_CONTROL_ALLOW_ORIGIN)
        {
            return;
        }
        let mut hs = Vec::new();
        self.decorate(&mut hs, origin);
        if let Some(e) = &self.expose_value {
            hs.push((http::header::ACCESS_CONTROL_EXPOSE_HEADERS, e.clone()));
        }
        out.extend(hs.into_iter().map(|(n, v)| HeaderEdit::Append(n, v)));
    }
}
