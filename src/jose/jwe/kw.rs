//! AES Key Wrap (RFC 3394) on the raw AES block via aws-lc-rs ECB, for 128-, 192- and 256-bit
//! KEKs (aws-lc-rs `key_wrap` offers only AES-128/256; JOSE also needs A192KW).

use aws_lc_rs::cipher::{
    DecryptingKey, DecryptionContext, EncryptingKey, EncryptionContext, UnboundCipherKey, AES_128,
    AES_192, AES_256,
};
use aws_lc_rs::constant_time::verify_slices_are_equal;
use zeroize::Zeroizing;

use crate::jose::JoseError;

const IV: [u8; 8] = [0xa6; 8];

fn unbound(kek: &[u8]) -> Result<UnboundCipherKey, JoseError> {
    let alg = match kek.len() {
        16 => &AES_128,
        24 => &AES_192,
        32 => &AES_256,
        _ => {
            return Err(JoseError::KeyRejected(
                "AES key wrap key must be 16, 24 or 32 bytes",
            ))
        }
    };
    UnboundCipherKey::new(alg, kek).map_err(|_| JoseError::CryptoFailure)
}

fn xor_t(a: &mut [u8; 8], t: u64) {
    for (x, y) in a.iter_mut().zip(t.to_be_bytes()) {
        *x ^= y;
    }
}

/// Wraps `cek` (a multiple of 8 bytes, at least 16) under `kek`.
pub(crate) fn wrap(kek: &[u8], cek: &[u8]) -> Result<Vec<u8>, JoseError> {
    if cek.len() % 8 != 0 || cek.len() < 16 {
        return Err(JoseError::InvalidInput("key wrap input"));
    }
    let key = EncryptingKey::ecb(unbound(kek)?).map_err(|_| JoseError::CryptoFailure)?;
    let n = cek.len() / 8;
    let mut a = IV;
    let mut r = Zeroizing::new(cek.to_vec());
    let mut block = Zeroizing::new([0u8; 16]);
    for j in 0..6u64 {
        for (i, chunk) in r.chunks_exact_mut(8).enumerate() {
            block[..8].copy_from_slice(&a);
            block[8..].copy_from_slice(chunk);
            key.less_safe_encrypt(block.as_mut(), EncryptionContext::None)
                .map_err(|_| JoseError::CryptoFailure)?;
            a.copy_from_slice(&block[..8]);
            xor_t(&mut a, n as u64 * j + i as u64 + 1);
            chunk.copy_from_slice(&block[8..]);
        }
    }
    let mut out = Vec::with_capacity(8 + cek.len());
    out.extend_from_slice(&a);
    out.extend_from_slice(&r);
    Ok(out)
}

/// Unwraps; every failure is `DecryptionFailed`.
pub(crate) fn unwrap(kek: &[u8], wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, JoseError> {
    let fail = JoseError::DecryptionFailed;
    if wrapped.len() % 8 != 0 || wrapped.len() < 24 {
        return Err(fail);
    }
    let key = DecryptingKey::ecb(unbound(kek).map_err(|_| JoseError::DecryptionFailed)?)
        .map_err(|_| JoseError::DecryptionFailed)?;
    let (a0, rest) = wrapped.split_at(8);
    let mut a = [0u8; 8];
    a.copy_from_slice(a0);
    let mut r = Zeroizing::new(rest.to_vec());
    let n = r.len() / 8;
    let mut block = Zeroizing::new([0u8; 16]);
    for j in (0..6u64).rev() {
        for (i, chunk) in r.chunks_exact_mut(8).enumerate().rev() {
            xor_t(&mut a, n as u64 * j + i as u64 + 1);
            block[..8].copy_from_slice(&a);
            block[8..].copy_from_slice(chunk);
            key.decrypt(block.as_mut(), DecryptionContext::None)
                .map_err(|_| JoseError::DecryptionFailed)?;
            a.copy_from_slice(&block[..8]);
            chunk.copy_from_slice(&block[8..]);
        }
    }
    verify_slices_are_equal(&a, &IV).map_err(|_| JoseError::DecryptionFailed)?;
    Ok(r)
}
