//! Typed, layered settings: built-in defaults, then the TOML file, then `KICK_PROXY_<SECTION>__<KEY>`
//! environment overrides (figment). Validation happens once, here; every error names the key it is
//! about and never prints a secret. Nothing else in the crate reads raw configuration.
//!
//! - [`mod@schema`]: the settings types, as written and as validated, and `check-config`'s printout;
//! - [`mod@load`]: the file and the environment, merged;
//! - [`mod@validate`]: every rule, each error naming its key;
//! - [`mod@files`]: mounted secrets and CA bundles, read safely;
//! - [`mod@relay`]: `[providers.<name>.relay]`, the authorize relay's settings;
//! - [`mod@state`]: `[state]`, the store replicas share.

mod files;
mod load;
mod placeholder;
pub mod relay;
mod schema;
pub mod state;
mod validate;

pub use files::{read_secret_file, read_tls_pem, CaCertificates};
pub use placeholder::{is_placeholder, PLACEHOLDER_PREFIX};
pub use schema::*;
pub use state::{StateConfig, StateSettings};
pub use validate::TIMEOUT_RANGE_SECS;

use std::path::Path;

/// Prefix of the environment overrides: `KICK_PROXY_PROVIDERS__KICK__CLIENT_SECRET=…`.
pub const ENV_PREFIX: &str = "KICK_PROXY_";
/// The config file `serve` and `check-config` read when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "config/default.toml";
/// A configuration the service refuses to start with. The message names the key; it never
/// contains a secret value.
#[derive(Debug, thiserror::Error)]
#[error("config key `{key}`: {message}")]
pub struct ConfigError {
    /// Dotted key path, e.g. `providers.kick.client_secret_file`.
    pub key: String,
    /// What is wrong, in words an operator can act on.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl Settings {
    /// Loads `path`, applies the process environment's `KICK_PROXY_*` overrides and validates.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_with_env(path, std::env::vars())
    }

    /// As [`Settings::load`], with the environment given explicitly (tests).
    pub fn load_with_env(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        Self::from_toml_with_env(&load::read_config_file(path)?, env)
    }

    /// Parses TOML text, applies the given `KICK_PROXY_*` variables and validates.
    pub fn from_toml_with_env(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        RawSettings::from_toml_with_env(text, env)?.validate()
    }

    /// The smallest valid configuration: one Kick provider, every default (unit tests).
    #[cfg(test)]
    pub(crate) fn minimal() -> Self {
        Self::from_toml_with_env(
            r#"
[providers.kick]
client_id = "id"
client_secret = "a-secret-of-reasonable-length"
allowed_redirect_uris = ["http://127.0.0.1:8000/callback"]
"#,
            std::iter::empty(),
        )
        .expect("a valid configuration")
    }

    /// The effective configuration as TOML (`check-config`'s printout), in a form that loads
    /// again with the same settings: each client secret under the key it was set with, a file's
    /// path as itself and an inline secret as `[redacted]`.
    pub fn redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}
