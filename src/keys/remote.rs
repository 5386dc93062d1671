//! One remote key source: a JWKS URL, or an OIDC discovery URL whose `jwks_uri` is fetched.
//! See the module documentation of [`super`] for the refresh rules.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

use arc_swap::{ArcSwap, ArcSwapOption};
use serde::{Deserialize, Serialize};

use super::http::{parse_url, HttpClient, Target};
use super::metrics::Metrics;
use super::{JwksSettings, KeyError};
use crate::jose::{JoseError, Jwk, JwkSet};

/// Most keys accepted in one remote set: key selection scans the set, and no identity
/// provider publishes more than a handful.
pub const MAX_KEYS: usize = 100;

/// What a source fetches.
#[derive(Debug, Clone)]
pub(crate) enum SourceKind {
    /// A JWK Set URL.
    Jwks(Target),
    /// An OIDC discovery document URL; its `jwks_uri` is looked up on every fetch.
    Discovery(Target),
    /// A JWK Set URL serving private keys to sign with: private members are kept.
    SigningJwks(Target),
}

/// The cached key set of a source.
struct Cached {
    set: Arc<JwkSet>,
    fetched_at: Instant,
    /// Fresh until then; served stale (while refreshes fail) until `refresh_at + max_stale`.
    refresh_at: Instant,
}

/// Mutable bookkeeping; taken briefly, never across an await.
#[derive(Default)]
struct Sched {
    failures: u32,
    retry_at: Option<Instant>,
    last_error: Option<KeyError>,
    /// When the last unknown-kid refetch was claimed, and `started` at that time.
    unknown_kid: Option<(Instant, u64)>,
    /// SHA-256 over the canonical public keys of the last good set (survives flush).
    digest: Option<[u8; 32]>,
}

/// A remote JWK Set shared by every worker thread and across reloads. Cheap reads
/// ([`RemoteJwks::current`]) never lock; fetches are single-flight.
pub struct RemoteJwks {
    url: String,
    kind: SourceKind,
    label: String,
    settings: ArcSwap<JwksSettings>,
    cached: ArcSwapOption<Cached>,
    generation: AtomicU64,
    /// Id of the last fetch started (ids increase by one per fetch).
    started: AtomicU64,
    /// Id of the last fetch completed (a cancelled fetch never completes).
    completed: AtomicU64,
    in_flight: AtomicBool,
    fetch_lock: tokio::sync::Mutex<()>,
    sched: Mutex<Sched>,
    /// Milliseconds since `epoch` at the last use (LRU eviction and idle detection).
    last_used: AtomicU64,
    /// Creation order, the LRU tie-breaker.
    pub(crate) serial: u64,
    epoch: Instant,
    http: Arc<HttpClient>,
    metrics: Metrics,
}

impl std::fmt::Debug for RemoteJwks {
    // The URL may carry secrets in its query: only the label is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteJwks")
            .field("source", &self.label)
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

/// The state of one source, for `/admin/status` and logs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SourceStatus {
    /// `host[:port]/path` of the configured URL (never the query).
    pub source: String,
    /// `jwks`, `discovery` or `signing_jwks`.
    pub kind: String,
    /// Ready for `/readyz`: usable, or not prefetched.
    pub ready: bool,
    /// A set is served (fresh or stale).
    pub usable: bool,
    /// The set is past its refresh time (served because refreshes fail or are pending).
    pub stale: bool,
    pub keys: usize,
    pub generation: u64,
    pub age_seconds: Option<f64>,
    /// Seconds until the next scheduled fetch (negative: overdue).
    pub next_refresh_seconds: Option<f64>,
    pub consecutive_failures: u32,
    /// Code of the last fetch error, cleared by a success.
    pub last_error: Option<String>,
}

/// Clears `in_flight` when a fetch ends or is cancelled.
struct InFlight<'a>(&'a AtomicBool);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

fn ms_since(epoch: Instant, now: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(epoch).as_millis()).unwrap_or(u64::MAX)
}

impl RemoteJwks {
    pub(crate) fn new(
        url: &str,
        kind: SourceKind,
        settings: JwksSettings,
        serial: u64,
        epoch: Instant,
        http: Arc<HttpClient>,
        metrics: Metrics,
    ) -> RemoteJwks {
        let label = match &kind {
            SourceKind::Jwks(t) | SourceKind::Discovery(t) | SourceKind::SigningJwks(t) => {
                t.label.clone()
            }
        };
        RemoteJwks {
            url: url.to_owned(),
            kind,
            label,
            settings: ArcSwap::from_pointee(settings),
            cached: ArcSwapOption::empty(),
            generation: AtomicU64::new(0),
            started: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            in_flight: AtomicBool::new(false),
            fetch_lock: tokio::sync::Mutex::new(()),
            sched: Mutex::new(Sched::default()),
            last_used: AtomicU64::new(ms_since(epoch, Instant::now())),
            serial,
            epoch,
            http,
            metrics,
        }
    }

