//! Identity sources behind the password grant, against real servers: OpenLDAP (Debian's
//! slapd, started here in a temp dir by tests/fixtures/slapd.sh), PostgreSQL and MariaDB
//! (the machine's, on 127.0.0.1:5432 and :3306), an SQLite file, and a loopback HTTP API.
//! For each: the right password gives a token whose roles jwt_auth forwards, a wrong password
//! and an unknown user give invalid_grant, injection-looking usernames are plain data, and a
//! source that is down or too slow gives 503 temporarily_unavailable and shows in /readyz.

use crate::harness::*;
use crate::token::{api, hash, password, refresh};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use sqlx::Connection as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

// Hashes made by independent implementations (Python's argon2-cffi, bcrypt, hashlib.scrypt).
const ALICE_ARGON2: &str = "$argon2id$v=19$m=1024,t=2,p=1$TOl/4uQ47Om7JfB9nP9Y+w$GUVBcqX7INH2DEjYcnhaZaCUnsC0kpMIgA7K7rpWbLI";
const BOB_BCRYPT: &str = "$2b$04$/SBZBwJ/WMZg9qZPGqcxKe.KAcqsPHCdhOO2PPsX9Qgm5EPcJKI/i";
const ALICE_SCRYPT: &str =
    "$scrypt$ln=10,r=8,p=1$ErJPM8efFFvxLwD1Kkh0gQ$RTaCZcla6w0QmVht9BNvY1GkeF1oqkPB3+j4hdI1Y2I";
const BOB_ARGON2I: &str = "$argon2i$v=19$m=1024,t=2,p=1$Jxm72Sajp9T+njXwNTtR/Q$ZYSz7zmIHd4a+ofmVkivHzgSR/xpieWNhl0gjWph+FA";
const ALICE_BCRYPT_2Y: &str = "$2y$04$zU6kD.muRb0JMhGpCtF5eepFWXLP4QkKBeFey6hadEad5k6oUjjty";

/// Usernames that would widen a query or filter if spliced into it.
const HOSTILE: [&str; 6] = [
    "*)(uid=*",
    "*",
    "alice)(|(uid=*",
    "' OR 1=1 --",
    "alice' --",
    "alice\"; DROP TABLE x; --",
];

/// A gateway whose clients each use one identity source: `(client_id, source)`.
fn gateway_config(
    dir: &Path,
    upstream: SocketAddr,
    clients: &[(&str, &str)],
    sources: &str,
) -> String {
    let mut s = format!(
        r#"
[upstreams.u]
targets = ["{upstream}"]

[[routes]]
name = "adm"
match = {{ path_prefix = "/adm" }}
upstream = "u"
policies = [{{ type = "jwt_auth", roles = ["admin"], user_header = "X-User", roles_header = "X-Roles" }}]

[[routes]]
name = "api"
match = {{ path_prefix = "/api" }}
upstream = "u"
policies = [{{ type = "jwt_auth", user_header = "X-User", roles_header = "X-Roles" }}]

[token_service]
issuer = "https://issuer.test"
require_tls = false
signing_alg = "ES256"
key_dir = "{d}/keys"
backoff = {{ max_failures = 1000 }}

[token_service.store]
path = "{d}/tokens.redb"
"#,
        d = dir.display()
    );
    for (id, src) in clients {
        s.push_str(&format!(
            r#"
[[token_service.clients]]
client_id = "{id}"
secret_hash = "{h}"
grants = ["password", "refresh_token"]
scopes = ["read"]
audience = ["api"]
identity_source = "{src}"
"#,
            h = hash(&format!("{id}-secret"))
        ));
    }
    s.push_str(sources);
    s
}

struct World {
    gw: Gateway,
    _up: Upstream,
    _dir: tempfile::TempDir,
}

async fn world(clients: &[(&str, &str)], sources: &str) -> World {
    let up = Upstream::start("u").await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(&gateway_config(dir.path(), up.addr, clients, sources)).await;
    World {
        gw,
        _up: up,
        _dir: dir,
    }
}

fn secret(id: &str) -> String {
    format!("{id}-secret")
}

fn assert_error(r: &Resp, status: u16, error: &str) {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error"], error);
}

/// The roles and user the upstream saw for a token on `path`.
async fn seen(port: u16, path: &str, token: &str) -> (u16, Value) {
    let r = api(port, "GET", path, token).await;
    let h = if r.status == 200 {
        r.json()["headers"].clone()
    } else {
        Value::Null
    };
    (r.status, h)
}

/// A counter's value from /metrics (0 when absent).
pub async fn metric(admin: u16, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = String::from_utf8(get(admin, "/metrics").await.body.to_vec()).unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// What a source must do beyond the standard checks: the subject it gives a user (`sub` may
/// differ from the username), and a user with an injection-looking name that exists with its
/// own password (it must log in as itself, and only with that password).
struct Expect<'a> {
    sub_prefix: &'a str,
    hostile_user: Option<(&'a str, &'a str)>,
}

const PLAIN: Expect = Expect {
    sub_prefix: "",
    hostile_user: None,
};

