//! Caches shared by several services and policies, below them in the layer table so that
//! each can use them without importing the other.
//!
//! * [`verified`]: verified tokens by hash (jwt_verify, and the token service's own JWTs
//!   checked by jwt_auth and introspection).
//! * [`expiring`]: the bounded, lock-free-read map under it and under jwt_generate's
//!   minted-token cache.

pub mod expiring;
pub mod verified;
