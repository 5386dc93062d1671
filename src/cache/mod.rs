//! Caches shared by several services and policies, below them in the layer table so that
//! each can use them without importing the other.
//!
//! * [`verified`]: verified tokens by hash (jwt_verify, and the token service's own JWTs
//!   checked by jwt_auth and introspection).

pub mod verified;
