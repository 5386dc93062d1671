//! The `ldap` source: bind-search-bind with the `ldap3` crate (tokio, rustls on aws-lc-rs).
//!
//! One login: take a pooled connection (or open one: `ldap://`, `ldap://` + StartTLS, or
//! `ldaps://`), bind as the service account if the connection is not bound as it, search
//! `user_filter` (the username RFC 4515-escaped) under `user_base` with a size limit of 2
//! (zero or two entries: rejected), read the groups (the `member_of_attribute` values, or a
//! search of `group_base`), then bind as the user's DN with the password. The connection goes
//! back to the pool marked as bound by the user, so its next use binds the service account
//! again. A connection that saw any error is dropped, never pooled.
//!
//! An empty password is rejected before any bind: RFC 4513 §5.1.2 makes a bind with a name
//! and no password an "unauthenticated" bind that many servers answer with success.
//! The exchange runs as a task on the identity runtime (see `super::IdentityRuntime`): ldap3
//! panics on some malformed server answers, and a hostile or broken server must cost one failed
//! lookup (the task's JoinError), not the request task.

use super::{split_list, Answer, Identity, IdentityError};
use crate::error::Errors;
use ldap3::{
    ldap_escape, Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry, SearchOptions,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct LdapSource {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    settings: LdapConnSettings,
    bind: Option<(String, zeroize::Zeroizing<String>)>,
    user_base: String,
    user_filter: String,
    subject_attribute: Option<String>,
    member_of: Option<String>,
    group_base: Option<String>,
    group_filter: String,
    group_name: String,
    role_map: BTreeMap<String, String>,
    pool: Mutex<Vec<Conn>>,
    pool_size: usize,
}

struct Conn {
    ldap: Ldap,
    /// Bound as the service account (false after a user bind).
    as_service: bool,
    idle_since: Instant,
}

/// Pooled connections idle longer than this are closed rather than reused.
const MAX_IDLE: Duration = Duration::from_secs(60);

/// LDAP result codes we tell apart (RFC 4511 Appendix A).
const RC_SUCCESS: u32 = 0;
const RC_INVALID_CREDENTIALS: u32 = 49;
const RC_SIZE_LIMIT: u32 = 4;

fn err(what: &str, e: impl std::fmt::Display) -> IdentityError {
    IdentityError::Unavailable(format!("ldap {what}: {e}"))
}

impl LdapSource {
    pub fn compile(
        c: &super::config::LdapConfig,
        timeout: Duration,
        path: &str,
        errs: &mut Errors,
    ) -> Option<LdapSource> {
        let super::config::LdapConfig {
            url,
            starttls,
            ca_file,
            bind_dn,
            bind_password,
            user_base,
            user_filter,
            subject_attribute,
            member_of_attribute,
            group_base,
            group_filter,
            group_name_attribute,
            role_map,
            pool_size,
        } = c;
        let before = errs.0.len();
        let ldaps = url.starts_with("ldaps://");
        if !(ldaps || url.starts_with("ldap://")) || http::Uri::try_from(url.as_str()).is_err() {
            errs.push(format!("{path}.url"), "must be an ldap:// or ldaps:// URL");
        }
        if ldaps && *starttls {
            errs.push(format!("{path}.starttls"), "StartTLS is for ldap:// URLs");
        }
        if !user_filter.contains("{username}") || !user_filter.starts_with('(') {
            errs.push(
                format!("{path}.user_filter"),
                "must be a parenthesised filter containing {username}",
            );
        }
        if group_base.is_some()
            && !group_filter.contains("{dn}")
            && !group_filter.contains("{username}")
        {
            errs.push(
                format!("{path}.group_filter"),
                "must contain {dn} or {username}",
            );
        }
        if bind_dn.is_some() != bind_password.is_some() {
            errs.push(
                format!("{path}.bind_password"),
                "bind_dn and bind_password go together",
            );
        }
        if *pool_size == 0 {
            errs.push(format!("{path}.pool_size"), "must be at least 1");
        }
        let tls = super::http::tls_config_at(ca_file.as_deref(), path, errs);
        if errs.0.len() > before {
            return None;
        }
        let settings = LdapConnSettings::new()
            .set_conn_timeout(timeout)
            .set_starttls(*starttls)
            .set_config(tls?);
        Some(LdapSource {
            inner: Arc::new(Inner {
                url: url.clone(),
                settings,
                bind: bind_dn
                    .clone()
                    .zip(bind_password.clone().map(zeroize::Zeroizing::new)),
                user_base: user_base.clone(),
                user_filter: user_filter.clone(),
                subject_attribute: subject_attribute.clone(),
                member_of: member_of_attribute.clone(),
                group_base: group_base.clone(),
                group_filter: group_filter.clone(),
                group_name: group_name_attribute.clone(),
                role_map: role_map.clone(),
                pool: Mutex::new(Vec::new()),
                pool_size: *pool_size,
            }),
        })
    }

    pub async fn authenticate(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Answer, IdentityError> {
        if password.is_empty() {
            return Ok(Answer::Rejected);
        }
        self.inner.run(username, Some(password)).await
    }

    pub async fn lookup(&self, username: &str) -> Result<Answer, IdentityError> {
        self.inner.run(username, None).await
    }
}

impl Inner {
    async fn connect(&self) -> Result<Conn, IdentityError> {
        let (conn, ldap) = LdapConnAsync::with_settings(self.settings.clone(), &self.url)
            .await
            .map_err(|e| err("connect", e))?;
        ldap3::drive!(conn);
        Ok(Conn {
            ldap,
            as_service: false,
            idle_since: Instant::now(),
        })
    }

    /// A pooled connection: open, and idle for less than [`MAX_IDLE`] (servers and NATs
    /// drop idle connections, often silently).
    fn take(&self) -> Option<Conn> {
        let mut p = self.pool.lock().ok()?;
        while let Some(mut c) = p.pop() {
            if !c.ldap.is_closed() && c.idle_since.elapsed() < MAX_IDLE {
                return Some(c);
            }
        }
        None
    }

    fn give_back(&self, mut c: Conn) {
        if c.ldap.is_closed() {
            return;
        }
        c.idle_since = Instant::now();
        if let Ok(mut p) = self.pool.lock() {
            if p.len() < self.pool_size {
                p.push(c);
            }
        }
    }

    /// The whole exchange; `password` None is a refresh lookup (search only). A pooled
    /// connection that fails is retried once on a new one (it may have died while idle).
    async fn run(&self, username: &str, password: Option<&str>) -> Result<Answer, IdentityError> {
        if let Some(mut c) = self.take() {
            if let Ok(r) = self.exchange(&mut c, username, password).await {
                self.give_back(c);
                return Ok(r);
            }
        }
        let mut c = self.connect().await?;
        let r = self.exchange(&mut c, username, password).await;
        if r.is_ok() {
            self.give_back(c);
        }
        r
    }

    /// Bind as the service account (or anonymously) unless the connection already is.
    async fn bind_service(&self, c: &mut Conn) -> Result<(), IdentityError> {
        if c.as_service {
            return Ok(());
        }
        let (dn, pw) = match &self.bind {
            Some((dn, pw)) => (dn.as_str(), pw.as_str()),
            // Anonymous: an empty simple bind resets any earlier user bind.
            None => ("", ""),
        };
        let r = c
            .ldap
            .simple_bind(dn, pw)
            .await
            .map_err(|e| err("service bind", e))?;
        if r.rc != RC_SUCCESS {
            return Err(err("service bind", format!("result code {}", r.rc)));
        }
        c.as_service = true;
        Ok(())
    }

    /// Bind as `dn` with the password: Ok(true) accepted, Ok(false) refused.
    async fn bind_user(&self, c: &mut Conn, dn: &str, pw: &str) -> Result<bool, IdentityError> {
        c.as_service = false;
        let r = c
            .ldap
            .simple_bind(dn, pw)
            .await
            .map_err(|e| err("user bind", e))?;
        match r.rc {
            RC_SUCCESS => Ok(true),
            // 49 invalidCredentials; 48 inappropriateAuthentication, 50 insufficientAccess,
            // 53 unwillingToPerform (locked, expired...).
            RC_INVALID_CREDENTIALS | 48 | 50 | 53 => Ok(false),
            rc => Err(err("user bind", format!("result code {rc}"))),
        }
    }

    async fn exchange(
        &self,
        c: &mut Conn,
        username: &str,
        password: Option<&str>,
    ) -> Result<Answer, IdentityError> {
        // What a login refuses, a lookup cannot tell.
        let refused = if password.is_some() {
            Answer::Rejected
        } else {
            Answer::Unsure
        };
        self.bind_service(c).await?;
        let filter = self
            .user_filter
            .replace("{username}", &ldap_escape(username));
        // The entry's own spelling of the name is the subject (uid by default): "ALICE" and
        // "alice" log in to one account and must get one `sub`.
        let subject_attr = self.subject_attribute.as_deref().unwrap_or("uid");
        let mut attrs: Vec<&str> = vec![subject_attr];
        if let Some(a) = &self.member_of {
            attrs.push(a);
        }
        let res = c
            .ldap
            .with_search_options(SearchOptions::new().sizelimit(2))
            .search(&self.user_base, Scope::Subtree, &filter, attrs)
            .await
            .map_err(|e| err("user search", e))?;
        let (entries, rc) = (res.0, res.1.rc);
        if rc == RC_SIZE_LIMIT || entries.len() > 1 {
            log::warn!("ldap: the user filter matched several entries; login refused");
            return Ok(refused);
        }
        // 32 (noSuchObject) means user_base does not exist: a config problem to surface.
        if rc != RC_SUCCESS {
            return Err(err("user search", format!("result code {rc}")));
        }
        let Some(entry) = entries.into_iter().next() else {
            let Some(pw) = password else {
                return Ok(Answer::Gone);
            };
            // No such user: still one bind, so the round trips do not tell. Its result code
            // means nothing; only a broken connection is an error.
            c.as_service = false;
            let dn = format!("cn=tokengate-no-such-user,{}", self.user_base);
            c.ldap
                .simple_bind(&dn, pw)
                .await
                .map_err(|e| err("user bind", e))?;
            return Ok(Answer::Rejected);
        };
        let entry = SearchEntry::construct(entry);
        let subject = match attr(&entry, subject_attr).and_then(|v| v.first()) {
            Some(s) => s.clone(),
            None if self.subject_attribute.is_none() => username.to_string(),
            None => return Ok(refused),
        };
        if let Some(pw) = password {
            if !self.bind_user(c, &entry.dn, pw).await? {
                return Ok(Answer::Rejected);
            }
        }
        // Groups only for an authenticated user, read as the service account.
        let groups = self.groups(c, &entry, username).await?;
        Ok(Answer::Accepted(Identity {
            subject,
            roles: self.roles(groups),
            scopes: Vec::new(),
        }))
    }

    async fn groups(
        &self,
        c: &mut Conn,
        entry: &SearchEntry,
        username: &str,
    ) -> Result<Vec<String>, IdentityError> {
        if let Some(a) = &self.member_of {
            let dns = attr(entry, a).cloned().unwrap_or_default();
            let base = self.group_base.as_deref().and_then(parse_dn);
            return Ok(dns
                .iter()
                .filter(|dn| match (&base, parse_dn(dn)) {
                    (None, _) => true,
                    (Some(b), Some(d)) => under(&d, b),
                    (Some(_), None) => false,
                })
                .filter_map(|dn| rdn_value(dn, &self.group_name))
                .collect());
        }
        let Some(base) = &self.group_base else {
            return Ok(Vec::new());
        };
        self.bind_service(c).await?;
        let filter = self
            .group_filter
            .replace("{dn}", &ldap_escape(entry.dn.as_str()))
            .replace("{username}", &ldap_escape(username));
        let res = c
            .ldap
            .with_search_options(SearchOptions::new().sizelimit(1000))
            .search(
                base,
                Scope::Subtree,
                &filter,
                vec![self.group_name.as_str()],
            )
            .await
            .map_err(|e| err("group search", e))?;
        if res.1.rc != RC_SUCCESS && res.1.rc != 32 && res.1.rc != RC_SIZE_LIMIT {
            return Err(err("group search", format!("result code {}", res.1.rc)));
        }
        Ok(res
            .0
            .into_iter()
            .map(SearchEntry::construct)
            .filter_map(|e| attr(&e, &self.group_name).and_then(|v| v.first().cloned()))
            .collect())
    }

    fn roles(&self, groups: Vec<String>) -> Vec<String> {
        let mut out: Vec<String> = if self.role_map.is_empty() {
            groups
        } else {
            groups
                .iter()
                .filter_map(|g| self.role_map.get(g).cloned())
                .flat_map(|r| split_list(&r, ","))
                .collect()
        };
        out.sort();
        out.dedup();
        out
    }
}

/// An attribute's values by name, case-insensitively (servers answer in their own spelling:
/// `memberOf`, `sAMAccountName`).
fn attr<'e>(entry: &'e SearchEntry, name: &str) -> Option<&'e Vec<String>> {
    entry
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// The text up to the first unescaped `sep` (RFC 4514 §2: `\,` and `\2C` belong to a value).
fn split_unescaped(s: &str, sep: char) -> &str {
    let mut escaped = false;
    for (i, ch) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if ch == '\\' {
            escaped = true;
        } else if ch == sep {
            return s.get(..i).unwrap_or(s);
        }
    }
    s
}

