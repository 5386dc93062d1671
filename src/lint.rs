//! Warnings about a config that works but is risky: printed with their TOML paths by
//! `tokengate check` (which still exits 0) and logged at start and on reload. Every rule lives
//! here; what cannot work at all is an error of the compile step instead.

use std::fmt;

use crate::config::policy::jwt_auth::JwtAuthConfig;
use crate::config::policy::jwt_generate::JwtGenerateConfig;
use crate::config::policy::jwt_verify::{JwtVerifyConfig, KeysConfig};
use crate::config::policy::{PolicyBody, PolicyEntry};
use crate::config::RawConfig;
use crate::jose::{KeyAlg, Limits, PBES2_DEFAULT_P2C};

/// The fewest PBKDF2 iterations a PBES2 password key should get: OWASP's Password Storage
/// Cheat Sheet (2023) asks 600,000 for PBKDF2-HMAC-SHA256, the cheapest PBES2 variant. PBES2
/// keys are passwords, so the iteration count is all that stands between a captured token and
/// an offline guess. The gateway makes PBES2 tokens with [`PBES2_DEFAULT_P2C`] iterations and
/// accepts them from [`Limits::min_p2c`] up (a verifier must bound the work a token can ask
/// of it), both far below: PBES2 configs are warned about, A*KW with a random key is the
/// alternative.
pub const PBES2_SAFE_ITERATIONS: u32 = 600_000;

/// One warning, with the TOML path it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

#[derive(Default)]
struct Warnings(Vec<Warning>);

