//! JSON Web Keys (RFC 7517/7518/8037): parsed once into aws-lc-rs types, with the original
//! components kept (zeroized on drop) for export and RFC 7638 thumbprints.

use std::fmt;

use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsBigEndian;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _};
use serde::Deserialize;
use serde_json::{Map, Value};
use zeroize::{Zeroize, Zeroizing};

use super::curve::Curve;
pub(crate) use super::material::{EcKey, Material, OctKey, OkpKey, RsaKey};
use super::{b64, json, Alg, JoseError};

/// The operation a key is asked to perform (checked against `use`, `key_ops`, `alg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOp {
    Sign,
    Verify,
    Encrypt,
    Decrypt,
}

/// A parsed JWK. Key material is parsed once into aws-lc-rs types; `Debug` never prints it.
pub struct Jwk {
    pub(crate) kid: Option<String>,
    pub(crate) alg: Option<String>,
    pub(crate) key_use: Option<String>,
    pub(crate) key_ops: Option<Vec<String>>,
    pub(crate) x5c: Option<Vec<String>>,
    pub(crate) x5t: Option<String>,
    pub(crate) x5t_s256: Option<String>,
    pub(crate) material: Material,
}

impl fmt::Debug for Jwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwk")
            .field("kty", &self.kty())
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("private", &self.is_private())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize, Default)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    key_use: Option<String>,
    key_ops: Option<Vec<String>>,
    x5c: Option<Vec<String>>,
    x5t: Option<String>,
    #[serde(rename = "x5t#S256")]
    x5t_s256: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    d: Option<String>,
    n: Option<String>,
    e: Option<String>,
    p: Option<String>,
    q: Option<String>,
    dp: Option<String>,
    dq: Option<String>,
    qi: Option<String>,
    k: Option<String>,
    oth: Option<Value>,
}

impl Drop for RawJwk {
    fn drop(&mut self) {
        for s in [
            &mut self.d,
            &mut self.p,
            &mut self.q,
            &mut self.dp,
            &mut self.dq,
            &mut self.qi,
            &mut self.k,
        ] {
            s.zeroize();
        }
    }
}

fn field(v: &Option<String>, name: &'static str) -> Result<Vec<u8>, JoseError> {
    let s = v.as_deref().ok_or(JoseError::KeyMalformed(name))?;
    b64::decode(s.as_bytes()).map_err(|_| JoseError::KeyMalformed(name))
}

fn secret(v: &Option<String>, name: &'static str) -> Result<Zeroizing<Vec<u8>>, JoseError> {
    field(v, name).map(Zeroizing::new)
}

impl Jwk {
    /// Parses a JWK from JSON text (duplicate members rejected).
    pub fn from_json(bytes: &[u8]) -> Result<Jwk, JoseError> {
        let v = json::parse_strict(bytes).map_err(|_| JoseError::KeyMalformed("JSON"))?;
        Jwk::from_value(&v)
    }

