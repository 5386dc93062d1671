//! Content encryption: AES-CBC-HMAC-SHA2 (RFC 7518 §5.2, encrypt-then-MAC, MAC checked in
//! constant time before any decryption) and AES-GCM (§5.3). Tag lengths are exact.

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{
    DecryptionContext, EncryptionContext, PaddedBlockDecryptingKey, PaddedBlockEncryptingKey,
    UnboundCipherKey, AES_128, AES_192, AES_256,
};
use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;
use zeroize::Zeroizing;

use crate::jose::{Enc, JoseError};

fn cbc_parts(enc: Enc) -> Option<(hmac::Algorithm, &'static aws_lc_rs::cipher::Algorithm)> {
    match enc {
        Enc::A128CbcHs256 => Some((hmac::HMAC_SHA256, &AES_128)),
        Enc::A192CbcHs384 => Some((hmac::HMAC_SHA384, &AES_192)),
        Enc::A256CbcHs512 => Some((hmac::HMAC_SHA512, &AES_256)),
        _ => None,
    }
}

fn gcm_alg(enc: Enc) -> Option<&'static aead::Algorithm> {
    match enc {
        Enc::A128Gcm => Some(&aead::AES_128_GCM),
        Enc::A192Gcm => Some(&aead::AES_192_GCM),
        Enc::A256Gcm => Some(&aead::AES_256_GCM),
        _ => None,
    }
}

fn cbc_tag(
    alg: hmac::Algorithm,
    mac_key: &[u8],
    aad: &[u8],
    iv: &[u8],
    ct: &[u8],
    tag_len: usize,
) -> Vec<u8> {
    let key = hmac::Key::new(alg, mac_key);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(aad);
    ctx.update(iv);
    ctx.update(ct);
    // AL: the AAD length in bits as a 64-bit big-endian integer (computed in u64: H43).
    ctx.update(&((aad.len() as u64).wrapping_mul(8)).to_be_bytes());
    let m = ctx.sign();
    m.as_ref().get(..tag_len).unwrap_or_default().to_vec()
}

/// Encrypts; returns (ciphertext, tag).
pub(crate) fn encrypt(
    enc: Enc,
    cek: &[u8],
    iv: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), JoseError> {
    if cek.len() != enc.cek_len() || iv.len() != enc.iv_len() {
        return Err(JoseError::InvalidInput("CEK or IV length"));
    }
    if let Some((mac_alg, aes)) = cbc_parts(enc) {
        let (mac_key, enc_key) = cek.split_at(cek.len() / 2);
        let key = PaddedBlockEncryptingKey::cbc_pkcs7(
            UnboundCipherKey::new(aes, enc_key).map_err(|_| JoseError::CryptoFailure)?,
        )?;
        let iv16: [u8; 16] = iv.try_into().map_err(|_| JoseError::CryptoFailure)?;
        let mut ct = plaintext.to_vec();
        key.less_safe_encrypt(&mut ct, EncryptionContext::Iv128(FixedLength::from(iv16)))?;
        let tag = cbc_tag(mac_alg, mac_key, aad, iv, &ct, enc.tag_len());
        return Ok((ct, tag));
    }
    let alg = gcm_alg(enc).ok_or(JoseError::CryptoFailure)?;
    let key = LessSafeKey::new(UnboundKey::new(alg, cek)?);
    let nonce = Nonce::try_assume_unique_for_key(iv)?;
    let mut ct = plaintext.to_vec();
    let tag = key.seal_in_place_separate_tag(nonce, Aad::from(aad), &mut ct)?;
    Ok((ct, tag.as_ref().to_vec()))
}

/// Decrypts; every failure is `DecryptionFailed`.
pub(crate) fn decrypt(
    enc: Enc,
    cek: &[u8],
    iv: &[u8],
    aad: &[u8],
    ct: &[u8],
    tag: &[u8],
) -> Result<Zeroizing<Vec<u8>>, JoseError> {
    let fail = || JoseError::DecryptionFailed;
    if cek.len() != enc.cek_len() || iv.len() != enc.iv_len() || tag.len() != enc.tag_len() {
        return Err(fail());
    }
    if let Some((mac_alg, aes)) = cbc_parts(enc) {
        let (mac_key, enc_key) = cek.split_at(cek.len() / 2);
        let expected = cbc_tag(mac_alg, mac_key, aad, iv, ct, enc.tag_len());
        verify_slices_are_equal(&expected, tag).map_err(|_| fail())?;
        let key = PaddedBlockDecryptingKey::cbc_pkcs7(
            UnboundCipherKey::new(aes, enc_key).map_err(|_| fail())?,
        )
        .map_err(|_| fail())?;
        let iv16: [u8; 16] = iv.try_into().map_err(|_| fail())?;
        let mut buf = Zeroizing::new(ct.to_vec());
        let len = key
            .decrypt(&mut buf, DecryptionContext::Iv128(FixedLength::from(iv16)))
            .map_err(|_| fail())?
            .len();
        buf.truncate(len);
        return Ok(buf);
    }
    let alg = gcm_alg(enc).ok_or_else(fail)?;
    let key = LessSafeKey::new(UnboundKey::new(alg, cek).map_err(|_| fail())?);
    let nonce = Nonce::try_assume_unique_for_key(iv).map_err(|_| fail())?;
    let mut buf = Zeroizing::new(ct.to_vec());
    let len = key
        .open_in_place_separate_tag(nonce, Aad::from(aad), tag, &mut buf)
        .map_err(|_| fail())?
        .len();
    buf.truncate(len);
    Ok(buf)
}
