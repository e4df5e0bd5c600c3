//! The settings types: what the operator writes (`Raw*`, private to this module's loader and
//! validator) and what the application runs with, plus `check-config`'s printout (a config that
//! loads again: each secret under the key it was set with, an inline secret as `[redacted]`).

use super::files::CaCertificates;
use super::state::{StateConfig, StateSettings};
use crate::providers::{Dialect, RedirectRule, RevokeStyle};
use crate::secret::ClientSecret;
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

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
    /// `[state]`: the store replicas share (memory: none).
    pub state: StateConfig,
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
    /// Deadline for a client to send its request headers (slowloris guard), to start its next
    /// request on a kept-alive connection, and to take any of a response its socket blocked on.
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
pub(super) struct RawProvider {
    pub(super) client_id: Option<String>,
    pub(super) client_secret: Option<String>,
    pub(super) client_secret_file: Option<PathBuf>,
    pub(super) next_client_secret: Option<String>,
    pub(super) next_client_secret_file: Option<PathBuf>,
    #[serde(default)]
    pub(super) allowed_redirect_uris: Vec<String>,
    pub(super) token_url: Option<String>,
    pub(super) revoke_url: Option<String>,
    pub(super) timeout_secs: Option<u64>,
    pub(super) preset: Option<String>,
    pub(super) client_auth: Option<ClientAuth>,
    pub(super) ca_file: Option<PathBuf>,
    /// `[providers.<name>.relay]`, validated in [`super::relay`].
    pub(super) relay: Option<super::relay::RelaySettings>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSettings {
    #[serde(default)]
    pub(super) server: ServerSettings,
    #[serde(default)]
    pub(super) log: LogSettings,
    #[serde(default)]
    pub(super) replay: ReplaySettings,
    #[serde(default)]
    pub(super) limits: LimitSettings,
    #[serde(default)]
    pub(super) rate_limit: RateLimitSettings,
    #[serde(default)]
    pub(super) providers: BTreeMap<String, RawProvider>,
    #[serde(default)]
    pub(super) state: StateSettings,
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
    /// How its error answers are written (from the preset).
    pub dialect: Dialect,
    /// What its redirect URIs may be (from the preset).
    pub redirects: RedirectRule,
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
    pub relay: Option<super::relay::Relay>,
}

impl ProviderSettings {
    /// The `redirect_uri` values `/token` accepts: `allowed_redirect_uris`, plus the relay's
    /// `callback_url` when a relay is configured (the relayed code was issued for it).
    pub fn accepted_redirect_uris(&self) -> Vec<String> {
        let mut accepted = self.allowed_redirect_uris.clone();
        if let Some(relay) = &self.relay {
            if !accepted.contains(&relay.callback_url) {
                accepted.push(relay.callback_url.clone());
            }
        }
        accepted
    }
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
        if let Some(relay) = &self.relay {
            st.serialize_field("relay", relay)?;
        }
        st.end()
    }
}

impl Serialize for RawSettings {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("RawSettings", 6)?;
        st.serialize_field("server", &self.server)?;
        st.serialize_field("log", &self.log)?;
        st.serialize_field("replay", &self.replay)?;
        st.serialize_field("limits", &self.limits)?;
        st.serialize_field("rate_limit", &self.rate_limit)?;
        st.serialize_field("state", &self.state)?;
        st.end()
    }
}
