//! `[token_service.store]`: which token store, and where.
//!
//! ```toml
//! [token_service.store]
//! kind = "embedded"              # the default
//! path = "data/tokens.redb"      # embedded only
//! purge_interval = "60s"         # embedded only: how often expired entries are deleted
//!
//! # or, for several gateways behind a load balancer:
//! kind = "redis"
//! url = "redis://127.0.0.1:6379/0"   # rediss:// for TLS is not compiled in
//! key_prefix = "tokengate:"          # isolates environments sharing one Redis
//! timeout = "500ms"                  # deadline of every store call (connect included)
//! ```
//! [`StoreConfig`] is the serde model (unknown keys refused); `store::spec` checks it and yields
//! the typed `StoreSpec`, reporting every problem with its TOML path.

use crate::units::HumanDuration;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    #[default]
    Embedded,
    Redis,
}

/// The operator's `[token_service.store]` table.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    #[serde(default)]
    pub kind: StoreKind,
    /// Embedded: the database file (created with its parent directory if absent).
    pub path: Option<PathBuf>,
    /// Embedded: interval of the background purge of expired entries.
    pub purge_interval: Option<HumanDuration>,
    /// Redis: connection URL.
    pub url: Option<String>,
    /// Redis: prefix of every key.
    pub key_prefix: Option<String>,
    /// Redis: deadline of each call.
    pub timeout: Option<HumanDuration>,
}
