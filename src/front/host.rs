//! Host (and HTTP/2 `:authority`) parsing: one spelling per host, so that a host-matched route
//! cannot be walked around with `Internal.Example.`, `internal.example.:80` or `a.example, b`.
//!
//! The name is lower-cased and one trailing dot is removed. A port must be 1-65535 in digits;
//! it is dropped when it is the listener's own port or the scheme's default (Envoy's
//! `strip_matching_host_port`), and kept otherwise. Anything that is not an RFC 3986 reg-name,
//! IPv4 address or bracketed IPv6 literal (a comma list, userinfo, spaces, an empty name) is
//! refused.

/// A parsed Host: the normalized name (borrowed when the client already sent it so) and the
/// port the client named, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host<'a> {
    pub name: std::borrow::Cow<'a, str>,
    pub port: Option<u16>,
}

impl Host<'_> {
    /// Whether `v` is already exactly this host's header value (no rewrite needed).
    pub fn is(&self, v: &[u8]) -> bool {
        match self.port {
            None => v == self.name.as_bytes(),
            Some(p) => {
                v.len() > self.name.len()
                    && v.starts_with(self.name.as_bytes())
                    && v[self.name.len()] == b':'
                    && std::str::from_utf8(&v[self.name.len() + 1..]).ok() == Some(&p.to_string())
            }
        }
    }

    /// The `Host` header value sent on: `name` or `name:port`.
    pub fn header_value(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.name),
            None => self.name.to_string(),
        }
    }
}

const fn is_reg_name(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b'='
        )
}

/// Parse a Host value. `default_ports` are stripped (the listener's port and 80 or 443).
pub fn parse<'a>(v: &'a [u8], default_ports: &[u16]) -> Option<Host<'a>> {
    if v.is_empty() || v.len() > 255 + 7 {
        return None;
    }
    let (name, port) = if v.first() == Some(&b'[') {
        let end = v.iter().position(|&b| b == b']')?;
        let lit = std::str::from_utf8(&v[1..end]).ok()?;
        let ip: std::net::Ipv6Addr = lit.parse().ok()?;
        let rest = &v[end + 1..];
        let port = match rest {
            [] => None,
            [b':', p @ ..] => Some(p),
            _ => return None,
        };
        (std::borrow::Cow::Owned(format!("[{ip}]")), port)
    } else {
        let (n, p) = match v.iter().rposition(|&b| b == b':') {
            Some(i) => (&v[..i], Some(&v[i + 1..])),
            None => (v, None),
        };
        let n = n.strip_suffix(b".").unwrap_or(n);
        if n.is_empty()
            || n.last() == Some(&b'.')
            || !n.iter().all(|&b| is_reg_name(b))
            || n.contains(&b':')
        {
            return None;
        }
        // Empty labels (`a..b`, a leading dot) name nothing a DNS resolver would find.
        if n.first() == Some(&b'.') || n.windows(2).any(|w| w == b"..") {
            return None;
        }
        // reg-name bytes are ASCII.
        let n = std::str::from_utf8(n).ok()?;
        let name = if n.bytes().any(|b| b.is_ascii_uppercase()) {
            std::borrow::Cow::Owned(n.to_ascii_lowercase())
        } else {
            std::borrow::Cow::Borrowed(n)
        };
        (name, p)
    };
    let port = match port {
        None => None,
        Some(p) => {
            if p.is_empty() || p.len() > 5 || !p.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let n: u32 = std::str::from_utf8(p).ok()?.parse().ok()?;
            if n == 0 || n > 65535 {
                return None;
            }
            Some(n as u16)
        }
    };
    let port = port.filter(|p| !default_ports.contains(p));
    Some(Host { name, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &str) -> Option<Host<'_>> {
        parse(v.as_bytes(), &[8080, 80])
    }

    fn name(v: &str) -> String {
        p(v).unwrap().header_value()
    }

    #[test]
    fn names_are_normalized() {
        assert_eq!(name("Internal.Example"), "internal.example");
        assert_eq!(name("internal.example."), "internal.example");
        assert_eq!(name("internal.example.:80"), "internal.example");
        assert_eq!(name("internal.example:8080"), "internal.example");
        assert_eq!(name("internal.example:9000"), "internal.example:9000");
        assert_eq!(name("127.0.0.1:8080"), "127.0.0.1");
        assert_eq!(name("[::1]:9000"), "[::1]:9000");
        assert_eq!(name("[0:0::1]"), "[::1]");
    }

    #[test]
    fn malformed_hosts_are_refused() {
        for v in [
            "",
            ":80",
            "a:abc",
            "a:",
            "a:0",
            "a:65536",
            "a:+80",
            "a.example, b.example",
            "user@a.example",
            "a b",
            "a..b",
            ".a",
            "a.example..",
            "[::1",
            "[::1]x",
            "[nope]",
            "a:1:2",
            "a/b",
            "a\\b",
            "a%2eb",
        ] {
            assert_eq!(p(v), None, "{v:?}");
        }
    }
}
