//! The `headers` policy: set, add and remove headers on the request sent upstream and on the
//! response sent to the client. Names and values are validated at load. A value may contain
//! `${var}` references (the value language of `expr.rs`, e.g. `${claims.sub}`,
//! `${var.minted}`); a value whose variable is absent is not sent, and a rendered value that
//! is not valid header text (control characters from a client) is dropped, never passed on.

use super::HeaderEdit;
use crate::config::{HeaderOpsConfig, HeadersConfig};
use crate::error::Errors;
use crate::expr::Template;
use crate::request::RequestView;
use http::{HeaderName, HeaderValue};

#[derive(Debug)]
enum Val {
    Static(HeaderValue),
    Dynamic(Template),
}

impl Val {
    fn get(&self, v: &RequestView<'_>) -> Option<HeaderValue> {
        match self {
            Val::Static(h) => Some(h.clone()),
            Val::Dynamic(t) => HeaderValue::from_str(&t.render(v)?).ok(),
        }
    }
}

#[derive(Debug, Default)]
pub struct HeaderOps {
    set: Vec<(HeaderName, Val)>,
    add: Vec<(HeaderName, Val)>,
    remove: Vec<HeaderName>,
}

#[derive(Debug)]
pub struct Headers {
    request: HeaderOps,
    response: HeaderOps,
}

impl Headers {
    /// Upstream-request phase: the `request` operations.
    pub fn upstream_request_filter(&self, v: &RequestView<'_>, out: &mut Vec<HeaderEdit>) {
        self.request.edits(v, out);
    }

    /// Response phase: the `response` operations.
    pub fn response_filter(&self, v: &RequestView<'_>, out: &mut Vec<HeaderEdit>) {
        self.response.edits(v, out);
    }

    pub fn compile(c: &HeadersConfig, path: &str, errs: &mut Errors) -> Option<Headers> {
        let HeadersConfig { request, response } = c;
        let before = errs.0.len();
        let out = Headers {
            request: HeaderOps::compile(request, &format!("{path}.request"), errs),
            response: HeaderOps::compile(response, &format!("{path}.response"), errs),
        };
        (errs.0.len() == before).then_some(out)
    }
}

fn name(n: &str, path: &str, errs: &mut Errors) -> Option<HeaderName> {
    match HeaderName::from_bytes(n.to_ascii_lowercase().as_bytes()) {
        Ok(h) => Some(h),
        Err(_) => {
            errs.push(path, format!("invalid header name {n:?}"));
            None
        }
    }
}

impl HeaderOps {
    pub fn compile(c: &HeaderOpsConfig, path: &str, errs: &mut Errors) -> HeaderOps {
        let HeaderOpsConfig { set, add, remove } = c;
        let pairs =
            |m: &std::collections::BTreeMap<String, String>, key: &str, errs: &mut Errors| {
                let mut v = Vec::new();
                for (k, val) in m {
                    let p = format!("{path}.{key}.{k}");
                    let n = name(k, &p, errs);
                    let hv = match Template::parse(val) {
                        Err(e) => {
                            errs.push(&p, e);
                            None
                        }
                        Ok(t) => match t.as_static() {
                            Some(text) => HeaderValue::from_str(text)
                                .map(Val::Static)
                                .map_err(|_| {
                                    errs.push(&p, "invalid header value (control characters?)")
                                })
                                .ok(),
                            None => Some(Val::Dynamic(t)),
                        },
                    };
                    if let (Some(n), Some(hv)) = (n, hv) {
                        v.push((n, hv));
                    }
                }
                v
            };
        HeaderOps {
            set: pairs(set, "set", errs),
            add: pairs(add, "add", errs),
            remove: remove
                .iter()
                .enumerate()
                .filter_map(|(i, r)| name(r, &format!("{path}.remove[{i}]"), errs))
                .collect(),
        }
    }

    /// The edits, in the order remove, set, add. A `set` whose value does not render removes
    /// the header (a client's own value never passes for the gateway's).
    fn edits(&self, v: &RequestView<'_>, out: &mut Vec<HeaderEdit>) {
        out.extend(self.remove.iter().cloned().map(HeaderEdit::Remove));
        for (n, val) in &self.set {
            out.push(match val.get(v) {
                Some(h) => HeaderEdit::Set(n.clone(), h),
                None => HeaderEdit::Remove(n.clone()),
            });
        }
        for (n, val) in &self.add {
            if let Some(h) = val.get(v) {
                out.push(HeaderEdit::Append(n.clone(), h));
            }
        }
    }
}
