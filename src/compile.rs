//! RawConfig -> Snapshot. Every problem is collected with its TOML path; a config with any
//! error produces no snapshot (and so never replaces a working one).

use crate::config::{DirectResponseConfig, MatchConfig, PolicyEntry, RawConfig, RouteConfig};
use crate::error::{ConfigError, Errors};
use crate::expr::parse_net;
use crate::policy::group::{self, Attach, Item};
use crate::policy::{self, Chain, CompileCtx, Library, Policy};
use crate::reply::{ErrorOverride, Reply};
use crate::router::{Matcher, PathMatch};
use crate::shared::Shared;
use crate::upstream::{self, Pool};
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use ipnet::IpNet;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// The immutable, fully compiled configuration. One is loaded per request.
#[derive(Debug)]
pub struct Snapshot {
    pub generation: u64,
    pub hash: String,
    pub routes: Vec<Route>,
    /// The routes' matchers indexed by host and path (`route_for`).
    pub index: crate::router::RouteIndex,
    pub pools: BTreeMap<String, Arc<Pool>>,
    pub errors: Option<ErrorOverride>,
    pub trusted_proxies: Vec<IpNet>,
    /// The canonical-request rules and head limits.
    pub front: crate::front::FrontDoor,
    /// The shared caches this snapshot's policies use (others are dropped after the swap).
    pub used_caches: HashSet<String>,
    /// The OAuth2 token service, when `[token_service]` is configured.
    pub token: Option<Arc<crate::token::TokenService>>,
}

#[derive(Debug)]
pub enum Action {
    Proxy {
        pool: Arc<Pool>,
        /// The prefix removed from the path before proxying.
        strip_prefix: Option<String>,
        rewrite_path: Option<String>,
    },
    Respond(Reply),
    /// Serve an endpoint of the token service.
    Token {
        service: Arc<crate::token::TokenService>,
        endpoint: crate::token::Endpoint,
    },
}

#[derive(Debug)]
pub struct Route {
    pub name: String,
    pub matcher: Matcher,
    pub action: Action,
    /// Global policies first, then the route's own, in config order, with per-phase lists.
    pub chain: Chain,
    pub errors: Option<Box<ErrorOverride>>,
    /// Headers the route's policies may set upstream: removed from every client request.
    pub owned_headers: crate::front::OwnedHeaders,
    /// `Upgrade` requests are tunnelled (else the upgrade is removed from the request).
    pub websocket: bool,
    /// This route's request counters and latency histogram, resolved on first use.
    pub metrics: crate::metrics::RouteMetrics,
}

impl Snapshot {
    /// The first route whose matcher accepts the request. A path that differs from a token
    /// endpoint's only in case or a trailing slash matches no route: it never reaches a
    /// catch-all route with the client's credentials.
    pub fn route_for(&self, v: &crate::request::RequestView<'_>) -> Option<(usize, &Route)> {
        let path = v.req.uri.path();
        if let Some(ts) = &self.token {
            if ts.lookalike(path) && ts.endpoint(path).is_none() {
                return None;
            }
        }
        // A few routes are scanned: below this many the index costs more than it saves.
        const SCAN_UP_TO: usize = 16;
        let i = if self.routes.len() <= SCAN_UP_TO {
            self.route_for_linear(v)?
        } else {
            self.index.first(v, |i| {
                self.routes.get(i).is_some_and(|r| r.matcher.matches(v))
            })?
        };
        self.routes.get(i).map(|r| (i, r))
    }

    /// The first route whose matcher accepts the request, by scanning every route in order
    /// (the reference the index is tested against).
    pub fn route_for_linear(&self, v: &crate::request::RequestView<'_>) -> Option<usize> {
        self.routes.iter().position(|r| r.matcher.matches(v))
    }
}

