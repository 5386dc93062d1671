//! The text of configured key material: secrets in their declared encoding, and the password
//! of an encrypted PEM key from the environment or a file. Messages never quote a secret.

use crate::config::policy::jwt_verify::{KeysConfig, SecretEncoding};
use crate::error::Errors;
use zeroize::Zeroizing;

/// Drops the line ending an editor leaves at the end of a file; it is never part of a
/// secret or a password.
pub(super) fn trim_newline(mut b: Vec<u8>) -> Zeroizing<Vec<u8>> {
    while b.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
        b.pop();
    }
    Zeroizing::new(b)
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The key bytes that a secret's text encodes. Messages never quote the text.
pub(super) fn decode_secret(
    text: &[u8],
    encoding: SecretEncoding,
) -> Result<Zeroizing<Vec<u8>>, String> {
    use base64::alphabet;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    use base64::Engine as _;
    let b64 = |a: &alphabet::Alphabet| {
        GeneralPurpose::new(
            a,
            GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
        )
    };
    let compact: Zeroizing<Vec<u8>> = Zeroizing::new(
        text.iter()
            .copied()
            .filter(|c| !c.is_ascii_whitespace())
            .collect(),
    );
    match encoding {
        SecretEncoding::Utf8 => Ok(Zeroizing::new(text.to_vec())),
        SecretEncoding::Hex => {
            if compact.len() % 2 != 0 {
                return Err("not valid hex: an odd number of digits".into());
            }
            let mut out = Zeroizing::new(Vec::with_capacity(compact.len() / 2));
            for pair in compact.chunks_exact(2) {
                match (
                    pair.first().and_then(|c| hex_digit(*c)),
                    pair.get(1).and_then(|c| hex_digit(*c)),
                ) {
                    (Some(h), Some(l)) => out.push(h << 4 | l),
                    _ => return Err("not valid hex: a character other than 0-9, a-f, A-F".into()),
                }
            }
            Ok(out)
        }
        SecretEncoding::Base64 => b64(&alphabet::STANDARD)
            .decode(&compact)
            .map(Zeroizing::new)
            .map_err(|_| "not valid base64 (standard alphabet)".into()),
        SecretEncoding::Base64url => b64(&alphabet::URL_SAFE)
            .decode(&compact)
            .map(Zeroizing::new)
            .map_err(|_| "not valid base64url".into()),
    }
}

/// The password of an encrypted PEM key, from `password_env` or `password_file`; None when
/// neither is set. Errors are pushed at the field's path.
pub(super) fn read_password(
    c: &KeysConfig,
    path: &str,
    errs: &mut Errors,
) -> Result<Option<Zeroizing<Vec<u8>>>, ()> {
    let fail = |errs: &mut Errors, key: &str, msg: String| {
        errs.push(format!("{path}.{key}"), msg);
        Err(())
    };
    match (&c.password_env, &c.password_file) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => fail(
            errs,
            "password_file",
            "give password_env or password_file, not both".into(),
        ),
        _ if c.pem.is_none() && c.file.is_none() => {
            let key = if c.password_env.is_some() {
                "password_env"
            } else {
                "password_file"
            };
            fail(
                errs,
                key,
                "a password is for an encrypted PEM key in `pem` or `file`".into(),
            )
        }
        (Some(name), None) => match std::env::var(name) {
            Ok(p) if !p.is_empty() => Ok(Some(Zeroizing::new(p.into_bytes()))),
            Ok(_) => fail(
                errs,
                "password_env",
                format!("environment variable {name} is empty"),
            ),
            Err(_) => fail(
                errs,
                "password_env",
                format!("environment variable {name} is not set"),
            ),
        },
        (None, Some(f)) => match std::fs::read(f) {
            Ok(b) => Ok(Some(trim_newline(b))),
            Err(e) => fail(errs, "password_file", format!("cannot read {f}: {e}")),
        },
    }
}
