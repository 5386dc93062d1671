//! Behaviour every backend must have. Each fn runs against the embedded store and Redis.

use super::{at, h, rt, Gateways};
use crate::store::{now_unix, RefreshUse, Revocation, Rotation, StoreError};
use std::collections::BTreeMap;

fn rot(token: &str, exp: Option<u64>) -> Option<Rotation> {
    Some(Rotation {
        hash: h(token),
        issued_at: 2,
        exp,
        scope: None,
    })
}

fn used_count(u: &RefreshUse) -> Option<u32> {
    match u {
        RefreshUse::Used { uses, .. } => Some(*uses),
        _ => None,
    }
}

/// O14 / R15: RT1 -> RT2; presenting RT1 again revokes the family (RT2 and the access tokens).
pub async fn rotation_and_reuse(g: Gateways) {
    let now = now_unix();
    let exp = Some(now + 3600);
    g.a()
        .put_refresh(rt("rt1", "famA", "c1", exp, None), now)
        .await
        .unwrap();
    g.a()
        .put_access(at("at1", Some("famA"), "c1", exp), now)
        .await
        .unwrap();

    let u = g
        .b()
        .use_refresh(&h("rt1"), "c1", now, rot("rt2", exp))
        .await
        .unwrap();
    assert_eq!(used_count(&u), Some(1));
    assert!(
        g.a().get_refresh(&h("rt1"), now).await.unwrap().is_none(),
        "rotated out"
    );
    let rt2 = g
        .a()
        .get_refresh(&h("rt2"), now)
        .await
        .unwrap()
        .expect("rt2 current");
    assert_eq!(rt2.family_id, "famA");
    assert_eq!(rt2.client_id, "c1");
    assert_eq!(rt2.issued_at, 2);
    assert!(g.a().get_access(&h("at1"), now).await.unwrap().is_some());

    // Reuse of the rotated-out token.
    let u = g
        .a()
        .use_refresh(&h("rt1"), "c1", now, rot("rt3", exp))
        .await
        .unwrap();
    assert_eq!(u, RefreshUse::Reused);
    assert!(
        g.b().get_refresh(&h("rt3"), now).await.unwrap().is_none(),
        "no new token"
    );
    assert_eq!(
        g.b()
            .use_refresh(&h("rt2"), "c1", now, rot("rt4", exp))
            .await
            .unwrap(),
        RefreshUse::Revoked
    );
    assert!(g.b().get_refresh(&h("rt2"), now).await.unwrap().is_none());
    assert!(g.b().get_access(&h("at1"), now).await.unwrap().is_none());
    assert!(g.b().is_access_revoked(&h("at1")).await.unwrap());
    // Later reuses stay refused, and nothing put into the family comes alive.
    assert_eq!(
        g.a().use_refresh(&h("rt1"), "c1", now, None).await.unwrap(),
        RefreshUse::Revoked
    );
    g.a()
        .put_access(at("at2", Some("famA"), "c1", exp), now)
        .await
        .unwrap();
    assert!(g.b().get_access(&h("at2"), now).await.unwrap().is_none());
}

/// O15 / R16: limit N without rotation: N uses, the N+1th is `Exhausted`.
pub async fn use_count_limit(g: Gateways) {
    let now = now_unix();
    g.a()
        .put_refresh(rt("lim", "famL", "c1", Some(now + 600), Some(3)), now)
        .await
        .unwrap();
    for n in 1..=3 {
        let u = g
            .nth(n as usize)
            .use_refresh(&h("lim"), "c1", now, None)
            .await
            .unwrap();
        assert_eq!(used_count(&u), Some(n));
        if let RefreshUse::Used { record, .. } = u {
            assert_eq!(record.max_uses, Some(3));
        }
    }
    for _ in 0..2 {
        assert_eq!(
            g.b().use_refresh(&h("lim"), "c1", now, None).await.unwrap(),
            RefreshUse::Exhausted
        );
    }
    assert!(
        g.a().get_refresh(&h("lim"), now).await.unwrap().is_none(),
        "exhausted is inactive"
    );
    // Unlimited token: many uses.
    g.a()
        .put_refresh(rt("unl", "famU", "c1", None, None), now)
        .await
        .unwrap();
    for n in 1..=10 {
        let u = g.a().use_refresh(&h("unl"), "c1", now, None).await.unwrap();
        assert_eq!(used_count(&u), Some(n));
    }
}

