//! The command line: `serve`, `check-config`.

use crate::config::{Settings, DEFAULT_CONFIG_PATH};
use crate::startup::Application;
use crate::telemetry;
use clap::{Parser, Subcommand};
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
        Command::CheckConfig { config } => match load(&config) {
            Some(settings) => {
                print!("{}", settings.redacted_toml());
                ExitCode::SUCCESS
            }
            None => ExitCode::from(2),
        },
    }
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
