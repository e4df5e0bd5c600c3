//! `kick-oauth-proxy emulator`: the Kick emulator alone, as a mock OAuth server.
//!
//! For testing a desktop app (or anything else that speaks OAuth to Kick) without Kick and without
//! credentials: point the app's authorize URL at the printed one, and its token and revoke calls at
//! the printed endpoints directly or through a proxy configured with them. The emulator approves
//! every authorization at once; see the README's "dev mode and the Kick emulator" for what it
//! checks.

use super::EmulatorArgs;
use crate::config::{LogFormat, LogSettings};
use crate::server::startup::shutdown_signal;
use crate::telemetry;
use kick_emulator::{Emulator, EmulatorConfig, RegisteredClient};
use std::process::ExitCode;

/// The line that carries the emulator's URL, so scripts (and the tests) can read it: the first
/// line printed, `Kick emulator  http://127.0.0.1:PORT`.
pub const URL_LINE_PREFIX: &str = "Kick emulator  ";

/// Starts the emulator on `args.listen` with one registered client, prints its endpoints and
/// client, and serves until Ctrl-C or SIGTERM: exit 0 then, 1 when it cannot start.
pub async fn run(args: EmulatorArgs) -> ExitCode {
    telemetry::init(&LogSettings {
        format: LogFormat::Text,
        filter: "warn".to_owned(),
    });
    let client = registered_client(args.client_id, args.client_secret, args.redirect_uris);
    let config = EmulatorConfig {
        clients: vec![client.clone()],
        ..EmulatorConfig::default()
    };
    let emulator = match start(args.listen, config).await {
        Ok(emulator) => emulator,
        Err(error) => {
            eprintln!(
                "kick-oauth-proxy emulator: cannot listen on {}: {error}",
                args.listen
            );
            return ExitCode::FAILURE;
        }
    };
    say!("{}", describe(&emulator, &client).trim_end());
    say!("Serving until Ctrl-C.");
    shutdown_signal().await;
    emulator.shutdown().await;
    ExitCode::SUCCESS
}

async fn start(listen: std::net::SocketAddr, config: EmulatorConfig) -> std::io::Result<Emulator> {
    let socket = tokio::net::TcpListener::bind(listen).await?;
    Emulator::start_on(socket, config).await
}

/// The emulator's default client, with whichever of id, secret and redirect URIs were given.
fn registered_client(
    client_id: Option<String>,
    client_secret: Option<String>,
    redirect_uris: Vec<String>,
) -> RegisteredClient {
    let default = RegisteredClient::emulator_default();
    RegisteredClient {
        client_id: client_id.unwrap_or(default.client_id),
        client_secret: client_secret.unwrap_or(default.client_secret),
        redirect_uris: if redirect_uris.is_empty() {
            default.redirect_uris
        } else {
            redirect_uris
        },
    }
}

/// What a developer needs to point an app at the emulator. The client secret is printed: it is a
/// test value the emulator was given, not a credential.
fn describe(emulator: &Emulator, client: &RegisteredClient) -> String {
    let mut text = format!(
        "{URL_LINE_PREFIX}{}\n\
         authorize      {}\n\
         token          {}\n\
         revoke         {}\n\
         introspect     {}\n\
         client_id      {}\n\
         client_secret  {}\n",
        emulator.base_url(),
        emulator.authorize_url(),
        emulator.token_url(),
        emulator.revoke_url(),
        emulator.introspect_url(),
        client.client_id,
        client.client_secret,
    );
    for (i, uri) in client.redirect_uris.iter().enumerate() {
        let label = if i == 0 { "redirect_uris" } else { "" };
        text.push_str(&format!("{label:<15}{uri}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_values_replace_the_defaults_and_the_rest_stay() {
        let client = registered_client(
            Some("my-app".into()),
            None,
            vec!["http://127.0.0.1:4567/callback".into()],
        );
        assert_eq!(client.client_id, "my-app");
        assert_eq!(client.client_secret, "emulator-client-secret");
        assert_eq!(client.redirect_uris, ["http://127.0.0.1:4567/callback"]);
        assert_eq!(
            registered_client(None, None, Vec::new()),
            RegisteredClient::emulator_default()
        );
    }
}
