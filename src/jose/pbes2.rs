//! Password-protected PKCS#8 (`ENCRYPTED PRIVATE KEY`): EncryptedPrivateKeyInfo with PBES2
//! (RFC 8018 §6.2), PBKDF2 with HMAC-SHA1/256/384/512 and AES-128/192/256-CBC, as written by
//! `openssl pkcs8 -topk8 -v2 aes-256-cbc` and `openssl genpkey ... -aes256`. PBES1, scrypt and
//! DES are refused. Every parameter is checked before the key derivation runs.

use std::num::NonZeroU32;

use aws_lc_rs::cipher::{
    self, DecryptionContext, PaddedBlockDecryptingKey, UnboundCipherKey, AES_128, AES_192, AES_256,
};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::pbkdf2;
use zeroize::Zeroizing;

use super::der::{self, Reader, INTEGER, OCTET_STRING, OID, SEQUENCE};
use super::JoseError;

/// Most PBKDF2 iterations accepted: a file cannot make loading the config take minutes.
pub const MAX_ITERATIONS: u32 = 10_000_000;
/// Longest salt accepted (OpenSSL writes 8 or 16 bytes).
const MAX_SALT: usize = 64;

const OID_PBES2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d];
const OID_PBKDF2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0c];
const OID_HMAC_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x07];
const OID_HMAC_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x09];
const OID_HMAC_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x0a];
const OID_HMAC_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x0b];
const OID_AES128_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x02];
const OID_AES192_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x16];
const OID_AES256_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];

/// The one answer for a wrong password: CBC padding and the DER inside cannot tell it apart
/// from a damaged file.
const WRONG: JoseError = JoseError::KeyRejected("wrong password (or a damaged encrypted key)");

/// Everything needed to decrypt, read from the DER before any work is done.
struct Params<'a> {
    prf: pbkdf2::Algorithm,
    salt: &'a [u8],
    iterations: NonZeroU32,
    aes: &'static cipher::Algorithm,
    key_len: usize,
    iv: [u8; 16],
    data: &'a [u8],
}

/// A non-negative INTEGER that fits in a u32.
fn small_uint(v: &[u8]) -> Option<u32> {
    if v.len() > 4 {
        return None;
    }
    Some(v.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
}

fn prf_of(oid: &[u8]) -> Result<pbkdf2::Algorithm, JoseError> {
    match oid {
        OID_HMAC_SHA1 => Ok(pbkdf2::PBKDF2_HMAC_SHA1),
        OID_HMAC_SHA256 => Ok(pbkdf2::PBKDF2_HMAC_SHA256),
        OID_HMAC_SHA384 => Ok(pbkdf2::PBKDF2_HMAC_SHA384),
        OID_HMAC_SHA512 => Ok(pbkdf2::PBKDF2_HMAC_SHA512),
        _ => Err(JoseError::KeyRejected(
            "encrypted key: PBKDF2 PRF must be HMAC-SHA1/256/384/512",
        )),
    }
}

fn aes_of(oid: &[u8]) -> Result<(&'static cipher::Algorithm, usize), JoseError> {
    match oid {
        OID_AES128_CBC => Ok((&AES_128, 16)),
        OID_AES192_CBC => Ok((&AES_192, 24)),
        OID_AES256_CBC => Ok((&AES_256, 32)),
        _ => Err(JoseError::KeyRejected(
            "encrypted key: cipher must be AES-128/192/256-CBC",
        )),
    }
}

fn params(der_bytes: &[u8]) -> Result<Params<'_>, JoseError> {
    let mut outer = Reader(der_bytes);
    let mut info = Reader(outer.expect(SEQUENCE)?);
    let mut alg = Reader(info.expect(SEQUENCE)?);
    if alg.expect(OID)? != OID_PBES2 {
        return Err(JoseError::KeyRejected(
            "encrypted key: only PBES2 (openssl pkcs8 -topk8 -v2 aes-256-cbc)",
        ));
    }
    let mut pbes2 = Reader(alg.expect(SEQUENCE)?);
    let mut kdf = Reader(pbes2.expect(SEQUENCE)?);
    if kdf.expect(OID)? != OID_PBKDF2 {
        return Err(JoseError::KeyRejected("encrypted key: only PBKDF2"));
    }
    let mut kp = Reader(kdf.expect(SEQUENCE)?);
    let salt = kp.expect(OCTET_STRING)?;
    let iterations = small_uint(kp.uint()?)
        .filter(|i| *i <= MAX_ITERATIONS)
        .and_then(NonZeroU32::new)
        .ok_or(JoseError::KeyRejected(
            "encrypted key: PBKDF2 iterations must be 1..=10000000",
        ))?;
    let declared_len = if kp.peek() == Some(INTEGER) {
        Some(small_uint(kp.uint()?).ok_or(JoseError::KeyMalformed("PBKDF2 key length"))?)
    } else {
        None
    };
    // The PRF defaults to HMAC-SHA1 when absent (RFC 8018 Appendix A.2).
    let prf = if kp.peek() == Some(SEQUENCE) {
        prf_of(der::algorithm_id(&mut kp)?.0)?
    } else {
        pbkdf2::PBKDF2_HMAC_SHA1
    };
    let mut scheme = Reader(pbes2.expect(SEQUENCE)?);
    let (aes, key_len) = aes_of(scheme.expect(OID)?)?;
    let iv: [u8; 16] = scheme
        .expect(OCTET_STRING)?
        .try_into()
        .map_err(|_| JoseError::KeyMalformed("AES-CBC IV"))?;
    let data = info.expect(OCTET_STRING)?;
    if !outer.is_empty() || !info.is_empty() {
        return Err(JoseError::KeyMalformed("DER"));
    }
    if salt.is_empty() || salt.len() > MAX_SALT {
        return Err(JoseError::KeyRejected(
            "encrypted key: salt of 1..=64 bytes",
        ));
    }
    if declared_len.is_some_and(|l| usize::try_from(l).ok() != Some(key_len)) {
        return Err(JoseError::KeyMalformed("PBKDF2 key length"));
    }
    if data.is_empty() || data.len() % 16 != 0 {
        return Err(JoseError::KeyMalformed("encrypted key data"));
    }
    Ok(Params {
        prf,
        salt,
        iterations,
        aes,
        key_len,
        iv,
        data,
    })
}

/// Decrypts an EncryptedPrivateKeyInfo into the PKCS#8 PrivateKeyInfo DER it holds.
pub(crate) fn decrypt(der_bytes: &[u8], password: &[u8]) -> Result<Zeroizing<Vec<u8>>, JoseError> {
    let p = params(der_bytes)?;
    let mut key = Zeroizing::new(vec![0u8; p.key_len]);
    pbkdf2::derive(p.prf, p.iterations, p.salt, password, &mut key);
    let unbound = UnboundCipherKey::new(p.aes, &key).map_err(|_| JoseError::CryptoFailure)?;
    let cbc = PaddedBlockDecryptingKey::cbc_pkcs7(unbound).map_err(|_| JoseError::CryptoFailure)?;
    let mut buf = Zeroizing::new(p.data.to_vec());
    let plain = cbc
        .decrypt(&mut buf, DecryptionContext::Iv128(FixedLength::from(p.iv)))
        .map_err(|_| WRONG)?;
    let out = Zeroizing::new(plain.to_vec());
    der::pkcs8(&out).map_err(|_| WRONG)?;
    Ok(out)
}
