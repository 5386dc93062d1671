//! The JOSE protected header, parsed once into typed members (duplicates rejected).

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::json::{from_slice_strict, StrictSeed};
use super::JoseError;

/// Header parameter names registered by RFC 7515/7516/7518; `crit` may not list them.
const REGISTERED: [&str; 20] = [
    "alg", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "typ", "cty", "crit", "enc",
    "zip", "epk", "apu", "apv", "iv", "tag", "p2s", "p2c",
];

/// A parsed protected header. Unknown members (including `jwk`, `jku`, `x5u`, `x5c`, which are
/// never used for key selection) are kept in `other`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Header {
    pub alg: String,
    pub enc: Option<String>,
    pub kid: Option<String>,
    pub typ: Option<String>,
    pub cty: Option<String>,
    pub zip: Option<String>,
    pub crit: Option<Vec<String>>,
    pub b64: Option<bool>,
    pub x5t: Option<String>,
    pub x5t_s256: Option<String>,
    pub epk: Option<Value>,
    pub apu: Option<String>,
    pub apv: Option<String>,
    pub iv: Option<String>,
    pub tag: Option<String>,
    pub p2s: Option<String>,
    pub p2c: Option<u64>,
    pub other: Map<String, Value>,
}

enum Field {
    Alg,
    Enc,
    Kid,
    Typ,
    Cty,
    Zip,
    Crit,
    B64,
    X5t,
    X5tS256,
    Epk,
    Apu,
    Apv,
    Iv,
    Tag,
    P2s,
    P2c,
    Other(String),
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E>(self, v: &str) -> Result<Field, E> {
                Ok(match v {
                    "alg" => Field::Alg,
                    "enc" => Field::Enc,
                    "kid" => Field::Kid,
                    "typ" => Field::Typ,
                    "cty" => Field::Cty,
                    "zip" => Field::Zip,
                    "crit" => Field::Crit,
                    "b64" => Field::B64,
                    "x5t" => Field::X5t,
                    "x5t#S256" => Field::X5tS256,
                    "epk" => Field::Epk,
                    "apu" => Field::Apu,
                    "apv" => Field::Apv,
                    "iv" => Field::Iv,
                    "tag" => Field::Tag,
                    "p2s" => Field::P2s,
                    "p2c" => Field::P2c,
                    other => Field::Other(other.to_owned()),
                })
            }
        }
        d.deserialize_str(V)
    }
}

fn set<T, E: de::Error>(slot: &mut Option<T>, v: T) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::custom("duplicate member"));
    }
    *slot = Some(v);
    Ok(())
}

impl<'de> Deserialize<'de> for Header {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Header;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JOSE header object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Header, A::Error> {
                let mut h = Header::default();
                let mut alg = None;
                while let Some(k) = m.next_key::<Field>()? {
                    match k {
                        Field::Alg => set(&mut alg, m.next_value::<String>()?)?,
                        Field::Enc => set(&mut h.enc, m.next_value()?)?,
                        Field::Kid => set(&mut h.kid, m.next_value()?)?,
                        Field::Typ => set(&mut h.typ, m.next_value()?)?,
                        Field::Cty => set(&mut h.cty, m.next_value()?)?,
                        Field::Zip => set(&mut h.zip, m.next_value()?)?,
                        Field::Crit => set(&mut h.crit, m.next_value()?)?,
                        Field::B64 => set(&mut h.b64, m.next_value()?)?,
                        Field::X5t => set(&mut h.x5t, m.next_value()?)?,
                        Field::X5tS256 => set(&mut h.x5t_s256, m.next_value()?)?,
                        Field::Epk => set(&mut h.epk, m.next_value_seed(StrictSeed)?)?,
                        Field::Apu => set(&mut h.apu, m.next_value()?)?,
                        Field::Apv => set(&mut h.apv, m.next_value()?)?,
                        Field::Iv => set(&mut h.iv, m.next_value()?)?,
                        Field::Tag => set(&mut h.tag, m.next_value()?)?,
                        Field::P2s => set(&mut h.p2s, m.next_value()?)?,
                        Field::P2c => set(&mut h.p2c, m.next_value()?)?,
                        Field::Other(name) => {
                            if h.other.contains_key(&name) {
                                return Err(de::Error::custom("duplicate member"));
                            }
                            let v = m.next_value_seed(StrictSeed)?;
                            h.other.insert(name, v);
                        }
                    }
                }
                h.alg = alg.ok_or_else(|| de::Error::custom("missing alg"))?;
                Ok(h)
            }
        }
        d.deserialize_map(V)
    }
}

