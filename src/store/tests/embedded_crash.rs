//! Embedded store only: persistence across restarts, `kill -9` durability (R17), purge, and
//! the one-process-per-file lock.

use super::{at, h, rt};
use crate::store::embedded::EmbeddedStore;
use crate::store::{now_unix, spawn_purge_task, RefreshUse, Revocation, Rotation, TokenStore};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "TOKENGATE_STORE_CHILD";
const CHILD_TEST: &str = "store::tests::embedded_crash::embedded_kill9_child";
const ROUNDS: usize = 4;
const WORKERS: u32 = 4;

/// Per token index `i` of a round, the child runs: put refresh `a`, put access `at` (same
/// family), rotate `a` -> `b`, and for every third `i` revoke `b` (the family).
fn ops_of(i: u32) -> usize {
    if i % 3 == 0 {
        4
    } else {
        3
    }
}

fn names(round: usize, i: u32) -> (String, String, String, String) {
    (
        format!("r{round}-a-{i}"),
        format!("r{round}-b-{i}"),
        format!("r{round}-at-{i}"),
        format!("r{round}-fam-{i}"),
    )
}

/// The child: [`WORKERS`] concurrent writers (so writes share group commits) each run their
/// own indexes (`i = w, w + WORKERS, …`) until killed, printing `@ack <i> <op>` after each call
/// returned (i.e. after its transaction is durable). Not a test of its own: ignored in a normal
/// run, started by [`run_child`] with `--ignored --exact`, and failing when started without
/// the file to write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the child process of embedded_kill9_durability, which starts it"]
async fn embedded_kill9_child() {
    let arg = std::env::var(CHILD_ENV).unwrap_or_else(|_| {
        panic!("{CHILD_ENV} is not set: this runs only as embedded_kill9_durability's child")
    });
    let (path, round) = arg.rsplit_once('|').unwrap();
    let round: usize = round.parse().unwrap();
    let store = EmbeddedStore::open(PathBuf::from(path)).await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..100_000u32).step_by(WORKERS as usize) {
                child_index(&store, round, i).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

async fn child_index(store: &EmbeddedStore, round: usize, i: u32) {
    let now = now_unix();
    let exp = Some(now + 3600);
    let (a, b, atk, fam) = names(round, i);
    store
        .put_refresh(rt(&a, &fam, "c1", exp, None), now)
        .await
        .unwrap();
    println!("\n@ack {i} 1");
    store
        .put_access(at(&atk, Some(&fam), "c1", exp), now)
        .await
        .unwrap();
    println!("\n@ack {i} 2");
    let next = Rotation {
        hash: h(&b),
        issued_at: now,
        exp,
        scope: None,
    };
    let u = store
        .use_refresh(&h(&a), "c1", now, Some(next))
        .await
        .unwrap();
    assert!(matches!(u, RefreshUse::Used { .. }));
    println!("\n@ack {i} 3");
    if ops_of(i) == 4 {
        let r = store.revoke_refresh(&h(&b), "c1", now).await.unwrap();
        assert_eq!(r, Revocation::Revoked);
        println!("\n@ack {i} 4");
    }
}

/// What the store shows for index `i`: how many of its ops are applied (0..=4).
async fn observed_stage(s: &EmbeddedStore, round: usize, i: u32) -> usize {
    let now = now_unix();
    let (a, b, atk, _) = names(round, i);
    let obs = (
        s.get_refresh(&h(&a), now).await.unwrap().is_some(),
        s.get_access(&h(&atk), now).await.unwrap().is_some(),
        s.get_refresh(&h(&b), now).await.unwrap().is_some(),
        s.is_access_revoked(&h(&atk)).await.unwrap(),
    );
    match obs {
        (false, false, false, false) => 0,
        (true, false, false, false) => 1,
        (true, true, false, false) => 2,
        (false, true, true, false) => 3,
        (false, false, false, true) => 4,
        other => panic!("index {i}: impossible state {other:?} (torn or resurrected)"),
    }
}

/// Run one child round until at least `min_acks` acknowledgements, SIGKILL it, and return
/// the acknowledged stage of every index.
fn run_child(path: &Path, round: usize, min_acks: usize) -> Vec<usize> {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args(["--ignored", "--exact", CHILD_TEST])
        .args(["--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, format!("{}|{round}", path.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<(u32, usize)>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.trim().strip_prefix("@ack ") {
                let mut it = rest.split(' ');
                let i: u32 = it.next().unwrap().parse().unwrap();
                let op: usize = it.next().unwrap().parse().unwrap();
                if tx.send((i, op)).is_err() {
                    break;
                }
            }
        }
    });
    let mut acks = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while acks.len() < min_acks {
        assert!(
            Instant::now() < deadline,
            "child too slow: {} acks",
            acks.len()
        );
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(a) => acks.push(a),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                panic!(
                    "the child ended after {} acks: {:?}",
                    acks.len(),
                    child.wait()
                )
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap();
    acks.extend(rx.try_iter());
    let mut stages: Vec<usize> = Vec::new();
    for (i, op) in acks {
        let i = i as usize;
        if stages.len() <= i {
            stages.resize(i + 1, 0);
        }
        assert_eq!(stages[i] + 1, op, "acks arrive in order");
        stages[i] = op;
    }
    stages
}

