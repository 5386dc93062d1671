//! Identity sources: who may get a token with the password grant, and which roles and scopes
//! that user carries. `static` ([[token_service.users]]), `ldap` (bind-search-bind),
//! `database` (PostgreSQL, MySQL/MariaDB, SQLite through one pooled client) and `http` (an
//! external API).
//!
//! Every source runs behind the same [`Source`] wrapper, which owns what all of them need:
//! * caps on the username and password before anything else;
//! * the credential cache ([`cache`]): accepted pairs for `cache_ttl`, rejected ones for a
//!   few seconds, errors never;
//! * `max_concurrency` lookups in flight, and one `timeout` over queueing and the lookup,
//!   after which the token endpoint answers 503 `temporarily_unavailable` (never 401);
//! * health: the first error or timeout marks the source degraded (`/readyz` lists it under
//!   `degraded`, `tokengate_identity_up` is 0) until a lookup succeeds again;
//! * metrics: `tokengate_identity_lookups_total{source,outcome}`,
//!   `tokengate_identity_cache_hits_total{source}`, `tokengate_identity_duration_seconds`.
//!
//! A compiled source lives in [`IdentityShared`] under a fingerprint of its config, so a
//! reload that leaves a source unchanged keeps its connection pool, cache and health.
//! Nothing secret is logged: neither passwords, bind passwords nor usernames.

pub mod cache;
use crate::config::identity as config;
mod database;
pub mod hash;
mod http;
mod ldap;
pub mod secret;

pub use config::IdentitySourceConfig;

use crate::config::token::UserConfig;
use crate::error::Errors;
use crate::keys::http::AbortOnDrop;
use cache::{Cached, CredCache};
use dashmap::DashMap;
use hash::PasswordHash;
use pingora_http::RequestHeader;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest accepted username, bytes.
pub const MAX_USERNAME: usize = 256;
/// Longest accepted password, bytes.
pub const MAX_PASSWORD: usize = 1024;

/// An authenticated resource owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The token's `sub`.
    pub subject: String,
    pub roles: Vec<String>,
    /// Scopes the user may delegate (empty: any the client may obtain).
    pub scopes: Vec<String>,
}

/// A source that could not answer. The text is for the operator's log: it never holds a
/// password, and never a username.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityError {
    /// The source did not answer within `timeout`.
    Timeout,
    /// The source failed (down, refused, TLS, a broken answer).
    Unavailable(String),
    /// This gateway's own queue (the source's `max_concurrency`, or the hash checks) was
    /// full until the deadline: 503, but the source is not marked degraded.
    Overloaded,
    /// The request lacks what the source needs (a value its template reads): 400.
    BadRequest(&'static str),
}

impl std::fmt::Display for IdentityError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdentityError::Timeout => f.write_str("timed out"),
            IdentityError::Unavailable(m) => f.write_str(m),
            IdentityError::Overloaded => f.write_str("local queue full until the deadline"),
            IdentityError::BadRequest(m) => f.write_str(m),
        }
    }
}

/// What a backend answered.
#[derive(Debug)]
pub(crate) enum Answer {
    /// The password matched (a login), or the user is there (a refresh lookup).
    Accepted(Identity),
    /// A login refused: wrong password, unknown or ambiguous user.
    Rejected,
    /// A lookup's definite "no such user any more" (no entry, no row, a NULL hash, 404/410).
    Gone,
    /// A lookup that could not tell (two entries, no subject, an unexpected reject).
    Unsure,
}

/// What a refresh learns about the user of a refresh token.
#[derive(Debug)]
pub enum Lookup {
    /// Still there, with current roles and scopes.
    Found(Identity),
    /// Gone or disabled: the refresh fails.
    Gone,
    /// This source cannot check (an API without a regenerator): the refresh goes on.
    Unchecked,
    /// The source answered but could not tell: the refresh fails, the grant stays.
    Unsure,
}

/// The request a lookup is made for (templates of the `http` source read it).
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub req: &'a RequestHeader,
    pub client_ip: Option<IpAddr>,
}

