//! Validation: every rule the settings must meet, checked once at start-up and on every reload;
//! each error names its key and never quotes a secret.

use super::files::{read_secret_file, CaCertificates};
use super::placeholder::{is_placeholder, PLACEHOLDER_SECRET};
use super::schema::{ProviderSettings, RawProvider, RawSettings, Settings};
use super::ConfigError;
use crate::providers::redirect::is_wildcard_port_entry;
use crate::providers::{implied_preset, preset, preset_names, RedirectRule};
use crate::secret::ClientSecret;
use std::time::Duration;
use url::Url;

/// Allowed upstream deadlines, in seconds (contract: "a timeout outside 1..=60 s" is refused).
pub const TIMEOUT_RANGE_SECS: std::ops::RangeInclusive<u64> = 1..=60;
/// `server.max_header_bytes`: hyper's smallest read buffer up to 64 KiB.
const HEADER_BYTES_RANGE: std::ops::RangeInclusive<usize> = 8192..=65536;
/// `server.max_connections`, `server.admin_max_connections`.
const CONNECTIONS_RANGE: std::ops::RangeInclusive<usize> = 1..=1_000_000;

impl RawSettings {
    pub(super) fn validate(self) -> Result<Settings, ConfigError> {
        let server = self.server;
        for (key, value) in [
            (
                "server.header_read_timeout_secs",
                server.header_read_timeout_secs,
            ),
            (
                "server.body_read_timeout_secs",
                server.body_read_timeout_secs,
            ),
        ] {
            if !TIMEOUT_RANGE_SECS.contains(&value) {
                return Err(ConfigError::new(key, "must be between 1 and 60 seconds"));
            }
        }
        if !HEADER_BYTES_RANGE.contains(&server.max_header_bytes) {
            return Err(ConfigError::new(
                "server.max_header_bytes",
                "must be between 8192 and 65536",
            ));
        }
        for (key, value) in [
            ("server.max_connections", server.max_connections),
            ("server.admin_max_connections", server.admin_max_connections),
        ] {
            if !CONNECTIONS_RANGE.contains(&value) {
                return Err(ConfigError::new(key, "must be between 1 and 1000000"));
            }
        }
        if self.providers.is_empty() {
            return Err(ConfigError::new(
                "providers",
                "no provider configured; add a [providers.kick] table",
            ));
        }
        let providers = self
            .providers
            .into_iter()
            .map(|(name, raw)| validate_provider(&name, raw).map(|p| (name, p)))
            .collect::<Result<_, _>>()?;
        for (i, cidr) in self.rate_limit.trusted_proxies.iter().enumerate() {
            if cidr.parse::<ipnet::IpNet>().is_err() && cidr.parse::<std::net::IpAddr>().is_err() {
                return Err(ConfigError::new(
                    format!("rate_limit.trusted_proxies[{i}]"),
                    "is not an IP address or CIDR (e.g. 10.0.0.0/8)",
                ));
            }
        }
        for (i, origin) in server.cors_allowed_origins.iter().enumerate() {
            let valid = Url::parse(origin).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && u.origin().ascii_serialization() == *origin
            });
            if !valid {
                return Err(ConfigError::new(
                    format!("server.cors_allowed_origins[{i}]"),
                    "must be an exact origin such as https://app.example.com (no path, no trailing slash)",
                ));
            }
        }
        for (key, value) in [
            ("replay.window_secs", self.replay.window_secs),
            (
                "limits.breaker_cooldown_secs",
                self.limits.breaker_cooldown_secs,
            ),
        ] {
            if value > 3600 {
                return Err(ConfigError::new(key, "must be at most 3600 seconds"));
            }
        }
        if self.limits.max_concurrent_requests == 0 || self.limits.max_upstream_calls == 0 {
            return Err(ConfigError::new(
                "limits",
                "max_concurrent_requests and max_upstream_calls must be at least 1",
            ));
        }
        Ok(Settings {
            server,
            log: self.log,
            replay: self.replay,
            limits: self.limits,
            rate_limit: self.rate_limit,
            providers,
            state: self.state.validate()?,
        })
    }
}

