//! `kick-oauth-proxy login`: the desktop side of the flow from a terminal, built on the
//! `kick-oauth-client` crate exactly as an app would use it.
//!
//! Log in: print (and try to open) the authorize URL, wait on the loopback callback, exchange the
//! code through the proxy, store the tokens (mode 0600), print a redacted summary. `--refresh` and
//! `--revoke` act on the stored tokens. `--auto-approve` fetches the authorize URL itself and
//! follows the redirects to the callback, for the emulator of `dev` mode, which approves at once.
//! `--relay` logs in through the proxy's authorize relay on an ephemeral loopback port (no client
//! id needed; the code is exchanged with the relay's callback URL).

use super::{browser, LoginArgs};
use kick_oauth_client::{
    AuthorizeRequest, CallbackListener, Error as ClientError, FileTokenStore, PendingLogin,
    ProxyClient, RelayAuthorizeRequest, Scope, TokenManager, TokenSet, TokenStore,
};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// What `login` was asked to do.
#[derive(Debug, Clone)]
pub struct LoginOptions {
    /// The proxy's base URL, e.g. `https://proxy.example.com`.
    pub proxy: String,
    /// The `{provider}` path segment.
    pub provider: String,
    /// The app's client id (public); needed to log in, not to refresh or revoke.
    pub client_id: Option<String>,
    /// A loopback `http://localhost:PORT/path` redirect URI the proxy allows.
    pub redirect_uri: String,
    /// Scopes to ask for.
    pub scopes: Vec<String>,
    /// The provider's authorization endpoint.
    pub authorize_url: String,
    /// Where tokens are kept.
    pub store: PathBuf,
    /// Fetch the authorize URL and follow its redirect instead of using a browser (emulator).
    pub auto_approve: bool,
    /// Do not try to open a browser.
    pub no_browser: bool,
    /// How long to wait for the callback.
    pub timeout: Duration,
    /// Log in through the proxy's authorize relay (`redirect_uri` is then the loopback target,
    /// port 0 for an ephemeral one).
    pub relay: bool,
    /// The relay's callback URL, when it is not `{proxy}/api/v1/{provider}/callback`.
    pub relay_callback_url: Option<String>,
}

/// What to do with the options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginAction {
    /// A new login.
    Login,
    /// Refresh the stored tokens now.
    Refresh,
    /// Revoke the stored tokens and forget them.
    Revoke,
}

/// A failed `login`; the message never contains a token.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// From the client library (its errors carry no token values).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Anything else, described.
    #[error("{0}")]
    Other(String),
}

/// The default token file: `$XDG_CONFIG_HOME/kick-oauth-proxy/<provider>-tokens.json`, else
/// `$HOME/.config/…`, else the current directory.
pub fn default_store(provider: &str) -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("kick-oauth-proxy")
        .join(format!("{provider}-tokens.json"))
}

/// Runs `action`, printing progress through `say`.
pub async fn run(
    options: &LoginOptions,
    action: LoginAction,
    say: &mut dyn FnMut(String),
) -> Result<(), LoginError> {
    let proxy = ProxyClient::new(options.proxy.clone(), options.provider.clone())?;
    let store: Arc<dyn TokenStore> = Arc::new(FileTokenStore::new(options.store.clone()));
    let manager = TokenManager::builder(proxy, store).build().await?;
    match action {
        LoginAction::Login => login(options, &manager, say).await,
        LoginAction::Refresh => {
            if manager.current().is_none() {
                return Err(LoginError::Other(format!(
                    "no tokens stored in {}: log in first",
                    options.store.display()
                )));
            }
            manager.force_refresh().await?;
            say("Refreshed.".to_owned());
            summary(options, manager.current(), say);
            Ok(())
        }
        LoginAction::Revoke => {
            if manager.current().is_none() {
                say(format!("No tokens stored in {}.", options.store.display()));
                return Ok(());
            }
            manager.logout().await?;
            say(format!(
                "Revoked the refresh and access tokens and removed {}.",
                options.store.display()
            ));
            Ok(())
        }
    }
}