enum Backend {
    Static(StaticUsers),
    Ldap(ldap::LdapSource),
    Database(Box<database::DbSource>),
    Http(Box<http::HttpSource>),
}

/// One compiled identity source with its cache, limits, health and metrics.
pub struct Source {
    pub name: String,
    backend: Backend,
    timeout: Duration,
    cache: CredCache,
    permits: tokio::sync::Semaphore,
    healthy: AtomicBool,
    /// Set when a reload dropped this source.
    retired: AtomicBool,
    m: SourceMetrics,
    rt: Arc<IdentityRuntime>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

struct SourceMetrics {
    accepted: IntCounter,
    rejected: IntCounter,
    error: IntCounter,
    timeout: IntCounter,
    overloaded: IntCounter,
    cache_hits: IntCounter,
    duration: Histogram,
    /// The `tokengate_identity_up` family: the series is made when first set (see
    /// `IdentityShared::retain`).
    up: IntGaugeVec,
}

/// What one backend call needs, owned (it runs as a task on the identity runtime).
enum Call {
    Login {
        username: String,
        password: zeroize::Zeroizing<String>,
        rendered: Option<http::Rendered>,
    },
    Lookup {
        username: String,
        rendered: Option<http::Rendered>,
    },
}

impl Source {
    /// Check a username and password: `Ok(Some)` accepted, `Ok(None)` rejected (wrong
    /// password, unknown or ambiguous user), `Err` the source could not say.
    pub async fn authenticate(
        self: &Arc<Self>,
        username: &str,
        password: &str,
        ctx: Ctx<'_>,
    ) -> Result<Option<Arc<Identity>>, IdentityError> {
        let r = self.authenticate_inner(username, password, ctx).await;
        self.count(&r);
        r
    }

    async fn authenticate_inner(
        self: &Arc<Self>,
        username: &str,
        password: &str,
        ctx: Ctx<'_>,
    ) -> Result<Option<Arc<Identity>>, IdentityError> {
        if !plausible(username) || password.len() > MAX_PASSWORD {
            return Ok(None);
        }
        // The http source's request may read request values: they are part of the key.
        let rendered = match &self.backend {
            Backend::Http(h) => Some(h.render_login(username, password, ctx)?),
            _ => None,
        };
        let key = {
            let material = rendered.as_ref().map(|r| r.cache_material());
            self.cache
                .key(username, material.as_ref().map_or(password, |m| m.as_str()))
        };
        if let Some(r) = self.remembered(&key) {
            return Ok(r);
        }
        // Single flight: concurrent logins of one pair share the first one's lookup and its
        // answer, errors included, whether or not the answer is then cached.
        let deadline = tokio::time::Instant::now() + self.timeout;
        let call = Call::Login {
            username: username.to_string(),
            password: zeroize::Zeroizing::new(password.to_string()),
            rendered,
        };
        let flight = self.cache.flight(key);
        // The lookup ends by itself at the deadline (with its health and metrics); this wait
        // only guards a waiter whose leader somehow does not.
        let shared = tokio::time::timeout_at(
            deadline + Duration::from_millis(200),
            flight.get().get_or_init(|| async {
                let r = self.bounded(call, deadline).await.map(|a| match a {
                    Answer::Accepted(id) => Some(Arc::new(id)),
                    Answer::Rejected | Answer::Gone | Answer::Unsure => None,
                });
                if let Ok(id) = &r {
                    self.cache.put(key, id.clone(), Instant::now());
                }
                r
            }),
        )
        .await;
        match shared {
            Ok(r) => r.clone(),
            Err(_) => Err(IdentityError::Timeout),
        }
    }

    /// One count per request: accepted, rejected, error, timeout or overloaded.
    fn count(&self, r: &Result<Option<Arc<Identity>>, IdentityError>) {
        match r {
            Ok(Some(_)) => self.m.accepted.inc(),
            Ok(None) => self.m.rejected.inc(),
            Err(IdentityError::Timeout) => self.m.timeout.inc(),
            Err(IdentityError::Overloaded) => self.m.overloaded.inc(),
            Err(IdentityError::Unavailable(_) | IdentityError::BadRequest(_)) => self.m.error.inc(),
        }
    }

