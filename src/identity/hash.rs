//! Password hashes read from an identity source (a database row, a static user): argon2
//! (`$argon2id$…`, PHC), bcrypt (`$2a$`/`$2b$`/`$2y$`, modular crypt), scrypt (`$scrypt$…`,
//! PHC) and PBKDF2 with SHA-256, SHA-512 or SHA-1 (`$pbkdf2-sha256$i=N$…` PHC, or passlib's
//! `$pbkdf2-sha256$N$…`; checked by [`super::secret::SecretHash`] on aws-lc-rs).
//!
//! aws-lc-rs has PBKDF2 but no argon2, bcrypt or scrypt verifier, so those come from the
//! RustCrypto `argon2` and `scrypt` crates and the `bcrypt` crate, all of which compare in
//! constant time. Every hash's cost is bounded before it is used (about half a second of one
//! core and 128 MiB at most): a row an attacker managed to write cannot stall the gateway.

use super::secret::SecretHash;

// Ceilings: about 0.5 s of one core and 128 MiB for one check, several times the usual
// settings (argon2id m=64 MiB t=3, bcrypt 12, scrypt ln=17 r=8, PBKDF2-SHA256 600 000).
/// argon2 memory cost ceiling, KiB (128 MiB), and of memory x passes.
const ARGON2_MAX_M: u32 = 128 * 1024;
const ARGON2_MAX_MT: u64 = 4 * 128 * 1024;
const ARGON2_MAX_P: u32 = 8;
const BCRYPT_MAX_COST: u32 = 14;
/// scrypt: memory = 128 * 2^ln * r bytes, at most 128 MiB; time grows with p too.
const SCRYPT_MAX_MEM: u64 = 128 << 20;
const SCRYPT_MAX_P: u32 = 4;
/// PBKDF2 HMAC calls (iterations x output blocks).
const PBKDF2_MAX_WORK: u64 = 2_000_000;

/// A parsed hash. `Debug` names the scheme only.
#[derive(Clone)]
pub enum PasswordHash {
    Pbkdf2(SecretHash),
    Argon2(String),
    Bcrypt(String),
    Scrypt(String),
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PasswordHash::Pbkdf2(_) => "PasswordHash(pbkdf2)",
            PasswordHash::Argon2(_) => "PasswordHash(argon2)",
            PasswordHash::Bcrypt(_) => "PasswordHash(bcrypt)",
            PasswordHash::Scrypt(_) => "PasswordHash(scrypt)",
        })
    }
}

impl PasswordHash {
    /// Parse and bound a hash; the error names the scheme problem, never the hash.
    pub fn parse(s: &str) -> Result<PasswordHash, String> {
        let s = s.trim();
        if s.len() > 1024 {
            return Err("hash too long".into());
        }
        if s.starts_with("$pbkdf2$") || s.starts_with("$pbkdf2-") {
            let h = SecretHash::parse(s)?;
            if h.work() > PBKDF2_MAX_WORK {
                return Err("pbkdf2 cost above the accepted maximum".into());
            }
            return Ok(PasswordHash::Pbkdf2(h));
        }
        if s.starts_with("$argon2") {
            let h = argon2::PasswordHash::new(s).map_err(|_| "malformed argon2 hash")?;
            let p = argon2::Params::try_from(&h).map_err(|_| "bad argon2 parameters")?;
            let mt = u64::from(p.m_cost()) * u64::from(p.t_cost());
            if p.m_cost() > ARGON2_MAX_M || mt > ARGON2_MAX_MT || p.p_cost() > ARGON2_MAX_P {
                return Err("argon2 cost above the accepted maximum".into());
            }
            return Ok(PasswordHash::Argon2(s.to_string()));
        }
        if let Some(rest) = ["$2a$", "$2b$", "$2y$", "$2x$"]
            .iter()
            .find_map(|p| s.strip_prefix(p))
        {
            let cost: u32 = rest
                .get(..2)
                .and_then(|c| c.parse().ok())
                .ok_or("malformed bcrypt hash")?;
            if !(4..=BCRYPT_MAX_COST).contains(&cost) || rest.len() != 2 + 1 + 53 {
                return Err("malformed bcrypt hash or cost above the accepted maximum".into());
            }
            return Ok(PasswordHash::Bcrypt(s.to_string()));
        }
        if s.starts_with("$scrypt$") {
            let h =
                scrypt::password_hash::PasswordHash::new(s).map_err(|_| "malformed scrypt hash")?;
            let p = scrypt::Params::try_from(&h).map_err(|_| "bad scrypt parameters")?;
            let mem = 128u64
                .saturating_mul(1u64.checked_shl(u32::from(p.log_n())).unwrap_or(u64::MAX))
                .saturating_mul(u64::from(p.r()));
            if mem > SCRYPT_MAX_MEM || p.p() > SCRYPT_MAX_P {
                return Err("scrypt cost above the accepted maximum".into());
            }
            return Ok(PasswordHash::Scrypt(s.to_string()));
        }
        Err("unsupported hash (argon2, bcrypt, scrypt or pbkdf2 in PHC/modular form)".into())
    }

