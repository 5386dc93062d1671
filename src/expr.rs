//! The value language shared by conditions (and, in later issues, dynamic claims and templates).
//!
//! A variable names one request value: `method`, `path`, `host`, `header.NAME`, `query.NAME`,
//! `cookie.NAME`, `client_ip`, `route`, `env.NAME` (read once at load). A `request.` prefix is
//! accepted too (`request.header.x-env`). Variables are compiled at load: a typo is a config
//! error with its TOML path. Values are data: nothing a client sends is ever evaluated.

use crate::config::ConditionConfig;
use crate::error::Errors;
use crate::request::RequestView;
use http::HeaderName;
use ipnet::IpNet;
use regex::Regex;
use std::borrow::Cow;
use std::net::IpAddr;

/// A compiled variable.
#[derive(Debug, Clone)]
pub enum Var {
    Method,
    Path,
    Host,
    Header(HeaderName),
    Query(String),
    Cookie(String),
    ClientIp,
    Route,
    /// A claim of the token verified by an earlier policy, by dotted path (`claims.a.b`).
    Claim(String),
    /// The identity established by an earlier policy.
    Identity,
    /// A named value set by an earlier policy.
    Variable(String),
    /// The current time, Unix seconds.
    Now,
    /// A fresh random UUID (v4) per resolution.
    Uuid,
    /// A member of the JSON request body by JSON pointer (`body./user/id`; `body.` = all).
    Body(String),
    /// Resolved once at load.
    Literal(Option<String>),
}

