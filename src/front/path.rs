//! The canonical request path: the one spelling that routes, conditions, ACLs, templates, logs
//! and the upstream all see, so that no spelling of a protected path walks around its policies.
//!
//! Rules, in order (each is one pass over the bytes; a target already canonical costs one scan
//! and no allocation):
//! 1. Every byte must be an RFC 3986 `pchar` or `/`; a `%` must start a valid `%XX` escape of
//!    a byte that is not a control byte (`%00`, `%0A` are refused).
//!    Anything else (space, `\`, `"`, `<`, non-ASCII, control bytes, a fragment) is refused.
//! 2. Escapes of unreserved characters are decoded (`%61` -> `a`, `%2e` -> `.`); every other
//!    escape stays encoded with upper-case hex (`%3a` -> `%3A`).
//! 3. An escaped `/` or `\` (`%2F`, `%5C`) is refused, kept, or decoded to `/`
//!    ([`EscapedSlash`]; Envoy's `path_with_escaped_slashes_action`).
//! 4. `;` path parameters (`/a;jsessionid=1/b`, Tomcat's `..;`) are refused, kept, or stripped
//!    from each segment ([`PathParams`]).
//! 5. Repeated slashes are merged (nginx `merge_slashes`, Envoy `merge_slashes`), unless off.
//! 6. Dot segments are removed as RFC 3986 §5.2.4 says (Envoy `normalize_path`); `..` never
//!    climbs above the root.
//!
//! The result is a fixed point: canonicalising it again changes nothing (a fuzz property).
//! Hand-written because no maintained crate does rules 1-6 together on raw request bytes
//! without allocating for the common, already-canonical path.

use std::borrow::Cow;

/// What to do with `%2F` and `%5C` in a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscapedSlash {
    /// 400: most backends decode them and would see another path than the gateway did.
    Reject,
    /// Leave them encoded (`%2F`), for APIs that carry slashes inside a segment.
    Keep,
    /// Decode both to `/` before merging slashes and removing dot segments.
    Decode,
}

/// What to do with `;` in a path segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathParams {
    /// 400: Java servlet containers strip `;...` from segments (`/..;/admin` is `/../admin`).
    Reject,
    /// Leave `;` as an ordinary character.
    Keep,
    /// Remove `;...` up to the end of each segment before removing dot segments.
    Strip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathRules {
    pub merge_slashes: bool,
    pub escaped_slash: EscapedSlash,
    pub path_params: PathParams,
}

impl Default for PathRules {
    fn default() -> Self {
        PathRules {
            merge_slashes: true,
            escaped_slash: EscapedSlash::Reject,
            path_params: PathParams::Reject,
        }
    }
}

/// Why a path was refused (all 400 `invalid_path`; the reason goes to the debug log).
/// `BadEscape` covers `%` not followed by two hex digits and escaped control bytes (`%00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    NotOriginForm,
    BadByte,
    BadEscape,
    EscapedSlash,
    PathParam,
}

macro_rules! table {
    ($f:ident) => {{
        let mut t = [false; 256];
        let mut i = 0;
        while i < 256 {
            t[i] = $f(i as u8);
            i += 1;
        }
        t
    }};
}

const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// `pchar` without `%` and `;`, plus `/`: bytes that never need a second look.
const fn is_plain(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b'='
                | b':'
                | b'@'
                | b'/'
        )
}

static PLAIN: [bool; 256] = table!(is_plain);
static UNRESERVED: [bool; 256] = table!(is_unreserved);

/// Bytes allowed in a query: RFC 3986 `query` (pchar, `/`, `?`); `%` is checked loosely
/// (a query is not canonicalised, only kept free of bytes that break HTTP or logs).
const fn is_query(b: u8) -> bool {
    is_plain(b)
        || matches!(
            b,
            b'%' | b';' | b'?' | b'[' | b']' | b'{' | b'}' | b'|' | b'^' | b'`'
        )
}
static QUERY: [bool; 256] = table!(is_query);

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Whether the already-valid query bytes are acceptable.
pub fn query_ok(q: &[u8]) -> bool {
    q.iter().all(|&b| QUERY[b as usize])
}

/// The canonical form of an origin-form path (no query). Borrowed when nothing changes.
pub fn canonicalize<'a>(path: &'a str, rules: &PathRules) -> Result<Cow<'a, str>, PathError> {
    let b = path.as_bytes();
    if b.first() != Some(&b'/') {
        return Err(PathError::NotOriginForm);
    }
    if is_canonical(b, rules) {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode(b, rules)?;
    let merged = if rules.merge_slashes {
        merge(&decoded)
    } else {
        decoded
    };
    let out = remove_dot_segments(&merged);
    // Only ASCII is ever written.
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| PathError::BadByte)
}

