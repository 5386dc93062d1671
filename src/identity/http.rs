//! The `http` source: an external API decides. The request (URL, method, headers, body) is
//! rendered from templates of the value language with `var.username` and `var.password`
//! added; every value is escaped for the body's content type (JSON string contents, or
//! form encoding), so a username like `","admin":true,"x":"` stays a string.
//!
//! Answers: a status in `reject_status` rejects; a 2xx answer accepts (or, with
//! `accept_pointer`, only when that member is `true`) and maps roles, scopes and subject from
//! JSON pointers; anything else, a body over `max_response`, or unparsable JSON is a source
//! error (503 at the token endpoint). The optional regenerator (`refresh_url`) is called on
//! refresh_token grants with the same rules.
//!
//! The client is hyper-util's pooled client with hyper-rustls (aws-lc-rs): connections are
//! kept alive, since with the cache off every login is a call. `https://` is required except
//! to loopback hosts (the same rule as JWKS URLs).

use super::config::HttpSourceConfig;
use super::{split_list, Answer, Ctx, Identity, IdentityError};
use crate::error::Errors;
use crate::expr::Template;
use crate::request::RequestView;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

pub struct HttpSource {
    client: HttpsClient,
    method: Method,
    login: Call,
    refresh: Option<Call>,
    headers: Vec<(HeaderName, Template)>,
    json: bool,
    content_type: HeaderValue,
    reject: Vec<u16>,
    accept: Option<String>,
    roles: Option<String>,
    scopes: Option<String>,
    subject: Option<String>,
    max_response: usize,
}

struct Call {
    uri: Uri,
    body: Template,
}

/// A rendered request, ready to send.
pub struct Rendered {
    uri: Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: zeroize::Zeroizing<String>,
    username: String,
    /// A regenerator call: the answer need not name the subject (the token's stays).
    refresh: bool,
}

impl Rendered {
    /// What the cache key covers besides the username: everything sent.
    pub fn cache_material(&self) -> zeroize::Zeroizing<String> {
        let mut s = zeroize::Zeroizing::new(String::new());
        for (k, v) in &self.headers {
            s.push_str(k.as_str());
            s.push(':');
            s.push_str(&String::from_utf8_lossy(v.as_bytes()));
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&self.body);
        s
    }
}

