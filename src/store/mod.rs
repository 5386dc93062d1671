//! Token store: the state behind the OAuth2 token service (issued opaque access tokens, refresh
//! tokens and their families, revocations, client-assertion `jti`s), behind one async trait,
//! [`TokenStore`], with two backends:
//!
//! * [`embedded::EmbeddedStore`] (the default): one redb file, ACID, each write durable when the
//!   call returns. One gateway process.
//! * [`redis::RedisStore`]: several gateways behind a load balancer share one Redis; every
//!   read-modify-write is one Lua script, so it is atomic across gateways.
//!
//! # Model (the same on both backends)
//! * The store never sees a raw token: keys are [`TokenHash`]es (SHA-256 of the token, or of the
//!   `jti` for a JWT access token), so a dump of the store yields no usable token (RFC 6819
//!   §5.1.4.1.3).
//! * Every refresh token belongs to a **family** (one grant: the first refresh token and all its
//!   rotations, plus the access tokens issued with `family_id`). The family holds the revocation
//!   flag and the use counter, so revoking a whole grant is one write, whatever its size, and
//!   every member (refresh *and* access tokens) sees it on its next lookup. A family lives as long
//!   as its longest-lived member; a member whose family is gone reads as revoked (fail closed).
//! * Times are unix seconds passed in by the caller (`now`), so both backends agree on expiry
//!   whatever the Redis server's clock says, and tests can move time. A token is live while
//!   `now < exp`; `exp: None` never expires.
//! * Nothing is cached in the process: a revocation is seen by the next lookup on any gateway.
//!
//! # Failures
//! Every operation returns `Result<_, StoreError>`. [`StoreError::Unavailable`] means the store
//! could not answer (Redis down or slow past its deadline, disk error): callers fail closed
//! (503 `temporarily_unavailable`, introspection never `active:true`, and a JWT whose
//! [`TokenStore::is_access_revoked`] failed is refused, never accepted because the lookup
//! failed). A denial (expired, revoked, reused, wrong client…) is a value ([`RefreshUse`],
//! [`Revocation`], `None`), never an error.
//!
//! # Flow for the token endpoint (refresh_token grant)
//! 1. `get_refresh(hash(rt))`: unknown/inactive -> `invalid_grant`; check the requested scope
//!    is within `record.scope` (`invalid_scope` otherwise; the fields read are immutable, so
//!    this read needs no lock).
//! 2. `use_refresh(hash(rt), client_id, now, Some(Rotation { hash(new_rt), .. }))`: anything
//!    but `Used` -> `invalid_grant`.
//! 3. `put_access(AccessRecord { family_id: Some(record.family_id), .. })` for an opaque (or
//!    tracked JWT) access token, so revoking the grant revokes it.

pub mod embedded;
pub mod redis;
mod spec;
mod types;

#[cfg(test)]
mod tests;

pub use crate::config::store::{StoreConfig, StoreKind};
pub use spec::StoreSpec;
pub use types::{
    now_unix, AccessRecord, RefreshRecord, RefreshUse, Revocation, Rotation, StoreError, TokenHash,
};