/// The fast path: plain bytes only, no `//` (when merging), no `.` or `..` segment.
fn is_canonical(b: &[u8], rules: &PathRules) -> bool {
    let mut prev = 0u8;
    for (i, &c) in b.iter().enumerate() {
        if !PLAIN[c as usize] {
            return false;
        }
        if prev == b'/' {
            if c == b'/' && rules.merge_slashes {
                return false;
            }
            if c == b'.' {
                let rest = &b[i..];
                let seg = rest.split(|&x| x == b'/').next().unwrap_or(rest);
                if seg == b"." || seg == b".." {
                    return false;
                }
            }
        }
        prev = c;
    }
    true
}

/// Rules 1-4: validate, decode unreserved escapes, upper-case the rest, apply the slash and
/// parameter actions.
fn decode(b: &[u8], rules: &PathRules) -> Result<Vec<u8>, PathError> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    // Inside a `;` parameter being stripped: skip until the next `/`.
    let mut skipping = false;
    while i < b.len() {
        let c = b[i];
        if c == b'/' {
            skipping = false;
            out.push(c);
            i += 1;
            continue;
        }
        if c == b'%' {
            let (h, l) = match (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            ) {
                (Some(h), Some(l)) => (h, l),
                _ => return Err(PathError::BadEscape),
            };
            let v = h * 16 + l;
            i += 3;
            if skipping {
                continue;
            }
            // `%00` and other control bytes end or split paths in C-based backends.
            if v < 0x20 || v == 0x7f {
                return Err(PathError::BadEscape);
            }
            if v == b'/' || v == b'\\' {
                match rules.escaped_slash {
                    EscapedSlash::Reject => return Err(PathError::EscapedSlash),
                    EscapedSlash::Decode => {
                        skipping = false;
                        out.push(b'/');
                        continue;
                    }
                    EscapedSlash::Keep => {}
                }
            }
            if UNRESERVED[v as usize] {
                out.push(v);
            } else {
                out.push(b'%');
                out.extend_from_slice(&upper_hex(v));
            }
            continue;
        }
        if c == b';' {
            match rules.path_params {
                PathParams::Reject => return Err(PathError::PathParam),
                PathParams::Strip => {
                    skipping = true;
                    i += 1;
                    continue;
                }
                PathParams::Keep => {}
            }
        } else if !PLAIN[c as usize] {
            return Err(PathError::BadByte);
        }
        if !skipping {
            out.push(c);
        }
        i += 1;
    }
    Ok(out)
}

fn upper_hex(v: u8) -> [u8; 2] {
    const H: &[u8; 16] = b"0123456789ABCDEF";
    [H[(v >> 4) as usize], H[(v & 15) as usize]]
}

fn merge(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    for &c in b {
        if c == b'/' && out.last() == Some(&b'/') {
            continue;
        }
        out.push(c);
    }
    out
}

