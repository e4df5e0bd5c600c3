//! Loading: the TOML file, with `KICK_PROXY_<SECTION>__<KEY>` environment overrides merged over
//! it (figment), into the operator's settings before validation.

use super::schema::{RawSettings, ServerSettings};
use super::{ConfigError, ENV_PREFIX};
use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use std::net::SocketAddr;
use std::path::Path;
use url::Url;

impl RawSettings {
    /// The TOML text with the `KICK_PROXY_*` overrides applied, before validation.
    pub(super) fn from_toml_with_env(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        // A syntax error is reported by position only: toml's own message quotes the offending
        // line, which may be the one holding the secret.
        if let Err(e) = text.parse::<toml::Table>() {
            let at = e
                .span()
                .map(|span| {
                    let line = text[..span.start].matches('\n').count() + 1;
                    format!(" at line {line}")
                })
                .unwrap_or_default();
            return Err(ConfigError::new(
                "(file)",
                format!("not valid TOML{at}: {}", e.message()),
            ));
        }
        let mut figment =
            Figment::from(Serialized::defaults(RawSettings::default())).merge(Toml::string(text));
        for (key, value) in env {
            // Only `KICK_PROXY_<SECTION>__<KEY>`: variables such as the KICK_PROXY_PORT that
            // Kubernetes injects for a Service named kick-proxy are not ours.
            let Some(rest) = key.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if !rest.contains("__") {
                continue;
            }
            let dotted = rest.to_ascii_lowercase().replace("__", ".");
            figment = figment.merge(Serialized::default(&dotted, env_value(&dotted, &value)));
        }
        figment.extract().map_err(describe_figment_error)
    }
}

/// The config file's text; the error names `--config` (the file's content is never quoted).
pub(super) fn read_config_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new("--config", format!("cannot read {}: {e}", path.display())))
}

impl ServerSettings {
    /// `[server]` of the config at `path` with the environment's overrides, as `serve` would run
    /// it, without validating the providers (no secret file is read): what `healthcheck` needs
    /// to find the listener, even while a reload is failing on a bad secret file.
    pub fn load_with_env(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        Ok(RawSettings::from_toml_with_env(&read_config_file(path)?, env)?.server)
    }

    /// Where this process's own `/healthz` answers: `server.listen`, with an unspecified address
    /// (`0.0.0.0`, `[::]`) probed on loopback of the same family, over HTTPS when `[server.tls]`
    /// is set.
    pub fn health_url(&self) -> Url {
        let ip = match self.listen.ip() {
            std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
                std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
            }
            std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
                std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
            }
            ip => ip,
        };
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let addr = SocketAddr::new(ip, self.listen.port());
        let mut url =
            Url::parse(&format!("{scheme}://localhost/healthz")).expect("a constant URL parses");
        // An IP address and a port are always a valid host and port for http(s).
        let _ = url.set_ip_host(addr.ip());
        let _ = url.set_port(Some(addr.port()));
        url
    }
}

/// Keys whose environment value is a TOML array.
const LIST_KEYS: [&str; 4] = [
    "allowed_redirect_uris",
    "trusted_proxies",
    "cors_allowed_origins",
    // `providers.<name>.relay.targets`.
    "targets",
];
/// Keys whose environment value is a number (besides every `*_secs`).
const NUMBER_KEYS: [&str; 11] = [
    "max_header_bytes",
    "max_connections",
    "admin_max_connections",
    "max_entries",
    "max_bytes",
    "max_concurrent_requests",
    "max_upstream_calls",
    "breaker_failures",
    "per_minute",
    "burst",
    "op_timeout_ms",
];

/// Environment values are strings; a list key takes a TOML/JSON array (`["a","b"]`) and a number
/// key a number. Secrets and ids stay strings whatever they look like.
fn env_value(dotted: &str, value: &str) -> figment::value::Value {
    use figment::value::Value;
    let last = dotted.rsplit('.').next().unwrap_or(dotted);
    let is_list = LIST_KEYS.contains(&last);
    let is_number = last.ends_with("_secs") || NUMBER_KEYS.contains(&last);
    if is_list || is_number {
        if let Ok(parsed) = format!("v = {value}").parse::<toml::Table>() {
            if let Some(v) = parsed.get("v") {
                if let Ok(v) = Value::serialize(v) {
                    return v;
                }
            }
        }
    }
    Value::from(value.to_owned())
}

/// Figment's messages can quote the value (`found string "…"`); keep the key and the expectation.
fn describe_figment_error(error: figment::Error) -> ConfigError {
    use figment::error::Kind;
    let key = if error.path.is_empty() {
        "(root)".to_owned()
    } else {
        error.path.join(".")
    };
    let message = match &error.kind {
        Kind::InvalidType(_, expected) | Kind::InvalidValue(_, expected) => {
            format!("has the wrong type or value; expected {expected}")
        }
        Kind::UnknownField(field, _) => {
            let key = if error.path.last() == Some(field) {
                key
            } else if error.path.is_empty() {
                field.clone()
            } else {
                format!("{key}.{field}")
            };
            return ConfigError::new(key, "unknown key (misspelt?)");
        }
        Kind::MissingField(field) => return ConfigError::new(format!("{key}.{field}"), "missing"),
        Kind::UnknownVariant(_, expected) => format!("must be one of {}", expected.join(", ")),
        _ => "is not valid".to_owned(),
    };
    ConfigError::new(key, message)
}
