//! The Redis token store: several gateways behind a load balancer share one Redis.
//!
//! # Atomicity
//! Every read-modify-write is one Lua script (`EVALSHA`, falling back to `EVAL` after a Redis
//! restart flushed the script cache): Redis runs a script to completion before any other
//! command, so a rotation, a use-count increment or a reuse-triggered family revocation is
//! atomic across all gateways. Fifty concurrent uses of one refresh token on five gateways give
//! exactly one `Used`. The scripts read the family key named inside the token hash, so this
//! store needs a single Redis (or a Sentinel-managed primary), not Redis Cluster.
//!
//! # Visibility
//! Nothing is cached in the gateway: every lookup is a round trip, so a revocation on one
//! gateway is seen by the next lookup on any other.
//!
//! # Keys (all under the configured prefix `P`)
//! * `P rt:<hex hash>`: hash {g: grant JSON (family, client, sub, roles, extra; shared by the
//!   rotations of a grant), sc: scope JSON, iat, exp, rot: 0|1, fam, cl}
//! * `P fam:<family id>`: hash {rev: 0|1, uses, max, exp, cl}
//! * `P at:<hex hash>`: hash {rec: record JSON ("" for a revocation tombstone), fam, cl, rev, exp}
//! * `P jti:<hex hash>`: "1" (`SET NX`)
//!
//! `exp` is stored as given ("" = never) and checked against the caller's `now`; each key also
//! gets a TTL of `exp - now` seconds (at least 1), so Redis drops it when the token expires
//! whatever the server's clock says. A family's TTL only grows, to cover its longest-lived
//! member. Scripts never parse JSON (Lua's cjson turns `[]` into `{}`): records are opaque blobs.
//!
//! # Operating Redis
//! Run it with `maxmemory-policy noeviction`: every key here has a TTL, so any `volatile-*` or
//! `allkeys-*` policy could evict a revocation (a revoked JWT's tombstone, a revoked family)
//! under memory pressure and make a revoked token valid again. Writes then fail with an OOM
//! error instead (`Unavailable`: fail closed). Persistence (AOF `appendfsync everysec` or
//! better) decides what a Redis restart keeps; without it a restart forgets every token.
//!
//! # Failure
//! Each call has a deadline (`timeout`, connect included): a dead, blackholed or stalled Redis
//! yields [`StoreError::Unavailable`] within it, never a hang. The connection manager reconnects
//! on the next call after a failure, so the store recovers by itself when Redis is back. A call
//! that timed out may still have run on the server (a rotation then happened, and the client's
//! retry with the old token is a reuse): the caller answers 503 and the client re-authenticates.

use super::types::live;
use super::{
    AccessRecord, RefreshRecord, RefreshUse, Revocation, Rotation, StoreError, TokenHash,
    TokenStore,
};
use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{ErrorKind, RedisError, Script};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

mod lua;

/// The immutable part of a refresh token, shared by all rotations of a grant.
#[derive(Serialize, Deserialize)]
struct Grant {
    family_id: String,
    client_id: String,
    sub: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    extra: BTreeMap<String, serde_json::Value>,
}

struct Scripts {
    put_access: Script,
    access_state: Script,
    revoke_access: Script,
    put_refresh: Script,
    get_refresh: Script,
    use_refresh: Script,
    revoke_refresh: Script,
    revoke_family: Script,
}

impl Scripts {
    fn new() -> Self {
        let s = |body: &str| Script::new(&format!("{}\n{}", lua::HELPERS, body));
        Scripts {
            put_access: s(lua::PUT_ACCESS),
            access_state: s(lua::ACCESS_STATE),
            revoke_access: s(lua::REVOKE_ACCESS),
            put_refresh: s(lua::PUT_REFRESH),
            get_refresh: s(lua::GET_REFRESH),
            use_refresh: s(lua::USE_REFRESH),
            revoke_refresh: s(lua::REVOKE_REFRESH),
            revoke_family: s(lua::REVOKE_FAMILY),
        }
    }
}

/// The Redis store. Cheap to clone (one multiplexed connection, shared).
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
    scripts: Arc<Scripts>,
}

fn opt(exp: Option<u64>) -> String {
    exp.map(|e| e.to_string()).unwrap_or_default()
}

fn parse_opt<T: std::str::FromStr>(s: &str, what: &str) -> Result<Option<T>, StoreError> {
    if s.is_empty() {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|_| StoreError::Corrupt(format!("bad {what} {s:?}")))
}

fn json<T: Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn revocation(s: &str) -> Result<Revocation, StoreError> {
    match s {
        "revoked" => Ok(Revocation::Revoked),
        "notfound" => Ok(Revocation::NotFound),
        "wrongclient" => Ok(Revocation::WrongClient),
        other => Err(StoreError::Corrupt(format!(
            "unexpected script reply {other:?}"
        ))),
    }
}

fn map_err(e: RedisError) -> StoreError {
    match e.kind() {
        ErrorKind::UnexpectedReturnType | ErrorKind::Parse => StoreError::Corrupt(e.to_string()),
        ErrorKind::InvalidClientConfig => StoreError::Config(e.to_string()),
        _ => StoreError::Unavailable(format!("redis: {e}")),
    }
}