    /// Is the user of a refresh token still there? (Not cached.)
    pub async fn lookup(
        self: &Arc<Self>,
        username: &str,
        ctx: Ctx<'_>,
    ) -> Result<Lookup, IdentityError> {
        if !plausible(username) {
            return Ok(Lookup::Unsure);
        }
        let rendered = match &self.backend {
            Backend::Http(h) => match h.render_refresh(username, ctx)? {
                Some(r) => Some(r),
                None => return Ok(Lookup::Unchecked),
            },
            _ => None,
        };
        let call = Call::Lookup {
            username: username.to_string(),
            rendered,
        };
        let deadline = tokio::time::Instant::now() + self.timeout;
        Ok(match self.bounded(call, deadline).await? {
            Answer::Accepted(id) => Lookup::Found(id),
            Answer::Gone => Lookup::Gone,
            Answer::Rejected | Answer::Unsure => Lookup::Unsure,
        })
    }

    /// A remembered answer.
    fn remembered(&self, k: &[u8; 32]) -> Option<Option<Arc<Identity>>> {
        let c = self.cache.get(k, Instant::now())?;
        self.m.cache_hits.inc();
        Some(match c {
            Cached::Accepted(id) => Some(id),
            Cached::Rejected => None,
        })
    }

    async fn backend(
        &self,
        call: Call,
        deadline: tokio::time::Instant,
    ) -> Result<Answer, IdentityError> {
        // Waiting here is this gateway's queue, not the source's slowness.
        let _permit = tokio::time::timeout_at(deadline, self.permits.acquire())
            .await
            .map_err(|_| IdentityError::Overloaded)?
            .map_err(|_| IdentityError::Unavailable("closed".into()))?;
        let missing = || IdentityError::Unavailable("request not rendered".into());
        match (&self.backend, call) {
            (
                Backend::Static(s),
                Call::Login {
                    username, password, ..
                },
            ) => s.authenticate(&username, &password, deadline).await,
            (Backend::Static(s), Call::Lookup { username, .. }) => Ok(s.lookup(&username)),
            (
                Backend::Ldap(l),
                Call::Login {
                    username, password, ..
                },
            ) => l.authenticate(&username, &password).await,
            (Backend::Ldap(l), Call::Lookup { username, .. }) => l.lookup(&username).await,
            (
                Backend::Database(d),
                Call::Login {
                    username, password, ..
                },
            ) => d.authenticate(&username, &password, deadline).await,
            (Backend::Database(d), Call::Lookup { username, .. }) => d.lookup(&username).await,
            (Backend::Http(h), Call::Login { rendered, .. } | Call::Lookup { rendered, .. }) => {
                h.call(rendered.ok_or_else(missing)?).await
            }
        }
    }

    /// One backend call as a task on the identity runtime, under the concurrency limit and
    /// the timeout, with the duration metric and health. Connection pools live on that
    /// runtime, whichever of Pingora's runtimes serves the request.
    async fn bounded(
        self: &Arc<Self>,
        call: Call,
        deadline: tokio::time::Instant,
    ) -> Result<Answer, IdentityError> {
        let start = Instant::now();
        let r = match self.rt.handle() {
            Ok(h) => {
                let this = self.clone();
                // The task ends at the deadline on its own (its queue waits first, so a full
                // queue reads as Overloaded, not as the source's timeout), and is aborted if
                // this request goes away first: a hung server never holds a permit for long.
                let mut task = AbortOnDrop(h.spawn(async move {
                    tokio::time::timeout_at(deadline, this.backend(call, deadline))
                        .await
                        .unwrap_or(Err(IdentityError::Timeout))
                }));
                // A little slack: the task's own deadline answers first.
                let slack = deadline + Duration::from_millis(50);
                match tokio::time::timeout_at(slack, &mut task.0).await {
                    Ok(Ok(r)) => r,
                    Ok(Err(_)) => Err(IdentityError::Unavailable("lookup task failed".into())),
                    Err(_) => Err(IdentityError::Timeout),
                }
            }
            Err(e) => Err(e),
        };
        self.m.duration.observe(start.elapsed().as_secs_f64());
        match &r {
            Ok(_) => self.set_healthy(true),
            Err(IdentityError::Overloaded | IdentityError::BadRequest(_)) => {}
            Err(e) => {
                if self.healthy.load(Ordering::Relaxed) {
                    log::warn!("identity source {:?}: {e}; marked degraded", self.name);
                } else {
                    log::debug!("identity source {:?}: {e}", self.name);
                }
                self.set_healthy(false);
            }
        }
        r
    }

