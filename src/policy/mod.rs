//! Policies: a closed enum, compiled once per snapshot, run by the one runner in `chain.rs`.
//!
//! A policy reads the request and what earlier policies established through a
//! [`RequestView`], and answers with an [`Outcome`] (a denial is a value, not an `Err`) plus
//! explicit [`Edits`] the proxy applies without knowing which policy asked for them. Each
//! policy module has phase functions named after Pingora's hooks and unit tests without
//! sockets.

pub mod chain;
pub mod edits;

pub mod cors;
pub mod errors;
pub mod faults;
pub mod group;
pub mod headers;
pub mod jwt_auth;
pub mod jwt_generate;
pub mod jwt_verify;
pub mod keyconf;
mod keytext;
mod order;
pub mod reqkey;
#[cfg(test)]
mod tests;
pub mod token_source;

use crate::cache::verified::VerifiedCaches;
use crate::config::{EnabledConfig, InlinePolicy, PolicyBody, PolicyEntry};
use crate::error::Errors;
use crate::expr::Condition;
use crate::keys::KeyCache;
use crate::reply::ErrorOverride;
use crate::request::RequestView;
pub use chain::{Chain, Effects, Mode, Outcome, Run};
pub use edits::{Edits, HeaderEdit};
use pingora_http::ResponseHeader;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

#[derive(Debug)]
pub enum Kind {
    Headers(headers::Headers),
    Cors(Box<cors::Cors>),
    JwtVerify(Box<jwt_verify::JwtVerify>),
    JwtGenerate(Box<jwt_generate::JwtGenerate>),
    JwtAuth(Box<jwt_auth::JwtAuth>),
    Deny,
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
    pub when: Option<Box<Condition>>,
    pub errors: Option<Arc<ErrorOverride>>,
    /// A failure lets the request go on (recorded in `jwt.LABEL.*` variables).
    pub continue_on_error: bool,
    /// Per error code, the policy that runs in place of this one's denial.
    pub on_error: Box<[(&'static str, Arc<Policy>)]>,
    pub kind: Kind,
}

/// The phases a policy takes part in.
#[derive(Debug, Clone, Copy, Default)]
pub struct Phases {
    pub request: bool,
    pub upstream_request: bool,
    pub response: bool,
}

impl Policy {
    fn compile(
        p: &InlinePolicy,
        label: String,
        path: &str,
        errs: &mut Errors,
        cx: &mut CompileCtx<'_>,
        named: faults::Lookup<'_>,
    ) -> Option<Policy> {
        let InlinePolicy {
            enabled,
            when,
            errors,
            continue_on_error,
            on_error,
            body,
            display_name: _,
            description: _,
            original: _,
        } = p;
        let shadow = match enabled {
            EnabledConfig::On => false,
            EnabledConfig::Off => return None,
            EnabledConfig::Shadow
                if matches!(
                    body,
                    PolicyBody::JwtVerify(_) | PolicyBody::JwtAuth(_) | PolicyBody::Deny(_)
                ) =>
            {
                true
            }
            EnabledConfig::Shadow => {
                errs.push(
                    format!("{path}.enabled"),
                    "\"shadow\" is for policies that deny requests; this type only transforms",
                );
                return None;
            }
        };
        let before = errs.0.len();
        faults::check_applies(*continue_on_error, on_error, body, shadow, path, errs);
        let on_error = faults::compile_on_error(on_error, path, named, errs);
        if errs.0.len() > before {
            return None;
        }
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
            .map(|e| errors::compile_override(e, &format!("{path}.errors"), errs).map(Arc::new));
        let errors = match errors {
            Some(None) => return None,
            Some(Some(e)) => Some(e),
            None => None,
        };
        let kind = match body {
            PolicyBody::Headers(h) => Kind::Headers(headers::Headers::compile(h, path, errs)?),
            PolicyBody::Cors(c) => Kind::Cors(Box::new(cors::Cors::compile(c, path, errs)?)),
            PolicyBody::JwtVerify(c) => {
                let cache = jwt_verify::JwtVerify::cache_capacity(c).and_then(|cap| {
                    let fp = crate::fingerprint::of("jwt_verify", c)
                        .map_err(|e| errs.push(path, e))
                        .ok()?;
                    cx.used_caches.insert(fp.clone());
                    Some(cx.verified.get(&fp, cap))
                });
                Kind::JwtVerify(Box::new(jwt_verify::JwtVerify::compile(
                    c, path, errs, cache, cx.keys,
                )?))
            }
            PolicyBody::JwtGenerate(c) => Kind::JwtGenerate(Box::new(
                jwt_generate::JwtGenerate::compile(c, path, errs, cx.keys)?,
            )),
            PolicyBody::Deny(crate::config::DenyConfig {}) => Kind::Deny,
            PolicyBody::JwtAuth(c) => Kind::JwtAuth(Box::new(jwt_auth::JwtAuth::compile(
                c,
                path,
                errs,
                cx.token.clone(),
            )?)),
        };
        let policy = Policy {
            label,
            shadow,
            when: when.map(Box::new),
            errors,
            continue_on_error: *continue_on_error,
            on_error,
            kind,
        };
        if let Some(r) = policy.realm() {
            if !crate::reply::realm_is_valid(r) {
                errs.push(format!("{path}.realm"), crate::reply::REALM_RULE);
                return None;
            }
        }
        Some(policy)
    }

    /// The policy that runs in place of this one's denial with `code`.
    pub fn handler(&self, code: &str) -> Option<&Arc<Policy>> {
        self.on_error
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, h)| h)
    }

