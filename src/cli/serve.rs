//! `kick-oauth-proxy serve`: run the proxy until SIGTERM, reloading on SIGHUP.

use crate::server::startup::{reload_on_sighup, Application};
use crate::telemetry;
use std::path::PathBuf;
use std::process::ExitCode;

/// Serves with the config at `config`: exit 2 when it is invalid, 1 when the server cannot start
/// or fails, 0 after a clean drain.
pub async fn run(config: PathBuf) -> ExitCode {
    let Some(settings) = super::load(&config) else {
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
    tracing::info!(
        addr = %app.local_addr(),
        version = env!("CARGO_PKG_VERSION"),
        worker_threads = tokio::runtime::Handle::current().metrics().num_workers(),
        "listening"
    );
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
