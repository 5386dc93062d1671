//! JWT claim validation (RFC 7519 §4, RFC 9068, RFC 8725 §3.11). A claim of the wrong JSON
//! type is an error, never "absent".

use serde_json::{Map, Value};

use super::JoseError;

/// NumericDates above this (9999-12-31T23:59:59Z) are refused as out of range.
const MAX_NUMERIC_DATE: f64 = 253_402_300_799.0;

/// Claim rules of one policy. Empty lists and `None` mean "not checked".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClaimRules {
    /// `iss` must equal one of these exactly.
    pub issuers: Vec<String>,
    /// `aud` (string or array of strings) must contain at least one of these.
    pub audiences: Vec<String>,
    /// `sub` must equal this exactly.
    pub subject: Option<String>,
    /// The header `typ` must equal this (case-insensitive; `application/` prefix optional).
    pub typ: Option<String>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
    pub leeway: u64,
    /// `exp` must be present.
    pub require_exp: bool,
    /// `iat` must be present.
    pub require_iat: bool,
    /// Maximum `exp - iat` (or `exp - now` without `iat`), in seconds.
    pub max_lifetime: Option<u64>,
    /// Maximum `now - iat`, in seconds.
    pub max_age: Option<u64>,
    /// Claims (dotted paths such as `a.b.c`) that must be present.
    pub required: Vec<String>,
    /// Claims (dotted paths) that must be absent.
    pub prohibited: Vec<String>,
    /// Claims (dotted paths) that must equal a JSON value exactly.
    pub exact: Vec<(String, Value)>,
}

/// Looks up a dotted path. `Ok(None)` when absent; an error when an intermediate member is
/// present but not an object.
pub fn claim_at<'a>(
    claims: &'a Map<String, Value>,
    path: &str,
) -> Result<Option<&'a Value>, JoseError> {
    let mut parts = path.split('.');
    let Some(first) = parts.next() else {
        return Ok(None);
    };
    let mut cur = match claims.get(first) {
        Some(v) => v,
        None => return Ok(None),
    };
    for part in parts {
        cur = match cur {
            Value::Object(m) => match m.get(part) {
                Some(v) => v,
                None => return Ok(None),
            },
            _ => return Err(JoseError::ClaimInvalidType(path.to_owned())),
        };
    }
    Ok(Some(cur))
}

fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<f64>, JoseError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(v) if v.is_finite() && (0.0..=MAX_NUMERIC_DATE).contains(&v) => Ok(Some(v)),
            _ => Err(JoseError::ClaimInvalidType(name.to_owned())),
        },
        Some(_) => Err(JoseError::ClaimInvalidType(name.to_owned())),
    }
}

fn string_claim<'a>(
    claims: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, JoseError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(JoseError::ClaimInvalidType(name.to_owned())),
    }
}

fn audiences(claims: &Map<String, Value>) -> Result<Option<Vec<&str>>, JoseError> {
    match claims.get("aud") {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s.as_str()])),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().ok_or(JoseError::ClaimInvalidType("aud".into())))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(JoseError::ClaimInvalidType("aud".into())),
    }
}

/// Compares media types per RFC 7515 §4.1.9: case-insensitive, `application/` optional.
pub fn typ_matches(actual: &str, expected: &str) -> bool {
    let strip = |s: &str| -> String {
        let l = s.to_ascii_lowercase();
        l.strip_prefix("application/")
            .map(str::to_owned)
            .unwrap_or(l)
    };
    strip(actual) == strip(expected)
}

impl ClaimRules {
    /// Validates `claims` (and the header `typ`) at time `now` (seconds since the epoch).
    pub fn validate(
        &self,
        claims: &Map<String, Value>,
        header_typ: Option<&str>,
        now: u64,
    ) -> Result<(), JoseError> {
        if let Some(expected) = &self.typ {
            match header_typ {
                Some(t) if typ_matches(t, expected) => {}
                _ => return Err(JoseError::TypeMismatch),
            }
        }
        // Registered claims are type-checked whether or not a rule names them.
        let exp = numeric_date(claims, "exp")?;
        let nbf = numeric_date(claims, "nbf")?;
        let iat = numeric_date(claims, "iat")?;
        let iss = string_claim(claims, "iss")?;
        let sub = string_claim(claims, "sub")?;
        string_claim(claims, "jti")?;
        let aud = audiences(claims)?;
        self.check_time(exp, nbf, iat, now)?;
        if !self.issuers.is_empty() {
            let iss = iss.ok_or_else(|| JoseError::ClaimMissing("iss".into()))?;
            if !self.issuers.iter().any(|i| i == iss) {
                return Err(JoseError::IssuerMismatch);
            }
        }
        if !self.audiences.is_empty() {
            let aud = aud.ok_or_else(|| JoseError::ClaimMissing("aud".into()))?;
            if !aud.iter().any(|a| self.audiences.iter().any(|x| x == a)) {
                return Err(JoseError::AudienceMismatch);
            }
        }
        if let Some(expected) = &self.subject {
            let sub = sub.ok_or_else(|| JoseError::ClaimMissing("sub".into()))?;
            if sub != expected {
                return Err(JoseError::SubjectMismatch);
            }
        }
        for path in &self.required {
            if claim_at(claims, path)?.is_none() {
                return Err(JoseError::ClaimMissing(path.clone()));
            }
        }
        for path in &self.prohibited {
            if claim_at(claims, path)?.is_some() {
                return Err(JoseError::ClaimProhibited(path.clone()));
            }
        }
        for (path, want) in &self.exact {
            match claim_at(claims, path)? {
                None => return Err(JoseError::ClaimMissing(path.clone())),
                Some(v) if v == want => {}
                Some(v) if std::mem::discriminant(v) != std::mem::discriminant(want) => {
                    return Err(JoseError::ClaimInvalidType(path.clone()))
                }
                Some(_) => return Err(JoseError::ClaimMismatch(path.clone())),
            }
        }
        Ok(())
    }

    fn check_time(
        &self,
        exp: Option<f64>,
        nbf: Option<f64>,
        iat: Option<f64>,
        now: u64,
    ) -> Result<(), JoseError> {
        // u64 seconds fit f64 exactly below 2^53, far beyond MAX_NUMERIC_DATE.
        #[allow(clippy::cast_precision_loss)]
        let (now, leeway) = (now as f64, self.leeway as f64);
        if self.require_exp && exp.is_none() {
            return Err(JoseError::ClaimMissing("exp".into()));
        }
        if self.require_iat && iat.is_none() {
            return Err(JoseError::ClaimMissing("iat".into()));
        }
        // RFC 7519 §4.1.4: the token must not be accepted on or after exp.
        if let Some(exp) = exp {
            if now - leeway >= exp {
                return Err(JoseError::TokenExpired);
            }
        }
        if let Some(nbf) = nbf {
            if now + leeway < nbf {
                return Err(JoseError::TokenNotYetValid);
            }
        }
        if let Some(iat) = iat {
            if iat > now + leeway {
                return Err(JoseError::TokenNotYetValid);
            }
        }
        #[allow(clippy::cast_precision_loss)]
        if let (Some(max), Some(exp)) = (self.max_lifetime, exp) {
            let start = iat.unwrap_or(now);
            if exp - start > max as f64 {
                return Err(JoseError::TokenTooOld);
            }
        }
        #[allow(clippy::cast_precision_loss)]
        if let (Some(max), Some(iat)) = (self.max_age, iat) {
            if now - iat > max as f64 + leeway {
                return Err(JoseError::TokenTooOld);
            }
        }
        Ok(())
    }
}
