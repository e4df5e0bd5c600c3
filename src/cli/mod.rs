//! The command line: what each subcommand takes (clap) and which module runs it.
//!
//! # Layout
//! - [`serve`]: run the proxy (the container's `CMD`);
//! - [`check_config`]: validate a config and print it, secrets redacted;
//! - [`healthcheck`]: probe a running proxy's `/healthz` (the container's `HEALTHCHECK`);
//! - `dev`, `login`, `emulator`: tools for developing against the proxy, built only with the
//!   `dev-tools` cargo feature (on by default, off in the container image), because they link the
//!   Kick emulator and the desktop client:
//!   - `dev`: the emulator and the proxy on loopback, with a self-check login;
//!   - `login`: the desktop flow from a terminal through the client crate;
//!   - `emulator`: the Kick emulator alone, a mock OAuth server for testing a desktop app.

/// `println!` that a closed stdout (`dev | head`, `login | grep -m1 https`) cannot turn into a
/// panic: the text is for a person, and the command goes on (serving, or waiting for a login).
macro_rules! say {
    () => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout());
    }};
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

#[cfg(feature = "dev-tools")]
pub mod browser;
pub mod check_config;
#[cfg(feature = "dev-tools")]
pub mod dev;
#[cfg(feature = "dev-tools")]
pub mod emulator;
pub mod healthcheck;
#[cfg(feature = "dev-tools")]
pub mod login;
pub mod serve;

use crate::config::{Settings, DEFAULT_CONFIG_PATH};
use clap::{Parser, Subcommand};
#[cfg(feature = "dev-tools")]
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// The environment variable naming the config file when `--config` is not given: the container
/// image sets it, so `serve` and the `HEALTHCHECK`'s `healthcheck` read the same file.
pub const CONFIG_ENV: &str = "KICK_PROXY_CONFIG";

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
        #[arg(long, env = CONFIG_ENV, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Run the Kick emulator and the proxy on loopback, log in once as a desktop app would, and keep
    /// serving. Needs no credentials and no network.
    #[cfg(feature = "dev-tools")]
    Dev {
        /// Where the proxy listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Where the Kick emulator listens.
        #[arg(long, default_value = "127.0.0.1:8081")]
        emulator_listen: SocketAddr,
        /// Exit after the self-check (0 when the login worked).
        #[arg(long)]
        check: bool,
    },
    /// Log in through a proxy as a desktop app does (PKCE, loopback callback, exchange) and store
    /// the tokens; or refresh or revoke the stored ones.
    #[cfg(feature = "dev-tools")]
    Login(LoginArgs),
    /// Run the Kick emulator alone, as a mock OAuth server for testing a desktop app (or the proxy)
    /// without Kick: prints its endpoints and registered client, serves until Ctrl-C or SIGTERM.
    #[cfg(feature = "dev-tools")]
    Emulator(EmulatorArgs),
    /// Validate the config and print the effective settings, secrets redacted.
    CheckConfig {
        /// TOML config file.
        #[arg(long, env = CONFIG_ENV, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// Probe a running proxy (the container's `HEALTHCHECK`; distroless has no curl): GET its
    /// `/healthz` with a 2 s deadline, no proxy, no redirects; exit 0 on 200, 1 otherwise. The
    /// address is the configured `server.listen` (environment overrides included, `0.0.0.0` and
    /// `[::]` probed on loopback, HTTPS when `[server.tls]` is set), so the probe follows the
    /// server wherever it listens.
    Healthcheck {
        /// The config `serve` runs with; only its `[server]` table is read.
        #[arg(long, env = CONFIG_ENV, default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
        /// GET this URL instead of the configured listener's `/healthz`.
        #[arg(long)]
        url: Option<reqwest::Url>,
    },
}

/// `login` arguments.
#[cfg(feature = "dev-tools")]
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// The proxy's base URL.
    #[arg(long)]
    pub proxy: String,
    /// Your app's client id (public); needed to log in.
    #[arg(long, required_unless_present_any = ["refresh", "revoke", "relay"])]
    pub client_id: Option<String>,
    /// The provider (the `{provider}` path segment).
    #[arg(long, default_value = "kick")]
    pub provider: String,
    /// A loopback redirect URI registered at the provider and allowed by the proxy (default
    /// http://localhost:1420/auth/callback); with --relay, the loopback target, port 0 for an
    /// ephemeral one (default http://127.0.0.1:0/callback).
    #[arg(long)]
    pub redirect_uri: Option<String>,
    /// A scope to ask for; repeat for several.
    #[arg(long = "scope", default_values_t = ["user:read".to_owned()])]
    pub scopes: Vec<String>,
    /// The provider's authorization endpoint.
    #[arg(long, default_value = kick_oauth_client::KICK_AUTHORIZE_URL)]
    pub authorize_url: String,
    /// Token file (default: ~/.config/kick-oauth-proxy/<provider>-tokens.json).
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Fetch the authorize URL and follow its redirect instead of using a browser (dev mode's
    /// emulator approves at once).
    #[arg(long)]
    pub auto_approve: bool,
    /// Print the URL without trying to open a browser.
    #[arg(long)]
    pub no_browser: bool,
    /// Seconds to wait for the browser's redirect.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
    /// Refresh the stored tokens now.
    #[arg(long, conflicts_with = "revoke")]
    pub refresh: bool,
    /// Revoke the stored tokens and delete them.
    #[arg(long)]
    pub revoke: bool,
    /// Log in through the proxy's authorize relay on an ephemeral loopback port (for providers
    /// that allow no wildcard port, such as Kick and Twitch); no --client-id needed.
    #[arg(long, conflicts_with_all = ["refresh", "revoke", "authorize_url"])]
    pub relay: bool,
    /// With --relay: the relay's callback URL, when it is not <proxy>/api/v1/<provider>/callback.
    #[arg(long, requires = "relay")]
    pub relay_callback_url: Option<String>,
}

/// `emulator` arguments. The defaults are the emulator's own registered client
/// (`emulator-client-id` / `emulator-client-secret`, the two Battles Record redirect URIs).
#[cfg(feature = "dev-tools")]
#[derive(Debug, clap::Args)]
pub struct EmulatorArgs {
    /// Where the emulator listens; port 0 picks a free one (the printed URL shows which).
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// The registered client's id.
    #[arg(long)]
    pub client_id: Option<String>,
    /// The registered client's secret (a test value: the emulator is not Kick).
    #[arg(long)]
    pub client_secret: Option<String>,
    /// A redirect URI to register (compared byte for byte, as Kick does); repeat for several.
    /// Replaces the default ones when given.
    #[arg(long = "redirect-uri")]
    pub redirect_uris: Vec<String>,
}

/// Runs the parsed command; the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve { config } => serve::run(config).await,
        #[cfg(feature = "dev-tools")]
        Command::Dev {
            listen,
            emulator_listen,
            check,
        } => dev::run(listen, emulator_listen, check).await,
        #[cfg(feature = "dev-tools")]
        Command::Login(args) => login::command(args).await,
        #[cfg(feature = "dev-tools")]
        Command::Emulator(args) => emulator::run(args).await,
        Command::CheckConfig { config } => check_config::run(&config),
        Command::Healthcheck { config, url } => healthcheck::run(&config, url).await,
    }
}

/// Loads the config, or prints why not; `serve` and `check-config` exit 2 on `None`.
fn load(path: &std::path::Path) -> Option<Settings> {
    match Settings::load(path) {
        Ok(settings) => Some(settings),
        Err(error) => {
            eprintln!("kick-oauth-proxy: invalid configuration: {error}");
            None
        }
    }
}
