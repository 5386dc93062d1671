//! The `jwt_auth` policy: accept only the access tokens this gateway's token service issued
//! (`[token_service]`), on a route.
//!
//! A JWT is checked by signature with the service's own keys (next, current, previous), its
//! `typ` (`at+jwt`), `iss` and `exp`, then its revocation state in the token store; an opaque
//! token by store lookup. A store that cannot answer fails closed (503), never open. Then the
//! route's rules: audience (401 when it does not match: the token is not for this API), and
//! authorization by scope, role and client, per method (403). The user and roles go upstream
//! in headers whose incoming copies are always removed first, so a client cannot forge them.
//!
//! Tokens are read from the configured `sources`, the same as `jwt_verify`'s (default
//! `Authorization: Bearer`; a query parameter only when listed, RFC 9700 §4.3.2), with the
//! same refusal of a request carrying two different tokens. With `bind_client_ip` on the
//! issuing client, a token is refused from any other address than the one it was issued to.

use super::edits::HeaderEdit;
use super::token_source::{self, Source};
use super::Effects;
use crate::config::policy::jwt_auth::{JwtAuthConfig, RuleConfig};
use crate::error::{Errors, GatewayError};
use crate::request::RequestView;
use crate::store::now_unix;
use crate::token::TokenService;
use http::{HeaderName, HeaderValue, Method};
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Default)]
struct Rule {
    scopes: Vec<String>,
    roles: Vec<String>,
    clients: Vec<String>,
}

impl Rule {
    fn from(c: &RuleConfig) -> Rule {
        let RuleConfig {
            scopes,
            roles,
            clients,
        } = c;
        Rule {
            scopes: scopes.clone(),
            roles: roles.clone(),
            clients: clients.clone(),
        }
    }
}

#[derive(Debug)]
pub struct JwtAuth {
    service: Arc<TokenService>,
    sources: Vec<Source>,
    audiences: Vec<String>,
    default: Rule,
    methods: HashMap<Method, Rule>,
    user_header: Option<HeaderName>,
    roles_header: Option<HeaderName>,
    clear: bool,
    check_ip: bool,
    /// A form source: the body is read before this policy runs.
    pub reads_body: bool,
    pub realm: Option<String>,
}

fn header(name: &str, path: &str, errs: &mut Errors) -> Option<HeaderName> {
    if name.is_empty() {
        return None;
    }
    HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
        .map_err(|_| errs.push(path, format!("invalid header name {name:?}")))
        .ok()
}

impl JwtAuth {
    pub fn compile(
        c: &JwtAuthConfig,
        path: &str,
        errs: &mut Errors,
        service: Option<Arc<TokenService>>,
    ) -> Option<JwtAuth> {
        let JwtAuthConfig {
            sources,
            audiences,
            scopes,
            roles,
            clients,
            methods,
            user_header,
            roles_header,
            clear_authorization,
            check_client_ip,
            realm,
        } = c;
        let before = errs.0.len();
        if service.is_none() {
            errs.push(path, "jwt_auth needs a [token_service] section");
        }
        let sources = token_source::compile_all(sources, path, errs);
        let mut m = HashMap::new();
        for (name, rule) in methods {
            match Method::from_bytes(name.to_ascii_uppercase().as_bytes()) {
                Ok(meth) => {
                    m.insert(meth, Rule::from(rule));
                }
                Err(_) => errs.push(format!("{path}.methods.{name}"), "invalid method"),
            }
        }
        let user_header = header(user_header, &format!("{path}.user_header"), errs);
        let roles_header = header(roles_header, &format!("{path}.roles_header"), errs);
        if errs.0.len() > before {
            return None;
        }
        Some(JwtAuth {
            service: service?,
            reads_body: token_source::reads_body(&sources),
            sources,
            audiences: audiences.clone(),
            default: Rule {
                scopes: scopes.clone(),
                roles: roles.clone(),
                clients: clients.clone(),
            },
            methods: m,
            user_header,
            roles_header,
            clear: *clear_authorization,
            check_ip: *check_client_ip,
            realm: realm.clone(),
        })
    }

    /// Request phase: authenticate (401/503), then authorize (403). Ok: the token's subject
    /// and claims are established; the user and roles headers (and the token's removal with
    /// `clear_authorization`) are queued for the upstream request.
    pub async fn request_filter(
        &self,
        v: &RequestView<'_>,
        fx: &mut Effects,
    ) -> Result<(), GatewayError> {
        let (_, token) = token_source::extract(&self.sources, v)?;
        let info = self.service.check_access(&token, now_unix()).await?;
        if !self.audiences.is_empty() && !info.aud.iter().any(|a| self.audiences.contains(a)) {
            return Err(GatewayError::AudienceMismatch);
        }
        if self.check_ip {
            if let Some(bound) = info.client_ip {
                if v.client_ip != Some(bound) {
                    return Err(GatewayError::TokenBindingMismatch);
                }
            }
        }
        let rule = self.methods.get(&v.req.method).unwrap_or(&self.default);
        let scopes_ok = rule.scopes.iter().all(|s| info.scope.contains(s));
        let roles_ok = rule.roles.is_empty() || rule.roles.iter().any(|r| info.roles.contains(r));
        let client_ok = rule.clients.is_empty() || rule.clients.contains(&info.client_id);
        if !(scopes_ok && roles_ok && client_ok) {
            return Err(GatewayError::AccessDenied);
        }
        let edits = &mut fx.edits;
        if self.clear {
            token_source::remove(&self.sources, v, edits);
        }
        if let Some(h) = &self.user_header {
            edits.upstream.push(HeaderEdit::Remove(h.clone()));
            if let Ok(val) = HeaderValue::from_str(&info.sub) {
                edits.upstream.push(HeaderEdit::Append(h.clone(), val));
            }
        }
        if let Some(h) = &self.roles_header {
            edits.upstream.push(HeaderEdit::Remove(h.clone()));
            if let Ok(val) = HeaderValue::from_str(&info.roles.join(",")) {
                if !info.roles.is_empty() {
                    edits.upstream.push(HeaderEdit::Append(h.clone(), val));
                }
            }
        }
        fx.identity = Some(Arc::from(info.sub.as_str()));
        fx.claims = Some(Arc::new(info.claims(&self.service.issuer)));
        Ok(())
    }
}