    /// Constant-time check. CPU-heavy: call it off the async runtime's worker threads.
    pub fn verify(&self, password: &[u8]) -> bool {
        use argon2::PasswordVerifier as _;
        match self {
            PasswordHash::Pbkdf2(h) => h.verify(password),
            PasswordHash::Argon2(s) => argon2::PasswordHash::new(s)
                .map(|h| {
                    argon2::Argon2::default()
                        .verify_password(password, &h)
                        .is_ok()
                })
                .unwrap_or(false),
            // bcrypt reads 72 bytes (the password and a NUL); a longer password is refused
            // rather than cut short (two passwords differing after that must not both match).
            PasswordHash::Bcrypt(s) => bcrypt::non_truncating_verify(password, s).unwrap_or(false),
            PasswordHash::Scrypt(s) => scrypt::password_hash::PasswordHash::new(s)
                .map(|h| {
                    scrypt::password_hash::PasswordVerifier::verify_password(
                        &scrypt::Scrypt,
                        password,
                        &h,
                    )
                    .is_ok()
                })
                .unwrap_or(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with Python's argon2-cffi, bcrypt and hashlib.scrypt (independent implementations).
    const ARGON2: &str = "$argon2id$v=19$m=1024,t=2,p=1$E9hvrezo5cat5aJKV0fOfQ$RQyPhRvWwY399BK1xAEg+MsicAmpai/uGQ4ZhhqOiwg";
    const BCRYPT: &str = "$2b$04$54sRkkVxtczZLnaA7z0kee6MiEyTwXN0X0Hd65OshfDsTH6lnxmVi";
    const SCRYPT: &str =
        "$scrypt$ln=10,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$DudPhYUu1iibCTyYvEPNHMftQlCeDPhGS7OT5rCvpzk";
    // passlib's pbkdf2_sha256 / pbkdf2_sha512 / pbkdf2_sha1 (modular form, ab64 alphabet).
    const PASSLIB: [&str; 3] = [
        "$pbkdf2-sha256$1000$zTnHWOsdg1BKCeEcQ6i19g$sujxdYZPEPrfzLKvlYL80KaTZzvDYu/sqGbuFqt7MHY",
        "$pbkdf2-sha512$1000$KSVkDMH439sbQ0iJsZZyzg$DVsd1qz3J2J3TiP1SjvHXZ4SD.8K.TD0.tFr.vgrj4q4SA.4SU2V2gNCAJarRnqwYuBsyPP6soYtPZLis3UaQw",
        "$pbkdf2$1000$K.U8B2BsjZFyLuU8R.idEw$ybxtLWiN4zlmiMQc5KrbRER/Kt4",
    ];

    #[test]
    fn every_scheme_accepts_the_right_password_only() {
        let pb = SecretHash::create(b"pw", 1000).unwrap();
        for h in [pb.as_str(), ARGON2, SCRYPT, BCRYPT]
            .into_iter()
            .chain(PASSLIB)
        {
            let p = PasswordHash::parse(h).unwrap();
            assert!(p.verify(b"pw"));
            assert!(!p.verify(b"pW"));
        }
        let bc = bcrypt::hash("pw", 4).unwrap();
        let p = PasswordHash::parse(&bc).unwrap();
        assert!(p.verify(b"pw") && !p.verify(b"px"));
        // Past bcrypt's 72 bytes (71 and the NUL it adds): refused, not truncated.
        let long = "x".repeat(71);
        let p = PasswordHash::parse(&bcrypt::hash(&long, 4).unwrap()).unwrap();
        assert!(p.verify(long.as_bytes()));
        assert!(!p.verify(format!("{long}-anything").as_bytes()));
    }

    #[test]
    fn costs_and_garbage_are_refused() {
        for bad in [
            "",
            "plain",
            "$argon2id$v=19$m=9999999,t=3,p=4$c2FsdHNhbHRzYWx0$Pw6BbRmdDa0ZPBNLkdNNSegK0LU+2/c1DSL2QNnwXoM",
            "$2b$31$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234",
            "$scrypt$ln=30,r=8,p=1$c2FsdA$aGFzaA",
            "$scrypt$ln=20,r=16,p=1$c2FsdA$aGFzaA",
            "$2b$16$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234",
            "$pbkdf2-sha512$9000000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$md5$x",
        ] {
            assert!(PasswordHash::parse(bad).is_err(), "{bad}");
        }
    }
}