impl RedisStore {
    /// Build the store. Connects lazily: a gateway starts even while Redis is down (its calls
    /// then fail closed until Redis answers). Only a malformed URL fails here.
    /// Must be called inside a Tokio runtime (the connection manager spawns a task).
    pub fn connect(url: &str, key_prefix: &str, timeout: Duration) -> Result<Self, StoreError> {
        let client = ::redis::Client::open(url)
            .map_err(|e| StoreError::Config(format!("redis url: {e}")))?;
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            // One retry, quickly: the call's deadline bounds the wait anyway, and the next call
            // starts a fresh reconnect. No thundering reconnect loop in the background.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(timeout);
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(StoreError::Config(
                "the Redis store must be created inside a Tokio runtime".into(),
            ));
        }
        let conn = ConnectionManager::new_lazy_with_config(client, cfg).map_err(map_err)?;
        Ok(RedisStore {
            conn,
            prefix: key_prefix.to_string(),
            timeout,
            scripts: Arc::new(Scripts::new()),
        })
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}:{id}", self.prefix)
    }

    fn fam_prefix(&self) -> String {
        format!("{}fam:", self.prefix)
    }

    /// Await a Redis call under the deadline.
    async fn call<T>(
        &self,
        fut: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r.map_err(map_err),
            Err(_) => Err(StoreError::Unavailable(format!(
                "redis: no answer within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }

    /// `(record JSON, revoked)` of an access key, or `None` if absent.
    async fn access_state(&self, key: &TokenHash) -> Result<Option<(String, bool)>, StoreError> {
        let mut conn = self.conn.clone();
        let mut inv = self.scripts.access_state.prepare_invoke();
        inv.key(self.key("at", &key.to_hex()))
            .arg(self.fam_prefix());
        let r: Option<(String, String)> = self.call(inv.invoke_async(&mut conn)).await?;
        Ok(r.map(|(rec, rev)| (rec, rev == "1")))
    }

    fn refresh_record(
        hash: TokenHash,
        g: &str,
        sc: &str,
        iat: &str,
        exp: &str,
        max: &str,
    ) -> Result<RefreshRecord, StoreError> {
        let g: Grant = from_json(g)?;
        Ok(RefreshRecord {
            hash,
            family_id: g.family_id,
            client_id: g.client_id,
            sub: g.sub,
            scope: from_json(sc)?,
            roles: g.roles,
            issued_at: parse_opt(iat, "iat")?.unwrap_or(0),
            exp: parse_opt(exp, "exp")?,
            max_uses: parse_opt(max, "max")?,
            extra: g.extra,
        })
    }
}

#[async_trait]
impl TokenStore for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn put_access(&self, rec: AccessRecord, now: u64) -> Result<(), StoreError> {
        let body = json(&rec)?;
        let fam = rec.family_id.clone().unwrap_or_default();
        let mut conn = self.conn.clone();
        let mut inv = self.scripts.put_access.prepare_invoke();
        inv.key(self.key("at", &rec.hash.to_hex()))
            .key(self.key("fam", &fam))
            .arg(body)
            .arg(fam)
            .arg(&rec.client_id)
            .arg(opt(rec.exp))
            .arg(now);
        let ok: i64 = self.call(inv.invoke_async(&mut conn)).await?;
        if ok == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict)
        }
    }

    async fn get_access(
        &self,
        key: &TokenHash,
        now: u64,
    ) -> Result<Option<AccessRecord>, StoreError> {
        match self.access_state(key).await? {
            Some((rec, false)) if !rec.is_empty() => {
                let rec: AccessRecord = from_json(&rec)?;
                Ok(Some(rec).filter(|r| live(r.exp, now)))
            }
            _ => Ok(None),
        }
    }

    async fn is_access_revoked(&self, key: &TokenHash) -> Result<bool, StoreError> {
        Ok(matches!(self.access_state(key).await?, Some((_, true))))
    }

    async fn revoke_access(
        &self,
        key: &TokenHash,
        client_id: &str,
        exp_hint: Option<u64>,
        now: u64,
    ) -> Result<Revocation, StoreError> {
        let mut conn = self.conn.clone();
        let mut inv = self.scripts.revoke_access.prepare_invoke();
        inv.key(self.key("at", &key.to_hex()))
            .arg(client_id)
            .arg(opt(exp_hint))
            .arg(now);
        let r: String = self.call(inv.invoke_async(&mut conn)).await?;
        revocation(&r)
    }

    async fn put_refresh(&self, rec: RefreshRecord, now: u64) -> Result<(), StoreError> {
        let RefreshRecord {
            hash,
            family_id,
            client_id,
            sub,
            scope,
            roles,
            issued_at,
            exp,
            max_uses,
            extra,
        } = rec;
        let sc = json(&scope)?;
        let grant = Grant {
            family_id,
            client_id,
            sub,
            roles,
            extra,
        };
        let g = json(&grant)?;
        let mut conn = self.conn.clone();
        let mut inv = self.scripts.put_refresh.prepare_invoke();
        inv.key(self.key("rt", &hash.to_hex()))
            .key(self.key("fam", &grant.family_id))
            .arg(g)
            .arg(sc)
            .arg(issued_at)
            .arg(opt(exp))
            .arg(&grant.family_id)
            .arg(&grant.client_id)
            .arg(max_uses.map(|m| m.to_string()).unwrap_or_default())
            .arg(now);
        let ok: i64 = self.call(inv.invoke_async(&mut conn)).await?;
        if ok == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict)
        }
    }

    async fn get_refresh(
        &self,
        key: &TokenHash,
        now: u64,
    ) -> Result<Option<RefreshRecord>, StoreError> {
        let mut conn = self.conn.clone();
        let mut inv = self.scripts.get_refresh.prepare_invoke();
        inv.key(self.key("rt", &key.to_hex()))
            .arg(self.fam_prefix());
        let r: Option<(String, String, String, String, String)> =
            self.call(inv.invoke_async(&mut conn)).await?;
        let Some((g, sc, iat, exp, max)) = r else {
            return Ok(None);
        };
        let rec = Self::refresh_record(*key, &g, &sc, &iat, &exp, &max)?;
        Ok(Some(rec).filter(|r| live(r.exp, now)))
    }

    async fn use_refresh(
        &self,
        key: &TokenHash,
        client_id: &str,
        now: u64,
        rotation: Option<Rotation>,
    ) -> Result<RefreshUse, StoreError> {
        let this = self.key("rt", &key.to_hex());
        let mut conn = self.conn.clone();
        let mut inv = self.scripts.use_refresh.prepare_invoke();
        match &rotation {
            Some(r) => {
                let sc = match &r.scope {
                    Some(s) => json(s)?,
                    None => String::new(),
                };
                inv.key(&this)
                    .key(self.key("rt", &r.hash.to_hex()))
                    .arg(client_id)
                    .arg(now)
                    .arg(self.fam_prefix())
                    .arg("1")
                    .arg(r.issued_at)
                    .arg(opt(r.exp))
                    .arg(sc);
            }
            None => {
                inv.key(&this)
                    .key(&this)
                    .arg(client_id)
                    .arg(now)
                    .arg(self.fam_prefix())
                    .arg("0")
                    .arg("")
                    .arg("")
                    .arg("");
            }
        }
        let r: Vec<String> = self.call(inv.invoke_async(&mut conn)).await?;
        match r.as_slice() {
            [s] => match s.as_str() {
                "notfound" => Ok(RefreshUse::NotFound),
                "wrongclient" => Ok(RefreshUse::WrongClient),
                "revoked" => Ok(RefreshUse::Revoked),
                "expired" => Ok(RefreshUse::Expired),
                "reused" => Ok(RefreshUse::Reused),
                "exhausted" => Ok(RefreshUse::Exhausted),
                "conflict" => Err(StoreError::Conflict),
                other => Err(StoreError::Corrupt(format!("unexpected reply {other:?}"))),
            },
            [s, g, sc, iat, exp, uses, max] if s == "used" => {
                let record = Box::new(Self::refresh_record(*key, g, sc, iat, exp, max)?);
                let uses = parse_opt(uses, "uses")?.unwrap_or(0);
                Ok(RefreshUse::Used { record, uses })
            }
            other => Err(StoreError::Corrupt(format!("unexpected reply {other:?}"))),
        }
    }

    async fn revoke_refresh(
        &self,
        key: &TokenHash,
        client_id: &str,
        _now: u64,
    ) -> Result<Revocation, StoreError> {
        let mut conn = self.conn.clone();
        let mut inv = self.scripts.revoke_refresh.prepare_invoke();
        inv.key(self.key("rt", &key.to_hex()))
            .arg(client_id)
            .arg(self.fam_prefix());
        let r: String = self.call(inv.invoke_async(&mut conn)).await?;
        revocation(&r)
    }

    async fn revoke_family(&self, family_id: &str, _now: u64) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let mut inv = self.scripts.revoke_family.prepare_invoke();
        inv.key(self.key("fam", family_id));
        let r: i64 = self.call(inv.invoke_async(&mut conn)).await?;
        Ok(r == 1)
    }

    async fn remember_jti(&self, key: &TokenHash, exp: u64, now: u64) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let ttl = exp.saturating_sub(now).max(1);
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(self.key("jti", &key.to_hex()))
            .arg("1")
            .arg("NX")
            .arg("EX")
            .arg(ttl);
        let r: Option<String> = self.call(cmd.query_async(&mut conn)).await?;
        Ok(r.is_some())
    }

    async fn health(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let cmd = ::redis::cmd("PING");
        let _: String = self.call(cmd.query_async(&mut conn)).await?;
        Ok(())
    }

    async fn purge_expired(&self, _now: u64) -> Result<u64, StoreError> {
        // Redis expires every key at its token's expiry (TTL): nothing to do.
        Ok(0)
    }
}
