//! Policies: a closed enum, compiled once per snapshot, run at fixed phases.
//!
//! | phase (Pingora hook)        | what policies may do                                   |
//! |-----------------------------|--------------------------------------------------------|
//! | `request_filter`            | decide: continue, deny with an error, or answer        |
//! | `upstream_request_filter`   | change the request sent upstream (headers)             |
//! | `response_filter`           | change the response sent to the client (headers, CORS) |
//!
//! A denial is a value (`Flow::Deny`), not an `Err`. Conditions (`when`) are evaluated once, in
//! the request phase; the later phases run only the policies that were active for the request.

pub mod cors;
pub mod headers;
pub mod jwt_auth;
pub mod jwt_generate;
pub mod jwt_verify;
pub mod keyconf;

use crate::cache::verified::VerifiedCaches;
use crate::config::{EnabledConfig, InlinePolicy, PolicyBody, PolicyEntry};
use crate::error::{Errors, GatewayError};
use crate::expr::Condition;
use crate::keys::KeyCache;
use crate::reply::{ErrorOverride, Reply};
use crate::request::RequestView;
use http::{HeaderName, HeaderValue};
use pingora_http::{RequestHeader, ResponseHeader};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// What a policy decided in the request phase.
#[derive(Debug)]
pub enum Flow {
    Continue,
    Deny(GatewayError),
    Respond(Reply),
}

/// Per-request state that policies hand from the request phase to later phases.
#[derive(Debug, Default)]
pub struct PolicyState {
    /// Bit i set: policy i of the route's chain was active (enabled and `when` true).
    pub active: u64,
    /// The CORS origin to echo in the response, set by the cors policy.
    pub cors_origin: Option<String>,
    /// Claims of the last verified token (`claims.*` variables).
    pub claims: Option<Arc<Map<String, Value>>>,
    /// The identity established by a token policy (`identity` variable).
    pub identity: Option<Arc<str>>,
    /// Headers to remove from, then add to, the request sent upstream.
    pub upstream_remove: Vec<HeaderName>,
    pub upstream_add: Vec<(HeaderName, HeaderValue)>,
    /// Query parameters to set on the request sent upstream.
    pub upstream_query: Vec<(String, String)>,
    /// Headers to add to the response sent to the client.
    pub response_add: Vec<(HeaderName, HeaderValue)>,
    /// The request body as read (when a policy of the route needs it), raw and as JSON.
    pub body_raw: Option<bytes::Bytes>,
    pub body: Option<Arc<Value>>,
    /// A new request body for the upstream.
    pub request_body: Option<bytes::Bytes>,
    /// A new response body for the client.
    pub response_body: Option<bytes::Bytes>,
    /// Named values for later policies (`var.NAME`), e.g. a minted token.
    pub vars: Option<Arc<std::collections::HashMap<String, String>>>,
    /// Decisions worth recording: (policy index, outcome code, shadow).
    pub decisions: Vec<(usize, &'static str, bool)>,
}

#[derive(Debug)]
pub enum Kind {
    Headers(headers::Headers),
    Cors(cors::Cors),
    JwtVerify(Box<jwt_verify::JwtVerify>),
    JwtGenerate(Box<jwt_generate::JwtGenerate>),
    JwtAuth(Box<jwt_auth::JwtAuth>),
}

/// What compiling a snapshot needs besides the config: the long-lived caches policies use, and
/// a record of the verified-token caches the new snapshot uses (the others are dropped after
/// the swap).
pub struct CompileCtx<'a> {
    /// Remote key sets, by URL.
    pub keys: &'a Arc<KeyCache>,
    pub verified: &'a VerifiedCaches,
    pub used_caches: HashSet<String>,
    /// The compiled `[token_service]`, for `jwt_auth`.
    pub token: Option<Arc<crate::token::TokenService>>,
}

/// A compiled policy with its common settings.
#[derive(Debug)]
pub struct Policy {
    /// `headers`, or the name of the `[policies.NAME]` it came from.
    pub label: String,
    pub shadow: bool,
    pub when: Option<Condition>,
    pub errors: Option<Arc<ErrorOverride>>,
    pub kind: Kind,
}