/// R17: a child writes and rotates tokens from several tasks, printing an acknowledgement after
/// each call returned, and is SIGKILLed mid-stream, [`ROUNDS`] times on the same file. After
/// each kill: every acknowledged write is there, every acknowledged revocation holds, and each
/// call in flight is all-or-nothing (no refresh token both old and new, nothing half-revoked).
#[test]
fn embedded_kill9_durability() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.redb");
    let rt_ = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut seen: Vec<Vec<usize>> = Vec::new();
    for round in 0..ROUNDS {
        let acked = run_child(&path, round, 60 + 37 * round);
        let total_acks: usize = acked.iter().sum();
        assert!(total_acks >= 60);
        let observed = rt_.block_on(async {
            let s = EmbeddedStore::open(path.clone()).await.unwrap();
            let mut observed = Vec::new();
            // Past the last acknowledged index only in-flight first ops may show.
            for i in 0..acked.len() as u32 + WORKERS + 1 {
                observed.push(observed_stage(&s, round, i).await);
            }
            observed
        });
        let mut in_flight = 0u32;
        for (i, obs) in observed.iter().enumerate() {
            let ack = acked.get(i).copied().unwrap_or(0);
            if *obs == ack {
                continue;
            }
            // A call in flight at the kill (one per worker) may have committed unacknowledged:
            // then its index is exactly one op ahead, never torn.
            assert_eq!(*obs, ack + 1, "index {i}: acked {ack}, found {obs}");
            in_flight += 1;
        }
        assert!(
            in_flight <= WORKERS,
            "at most one call per worker was in flight"
        );
        eprintln!(
            "round {round}: {total_acks} acknowledged calls over {} tokens, in flight committed: {in_flight}",
            acked.len()
        );
        seen.push(observed);
    }
    // Earlier rounds survived the later kills unchanged.
    rt_.block_on(async {
        let s = EmbeddedStore::open(path.clone()).await.unwrap();
        for (round, stages) in seen.iter().enumerate() {
            for (i, st) in stages.iter().enumerate() {
                assert_eq!(observed_stage(&s, round, i as u32).await, *st);
            }
        }
    });
}

/// Restart keeps refresh tokens, use counts and revocations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_reopen_keeps_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/dir/tokens.redb");
    let now = now_unix();
    let exp = Some(now + 600);
    {
        let s = EmbeddedStore::open(path.clone()).await.unwrap();
        s.put_refresh(rt("p1", "famP", "c1", exp, Some(5)), now)
            .await
            .unwrap();
        s.use_refresh(&h("p1"), "c1", now, None).await.unwrap();
        s.put_refresh(rt("p2", "famQ", "c1", exp, None), now)
            .await
            .unwrap();
        s.put_access(at("pa", Some("famQ"), "c1", exp), now)
            .await
            .unwrap();
        s.revoke_refresh(&h("p2"), "c1", now).await.unwrap();
        assert!(s.remember_jti(&h("j"), now + 60, now).await.unwrap());
    }
    let s = EmbeddedStore::open(path).await.unwrap();
    match s.use_refresh(&h("p1"), "c1", now, None).await.unwrap() {
        RefreshUse::Used { uses, .. } => assert_eq!(uses, 2),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        s.use_refresh(&h("p2"), "c1", now, None).await.unwrap(),
        RefreshUse::Revoked
    );
    assert!(s.is_access_revoked(&h("pa")).await.unwrap());
    assert!(!s.remember_jti(&h("j"), now + 60, now).await.unwrap());
}

