//! The embedded token store: one [redb](https://docs.rs/redb) file.
//!
//! # Why redb
//! Pure Rust (no C toolchain, no unsafe to audit on our side), ACID with serializable write
//! transactions, copy-on-write B-trees with checksummed commits: a process killed at any point
//! (`kill -9`, power loss) reopens to the last committed transaction, never to a torn one. It is
//! an embedded library (no server to run), stable file format since 1.0, and well maintained.
//! sled (unmaintained beta), RocksDB (C++ build) and SQLite (C, and an SQL layer we do not need)
//! were the alternatives.
//!
//! # Guarantees
//! * **Durable when acknowledged**: every mutating call is one write transaction committed with
//!   `Durability::Immediate` (fsync) before the call returns. A crash loses nothing that was
//!   acknowledged and resurrects nothing that was revoked.
//! * **Atomic**: a rotation (old token rotated out, family counter up, new token current) or a
//!   family revocation is one transaction. redb runs one write transaction at a time, so
//!   concurrent `use_refresh` calls of one token serialize: exactly one is `Used`.
//! * **Async workers never block**: each call runs on `tokio::task::spawn_blocking`.
//! * One process per file: redb locks the file, so a second gateway on the same path fails to
//!   open it (use the Redis store for several gateways).
//!
//! # Layout
//! Tables `refresh`, `access` (key: 32-byte token hash), `family` (key: family id), `jti`
//! (key: 32-byte hash, value: exp), with JSON values; and `expiry`, an index whose keys are
//! `exp (u64, big-endian) ‖ kind ‖ id` so [`TokenStore::purge_expired`] is a range scan of what
//! expired, deleting in batches of [`PURGE_BATCH`] per transaction. Entries that never expire
//! are not indexed. Expired entries read as dead before the purge deletes them.

use super::types::{live, max_exp};
use super::{
    AccessRecord, RefreshRecord, RefreshUse, Revocation, Rotation, StoreError, TokenHash,
    TokenStore,
};
use async_trait::async_trait;
use redb::{Database, ReadableTable, Table, TableDefinition, WriteTransaction};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;

const REFRESH: TableDefinition<&[u8], &[u8]> = TableDefinition::new("refresh");
const ACCESS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("access");
const FAMILY: TableDefinition<&str, &[u8]> = TableDefinition::new("family");
const JTI: TableDefinition<&[u8], u64> = TableDefinition::new("jti");
const EXPIRY: TableDefinition<&[u8], ()> = TableDefinition::new("expiry");

/// Most index entries deleted by one purge transaction (keeps write transactions short).
pub const PURGE_BATCH: usize = 1000;

const K_REFRESH: u8 = b'r';
const K_ACCESS: u8 = b'a';
const K_FAMILY: u8 = b'f';
const K_JTI: u8 = b'j';

#[derive(Serialize, Deserialize)]
struct RtEntry {
    rec: RefreshRecord,
    rotated: bool,
}

#[derive(Serialize, Deserialize)]
struct FamEntry {
    client_id: String,
    revoked: bool,
    uses: u32,
    max_uses: Option<u32>,
    exp: Option<u64>,
}

/// An access token, or (with `rec: None`) a revocation tombstone for an unrecorded JWT.
#[derive(Serialize, Deserialize)]
struct AtEntry {
    rec: Option<AccessRecord>,
    client_id: String,
    family_id: Option<String>,
    revoked: bool,
    exp: Option<u64>,
}

/// Failure inside a transaction; becomes a [`StoreError`] at the boundary.
enum Fail {
    Db(Box<redb::Error>),
    Codec(serde_json::Error),
    Conflict,
}

macro_rules! db_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Fail {
            fn from(e: $t) -> Self {
                Fail::Db(Box::new(e.into()))
            }
        }
    )*};
}
db_from!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl From<serde_json::Error> for Fail {
    fn from(e: serde_json::Error) -> Self {
        Fail::Codec(e)
    }
}

impl From<Fail> for StoreError {
    fn from(f: Fail) -> Self {
        match f {
            // Disk full, I/O error, lock lost: the store cannot answer. Fail closed.
            Fail::Db(e) => StoreError::Unavailable(format!("embedded store: {e}")),
            Fail::Codec(e) => StoreError::Corrupt(e.to_string()),
            Fail::Conflict => StoreError::Conflict,
        }
    }
}

fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>, Fail> {
    Ok(serde_json::to_vec(v)?)
}

