//! JWK Sets and key selection. Selection is by (kid, alg) — never by kid alone — and never
//! uses key material named in the token header (`jwk`, `jku`, `x5u`, `x5c`).

use serde_json::Value;

use super::jwk::KeyOp;
use super::{json, JoseError, Jwk};

/// An unambiguous set of keys: no duplicate `kid`, no mix of symmetric and asymmetric keys.
#[derive(Debug, Default)]
pub struct JwkSet {
    keys: Vec<Jwk>,
}

/// What the token header says about its key.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyHint<'a> {
    pub kid: Option<&'a str>,
    pub x5t: Option<&'a str>,
    pub x5t_s256: Option<&'a str>,
}

impl JwkSet {
    /// Builds a set, refusing ambiguity.
    pub fn new(keys: Vec<Jwk>) -> Result<JwkSet, JoseError> {
        let sym = keys.iter().filter(|k| k.is_symmetric()).count();
        if sym != 0 && sym != keys.len() {
            return Err(JoseError::KeySetAmbiguous);
        }
        for (i, k) in keys.iter().enumerate() {
            if let Some(kid) = k.kid() {
                if keys.iter().skip(i + 1).any(|o| o.kid() == Some(kid)) {
                    return Err(JoseError::KeySetAmbiguous);
                }
            }
        }
        Ok(JwkSet { keys })
    }

    /// Parses `{"keys":[...]}` strictly: any unusable key fails the whole set.
    pub fn from_json(bytes: &[u8]) -> Result<JwkSet, JoseError> {
        Self::parse(bytes, false).map(|(set, _)| set)
    }

    /// Parses `{"keys":[...]}` skipping keys that are unusable (weak, unsupported curve...),
    /// as a remote JWKS may carry keys for other consumers. Returns the number skipped.
    /// Ambiguity still fails the whole set.
    pub fn from_json_lenient(bytes: &[u8]) -> Result<(JwkSet, usize), JoseError> {
        Self::parse(bytes, true)
    }

    fn parse(bytes: &[u8], lenient: bool) -> Result<(JwkSet, usize), JoseError> {
        let v = json::parse_strict(bytes).map_err(|_| JoseError::KeyMalformed("JSON"))?;
        let arr = match v.get("keys") {
            Some(Value::Array(a)) => a,
            _ => return Err(JoseError::KeyMalformed("keys")),
        };
        let mut keys = Vec::with_capacity(arr.len());
        let mut skipped = 0;
        for k in arr {
            match Jwk::from_value(k) {
                Ok(k) => keys.push(k),
                Err(_) if lenient => skipped += 1,
                Err(e) => return Err(e),
            }
        }
        Ok((JwkSet::new(keys)?, skipped))
    }

    /// A set of one key.
    pub fn single(key: Jwk) -> JwkSet {
        JwkSet { keys: vec![key] }
    }

    /// The keys.
    pub fn keys(&self) -> &[Jwk] {
        &self.keys
    }

    /// The keys, by value.
    pub fn into_keys(self) -> Vec<Jwk> {
        self.keys
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Exports the public JWKS (`{"keys":[...]}`); symmetric keys are left out.
    pub fn to_public_value(&self) -> Value {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .filter_map(|k| k.to_value(false).ok())
            .collect();
        serde_json::json!({ "keys": keys })
    }

    /// Keys that match the header hint and permit `op` with one of `alg_names`, in set order.
    /// With a kid, the key with that kid (and keys without a kid); else with an x5t#S256 or
    /// x5t, keys with that thumbprint (and keys without one); else every permitted key.
    pub fn candidates<'s>(
        &'s self,
        hint: KeyHint<'s>,
        op: KeyOp,
        alg_names: &'s [&'s str],
    ) -> impl Iterator<Item = &'s Jwk> + 's {
        self.keys.iter().filter(move |k| {
            // A key that carries no identifier of the hinted kind stays a candidate (a
            // statically configured key usually has no kid); a key that carries a different
            // one does not.
            let id_ok = match (hint.kid, hint.x5t_s256, hint.x5t) {
                (Some(kid), _, _) => k.kid().is_none_or(|x| x == kid),
                (None, Some(t), _) => k.x5t_s256().is_none_or(|x| x == t),
                (None, None, Some(t)) => k.x5t().is_none_or(|x| x == t),
                (None, None, None) => true,
            };
            id_ok && k.permits(op, alg_names).is_ok()
        })
    }
}
