//! Typed, layered settings: built-in defaults, then the TOML file, then `KICK_PROXY_<SECTION>__<KEY>`
//! environment overrides (figment). Validation happens once, here; every error names the key it is
//! about and never prints a secret. Nothing else in the crate reads raw configuration.

use crate::secret::ClientSecret;
use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

/// Prefix of the environment overrides: `KICK_PROXY_PROVIDERS__KICK__CLIENT_SECRET=…`.
pub const ENV_PREFIX: &str = "KICK_PROXY_";
/// The config file `serve` and `check-config` read when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "config/default.toml";
/// Allowed upstream deadlines, in seconds (contract: "a timeout outside 1..=60 s" is refused).
pub const TIMEOUT_RANGE_SECS: std::ops::RangeInclusive<u64> = 1..=60;
/// `server.max_header_bytes`: hyper's smallest read buffer up to 64 KiB.
const HEADER_BYTES_RANGE: std::ops::RangeInclusive<usize> = 8192..=65536;
/// `server.max_connections`, `server.admin_max_connections`.
const CONNECTIONS_RANGE: std::ops::RangeInclusive<usize> = 1..=1_000_000;

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
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The validated settings the application runs with.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// `[server]`: listener and connection limits.
    pub server: ServerSettings,
    /// `[log]`: log format and filter.
    pub log: LogSettings,
    /// `[replay]`: idempotent replay of successful exchanges and refreshes.
    pub replay: ReplaySettings,
    /// `[limits]`: load shedding and the upstream circuit breaker.
    pub limits: LimitSettings,
    /// `[rate_limit]`: per-client-IP token buckets.
    pub rate_limit: RateLimitSettings,
    /// `[providers.<name>]`: one entry per `{provider}` path segment.
    pub providers: BTreeMap<String, ProviderSettings>,
}

/// `[replay]`: after a successful exchange or refresh, an identical retry within the window gets
/// the identical response without a second upstream call. Entries are indexed and encrypted with
/// keys derived from the request's own secret inputs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplaySettings {
    /// Seconds a response is kept; 0 disables replay.
    pub window_secs: u64,
    /// At most this many entries.
    pub max_entries: usize,
    /// At most this many bytes of stored (encrypted) responses.
    pub max_bytes: usize,
}

impl Default for ReplaySettings {
    fn default() -> Self {
        Self {
            window_secs: 60,
            max_entries: 10_000,
            max_bytes: 16 * 1024 * 1024,
        }
    }
}

/// `[limits]`: answer 503 at once instead of queueing, and stop calling a failing provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    /// API requests served at once; more get 503 `temporarily_unavailable` immediately.
    pub max_concurrent_requests: usize,
    /// Provider calls in flight at once, all providers together; more get 503 immediately.
    pub max_upstream_calls: usize,
    /// Consecutive provider failures (timeouts, 5xx, connect errors) that open the breaker.
    pub breaker_failures: u32,
    /// While open, requests fail fast with 503 for this long; then one probe goes through.
    pub breaker_cooldown_secs: u64,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            max_concurrent_requests: 1024,
            max_upstream_calls: 256,
            breaker_failures: 5,
            breaker_cooldown_secs: 15,
        }
    }
}

/// One endpoint's token bucket.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bucket {
    /// Sustained requests per minute per client IP; 0 disables the limit.
    pub per_minute: u32,
    /// Requests allowed in a burst.
    pub burst: u32,
}

/// `[rate_limit]`: per client IP and endpoint. The client IP is the socket's peer unless the peer
/// is a trusted proxy, then the rightmost untrusted `X-Forwarded-For` hop.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSettings {
    /// CIDRs of proxies (ingress, load balancer) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
    /// `POST /api/v1/{provider}/token`.
    pub token: Bucket,
    /// `POST /api/v1/{provider}/refresh`.
    pub refresh: Bucket,
    /// `POST /api/v1/{provider}/revoke`.
    pub revoke: Bucket,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            trusted_proxies: Vec::new(),
            token: Bucket {
                per_minute: 30,
                burst: 10,
            },
            refresh: Bucket {
                per_minute: 60,
                burst: 20,
            },
            revoke: Bucket {
                per_minute: 30,
                burst: 10,
            },
        }
    }
}