fn compile_direct(d: &DirectResponseConfig, path: &str, errs: &mut Errors) -> Reply {
    let DirectResponseConfig {
        status,
        headers,
        body,
    } = d;
    if !(100..=599).contains(status) {
        errs.push(format!("{path}.status"), "must be 100..=599");
    }
    let mut r = Reply::new(*status);
    for (k, v) in headers {
        match (
            HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()),
            HeaderValue::from_str(v),
        ) {
            (Ok(n), Ok(v)) => r.headers.push((n, v)),
            _ => errs.push(
                format!("{path}.headers.{k}"),
                "invalid header name or value",
            ),
        }
    }
    r.body = Bytes::from(body.clone());
    r
}

/// What every route compiles against.
struct RouteInputs<'a> {
    pools: &'a BTreeMap<String, Arc<Pool>>,
    token: Option<&'a Arc<crate::token::TokenService>>,
    global: &'a [Arc<Policy>],
    lib: &'a Library<'a>,
    attached: &'a [(&'a str, Attach)],
    /// False when a group failed: the routes are still compiled for their own errors, but
    /// their raw lists are not walked (a refused group may be cyclic or too large).
    groups_ok: bool,
    raw: &'a RawConfig,
}

fn compile_route(
    i: usize,
    rc: &RouteConfig,
    inp: &RouteInputs<'_>,
    errs: &mut Errors,
    cx: &mut CompileCtx<'_>,
) -> Option<Route> {
    let RouteInputs {
        pools,
        token,
        global,
        lib,
        attached,
        groups_ok,
        raw,
    } = *inp;
    let RouteConfig {
        name,
        display_name: _,
        description: _,
        tags: _,
        matcher,
        upstream,
        strip_prefix,
        rewrite_path,
        respond,
        token_endpoint,
        websocket,
        policies,
        errors,
    } = rc;
    let path = format!("routes[{i}]");
    let before = errs.0.len();
    if name.is_empty() {
        errs.push(
            format!("{path}.name"),
            "a route needs a name (used in logs and metrics)",
        );
    }
    let token_action = token_endpoint
        .as_ref()
        .and_then(|t| token_route(t, token, matcher, &path, errs));
    let m = match &token_action {
        Some((_, p)) => Matcher::compile(
            &MatchConfig {
                path_exact: Some(p.clone()),
                ..matcher.clone()
            },
            &format!("{path}.match"),
            errs,
        ),
        None => Matcher::compile(matcher, &format!("{path}.match"), errs),
    };
    let action = match (upstream, respond) {
        _ if token_endpoint.is_some() => {
            if upstream.is_some() || respond.is_some() {
                errs.push(
                    &path,
                    "a route has one of `upstream`, `respond` and `token_endpoint`",
                );
            }
            token_action.map(|(a, _)| a)
        }
        (Some(u), None) => {
            let pool = pools.get(u).cloned();
            if pool.is_none() && !raw.upstreams.contains_key(u) {
                errs.push(
                    format!("{path}.upstream"),
                    format!("no upstream named {u:?}"),
                );
            }
            let strip = if *strip_prefix {
                match &m.path {
                    PathMatch::Prefix(p) => Some(p.trim_end_matches('/').to_string()),
                    _ => {
                        errs.push(
                            format!("{path}.strip_prefix"),
                            "strip_prefix needs match.path_prefix",
                        );
                        None
                    }
                }
            } else {
                None
            };
            if let Some(r) = rewrite_path {
                if !r.starts_with('/') {
                    errs.push(format!("{path}.rewrite_path"), "must start with '/'");
                }
                if strip.is_some() {
                    errs.push(
                        format!("{path}.rewrite_path"),
                        "use either strip_prefix or rewrite_path",
                    );
                }
            }
            pool.map(|pool| Action::Proxy {
                pool,
                strip_prefix: strip,
                rewrite_path: rewrite_path.clone(),
            })
        }
        (None, Some(d)) => Some(Action::Respond(compile_direct(
            d,
            &format!("{path}.respond"),
            errs,
        ))),
        (Some(_), Some(_)) => {
            errs.push(
                &path,
                "a route has either `upstream` or `respond`, not both",
            );
            None
        }
        (None, None) => {
            errs.push(
                &path,
                "a route needs `upstream = \"pool\"` or a `respond` table",
            );
            None
        }
    };
    // Global policies, then the attached groups, then the route's own.
    let on = group::attached_to(attached, rc);
    let mut chain: Vec<Arc<Policy>> = global.to_vec();
    for g in &on {
        if let Some(list) = lib.groups.get(*g) {
            chain.extend(list.iter().cloned());
        }
    }
    chain.extend(policy::compile_chain(
        policies,
        lib,
        &format!("{path}.policies"),
        errs,
        cx,
    ));
    let errors = errors
        .as_ref()
        .and_then(|e| crate::policy::errors::compile_override(e, &format!("{path}.errors"), errs))
        .map(Box::new);
    if errs.0.len() > before || !groups_ok {
        return None;
    }
    let owned_headers = owned_headers(raw, &on, rc);
    Some(Route {
        name: name.clone(),
        matcher: m,
        action: action?,
        chain: Chain::new(chain),
        errors,
        owned_headers,
        websocket: *websocket,
        metrics: crate::metrics::RouteMetrics::default(),
    })
}