/// The most policies one route may run (global + own); the active set is a bit mask.
pub const MAX_POLICIES_PER_ROUTE: usize = 64;

impl Policy {
    fn compile(
        p: &InlinePolicy,
        label: String,
        path: &str,
        errs: &mut Errors,
        cx: &mut CompileCtx<'_>,
    ) -> Option<Policy> {
        let InlinePolicy {
            enabled,
            when,
            errors,
            body,
            original: _,
        } = p;
        let shadow = match enabled {
            EnabledConfig::On => false,
            EnabledConfig::Off => return None,
            EnabledConfig::Shadow if matches!(body, PolicyBody::JwtVerify(_)) => true,
            EnabledConfig::Shadow => {
                errs.push(
                    format!("{path}.enabled"),
                    "\"shadow\" is for policies that deny requests; this type only transforms",
                );
                return None;
            }
        };
        let when = when
            .as_ref()
            .map(|w| Condition::compile(w, &format!("{path}.when"), errs));
        let when = match when {
            Some(None) => return None,
            Some(Some(c)) => Some(c),
            None => None,
        };
        let errors = errors
            .as_ref()
            .map(|e| ErrorOverride::compile(e, &format!("{path}.errors"), errs).map(Arc::new));
        let errors = match errors {
            Some(None) => return None,
            Some(Some(e)) => Some(e),
            None => None,
        };
        let kind = match body {
            PolicyBody::Headers(h) => Kind::Headers(headers::Headers::compile(h, path, errs)?),
            PolicyBody::Cors(c) => Kind::Cors(cors::Cors::compile(c, path, errs)?),
            PolicyBody::JwtVerify(c) => {
                let cache = jwt_verify::JwtVerify::cache_capacity(c).map(|cap| {
                    let fp = format!(
                        "jwt_verify:{}",
                        serde_json::to_string(c).unwrap_or_default()
                    );
                    cx.used_caches.insert(fp.clone());
                    cx.verified.get(&fp, cap)
                });
                Kind::JwtVerify(Box::new(jwt_verify::JwtVerify::compile(
                    c, path, errs, cache, cx.keys,
                )?))
            }
            PolicyBody::JwtGenerate(c) => Kind::JwtGenerate(Box::new(
                jwt_generate::JwtGenerate::compile(c, path, errs, cx.keys)?,
            )),
            PolicyBody::JwtAuth(c) => Kind::JwtAuth(Box::new(jwt_auth::JwtAuth::compile(
                c,
                path,
                errs,
                cx.token.clone(),
            )?)),
        };
        Some(Policy {
            label,
            shadow,
            when,
            errors,
            kind,
        })
    }

    /// Whether this policy runs for the request.
    pub fn applies(&self, v: &RequestView<'_>) -> bool {
        self.when.as_ref().is_none_or(|c| c.eval(v))
    }

    /// Request phase. `idx` is this policy's place in the route's chain.
    pub async fn on_request(&self, idx: usize, v: &RequestView<'_>, st: &mut PolicyState) -> Flow {
        match &self.kind {
            Kind::Headers(_) => Flow::Continue,
            Kind::Cors(c) => c.on_request(v, st),
            Kind::JwtVerify(j) => match j.on_request(v, st, self.shadow).await {
                Ok(()) => {
                    if self.shadow {
                        st.decisions.push((idx, "ok", true));
                    }
                    Flow::Continue
                }
                Err(e) if self.shadow => {
                    st.decisions.push((idx, e.code(), true));
                    Flow::Continue
                }
                Err(e) => Flow::Deny(e),
            },
            Kind::JwtGenerate(g) => match g.on_request(v, st).await {
                Ok(()) => Flow::Continue,
                Err(e) => Flow::Deny(e),
            },
            Kind::JwtAuth(j) => match j.on_request(v, st).await {
                Ok(()) => Flow::Continue,
                Err(e) => Flow::Deny(e),
            },
        }
    }

