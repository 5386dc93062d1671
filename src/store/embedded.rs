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
//! * **Durable when acknowledged**: every mutating call is one write transaction, and the call
//!   returns only after an fsync'd commit covers it (group commit on one writer thread, see
//!   `embedded/writer.rs`). A crash loses nothing that was acknowledged and resurrects nothing
//!   that was revoked.
//! * **Atomic**: a rotation (old token rotated out, family counter up, new token current) or a
//!   family revocation is one transaction. All writes run one at a time on the writer thread,
//!   so concurrent `use_refresh` calls of one token serialize: exactly one is `Used`.
//! * **Async workers never block**: writes go to the writer thread over a channel, reads run on
//!   `tokio::task::spawn_blocking` (redb readers never wait for the writer: MVCC).
//! * One process per file: redb locks the file, so a second gateway on the same path fails to
//!   open it (use the Redis store for several gateways).
//!
//! # Layout
//! Tables `refresh`, `access` (key: 32-byte token hash), `family` (key: family id), `jti`
//! (key: 32-byte hash, value: exp), with JSON values; and `expiry`, an index whose keys are
//! `exp (u64, big-endian) ‖ kind ‖ id` so [`TokenStore::purge_expired`] is a range scan of what
//! expired, deleting in batches of [`PURGE_BATCH`] per transaction. Entries that never expire
//! are not indexed. Expired entries read as dead before the purge deletes them.

mod tables;
mod writer;

pub use tables::PURGE_BATCH;

use super::types::live;
use super::{
    AccessRecord, RefreshRecord, RefreshUse, Revocation, Rotation, StoreError, TokenHash,
    TokenStore,
};
use async_trait::async_trait;
use redb::{Database, Durability, ReadableTable, WriteTransaction};
use std::path::PathBuf;
use std::sync::Arc;
use tables::{
    enc, family_live, get_json, index, purge_batch, revoke_fam, touch_family, unindex,
    use_refresh_tx, AtEntry, Fail, RtEntry, ACCESS, EXPIRY, FAMILY, JTI, K_ACCESS, K_JTI,
    K_REFRESH, REFRESH,
};
use writer::Writer;

/// The embedded store. Cheap to clone (the database and its writer thread are shared; the
/// last clone dropped stops the writer and closes the file).
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    writer: Arc<Writer>,
}

impl EmbeddedStore {
    /// Open (or create) the database file, creating its parent directory. Repairs the file
    /// after an unclean shutdown (redb does it on open). A file already open (by this or
    /// another process) is refused.
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
        let db = Arc::new(db);
        let writer = Arc::new(Writer::start(Arc::clone(&db))?);
        Ok(EmbeddedStore { db, writer })
    }

    /// Run `f` on the blocking pool with the database (reads).
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

    /// Run `f` in its own write transaction on the writer thread: committed when `f` returns
    /// `(value, true)`, aborted when it returns `(value, false)` (nothing changed) or an error.
    /// Returns once the transaction is durable (group commit, see [`writer`]).
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<(T, bool), Fail> + Send + 'static,
    {
        let (done, wait) = tokio::sync::oneshot::channel::<Result<T, StoreError>>();
        let job: writer::Job = Box::new(move |db: &Database| {
            let (result, changed) = match run_write(db, f) {
                Ok((v, changed)) => (Ok(v), changed),
                Err(e) => (Err(StoreError::from(e)), false),
            };
            let ack: writer::Ack = Box::new(move |durable: Result<(), StoreError>| {
                let _ = done.send(durable.and(result));
            });
            (ack, changed)
        });
        self.writer.submit(job).await?;
        wait.await
            .map_err(|_| StoreError::Unavailable("store writer stopped".into()))?
    }
}

/// One job's transaction, committed without fsync (the writer's batch commit makes it durable).
fn run_write<T>(
    db: &Database,
    f: impl FnOnce(&WriteTransaction) -> Result<(T, bool), Fail>,
) -> Result<(T, bool), Fail> {
    let mut tx = db.begin_write()?;
    tx.set_durability(Durability::None);
    let (v, changed) = f(&tx)?;
    if changed {
        tx.commit()?;
    } else {
        tx.abort()?;
    }
    Ok((v, changed))
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
                .filter(|f| f.max_uses.is_none_or(|m| f.uses < m))
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