    /// Parses a JWK from a JSON value.
    pub fn from_value(v: &Value) -> Result<Jwk, JoseError> {
        if !v.is_object() {
            return Err(JoseError::KeyMalformed("not an object"));
        }
        let raw = RawJwk::deserialize(v).map_err(|_| JoseError::KeyMalformed("member types"))?;
        let material = match raw.kty.as_str() {
            "RSA" => {
                if raw.oth.is_some() {
                    return Err(JoseError::KeyRejected("multi-prime RSA"));
                }
                let n = field(&raw.n, "n")?;
                let e = field(&raw.e, "e")?;
                let private = if raw.d.is_some() {
                    Some([
                        secret(&raw.d, "d")?,
                        secret(&raw.p, "p")?,
                        secret(&raw.q, "q")?,
                        secret(&raw.dp, "dp")?,
                        secret(&raw.dq, "dq")?,
                        secret(&raw.qi, "qi")?,
                    ])
                } else {
                    None
                };
                let refs = private.as_ref().map(|p| {
                    [
                        p[0].as_slice(),
                        p[1].as_slice(),
                        p[2].as_slice(),
                        p[3].as_slice(),
                        p[4].as_slice(),
                        p[5].as_slice(),
                    ]
                });
                Material::Rsa(Box::new(RsaKey::new(&n, &e, refs)?))
            }
            "EC" => {
                let crv = raw
                    .crv
                    .as_deref()
                    .and_then(Curve::from_name)
                    .ok_or(JoseError::KeyMalformed("crv"))?;
                let d = raw.d.as_ref().map(|_| secret(&raw.d, "d")).transpose()?;
                Material::Ec(Box::new(EcKey::new(
                    crv,
                    &field(&raw.x, "x")?,
                    &field(&raw.y, "y")?,
                    d.as_ref().map(|d| d.as_slice()),
                )?))
            }
            "OKP" => {
                let crv = match raw.crv.as_deref() {
                    Some("Ed25519") => Curve::Ed25519,
                    Some("X25519") => Curve::X25519,
                    Some("Ed448" | "X448") => {
                        return Err(JoseError::KeyRejected("unsupported OKP curve"))
                    }
                    _ => return Err(JoseError::KeyMalformed("crv")),
                };
                let d = raw.d.as_ref().map(|_| secret(&raw.d, "d")).transpose()?;
                Material::Okp(Box::new(OkpKey::new(
                    crv,
                    &field(&raw.x, "x")?,
                    d.as_ref().map(|d| d.as_slice()),
                )?))
            }
            "oct" => {
                let k = secret(&raw.k, "k")?;
                if let Some(alg) = raw.alg.as_deref().and_then(Alg::from_name) {
                    check_hmac_len(alg, k.len())?;
                }
                Material::Oct(Box::new(OctKey::new(k)?))
            }
            _ => return Err(JoseError::KeyMalformed("kty")),
        };
        let x5t_s256 = match (&raw.x5t_s256, &raw.x5c) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(chain)) => match chain.first() {
                Some(c) => {
                    let der = base64_std(c)?;
                    Some(b64::encode(digest::digest(&digest::SHA256, &der).as_ref()))
                }
                None => None,
            },
            _ => None,
        };
        Ok(Jwk {
            kid: raw.kid.clone(),
            alg: raw.alg.clone(),
            key_use: raw.key_use.clone(),
            key_ops: raw.key_ops.clone(),
            x5c: raw.x5c.clone(),
            x5t: raw.x5t.clone(),
            x5t_s256,
            material,
        })
    }

    pub(crate) fn from_material(material: Material) -> Jwk {
        Jwk {
            kid: None,
            alg: None,
            key_use: None,
            key_ops: None,
            x5c: None,
            x5t: None,
            x5t_s256: None,
            material,
        }
    }

    /// A symmetric key from raw bytes (HMAC secret, AES key, or PBES2 password).
    pub fn from_secret(bytes: &[u8]) -> Result<Jwk, JoseError> {
        Ok(Jwk::from_material(Material::Oct(Box::new(OctKey::new(
            Zeroizing::new(bytes.to_vec()),
        )?))))
    }

    /// Sets `kid`.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Jwk {
        self.kid = Some(kid.into());
        self
    }

    /// Sets `alg` (the only algorithm this key may be used with).
    pub fn with_alg(mut self, alg: impl Into<String>) -> Jwk {
        self.alg = Some(alg.into());
        self
    }

    /// Sets `use` (`sig` or `enc`).
    pub fn with_use(mut self, key_use: impl Into<String>) -> Jwk {
        self.key_use = Some(key_use.into());
        self
    }

    /// The key id.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The `alg` the key is bound to, if any.
    pub fn alg(&self) -> Option<&str> {
        self.alg.as_deref()
    }

    /// `kty`.
    pub fn kty(&self) -> &'static str {
        match &self.material {
            Material::Rsa(_) => "RSA",
            Material::Ec(_) => "EC",
            Material::Okp(_) => "OKP",
            Material::Oct(_) => "oct",
        }
    }

    /// The curve of an EC or OKP key.
    pub fn curve(&self) -> Option<Curve> {
        match &self.material {
            Material::Ec(k) => Some(k.crv),
            Material::Okp(k) => Some(k.crv),
            _ => None,
        }
    }

    /// True for `oct` keys.
    pub fn is_symmetric(&self) -> bool {
        matches!(self.material, Material::Oct(_))
    }

    /// True when the key holds private (or secret) material.
    pub fn is_private(&self) -> bool {
        match &self.material {
            Material::Rsa(k) => k.private.is_some(),
            Material::Ec(k) => k.private.is_some(),
            Material::Okp(k) => k.private.is_some(),
            Material::Oct(_) => true,
        }
    }

    /// The SHA-256 certificate thumbprint (`x5t#S256`, given or computed from `x5c`).
    pub fn x5t_s256(&self) -> Option<&str> {
        self.x5t_s256.as_deref()
    }

    /// The SHA-1 certificate thumbprint `x5t`, if given.
    pub fn x5t(&self) -> Option<&str> {
        self.x5t.as_deref()
    }

    /// Checks `alg`, `use` and `key_ops` against an operation with algorithm `alg_names`
    /// (any of them may match the key's `alg`).
    pub fn permits(&self, op: KeyOp, alg_names: &[&str]) -> Result<(), JoseError> {
        if let Some(a) = &self.alg {
            if !alg_names.contains(&a.as_str()) {
                return Err(JoseError::KeyRejected("key alg differs from the token alg"));
            }
        }
        if let Some(u) = &self.key_use {
            let need = match op {
                KeyOp::Sign | KeyOp::Verify => "sig",
                KeyOp::Encrypt | KeyOp::Decrypt => "enc",
            };
            if u != need {
                return Err(JoseError::KeyRejected("key use forbids the operation"));
            }
        }
        if let Some(ops) = &self.key_ops {
            let wanted: &[&str] = match op {
                KeyOp::Sign => &["sign"],
                KeyOp::Verify => &["verify"],
                KeyOp::Encrypt => &["encrypt", "wrapKey", "deriveKey", "deriveBits"],
                KeyOp::Decrypt => &["decrypt", "unwrapKey", "deriveKey", "deriveBits"],
            };
            if !ops.iter().any(|o| wanted.contains(&o.as_str())) {
                return Err(JoseError::KeyRejected("key_ops forbid the operation"));
            }
        }
        Ok(())
    }

    /// Exports the JWK as JSON; private members only when `private` is true.
    pub fn to_value(&self, private: bool) -> Result<Value, JoseError> {
        let mut m = Map::new();
        let mut put = |k: &str, v: &[u8]| {
            m.insert(k.to_owned(), Value::String(b64::encode(v)));
        };
        match &self.material {
            Material::Rsa(k) => {
                put("n", &k.n);
                put("e", &k.e);
                if let (true, Some(p)) = (private, &k.private) {
                    for (name, v) in ["d", "p", "q", "dp", "dq", "qi"].iter().zip(p.parts.iter()) {
                        put(name, v);
                    }
                }
            }
            Material::Ec(k) => {
                put("x", &k.x);
                put("y", &k.y);
                if let (true, Some(p)) = (private, &k.private) {
                    put("d", &p.d);
                }
            }
            Material::Okp(k) => {
                put("x", &k.x);
                if let (true, Some(p)) = (private, &k.private) {
                    put("d", &p.d);
                }
            }
            Material::Oct(k) => {
                if !private {
                    return Err(JoseError::InvalidInput(
                        "a symmetric key has no public part",
                    ));
                }
                put("k", &k.k);
            }
        }
        m.insert("kty".into(), Value::String(self.kty().into()));
        if let Some(c) = self.curve() {
            m.insert("crv".into(), Value::String(c.name().into()));
        }
        let opt = [
            ("kid", &self.kid),
            ("alg", &self.alg),
            ("use", &self.key_use),
            ("x5t", &self.x5t),
            ("x5t#S256", &self.x5t_s256),
        ];
        for (k, v) in opt {
            if let Some(v) = v {
                m.insert(k.into(), Value::String(v.clone()));
            }
        }
        if let Some(ops) = &self.key_ops {
            m.insert("key_ops".into(), Value::from(ops.clone()));
        }
        if let Some(c) = &self.x5c {
            m.insert("x5c".into(), Value::from(c.clone()));
        }
        Ok(Value::Object(m))
    }

    /// The public half as a new key (metadata kept).
    pub fn to_public(&self) -> Result<Jwk, JoseError> {
        let v = self.to_value(false)?;
        let mut k = Jwk::from_value(&v)?;
        k.key_ops = self.key_ops.as_ref().map(|ops| {
            ops.iter()
                .filter(|o| matches!(o.as_str(), "verify" | "encrypt" | "wrapKey"))
                .cloned()
                .collect()
        });
        Ok(k)
    }

    /// RFC 7638 JWK thumbprint (SHA-256, base64url).
    pub fn thumbprint(&self) -> String {
        let e = b64::encode;
        let canonical = match &self.material {
            Material::Rsa(k) => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, e(&k.e), e(&k.n)),
            Material::Ec(k) => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                k.crv.name(),
                e(&k.x),
                e(&k.y)
            ),
            Material::Okp(k) => {
                format!(
                    r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#,
                    k.crv.name(),
                    e(&k.x)
                )
            }
            Material::Oct(k) => {
                let s = Zeroizing::new(format!(r#"{{"k":"{}","kty":"oct"}}"#, e(&k.k)));
                return e(digest::digest(&digest::SHA256, s.as_bytes()).as_ref());
            }
        };
        e(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
    }

    pub(crate) fn oct(&self) -> Option<&OctKey> {
        match &self.material {
            Material::Oct(k) => Some(k),
            _ => None,
        }
    }
}

