//! Redis store only: fail closed when Redis is down or stalled (R13, R14), recovery after a
//! restart, TTLs that follow token expiry, key-prefix isolation.

use super::{at, h, rt, RedisFixture};
use crate::store::redis::RedisStore;
use crate::store::{now_unix, RefreshUse, Rotation, StoreError, TokenStore};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Generous bound for "fails quickly": the deadline is 300 ms, a hang would be forever.
const BOUND: Duration = Duration::from_secs(5);

/// A loopback port bound with SO_REUSEADDR and never listening: connections to it are refused,
/// no port-0 bind is handed it while it is held, and redis-server (which sets SO_REUSEADDR too)
/// can still bind it, again after a restart.
fn reserve_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind(([127, 0, 0, 1], 0).into()).unwrap();
    let port = socket.local_addr().unwrap().port();
    (socket, port)
}

/// Run every operation against `s` and check each fails with `Unavailable` within [`BOUND`].
async fn all_fail_closed(s: &RedisStore) {
    let now = now_unix();
    let k = h("k");
    let checks: Vec<(&str, Result<(), StoreError>)> = vec![
        ("health", s.health().await),
        (
            "put_access",
            s.put_access(at("k", None, "c1", None), now).await,
        ),
        ("get_access", s.get_access(&k, now).await.map(|_| ())),
        (
            "is_access_revoked",
            s.is_access_revoked(&k).await.map(|_| ()),
        ),
        (
            "revoke_access",
            s.revoke_access(&k, "c1", None, now).await.map(|_| ()),
        ),
        (
            "put_refresh",
            s.put_refresh(rt("k", "f", "c1", None, None), now).await,
        ),
        ("get_refresh", s.get_refresh(&k, now).await.map(|_| ())),
        (
            "use_refresh",
            s.use_refresh(&k, "c1", now, None).await.map(|_| ()),
        ),
        (
            "revoke_refresh",
            s.revoke_refresh(&k, "c1", now).await.map(|_| ()),
        ),
        ("revoke_family", s.revoke_family("f", now).await.map(|_| ())),
        (
            "remember_jti",
            s.remember_jti(&k, now + 5, now).await.map(|_| ()),
        ),
    ];
    for (name, r) in checks {
        match r {
            Err(e) => {
                assert!(e.is_unavailable(), "{name}: {e:?}");
                assert_eq!(e.code(), "store_unavailable");
            }
            Ok(()) => panic!("{name} succeeded against a dead Redis"),
        }
    }
}

/// R13: nothing listens: every call is `Unavailable`, quickly, again and again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_closed_quickly() {
    let (_held, port) = reserve_port();
    let url = format!("redis://127.0.0.1:{port}");
    let s = RedisStore::connect(&url, "down:", Duration::from_millis(300)).unwrap();
    for _ in 0..3 {
        let t = Instant::now();
        all_fail_closed(&s).await;
        assert!(t.elapsed() < BOUND * 11, "took {:?}", t.elapsed());
    }
    let t = Instant::now();
    assert!(s.health().await.is_err());
    assert!(t.elapsed() < BOUND);
}

/// R14: a server that accepts connections but never answers: deadline, not a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stalled_server_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = listener.accept().await {
            conns.push(c); // read nothing, answer nothing
        }
    });
    let url = format!("redis://127.0.0.1:{port}");
    let s = RedisStore::connect(&url, "stall:", Duration::from_millis(300)).unwrap();
    for _ in 0..3 {
        let t = Instant::now();
        let r = s.use_refresh(&h("x"), "c1", now_unix(), None).await;
        assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
        assert!(t.elapsed() < BOUND, "took {:?}", t.elapsed());
    }
    hold.abort();
}

/// A malformed URL, or no Tokio runtime, is a configuration error at build time (no panic).
#[test]
fn redis_bad_url_is_config_error() {
    let r = RedisStore::connect("http://nope", "p:", Duration::from_millis(100));
    assert!(matches!(r, Err(StoreError::Config(_))));
    let r = RedisStore::connect(super::REDIS_URL, "p:", Duration::from_millis(100));
    assert!(matches!(r, Err(StoreError::Config(_))), "outside a runtime");
}

struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server installed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        RedisServer {
            port,
            child: Some(child),
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Redis stopped: fail closed; Redis back: the same store object works again (it reconnects,
/// and reloads its scripts into the fresh server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_recovers_after_restart() {
    let (_held, port) = reserve_port();
    let mut server = RedisServer::start(port);
    let url = format!("redis://127.0.0.1:{}", server.port);
    let s = RedisStore::connect(&url, "rec:", Duration::from_millis(300)).unwrap();
    let now = now_unix();
    let exp = Some(now + 600);
    s.put_refresh(rt("before", "fb", "c1", exp, None), now)
        .await
        .unwrap();
    assert!(matches!(
        s.use_refresh(&h("before"), "c1", now, None).await.unwrap(),
        RefreshUse::Used { .. }
    ));

    server.stop();
    for _ in 0..2 {
        let t = Instant::now();
        let r = s.use_refresh(&h("before"), "c1", now, None).await;
        assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
        assert!(t.elapsed() < BOUND);
        let r = s.get_access(&h("whatever"), now).await;
        assert!(
            matches!(r, Err(StoreError::Unavailable(_))),
            "never 'inactive' by mistake"
        );
    }

    let _server = RedisServer::start(port);
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.health().await.is_err() {
        assert!(Instant::now() < deadline, "store did not recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The fresh server has no data and no scripts: EVALSHA falls back to EVAL.
    s.put_refresh(rt("after", "fa", "c1", exp, None), now)
        .await
        .unwrap();
    let next = Rotation {
        hash: h("after2"),
        issued_at: now,
        exp,
        scope: None,
    };
    assert!(matches!(
        s.use_refresh(&h("after"), "c1", now, Some(next))
            .await
            .unwrap(),
        RefreshUse::Used { .. }
    ));
    assert_eq!(
        s.use_refresh(&h("after"), "c1", now, None).await.unwrap(),
        RefreshUse::Reused
    );
}

async fn ttl(fx: &RedisFixture, key: &str) -> i64 {
    let mut c = fx.raw().await;
    redis::cmd("TTL")
        .arg(format!("{}{key}", fx.prefix))
        .query_async(&mut c)
        .await
        .unwrap()
}

/// Keys carry TTL = token expiry; a family's TTL grows to cover its longest member; tokens that
/// never expire have no TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_ttls_follow_expiry() {
    let fx = RedisFixture::new("ttl");
    let s = fx.store();
    let now = now_unix();
    s.put_refresh(rt("t1", "famT", "c1", Some(now + 100), None), now)
        .await
        .unwrap();
    s.put_access(at("ta", Some("famT"), "c1", Some(now + 50)), now)
        .await
        .unwrap();
    s.remember_jti(&h("tj"), now + 30, now).await.unwrap();
    let rt_key = format!("rt:{}", h("t1").to_hex());
    let at_key = format!("at:{}", h("ta").to_hex());
    let jti_key = format!("jti:{}", h("tj").to_hex());
    assert!((95..=100).contains(&ttl(&fx, &rt_key).await));
    assert!((45..=50).contains(&ttl(&fx, &at_key).await));
    assert!((25..=30).contains(&ttl(&fx, &jti_key).await));
    assert!((95..=100).contains(&ttl(&fx, "fam:famT").await));
    let next = Rotation {
        hash: h("t2"),
        issued_at: now,
        exp: Some(now + 1000),
        scope: None,
    };
    s.use_refresh(&h("t1"), "c1", now, Some(next))
        .await
        .unwrap();
    assert!((995..=1000).contains(&ttl(&fx, "fam:famT").await));
    assert!(
        (95..=100).contains(&ttl(&fx, &rt_key).await),
        "rotated-out keeps its own TTL"
    );
    s.put_access(at("forever", Some("famT"), "c1", None), now)
        .await
        .unwrap();
    assert_eq!(
        ttl(&fx, "fam:famT").await,
        -1,
        "a never-expiring member makes the family permanent"
    );
    fx.cleanup();
    assert!(fx.keys().is_empty());
}

/// Two prefixes on one Redis never see each other's tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_prefixes_isolate() {
    let (fa, fb) = (RedisFixture::new("isoA"), RedisFixture::new("isoB"));
    let (a, b) = (fa.store(), fb.store());
    let now = now_unix();
    a.put_refresh(rt("same", "fam", "c1", Some(now + 60), None), now)
        .await
        .unwrap();
    assert!(b.get_refresh(&h("same"), now).await.unwrap().is_none());
    b.put_refresh(rt("same", "fam", "c1", Some(now + 60), None), now)
        .await
        .unwrap();
    assert!(a.revoke_family("fam", now).await.unwrap());
    assert!(b.get_refresh(&h("same"), now).await.unwrap().is_some());
}
