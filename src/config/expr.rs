//! `when = {...}`: the conditions compiled by `expr`.

use serde::{Deserialize, Serialize};

/// A condition: exactly one of `all`, `any`, `not`, or a `var` with one operator.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConditionConfig {
    #[serde(default)]
    pub all: Option<Vec<ConditionConfig>>,
    #[serde(default)]
    pub any: Option<Vec<ConditionConfig>>,
    #[serde(default)]
    pub not: Option<Box<ConditionConfig>>,
    /// The value tested, e.g. `method`, `path`, `host`, `header.x-env`, `query.debug`,
    /// `cookie.session`, `client_ip`, `route`.
    #[serde(default)]
    pub var: Option<String>,
    #[serde(default)]
    pub equals: Option<String>,
    #[serde(default)]
    pub starts_with: Option<String>,
    #[serde(default)]
    pub ends_with: Option<String>,
    #[serde(default)]
    pub contains: Option<String>,
    /// A regular expression (Rust `regex` syntax, unanchored unless you anchor it).
    #[serde(default)]
    pub matches: Option<String>,
    #[serde(default, rename = "in")]
    pub in_list: Option<Vec<String>>,
    #[serde(default)]
    pub exists: Option<bool>,
    /// A glob such as `/api/*/items` (`*` stays within one segment, `**` crosses them).
    #[serde(default)]
    pub glob: Option<String>,
    /// CIDRs or addresses; for `client_ip`.
    #[serde(default)]
    pub cidr: Option<Vec<String>>,
}