/// `[server]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Public listener address.
    pub listen: SocketAddr,
    /// Admin listener for `GET /metrics` (Prometheus); off when absent. Keep it off the public
    /// network.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_listen: Option<SocketAddr>,
    /// Deadline for a client to send its request headers (slowloris guard).
    pub header_read_timeout_secs: u64,
    /// Deadline for a client to send its (at most 16 KiB) request body; 408 after it.
    pub body_read_timeout_secs: u64,
    /// The largest request line plus header block accepted on either listener, in bytes; a larger
    /// one gets 431 and the connection closes. Also caps each connection's read buffer.
    pub max_header_bytes: usize,
    /// Connections open at once on the public listener. When full, the connection idle the
    /// longest is closed to make room; with a request in flight on every one, a new connection
    /// is closed unanswered.
    pub max_connections: usize,
    /// The same for the admin listener.
    pub admin_max_connections: usize,
    /// On SIGTERM/SIGINT: seconds `/readyz` answers 503 while the listener still accepts, so a load
    /// balancer stops routing here before the socket closes.
    pub drain_delay_secs: u64,
    /// On SIGTERM/SIGINT: how long in-flight requests may take to finish once the listener closed.
    pub shutdown_grace_secs: u64,
    /// `[server.tls]`: terminate TLS in the binary (deployments without an ingress); off when
    /// absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSettings>,
    /// Browser origins (exact `scheme://host[:port]`) allowed by CORS, for webview clients; empty
    /// turns CORS off.
    pub cors_allowed_origins: Vec<String>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            admin_listen: None,
            header_read_timeout_secs: 5,
            body_read_timeout_secs: 5,
            max_header_bytes: 16 * 1024,
            max_connections: 2048,
            admin_max_connections: 64,
            drain_delay_secs: 0,
            shutdown_grace_secs: 20,
            cors_allowed_origins: Vec::new(),
            tls: None,
        }
    }
}

/// `[server.tls]`: PEM files, re-read on SIGHUP.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// Certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// JSON when stdout is not a terminal (containers), text when it is.
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

/// `[log]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `auto`, `json` or `text`.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `kick_oauth_proxy=debug`; `RUST_LOG` wins when set.
    pub filter: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Auto,
            filter: "info".to_owned(),
        }
    }
}

/// `[providers.<name>]` as written by the operator, before validation.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    client_id: Option<String>,
    client_secret: Option<String>,
    client_secret_file: Option<PathBuf>,
    next_client_secret: Option<String>,
    next_client_secret_file: Option<PathBuf>,
    #[serde(default)]
    allowed_redirect_uris: Vec<String>,
    token_url: Option<String>,
    revoke_url: Option<String>,
    timeout_secs: Option<u64>,
    preset: Option<String>,
    client_auth: Option<ClientAuth>,
    ca_file: Option<PathBuf>,
    // Relay (issue #16): `[providers.<name>.relay]`, validated by `crate::relay::settings`.
    relay: Option<crate::relay::settings::RelaySettings>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    #[serde(default)]
    server: ServerSettings,
    #[serde(default)]
    log: LogSettings,
    #[serde(default)]
    replay: ReplaySettings,
    #[serde(default)]
    limits: LimitSettings,
    #[serde(default)]
    rate_limit: RateLimitSettings,
    #[serde(default)]
    providers: BTreeMap<String, RawProvider>,
}

/// How the proxy authenticates itself at the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// `client_id` and `client_secret` in the form body (Kick, Twitch; the default).
    #[default]
    ClientSecretPost,
    /// HTTP Basic `client_id:client_secret` (each form-urlencoded first), nothing in the body.
    ClientSecretBasic,
}

/// How the provider's revocation endpoint wants the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeStyle {
    /// Kick: `POST {revoke_url}?token=…&token_hint_type=…`, empty body, no client authentication.
    KickQuery,
    /// Twitch: RFC 7009 form body `client_id`, `token` (and `token_type_hint`), no secret.
    FormClientId,
    /// Google: form body `token` only.
    FormTokenOnly,
    /// RFC 7009 §2.1: form body `token`, `token_type_hint`, plus the configured client auth.
    Rfc7009,
}

/// What a named preset brings: endpoints, the name in the 502 text, the revocation style.
struct Preset {
    name: &'static str,
    display_name: &'static str,
    token_url: Option<&'static str>,
    revoke_url: Option<&'static str>,
    revoke_style: RevokeStyle,
}

/// The built-in presets, by name.
pub const PRESET_NAMES: [&str; 4] = ["kick", "twitch", "google", "generic"];