/// A DN's RDNs, split on unescaped `,` only, each as (attribute type, value) unescaped and
/// lower-cased (multi-valued RDNs keep their first pair). None when the DN does not parse.
fn parse_dn(dn: &str) -> Option<Vec<(String, String)>> {
    let mut rdns = Vec::new();
    let mut rest = dn;
    loop {
        let rdn = split_unescaped(rest, ',');
        let pair = split_unescaped(rdn, '+');
        let (k, v) = pair.split_once('=')?;
        rdns.push((
            k.trim().to_ascii_lowercase(),
            unescape_dn_value(v.trim())?.to_lowercase(),
        ));
        match rest.get(rdn.len() + 1..) {
            Some(r) => rest = r,
            None => return Some(rdns),
        }
    }
}

/// `dn` is `base` or below it, RDN by RDN.
fn under(dn: &[(String, String)], base: &[(String, String)]) -> bool {
    dn.len() >= base.len() && dn.get(dn.len() - base.len()..) == Some(base)
}

/// The value of the first RDN of `dn` when its attribute is `attr` (case-insensitive):
/// `cn=gw-admins,ou=groups,...` -> `gw-admins`, unescaped, in the DN's own case.
fn rdn_value(dn: &str, attr: &str) -> Option<String> {
    let pair = split_unescaped(split_unescaped(dn, ','), '+');
    let (k, v) = pair.split_once('=')?;
    if !k.trim().eq_ignore_ascii_case(attr) {
        return None;
    }
    unescape_dn_value(v.trim())
}

