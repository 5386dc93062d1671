//! Algorithm identifiers (RFC 7518, RFC 8037). `none` has no representation.

use std::fmt;

/// A JWS signature algorithm.
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    ES512,
    EdDSA,
}

impl Alg {
    /// Every supported JWS algorithm.
    pub const ALL: [Alg; 13] = [
        Alg::HS256,
        Alg::HS384,
        Alg::HS512,
        Alg::RS256,
        Alg::RS384,
        Alg::RS512,
        Alg::PS256,
        Alg::PS384,
        Alg::PS512,
        Alg::ES256,
        Alg::ES384,
        Alg::ES512,
        Alg::EdDSA,
    ];

    /// The registered name.
    pub const fn name(self) -> &'static str {
        match self {
            Alg::HS256 => "HS256",
            Alg::HS384 => "HS384",
            Alg::HS512 => "HS512",
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::PS256 => "PS256",
            Alg::PS384 => "PS384",
            Alg::PS512 => "PS512",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::ES512 => "ES512",
            Alg::EdDSA => "EdDSA",
        }
    }

    /// Case-sensitive lookup; `none` (any case) is never found.
    pub fn from_name(name: &str) -> Option<Alg> {
        Alg::ALL.iter().copied().find(|a| a.name() == name)
    }

    /// True for the HMAC family.
    pub const fn is_hmac(self) -> bool {
        matches!(self, Alg::HS256 | Alg::HS384 | Alg::HS512)
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A JWE key management algorithm.
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlg {
    RsaOaep,
    RsaOaep256,
    RsaOaep384,
    RsaOaep512,
    Rsa1_5,
    A128KW,
    A192KW,
    A256KW,
    A128GCMKW,
    A192GCMKW,
    A256GCMKW,
    Dir,
    EcdhEs,
    EcdhEsA128KW,
    EcdhEsA192KW,
    EcdhEsA256KW,
    Pbes2Hs256A128KW,
    Pbes2Hs384A192KW,
    Pbes2Hs512A256KW,
}

impl KeyAlg {
    /// Whether the sender needs only a public key: such a JWE proves nothing about who made it.
    pub fn is_public_key(&self) -> bool {
        matches!(
            self,
            KeyAlg::RsaOaep
                | KeyAlg::RsaOaep256
                | KeyAlg::RsaOaep384
                | KeyAlg::RsaOaep512
                | KeyAlg::Rsa1_5
                | KeyAlg::EcdhEs
                | KeyAlg::EcdhEsA128KW
                | KeyAlg::EcdhEsA192KW
                | KeyAlg::EcdhEsA256KW
        )
    }

    /// Every supported key management algorithm.
    pub const ALL: [KeyAlg; 19] = [
        KeyAlg::RsaOaep,
        KeyAlg::RsaOaep256,
        KeyAlg::RsaOaep384,
        KeyAlg::RsaOaep512,
        KeyAlg::Rsa1_5,
        KeyAlg::A128KW,
        KeyAlg::A192KW,
        KeyAlg::A256KW,
        KeyAlg::A128GCMKW,
        KeyAlg::A192GCMKW,
        KeyAlg::A256GCMKW,
        KeyAlg::Dir,
        KeyAlg::EcdhEs,
        KeyAlg::EcdhEsA128KW,
        KeyAlg::EcdhEsA192KW,
        KeyAlg::EcdhEsA256KW,
        KeyAlg::Pbes2Hs256A128KW,
        KeyAlg::Pbes2Hs384A192KW,
        KeyAlg::Pbes2Hs512A256KW,
    ];

    /// The registered name.
    pub const fn name(self) -> &'static str {
        match self {
            KeyAlg::RsaOaep => "RSA-OAEP",
            KeyAlg::RsaOaep256 => "RSA-OAEP-256",
            KeyAlg::RsaOaep384 => "RSA-OAEP-384",
            KeyAlg::RsaOaep512 => "RSA-OAEP-512",
            KeyAlg::Rsa1_5 => "RSA1_5",
            KeyAlg::A128KW => "A128KW",
            KeyAlg::A192KW => "A192KW",
            KeyAlg::A256KW => "A256KW",
            KeyAlg::A128GCMKW => "A128GCMKW",
            KeyAlg::A192GCMKW => "A192GCMKW",
            KeyAlg::A256GCMKW => "A256GCMKW",
            KeyAlg::Dir => "dir",
            KeyAlg::EcdhEs => "ECDH-ES",
            KeyAlg::EcdhEsA128KW => "ECDH-ES+A128KW",
            KeyAlg::EcdhEsA192KW => "ECDH-ES+A192KW",
            KeyAlg::EcdhEsA256KW => "ECDH-ES+A256KW",
            KeyAlg::Pbes2Hs256A128KW => "PBES2-HS256+A128KW",
            KeyAlg::Pbes2Hs384A192KW => "PBES2-HS384+A192KW",
            KeyAlg::Pbes2Hs512A256KW => "PBES2-HS512+A256KW",
        }
    }

    /// Case-sensitive lookup.
    pub fn from_name(name: &str) -> Option<KeyAlg> {
        KeyAlg::ALL.iter().copied().find(|a| a.name() == name)
    }

    /// Key size of the AES key wrap step, if this algorithm wraps the CEK with AES-KW.
    pub(crate) const fn kw_len(self) -> Option<usize> {
        match self {
            KeyAlg::A128KW | KeyAlg::EcdhEsA128KW | KeyAlg::Pbes2Hs256A128KW => Some(16),
            KeyAlg::A192KW | KeyAlg::EcdhEsA192KW | KeyAlg::Pbes2Hs384A192KW => Some(24),
            KeyAlg::A256KW | KeyAlg::EcdhEsA256KW | KeyAlg::Pbes2Hs512A256KW => Some(32),
            _ => None,
        }
    }

    /// True for the RSA family.
    #[cfg(test)]
    pub(crate) const fn is_rsa(self) -> bool {
        matches!(
            self,
            KeyAlg::RsaOaep
                | KeyAlg::RsaOaep256
                | KeyAlg::RsaOaep384
                | KeyAlg::RsaOaep512
                | KeyAlg::Rsa1_5
        )
    }

    /// True for the ECDH-ES family.
    pub(crate) const fn is_ecdh(self) -> bool {
        matches!(
            self,
            KeyAlg::EcdhEs | KeyAlg::EcdhEsA128KW | KeyAlg::EcdhEsA192KW | KeyAlg::EcdhEsA256KW
        )
    }

    /// True for the PBES2 family.
    pub(crate) const fn is_pbes2(self) -> bool {
        matches!(
            self,
            KeyAlg::Pbes2Hs256A128KW | KeyAlg::Pbes2Hs384A192KW | KeyAlg::Pbes2Hs512A256KW
        )
    }
}