impl Var {
    /// Compile a variable name; the error says what is allowed.
    pub fn parse(s: &str) -> Result<Var, String> {
        let name = s.strip_prefix("request.").unwrap_or(s);
        let (head, rest) = match name.split_once('.') {
            Some((h, r)) => (h, Some(r)),
            None => (name, None),
        };
        fn need<'a>(r: Option<&'a str>, s: &str, head: &str) -> Result<&'a str, String> {
            r.filter(|r| !r.is_empty())
                .ok_or_else(|| format!("{s:?} needs a name after the dot, e.g. {head}.x-name"))
        }
        Ok(match head {
            "method" if rest.is_none() => Var::Method,
            "path" if rest.is_none() => Var::Path,
            "host" if rest.is_none() => Var::Host,
            "client_ip" if rest.is_none() => Var::ClientIp,
            "route" if rest.is_none() => Var::Route,
            "header" => {
                let n = need(rest, s, head)?;
                Var::Header(
                    HeaderName::from_bytes(n.to_ascii_lowercase().as_bytes())
                        .map_err(|_| format!("{n:?} is not a valid header name"))?,
                )
            }
            "query" => Var::Query(need(rest, s, head)?.to_string()),
            "cookie" => Var::Cookie(need(rest, s, head)?.to_string()),
            "claims" => Var::Claim(need(rest, s, head)?.to_string()),
            "identity" => match rest {
                None => Var::Identity,
                // An attribute of the authenticated identity: a claim of its token.
                Some(r) => Var::Claim(need(Some(r), s, head)?.to_string()),
            },
            "var" => Var::Variable(need(rest, s, head)?.to_string()),
            // A token policy's result: `jwt.LABEL.failed` or `jwt.LABEL.error`.
            "jwt" => match rest.and_then(|r| r.rsplit_once('.')) {
                Some((label, "failed" | "error")) if !label.is_empty() => {
                    Var::Variable(name.to_string())
                }
                _ => {
                    return Err(format!(
                        "{s:?}: expected jwt.POLICY.failed or jwt.POLICY.error"
                    ))
                }
            },
            "now" if rest.is_none() => Var::Now,
            "uuid" if rest.is_none() => Var::Uuid,
            "body" => {
                let ptr = rest.unwrap_or("");
                if !(ptr.is_empty() || ptr.starts_with('/')) {
                    return Err(format!(
                        "{s:?}: a JSON pointer starts with '/', e.g. body./user/id"
                    ));
                }
                Var::Body(ptr.to_string())
            }
            "env" => Var::Literal(std::env::var(need(rest, s, head)?).ok()),
            _ => {
                return Err(format!(
                    "unknown variable {s:?}: expected method, path, host, header.NAME, \
                     query.NAME, cookie.NAME, client_ip, route, claims.PATH, identity, var.NAME, \
                     jwt.POLICY.failed, jwt.POLICY.error, body./POINTER, now, uuid or env.NAME"
                ))
            }
        })
    }

    /// The value for this request, or None when absent. An array claim resolves to its
    /// elements joined with ","; use [`Var::resolve_each`] to test elements one by one.
    pub fn resolve<'v>(&'v self, v: &'v RequestView<'_>) -> Option<Cow<'v, str>> {
        match self {
            Var::Method => Some(Cow::Borrowed(v.req.method.as_str())),
            Var::Path => Some(Cow::Borrowed(v.req.uri.path())),
            Var::Host => v.host().map(Cow::Borrowed),
            Var::Header(n) => v
                .req
                .headers
                .get(n)
                .map(|h| String::from_utf8_lossy(h.as_bytes())),
            Var::Query(n) => v.query(n),
            Var::Cookie(n) => v.cookie(n).map(Cow::Borrowed),
            Var::ClientIp => v.client_ip.map(|ip| Cow::Owned(ip.to_string())),
            Var::Route => Some(Cow::Borrowed(v.route)),
            Var::Claim(path) => claim(v, path).and_then(|c| match c {
                serde_json::Value::Array(items) => Some(Cow::Owned(
                    items
                        .iter()
                        .filter_map(scalar)
                        .collect::<Vec<_>>()
                        .join(","),
                )),
                other => scalar(other),
            }),
            Var::Identity => v.identity.map(Cow::Borrowed),
            Var::Variable(n) => v.vars?.get(n).map(|s| Cow::Borrowed(s.as_str())),
            Var::Now => Some(Cow::Owned(v.now().to_string())),
            Var::Uuid => match uuid_v4() {
                Ok(u) => Some(Cow::Owned(u)),
                // Resolution has no error channel: the value is unresolved, which refuses the
                // request unless the operator chose to ignore unresolved values.
                Err(_) => {
                    log::error!("no random bytes from the system for ${{uuid}}");
                    None
                }
            },
            Var::Body(ptr) => v.body?.pointer(ptr).and_then(|x| match x {
                serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
                    Some(Cow::Owned(x.to_string()))
                }
                other => scalar(other),
            }),
            Var::Literal(s) => s.as_deref().map(Cow::Borrowed),
        }
    }

    /// The value as JSON: claims keep their JSON type; everything else is a string.
    pub fn resolve_json(&self, v: &RequestView<'_>) -> Option<serde_json::Value> {
        match self {
            Var::Claim(path) => claim(v, path).cloned(),
            Var::Body(ptr) => v.body?.pointer(ptr).cloned(),
            Var::Now => Some(serde_json::Value::from(v.now())),
            other => other
                .resolve(v)
                .map(|s| serde_json::Value::String(s.into_owned())),
        }
    }

    /// Whether the value comes from the request body (which must then be read first).
    pub fn reads_body(&self) -> bool {
        matches!(self, Var::Body(_))
    }

    /// Whether each resolution may differ (time, randomness).
    pub fn is_volatile(&self) -> bool {
        matches!(self, Var::Now | Var::Uuid)
    }

    /// The values to test: the elements of an array claim, else the single value.
    pub fn resolve_each<'v>(&'v self, v: &'v RequestView<'_>) -> Vec<Cow<'v, str>> {
        if let Var::Claim(path) = self {
            if let Some(serde_json::Value::Array(items)) = claim(v, path) {
                return items.iter().filter_map(scalar).collect();
            }
        }
        self.resolve(v).into_iter().collect()
    }
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A random (v4) UUID from the aws-lc-rs CSPRNG; Err when the system has no randomness (a
/// predictable `jti` would let tokens collide, so there is no fallback).
pub fn uuid_v4() -> Result<String, aws_lc_rs::error::Unspecified> {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// A string with `${var}` references, compiled at load. `$$` is a literal `$`.
#[derive(Debug, Clone)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
enum Part {
    Lit(String),
    Var(Var),
}

impl Template {
    pub fn parse(s: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = s;
        while let Some(i) = rest.find('$') {
            lit.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(a) = after.strip_prefix('$') {
                lit.push('$');
                rest = a;
            } else if let Some(a) = after.strip_prefix('{') {
                let end = a
                    .find('}')
                    .ok_or_else(|| format!("unclosed ${{ in {s:?}"))?;
                if !lit.is_empty() {
                    parts.push(Part::Lit(std::mem::take(&mut lit)));
                }
                parts.push(Part::Var(Var::parse(a[..end].trim())?));
                rest = &a[end + 1..];
            } else {
                lit.push('$');
                rest = after;
            }
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Template { parts })
    }

    /// The text when the template has no variables.
    pub fn as_static(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Lit(s)] => Some(s),
            _ => None,
        }
    }

    /// Whether a rendering may differ between two calls on the same request (now, uuid).
    pub fn is_volatile(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Var(v) if v.is_volatile()))
    }

    /// Whether a variable of the template reads the request body.
    pub fn reads_body(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Var(v) if v.reads_body()))
    }

    /// Render; None when a referenced value is absent.
    pub fn render(&self, v: &RequestView<'_>) -> Option<String> {
        self.render_with(v, |s, out| out.push_str(s))
    }

    /// The template with its `i`-th variable replaced by `marker(i)` and literals as written
    /// (to check, at load, where variables stand in a structured body).
    pub fn with_markers(&self, marker: impl Fn(usize) -> String) -> String {
        let mut out = String::new();
        let mut i = 0;
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var(_) => {
                    out.push_str(&marker(i));
                    i += 1;
                }
            }
        }
        out
    }

    /// Render with each value passed through `escape` (literals are written as they are):
    /// a JSON or form body made from request values stays well-formed whatever they hold.
    pub fn render_with(
        &self,
        v: &RequestView<'_>,
        escape: impl Fn(&str, &mut String),
    ) -> Option<String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var(var) => escape(&var.resolve(v)?, &mut out),
            }
        }
        Some(out)
    }
}

