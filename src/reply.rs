//! The ONE place where errors and gateway answers become HTTP responses.
//!
//! Default error body: `{"statusCode":404,"errorCode":"no_route","message":"..."}` as JSON.
//! Operators override any part per policy, per route, or globally (`ErrorOverride`), and per
//! error code within each level; the most specific setting wins, field by field.

use crate::config::ErrorOverrideConfig;
use crate::error::{Errors, GatewayError};
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use pingora_http::ResponseHeader;
use std::collections::HashMap;

/// A response produced at the gateway (direct response, preflight, or rendered error).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    /// The stable error code when this reply renders an error (for logs and metrics).
    pub error_code: Option<&'static str>,
}

impl Reply {
    pub fn new(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
            error_code: None,
        }
    }

    /// The response header, with Content-Length set from the body.
    pub fn header(&self) -> pingora_error::Result<ResponseHeader> {
        let mut h = ResponseHeader::build(self.status, Some(self.headers.len() + 2))?;
        for (n, v) in &self.headers {
            h.append_header(n.clone(), v.clone())?;
        }
        h.insert_header(http::header::CONTENT_LENGTH, self.body.len())?;
        Ok(h)
    }
}

/// A compiled error customisation.
#[derive(Debug, Default)]
pub struct ErrorOverride {
    status: Option<u16>,
    error_code: Option<String>,
    message: Option<String>,
    content_type: Option<HeaderValue>,
    body: Option<String>,
    headers: Vec<(HeaderName, HeaderValue)>,
    codes: HashMap<String, ErrorOverride>,
}

impl ErrorOverride {
    pub fn compile(
        c: &ErrorOverrideConfig,
        path: &str,
        errs: &mut Errors,
    ) -> Option<ErrorOverride> {
        Self::compile_level(c, path, errs, true)
    }

    fn compile_level(
        c: &ErrorOverrideConfig,
        path: &str,
        errs: &mut Errors,
        top: bool,
    ) -> Option<ErrorOverride> {
        let ErrorOverrideConfig {
            status,
            error_code,
            message,
            content_type,
            body,
            headers,
            codes,
        } = c;
        let before = errs.0.len();
        if let Some(s) = status {
            if !(100..=599).contains(s) {
                errs.push(format!("{path}.status"), "must be 100..=599");
            }
        }
        let content_type = content_type.as_ref().and_then(|ct| {
            HeaderValue::from_str(ct)
                .map_err(|_| errs.push(format!("{path}.content_type"), "invalid header value"))
                .ok()
        });
        let mut hs = Vec::new();
        for (k, v) in headers {
            let p = format!("{path}.headers.{k}");
            match (
                HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()),
                HeaderValue::from_str(v),
            ) {
                (Ok(n), Ok(v)) => hs.push((n, v)),
                _ => errs.push(p, "invalid header name or value"),
            }
        }
        let mut cs = HashMap::new();
        if !codes.is_empty() && !top {
            errs.push(format!("{path}.codes"), "codes cannot be nested");
        }
        for (code, sub) in codes {
            if let Some(o) = Self::compile_level(sub, &format!("{path}.codes.{code}"), errs, false)
            {
                cs.insert(code.clone(), o);
            }
        }
        if errs.0.len() > before {
            return None;
        }
        Some(ErrorOverride {
            status: *status,
            error_code: error_code.clone(),
            message: message.clone(),
            content_type,
            body: body.clone(),
            headers: hs,
            codes: cs,
        })
    }
}

fn json_escape(s: &str) -> String {
    let q = serde_json::to_string(s).unwrap_or_default();
    q.get(1..q.len().saturating_sub(1))
        .unwrap_or("")
        .to_string()
}

/// Render an error through the override levels, most specific first (policy, route, global).
pub fn render_error(e: &GatewayError, levels: &[Option<&ErrorOverride>]) -> Reply {
    let code = e.code();
    // Per level: the code-specific override, then the level's own.
    let chain: Vec<&ErrorOverride> = levels
        .iter()
        .flatten()
        .flat_map(|l| [l.codes.get(code), Some(*l)])
        .flatten()
        .collect();
    let pick = |f: &dyn Fn(&ErrorOverride) -> Option<String>| chain.iter().find_map(|o| f(o));
    let status = chain.iter().find_map(|o| o.status).unwrap_or(e.status());
    let out_code = pick(&|o| o.error_code.clone()).unwrap_or_else(|| code.to_string());
    let message = pick(&|o| o.message.clone()).unwrap_or_else(|| e.message().to_string());
    let body = match chain.iter().find_map(|o| o.body.as_ref()) {
        Some(t) => t
            .replace("{status}", &status.to_string())
            .replace("{code}", &json_escape(&out_code))
            .replace("{message}", &json_escape(&message)),
        None => serde_json::json!({
            "statusCode": status,
            "errorCode": out_code,
            "message": message,
        })
        .to_string(),
    };
    let content_type = chain
        .iter()
        .find_map(|o| o.content_type.clone())
        .unwrap_or(HeaderValue::from_static("application/json"));
    let mut reply = Reply::new(status);
    reply
        .headers
        .push((http::header::CONTENT_TYPE, content_type));
    reply.headers.push((
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    ));
    let mut seen: Vec<&HeaderName> = Vec::new();
    for o in &chain {
        for (n, v) in &o.headers {
            if !seen.contains(&n) {
                reply.headers.push((n.clone(), v.clone()));
            }
        }
        seen.extend(o.headers.iter().map(|(n, _)| n));
    }
    reply.body = Bytes::from(body);
    reply.error_code = Some(code);
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ov(src: &str) -> ErrorOverride {
        let c: ErrorOverrideConfig = toml::from_str(src).unwrap();
        let mut e = Errors::default();
        ErrorOverride::compile(&c, "errors", &mut e).unwrap()
    }

    #[test]
    fn default_body_is_json() {
        let r = render_error(&GatewayError::NoRoute, &[]);
        assert_eq!(r.status, 404);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["statusCode"], 404);
        assert_eq!(v["errorCode"], "no_route");
    }

    #[test]
    fn most_specific_wins_field_by_field() {
        let route = ov(r#"message = "route msg"
headers = { x-a = "route" }
[codes.upstream_timeout]
status = 503
"#);
        let global = ov(r#"content_type = "application/problem+json"
body = '{"s":{status},"c":"{code}","m":"{message}"}'
headers = { x-a = "global", x-b = "global" }
"#);
        let r = render_error(
            &GatewayError::UpstreamTimeout,
            &[None, Some(&route), Some(&global)],
        );
        assert_eq!(r.status, 503);
        assert_eq!(
            std::str::from_utf8(&r.body).unwrap(),
            r#"{"s":503,"c":"upstream_timeout","m":"route msg"}"#
        );
        let xa: Vec<_> = r.headers.iter().filter(|(n, _)| n == "x-a").collect();
        assert_eq!(xa.len(), 1);
        assert_eq!(xa[0].1, "route");
        assert!(r
            .headers
            .iter()
            .any(|(n, v)| n == "content-type" && v == "application/problem+json"));
    }

    #[test]
    fn template_values_are_escaped() {
        let o = ov(r#"message = "say \"hi\"\n"
body = '{"m":"{message}"}'"#);
        let r = render_error(&GatewayError::NoRoute, &[Some(&o)]);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["m"], "say \"hi\"\n");
    }
}
