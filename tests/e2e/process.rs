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

/// Two loopback ports for a gateway process: held while it binds them (Pingora sets
/// SO_REUSEADDR), refusing connections until then.
fn ports() -> ([PortReservation; 2], u16, u16) {
    let held = [reserve_port(), reserve_port()];
    let (port, admin) = (held[0].port, held[1].port);
    (held, port, admin)
}

/// Polls until the gateway answers on `port` with 200.
async fn wait_up(port: u16) {
    eventually("up", || async {
        try_get(port, "/").await.is_ok_and(|r| r.status == 200)
    })
    .await;
}

async fn process_generation(admin: u16) -> u64 {
    let st = get(admin, "/admin/config/status").await.json();
    st["generation"].as_u64().unwrap()
}

/// With polling off the changed file is left alone until SIGHUP. "Left alone" is measured
/// against a control gateway that polls every 100 ms: each of its reloads needs a poll of its
/// own, so [`CONTROL_RELOADS`] reloads after the change prove that many poll intervals passed
/// (at least 400 ms) with the file changed under the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_file() {
    const CONTROL_RELOADS: u64 = 5;
    let dir = tempfile::tempdir().unwrap();
    let (_held, port, admin) = ports();
    let cfg = dir.path().join("tg.toml");
    std::fs::write(&cfg, config(dir.path(), port, admin, "one")).unwrap();
    let gw = Reap(spawn(&cfg, false));
    wait_up(port).await;
    assert_eq!(&get(port, "/").await.body[..], b"one");
    let control_body = |text: &str| {
        format!("[[routes]]\nname = \"hello\"\nrespond = {{ status = 200, body = \"{text}\" }}\n")
    };
    let control = Gateway::start(&control_body("c0")).await;
    assert!(
        std::fs::read_to_string(&control.config)
            .unwrap()
            .contains("reload_poll_interval = \"100ms\""),
        "the control polls"
    );
    assert_eq!(process_generation(admin).await, 1);

    std::fs::write(&cfg, config(dir.path(), port, admin, "two")).unwrap();
    for n in 1..=CONTROL_RELOADS {
        control.write_body(&control_body(&format!("c{n}")));
        eventually("the control reloads by polling", || async {
            control.generation() == n + 1
        })
        .await;
    }
    assert_eq!(process_generation(admin).await, 1, "polling is off");
    assert_eq!(&get(port, "/").await.body[..], b"one");

    signal(&gw.0, "HUP");
    eventually("reloaded by SIGHUP", || async {
        &get(port, "/").await.body[..] == b"two"
    })
    .await;
    assert_eq!(process_generation(admin).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_upgrade_hands_over_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let (_held, port, admin) = ports();
    let cfg_old = dir.path().join("old.toml");
    std::fs::write(&cfg_old, config(dir.path(), port, admin, "old")).unwrap();
    let mut old = Reap(spawn(&cfg_old, false));
    wait_up(port).await;

    // The new binary waits for the sockets on the upgrade socket it creates; the admin port
    // moves with a restart-only change.
    let admin2 = reserve_port();
    let cfg_new = dir.path().join("new.toml");
    std::fs::write(&cfg_new, config(dir.path(), port, admin2.port, "new")).unwrap();
    let _new = Reap(spawn(&cfg_new, true));
    let upgrade_sock = dir.path().join("upgrade.sock");
    eventually("the new process waits for the sockets", || async {
        upgrade_sock.exists()
    })
    .await;

    // Keep a stream of requests going across the hand-over: none may fail.
    let load = tokio::spawn(async move {
        let mut seen_new = false;
        let mut failures = 0;
        for _ in 0..400 {
            match try_get(port, "/").await {
                Ok(r) if r.status == 200 => seen_new |= &r.body[..] == b"new",
                Ok(_) | Err(_) => failures += 1,
            }
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
    let (_held, port, admin) = ports();
    let cfg = dir.path().join("tg.toml");
    std::fs::write(&cfg, config(dir.path(), port, admin, "bye")).unwrap();
    let mut gw = Reap(spawn(&cfg, false));
    wait_up(port).await;
    signal(&gw.0, "TERM");
    let status = tokio::task::spawn_blocking(move || gw.0.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    let after = try_get(port, "/").await;
    assert!(
        after.is_err(),
        "the listener is closed: {:?}",
        after.map(|r| r.status)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnects_write_no_error_line() {
    use tokio::io::AsyncWriteExt;
    let up = Upstream::start("up").await;
    let dir = tempfile::tempdir().unwrap();
    let (_held, port, admin) = ports();
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
    wait_up(port).await;
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
