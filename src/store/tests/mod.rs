//! Token store tests over real backends (a redb file in a temp dir; the Redis on
//! 127.0.0.1:6379, or one started by the test). Every behaviour in `conformance` runs with the
//! same body against both backends; `embedded_crash` and `redis_ops` cover what only one has.

mod conformance;
mod embedded_crash;
mod redis_ops;

use super::embedded::EmbeddedStore;
use super::redis::RedisStore;
use super::{AccessRecord, RefreshRecord, TokenHash, TokenStore};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

pub fn h(s: &str) -> TokenHash {
    TokenHash::of(s.as_bytes())
}

pub fn rt(
    token: &str,
    fam: &str,
    client: &str,
    exp: Option<u64>,
    max: Option<u32>,
) -> RefreshRecord {
    RefreshRecord {
        hash: h(token),
        family_id: fam.into(),
        client_id: client.into(),
        sub: "alice".into(),
        scope: vec!["read".into(), "write".into()],
        roles: vec!["admin".into()],
        issued_at: 1,
        exp,
        max_uses: max,
        extra: Default::default(),
    }
}

pub fn at(token: &str, fam: Option<&str>, client: &str, exp: Option<u64>) -> AccessRecord {
    AccessRecord {
        hash: h(token),
        client_id: client.into(),
        sub: "alice".into(),
        scope: vec!["read".into()],
        roles: vec!["admin".into()],
        aud: vec!["api".into()],
        issued_at: 1,
        exp,
        family_id: fam.map(Into::into),
        client_ip: None,
        extra: Default::default(),
    }
}

/// Several "gateways" in front of one store: for Redis each has its own connection (as separate
/// processes would); for the embedded store they share the one handle a process can have.
pub struct Gateways(pub Vec<Arc<dyn TokenStore>>);

impl Gateways {
    pub fn a(&self) -> &Arc<dyn TokenStore> {
        &self.0[0]
    }
    pub fn b(&self) -> &Arc<dyn TokenStore> {
        &self.0[1 % self.0.len()]
    }
    pub fn nth(&self, i: usize) -> Arc<dyn TokenStore> {
        Arc::clone(&self.0[i % self.0.len()])
    }
}

pub async fn embedded_gateways(n: usize) -> (tempfile::TempDir, Gateways) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn TokenStore> = Arc::new(
        EmbeddedStore::open(dir.path().join("tokens.redb"))
            .await
            .unwrap(),
    );
    (dir, Gateways((0..n).map(|_| Arc::clone(&store)).collect()))
}

/// Start the machine's Redis if nothing answers on 6379 (as .ci/run would).
pub fn ensure_redis() {
    static UP: OnceLock<()> = OnceLock::new();
    UP.get_or_init(|| {
        if std::net::TcpStream::connect("127.0.0.1:6379").is_ok() {
            return;
        }
        let _ = std::process::Command::new("redis-server")
            .args([
                "--daemonize",
                "yes",
                "--bind",
                "127.0.0.1",
                "-::1",
                "--port",
                "6379",
            ])
            .args(["--save", "", "--appendonly", "no"])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect("127.0.0.1:6379").is_err() {
            assert!(Instant::now() < deadline, "no Redis on 127.0.0.1:6379");
            std::thread::sleep(Duration::from_millis(50));
        }
    });
}

/// A unique key prefix on the shared Redis; everything under it is deleted on drop.
pub struct RedisFixture {
    pub url: String,
    pub prefix: String,
}

impl RedisFixture {
    pub fn new(name: &str) -> Self {
        ensure_redis();
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let prefix = format!(
            "tgtest:{}:{}:{}:{}:",
            name,
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            nanos
        );
        RedisFixture {
            url: REDIS_URL.into(),
            prefix,
        }
    }

    pub fn store(&self) -> Arc<dyn TokenStore> {
        Arc::new(RedisStore::connect(&self.url, &self.prefix, Duration::from_secs(2)).unwrap())
    }

    pub fn gateways(&self, n: usize) -> Gateways {
        Gateways((0..n).map(|_| self.store()).collect())
    }

    pub async fn raw(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// Every key under this fixture's prefix (blocking client: also usable from `Drop`).
    pub fn keys(&self) -> Vec<String> {
        let mut c = redis::Client::open(self.url.as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        let mut out = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}*", self.prefix))
                .arg("COUNT")
                .arg(1000)
                .query(&mut c)
                .unwrap();
            out.extend(batch);
            if next == 0 {
                return out;
            }
            cursor = next;
        }
    }

