//! Policy groups: compiled once, each after the groups it names, and shared (`Arc`) by every
//! route that names or attaches them; the attach selectors; and the walk over a route's raw
//! policy lists in run order, which the owned headers and the usage listing read.

use super::{compile_chain, CompileCtx, Library, Named, Policy};
use crate::config::{AttachConfig, PolicyEntry, PolicyGroupConfig, RawConfig, RouteConfig};
use crate::error::Errors;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The compiled groups, by name: the group's policies with inner groups expanded.
pub type Groups = BTreeMap<String, Arc<[Arc<Policy>]>>;

/// The most policy entries a group may expand to (disabled ones counted): groups naming groups
/// twice at every level would otherwise double the chain with each level.
pub const MAX_EXPANDED: usize = 1024;

/// Compile every group once. A group in a cycle, too large, or with a bad policy is left out
/// (its errors are reported), so a reference to it adds no error of its own.
pub fn compile_groups(
    raw: &BTreeMap<String, PolicyGroupConfig>,
    named: &Named,
    raw_named: &BTreeMap<String, PolicyEntry>,
    errs: &mut Errors,
    cx: &mut CompileCtx<'_>,
) -> Groups {
    let mut groups = Groups::new();
    let mut sizes: HashMap<&str, usize> = HashMap::new();
    for name in order(raw, errs) {
        let Some(g) = raw.get(name) else { continue };
        let path = format!("policy_groups.{name}");
        let size = g.policies.iter().fold(0usize, |n, e| match e {
            PolicyEntry::Group(inner) => {
                n.saturating_add(sizes.get(inner.as_str()).copied().unwrap_or(0))
            }
            PolicyEntry::Use(_) | PolicyEntry::Inline(_) => n.saturating_add(1),
        });
        if size > MAX_EXPANDED {
            errs.push(
                format!("{path}.policies"),
                format!("expands to {size} policies (at most {MAX_EXPANDED})"),
            );
            continue;
        }
        sizes.insert(name, size);
        let before = errs.0.len();
        let lib = Library {
            named,
            raw_named,
            groups: &groups,
            raw_groups: raw,
        };
        let list = compile_chain(&g.policies, &lib, &format!("{path}.policies"), errs, cx);
        if errs.0.len() == before {
            groups.insert(name.to_string(), list.into());
        }
    }
    groups
}

/// The groups in an order where each comes after the groups it names. A reference that closes
/// a cycle is an error at its path; the groups of the cycle are left out.
fn order<'a>(raw: &'a BTreeMap<String, PolicyGroupConfig>, errs: &mut Errors) -> Vec<&'a str> {
    let edges = |name: &'a str| {
        let Some(g) = raw.get(name) else {
            return Vec::new();
        };
        g.policies
            .iter()
            .enumerate()
            .filter_map(|(i, e)| match e {
                PolicyEntry::Group(inner) => Some((
                    format!("policy_groups.{name}.policies[{i}].group"),
                    inner.as_str(),
                )),
                _ => None,
            })
            .collect()
    };
    // Unknown names are reported where the group compiles.
    let known = |n: &str| raw.contains_key(n);
    let names = raw.keys().map(String::as_str);
    let (mut out, cyclic) =
        super::order::dependency_order(names, edges, known, "groups form a cycle", errs);
    out.retain(|n| !cyclic.contains(n));
    out
}

/// Which `[[routes]]` an attached group runs on (see [`AttachConfig`]).
#[derive(Debug)]
pub struct Attach {
    names: Vec<String>,
    tags: Vec<String>,
    path_prefix: Option<String>,
}

impl Attach {
    pub fn compile(
        cfg: &AttachConfig,
        routes: &[RouteConfig],
        path: &str,
        errs: &mut Errors,
    ) -> Option<Attach> {
        let AttachConfig {
            routes: names,
            tags,
            path_prefix,
        } = cfg;
        let before = errs.0.len();
        if names.is_empty() && tags.is_empty() && path_prefix.is_none() {
            errs.push(
                path,
                "select routes by at least one of `routes`, `tags` and `path_prefix` \
                 (global_policies run on every route)",
            );
        }
        for (i, n) in names.iter().enumerate() {
            // A name without `*` that names no route is a typo, not an empty selection.
            if !n.contains('*') && !routes.iter().any(|r| r.name == *n) {
                errs.push(
                    format!("{path}.routes[{i}]"),
                    format!("no route named {n:?}"),
                );
            }
        }
        for (i, t) in tags.iter().enumerate() {
            if t.is_empty() {
                errs.push(format!("{path}.tags[{i}]"), "empty tag");
            }
        }
        if path_prefix.as_ref().is_some_and(|p| !p.starts_with('/')) {
            errs.push(format!("{path}.path_prefix"), "must start with '/'");
        }
        (errs.0.len() == before).then(|| Attach {
            names: names.clone(),
            tags: tags.clone(),
            path_prefix: path_prefix.clone(),
        })
    }

