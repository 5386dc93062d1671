//! `[[token_service.identity_sources]]`: the serde model of identity sources (unknown keys
//! refused). Each entry names one source and has exactly one of the `ldap`, `database` or
//! `http` tables; the static store (`[[token_service.users]]`) is the source named `static`.
//! Compiled by [`super::compile`]; nothing here is read at request time.

use crate::units::HumanDuration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IdentitySourceConfig {
    /// Referenced by `token_service.password_source` and `clients[].identity_source`.
    pub name: String,
    /// Longest time one lookup may take, queueing for a connection included; past it the
    /// token endpoint answers 503 `temporarily_unavailable`.
    #[serde(default = "d_timeout")]
    pub timeout: HumanDuration,
    /// How long an accepted (username, password) pair is remembered ("0s": never).
    #[serde(default = "d_cache_ttl")]
    pub cache_ttl: HumanDuration,
    /// How long a rejected pair is remembered (at most 10 s; "0s": never). Source errors
    /// are never cached.
    #[serde(default = "d_negative_ttl")]
    pub negative_cache_ttl: HumanDuration,
    /// Most remembered pairs.
    #[serde(default = "d_cache_capacity")]
    pub cache_capacity: usize,
    /// Most lookups in flight at once against the backend (the rest queue, within `timeout`).
    #[serde(default = "d_concurrency")]
    pub max_concurrency: usize,
    #[serde(default)]
    pub ldap: Option<LdapConfig>,
    #[serde(default)]
    pub database: Option<DatabaseConfig>,
    #[serde(default)]
    pub http: Option<HttpSourceConfig>,
}

/// Bind-search-bind against an LDAP directory.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// `ldap://host:port` or `ldaps://host:port`.
    pub url: String,
    /// Upgrade `ldap://` connections with StartTLS (RFC 4513 §3).
    #[serde(default)]
    pub starttls: bool,
    /// PEM file of the CA certificates trusted for LDAPS / StartTLS (default: the system's).
    #[serde(default)]
    pub ca_file: Option<String>,
    /// The service account that searches for users (none: anonymous search).
    #[serde(default)]
    pub bind_dn: Option<String>,
    #[serde(default)]
    pub bind_password: Option<String>,
    /// Where users are searched (subtree).
    pub user_base: String,
    /// `{username}` is replaced by the RFC 4515-escaped username.
    #[serde(default = "d_user_filter")]
    pub user_filter: String,
    /// An attribute of the user entry whose value becomes the token's `sub` (default: `uid`,
    /// or the username as sent when the entry has none). The entry's spelling, so "ALICE" and
    /// "alice" get one `sub`.
    #[serde(default)]
    pub subject_attribute: Option<String>,
    /// Read group DNs from this attribute of the user entry (e.g. `memberOf`).
    #[serde(default)]
    pub member_of_attribute: Option<String>,
    /// Search groups under this base; with `member_of_attribute`, only groups under it count
    /// (a group of the same name elsewhere in the directory gives no role)...
    #[serde(default)]
    pub group_base: Option<String>,
    /// ...with this filter; `{dn}` is the user's escaped DN, `{username}` the escaped name.
    #[serde(default = "d_group_filter")]
    pub group_filter: String,
    /// The attribute naming a group (its RDN for `member_of_attribute` DNs).
    #[serde(default = "d_group_name")]
    pub group_name_attribute: String,
    /// Group name to role name. When empty, group names are the roles; when set, groups
    /// without an entry give no role.
    #[serde(default)]
    pub role_map: BTreeMap<String, String>,
    /// Connections kept open for searches.
    #[serde(default = "d_pool")]
    pub pool_size: usize,
}

/// A SQL query against PostgreSQL, MySQL/MariaDB or SQLite.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://`, `mysql://` (MariaDB too) or `sqlite://` URL. A password in it is
    /// redacted from `/admin/config`.
    pub url: String,
    /// The one username parameter is `$1` (PostgreSQL) or `?` (MySQL, SQLite). Columns by
    /// name: `password_hash` (PHC/modular argon2, bcrypt, scrypt or pbkdf2), optional
    /// `roles` (text, split on `roles_separator`), `scopes` (likewise) and `subject`.
    pub query: String,
    /// A second query returning one role per row (first column), same parameter.
    #[serde(default)]
    pub roles_query: Option<String>,
    #[serde(default = "d_separator")]
    pub roles_separator: String,
    #[serde(default = "d_pool")]
    pub pool_size: usize,
}

/// An external HTTP API decides.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSourceConfig {
    /// `https://` URL, or `http://` to a loopback host.
    pub url: String,
    #[serde(default = "d_method")]
    pub method: String,
    /// Extra request headers (values are templates of the value language).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The request body, a template: `${var.username}`, `${var.password}` and any request
    /// value (`${header.x-tenant}`, `${client_ip}`). Values are escaped for `content_type`
    /// (JSON string contents, or form-encoded).
    #[serde(default = "d_body")]
    pub body: String,
    #[serde(default = "d_content_type")]
    pub content_type: String,
    /// Statuses that mean "wrong credentials" (others outside 2xx are source errors).
    #[serde(default = "d_reject_status")]
    pub reject_status: Vec<u16>,
    /// JSON pointer to a boolean in a 2xx answer: true accepts, anything else rejects.
    #[serde(default)]
    pub accept_pointer: Option<String>,
    /// Without `accept_pointer`, any 2xx answer accepts: only for APIs that answer
    /// wrong passwords with a status in `reject_status` (set it to say so).
    #[serde(default)]
    pub accept_any_success: bool,
    /// JSON pointer to the roles (an array of strings, or a space/comma-separated string).
    #[serde(default)]
    pub roles_pointer: Option<String>,
    #[serde(default)]
    pub scopes_pointer: Option<String>,
    #[serde(default)]
    pub subject_pointer: Option<String>,
    /// The regenerator: called on refresh_token grants of tokens this source issued, with
    /// the same template rules (`${var.username}`; no password). Its answer is mapped like a
    /// login's; a reject ends the refresh. Unset: refreshes are not checked here.
    #[serde(default)]
    pub refresh_url: Option<String>,
    #[serde(default)]
    pub refresh_body: Option<String>,
    /// Largest accepted answer.
    #[serde(default = "d_max_response")]
    pub max_response: usize,
    /// PEM CA file for an `https://` URL (default: the system's roots).
    #[serde(default)]
    pub ca_file: Option<String>,
}

fn d_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(2))
}
fn d_cache_ttl() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
fn d_negative_ttl() -> HumanDuration {
    HumanDuration(Duration::from_secs(2))
}
fn d_cache_capacity() -> usize {
    10_000
}
fn d_concurrency() -> usize {
    32
}
fn d_user_filter() -> String {
    "(uid={username})".into()
}
fn d_group_filter() -> String {
    "(|(member={dn})(uniqueMember={dn}))".into()
}
fn d_group_name() -> String {
    "cn".into()
}
fn d_pool() -> usize {
    8
}
fn d_separator() -> String {
    ",".into()
}
fn d_method() -> String {
    "POST".into()
}
fn d_body() -> String {
    r#"{"username":"${var.username}","password":"${var.password}"}"#.into()
}
fn d_content_type() -> String {
    "application/json".into()
}
fn d_reject_status() -> Vec<u16> {
    vec![401, 403, 404]
}
fn d_max_response() -> usize {
    64 * 1024
}