    /// Whether this policy's result is recorded in the `jwt.LABEL.*` variables.
    pub fn records_result(&self) -> bool {
        self.continue_on_error || !self.on_error.is_empty()
    }

    /// Whether this policy runs for the request.
    pub fn applies(&self, v: &RequestView<'_>) -> bool {
        self.when.as_ref().is_none_or(|c| c.eval(v))
    }

    /// The phases this policy takes part in (the chain lists it only there).
    pub fn phases(&self) -> Phases {
        let request = Phases {
            request: true,
            ..Phases::default()
        };
        match &self.kind {
            Kind::Headers(_) => Phases {
                upstream_request: true,
                response: true,
                ..Phases::default()
            },
            Kind::Cors(_) => Phases {
                response: true,
                ..request
            },
            Kind::JwtVerify(_) | Kind::JwtGenerate(_) | Kind::JwtAuth(_) | Kind::Deny => request,
        }
    }

    /// Request phase: decide, establish, queue edits. `pending` holds the edits earlier
    /// policies queued (a body rewrite builds on an earlier one).
    pub async fn request_filter(
        &self,
        v: &RequestView<'_>,
        pending: &Edits,
        fx: &mut Effects,
    ) -> Outcome {
        let done = match &self.kind {
            Kind::Headers(_) => Ok(()),
            Kind::Cors(c) => return c.request_filter(v, fx),
            Kind::JwtVerify(j) => j.request_filter(v, fx).await,
            Kind::JwtGenerate(g) => g.request_filter(v, pending, fx).await,
            Kind::JwtAuth(j) => j.request_filter(v, fx).await,
            Kind::Deny => Err(crate::error::GatewayError::Forbidden),
        };
        match done {
            Ok(()) => Outcome::Continue,
            Err(e) => Outcome::Deny(e),
        }
    }

    /// Upstream-request phase: header edits for the request sent upstream.
    pub fn upstream_request_filter(&self, v: &RequestView<'_>, out: &mut Vec<HeaderEdit>) {
        match &self.kind {
            Kind::Headers(h) => h.upstream_request_filter(v, out),
            Kind::Cors(_)
            | Kind::JwtVerify(_)
            | Kind::JwtGenerate(_)
            | Kind::JwtAuth(_)
            | Kind::Deny => {}
        }
    }

    /// Response phase: header edits for the response sent to the client, from the upstream
    /// or from the gateway alike. `resp` is the response as earlier policies left it.
    pub fn response_filter(
        &self,
        v: &RequestView<'_>,
        resp: &ResponseHeader,
        out: &mut Vec<HeaderEdit>,
    ) {
        match &self.kind {
            Kind::Headers(h) => h.response_filter(v, out),
            Kind::Cors(c) => c.response_filter(v, resp, out),
            Kind::JwtVerify(_) | Kind::JwtGenerate(_) | Kind::JwtAuth(_) | Kind::Deny => {}
        }
    }

