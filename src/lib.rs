//! tokengate: an API gateway on Pingora whose core business is tokens.
//!
//! Config flows one way: TOML -> [`config::RawConfig`] (serde) -> [`compile::Snapshot`]
//! (everything parsed once) -> one `ArcSwap` in [`state::State`] -> loaded once per request in
//! [`proxy::Gateway`]. See README.md for the phase chart.
#![forbid(unsafe_code)]

pub mod accesslog;
pub mod admin;
pub mod compile;
pub mod config;
pub mod error;
pub mod expr;
pub mod fingerprint;
pub mod front;
pub mod identity;
pub mod jose;
pub mod keys;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod reload;
pub mod reply;
pub mod request;
pub mod router;
pub mod server;
pub mod shared;
pub mod state;
pub mod store;
pub mod token;
pub mod units;
pub mod upstream;

pub use compile::Snapshot;
