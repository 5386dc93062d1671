//! Process state that outlives any one config: the current snapshot (one `ArcSwap`), metrics,
//! the access log, and the reload bookkeeping shown by `/admin/config/status`.
//!
//! Reload = read file -> parse -> compile -> swap. A failing reload changes nothing that serves
//! traffic: it logs and counts every error and records it for the status endpoint. Settings that
//! only take effect at start (listeners, threads, admin, access log) are compared with the ones
//! the process started with and reported as `restart_required`, never silently ignored.

use crate::accesslog::AccessLog;
use crate::compile::{compile, Snapshot};
use crate::config::{
    self, AccessLogConfig, AdminConfig, FrontDoorConfig, ListenerConfig, RawConfig, ServerConfig,
};
use crate::error::ConfigError;
use crate::metrics::Metrics;
use arc_swap::ArcSwap;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Serialize, Default)]
pub struct ReloadStatus {
    pub generation: u64,
    pub content_hash: String,
    pub loaded_at: String,
    pub last_attempt_at: String,
    /// The errors of the last refused reload, cleared by the next successful one.
    pub last_error: Option<Vec<String>>,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    /// Sections changed on disk that only take effect after a restart.
    pub restart_required: Vec<String>,
}

/// What a reload did.
#[derive(Debug)]
pub enum ReloadOutcome {
    Applied { generation: u64 },
    Unchanged,
    Refused(Vec<ConfigError>),
}

/// The process-level settings, from the config the process started with: they take effect only
/// at start, and a reload that changes them is reported as `restart_required`.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub server: ServerConfig,
    pub listeners: Vec<ListenerConfig>,
    pub admin: AdminConfig,
    pub access_log: AccessLogConfig,
    pub front_door: FrontDoorConfig,
}

impl Settings {
    fn of(raw: &RawConfig) -> Settings {
        Settings {
            server: raw.server.clone(),
            listeners: raw.listeners.clone(),
            admin: raw.admin.clone(),
            access_log: raw.access_log.clone(),
            front_door: raw.front_door.clone(),
        }
    }
}

/// The config text in force and the live settings read from it.
#[derive(Debug)]
pub struct Source {
    pub text: String,
    pub reload_poll_interval: std::time::Duration,
}

impl Source {
    fn of(text: String, raw: &RawConfig) -> Source {
        Source {
            text,
            reload_poll_interval: raw.server.reload_poll_interval.0,
        }
    }
}

pub struct State {
    /// The compiled configuration in force, loaded once per request.
    pub current: ArcSwap<Snapshot>,
    /// The text the current snapshot was compiled from, and the settings that apply live
    /// without a compiled form. Swapped with `current`. The text, not the parsed config, is kept:
    /// the parsed form costs about 4 KB per route and is needed only by `GET /admin/config`,
    /// which parses the text again.
    source: ArcSwap<Source>,
    /// Caches and clients that outlive a snapshot.
    pub shared: crate::shared::Shared,
    pub config_path: PathBuf,
    pub metrics: Metrics,
    pub access_log: Option<AccessLog>,
    /// The process-level settings the process started with.
    pub settings: Settings,
    status: Mutex<ReloadStatus>,
    /// Serialises reloads (file watcher, SIGHUP and admin may race).
    reload_lock: Mutex<()>,
    /// Readiness of things that must be warm before traffic (e.g. a JWKS prefetch), by name.
    readiness: dashmap::DashMap<String, bool>,
    /// Snapshots replaced by a reload, held until no request uses them and then dropped by
    /// `reap_retired` on the maintenance task. Otherwise the last request of an old generation
    /// would free it on a data-plane worker: tens of milliseconds for 10,000 routes.
    retired: Mutex<Vec<Arc<Snapshot>>>,
}

impl State {
    /// Load and compile the config at start. Any error is fatal here (nothing to keep serving).
    pub fn boot(path: PathBuf) -> Result<Arc<State>, Vec<ConfigError>> {
        let (raw, hash, text) = config::load_file(&path)?;
        let metrics = Metrics::new().map_err(|e| vec![ConfigError::new("", e.to_string())])?;
        let shared = crate::shared::Shared::new(metrics.registry())
            .map_err(|e| vec![ConfigError::new("", e.to_string())])?;
        let snap = compile(&raw, &hash, 1, None, &shared)?;
        for w in crate::lint::lint(&raw) {
            log::warn!("config warning: {w}");
        }
        if let Some(t) = &snap.token {
            shared.identity.retain(&t.identity_sources());
        }
        let access_log = if raw.access_log.enabled {
            Some(AccessLog::start(&raw.access_log.path).map_err(|e| {
                vec![ConfigError::new(
                    "access_log.path",
                    format!("cannot open {}: {e}", raw.access_log.path),
                )]
            })?)
        } else {
            None
        };
        let now = crate::accesslog::now_rfc3339();
        let status = ReloadStatus {
            generation: 1,
            content_hash: hash,
            loaded_at: now.clone(),
            last_attempt_at: now,
            ..Default::default()
        };
        Ok(Arc::new(State {
            current: ArcSwap::from_pointee(snap),
            settings: Settings::of(&raw),
            source: ArcSwap::from_pointee(Source::of(text, &raw)),
            shared,
            config_path: path,
            metrics,
            access_log,
            status: Mutex::new(status),
            reload_lock: Mutex::new(()),
            readiness: dashmap::DashMap::new(),
            retired: Mutex::new(Vec::new()),
        }))
    }

