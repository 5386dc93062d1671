//! Fingerprints of config values: the key under which state that outlives a reload (verified-
//! token caches, identity sources, token stores, backoff tables) is found again by a policy or
//! service whose config did not change.
//!
//! A fingerprint is `KIND:` and the hex SHA-256 of the value's JSON. Every field takes part, so
//! two configs that differ anywhere (a secret included) never share one, and no value (a
//! secret included) can be read back from it: map keys, logs and status pages may show it.
//! Never `Debug` output: it is not a stable format, and it prints secrets.
//!
//! A leaf: it imports only external crates.

use serde::Serialize;

/// `kind:sha256(json(v))`; Err when the value has no JSON form (a map with non-string keys).
pub fn of<T: Serialize + ?Sized>(kind: &str, v: &T) -> Result<String, String> {
    // Through `Value`: its maps are sorted, so a HashMap field hashes the same every time.
    let canonical = serde_json::to_value(v)
        .and_then(|v| serde_json::to_vec(&v))
        .map_err(|e| format!("cannot fingerprint the {kind} config: {e}"))?;
    Ok(format!("{kind}:{}", sha256_hex(&canonical)))
}

/// Lower-case hex of the SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    #[derive(Serialize)]
    struct Conf {
        issuer: &'static str,
        secret: &'static str,
    }

    #[test]
    fn configs_differing_only_by_a_secret_differ() {
        let a = of(
            "k",
            &Conf {
                issuer: "i",
                secret: "s3cret-one",
            },
        )
        .unwrap();
        let b = of(
            "k",
            &Conf {
                issuer: "i",
                secret: "s3cret-two",
            },
        )
        .unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn the_secret_does_not_appear_in_the_fingerprint() {
        let a = of(
            "k",
            &Conf {
                issuer: "i",
                secret: "s3cret-one",
            },
        )
        .unwrap();
        assert!(!a.contains("s3cret"), "{a}");
        assert_eq!(a.len(), "k:".len() + 64);
    }

    #[test]
    fn same_config_same_fingerprint() {
        let a = of(
            "k",
            &Conf {
                issuer: "i",
                secret: "s",
            },
        )
        .unwrap();
        let b = of(
            "k",
            &Conf {
                issuer: "i",
                secret: "s",
            },
        )
        .unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn kind_separates_equal_values() {
        assert_ne!(of("a", &1).unwrap(), of("b", &1).unwrap());
    }

    #[test]
    fn map_order_does_not_matter() {
        let mut m: HashMap<String, u32> = (0..64).map(|i| (format!("k{i}"), i)).collect();
        let a = of("m", &m).unwrap();
        m.shrink_to_fit();
        let sorted: BTreeMap<_, _> = m.iter().collect();
        assert_eq!(a, of("m", &sorted).unwrap());
    }

    #[test]
    fn a_value_without_json_form_is_an_error() {
        let m: BTreeMap<(u8, u8), u8> = BTreeMap::from([((1, 2), 3)]);
        assert!(of("m", &m).is_err());
    }
}