/// The limit spans the rotation chain (it belongs to the family).
pub async fn use_count_limit_with_rotation(g: Gateways) {
    let now = now_unix();
    let exp = Some(now + 600);
    g.a()
        .put_refresh(rt("c0", "famR", "c1", exp, Some(2)), now)
        .await
        .unwrap();
    let u = g
        .a()
        .use_refresh(&h("c0"), "c1", now, rot("c1tok", exp))
        .await
        .unwrap();
    assert_eq!(used_count(&u), Some(1));
    let u = g
        .a()
        .use_refresh(&h("c1tok"), "c1", now, rot("c2tok", exp))
        .await
        .unwrap();
    assert_eq!(used_count(&u), Some(2));
    assert_eq!(
        g.a()
            .use_refresh(&h("c2tok"), "c1", now, rot("c3tok", exp))
            .await
            .unwrap(),
        RefreshUse::Exhausted
    );
    assert!(g.a().get_refresh(&h("c3tok"), now).await.unwrap().is_none());
}

/// O17: another client's token: refused, and nothing changes (no use counted, no revocation).
pub async fn wrong_client(g: Gateways) {
    let now = now_unix();
    let exp = Some(now + 600);
    g.a()
        .put_refresh(rt("wc", "famW", "owner", exp, Some(1)), now)
        .await
        .unwrap();
    g.a()
        .put_access(at("wca", Some("famW"), "owner", exp), now)
        .await
        .unwrap();
    assert_eq!(
        g.a()
            .use_refresh(&h("wc"), "thief", now, rot("wc2", exp))
            .await
            .unwrap(),
        RefreshUse::WrongClient
    );
    assert_eq!(
        g.a().revoke_refresh(&h("wc"), "thief", now).await.unwrap(),
        Revocation::WrongClient
    );
    assert_eq!(
        g.a()
            .revoke_access(&h("wca"), "thief", None, now)
            .await
            .unwrap(),
        Revocation::WrongClient
    );
    assert!(g.a().get_access(&h("wca"), now).await.unwrap().is_some());
    assert!(g.a().get_refresh(&h("wc2"), now).await.unwrap().is_none());
    let u = g
        .a()
        .use_refresh(&h("wc"), "owner", now, None)
        .await
        .unwrap();
    assert_eq!(
        used_count(&u),
        Some(1),
        "the single use was not consumed by the thief"
    );
}

/// O18: live while `now < exp`; `exp: None` never expires. An expired token changes nothing.
pub async fn expiry(g: Gateways) {
    let now = now_unix();
    let exp = now + 10;
    g.a()
        .put_refresh(rt("ex", "famE", "c1", Some(exp), None), now)
        .await
        .unwrap();
    g.a()
        .put_access(at("exa", None, "c1", Some(exp)), now)
        .await
        .unwrap();
    g.a()
        .put_access(at("forever", None, "c1", None), now)
        .await
        .unwrap();
    g.a()
        .put_refresh(rt("rforever", "famF", "c1", None, None), now)
        .await
        .unwrap();

    assert!(g
        .a()
        .get_access(&h("exa"), exp - 1)
        .await
        .unwrap()
        .is_some());
    assert!(g.a().get_access(&h("exa"), exp).await.unwrap().is_none());
    assert!(g.a().get_refresh(&h("ex"), exp).await.unwrap().is_none());
    assert!(
        !g.a().is_access_revoked(&h("exa")).await.unwrap(),
        "expired is not revoked"
    );
    assert_eq!(
        g.a()
            .use_refresh(&h("ex"), "c1", exp, rot("ex2", Some(exp + 100)))
            .await
            .unwrap(),
        RefreshUse::Expired
    );
    assert!(g.a().get_refresh(&h("ex2"), exp).await.unwrap().is_none());
    let u = g
        .a()
        .use_refresh(&h("ex"), "c1", exp - 1, None)
        .await
        .unwrap();
    assert_eq!(used_count(&u), Some(1));

    let far = now + 10 * 365 * 86_400;
    assert!(g
        .a()
        .get_access(&h("forever"), far)
        .await
        .unwrap()
        .is_some());
    assert!(g
        .a()
        .get_refresh(&h("rforever"), far)
        .await
        .unwrap()
        .is_some());
    assert!(g.a().get_access(&h("nobody"), now).await.unwrap().is_none());
    assert_eq!(
        g.a()
            .use_refresh(&h("nobody"), "c1", now, None)
            .await
            .unwrap(),
        RefreshUse::NotFound
    );
}

