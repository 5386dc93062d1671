//! `[policy_groups.NAME]`: a named, ordered set of policies that a policy list names as one
//! entry (`{ group = "NAME" }`), and the routes it is attached to by selector.

use super::{FreeText, PolicyEntry};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicyGroupConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<FreeText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<FreeText>,
    /// Same entries as a route's `policies`, expanded in place wherever the group is named.
    pub policies: Vec<PolicyEntry>,
    /// The routes this group runs on besides those that name it: after the global policies,
    /// before the route's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach: Option<AttachConfig>,
}

/// Which `[[routes]]` an attached group runs on. Every selector given must match (a route
/// needs one of the names, one of the tags, and a path under the prefix); at least one is
/// needed.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AttachConfig {
    /// Route names; `*` matches any run of characters (`"orders-*"`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,
    /// Routes with any of these `tags`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Routes whose `match.path_prefix` or `match.path_exact` starts with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
}
