//! tokengate: an API gateway on Pingora whose core business is tokens.
//!
//! Config flows one way: TOML -> [`config::RawConfig`] (serde) -> [`compile::Snapshot`]
//! (everything parsed once) -> one `ArcSwap` in [`state::State`] -> loaded once per request in
//! [`proxy::Gateway`]. See README.md for the phase chart.
//!
//! Modules form layers. An import may only point to the same or a lower layer, and top-level
//! modules never import each other in a cycle; `tests/layers.rs` keeps it so.
//!
//! ```text
//! L0 leaves   : units, error, jose/ (pure), reply, request, metrics, accesslog, fingerprint
//! L1 contract : config/   every serde type, one file per area, named like the module it configures
//! L2 blocks   : expr, router, upstream, front/, guard, keys/, store/, cache/
//! L3 services : identity/, token/
//! L4 policies : policy/
//! L5 compose  : compile, shared, lint, usage
//! L6 runtime  : state, reload, proxy/, admin, server, simulate, main
//! ```
#![forbid(unsafe_code)]

pub mod accesslog;
pub mod admin;
pub mod cache;
pub mod compile;
pub mod config;
pub mod error;
pub mod expr;
pub mod fingerprint;
pub mod front;
pub mod guard;
pub mod identity;
pub mod jose;
pub mod keys;
pub mod lint;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod reload;
pub mod reply;
pub mod request;
pub mod router;
pub mod server;
pub mod shared;
pub mod simulate;
pub mod state;
pub mod store;
pub mod token;
pub mod units;
pub mod upstream;
pub mod usage;

pub use compile::Snapshot;
