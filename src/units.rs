//! Human units in the config: durations ("250ms", "30s", "5m", "2h", "10d") and sizes
//! ("512", "8KiB", "1MiB", "2GB"). Parsed once at load; the request path only sees typed values.

use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// Parse a duration such as `30s`, `250ms`, `5m`, `1h`, `10d`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "invalid duration {s:?}: expected e.g. \"30s\", \"250ms\", \"5m\""
        ));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: number out of range"))?;
    let ms = match unit.trim() {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        other => {
            return Err(format!(
                "invalid duration unit {other:?} in {s:?}: use ms, s, m, h or d"
            ))
        }
    };
    ms.map(Duration::from_millis)
        .ok_or_else(|| format!("invalid duration {s:?}: out of range"))
}

/// The whole seconds of a duration for a field measured in seconds. A fraction is refused
/// rather than dropped: "1500ms" would otherwise silently become 1 s, and "500ms" 0 s.
pub fn whole_seconds(d: Duration) -> Result<u64, String> {
    if d.subsec_nanos() != 0 {
        return Err(format!(
            "{}ms is not a whole number of seconds: this field is measured in seconds",
            d.as_millis()
        ));
    }
    Ok(d.as_secs())
}

/// Parse a size such as `8KiB`, `1MiB`, `64KB`, or a bare number of bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "invalid size {s:?}: expected e.g. \"8KiB\", \"1MiB\""
        ));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}: number out of range"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(format!(
                "invalid size unit {other:?} in {s:?}: use B, KiB, MiB, GiB, KB, MB or GB"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("invalid size {s:?}: out of range"))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrStr {
    Num(u64),
    Str(String),
}

/// A duration in the config: a string with a unit, or an integer number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(into = "String")]
pub struct HumanDuration(pub Duration);

impl From<HumanDuration> for String {
    fn from(d: HumanDuration) -> String {
        format!("{}ms", d.0.as_millis())
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match NumOrStr::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected a duration such as \"30s\""))?
        {
            NumOrStr::Num(n) => Ok(HumanDuration(Duration::from_secs(n))),
            NumOrStr::Str(s) => parse_duration(&s)
                .map(HumanDuration)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// A byte size in the config: a string with a unit, or an integer number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct HumanSize(pub u64);

impl<'de> Deserialize<'de> for HumanSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match NumOrStr::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected a size such as \"8KiB\""))?
        {
            NumOrStr::Num(n) => Ok(HumanSize(n)),
            NumOrStr::Str(s) => parse_size(&s)
                .map(HumanSize)
                .map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("10d").unwrap(), Duration::from_secs(864_000));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("5 weeks").is_err());
        assert!(parse_duration("99999999999999999999s").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("8KiB").unwrap(), 8192);
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_size("64KB").unwrap(), 64_000);
        assert_eq!(parse_size("12").unwrap(), 12);
        assert!(parse_size("1TiB").is_err());
        assert!(parse_size("KiB").is_err());
    }
}
