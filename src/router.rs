//! Route matching: host (exact or `*.suffix`), path (exact, prefix or regex), methods, headers.
//! Routes are tried in config order and the first match wins, so operators read the order of
//! precedence straight from the file.

use crate::config::MatchConfig;
use crate::error::Errors;
use crate::request::RequestView;
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
}
