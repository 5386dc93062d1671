//! Builds the Pingora server from a config file: the data-plane proxy service with its
//! listeners, the admin service, and the maintenance background service.

use crate::admin::Admin;
use crate::proxy::Gateway;
use crate::state::State;
use pingora_core::apps::HttpServerOptions;
use pingora_core::listeners::tls::TlsSettings;
use pingora_core::server::configuration::{Opt, ServerConf};
use pingora_core::server::Server;
use pingora_core::services::background::background_service;
use pingora_core::services::listening::Service;
use std::path::PathBuf;
use std::sync::Arc;

/// Command-line switches passed through to Pingora.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub daemon: bool,
    pub upgrade: bool,
}

/// Install aws-lc-rs as the process-wide rustls provider (before Pingora installs its default).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Load the config and assemble the server. Errors are config errors, one per line.
pub fn build(config: PathBuf, opts: &RunOptions) -> Result<(Server, Arc<State>), Vec<String>> {
    install_crypto_provider();
    // Draws the request-id prefix now: without randomness the process stops before serving.
    crate::proxy::new_request_id();
    let state = State::boot(config)
        .map_err(|errs| errs.into_iter().map(|e| e.to_string()).collect::<Vec<_>>())?;
    let settings = state.settings.clone();
    let s = &settings.server;
    let conf = ServerConf {
        daemon: opts.daemon,
        threads: s.threads,
        work_stealing: s.work_stealing,
        pid_file: s.pid_file.clone(),
        upgrade_sock: s.upgrade_sock.clone(),
        grace_period_seconds: Some(s.grace_period.0.as_secs()),
        graceful_shutdown_timeout_seconds: Some(s.graceful_shutdown_timeout.0.as_secs()),
        upstream_keepalive_pool_size: s.upstream_keepalive_pool_size,
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade: opts.upgrade,
        daemon: opts.daemon,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    let mut proxy = pingora_proxy::HttpProxy::new(
        Gateway {
            state: state.clone(),
        },
        server.configuration.clone(),
    );
    proxy.handle_init_modules();
    let fd = &settings.front_door;
    let limits = state.current.load().front.limits;
    proxy.h2_options = Some(crate::front::head::h2_options(
        &limits,
        fd.h2_max_concurrent_streams,
    ));
    let mut o = HttpServerOptions::default();
    o.keepalive_request_limit = Some(fd.max_requests_per_connection);
    o.h2_idle_timeout = Some(limits.idle_timeout);
    let mut errs = Vec::new();
    let mut h2c = false;
    let mut listeners = pingora_core::listeners::Listeners::new();
    for (i, l) in settings.listeners.iter().enumerate() {
        match &l.tls {
            None => {
                listeners.add_tcp(&l.address);
                h2c |= l.http2;
            }
            Some(tls) => match TlsSettings::intermediate(&tls.cert, &tls.key) {
                Ok(mut settings) => {
                    if l.http2 {
                        settings.enable_h2();
                    }
                    listeners.add_tls_with_settings(&l.address, None, settings);
                }
                Err(e) => errs.push(format!("listeners[{i}].tls: {e}")),
            },
        }
    }
    o.h2c = h2c;
    proxy.server_options = Some(o);
    if !errs.is_empty() {
        return Err(errs);
    }
    let app = crate::front::head::FrontDoorApp {
        inner: Arc::new(proxy),
        state: state.clone(),
    };
    server.add_service(Service::with_listeners(
        "tokengate data plane".to_string(),
        listeners,
        app,
    ));

    if settings.admin.enabled {
        let a = &settings.admin;
        let mut errs = crate::error::Errors::default();
        let Some(guard) = crate::guard::Guard::compile(a, &mut errs) else {
            return Err(errs.0.iter().map(|e| e.to_string()).collect());
        };
        if a.tokens.is_empty() {
            log::warn!(
                "admin listener {}: the admin plane is unauthenticated (loopback only); set \
                 [admin] tokens to require a bearer token",
                a.listen
            );
        } else if a
            .listen
            .parse::<std::net::SocketAddr>()
            .is_ok_and(|s| !s.ip().is_loopback())
        {
            log::warn!(
                "ADMIN LISTENER {} IS NOT ON LOOPBACK: reload, key rotation and the config are \
                 reachable from the network behind bearer tokens sent in cleartext HTTP; keep it \
                 on a private network",
                a.listen
            );
        }
        let mut admin = Service::new(
            "tokengate admin".to_string(),
            Admin {
                state: state.clone(),
                guard,
            },
        );
        admin.add_tcp(&settings.admin.listen);
        server.add_service(admin);
    }
    server.add_service(background_service(
        "tokengate maintenance",
        crate::reload::Maintenance {
            state: state.clone(),
        },
    ));
    Ok((server, state))
}
