//! The compile step of one config field each (checked at load, errors with their path).

use super::config::{self, ExpiresFromConfig, ExpiresInConfig, NumOrText, OutputConfig};
use super::values::{parse_offset, parse_time};
use super::{Expires, NotBefore, Output};
use crate::error::Errors;
use crate::expr::Var;
use crate::jose::{self, KeyAlg};
use http::HeaderName;

/// The longest PBES2 salt input minted (RFC 7518 sets only the minimum; this keeps the
/// header small).
const MAX_P2S_LEN: usize = 64;

/// `salt_length` and `iterations`: PBES2 only, within what the verifier accepts
/// ([`jose::Limits`]), so every minted token is one this gateway would also take.
pub(super) fn compile_pbes2(
    e: &config::EncryptConfig,
    alg: Option<KeyAlg>,
    path: &str,
    errs: &mut Errors,
) -> (Option<u32>, Option<usize>) {
    let pbes2 = alg.is_some_and(KeyAlg::is_pbes2);
    let l = jose::Limits::default();
    let mut check = |set: bool, ok: bool, field: &str, range: String| {
        if set && !pbes2 {
            errs.push(format!("{path}.{field}"), "only for PBES2 key algorithms");
        } else if set && !ok {
            errs.push(format!("{path}.{field}"), format!("must be from {range}"));
        }
    };
    check(
        e.iterations.is_some(),
        e.iterations
            .is_some_and(|n| (l.min_p2c..=l.max_p2c).contains(&n)),
        "iterations",
        format!("{} to {}", l.min_p2c, l.max_p2c),
    );
    check(
        e.salt_length.is_some(),
        e.salt_length
            .is_some_and(|n| (l.min_p2s..=MAX_P2S_LEN).contains(&n)),
        "salt_length",
        format!("{} to {MAX_P2S_LEN} bytes", l.min_p2s),
    );
    (e.iterations, e.salt_length)
}

/// `crit`: distinct names of `header` members, not registered, for a signed token (a JWE
/// header here is built by the JOSE engine, which produces no extension).
pub(super) fn compile_crit(
    crit: &[String],
    header: &std::collections::BTreeMap<String, config::HeaderConfig>,
    signed: bool,
    path: &str,
    errs: &mut Errors,
) {
    if !crit.is_empty() && !signed {
        errs.push(
            path,
            "critical headers are for signed tokens: set `algorithm`",
        );
    }
    for (i, name) in crit.iter().enumerate() {
        let p = format!("{path}[{i}]");
        if jose::Header::is_registered(name) || name == "b64" {
            errs.push(p, format!("{name:?} is a registered header parameter"));
        } else if !header.contains_key(name) {
            errs.push(p, format!("{name:?} must be set in `header`"));
        } else if crit.iter().take(i).any(|n| n == name) {
            errs.push(p, format!("{name:?} is listed twice"));
        }
    }
}

/// `not_before`: an offset (`0` omits `nbf`) or an absolute time.
pub(super) fn compile_not_before(
    n: &NumOrText,
    path: &str,
    errs: &mut Errors,
) -> Option<NotBefore> {
    let text = match n {
        NumOrText::Seconds(0) => return None,
        NumOrText::Seconds(s) => return Some(NotBefore::Offset(*s)),
        NumOrText::Text(t) => t,
    };
    if let Some(t) = parse_time(text) {
        return Some(NotBefore::At(t));
    }
    match parse_offset(text) {
        Ok(0) => None,
        Ok(o) => Some(NotBefore::Offset(o)),
        // Text shaped like a duration gets the duration's own reason (e.g. not whole seconds).
        Err(e) if duration_shaped(text) => {
            errs.push(path, e);
            None
        }
        Err(_) => {
            errs.push(
                path,
                "an offset (\"30s\", \"-5m\") or a time: RFC 3339 \
                 (\"2026-01-01T00:00:00-07:00\"), RFC 1123 (\"Sun, 06 Nov 1994 08:49:37 GMT\"), \
                 RFC 850 or asctime",
            );
            None
        }
    }
}