/// RFC 4514 §3 value unescaping: `\,` and `\2C` both give `,`; a hex pair only when both
/// characters are hex digits. None when the result is not UTF-8 or a `\` ends the value.
fn unescape_dn_value(v: &str) -> Option<String> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let hi = *b.get(i + 1)?;
        let lo = b.get(i + 2).copied();
        match lo {
            Some(lo) if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit() => {
                let hex = [hi, lo];
                out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
                i += 3;
            }
            _ => {
                out.push(hi);
                i += 2;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_empty_password_never_reaches_a_bind() {
        let c: crate::config::identity::LdapConfig =
            toml::from_str("url = \"ldap://127.0.0.1:1\"\nuser_base = \"dc=x\"").unwrap();
        let mut errs = Errors(Vec::new());
        let l = LdapSource::compile(&c, Duration::from_secs(1), "l", &mut errs).unwrap();
        assert!(errs.is_empty());
        // Nothing listens on port 1: any exchange would be an error, not a rejection.
        assert!(matches!(
            l.authenticate("alice", "").await,
            Ok(Answer::Rejected)
        ));
        assert!(l.authenticate("alice", "x").await.is_err());
    }

    #[test]
    fn group_dns_under_a_base() {
        let b = parse_dn("OU=Groups, DC=Example,DC=org").unwrap();
        let is_under = |dn: &str| under(&parse_dn(dn).unwrap(), &b);
        assert!(is_under("cn=a,ou=groups,dc=example,dc=org"));
        assert!(!is_under("cn=a,ou=evil,dc=example,dc=org"));
        assert!(!is_under("cn=a,ou=xgroups,dc=example,dc=org"));
        // An OU named "x,ou=groups" directly under the suffix is not under ou=groups.
        assert!(!is_under("cn=admins,ou=x\\,ou=groups,dc=example,dc=org"));
        assert!(!is_under("cn=admins,ou=x\\2Cou=groups,dc=example,dc=org"));
    }

    #[test]
    fn rdn_values() {
        assert_eq!(
            rdn_value("cn=gw-admins,ou=groups,dc=example,dc=org", "cn").as_deref(),
            Some("gw-admins")
        );
        assert_eq!(
            rdn_value("CN=a\\,b\\2Bc,ou=x", "cn").as_deref(),
            Some("a,b+c")
        );
        assert_eq!(rdn_value("ou=x,dc=y", "cn"), None);
        // `\+D` is an escaped '+' and a 'D', not the hex pair "+D".
        assert_eq!(
            rdn_value("cn=R\\+D team,ou=g", "cn").as_deref(),
            Some("R+D team")
        );
        assert_eq!(rdn_value("garbage", "cn"), None);
    }
}