/// What every source must do. `alice` (admin, user) and `bob` (user) exist with passwords
/// alice-pw / bob-pw.
async fn standard_checks(w: &World, client: &str, source: &str, e: Expect<'_>) {
    let p = w.gw.port;
    let cs = secret(client);
    let c = (client, cs.as_str());
    let r = password(p, c, "alice", "alice-pw", None).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let t = r.json();
    let at = t["access_token"].as_str().unwrap().to_string();
    let (st, h) = seen(p, "/adm/x", &at).await;
    assert_eq!(st, 200, "alice is admin");
    assert_eq!(h["x-user"][0], format!("{}alice", e.sub_prefix));
    let roles: Vec<&str> = h["x-roles"][0].as_str().unwrap().split(',').collect();
    assert!(
        roles.contains(&"admin") && roles.contains(&"user"),
        "{roles:?}"
    );

    let r = password(p, c, "bob", "bob-pw", None).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let bt = r.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(seen(p, "/adm/x", &bt).await.0, 403, "bob is not admin");
    let (st, h) = seen(p, "/api/x", &bt).await;
    assert_eq!(st, 200);
    assert_eq!(h["x-roles"][0], "user");

    // Wrong password, unknown user: the same invalid_grant. An empty password is an omitted
    // one (RFC 6749 §3.1): invalid_request, before any source is asked.
    for (u, pw) in [
        ("alice", "bob-pw"),
        ("alice", "Alice-pw"),
        ("nobody", "alice-pw"),
    ] {
        assert_error(&password(p, c, u, pw, None).await, 400, "invalid_grant");
    }
    assert_error(
        &password(p, c, "alice", "", None).await,
        400,
        "invalid_request",
    );
    // Injection-looking usernames are data: none logs in as alice.
    for u in HOSTILE {
        assert_error(
            &password(p, c, u, "alice-pw", None).await,
            400,
            "invalid_grant",
        );
    }
    if let Some((u, pw)) = e.hostile_user {
        let r = password(p, c, u, pw, None).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let (st, h) = seen(p, "/api/x", r.json()["access_token"].as_str().unwrap()).await;
        assert_eq!(st, 200);
        assert_eq!(h["x-user"][0], format!("{}{u}", e.sub_prefix));
        assert_eq!(h["x-roles"][0], "user", "its own roles, not alice's");
    }
    // A refresh checks the user is still there (looked up by username, whatever `sub` is).
    let rt = t["refresh_token"].as_str().unwrap();
    let r = refresh(p, c, rt, None).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let at2 = r.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(seen(p, "/adm/x", &at2).await.0, 200);

    let a = w.gw.admin_port;
    assert!(
        metric(
            a,
            "tokengate_identity_lookups_total",
            &[("source", source), ("outcome", "accepted")]
        )
        .await
            >= 2.0
    );
    assert!(
        metric(
            a,
            "tokengate_identity_lookups_total",
            &[("source", source), ("outcome", "rejected")]
        )
        .await
            >= 4.0
    );
}

/// A source that cannot answer: 503 temporarily_unavailable (never 401/400), listed as
/// degraded by /readyz, counted as an error or a timeout.
/// `outcome`: "timeout" for a hung source; "error" accepts an error or a timeout (a refused
/// connection may be retried by a pool until its timeout).
async fn unavailable_checks(w: &World, client: &str, source: &str, outcome: &str) {
    let p = w.gw.port;
    let cs = secret(client);
    let r = password(p, (client, cs.as_str()), "alice", "alice-pw", None).await;
    assert_error(&r, 503, "temporarily_unavailable");
    let ready = get(w.gw.admin_port, "/readyz").await.json();
    let want = format!("identity:{source}");
    assert!(
        ready["degraded"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d == want.as_str()),
        "{ready}"
    );
    let a = w.gw.admin_port;
    let name = "tokengate_identity_lookups_total";
    let timeouts = metric(a, name, &[("source", source), ("outcome", "timeout")]).await;
    let errors = metric(a, name, &[("source", source), ("outcome", "error")]).await;
    let n = if outcome == "timeout" {
        timeouts
    } else {
        errors + timeouts
    };
    assert!(n >= 1.0, "{source}: {outcome}");
    assert_eq!(
        metric(
            w.gw.admin_port,
            "tokengate_identity_up",
            &[("source", source)]
        )
        .await,
        0.0
    );
}

/// A TCP listener that accepts and never answers (a hung server).
async fn blackhole() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let h = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    (addr, h)
}

// ---------------------------------------------------------------- LDAP

struct Slapd {
    dir: tempfile::TempDir,
    port: u16,
    tls_port: u16,
    /// Held while slapd binds them (it sets SO_REUSEADDR) and for as long as it runs.
    _ports: [PortReservation; 2],
}

impl Slapd {
    fn start() -> Slapd {
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let ports = [reserve_port(), reserve_port()];
            let (port, tls_port) = (ports[0].port, ports[1].port);
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/slapd.sh");
            let out = std::process::Command::new("bash")
                .arg(script)
                .arg(dir.path())
                .arg(port.to_string())
                .arg(tls_port.to_string())
                .output()
                .unwrap();
            if out.status.success() {
                return Slapd {
                    dir,
                    port,
                    tls_port,
                    _ports: ports,
                };
            }
            eprintln!("slapd.sh: {}", String::from_utf8_lossy(&out.stderr));
        }
        panic!("slapd did not start");
    }

    fn ca(&self) -> String {
        self.dir.path().join("ca.pem").display().to_string()
    }

    /// Stops slapd and waits (bounded) until its process has exited, so that every connection
    /// it had is closed.
    async fn stop(self) {
        let pid = std::fs::read_to_string(self.dir.path().join("slapd.pid")).unwrap();
        let proc_dir = format!("/proc/{}", pid.trim());
        drop(self);
        // Exited: gone, or a zombie nobody has reaped yet (state Z).
        eventually("slapd exited", || async {
            std::fs::read_to_string(format!("{proc_dir}/stat")).map_or(true, |stat| {
                stat.rsplit_once(") ")
                    .is_some_and(|(_, rest)| rest.starts_with('Z'))
            })
        })
        .await;
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("slapd.pid")) {
            let _ = std::process::Command::new("kill").arg(pid.trim()).status();
        }
    }
}

