//! Key sources answered without a network (`tokengate simulate`): the body of each URL is
//! given up front; a URL without one is unavailable, and recorded so the caller can say which
//! keys it needs.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use super::http::{parse_url, Target};
use super::KeyError;

/// Bodies by source URL (normalised like the fetcher reads them), and the URLs asked for
/// without one.
#[derive(Debug, Default)]
pub struct OfflineKeys {
    bodies: BTreeMap<String, Vec<u8>>,
    missing: Mutex<Vec<String>>,
}

/// The URL of a target as fetched, the query included.
fn url_of(t: &Target) -> String {
    let scheme = if t.https { "https" } else { "http" };
    format!("{scheme}://{}{}", t.authority, t.path_and_query)
}

impl OfflineKeys {
    /// Serve `body` for `url` (a JWK Set, or an OIDC discovery document).
    pub fn insert(&mut self, url: &str, body: Vec<u8>) -> Result<(), KeyError> {
        let t = parse_url(url)?;
        self.bodies.insert(url_of(&t), body);
        Ok(())
    }

    /// The URLs asked for that had no body, in first-asked order, each once.
    pub fn missing(&self) -> Vec<String> {
        self.missing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn get(&self, t: &Target) -> Result<Vec<u8>, KeyError> {
        let url = url_of(t);
        if let Some(b) = self.bodies.get(&url) {
            return Ok(b.clone());
        }
        let mut missing = self.missing.lock().unwrap_or_else(PoisonError::into_inner);
        if !missing.contains(&url) {
            missing.push(url);
        }
        Err(KeyError::Unavailable(
            "offline: no keys given for this source",
        ))
    }
}