impl Header {
    /// Parses the decoded protected header bytes (strict JSON object, `alg` required).
    pub fn parse(bytes: &[u8]) -> Result<Header, JoseError> {
        from_slice_strict::<Header>(bytes)
    }

    /// RFC 7515 §4.1.11: `crit` must be a non-empty array of distinct, unregistered names,
    /// each present in the header; every listed extension must be understood. The engine
    /// processes no extension itself (b64=false is refused for JWTs); `known` lists the
    /// header parameters the caller processes (jwt_verify's `known_headers`). A name that is
    /// not known, or is known but absent from the header, is `CriticalHeaderUnsupported`.
    pub fn check_crit(&self, known: &[String]) -> Result<(), JoseError> {
        let Some(crit) = &self.crit else {
            return Ok(());
        };
        if crit.is_empty() {
            return Err(JoseError::TokenMalformed);
        }
        for (i, name) in crit.iter().enumerate() {
            if REGISTERED.contains(&name.as_str()) || crit.iter().skip(i + 1).any(|n| n == name) {
                return Err(JoseError::TokenMalformed);
            }
        }
        if self.b64 == Some(false) {
            return Err(JoseError::UnencodedPayloadRejected);
        }
        let understood =
            |name: &String| name != "b64" && known.contains(name) && self.other.contains_key(name);
        if crit.iter().all(understood) {
            Ok(())
        } else {
            Err(JoseError::CriticalHeaderUnsupported)
        }
    }

    /// Whether `name` is a header parameter registered by RFC 7515/7516/7518 (never a `crit`
    /// extension).
    pub fn is_registered(name: &str) -> bool {
        REGISTERED.contains(&name)
    }

    /// Whether `crit` (as a member about to be produced) is a non-empty array of distinct,
    /// unregistered names, each a member of `header` (RFC 7515 §4.1.11).
    pub(crate) fn crit_is_valid(crit: &Value, header: &Map<String, Value>) -> bool {
        let Some(names) = crit.as_array() else {
            return false;
        };
        !names.is_empty()
            && names.iter().enumerate().all(|(i, n)| {
                n.as_str().is_some_and(|s| {
                    !REGISTERED.contains(&s) && s != "b64" && header.contains_key(s)
                }) && !names.iter().skip(i + 1).any(|m| m == n)
            })
    }

    /// The header as a JSON object (for display and CLI output).
    pub fn to_value(&self) -> Value {
        let mut m = self.other.clone();
        m.insert("alg".into(), Value::String(self.alg.clone()));
        let strs = [
            ("enc", &self.enc),
            ("kid", &self.kid),
            ("typ", &self.typ),
            ("cty", &self.cty),
            ("zip", &self.zip),
            ("x5t", &self.x5t),
            ("x5t#S256", &self.x5t_s256),
            ("apu", &self.apu),
            ("apv", &self.apv),
            ("iv", &self.iv),
            ("tag", &self.tag),
            ("p2s", &self.p2s),
        ];
        for (k, v) in strs {
            if let Some(v) = v {
                m.insert(k.into(), Value::String(v.clone()));
            }
        }
        if let Some(c) = &self.crit {
            m.insert(
                "crit".into(),
                Value::Array(c.iter().map(|s| Value::String(s.clone())).collect()),
            );
        }
        if let Some(b) = self.b64 {
            m.insert("b64".into(), Value::Bool(b));
        }
        if let Some(e) = &self.epk {
            m.insert("epk".into(), e.clone());
        }
        if let Some(p) = self.p2c {
            m.insert("p2c".into(), Value::Number(p.into()));
        }
        Value::Object(m)
    }

    /// True when `cty` names a nested JWT (compared case-insensitively, RFC 7515 §4.1.10).
    pub fn cty_is_jwt(&self) -> bool {
        self.cty.as_deref().is_some_and(|c| {
            c.eq_ignore_ascii_case("JWT") || c.eq_ignore_ascii_case("application/jwt")
        })
    }
}
