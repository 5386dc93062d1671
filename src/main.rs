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
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// JOSE helpers for operators and scripts (stdin -> stdout).
    Jose {
        #[command(subcommand)]
        cmd: tokengate::jose::cli::JoseCommand,
    },
}

fn check(files: &[PathBuf]) -> ExitCode {
    let mut ok = true;
    for f in files {
        let res = tokengate::config::load_file(f).and_then(|(raw, hash)| {
            let shared = tokengate::shared::Shared::detached()
                .map_err(|e| vec![tokengate::error::ConfigError::new("", e.to_string())])?;
            tokengate::compile::compile(&raw, &hash, 1, None, &shared)
        });
        match res {
            Ok(_) => println!("{}: ok", f.display()),
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
        Cmd::Check { files } => check(&files),
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
        } => check(&[config]),
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