    pub fn cleanup(&self) {
        let keys = self.keys();
        if !keys.is_empty() {
            let mut c = redis::Client::open(self.url.as_str())
                .unwrap()
                .get_connection()
                .unwrap();
            let _: i64 = redis::cmd("DEL").arg(&keys).query(&mut c).unwrap();
        }
    }
}

/// Keys are deleted even when the test fails (a panic unwinds through this).
impl Drop for RedisFixture {
    fn drop(&mut self) {
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.cleanup())).is_err() {
            eprintln!("could not clean Redis keys under {}", self.prefix);
        }
    }
}

/// `both!(name, gateways)`: a module `name` with an `embedded` and a `redis` test that run
/// `conformance::name(Gateways)` with that many gateways.
macro_rules! both {
    ($name:ident, $n:expr) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                let (_dir, g) = super::embedded_gateways($n).await;
                super::conformance::$name(g).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                let fx = super::RedisFixture::new(stringify!($name));
                super::conformance::$name(fx.gateways($n)).await;
            }
        }
    };
}

both!(rotation_and_reuse, 2);
both!(use_count_limit, 2);
both!(use_count_limit_with_rotation, 1);
both!(wrong_client, 1);
both!(expiry, 1);
both!(revoke_refresh_revokes_family_access, 1);
both!(revoke_access_and_tombstones, 1);
both!(jti_replay, 2);
both!(conflicts_change_nothing, 1);
both!(records_round_trip, 1);
both!(concurrent_rotation_one_wins, 5);
both!(concurrent_single_use_one_wins, 5);
both!(concurrent_use_limit_exact, 5);
both!(two_gateways_see_revocation, 2);
both!(health_ok, 1);

/// Throughput of each backend, printed for the record (`cargo test --lib -- --ignored
/// --nocapture store_throughput`). The numbers are not asserted (they depend on the machine);
/// what is asserted is that every requested operation completed with the expected answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run it on a quiet machine"]
async fn store_throughput() {
    async fn run(name: &'static str, g: Gateways) {
        let now = super::now_unix();
        for conc in [1usize, 32] {
            let n = 400usize;
            let t = Instant::now();
            let mut tasks = Vec::new();
            for w in 0..conc {
                let s = g.nth(w);
                tasks.push(tokio::spawn(async move {
                    let mut done = 0usize;
                    for i in (w..n).step_by(conc) {
                        let tok = format!("{conc}-{w}-{i}");
                        s.put_refresh(rt(&tok, &tok, "c1", Some(now + 60), None), now)
                            .await
                            .unwrap();
                        let used = s.use_refresh(&h(&tok), "c1", now, None).await.unwrap();
                        assert!(
                            matches!(used, super::RefreshUse::Used { uses: 1, .. }),
                            "{name} {tok}: {used:?}"
                        );
                        let access = s.get_access(&h(&tok), now).await.unwrap();
                        assert!(access.is_none(), "{name} {tok}: no access token was stored");
                        done += 1;
                    }
                    done
                }));
            }
            let mut done = 0usize;
            for t in tasks {
                done += t.await.unwrap();
            }
            let el = t.elapsed().as_secs_f64();
            assert_eq!(
                done, n,
                "{name} concurrency {conc}: every token went through"
            );
            eprintln!(
                "{name} concurrency {conc}: {:.0} writes/s, {:.0} ops/s (2 writes + 1 read per token)",
                (2 * done) as f64 / el,
                (3 * done) as f64 / el
            );
        }
    }
    let (_d, g) = embedded_gateways(1).await;
    run("embedded", g).await;
    let fx = RedisFixture::new("bench");
    run("redis", fx.gateways(4)).await;
}

/// `store::open` builds the backend a compiled config names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_from_config() {
    use super::{open, StoreConfig};
    let dir = tempfile::tempdir().unwrap();
    let cfg: StoreConfig = serde_json::from_value(serde_json::json!({
        "path": dir.path().join("t.redb"),
        "purge_interval": "1s",
    }))
    .unwrap();
    let s = open(&cfg.compile().unwrap()).await.unwrap();
    assert_eq!(s.kind(), "embedded");
    s.health().await.unwrap();

    ensure_redis();
    let cfg: StoreConfig = serde_json::from_value(serde_json::json!({
        "kind": "redis",
        "url": REDIS_URL,
        "key_prefix": "tgtest:open:",
        "timeout": "1s",
    }))
    .unwrap();
    let s = open(&cfg.compile().unwrap()).await.unwrap();
    assert_eq!(s.kind(), "redis");
    s.health().await.unwrap();
}