/// RFC 3986 §5.2.4 on an absolute path (starts with `/`), segment by segment.
fn remove_dot_segments(b: &[u8]) -> Vec<u8> {
    let mut segs: Vec<&[u8]> = Vec::new();
    // The path is `/` + segments joined by `/`; a trailing `.` or `..` leaves a trailing slash.
    let body = &b[1..];
    let parts: Vec<&[u8]> = body.split(|&c| c == b'/').collect();
    let last = parts.len().saturating_sub(1);
    let mut trailing = false;
    for (i, p) in parts.iter().enumerate() {
        match *p {
            b"." => trailing = i == last,
            b".." => {
                segs.pop();
                trailing = i == last;
            }
            s => {
                segs.push(s);
                trailing = false;
            }
        }
    }
    let mut out = Vec::with_capacity(b.len());
    for s in &segs {
        out.push(b'/');
        out.extend_from_slice(s);
    }
    if trailing || out.is_empty() {
        out.push(b'/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(p: &str) -> Result<String, PathError> {
        canonicalize(p, &PathRules::default()).map(|c| c.into_owned())
    }

    fn with(p: &str, rules: PathRules) -> Result<String, PathError> {
        canonicalize(p, &rules).map(|c| c.into_owned())
    }

    #[test]
    fn canonical_paths_are_borrowed() {
        for p in [
            "/",
            "/a/b",
            "/a/b/",
            "/api/v1/x.json",
            "/a..b/.c/d.",
            "/~u/!$&'()*+,=:@",
        ] {
            assert!(
                matches!(canonicalize(p, &PathRules::default()), Ok(Cow::Borrowed(_))),
                "{p}"
            );
        }
    }

    #[test]
    fn dot_segments_are_removed() {
        assert_eq!(c("/./admin/x").unwrap(), "/admin/x");
        assert_eq!(c("/public/../admin/x").unwrap(), "/admin/x");
        assert_eq!(c("/public/%2e%2e/admin/x").unwrap(), "/admin/x");
        assert_eq!(c("/public/.%2E/admin/x").unwrap(), "/admin/x");
        assert_eq!(c("/../../admin").unwrap(), "/admin");
        assert_eq!(c("/a/b/..").unwrap(), "/a/");
        assert_eq!(c("/a/.").unwrap(), "/a/");
        assert_eq!(c("/..").unwrap(), "/");
        assert_eq!(c("/a/..b/c").unwrap(), "/a/..b/c");
    }

    #[test]
    fn slashes_are_merged_unless_off() {
        assert_eq!(c("//admin/x").unwrap(), "/admin/x");
        assert_eq!(c("/a///b//").unwrap(), "/a/b/");
        assert_eq!(c("/a/..//b").unwrap(), "/b");
        let keep = PathRules {
            merge_slashes: false,
            ..PathRules::default()
        };
        assert_eq!(with("//admin", keep).unwrap(), "//admin");
    }

    #[test]
    fn unreserved_escapes_are_decoded_others_uppercased() {
        assert_eq!(c("/%61dmin/x").unwrap(), "/admin/x");
        assert_eq!(c("/a%7eb%2D").unwrap(), "/a~b-");
        assert_eq!(c("/a%3ab%20c").unwrap(), "/a%3Ab%20c");
        assert_eq!(c("/%252e%252e/").unwrap(), "/%252e%252e/");
        assert_eq!(c("/a%"), Err(PathError::BadEscape));
        assert_eq!(c("/a%4"), Err(PathError::BadEscape));
        assert_eq!(c("/a%zz"), Err(PathError::BadEscape));
        assert_eq!(c("/admin%00/x"), Err(PathError::BadEscape));
        assert_eq!(c("/a%0d%0ab"), Err(PathError::BadEscape));
        assert_eq!(c("/a%7F"), Err(PathError::BadEscape));
    }

    #[test]
    fn escaped_slashes_follow_the_rule() {
        assert_eq!(c("/a%2Fb"), Err(PathError::EscapedSlash));
        assert_eq!(c("/a%5cb"), Err(PathError::EscapedSlash));
        let keep = PathRules {
            escaped_slash: EscapedSlash::Keep,
            ..PathRules::default()
        };
        assert_eq!(with("/a%2fb", keep).unwrap(), "/a%2Fb");
        let decode = PathRules {
            escaped_slash: EscapedSlash::Decode,
            ..PathRules::default()
        };
        assert_eq!(with("/public%2F..%2Fadmin", decode).unwrap(), "/admin");
        assert_eq!(with("/a%5C%5Cb", decode).unwrap(), "/a/b");
    }

    #[test]
    fn path_parameters_follow_the_rule() {
        assert_eq!(c("/public/..;/admin/x"), Err(PathError::PathParam));
        let strip = PathRules {
            path_params: PathParams::Strip,
            ..PathRules::default()
        };
        assert_eq!(with("/public/..;/admin/x", strip).unwrap(), "/admin/x");
        assert_eq!(with("/a;jsessionid=1/b;x", strip).unwrap(), "/a/b");
        assert_eq!(with("/a;%2F/b", strip).unwrap(), "/a/b");
        let keep = PathRules {
            path_params: PathParams::Keep,
            ..PathRules::default()
        };
        assert_eq!(
            with("/public/..;/admin", keep).unwrap(),
            "/public/..;/admin"
        );
    }

    #[test]
    fn bad_bytes_and_forms_are_refused() {
        for p in [
            "/a b", "/a\\b", "/a\"b", "/a<b", "/a#f", "/a\u{e9}", "/a\tb", "/a{b}", "/a|b",
        ] {
            assert_eq!(c(p), Err(PathError::BadByte), "{p:?}");
        }
        assert_eq!(c("admin/x"), Err(PathError::NotOriginForm));
        assert_eq!(c("*"), Err(PathError::NotOriginForm));
        assert_eq!(c(""), Err(PathError::NotOriginForm));
    }

    #[test]
    fn result_is_a_fixed_point() {
        let rules = [
            PathRules::default(),
            PathRules {
                merge_slashes: false,
                escaped_slash: EscapedSlash::Keep,
                path_params: PathParams::Keep,
            },
            PathRules {
                merge_slashes: true,
                escaped_slash: EscapedSlash::Decode,
                path_params: PathParams::Strip,
            },
        ];
        for r in &rules {
            for p in [
                "/a/./b/../c//d/%2e/",
                "//..//x",
                "/a%2F%2e%2E/b;c/..;/d",
                "/%7e/./%41/",
                "/a/b/c/../../..//../",
            ] {
                let Ok(once) = canonicalize(p, r) else {
                    continue;
                };
                let twice = canonicalize(&once, r).unwrap();
                assert_eq!(once, twice, "{p} with {r:?}");
            }
        }
    }

    #[test]
    fn queries_refuse_only_bytes_that_break_http() {
        assert!(query_ok(b"a=1&b=%ZZ&c={x}|y;z?w"));
        assert!(!query_ok(b"a=1 2"));
        assert!(!query_ok(b"a=1#f"));
        assert!(!query_ok(b"a=\x01"));
        assert!(!query_ok("a=\u{e9}".as_bytes()));
    }
}
