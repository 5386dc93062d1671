//! Route matching: host (exact or `*.suffix`), path (exact, prefix or regex), methods, headers.
//! The first route in config order that matches wins, so operators read the order of
//! precedence straight from the file. [`RouteIndex`] finds the candidates of a request by host
//! and path without scanning the routes; the result is the one a scan in file order gives.

use crate::config::MatchConfig;
use crate::error::Errors;
use crate::request::RequestView;
use ahash::AHashMap as HashMap;
use http::{HeaderName, HeaderValue, Method};
use regex::Regex;

#[derive(Debug, Clone)]
enum HostMatch {
    Exact(String),
    /// `*.example.com` stored as `.example.com`.
    Suffix(String),
}

#[derive(Debug, Clone)]
pub enum PathMatch {
    Any,
    Exact(String),
    /// Matches the prefix itself and anything below it at a segment boundary
    /// (`/api` matches `/api` and `/api/x`, not `/apix`), unless the prefix ends in `/`.
    Prefix(String),
    Regex(Regex),
}

/// A compiled route matcher.
#[derive(Debug, Clone)]
pub struct Matcher {
    hosts: Vec<HostMatch>,
    pub path: PathMatch,
    methods: Vec<Method>,
    headers: Vec<(HeaderName, Option<HeaderValue>)>,
}

impl Matcher {
    pub fn compile(m: &MatchConfig, path: &str, errs: &mut Errors) -> Matcher {
        let MatchConfig {
            hosts,
            path_exact,
            path_prefix,
            path_regex,
            methods,
            headers,
        } = m;
        let hosts = hosts
            .iter()
            .map(|h| {
                let h = h.to_ascii_lowercase();
                match h.strip_prefix('*') {
                    Some(rest) if rest.starts_with('.') => HostMatch::Suffix(rest.to_string()),
                    _ => HostMatch::Exact(h),
                }
            })
            .collect();
        let n_paths = [
            path_exact.is_some(),
            path_prefix.is_some(),
            path_regex.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if n_paths > 1 {
            errs.push(
                path,
                "use at most one of path_exact, path_prefix and path_regex",
            );
        }
        let pm = if let Some(p) = path_exact {
            if !p.starts_with('/') {
                errs.push(format!("{path}.path_exact"), "must start with '/'");
            }
            PathMatch::Exact(p.clone())
        } else if let Some(p) = path_prefix {
            if !p.starts_with('/') {
                errs.push(format!("{path}.path_prefix"), "must start with '/'");
            }
            PathMatch::Prefix(p.clone())
        } else if let Some(r) = path_regex {
            match Regex::new(r) {
                Ok(r) => PathMatch::Regex(r),
                Err(e) => {
                    errs.push(format!("{path}.path_regex"), format!("invalid regex: {e}"));
                    PathMatch::Any
                }
            }
        } else {
            PathMatch::Any
        };
        let mut ms = Vec::new();
        for (i, m) in methods.iter().enumerate() {
            match Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
                Ok(m) => ms.push(m),
                Err(_) => errs.push(
                    format!("{path}.methods[{i}]"),
                    format!("invalid method {m:?}"),
                ),
            }
        }
        let mut hs = Vec::new();
        for (k, v) in headers {
            let Ok(name) = HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()) else {
                errs.push(format!("{path}.headers.{k}"), "invalid header name");
                continue;
            };
            if v == "*" {
                hs.push((name, None));
            } else {
                match HeaderValue::from_str(v) {
                    Ok(v) => hs.push((name, Some(v))),
                    Err(_) => errs.push(format!("{path}.headers.{k}"), "invalid header value"),
                }
            }
        }
        Matcher {
            hosts,
            path: pm,
            methods: ms,
            headers: hs,
        }
    }

    pub fn matches(&self, v: &RequestView<'_>) -> bool {
        let req = v.req;
        if !self.methods.is_empty() && !self.methods.contains(&req.method) {
            return false;
        }
        if !self.path_matches(req.uri.path()) {
            return false;
        }
        if !self.hosts.is_empty() {
            let Some(host) = v.host() else { return false };
            let ok = self.hosts.iter().any(|h| match h {
                HostMatch::Exact(e) => host.eq_ignore_ascii_case(e),
                HostMatch::Suffix(s) => {
                    host.len() > s.len()
                        && host
                            .get(host.len() - s.len()..)
                            .is_some_and(|t| t.eq_ignore_ascii_case(s))
                }
            });
            if !ok {
                return false;
            }
        }
        self.headers.iter().all(|(n, want)| match want {
            None => req.headers.contains_key(n),
            Some(w) => req.headers.get_all(n).iter().any(|v| v == w),
        })
    }

    fn path_matches(&self, p: &str) -> bool {
        match &self.path {
            PathMatch::Any => true,
            PathMatch::Exact(e) => p == e,
            PathMatch::Prefix(pre) => {
                p.starts_with(pre.as_str())
                    && (pre.ends_with('/')
                        || p.len() == pre.len()
                        || p.as_bytes().get(pre.len()) == Some(&b'/'))
            }
            PathMatch::Regex(r) => r.is_match(p),
        }
    }
}

