//! Operator CLI: `tokengate jose <command>` (stdin → stdout). The only I/O of the JOSE
//! module lives here: reading the `--key` file.

use std::io::{Read, Write};
use std::path::PathBuf;

use serde_json::{json, Map, Value};

use super::jwk::KeyOp;
use super::{
    b64, decrypt, encrypt, json as strict, sign, verify, Alg, Curve, DecryptPolicy, Enc,
    EncryptOptions, JoseError, Jwk, JwkSet, KeyAlg, Limits,
};

/// How to read the `--key` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum KeyFormat {
    /// A JWK, a JWKS, or a PEM key (detected).
    #[default]
    Auto,
    /// A raw secret (oct key or PBES2 password); one trailing newline is ignored.
    Raw,
}

/// JOSE operator commands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum JoseCommand {
    /// Generate a private JWK.
    Keygen {
        /// Key type: RSA, EC, OKP or oct.
        #[arg(long)]
        kty: String,
        /// RSA modulus or oct key size in bits.
        #[arg(long)]
        bits: Option<usize>,
        /// Curve: P-256, P-384, P-521, Ed25519 or X25519.
        #[arg(long)]
        crv: Option<String>,
        /// Key id.
        #[arg(long)]
        kid: Option<String>,
    },
    /// Print the public JWK of the private JWK (or PEM) on stdin.
    Public,
    /// Print the RFC 7638 thumbprint of the JWK (or PEM) on stdin.
    Thumbprint,
    /// Sign the claims on stdin; print a compact JWS.
    Sign {
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        alg: String,
        /// Extra protected header members, as a JSON object.
        #[arg(long)]
        header: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        key_format: KeyFormat,
    },
    /// Encrypt stdin; print a compact JWE.
    Encrypt {
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        alg: String,
        #[arg(long)]
        enc: String,
        /// Content type, e.g. JWT for a nested token.
        #[arg(long)]
        cty: Option<String>,
        /// Compress with DEFLATE (zip: DEF).
        #[arg(long)]
        zip: bool,
        #[arg(long, value_enum, default_value_t)]
        key_format: KeyFormat,
    },
    /// Verify the compact JWS on stdin; print {"header":..,"payload":..}.
    Verify {
        #[arg(long)]
        key: PathBuf,
        /// Allowed algorithms, comma-separated.
        #[arg(long)]
        alg: String,
        #[arg(long, value_enum, default_value_t)]
        key_format: KeyFormat,
    },
    /// Decrypt the compact JWE on stdin; print {"header":..,"plaintext":"<base64url>"}.
    Decrypt {
        #[arg(long)]
        key: PathBuf,
        /// Allowed key management algorithms, comma-separated (RSA1_5 only when listed).
        #[arg(long)]
        alg: String,
        /// Allowed content encryption algorithms, comma-separated.
        #[arg(long)]
        enc: String,
        #[arg(long, value_enum, default_value_t)]
        key_format: KeyFormat,
    },
}

/// Runs one command; returns the process exit code (0 success, 1 failure with the error
/// code on stderr).
pub fn run(
    cmd: JoseCommand,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    match execute(cmd, stdin) {
        Ok(out) => match writeln!(stdout, "{out}") {
            Ok(()) => 0,
            Err(_) => 1,
        },
        Err(e) => {
            // The code only: no key material, no token bytes.
            let _ = writeln!(stderr, "{}", e.code());
            1
        }
    }
}

fn read_all(r: &mut dyn Read) -> Result<Vec<u8>, JoseError> {
    let mut buf = Vec::new();
    r.take(64 * 1024 * 1024)
        .read_to_end(&mut buf)
        .map_err(|_| JoseError::InvalidInput("cannot read stdin"))?;
    Ok(buf)
}

fn parse_key_text(bytes: &[u8]) -> Result<JwkSet, JoseError> {
    let text = std::str::from_utf8(bytes).map_err(|_| JoseError::KeyMalformed("not UTF-8"))?;
    let t = text.trim();
    if t.starts_with("-----BEGIN") {
        return Ok(JwkSet::single(Jwk::from_pem(t)?));
    }
    let v = strict::parse_strict(t.as_bytes()).map_err(|_| JoseError::KeyMalformed("JSON"))?;
    if v.get("keys").is_some() {
        JwkSet::from_json(t.as_bytes())
    } else {
        Ok(JwkSet::single(Jwk::from_value(&v)?))
    }
}

fn load_keys(path: &PathBuf, format: KeyFormat) -> Result<JwkSet, JoseError> {
    let bytes = zeroize::Zeroizing::new(
        std::fs::read(path).map_err(|_| JoseError::InvalidInput("cannot read the key file"))?,
    );
    match format {
        KeyFormat::Raw => {
            let s = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
            let s = s.strip_suffix(b"\r").unwrap_or(s);
            Ok(JwkSet::single(Jwk::from_secret(s)?))
        }
        KeyFormat::Auto => parse_key_text(&bytes),
    }
}