fn preset(name: &str) -> Option<Preset> {
    match name {
        "kick" => Some(Preset {
            name: "kick",
            display_name: "Kick",
            token_url: Some("https://id.kick.com/oauth/token"),
            revoke_url: Some("https://id.kick.com/oauth/revoke"),
            revoke_style: RevokeStyle::KickQuery,
        }),
        "twitch" => Some(Preset {
            name: "twitch",
            display_name: "Twitch",
            token_url: Some("https://id.twitch.tv/oauth2/token"),
            revoke_url: Some("https://id.twitch.tv/oauth2/revoke"),
            revoke_style: RevokeStyle::FormClientId,
        }),
        "google" => Some(Preset {
            name: "google",
            display_name: "Google",
            token_url: Some("https://oauth2.googleapis.com/token"),
            revoke_url: Some("https://oauth2.googleapis.com/revoke"),
            revoke_style: RevokeStyle::FormTokenOnly,
        }),
        "generic" => Some(Preset {
            name: "generic",
            display_name: "",
            token_url: None,
            revoke_url: None,
            revoke_style: RevokeStyle::Rfc7009,
        }),
        _ => None,
    }
}

/// One validated provider. Its `Serialize` is `check-config`'s printout of the table: see
/// [`Settings::redacted_toml`].
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// The `{provider}` path segment and config table name.
    pub name: String,
    /// Name used in the 502 text ("Failed to communicate with Kick OAuth server"): the preset's
    /// (`Kick`, `Twitch`, `Google`), else the table name capitalised.
    pub display_name: String,
    /// The preset in force: `preset = "…"`, else the table name when it is one, else `generic`.
    pub preset: String,
    /// How the proxy authenticates at the token endpoint.
    pub client_auth: ClientAuth,
    /// How the revocation endpoint wants the token (from the preset).
    pub revoke_style: RevokeStyle,
    /// OAuth client id (public).
    pub client_id: String,
    /// OAuth client secret, from `client_secret` or `client_secret_file`.
    pub client_secret: ClientSecret,
    /// Where the secret was read from, when it came from a file (else it was set inline).
    pub client_secret_file: Option<PathBuf>,
    /// During a rotation: the secret the provider will accept next, tried once when the current
    /// one is answered `invalid_client`, and then promoted.
    pub next_client_secret: Option<ClientSecret>,
    /// Where the next secret was read from, when it came from a file.
    pub next_client_secret_file: Option<PathBuf>,
    /// `redirect_uri` values accepted byte for byte.
    pub allowed_redirect_uris: Vec<String>,
    /// The provider's token endpoint (RFC 6749 §3.2).
    pub token_url: Url,
    /// The provider's revocation endpoint (RFC 7009 §2), if it has one.
    pub revoke_url: Option<Url>,
    /// One deadline for connect, send and the whole response body.
    pub timeout: Duration,
    /// PEM file of extra CA certificates the upstream client trusts besides its built-in roots.
    pub ca_file: Option<PathBuf>,
    /// The certificates read from `ca_file` at validation (empty without one).
    pub ca_certificates: CaCertificates,
    /// `[providers.<name>.relay]`: the stateless loopback authorize relay, when configured.
    pub relay: Option<crate::relay::settings::Relay>,
}

/// What `check-config` prints in place of an inline secret.
const REDACTED: &str = "[redacted]";

/// The table as an operator writes it, so the printout loads again: each secret under the one key
/// it was set with, a file's path as itself, an inline secret as `[redacted]`; the preset's
/// endpoints written out.
impl Serialize for ProviderSettings {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("ProviderSettings", 11)?;
        st.serialize_field("preset", &self.preset)?;
        st.serialize_field("client_auth", &self.client_auth)?;
        st.serialize_field("client_id", &self.client_id)?;
        match &self.client_secret_file {
            Some(path) => st.serialize_field("client_secret_file", path)?,
            None => st.serialize_field("client_secret", REDACTED)?,
        }
        match (&self.next_client_secret_file, &self.next_client_secret) {
            (Some(path), _) => st.serialize_field("next_client_secret_file", path)?,
            (None, Some(_)) => st.serialize_field("next_client_secret", REDACTED)?,
            (None, None) => {}
        }
        st.serialize_field("allowed_redirect_uris", &self.allowed_redirect_uris)?;
        st.serialize_field("token_url", &self.token_url)?;
        if let Some(url) = &self.revoke_url {
            st.serialize_field("revoke_url", url)?;
        }
        st.serialize_field("timeout_secs", &self.timeout.as_secs())?;
        if let Some(path) = &self.ca_file {
            st.serialize_field("ca_file", path)?;
        }
        // Relay (issue #16).
        if let Some(relay) = &self.relay {
            st.serialize_field("relay", relay)?;
        }
        st.end()
    }
}

