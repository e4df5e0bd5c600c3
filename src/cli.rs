//! The command line: `serve`, `dev`, `check-config`.

use crate::config::{LogFormat, LogSettings, Settings, DEFAULT_CONFIG_PATH};
use crate::dev::DevEnvironment;
use crate::startup::{shutdown_signal, Application};
use crate::telemetry;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Hardened OAuth token-exchange proxy for desktop apps.
#[derive(Debug, Parser)]
#[command(name = "kick-oauth-proxy", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy.
    Serve {
        /// TOML config file; `KICK_PROXY_<SECTION>__<KEY>` variables override it.
        #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Run the Kick emulator and the proxy on loopback, log in once as a desktop app would, and keep
    /// serving. Needs no credentials and no network.
    Dev {
        /// Where the proxy listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Exit after the self-check (0 when the login worked).
        #[arg(long)]
        check: bool,
    },
    /// Validate the config and print the effective settings, secrets redacted.
    CheckConfig {
        /// TOML config file.
        #[arg(long, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
}

/// Runs the parsed command; the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve { config } => {
            let Some(settings) = load(&config) else {
                return ExitCode::from(2);
            };
            telemetry::init(&settings.log);
            let app = match Application::build(settings).await {
                Ok(app) => app,
                Err(error) => {
                    tracing::error!(%error, "cannot start");
                    return ExitCode::FAILURE;
                }
            };
            tracing::info!(addr = %app.local_addr(), version = env!("CARGO_PKG_VERSION"), "listening");
            match app.run_until_stopped().await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!(%error, "server failed");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Dev { listen, check } => dev(listen, check).await,
        Command::CheckConfig { config } => match load(&config) {
            Some(settings) => {
                print!("{}", settings.redacted_toml());
                ExitCode::SUCCESS
            }
            None => ExitCode::from(2),
        },
    }
}

async fn dev(listen: SocketAddr, check: bool) -> ExitCode {
    telemetry::init(&LogSettings {
        format: LogFormat::Text,
        filter: "warn".to_owned(),
    });
    let env = match DevEnvironment::start(listen).await {
        Ok(env) => env,
        Err(error) => {
            eprintln!("kick-oauth-proxy dev: cannot start: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!("Kick emulator  {}", env.emulator.base_url());
    println!(
        "proxy          {}  (client {}, secret from the emulator)",
        env.proxy_url(),
        env.client.client_id
    );
    println!();
    println!("Logging in as a desktop app would:");
    let result = env.self_check(&mut |line| println!("  {line}")).await;
    match &result {
        Ok(()) => println!("Login flow OK: PKCE, authorize, callback, exchange, refresh, revoke."),
        Err(error) => println!("Login flow FAILED at {error}"),
    }
    if check || result.is_err() {
        env.shutdown().await;
        return if result.is_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    println!();
    print!("{}", env.try_it());
    println!("Serving until Ctrl-C.");
    shutdown_signal().await;
    env.shutdown().await;
    ExitCode::SUCCESS
}

fn load(path: &std::path::Path) -> Option<Settings> {
    match Settings::load(path) {
        Ok(settings) => Some(settings),
        Err(error) => {
            eprintln!("kick-oauth-proxy: invalid configuration: {error}");
            None
        }
    }
}
