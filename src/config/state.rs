//! `[state]`: where replicas share replay, single-flight and rate limits.
//!
//! ```toml
//! [state]
//! backend = "redis"                          # "memory" (default): per process, nothing to run
//! secret_file = "/run/secrets/state_secret"  # or secret = "…"; ≥ 32 bytes, the same on every replica
//! # key_prefix = "kop:v1:"
//! # op_timeout_ms = 100                      # per store operation, 1..=5000
//!
//! [state.redis]
//! url = "rediss://redis.internal:6380"       # redis://, rediss://, valkey://, valkeys://,
//!                                            # redis+unix:///path, valkey+unix:///path
//! # username = "kick-proxy"                  # Redis 6+ ACL user
//! # password_file = "/run/secrets/redis_password"
//! # ca_file = "/etc/kick-proxy/redis-ca.pem" # TLS only: the CA that signed the server's certificate
//! ```
//!
//! A password or user name inside the URL is refused: the password comes from a file (it never
//! appears in the effective config, the process list or a log), the user name from its own key.
//! A URL fragment (`#insecure`, which turns off certificate checks) is refused too. With
//! `ca_file`, the server's certificate must chain to one of its certificates (a private CA);
//! without it, to the operating system's trust store.
//!
//! [`StateSettings::validate`] checks all of it once and returns a [`StateConfig`]; every error
//! names its key (`state.redis.url`, …) and never quotes a secret.

use super::files::{read_ca_pem, read_secret_file};
use super::{is_placeholder, ConfigError};
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

/// Default `state.key_prefix`.
pub const DEFAULT_KEY_PREFIX: &str = "kop:v1:";
/// Allowed `state.op_timeout_ms`.
pub const OP_TIMEOUT_RANGE_MS: std::ops::RangeInclusive<u64> = 1..=5000;
/// The shortest state secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;
/// The longest key prefix accepted, in bytes.
const MAX_PREFIX_BYTES: usize = 64;

/// Which store the replicas share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Nothing shared: each process keeps its own replay, flights and buckets (today's
    /// behaviour, right for a single replica).
    #[default]
    Memory,
    /// Redis or Valkey, shared by every replica.
    Redis,
}

/// `[state]` as written by the operator.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateSettings {
    /// `memory` (default) or `redis`.
    pub backend: BackendKind,
    /// The state secret inline (prefer `secret_file`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<StateSecret>,
    /// A file holding the state secret (a mounted Kubernetes Secret), trailing newlines ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// Prefix of every key in the store, so several deployments can share one Redis.
    pub key_prefix: String,
    /// Deadline of one store operation, in milliseconds; past it the request goes on per process.
    pub op_timeout_ms: u64,
    /// `[state.redis]`: required with `backend = "redis"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisSettings>,
}

impl Default for StateSettings {
    fn default() -> Self {
        Self {
            backend: BackendKind::Memory,
            secret: None,
            secret_file: None,
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            op_timeout_ms: 100,
            redis: None,
        }
    }
}

/// `[state.redis]` as written by the operator.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// Where the server is, without credentials.
    #[serde(default, serialize_with = "serialize_url_redacted")]
    pub url: Option<String>,
    /// ACL user name (Redis 6+); the default user when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// A file holding the password (`AUTH`), trailing newlines ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// PEM file of the CA certificates the server's certificate must chain to (`rediss://`,
    /// `valkeys://` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("username", &self.username)
            .field("password_file", &self.password_file)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// The state secret: the same on every replica, at least [`MIN_SECRET_BYTES`]. Prints and
/// serializes as `[redacted]`; zeroed on drop.
#[derive(Clone)]
pub struct StateSecret(SecretSlice<u8>);

impl StateSecret {
    /// Wraps secret bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(SecretSlice::from(bytes))
    }

    /// The bytes, for key derivation only (`state::keys`).
    pub fn expose(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

impl fmt::Debug for StateSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StateSecret([redacted])")
    }
}

impl Serialize for StateSecret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for StateSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| Self::from_bytes(s.into_bytes()))
    }
}

/// The Redis password. Prints as `[redacted]`.
#[derive(Clone)]
struct RedisPassword(SecretString);