fn claim<'v>(v: &'v RequestView<'_>, path: &str) -> Option<&'v serde_json::Value> {
    crate::jose::claim_at(v.claims?, path).ok().flatten()
}

/// A JSON scalar as text (strings unquoted); objects and null are not scalars.
fn scalar(v: &serde_json::Value) -> Option<Cow<'_, str>> {
    match v {
        serde_json::Value::String(s) => Some(Cow::Borrowed(s)),
        serde_json::Value::Number(n) => Some(Cow::Owned(n.to_string())),
        serde_json::Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        _ => None,
    }
}

#[derive(Debug, Clone)]
pub enum Op {
    Equals(String),
    StartsWith(String),
    EndsWith(String),
    Contains(String),
    Matches(Regex),
    In(Vec<String>),
    Exists(bool),
    Glob(globset::GlobMatcher),
    Cidr(Vec<IpNet>),
}

/// A compiled condition (`when = ...`).
#[derive(Debug, Clone)]
pub enum Condition {
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
    Test { var: Var, op: Op },
}

/// Parse an address or a CIDR into a network.
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n.trunc());
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("{s:?} is not an IP address or CIDR"))
}

impl Condition {
    /// Compile a condition; every problem is pushed with its path.
    pub fn compile(c: &ConditionConfig, path: &str, errs: &mut Errors) -> Option<Condition> {
        let ConditionConfig {
            all,
            any,
            not,
            var,
            equals,
            starts_with,
            ends_with,
            contains,
            matches,
            in_list,
            exists,
            glob,
            cidr,
        } = c;
        let ops = [
            equals.is_some(),
            starts_with.is_some(),
            ends_with.is_some(),
            contains.is_some(),
            matches.is_some(),
            in_list.is_some(),
            exists.is_some(),
            glob.is_some(),
            cidr.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        let forms = [all.is_some(), any.is_some(), not.is_some(), var.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if forms != 1 {
            errs.push(
                path,
                "a condition needs exactly one of all, any, not or var",
            );
            return None;
        }
        let list = |v: &Vec<ConditionConfig>, key: &str, errs: &mut Errors| {
            let out: Vec<_> = v
                .iter()
                .enumerate()
                .filter_map(|(i, c)| Condition::compile(c, &format!("{path}.{key}[{i}]"), errs))
                .collect();
            (out.len() == v.len()).then_some(out)
        };
        if var.is_none() && ops > 0 {
            errs.push(path, "operators (equals, matches, ...) need a `var`");
            return None;
        }
        if let Some(v) = all {
            return list(v, "all", errs).map(Condition::All);
        }
        if let Some(v) = any {
            return list(v, "any", errs).map(Condition::Any);
        }
        if let Some(n) = not {
            return Condition::compile(n, &format!("{path}.not"), errs)
                .map(|c| Condition::Not(Box::new(c)));
        }
        let var_name = var.as_deref().unwrap_or_default();
        let var = match Var::parse(var_name) {
            Ok(v) => v,
            Err(e) => {
                errs.push(format!("{path}.var"), e);
                return None;
            }
        };
        if ops != 1 {
            errs.push(
                path,
                "a `var` test needs exactly one operator: equals, starts_with, ends_with, \
                 contains, matches, in, exists, glob or cidr",
            );
            return None;
        }
        let op = if let Some(s) = equals {
            Op::Equals(s.clone())
        } else if let Some(s) = starts_with {
            Op::StartsWith(s.clone())
        } else if let Some(s) = ends_with {
            Op::EndsWith(s.clone())
        } else if let Some(s) = contains {
            Op::Contains(s.clone())
        } else if let Some(s) = matches {
            match Regex::new(s) {
                Ok(r) => Op::Matches(r),
                Err(e) => {
                    errs.push(format!("{path}.matches"), format!("invalid regex: {e}"));
                    return None;
                }
            }
        } else if let Some(l) = in_list {
            Op::In(l.clone())
        } else if let Some(b) = exists {
            Op::Exists(*b)
        } else if let Some(g) = glob {
            match globset::GlobBuilder::new(g).literal_separator(true).build() {
                Ok(g) => Op::Glob(g.compile_matcher()),
                Err(e) => {
                    errs.push(format!("{path}.glob"), format!("invalid glob: {e}"));
                    return None;
                }
            }
        } else if let Some(nets) = cidr {
            let mut out = Vec::new();
            for (i, n) in nets.iter().enumerate() {
                match parse_net(n) {
                    Ok(n) => out.push(n),
                    Err(e) => errs.push(format!("{path}.cidr[{i}]"), e),
                }
            }
            if out.len() != nets.len() {
                return None;
            }
            Op::Cidr(out)
        } else {
            return None;
        };
        Some(Condition::Test { var, op })
    }

    /// Evaluate against a request. An absent value fails every test except `exists = false`.
    pub fn eval(&self, v: &RequestView<'_>) -> bool {
        match self {
            Condition::All(cs) => cs.iter().all(|c| c.eval(v)),
            Condition::Any(cs) => cs.iter().any(|c| c.eval(v)),
            Condition::Not(c) => !c.eval(v),
            Condition::Test {
                var: Var::ClientIp,
                op: Op::Cidr(nets),
            } => v
                .client_ip
                .is_some_and(|ip| nets.iter().any(|n| n.contains(&ip))),
            Condition::Test { var, op } => {
                if let (Var::Claim(_), false) = (var, matches!(op, Op::Exists(_))) {
                    // Array claims: the test holds when it holds for any element.
                    return var
                        .resolve_each(v)
                        .into_iter()
                        .any(|x| Self::test(op, Some(x)));
                }
                Self::test(op, var.resolve(v))
            }
        }
    }

    fn test(op: &Op, val: Option<Cow<'_, str>>) -> bool {
        {
            {
                match (op, val) {
                    (Op::Exists(want), val) => val.is_some() == *want,
                    (_, None) => false,
                    (Op::Equals(s), Some(x)) => x == s.as_str(),
                    (Op::StartsWith(s), Some(x)) => x.starts_with(s.as_str()),
                    (Op::EndsWith(s), Some(x)) => x.ends_with(s.as_str()),
                    (Op::Contains(s), Some(x)) => x.contains(s.as_str()),
                    (Op::Matches(r), Some(x)) => r.is_match(&x),
                    (Op::In(l), Some(x)) => l.iter().any(|s| s == x.as_ref()),
                    (Op::Glob(g), Some(x)) => g.is_match(x.as_ref()),
                    (Op::Cidr(nets), Some(x)) => x
                        .parse::<IpAddr>()
                        .map(|ip| nets.iter().any(|n| n.contains(&ip)))
                        .unwrap_or(false),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora_http::RequestHeader;

    fn req(uri: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", uri.as_bytes(), None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    fn cond(toml_src: &str) -> Condition {
        let c: ConditionConfig = toml::from_str(toml_src).unwrap();
        let mut e = Errors::default();
        let out = Condition::compile(&c, "when", &mut e);
        assert!(e.is_empty(), "{:?}", e.0);
        out.unwrap()
    }

    #[test]
    fn tests_and_combinators() {
        let r = req(
            "/api/v1/items?debug=1&name=a%20b",
            &[
                ("host", "api.example.com:8080"),
                ("cookie", "a=1; sid=xyz"),
                ("x-env", "prod"),
            ],
        );
        let v = RequestView {
            req: &r,
            client_ip: "10.1.2.3".parse().ok(),
            route: "api",
            claims: None,
            identity: None,
            vars: None,
            body: None,
            raw_body: None,
            now: None,
        };
        assert!(cond(
            r#"var = "host"
equals = "api.example.com""#
        )
        .eval(&v));
        assert!(cond(
            r#"var = "query.name"
equals = "a b""#
        )
        .eval(&v));
        assert!(cond(
            r#"var = "cookie.sid"
equals = "xyz""#
        )
        .eval(&v));
        assert!(cond(
            r#"var = "path"
glob = "/api/*/items""#
        )
        .eval(&v));
        assert!(!cond(
            r#"var = "path"
glob = "/api/*""#
        )
        .eval(&v));
        assert!(cond(
            r#"var = "client_ip"
cidr = ["10.0.0.0/8"]"#
        )
        .eval(&v));
        assert!(cond(r#"not = { var = "header.x-missing", exists = true }"#).eval(&v));
        assert!(cond(
            r#"all = [{ var = "method", in = ["GET", "HEAD"] }, { var = "request.header.x-env", matches = "^pr" }]"#
        )
        .eval(&v));
        assert!(cond(
            r#"any = [{ var = "route", equals = "x" }, { var = "route", ends_with = "pi" }]"#
        )
        .eval(&v));
    }

    #[test]
    fn identity_attributes_read_claims() {
        let r = req("/", &[]);
        let claims: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(r#"{"sub":"u1","email":"a@b.c","roles":["x","y"]}"#).unwrap();
        let mut v = RequestView::new(&r, None);
        v.claims = Some(&claims);
        v.identity = Some("u1");
        assert_eq!(Var::parse("identity").unwrap().resolve(&v).unwrap(), "u1");
        assert_eq!(
            Var::parse("identity.email").unwrap().resolve(&v).unwrap(),
            "a@b.c"
        );
        assert_eq!(
            Var::parse("identity.roles").unwrap().resolve(&v).unwrap(),
            "x,y"
        );
    }

    #[test]
    fn templates() {
        let r = req("/p?x=1", &[("x-a", "A")]);
        let v = RequestView::new(&r, None);
        let t = Template::parse("pre-${header.x-a}-$${x}-${query.x}$").unwrap();
        assert_eq!(t.render(&v).unwrap(), "pre-A-${x}-1$");
        assert!(Template::parse("${header.missing}")
            .unwrap()
            .render(&v)
            .is_none());
        assert!(Template::parse("${nope}").is_err());
        assert!(Template::parse("${header.x").is_err());
        assert_eq!(Template::parse("plain").unwrap().as_static(), Some("plain"));
        let u = uuid_v4().unwrap();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }

    #[test]
    fn compile_errors_have_paths() {
        let c: ConditionConfig = toml::from_str(
            r#"all = [{ var = "headr.x", equals = "1" }, { var = "path", matches = "(" }]"#,
        )
        .unwrap();
        let mut e = Errors::default();
        assert!(Condition::compile(&c, "routes[0].policies[1].when", &mut e).is_none());
        let paths: Vec<_> = e.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "routes[0].policies[1].when.all[0].var",
                "routes[0].policies[1].when.all[1].matches"
            ]
        );
    }
}