fn dec<T: DeserializeOwned>(b: &[u8]) -> Result<T, Fail> {
    Ok(serde_json::from_slice(b)?)
}

fn index_key(exp: u64, kind: u8, id: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + id.len());
    k.extend_from_slice(&exp.to_be_bytes());
    k.push(kind);
    k.extend_from_slice(id);
    k
}

type Tbl<'t, K> = Table<'t, K, &'static [u8]>;

fn index(ix: &mut Table<&[u8], ()>, exp: Option<u64>, kind: u8, id: &[u8]) -> Result<(), Fail> {
    if let Some(e) = exp {
        ix.insert(index_key(e, kind, id).as_slice(), ())?;
    }
    Ok(())
}

fn unindex(ix: &mut Table<&[u8], ()>, exp: Option<u64>, kind: u8, id: &[u8]) -> Result<(), Fail> {
    if let Some(e) = exp {
        ix.remove(index_key(e, kind, id).as_slice())?;
    }
    Ok(())
}

fn get_json<K: redb::Key + 'static, T: DeserializeOwned>(
    t: &impl ReadableTable<K, &'static [u8]>,
    key: K::SelfType<'_>,
) -> Result<Option<T>, Fail> {
    match t.get(key)? {
        Some(g) => Ok(Some(dec(g.value())?)),
        None => Ok(None),
    }
}

/// Create the family or extend its lifetime; `set_max = Some(m)` also sets its use limit.
fn touch_family(
    fam: &mut Tbl<&'static str>,
    ix: &mut Table<&[u8], ()>,
    family_id: &str,
    client_id: &str,
    exp: Option<u64>,
    set_max: Option<Option<u32>>,
) -> Result<(), Fail> {
    let entry = match get_json::<&str, FamEntry>(fam, family_id)? {
        Some(mut f) => {
            let new_exp = max_exp(f.exp, exp);
            if new_exp != f.exp {
                unindex(ix, f.exp, K_FAMILY, family_id.as_bytes())?;
                index(ix, new_exp, K_FAMILY, family_id.as_bytes())?;
                f.exp = new_exp;
            }
            if let Some(m) = set_max {
                f.max_uses = m;
            }
            f
        }
        None => {
            index(ix, exp, K_FAMILY, family_id.as_bytes())?;
            FamEntry {
                client_id: client_id.to_string(),
                revoked: false,
                uses: 0,
                max_uses: set_max.flatten(),
                exp,
            }
        }
    };
    fam.insert(family_id, enc(&entry)?.as_slice())?;
    Ok(())
}

/// Mark a family revoked; `false` if it does not exist.
fn revoke_fam(fam: &mut Tbl<&'static str>, family_id: &str) -> Result<bool, Fail> {
    match get_json::<&str, FamEntry>(fam, family_id)? {
        Some(mut f) => {
            if !f.revoked {
                f.revoked = true;
                fam.insert(family_id, enc(&f)?.as_slice())?;
            }
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Is the family present and not revoked? (A missing family reads as revoked: fail closed.)
fn family_live(
    fam: &impl ReadableTable<&'static str, &'static [u8]>,
    family_id: &str,
) -> Result<Option<FamEntry>, Fail> {
    Ok(get_json::<&str, FamEntry>(fam, family_id)?.filter(|f| !f.revoked))
}

/// The embedded store. Cheap to clone (the database handle is shared).
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
}

impl EmbeddedStore {
    /// Open (or create) the database file, creating its parent directory. Repairs the file
    /// after an unclean shutdown (redb does it on open).
    pub async fn open(path: PathBuf) -> Result<Self, StoreError> {
        tokio::task::spawn_blocking(move || Self::open_blocking(path))
            .await
            .map_err(|e| StoreError::Unavailable(format!("open task failed: {e}")))?
    }

    fn open_blocking(path: PathBuf) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Config(format!("{}: {e}", dir.display())))?;
        }
        let db = Database::create(&path)
            .map_err(|e| StoreError::Config(format!("{}: {e}", path.display())))?;
        let init = || -> Result<(), Fail> {
            let tx = db.begin_write()?;
            tx.open_table(REFRESH)?;
            tx.open_table(ACCESS)?;
            tx.open_table(FAMILY)?;
            tx.open_table(JTI)?;
            tx.open_table(EXPIRY)?;
            tx.commit()?;
            Ok(())
        };
        init()?;
        Ok(EmbeddedStore { db: Arc::new(db) })
    }

    /// Run `f` on the blocking pool with the database.
    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, Fail> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&db).map_err(StoreError::from))
            .await
            .map_err(|e| StoreError::Unavailable(format!("store task failed: {e}")))?
    }

    /// Run `f` in one write transaction, committed (durably) when `f` returns `(value, true)`
    /// and aborted when it returns `(value, false)` (nothing changed: no fsync).
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<(T, bool), Fail> + Send + 'static,
    {
        self.blocking(move |db| {
            let tx = db.begin_write()?;
            let (v, changed) = f(&tx)?;
            if changed {
                tx.commit()?;
            } else {
                tx.abort()?;
            }
            Ok(v)
        })
        .await
    }
}