/// One process per file: a second open is refused (use Redis for several gateways).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_second_open_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.redb");
    let _first = EmbeddedStore::open(path.clone()).await.unwrap();
    let second = EmbeddedStore::open(path).await;
    assert!(second.is_err());
}

/// The purge deletes exactly what expired (tokens, tombstones, jtis, families whose members
/// all expired) and nothing live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_purge_expired() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedStore::open(dir.path().join("t.redb"))
        .await
        .unwrap();
    let now = now_unix();
    let short = Some(now + 10);
    let long = Some(now + 1000);
    s.put_refresh(rt("s1", "famS", "c1", short, None), now)
        .await
        .unwrap();
    s.put_access(at("sa", Some("famS"), "c1", short), now)
        .await
        .unwrap();
    // A family whose first token is short-lived but whose rotation lives long.
    s.put_refresh(rt("l1", "famL", "c1", short, None), now)
        .await
        .unwrap();
    s.use_refresh(
        &h("l1"),
        "c1",
        now,
        Some(Rotation {
            hash: h("l2"),
            issued_at: now,
            exp: long,
            scope: None,
        }),
    )
    .await
    .unwrap();
    s.put_access(at("never", None, "c1", None), now)
        .await
        .unwrap();
    s.revoke_access(&h("jwt"), "c1", short, now).await.unwrap();
    s.remember_jti(&h("jti"), now + 10, now).await.unwrap();

    assert_eq!(s.purge_expired(now).await.unwrap(), 0);
    // s1, sa, famS, l1, jwt tombstone, jti.
    assert_eq!(s.purge_expired(now + 10).await.unwrap(), 6);
    assert_eq!(s.purge_expired(now + 10).await.unwrap(), 0);
    assert!(s.get_refresh(&h("l2"), now + 10).await.unwrap().is_some());
    assert!(s.get_access(&h("never"), now + 10).await.unwrap().is_some());
    assert!(
        !s.is_access_revoked(&h("jwt")).await.unwrap(),
        "tombstone outlived the JWT"
    );
    assert!(s.remember_jti(&h("jti"), now + 70, now + 10).await.unwrap());
    assert_eq!(
        s.use_refresh(&h("s1"), "c1", now, None).await.unwrap(),
        RefreshUse::NotFound
    );
    // l2 and famL at now+1000; the new jti at now+70.
    assert_eq!(s.purge_expired(now + 2000).await.unwrap(), 3);
    assert!(s
        .get_access(&h("never"), now + 2000)
        .await
        .unwrap()
        .is_some());
}

/// Many expired entries are purged across several batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_purge_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    let s = EmbeddedStore::open(dir.path().join("t.redb"))
        .await
        .unwrap();
    let now = now_unix();
    let n = crate::store::embedded::PURGE_BATCH * 2 + 7;
    for i in 0..n {
        assert!(s
            .remember_jti(&h(&format!("j{i}")), now + 1, now)
            .await
            .unwrap());
    }
    assert_eq!(s.purge_expired(now + 1).await.unwrap(), n as u64);
}

/// The background purge runs, and ends once the store is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_task_runs_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let e = EmbeddedStore::open(dir.path().join("t.redb"))
        .await
        .unwrap();
    let now = now_unix();
    e.remember_jti(&h("old"), now - 1, now - 5).await.unwrap();
    assert_eq!(e.expiry_index_len().await, 1);
    let s: Arc<dyn TokenStore> = Arc::new(e.clone());
    let task = spawn_purge_task(&s, Duration::from_millis(20));
    let deadline = Instant::now() + Duration::from_secs(30);
    while e.expiry_index_len().await != 0 {
        assert!(Instant::now() < deadline, "purge task never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(s);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}