impl fmt::Debug for RedisPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RedisPassword([redacted])")
    }
}

/// Validated `[state]`. Serializes as the settings it came from (`check-config`: secrets
/// redacted, a file's path as itself).
#[derive(Debug, Clone, Default)]
pub struct StateConfig {
    settings: StateSettings,
    secret: Option<StateSecret>,
    redis: Option<RedisConfig>,
}

impl Serialize for StateConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.settings.serialize(s)
    }
}

impl StateConfig {
    /// `"memory"` or `"redis"`.
    pub fn backend(&self) -> &'static str {
        if self.redis.is_some() {
            "redis"
        } else {
            "memory"
        }
    }

    /// The state secret replicas derive shared keys from; `None` without one (the memory
    /// backend keeps its random per-process salt).
    pub fn secret(&self) -> Option<&StateSecret> {
        self.secret.as_ref()
    }

    /// The Redis settings, with `backend = "redis"`.
    pub fn redis(&self) -> Option<&RedisConfig> {
        self.redis.as_ref()
    }

    /// The settings as written, for comparing a reload (every `[state]` key needs a restart).
    pub fn settings(&self) -> &StateSettings {
        &self.settings
    }

    /// The `[state]` keys whose value differs in `new`, as written in the file: the store and the
    /// keys derived from the secret are built at start-up, so each of these needs a restart. The
    /// secret is compared by value (a rotated file with the same path counts), never printed.
    pub fn changed_keys(&self, new: &Self) -> Vec<&'static str> {
        let (old_s, new_s) = (&self.settings, &new.settings);
        let redis = |s: &StateSettings| {
            s.redis.as_ref().map(|r| {
                (
                    r.url.clone(),
                    r.username.clone(),
                    r.password_file.clone(),
                    r.ca_file.clone(),
                )
            })
        };
        [
            ("state.backend", old_s.backend != new_s.backend),
            (
                "state.secret",
                self.secret.as_ref().map(StateSecret::expose)
                    != new.secret.as_ref().map(StateSecret::expose),
            ),
            ("state.key_prefix", old_s.key_prefix != new_s.key_prefix),
            (
                "state.op_timeout_ms",
                old_s.op_timeout_ms != new_s.op_timeout_ms,
            ),
            ("state.redis", redis(old_s) != redis(new_s)),
        ]
        .into_iter()
        .filter_map(|(key, changed)| changed.then_some(key))
        .collect()
    }
}

/// Validated `[state.redis]`, with the key prefix and the operation timeout.
#[derive(Clone)]
pub struct RedisConfig {
    connection: redis::ConnectionInfo,
    /// PEM bundle of the trust anchors for the server's certificate (`ca_file`).
    ca_pem: Option<Vec<u8>>,
    key_prefix: String,
    op_timeout: Duration,
    /// The URL without credentials, for messages.
    display: String,
}

impl RedisConfig {
    /// The server's URL as configured (it holds no credentials).
    pub fn url(&self) -> &str {
        &self.display
    }

    /// `state.key_prefix`.
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    /// `state.op_timeout_ms`.
    pub fn op_timeout(&self) -> Duration {
        self.op_timeout
    }

    /// Where and how to connect (credentials included: never print it).
    pub fn connection(&self) -> &redis::ConnectionInfo {
        &self.connection
    }

    /// The PEM bundle from `ca_file`, if set.
    pub fn ca_pem(&self) -> Option<&[u8]> {
        self.ca_pem.as_deref()
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.display)
            .field("username", &self.connection.redis_settings().username())
            .field(
                "password",
                &self
                    .connection
                    .redis_settings()
                    .password()
                    .map(|_| "[redacted]"),
            )
            .field("ca_file", &self.ca_pem.as_ref().map(|_| "set"))
            .field("key_prefix", &self.key_prefix)
            .field("op_timeout", &self.op_timeout)
            .finish()
    }
}

fn err(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_owned(),
        message: message.into(),
    }
}