impl fmt::Display for KeyAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A JWE content encryption algorithm.
#[allow(clippy::upper_case_acronyms)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Enc {
    A128CbcHs256,
    A192CbcHs384,
    A256CbcHs512,
    A128Gcm,
    A192Gcm,
    A256Gcm,
}

impl Enc {
    /// Every supported content encryption algorithm.
    pub const ALL: [Enc; 6] = [
        Enc::A128CbcHs256,
        Enc::A192CbcHs384,
        Enc::A256CbcHs512,
        Enc::A128Gcm,
        Enc::A192Gcm,
        Enc::A256Gcm,
    ];

    /// The registered name.
    pub const fn name(self) -> &'static str {
        match self {
            Enc::A128CbcHs256 => "A128CBC-HS256",
            Enc::A192CbcHs384 => "A192CBC-HS384",
            Enc::A256CbcHs512 => "A256CBC-HS512",
            Enc::A128Gcm => "A128GCM",
            Enc::A192Gcm => "A192GCM",
            Enc::A256Gcm => "A256GCM",
        }
    }

    /// Case-sensitive lookup.
    pub fn from_name(name: &str) -> Option<Enc> {
        Enc::ALL.iter().copied().find(|a| a.name() == name)
    }

    /// Length of the content encryption key in bytes.
    pub const fn cek_len(self) -> usize {
        match self {
            Enc::A128CbcHs256 => 32,
            Enc::A192CbcHs384 => 48,
            Enc::A256CbcHs512 => 64,
            Enc::A128Gcm => 16,
            Enc::A192Gcm => 24,
            Enc::A256Gcm => 32,
        }
    }

    /// Length of the IV in bytes.
    pub const fn iv_len(self) -> usize {
        match self {
            Enc::A128CbcHs256 | Enc::A192CbcHs384 | Enc::A256CbcHs512 => 16,
            _ => 12,
        }
    }

    /// Length of the authentication tag in bytes (exact).
    pub const fn tag_len(self) -> usize {
        match self {
            Enc::A128CbcHs256 => 16,
            Enc::A192CbcHs384 => 24,
            Enc::A256CbcHs512 => 32,
            _ => 16,
        }
    }
}

impl fmt::Display for Enc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