    /// Register or update something `/readyz` waits for.
    pub fn set_ready(&self, what: &str, ready: bool) {
        self.readiness.insert(what.to_string(), ready);
    }

    /// Forget a readiness source (its policy was removed by a reload).
    pub fn clear_ready(&self, what: &str) {
        self.readiness.remove(what);
    }

    /// The names of the sources not ready yet, sorted.
    pub fn not_ready(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .readiness
            .iter()
            .filter(|e| !*e.value())
            .map(|e| e.key().clone())
            .collect();
        v.sort();
        v
    }

    pub fn status(&self) -> ReloadStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Reload from the config file. `force` reloads even when the content hash is unchanged.
    pub fn reload(&self, force: bool) -> ReloadOutcome {
        let _guard = self.reload_lock.lock();
        let now = crate::accesslog::now_rfc3339();
        let cur = self.current.load_full();
        let loaded = config::load_file(&self.config_path);
        let result = loaded.and_then(|(raw, hash, text)| {
            if !force && hash == cur.hash {
                return Ok(None);
            }
            let snap = compile(&raw, &hash, cur.generation + 1, Some(&cur), &self.shared)?;
            Ok(Some((snap, raw, text)))
        });
        let mut st = match self.status.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        st.last_attempt_at = now.clone();
        match result {
            Ok(None) => ReloadOutcome::Unchanged,
            Ok(Some((snap, raw, text))) => {
                let generation = snap.generation;
                st.restart_required = self.restart_required(&Settings::of(&raw));
                for s in &st.restart_required {
                    log::warn!("config reload: [{s}] changed; it takes effect after a restart");
                }
                st.generation = generation;
                st.content_hash = snap.hash.clone();
                st.loaded_at = now;
                st.last_error = None;
                st.reloads_ok += 1;
                let used = snap.used_caches.clone();
                let sources = snap
                    .token
                    .as_ref()
                    .map(|t| t.identity_sources())
                    .unwrap_or_default();
                let warnings = crate::lint::lint(&raw);
                self.source.store(Arc::new(Source::of(text, &raw)));
                let old = self.current.swap(Arc::new(snap));
                self.retire(old);
                self.shared.retain(&used);
                self.shared.identity.retain(&sources);
                self.metrics.reloads.with_label_values(&["ok"]).inc();
                log::info!("config reload: generation {generation} applied");
                for w in warnings {
                    log::warn!("config warning: {w}");
                }
                ReloadOutcome::Applied { generation }
            }
            Err(errs) => {
                for e in &errs {
                    log::error!("config reload refused: {e}");
                }
                st.last_error = Some(errs.iter().map(|e| e.to_string()).collect());
                st.reloads_failed += 1;
                self.metrics.reloads.with_label_values(&["failed"]).inc();
                self.metrics.config_errors.inc_by(errs.len() as u64);
                ReloadOutcome::Refused(errs)
            }
        }
    }

    fn retire(&self, old: Arc<Snapshot>) {
        let mut r = match self.retired.lock() {
            Ok(r) => r,
            Err(p) => p.into_inner(),
        };
        r.push(old);
    }

    /// How many replaced snapshots wait for their last request.
    pub fn retired(&self) -> usize {
        match self.retired.lock() {
            Ok(r) => r.len(),
            Err(p) => p.into_inner().len(),
        }
    }

    /// Drop the replaced snapshots that no request holds any more; returns how many are left.
    /// `ArcSwap::swap` settles the readers' borrowed references into counts before it returns,
    /// so a count of one means only this list holds the snapshot, and nothing can take a new
    /// reference to it.
    pub fn reap_retired(&self) -> usize {
        let done: Vec<Arc<Snapshot>> = {
            let mut r = match self.retired.lock() {
                Ok(r) => r,
                Err(p) => p.into_inner(),
            };
            let (done, keep) = r.drain(..).partition(|s| Arc::strong_count(s) == 1);
            *r = keep;
            done
        };
        // Freed here, outside the lock.
        drop(done);
        self.retired()
    }

