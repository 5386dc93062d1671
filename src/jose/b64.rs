//! Strict base64url (RFC 7515 §2): URL-safe alphabet, no padding, no whitespace, canonical
//! trailing bits only.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;

use super::JoseError;

/// The one engine used everywhere: rejects `=`, `+`, `/`, whitespace and non-zero unused bits.
pub const STRICT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// Encodes without padding.
pub fn encode(bytes: &[u8]) -> String {
    STRICT.encode(bytes)
}

/// Appends the encoding of `bytes` to `out`.
pub fn encode_into(bytes: &[u8], out: &mut String) {
    STRICT.encode_string(bytes, out);
}

/// Decodes strictly.
pub fn decode(text: &[u8]) -> Result<Vec<u8>, JoseError> {
    STRICT.decode(text).map_err(|_| JoseError::TokenMalformed)
}

/// Decodes strictly into a caller buffer; returns the decoded length.
pub fn decode_slice(text: &[u8], out: &mut [u8]) -> Result<usize, JoseError> {
    STRICT
        .decode_slice(text, out)
        .map_err(|_| JoseError::TokenMalformed)
}