impl StateSettings {
    /// Checks the settings and reads the files they name. Errors name the key.
    pub fn validate(&self) -> Result<StateConfig, ConfigError> {
        if !OP_TIMEOUT_RANGE_MS.contains(&self.op_timeout_ms) {
            return Err(err(
                "state.op_timeout_ms",
                "must be between 1 and 5000 milliseconds",
            ));
        }
        validate_prefix(&self.key_prefix)?;
        let secret = self.read_secret()?;
        let redis = match self.backend {
            BackendKind::Memory => None,
            BackendKind::Redis => {
                if secret.is_none() {
                    return Err(err(
                        "state.secret_file",
                        "missing: with backend = \"redis\" replicas derive shared keys from a \
                         common secret; set state.secret_file (a mounted secret of at least 32 \
                         random bytes) or state.secret",
                    ));
                }
                let redis = self.redis.as_ref().ok_or_else(|| {
                    err(
                        "state.redis.url",
                        "missing: backend = \"redis\" needs [state.redis] url",
                    )
                })?;
                Some(redis.validate(&self.key_prefix, self.op_timeout_ms)?)
            }
        };
        Ok(StateConfig {
            settings: self.clone(),
            secret,
            redis,
        })
    }

    fn read_secret(&self) -> Result<Option<StateSecret>, ConfigError> {
        // An empty value counts as unset, so an environment variable can blank out a file's key.
        let inline = self.secret.as_ref().filter(|s| !s.expose().is_empty());
        let file = self
            .secret_file
            .as_ref()
            .filter(|p| !p.as_os_str().is_empty());
        let (secret, key) = match (inline, file) {
            (Some(_), Some(_)) => {
                return Err(err(
                    "state.secret",
                    "set either state.secret or state.secret_file, not both",
                ))
            }
            (None, None) => return Ok(None),
            (Some(secret), None) => (secret.clone(), "state.secret"),
            (None, Some(path)) => (
                StateSecret::from_bytes(
                    read_secret_file(path)
                        .map_err(|m| err("state.secret_file", format!("{}: {m}", path.display())))?
                        .into_bytes(),
                ),
                "state.secret_file",
            ),
        };
        if std::str::from_utf8(secret.expose()).is_ok_and(is_placeholder) {
            return Err(err(
                key,
                "is still the shipped placeholder: put at least 32 random bytes there, the \
                 same on every replica (`head -c 32 /dev/urandom | base64`)",
            ));
        }
        if secret.expose().len() < MIN_SECRET_BYTES {
            return Err(err(
                key,
                format!(
                    "must be at least {MIN_SECRET_BYTES} bytes (for example the output of \
                     `head -c 32 /dev/urandom | base64`)"
                ),
            ));
        }
        Ok(Some(secret))
    }
}

impl RedisSettings {
    fn validate(&self, key_prefix: &str, op_timeout_ms: u64) -> Result<RedisConfig, ConfigError> {
        let raw = self
            .url
            .as_deref()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| err("state.redis.url", "missing"))?;
        let url = check_url(raw).map_err(|m| err("state.redis.url", m))?;
        let tls = matches!(url.scheme(), "rediss" | "valkeys");
        let username = match self.username.as_deref().filter(|u| !u.is_empty()) {
            Some(name) if name.bytes().any(|b| b.is_ascii_control() || b == b' ') => {
                return Err(err(
                    "state.redis.username",
                    "contains whitespace or control characters",
                ))
            }
            other => other,
        };
        let password = match self
            .password_file
            .as_ref()
            .filter(|p| !p.as_os_str().is_empty())
        {
            Some(path) => {
                let text = read_secret_file(path).map_err(|m| {
                    err(
                        "state.redis.password_file",
                        format!("{}: {m}", path.display()),
                    )
                })?;
                if text.is_empty() {
                    return Err(err(
                        "state.redis.password_file",
                        format!("{}: the file is empty", path.display()),
                    ));
                }
                Some(RedisPassword(SecretString::from(text)))
            }
            None => None,
        };
        let ca_pem = match self.ca_file.as_ref().filter(|p| !p.as_os_str().is_empty()) {
            Some(_) if !tls => {
                return Err(err(
                    "state.redis.ca_file",
                    "only used with rediss:// or valkeys:// URLs",
                ))
            }
            Some(path) => Some(
                read_ca_pem(path)
                    .map_err(|m| err("state.redis.ca_file", format!("{}: {m}", path.display())))?,
            ),
            None => None,
        };
        let connection = {
            use redis::IntoConnectionInfo;
            let info = url.as_str().into_connection_info().map_err(|e| {
                err(
                    "state.redis.url",
                    format!("cannot be used: {}", e.category()),
                )
            })?;
            let mut redis_settings = info.redis_settings().clone().set_skip_set_lib_name();
            if let Some(name) = username {
                redis_settings = redis_settings.set_username(name);
            }
            if let Some(password) = &password {
                redis_settings = redis_settings.set_password(password.0.expose_secret());
            }
            info.set_redis_settings(redis_settings)
        };
        Ok(RedisConfig {
            connection,
            ca_pem,
            key_prefix: key_prefix.to_owned(),
            op_timeout: Duration::from_millis(op_timeout_ms),
            display: url.to_string(),
        })
    }
}