/// The action and path of a route placing a token-service endpoint.
fn token_route(
    name: &str,
    token: Option<&Arc<crate::token::TokenService>>,
    matcher: &MatchConfig,
    path: &str,
    errs: &mut Errors,
) -> Option<(Action, String)> {
    let Some(service) = token else {
        errs.push(
            format!("{path}.token_endpoint"),
            "needs a [token_service] table",
        );
        return None;
    };
    if matcher.path_exact.is_some() || matcher.path_prefix.is_some() || matcher.path_regex.is_some()
    {
        errs.push(
            format!("{path}.match"),
            "a token endpoint's path comes from token_service.paths; match only hosts, methods or headers",
        );
    }
    let Some((endpoint, _, p)) = service.endpoints().into_iter().find(|(_, n, _)| *n == name)
    else {
        errs.push(
            format!("{path}.token_endpoint"),
            format!("unknown endpoint {name:?}; one of token, introspect, revoke, jwks, discovery, openid_configuration"),
        );
        return None;
    };
    Some((
        Action::Token {
            service: service.clone(),
            endpoint,
        },
        p.to_string(),
    ))
}

/// The routes of the token-service endpoints no configured route places, ahead of all
/// others: exact path, any method, the global policies.
fn token_routes(
    service: &Arc<crate::token::TokenService>,
    placed: &HashSet<&str>,
    global: &[Arc<Policy>],
    errs: &mut Errors,
) -> Vec<Route> {
    let mut out = Vec::new();
    for (endpoint, name, p) in service.endpoints() {
        if placed.contains(name) {
            continue;
        }
        let matcher = Matcher::compile(
            &MatchConfig {
                path_exact: Some(p.to_string()),
                ..MatchConfig::default()
            },
            &format!("token_service.paths.{name}"),
            errs,
        );
        out.push(Route {
            name: format!("token_service.{name}"),
            matcher,
            action: Action::Token {
                service: service.clone(),
                endpoint,
            },
            chain: Chain::new(global.to_vec()),
            errors: None,
            owned_headers: crate::front::OwnedHeaders::new(Vec::<String>::new()),
            websocket: false,
            metrics: crate::metrics::RouteMetrics::default(),
        });
    }
    out
}

