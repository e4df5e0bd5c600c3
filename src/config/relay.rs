//! `[providers.<name>.relay]`: the relay's settings as the operator writes them
//! ([`RelaySettings`]) and validated ([`Relay`]). Every error names its key and never quotes a
//! secret; the sealing secrets are read like client secrets (inline or from a mounted file, the
//! shipped `replace-with-…` placeholders refused) and kept only as derived keys.

use super::files::read_secret_file;
use super::placeholder::is_placeholder;
use super::ConfigError;
use crate::relay::seal::{Sealer, SealingKey, MIN_SECRET_LEN};
use crate::relay::target::TargetPattern;
use serde::{Deserialize, Serialize, Serializer};
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

/// The targets used when `targets` is not set: `/callback` on any port of the loopback IP
/// literals. Not `localhost` (RFC 8252 §8.3: a name can resolve elsewhere; an operator who needs
/// it lists `http://localhost:*/callback` in `targets`).
pub const DEFAULT_TARGETS: [&str; 2] = ["http://127.0.0.1:*/callback", "http://[::1]:*/callback"];
/// `flow_lifetime_secs` when unset: ten minutes, Kick's and RFC 6749 §4.1.2's code lifetime.
pub const DEFAULT_FLOW_LIFETIME_SECS: u64 = 600;
/// Allowed `flow_lifetime_secs`.
pub const FLOW_LIFETIME_RANGE_SECS: std::ops::RangeInclusive<u64> = 60..=3600;

/// `[providers.<name>.relay]` as written, before validation. Its `Debug` shows whether an inline
/// secret is set, never its value.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelaySettings {
    /// This proxy's public `/api/v1/<name>/callback` URL, registered at the provider.
    pub callback_url: Option<String>,
    /// Loopback target entries (`http://127.0.0.1:*/callback`, …).
    pub targets: Option<Vec<String>>,
    /// The sealing secret inline (at least 32 bytes).
    pub sealing_secret: Option<String>,
    /// A file holding the sealing secret.
    pub sealing_secret_file: Option<PathBuf>,
    /// During a rotation, the secret sealed with before: its states still open.
    pub previous_sealing_secret: Option<String>,
    /// The same, from a file.
    pub previous_sealing_secret_file: Option<PathBuf>,
    /// Seconds a started login may take before its callback is refused.
    pub flow_lifetime_secs: Option<u64>,
    /// The provider's authorization endpoint; the preset's by default.
    pub authorize_url: Option<String>,
}

impl std::fmt::Debug for RelaySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |s: &Option<String>| s.as_ref().map(|_| "[redacted]");
        f.debug_struct("RelaySettings")
            .field("callback_url", &self.callback_url)
            .field("targets", &self.targets)
            .field("sealing_secret", &redacted(&self.sealing_secret))
            .field("sealing_secret_file", &self.sealing_secret_file)
            .field(
                "previous_sealing_secret",
                &redacted(&self.previous_sealing_secret),
            )
            .field(
                "previous_sealing_secret_file",
                &self.previous_sealing_secret_file,
            )
            .field("flow_lifetime_secs", &self.flow_lifetime_secs)
            .field("authorize_url", &self.authorize_url)
            .finish()
    }
}

/// Where the secret came from, for `check-config`'s printout.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SecretSource {
    Inline,
    File(PathBuf),
}

/// The validated relay of one provider.
#[derive(Debug, Clone)]
pub struct Relay {
    /// The exact `redirect_uri` sent to the provider and accepted at `/token`.
    pub callback_url: String,
    /// Where codes may go.
    pub targets: Vec<TargetPattern>,
    /// The provider's authorization endpoint.
    pub authorize_url: Url,
    /// How long a started login may take.
    pub flow_lifetime: Duration,
    /// The derived keys.
    pub sealer: Sealer,
    sealing_source: SecretSource,
    previous_source: Option<SecretSource>,
}

