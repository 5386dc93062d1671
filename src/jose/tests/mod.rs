//! Tests of the JOSE engine: RFC examples, Wycheproof, RFC 7520 cookbook, hostile inputs,
//! claims, and cross-implementation round trips with joserfc / jwcrypto.

use std::path::PathBuf;

use serde_json::Value;

mod claims;
mod cookbook;
mod encrypted_pem;
mod hostile;
mod peers;
mod rfc;
mod roundtrip;
mod wycheproof;

/// The shared vectors folder, or `None` with a clear message when it is absent.
pub(crate) fn vectors(sub: &str) -> Option<PathBuf> {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/vectors")).join(sub);
    if p.exists() {
        Some(p)
    } else {
        eprintln!(
            "SKIPPED: {} is absent (the conformance vectors live in ../shared/vectors beside \
             the checkout; see shared/vectors/README.md)",
            p.display()
        );
        None
    }
}

pub(crate) fn load(p: &std::path::Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

pub(crate) fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