/// Every header any policy of the route, or an `on_error` handler they reach, may set upstream
/// (disabled ones too: a policy turned off must not turn its header into a client-controlled
/// one), less the headers a policy reads a token from. Global, attached and group policies
/// count as the route's own.
fn owned_headers(
    raw: &RawConfig,
    attached: &[&str],
    rc: &RouteConfig,
) -> crate::front::OwnedHeaders {
    let mut sets = Vec::new();
    let mut reads = Vec::new();
    let mut policies = Vec::new();
    group::walk_route(raw, attached, Some(rc), &mut |_, _, item| match item {
        Item::Policy(PolicyEntry::Inline(p)) => policies.push(&**p),
        Item::Policy(PolicyEntry::Use(n)) => {
            if let Some(PolicyEntry::Inline(p)) = raw.policies.get(n) {
                policies.push(&**p);
            }
        }
        Item::Policy(PolicyEntry::Group(_)) | Item::Group(_) => {}
    });
    let mut handlers: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < policies.len() {
        for h in policies[i].on_error.values() {
            let n = h.use_policy.as_str();
            if let (false, Some(PolicyEntry::Inline(p))) =
                (handlers.contains(&n), raw.policies.get(n))
            {
                handlers.push(n);
                policies.push(&**p);
            }
        }
        i += 1;
    }
    for p in policies {
        let (s, r) = p.body.upstream_headers();
        sets.extend(s);
        reads.extend(r);
    }
    let reads = crate::front::OwnedHeaders::new(reads);
    crate::front::OwnedHeaders::new(sets.into_iter().filter(|s| {
        let f = s.to_ascii_lowercase().replace('_', "-");
        !reads.names().contains(&f)
    }))
}

/// Compile a raw config. `prev` lets unchanged upstream pools keep their health state.
pub fn compile(
    raw: &RawConfig,
    hash: &str,
    generation: u64,
    prev: Option<&Snapshot>,
    shared: &Shared,
) -> Result<Snapshot, Vec<ConfigError>> {
    let mut errs = Errors::default();
    validate_process_settings(raw, &mut errs);
    let token = raw
        .token_service
        .as_ref()
        .and_then(|t| {
            let (tokens, identity) = (&shared.tokens, &shared.identity);
            crate::token::TokenService::compile(t, &mut errs, tokens, identity, &shared.keys)
        })
        .map(Arc::new);
    let mut cx = CompileCtx {
        keys: &shared.keys,
        verified: &shared.verified,
        used_caches: HashSet::new(),
        token: token.clone(),
    };

    let mut pools = BTreeMap::new();
    for (name, u) in &raw.upstreams {
        let p = prev.and_then(|s| s.pools.get(name));
        if let Some(pool) =
            upstream::reuse_or_compile(p, name, u, &format!("upstreams.{name}"), &mut errs)
        {
            pools.insert(name.clone(), pool);
        }
    }

    let named = policy::compile_named(&raw.policies, &mut errs, &mut cx);
    let before = errs.0.len();
    let groups = group::compile_groups(
        &raw.policy_groups,
        &named,
        &raw.policies,
        &mut errs,
        &mut cx,
    );
    let attached = group::compile_attach(raw, &mut errs);
    let groups_ok = errs.0.len() == before;
    let lib = Library {
        named: &named,
        raw_named: &raw.policies,
        groups: &groups,
        raw_groups: &raw.policy_groups,
    };
    let global = policy::compile_chain(
        &raw.global_policies,
        &lib,
        "global_policies",
        &mut errs,
        &mut cx,
    );

    let mut names = HashSet::new();
    let mut routes = Vec::new();
    if let Some(ts) = &token {
        let placed = raw
            .routes
            .iter()
            .filter_map(|r| r.token_endpoint.as_deref())
            .collect();
        routes = token_routes(ts, &placed, &global, &mut errs);
    }
    for (i, rc) in raw.routes.iter().enumerate() {
        if !names.insert(rc.name.as_str()) {
            errs.push(
                format!("routes[{i}].name"),
                format!("duplicate route name {:?}", rc.name),
            );
        }
        let inp = RouteInputs {
            pools: &pools,
            token: token.as_ref(),
            global: &global,
            lib: &lib,
            attached: &attached,
            groups_ok,
            raw,
        };
        if let Some(r) = compile_route(i, rc, &inp, &mut errs, &mut cx) {
            routes.push(r);
        }
    }

    let errors = raw
        .errors
        .as_ref()
        .and_then(|e| crate::policy::errors::compile_override(e, "errors", &mut errs));
    let front = crate::front::FrontDoor::compile(&raw.front_door, &mut errs);

    let mut trusted = Vec::new();
    for (i, t) in raw.server.trusted_proxies.iter().enumerate() {
        match parse_net(t) {
            Ok(n) => trusted.push(n),
            Err(e) => errs.push(format!("server.trusted_proxies[{i}]"), e),
        }
    }

    if !errs.is_empty() {
        return Err(errs.0);
    }
    let index = crate::router::RouteIndex::new(routes.iter().map(|r| &r.matcher));
    Ok(Snapshot {
        generation,
        hash: hash.to_string(),
        routes,
        index,
        pools,
        errors,
        trusted_proxies: trusted,
        front,
        used_caches: cx.used_caches,
        token,
    })
}