async fn login(
    options: &LoginOptions,
    manager: &TokenManager,
    say: &mut dyn FnMut(String),
) -> Result<(), LoginError> {
    let listener = CallbackListener::bind(&options.redirect_uri)
        .await?
        .timeout(options.timeout);
    let scopes = options
        .scopes
        .iter()
        .filter_map(|s| s.parse::<Scope>().ok());
    let (url, pending): (_, PendingLogin) = if options.relay {
        let mut request = RelayAuthorizeRequest::new(
            options.proxy.clone(),
            options.provider.clone(),
            listener.redirect_uri(),
        )
        .scopes(scopes);
        if let Some(callback) = &options.relay_callback_url {
            request = request.callback_url(callback.clone());
        }
        let built = request.build()?;
        say(format!(
            "Relayed login: the proxy sends the code to {} and it is exchanged with redirect_uri {}.",
            listener.redirect_uri(),
            built.1.redirect_uri()
        ));
        built
    } else {
        let client_id = options
            .client_id
            .clone()
            .ok_or_else(|| LoginError::Other("--client-id is required to log in".to_owned()))?;
        AuthorizeRequest::new(client_id, listener.redirect_uri())
            .authorize_url(options.authorize_url.clone())
            .scopes(scopes)
            .build()?
    };
    say(format!("Open this URL to log in:\n\n  {url}\n"));
    let browser = if options.auto_approve {
        say("--auto-approve: fetching it and following the redirects to the callback.".to_owned());
        Some(tokio::spawn(browser::approve(url.to_string())))
    } else {
        if !options.no_browser {
            open_browser(url.as_str());
        }
        say(format!(
            "Waiting for the redirect to {} …",
            listener.redirect_uri()
        ));
        None
    };
    let code = listener.wait(&pending).await?;
    if let Some(browser) = browser {
        match browser.await {
            Ok(Ok(_)) => {}
            Ok(Err(message)) => return Err(LoginError::Other(message)),
            Err(e) => return Err(LoginError::Other(format!("approval task failed: {e}"))),
        }
    }
    say("Callback received; state matches. Exchanging the code through the proxy …".to_owned());
    let tokens = manager.complete_login(&code, &pending).await?;
    say("Logged in.".to_owned());
    summary(options, Some(tokens), say);
    Ok(())
}

fn open_browser(url: &str) {
    let opener: Option<(&str, Vec<&str>)> = if cfg!(target_os = "macos") {
        Some(("open", vec![url]))
    } else if cfg!(windows) {
        // Not `cmd /C start`: cmd splits the URL at every `&`.
        Some(("rundll32", vec!["url.dll,FileProtocolHandler", url]))
    } else if cfg!(unix) {
        Some(("xdg-open", vec![url]))
    } else {
        None
    };
    if let Some((program, args)) = opener {
        let _ = std::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
}

fn summary(options: &LoginOptions, tokens: Option<TokenSet>, say: &mut dyn FnMut(String)) {
    let Some(tokens) = tokens else {
        return;
    };
    let left = tokens.remaining(SystemTime::now()).as_secs();
    say(format!(
        "  access token   [redacted, {} chars], expires in {}h{:02}m",
        tokens.access_token.secret().len(),
        left / 3600,
        (left % 3600) / 60
    ));
    say(format!(
        "  refresh token  {}",
        if tokens.refresh_token.is_some() {
            "[redacted], stored"
        } else {
            "none"
        }
    ));
    if let Some(scope) = &tokens.scope {
        say(format!("  scope          {scope}"));
    }
    say(format!(
        "  stored in      {} (mode 0600)",
        options.store.display()
    ));
}

/// `kick-oauth-proxy login` from its parsed arguments: exit 0 when the action worked.
pub async fn command(args: LoginArgs) -> ExitCode {
    let action = if args.refresh {
        LoginAction::Refresh
    } else if args.revoke {
        LoginAction::Revoke
    } else {
        LoginAction::Login
    };
    let options = LoginOptions {
        store: args.store.unwrap_or_else(|| default_store(&args.provider)),
        proxy: args.proxy,
        provider: args.provider,
        client_id: args.client_id,
        redirect_uri: args.redirect_uri.unwrap_or_else(|| {
            if args.relay {
                kick_oauth_client::RELAY_LOOPBACK_TARGET.to_owned()
            } else {
                super::dev::DEV_REDIRECT_URI.to_owned()
            }
        }),
        scopes: args.scopes,
        authorize_url: args.authorize_url,
        auto_approve: args.auto_approve,
        no_browser: args.no_browser,
        timeout: std::time::Duration::from_secs(args.timeout_secs),
        relay: args.relay,
        relay_callback_url: args.relay_callback_url,
    };
    match run(&options, action, &mut |line| say!("{line}")).await {
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
