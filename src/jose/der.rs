//! A minimal DER reader: just enough to import PEM keys (SPKI, PKCS#8, PKCS#1, X.509) and to
//! read RSA private components back out of aws-lc-rs PKCS#8 output.

use super::JoseError;

pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const INTEGER: u8 = 0x02;
pub(crate) const BIT_STRING: u8 = 0x03;
pub(crate) const OCTET_STRING: u8 = 0x04;
pub(crate) const OID: u8 = 0x06;

pub(crate) const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
pub(crate) const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
pub(crate) const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
pub(crate) const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
pub(crate) const OID_P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];
pub(crate) const OID_X25519: &[u8] = &[0x2b, 0x65, 0x6e];
pub(crate) const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

fn bad() -> JoseError {
    JoseError::KeyMalformed("DER")
}

/// A cursor over DER bytes.
#[derive(Clone, Copy)]
pub(crate) struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Reads one TLV; returns (tag, contents).
    pub(crate) fn any(&mut self) -> Result<(u8, &'a [u8]), JoseError> {
        let (&tag, rest) = self.0.split_first().ok_or_else(bad)?;
        let (&l0, mut rest) = rest.split_first().ok_or_else(bad)?;
        let len = if l0 < 0x80 {
            usize::from(l0)
        } else {
            let n = usize::from(l0 & 0x7f);
            if n == 0 || n > 4 {
                return Err(bad());
            }
            let (lb, r) = rest.split_at_checked(n).ok_or_else(bad)?;
            rest = r;
            lb.iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
        };
        let (body, rest) = rest.split_at_checked(len).ok_or_else(bad)?;
        self.0 = rest;
        Ok((tag, body))
    }

    /// Reads one TLV that must have `tag`.
    pub(crate) fn expect(&mut self, tag: u8) -> Result<&'a [u8], JoseError> {
        let (t, body) = self.any()?;
        if t != tag {
            return Err(bad());
        }
        Ok(body)
    }

    /// Peeks the next tag.
    pub(crate) fn peek(&self) -> Option<u8> {
        self.0.first().copied()
    }

    /// Reads an unsigned INTEGER, stripping the sign octet.
    pub(crate) fn uint(&mut self) -> Result<&'a [u8], JoseError> {
        let mut v = self.expect(INTEGER)?;
        while let [0, rest @ ..] = v {
            if rest.is_empty() {
                break;
            }
            v = rest;
        }
        Ok(v)
    }
}

/// AlgorithmIdentifier: (algorithm OID, optional parameter OID).
pub(crate) fn algorithm_id<'a>(
    r: &mut Reader<'a>,
) -> Result<(&'a [u8], Option<&'a [u8]>), JoseError> {
    let mut a = Reader(r.expect(SEQUENCE)?);
    let oid = a.expect(OID)?;
    let param = if a.peek() == Some(OID) {
        Some(a.expect(OID)?)
    } else {
        None
    };
    Ok((oid, param))
}

/// (algorithm OID, optional parameter OID, key bytes).
pub(crate) type KeyInfo<'a> = (&'a [u8], Option<&'a [u8]>, &'a [u8]);

/// SubjectPublicKeyInfo → (algorithm OID, parameter OID, key bits).
pub(crate) fn spki(der: &[u8]) -> Result<KeyInfo<'_>, JoseError> {
    let mut outer = Reader(der);
    let mut s = Reader(outer.expect(SEQUENCE)?);
    if !outer.is_empty() {
        return Err(bad());
    }
    let (oid, param) = algorithm_id(&mut s)?;
    let bits = s.expect(BIT_STRING)?;
    match bits.split_first() {
        Some((0, key)) => Ok((oid, param, key)),
        _ => Err(bad()),
    }
}

/// X.509 Certificate → its SubjectPublicKeyInfo (DER, including the SEQUENCE header).
pub(crate) fn cert_spki(der: &[u8]) -> Result<&[u8], JoseError> {
    let mut cert = Reader(Reader(der).expect(SEQUENCE)?);
    let mut tbs = Reader(cert.expect(SEQUENCE)?);
    if tbs.peek() == Some(0xa0) {
        tbs.any()?;
    }
    // serial, signature, issuer, validity, subject
    for _ in 0..5 {
        tbs.any()?;
    }
    let before = tbs.0;
    tbs.expect(SEQUENCE)?;
    let used = before.len() - tbs.0.len();
    before.get(..used).ok_or_else(bad)
}

/// PKCS#8 PrivateKeyInfo → (algorithm OID, parameter OID, privateKey octets).
pub(crate) fn pkcs8(der: &[u8]) -> Result<KeyInfo<'_>, JoseError> {
    let mut s = Reader(Reader(der).expect(SEQUENCE)?);
    s.expect(INTEGER)?;
    let (oid, param) = algorithm_id(&mut s)?;
    let key = s.expect(OCTET_STRING)?;
    Ok((oid, param, key))
}

/// RSAPublicKey → (n, e).
pub(crate) fn rsa_public(der: &[u8]) -> Result<(&[u8], &[u8]), JoseError> {
    let mut s = Reader(Reader(der).expect(SEQUENCE)?);
    let n = s.uint()?;
    let e = s.uint()?;
    Ok((n, e))
}

/// RSAPrivateKey → [n, e, d, p, q, dp, dq, qi]. Multi-prime keys are refused.
pub(crate) fn rsa_private(der: &[u8]) -> Result<[&[u8]; 8], JoseError> {
    let mut s = Reader(Reader(der).expect(SEQUENCE)?);
    if s.uint()? != [0] {
        return Err(JoseError::KeyRejected("multi-prime RSA"));
    }
    let mut out: [&[u8]; 8] = [&[]; 8];
    for slot in out.iter_mut() {
        *slot = s.uint()?;
    }
    Ok(out)
}

/// The JOSE curve named by an EC parameter OID.
pub(crate) fn curve_oid(oid: &[u8]) -> Option<&'static str> {
    match oid {
        OID_P256 => Some("P-256"),
        OID_P384 => Some("P-384"),
        OID_P521 => Some("P-521"),
        _ => None,
    }
}
