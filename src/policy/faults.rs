//! What a token policy's failure leads to besides a refusal: `continue_on_error` (the request
//! goes on) and `on_error` (per error code, a named policy runs in place of the denial). The
//! chain runs both; this module compiles them and names the variables that record a result.

use super::{Named, Policy};
use crate::config::policy::OnErrorConfig;
use crate::config::{PolicyBody, PolicyEntry};
use crate::error::{Errors, GatewayError};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The named policies compiled so far, and the config (to tell a missing name from one whose
/// own errors are reported).
#[derive(Clone, Copy)]
pub struct Lookup<'a> {
    pub named: &'a Named,
    pub raw: &'a BTreeMap<String, PolicyEntry>,
}

/// The variables recording a policy's result: `jwt.LABEL.failed` ("true" / "false") and, after
/// a failure, `jwt.LABEL.error` (its stable code).
pub fn result_vars(label: &str, error: Option<&'static str>) -> Vec<(String, String)> {
    let failed = (format!("jwt.{label}.failed"), error.is_some().to_string());
    match error {
        None => vec![failed],
        Some(code) => vec![failed, (format!("jwt.{label}.error"), code.to_string())],
    }
}

/// Refuse the fault keys where they cannot act: on policies other than the token policies
/// that fail a request, and in shadow mode (which never denies).
pub fn check_applies(
    continue_on_error: bool,
    on_error: &BTreeMap<String, OnErrorConfig>,
    body: &PolicyBody,
    shadow: bool,
    path: &str,
    errs: &mut Errors,
) {
    let token_policy = matches!(body, PolicyBody::JwtVerify(_) | PolicyBody::JwtGenerate(_));
    for (key, set) in [
        ("continue_on_error", continue_on_error),
        ("on_error", !on_error.is_empty()),
    ] {
        if !set {
            continue;
        }
        if !token_policy {
            errs.push(
                format!("{path}.{key}"),
                "is for jwt_verify and jwt_generate",
            );
        } else if shadow {
            errs.push(
                format!("{path}.{key}"),
                "a shadow policy never refuses a request, so this never applies",
            );
        }
    }
}

/// Resolve `on_error`: each key a known error code, each `use` a policy of `[policies]`. A
/// handler disabled with `enabled = false` leaves that code's denial as it is.
pub fn compile_on_error(
    on_error: &BTreeMap<String, OnErrorConfig>,
    path: &str,
    lookup: Lookup<'_>,
    errs: &mut Errors,
) -> Box<[(&'static str, Arc<Policy>)]> {
    let mut out = Vec::new();
    for (code, OnErrorConfig { use_policy }) in on_error {
        let p = format!("{path}.on_error.{code}");
        let Some(code) = GatewayError::ALL
            .iter()
            .map(GatewayError::code)
            .find(|c| c == code)
        else {
            errs.push(
                p,
                format!("unknown error code {code:?} (see the error code table)"),
            );
            continue;
        };
        match lookup.named.get(use_policy) {
            // A shadow policy keeps nothing, so it cannot stand in for a denial.
            Some(Some(h)) if h.shadow => errs.push(
                format!("{p}.use"),
                format!("{use_policy:?} is in shadow mode and cannot handle an error"),
            ),
            Some(Some(h)) => out.push((code, h.clone())),
            Some(None) => {}
            // Its own errors (or the cycle it is part of) are reported.
            None if lookup.raw.contains_key(use_policy) => {}
            None => errs.push(
                format!("{p}.use"),
                format!("no policy named {use_policy:?} in [policies]"),
            ),
        }
    }
    out.into_boxed_slice()
}

/// The names of `[policies]` in an order where every `on_error` handler comes before the
/// policies naming it. A cycle (a policy that would, through handlers, run in place of
/// itself) is refused at the `use` that closes it.
pub fn handlers_first<'a>(
    raw: &'a BTreeMap<String, PolicyEntry>,
    errs: &mut Errors,
) -> Vec<&'a str> {
    let edges = |name: &'a str| match raw.get(name) {
        Some(PolicyEntry::Inline(p)) => p
            .on_error
            .iter()
            .map(|(code, h)| {
                let path = format!("policies.{name}.on_error.{code}.use");
                (path, h.use_policy.as_str())
            })
            .collect(),
        _ => Vec::new(),
    };
    let known = |n: &str| raw.contains_key(n);
    let names = raw.keys().map(String::as_str);
    super::order::dependency_order(names, edges, known, "on_error cycle", errs).0
}
