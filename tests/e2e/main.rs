//! End-to-end tests over real loopback sockets: one test binary, the gateway in-process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

mod admin;
mod cli;
mod errors;
mod faults;
mod generate_parity;
mod groups;
mod hostile;
mod identity;
mod jwks;
mod jwt_auth_sources;
mod jwt_generate;
mod jwt_verify;
mod keymat;
mod policies;
mod process;
mod reload;
mod routing;
mod tls;
mod token;
mod token_metrics;
mod token_routes;