impl RelaySettings {
    /// Validates the table of provider `name` on preset `preset`.
    pub fn validate(self, name: &str, preset: &str) -> Result<Relay, ConfigError> {
        let key = |k: &str| format!("providers.{name}.relay.{k}");
        let error = |k: &str, message: String| ConfigError {
            key: key(k),
            message,
        };

        let callback_url = self.callback_url.filter(|u| !u.is_empty()).ok_or_else(|| {
            error(
                "callback_url",
                format!(
                    "missing: this proxy's public URL of /api/v1/{name}/callback, as \
                         registered at the provider"
                ),
            )
        })?;
        check_callback_url(name, &callback_url).map_err(|m| error("callback_url", m))?;

        let entries = match self.targets {
            Some(list) => list,
            None => DEFAULT_TARGETS.iter().map(|t| (*t).to_owned()).collect(),
        };
        if entries.is_empty() {
            return Err(error(
                "targets",
                "is empty: list loopback entries such as http://127.0.0.1:*/callback (or leave \
                 the key out for the defaults)"
                    .to_owned(),
            ));
        }
        let targets = entries
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                TargetPattern::parse(entry)
                    .map_err(|m| error(&format!("targets[{i}]"), m.to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()?;

        let authorize_url = match (
            self.authorize_url.filter(|u| !u.is_empty()),
            crate::providers::preset(preset).and_then(|p| p.authorize_url),
        ) {
            (Some(url), _) => url,
            (None, Some(url)) => url.to_owned(),
            (None, None) => {
                return Err(error(
                    "authorize_url",
                    format!(
                        "required: the `{preset}` preset has no built-in authorization endpoint"
                    ),
                ))
            }
        };
        let authorize_url =
            check_endpoint(&authorize_url).map_err(|m| error("authorize_url", m))?;

        let lifetime = self
            .flow_lifetime_secs
            .unwrap_or(DEFAULT_FLOW_LIFETIME_SECS);
        if !FLOW_LIFETIME_RANGE_SECS.contains(&lifetime) {
            return Err(error(
                "flow_lifetime_secs",
                "must be between 60 and 3600 seconds".to_owned(),
            ));
        }

        let (current, sealing_source) = read_secret(
            name,
            "sealing_secret",
            self.sealing_secret,
            self.sealing_secret_file,
        )?
        .ok_or_else(|| {
            error(
                "sealing_secret",
                "missing: set sealing_secret_file (a mounted secret) or sealing_secret, at least \
                 32 bytes (e.g. `openssl rand -base64 48`)"
                    .to_owned(),
            )
        })?;
        let previous = read_secret(
            name,
            "previous_sealing_secret",
            self.previous_sealing_secret,
            self.previous_sealing_secret_file,
        )?;
        if let Some((previous, source)) = &previous {
            if previous == &current {
                return Err(error(
                    source.key("previous_sealing_secret"),
                    "is the same as the current sealing secret: after a rotation it holds the \
                     old one, otherwise leave it out"
                        .to_owned(),
                ));
            }
        }
        let (previous_key, previous_source) = match previous {
            Some((secret, source)) => (Some(SealingKey::derive(&secret)), Some(source)),
            None => (None, None),
        };
        Ok(Relay {
            callback_url,
            targets,
            authorize_url,
            flow_lifetime: Duration::from_secs(lifetime),
            sealer: Sealer::new(SealingKey::derive(&current), previous_key),
            sealing_source,
            previous_source,
        })
    }
}

impl SecretSource {
    /// The key the secret was set with, for `base` (`sealing_secret` or its `previous_`).
    fn key<'a>(&self, base: &'a str) -> &'a str {
        match self {
            Self::Inline => base,
            Self::File(_) => {
                if base == "sealing_secret" {
                    "sealing_secret_file"
                } else {
                    "previous_sealing_secret_file"
                }
            }
        }
    }
}

