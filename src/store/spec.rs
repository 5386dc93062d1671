//! The checked store configuration: [`StoreConfig`] (the operator's table, in `config/`) typed
//! into a [`StoreSpec`], with every problem reported by its TOML path.

use crate::config::store::{StoreConfig, StoreKind};
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_PATH: &str = "data/tokens.redb";
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379";
pub const DEFAULT_PREFIX: &str = "tokengate:";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);
pub const DEFAULT_PURGE_INTERVAL: Duration = Duration::from_secs(60);
/// Longest accepted deadline: a store call must never hold a request longer than this.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(30);

/// A checked store configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    Embedded {
        path: PathBuf,
        purge_interval: Duration,
    },
    Redis {
        url: String,
        key_prefix: String,
        timeout: Duration,
    },
}

impl StoreConfig {
    /// Check and type the config. Errors are `(path relative to the store table, message)`;
    /// the caller prefixes `token_service.store.`.
    pub fn compile(&self) -> Result<StoreSpec, Vec<(String, String)>> {
        let StoreConfig {
            kind,
            path,
            purge_interval,
            url,
            key_prefix,
            timeout,
        } = self;
        let mut errs = Vec::new();
        fn not_for(errs: &mut Vec<(String, String)>, set: bool, field: &str, kind: &str) {
            if set {
                errs.push((field.to_string(), format!("not used by kind = \"{kind}\"")));
            }
        }
        let spec = match kind {
            StoreKind::Embedded => {
                not_for(&mut errs, url.is_some(), "url", "embedded");
                not_for(&mut errs, key_prefix.is_some(), "key_prefix", "embedded");
                not_for(&mut errs, timeout.is_some(), "timeout", "embedded");
                let path = path.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_PATH));
                if path.as_os_str().is_empty() {
                    errs.push(("path".into(), "must not be empty".into()));
                }
                let purge_interval = purge_interval.map_or(DEFAULT_PURGE_INTERVAL, |d| d.0);
                if purge_interval.is_zero() {
                    errs.push(("purge_interval".into(), "must be more than 0".into()));
                }
                StoreSpec::Embedded {
                    path,
                    purge_interval,
                }
            }
            StoreKind::Redis => {
                not_for(&mut errs, path.is_some(), "path", "redis");
                not_for(
                    &mut errs,
                    purge_interval.is_some(),
                    "purge_interval",
                    "redis",
                );
                let url = url.clone().unwrap_or_else(|| DEFAULT_URL.to_string());
                if let Err(e) = ::redis::Client::open(url.as_str()) {
                    errs.push(("url".into(), format!("invalid Redis URL: {e}")));
                }
                let key_prefix = key_prefix
                    .clone()
                    .unwrap_or_else(|| DEFAULT_PREFIX.to_string());
                let timeout = timeout.map_or(DEFAULT_TIMEOUT, |d| d.0);
                if timeout.is_zero() || timeout > MAX_TIMEOUT {
                    errs.push((
                        "timeout".into(),
                        format!("must be between 1ms and {}s", MAX_TIMEOUT.as_secs()),
                    ));
                }
                StoreSpec::Redis {
                    url,
                    key_prefix,
                    timeout,
                }
            }
        };
        if errs.is_empty() {
            Ok(spec)
        } else {
            Err(errs)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<StoreConfig, String> {
        serde_json::from_str(s).map_err(|e| e.to_string())
    }

    #[test]
    fn default_is_embedded() {
        let spec = StoreConfig::default().compile().unwrap();
        assert_eq!(
            spec,
            StoreSpec::Embedded {
                path: PathBuf::from(DEFAULT_PATH),
                purge_interval: DEFAULT_PURGE_INTERVAL
            }
        );
    }

    #[test]
    fn redis_with_human_timeout() {
        let c = parse(r#"{"kind":"redis","url":"redis://10.0.0.1:6380/2","key_prefix":"t:","timeout":"250ms"}"#).unwrap();
        assert_eq!(
            c.compile().unwrap(),
            StoreSpec::Redis {
                url: "redis://10.0.0.1:6380/2".into(),
                key_prefix: "t:".into(),
                timeout: Duration::from_millis(250)
            }
        );
    }

    #[test]
    fn unknown_keys_and_kinds_refused() {
        assert!(parse(r#"{"kind":"redis","urll":"x"}"#).is_err());
        assert!(parse(r#"{"kind":"memcached"}"#).is_err());
    }

    #[test]
    fn tls_url_refused_without_tls_support() {
        let c = parse(r#"{"kind":"redis","url":"rediss://127.0.0.1:6379"}"#).unwrap();
        let errs = c.compile().unwrap_err();
        assert_eq!(errs[0].0, "url");
    }

    #[test]
    fn misplaced_and_bad_fields_all_reported() {
        let c = parse(r#"{"kind":"embedded","url":"redis://x","timeout":"1s"}"#).unwrap();
        let errs = c.compile().unwrap_err();
        let paths: Vec<_> = errs.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["url", "timeout"]);
        let c = parse(r#"{"kind":"redis","url":"nope://x","timeout":"0ms","path":"a"}"#).unwrap();
        let errs = c.compile().unwrap_err();
        let paths: Vec<_> = errs.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["path", "url", "timeout"]);
    }
}