    /// The configured URL (may hold a query string: do not log it).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `host[:port]/path`: the metric label and the name used in logs.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The current settings.
    pub fn settings(&self) -> JwksSettings {
        **self.settings.load()
    }

    /// Replaces the settings (a reload); takes effect at the next check or fetch.
    pub fn update_settings(&self, settings: JwksSettings) {
        if **self.settings.load() != settings {
            self.settings.store(Arc::new(settings));
        }
    }

    fn sched(&self) -> MutexGuard<'_, Sched> {
        self.sched.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn touch(&self, now: Instant) {
        let ms = ms_since(self.epoch, now);
        if self.last_used.load(Ordering::Relaxed) != ms {
            self.last_used.store(ms, Ordering::Relaxed);
        }
    }

    pub(crate) fn last_used_ms(&self) -> u64 {
        self.last_used.load(Ordering::Relaxed)
    }

    /// The key set to verify with, without waiting or locking: None when never fetched, after
    /// a flush, or when the set is older than `max_stale` past its refresh time (fail closed).
    pub fn current(&self) -> Option<Arc<JwkSet>> {
        let now = Instant::now();
        self.touch(now);
        self.peek(now)
    }

    /// [`RemoteJwks::current`] without counting as a use (status, gauges, readiness).
    fn peek(&self, now: Instant) -> Option<Arc<JwkSet>> {
        let guard = self.cached.load();
        let c = guard.as_ref()?;
        let max_stale = self.settings.load().max_stale.0;
        let usable = c
            .refresh_at
            .checked_add(max_stale)
            .is_none_or(|hard| now < hard);
        usable.then(|| c.set.clone())
    }

    /// Bumps when the content of the key set changes (and on flush). Read it *before*
    /// [`RemoteJwks::current`] / [`RemoteJwks::keys`] and tag what you verified with that
    /// value: a set is published before its generation, so a tag can only be too old (a
    /// spurious cache miss), never too new.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Ready for `/readyz`: a usable set, or a source that is not prefetched.
    pub fn is_ready(&self) -> bool {
        !self.settings.load().prefetch || self.peek(Instant::now()).is_some()
    }

    /// The usable key set, fetching when there is none. Concurrent callers share one fetch.
    /// After a failed fetch, callers get that error at once until the retry backoff has
    /// passed (no fetch storm against a down source).
    pub async fn keys(&self) -> Result<Arc<JwkSet>, KeyError> {
        if let Some(set) = self.current() {
            return Ok(set);
        }
        // Any fetch that completes after this point will do, even one already running.
        let seen = self.completed.load(Ordering::Acquire);
        if !self.in_flight.load(Ordering::Acquire) {
            let sched = self.sched();
            if let Some(t) = sched.retry_at {
                if Instant::now() < t {
                    return Err(self.error_from(&sched));
                }
            }
        }
        self.fetch_shared(seen).await
    }

    /// A token named a kid that the current set lacks. The first call claims the cooldown and
    /// fetches (after any fetch already running, whose answer may predate the new key); calls
    /// while that fetch runs wait for it and share it; later calls within
    /// `unknown_kid_cooldown` get the current set without fetching. So a flood of unknown kids
    /// costs one fetch per cooldown. Returns the usable set (possibly still without the kid:
    /// then the token has no matching key).
    pub async fn refresh_unknown_kid(&self) -> Result<Arc<JwkSet>, KeyError> {
        let cooldown = self.settings.load().unknown_kid_cooldown.0;
        let wait_for = {
            let mut sched = self.sched();
            let now = Instant::now();
            match sched.unknown_kid {
                // Within the cooldown: wait for the claimed fetch only while it has not ended.
                Some((at, claimed)) if now.saturating_duration_since(at) < cooldown => {
                    (self.completed.load(Ordering::Acquire) <= claimed).then_some(claimed)
                }
                // Claim: only a fetch that starts after now can hold the new kid (one already
                // running may have been answered before the provider published it).
                _ => {
                    let claimed = self.started.load(Ordering::Acquire);
                    sched.unknown_kid = Some((now, claimed));
                    self.count_unknown_kid("fetch");
                    Some(claimed)
                }
            }
        };
        match wait_for {
            Some(seen) => self.fetch_shared(seen).await,
            None => {
                self.count_unknown_kid("cooldown");
                self.usable()
            }
        }
    }

