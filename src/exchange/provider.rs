//! One configured provider at run time: its label, redirect allowlist, upstream client and breaker,
//! and what a reload may change without a restart.

use crate::breaker::Breaker;
use crate::config::{CaCertificates, ClientAuth, ProviderSettings, Settings};
use crate::reply::ProviderLabel;
use crate::upstream::{Credentials, Upstream};
use arc_swap::ArcSwap;
use std::sync::Arc;
use std::time::Duration;

/// One configured provider, ready to serve.
pub struct Provider {
    /// Name and 502 texts.
    pub label: Arc<ProviderLabel>,
    /// `redirect_uri` values accepted byte for byte; swapped whole on reload.
    pub allowed_redirect_uris: ArcSwap<Vec<String>>,
    /// Its token endpoint and HTTP client.
    pub upstream: Upstream,
    /// Fails fast while the provider is failing.
    pub breaker: Breaker,
    /// What its HTTP client and endpoints were built from: a reload compares against this, so a
    /// key that needs a restart is reported on every reload until the restart.
    built_from: BuiltFrom,
}

impl Provider {
    /// Builds the provider's client from validated settings.
    pub fn new(settings: &Settings, p: &ProviderSettings) -> Result<Self, ClientBuildError> {
        let upstream = p
            .upstream(settings.limits.max_upstream_calls)
            .map_err(|source| ClientBuildError {
                provider: p.name.clone(),
                source,
            })?;
        Ok(Self {
            label: Arc::new(ProviderLabel::new(&p.name, &p.display_name)),
            allowed_redirect_uris: ArcSwap::from_pointee(p.accepted_redirect_uris()),
            upstream,
            breaker: Breaker::new(
                settings.limits.breaker_failures,
                Duration::from_secs(settings.limits.breaker_cooldown_secs),
            ),
            built_from: BuiltFrom::of(p),
        })
    }

    /// Applies what can change without a restart (client secrets, redirect allowlist) and returns
    /// the keys that changed but need one, as written in the file.
    pub fn reload(&self, new: &ProviderSettings) -> Vec<&'static str> {
        self.upstream.set_credentials(Credentials {
            current: new.client_secret.clone(),
            next: new.next_client_secret.clone(),
        });
        self.allowed_redirect_uris
            .store(Arc::new(new.accepted_redirect_uris()));
        self.built_from.changed_keys(&BuiltFrom::of(new))
    }
}

/// The keys a provider's HTTP client and endpoints are built from (no secret: those reload).
#[derive(Debug)]
struct BuiltFrom {
    token_url: url::Url,
    revoke_url: Option<url::Url>,
    client_id: String,
    timeout: Duration,
    preset: String,
    client_auth: ClientAuth,
    ca_file: Option<std::path::PathBuf>,
    ca_certificates: CaCertificates,
}

impl BuiltFrom {
    fn of(p: &ProviderSettings) -> Self {
        Self {
            token_url: p.token_url.clone(),
            revoke_url: p.revoke_url.clone(),
            client_id: p.client_id.clone(),
            timeout: p.timeout,
            preset: p.preset.clone(),
            client_auth: p.client_auth,
            ca_file: p.ca_file.clone(),
            ca_certificates: p.ca_certificates.clone(),
        }
    }

    /// The config keys (as written in the file) whose value differs in `new`.
    fn changed_keys(&self, new: &Self) -> Vec<&'static str> {
        [
            ("token_url", self.token_url != new.token_url),
            ("revoke_url", self.revoke_url != new.revoke_url),
            ("client_id", self.client_id != new.client_id),
            ("timeout_secs", self.timeout != new.timeout),
            ("preset", self.preset != new.preset),
            ("client_auth", self.client_auth != new.client_auth),
            (
                "ca_file",
                self.ca_file != new.ca_file || self.ca_certificates != new.ca_certificates,
            ),
        ]
        .into_iter()
        .filter_map(|(key, changed)| changed.then_some(key))
        .collect()
    }
}

/// A provider's HTTP client could not be built (TLS settings, an endpoint URL).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client for provider `{provider}`: {source}")]
pub struct ClientBuildError {
    provider: String,
    #[source]
    source: crate::upstream::BuildError,
}