fn validate_provider(name: &str, raw: RawProvider) -> Result<ProviderSettings, ConfigError> {
    let key = |k: &str| format!("providers.{name}.{k}");
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(ConfigError::new(
            format!("providers.{name}"),
            "provider names are path segments: lowercase letters, digits, '-' and '_'",
        ));
    }
    let client_id = match raw.client_id {
        Some(id) if !id.trim().is_empty() => id,
        _ => return Err(ConfigError::new(key("client_id"), "missing or empty")),
    };
    if is_placeholder(&client_id) {
        // A client id is public, and this one is the example's own text: safe to quote.
        return Err(ConfigError::new(
            key("client_id"),
            format!(
                "is still the shipped placeholder {client_id:?}: set your app's client id from the \
                 provider's developer console (or KICK_PROXY_PROVIDERS__{}__CLIENT_ID)",
                name.to_ascii_uppercase()
            ),
        ));
    }
    // An empty value counts as unset, so an environment variable can blank out a file's key
    // (`KICK_PROXY_PROVIDERS__KICK__CLIENT_SECRET_FILE=` with `…__CLIENT_SECRET=…`).
    let inline = raw.client_secret.filter(|s| !s.is_empty());
    let secret_file = raw.client_secret_file.filter(|p| !p.as_os_str().is_empty());
    let client_secret = match (inline, &secret_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                key("client_secret"),
                "set either client_secret or client_secret_file, not both",
            ))
        }
        (None, None) => {
            return Err(ConfigError::new(
                key("client_secret"),
                "missing: set client_secret_file (a mounted secret) or client_secret",
            ))
        }
        (Some(secret), None) => secret,
        (None, Some(path)) => read_secret_file(path).map_err(|m| {
            ConfigError::new(
                key("client_secret_file"),
                format!("{}: {m}", path.display()),
            )
        })?,
    };
    if client_secret.trim().is_empty() {
        return Err(ConfigError::new(
            key("client_secret_file"),
            "the file is empty",
        ));
    }
    let secret_key = if secret_file.is_some() {
        "client_secret_file"
    } else {
        "client_secret"
    };
    if is_placeholder(&client_secret) {
        return Err(ConfigError::new(key(secret_key), PLACEHOLDER_SECRET));
    }
    let next_inline = raw.next_client_secret.filter(|s| !s.is_empty());
    let next_file = raw
        .next_client_secret_file
        .filter(|p| !p.as_os_str().is_empty());
    let next_client_secret = match (next_inline, &next_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                key("next_client_secret"),
                "set either next_client_secret or next_client_secret_file, not both",
            ))
        }
        (None, None) => None,
        (Some(secret), None) => Some(secret),
        (None, Some(path)) => Some(read_secret_file(path).map_err(|m| {
            ConfigError::new(
                key("next_client_secret_file"),
                format!("{}: {m}", path.display()),
            )
        })?),
    }
    .filter(|s| !s.trim().is_empty());
    if next_client_secret.as_deref().is_some_and(is_placeholder) {
        let next_key = if next_file.is_some() {
            "next_client_secret_file"
        } else {
            "next_client_secret"
        };
        return Err(ConfigError::new(key(next_key), PLACEHOLDER_SECRET));
    }
    // A provider used only through the relay needs no list: `/token` accepts its callback_url.
    if raw.allowed_redirect_uris.is_empty() && raw.relay.is_none() {
        return Err(ConfigError::new(
            key("allowed_redirect_uris"),
            "is empty: list the exact redirect URIs your app registered (or configure a relay)",
        ));
    }
    for (i, uri) in raw.allowed_redirect_uris.iter().enumerate() {
        let entry_key = format!("{}[{i}]", key("allowed_redirect_uris"));
        if uri.is_empty() {
            return Err(ConfigError::new(entry_key, "is empty"));
        }
        if uri.contains('#') {
            return Err(ConfigError::new(
                entry_key,
                "contains a fragment ('#'); RFC 6749 §3.1.2 forbids them in redirect URIs",
            ));
        }
        if uri.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(ConfigError::new(
                entry_key,
                "contains whitespace or control characters",
            ));
        }
        if uri.contains('*') && !is_wildcard_port_entry(uri) {
            return Err(ConfigError::new(
                entry_key,
                "contains '*': only a loopback port may be a wildcard (RFC 8252 §7.3), as in \
                 http://127.0.0.1:*/callback, http://[::1]:*/callback or http://localhost:*/callback",
            ));
        }
    }
    let preset = match raw.preset.as_deref().filter(|p| !p.is_empty()) {
        Some(chosen) => preset(chosen).ok_or_else(|| {
            ConfigError::new(
                key("preset"),
                format!("unknown preset; use one of {}", preset_names()),
            )
        })?,
        None => implied_preset(name),
    };
    if preset.redirects == RedirectRule::ExactOnly {
        if let Some(i) = raw
            .allowed_redirect_uris
            .iter()
            .position(|uri| is_wildcard_port_entry(uri))
        {
            return Err(ConfigError::new(
                format!("{}[{i}]", key("allowed_redirect_uris")),
                format!(
                    "{} compares redirect URIs exactly: a wildcard port is not allowed with the {} preset",
                    preset.display_name, preset.name
                ),
            ));
        }
    }
    let token_url = match (raw.token_url, preset.token_url) {
        (Some(url), _) => upstream_url(&key("token_url"), &url)?,
        (None, Some(url)) => upstream_url(&key("token_url"), url)?,
        (None, None) => {
            return Err(ConfigError::new(
                key("token_url"),
                format!(
                    "required: there is no built-in preset named `{name}` (the generic preset has no endpoints)"
                ),
            ))
        }
    };
    let revoke_url = match (raw.revoke_url, preset.revoke_url) {
        (Some(url), _) => Some(upstream_url(&key("revoke_url"), &url)?),
        (None, Some(url)) => Some(upstream_url(&key("revoke_url"), url)?),
        (None, None) => None,
    };
    let timeout_secs = raw.timeout_secs.unwrap_or(10);
    if !TIMEOUT_RANGE_SECS.contains(&timeout_secs) {
        return Err(ConfigError::new(
            key("timeout_secs"),
            "must be between 1 and 60 seconds",
        ));
    }
    let ca_file = raw.ca_file.filter(|p| !p.as_os_str().is_empty());
    let ca_certificates = match &ca_file {
        Some(path) => CaCertificates::read(path)
            .map_err(|m| ConfigError::new(key("ca_file"), format!("{}: {m}", path.display())))?,
        None => CaCertificates::default(),
    };
    // The relay's own validation, keys named `providers.<name>.relay.*`.
    let relay = match raw.relay {
        Some(relay) => Some(relay.validate(name, preset.name)?),
        None => None,
    };
    Ok(ProviderSettings {
        name: name.to_owned(),
        display_name: if preset.display_name.is_empty() {
            capitalize(name)
        } else {
            preset.display_name.to_owned()
        },
        preset: preset.name.to_owned(),
        client_auth: raw.client_auth.unwrap_or_default(),
        revoke_style: preset.revoke_style,
        dialect: preset.dialect,
        redirects: preset.redirects,
        client_id,
        client_secret: ClientSecret::new(client_secret),
        client_secret_file: secret_file,
        next_client_secret: next_client_secret.map(ClientSecret::new),
        next_client_secret_file: next_file,
        allowed_redirect_uris: raw.allowed_redirect_uris,
        token_url,
        revoke_url,
        timeout: Duration::from_secs(timeout_secs),
        ca_file,
        ca_certificates,
        relay,
    })
}

/// Upstream URLs must be HTTPS, except plain HTTP to a loopback host (emulator, tests).
fn upstream_url(key: &str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value).map_err(|e| ConfigError::new(key, format!("not a URL: {e}")))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(ConfigError::new(
            key,
            "plain http:// is only allowed to a loopback host; use https://",
        )),
        _ => Err(ConfigError::new(key, "must be an https:// URL")),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn capitalize(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}
