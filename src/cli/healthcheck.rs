//! `kick-oauth-proxy healthcheck`: the container's `HEALTHCHECK` (distroless has no curl).

use crate::config::ServerSettings;
use crate::error_chain::DisplayChain;
use std::path::Path;
use std::process::ExitCode;

/// Probes `url`, or else the `/healthz` of the listener the config at `config` describes
/// (environment overrides included).
pub async fn run(config: &Path, url: Option<reqwest::Url>) -> ExitCode {
    let (url, own_tls_listener) = match url {
        Some(url) => (url, false),
        None => match ServerSettings::load_with_env(config, std::env::vars()) {
            Ok(server) => (server.health_url(), server.tls.is_some()),
            Err(error) => {
                eprintln!("unhealthy: invalid configuration: {error}");
                return ExitCode::FAILURE;
            }
        },
    };
    probe(url, own_tls_listener).await
}

/// `healthcheck`: one GET, one line of output, exit 0 only on 200. `own_tls_listener`: the URL is
/// this config's own HTTPS listener, probed by address, where its certificate (issued for the
/// public host name) cannot match; it is not verified. Nothing is sent but `GET /healthz`, and
/// only the status is read.
async fn probe(url: reqwest::Url, own_tls_listener: bool) -> ExitCode {
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
            say!("healthy: GET {url} -> {}", response.status());
            ExitCode::SUCCESS
        }
        Ok(response) => {
            eprintln!("unhealthy: GET {url} -> {}", response.status());
            ExitCode::FAILURE
        }
        Err(error) => {
            // reqwest's own message is generic ("error sending request"); the cause is in the chain.
            let error = error.without_url();
            eprintln!("unhealthy: GET {url}: {}", DisplayChain(&error));
            ExitCode::FAILURE
        }
    }
}
