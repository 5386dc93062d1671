//! Which routes use each named policy and group, and how: `tokengate check --usage` and
//! `GET /admin/usage`. Read from the raw config of a config that compiles, walked in the order
//! the compiled chains run (`policy::group::walk_route`), so the listing and the chains agree.

use crate::config::{FreeText, PolicyEntry, RawConfig};
use crate::error::Errors;
use crate::policy::group::{self, Item, Source};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Default, Serialize)]
pub struct Usage {
    /// Every `[policies.NAME]`, used or not.
    pub policies: BTreeMap<String, Used>,
    /// Every `[policy_groups.NAME]`, used or not.
    pub groups: BTreeMap<String, Used>,
    /// Every `[[routes]]` entry with its policies in run order.
    pub routes: Vec<RouteUsage>,
}

#[derive(Debug, Default, Serialize)]
pub struct Used {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// One entry per place a route reaches it (a route may reach it more than once).
    pub used_by: Vec<UsedBy>,
}

#[derive(Debug, Serialize)]
pub struct UsedBy {
    pub route: String,
    /// Where the route's chain reaches it: `policies` (the route's own list), `global_policies`
    /// or `attach` (a group attached by selector), then each group it is reached through,
    /// outermost first: `attach > group:api > group:auth`.
    pub via: String,
}

#[derive(Debug, Serialize)]
pub struct RouteUsage {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The route's policies in run order.
    pub chain: Vec<Step>,
}

/// One policy of a route's chain.
#[derive(Debug, Serialize)]
pub struct Step {
    /// The `[policies.NAME]` of a `use` entry; absent for an inline policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub via: String,
}

fn text(t: &Option<FreeText>) -> Option<String> {
    t.as_ref().map(|t| t.as_str().to_string())
}

fn via(src: Source, groups: &[&str]) -> String {
    let mut out = src.as_str().to_string();
    for g in groups {
        out.push_str(" > group:");
        out.push_str(g);
    }
    out
}

/// The usage listing of `raw` (a config that compiles).
pub fn of(raw: &RawConfig) -> Usage {
    let mut u = Usage::default();
    for (name, p) in &raw.policies {
        let (display_name, description) = match p {
            PolicyEntry::Inline(p) => (text(&p.display_name), text(&p.description)),
            PolicyEntry::Use(_) | PolicyEntry::Group(_) => (None, None),
        };
        u.policies.insert(
            name.clone(),
            Used {
                display_name,
                description,
                used_by: Vec::new(),
            },
        );
    }
    for (name, g) in &raw.policy_groups {
        u.groups.insert(
            name.clone(),
            Used {
                display_name: text(&g.display_name),
                description: text(&g.description),
                used_by: Vec::new(),
            },
        );
    }
    // The config compiles, so its selectors do: these errors stay empty.
    let attached = group::compile_attach(raw, &mut Errors::default());
    for r in &raw.routes {
        let on = group::attached_to(&attached, r);
        let mut chain = Vec::new();
        group::walk_route(raw, &on, Some(r), &mut |src, groups, item| {
            let used = |route: &str| UsedBy {
                route: route.to_string(),
                via: via(src, groups),
            };
            match item {
                Item::Group(g) => {
                    if let Some(e) = u.groups.get_mut(g) {
                        e.used_by.push(used(&r.name));
                    }
                }
                Item::Policy(PolicyEntry::Use(n)) => {
                    if let Some(e) = u.policies.get_mut(n) {
                        e.used_by.push(used(&r.name));
                    }
                    if let Some(PolicyEntry::Inline(p)) = raw.policies.get(n) {
                        chain.push(Step {
                            policy: Some(n.clone()),
                            kind: p.body.type_name(),
                            display_name: text(&p.display_name),
                            description: text(&p.description),
                            via: via(src, groups),
                        });
                    }
                }
                Item::Policy(PolicyEntry::Inline(p)) => chain.push(Step {
                    policy: None,
                    kind: p.body.type_name(),
                    display_name: text(&p.display_name),
                    description: text(&p.description),
                    via: via(src, groups),
                }),
                Item::Policy(PolicyEntry::Group(_)) => {}
            }
        });
        u.routes.push(RouteUsage {
            name: r.name.clone(),
            display_name: text(&r.display_name),
            description: text(&r.description),
            tags: r.tags.clone(),
            chain,
        });
    }
    u
}

fn about(
    f: &mut fmt::Formatter<'_>,
    display_name: &Option<String>,
    description: &Option<String>,
) -> fmt::Result {
    if let Some(d) = display_name {
        writeln!(f, "  display_name: {d}")?;
    }
    if let Some(d) = description {
        writeln!(f, "  description: {d}")?;
    }
    Ok(())
}

/// The text of `check --usage`: one block per policy, group and route.
impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (kind, map) in [("policy", &self.policies), ("group", &self.groups)] {
            for (name, e) in map {
                writeln!(f, "{kind} {name}")?;
                about(f, &e.display_name, &e.description)?;
                if e.used_by.is_empty() {
                    writeln!(f, "  used by no route")?;
                }
                for u in &e.used_by {
                    writeln!(f, "  used by route {} via {}", u.route, u.via)?;
                }
            }
        }
        for r in &self.routes {
            writeln!(f, "route {}", r.name)?;
            about(f, &r.display_name, &r.description)?;
            if !r.tags.is_empty() {
                writeln!(f, "  tags: {}", r.tags.join(", "))?;
            }
            for (i, s) in r.chain.iter().enumerate() {
                let name = s.policy.as_deref().unwrap_or(s.kind);
                let shown = s
                    .display_name
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default();
                writeln!(f, "  {}. {name}{shown} via {}", i + 1, s.via)?;
            }
        }
        Ok(())
    }
}
