//! `[admin]`: the private admin listener.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// The private admin listener. Loopback by default; `enabled = false` turns it off.
    pub listen: String,
    pub enabled: bool,
    /// Bearer tokens, as `"sha256:<64 hex>"` (`tokengate admin-token` makes one). Empty: no
    /// authentication, allowed only on a loopback `listen`.
    pub tokens: Vec<String>,
    /// Host header values accepted (port ignored). Empty: `localhost`, `127.0.0.1`, `[::1]`,
    /// `::1` and the host of `listen`.
    pub allowed_hosts: Vec<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: "127.0.0.1:9180".into(),
            enabled: true,
            tokens: Vec::new(),
            allowed_hosts: Vec::new(),
        }
    }
}