    /// Whether the request body must be read (and buffered) before this policy runs.
    pub fn reads_body(&self) -> bool {
        match &self.kind {
            Kind::JwtGenerate(g) => g.reads_body,
            Kind::JwtVerify(j) => j.reads_body,
            Kind::JwtAuth(j) => j.reads_body,
            Kind::Headers(_) | Kind::Cors(_) | Kind::Deny => false,
        }
    }

    /// The realm of the Bearer challenge, for token policies.
    pub fn realm(&self) -> Option<&str> {
        match &self.kind {
            Kind::JwtVerify(j) => j.realm.as_deref(),
            Kind::JwtAuth(j) => j.realm.as_deref(),
            Kind::Headers(_) | Kind::Cors(_) | Kind::JwtGenerate(_) | Kind::Deny => None,
        }
    }
}

/// Named policies compiled once, shared by every route that uses them.
pub type Named = BTreeMap<String, Option<Arc<Policy>>>;

/// What a policy list can refer to: the compiled named policies and groups, and their raw
/// tables (a name whose table failed to compile has its own errors, so a reference to it adds
/// none).
pub struct Library<'a> {
    pub named: &'a Named,
    pub raw_named: &'a BTreeMap<String, PolicyEntry>,
    pub groups: &'a group::Groups,
    pub raw_groups: &'a BTreeMap<String, crate::config::PolicyGroupConfig>,
}

/// Compile `[policies]`, each handler named in an `on_error` before the policies that name it
/// (a cycle is refused).
pub fn compile_named(
    raw: &BTreeMap<String, PolicyEntry>,
    errs: &mut Errors,
    cx: &mut CompileCtx<'_>,
) -> Named {
    let mut out = BTreeMap::new();
    for name in faults::handlers_first(raw, errs) {
        let path = format!("policies.{name}");
        match raw.get(name) {
            None => {}
            Some(PolicyEntry::Use(_)) => {
                errs.push(
                    &path,
                    "a named policy must be defined inline, not with `use`",
                );
            }
            Some(PolicyEntry::Group(_)) => {
                errs.push(
                    &path,
                    "a named policy must be defined inline; name a set of policies in [policy_groups]",
                );
            }
            Some(PolicyEntry::Inline(p)) => {
                let before = errs.0.len();
                let lookup = faults::Lookup { named: &out, raw };
                let compiled = Policy::compile(p, name.to_string(), &path, errs, cx, lookup);
                if errs.0.len() == before {
                    // None here means `enabled = false`: kept in config, skipped at run time.
                    out.insert(name.to_string(), compiled.map(Arc::new));
                }
            }
        }
    }
    out
}

/// Compile a policy list (global, per route or of a group) into the chain, resolving `use`
/// references and expanding groups in place.
pub fn compile_chain(
    entries: &[PolicyEntry],
    lib: &Library<'_>,
    path: &str,
    errs: &mut Errors,
    cx: &mut CompileCtx<'_>,
) -> Vec<Arc<Policy>> {
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let p = format!("{path}[{i}]");
        match e {
            PolicyEntry::Use(name) => match lib.named.get(name) {
                Some(Some(pol)) => out.push(pol.clone()),
                Some(None) => {}
                None if lib.raw_named.contains_key(name) => {}
                None => errs.push(
                    format!("{p}.use"),
                    format!("no policy named {name:?} in [policies]"),
                ),
            },
            PolicyEntry::Group(name) => match lib.groups.get(name) {
                Some(list) => out.extend(list.iter().cloned()),
                None if lib.raw_groups.contains_key(name) => {}
                None => errs.push(
                    format!("{p}.group"),
                    format!("no group named {name:?} in [policy_groups]"),
                ),
            },
            PolicyEntry::Inline(ip) => {
                let label = ip.body.type_name().to_string();
                let lookup = faults::Lookup {
                    named: lib.named,
                    raw: lib.raw_named,
                };
                if let Some(pol) = Policy::compile(ip, label, &p, errs, cx, lookup) {
                    out.push(Arc::new(pol));
                }
            }
        }
    }
    out
}