fn one_key<'a>(set: &'a JwkSet, op: KeyOp, names: &[&str]) -> Result<&'a Jwk, JoseError> {
    set.keys()
        .iter()
        .find(|k| k.permits(op, names).is_ok())
        .ok_or(JoseError::NoMatchingKey)
}

fn list<T>(s: &str, parse: fn(&str) -> Option<T>) -> Result<Vec<T>, JoseError> {
    s.split(',')
        .map(|a| parse(a.trim()).ok_or(JoseError::AlgorithmNotAllowed))
        .collect()
}

fn token_text(bytes: &[u8]) -> Result<&str, JoseError> {
    std::str::from_utf8(bytes)
        .map(str::trim)
        .map_err(|_| JoseError::TokenMalformed)
}

fn execute(cmd: JoseCommand, stdin: &mut dyn Read) -> Result<String, JoseError> {
    match cmd {
        JoseCommand::Keygen {
            kty,
            bits,
            crv,
            kid,
        } => {
            let crv = match crv {
                Some(c) => Some(Curve::from_name(&c).ok_or(JoseError::InvalidInput("crv"))?),
                None => None,
            };
            let mut k = Jwk::generate(&kty, bits, crv)?;
            if let Some(kid) = kid {
                k = k.with_kid(kid);
            }
            Ok(k.to_value(true)?.to_string())
        }
        JoseCommand::Public => {
            let set = parse_key_text(&read_all(stdin)?)?;
            let k = set.keys().first().ok_or(JoseError::NoMatchingKey)?;
            Ok(k.to_value(false)?.to_string())
        }
        JoseCommand::Thumbprint => {
            let set = parse_key_text(&read_all(stdin)?)?;
            let k = set.keys().first().ok_or(JoseError::NoMatchingKey)?;
            Ok(k.thumbprint())
        }
        JoseCommand::Sign {
            key,
            alg,
            header,
            key_format,
        } => {
            let alg = Alg::from_name(&alg).ok_or(JoseError::AlgorithmNotAllowed)?;
            let set = load_keys(&key, key_format)?;
            let k = one_key(&set, KeyOp::Sign, &[alg.name()])?;
            let extra: Map<String, Value> = match header {
                Some(h) => strict::parse_object(h.as_bytes())
                    .map_err(|_| JoseError::InvalidInput("--header must be a JSON object"))?,
                None => Map::new(),
            };
            let payload = read_all(stdin)?;
            sign(&payload, k, alg, &extra)
        }
        JoseCommand::Encrypt {
            key,
            alg,
            enc,
            cty,
            zip,
            key_format,
        } => {
            let alg = KeyAlg::from_name(&alg).ok_or(JoseError::AlgorithmNotAllowed)?;
            let enc = Enc::from_name(&enc).ok_or(JoseError::EncryptionNotAllowed)?;
            let set = load_keys(&key, key_format)?;
            let names = [alg.name(), enc.name()];
            let k = one_key(&set, KeyOp::Encrypt, &names)?;
            let mut opts = EncryptOptions {
                zip,
                ..EncryptOptions::default()
            };
            if let Some(cty) = cty {
                opts.header.insert("cty".into(), Value::String(cty));
            }
            encrypt(&read_all(stdin)?, k, alg, enc, &opts)
        }
        JoseCommand::Verify {
            key,
            alg,
            key_format,
        } => {
            let algs = list(&alg, Alg::from_name)?;
            let set = load_keys(&key, key_format)?;
            let input = read_all(stdin)?;
            let v = verify(token_text(&input)?, &set, &algs, &Limits::default())?;
            // A payload that is JSON must be JSON the policies accept (no repeated member
            // names); anything else is shown as base64url.
            let payload = match strict::parse_strict(&v.payload) {
                Ok(j) => j,
                Err(_) if serde_json::from_slice::<Value>(&v.payload).is_ok() => {
                    return Err(JoseError::ClaimsMalformed)
                }
                Err(_) => Value::String(b64::encode(&v.payload)),
            };
            Ok(json!({"header": v.header.to_value(), "payload": payload}).to_string())
        }
        JoseCommand::Decrypt {
            key,
            alg,
            enc,
            key_format,
        } => {
            let algs = list(&alg, KeyAlg::from_name)?;
            let encs = list(&enc, Enc::from_name)?;
            let set = load_keys(&key, key_format)?;
            let mut policy = DecryptPolicy::new(&algs, &encs);
            policy.allow_zip = true;
            policy.allow_rsa1_5 = algs.contains(&KeyAlg::Rsa1_5);
            policy.limits.max_token = 1024 * 1024;
            policy.limits.max_plaintext = 1024 * 1024;
            let input = read_all(stdin)?;
            let d = decrypt(token_text(&input)?, &set, &policy)?;
            Ok(
                json!({"header": d.header.to_value(), "plaintext": b64::encode(&d.plaintext)})
                    .to_string(),
            )
        }
    }
}
