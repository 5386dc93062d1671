//! Size and work caps, checked before any decoding or expensive crypto.

/// Caps applied to inbound tokens. The defaults suit a bearer token in an HTTP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Whole compact token, in bytes.
    pub max_token: usize,
    /// Base64url protected header, in bytes.
    pub max_header: usize,
    /// Base64url JWE encrypted key, in bytes (RSA-8192 needs 1366).
    pub max_encrypted_key: usize,
    /// Decrypted (and decompressed) JWE plaintext, in bytes.
    pub max_plaintext: usize,
    /// Lowest PBES2 iteration count accepted.
    pub min_p2c: u32,
    /// Highest PBES2 iteration count accepted.
    pub max_p2c: u32,
    /// Shortest PBES2 salt input (`p2s`) accepted, in bytes (RFC 7518 §4.8.1.1).
    pub min_p2s: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_token: 16 * 1024,
            max_header: 2048,
            max_encrypted_key: 1400,
            max_plaintext: 256 * 1024,
            min_p2c: 1000,
            max_p2c: 10_000,
            min_p2s: 8,
        }
    }
}
