//! The maintenance task: reload on file change (mtime/size poll, then content hash), on SIGHUP,
//! and drive upstream health checks over the current snapshot (so pools removed by a reload stop
//! being checked and new ones start). Runs as a Pingora background service.

use crate::metrics::Metrics;
use crate::state::{ReloadOutcome, State};
use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub struct Maintenance {
    pub state: Arc<State>,
}

fn file_stamp(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Reload on the blocking pool (compiling may hash files and parse keys).
///
/// A panic inside the reload (a bug in some compile function) must not pass unseen: it is
/// logged at error level with its message and counted as
/// `tokengate_config_reloads_total{result="panicked"}`, and the caller gets the message. The
/// current config keeps serving: `State::reload` swaps the snapshot only after a compile that
/// returned, and its locks stay usable (it recovers from poisoning).
pub async fn reload_blocking(state: Arc<State>, force: bool) -> Result<ReloadOutcome, String> {
    let s = state.clone();
    run_blocking(&state.metrics, move || s.reload(force)).await
}

async fn run_blocking(
    metrics: &Metrics,
    f: impl FnOnce() -> ReloadOutcome + Send + 'static,
) -> Result<ReloadOutcome, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(outcome) => Ok(outcome),
        Err(e) => {
            let why = if e.is_panic() {
                let payload = e.into_panic();
                let msg = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".to_string());
                metrics.reloads.with_label_values(&["panicked"]).inc();
                format!("config reload panicked: {msg}")
            } else {
                metrics.reloads.with_label_values(&["cancelled"]).inc();
                "config reload was cancelled (runtime shutting down)".to_string()
            };
            log::error!("{why}; the current config keeps serving");
            Err(why)
        }
    }
}

impl Maintenance {
    async fn reload(&self, why: &str) {
        log::info!("config reload requested ({why})");
        // The outcome is logged and counted by `State::reload`, a panic by `reload_blocking`;
        // this loop only goes on polling.
        if let Err(e) = reload_blocking(self.state.clone(), false).await {
            log::debug!("reload task ended without an outcome: {e}");
        }
    }

    async fn health_checks(&self) {
        let snap = self.state.current.load_full();
        let checks = snap.pools.values().map(|p| async move {
            if p.health_check_if_due().await {
                for t in &p.targets {
                    let v = i64::from(p.is_healthy(t));
                    self.state
                        .metrics
                        .upstream_healthy
                        .with_label_values(&[p.name.as_str(), &t.addr.to_string()])
                        .set(v);
                }
            }
        });
        futures_join_all(checks).await;
    }
}

async fn futures_join_all<F: std::future::Future<Output = ()>>(fs: impl Iterator<Item = F>) {
    let mut set = Vec::new();
    for f in fs {
        set.push(Box::pin(f));
    }
    for f in set {
        f.await;
    }
}

#[async_trait]
impl BackgroundService for Maintenance {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // Remote key sets refresh on their own loop: a slow identity provider (bounded by the
        // source's timeout) must not delay reloads or health checks.
        let keys = self.state.shared.keys.clone();
        let mut key_shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    _ = key_shutdown.changed() => return,
                    _ = tick.tick() => keys.refresh_due().await,
                }
            }
        });
        let path = self.state.config_path.clone();
        // No stamp yet: the first poll asks the content hash, so a change written between
        // the start-up load and this loop is not missed.
        let mut stamp = None;
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(h) => Some(h),
            Err(e) => {
                log::error!(
                    "SIGHUP cannot be handled ({e}): reload by file change or the admin API"
                );
                None
            }
        };
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut last_poll = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = async { match hup.as_mut() { Some(h) => { h.recv().await; } None => std::future::pending::<()>().await } } => {
                    self.reload("SIGHUP").await;
                    stamp = file_stamp(&path);
                }
                _ = tick.tick() => {
                    self.state.reap_retired();
                    let poll = self.state.source().reload_poll_interval;
                    if !poll.is_zero() && last_poll.elapsed() >= poll {
                        last_poll = tokio::time::Instant::now();
                        let now = file_stamp(&path);
                        if now != stamp {
                            stamp = now;
                            self.reload("file changed").await;
                        }
                    }
                    self.health_checks().await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panicked(m: &Metrics) -> u64 {
        m.reloads.with_label_values(&["panicked"]).get()
    }

    #[tokio::test]
    async fn panic_in_reload_is_an_error_with_its_message() {
        let m = Metrics::new().unwrap();
        let r = run_blocking(&m, || panic!("compile bug: {}", 42)).await;
        assert_eq!(r.unwrap_err(), "config reload panicked: compile bug: 42");
    }

    #[tokio::test]
    async fn panic_in_reload_is_counted() {
        let m = Metrics::new().unwrap();
        run_blocking(&m, || panic!("boom")).await.unwrap_err();
        assert_eq!(panicked(&m), 1);
        assert!(String::from_utf8_lossy(&m.render())
            .contains(r#"tokengate_config_reloads_total{result="panicked"} 1"#));
    }

    #[tokio::test]
    async fn reload_outcome_passes_through_uncounted() {
        let m = Metrics::new().unwrap();
        let r = run_blocking(&m, || ReloadOutcome::Unchanged).await;
        assert!(matches!(r, Ok(ReloadOutcome::Unchanged)));
        assert_eq!(panicked(&m), 0);
    }
}
