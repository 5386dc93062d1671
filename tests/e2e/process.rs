//! The real binary as a process: SIGHUP reload and graceful upgrade (socket hand-over).

use crate::harness::*;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn spawn(config: &std::path::Path, upgrade: bool) -> Child {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tokengate"));
    c.arg("run").arg("-c").arg(config);
    if upgrade {
        c.arg("-u");
    }
    c.stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn signal(child: &Child, sig: &str) {
    let st = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}

struct Reap(Child);
impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn config(dir: &std::path::Path, port: u16, admin: u16, body: &str) -> String {
    format!(
        r#"
[server]
threads = 1
pid_file = "{d}/tg.pid"
upgrade_sock = "{d}/upgrade.sock"
reload_poll_interval = "0s"
graceful_shutdown_timeout = "2s"
[admin]
listen = "127.0.0.1:{admin}"
[access_log]
enabled = false
[[listeners]]
address = "127.0.0.1:{port}"
[[routes]]
name = "hello"
respond = {{ status = 200, body = "{body}" }}
"#,
        d = dir.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let cfg = dir.path().join("tg.toml");
    std::fs::write(&cfg, config(dir.path(), port, admin, "one")).unwrap();
    let gw = Reap(spawn(&cfg, false));
    eventually("up", || async { get(port, "/").await.status == 200 }).await;
    assert_eq!(&get(port, "/").await.body[..], b"one");
    std::fs::write(&cfg, config(dir.path(), port, admin, "two")).unwrap();
    // Polling is off: nothing changes until SIGHUP.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(&get(port, "/").await.body[..], b"one");
    signal(&gw.0, "HUP");
    eventually("reloaded by SIGHUP", || async {
        &get(port, "/").await.body[..] == b"two"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_upgrade_hands_over_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let cfg_old = dir.path().join("old.toml");
    std::fs::write(&cfg_old, config(dir.path(), port, admin, "old")).unwrap();
    let mut old = Reap(spawn(&cfg_old, false));
    eventually("old up", || async { get(port, "/").await.status == 200 }).await;

    // The new binary waits for the sockets; the admin port moves with a restart-only change.
    let admin2 = free_port();
    let cfg_new = dir.path().join("new.toml");
    std::fs::write(&cfg_new, config(dir.path(), port, admin2, "new")).unwrap();
    let _new = Reap(spawn(&cfg_new, true));
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Keep a stream of requests going across the hand-over: none may fail.
    let load = tokio::spawn(async move {
        let mut seen_new = false;
        let mut failures = 0;
        for _ in 0..400 {
            let r = get(port, "/").await;
            if r.status != 200 {
                failures += 1;
            }
            seen_new |= &r.body[..] == b"new";
            if seen_new {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (failures, seen_new)
    });
    signal(&old.0, "QUIT");
    let (failures, seen_new) = load.await.unwrap();
    assert!(seen_new, "the new process took over");
    assert_eq!(failures, 0, "no request failed during the upgrade");
    let status = tokio::task::spawn_blocking(move || old.0.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(
        status.success() || status.code().is_some(),
        "old process exited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let cfg = dir.path().join("tg.toml");
    std::fs::write(&cfg, config(dir.path(), port, admin, "bye")).unwrap();
    let mut gw = Reap(spawn(&cfg, false));
    eventually("up", || async { get(port, "/").await.status == 200 }).await;
    signal(&gw.0, "TERM");
    let status = tokio::task::spawn_blocking(move || gw.0.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(get(port, "/").await.status, 0, "the listener is closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnects_write_no_error_line() {
    use tokio::io::AsyncWriteExt;
    let up = Upstream::start("up").await;
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let cfg = dir.path().join("tg.toml");
    let text = config(dir.path(), port, admin, "x").replace(
        "[[routes]]\nname = \"hello\"",
        &format!(
            "[upstreams.up]\ntargets = [\"{}\"]\n[[routes]]\nname = \"slow\"\nmatch = {{ path_prefix = \"/slow\" }}\nupstream = \"up\"\n[[routes]]\nname = \"hello\"",
            up.addr
        ),
    );
    std::fs::write(&cfg, text).unwrap();
    let err_path = dir.path().join("stderr.log");
    let child = Command::new(env!("CARGO_BIN_EXE_tokengate"))
        .arg("run")
        .arg("-c")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let mut gw = Reap(child);
    eventually("up", || async { get(port, "/").await.status == 200 }).await;
    // A client that goes away while its request is proxied, and one that leaves mid-head.
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(b"GET /slow?ms=300 HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .unwrap();
    eventually("proxied", || async {
        up.hits.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
    drop(s);
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nhost:").await.unwrap();
    drop(s);
    eventually("the abandoned request is logged", || async {
        let m = get(admin, "/metrics").await;
        String::from_utf8_lossy(&m.body).contains("tokengate_requests_total{route=\"slow\"")
    })
    .await;
    signal(&gw.0, "TERM");
    let _ = gw.0.wait();
    let err = std::fs::read_to_string(&err_path).unwrap();
    assert!(!err.contains("ERROR"), "{err}");
}
