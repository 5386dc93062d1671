//! A bare Pingora proxy: the baseline that tokengate's own per-request work is measured
//! against (`loadtest/run.sh --bare`, `loadtest/instructions.sh bare:PATH`).
//!
//! It is built from this crate so that it shares tokengate's release profile, Cargo.lock and
//! Pingora version, and it runs with what tokengate's benchmark config runs with: mimalloc as
//! the global allocator, one worker thread without work stealing, an upstream keep-alive pool
//! of 128, a plain TCP listener with 1000 requests per connection, and the upstream timeouts
//! of a default tokengate pool. What it leaves out is everything tokengate adds: the front
//! door, routing, policies, request id, forwarding headers, metrics and the access log.
//!
//! `GET /local` is answered by the proxy itself (200 `ok\n`), the counterpart of tokengate's
//! direct-response route; every other request goes to the one upstream.
//!
//! Usage: `bare_proxy --listen 127.0.0.1:8080 --upstream 127.0.0.1:9000 [--threads 1]`

use async_trait::async_trait;
use clap::Parser;
use pingora_core::apps::HttpServerOptions;
use pingora_core::server::configuration::{Opt, ServerConf};
use pingora_core::server::{RunArgs, Server};
use pingora_core::services::listening::Service;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::Result;
use pingora_http::ResponseHeader;
use pingora_proxy::{HttpProxy, ProxyHttp, Session};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

/// The same allocator as the tokengate binary, so the comparison is about the request path.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "bare_proxy",
    about = "A bare Pingora proxy (benchmark baseline)"
)]
struct Args {
    /// Address to listen on (plain HTTP/1).
    #[arg(long)]
    listen: String,
    /// The one upstream, ip:port.
    #[arg(long)]
    upstream: SocketAddr,
    /// Worker threads (tokengate's benchmark config uses 1).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

struct Bare {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<bool> {
        if session.req_header().uri.path() != "/local" {
            return Ok(false);
        }
        let mut h = ResponseHeader::build(200, Some(2))?;
        h.insert_header(http::header::CONTENT_TYPE, "text/plain")?;
        h.insert_header(http::header::CONTENT_LENGTH, "3")?;
        session.write_response_header(Box::new(h), false).await?;
        session
            .write_response_body(Some(bytes::Bytes::from_static(b"ok\n")), true)
            .await?;
        Ok(true)
    }

    /// The peer is built per request: under callgrind, cloning one built at start-up cost about
    /// 420 instructions against about 90 for `HttpPeer::new` (its `PeerOptions` is large).
    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.upstream, false, String::new());
        // A default tokengate pool's timeouts: Pingora arms a timer per upstream read and write
        // when they are set, and tokengate always sets them.
        peer.options.connection_timeout = Some(Duration::from_secs(2));
        peer.options.read_timeout = Some(Duration::from_secs(30));
        peer.options.write_timeout = Some(Duration::from_secs(30));
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        Ok(Box::new(peer))
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = std::env::temp_dir();
    let id = std::process::id();
    // tokengate's [server] defaults as the benchmark config leaves them.
    let conf = ServerConf {
        threads: args.threads,
        work_stealing: false,
        upstream_keepalive_pool_size: 128,
        pid_file: dir
            .join(format!("bare_proxy.{id}.pid"))
            .display()
            .to_string(),
        upgrade_sock: dir
            .join(format!("bare_proxy.{id}.sock"))
            .display()
            .to_string(),
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
    server.bootstrap();

    let mut proxy = HttpProxy::new(
        Bare {
            upstream: args.upstream,
        },
        server.configuration.clone(),
    );
    proxy.handle_init_modules();
    let mut o = HttpServerOptions::default();
    o.keepalive_request_limit = Some(1000);
    proxy.server_options = Some(o);
    let mut service = Service::new("bare proxy".to_string(), proxy);
    service.add_tcp(&args.listen);
    server.add_service(service);
    server.run(RunArgs::default());
    ExitCode::SUCCESS
}
