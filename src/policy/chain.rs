//! The one policy runner. A route's policies (global ones first, then the route's own) compile
//! into ordered per-phase lists; the runner applies `when`, shadow mode and ordering in one
//! place, merges what each policy established (claims, identity, variables) and the edits it
//! queued, and stops the request phase at the first denial or answer.
//!
//! | phase                     | a policy may                                              |
//! |---------------------------|-----------------------------------------------------------|
//! | request                   | continue, deny (error) or answer (reply); establish       |
//! |                           | claims, identity, variables; queue request/response edits |
//! | upstream request          | queue header edits for the request sent upstream          |
//! | response                  | queue header edits for the response sent to the client    |
//!
//! The logging phase has no policy work: the runner records each decision (`Decision`) and a
//! denial's detail, which the proxy's `logging` hook writes to metrics and the access log.
//!
//! `when` is evaluated once, in the request phase; a policy whose condition was false (or that
//! never ran because an earlier one ended the chain) takes part in no later phase. A shadow
//! policy runs and has its decision recorded, but nothing it established or queued is kept.
//!
//! A token policy's failure does not always end the request phase: with `on_error` for its code
//! the named handler runs in its place (and is active in later phases like any policy that
//! ran); else with `continue_on_error` the request goes on. Either way the denial is recorded,
//! what the failed policy queued is dropped, and its result is kept in `jwt.LABEL.failed` /
//! `jwt.LABEL.error` for later policies. Handlers are listed after the route's policies, so
//! they have per-phase slots but run only in place of a denial.

use super::edits::{apply_headers, Edits, HeaderEdit};
use super::Policy;
use crate::error::GatewayError;
use crate::reply::Reply;
use crate::request::RequestView;
use pingora_http::ResponseHeader;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// What a policy decided in the request phase.
#[derive(Debug)]
pub enum Outcome {
    Continue,
    Deny(GatewayError),
    Answer(Reply),
}

/// What one policy's request phase produced besides its outcome.
#[derive(Debug, Default)]
pub struct Effects {
    pub claims: Option<Arc<Map<String, Value>>>,
    pub identity: Option<Arc<str>>,
    /// Named values for later policies (`var.NAME`).
    pub vars: Vec<(String, String)>,
    pub edits: Edits,
    /// Why the policy denied (which claim, which rule): for logs, never for the client.
    pub detail: Option<String>,
}

/// What earlier policies established, readable by later ones through the request view.
#[derive(Debug, Default)]
pub struct Established {
    pub claims: Option<Arc<Map<String, Value>>>,
    pub identity: Option<Arc<str>>,
    pub vars: Option<Arc<HashMap<String, String>>>,
}

/// A decision worth recording in metrics and the access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The policy's place in the route's chain.
    pub policy: usize,
    pub code: &'static str,
    pub mode: Mode,
}

/// What became of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Applied: a denial ended the request phase.
    Enforce,
    /// Recorded only (`enabled = "shadow"`).
    Shadow,
    /// A denial the request went on after (`continue_on_error`).
    Continue,
    /// A denial an `on_error` handler ran in place of.
    Handled,
}

impl Mode {
    /// The metric label and access-log word.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Shadow => "shadow",
            Mode::Continue => "continue",
            Mode::Handled => "handled",
        }
    }
}

/// A route's policies, in order, with the per-phase lists of those that take part.
#[derive(Debug, Default)]
pub struct Chain {
    /// The route's policies, then the `on_error` handlers they reach.
    policies: Vec<Arc<Policy>>,
    /// How many of `policies` are the route's own (the request phase walks these).
    entries: usize,
    /// Policies with request-phase work (every policy's `when` is evaluated in that phase).
    request: Vec<bool>,
    upstream_request: Vec<usize>,
    response: Vec<usize>,
    reads_body: bool,
}