#[cfg(test)]
impl EmbeddedStore {
    /// Entries waiting in the expiry index (tests watch the purge with it).
    pub(crate) async fn expiry_index_len(&self) -> u64 {
        self.blocking(|db| {
            let tx = db.begin_read()?;
            Ok(redb::ReadableTableMetadata::len(&tx.open_table(EXPIRY)?)?)
        })
        .await
        .unwrap_or(u64::MAX)
    }
}

#[async_trait]
impl TokenStore for EmbeddedStore {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    async fn put_access(&self, rec: AccessRecord, _now: u64) -> Result<(), StoreError> {
        self.write(move |tx| {
            let mut at = tx.open_table(ACCESS)?;
            let mut ix = tx.open_table(EXPIRY)?;
            let key = rec.hash.0;
            if at.get(key.as_slice())?.is_some() {
                return Err(Fail::Conflict);
            }
            if let Some(fid) = &rec.family_id {
                let mut fam = tx.open_table(FAMILY)?;
                touch_family(&mut fam, &mut ix, fid, &rec.client_id, rec.exp, None)?;
            }
            index(&mut ix, rec.exp, K_ACCESS, &key)?;
            let entry = AtEntry {
                client_id: rec.client_id.clone(),
                family_id: rec.family_id.clone(),
                revoked: false,
                exp: rec.exp,
                rec: Some(rec),
            };
            at.insert(key.as_slice(), enc(&entry)?.as_slice())?;
            Ok(((), true))
        })
        .await
    }

    async fn get_access(
        &self,
        key: &TokenHash,
        now: u64,
    ) -> Result<Option<AccessRecord>, StoreError> {
        let key = *key;
        self.blocking(move |db| {
            let tx = db.begin_read()?;
            let at = tx.open_table(ACCESS)?;
            let Some(e) = get_json::<&[u8], AtEntry>(&at, key.0.as_slice())? else {
                return Ok(None);
            };
            let Some(rec) = e.rec.filter(|_| !e.revoked && live(e.exp, now)) else {
                return Ok(None);
            };
            if let Some(fid) = &e.family_id {
                let fam = tx.open_table(FAMILY)?;
                if family_live(&fam, fid)?.is_none() {
                    return Ok(None);
                }
            }
            Ok(Some(rec))
        })
        .await
    }

    async fn is_access_revoked(&self, key: &TokenHash) -> Result<bool, StoreError> {
        let key = *key;
        self.blocking(move |db| {
            let tx = db.begin_read()?;
            let at = tx.open_table(ACCESS)?;
            let Some(e) = get_json::<&[u8], AtEntry>(&at, key.0.as_slice())? else {
                return Ok(false);
            };
            if e.revoked {
                return Ok(true);
            }
            match &e.family_id {
                Some(fid) => Ok(family_live(&tx.open_table(FAMILY)?, fid)?.is_none()),
                None => Ok(false),
            }
        })
        .await
    }

    async fn revoke_access(
        &self,
        key: &TokenHash,
        client_id: &str,
        exp_hint: Option<u64>,
        now: u64,
    ) -> Result<Revocation, StoreError> {
        let key = *key;
        let client_id = client_id.to_string();
        self.write(move |tx| {
            let mut at = tx.open_table(ACCESS)?;
            match get_json::<&[u8], AtEntry>(&at, key.0.as_slice())? {
                Some(e) if e.client_id != client_id => Ok((Revocation::WrongClient, false)),
                Some(e) if e.revoked => Ok((Revocation::Revoked, false)),
                Some(mut e) => {
                    e.revoked = true;
                    at.insert(key.0.as_slice(), enc(&e)?.as_slice())?;
                    Ok((Revocation::Revoked, true))
                }
                None => match exp_hint.filter(|e| *e > now) {
                    Some(exp) => {
                        let mut ix = tx.open_table(EXPIRY)?;
                        index(&mut ix, Some(exp), K_ACCESS, &key.0)?;
                        let e = AtEntry {
                            rec: None,
                            client_id,
                            family_id: None,
                            revoked: true,
                            exp: Some(exp),
                        };
                        at.insert(key.0.as_slice(), enc(&e)?.as_slice())?;
                        Ok((Revocation::Revoked, true))
                    }
                    None => Ok((Revocation::NotFound, false)),
                },
            }
        })
        .await
    }

