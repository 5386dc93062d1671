//! Compiles the `errors` tables (global, route, policy) into the renderer's [`ErrorOverride`].

use crate::config::ErrorOverrideConfig;
use crate::error::Errors;
use crate::reply::ErrorOverride;
use http::{HeaderName, HeaderValue};
use std::collections::HashMap;

/// Compile one `errors` table; None (with the problems in `errs`) when any value is invalid.
pub fn compile_override(
    c: &ErrorOverrideConfig,
    path: &str,
    errs: &mut Errors,
) -> Option<ErrorOverride> {
    compile_level(c, path, errs, true)
}

fn compile_level(
    c: &ErrorOverrideConfig,
    path: &str,
    errs: &mut Errors,
    top: bool,
) -> Option<ErrorOverride> {
    let ErrorOverrideConfig {
        status,
        error_code,
        message,
        content_type,
        body,
        headers,
        codes,
    } = c;
    let before = errs.0.len();
    if let Some(s) = status {
        if !(100..=599).contains(s) {
            errs.push(format!("{path}.status"), "must be 100..=599");
        }
    }
    let content_type = content_type.as_ref().and_then(|ct| {
        HeaderValue::from_str(ct)
            .map_err(|_| errs.push(format!("{path}.content_type"), "invalid header value"))
            .ok()
    });
    let mut hs = Vec::new();
    for (k, v) in headers {
        let p = format!("{path}.headers.{k}");
        match (
            HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()),
            HeaderValue::from_str(v),
        ) {
            (Ok(n), Ok(v)) => hs.push((n, v)),
            (Err(_), _) | (_, Err(_)) => errs.push(p, "invalid header name or value"),
        }
    }
    let mut cs = HashMap::new();
    if !codes.is_empty() && !top {
        errs.push(format!("{path}.codes"), "codes cannot be nested");
    }
    for (code, sub) in codes {
        let p = format!("{path}.codes.{code}");
        if !crate::error::GatewayError::is_code(code) {
            errs.push(
                &p,
                format!("unknown error code {code:?} (see the error code table)"),
            );
            continue;
        }
        if let Some(o) = compile_level(sub, &p, errs, false) {
            cs.insert(code.clone(), o);
        }
    }
    if errs.0.len() > before {
        return None;
    }
    Some(ErrorOverride {
        status: *status,
        error_code: error_code.clone(),
        message: message.clone(),
        content_type,
        body: body.clone(),
        headers: hs,
        codes: cs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(src: &str) -> (Option<ErrorOverride>, Errors) {
        let c: ErrorOverrideConfig = toml::from_str(src).unwrap();
        let mut e = Errors::default();
        (compile_override(&c, "errors", &mut e), e)
    }

    #[test]
    fn status_out_of_range_is_refused_with_its_path() {
        let (o, e) = compile("status = 700");
        assert!(o.is_none());
        assert_eq!(e.0[0].path, "errors.status");
    }

    #[test]
    fn nested_codes_are_refused() {
        let (o, e) = compile("[codes.no_route.codes.no_route]\nstatus = 404");
        assert!(o.is_none());
        assert_eq!(e.0[0].path, "errors.codes.no_route.codes");
    }

    #[test]
    fn an_unknown_error_code_is_refused_with_its_path() {
        let (o, e) = compile("[codes.token_expird]\nstatus = 401");
        assert!(o.is_none());
        assert_eq!(e.0[0].path, "errors.codes.token_expird");
    }

    #[test]
    fn bad_header_is_refused() {
        let (o, e) = compile("headers = { \"a b\" = \"x\" }");
        assert!(o.is_none());
        assert_eq!(e.0[0].path, "errors.headers.a b");
    }
}