/// Extra trust anchors for a provider's upstream client, from `ca_file`: parsed and checked once,
/// when the configuration is validated, so building the client cannot fail on them later.
/// `Debug` shows only how many there are.
#[derive(Clone, Default)]
pub struct CaCertificates {
    /// DER of each certificate, in file order: what [`PartialEq`] compares (a reload can tell
    /// whether the file's content changed).
    der: Vec<Vec<u8>>,
    /// The same certificates, ready for `reqwest::ClientBuilder::add_root_certificate`.
    certificates: Vec<reqwest::Certificate>,
}

impl CaCertificates {
    /// Reads a PEM bundle: every `CERTIFICATE` block, each one usable as a trust anchor, at least
    /// one. Other blocks (a private key, say) are ignored. Messages never quote the file.
    fn read(path: &Path) -> Result<Self, String> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::CertificateDer;
        let bytes = read_small_file(path, MAX_CA_FILE)?;
        let mut ca = Self::default();
        for (i, block) in CertificateDer::pem_slice_iter(&bytes).enumerate() {
            let n = i + 1;
            let der = block.map_err(|_| format!("certificate {n} is not valid PEM"))?;
            // The check `reqwest` makes when it builds the client (webpki trust-anchor parsing).
            rustls::RootCertStore::empty()
                .add(der.clone())
                .map_err(|_| format!("certificate {n} is not a usable X.509 certificate"))?;
            let certificate = reqwest::Certificate::from_der(der.as_ref())
                .map_err(|e| format!("certificate {n}: {e}"))?;
            ca.der.push(der.as_ref().to_vec());
            ca.certificates.push(certificate);
        }
        if ca.der.is_empty() {
            return Err(
                "no certificate in the file (expected PEM `BEGIN CERTIFICATE` blocks)".to_owned(),
            );
        }
        Ok(ca)
    }

    /// The certificates, in file order.
    pub fn certificates(&self) -> &[reqwest::Certificate] {
        &self.certificates
    }

    /// How many certificates there are.
    pub fn len(&self) -> usize {
        self.der.len()
    }

    /// True without a `ca_file`.
    pub fn is_empty(&self) -> bool {
        self.der.is_empty()
    }
}

impl PartialEq for CaCertificates {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}

impl Eq for CaCertificates {}

impl std::fmt::Debug for CaCertificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CaCertificates({} certificates)", self.der.len())
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
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new("--config", format!("cannot read {}: {e}", path.display()))
        })?;
        Self::from_toml_with_env(&text, env)
    }

    /// Parses TOML text, applies the given `KICK_PROXY_*` variables and validates.
    pub fn from_toml_with_env(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        RawSettings::from_toml_with_env(text, env)?.validate()
    }

    /// The effective configuration as TOML (`check-config`'s printout), in a form that loads
    /// again with the same settings: each client secret under the key it was set with, a file's
    /// path as itself and an inline secret as `[redacted]`.
    pub fn redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

