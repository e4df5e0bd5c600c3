//! The HTTP client of one provider, built once at start-up from its settings.

use super::{Credentials, Upstream};
use crate::config::ProviderSettings;
use arc_swap::ArcSwap;
use std::time::Duration;

impl ProviderSettings {
    /// The HTTP client for this provider: rustls, no redirects, pooled connections, the deadline on
    /// connecting. The whole call's deadline (connect, send, the whole body, the next-secret
    /// attempt) is enforced once around it, by `Upstream::send`'s `timeout_at`: a second total
    /// timeout here would only arm a second timer (and box it) for every request. It trusts the
    /// built-in (webpki) roots plus the certificates of `ca_file`, if set.
    pub fn client(&self) -> Result<reqwest::Client, reqwest::Error> {
        let mut builder = reqwest::Client::builder();
        for certificate in self.ca_certificates.certificates() {
            builder = builder.add_root_certificate(certificate.clone());
        }
        builder
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            // A burst opens one connection per call in flight; keep a warm pool, not all of them
            // (the benchmark saw ~70 KB per pooled connection held for 90 s after a burst).
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .user_agent(concat!("kick-oauth-proxy/", env!("CARGO_PKG_VERSION")))
            .build()
    }

    /// The upstream endpoint for this provider.
    pub fn upstream(&self) -> Result<Upstream, reqwest::Error> {
        Ok(Upstream {
            client: self.client()?,
            token_url: self.token_url.clone(),
            revoke_url: self.revoke_url.clone(),
            client_id: self.client_id.clone(),
            credentials: ArcSwap::from_pointee(Credentials {
                current: self.client_secret.clone(),
                next: self.next_client_secret.clone(),
            }),
            timeout: self.timeout,
            client_auth: self.client_auth,
            revoke_style: self.revoke_style,
            dialect: self.dialect,
        })
    }
}