/// A rustls client config on aws-lc-rs trusting `ca_file` (PEM) or the system's roots.
pub fn tls_config(ca_file: Option<&str>) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(f) => {
            let certs = CertificateDer::pem_file_iter(f)
                .map_err(|e| format!("cannot read {f:?}: {e}"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("bad PEM in {f:?}: {e}"))?;
            if certs.is_empty() {
                return Err(format!("no certificate in {f:?}"));
            }
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| format!("bad certificate in {f:?}: {e}"))?;
            }
        }
        None => {
            if let Ok(certs) = rustls_native_certs::load_native_certs() {
                roots.add_parsable_certificates(certs);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// [`tls_config`], its error pushed at `{path}.ca_file`.
pub fn tls_config_at(
    ca_file: Option<&str>,
    path: &str,
    errs: &mut Errors,
) -> Option<Arc<rustls::ClientConfig>> {
    tls_config(ca_file)
        .map_err(|e| errs.push(format!("{path}.ca_file"), e))
        .ok()
}

fn check_url(u: &str, path: &str, errs: &mut Errors) -> Option<Uri> {
    match crate::keys::http::parse_url(u) {
        Ok(_) => u.parse::<Uri>().ok(),
        Err(e) => {
            errs.push(path.to_string(), format!("{e}"));
            None
        }
    }
}

fn check_pointer(p: &Option<String>, path: &str, errs: &mut Errors) {
    if let Some(p) = p {
        if !p.is_empty() && !p.starts_with('/') {
            errs.push(path.to_string(), "a JSON pointer starts with '/'");
        }
    }
}

/// Every variable of a JSON body must stand inside a string: values are escaped as string
/// contents, so `{"id": ${var.username}}` would let a username write JSON.
fn check_json_template(t: &Template, path: &str, errs: &mut Errors) {
    let text = t.with_markers(|i| format!("TGVAR{i}X"));
    if crate::jose::json::parse_strict(text.as_bytes()).is_err() {
        errs.push(
            path.to_string(),
            "must be a JSON document with every ${...} inside a string, e.g. {\"u\":\"${var.username}\"}",
        );
    }
}

fn template(s: &str, path: &str, errs: &mut Errors) -> Option<Template> {
    match Template::parse(s) {
        Ok(t) if t.reads_body() => {
            errs.push(
                path.to_string(),
                "the token request's body cannot be read here",
            );
            None
        }
        // A value new on every call (uuid, now) would make every request a cache miss and
        // defeat single flight.
        Ok(t) if t.is_volatile() => {
            errs.push(
                path.to_string(),
                "uuid and now change on every call: not allowed here",
            );
            None
        }
        Ok(t) => Some(t),
        Err(e) => {
            errs.push(path.to_string(), e);
            None
        }
    }
}

impl HttpSource {
    pub fn compile(c: &HttpSourceConfig, path: &str, errs: &mut Errors) -> Option<HttpSource> {
        let HttpSourceConfig {
            url,
            method,
            headers,
            body,
            content_type,
            reject_status,
            accept_pointer,
            accept_any_success,
            roles_pointer,
            scopes_pointer,
            subject_pointer,
            refresh_url,
            refresh_body,
            max_response,
            ca_file,
        } = c;
        let before = errs.0.len();
        let uri = check_url(url, &format!("{path}.url"), errs);
        let refresh_uri = refresh_url
            .as_ref()
            .and_then(|u| check_url(u, &format!("{path}.refresh_url"), errs));
        let method = match Method::from_bytes(method.to_ascii_uppercase().as_bytes()) {
            Ok(m) => m,
            Err(_) => {
                errs.push(format!("{path}.method"), "not an HTTP method");
                Method::POST
            }
        };
        let body_t = template(body, &format!("{path}.body"), errs);
        let refresh_t = template(
            refresh_body
                .as_deref()
                .unwrap_or(r#"{"username":"${var.username}"}"#),
            &format!("{path}.refresh_body"),
            errs,
        );
        let mut hs = Vec::new();
        for (k, v) in headers {
            let hp = format!("{path}.headers.{k}");
            match HeaderName::from_bytes(k.as_bytes()) {
                Ok(n) if n != http::header::HOST && n != http::header::CONTENT_LENGTH => {
                    if let Some(t) = template(v, &hp, errs) {
                        hs.push((n, t));
                    }
                }
                _ => errs.push(hp, "not a header name that may be set"),
            }
        }
        let ct = HeaderValue::from_str(content_type);
        if ct.is_err() {
            errs.push(format!("{path}.content_type"), "not a header value");
        }
        let json = content_type
            .split(';')
            .next()
            .is_some_and(|m| m.trim().to_ascii_lowercase().ends_with("json"));
        let form = content_type
            .to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded");
        if !json && !form {
            errs.push(
                format!("{path}.content_type"),
                "application/json (or +json) or application/x-www-form-urlencoded: values are escaped for it",
            );
        }
        if accept_pointer.is_none() && !*accept_any_success {
            errs.push(
                format!("{path}.accept_pointer"),
                "say what accepts: a JSON pointer to a true member, or accept_any_success = true \
                 (an API answering 200 {\"valid\":false} would otherwise accept every password)",
            );
        }
        if json {
            for (k, t) in [("body", &body_t), ("refresh_body", &refresh_t)] {
                if let Some(t) = t {
                    check_json_template(t, &format!("{path}.{k}"), errs);
                }
            }
        }
        for (k, p) in [
            ("accept_pointer", accept_pointer),
            ("roles_pointer", roles_pointer),
            ("scopes_pointer", scopes_pointer),
            ("subject_pointer", subject_pointer),
        ] {
            check_pointer(p, &format!("{path}.{k}"), errs);
        }
        if reject_status.iter().any(|s| !(400..=499).contains(s)) {
            errs.push(format!("{path}.reject_status"), "4xx statuses only");
        }
        if *max_response == 0 || *max_response > 1 << 20 {
            errs.push(format!("{path}.max_response"), "1..=1048576 bytes");
        }
        let tls = tls_config_at(ca_file.as_deref(), path, errs);
        if errs.0.len() > before {
            return None;
        }
        // hyper-rustls sets ALPN itself (and refuses a config that has it).
        let tls = Arc::unwrap_or_clone(tls?);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(std::time::Duration::from_secs(30))
            .build(connector);
        Some(HttpSource {
            client,
            method,
            login: Call {
                uri: uri?,
                body: body_t?,
            },
            refresh: match refresh_uri {
                Some(u) => Some(Call {
                    uri: u,
                    body: refresh_t?,
                }),
                None => None,
            },
            headers: hs,
            json,
            content_type: ct.ok()?,
            reject: reject_status.clone(),
            accept: accept_pointer.clone(),
            roles: roles_pointer.clone(),
            scopes: scopes_pointer.clone(),
            subject: subject_pointer.clone(),
            max_response: *max_response,
        })
    }

    fn render(
        &self,
        call: &Call,
        username: &str,
        password: Option<&str>,
        ctx: Ctx<'_>,
    ) -> Result<Rendered, IdentityError> {
        let mut vars = HashMap::new();
        vars.insert("username".to_string(), username.to_string());
        if let Some(p) = password {
            vars.insert("password".to_string(), p.to_string());
        }
        let unresolved =
            || IdentityError::BadRequest("a value the identity source needs is missing");
        let json = self.json;
        let (body, headers) = {
            let mut view = RequestView::new(ctx.req, ctx.client_ip);
            view.vars = Some(&vars);
            let body = call.body.render_with(&view, |v, out| {
                if json {
                    escape_json(v, out)
                } else {
                    out.extend(form_urlencoded::byte_serialize(v.as_bytes()))
                }
            });
            let mut headers = Vec::with_capacity(self.headers.len());
            for (n, t) in &self.headers {
                let v = t.render(&view).ok_or_else(unresolved)?;
                let v = HeaderValue::from_str(&v).map_err(|_| {
                    IdentityError::BadRequest("a value the identity source needs is malformed")
                })?;
                headers.push((n.clone(), v));
            }
            (body, headers)
        };
        // The map held a copy of the password.
        if let Some(p) = vars.get_mut("password") {
            zeroize::Zeroize::zeroize(p);
        }
        let body = zeroize::Zeroizing::new(body.ok_or_else(unresolved)?);
        Ok(Rendered {
            uri: call.uri.clone(),
            headers,
            body,
            username: username.to_string(),
            refresh: password.is_none(),
        })
    }

    pub fn render_login(
        &self,
        username: &str,
        password: &str,
        ctx: Ctx<'_>,
    ) -> Result<Rendered, IdentityError> {
        self.render(&self.login, username, Some(password), ctx)
    }

    /// None when no regenerator is configured.
    pub fn render_refresh(
        &self,
        username: &str,
        ctx: Ctx<'_>,
    ) -> Result<Option<Rendered>, IdentityError> {
        match &self.refresh {
            Some(c) => self.render(c, username, None, ctx).map(Some),
            None => Ok(None),
        }
    }

    pub async fn call(&self, r: Rendered) -> Result<Answer, IdentityError> {
        let mut b = Request::builder()
            .method(self.method.clone())
            .uri(r.uri)
            .header(http::header::CONTENT_TYPE, self.content_type.clone())
            .header(http::header::ACCEPT, "application/json");
        for (k, v) in r.headers {
            b = b.header(k, v);
        }
        let req = b
            .body(Full::new(Bytes::from(r.body.as_bytes().to_vec())))
            .map_err(|_| IdentityError::Unavailable("http: request".into()))?;
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| IdentityError::Unavailable(format!("http: {}", short(&e))))?;
        let status = resp.status();
        if self.reject.contains(&status.as_u16()) {
            // A refresh: only 404/410 say the user is gone; a 401/403 there is about this
            // gateway's own credentials, and must not end every grant.
            return Ok(match (r.refresh, status.as_u16()) {
                (false, _) => Answer::Rejected,
                (true, 404 | 410) => Answer::Gone,
                (true, _) => Answer::Unsure,
            });
        }
        if !status.is_success() {
            return Err(IdentityError::Unavailable(format!(
                "http: status {}",
                status.as_u16()
            )));
        }
        let body = Limited::new(resp.into_body(), self.max_response)
            .collect()
            .await
            .map_err(|_| IdentityError::Unavailable("http: answer too large or cut".into()))?
            .to_bytes();
        self.map(&body, r.username, r.refresh)
    }

    fn map(&self, body: &[u8], username: String, refresh: bool) -> Result<Answer, IdentityError> {
        let needs_json = self.accept.is_some()
            || self.roles.is_some()
            || self.scopes.is_some()
            || self.subject.is_some();
        let v: Value = if needs_json {
            match crate::jose::json::parse_strict(body) {
                Ok(v @ Value::Object(_)) => v,
                _ => {
                    return Err(IdentityError::Unavailable(
                        "http: the answer is not a JSON object".into(),
                    ))
                }
            }
        } else {
            Value::Null
        };
        if let Some(p) = &self.accept {
            if v.pointer(p) != Some(&Value::Bool(true)) {
                return Ok(if refresh {
                    Answer::Gone
                } else {
                    Answer::Rejected
                });
            }
        }
        let list = |p: &Option<String>| -> Vec<String> {
            match p.as_ref().and_then(|p| v.pointer(p)) {
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
                Some(Value::String(s)) => split_list(s, ","),
                _ => Vec::new(),
            }
        };
        let subject = match self.subject.as_ref() {
            Some(p) => match v.pointer(p) {
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                // A regenerator need not name the subject: "" = not known here.
                _ if refresh => String::new(),
                _ => {
                    return Err(IdentityError::Unavailable(
                        "http: no subject in the answer".into(),
                    ))
                }
            },
            None => username,
        };
        Ok(Answer::Accepted(Identity {
            subject,
            roles: list(&self.roles),
            scopes: list(&self.scopes),
        }))
    }
}

/// hyper-util's error chain, first line only, without URLs.
fn short(e: &hyper_util::client::legacy::Error) -> &'static str {
    if e.is_connect() {
        "connect failed"
    } else {
        "request failed"
    }
}

/// JSON string contents (no surrounding quotes).
fn escape_json(v: &str, out: &mut String) {
    let q = serde_json::to_string(v).unwrap_or_default();
    out.push_str(q.get(1..q.len().saturating_sub(1)).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escaping_keeps_strings_strings() {
        let mut s = String::from("{\"u\":\"");
        escape_json("\",\"admin\":true,\"x\":\"\\\n", &mut s);
        s.push_str("\"}");
        let v: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["u"], "\",\"admin\":true,\"x\":\"\\\n");
        assert!(v.get("admin").is_none());
    }
}