impl RawSettings {
    /// The TOML text with the `KICK_PROXY_*` overrides applied, before validation.
    fn from_toml_with_env(
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

impl ServerSettings {
    /// `[server]` of the config at `path` with the environment's overrides, as `serve` would run
    /// it, without validating the providers (no secret file is read): what `healthcheck` needs
    /// to find the listener, even while a reload is failing on a bad secret file.
    pub fn load_with_env(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new("--config", format!("cannot read {}: {e}", path.display()))
        })?;
        Ok(RawSettings::from_toml_with_env(&text, env)?.server)
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
    // Relay (issue #16): `providers.<name>.relay.targets`.
    "targets",
];
/// Keys whose environment value is a number (besides every `*_secs`).
const NUMBER_KEYS: [&str; 10] = [
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

impl RawSettings {
    fn validate(self) -> Result<Settings, ConfigError> {
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
    if raw.allowed_redirect_uris.is_empty() {
        return Err(ConfigError::new(
            key("allowed_redirect_uris"),
            "is empty: list the exact redirect URIs your app registered",
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
                format!("unknown preset; use one of {}", PRESET_NAMES.join(", ")),
            )
        })?,
        None => preset(name)
            .filter(|p| p.name != "generic")
            .or_else(|| preset("generic"))
            .expect("the generic preset exists"),
    };
    if preset.revoke_style == RevokeStyle::KickQuery {
        if let Some(i) = raw
            .allowed_redirect_uris
            .iter()
            .position(|uri| is_wildcard_port_entry(uri))
        {
            return Err(ConfigError::new(
                format!("{}[{i}]", key("allowed_redirect_uris")),
                "Kick compares redirect URIs exactly: a wildcard port is not allowed with the kick preset",
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
    // Relay (issue #16): its own validation, keys named `providers.<name>.relay.*`.
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

/// How every placeholder in the shipped examples begins, where the operator's own value goes:
/// `replace-with-your-kick-client-id` (`config/default.toml`, `deploy/kubernetes/configmap.yaml`),
/// `replace-with-your-kick-client-secret` (`deploy/kubernetes/secret.example.yaml`) and the
/// commented-out Twitch and Google ones. A proxy started with one passes every probe and answers
/// every login 502 (the provider rejects the client), so start-up refuses it instead.
pub const PLACEHOLDER_PREFIX: &str = "replace-with-";

/// The refusal for a client secret that is still a placeholder; the value itself is not quoted.
const PLACEHOLDER_SECRET: &str =
    "is still the shipped placeholder: put your app's client secret from the provider's developer console there";

/// True for a value still holding one of the shipped placeholders ([`PLACEHOLDER_PREFIX`]).
pub fn is_placeholder(value: &str) -> bool {
    value
        .trim()
        .get(..PLACEHOLDER_PREFIX.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(PLACEHOLDER_PREFIX))
}

/// Loopback redirect prefixes whose port may be `*` (RFC 8252 §7.3).
pub const WILDCARD_PORT_PREFIXES: [&str; 3] =
    ["http://127.0.0.1:", "http://[::1]:", "http://localhost:"];

/// True when `entry` is a loopback redirect with a wildcard port: one of
/// [`WILDCARD_PORT_PREFIXES`], then `*/`, and no other `*`.
pub fn is_wildcard_port_entry(entry: &str) -> bool {
    WILDCARD_PORT_PREFIXES.iter().any(|prefix| {
        entry
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix("*/"))
            .is_some_and(|rest| !rest.contains('*'))
    })
}

/// Reads a mounted secret; one trailing newline (as `echo` and editors leave) is not part of it.
/// Largest secret file read (a client secret is tens of bytes).
const MAX_SECRET_FILE: u64 = 64 * 1024;
/// Largest `ca_file` read (Mozilla's whole root bundle is about 220 KB).
const MAX_CA_FILE: u64 = 1024 * 1024;

/// Reads a regular file of at most `limit` bytes. A FIFO, a device (`/dev/zero`) or a directory
/// is refused instead of blocking start-up or a reload, or filling memory.
fn read_small_file(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let cannot = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::PermissionDenied => {
            format!("cannot read: permission denied{}", reader_identity())
        }
        kind => format!("cannot read: {kind}"),
    };
    let metadata = std::fs::metadata(path).map_err(cannot)?;
    if !metadata.is_file() {
        return Err("not a regular file".to_owned());
    }
    if metadata.len() > limit {
        return Err(format!("larger than {limit} bytes"));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(limit + 1).read_to_end(&mut bytes))
        .map_err(cannot)?;
    if bytes.len() as u64 > limit {
        return Err(format!("larger than {limit} bytes"));
    }
    Ok(bytes)
}

/// ` (this process runs as uid U, gid G: …)`, for a file it may not read: in the container that
/// is uid 65532, and a root-owned 0600 file on the host is what it meets. Empty where
/// `/proc/self/status` is not there to say.
fn reader_identity() -> String {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return String::new();
    };
    // `Uid:\treal\teffective\tsaved\tfs`: files are opened with the effective ids.
    let effective = |field: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|ids| ids.split_whitespace().nth(1))
            .map(str::to_owned)
    };
    match (effective("Uid:"), effective("Gid:")) {
        (Some(uid), Some(gid)) => format!(
            " (this process runs as uid {uid}, gid {gid}: the file must be readable by one of them, \
             and its directories searchable)"
        ),
        _ => String::new(),
    }
}

pub(crate) fn read_secret_file(path: &Path) -> Result<String, String> {
    let mut text = String::from_utf8(read_small_file(path, MAX_SECRET_FILE)?)
        .map_err(|_| "cannot read: not UTF-8 text".to_owned())?;
    while text.ends_with('\n') || text.ends_with('\r') {
        text.pop();
    }
    Ok(text)
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

impl Serialize for RawSettings {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("RawSettings", 5)?;
        st.serialize_field("server", &self.server)?;
        st.serialize_field("log", &self.log)?;
        st.serialize_field("replay", &self.replay)?;
        st.serialize_field("limits", &self.limits)?;
        st.serialize_field("rate_limit", &self.rate_limit)?;
        st.end()
    }
}