    /// Whether every selector given accepts the route.
    pub fn selects(&self, r: &RouteConfig) -> bool {
        let name = self.names.is_empty() || self.names.iter().any(|p| glob(p, &r.name));
        let tag = self.tags.is_empty() || r.tags.iter().any(|t| self.tags.contains(t));
        let path = self.path_prefix.as_ref().is_none_or(|p| {
            [&r.matcher.path_prefix, &r.matcher.path_exact]
                .into_iter()
                .flatten()
                .any(|rp| rp.starts_with(p.as_str()))
        });
        name && tag && path
    }
}

/// `*` matches any run of characters; every other character only itself.
fn glob(pattern: &str, s: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = s.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for m in middle {
        match rest.find(m) {
            Some(at) => rest = rest.get(at + m.len()..).unwrap_or_default(),
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// The attach selectors of every group that has one, in group name order (the order
/// attached groups run in).
pub fn compile_attach<'a>(raw: &'a RawConfig, errs: &mut Errors) -> Vec<(&'a str, Attach)> {
    raw.policy_groups
        .iter()
        .filter_map(|(name, g)| {
            let a = g.attach.as_ref()?;
            let path = format!("policy_groups.{name}.attach");
            Attach::compile(a, &raw.routes, &path, errs).map(|a| (name.as_str(), a))
        })
        .collect()
}

/// The names of the attached groups that run on this route, in run order.
pub fn attached_to<'a>(attached: &[(&'a str, Attach)], r: &RouteConfig) -> Vec<&'a str> {
    attached
        .iter()
        .filter(|(_, a)| a.selects(r))
        .map(|(n, _)| *n)
        .collect()
}

/// Where an entry of a route's chain comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `global_policies`.
    Global,
    /// A group attached by selector.
    Attach,
    /// The route's own `policies`.
    Route,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Global => "global_policies",
            Source::Attach => "attach",
            Source::Route => "policies",
        }
    }
}

