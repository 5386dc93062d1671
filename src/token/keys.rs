//! The token service's signing keys: `next`, `current` and `previous`, persisted as private
//! JWKs (files 0600 in a 0700 directory) so a restart keeps every issued JWT verifiable.
//!
//! * First start: `current` and `next` are generated and written.
//! * Rotation (`POST /admin/keys/rotate`, or `tokengate keys rotate -c FILE` then a reload):
//!   previous <- current <- next <- a new key. The JWKS always publishes all three, so
//!   verifiers that cache it know the next key before it signs anything, and tokens signed by
//!   the previous key verify until they expire (keep rotations further apart than the
//!   longest access-token lifetime).
//! * kid = the RFC 7638 thumbprint.
//!
//! Files are written to a temporary name and renamed, so a crash mid-rotation leaves either
//! the old or the new file, never a torn one. In `detached` mode (`tokengate check`) nothing
//! is written: keys are made in memory.

use crate::jose::{Alg, Curve, Jwk, JwkSet, KeyOp};
use arc_swap::ArcSwap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The signing key material at one moment.
#[derive(Debug)]
pub struct Ring {
    pub alg: Alg,
    pub current: Jwk,
    /// Public keys accepted for verification: next, current, previous.
    pub verify: JwkSet,
    /// The algorithms of the keys in `verify` (the alg may change across rotations).
    pub algs: Vec<Alg>,
    pub kids: Vec<String>,
    /// Changes whenever the verification keys change (verified-token cache invalidation).
    pub generation: u64,
}

#[derive(Debug)]
pub struct KeyRing {
    dir: PathBuf,
    alg: Alg,
    persist: bool,
    ring: ArcSwap<Ring>,
    rotate_lock: Mutex<()>,
}

const SLOTS: [&str; 3] = ["next", "current", "previous"];

/// A new signing key for `alg`, with kid = thumbprint.
pub fn generate(alg: Alg) -> Result<Jwk, String> {
    let name = alg.name();
    let k = match name {
        "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" => {
            Jwk::generate("RSA", Some(2048), None)
        }
        "ES256" => Jwk::generate("EC", None, Some(Curve::P256)),
        "ES384" => Jwk::generate("EC", None, Some(Curve::P384)),
        "ES512" => Jwk::generate("EC", None, Some(Curve::P521)),
        "EdDSA" => Jwk::generate("OKP", None, Some(Curve::Ed25519)),
        _ => {
            return Err(format!(
                "{name} cannot sign tokens (asymmetric algorithms only)"
            ))
        }
    }
    .map_err(|e| e.to_string())?;
    let kid = k.thumbprint();
    Ok(k.with_kid(kid).with_alg(name).with_use("sig"))
}