/// The schemes redis-rs connects to.
const SCHEMES: [&str; 6] = [
    "redis",
    "rediss",
    "valkey",
    "valkeys",
    "redis+unix",
    "valkey+unix",
];

fn check_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
    if !SCHEMES.contains(&url.scheme()) {
        return Err(
            "must be a redis://, rediss://, valkey://, valkeys://, redis+unix:// or \
             valkey+unix:// URL"
                .to_owned(),
        );
    }
    if url.password().is_some() {
        return Err(
            "holds a password: put it in a file named by state.redis.password_file".to_owned(),
        );
    }
    if !url.username().is_empty() {
        return Err("holds a user name: set state.redis.username instead".to_owned());
    }
    for (name, _) in url.query_pairs() {
        match name.as_ref() {
            "pass" | "password" => {
                return Err(
                    "holds a password: put it in a file named by state.redis.password_file"
                        .to_owned(),
                )
            }
            "user" | "username" => {
                return Err("holds a user name: set state.redis.username instead".to_owned())
            }
            _ => {}
        }
    }
    if url.fragment().is_some() {
        return Err(
            "has a fragment (#…); certificate checks cannot be turned off, use \
             state.redis.ca_file for a private CA"
                .to_owned(),
        );
    }
    if url.scheme().ends_with("+unix") {
        if url.path().is_empty() || url.path() == "/" {
            return Err("names no socket path (redis+unix:///run/redis/redis.sock)".to_owned());
        }
    } else if url.host().is_none() {
        return Err("names no host".to_owned());
    }
    Ok(url)
}

/// The URL for display, with any password replaced (used before validation refuses it).
fn redact_url(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("[redacted]"));
            }
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if matches!(k.as_ref(), "pass" | "password") {
                        "[redacted]".to_owned()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            if !pairs.is_empty() {
                url.query_pairs_mut().clear().extend_pairs(pairs);
            }
            url.to_string()
        }
        // Not a URL: it cannot be told what part is a password.
        Err(_) => "[unparsable URL]".to_owned(),
    }
}

fn serialize_url_redacted<S: Serializer>(url: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => s.serialize_str(&redact_url(url)),
        None => s.serialize_none(),
    }
}