/// O22 / RFC 7009 §2.1: revoking a refresh token revokes its grant: every refresh token of
/// the family and the family's access tokens; other grants are untouched.
pub async fn revoke_refresh_revokes_family_access(g: Gateways) {
    let now = now_unix();
    let exp = Some(now + 600);
    g.a()
        .put_refresh(rt("r1", "famV", "c1", exp, None), now)
        .await
        .unwrap();
    g.a()
        .put_access(at("a1", Some("famV"), "c1", exp), now)
        .await
        .unwrap();
    let u = g
        .a()
        .use_refresh(&h("r1"), "c1", now, rot("r2", exp))
        .await
        .unwrap();
    assert_eq!(used_count(&u), Some(1));
    g.a()
        .put_access(at("a2", Some("famV"), "c1", exp), now)
        .await
        .unwrap();
    g.a()
        .put_access(at("other", None, "c1", exp), now)
        .await
        .unwrap();
    g.a()
        .put_refresh(rt("o1", "famOther", "c1", exp, None), now)
        .await
        .unwrap();

    assert_eq!(
        g.a().revoke_refresh(&h("r2"), "c1", now).await.unwrap(),
        Revocation::Revoked
    );
    for a in ["a1", "a2"] {
        assert!(g.a().get_access(&h(a), now).await.unwrap().is_none(), "{a}");
        assert!(g.a().is_access_revoked(&h(a)).await.unwrap(), "{a}");
    }
    assert_eq!(
        g.a().use_refresh(&h("r2"), "c1", now, None).await.unwrap(),
        RefreshUse::Revoked
    );
    assert!(g.a().get_access(&h("other"), now).await.unwrap().is_some());
    assert!(g.a().get_refresh(&h("o1"), now).await.unwrap().is_some());
    // Idempotent; unknown token -> NotFound (the endpoint still answers 200).
    assert_eq!(
        g.a().revoke_refresh(&h("r1"), "c1", now).await.unwrap(),
        Revocation::Revoked
    );
    assert_eq!(
        g.a().revoke_refresh(&h("zz"), "c1", now).await.unwrap(),
        Revocation::NotFound
    );
    // Admin revocation by family id.
    assert!(g.a().revoke_family("famOther", now).await.unwrap());
    assert!(!g.a().revoke_family("no-such-family", now).await.unwrap());
    assert!(g.a().get_refresh(&h("o1"), now).await.unwrap().is_none());
}

/// Direct access-token revocation, and tombstones for unrecorded JWTs (by `jti` hash).
pub async fn revoke_access_and_tombstones(g: Gateways) {
    let now = now_unix();
    g.a()
        .put_access(at("op", None, "c1", Some(now + 60)), now)
        .await
        .unwrap();
    assert!(!g.a().is_access_revoked(&h("op")).await.unwrap());
    assert_eq!(
        g.a()
            .revoke_access(&h("op"), "c1", None, now)
            .await
            .unwrap(),
        Revocation::Revoked
    );
    assert!(g.a().get_access(&h("op"), now).await.unwrap().is_none());
    assert!(g.a().is_access_revoked(&h("op")).await.unwrap());
    assert_eq!(
        g.a()
            .revoke_access(&h("op"), "c1", None, now)
            .await
            .unwrap(),
        Revocation::Revoked,
        "idempotent"
    );

    // A JWT never recorded: revocable until its exp.
    assert!(!g.a().is_access_revoked(&h("jti-1")).await.unwrap());
    assert_eq!(
        g.a()
            .revoke_access(&h("jti-1"), "c1", Some(now + 300), now)
            .await
            .unwrap(),
        Revocation::Revoked
    );
    assert!(g.a().is_access_revoked(&h("jti-1")).await.unwrap());
    assert!(g.a().get_access(&h("jti-1"), now).await.unwrap().is_none());
    // Garbage (no exp, or already expired) stores nothing.
    for hint in [None, Some(now), Some(now - 5)] {
        assert_eq!(
            g.a()
                .revoke_access(&h("garbage"), "c1", hint, now)
                .await
                .unwrap(),
            Revocation::NotFound
        );
    }
    assert!(!g.a().is_access_revoked(&h("garbage")).await.unwrap());
}