    /// Fetches now, whatever the schedule says: a fetch already running is waited for and
    /// followed by a fresh one (unless another caller's fresh one completes first, which is
    /// shared). Unlike [`RemoteJwks::keys`], a failed fetch is an error even while stale keys
    /// are served.
    pub async fn refresh(&self) -> Result<Arc<JwkSet>, KeyError> {
        let seen = self.started.load(Ordering::Acquire);
        let usable = self.fetch_shared(seen).await;
        match self.sched().last_error.clone() {
            Some(e) => Err(e),
            None => usable,
        }
    }

    /// Drops the cached set and bumps the generation; the next use (or `refresh_due`, for a
    /// prefetched source) fetches again. Backoff and cooldown are reset.
    pub fn flush(&self) {
        self.cached.store(None);
        {
            let mut sched = self.sched();
            sched.failures = 0;
            sched.retry_at = None;
            sched.unknown_kid = None;
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.metrics
            .usable
            .with_label_values(&[self.label.as_str()])
            .set(0);
    }

    /// When the next scheduled fetch is due (None: nothing scheduled, e.g. a lazy source
    /// that was never used).
    pub fn next_refresh(&self) -> Option<Instant> {
        let retry = self.sched().retry_at;
        retry.or_else(|| self.cached.load().as_ref().map(|c| c.refresh_at))
    }

    /// The refresh interval computed for the current set (Cache-Control clamped into
    /// `[min_refresh, max_refresh]`).
    pub fn ttl(&self) -> Option<Duration> {
        self.cached
            .load()
            .as_ref()
            .map(|c| c.refresh_at.saturating_duration_since(c.fetched_at))
    }

    /// Whether `refresh_due` should fetch this source now.
    pub(crate) fn is_due(&self, now: Instant) -> bool {
        if self.in_flight.load(Ordering::Acquire) {
            return false;
        }
        let settings = self.settings.load();
        // A lazy source nobody used for max_refresh is left to be fetched on its next use.
        let idle = ms_since(self.epoch, now).saturating_sub(self.last_used_ms())
            > u64::try_from(settings.max_refresh.0.as_millis()).unwrap_or(u64::MAX);
        if !settings.prefetch && idle {
            return false;
        }
        if let Some(t) = self.sched().retry_at {
            return now >= t;
        }
        match self.cached.load().as_ref() {
            Some(c) => now >= c.refresh_at,
            None => settings.prefetch,
        }
    }

    /// Updates the age and usable gauges (called by `refresh_due`).
    pub(crate) fn update_gauges(&self, now: Instant) {
        let label = [self.label.as_str()];
        let (usable, age) = match self.cached.load().as_ref() {
            Some(c) => (
                self.peek(now).is_some(),
                Some(now.saturating_duration_since(c.fetched_at)),
            ),
            None => (false, None),
        };
        self.metrics
            .usable
            .with_label_values(&label)
            .set(i64::from(usable));
        if let Some(age) = age {
            self.metrics
                .age
                .with_label_values(&label)
                .set(age.as_secs_f64());
        }
    }

    /// A status line for the admin API.
    pub fn status(&self) -> SourceStatus {
        let now = Instant::now();
        let cached = self.cached.load();
        let sched = self.sched();
        let secs = |t: Instant| {
            if t >= now {
                t.saturating_duration_since(now).as_secs_f64()
            } else {
                -now.saturating_duration_since(t).as_secs_f64()
            }
        };
        let next = sched
            .retry_at
            .or_else(|| cached.as_ref().map(|c| c.refresh_at));
        let usable = self.peek(now).is_some();
        SourceStatus {
            source: self.label.clone(),
            kind: match self.kind {
                SourceKind::Jwks(_) => "jwks".into(),
                SourceKind::Discovery(_) => "discovery".into(),
                SourceKind::SigningJwks(_) => "signing_jwks".into(),
            },
            ready: !self.settings.load().prefetch || usable,
            usable,
            stale: cached.as_ref().is_some_and(|c| now >= c.refresh_at),
            keys: cached.as_ref().map_or(0, |c| c.set.keys().len()),
            generation: self.generation(),
            age_seconds: cached
                .as_ref()
                .map(|c| now.saturating_duration_since(c.fetched_at).as_secs_f64()),
            next_refresh_seconds: next.map(secs),
            consecutive_failures: sched.failures,
            last_error: sched.last_error.as_ref().map(|e| e.code().to_owned()),
        }
    }

    fn count_unknown_kid(&self, action: &str) {
        self.metrics
            .unknown_kid
            .with_label_values(&[self.label.as_str(), action])
            .inc();
    }

    fn error_from(&self, sched: &Sched) -> KeyError {
        sched.last_error.clone().unwrap_or_else(|| {
            if self.cached.load().is_some() {
                KeyError::Unavailable("keys are past max_stale")
            } else {
                KeyError::Unavailable("keys not fetched yet")
            }
        })
    }

    fn usable(&self) -> Result<Arc<JwkSet>, KeyError> {
        match self.current() {
            Some(set) => Ok(set),
            None => Err(self.error_from(&self.sched())),
        }
    }

    /// Single flight: one fetch at a time. A caller whose `after` is below the id of the
    /// last completed fetch takes that outcome instead of fetching again: `after` is
    /// `completed` on arrival (any later outcome will do) or `started` (only a fetch started
    /// after arrival will do).
    async fn fetch_shared(&self, after: u64) -> Result<Arc<JwkSet>, KeyError> {
        let _lock = self.fetch_lock.lock().await;
        if self.completed.load(Ordering::Acquire) <= after {
            let id = self
                .started
                .fetch_add(1, Ordering::AcqRel)
                .saturating_add(1);
            self.in_flight.store(true, Ordering::Release);
            let _flag = InFlight(&self.in_flight);
            let outcome = self.fetch_once().await;
            match outcome {
                Ok((set, digest, max_age)) => self.store_success(set, digest, max_age),
                Err(e) => self.store_failure(e),
            }
            self.completed.store(id, Ordering::Release);
        }
        self.usable()
    }

    async fn fetch_once(&self) -> Result<(JwkSet, [u8; 32], Option<Duration>), KeyError> {
        let settings = self.settings();
        let max = settings.max_size.0;
        let work = async {
            let fetched = match &self.kind {
                SourceKind::Jwks(t) | SourceKind::SigningJwks(t) => self.http.get(t, max).await?,
                SourceKind::Discovery(d) => {
                    let doc = self.http.get(d, max).await?;
                    let target = jwks_uri_from(&doc.body, d)?;
                    self.http.get(&target, max).await?
                }
            };
            let keep_private = matches!(self.kind, SourceKind::SigningJwks(_));
            let (set, digest) = parse_remote_set(&fetched.body, keep_private)?;
            Ok((set, digest, fetched.max_age))
        };
        tokio::time::timeout(settings.timeout.0, work)
            .await
            .map_err(|_| KeyError::Timeout)?
    }

    fn store_success(&self, set: JwkSet, digest: [u8; 32], max_age: Option<Duration>) {
        let settings = self.settings();
        let now = Instant::now();
        let ttl = settings.ttl_for(max_age);
        let keys = set.keys().len();
        let mut sched = self.sched();
        let changed = sched.digest != Some(digest);
        let set = match (changed, self.cached.load().as_ref()) {
            (false, Some(c)) => c.set.clone(),
            _ => Arc::new(set),
        };
        self.cached.store(Some(Arc::new(Cached {
            set,
            fetched_at: now,
            refresh_at: now.checked_add(ttl).unwrap_or(now),
        })));
        if changed {
            // After the store: a reader that sees the new generation sees the new set.
            self.generation.fetch_add(1, Ordering::AcqRel);
            log::info!("jwks {}: key set updated ({keys} keys)", self.label);
        }
        sched.digest = Some(digest);
        sched.failures = 0;
        sched.retry_at = None;
        sched.last_error = None;
        drop(sched);
        let label = [self.label.as_str()];
        self.metrics
            .fetches
            .with_label_values(&[self.label.as_str(), "ok"])
            .inc();
        self.metrics
            .keys
            .with_label_values(&label)
            .set(i64::try_from(keys).unwrap_or(i64::MAX));
        self.metrics.usable.with_label_values(&label).set(1);
        self.metrics.age.with_label_values(&label).set(0.0);
    }

    fn store_failure(&self, e: KeyError) {
        let settings = self.settings();
        let now = Instant::now();
        let mut sched = self.sched();
        sched.failures = sched.failures.saturating_add(1);
        let backoff = settings.retry_backoff(sched.failures);
        sched.retry_at = Some(now.checked_add(backoff).unwrap_or(now));
        let failures = sched.failures;
        sched.last_error = Some(e.clone());
        drop(sched);
        let serving = if self.peek(now).is_some() {
            "serving stale keys"
        } else {
            "no usable keys"
        };
        log::warn!(
            "jwks {}: fetch failed ({}): {e}; {serving}; failure {failures}, retry in {}ms",
            self.label,
            e.code(),
            backoff.as_millis()
        );
        self.metrics
            .fetches
            .with_label_values(&[self.label.as_str(), e.code()])
            .inc();
    }
}

/// Takes `jwks_uri` from a discovery document: https, or http only when the discovery URL
/// itself is http (which [`parse_url`] allows for loopback hosts only).
fn jwks_uri_from(doc: &[u8], discovery: &Target) -> Result<Target, KeyError> {
    #[derive(Deserialize)]
    struct Doc {
        jwks_uri: Option<String>,
    }
    let doc: Doc =
        serde_json::from_slice(doc).map_err(|_| KeyError::DiscoveryInvalid("not a JSON object"))?;
    let uri = doc
        .jwks_uri
        .ok_or(KeyError::DiscoveryInvalid("no jwks_uri"))?;
    let target = parse_url(&uri).map_err(|_| KeyError::DiscoveryInvalid("jwks_uri refused"))?;
    if !target.https && discovery.https {
        return Err(KeyError::DiscoveryInvalid("jwks_uri must be https"));
    }
    Ok(target)
}

/// Parses a fetched body into a set of public asymmetric keys and its content digest.
/// Unusable keys are skipped (a set may carry keys for other consumers); symmetric keys are
/// refused (a shared secret is never fetched from a URL); private members are dropped unless
/// `keep_private` (a source of signing keys).
pub(crate) fn parse_remote_set(
    body: &[u8],
    keep_private: bool,
) -> Result<(JwkSet, [u8; 32]), KeyError> {
    let (set, skipped) = JwkSet::from_json_lenient(body).map_err(|e| match e {
        JoseError::KeySetAmbiguous => KeyError::Invalid("ambiguous key set"),
        JoseError::KeyRejected(_)
        | JoseError::KeyMalformed(_)
        | JoseError::KeyTypeMismatch(_)
        | JoseError::KeyTooShort(_)
        | JoseError::KeyLengthMismatch(_)
        | JoseError::InvalidCurve(_)
        | JoseError::PrivateKeyRequired
        | JoseError::TokenMalformed
        | JoseError::TokenTooLarge
        | JoseError::AlgorithmNotAllowed
        | JoseError::EncryptionNotAllowed
        | JoseError::CriticalHeaderUnsupported
        | JoseError::KidMissing
        | JoseError::UnencodedPayloadRejected
        | JoseError::CompressionNotAllowed
        | JoseError::SignatureInvalid
        | JoseError::DecryptionFailed
        | JoseError::NoMatchingKey
        | JoseError::ClaimsMalformed
        | JoseError::TokenExpired
        | JoseError::TokenNotYetValid
        | JoseError::TokenTooOld
        | JoseError::IssuerMismatch
        | JoseError::AudienceMismatch
        | JoseError::SubjectMismatch
        | JoseError::TypeMismatch
        | JoseError::ClaimMissing(_)
        | JoseError::ClaimProhibited(_)
        | JoseError::ClaimMismatch(_)
        | JoseError::ClaimInvalidType(_)
        | JoseError::NestingInvalid
        | JoseError::CryptoFailure
        | JoseError::InvalidInput(_) => KeyError::Invalid("not a JWK Set"),
    })?;
    if set.keys().len() > MAX_KEYS {
        return Err(KeyError::Invalid("too many keys"));
    }
    let set = if set
        .keys()
        .iter()
        .any(|k| k.is_symmetric() || (k.is_private() && !keep_private))
    {
        let keys: Vec<Jwk> = set
            .into_keys()
            .into_iter()
            .filter(|k| !k.is_symmetric())
            .filter_map(|k| {
                if keep_private {
                    Some(k)
                } else {
                    k.to_public().ok()
                }
            })
            .collect();
        JwkSet::new(keys).map_err(|_| KeyError::Invalid("ambiguous key set"))?
    } else {
        set
    };
    if set.is_empty() {
        return Err(KeyError::Invalid("no usable key"));
    }
    if skipped > 0 {
        log::debug!("jwks: {skipped} unusable keys skipped");
    }
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for k in set.keys() {
        let v = k
            .to_value(false)
            .map_err(|_| KeyError::Invalid("key export"))?;
        let bytes = serde_json::to_vec(&v).map_err(|_| KeyError::Invalid("key export"))?;
        ctx.update(&bytes);
        ctx.update(b"\n");
    }
    let mut digest = [0u8; 32];
    let d = ctx.finish();
    if let Some(dst) = digest.get_mut(..d.as_ref().len()) {
        dst.copy_from_slice(d.as_ref());
    }
    Ok((set, digest))
}