    fn set_healthy(&self, ok: bool) {
        if self.healthy.swap(ok, Ordering::Relaxed) != ok && ok {
            log::info!("identity source {:?}: answering again", self.name);
        }
        // A source a reload retired (still finishing lookups) must not write its old name's
        // series (gone, or the new same-named source's).
        if !self.retired.load(Ordering::Relaxed) {
            self.m
                .up
                .with_label_values(&[&self.name])
                .set(i64::from(ok));
        }
    }

    /// False from a failed lookup until the next successful one.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Credential pairs with a lookup in flight (for tests).
    pub fn in_flight(&self) -> usize {
        self.cache.in_flight()
    }
}

/// The static store: `[[token_service.users]]`.
struct StaticUsers {
    users: HashMap<String, (PasswordHash, Identity)>,
    /// Checked for unknown names, so the answer's timing does not tell them apart.
    dummy: PasswordHash,
}

impl StaticUsers {
    async fn authenticate(
        &self,
        username: &str,
        password: &str,
        deadline: tokio::time::Instant,
    ) -> Result<Answer, IdentityError> {
        let (hash, id) = match self.users.get(username) {
            Some((h, id)) => (h.clone(), Some(id.clone())),
            None => (self.dummy.clone(), None),
        };
        let ok = verify_off_runtime(hash, password, deadline).await?;
        Ok(match id.filter(|_| ok) {
            Some(id) => Answer::Accepted(id),
            None => Answer::Rejected,
        })
    }

    fn lookup(&self, username: &str) -> Answer {
        match self.users.get(username) {
            Some((_, id)) => Answer::Accepted(id.clone()),
            None => Answer::Gone,
        }
    }
}

/// A hash check on the blocking pool (argon2 or 600 000 PBKDF2 rounds must not stall the
/// proxy's worker threads): users' passwords here, clients' secrets at the token endpoint.
/// At most two checks per CPU run at once, process-wide: the permit travels with the check,
/// so a check whose lookup timed out (a blocking task cannot be aborted) still holds it, and
/// an overloaded gateway queues checks instead of stacking threads. `Overloaded` when no
/// permit came by `deadline`.
pub(crate) async fn verify_off_runtime(
    hash: PasswordHash,
    password: &str,
    deadline: tokio::time::Instant,
) -> Result<bool, IdentityError> {
    static PERMITS: std::sync::OnceLock<Arc<tokio::sync::Semaphore>> = std::sync::OnceLock::new();
    let permits = PERMITS.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Arc::new(tokio::sync::Semaphore::new(cpus * 2))
    });
    let permit = tokio::time::timeout_at(deadline, permits.clone().acquire_owned())
        .await
        .map_err(|_| IdentityError::Overloaded)?
        .map_err(|_| IdentityError::Unavailable("password check failed".into()))?;
    let pw = zeroize::Zeroizing::new(password.as_bytes().to_vec());
    tokio::task::spawn_blocking(move || {
        let ok = hash.verify(&pw);
        drop(permit);
        ok
    })
    .await
    .map_err(|_| IdentityError::Unavailable("password check failed".into()))
}