    async fn put_refresh(&self, rec: RefreshRecord, _now: u64) -> Result<(), StoreError> {
        self.write(move |tx| {
            let mut rt = tx.open_table(REFRESH)?;
            let mut fam = tx.open_table(FAMILY)?;
            let mut ix = tx.open_table(EXPIRY)?;
            let key = rec.hash.0;
            if rt.get(key.as_slice())?.is_some() {
                return Err(Fail::Conflict);
            }
            touch_family(
                &mut fam,
                &mut ix,
                &rec.family_id,
                &rec.client_id,
                rec.exp,
                Some(rec.max_uses),
            )?;
            index(&mut ix, rec.exp, K_REFRESH, &key)?;
            let e = RtEntry {
                rec,
                rotated: false,
            };
            rt.insert(key.as_slice(), enc(&e)?.as_slice())?;
            Ok(((), true))
        })
        .await
    }

    async fn get_refresh(
        &self,
        key: &TokenHash,
        now: u64,
    ) -> Result<Option<RefreshRecord>, StoreError> {
        let key = *key;
        self.blocking(move |db| {
            let tx = db.begin_read()?;
            let rt = tx.open_table(REFRESH)?;
            let Some(e) = get_json::<&[u8], RtEntry>(&rt, key.0.as_slice())? else {
                return Ok(None);
            };
            if e.rotated || !live(e.rec.exp, now) {
                return Ok(None);
            }
            let fam = tx.open_table(FAMILY)?;
            Ok(family_live(&fam, &e.rec.family_id)?
                .filter(|f| !f.max_uses.is_some_and(|m| f.uses >= m))
                .map(|f| RefreshRecord {
                    max_uses: f.max_uses,
                    ..e.rec
                }))
        })
        .await
    }

    async fn use_refresh(
        &self,
        key: &TokenHash,
        client_id: &str,
        now: u64,
        rotation: Option<Rotation>,
    ) -> Result<RefreshUse, StoreError> {
        let key = *key;
        let client_id = client_id.to_string();
        self.write(move |tx| use_refresh_tx(tx, key, &client_id, now, rotation))
            .await
    }

    async fn revoke_refresh(
        &self,
        key: &TokenHash,
        client_id: &str,
        _now: u64,
    ) -> Result<Revocation, StoreError> {
        let key = *key;
        let client_id = client_id.to_string();
        self.write(move |tx| {
            let rt = tx.open_table(REFRESH)?;
            let Some(e) = get_json::<&[u8], RtEntry>(&rt, key.0.as_slice())? else {
                return Ok((Revocation::NotFound, false));
            };
            if e.rec.client_id != client_id {
                return Ok((Revocation::WrongClient, false));
            }
            let mut fam = tx.open_table(FAMILY)?;
            revoke_fam(&mut fam, &e.rec.family_id)?;
            Ok((Revocation::Revoked, true))
        })
        .await
    }

    async fn revoke_family(&self, family_id: &str, _now: u64) -> Result<bool, StoreError> {
        let family_id = family_id.to_string();
        self.write(move |tx| {
            let mut fam = tx.open_table(FAMILY)?;
            let found = revoke_fam(&mut fam, &family_id)?;
            Ok((found, found))
        })
        .await
    }

    async fn remember_jti(&self, key: &TokenHash, exp: u64, now: u64) -> Result<bool, StoreError> {
        let key = *key;
        self.write(move |tx| {
            let mut jti = tx.open_table(JTI)?;
            let mut ix = tx.open_table(EXPIRY)?;
            let old = jti.get(key.0.as_slice())?.map(|g| g.value());
            if let Some(old_exp) = old {
                if now < old_exp {
                    return Ok((false, false));
                }
                unindex(&mut ix, Some(old_exp), K_JTI, &key.0)?;
            }
            jti.insert(key.0.as_slice(), exp)?;
            index(&mut ix, Some(exp), K_JTI, &key.0)?;
            Ok((true, true))
        })
        .await
    }