fn validate_process_settings(raw: &RawConfig, errs: &mut Errors) {
    if raw.server.threads == 0 {
        errs.push("server.threads", "must be >= 1");
    }
    if raw.listeners.is_empty() {
        errs.push("listeners", "at least one [[listeners]] entry is needed");
    }
    let mut seen = HashSet::new();
    for (i, l) in raw.listeners.iter().enumerate() {
        let p = format!("listeners[{i}]");
        if l.address.parse::<std::net::SocketAddr>().is_err() {
            errs.push(
                format!("{p}.address"),
                "expected ip:port, e.g. \"127.0.0.1:8080\"",
            );
        }
        if !seen.insert(l.address.as_str()) {
            errs.push(format!("{p}.address"), "listed twice");
        }
        if let Some(tls) = &l.tls {
            for (k, f) in [("cert", &tls.cert), ("key", &tls.key)] {
                if !std::path::Path::new(f).is_file() {
                    errs.push(format!("{p}.tls.{k}"), format!("no such file: {f}"));
                }
            }
        }
    }
    if raw.admin.enabled {
        match raw.admin.listen.parse::<std::net::SocketAddr>() {
            Err(_) => errs.push("admin.listen", "expected ip:port, e.g. \"127.0.0.1:9180\""),
            Ok(a) if seen.contains(raw.admin.listen.as_str()) => {
                errs.push("admin.listen", format!("{a} is also a data-plane listener"))
            }
            Ok(_) => {}
        }
        crate::guard::Guard::compile(&raw.admin, errs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "[[listeners]]\naddress = \"127.0.0.1:1\"\n";

    fn compiled(body: &str) -> Result<Snapshot, Vec<String>> {
        let text = format!("{HEAD}{body}");
        let shared = Shared::detached().unwrap();
        crate::config::parse_str(&text)
            .and_then(|raw| compile(&raw, "h", 1, None, &shared))
            .map_err(|e| e.iter().map(|e| e.to_string()).collect())
    }

    fn route<'a>(s: &'a Snapshot, name: &str) -> &'a Route {
        s.routes.iter().find(|r| r.name == name).expect("route")
    }

    fn labels(r: &Route) -> Vec<&str> {
        (0..)
            .map_while(|i| r.chain.get(i))
            .map(|p| p.label.as_str())
            .collect()
    }

    const POLICIES: &str = r#"
[policies.g1]
type = "headers"
[policies.a1]
type = "headers"
[policies.b1]
type = "headers"
[policies.own]
type = "headers"

[[global_policies]]
use = "g1"

[policy_groups.b_tagged]
policies = [{ use = "b1" }]
attach = { tags = ["public"] }

[policy_groups.a_prefixed]
policies = [{ use = "a1" }]
attach = { path_prefix = "/api/" }
"#;

    #[test]
    fn attached_groups_run_after_global_and_before_own_policies_by_group_name() {
        let s = compiled(&format!(
            r#"{POLICIES}
[[routes]]
name = "both"
tags = ["public"]
match = {{ path_prefix = "/api/orders" }}
respond = {{}}
policies = [{{ use = "own" }}]

[[routes]]
name = "tagged"
tags = ["public"]
match = {{ path_prefix = "/web" }}
respond = {{}}

[[routes]]
name = "neither"
respond = {{}}
policies = [{{ use = "own" }}]
"#
        ))
        .unwrap();
        assert_eq!(labels(route(&s, "both")), ["g1", "a1", "b1", "own"]);
        assert_eq!(labels(route(&s, "tagged")), ["g1", "b1"]);
        assert_eq!(labels(route(&s, "neither")), ["g1", "own"]);
    }

    #[test]
    fn a_group_named_by_two_routes_is_one_compiled_policy() {
        let s = compiled(
            r#"
[policy_groups.shared]
policies = [{ type = "headers", request = { set = { "x-a" = "1" } } }]

[[routes]]
name = "one"
respond = {}
policies = [{ group = "shared" }]

[[routes]]
name = "two"
respond = {}
policies = [{ group = "shared" }]
"#,
        )
        .unwrap();
        let (one, two) = (route(&s, "one"), route(&s, "two"));
        assert!(std::ptr::eq(
            one.chain.get(0).unwrap(),
            two.chain.get(0).unwrap()
        ));
    }

    #[test]
    fn headers_set_by_a_group_are_owned_by_the_routes_it_reaches() {
        let s = compiled(
            r#"
[policy_groups.inner]
policies = [{ type = "headers", enabled = false, request = { set = { "x-inner" = "1" } } }]

[policy_groups.outer]
policies = [{ group = "inner" }]
attach = { tags = ["t"] }

[[routes]]
name = "attached"
tags = ["t"]
respond = {}

[[routes]]
name = "named"
respond = {}
policies = [{ group = "outer" }]

[[routes]]
name = "other"
respond = {}
"#,
        )
        .unwrap();
        for r in ["attached", "named"] {
            let names = route(&s, r).owned_headers.names().to_vec();
            assert!(names.contains(&"x-inner".to_string()), "{r}: {names:?}");
        }
        assert!(route(&s, "other").owned_headers.names().is_empty());
    }

    #[test]
    fn an_unknown_group_on_a_route_is_refused_with_its_path() {
        let e =
            compiled("[[routes]]\nname = \"r\"\nrespond = {}\npolicies = [{ group = \"g\" }]\n")
                .unwrap_err();
        assert_eq!(
            e,
            ["routes[0].policies[0].group: no group named \"g\" in [policy_groups]"]
        );
    }

    #[test]
    fn a_cycle_refuses_the_config_without_walking_it() {
        let e = compiled(
            r#"
[policy_groups.a]
policies = [{ group = "a" }]
attach = { routes = ["r"] }

[[routes]]
name = "r"
respond = {}
policies = [{ group = "a" }]
"#,
        )
        .unwrap_err();
        assert_eq!(
            e,
            ["policy_groups.a.policies[0].group: groups form a cycle: a -> a"]
        );
    }

    #[test]
    fn free_text_past_the_limit_is_refused_with_its_path() {
        let long = "é".repeat(crate::config::FREE_TEXT_MAX + 1);
        let ok = "é".repeat(crate::config::FREE_TEXT_MAX);
        for (body, path) in [
            (
                format!("[[routes]]\nname = \"r\"\nrespond = {{}}\ndescription = \"{long}\"\n"),
                "routes[0].description",
            ),
            (
                format!("[policy_groups.g]\ndisplay_name = \"{long}\"\npolicies = []\n"),
                "policy_groups.g.display_name",
            ),
            (
                format!("[policies.p]\ntype = \"deny\"\ndescription = \"{long}\"\n"),
                "policies.p",
            ),
            (
                format!("[[routes]]\nname = \"r\"\nrespond = {{}}\npolicies = [{{ type = \"deny\", display_name = \"{long}\" }}]\n"),
                "routes[0].policies[0]",
            ),
        ] {
            let e = compiled(&body).unwrap_err();
            assert_eq!(e.len(), 1, "{e:?}");
            assert!(e[0].starts_with(path), "{path}: {e:?}");
            assert!(e[0].contains("at most 1024 characters"), "{e:?}");
            compiled(&body.replace(&long, &ok)).unwrap();
        }
    }
}