/// RFC 7518 §3.2: an HMAC key must be at least as long as the hash output.
pub(crate) fn check_hmac_len(alg: Alg, len: usize) -> Result<(), JoseError> {
    let min = match alg {
        Alg::HS256 => 32,
        Alg::HS384 => 48,
        Alg::HS512 => 64,
        _ => return Ok(()),
    };
    if len < min {
        return Err(JoseError::KeyRejected(
            "HMAC key shorter than the hash output",
        ));
    }
    Ok(())
}

pub(crate) fn base64_std(s: &str) -> Result<Vec<u8>, JoseError> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(s.as_bytes())
        .map_err(|_| JoseError::KeyMalformed("base64"))
}

/// Private EC scalar of an aws-lc-rs key pair (for key generation and PEM import).
pub(crate) fn ec_private_scalar(pair: &EcdsaKeyPair) -> Result<Zeroizing<Vec<u8>>, JoseError> {
    let bin = pair.private_key().as_be_bytes()?;
    Ok(Zeroizing::new(bin.as_ref().to_vec()))
}

/// The uncompressed public point of an aws-lc-rs EC key pair.
pub(crate) fn ec_public_point(pair: &EcdsaKeyPair) -> Vec<u8> {
    pair.public_key().as_ref().to_vec()
}