    /// Upstream-request phase. `v` views the client's request and the policy results.
    pub fn on_upstream_request(&self, req: &mut RequestHeader, v: &RequestView<'_>) {
        match &self.kind {
            Kind::Headers(h) => h.request.apply_request(req, v),
            Kind::Cors(_) => {}
            Kind::JwtVerify(j) => {
                if !self.shadow {
                    j.strip_token(req)
                }
            }
            Kind::JwtAuth(j) => j.strip_token(req),
            Kind::JwtGenerate(_) => {}
        }
    }

    /// Whether the request body must be read (and buffered) before this policy runs.
    pub fn reads_body(&self) -> bool {
        match &self.kind {
            Kind::JwtGenerate(g) => g.reads_body,
            Kind::JwtVerify(j) => j.reads_body,
            _ => false,
        }
    }

    /// The realm of the Bearer challenge, for token policies.
    pub fn realm(&self) -> Option<&str> {
        match &self.kind {
            Kind::JwtVerify(j) => j.realm.as_deref(),
            Kind::JwtAuth(j) => j.realm.as_deref(),
            _ => None,
        }
    }

    /// Response phase. Runs for answers from the upstream and from the gateway alike.
    pub fn on_response(&self, resp: &mut ResponseHeader, st: &PolicyState, v: &RequestView<'_>) {
        match &self.kind {
            Kind::Headers(h) => h.response.apply_response(resp, v),
            Kind::Cors(c) => c.on_response(resp, st),
            Kind::JwtVerify(_) | Kind::JwtGenerate(_) | Kind::JwtAuth(_) => {}
        }
    }
}

/// Named policies compiled once, shared by every route that uses them.
pub type Named = BTreeMap<String, Option<Arc<Policy>>>;

pub fn compile_named(
    raw: &BTreeMap<String, PolicyEntry>,
    errs: &mut Errors,
    cx: &mut CompileCtx<'_>,
) -> BTreeMap<String, Option<Arc<Policy>>> {
    let mut out = BTreeMap::new();
    for (name, entry) in raw {
        let path = format!("policies.{name}");
        match entry {
            PolicyEntry::Use(_) => {
                errs.push(
                    &path,
                    "a named policy must be defined inline, not with `use`",
                );
            }
            PolicyEntry::Inline(p) => {
                let before = errs.0.len();
                let compiled = Policy::compile(p, name.clone(), &path, errs, cx);
                if errs.0.len() == before {
                    // None here means `enabled = false`: kept in config, skipped at run time.
                    out.insert(name.clone(), compiled.map(Arc::new));
                }
            }
        }
    }
    out
}

/// Compile a policy list (global or per route) into the chain, resolving `use` references.
pub fn compile_chain(
    entries: &[PolicyEntry],
    named: &Named,
    raw_named: &BTreeMap<String, PolicyEntry>,
    path: &str,
    errs: &mut Errors,
    cx: &mut CompileCtx<'_>,
) -> Vec<Arc<Policy>> {
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let p = format!("{path}[{i}]");
        match e {
            PolicyEntry::Use(name) => match named.get(name) {
                Some(Some(pol)) => out.push(pol.clone()),
                Some(None) => {}
                None if raw_named.contains_key(name) => {} // its own errors are reported
                None => errs.push(
                    format!("{p}.use"),
                    format!("no policy named {name:?} in [policies]"),
                ),
            },
            PolicyEntry::Inline(ip) => {
                let label = match &ip.body {
                    PolicyBody::Headers(_) => "headers",
                    PolicyBody::Cors(_) => "cors",
                    PolicyBody::JwtVerify(_) => "jwt_verify",
                    PolicyBody::JwtGenerate(_) => "jwt_generate",
                    PolicyBody::JwtAuth(_) => "jwt_auth",
                };
                if let Some(pol) = Policy::compile(ip, label.to_string(), &p, errs, cx) {
                    out.push(Arc::new(pol));
                }
            }
        }
    }
    out
}