fn ldap_source(name: &str, url: &str, extra: &str) -> String {
    format!(
        r#"
[[token_service.identity_sources]]
name = "{name}"
timeout = "1s"
[token_service.identity_sources.ldap]
url = "{url}"
bind_dn = "cn=gateway,dc=example,dc=org"
bind_password = "gateway-pw"
user_base = "ou=people,dc=example,dc=org"
role_map = {{ "gw-admins" = "admin", "gw-users" = "user" }}
{extra}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldap_bind_search_bind_with_groups_tls_and_failures() {
    let ldap = Slapd::start();
    let (hole, _h) = blackhole().await;
    // Held, never listening: connections to it are refused.
    let dead_port = reserve_port();
    let dead = dead_port.port;
    let ca = ldap.ca();
    let sources = [
        ldap_source(
            "corp",
            &format!("ldap://127.0.0.1:{}", ldap.port),
            "group_base = \"ou=groups,dc=example,dc=org\"",
        ),
        ldap_source(
            "corp_tls",
            &format!("ldaps://127.0.0.1:{}", ldap.tls_port),
            &format!("ca_file = \"{ca}\"\nmember_of_attribute = \"memberOf\""),
        ),
        ldap_source(
            "corp_starttls",
            &format!("ldap://localhost:{}", ldap.port),
            &format!("starttls = true\nca_file = \"{ca}\"\nmember_of_attribute = \"memberOf\"\nsubject_attribute = \"mail\""),
        ),
        ldap_source("dead", &format!("ldap://127.0.0.1:{dead}"), ""),
        ldap_source("hung", &format!("ldap://127.0.0.1:{}", hole.port()), ""),
        // LDAPS to a server whose certificate this CA did not sign.
        ldap_source(
            "untrusted",
            &format!("ldaps://127.0.0.1:{}", ldap.tls_port),
            "",
        ),
    ]
    .concat();
    let w = world(
        &[
            ("app", "corp"),
            ("app_tls", "corp_tls"),
            ("app_st", "corp_starttls"),
            ("app_dead", "dead"),
            ("app_hung", "hung"),
            ("app_untrusted", "untrusted"),
        ],
        &sources,
    )
    .await;
    standard_checks(&w, "app", "corp", PLAIN).await;
    standard_checks(&w, "app_tls", "corp_tls", PLAIN).await;

    let p = w.gw.port;
    // StartTLS, with the subject taken from the entry's mail attribute.
    let r = password(p, ("app_st", "app_st-secret"), "alice", "alice-pw", None).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let at = r.json()["access_token"].as_str().unwrap().to_string();
    let (st, h) = seen(p, "/adm/x", &at).await;
    assert_eq!(st, 200);
    assert_eq!(h["x-user"][0], "alice@example.org");
    // Its refresh finds the user by name, not by that subject.
    let rt = r.json()["refresh_token"].as_str().unwrap().to_string();
    let r = refresh(p, ("app_st", "app_st-secret"), &rt, None).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let (st, h) = seen(p, "/adm/x", r.json()["access_token"].as_str().unwrap()).await;
    assert_eq!(
        (st, h["x-user"][0].as_str()),
        (200, Some("alice@example.org"))
    );
    // Another spelling of the name logs in to the same account and gets the entry's uid.
    let r = password(p, ("app", "app-secret"), " ALICE", "alice-pw", None).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let (_, h) = seen(p, "/api/x", r.json()["access_token"].as_str().unwrap()).await;
    assert_eq!(h["x-user"][0], "alice");

    // The user whose uid is literally `*)(uid=*` logs in as itself, and only with its own
    // password: the filter matched exactly one entry.
    let r = password(p, ("app", "app-secret"), "*)(uid=*", "star-pw", None).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let at = r.json()["access_token"].as_str().unwrap().to_string();
    let (st, h) = seen(p, "/api/x", &at).await;
    assert_eq!(st, 200);
    assert_eq!(h["x-user"][0], "*)(uid=*");
    assert!(
        h["x-roles"].is_null() || h["x-roles"][0] == "",
        "no groups: {h}"
    );

    // The cache: repeated logins of one pair reach LDAP once.
    let before = metric(
        w.gw.admin_port,
        "tokengate_identity_cache_hits_total",
        &[("source", "corp")],
    )
    .await;
    for _ in 0..5 {
        assert_eq!(
            password(p, ("app", "app-secret"), "bob", "bob-pw", None)
                .await
                .status,
            200
        );
    }
    let after = metric(
        w.gw.admin_port,
        "tokengate_identity_cache_hits_total",
        &[("source", "corp")],
    )
    .await;
    assert!(after - before >= 5.0, "{before} -> {after}");

    unavailable_checks(&w, "app_dead", "dead", "error").await;
    unavailable_checks(&w, "app_hung", "hung", "timeout").await;
    unavailable_checks(&w, "app_untrusted", "untrusted", "error").await;
    // Healthy sources are not listed.
    let ready = get(w.gw.admin_port, "/readyz").await.json();
    assert_eq!(ready["ready"], true, "{ready}");
    assert!(
        !ready["degraded"].to_string().contains("identity:corp\""),
        "{ready}"
    );

    // LDAP going away after logins: 503, then back when it is back is the same code path
    // as "dead"; here the running server is stopped and the pooled connections fail.
    ldap.stop().await;
    let r = password(p, ("app", "app-secret"), "alice", "not-cached-pw", None).await;
    assert_error(&r, 503, "temporarily_unavailable");
}

// ---------------------------------------------------------------- databases

fn unique_table(prefix: &str) -> String {
    let mut b = [0u8; 4];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    format!("{prefix}_{}", hex(&b))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn db_source(name: &str, url: &str, query: &str, extra: &str, timeout: &str) -> String {
    format!(
        r#"
[[token_service.identity_sources]]
name = "{name}"
timeout = "{timeout}"
[token_service.identity_sources.database]
url = "{url}"
query = "{query}"
{extra}
"#
    )
}

/// The users as rows (username, hash, roles text) for every database.
fn rows() -> Vec<(String, String, String)> {
    vec![
        ("alice".into(), ALICE_ARGON2.into(), "admin,user".into()),
        ("bob".into(), BOB_BCRYPT.into(), "user".into()),
        // A hostile name as data, with alice's password: it is its own user, not alice.
        ("' OR 1=1 --".into(), BOB_BCRYPT.into(), "user".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_source() {
    let url = "postgres://postgres@127.0.0.1:5432/test";
    let t = unique_table("tg_users");
    let mut c = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query(&format!(
        "CREATE TABLE {t} (username text PRIMARY KEY, password_hash text, roles text[], enabled boolean DEFAULT true)"
    ))
    .execute(&mut c)
    .await
    .unwrap();
    for (u, h, r) in rows() {
        sqlx::query(&format!("INSERT INTO {t} (username, password_hash, roles) VALUES ($1, $2, string_to_array($3, ','))"))
            .bind(u)
            .bind(h)
            .bind(r)
            .execute(&mut c)
            .await
            .unwrap();
    }
    let (hole, _h) = blackhole().await;
    let dead = reserve_port();
    let q = format!("SELECT password_hash, array_to_string(roles, ',') AS roles FROM {t} WHERE username = $1 AND enabled");
    let sources = [
        db_source("pg", url, &q, "", "2s"),
        db_source("pg_dead", &format!("postgres://postgres@127.0.0.1:{}/test", dead.port), &q, "", "1s"),
        db_source("pg_hung", &format!("postgres://postgres@127.0.0.1:{}/test", hole.port()), &q, "", "300ms"),
        // A slow query, on a live server.
        db_source("pg_slow", url, &format!("SELECT password_hash, roles::text AS roles FROM {t}, pg_sleep(3) WHERE username = $1"), "", "300ms"),
    ]
    .concat();
    let w = world(
        &[
            ("app", "pg"),
            ("d", "pg_dead"),
            ("h", "pg_hung"),
            ("s", "pg_slow"),
        ],
        &sources,
    )
    .await;
    standard_checks(
        &w,
        "app",
        "pg",
        Expect {
            sub_prefix: "",
            hostile_user: Some(("' OR 1=1 --", "bob-pw")),
        },
    )
    .await;
    // Disabling the user in the database ends its refreshes.
    let p = w.gw.port;
    let r = password(p, ("app", "app-secret"), "bob", "bob-pw", None)
        .await
        .json();
    sqlx::query(&format!(
        "UPDATE {t} SET enabled = false WHERE username = 'bob'"
    ))
    .execute(&mut c)
    .await
    .unwrap();
    let at = r["access_token"].as_str().unwrap();
    assert_eq!(seen(p, "/api/x", at).await.0, 200);
    let rr = refresh(
        p,
        ("app", "app-secret"),
        r["refresh_token"].as_str().unwrap(),
        None,
    )
    .await;
    assert_error(&rr, 400, "invalid_grant");
    // The whole grant is revoked, its access token too (a name re-created later inherits
    // nothing).
    let api_r = api(p, "GET", "/api/x", at).await;
    assert_eq!(
        api_r.status,
        401,
        "{}",
        String::from_utf8_lossy(&api_r.body)
    );
    unavailable_checks(&w, "d", "pg_dead", "error").await;
    unavailable_checks(&w, "h", "pg_hung", "timeout").await;
    unavailable_checks(&w, "s", "pg_slow", "timeout").await;
    sqlx::query(&format!("DROP TABLE {t}"))
        .execute(&mut c)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_source_with_a_roles_query() {
    let url = "mysql://root@127.0.0.1:3306/test";
    let (t, tr) = (unique_table("tg_users"), unique_table("tg_roles"));
    let mut c = sqlx::MySqlConnection::connect(url).await.unwrap();
    sqlx::query(&format!(
        // latin1, as many older schemas are: a username it cannot hold is an error there.
        "CREATE TABLE {t} (username VARCHAR(255) PRIMARY KEY, pw VARCHAR(255)) CHARACTER SET latin1"
    ))
    .execute(&mut c)
    .await
    .unwrap();
    sqlx::query(&format!(
        "CREATE TABLE {tr} (username VARCHAR(255), role VARCHAR(64))"
    ))
    .execute(&mut c)
    .await
    .unwrap();
    let users = [
        ("alice", ALICE_SCRYPT.to_string()),
        ("bob", BOB_ARGON2I.to_string()),
        ("' OR 1=1 --", hash("x")),
    ];
    for (u, h) in users {
        sqlx::query(&format!("INSERT INTO {t} VALUES (?, ?)"))
            .bind(u)
            .bind(h)
            .execute(&mut c)
            .await
            .unwrap();
    }
    for (u, r) in [
        ("alice", "admin"),
        ("alice", "user"),
        ("bob", "user"),
        ("' OR 1=1 --", "user"),
    ] {
        sqlx::query(&format!("INSERT INTO {tr} VALUES (?, ?)"))
            .bind(u)
            .bind(r)
            .execute(&mut c)
            .await
            .unwrap();
    }
    let (hole, _h) = blackhole().await;
    let dead = reserve_port();
    let q = format!("SELECT pw AS password_hash FROM {t} WHERE username = ?");
    let rq = format!("roles_query = \"SELECT role FROM {tr} WHERE username = ?\"");
    let sources = [
        db_source("maria", "mariadb://root@127.0.0.1:3306/test", &q, &rq, "2s"),
        db_source(
            "maria_dead",
            &format!("mysql://root@127.0.0.1:{}/test", dead.port),
            &q,
            "",
            "1s",
        ),
        db_source(
            "maria_hung",
            &format!("mysql://root@127.0.0.1:{}/test", hole.port()),
            &q,
            "",
            "300ms",
        ),
        db_source(
            "maria_slow",
            url,
            &format!("SELECT pw AS password_hash, SLEEP(3) AS s FROM {t} WHERE username = ?"),
            "",
            "300ms",
        ),
    ]
    .concat();
    let w = world(
        &[
            ("app", "maria"),
            ("d", "maria_dead"),
            ("h", "maria_hung"),
            ("s", "maria_slow"),
        ],
        &sources,
    )
    .await;
    standard_checks(
        &w,
        "app",
        "maria",
        Expect {
            sub_prefix: "",
            hostile_user: Some(("' OR 1=1 --", "x")),
        },
    )
    .await;
    // A username the table's charset cannot hold makes MariaDB fail the query (1267): a
    // rejection, not an outage anyone could cause.
    let r = password(
        w.gw.port,
        ("app", "app-secret"),
        "alice\u{1F600}",
        "alice-pw",
        None,
    )
    .await;
    assert_error(&r, 400, "invalid_grant");
    let a = w.gw.admin_port;
    let errors = metric(
        a,
        "tokengate_identity_lookups_total",
        &[("source", "maria"), ("outcome", "error")],
    )
    .await;
    assert_eq!(errors, 0.0);
    assert_eq!(
        metric(a, "tokengate_identity_up", &[("source", "maria")]).await,
        1.0
    );
    unavailable_checks(&w, "d", "maria_dead", "error").await;
    unavailable_checks(&w, "h", "maria_hung", "timeout").await;
    unavailable_checks(&w, "s", "maria_slow", "timeout").await;
    for x in [t, tr] {
        sqlx::query(&format!("DROP TABLE {x}"))
            .execute(&mut c)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_source() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.db");
    let rw = format!("sqlite://{}?mode=rwc", file.display());
    let mut c = sqlx::SqliteConnection::connect(&rw).await.unwrap();
    sqlx::query(
        "CREATE TABLE users (username TEXT PRIMARY KEY, password_hash TEXT, roles TEXT, sub TEXT)",
    )
    .execute(&mut c)
    .await
    .unwrap();
    let users = [
        ("alice", ALICE_BCRYPT_2Y.to_string(), "admin user"),
        ("bob", hash("bob-pw"), "user"),
        ("' OR 1=1 --", hash("x"), "user"),
    ];
    // `sub` differs from the username: refreshes must look users up by name.
    for (u, h, r) in users {
        sqlx::query("INSERT INTO users VALUES (?, ?, ?, ?)")
            .bind(u)
            .bind(h)
            .bind(r)
            .bind(format!("id-{u}"))
            .execute(&mut c)
            .await
            .unwrap();
    }
    let ro = format!("sqlite://{}?mode=ro", file.display());
    let q = "SELECT password_hash, roles, sub AS subject FROM users WHERE username = ?";
    let sources = [
        db_source("lite", &ro, q, "roles_separator = \" \"", "2s"),
        db_source(
            "lite_missing",
            &format!("sqlite://{}/nope.db?mode=ro", dir.path().display()),
            q,
            "",
            "1s",
        ),
        db_source("lite_locked", &ro, q, "", "300ms"),
    ]
    .concat();
    let w = world(
        &[("app", "lite"), ("m", "lite_missing"), ("l", "lite_locked")],
        &sources,
    )
    .await;
    standard_checks(
        &w,
        "app",
        "lite",
        Expect {
            sub_prefix: "id-",
            hostile_user: Some(("' OR 1=1 --", "x")),
        },
    )
    .await;
    // The name now belongs to another account (another subject): the old grant ends.
    let p = w.gw.port;
    let t = password(p, ("app", "app-secret"), "bob", "bob-pw", None)
        .await
        .json();
    let at = t["access_token"].as_str().unwrap();
    sqlx::query("UPDATE users SET sub = 'id-bob-the-second' WHERE username = 'bob'")
        .execute(&mut c)
        .await
        .unwrap();
    let r = refresh(
        p,
        ("app", "app-secret"),
        t["refresh_token"].as_str().unwrap(),
        None,
    )
    .await;
    assert_error(&r, 400, "invalid_grant");
    assert_eq!(
        api(p, "GET", "/api/x", at).await.status,
        401,
        "revoked with its grant"
    );
    unavailable_checks(&w, "m", "lite_missing", "error").await;
    // A writer holding an exclusive lock: readers wait, past the timeout.
    sqlx::query("PRAGMA journal_mode = DELETE")
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut c)
        .await
        .unwrap();
    unavailable_checks(&w, "l", "lite_locked", "timeout").await;
    sqlx::query("ROLLBACK").execute(&mut c).await.unwrap();
}

// ---------------------------------------------------------------- HTTP API

/// A loopback identity API: `POST /login` with JSON {username, password}; `/refresh` with
/// {username}; `/slow` never answers in time; `/broken` answers 500. Records bodies.
struct IdApi {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    bodies: Arc<Mutex<Vec<Value>>>,
}

async fn id_api() -> IdApi {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let (h, b) = (hits.clone(), bodies.clone());
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let (h, b) = (h.clone(), b.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (h, b) = (h.clone(), b.clone());
                    async move { Ok::<_, hyper::Error>(id_answer(req, &h, &b).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    IdApi { addr, hits, bodies }
}

async fn id_answer(
    req: Request<Incoming>,
    hits: &AtomicUsize,
    bodies: &Mutex<Vec<Value>>,
) -> Response<Full<Bytes>> {
    hits.fetch_add(1, Ordering::SeqCst);
    let path = req.uri().path().to_string();
    let tenant = req
        .headers()
        .get("x-tenant")
        .map(|v| v.to_str().unwrap().to_string());
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    bodies.lock().unwrap().push(v.clone());
    let reply = |status: u16, v: Value| {
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(v.to_string())))
            .unwrap()
    };
    if tenant.as_deref() != Some("acme") {
        return reply(400, json!({"error": "no tenant"}));
    }
    let user = v["username"].as_str().unwrap_or_default().to_string();
    let roles = match user.as_str() {
        "alice" => json!(["admin", "user"]),
        "bob" => json!("user"),
        "bob-slow" => {
            tokio::time::sleep(Duration::from_millis(200)).await;
            json!("user")
        }
        _ => Value::Null,
    };
    match path.as_str() {
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            reply(200, json!({"ok": true}))
        }
        "/broken" => reply(500, json!({})),
        "/garbage" => reply(200, json!("not an object")),
        "/refresh" if !roles.is_null() => reply(200, json!({"ok": true, "roles": roles})),
        "/refresh" => reply(404, json!({})),
        "/login" => {
            let pw = v["password"].as_str().unwrap_or_default();
            let ok = (user == "alice" && pw == "alice-pw")
                || (user.starts_with("bob") && pw == "bob-pw");
            if ok {
                reply(
                    200,
                    json!({"ok": true, "roles": roles, "who": {"name": user}}),
                )
            } else if user == "mallory" {
                // 200 but not accepted.
                reply(200, json!({"ok": false, "roles": ["admin"]}))
            } else {
                reply(401, json!({"ok": false}))
            }
        }
        _ => reply(404, json!({})),
    }
}

/// A token request carrying the tenant header the API source's template reads.
async fn tenant_token(port: u16, client: &str, params: &[(&str, &str)]) -> Resp {
    let auth = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{client}:{client}-secret")
        )
    );
    let h = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("authorization", auth.as_str()),
        ("x-tenant-in", "acme"),
    ];
    request(
        port,
        "POST",
        "/oauth2/token",
        &h,
        &crate::token::form(params),
    )
    .await
}

fn http_source(name: &str, base: SocketAddr, path: &str, extra: &str, cache: &str) -> String {
    format!(
        r#"
[[token_service.identity_sources]]
name = "{name}"
timeout = "500ms"
cache_ttl = "{cache}"
[token_service.identity_sources.http]
url = "http://{base}{path}"
headers = {{ "x-tenant" = "${{header.x-tenant-in}}" }}
accept_pointer = "/ok"
roles_pointer = "/roles"
subject_pointer = "/who/name"
{extra}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_api_source() {
    let api_srv = id_api().await;
    let a = api_srv.addr;
    let dead_port = reserve_port();
    let dead: SocketAddr = format!("127.0.0.1:{}", dead_port.port).parse().unwrap();
    let sources = [
        http_source(
            "idp",
            a,
            "/login",
            &format!("refresh_url = \"http://{a}/refresh\""),
            "0s",
        ),
        http_source("idp_cached", a, "/login", "", "30s"),
        http_source("idp_slow", a, "/slow", "", "0s"),
        http_source("idp_broken", a, "/broken", "", "0s"),
        http_source("idp_garbage", a, "/garbage", "", "0s"),
        http_source("idp_dead", dead, "/login", "", "0s"),
    ]
    .concat();
    let w = world(
        &[
            ("app", "idp"),
            ("cached", "idp_cached"),
            ("s", "idp_slow"),
            ("b", "idp_broken"),
            ("g", "idp_garbage"),
            ("d", "idp_dead"),
        ],
        &sources,
    )
    .await;
    let p = w.gw.port;
    // The tenant header comes from the token request (a template of the value language).
    let login = |client: &'static str, u: &'static str, pw: &'static str| async move {
        tenant_token(
            p,
            client,
            &[
                ("grant_type", "password"),
                ("username", u),
                ("password", pw),
            ],
        )
        .await
    };
    let r = login("app", "alice", "alice-pw").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let t = r.json();
    let (st, h) = seen(p, "/adm/x", t["access_token"].as_str().unwrap()).await;
    assert_eq!(st, 200);
    assert_eq!(h["x-user"][0], "alice");
    let r = login("app", "bob", "bob-pw").await;
    let (st, h) = seen(p, "/api/x", r.json()["access_token"].as_str().unwrap()).await;
    assert_eq!((st, h["x-roles"][0].as_str()), (200, Some("user")));
    assert_error(&login("app", "alice", "wrong").await, 400, "invalid_grant");
    assert_error(&login("app", "nobody", "x").await, 400, "invalid_grant");
    // 200 with ok:false rejects, whatever roles it lists.
    assert_error(&login("app", "mallory", "x").await, 400, "invalid_grant");
    // JSON-looking usernames arrive as the exact string, not as extra members.
    let evil = "\",\"username\":\"alice\",\"x\":\"";
    let r = tenant_token(
        p,
        "app",
        &[
            ("grant_type", "password"),
            ("username", evil),
            ("password", "alice-pw"),
        ],
    )
    .await;
    assert_error(&r, 400, "invalid_grant");
    assert!(api_srv
        .bodies
        .lock()
        .unwrap()
        .iter()
        .any(|b| b["username"] == evil));
    // Without the request header the template cannot render: the client's request lacks
    // something (400), the source is not asked and not marked degraded.
    let r = password(p, ("app", "app-secret"), "alice", "alice-pw", None).await;
    assert_error(&r, 400, "invalid_request");
    // The regenerator: refresh works for a known user (its answer carries no subject: the
    // token's stays).
    let rt = t["refresh_token"].as_str().unwrap();
    let r = tenant_token(
        p,
        "app",
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let (st, h) = seen(p, "/adm/x", r.json()["access_token"].as_str().unwrap()).await;
    assert_eq!((st, h["x-user"][0].as_str()), (200, Some("alice")));

    // Cache on: five logins, one call.
    let before = api_srv.hits.load(Ordering::SeqCst);
    for _ in 0..5 {
        assert_eq!(login("cached", "alice", "alice-pw").await.status, 200);
    }
    assert_eq!(api_srv.hits.load(Ordering::SeqCst) - before, 1);
    // A cold burst of one pair (single flight): twenty at once, one call. The API answers
    // /login-slowly for bob-slow, so all twenty are in flight together.
    // With the cache off too: the burst shares one answer, which is then forgotten.
    for client in ["cached", "app"] {
        let before = api_srv.hits.load(Ordering::SeqCst);
        let burst: Vec<_> = (0..20)
            .map(|_| tokio::spawn(login(client, "bob-slow", "bob-pw")))
            .collect();
        for b in burst {
            assert_eq!(b.await.unwrap().status, 200);
        }
        assert_eq!(api_srv.hits.load(Ordering::SeqCst) - before, 1, "{client}");
    }
    // Cache off: one call each.
    let before = api_srv.hits.load(Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(login("app", "alice", "alice-pw").await.status, 200);
    }
    assert_eq!(api_srv.hits.load(Ordering::SeqCst) - before, 3);

    for (c, s, o) in [
        ("s", "idp_slow", "timeout"),
        ("b", "idp_broken", "error"),
        ("g", "idp_garbage", "error"),
        ("d", "idp_dead", "error"),
    ] {
        let r = login(c, "alice", "alice-pw").await;
        assert_error(&r, 503, "temporarily_unavailable");
        let ready = get(w.gw.admin_port, "/readyz").await.json();
        assert!(
            ready["degraded"]
                .to_string()
                .contains(&format!("identity:{s}")),
            "{ready}"
        );
        assert!(
            metric(
                w.gw.admin_port,
                "tokengate_identity_lookups_total",
                &[("source", s), ("outcome", o)]
            )
            .await
                >= 1.0,
            "{s}"
        );
    }
    // Nothing stays in flight after answers, errors and timeouts.
    let snap = w.gw.state.current.load_full();
    let ts = snap.token.as_ref().unwrap();
    for s in ["idp", "idp_cached", "idp_slow", "idp_broken", "idp_dead"] {
        assert_eq!(ts.identity_source(s).unwrap().in_flight(), 0, "{s}");
    }
}

// ---------------------------------------------------------------- the real binary

/// The binary on its default runtime (one current-thread runtime per worker, no stealing): the
/// config is compiled before any runtime exists, then lookups run from Pingora's threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_process_with_database_and_http_sources() {
    let up = Upstream::start("u").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.db");
    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", file.display()))
        .await
        .unwrap();
    sqlx::query("CREATE TABLE users (username TEXT, password_hash TEXT, roles TEXT)")
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::query("INSERT INTO users VALUES ('alice', ?, 'admin,user')")
        .bind(ALICE_ARGON2)
        .execute(&mut c)
        .await
        .unwrap();
    let api_srv = id_api().await;
    let sources = [
        db_source(
            "lite",
            &format!("sqlite://{}?mode=ro", file.display()),
            "SELECT password_hash, roles FROM users WHERE username = ?",
            "",
            "2s",
        ),
        http_source("idp", api_srv.addr, "/login", "", "0s")
            .replace("${header.x-tenant-in}", "acme"),
    ]
    .concat();
    let body = gateway_config(
        dir.path(),
        up.addr,
        &[("app", "lite"), ("web", "idp")],
        &sources,
    );
    let gw = crate::token::Proc::start_with(&body, |p| {
        p.replace("work_stealing = true", "work_stealing = false")
    })
    .await;
    for _ in 0..4 {
        for (client, secret) in [("app", "app-secret"), ("web", "web-secret")] {
            let r = password(gw.port, (client, secret), "alice", "alice-pw", None).await;
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            let at = r.json()["access_token"].as_str().unwrap().to_string();
            assert_eq!(seen(gw.port, "/adm/x", &at).await.0, 200);
            let r = password(gw.port, (client, secret), "alice", "wrong", None).await;
            assert_error(&r, 400, "invalid_grant");
        }
    }
}

// ---------------------------------------------------------------- config

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_refuses_bad_sources_and_a_password_grant_without_one() {
    let up = Upstream::start("u").await;
    let dir = tempfile::tempdir().unwrap();
    let w = world(
        &[("app", "static_ok")],
        &db_source(
            "static_ok",
            "sqlite::memory:",
            "SELECT password_hash FROM u WHERE username = ?",
            "",
            "1s",
        ),
    )
    .await;
    // A reload that leaves the source alone keeps it (pool, cache, health): the same object.
    let src = |w: &World| {
        let snap = w.gw.state.current.load_full();
        snap.token
            .as_ref()
            .unwrap()
            .identity_source("static_ok")
            .unwrap()
    };
    let before = src(&w);
    let text = std::fs::read_to_string(&w.gw.config).unwrap();
    let body = text.split_once("\n[upstreams.u]").unwrap().1;
    w.gw.write_body(&format!(
        "\n[upstreams.u]{body}\n[[routes]]\nname = \"extra\"\nrespond = {{ status = 204 }}\n"
    ));
    let r = admin_post(w.gw.admin_port, "/admin/reload").await;
    assert_eq!(
        r.json()["result"],
        "applied",
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(Arc::ptr_eq(&before, &src(&w)));
    let cases = [
        // No source for a client with the password grant.
        (gateway_config(dir.path(), up.addr, &[], "") + "\n[[token_service.clients]]\nclient_id = \"x\"\nsecret_hash = \"" + &hash("s") + "\"\ngrants = [\"password\"]\n",
         "token_service.clients[0].grants"),
        (gateway_config(dir.path(), up.addr, &[("app", "nope")], ""), "token_service.clients[0].identity_source"),
        // A valid source in a refused config: built, never used, dropped at the next apply.
        (gateway_config(dir.path(), up.addr, &[("app", "extra"), ("b", "nope")], &db_source("extra", "sqlite::memory:", "SELECT password_hash FROM u WHERE username = ?", "", "3s")),
         "token_service.clients[1].identity_source"),
        (gateway_config(dir.path(), up.addr, &[("app", "pg")], &db_source("pg", "postgres://x@127.0.0.1/db", "SELECT password_hash FROM u WHERE username = ?", "", "1s")),
         "token_service.identity_sources[0].database.query"),
        (gateway_config(dir.path(), up.addr, &[("app", "l")], &ldap_source("l", "http://x", "")), "token_service.identity_sources[0].ldap.url"),
        (gateway_config(dir.path(), up.addr, &[("app", "h")], &http_source("h", "10.0.0.1:80".parse().unwrap(), "/x", "", "1s")), "token_service.identity_sources[0].http.url"),
        // No accept rule; a username that could write JSON; a volatile value.
        (gateway_config(dir.path(), up.addr, &[("app", "h")], &http_source("h", "127.0.0.1:1".parse().unwrap(), "/x", "", "1s").replace("accept_pointer = \"/ok\"\n", "")),
         "token_service.identity_sources[0].http.accept_pointer"),
        (gateway_config(dir.path(), up.addr, &[("app", "h")], &http_source("h", "127.0.0.1:1".parse().unwrap(), "/x", "body = '{\"id\": ${var.username}}'", "1s")),
         "token_service.identity_sources[0].http.body"),
        (gateway_config(dir.path(), up.addr, &[("app", "h")], &http_source("h", "127.0.0.1:1".parse().unwrap(), "/x", "", "1s").replace("${header.x-tenant-in}", "${uuid}")),
         "token_service.identity_sources[0].http.headers.x-tenant"),
        (gateway_config(dir.path(), up.addr, &[("app", "static")], &db_source("static", "sqlite::memory:", "SELECT 1 WHERE ? = 1", "", "1s")), "token_service.identity_sources[0].name"),
        (gateway_config(dir.path(), up.addr, &[("app", "n")], "[[token_service.identity_sources]]\nname = \"n\"\nnegative_cache_ttl = \"1m\"\n[token_service.identity_sources.database]\nurl = \"sqlite::memory:\"\nquery = \"SELECT 1 WHERE ? = 1\"\n"),
         "token_service.identity_sources[0].negative_cache_ttl"),
    ];
    let gen = w.gw.generation();
    for (body, path) in cases {
        w.gw.write_body(&body);
        let r = admin_post(w.gw.admin_port, "/admin/reload").await;
        let text = String::from_utf8_lossy(&r.body).to_string();
        assert!(text.contains(path), "{path}: {text}");
        // The old config keeps serving.
        assert_eq!(w.gw.generation(), gen);
    }
    // Built while compiling the refused configs: the running one's and "extra".
    assert_eq!(w.gw.state.shared.identity.len(), 2);
    // A password in a database URL never shows in the config export.
    let body = gateway_config(
        dir.path(),
        up.addr,
        &[("app", "pg")],
        &db_source(
            "pg",
            "postgres://gw:hunter2@127.0.0.1:1/db",
            "SELECT password_hash FROM u WHERE username = $1",
            "",
            "1s",
        ),
    );
    w.gw.write_body(&body);
    let r = admin_post(w.gw.admin_port, "/admin/reload").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let cfg = get(w.gw.admin_port, "/admin/config").await;
    let text = String::from_utf8_lossy(&cfg.body);
    assert!(
        text.contains("postgres://gw:[redacted]@127.0.0.1:1/db"),
        "{text}"
    );
    assert!(!text.contains("hunter2"));
    // The first config's source was dropped with it (its pool closes), and so was the one
    // built for a refused config.
    assert_eq!(w.gw.state.shared.identity.len(), 1);
}
