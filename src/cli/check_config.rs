//! `kick-oauth-proxy check-config`: validate a config and print the effective settings.

use crate::exchange::Provider;
use crate::server::tls::TlsReloader;
use std::path::Path;
use std::process::ExitCode;

/// Prints the effective settings with secrets redacted (exit 0), or why the config is invalid
/// (exit 2, as `serve` would). Builds each provider's HTTP client and loads `[server.tls]`'s
/// certificate and key as `serve` does, so what only those refuse (an endpoint the environment
/// sends through a SOCKS proxy, a certificate that does not load) is reported here too, with
/// `serve`'s exit code 1. The state store is not contacted.
pub fn run(config: &Path) -> ExitCode {
    let Some(settings) = super::load(config) else {
        return ExitCode::from(2);
    };
    for provider in settings.providers.values() {
        if let Err(error) = Provider::new(&settings, provider) {
            eprintln!("kick-oauth-proxy: {error}");
            return ExitCode::FAILURE;
        }
    }
    if let Some(tls) = &settings.server.tls {
        if let Err(error) = TlsReloader::load(tls).and_then(|tls| tls.acceptor().map(drop)) {
            eprintln!("kick-oauth-proxy: {error}");
            return ExitCode::FAILURE;
        }
    }
    // A closed stdout (`check-config | head`) is not an error of the config.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), settings.redacted_toml().as_bytes());
    ExitCode::SUCCESS
}