fn read_key(path: &Path) -> Result<Option<Jwk>, String> {
    match std::fs::read(path) {
        Ok(b) => {
            let k = Jwk::from_json(&b).map_err(|e| format!("{}: {e}", path.display()))?;
            if !k.is_private() || k.is_symmetric() {
                return Err(format!("{}: not an asymmetric private key", path.display()));
            }
            Ok(Some(k))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

fn write_key(dir: &Path, slot: &str, k: &Jwk) -> Result<(), String> {
    use std::io::Write;
    let v = k.to_value(true).map_err(|e| e.to_string())?;
    let text = zeroize::Zeroizing::new(v.to_string());
    let tmp = dir.join(format!(".{slot}.jwk.tmp"));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(&tmp)
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    // The mode above only applies when the file is created; a temporary file left by a crash
    // keeps its own, so set it again before the key is written.
    restrict(&tmp, 0o600)?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    let dest = dir.join(format!("{slot}.jwk"));
    std::fs::rename(&tmp, &dest).map_err(|e| format!("{}: {e}", dest.display()))
}

fn remove_key(dir: &Path, slot: &str) -> Result<(), String> {
    match std::fs::remove_file(dir.join(format!("{slot}.jwk"))) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

fn ensure_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    restrict(dir, 0o700)
}

/// Set `path`'s mode. Private keys are never left readable by others: a failure refuses the
/// load (or the write) rather than carrying on with whatever mode the path had.
fn restrict(path: &Path, mode: u32) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("{}: cannot set mode {mode:o}: {e}", path.display()))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

fn alg_of(k: &Jwk, default: Alg) -> Alg {
    k.alg().and_then(Alg::from_name).unwrap_or(default)
}

/// Build the in-memory ring from the three slots (any may be absent but current).
fn build(alg: Alg, keys: [Option<Jwk>; 3]) -> Result<Ring, String> {
    let [next, current, previous] = keys;
    let current = current.ok_or("no current signing key")?;
    let mut pubs = Vec::new();
    let mut algs = Vec::new();
    let mut kids = Vec::new();
    for k in [next.as_ref(), Some(&current), previous.as_ref()]
        .into_iter()
        .flatten()
    {
        let p = k.to_public().map_err(|e| e.to_string())?;
        let a = alg_of(k, alg);
        // A key that cannot sign its algorithm would fail every token request.
        k.fits_alg(a, KeyOp::Sign).map_err(|e| {
            format!(
                "key {} cannot sign {a}: {e}",
                k.kid().unwrap_or("without kid")
            )
        })?;
        if !algs.contains(&a) {
            algs.push(a);
        }
        let kid = k
            .kid()
            .map(str::to_string)
            .unwrap_or_else(|| k.thumbprint());
        if kids.contains(&kid) {
            continue;
        }
        kids.push(kid.clone());
        pubs.push(p.with_kid(kid).with_alg(a.name()).with_use("sig"));
    }
    let verify = JwkSet::new(pubs).map_err(|e| e.to_string())?;
    let generation = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        kids.hash(&mut h);
        h.finish()
    };
    Ok(Ring {
        generation,
        alg: alg_of(&current, alg),
        current,
        verify,
        algs,
        kids,
    })
}

/// Load the three slots from `dir`, creating current and next when there is no current.
fn load_or_create(dir: &Path, alg: Alg) -> Result<[Option<Jwk>; 3], String> {
    ensure_dir(dir)?;
    let mut slots = [None, None, None];
    for (s, name) in slots.iter_mut().zip(SLOTS) {
        *s = read_key(&dir.join(format!("{name}.jwk")))?;
    }
    if slots[1].is_none() {
        let cur = generate(alg)?;
        write_key(dir, "current", &cur)?;
        slots[1] = Some(cur);
    }
    if slots[0].is_none() {
        let next = generate(alg)?;
        write_key(dir, "next", &next)?;
        slots[0] = Some(next);
    }
    Ok(slots)
}

/// Rotate the files in `dir`: previous <- current <- next <- new. Returns the new current kid.
pub fn rotate_dir(dir: &Path, alg: Alg) -> Result<String, String> {
    let [next, current, _prev] = load_or_create(dir, alg)?;
    let next = next.ok_or("no next key")?;
    let current = current.ok_or("no current key")?;
    let new_next = generate(alg)?;
    // Order matters for a crash in between: every state on disk is a valid ring.
    write_key(dir, "previous", &current)?;
    write_key(dir, "current", &next)?;
    write_key(dir, "next", &new_next)?;
    next.kid()
        .map(str::to_string)
        .ok_or_else(|| "the new current key has no kid".to_string())
}

impl KeyRing {
    /// Load (or create) the keys in `dir`. With `persist = false` nothing touches the disk.
    pub fn open(dir: PathBuf, alg: Alg, persist: bool) -> Result<KeyRing, String> {
        let slots = if persist {
            load_or_create(&dir, alg)?
        } else {
            [Some(generate(alg)?), Some(generate(alg)?), None]
        };
        Ok(KeyRing {
            ring: ArcSwap::from_pointee(build(alg, slots)?),
            dir,
            alg,
            persist,
            rotate_lock: Mutex::new(()),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn get(&self) -> Arc<Ring> {
        self.ring.load_full()
    }

    /// Re-read the files (after `tokengate keys rotate` and a reload). The configured alg
    /// only affects keys generated from now on.
    pub fn reload(&self, alg: Alg) -> Result<(), String> {
        if !self.persist {
            return Ok(());
        }
        let _g = self.rotate_lock.lock();
        let slots = load_or_create(&self.dir, alg)?;
        self.ring.store(Arc::new(build(alg, slots)?));
        Ok(())
    }

    /// Rotate now; returns the kids (next, current, previous).
    pub fn rotate(&self) -> Result<Vec<String>, String> {
        let _g = self.rotate_lock.lock();
        let alg = self.get().alg;
        let alg = if alg == self.alg { alg } else { self.alg };
        let slots = if self.persist {
            rotate_dir(&self.dir, alg)?;
            load_or_create(&self.dir, alg)?
        } else {
            let r = self.get();
            let cur = r.current.to_value(true).map_err(|e| e.to_string())?;
            let cur = Jwk::from_value(&cur).map_err(|e| e.to_string())?;
            [Some(generate(alg)?), Some(generate(alg)?), Some(cur)]
        };
        let ring = build(alg, slots)?;
        let kids = ring.kids.clone();
        self.ring.store(Arc::new(ring));
        Ok(kids)
    }

    /// Forget the previous key (after every token it signed has expired).
    pub fn drop_previous(&self) -> Result<(), String> {
        if self.persist {
            remove_key(&self.dir, "previous")?;
        }
        self.reload(self.alg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::{sign, verify, Limits};

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    #[test]
    fn key_dir_is_made_private_even_when_it_exists() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("k");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        KeyRing::open(dir.clone(), Alg::ES256, true).unwrap();
        assert_eq!(mode(&dir), 0o700);
    }

    #[cfg(unix)]
    #[test]
    fn leftover_temporary_key_file_is_made_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let tmp = d.path().join(".current.jwk.tmp");
        std::fs::write(&tmp, b"old").unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_key(d.path(), "current", &generate(Alg::ES256).unwrap()).unwrap();
        assert_eq!(mode(&d.path().join("current.jwk")), 0o600);
    }

    #[cfg(unix)]
    #[test]
    fn failed_chmod_is_an_error_naming_the_path() {
        let d = tempfile::tempdir().unwrap();
        let gone = d.path().join("gone");
        let e = restrict(&gone, 0o700).unwrap_err();
        assert!(e.contains(&gone.display().to_string()), "{e}");
    }

    #[test]
    fn a_key_that_cannot_sign_the_algorithm_refuses_the_load() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("k");
        // An EC key without `alg` under an RS256 config would fail every token request.
        let k = Jwk::generate("EC", None, Some(Curve::P256)).unwrap();
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(
            dir.join("current.jwk"),
            k.to_value(true).unwrap().to_string(),
        )
        .unwrap();
        let e = KeyRing::open(dir.clone(), Alg::RS256, true).unwrap_err();
        assert!(e.contains("cannot sign RS256: key_type_mismatch"), "{e}");
        // Under the algorithm it fits, the same key loads.
        KeyRing::open(dir, Alg::ES256, true).unwrap();
    }

    #[test]
    fn key_dir_that_is_a_file_refuses_the_load() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("k");
        std::fs::write(&f, b"x").unwrap();
        let e = KeyRing::open(f.clone(), Alg::ES256, true).unwrap_err();
        assert!(e.contains(&f.display().to_string()), "{e}");
    }

    #[test]
    fn persists_rotates_and_verifies_old_tokens() {
        let d = tempfile::tempdir().unwrap();
        let ring = KeyRing::open(d.path().join("k"), Alg::ES256, true).unwrap();
        let r1 = ring.get();
        let kid1 = r1.current.kid().unwrap().to_string();
        assert_eq!(kid1, r1.current.thumbprint());
        let t1 = sign(b"{}", &r1.current, Alg::ES256, &Default::default()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let m = std::fs::metadata(d.path().join("k/current.jwk")).unwrap();
            assert_eq!(m.permissions().mode() & 0o777, 0o600);
        }
        // Reopen: same keys.
        let again = KeyRing::open(d.path().join("k"), Alg::ES256, true).unwrap();
        assert_eq!(again.get().current.kid().unwrap(), kid1);
        let kids = ring.rotate().unwrap();
        assert_eq!(kids.len(), 3);
        assert_eq!(kids[2], kid1);
        let r2 = ring.get();
        assert_ne!(r2.current.kid().unwrap(), kid1);
        assert_eq!(r2.current.kid(), r1.verify.keys()[0].kid());
        verify(&t1, &r2.verify, &r2.algs, &Limits::default()).unwrap();
        ring.rotate().unwrap();
        assert!(verify(&t1, &ring.get().verify, &[Alg::ES256], &Limits::default()).is_err());
    }
}
