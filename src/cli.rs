//! The command line: `serve`, `dev`, `login`, `check-config`, `healthcheck`.

use crate::config::{LogFormat, LogSettings, ServerSettings, Settings, DEFAULT_CONFIG_PATH};
use crate::dev::DevEnvironment;
use crate::login::{LoginAction, LoginError, LoginOptions};
use crate::server::startup::{reload_on_sighup, shutdown_signal, Application};
use crate::telemetry;
use clap::{Parser, Subcommand};
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
    Login(LoginArgs),
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
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// The proxy's base URL.
    #[arg(long)]
    pub proxy: String,
    /// Your app's client id (public); needed to log in.
    #[arg(long, required_unless_present_any = ["refresh", "revoke"])]
    pub client_id: Option<String>,
    /// The provider (the `{provider}` path segment).
    #[arg(long, default_value = "kick")]
    pub provider: String,
    /// A loopback redirect URI registered at the provider and allowed by the proxy.
    #[arg(long, default_value = crate::dev::DEV_REDIRECT_URI)]
    pub redirect_uri: String,
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
            tokio::spawn(reload_on_sighup(
                app.state().clone(),
                config.clone(),
                app.tls(),
            ));
            match app.run_until_stopped().await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!(%error, "server failed");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Dev {
            listen,
            emulator_listen,
            check,
        } => dev(listen, emulator_listen, check).await,
        Command::Login(args) => login(args).await,
        Command::CheckConfig { config } => match load(&config) {
            Some(settings) => {
                print!("{}", settings.redacted_toml());
                ExitCode::SUCCESS
            }
            None => ExitCode::from(2),
        },
        Command::Healthcheck { config, url } => {
            let (url, own_tls_listener) = match url {
                Some(url) => (url, false),
                None => match ServerSettings::load_with_env(&config, std::env::vars()) {
                    Ok(server) => (server.health_url(), server.tls.is_some()),
                    Err(error) => {
                        eprintln!("unhealthy: invalid configuration: {error}");
                        return ExitCode::FAILURE;
                    }
                },
            };
            healthcheck(url, own_tls_listener).await
        }
    }
}

/// `healthcheck`: one GET, one line of output, exit 0 only on 200. `own_tls_listener`: the URL is
/// this config's own HTTPS listener, probed by address, where its certificate (issued for the
/// public host name) cannot match; it is not verified. Nothing is sent but `GET /healthz`, and
/// only the status is read.
async fn healthcheck(url: reqwest::Url, own_tls_listener: bool) -> ExitCode {
    let result = async {
        reqwest::Client::builder()
            // An HTTP(S)_PROXY in the container's environment must not answer for this process.
            .no_proxy()
            // A redirect is not a healthy answer from /healthz.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(2))
            .danger_accept_invalid_certs(own_tls_listener)
            .build()?
            .get(url.clone())
            .send()
            .await
    }
    .await;
    match result {
        Ok(response) if response.status() == reqwest::StatusCode::OK => {
            println!("healthy: GET {url} -> {}", response.status());
            ExitCode::SUCCESS
        }
        Ok(response) => {
            eprintln!("unhealthy: GET {url} -> {}", response.status());
            ExitCode::FAILURE
        }
        Err(error) => {
            // reqwest's own message is generic ("error sending request"); the cause is in the chain.
            let error = error.without_url();
            let mut line = error.to_string();
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                line.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("unhealthy: GET {url}: {line}");
            ExitCode::FAILURE
        }
    }
}

async fn login(args: LoginArgs) -> ExitCode {
    let action = if args.refresh {
        LoginAction::Refresh
    } else if args.revoke {
        LoginAction::Revoke
    } else {
        LoginAction::Login
    };
    let options = LoginOptions {
        store: args
            .store
            .unwrap_or_else(|| crate::login::default_store(&args.provider)),
        proxy: args.proxy,
        provider: args.provider,
        client_id: args.client_id,
        redirect_uri: args.redirect_uri,
        scopes: args.scopes,
        authorize_url: args.authorize_url,
        auto_approve: args.auto_approve,
        no_browser: args.no_browser,
        timeout: std::time::Duration::from_secs(args.timeout_secs),
    };
    match crate::login::run(&options, action, &mut |line| println!("{line}")).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kick-oauth-proxy login: {error}");
            if matches!(&error, LoginError::Client(e) if e.is_login_required()) {
                eprintln!("The grant is gone: log in again.");
            }
            ExitCode::FAILURE
        }
    }
}

async fn dev(listen: SocketAddr, emulator_listen: SocketAddr, check: bool) -> ExitCode {
    telemetry::init(&LogSettings {
        format: LogFormat::Text,
        filter: "warn".to_owned(),
    });
    let env = match DevEnvironment::start_with(listen, emulator_listen, "").await {
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
