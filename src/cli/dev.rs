//! `kick-oauth-proxy dev`: the whole system on loopback with no credentials and no network.
//!
//! Starts the Kick emulator and the proxy pointed at it, then logs in once the way a desktop app
//! does, with the `kick-oauth-client` crate: PKCE, authorize, callback, exchange, refresh, revoke,
//! and a refresh with the revoked token that must fail; then a relayed login on an ephemeral
//! loopback port through the proxy's authorize relay. Every step is printed with tokens redacted.

use crate::config::{LogFormat, LogSettings, Settings};
use crate::server::startup::{shutdown_signal, Application};
use crate::telemetry;
use kick_emulator::{Emulator, EmulatorConfig, RegisteredClient};
use kick_oauth_client::{
    parse_callback_url, AuthorizeRequest, CallbackListener, Error as ClientError, PkceVerifier,
    ProxyClient, RefreshToken, RelayAuthorizeRequest, Scope, TokenTypeHint, RELAY_LOOPBACK_TARGET,
};
use std::net::SocketAddr;
use std::process::ExitCode;
use tokio::sync::oneshot;

/// The redirect URI the self-check uses (registered at the emulator, allowed by the proxy).
pub const DEV_REDIRECT_URI: &str = "http://localhost:1420/auth/callback";
/// RFC 7636 Appendix B's verifier, used in the printed `curl` examples so they can be pasted.
pub const EXAMPLE_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/// A step of the self-check failed.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {message}")]
pub struct DevError {
    step: &'static str,
    message: String,
}

fn failed(step: &'static str, message: impl ToString) -> DevError {
    DevError {
        step,
        message: message.to_string(),
    }
}

