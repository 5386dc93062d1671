//! Client secrets and user passwords are stored as PBKDF2-HMAC-SHA256 hashes in PHC string
//! form, `$pbkdf2-sha256$i=600000$<salt>$<hash>` (salt and hash base64, no padding), and
//! checked with aws-lc-rs `pbkdf2::verify`, which compares in constant time (RFC 6819
//! §5.1.4.1.3). aws-lc-rs is already the crypto provider, so no second crypto crate is needed.
//!
//! An unknown client id or username is checked against a dummy hash with the same cost, so
//! the answer and its timing do not tell a wrong name from a wrong secret.

use aws_lc_rs::pbkdf2;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use std::num::NonZeroU32;

/// Iterations of new hashes (OWASP 2023 figure for PBKDF2-HMAC-SHA256).
pub const DEFAULT_ITERATIONS: u32 = 600_000;
/// Fewest iterations accepted in a config (high-entropy client secrets need few).
pub const MIN_ITERATIONS: u32 = 1_000;
/// Most iterations accepted (one check must stay well under a second).
pub const MAX_ITERATIONS: u32 = 10_000_000;

/// The PBKDF2 pseudo-random function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prf {
    Sha1,
    Sha256,
    Sha512,
}

impl Prf {
    fn algorithm(self) -> pbkdf2::Algorithm {
        match self {
            Prf::Sha1 => pbkdf2::PBKDF2_HMAC_SHA1,
            Prf::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Prf::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }
}

/// A parsed PHC hash. `Debug` shows the cost only.
#[derive(Clone)]
pub struct SecretHash {
    prf: Prf,
    iterations: NonZeroU32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SecretHash(pbkdf2 {:?}, i={})",
            self.prf, self.iterations
        )
    }
}

impl SecretHash {
    /// Parse `$pbkdf2-sha256$i=N$salt$hash` (PHC: `$pbkdf2-sha512$`, `$pbkdf2$` for SHA-1,
    /// and `i=N,l=L` too), or passlib's modular form `$pbkdf2-sha256$N$salt$hash` (its "ab64"
    /// alphabet writes `.` for `+`).
    pub fn parse(s: &str) -> Result<SecretHash, String> {
        let mut it = s.split('$');
        let (Some(""), Some(id), Some(params), Some(salt), Some(hash), None) = (
            it.next(),
            it.next(),
            it.next(),
            it.next(),
            it.next(),
            it.next(),
        ) else {
            return Err("expected $pbkdf2-sha256$i=N$salt$hash".into());
        };
        let prf = match id {
            "pbkdf2-sha256" => Prf::Sha256,
            "pbkdf2-sha512" => Prf::Sha512,
            "pbkdf2" | "pbkdf2-sha1" => Prf::Sha1,
            _ => {
                return Err(format!(
                    "unsupported hash {id:?} (pbkdf2-sha256, pbkdf2-sha512, pbkdf2)"
                ))
            }
        };
        let count = match params.strip_prefix("i=") {
            Some(p) => p.split(',').next().unwrap_or_default(),
            None => params,
        };
        let iterations: u32 = count.parse().map_err(|_| "expected i=ITERATIONS")?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(format!(
                "iterations must be {MIN_ITERATIONS}..={MAX_ITERATIONS}"
            ));
        }
        let b64 = |s: &str| STANDARD_NO_PAD.decode(s.trim_end_matches('=').replace('.', "+"));
        let salt = b64(salt).map_err(|_| "salt: bad base64")?;
        let hash = b64(hash).map_err(|_| "hash: bad base64")?;
        if salt.len() < 8 || !(16..=64).contains(&hash.len()) {
            return Err("salt >= 8 bytes and hash 16..=64 bytes".into());
        }
        Ok(SecretHash {
            prf,
            iterations: NonZeroU32::new(iterations).ok_or("iterations")?,
            salt,
            hash,
        })
    }

    /// Hash a new secret with a random salt.
    pub fn create(secret: &[u8], iterations: u32) -> Result<String, String> {
        let i = NonZeroU32::new(iterations.clamp(MIN_ITERATIONS, MAX_ITERATIONS))
            .ok_or("iterations")?;
        let mut salt = [0u8; 16];
        aws_lc_rs::rand::fill(&mut salt).map_err(|_| "no randomness")?;
        let mut out = [0u8; 32];
        pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, i, &salt, secret, &mut out);
        Ok(format!(
            "$pbkdf2-sha256$i={i}${}${}",
            STANDARD_NO_PAD.encode(salt),
            STANDARD_NO_PAD.encode(out)
        ))
    }

    /// A hash no secret matches, with this many iterations (for unknown names). The hash is
    /// random so that no secret matches it: without randomness (all zeros) it could be
    /// precomputed, so a failed draw is an error.
    pub fn dummy(iterations: u32) -> Result<SecretHash, String> {
        let mut salt = vec![0u8; 16];
        let mut hash = vec![0u8; 32];
        aws_lc_rs::rand::fill(&mut salt)
            .and_then(|_| aws_lc_rs::rand::fill(&mut hash))
            .map_err(|_| "no random bytes from the system")?;
        Ok(SecretHash {
            prf: Prf::Sha256,
            iterations: NonZeroU32::new(iterations.max(1)).unwrap_or(NonZeroU32::MIN),
            salt,
            hash,
        })
    }

    pub fn iterations(&self) -> u32 {
        self.iterations.get()
    }

    /// HMAC calls one check costs (iterations x output blocks).
    pub fn work(&self) -> u64 {
        let block = match self.prf {
            Prf::Sha1 => 20,
            Prf::Sha256 => 32,
            Prf::Sha512 => 64,
        };
        u64::from(self.iterations.get()) * self.hash.len().div_ceil(block) as u64
    }

    /// Constant-time check (aws-lc-rs `pbkdf2::verify`).
    pub fn verify(&self, secret: &[u8]) -> bool {
        pbkdf2::verify(
            self.prf.algorithm(),
            self.iterations,
            &self.salt,
            secret,
            &self.hash,
        )
        .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wrong_secret() {
        let s = SecretHash::create(b"s3cret", 1000).unwrap();
        let h = SecretHash::parse(&s).unwrap();
        assert!(h.verify(b"s3cret"));
        assert!(!h.verify(b"s3cres"));
        assert!(!h.verify(b""));
        assert!(!SecretHash::dummy(1000).unwrap().verify(b"s3cret"));
        assert!(!format!("{h:?}").contains(&s[20..]));
    }

    #[test]
    fn bad_strings_refused() {
        for s in [
            "",
            "plain",
            "$argon2id$v=19$m=1,t=1,p=1$aaaa$bbbb",
            "$pbkdf2-sha256$i=10$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$pbkdf2-sha256$i=1000$!!$aGFzaGhhc2hoYXNoaGFzaA",
        ] {
            assert!(SecretHash::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn python_hashlib_compatible() {
        // python3 -c "import hashlib,base64;print(base64.b64encode(hashlib.pbkdf2_hmac('sha256',b'pw',b'saltsalt',1000)).decode())"
        let h = SecretHash::parse(
            "$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$A+Pkljr7A4W/zbzUWSStAfjTCX2GWVTHwva2WigH9ow",
        );
        let h = h.unwrap();
        assert!(h.verify(b"pw"));
    }
}
