//! Tables, stored entries and the transaction bodies of the embedded store. Everything here
//! runs inside one redb write (or read) transaction given by the caller.

use super::super::types::{live, max_exp};
use super::super::{AccessRecord, RefreshRecord, RefreshUse, Rotation, StoreError, TokenHash};
use redb::{ReadableTable, Table, TableDefinition, WriteTransaction};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

pub(super) const REFRESH: TableDefinition<&[u8], &[u8]> = TableDefinition::new("refresh");
pub(super) const ACCESS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("access");
pub(super) const FAMILY: TableDefinition<&str, &[u8]> = TableDefinition::new("family");
pub(super) const JTI: TableDefinition<&[u8], u64> = TableDefinition::new("jti");
pub(super) const EXPIRY: TableDefinition<&[u8], ()> = TableDefinition::new("expiry");

/// Most index entries deleted by one purge transaction (keeps write transactions short).
pub const PURGE_BATCH: usize = 1000;

pub(super) const K_REFRESH: u8 = b'r';
pub(super) const K_ACCESS: u8 = b'a';
pub(super) const K_FAMILY: u8 = b'f';
pub(super) const K_JTI: u8 = b'j';

#[derive(Serialize, Deserialize)]
pub(super) struct RtEntry {
    pub(super) rec: RefreshRecord,
    pub(super) rotated: bool,
}

#[derive(Serialize, Deserialize)]
pub(super) struct FamEntry {
    pub(super) client_id: String,
    pub(super) revoked: bool,
    pub(super) uses: u32,
    pub(super) max_uses: Option<u32>,
    pub(super) exp: Option<u64>,
}

/// An access token, or (with `rec: None`) a revocation tombstone for an unrecorded JWT.
#[derive(Serialize, Deserialize)]
pub(super) struct AtEntry {
    pub(super) rec: Option<AccessRecord>,
    pub(super) client_id: String,
    pub(super) family_id: Option<String>,
    pub(super) revoked: bool,
    pub(super) exp: Option<u64>,
}

/// Failure inside a transaction; becomes a [`StoreError`] at the boundary.
pub(super) enum Fail {
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

pub(super) fn enc<T: Serialize>(v: &T) -> Result<Vec<u8>, Fail> {
    Ok(serde_json::to_vec(v)?)
}

pub(super) fn dec<T: DeserializeOwned>(b: &[u8]) -> Result<T, Fail> {
    Ok(serde_json::from_slice(b)?)
}

pub(super) fn index_key(exp: u64, kind: u8, id: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + id.len());
    k.extend_from_slice(&exp.to_be_bytes());
    k.push(kind);
    k.extend_from_slice(id);
    k
}

pub(super) type Tbl<'t, K> = Table<'t, K, &'static [u8]>;

pub(super) fn index(
    ix: &mut Table<&[u8], ()>,
    exp: Option<u64>,
    kind: u8,
    id: &[u8],
) -> Result<(), Fail> {
    if let Some(e) = exp {
        ix.insert(index_key(e, kind, id).as_slice(), ())?;
    }
    Ok(())
}

pub(super) fn unindex(
    ix: &mut Table<&[u8], ()>,
    exp: Option<u64>,
    kind: u8,
    id: &[u8],
) -> Result<(), Fail> {
    if let Some(e) = exp {
        ix.remove(index_key(e, kind, id).as_slice())?;
    }
    Ok(())
}

pub(super) fn get_json<K: redb::Key + 'static, T: DeserializeOwned>(
    t: &impl ReadableTable<K, &'static [u8]>,
    key: K::SelfType<'_>,
) -> Result<Option<T>, Fail> {
    match t.get(key)? {
        Some(g) => Ok(Some(dec(g.value())?)),
        None => Ok(None),
    }
}

/// Create the family or extend its lifetime; `set_max = Some(m)` also sets its use limit.
pub(super) fn touch_family(
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
pub(super) fn revoke_fam(fam: &mut Tbl<&'static str>, family_id: &str) -> Result<bool, Fail> {
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
pub(super) fn family_live(
    fam: &impl ReadableTable<&'static str, &'static [u8]>,
    family_id: &str,
) -> Result<Option<FamEntry>, Fail> {
    Ok(get_json::<&str, FamEntry>(fam, family_id)?.filter(|f| !f.revoked))
}

/// The atomic body of [`TokenStore::use_refresh`]; returns `(outcome, changed)`.
pub(super) fn use_refresh_tx(
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
pub(super) fn purge_batch(tx: &WriteTransaction, now: u64) -> Result<(usize, bool), Fail> {
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
