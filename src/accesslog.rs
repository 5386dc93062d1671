//! Access log: one JSON object per line, to stdout or a file, written by a dedicated thread so
//! the request path never blocks on I/O. When the writer falls behind, lines are dropped and
//! counted (`tokengate_access_log_dropped_total`) rather than slowing traffic down.
//!
//! What is logged is chosen so that no credential can leak: the path without its query string
//! (query parameters may carry tokens), never Authorization or Cookie values.

use serde::Serialize;
use std::io::Write;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};

#[derive(Serialize)]
pub struct Entry {
    pub ts: String,
    pub request_id: String,
    pub client_ip: String,
    pub method: String,
    pub host: String,
    pub path: String,
    pub route: Option<String>,
    pub status: u16,
    pub latency_ms: f64,
    pub upstream: Option<String>,
    pub error_code: Option<&'static str>,
    /// Why a policy denied (which claim, which rule); never a token or a secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<String>,
    /// Policy outcomes, e.g. `["cors:denied"]`, for the policies that did something notable.
    pub policies: Vec<String>,
    /// Token-service requests: the client id the request named, only when it is a configured
    /// client (never a secret, never an id the caller made up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Token endpoint requests: the grant type, `other` when not one the service knows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_type: Option<&'static str>,
}

pub struct AccessLog {
    tx: SyncSender<Entry>,
}

impl AccessLog {
    /// Start the writer thread. `path` is "-" for stdout.
    pub fn start(path: &str) -> std::io::Result<AccessLog> {
        let mut out: Box<dyn Write + Send> = if path == "-" {
            Box::new(std::io::stdout())
        } else {
            Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            )
        };
        let (tx, rx) = sync_channel::<Entry>(16 * 1024);
        std::thread::Builder::new()
            .name("tokengate-access-log".into())
            .spawn(move || {
                let mut buf = Vec::with_capacity(64 * 1024);
                while let Ok(e) = rx.recv() {
                    let _ = serde_json::to_writer(&mut buf, &e);
                    buf.push(b'\n');
                    // Batch whatever else is already queued.
                    while let Ok(e) = rx.try_recv() {
                        let _ = serde_json::to_writer(&mut buf, &e);
                        buf.push(b'\n');
                        if buf.len() > 60 * 1024 {
                            break;
                        }
                    }
                    let _ = out.write_all(&buf);
                    let _ = out.flush();
                    buf.clear();
                }
            })?;
        Ok(AccessLog { tx })
    }

    /// Queue a line; false when it had to be dropped.
    pub fn log(&self, e: Entry) -> bool {
        !matches!(self.tx.try_send(e), Err(TrySendError::Full(_)))
    }
}

/// RFC 3339 UTC timestamp with milliseconds, without a date crate.
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let ms = now.subsec_millis();
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamp_shape() {
        let t = super::now_rfc3339();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'));
    }
}
