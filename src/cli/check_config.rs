//! `kick-oauth-proxy check-config`: validate a config and print the effective settings.

use std::path::Path;
use std::process::ExitCode;

/// Prints the effective settings with secrets redacted (exit 0), or why the config is invalid
/// (exit 2, as `serve` would).
pub fn run(config: &Path) -> ExitCode {
    match super::load(config) {
        Some(settings) => {
            print!("{}", settings.redacted_toml());
            ExitCode::SUCCESS
        }
        None => ExitCode::from(2),
    }
}
