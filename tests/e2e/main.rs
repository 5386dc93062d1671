//! End-to-end tests over real loopback sockets: one test binary, the gateway in-process.

mod harness;

mod cli;
mod errors;
mod policies;
mod reload;
mod routing;