fn validate_prefix(prefix: &str) -> Result<(), ConfigError> {
    let key = "state.key_prefix";
    if prefix.is_empty() || prefix.len() > MAX_PREFIX_BYTES {
        return Err(err(key, format!("must be 1 to {MAX_PREFIX_BYTES} bytes")));
    }
    if !prefix.bytes().all(|b| b.is_ascii_graphic()) || prefix.contains(['{', '}']) {
        return Err(err(
            key,
            "must be printable ASCII without spaces or braces (braces are Redis Cluster hash tags)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const SECRET: &str = "canary-state-secret-0123456789abcdef";

    fn file(content: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(content).expect("write");
        f
    }

    fn redis(url: &str) -> StateSettings {
        StateSettings {
            backend: BackendKind::Redis,
            secret: Some(StateSecret::from_bytes(SECRET.into())),
            redis: Some(RedisSettings {
                url: Some(url.to_owned()),
                ..RedisSettings::default()
            }),
            ..StateSettings::default()
        }
    }

    fn key_of(settings: &StateSettings) -> String {
        settings.validate().expect_err("refused").key
    }

    #[test]
    fn the_default_is_memory_and_needs_nothing() {
        let config = StateSettings::default().validate().expect("valid");
        assert_eq!(config.backend(), "memory");
        assert!(config.secret().is_none());
        assert!(config.redis().is_none());
        let parsed: StateSettings = toml::from_str("").expect("empty table");
        assert_eq!(parsed.key_prefix, "kop:v1:");
        assert_eq!(parsed.op_timeout_ms, 100);
        assert_eq!(parsed.backend, BackendKind::Memory);
    }

    #[test]
    fn every_supported_url_is_accepted() {
        for url in [
            "redis://127.0.0.1:6379",
            "redis://redis.internal/2",
            "rediss://redis.internal:6380",
            "valkey://[::1]:6379",
            "valkeys://valkey.internal",
            "redis+unix:///run/redis/redis.sock",
            "valkey+unix:///run/valkey.sock?db=1",
        ] {
            let config = redis(url)
                .validate()
                .unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(config.backend(), "redis");
            assert!(config.secret().is_some());
            assert_eq!(config.redis().map(RedisConfig::url), Some(url));
        }
    }

    #[test]
    fn credentials_in_the_url_are_refused_and_never_echoed() {
        for url in [
            "redis://:canary-pw@127.0.0.1:6379",
            "redis://default:canary-pw@127.0.0.1:6379",
            "redis+unix:///run/redis.sock?pass=canary-pw",
        ] {
            let error = redis(url).validate().expect_err("refused");
            assert_eq!(error.key, "state.redis.url");
            assert!(error.message.contains("password_file"), "{error}");
            assert!(!error.to_string().contains("canary"), "{error}");
            let debug = format!("{:?}", redis(url));
            assert!(!debug.contains("canary"), "{debug}");
            let toml = toml::to_string(&redis(url)).expect("serializes");
            assert!(!toml.contains("canary"), "{toml}");
        }
        let error = redis("redis://someone@127.0.0.1")
            .validate()
            .expect_err("refused");
        assert!(error.message.contains("state.redis.username"), "{error}");
    }

    #[test]
    fn bad_urls_name_the_url_key() {
        for url in [
            "http://127.0.0.1:6379",
            "127.0.0.1:6379",
            "rediss://redis.internal/#insecure",
            "redis+unix:///",
            "redis://0.0.0.0:6379",
            "redis://127.0.0.1/notanumber",
            "",
        ] {
            assert_eq!(key_of(&redis(url)), "state.redis.url", "{url}");
        }
        let mut no_table = redis("redis://127.0.0.1");
        no_table.redis = None;
        assert_eq!(key_of(&no_table), "state.redis.url");
    }

    #[test]
    fn the_secret_is_required_with_redis_and_must_be_long_enough() {
        let mut s = redis("redis://127.0.0.1");
        s.secret = None;
        assert_eq!(key_of(&s), "state.secret_file");
        s.secret = Some(StateSecret::from_bytes(b"too-short".to_vec()));
        assert_eq!(key_of(&s), "state.secret");
        let short = file(b"31-bytes-are-not-enough-here!!!\n");
        s.secret = None;
        s.secret_file = Some(short.path().to_owned());
        assert_eq!(key_of(&s), "state.secret_file");
        let good = file(format!("{SECRET}\n").as_bytes());
        s.secret_file = Some(good.path().to_owned());
        let from_file = s.validate().expect("valid");
        s.secret_file = Some(PathBuf::from("/nonexistent/state_secret"));
        assert_eq!(key_of(&s), "state.secret_file");
        s.secret_file = Some(PathBuf::from("/dev/zero"));
        assert_eq!(key_of(&s), "state.secret_file");
        s.secret_file = Some(good.path().to_owned());
        s.secret = Some(StateSecret::from_bytes(SECRET.into()));
        assert_eq!(key_of(&s), "state.secret");
        // The file's trailing newline is not part of the secret: inline and file agree.
        let inline = redis("redis://127.0.0.1").validate().expect("valid");
        assert_eq!(
            from_file.secret().expect("secret").expose(),
            inline.secret().expect("secret").expose()
        );
        // The shipped placeholder is refused, however long.
        s.secret_file = None;
        s.secret = Some(StateSecret::from_bytes(
            b"replace-with-32-random-bytes-shared-by-every-replica".to_vec(),
        ));
        assert_eq!(key_of(&s), "state.secret");
    }

    #[test]
    fn numbers_and_prefix_are_bounded() {
        let mut s = redis("redis://127.0.0.1");
        for ms in [0, 5001] {
            s.op_timeout_ms = ms;
            assert_eq!(key_of(&s), "state.op_timeout_ms");
        }
        s.op_timeout_ms = 5000;
        for prefix in ["", "has space:", "tag{x}:", &"p".repeat(65)] {
            s.key_prefix = prefix.to_owned();
            assert_eq!(key_of(&s), "state.key_prefix", "{prefix:?}");
        }
        s.key_prefix = "team-a:kop:v1:".to_owned();
        let config = s.validate().expect("valid");
        let redis = config.redis().expect("redis");
        assert_eq!(redis.key_prefix(), "team-a:kop:v1:");
        assert_eq!(redis.op_timeout(), Duration::from_secs(5));
    }

    #[test]
    fn password_and_username_come_from_their_keys() {
        let password = file(b"canary-redis-password\n");
        let mut s = redis("rediss://redis.internal:6380");
        s.redis = Some(RedisSettings {
            url: Some("rediss://redis.internal:6380".into()),
            username: Some("kick-proxy".into()),
            password_file: Some(password.path().to_owned()),
            ca_file: None,
        });
        let config = s.validate().expect("valid");
        let redis = config.redis().expect("redis");
        let info = redis.connection.redis_settings();
        assert_eq!(info.username(), Some("kick-proxy"));
        assert_eq!(info.password(), Some("canary-redis-password"));
        let printed = format!("{config:?} {s:?}");
        assert!(!printed.contains("canary"), "{printed}");
        let empty = file(b"\n");
        if let Some(r) = s.redis.as_mut() {
            r.password_file = Some(empty.path().to_owned());
        }
        assert_eq!(key_of(&s), "state.redis.password_file");
        if let Some(r) = s.redis.as_mut() {
            r.password_file = None;
            r.username = Some("two words".into());
        }
        assert_eq!(key_of(&s), "state.redis.username");
    }

    #[test]
    fn a_ca_file_needs_tls_and_a_certificate() {
        let ca = rcgen::generate_simple_self_signed(vec!["redis.internal".to_owned()])
            .expect("certificate");
        let pem = file(ca.cert.pem().as_bytes());
        let mut s = redis("rediss://redis.internal:6380");
        s.redis = Some(RedisSettings {
            url: Some("rediss://redis.internal:6380".into()),
            ca_file: Some(pem.path().to_owned()),
            ..RedisSettings::default()
        });
        assert!(s
            .validate()
            .expect("valid")
            .redis()
            .expect("redis")
            .ca_pem
            .is_some());
        let not_pem = file(b"canary: not a certificate");
        if let Some(r) = s.redis.as_mut() {
            r.ca_file = Some(not_pem.path().to_owned());
        }
        let error = s.validate().expect_err("refused");
        assert_eq!(error.key, "state.redis.ca_file");
        assert!(!error.message.contains("canary"));
        if let Some(r) = s.redis.as_mut() {
            r.url = Some("redis://redis.internal".into());
            r.ca_file = Some(pem.path().to_owned());
        }
        assert_eq!(key_of(&s), "state.redis.ca_file");
    }

    #[test]
    fn unknown_keys_are_refused_and_the_secret_never_prints() {
        let error = toml::from_str::<StateSettings>("backend = \"redis\"\nsecrett = \"x\"")
            .expect_err("unknown key");
        assert!(error.to_string().contains("secrett"));
        assert!(toml::from_str::<StateSettings>(
            "[redis]\nurl = \"redis://x\"\npasword_file = \"/x\""
        )
        .is_err());
        let s: StateSettings =
            toml::from_str(&format!("backend = \"redis\"\nsecret = \"{SECRET}\"")).expect("valid");
        let printed = format!("{s:?} {}", toml::to_string(&s).expect("serializes"));
        assert!(!printed.contains("canary"), "{printed}");
        assert!(printed.contains("[redacted]"));
    }
}
