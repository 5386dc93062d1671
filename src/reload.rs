//! The maintenance task: reload on file change (mtime/size poll, then content hash), on SIGHUP,
//! and drive upstream health checks over the current snapshot (so pools removed by a reload stop
//! being checked and new ones start). Runs as a Pingora background service.

use crate::state::State;
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

impl Maintenance {
    async fn reload(&self, why: &str) {
        let state = self.state.clone();
        log::info!("config reload requested ({why})");
        let _ = tokio::task::spawn_blocking(move || state.reload(false)).await;
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
        let mut stamp = file_stamp(&path);
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
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
                    let poll = self.state.config().server.reload_poll_interval.0;
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
