//! What a token policy's failure leads to besides a refusal: `continue_on_error` (the request
//! goes on) and `on_error` (per error code, a named policy runs in place of the denial). The
//! chain runs both; this module compiles them and names the variables that record a result.

use super::{Named, Policy};
use crate::config::policy::OnErrorConfig;
use crate::config::{PolicyBody, PolicyEntry};
use crate::error::{Errors, GatewayError};
use std::collections::{BTreeMap, HashMap};
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
    let mut state: HashMap<&str, bool> = HashMap::new(); // false: on the path, true: done
    let mut order = Vec::new();
    let mut path = Vec::new();
    for name in raw.keys() {
        visit(name, raw, &mut state, &mut path, &mut order, errs);
    }
    order
}

fn visit<'a>(
    name: &'a str,
    raw: &'a BTreeMap<String, PolicyEntry>,
    state: &mut HashMap<&'a str, bool>,
    path: &mut Vec<&'a str>,
    order: &mut Vec<&'a str>,
    errs: &mut Errors,
) {
    if state.contains_key(name) {
        return;
    }
    state.insert(name, false);
    path.push(name);
    if let Some(PolicyEntry::Inline(p)) = raw.get(name) {
        for (code, h) in &p.on_error {
            let next = h.use_policy.as_str();
            match state.get(next) {
                Some(false) => {
                    let from = path.iter().position(|n| *n == next).unwrap_or(0);
                    let mut cycle = path[from..].to_vec();
                    cycle.push(next);
                    errs.push(
                        format!("policies.{name}.on_error.{code}.use"),
                        format!("on_error cycle: {}", cycle.join(" -> ")),
                    );
                }
                Some(true) => {}
                None if raw.contains_key(next) => {
                    visit(next, raw, state, path, order, errs);
                }
                None => {}
            }
        }
    }
    path.pop();
    state.insert(name, true);
    order.push(name);
}