use async_trait::async_trait;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The token store. Object-safe: the gateway holds an `Arc<dyn TokenStore>`.
///
/// Every method is one atomic step on the backend (one redb write transaction, or one Lua
/// script / one Redis command): two gateways or fifty concurrent requests never see half of it.
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    /// `"embedded"` or `"redis"`, for logs and /readyz.
    fn kind(&self) -> &'static str;

    /// Record an issued access token (an opaque token by its hash, a JWT by the hash of its
    /// `jti`). With `family_id`, the token dies with its family (revoking the refresh token
    /// revokes it, RFC 7009 §2.1); the family is created if absent and its lifetime extended.
    /// A key already present is [`StoreError::Conflict`] (never overwritten, so a revoked
    /// record cannot be replaced by a live one).
    async fn put_access(&self, rec: AccessRecord, now: u64) -> Result<(), StoreError>;

    /// The access token's record if it is live: present, `now < exp`, not revoked, and its
    /// family (if any) present and not revoked. `None` otherwise.
    async fn get_access(
        &self,
        key: &TokenHash,
        now: u64,
    ) -> Result<Option<AccessRecord>, StoreError>;

    /// Revocation state for a token validated elsewhere (a JWT checked by signature): `true`
    /// when it was revoked directly, or its family was revoked or is gone. An unknown key is
    /// `false` (JWTs need not be recorded to be valid).
    async fn is_access_revoked(&self, key: &TokenHash) -> Result<bool, StoreError>;

    /// Revoke one access token on behalf of `client_id` (RFC 7009: a client revokes only its
    /// own tokens). An unrecorded key is revoked only when `exp_hint` (the verified JWT's `exp`)
    /// is in the future: a tombstone kept until then; otherwise [`Revocation::NotFound`], so
    /// revoking garbage stores nothing.
    async fn revoke_access(
        &self,
        key: &TokenHash,
        client_id: &str,
        exp_hint: Option<u64>,
        now: u64,
    ) -> Result<Revocation, StoreError>;

    /// Record an issued refresh token. Creates its family if absent (or extends its lifetime)
    /// and sets the family's use limit to `rec.max_uses`. A key already present is
    /// [`StoreError::Conflict`].
    async fn put_refresh(&self, rec: RefreshRecord, now: u64) -> Result<(), StoreError>;

    /// The refresh token's record if it could be used now (present, current, unexpired, family
    /// live and below its use limit). For introspection, and to check a requested scope before [`use_refresh`]
    /// (the fields checked there are immutable). `uses` is not consumed.
    ///
    /// [`use_refresh`]: TokenStore::use_refresh
    async fn get_refresh(
        &self,
        key: &TokenHash,
        now: u64,
    ) -> Result<Option<RefreshRecord>, StoreError>;

    /// Use a refresh token, atomically. Checks in this order: present (`NotFound`), issued to
    /// `client_id` (`WrongClient`, nothing changes), family live (`Revoked`), `now < exp`
    /// (`Expired`), not rotated out (else `Reused`: the family is revoked, including its current
    /// refresh token and its access tokens), family use count below its limit (`Exhausted`).
    /// Then the family's use count goes up by one and, with `rotation`, the presented token is
    /// rotated out and the new one (same family, client, subject, roles, extra) becomes current,
    /// all in the same step. 50 concurrent calls with one token: exactly one `Used`.
    async fn use_refresh(
        &self,
        key: &TokenHash,
        client_id: &str,
        now: u64,
        rotation: Option<Rotation>,
    ) -> Result<RefreshUse, StoreError>;

    /// Revoke a refresh token's whole family (and so the family's access tokens), on behalf of
    /// `client_id`. Rotated-out and expired tokens revoke their family too.
    async fn revoke_refresh(
        &self,
        key: &TokenHash,
        client_id: &str,
        now: u64,
    ) -> Result<Revocation, StoreError>;

    /// Revoke a family by id (admin: log a user out, a client was disabled). `false` if unknown.
    async fn revoke_family(&self, family_id: &str, now: u64) -> Result<bool, StoreError>;

    /// Insert-if-absent for a client assertion's `jti` (the caller hashes client id and jti into
    /// `key`), kept until `exp`. `true` = first time seen; `false` = replay.
    async fn remember_jti(&self, key: &TokenHash, exp: u64, now: u64) -> Result<bool, StoreError>;

    /// Is the store answering? For /readyz ("degraded" on error).
    async fn health(&self) -> Result<(), StoreError>;

    /// Delete what expired at or before `now`; returns how many entries went. The embedded
    /// store needs it (see [`spawn_purge_task`]); Redis expires keys itself and returns 0.
    async fn purge_expired(&self, now: u64) -> Result<u64, StoreError>;
}

/// Open the store a compiled config describes. For the embedded store this also starts its
/// background purge (see [`spawn_purge_task`]), which ends when the returned store is dropped.
/// The Redis store connects lazily: it opens even while Redis is down.
pub async fn open(spec: &StoreSpec) -> Result<Arc<dyn TokenStore>, StoreError> {
    match spec {
        StoreSpec::Embedded {
            path,
            purge_interval,
        } => {
            let store: Arc<dyn TokenStore> =
                Arc::new(embedded::EmbeddedStore::open(path.clone()).await?);
            // Detached: the task holds a weak reference and stops with the store.
            drop(spawn_purge_task(&store, *purge_interval));
            Ok(store)
        }
        StoreSpec::Redis {
            url,
            key_prefix,
            timeout,
        } => {
            let store = redis::RedisStore::connect(url, key_prefix, *timeout)?;
            Ok(Arc::new(store))
        }
    }
}

/// Run [`TokenStore::purge_expired`] every `every` until the store is dropped (the task holds
/// only a weak reference) or the handle is aborted. A failed purge is retried next tick.
pub fn spawn_purge_task(
    store: &Arc<dyn TokenStore>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    let weak: Weak<dyn TokenStore> = Arc::downgrade(store);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(store) = weak.upgrade() else { return };
            // Errors are transient (disk, Redis) and harmless: expired entries read as dead
            // anyway; the next tick tries again.
            let _ = store.purge_expired(now_unix()).await;
        }
    })
}