/// private_key_jwt assertions: a `jti` is accepted once until its `exp`, on any gateway.
pub async fn jti_replay(g: Gateways) {
    let now = now_unix();
    let k = h("client-a\0jti-123");
    assert!(g.a().remember_jti(&k, now + 60, now).await.unwrap());
    assert!(!g.a().remember_jti(&k, now + 60, now).await.unwrap());
    assert!(!g.b().remember_jti(&k, now + 60, now + 30).await.unwrap());
    assert!(g
        .b()
        .remember_jti(&h("client-b\0jti-123"), now + 60, now)
        .await
        .unwrap());
}

/// A put never overwrites, and a rotation onto an existing hash changes nothing.
pub async fn conflicts_change_nothing(g: Gateways) {
    let now = now_unix();
    let exp = Some(now + 600);
    g.a()
        .put_refresh(rt("k1", "famC", "c1", exp, None), now)
        .await
        .unwrap();
    g.a()
        .put_refresh(rt("k2", "famC2", "c1", exp, None), now)
        .await
        .unwrap();
    g.a()
        .put_access(at("ka", None, "c1", exp), now)
        .await
        .unwrap();
    assert_eq!(
        g.a()
            .put_refresh(rt("k1", "famC", "c1", exp, None), now)
            .await,
        Err(StoreError::Conflict)
    );
    assert_eq!(
        g.a().put_access(at("ka", None, "c1", exp), now).await,
        Err(StoreError::Conflict)
    );
    // Revoked access token cannot be replaced by a live record.
    g.a()
        .revoke_access(&h("ka"), "c1", None, now)
        .await
        .unwrap();
    assert!(g
        .a()
        .put_access(at("ka", None, "c1", exp), now)
        .await
        .is_err());
    assert!(g.a().get_access(&h("ka"), now).await.unwrap().is_none());

    assert_eq!(
        g.a().use_refresh(&h("k1"), "c1", now, rot("k2", exp)).await,
        Err(StoreError::Conflict)
    );
    let u = g
        .a()
        .use_refresh(&h("k1"), "c1", now, rot("k3", exp))
        .await
        .unwrap();
    assert_eq!(used_count(&u), Some(1), "the failed rotation used nothing");
    assert!(g.a().get_refresh(&h("k2"), now).await.unwrap().is_some());
}

/// Every field comes back as stored; rotation carries the grant and narrows the scope.
pub async fn records_round_trip(g: Gateways) {
    let now = now_unix();
    let mut extra = BTreeMap::new();
    extra.insert("aud".to_string(), serde_json::json!(["api", "billing"]));
    extra.insert("auth_time".to_string(), serde_json::json!(12345));
    let mut a = at("full", Some("famX"), "c1", Some(now + 60));
    a.client_ip = Some("192.0.2.7".parse().unwrap());
    a.scope = vec![];
    a.extra = extra.clone();
    g.a().put_access(a.clone(), now).await.unwrap();
    assert_eq!(g.a().get_access(&h("full"), now).await.unwrap(), Some(a));

    let mut r = rt("rfull", "famX", "c1", Some(now + 600), Some(5));
    r.extra = extra;
    r.roles = vec![];
    g.a().put_refresh(r.clone(), now).await.unwrap();
    assert_eq!(
        g.a().get_refresh(&h("rfull"), now).await.unwrap(),
        Some(r.clone())
    );
    let u = g
        .a()
        .use_refresh(
            &h("rfull"),
            "c1",
            now,
            Some(Rotation {
                hash: h("rnext"),
                issued_at: now,
                exp: Some(now + 900),
                scope: Some(vec!["read".into()]),
            }),
        )
        .await
        .unwrap();
    assert_eq!(
        u,
        RefreshUse::Used {
            record: Box::new(r.clone()),
            uses: 1
        }
    );
    let next = g.a().get_refresh(&h("rnext"), now).await.unwrap().unwrap();
    assert_eq!(next.hash, h("rnext"));
    assert_eq!(next.scope, vec!["read".to_string()]);
    assert_eq!(next.exp, Some(now + 900));
    assert_eq!(next.issued_at, now);
    assert_eq!(
        (
            next.family_id,
            next.client_id,
            next.sub,
            next.roles,
            next.extra,
            next.max_uses
        ),
        (
            r.family_id,
            r.client_id,
            r.sub,
            r.roles,
            r.extra,
            r.max_uses
        )
    );
    // The family now outlives its first token: the successor is live past the first exp.
    assert!(g
        .a()
        .get_refresh(&h("rnext"), now + 700)
        .await
        .unwrap()
        .is_some());
}