/// The routes' matchers compiled into an index: a request's candidates are found by its host
/// (exact in a hash map, `*.suffix` by each dot suffix of the host) and its path (exact in a
/// hash map, prefixes in a segment trie), so the lookup costs what the request's host and path
/// cost, not what the number of routes costs. Regex and path-less routes are candidates of
/// every request of their host bucket. The candidates are then checked in file order with the
/// full matcher, so the first route in the file that matches wins, exactly as a linear scan.
#[derive(Debug, Default)]
pub struct RouteIndex {
    exact_hosts: HashMap<String, PathIndex>,
    suffix_hosts: HashMap<String, PathIndex>,
    any_host: PathIndex,
}

#[derive(Debug, Default)]
struct PathIndex {
    exact: HashMap<String, Vec<u32>>,
    prefixes: Node,
    /// Regex and `Any` paths: tried for every request that reaches this bucket.
    others: Vec<u32>,
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    /// Prefixes ending at this node: they match here and below.
    here: Vec<u32>,
    /// Prefixes ending in `/` at this node: they match strictly below.
    below: Vec<u32>,
}

impl PathIndex {
    fn insert(&mut self, path: &PathMatch, i: u32) {
        match path {
            PathMatch::Exact(e) => self.exact.entry(e.clone()).or_default().push(i),
            PathMatch::Prefix(p) => {
                let (segs, below) = match p.strip_suffix('/') {
                    Some(rest) => (rest, true),
                    None => (p.as_str(), false),
                };
                let mut node = &mut self.prefixes;
                for seg in segs.split('/') {
                    node = node.children.entry(Box::from(seg)).or_default();
                }
                if below {
                    node.below.push(i);
                } else {
                    node.here.push(i);
                }
            }
            PathMatch::Any | PathMatch::Regex(_) => self.others.push(i),
        }
    }

    /// Hand each list of candidates for `path` (each ascending) to `f`.
    fn visit(&self, path: &str, f: &mut impl FnMut(&[u32])) {
        if let Some(v) = self.exact.get(path) {
            f(v);
        }
        f(&self.others);
        let mut node = &self.prefixes;
        let mut segs = path.split('/').peekable();
        while let Some(seg) = segs.next() {
            let Some(next) = node.children.get(seg) else {
                return;
            };
            node = next;
            f(&node.here);
            if segs.peek().is_some() {
                f(&node.below);
            }
        }
    }
}