/// The per-request state of one chain.
#[derive(Debug, Default)]
pub struct Run {
    /// Bit i set: policy i was active (its `when` held and it ran).
    active: Vec<u64>,
    pub established: Established,
    /// Edits queued in the request phase, in policy order.
    pub edits: Edits,
    pub decisions: Vec<Decision>,
    /// The policy whose denial or answer ended the request phase.
    pub decided_by: Option<usize>,
    /// The detail of a denial, for the debug log and the access log.
    pub detail: Option<String>,
}

impl Established {
    pub fn view<'a>(&'a self, facts: &RequestView<'a>) -> RequestView<'a> {
        RequestView {
            claims: self.claims.as_deref(),
            identity: self.identity.as_deref(),
            vars: self.vars.as_deref(),
            ..*facts
        }
    }
}

impl Run {
    fn activate(&mut self, i: usize) {
        let w = i / 64;
        if self.active.len() <= w {
            self.active.resize(w + 1, 0);
        }
        self.active[w] |= 1 << (i % 64);
    }

    fn decide(&mut self, policy: usize, code: &'static str, mode: Mode) {
        self.decisions.push(Decision { policy, code, mode });
    }

    pub fn is_active(&self, i: usize) -> bool {
        self.active
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// The request as later policies and templates read it: facts plus what was established.
    pub fn view<'a>(&'a self, facts: &RequestView<'a>) -> RequestView<'a> {
        self.established.view(facts)
    }

    fn set_vars(&mut self, vars: Vec<(String, String)>) {
        let map = Arc::make_mut(self.established.vars.get_or_insert_with(Default::default));
        map.extend(vars);
    }

    fn keep(&mut self, fx: Effects) {
        let Effects {
            claims,
            identity,
            vars,
            edits,
            detail: _,
        } = fx;
        if claims.is_some() {
            self.established.claims = claims;
        }
        if identity.is_some() {
            self.established.identity = identity;
        }
        if !vars.is_empty() {
            self.set_vars(vars);
        }
        self.edits.extend(edits);
    }
}

impl Chain {
    pub fn new(mut policies: Vec<Arc<Policy>>) -> Chain {
        let entries = policies.len();
        // Handlers of handlers too; load refuses cycles, and each is listed once.
        let mut i = 0;
        while i < policies.len() {
            let handlers: Vec<Arc<Policy>> = policies[i]
                .on_error
                .iter()
                .map(|(_, h)| h.clone())
                .collect();
            for h in handlers {
                if !policies.iter().any(|p| Arc::ptr_eq(p, &h)) {
                    policies.push(h);
                }
            }
            i += 1;
        }
        let mut c = Chain {
            entries,
            ..Chain::default()
        };
        for (i, p) in policies.iter().enumerate() {
            let ph = p.phases();
            c.request.push(ph.request);
            if ph.upstream_request {
                c.upstream_request.push(i);
            }
            if ph.response {
                c.response.push(i);
            }
            c.reads_body |= p.reads_body();
        }
        c.policies = policies;
        c
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// How many policies the chain holds: the route's own, then the `on_error` handlers.
    pub fn len(&self) -> usize {
        self.policies.len()
    }

    /// How many of the chain's policies are the route's own (the rest are handlers).
    pub fn entries(&self) -> usize {
        self.entries
    }

    pub fn get(&self, i: usize) -> Option<&Policy> {
        self.policies.get(i).map(|p| &**p)
    }

    /// A policy of the chain reads the request body: it is buffered first.
    pub fn reads_body(&self) -> bool {
        self.reads_body
    }

    /// Request phase: every policy whose `when` holds becomes active, in order; those with
    /// request-phase work run, until one denies or answers.
    /// `facts` is the request with nothing established yet.
    pub async fn request_filter(&self, facts: &RequestView<'_>, run: &mut Run) -> Outcome {
        for (i, p) in self.policies[..self.entries].iter().enumerate() {
            if !p.applies(&run.established.view(facts)) {
                continue;
            }
            run.activate(i);
            if !self.request[i] {
                continue;
            }
            match self.run_one(i, facts, run).await {
                Outcome::Continue => {}
                done => return done,
            }
        }
        Outcome::Continue
    }

    /// Run policy `i` (active already), then the handlers its failures lead to.
    async fn run_one(&self, mut i: usize, facts: &RequestView<'_>, run: &mut Run) -> Outcome {
        loop {
            let p = &self.policies[i];
            let view = run.established.view(facts);
            let mut fx = Effects::default();
            let out = p.request_filter(&view, &run.edits, &mut fx).await;
            if p.shadow {
                let code = match &out {
                    Outcome::Continue | Outcome::Answer(_) => "ok",
                    Outcome::Deny(e) => e.code(),
                };
                if let Some(d) = &fx.detail {
                    log::debug!("policy {} (shadow): {code}: {d}", p.label);
                }
                run.decide(i, code, Mode::Shadow);
                return Outcome::Continue;
            }
            let e = match out {
                Outcome::Continue => {
                    run.keep(fx);
                    if p.records_result() {
                        run.set_vars(super::faults::result_vars(&p.label, None));
                    }
                    return Outcome::Continue;
                }
                Outcome::Answer(r) => {
                    run.decide(i, "answered", Mode::Enforce);
                    run.decided_by = Some(i);
                    // An answering policy's response edits still apply to its answer.
                    run.edits.response.extend(fx.edits.response);
                    return Outcome::Answer(r);
                }
                Outcome::Deny(e) => e,
            };
            let code = e.code();
            if let Some(d) = &fx.detail {
                log::debug!("policy {} denied: {code}: {d}", p.label);
            }
            if p.records_result() {
                run.set_vars(super::faults::result_vars(&p.label, Some(code)));
            }
            let handler = p.handler(code).and_then(|h| {
                let j = self.policies.iter().position(|q| Arc::ptr_eq(q, h))?;
                h.applies(&run.established.view(facts)).then_some(j)
            });
            match (handler, p.continue_on_error) {
                (Some(j), _) => {
                    run.decide(i, code, Mode::Handled);
                    run.activate(j);
                    i = j;
                }
                (None, true) => {
                    run.decide(i, code, Mode::Continue);
                    return Outcome::Continue;
                }
                (None, false) => {
                    run.decide(i, code, Mode::Enforce);
                    run.decided_by = Some(i);
                    run.detail = fx.detail;
                    return Outcome::Deny(e);
                }
            }
        }
    }

    /// Upstream-request phase: header edits of the active policies, after those queued in
    /// the request phase.
    pub fn upstream_request_filter(&self, facts: &RequestView<'_>, run: &Run) -> Vec<HeaderEdit> {
        let mut out = Vec::new();
        let view = run.view(facts);
        for &i in &self.upstream_request {
            if run.is_active(i) && !self.policies[i].shadow {
                self.policies[i].upstream_request_filter(&view, &mut out);
            }
        }
        out
    }

    /// Response phase: the edits queued in the request phase, then each active policy's own,
    /// applied to `resp` in order (each policy sees the response as earlier ones left it).
    pub fn response_filter(
        &self,
        facts: &RequestView<'_>,
        run: &Run,
        resp: &mut ResponseHeader,
    ) -> pingora_error::Result<()> {
        apply_headers(resp, &run.edits.response)?;
        let view = run.view(facts);
        let mut out = Vec::new();
        for &i in &self.response {
            if run.is_active(i) && !self.policies[i].shadow {
                out.clear();
                self.policies[i].response_filter(&view, resp, &mut out);
                apply_headers(resp, &out)?;
            }
        }
        Ok(())
    }

    /// The recorded decisions with the policies' labels.
    pub fn decisions<'a>(
        &'a self,
        run: &'a Run,
    ) -> impl Iterator<Item = (&'a str, &'static str, Mode)> + 'a {
        run.decisions.iter().map(|d| {
            let label = self.policies.get(d.policy).map(|p| p.label.as_str());
            (label.unwrap_or(""), d.code, d.mode)
        })
    }
}