/// One step of the walk: a group being entered, or a policy entry (`use` or inline).
#[derive(Debug, Clone, Copy)]
pub enum Item<'a> {
    Group(&'a str),
    Policy(&'a PolicyEntry),
}

/// Walk a route's policy lists in run order: the global policies, the groups attached to it,
/// its own policies (none for a generated route); groups expanded in place. `f` gets each
/// group and policy entry with the groups it was reached through, outermost first. For a
/// config that compiles (a group on its own path is not entered again, so a cycle ends).
pub fn walk_route<'a, F>(
    raw: &'a RawConfig,
    attached: &[&'a str],
    route: Option<&'a RouteConfig>,
    f: &mut F,
) where
    F: FnMut(Source, &[&'a str], Item<'a>),
{
    let mut via = Vec::new();
    walk(
        &raw.global_policies,
        Source::Global,
        &raw.policy_groups,
        &mut via,
        f,
    );
    for g in attached {
        f(Source::Attach, &via, Item::Group(g));
        enter(g, Source::Attach, &raw.policy_groups, &mut via, f);
    }
    if let Some(r) = route {
        walk(&r.policies, Source::Route, &raw.policy_groups, &mut via, f);
    }
}

fn walk<'a, F>(
    entries: &'a [PolicyEntry],
    src: Source,
    groups: &'a BTreeMap<String, PolicyGroupConfig>,
    via: &mut Vec<&'a str>,
    f: &mut F,
) where
    F: FnMut(Source, &[&'a str], Item<'a>),
{
    for e in entries {
        match e {
            PolicyEntry::Group(g) => {
                f(src, via, Item::Group(g));
                enter(g, src, groups, via, f);
            }
            PolicyEntry::Use(_) | PolicyEntry::Inline(_) => f(src, via, Item::Policy(e)),
        }
    }
}

fn enter<'a, F>(
    g: &'a str,
    src: Source,
    groups: &'a BTreeMap<String, PolicyGroupConfig>,
    via: &mut Vec<&'a str>,
    f: &mut F,
) where
    F: FnMut(Source, &[&'a str], Item<'a>),
{
    let Some(gc) = groups.get(g) else { return };
    if via.contains(&g) {
        return;
    }
    via.push(g);
    walk(&gc.policies, src, groups, via, f);
    via.pop();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::verified::VerifiedCaches;
    use crate::keys::KeyCache;

    /// The groups of `text` compiled, or every error as `path: message`.
    fn groups(text: &str) -> Result<Groups, Vec<String>> {
        let raw = crate::config::parse_str(text).map_err(|e| vec![format!("{e:?}")])?;
        let keys = Arc::new(KeyCache::new(&prometheus::Registry::new()).expect("key cache"));
        let verified = VerifiedCaches::default();
        let mut cx = CompileCtx {
            keys: &keys,
            verified: &verified,
            used_caches: Default::default(),
            token: None,
        };
        let mut errs = Errors::default();
        let named = super::super::compile_named(&raw.policies, &mut errs, &mut cx);
        let g = compile_groups(
            &raw.policy_groups,
            &named,
            &raw.policies,
            &mut errs,
            &mut cx,
        );
        if errs.is_empty() {
            Ok(g)
        } else {
            Err(errs.0.iter().map(|e| e.to_string()).collect())
        }
    }

    fn labels(g: &Groups, name: &str) -> Vec<String> {
        g.get(name)
            .expect("group")
            .iter()
            .map(|p| p.label.clone())
            .collect()
    }

    const NAMED: &str = r#"
[policies.a]
type = "headers"
[policies.b]
type = "headers"
[policies.c]
type = "headers"
"#;

    #[test]
    fn inner_groups_expand_in_place_in_order() {
        let g = groups(&format!(
            r#"{NAMED}
[policy_groups.outer]
policies = [{{ use = "a" }}, {{ group = "inner" }}, {{ type = "deny" }}]
[policy_groups.inner]
policies = [{{ use = "b" }}, {{ use = "c" }}]
"#
        ))
        .unwrap();
        assert_eq!(labels(&g, "outer"), ["a", "b", "c", "deny"]);
        assert_eq!(labels(&g, "inner"), ["b", "c"]);
    }

    #[test]
    fn a_group_is_compiled_once_and_shared_where_named() {
        let g = groups(&format!(
            r#"{NAMED}
[policy_groups.outer]
policies = [{{ group = "inner" }}, {{ group = "inner" }}]
[policy_groups.inner]
policies = [{{ type = "headers" }}]
"#
        ))
        .unwrap();
        let outer = g.get("outer").unwrap();
        let inner = g.get("inner").unwrap();
        assert!(Arc::ptr_eq(&outer[0], &inner[0]));
        assert!(Arc::ptr_eq(&outer[1], &inner[0]));
    }

    #[test]
    fn a_cycle_is_refused_at_the_entry_that_closes_it() {
        let e = groups(
            r#"
[policy_groups.a]
policies = [{ group = "b" }]
[policy_groups.b]
policies = [{ type = "deny" }, { group = "a" }]
"#,
        )
        .unwrap_err();
        assert_eq!(
            e,
            ["policy_groups.b.policies[1].group: groups form a cycle: a -> b -> a"]
        );
    }

    #[test]
    fn a_group_naming_itself_is_refused() {
        let e = groups("[policy_groups.a]\npolicies = [{ group = \"a\" }]\n").unwrap_err();
        assert_eq!(
            e,
            ["policy_groups.a.policies[0].group: groups form a cycle: a -> a"]
        );
    }

    #[test]
    fn unknown_group_and_policy_names_are_refused_with_their_paths() {
        let e = groups(
            r#"
[policy_groups.a]
policies = [{ group = "nope" }, { use = "ghost" }]
"#,
        )
        .unwrap_err();
        assert_eq!(
            e,
            [
                "policy_groups.a.policies[0].group: no group named \"nope\" in [policy_groups]",
                "policy_groups.a.policies[1].use: no policy named \"ghost\" in [policies]",
            ]
        );
    }

    #[test]
    fn an_inline_policy_error_in_a_group_has_the_group_path() {
        let e = groups(
            "[policy_groups.g]\npolicies = [{ type = \"headers\", when = { var = \"nope\", equals = \"1\" } }]\n",
        )
        .unwrap_err();
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("policy_groups.g.policies[0].when.var: unknown variable"),
            "{e:?}"
        );
    }

    #[test]
    fn a_group_expanding_past_the_limit_is_refused() {
        // Each level names the one below twice: level n expands to 2^n policies.
        let mut text = "[policy_groups.l0]\npolicies = [{ type = \"deny\" }]\n".to_string();
        for n in 1..=11 {
            text.push_str(&format!(
                "[policy_groups.l{n}]\npolicies = [{{ group = \"l{m}\" }}, {{ group = \"l{m}\" }}]\n",
                m = n - 1
            ));
        }
        let e = groups(&text).unwrap_err();
        assert_eq!(
            e,
            ["policy_groups.l11.policies: expands to 2048 policies (at most 1024)"]
        );
    }

    #[test]
    fn a_named_policy_cannot_be_a_group_reference() {
        let e =
            groups("[policies.p]\ngroup = \"g\"\n[policy_groups.g]\npolicies = []\n").unwrap_err();
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("policies.p: "), "{e:?}");
    }

    fn route(name: &str, tags: &[&str], prefix: Option<&str>) -> RouteConfig {
        let mut text = format!("name = {name:?}\ntags = {tags:?}\nrespond = {{}}\n");
        if let Some(p) = prefix {
            text.push_str(&format!("match = {{ path_prefix = {p:?} }}\n"));
        }
        toml::from_str(&text).unwrap()
    }

    fn attach(text: &str, routes: &[RouteConfig]) -> Result<Attach, Vec<String>> {
        let cfg: AttachConfig = toml::from_str(text).unwrap();
        let mut errs = Errors::default();
        Attach::compile(&cfg, routes, "policy_groups.g.attach", &mut errs)
            .ok_or_else(|| errs.0.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn attach_by_tag_selects_routes_with_any_listed_tag() {
        let a = attach("tags = [\"public\", \"beta\"]", &[]).unwrap();
        assert!(a.selects(&route("r", &["beta"], None)));
        assert!(!a.selects(&route("r", &["internal"], None)));
        assert!(!a.selects(&route("r", &[], None)));
    }

    #[test]
    fn attach_by_name_takes_exact_names_and_globs() {
        let routes = [route("orders", &[], None)];
        let a = attach("routes = [\"orders\", \"billing-*\"]", &routes).unwrap();
        assert!(a.selects(&route("orders", &[], None)));
        assert!(a.selects(&route("billing-v2", &[], None)));
        assert!(!a.selects(&route("orders-v2", &[], None)));
        assert!(!a.selects(&route("my-billing-v2", &[], None)));
    }

    #[test]
    fn attach_by_path_prefix_selects_routes_under_it() {
        let a = attach("path_prefix = \"/api/\"", &[]).unwrap();
        assert!(a.selects(&route("r", &[], Some("/api/orders"))));
        assert!(!a.selects(&route("r", &[], Some("/apix"))));
        assert!(!a.selects(&route("r", &[], None)), "a route without a path");
    }

    #[test]
    fn attach_selectors_must_all_match() {
        let a = attach("tags = [\"public\"]\npath_prefix = \"/api/\"", &[]).unwrap();
        assert!(a.selects(&route("r", &["public"], Some("/api/x"))));
        assert!(!a.selects(&route("r", &["public"], Some("/admin"))));
        assert!(!a.selects(&route("r", &[], Some("/api/x"))));
    }

    #[test]
    fn attach_errors_have_their_paths() {
        assert_eq!(
            attach("", &[]).unwrap_err(),
            [
                "policy_groups.g.attach: select routes by at least one of `routes`, `tags` and \
              `path_prefix` (global_policies run on every route)"
            ]
        );
        assert_eq!(
            attach(
                "routes = [\"ghost\"]\ntags = [\"\"]\npath_prefix = \"api\"",
                &[]
            )
            .unwrap_err(),
            [
                "policy_groups.g.attach.routes[0]: no route named \"ghost\"",
                "policy_groups.g.attach.tags[0]: empty tag",
                "policy_groups.g.attach.path_prefix: must start with '/'",
            ]
        );
    }

    #[test]
    fn glob_matches_runs_of_characters() {
        for (p, s, want) in [
            ("a*", "abc", true),
            ("*c", "abc", true),
            ("a*c", "ac", true),
            ("a*b*c", "axbyc", true),
            ("a*b*c", "acb", false),
            ("*", "", true),
            ("abc", "abc", true),
            ("abc", "abcd", false),
            ("a*a", "a", false),
        ] {
            assert_eq!(glob(p, s), want, "{p} vs {s}");
        }
    }
}
