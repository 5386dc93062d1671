//! The `tokengate` command: run the gateway, check configs, JOSE helpers.

use clap::{Parser, Subcommand};

/// mimalloc: glibc malloc/free was a quarter of the proxy's instructions (loadtest/README.md);
/// mimalloc cut instructions per request by 18% and user time by about 22% there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "tokengate",
    version,
    about = "An API gateway whose core business is tokens"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the gateway.
    Run {
        /// The config file.
        #[arg(short, long, default_value = "conf/tokengate.toml")]
        config: PathBuf,
        /// Run in the background (Pingora daemon mode).
        #[arg(short, long)]
        daemon: bool,
        /// Take over the listening sockets of a running instance (graceful upgrade).
        #[arg(short, long)]
        upgrade: bool,
        /// Check the config and exit (like `check`).
        #[arg(short, long)]
        test: bool,
    },
    /// Check config files: exit 0 when all are valid, else print every error with its TOML path.
    Check {
        /// Also print which routes use each named policy and group, and each route's chain.
        #[arg(long)]
        usage: bool,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Show what the gateway would do with one request (route, each policy's decision,
    /// claims, the upstream request or the response), without a network.
    Simulate(SimulateArgs),
    /// JOSE helpers for operators and scripts (stdin -> stdout).
    Jose {
        #[command(subcommand)]
        cmd: tokengate::jose::cli::JoseCommand,
    },
    /// Token service signing keys.
    Keys {
        #[command(subcommand)]
        cmd: KeysCmd,
    },
    /// Print a new random admin bearer token, then the `[admin]` config line with its hash.
    AdminToken,
    /// Hash a client secret or password read from stdin (first line) for the config.
    HashSecret {
        #[arg(long, default_value_t = tokengate::identity::secret::DEFAULT_ITERATIONS)]
        iterations: u32,
    },
}

#[derive(clap::Args)]
struct SimulateArgs {
    /// The config file.
    #[arg(short, long)]
    config: PathBuf,
    /// The request as a JSON file (fields: method, url, headers, body, client_ip, now, jwks).
    #[arg(long, conflicts_with_all = ["method", "url", "headers", "body", "client_ip", "now", "jwks"])]
    request: Option<PathBuf>,
    #[arg(long)]
    method: Option<String>,
    /// http://host[:port]/path?query (https:// for a TLS connection).
    #[arg(long, required_unless_present = "request")]
    url: Option<String>,
    /// A request header, `name: value` (repeatable).
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// The request body, or @FILE.
    #[arg(long)]
    body: Option<String>,
    /// The socket peer (default 127.0.0.1).
    #[arg(long)]
    client_ip: Option<String>,
    /// The time to judge tokens at: RFC 3339 or Unix seconds (default now).
    #[arg(long)]
    now: Option<String>,
    /// Remote keys: the JWK Set (or OIDC discovery document) of URL is read from FILE.
    #[arg(long, value_name = "URL=FILE")]
    jwks: Vec<String>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

fn simulate(a: SimulateArgs) -> ExitCode {
    use tokengate::simulate::{self as sim, RequestSpec};
    let spec = match &a.request {
        Some(path) => std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<RequestSpec>(&b).map_err(|e| e.to_string()))
            .map_err(|e| format!("{}: {e}", path.display())),
        None => a
            .jwks
            .iter()
            .map(|j| sim::parse_jwks_arg(j))
            .collect::<Result<_, _>>()
            .map(|jwks| RequestSpec {
                method: a.method,
                url: a.url.unwrap_or_default(),
                headers: a.headers,
                body: a.body,
                client_ip: a.client_ip,
                now: a.now.map(sim::Now::Text),
                jwks,
            }),
    };
    let report = spec
        .map_err(|e| vec![e])
        .and_then(|spec| sim::run(&a.config, spec));
    match report {
        Ok(r) if a.json => match serde_json::to_string_pretty(&r) {
            Ok(j) => {
                println!("{j}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Ok(r) => {
            print!("{}", sim::text(&r));
            ExitCode::SUCCESS
        }
        Err(errs) => {
            for e in errs {
                eprintln!("{e}");
            }
            ExitCode::from(2)
        }
    }
}

#[derive(Subcommand)]
enum KeysCmd {
    /// previous <- current <- next <- a new key, in the configured key_dir. A running
    /// gateway picks the change up on its next reload (SIGHUP or POST /admin/reload), or use
    /// POST /admin/keys/rotate instead.
    Rotate {
        #[arg(short, long, default_value = "conf/tokengate.toml")]
        config: PathBuf,
    },
}

fn keys_rotate(config: &std::path::Path) -> ExitCode {
    let raw = match tokengate::config::load_file(config) {
        Ok((raw, ..)) => raw,
        Err(errs) => {
            for e in errs {
                eprintln!("{}: {e}", config.display());
            }
            return ExitCode::FAILURE;
        }
    };
    let Some(ts) = raw.token_service else {
        eprintln!("{}: no [token_service] section", config.display());
        return ExitCode::FAILURE;
    };
    let Some(alg) = tokengate::jose::Alg::from_name(&ts.signing_alg) else {
        eprintln!("token_service.signing_alg: unknown algorithm");
        return ExitCode::FAILURE;
    };
    match tokengate::token::keys::rotate_dir(std::path::Path::new(&ts.key_dir), alg) {
        Ok(kid) => {
            println!("rotated: current kid {kid}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rotation failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn admin_token() -> ExitCode {
    use base64::Engine;
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    if aws_lc_rs::rand::fill(&mut bytes[..]).is_err() {
        eprintln!("no random bytes from the system");
        return ExitCode::FAILURE;
    }
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes[..]);
    let hash = tokengate::config::content_hash(token.as_bytes());
    println!("{token}");
    println!("tokens = [\"sha256:{hash}\"]");
    eprintln!(
        "first line: the token (send `Authorization: Bearer <token>`; it is not stored anywhere); \
         second line: for the [admin] section"
    );
    ExitCode::SUCCESS
}

fn hash_secret(iterations: u32) -> ExitCode {
    let mut line = zeroize::Zeroizing::new(String::new());
    if std::io::stdin().read_line(&mut line).is_err() {
        return ExitCode::FAILURE;
    }
    let secret = line.trim_end_matches(['\r', '\n']);
    match tokengate::identity::secret::SecretHash::create(secret.as_bytes(), iterations) {
        Ok(h) => {
            println!("{h}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Errors make a file fail; warnings (risky but working settings, `lint`) are printed with
/// their TOML paths and do not.
fn check(files: &[PathBuf], usage: bool) -> ExitCode {
    let mut ok = true;
    for f in files {
        let res = tokengate::config::load_file(f).and_then(|(raw, hash, _)| {
            for w in tokengate::lint::lint(&raw) {
                eprintln!("{}: warning: {w}", f.display());
            }
            let shared = tokengate::shared::Shared::detached()
                .map_err(|e| vec![tokengate::error::ConfigError::new("", e.to_string())])?;
            tokengate::compile::compile(&raw, &hash, 1, None, &shared)?;
            Ok(raw)
        });
        match res {
            Ok(raw) => {
                println!("{}: ok", f.display());
                if usage {
                    print!("{}", tokengate::usage::of(&raw));
                }
            }
            Err(errs) => {
                ok = false;
                for e in errs {
                    eprintln!("{}: {e}", f.display());
                }
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn main() -> ExitCode {
    tokengate::server::install_crypto_provider();
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Check { files, usage } => check(&files, usage),
        Cmd::Keys {
            cmd: KeysCmd::Rotate { config },
        } => keys_rotate(&config),
        Cmd::AdminToken => admin_token(),
        Cmd::Simulate(args) => simulate(args),
        Cmd::HashSecret { iterations } => hash_secret(iterations),
        Cmd::Jose { cmd } => {
            let code = tokengate::jose::cli::run(
                cmd,
                &mut std::io::stdin().lock(),
                &mut std::io::stdout().lock(),
                &mut std::io::stderr().lock(),
            );
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
        Cmd::Run {
            config, test: true, ..
        } => check(&[config], false),
        Cmd::Run {
            config,
            daemon,
            upgrade,
            test: false,
        } => {
            env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
                .init();
            let opts = tokengate::server::RunOptions { daemon, upgrade };
            match tokengate::server::build(config, &opts) {
                Ok((server, _state)) => {
                    server.run(pingora_core::server::RunArgs::default());
                    ExitCode::SUCCESS
                }
                Err(errs) => {
                    for e in errs {
                        eprintln!("{e}");
                    }
                    ExitCode::FAILURE
                }
            }
        }
    }
}
