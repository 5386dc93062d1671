//! Bounded HTTP/1 request heads: read before Pingora parses them, so that no head is larger,
//! longer or slower than the limits allow, and memory per unfinished connection is bounded by
//! `max_head_size` (Pingora alone accepts 1 MiB heads and waits 60 s per read, indefinitely in
//! total).
//!
//! [`FrontDoorApp`] is the listening service's app in front of the proxy's [`HttpServerApp`].
//! For each HTTP/1 request on a connection it waits for the first byte up to
//! `idle_timeout` (keep-alive idle: the connection is closed quietly), then reads until the
//! blank line ending the head within `header_timeout`, checking the request-line length, the
//! field count and the total size as bytes arrive. The bytes read become the new session's
//! pipelined prefix, so Pingora parses exactly what arrived. HTTP/2 connections go to the
//! proxy's own handling; their limits are the h2 settings ([`h2_options`]).

use crate::error::GatewayError;
use crate::reply::Reply;
use async_trait::async_trait;
use bytes::BytesMut;
use pingora_core::apps::{HttpPersistentSettings, HttpServerApp, ServerApp};
use pingora_core::protocols::http::v2::server::H2Options;
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::Stream;
use pingora_core::protocols::ALPN;
use pingora_core::server::ShutdownWatch;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Limits on the request head and the connection, compiled from `[front_door]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    pub max_head_size: usize,
    pub max_headers: usize,
    pub max_request_line: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
}

/// The defaults of `[front_door]`, so the two never disagree.
impl Default for HeadLimits {
    fn default() -> Self {
        let c = crate::config::FrontDoorConfig::default();
        HeadLimits {
            max_head_size: c.max_head_size.0 as usize,
            max_headers: c.max_headers,
            max_request_line: c.max_request_line.0 as usize,
            header_timeout: c.header_timeout.0,
            idle_timeout: c.idle_timeout.0,
            body_timeout: c.body_timeout.0,
        }
    }
}

/// HTTP/2 settings from the same limits: header list size, concurrent streams.
pub fn h2_options(l: &HeadLimits, max_streams: u32) -> H2Options {
    let mut b = pingora_core::protocols::http::v2::server::default_h2_options();
    b.max_header_list_size(l.max_head_size as u32)
        .max_concurrent_streams(max_streams);
    b
}

/// Why a head was not read.
#[derive(Debug, PartialEq, Eq)]
enum HeadError {
    /// The peer closed or went idle before sending anything: close quietly.
    Idle,
    /// A rendered refusal, then close.
    Refuse(GatewayError),
}

/// Where the head ends, scanning `buf` from `from`; also enforces the line limits.
struct Scan {
    /// Bytes examined so far.
    pos: usize,
    /// Leading empty lines (RFC 9112 §2.2 lets a server ignore them).
    start: usize,
    /// End of the request line, once seen.
    line_end: Option<usize>,
    fields: usize,
}

impl Scan {
    fn new() -> Scan {
        Scan {
            pos: 0,
            start: 0,
            line_end: None,
            fields: 0,
        }
    }

    /// Ok(Some(end)) when the head is complete at `end`.
    fn feed(&mut self, buf: &[u8], l: &HeadLimits) -> Result<Option<usize>, GatewayError> {
        if self.line_end.is_none() {
            while self.pos == self.start && matches!(buf.get(self.pos), Some(b'\r' | b'\n')) {
                self.pos += 1;
                self.start = self.pos;
            }
        }
        // Line ends only: the bytes between them are Pingora's parser's business.
        while let Some(i) = memchr::memchr(b'\n', buf.get(self.pos..).unwrap_or_default()) {
            let nl = self.pos + i;
            self.pos = nl + 1;
            match self.line_end {
                None => {
                    if self.pos - self.start > l.max_request_line {
                        return Err(GatewayError::UriTooLong);
                    }
                    self.line_end = Some(self.pos);
                }
                Some(_) => {
                    // A blank line (`\n` or `\r\n` right after the previous `\n`) ends the head.
                    let prev = &buf[..nl];
                    if prev.ends_with(b"\n") || prev.ends_with(b"\n\r") {
                        return Ok(Some(self.pos));
                    }
                    self.fields += 1;
                    if self.fields > l.max_headers {
                        return Err(GatewayError::HeaderTooLarge);
                    }
                }
            }
        }
        self.pos = self.pos.max(buf.len());
        if self.line_end.is_none() && self.pos - self.start > l.max_request_line {
            return Err(GatewayError::UriTooLong);
        }
        if self.pos > l.max_head_size {
            return Err(GatewayError::HeaderTooLarge);
        }
        Ok(None)
    }
}

async fn read_head(stream: &mut Stream, l: &HeadLimits) -> Result<BytesMut, HeadError> {
    let mut buf = BytesMut::with_capacity(4096);
    // Pingora's timer wheel: a timeout that never fires costs next to nothing per request.
    match pingora_timeout::timeout(l.idle_timeout, stream.read_buf(&mut buf)).await {
        Ok(Ok(n)) if n > 0 => {}
        _ => return Err(HeadError::Idle),
    }
    let deadline = std::time::Instant::now() + l.header_timeout;
    let mut scan = Scan::new();
    loop {
        match scan.feed(&buf, l) {
            Ok(Some(end)) if end <= l.max_head_size => return Ok(buf),
            Ok(Some(_)) => return Err(HeadError::Refuse(GatewayError::HeaderTooLarge)),
            Ok(None) => {}
            Err(e) => return Err(HeadError::Refuse(e)),
        }
        // Never hold more than the head limit (plus one read) for an unfinished head.
        let room = (l.max_head_size + 1)
            .saturating_sub(buf.len())
            .clamp(1, 16 * 1024);
        buf.reserve(room);
        let mut chunk = buf.split_off(buf.len());
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let read = pingora_timeout::timeout(left, stream.read_buf(&mut chunk)).await;
        buf.unsplit(chunk);
        match read {
            Err(_) => return Err(HeadError::Refuse(GatewayError::RequestTimeout)),
            // A peer that closes mid-head gets nothing back.
            Ok(Ok(0)) | Ok(Err(_)) => return Err(HeadError::Idle),
            Ok(Ok(_)) => {}
        }
    }
}

/// What the front door reads from the running gateway (implemented by `state::State`, above
/// this module): the limits and error rendering of the snapshot in force, and the refusal count.
pub trait Gate: Send + Sync + 'static {
    /// The limits of the snapshot in force, read once per request.
    fn limits(&self) -> HeadLimits;
    /// The answer to a refused head, rendered with the snapshot's error settings.
    fn refusal(&self, e: &GatewayError) -> Reply;
    /// Counts a refusal, by error code.
    fn refused(&self, e: &GatewayError);
}

/// Write a rendered refusal and close. Bounded in time: a peer that does not read is dropped.
async fn refuse(stream: &mut Stream, gate: &impl Gate, e: &GatewayError) {
    let reply = gate.refusal(e);
    let reason = http::StatusCode::from_u16(reply.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let mut out = format!("HTTP/1.1 {} {reason}\r\n", reply.status).into_bytes();
    for (n, v) in &reply.headers {
        out.extend_from_slice(n.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(
        format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            reply.body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(&reply.body);
    let write = async {
        stream.write_all(&out).await?;
        stream.flush().await
    };
    if tokio::time::timeout(Duration::from_secs(5), write)
        .await
        .is_err()
    {
        log::debug!("peer did not read the {} refusal", reply.status);
    }
    gate.refused(e);
}

/// The HTTP/2 connection preface (RFC 9113 §3.4): a cleartext connection that starts with it
/// is h2c with prior knowledge.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The proxy app behind the front door.
pub struct FrontDoorApp<A, G> {
    pub inner: Arc<A>,
    pub state: Arc<G>,
}

/// HTTP/2 (ALPN `h2`, or the cleartext preface when h2c is on) goes to the proxy's own
/// connection handling; HTTP/1 connections are driven here, one bounded head per request, so that
/// each request gets exactly one Pingora session.
#[async_trait]
impl<A, G> ServerApp for FrontDoorApp<A, G>
where
    A: HttpServerApp + Send + Sync + 'static,
    G: Gate,
{
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let opts = self.inner.server_options();
        let h2c = opts.is_some_and(|o| o.h2c) && stream.get_ssl_digest().is_none();
        let h2 = match stream.selected_alpn_proto() {
            Some(ALPN::H1) => false,
            Some(_) => true,
            None if h2c => {
                let mut buf = [0u8; H2_PREFACE.len()];
                // A peer that goes away before sending anything ends here.
                let peeked = stream.try_peek(&mut buf).await.ok()?;
                peeked && buf == *H2_PREFACE
            }
            None => false,
        };
        if h2 {
            return self.inner.process_new(stream, shutdown).await;
        }
        // Settings carried from one request to the next (keep-alive, reuses left), as Pingora's
        // own HTTP/1 loop carries them.
        let mut persistent: Option<Option<HttpPersistentSettings>> = None;
        loop {
            let limits = self.state.limits();
            let head = match read_head(&mut stream, &limits).await {
                Ok(head) => head,
                Err(HeadError::Idle) => return None,
                Err(HeadError::Refuse(e)) => {
                    refuse(&mut stream, self.state.as_ref(), &e).await;
                    return None;
                }
            };
            let mut s = ServerSession::new_http1(stream);
            match persistent.take() {
                Some(Some(p)) => p.apply_to_session(&mut s),
                Some(None) => {}
                None => {
                    s.set_keepalive((!*shutdown.borrow()).then_some(60));
                    s.set_keepalive_reuses_remaining(opts.and_then(|o| o.keepalive_request_limit));
                }
            }
            s.set_pipelined_prefix(head);
            s.set_read_timeout(Some(limits.body_timeout));
            let (next, settings) = self.inner.process_new_http(s, shutdown).await?.consume();
            stream = next;
            persistent = Some(settings);
        }
    }

    async fn cleanup(&self) {
        self.inner.http_cleanup().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(head: &[u8], l: &HeadLimits) -> Result<Option<usize>, GatewayError> {
        Scan::new().feed(head, l)
    }

    #[test]
    fn a_complete_head_ends_at_the_blank_line() {
        let l = HeadLimits::default();
        let h = b"GET / HTTP/1.1\r\nhost: a\r\n\r\nBODY";
        assert_eq!(scan(h, &l), Ok(Some(h.len() - 4)));
        let h = b"\r\nGET / HTTP/1.1\nhost: a\n\n";
        assert_eq!(scan(h, &l), Ok(Some(h.len())));
        assert_eq!(scan(b"GET / HTTP/1.1\r\nhost: a\r\n", &l), Ok(None));
    }

    #[test]
    fn heads_are_fed_in_pieces() {
        let l = HeadLimits::default();
        let h = b"GET / HTTP/1.1\r\nhost: a\r\nx: y\r\n\r\n";
        for cut in 1..h.len() {
            let mut s = Scan::new();
            assert_eq!(s.feed(&h[..cut], &l), Ok(None), "cut {cut}");
            assert_eq!(s.feed(h, &l), Ok(Some(h.len())), "cut {cut}");
        }
    }

    #[test]
    fn limits_are_enforced() {
        let l = HeadLimits {
            max_head_size: 64,
            max_headers: 2,
            max_request_line: 20,
            ..HeadLimits::default()
        };
        assert_eq!(
            scan(b"GET /aaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n", &l),
            Err(GatewayError::UriTooLong)
        );
        assert_eq!(
            scan(b"GET /aaaaaaaaaaaaaaaaaaaaaaa", &l),
            Err(GatewayError::UriTooLong)
        );
        assert_eq!(
            scan(b"GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\n", &l),
            Err(GatewayError::HeaderTooLarge)
        );
        assert_eq!(
            scan(
                &[b"GET / HTTP/1.1\r\nx: ".as_slice(), &[b'a'; 60]].concat(),
                &l
            ),
            Err(GatewayError::HeaderTooLarge)
        );
    }
}