/// A fresh random sealing secret for the relay: `dev` mode's states open only in this process.
fn dev_sealing_secret() -> Result<String, DevError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| failed("relay", format!("no OS randomness: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The emulator and the proxy, running.
pub struct DevEnvironment {
    /// The emulator (Kick's stand-in).
    pub emulator: Emulator,
    /// The proxy's address.
    pub proxy_addr: SocketAddr,
    /// The registered client the proxy uses (its redirect URIs include the relay's callback).
    pub client: RegisteredClient,
    /// The relay's callback URL, `<proxy>/api/v1/kick/callback`, registered at the emulator.
    pub relay_callback_url: String,
    stop_proxy: Option<oneshot::Sender<()>>,
    proxy_task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl DevEnvironment {
    /// Starts the emulator on a free loopback port and the proxy on `listen`, with the proxy's
    /// defaults (replay, breaker, rate limits).
    pub async fn start(listen: SocketAddr) -> Result<Self, DevError> {
        Self::start_with(listen, SocketAddr::from(([127, 0, 0, 1], 0)), "").await
    }

    /// Starts the emulator on `emulator_listen` and the proxy on `listen`; `extra_toml` adds
    /// tables to the proxy's config (tests use it to switch a mechanism off, e.g.
    /// `"[replay]\nwindow_secs = 0\n"`).
    pub async fn start_with(
        listen: SocketAddr,
        emulator_listen: SocketAddr,
        extra_toml: &str,
    ) -> Result<Self, DevError> {
        let mut client = RegisteredClient::emulator_default();
        // The proxy's port first: the relay's callback URL names it, and the emulator must have
        // it registered before it starts, as Kick's developer console would.
        let proxy_socket = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| failed("proxy", format!("cannot listen on {listen}: {e}")))?;
        let proxy_addr = proxy_socket.local_addr().map_err(|e| failed("proxy", e))?;
        let relay_callback_url = format!("http://{proxy_addr}/api/v1/kick/callback");
        let sealing_secret = dev_sealing_secret()?;
        let emulator_socket = tokio::net::TcpListener::bind(emulator_listen)
            .await
            .map_err(|e| {
                failed(
                    "emulator",
                    format!("cannot listen on {emulator_listen}: {e}"),
                )
            })?;
        let allowed = client.redirect_uris.clone();
        client.redirect_uris.push(relay_callback_url.clone());
        let emulator = Emulator::start_on(
            emulator_socket,
            EmulatorConfig {
                clients: vec![client.clone()],
                ..EmulatorConfig::default()
            },
        )
        .await
        .map_err(|e| failed("emulator", e))?;
        let uris = allowed
            .iter()
            .map(|u| format!("{u:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        let toml = format!(
            r#"
[server]
listen = "{proxy_addr}"
shutdown_grace_secs = 2

[providers.kick]
client_id = {id:?}
client_secret = {secret:?}
allowed_redirect_uris = [{uris}]
token_url = {token:?}
revoke_url = {revoke:?}

[providers.kick.relay]
callback_url = {relay_callback_url:?}
authorize_url = {authorize:?}
sealing_secret = {sealing_secret:?}

{extra_toml}
"#,
            id = client.client_id,
            secret = client.client_secret,
            token = emulator.token_url(),
            revoke = emulator.revoke_url(),
            authorize = emulator.authorize_url(),
        );
        let settings = Settings::from_toml_with_env(&toml, []).map_err(|e| failed("config", e))?;
        let app = Application::build_on(settings, proxy_socket)
            .await
            .map_err(|e| failed("proxy", e))?;
        let (stop_proxy, stopped) = oneshot::channel::<()>();
        let proxy_task = tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        Ok(Self {
            emulator,
            proxy_addr,
            client,
            relay_callback_url,
            stop_proxy: Some(stop_proxy),
            proxy_task,
        })
    }

    /// The proxy's base URL.
    pub fn proxy_url(&self) -> String {
        format!("http://{}", self.proxy_addr)
    }

    /// Stops both servers.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop_proxy.take() {
            let _ = stop.send(());
        }
        let _ = self.proxy_task.await;
        self.emulator.shutdown().await;
    }

    /// Logs in once as a desktop app would, reporting each step through `say`.
    pub async fn self_check(&self, say: &mut dyn FnMut(String)) -> Result<(), DevError> {
        // 1. PKCE (RFC 7636 §4.1–4.2).
        let (authorize_url, pending) =
            AuthorizeRequest::new(&self.client.client_id, DEV_REDIRECT_URI)
                .authorize_url(self.emulator.authorize_url())
                .scopes([Scope::UserRead, Scope::ChannelRead])
                .build()
                .map_err(|e| failed("authorize URL", e))?;
        say(format!(
            "1. PKCE      verifier {} chars, challenge S256 {}",
            pending.verifier().secret().len(),
            pending.verifier().challenge_s256()
        ));

        // 2. Authorize: the emulator approves at once and redirects with a code.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| failed("authorize", e.without_url()))?;
        let answer = http
            .get(authorize_url.clone())
            .send()
            .await
            .map_err(|e| failed("authorize", e.without_url()))?;
        let location = answer
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .ok_or_else(|| {
                failed(
                    "authorize",
                    format!("no redirect (HTTP {})", answer.status()),
                )
            })?
            .to_owned();
        say(format!(
            "2. authorize GET {}/oauth/authorize → {} redirect to {DEV_REDIRECT_URI}?code=[redacted]&state=…",
            self.emulator.base_url(),
            answer.status().as_u16()
        ));

        // 3. Callback: state checked, code taken.
        let code = parse_callback_url(&location, &pending).map_err(|e| failed("callback", e))?;
        say(format!(
            "3. callback  state matches; code [redacted, {} chars]",
            code.secret().len()
        ));

        // 4. Exchange through the proxy.
        let proxy =
            ProxyClient::new(self.proxy_url(), "kick").map_err(|e| failed("proxy client", e))?;
        let tokens = proxy
            .exchange(&code, pending.verifier(), pending.redirect_uri())
            .await
            .map_err(|e| failed("exchange", e))?;
        let first_refresh = tokens
            .refresh_token
            .clone()
            .ok_or_else(|| failed("exchange", "no refresh token in the answer"))?;
        say(format!(
            "4. exchange  POST {}/api/v1/kick/token → 200: access_token [redacted, {} chars], refresh_token [redacted], expires_in {}, scope {:?}",
            self.proxy_url(),
            tokens.access_token.secret().len(),
            tokens.expires_in.unwrap_or_default(),
            tokens.scope.clone().unwrap_or_default()
        ));

        // 5. Refresh: a new pair.
        let refreshed = proxy
            .refresh(&first_refresh)
            .await
            .map_err(|e| failed("refresh", e))?;
        let second_refresh = refreshed
            .refresh_token
            .clone()
            .ok_or_else(|| failed("refresh", "no new refresh token"))?;
        if refreshed.access_token.secret() == tokens.access_token.secret() {
            return Err(failed("refresh", "the access token did not change"));
        }
        say("5. refresh   POST /api/v1/kick/refresh → 200: new access_token and refresh_token [redacted]".to_owned());

        // 6. Revoke the newest refresh token; 7. it no longer refreshes.
        proxy
            .revoke(second_refresh.secret(), Some(TokenTypeHint::RefreshToken))
            .await
            .map_err(|e| failed("revoke", e))?;
        say("6. revoke    POST /api/v1/kick/revoke → 200 {}".to_owned());
        match proxy
            .refresh(&RefreshToken::new(second_refresh.secret()))
            .await
        {
            Err(ClientError::GrantInvalid { .. }) => {
                say(
                    "7. check     refreshing the revoked token → 400 invalid_grant, as it must"
                        .to_owned(),
                );
            }
            Err(other) => {
                return Err(failed(
                    "revoked refresh",
                    format!("expected invalid_grant, got {other}"),
                ))
            }
            Ok(_) => {
                return Err(failed(
                    "revoked refresh",
                    "a revoked refresh token still worked",
                ))
            }
        }
        self.relayed_login(&proxy, say).await
    }

    /// Steps 8 and 9: a login on an ephemeral loopback port through the proxy's authorize relay,
    /// as the client crate's relay mode does it.
    async fn relayed_login(
        &self,
        proxy: &ProxyClient,
        say: &mut dyn FnMut(String),
    ) -> Result<(), DevError> {
        let listener = CallbackListener::bind(RELAY_LOOPBACK_TARGET)
            .await
            .map_err(|e| failed("relay", e))?
            .timeout(std::time::Duration::from_secs(30));
        let target = listener.redirect_uri().to_owned();
        let (url, pending) = RelayAuthorizeRequest::new(self.proxy_url(), "kick", &target)
            .callback_url(self.relay_callback_url.clone())
            .scopes([Scope::UserRead, Scope::ChannelRead])
            .build()
            .map_err(|e| failed("relay", e))?;
        let browser = tokio::spawn(super::browser::approve(url.to_string()));
        let code = listener
            .wait(&pending)
            .await
            .map_err(|e| failed("relay", e))?;
        let hops = browser
            .await
            .map_err(|e| failed("relay", e))?
            .map_err(|e| failed("relay", e))?;
        let chain = hops
            .iter()
            .skip(1)
            .map(|hop| hop.url.as_str())
            .collect::<Vec<_>>()
            .join(" → ");
        say(format!(
            "8. relay     GET {}/api/v1/kick/authorize?redirect_uri={target} → 302 {chain}: state matches; code [redacted, {} chars]",
            self.proxy_url(),
            code.secret().len()
        ));
        let tokens = proxy
            .exchange(&code, pending.verifier(), pending.redirect_uri())
            .await
            .map_err(|e| failed("relayed exchange", e))?;
        say(format!(
            "9. exchange  POST /api/v1/kick/token with redirect_uri {} → 200: access_token [redacted, {} chars]",
            pending.redirect_uri(),
            tokens.access_token.secret().len()
        ));
        Ok(())
    }

    /// `curl` commands to try the proxy by hand.
    pub fn try_it(&self) -> String {
        let challenge = PkceVerifier::parse(EXAMPLE_VERIFIER)
            .map(|v| v.challenge_s256())
            .unwrap_or_default();
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &self.client.client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", DEV_REDIRECT_URI)
            .append_pair("scope", "user:read channel:read")
            .append_pair("state", "try-it-yourself")
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .finish();
        let authorize = format!("{}?{query}", self.emulator.authorize_url());
        let proxy = self.proxy_url();
        format!(
            r#"Try it (the emulator approves every authorization at once):

  # 1. authorize: prints the callback URL with a code
  curl -s -o /dev/null -w '%{{redirect_url}}\n' '{authorize}'
  # 2. exchange that code through the proxy
  curl -s {proxy}/api/v1/kick/token -H 'content-type: application/json' \
    -d '{{"code":"PASTE_CODE","code_verifier":"{EXAMPLE_VERIFIER}","redirect_uri":"{DEV_REDIRECT_URI}"}}'
  # 3. refresh, 4. revoke (form bodies work too)
  curl -s {proxy}/api/v1/kick/refresh -d 'refresh_token=PASTE_REFRESH_TOKEN'
  curl -s {proxy}/api/v1/kick/revoke -d 'token=PASTE_REFRESH_TOKEN&token_type_hint=refresh_token'
  # health
  curl -s {proxy}/healthz
"#
        )
    }
}

/// `kick-oauth-proxy dev`: starts both, runs the self-check, then serves until Ctrl-C (or exits
/// after the check with `check`: 0 when the login worked).
pub async fn run(listen: SocketAddr, emulator_listen: SocketAddr, check: bool) -> ExitCode {
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
    say!("Kick emulator  {}", env.emulator.base_url());
    say!(
        "proxy          {}  (client {}, secret from the emulator)",
        env.proxy_url(),
        env.client.client_id
    );
    say!(
        "relay          {}/api/v1/kick/authorize  (callback {}, registered at the emulator)",
        env.proxy_url(),
        env.relay_callback_url
    );
    say!();
    say!("Logging in as a desktop app would:");
    let result = env.self_check(&mut |line| say!("  {line}")).await;
    match &result {
        Ok(()) => say!(
            "Login flow OK: PKCE, authorize, callback, exchange, refresh, revoke, relayed login."
        ),
        Err(error) => say!("Login flow FAILED at {error}"),
    }
    if check || result.is_err() {
        env.shutdown().await;
        return if result.is_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    say!();
    say!("{}", env.try_it().trim_end());
    say!("Serving until Ctrl-C.");
    shutdown_signal().await;
    env.shutdown().await;
    ExitCode::SUCCESS
}
