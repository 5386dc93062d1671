//! The client's address: the socket peer, unless the peer is a trusted proxy, in which case the
//! `Forwarded` (RFC 7239) or `X-Forwarded-For` chain is walked from the right, skipping trusted
//! hops, and the first untrusted address is the client. Headers from untrusted peers are never
//! believed, so a client cannot choose its own address.

use ipnet::IpNet;
use pingora_http::RequestHeader;
use std::net::IpAddr;

pub fn trusted(ip: &IpAddr, nets: &[IpNet]) -> bool {
    nets.iter().any(|n| n.contains(ip))
}

fn parse_forwarded_for(v: &str) -> Option<IpAddr> {
    let v = v.trim().trim_matches('"');
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    if let Ok(ip) = v.parse() {
        return Some(ip);
    }
    // ipv4:port
    v.rsplit_once(':').and_then(|(h, _)| h.parse().ok())
}

/// Addresses claimed by the forwarding headers, nearest hop last.
fn chain(req: &RequestHeader) -> Vec<Option<IpAddr>> {
    let mut out = Vec::new();
    let fwd: Vec<_> = req
        .headers
        .get_all(http::header::FORWARDED)
        .iter()
        .collect();
    if !fwd.is_empty() {
        for v in fwd {
            let Ok(s) = v.to_str() else {
                out.push(None);
                continue;
            };
            for elem in s.split(',') {
                let f = elem.split(';').find_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    k.trim().eq_ignore_ascii_case("for").then_some(v)
                });
                out.push(f.and_then(parse_forwarded_for));
            }
        }
        return out;
    }
    for v in req.headers.get_all("x-forwarded-for") {
        let Ok(s) = v.to_str() else {
            out.push(None);
            continue;
        };
        out.extend(s.split(',').map(parse_forwarded_for));
    }
    out
}

pub fn client_ip(peer: Option<IpAddr>, req: &RequestHeader, nets: &[IpNet]) -> Option<IpAddr> {
    let peer = peer?;
    if nets.is_empty() || !trusted(&peer, nets) {
        return Some(peer);
    }
    let mut last = peer;
    for hop in chain(req).into_iter().rev() {
        match hop {
            // An unparseable hop: stop at the last address we can vouch for.
            None => return Some(last),
            Some(ip) if trusted(&ip, nets) => last = ip,
            Some(ip) => return Some(ip),
        }
    }
    Some(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(h: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for (k, v) in h {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn untrusted_peer_is_the_client() {
        let nets = vec!["10.0.0.0/8".parse().unwrap()];
        let r = req(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(
            client_ip("8.8.8.8".parse().ok(), &r, &nets),
            "8.8.8.8".parse().ok()
        );
    }

    #[test]
    fn walks_from_the_right_skipping_trusted() {
        let nets = vec!["10.0.0.0/8".parse().unwrap()];
        let r = req(&[("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.0.0.2")]);
        assert_eq!(
            client_ip("10.0.0.1".parse().ok(), &r, &nets),
            "1.2.3.4".parse().ok()
        );
        let r = req(&[(
            "forwarded",
            "for=6.6.6.6, for=\"[2001:db8::1]:443\";proto=https",
        )]);
        assert_eq!(
            client_ip("10.0.0.1".parse().ok(), &r, &nets),
            "2001:db8::1".parse().ok()
        );
        let r = req(&[("x-forwarded-for", "garbage, 10.0.0.3")]);
        assert_eq!(
            client_ip("10.0.0.1".parse().ok(), &r, &nets),
            "10.0.0.3".parse().ok()
        );
    }
}