    /// The config text in force and its live settings.
    pub fn source(&self) -> Arc<Source> {
        self.source.load_full()
    }

    /// The configuration in force, parsed again from its text (secrets included: redact before
    /// showing it). `None` only if text that once parsed no longer does, which cannot happen.
    pub fn config(&self) -> Option<RawConfig> {
        config::parse_str(&self.source.load().text).ok()
    }

    fn restart_required(&self, new: &Settings) -> Vec<String> {
        let b = &self.settings;
        let mut out = Vec::new();
        if b.server != new.server {
            // trusted_proxies and the poll interval apply live; the rest does not.
            let mut a = b.server.clone();
            let mut n = new.server.clone();
            a.trusted_proxies.clear();
            n.trusted_proxies.clear();
            a.reload_poll_interval = n.reload_poll_interval;
            if a != n {
                out.push("server".to_string());
            }
        }
        if b.listeners != new.listeners {
            out.push("listeners".into());
        }
        if b.admin != new.admin {
            out.push("admin".into());
        }
        if b.access_log != new.access_log {
            out.push("access_log".into());
        }
        // The path rules and head limits apply live; these are fixed when a connection starts.
        let (bf, nf) = (&b.front_door, &new.front_door);
        if bf.h2_max_concurrent_streams != nf.h2_max_concurrent_streams
            || bf.max_requests_per_connection != nf.max_requests_per_connection
            || (bf.max_head_size != nf.max_head_size && b.listeners.iter().any(|l| l.http2))
        {
            out.push("front_door".into());
        }
        out
    }
}

/// The front door reads the snapshot in force and counts its refusals here.
impl crate::front::head::Gate for State {
    fn limits(&self) -> crate::front::head::HeadLimits {
        self.current.load().front.limits
    }

    fn refusal(&self, e: &crate::error::GatewayError) -> crate::reply::Reply {
        let snap = self.current.load();
        crate::reply::render_error(e, &[None, None, snap.errors.as_ref()], None)
    }

    fn refused(&self, e: &crate::error::GatewayError) {
        self.metrics
            .front_door_refusals
            .with_label_values(&[e.code()])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(route: &str, threads: usize) -> String {
        format!(
            r#"
[server]
threads = {threads}

[access_log]
enabled = false

[[listeners]]
address = "127.0.0.1:0"

[[routes]]
name = "{route}"
respond = {{ status = 200 }}
"#
        )
    }

    fn boot(text: &str) -> (tempfile::TempDir, Arc<State>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gw.toml");
        std::fs::write(&path, text).unwrap();
        let state = State::boot(path).unwrap();
        (dir, state)
    }

    #[test]
    fn a_reload_swaps_the_config_export_with_the_snapshot() {
        let (dir, state) = boot(&config("one", 1));
        std::fs::write(dir.path().join("gw.toml"), config("two", 1)).unwrap();
        assert!(matches!(
            state.reload(false),
            ReloadOutcome::Applied { generation: 2 }
        ));
        assert_eq!(state.config().unwrap().routes[0].name, "two");
        assert_eq!(state.current.load().routes[0].name, "two");
    }

    #[test]
    fn a_replaced_snapshot_is_freed_by_the_reaper_once_no_request_holds_it() {
        let (dir, state) = boot(&config("one", 1));
        let in_flight = state.current.load_full();
        let borrowed = state.current.load();
        let old = Arc::downgrade(&in_flight);
        std::fs::write(dir.path().join("gw.toml"), config("two", 1)).unwrap();
        assert!(matches!(state.reload(false), ReloadOutcome::Applied { .. }));
        drop(in_flight);
        assert_eq!(state.reap_retired(), 1, "a borrowed guard still holds it");
        assert!(old.upgrade().is_some());
        drop(borrowed);
        // The last request let go: the snapshot lives on until the reaper drops it.
        assert!(old.upgrade().is_some());
        assert_eq!(state.reap_retired(), 0);
        assert!(old.upgrade().is_none());
    }

    #[test]
    fn process_settings_stay_as_started_and_a_change_is_reported() {
        let (dir, state) = boot(&config("one", 1));
        std::fs::write(dir.path().join("gw.toml"), config("one", 2)).unwrap();
        assert!(matches!(state.reload(false), ReloadOutcome::Applied { .. }));
        assert_eq!(state.settings.server.threads, 1);
        assert_eq!(state.config().unwrap().server.threads, 2);
        assert_eq!(state.status().restart_required, ["server"]);
    }
}
