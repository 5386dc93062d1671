//! Value conversions for minted claims: declared JSON types, times and offsets, JSON pointers.

use super::config::ValueType;
use super::MAX_CLAIMS_JSON;
use crate::jose;
use serde_json::{Map, Value};

/// Parse an RFC 3339 time (`2026-01-02T03:04:05Z`, offsets and fractions allowed).
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    if b.len() < 20 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = s.get(19..)?;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        rest = frac.get(n..)?;
    }
    // `+07:00` (RFC 3339) or `+0700` (ISO 8601 basic, as operators often paste it).
    let offset = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && o.as_bytes().get(3) == Some(&b':') || o.len() == 5 => {
            let sign = match o.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return None,
            };
            let digits = |r: std::ops::Range<usize>| -> Option<i64> {
                let t = o.get(r)?;
                t.bytes()
                    .all(|c| c.is_ascii_digit())
                    .then(|| t.parse().ok())?
            };
            let oh = digits(1..3)?;
            let om = digits(o.len() - 2..o.len())?;
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant).
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let t = days * 86_400 + h * 3600 + mi * 60 + se - offset;
    u64::try_from(t).ok()
}

/// Parse an absolute time as operators paste it: RFC 3339 (`2026-01-02T03:04:05.123-07:00`,
/// also `-0700`), or an HTTP date: RFC 1123 (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850
/// (`Sunday, 06-Nov-94 08:49:37 GMT`) or asctime (`Sun Nov  6 08:49:37 1994`).
pub fn parse_time(s: &str) -> Option<u64> {
    if let Some(t) = parse_rfc3339(s) {
        return Some(t);
    }
    let t = httpdate::parse_http_date(s).ok()?;
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// Parse a signed offset from now in whole seconds: `"30s"`, `"-5m"`, `"+1h"`.
pub(super) fn parse_offset(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let (sign, rest) = match t.strip_prefix('-') {
        Some(r) => (-1, r),
        None => (1, t.strip_prefix('+').unwrap_or(t)),
    };
    let d = crate::units::parse_duration(rest)?;
    let secs = crate::units::whole_seconds(d)?;
    i64::try_from(secs)
        .map(|v| sign * v)
        .map_err(|_| format!("{s:?} is out of range"))
}

/// `now` moved by `offset` seconds (saturating at the ends of the range).
pub(super) fn shift(now: u64, offset: i64) -> u64 {
    if offset < 0 {
        now.saturating_sub(offset.unsigned_abs())
    } else {
        now.saturating_add(offset.unsigned_abs())
    }
}

/// Convert a resolved value to the declared type; None when it does not convert.
pub(super) fn convert(kind: ValueType, v: Value) -> Option<Value> {
    match (kind, v) {
        (ValueType::Auto, v) => Some(v),
        (ValueType::String, Value::String(s)) => Some(Value::String(s)),
        (ValueType::String, Value::Number(n)) => Some(Value::String(n.to_string())),
        (ValueType::String, Value::Bool(b)) => Some(Value::String(b.to_string())),
        (ValueType::Number, Value::Number(n)) => Some(Value::Number(n)),
        (ValueType::Number, Value::String(s)) => {
            let t = s.trim();
            if let Ok(i) = t.parse::<i64>() {
                Some(Value::from(i))
            } else {
                t.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
            }
        }
        (ValueType::Boolean, Value::Bool(b)) => Some(Value::Bool(b)),
        (ValueType::Boolean, Value::String(s)) => match s.trim() {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        (ValueType::Array, Value::Array(a)) => Some(Value::Array(a)),
        (ValueType::Array, Value::String(s)) => Some(Value::Array(
            s.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| Value::String(p.to_string()))
                .collect(),
        )),
        (ValueType::Json, Value::String(s)) => {
            if s.len() > MAX_CLAIMS_JSON {
                return None;
            }
            // Parsed as data (duplicate members refused), never evaluated.
            jose::json::parse_strict(s.as_bytes()).ok()
        }
        (ValueType::Json, v) => Some(v),
        _ => None,
    }
}

/// Set `value` at a JSON pointer, creating objects on the way; None when a step is not an
/// object (arrays are not extended).
pub(super) fn set_pointer(doc: &mut Value, ptr: &str, value: Value) -> Option<()> {
    let mut cur = doc;
    let mut parts = ptr.split('/').skip(1).peekable();
    while let Some(raw) = parts.next() {
        let key = raw.replace("~1", "/").replace("~0", "~");
        let obj = cur.as_object_mut()?;
        if parts.peek().is_none() {
            obj.insert(key, value);
            return Some(());
        }
        cur = obj.entry(key).or_insert_with(|| Value::Object(Map::new()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers() {
        let mut d = serde_json::json!({"a": {"b": 1}, "arr": [1]});
        set_pointer(&mut d, "/a/c/d", Value::from("t")).unwrap();
        set_pointer(&mut d, "/x~1y", Value::from(2)).unwrap();
        assert_eq!(
            d,
            serde_json::json!({"a": {"b": 1, "c": {"d": "t"}}, "arr": [1], "x/y": 2})
        );
        assert!(set_pointer(&mut d, "/arr/0", Value::from(0)).is_none());
    }

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2026-11-23T08:00:00Z"), Some(1_795_420_800));
        assert_eq!(
            parse_rfc3339("2026-11-23T09:00:00.123+01:00"),
            Some(1_795_420_800)
        );
        assert_eq!(parse_rfc3339("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("2026-11-23"), None);
    }

    #[test]
    fn rfc3339_offsets_in_both_spellings() {
        let utc = Some(1_795_420_800);
        assert_eq!(parse_rfc3339("2026-11-23T01:00:00-07:00"), utc);
        assert_eq!(parse_rfc3339("2026-11-23T01:00:00-0700"), utc);
        assert_eq!(parse_rfc3339("2026-11-23T01:00:00.250-0700"), utc);
        assert_eq!(parse_rfc3339("2026-11-23T01:00:00-07"), None);
        assert_eq!(parse_rfc3339("2026-11-23T01:00:00-07:0x"), None);
        assert_eq!(parse_rfc3339("2026-11-23T01:00:00-2500"), None);
    }

    #[test]
    fn http_dates_in_the_three_formats() {
        let t = Some(784_111_777);
        assert_eq!(parse_time("Sun, 06 Nov 1994 08:49:37 GMT"), t);
        assert_eq!(parse_time("Sunday, 06-Nov-94 08:49:37 GMT"), t);
        assert_eq!(parse_time("Sun Nov  6 08:49:37 1994"), t);
        assert_eq!(parse_time("1994-11-06T08:49:37Z"), t);
        assert_eq!(parse_time("Sun, 06 Nov 1994 08:49:37 PST"), None);
        assert_eq!(parse_time("06 Nov 1994"), None);
    }

    #[test]
    fn offsets_are_signed_whole_seconds() {
        assert_eq!(parse_offset("30s"), Ok(30));
        assert_eq!(parse_offset("-5m"), Ok(-300));
        assert_eq!(parse_offset("+1h"), Ok(3600));
        assert_eq!(parse_offset("0"), Ok(0));
        assert!(parse_offset("-1500ms").is_err());
        assert!(parse_offset("--5s").is_err());
        assert_eq!(shift(100, -300), 0);
        assert_eq!(shift(1000, -300), 700);
        assert_eq!(shift(1000, 30), 1030);
    }

    #[test]
    fn conversions() {
        assert_eq!(
            convert(ValueType::Number, Value::from("42")),
            Some(Value::from(42))
        );
        assert_eq!(convert(ValueType::Number, Value::from("x")), None);
        assert_eq!(
            convert(ValueType::Boolean, Value::from("true")),
            Some(Value::Bool(true))
        );
        assert_eq!(
            convert(ValueType::Array, Value::from("a, b,,c")),
            Some(serde_json::json!(["a", "b", "c"]))
        );
        assert_eq!(
            convert(ValueType::Json, Value::from("{\"a\":[1]}")),
            Some(serde_json::json!({"a": [1]}))
        );
        assert_eq!(
            convert(ValueType::Json, Value::from("{\"a\":1,\"a\":2}")),
            None
        );
        // Strings that look like JSON stay strings unless declared json.
        assert_eq!(
            convert(ValueType::String, Value::from("{\"x\":1}")),
            Some(Value::from("{\"x\":1}"))
        );
    }
}