/// Per-source metrics, registered once per process.
pub struct IdentityMetrics {
    lookups: IntCounterVec,
    cache_hits: IntCounterVec,
    duration: HistogramVec,
    up: IntGaugeVec,
}

impl IdentityMetrics {
    fn new(registry: &Registry) -> Result<IdentityMetrics, prometheus::Error> {
        let lookups = IntCounterVec::new(
            Opts::new(
                "tokengate_identity_lookups_total",
                "Password checks by outcome (accepted, rejected, error, timeout, overloaded), one per request",
            ),
            &["source", "outcome"],
        )?;
        let cache_hits = IntCounterVec::new(
            Opts::new(
                "tokengate_identity_cache_hits_total",
                "Lookups answered from the credential cache",
            ),
            &["source"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "tokengate_identity_duration_seconds",
                "Time of lookups that reached the source (cache misses)",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["source"],
        )?;
        let up = IntGaugeVec::new(
            Opts::new(
                "tokengate_identity_up",
                "0 while the identity source is degraded (its last lookup failed)",
            ),
            &["source"],
        )?;
        registry.register(Box::new(lookups.clone()))?;
        registry.register(Box::new(cache_hits.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(up.clone()))?;
        Ok(IdentityMetrics {
            lookups,
            cache_hits,
            duration,
            up,
        })
    }

    fn source(&self, name: &str) -> SourceMetrics {
        // `up` is set when the config is applied (IdentityShared::retain): a refused reload
        // must neither reset a running source's series nor make one for a source never used.
        SourceMetrics {
            accepted: self.lookups.with_label_values(&[name, "accepted"]),
            rejected: self.lookups.with_label_values(&[name, "rejected"]),
            error: self.lookups.with_label_values(&[name, "error"]),
            timeout: self.lookups.with_label_values(&[name, "timeout"]),
            overloaded: self.lookups.with_label_values(&[name, "overloaded"]),
            cache_hits: self.cache_hits.with_label_values(&[name]),
            duration: self.duration.with_label_values(&[name]),
            up: self.up.clone(),
        }
    }
}

/// The runtime every identity lookup runs on (two worker threads, started on first use):
/// LDAP connections, database pools and HTTP connections belong to it, not to whichever of
/// Pingora's per-thread runtimes compiled the config or serves the request. Config compiles
/// (`tokengate check`, startup before Pingora's runtimes exist) open nothing.
#[derive(Default)]
pub struct IdentityRuntime {
    rt: std::sync::OnceLock<Option<tokio::runtime::Runtime>>,
}

impl IdentityRuntime {
    fn handle(&self) -> Result<tokio::runtime::Handle, IdentityError> {
        self.rt
            .get_or_init(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("tg-identity")
                    .enable_all()
                    .build()
                    .map_err(|e| log::error!("identity runtime: {e}"))
                    .ok()
            })
            .as_ref()
            .map(|rt| rt.handle().clone())
            .ok_or_else(|| IdentityError::Unavailable("no identity runtime".into()))
    }
}

impl Drop for IdentityRuntime {
    fn drop(&mut self) {
        // May be dropped on an async thread, where a blocking shutdown panics.
        if let Some(Some(rt)) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Compiled sources that outlive reloads, by config fingerprint.
pub struct IdentityShared {
    metrics: IdentityMetrics,
    sources: DashMap<String, Arc<Source>>,
    rt: Arc<IdentityRuntime>,
}

impl IdentityShared {
    pub fn new(registry: &Registry) -> Result<IdentityShared, prometheus::Error> {
        Ok(IdentityShared {
            metrics: IdentityMetrics::new(registry)?,
            sources: DashMap::new(),
            rt: Arc::new(IdentityRuntime::default()),
        })
    }

    /// Called when a config is applied: drop the sources it no longer uses (their pools
    /// close once the lookups in flight finish) and their `tokengate_identity_up` series, and
    /// show the health of those it uses. (A refused config's sources stay until then, unused
    /// and unconnected: pools open on first use.)
    pub fn retain(&self, used: &[Arc<Source>]) {
        self.sources.retain(|_, s| {
            let keep = used.iter().any(|u| Arc::ptr_eq(u, s));
            if !keep {
                s.retired.store(true, Ordering::Relaxed);
                if !used.iter().any(|u| u.name == s.name) {
                    let _ = self.metrics.up.remove_label_values(&[&s.name]);
                }
            }
            keep
        });
        for s in used {
            s.set_healthy(s.healthy());
        }
    }

    /// Sources kept (for tests and status).
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    fn get_or_build(
        &self,
        fingerprint: String,
        build: impl FnOnce(&IdentityMetrics, Arc<IdentityRuntime>) -> Result<Source, String>,
    ) -> Result<Arc<Source>, String> {
        if let Some(s) = self.sources.get(&fingerprint) {
            return Ok(s.clone());
        }
        let s = Arc::new(build(&self.metrics, self.rt.clone())?);
        self.sources.insert(fingerprint, s.clone());
        Ok(s)
    }
}

/// A username worth asking a source about: 1..=256 bytes, no control characters (a NUL
/// would make PostgreSQL fail the query, i.e. let anyone mark the source degraded).
fn plausible(username: &str) -> bool {
    !username.is_empty()
        && username.len() <= MAX_USERNAME
        && !username.chars().any(char::is_control)
}

/// Sources names are plain words: they appear in metrics labels and refresh-token records.
fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The static store as the source named `static`; None when no user is configured.
pub fn compile_static(
    users: &[UserConfig],
    path: &str,
    errs: &mut Errors,
    shared: &IdentityShared,
) -> Option<Arc<Source>> {
    let mut map = HashMap::new();
    let mut dummy = None;
    let before = errs.0.len();
    for (i, u) in users.iter().enumerate() {
        let UserConfig {
            username,
            password_hash,
            roles,
            scopes,
            enabled,
        } = u;
        let up = format!("{path}[{i}]");
        if username.is_empty() || username.len() > MAX_USERNAME {
            errs.push(format!("{up}.username"), "must be 1..=256 bytes");
        }
        match PasswordHash::parse(password_hash) {
            Ok(h) => {
                // Unknown names are checked against a real user's hash: the same scheme and
                // cost as a known name's check.
                dummy.get_or_insert_with(|| h.clone());
                if map.contains_key(username) {
                    errs.push(format!("{up}.username"), "duplicate username");
                }
                if *enabled {
                    let id = Identity {
                        subject: username.clone(),
                        roles: roles.clone(),
                        scopes: scopes.clone(),
                    };
                    map.insert(username.clone(), (h, id));
                }
            }
            Err(e) => errs.push(format!("{up}.password_hash"), e),
        }
    }
    if errs.0.len() > before {
        return None;
    }
    let dummy = dummy?;
    let fp = crate::fingerprint::of("static", users)
        .map_err(|e| errs.push(path, e))
        .ok()?;
    let common = IdentitySourceConfig {
        name: "static".into(),
        // Generous: a 600 000-round PBKDF2 costs ~0.3 s of a core, and a burst queues.
        timeout: crate::units::HumanDuration(Duration::from_secs(10)),
        cache_ttl: crate::units::HumanDuration(Duration::from_secs(30)),
        negative_cache_ttl: crate::units::HumanDuration(Duration::from_secs(2)),
        cache_capacity: 10_000,
        max_concurrency: 64,
        ldap: None,
        database: None,
        http: None,
    };
    shared
        .get_or_build(fp, |m, rt| {
            source(
                &common,
                Backend::Static(StaticUsers { users: map, dummy }),
                m,
                rt,
            )
        })
        .map_err(|e| errs.push(path, e))
        .ok()
}

fn source(
    c: &IdentitySourceConfig,
    backend: Backend,
    m: &IdentityMetrics,
    rt: Arc<IdentityRuntime>,
) -> Result<Source, String> {
    let cache = CredCache::new(c.cache_ttl.0, c.negative_cache_ttl.0, c.cache_capacity)?;
    Ok(Source {
        name: c.name.clone(),
        backend,
        timeout: c.timeout.0,
        cache,
        permits: tokio::sync::Semaphore::new(c.max_concurrency),
        healthy: AtomicBool::new(true),
        retired: AtomicBool::new(false),
        m: m.source(&c.name),
        rt,
    })
}

/// Compile one `[[token_service.identity_sources]]` entry (no I/O: connections open on first
/// use).
pub fn compile(
    c: &IdentitySourceConfig,
    path: &str,
    errs: &mut Errors,
    shared: &IdentityShared,
) -> Option<Arc<Source>> {
    let IdentitySourceConfig {
        name,
        timeout,
        cache_ttl: _,
        negative_cache_ttl,
        cache_capacity: _,
        max_concurrency,
        ldap,
        database,
        http,
    } = c;
    let before = errs.0.len();
    if !valid_name(name) || name == "static" {
        errs.push(
            format!("{path}.name"),
            "must be 1-64 of A-Z a-z 0-9 - _, and not \"static\" (the [[token_service.users]] store)",
        );
    }
    if timeout.0.is_zero() {
        errs.push(format!("{path}.timeout"), "must be more than 0s");
    }
    if negative_cache_ttl.0 > cache::MAX_NEGATIVE_TTL {
        errs.push(
            format!("{path}.negative_cache_ttl"),
            "at most 10s: a rejection must not outlive a password reset for long",
        );
    }
    if *max_concurrency == 0 {
        errs.push(format!("{path}.max_concurrency"), "must be at least 1");
    }
    let kinds = [ldap.is_some(), database.is_some(), http.is_some()];
    if kinds.iter().filter(|k| **k).count() != 1 {
        errs.push(
            path.to_string(),
            "needs exactly one of the tables ldap, database or http",
        );
        return None;
    }
    let backend = if let Some(l) = ldap {
        ldap::LdapSource::compile(l, timeout.0, &format!("{path}.ldap"), errs).map(Backend::Ldap)
    } else if let Some(d) = database {
        database::DbSource::compile(d, timeout.0, &format!("{path}.database"), errs)
            .map(|d| Backend::Database(Box::new(d)))
    } else if let Some(h) = http {
        http::HttpSource::compile(h, &format!("{path}.http"), errs)
            .map(|h| Backend::Http(Box::new(h)))
    } else {
        None
    };
    if errs.0.len() > before {
        return None;
    }
    let backend = backend?;
    // A CA file replaced under the same path is a new source (its TLS config was read now).
    let ca = ldap
        .as_ref()
        .and_then(|l| l.ca_file.as_ref())
        .or(http.as_ref().and_then(|h| h.ca_file.as_ref()));
    let ca_digest = match ca.map(std::fs::read) {
        None => None,
        Some(Ok(b)) => Some(crate::fingerprint::sha256_hex(&b)),
        Some(Err(e)) => {
            errs.push(path, format!("CA file: {e}"));
            return None;
        }
    };
    let fp = crate::fingerprint::of("identity", &(c, ca_digest))
        .map_err(|e| errs.push(path, e))
        .ok()?;
    shared
        .get_or_build(fp, |m, rt| source(c, backend, m, rt))
        .map_err(|e| errs.push(path, e))
        .ok()
}

/// Split a roles or scopes text on `sep` (and whitespace when `sep` is a comma or space).
fn split_list(s: &str, sep: &str) -> Vec<String> {
    let parts: Vec<&str> = if sep == "," || sep == " " {
        s.split(|c: char| c == ',' || c.is_whitespace()).collect()
    } else {
        s.split(sep).collect()
    };
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_splitting() {
        assert_eq!(split_list("a, b  c,,", ","), ["a", "b", "c"]);
        assert_eq!(split_list("a|b c", "|"), ["a", "b c"]);
        assert!(split_list("", ",").is_empty());
    }

    #[test]
    fn names() {
        assert!(valid_name("corp-ldap_1"));
        assert!(!valid_name(""));
        assert!(!valid_name("a b"));
        assert!(!valid_name("é"));
    }
}
