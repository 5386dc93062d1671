//! Key material carried by the request: a variable holding a public JWK, JWK Set or PEM key,
//! such as `claims.cnf.jwk` of a token verified by an earlier policy, or a header that a
//! trusted front proxy sets.
//!
//! Bounds: a value longer than [`MAX_VALUE`] is refused before parsing; each distinct value
//! is parsed once into a cache of [`CAPACITY`] sets keyed by its SHA-256, emptied when full
//! (a flood of distinct values costs one parse each and never grows memory). Private and
//! symmetric keys are refused: a secret that travels with the request protects nothing.
//! The cache is read on every request by every worker: a lock-free map (papaya, see
//! `cache/expiring.rs` for why) whose reads write nothing shared.

use std::sync::Arc;

use papaya::HashMap;
use serde_json::Value;

use crate::error::GatewayError;
use crate::expr::Var;
use crate::jose::JwkSet;
use crate::request::RequestView;

/// Longest accepted value (an RSA-4096 public JWK is under 1 KiB).
pub const MAX_VALUE: usize = 16 * 1024;
/// Most parsed sets kept per key table.
pub const CAPACITY: usize = 1024;

/// The keys named by a request variable, parsed once per distinct value.
pub struct RequestKey {
    var: Var,
    parsed: HashMap<[u8; 32], Arc<JwkSet>>,
}

impl std::fmt::Debug for RequestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RequestKey({} cached)", self.parsed.len())
    }
}

fn parse(text: &str) -> Result<Arc<JwkSet>, String> {
    let set = super::keyconf::parse_text(text, &None, &None, None)?;
    if set
        .keys()
        .iter()
        .any(|k| k.is_private() || k.is_symmetric())
    {
        return Err("a private or symmetric key".into());
    }
    Ok(Arc::new(set))
}

impl RequestKey {
    pub fn new(var: Var) -> RequestKey {
        RequestKey {
            var,
            parsed: HashMap::new(),
        }
    }

    /// The set the request carries and a generation derived from its value (another value
    /// makes earlier verifications in the shared cache misses).
    pub fn resolve(&self, v: &RequestView<'_>) -> Result<(Arc<JwkSet>, u64), GatewayError> {
        let text = match self.var.resolve_json(v) {
            Some(Value::String(s)) => s,
            Some(o @ Value::Object(_)) => o.to_string(),
            _ => return Err(GatewayError::NoMatchingKey),
        };
        if text.len() > MAX_VALUE {
            log::warn!("key from the request refused: longer than {MAX_VALUE} bytes");
            return Err(GatewayError::NoMatchingKey);
        }
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
        let mut digest = [0u8; 32];
        digest.copy_from_slice(d.as_ref());
        let mut g = [0u8; 8];
        g.copy_from_slice(&digest[..8]);
        let generation = u64::from_be_bytes(g);
        if let Some(set) = self.parsed.pin().get(&digest) {
            return Ok((set.clone(), generation));
        }
        let set = parse(&text).map_err(|e| {
            log::warn!("key from the request refused: {e}");
            GatewayError::NoMatchingKey
        })?;
        let parsed = self.parsed.pin();
        if parsed.len() >= CAPACITY {
            parsed.clear();
        }
        parsed.insert(digest, set.clone());
        Ok((set, generation))
    }

    /// Number of parsed sets held.
    pub fn len(&self) -> usize {
        self.parsed.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.parsed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::{Curve, Jwk};
    use pingora_http::RequestHeader;

    fn ec() -> Jwk {
        Jwk::generate("EC", None, Some(Curve::P256)).expect("key")
    }

    fn public_json(k: &Jwk) -> String {
        k.to_value(false).expect("export").to_string()
    }

    fn with_claims(key: Value) -> serde_json::Map<String, Value> {
        let mut cnf = serde_json::Map::new();
        cnf.insert("jwk".into(), key);
        let mut claims = serde_json::Map::new();
        claims.insert("cnf".into(), Value::Object(cnf));
        claims
    }

    fn resolve_claim(rk: &RequestKey, key: Value) -> Result<(Arc<JwkSet>, u64), GatewayError> {
        let req = RequestHeader::build("GET", b"/", None).expect("request");
        let claims = with_claims(key);
        let v = RequestView {
            claims: Some(&claims),
            ..RequestView::new(&req, None)
        };
        rk.resolve(&v)
    }

    fn resolve_header(rk: &RequestKey, value: &str) -> Result<(Arc<JwkSet>, u64), GatewayError> {
        let mut req = RequestHeader::build("GET", b"/", None).expect("request");
        req.insert_header("x-key", value).expect("header");
        rk.resolve(&RequestView::new(&req, None))
    }

    fn from(var: &str) -> RequestKey {
        RequestKey::new(Var::parse(var).expect("var"))
    }

    #[test]
    fn a_claim_object_is_parsed_once_per_distinct_value() {
        let rk = from("claims.cnf.jwk");
        let (a, b) = (ec(), ec());
        let va = a.to_value(false).unwrap();
        let (s1, g1) = resolve_claim(&rk, va.clone()).unwrap();
        let (s2, g2) = resolve_claim(&rk, va).unwrap();
        assert!(Arc::ptr_eq(&s1, &s2));
        assert_eq!((g1, rk.len()), (g2, 1));
        assert_eq!(s1.keys()[0].thumbprint(), a.thumbprint());
        let (_, g3) = resolve_claim(&rk, b.to_value(false).unwrap()).unwrap();
        assert_ne!(g1, g3);
        assert_eq!(rk.len(), 2);
    }

    #[test]
    fn a_header_value_may_be_a_jwk() {
        let rk = from("header.x-key");
        let k = ec();
        let (set, _) = resolve_header(&rk, &public_json(&k)).unwrap();
        assert_eq!(set.keys()[0].thumbprint(), k.thumbprint());
    }

    #[test]
    fn private_keys_from_the_request_are_refused() {
        let rk = from("claims.cnf.jwk");
        let r = resolve_claim(&rk, ec().to_value(true).unwrap());
        assert!(matches!(r, Err(GatewayError::NoMatchingKey)));
        assert!(rk.is_empty());
    }

    #[test]
    fn oversized_values_are_refused_unparsed() {
        let rk = from("claims.cnf.jwk");
        // A usable key, padded past the bound with a member the parser ignores.
        let mut v = ec().to_value(false).unwrap();
        v["x-pad"] = Value::String("a".repeat(MAX_VALUE));
        assert!(matches!(
            resolve_claim(&rk, v),
            Err(GatewayError::NoMatchingKey)
        ));
        assert!(rk.is_empty());
    }

    #[test]
    fn an_absent_value_matches_no_key() {
        let rk = from("header.x-key");
        let req = RequestHeader::build("GET", b"/", None).unwrap();
        assert!(matches!(
            rk.resolve(&RequestView::new(&req, None)),
            Err(GatewayError::NoMatchingKey)
        ));
    }

    #[test]
    fn the_cache_never_holds_more_than_its_capacity() {
        let rk = from("claims.cnf.jwk");
        for _ in 0..=CAPACITY {
            resolve_claim(&rk, ec().to_value(false).unwrap()).unwrap();
            assert!(rk.len() <= CAPACITY);
        }
    }
}