impl RouteIndex {
    /// Index the matchers of the routes, in file order.
    pub fn new<'a>(matchers: impl Iterator<Item = &'a Matcher>) -> RouteIndex {
        let mut idx = RouteIndex::default();
        for (i, m) in matchers.enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            if m.hosts.is_empty() {
                idx.any_host.insert(&m.path, i);
            }
            for h in &m.hosts {
                let bucket = match h {
                    HostMatch::Exact(e) => idx.exact_hosts.entry(e.clone()).or_default(),
                    HostMatch::Suffix(s) => idx.suffix_hosts.entry(s.clone()).or_default(),
                };
                bucket.insert(&m.path, i);
            }
        }
        idx
    }

    /// The first route (in file order) among the request's candidates that `matches`
    /// accepts. Every list of candidates is ascending, so each is read only up to its first
    /// accepted route or the best one found so far; nothing is allocated.
    pub fn first(&self, v: &RequestView<'_>, matches: impl Fn(usize) -> bool) -> Option<usize> {
        let mut best = usize::MAX;
        let mut consider = |list: &[u32]| {
            for &i in list {
                let i = i as usize;
                if i >= best {
                    break;
                }
                if matches(i) {
                    best = i;
                    break;
                }
            }
        };
        let path = v.req.uri.path();
        self.any_host.visit(path, &mut consider);
        if let Some(host) = v.host() {
            let lower;
            let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
                lower = host.to_ascii_lowercase();
                lower.as_str()
            } else {
                host
            };
            if let Some(b) = self.exact_hosts.get(host) {
                b.visit(path, &mut consider);
            }
            if !self.suffix_hosts.is_empty() {
                for (at, _) in host.match_indices('.').filter(|(at, _)| *at > 0) {
                    if let Some(b) = host.get(at..).and_then(|s| self.suffix_hosts.get(s)) {
                        b.visit(path, &mut consider);
                    }
                }
            }
        }
        (best != usize::MAX).then_some(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora_http::RequestHeader;

    fn m(src: &str) -> Matcher {
        let c: MatchConfig = toml::from_str(src).unwrap();
        let mut e = Errors::default();
        let m = Matcher::compile(&c, "routes[0].match", &mut e);
        assert!(e.is_empty(), "{:?}", e.0);
        m
    }

    fn hit(m: &Matcher, method: &str, uri: &str, host: &str) -> bool {
        let mut r = RequestHeader::build(method, uri.as_bytes(), None).unwrap();
        r.insert_header("host", host).unwrap();
        m.matches(&RequestView {
            req: &r,
            client_ip: None,
            route: "",
            claims: None,
            identity: None,
            vars: None,
            body: None,
            raw_body: None,
            now: None,
        })
    }

    #[test]
    fn prefix_respects_segments() {
        let p = m(r#"path_prefix = "/api""#);
        assert!(hit(&p, "GET", "/api", "h"));
        assert!(hit(&p, "GET", "/api/x?q=1", "h"));
        assert!(!hit(&p, "GET", "/apix", "h"));
    }

    #[test]
    fn hosts_methods_regex() {
        let p = m(r#"hosts = ["*.example.com", "exact.org"]
methods = ["get"]
path_regex = "^/v[0-9]+/"
"#);
        assert!(hit(&p, "GET", "/v2/a", "a.example.com:8443"));
        assert!(hit(&p, "GET", "/v2/a", "EXACT.org"));
        assert!(!hit(&p, "GET", "/v2/a", "example.com"));
        assert!(!hit(&p, "POST", "/v2/a", "exact.org"));
        assert!(!hit(&p, "GET", "/x/v2/", "exact.org"));
    }

    #[test]
    fn bad_config_paths() {
        let c: MatchConfig = toml::from_str(
            r#"path_regex = "(" 
methods = ["G E T"]
path_prefix = "/a""#,
        )
        .unwrap();
        let mut e = Errors::default();
        Matcher::compile(&c, "routes[3].match", &mut e);
        let paths: Vec<_> = e.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["routes[3].match", "routes[3].match.methods[0]"]);
    }

    mod index {
        use super::*;
        use proptest::prelude::*;

        fn seg() -> impl Strategy<Value = &'static str> {
            prop::sample::select(vec!["a", "b", "ab", "", "A"])
        }

        fn path() -> impl Strategy<Value = String> {
            prop::collection::vec(seg(), 0..4).prop_map(|s| format!("/{}", s.join("/")))
        }

        fn matcher() -> impl Strategy<Value = MatchConfig> {
            let host = prop::sample::select(vec!["a.com", "b.a.com", "*.a.com", "x.org", "*.org"]);
            (
                prop::collection::vec(host, 0..3),
                0..5u8,
                path(),
                any::<bool>(),
                prop::collection::vec(prop::sample::select(vec!["GET", "POST"]), 0..2),
            )
                .prop_map(|(hosts, kind, p, slash, methods)| {
                    let mut c = MatchConfig {
                        hosts: hosts.into_iter().map(str::to_string).collect(),
                        methods: methods.into_iter().map(str::to_string).collect(),
                        ..MatchConfig::default()
                    };
                    let p = if slash && !p.ends_with('/') {
                        format!("{p}/")
                    } else {
                        p
                    };
                    match kind {
                        0 => c.path_exact = Some(p),
                        1 | 2 => c.path_prefix = Some(p),
                        3 => c.path_regex = Some(format!("^{}", regex::escape(&p))),
                        _ => {}
                    }
                    c
                })
        }

        fn request() -> impl Strategy<Value = (String, String, String)> {
            let host = prop::sample::select(vec![
                "a.com",
                "b.a.com",
                "c.b.a.com",
                "A.COM",
                "x.org",
                "y.x.org",
                "a.com:8080",
                "other",
            ]);
            (
                prop::sample::select(vec!["GET", "POST", "PUT"]),
                path(),
                host,
            )
                .prop_map(|(m, p, h)| (m.to_string(), p, h.to_string()))
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]
            #[test]
            fn the_index_finds_what_a_linear_scan_finds(
                configs in prop::collection::vec(matcher(), 1..24),
                reqs in prop::collection::vec(request(), 1..16),
            ) {
                let mut e = Errors::default();
                let ms: Vec<Matcher> = configs.iter().map(|c| Matcher::compile(c, "m", &mut e)).collect();
                prop_assume!(e.is_empty());
                let idx = RouteIndex::new(ms.iter());
                for (method, p, host) in &reqs {
                    let mut r = RequestHeader::build(method.as_str(), p.as_bytes(), None).unwrap();
                    r.insert_header("host", host.as_str()).unwrap();
                    let v = RequestView::new(&r, None);
                    let linear = ms.iter().position(|m| m.matches(&v));
                    let indexed = idx.first(&v, |i| ms[i].matches(&v));
                    prop_assert_eq!(linear, indexed, "{} {} host {}", method, p, host);
                }
            }
        }
    }
}