impl Warnings {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Warning {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// Every warning about `raw`, in file order (named policies, policy groups, global policies,
/// routes, then the token service).
pub fn lint(raw: &RawConfig) -> Vec<Warning> {
    let mut w = Warnings::default();
    for (name, p) in &raw.policies {
        policy(p, &format!("policies.{name}"), &mut w);
    }
    for (name, g) in &raw.policy_groups {
        for (i, p) in g.policies.iter().enumerate() {
            policy(p, &format!("policy_groups.{name}.policies[{i}]"), &mut w);
        }
    }
    for (i, p) in raw.global_policies.iter().enumerate() {
        policy(p, &format!("global_policies[{i}]"), &mut w);
    }
    for (i, r) in raw.routes.iter().enumerate() {
        for (j, p) in r.policies.iter().enumerate() {
            policy(p, &format!("routes[{i}].policies[{j}]"), &mut w);
        }
    }
    if let Some(ts) = &raw.token_service {
        for (i, c) in ts.clients.iter().enumerate() {
            if let Some(alg) = c.encrypt_to.as_ref().and_then(|e| e.alg.as_deref()) {
                key_alg(
                    alg,
                    &format!("token_service.clients[{i}].encrypt_to.alg"),
                    PBES2_DEFAULT_P2C,
                    &mut w,
                );
            }
        }
    }
    w.0
}

fn policy(p: &PolicyEntry, path: &str, w: &mut Warnings) {
    let PolicyEntry::Inline(p) = p else { return };
    match &p.body {
        PolicyBody::JwtVerify(c) => jwt_verify(c, path, w),
        PolicyBody::JwtGenerate(c) => jwt_generate(c, path, w),
        PolicyBody::JwtAuth(c) => jwt_auth(c, path, w),
        PolicyBody::Headers(_) | PolicyBody::Cors(_) | PolicyBody::Deny(_) => {}
    }
}

fn jwt_verify(c: &JwtVerifyConfig, path: &str, w: &mut Warnings) {
    if c.issuers.is_empty() {
        w.push(
            format!("{path}.issuers"),
            "not set: a token from any issuer the keys verify is accepted; list the issuers",
        );
    }
    if c.audiences.is_empty() {
        w.push(
            format!("{path}.audiences"),
            "not set: a token minted for another service is accepted here; list the audiences",
        );
    }
    query_sources(&c.sources, path, w);
    for (i, a) in c.key_algorithms.iter().enumerate() {
        key_alg(
            a,
            &format!("{path}.key_algorithms[{i}]"),
            Limits::default().min_p2c,
            w,
        );
    }
    keys(&c.keys, &format!("{path}.keys"), w);
    keys(&c.decryption_keys, &format!("{path}.decryption_keys"), w);
}

fn jwt_generate(c: &JwtGenerateConfig, path: &str, w: &mut Warnings) {
    keys(&c.key, &format!("{path}.key"), w);
    if let Some(e) = &c.encrypt {
        key_alg(
            &e.key_algorithm,
            &format!("{path}.encrypt.key_algorithm"),
            e.iterations.unwrap_or(PBES2_DEFAULT_P2C),
            w,
        );
        keys(&e.key, &format!("{path}.encrypt.key"), w);
    }
}

fn jwt_auth(c: &JwtAuthConfig, path: &str, w: &mut Warnings) {
    query_sources(&c.sources, path, w);
}

fn query_sources(
    sources: &[crate::config::policy::token_source::TokenSourceConfig],
    path: &str,
    w: &mut Warnings,
) {
    for (i, s) in sources.iter().enumerate() {
        if s.query.is_some() {
            w.push(
                format!("{path}.sources[{i}].query"),
                "a token in the query string leaks into logs, history and Referer headers \
                 (RFC 9700 §4.3.2); prefer the Authorization header",
            );
        }
    }
}

/// RSA1_5 and PBES2 below [`PBES2_SAFE_ITERATIONS`]; `p2c` is the iteration count this use
/// of PBES2 makes or accepts.
fn key_alg(name: &str, path: &str, p2c: u32, w: &mut Warnings) {
    match KeyAlg::from_name(name) {
        Some(KeyAlg::Rsa1_5) => w.push(
            path,
            "RSA1_5 (PKCS #1 v1.5) is open to padding-oracle attacks (RFC 8725 §3.2); use \
             RSA-OAEP-256",
        ),
        Some(
            a @ (KeyAlg::Pbes2Hs256A128KW | KeyAlg::Pbes2Hs384A192KW | KeyAlg::Pbes2Hs512A256KW),
        ) if p2c < PBES2_SAFE_ITERATIONS => {
            w.push(
                path,
                format!(
                    "{a} runs {p2c} PBKDF2 iterations here, under the {PBES2_SAFE_ITERATIONS} a \
                     password key needs against offline guessing; use A256KW with a random key"
                ),
            );
        }
        _ => {}
    }
}

/// Secret material written into the file itself.
fn keys(k: &KeysConfig, path: &str, w: &mut Warnings) {
    if k.secret.is_some() {
        w.push(
            format!("{path}.secret"),
            "a secret in the config file is readable by whoever reads the file (and its \
             backups); prefer secret_env or secret_file",
        );
    }
    let private_pem = k.pem.as_deref().is_some_and(|p| p.contains("PRIVATE KEY"));
    if private_pem {
        w.push(
            format!("{path}.pem"),
            "a private key in the config file is readable by whoever reads the file; prefer \
             file (or secret_file)",
        );
    }
    if k.jwks.as_deref().is_some_and(jwk_text_is_private) {
        w.push(
            format!("{path}.jwks"),
            "private or secret key members (d, k) in the config file are readable by whoever \
             reads the file; prefer file (or secret_file)",
        );
    }
}

/// Whether JWK or JWKS text carries private (`d`) or secret (`k`) members.
fn jwk_text_is_private(text: &str) -> bool {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
        return false;
    };
    let private = |k: &serde_json::Value| k.get("d").is_some() || k.get("k").is_some();
    match v.get("keys").and_then(serde_json::Value::as_array) {
        Some(keys) => keys.iter().any(private),
        None => private(&v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warnings(toml: &str) -> Vec<Warning> {
        lint(&crate::config::parse_str(toml).unwrap())
    }

    fn paths(toml: &str) -> Vec<String> {
        warnings(toml).into_iter().map(|w| w.path).collect()
    }

    const CLEAN_VERIFY: &str = r#"
[policies.v]
type = "jwt_verify"
algorithms = ["ES256"]
keys = { jwks_url = "https://idp.example/jwks.json" }
issuers = ["https://idp.example"]
audiences = ["api"]
"#;

    #[test]
    fn a_complete_jwt_verify_has_no_warning() {
        assert_eq!(warnings(CLEAN_VERIFY), vec![]);
    }

    #[test]
    fn jwt_verify_without_issuers_is_warned_at_its_path() {
        let t = CLEAN_VERIFY.replace("issuers = [\"https://idp.example\"]", "");
        assert_eq!(paths(&t), ["policies.v.issuers"]);
    }

    #[test]
    fn jwt_verify_without_audiences_is_warned_at_its_path() {
        let t = CLEAN_VERIFY.replace("audiences = [\"api\"]", "");
        assert_eq!(paths(&t), ["policies.v.audiences"]);
    }

    #[test]
    fn a_query_token_source_is_warned() {
        let t = format!(
            "{CLEAN_VERIFY}sources = [{{ header = \"authorization\", prefix = \"Bearer \" }}, {{ query = \"t\" }}]\n"
        );
        assert_eq!(paths(&t), ["policies.v.sources[1].query"]);
    }

    #[test]
    fn jwt_auth_query_tokens_are_warned() {
        let t = r#"
[[routes]]
name = "r"
match = { path_prefix = "/" }
respond = { status = 200 }
policies = [{ type = "jwt_auth", sources = [{ header = "authorization", prefix = "Bearer " }, { query = "access_token" }] }]
"#;
        assert_eq!(paths(t), ["routes[0].policies[0].sources[1].query"]);
    }

    #[test]
    fn an_inline_secret_is_warned_and_secret_env_is_not() {
        let t = CLEAN_VERIFY.replace("ES256", "HS256").replace(
            "jwks_url = \"https://idp.example/jwks.json\"",
            "secret = \"0123456789abcdef0123456789abcdef\"",
        );
        assert_eq!(paths(&t), ["policies.v.keys.secret"]);
        let t = t.replace(
            "secret = \"0123456789abcdef0123456789abcdef\"",
            "secret_env = \"HMAC_KEY\"",
        );
        assert_eq!(warnings(&t), vec![]);
    }

    #[test]
    fn an_inline_private_jwk_is_warned_and_a_public_one_is_not() {
        let private = r#"{"kty":"oct","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#;
        let t = CLEAN_VERIFY.replace(
            "jwks_url = \"https://idp.example/jwks.json\"",
            &format!("jwks = '{private}'"),
        );
        assert_eq!(paths(&t), ["policies.v.keys.jwks"]);
        let public = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
        let t = CLEAN_VERIFY.replace(
            "jwks_url = \"https://idp.example/jwks.json\"",
            &format!("jwks = '{public}'"),
        );
        assert_eq!(warnings(&t), vec![]);
    }

    #[test]
    fn rsa1_5_is_warned_wherever_it_is_configured() {
        let t = r#"
[policies.g]
type = "jwt_generate"
encrypt = { key = { jwks_url = "https://k.example/jwks.json" }, key_algorithm = "RSA1_5", encryption = "A128GCM" }
"#;
        assert_eq!(paths(t), ["policies.g.encrypt.key_algorithm"]);
        let t = r#"
[token_service]
issuer = "https://auth.example"
[[token_service.clients]]
client_id = "c"
encrypt_to = { jwk = "{}", alg = "RSA1_5" }
"#;
        assert_eq!(paths(t), ["token_service.clients[0].encrypt_to.alg"]);
    }

    #[test]
    fn pbes2_is_warned_with_the_iteration_count_it_runs() {
        let t = format!(
            "{CLEAN_VERIFY}forms = [\"jwe\"]\nkey_algorithms = [\"A256KW\", \"PBES2-HS256+A128KW\"]\n"
        );
        let w = warnings(&t);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].path, "policies.v.key_algorithms[1]");
        assert!(w[0].message.contains("1000 PBKDF2 iterations"), "{}", w[0]);
    }

    #[test]
    fn pbes2_at_a_safe_count_is_not_warned() {
        let mut w = Warnings::default();
        key_alg("PBES2-HS512+A256KW", "p", PBES2_SAFE_ITERATIONS, &mut w);
        assert_eq!(w.0, vec![]);
        key_alg("PBES2-HS512+A256KW", "p", PBES2_SAFE_ITERATIONS - 1, &mut w);
        assert_eq!(w.0.len(), 1);
    }
}