    async fn health(&self) -> Result<(), StoreError> {
        self.blocking(|db| {
            let tx = db.begin_read()?;
            tx.open_table(FAMILY)?;
            Ok(())
        })
        .await
    }

    async fn purge_expired(&self, now: u64) -> Result<u64, StoreError> {
        let mut total = 0u64;
        loop {
            let n = self.write(move |tx| purge_batch(tx, now)).await?;
            total += n as u64;
            if n < PURGE_BATCH {
                return Ok(total);
            }
        }
    }
}

/// The atomic body of [`TokenStore::use_refresh`]; returns `(outcome, changed)`.
fn use_refresh_tx(
    tx: &WriteTransaction,
    key: TokenHash,
    client_id: &str,
    now: u64,
    rotation: Option<Rotation>,
) -> Result<(RefreshUse, bool), Fail> {
    let mut rt = tx.open_table(REFRESH)?;
    let mut fam = tx.open_table(FAMILY)?;
    let Some(mut e) = get_json::<&[u8], RtEntry>(&rt, key.0.as_slice())? else {
        return Ok((RefreshUse::NotFound, false));
    };
    if e.rec.client_id != client_id {
        return Ok((RefreshUse::WrongClient, false));
    }
    let fid = e.rec.family_id.clone();
    let Some(mut f) = family_live(&fam, &fid)? else {
        return Ok((RefreshUse::Revoked, false));
    };
    if !live(e.rec.exp, now) {
        return Ok((RefreshUse::Expired, false));
    }
    if e.rotated {
        revoke_fam(&mut fam, &fid)?;
        return Ok((RefreshUse::Reused, true));
    }
    if f.max_uses.is_some_and(|m| f.uses >= m) {
        return Ok((RefreshUse::Exhausted, false));
    }
    f.uses = f.uses.saturating_add(1);
    let uses = f.uses;
    let max_uses = f.max_uses;
    fam.insert(fid.as_str(), enc(&f)?.as_slice())?;
    if let Some(r) = rotation {
        if rt.get(r.hash.0.as_slice())?.is_some() {
            return Err(Fail::Conflict);
        }
        let mut ix = tx.open_table(EXPIRY)?;
        touch_family(&mut fam, &mut ix, &fid, client_id, r.exp, None)?;
        let next = RtEntry {
            rec: RefreshRecord {
                hash: r.hash,
                issued_at: r.issued_at,
                exp: r.exp,
                scope: r.scope.unwrap_or_else(|| e.rec.scope.clone()),
                ..e.rec.clone()
            },
            rotated: false,
        };
        index(&mut ix, r.exp, K_REFRESH, &r.hash.0)?;
        rt.insert(r.hash.0.as_slice(), enc(&next)?.as_slice())?;
        e.rotated = true;
        rt.insert(key.0.as_slice(), enc(&e)?.as_slice())?;
    }
    let record = Box::new(RefreshRecord { max_uses, ..e.rec });
    Ok((RefreshUse::Used { record, uses }, true))
}

/// Delete up to [`PURGE_BATCH`] entries that expired at or before `now`.
fn purge_batch(tx: &WriteTransaction, now: u64) -> Result<(usize, bool), Fail> {
    let mut ix = tx.open_table(EXPIRY)?;
    let upper = now.saturating_add(1).to_be_bytes();
    let mut keys: Vec<Vec<u8>> = Vec::new();
    for item in ix.range::<&[u8]>(..upper.as_slice())?.take(PURGE_BATCH) {
        let (k, _) = item?;
        keys.push(k.value().to_vec());
    }
    if keys.is_empty() {
        return Ok((0, false));
    }
    let mut rt = tx.open_table(REFRESH)?;
    let mut at = tx.open_table(ACCESS)?;
    let mut fam = tx.open_table(FAMILY)?;
    let mut jti = tx.open_table(JTI)?;
    for k in &keys {
        ix.remove(k.as_slice())?;
        let (Some(kind), Some(id)) = (k.get(8), k.get(9..)) else {
            continue;
        };
        match *kind {
            K_REFRESH => {
                rt.remove(id)?;
            }
            K_ACCESS => {
                at.remove(id)?;
            }
            K_JTI => {
                jti.remove(id)?;
            }
            K_FAMILY => {
                if let Ok(fid) = std::str::from_utf8(id) {
                    fam.remove(fid)?;
                }
            }
            _ => {}
        }
    }
    Ok((keys.len(), true))
}