async fn race(g: &Gateways, token: &str, rotate: bool, n: usize) -> Vec<RefreshUse> {
    let now = now_unix();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = Vec::new();
    for i in 0..n {
        let s = g.nth(i);
        let b = barrier.clone();
        let key = h(token);
        let next = rotate.then(|| Rotation {
            hash: h(&format!("{token}-next-{i}")),
            issued_at: now,
            exp: Some(now + 600),
            scope: None,
        });
        tasks.push(tokio::spawn(async move {
            b.wait().await;
            s.use_refresh(&key, "c1", now, next).await.unwrap()
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// R15: 50 concurrent rotations of one token: exactly one `Used`; the others see a rotated-out
/// token (reuse: the family is revoked) or an already revoked family.
pub async fn concurrent_rotation_one_wins(g: Gateways) {
    let now = now_unix();
    g.a()
        .put_refresh(rt("hot", "famH", "c1", Some(now + 600), None), now)
        .await
        .unwrap();
    let out = race(&g, "hot", true, 50).await;
    let used = out.iter().filter(|u| used_count(u).is_some()).count();
    assert_eq!(used, 1, "{out:?}");
    assert!(out.iter().all(|u| matches!(
        u,
        RefreshUse::Used { .. } | RefreshUse::Reused | RefreshUse::Revoked
    )));
    // Exactly one successor was created, and reuse revoked it.
    let mut live = 0;
    for i in 0..50 {
        if g.a()
            .get_refresh(&h(&format!("hot-next-{i}")), now)
            .await
            .unwrap()
            .is_some()
        {
            live += 1;
        }
    }
    assert_eq!(live, 0, "the race counts as reuse: the family is revoked");
}

/// 50 concurrent uses of a single-use token (no rotation): one `Used`, 49 `Exhausted`.
pub async fn concurrent_single_use_one_wins(g: Gateways) {
    let now = now_unix();
    g.a()
        .put_refresh(rt("once", "famO", "c1", Some(now + 600), Some(1)), now)
        .await
        .unwrap();
    let out = race(&g, "once", false, 50).await;
    assert_eq!(out.iter().filter(|u| used_count(u).is_some()).count(), 1);
    assert_eq!(
        out.iter().filter(|u| **u == RefreshUse::Exhausted).count(),
        49
    );
}

/// R16: limit 7 under 50 concurrent uses across gateways: exactly 7 succeed, counts 1..=7.
pub async fn concurrent_use_limit_exact(g: Gateways) {
    let now = now_unix();
    g.a()
        .put_refresh(rt("seven", "fam7", "c1", Some(now + 600), Some(7)), now)
        .await
        .unwrap();
    let out = race(&g, "seven", false, 50).await;
    let mut counts: Vec<u32> = out.iter().filter_map(used_count).collect();
    counts.sort_unstable();
    assert_eq!(counts, (1..=7).collect::<Vec<_>>());
}

/// R18: a revocation on gateway A is seen by the very next lookup on gateway B.
pub async fn two_gateways_see_revocation(g: Gateways) {
    let now = now_unix();
    let exp = Some(now + 600);
    g.a()
        .put_refresh(rt("x1", "famG", "c1", exp, None), now)
        .await
        .unwrap();
    g.a()
        .put_access(at("xa", Some("famG"), "c1", exp), now)
        .await
        .unwrap();
    g.a()
        .put_access(at("xb", None, "c1", exp), now)
        .await
        .unwrap();
    assert!(g.b().get_access(&h("xa"), now).await.unwrap().is_some());
    assert!(g.b().get_access(&h("xb"), now).await.unwrap().is_some());
    assert_eq!(
        g.a().revoke_refresh(&h("x1"), "c1", now).await.unwrap(),
        Revocation::Revoked
    );
    assert_eq!(
        g.a()
            .revoke_access(&h("xb"), "c1", None, now)
            .await
            .unwrap(),
        Revocation::Revoked
    );
    assert!(g.b().get_access(&h("xa"), now).await.unwrap().is_none());
    assert!(g.b().get_access(&h("xb"), now).await.unwrap().is_none());
    assert_eq!(
        g.b().use_refresh(&h("x1"), "c1", now, None).await.unwrap(),
        RefreshUse::Revoked
    );
}

pub async fn health_ok(g: Gateways) {
    g.a().health().await.unwrap();
    assert!(["embedded", "redis"].contains(&g.a().kind()));
}