/// Reads a secret set inline (`<base>`) or from a file (`<base>_file`), like the client secret:
/// an empty value counts as unset, both set is an error, a file loses one trailing newline.
/// Checks the length and the shipped placeholders; `None` when neither is set.
fn read_secret(
    name: &str,
    base: &str,
    inline: Option<String>,
    file: Option<PathBuf>,
) -> Result<Option<(String, SecretSource)>, ConfigError> {
    let key = |k: &str| format!("providers.{name}.relay.{k}");
    let inline = inline.filter(|s| !s.is_empty());
    let file = file.filter(|p| !p.as_os_str().is_empty());
    let (secret, source) = match (inline, file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError {
                key: key(base),
                message: format!("set either {base} or {base}_file, not both"),
            })
        }
        (None, None) => return Ok(None),
        (Some(secret), None) => (secret, SecretSource::Inline),
        (None, Some(path)) => {
            let secret = read_secret_file(&path).map_err(|m| ConfigError {
                key: key(&format!("{base}_file")),
                message: format!("{}: {m}", path.display()),
            })?;
            (secret, SecretSource::File(path))
        }
    };
    let used = key(source.key(base));
    if is_placeholder(&secret) {
        return Err(ConfigError {
            key: used,
            message: "is still the shipped placeholder: generate a random secret of at least 32 \
                      bytes (e.g. `openssl rand -base64 48`)"
                .to_owned(),
        });
    }
    if secret.len() < MIN_SECRET_LEN {
        return Err(ConfigError {
            key: used,
            message: format!(
                "is too short: at least {MIN_SECRET_LEN} bytes (e.g. `openssl rand -base64 48`)"
            ),
        });
    }
    Ok(Some((secret, source)))
}

/// The callback URL: `https://` (or `http://` to a loopback host, for `dev` and tests), written
/// as a URL parser would print it (the provider compares it byte for byte), no user info, query
/// or fragment, its path ending in `/api/v1/<name>/callback`.
fn check_callback_url(name: &str, value: &str) -> Result<(), String> {
    let url = check_endpoint(value)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain user info".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or a fragment".to_owned());
    }
    if url.as_str() != value {
        return Err(format!(
            "write it exactly as {:?}: the provider compares it byte for byte",
            url.as_str()
        ));
    }
    let expected = format!("/api/v1/{name}/callback");
    if !url.path().ends_with(&expected) {
        return Err(format!(
            "must be this proxy's {expected} (the path ends with it)"
        ));
    }
    Ok(())
}

/// An `https://` URL, or `http://` to a loopback host.
fn check_endpoint(value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|e| format!("not a URL: {e}"))?;
    if url.fragment().is_some() {
        return Err("must not have a fragment".to_owned());
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        "http" => Err("plain http:// is only allowed to a loopback host; use https://".to_owned()),
        _ => Err("must be an https:// URL".to_owned()),
    }
}

/// What `check-config` prints in place of an inline secret.
const REDACTED: &str = "[redacted]";

/// The table as an operator writes it: each secret under the key it was set with, a file as its
/// path, an inline secret as `[redacted]`.
impl Serialize for Relay {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Relay", 6)?;
        st.serialize_field("callback_url", &self.callback_url)?;
        st.serialize_field(
            "targets",
            &self
                .targets
                .iter()
                .map(TargetPattern::as_str)
                .collect::<Vec<_>>(),
        )?;
        st.serialize_field("authorize_url", self.authorize_url.as_str())?;
        st.serialize_field("flow_lifetime_secs", &self.flow_lifetime.as_secs())?;
        match &self.sealing_source {
            SecretSource::File(path) => st.serialize_field("sealing_secret_file", path)?,
            SecretSource::Inline => st.serialize_field("sealing_secret", REDACTED)?,
        }
        match &self.previous_source {
            Some(SecretSource::File(path)) => {
                st.serialize_field("previous_sealing_secret_file", path)?
            }
            Some(SecretSource::Inline) => {
                st.serialize_field("previous_sealing_secret", REDACTED)?
            }
            None => {}
        }
        st.end()
    }
}
