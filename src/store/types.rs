//! The values the token store keeps and answers with, and its error type.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock unix seconds (token `exp`/`iat` are wall time by design, RFC 7519).
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// SHA-256 of a token (or of a JWT's `jti`): the only form in which a token reaches the store.
/// Not secret (that is the point), so it prints and serializes as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// Hash a token (or any key material: a `jti`, `client_id + "\0" + jti`).
    pub fn of(token: &[u8]) -> Self {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        TokenHash(out)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        s
    }

    /// Parse 64 hex characters.
    pub fn from_hex(s: &str) -> Option<Self> {
        fn nib(c: u8) -> Option<u8> {
            match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'a'..=b'f' => Some(c - b'a' + 10),
                b'A'..=b'F' => Some(c - b'A' + 10),
                _ => None,
            }
        }
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let (hi, lo) = match pair {
                [hi, lo] => (nib(*hi)?, nib(*lo)?),
                _ => return None,
            };
            *o = (hi << 4) | lo;
        }
        Some(TokenHash(out))
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({})", self.to_hex())
    }
}

impl Serialize for TokenHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for TokenHash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TokenHash::from_hex(&s).ok_or_else(|| serde::de::Error::custom("bad token hash"))
    }
}

/// An issued access token as the store keeps it (opaque tokens: everything the resource side
/// needs; JWTs: recorded only when their revocation must be tracked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRecord {
    /// Hash of the opaque token, or of the JWT's `jti`.
    pub hash: TokenHash,
    pub client_id: String,
    /// The resource owner, or the client itself for client_credentials (RFC 9068 §2.2).
    pub sub: String,
    #[serde(default)]
    pub scope: Vec<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub aud: Vec<String>,
    pub issued_at: u64,
    /// `None`: never expires (warned at config load).
    pub exp: Option<u64>,
    /// The grant (refresh-token family) this token belongs to, if any.
    #[serde(default)]
    pub family_id: Option<String>,
    /// Bound client IP: the token is usable only from this address (checked by the caller).
    #[serde(default)]
    pub client_ip: Option<IpAddr>,
    /// Anything else the token service wants back (kept as given, opaque to the store).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// An issued refresh token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshRecord {
    pub hash: TokenHash,
    /// The grant: all rotations of this token share it (random, chosen by the caller).
    pub family_id: String,
    pub client_id: String,
    pub sub: String,
    #[serde(default)]
    pub scope: Vec<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    pub issued_at: u64,
    /// `None`: never expires.
    pub exp: Option<u64>,
    /// Use limit of the whole family (the N+1th use fails). On [`TokenStore::put_refresh`] it
    /// sets the family's limit; when read back it is the family's limit.
    ///
    /// [`TokenStore::put_refresh`]: super::TokenStore::put_refresh
    #[serde(default)]
    pub max_uses: Option<u32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// The new refresh token that replaces the presented one in a rotation. Family, client,
/// subject, roles and extra are carried over from the presented token by the store (the caller
/// does not know them before the atomic step).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub hash: TokenHash,
    pub issued_at: u64,
    pub exp: Option<u64>,
    /// Narrowed scope for the new token (checked by the caller against [`get_refresh`]);
    /// `None` keeps the presented token's scope.
    ///
    /// [`get_refresh`]: super::TokenStore::get_refresh
    pub scope: Option<Vec<String>>,
}

/// What [`TokenStore::use_refresh`] found. Only `Used` grants anything; the token endpoint
/// answers every other value with `invalid_grant`.
///
/// [`TokenStore::use_refresh`]: super::TokenStore::use_refresh
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshUse {
    /// The token was good and is now used. `record` is the presented token (its `max_uses` is
    /// the family's limit); `uses` the family's use count including this use.
    Used {
        record: Box<RefreshRecord>,
        uses: u32,
    },
    /// A rotated-out token was presented: the family has just been revoked.
    Reused,
    /// The family reached its use limit.
    Exhausted,
    Expired,
    /// The family was revoked (or is gone).
    Revoked,
    /// Issued to another client (nothing changed).
    WrongClient,
    NotFound,
}

/// Outcome of a revocation request (RFC 7009 answers 200 to all three).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    /// Revoked now, or already revoked.
    Revoked,
    /// Unknown token: nothing stored.
    NotFound,
    /// The token belongs to another client: left alone.
    WrongClient,
}

/// Why the store could not answer. Stable `code()`s; every variant means "fail closed".
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// The store did not answer in time or could not be reached (Redis down, disk I/O error).
    /// The caller answers 503 `temporarily_unavailable` and readiness reports degraded.
    Unavailable(String),
    /// A stored value could not be decoded.
    Corrupt(String),
    /// `put_*` of a key that already exists (token hashes are random: a bug or an attack).
    Conflict,
    /// The store cannot be opened with this configuration (bad URL, unwritable path).
    Config(String),
}

impl StoreError {
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::Unavailable(_) => "store_unavailable",
            StoreError::Corrupt(_) => "store_corrupt",
            StoreError::Conflict => "store_conflict",
            StoreError::Config(_) => "store_config",
        }
    }

    /// True when the store could not be reached: retryable, maps to 503.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unavailable(m) => write!(f, "token store unavailable: {m}"),
            StoreError::Corrupt(m) => write!(f, "token store value corrupt: {m}"),
            StoreError::Conflict => write!(f, "token store key already exists"),
            StoreError::Config(m) => write!(f, "token store configuration: {m}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// Largest of two expiries where `None` is "never" (infinite).
pub(crate) fn max_exp(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        _ => None,
    }
}

/// Live at `now` (`exp: None` never expires).
pub(crate) fn live(exp: Option<u64>, now: u64) -> bool {
    exp.is_none_or(|e| now < e)
}