/// Digits then a unit (`1500ms`, `-5m`): a duration, not a misspelt time.
fn duration_shaped(text: &str) -> bool {
    let t = text.trim().trim_start_matches(['-', '+']);
    t.bytes().next().is_some_and(|c| c.is_ascii_digit())
        && t.bytes().all(|c| c.is_ascii_alphanumeric())
}

/// `expires_in`: `0` omits `exp`; anything else is at least one whole second.
pub(super) fn compile_expires(
    e: &ExpiresInConfig,
    path: &str,
    errs: &mut Errors,
) -> Option<Expires> {
    let secs = |d: &crate::units::HumanDuration, p: String, errs: &mut Errors| {
        crate::units::whole_seconds(d.0)
            .map_err(|m| errs.push(p, m))
            .ok()
    };
    match e {
        ExpiresInConfig::Fixed(d) => match secs(d, path.to_string(), errs)? {
            0 => None,
            s => Some(Expires::Fixed(s)),
        },
        ExpiresInConfig::From(ExpiresFromConfig { from, max, default }) => {
            let var = Var::parse(from)
                .map_err(|m| errs.push(format!("{path}.from"), m))
                .ok();
            let max = match secs(max, format!("{path}.max"), errs) {
                Some(0) => {
                    errs.push(format!("{path}.max"), "must be at least 1s");
                    None
                }
                m => m,
            };
            let default = match (default, max) {
                (Some(d), Some(m)) => match secs(d, format!("{path}.default"), errs) {
                    Some(s) if (1..=m).contains(&s) => Some(Some(s)),
                    Some(_) => {
                        errs.push(format!("{path}.default"), "must be from 1s up to `max`");
                        None
                    }
                    None => None,
                },
                (Some(_), None) => None,
                (None, _) => Some(None),
            };
            Some(Expires::From {
                var: var?,
                max: max?,
                default: default?,
            })
        }
    }
}

pub(super) fn compile_output(o: &OutputConfig, path: &str, errs: &mut Errors) -> Option<Output> {
    let OutputConfig {
        header,
        prefix,
        query,
        response_header,
        variable,
        request_body,
        response_body,
    } = o;
    let n = [
        header.is_some(),
        query.is_some(),
        response_header.is_some(),
        variable.is_some(),
        request_body.is_some(),
        *response_body,
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if n > 1 {
        errs.push(
            path,
            "exactly one of header, query, response_header, variable, request_body, response_body",
        );
        return None;
    }
    if let Some(b) = request_body {
        return match b.as_str() {
            "replace" => Some(Output::RequestBody(None)),
            p if p.starts_with('/') => Some(Output::RequestBody(Some(p.to_string()))),
            _ => {
                errs.push(
                    format!("{path}.request_body"),
                    "\"replace\" or a JSON pointer such as \"/auth/token\"",
                );
                None
            }
        };
    }
    if *response_body {
        return Some(Output::ResponseBody);
    }
    if prefix.is_some() && header.is_none() && n > 0 {
        errs.push(format!("{path}.prefix"), "prefix is for header outputs");
        return None;
    }
    let hname = |h: &str, p: String, errs: &mut Errors| {
        HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes())
            .map_err(|_| errs.push(p, format!("invalid header name {h:?}")))
            .ok()
    };
    if let Some(q) = query {
        return Some(Output::Query(q.clone()));
    }
    if let Some(h) = response_header {
        return hname(h, format!("{path}.response_header"), errs).map(Output::ResponseHeader);
    }
    if let Some(v) = variable {
        if v.starts_with("jwt.") {
            // Those names hold token policies' results (`continue_on_error`, `on_error`).
            errs.push(format!("{path}.variable"), "names under jwt. are reserved");
            return None;
        }
        return Some(Output::Variable(v.clone()));
    }
    let (name, prefix) = match header {
        Some(h) => (h.as_str(), prefix.clone().unwrap_or_default()),
        None => (
            "authorization",
            prefix.clone().unwrap_or_else(|| "Bearer ".into()),
        ),
    };
    hname(name, format!("{path}.header"), errs).map(|name| Output::Header { name, prefix })
}
