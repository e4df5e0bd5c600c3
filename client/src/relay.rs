//! Logging in through the proxy's authorize relay, for providers that compare redirect URIs
//! exactly (Kick, Twitch) and so allow no ephemeral loopback port (RFC 8252 §7.3) directly.
//!
//! The app binds a loopback listener on any free port, opens the proxy's
//! `GET /api/v1/{provider}/authorize` with that listener as `redirect_uri`, and receives the code
//! there as usual. The proxy sent the provider its own registered `callback_url`, so the code is
//! exchanged with `redirect_uri = callback_url`: the [`PendingLogin`] this builder returns carries
//! that, so [`crate::TokenManager::complete_login`] and [`crate::ProxyClient::exchange`] need
//! nothing else. The app never needs the client id.
//!
//! ```
//! use kick_oauth_client::{RelayAuthorizeRequest, Scope};
//! let (url, pending) =
//!     RelayAuthorizeRequest::new("https://proxy.example.com", "kick", "http://127.0.0.1:50123/callback")
//!         .scopes([Scope::UserRead])
//!         .build()?;
//! assert!(url.as_str().starts_with(
//!     "https://proxy.example.com/api/v1/kick/authorize?redirect_uri=http%3A%2F%2F127.0.0.1%3A50123%2Fcallback&"
//! ));
//! assert_eq!(pending.redirect_uri(), "https://proxy.example.com/api/v1/kick/callback");
//! # Ok::<(), kick_oauth_client::Error>(())
//! ```

use url::Url;

use crate::authorize::{enc, parse_endpoint, CsrfState, PendingLogin, Scope};
use crate::pkce::PkceVerifier;
use crate::Error;

/// The loopback target the relay accepts by default, on a port the OS picks: pass it to
/// [`crate::CallbackListener::bind`], then its [`crate::CallbackListener::redirect_uri`] here.
pub const RELAY_LOOPBACK_TARGET: &str = "http://127.0.0.1:0/callback";

/// Builder for the relay's authorize URL (the proxy's `GET /api/v1/{provider}/authorize`).
#[derive(Debug, Clone)]
pub struct RelayAuthorizeRequest {
    proxy: String,
    provider: String,
    target: String,
    callback_url: Option<String>,
    scopes: Vec<Scope>,
    state: Option<CsrfState>,
    verifier: Option<PkceVerifier>,
}

impl RelayAuthorizeRequest {
    /// A relayed login through the proxy at `proxy_base_url` (its root, as for
    /// [`crate::ProxyClient::new`]) for `provider`, coming back to `loopback_target` (the
    /// listener's [`crate::CallbackListener::redirect_uri`], e.g. `http://127.0.0.1:50123/callback`).
    pub fn new(
        proxy_base_url: impl Into<String>,
        provider: impl Into<String>,
        loopback_target: impl Into<String>,
    ) -> Self {
        Self {
            proxy: proxy_base_url.into(),
            provider: provider.into(),
            target: loopback_target.into(),
            callback_url: None,
            scopes: Vec::new(),
            state: None,
            verifier: None,
        }
    }

    /// The relay's `callback_url` as the proxy is configured with it, when it is not
    /// `{proxy}/api/v1/{provider}/callback` (a proxy behind a path-rewriting ingress).
    pub fn callback_url(mut self, url: impl Into<String>) -> Self {
        self.callback_url = Some(url.into());
        self
    }

    /// Adds one scope (RFC 6749 §3.3).
    pub fn scope(mut self, scope: Scope) -> Self {
        if !self.scopes.contains(&scope) {
            self.scopes.push(scope);
        }
        self
    }

    /// Adds several scopes, keeping order and dropping duplicates.
    pub fn scopes(mut self, scopes: impl IntoIterator<Item = Scope>) -> Self {
        for scope in scopes {
            self = self.scope(scope);
        }
        self
    }

    /// Uses this `state` instead of a generated one (tests).
    pub fn state(mut self, state: CsrfState) -> Self {
        self.state = Some(state);
        self
    }

    /// Uses this verifier instead of a generated one (tests).
    pub fn pkce_verifier(mut self, verifier: PkceVerifier) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// The URL to open in the browser, and the [`PendingLogin`] whose `redirect_uri` is the
    /// relay's callback URL (what the exchange must send).
    ///
    /// Query parameters, in this order: `redirect_uri` (the loopback target), `scope` (omitted
    /// when empty), `state`, `code_challenge`, `code_challenge_method=S256`.
    pub fn build(self) -> Result<(Url, PendingLogin), Error> {
        if self.target.is_empty() {
            return Err(Error::Config("loopback target is empty".into()));
        }
        let valid_provider = !self.provider.is_empty()
            && self.provider.len() <= 64
            && self
                .provider
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid_provider {
            return Err(Error::Config(
                "provider must be 1-64 characters of A-Z a-z 0-9 - _".into(),
            ));
        }
        let mut base = parse_endpoint(&self.proxy, "proxy base URL")?;
        if base.query().is_some() || base.fragment().is_some() {
            return Err(Error::Config(
                "proxy base URL must not have a query or fragment".into(),
            ));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let join = |endpoint: &str| {
            base.join(&format!("api/v1/{}/{endpoint}", self.provider))
                .map_err(|e| Error::Config(format!("proxy URL: {e}")))
        };
        let mut url = join("authorize")?;
        let callback_url = match self.callback_url {
            Some(url) => parse_endpoint(&url, "relay callback URL")?.to_string(),
            None => join("callback")?.to_string(),
        };
        let state = match self.state {
            Some(state) => state,
            None => CsrfState::generate()?,
        };
        let verifier = match self.verifier {
            Some(verifier) => verifier,
            None => PkceVerifier::generate()?,
        };
        let mut query = format!("redirect_uri={}", enc(&self.target));
        if !self.scopes.is_empty() {
            let scope = self
                .scopes
                .iter()
                .map(Scope::as_str)
                .collect::<Vec<_>>()
                .join(" ");
            query.push_str("&scope=");
            query.push_str(&enc(&scope));
        }
        query.push_str("&state=");
        query.push_str(&enc(state.secret()));
        query.push_str("&code_challenge=");
        query.push_str(&verifier.challenge_s256());
        query.push_str("&code_challenge_method=S256");
        url.set_query(Some(&query));
        Ok((url, PendingLogin::new(state, verifier, callback_url)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    #[test]
    fn the_url_carries_the_target_and_pkce_and_the_exchange_uses_the_callback_url() {
        let (url, pending) = RelayAuthorizeRequest::new(
            "https://proxy.example.com/base",
            "kick",
            "http://127.0.0.1:50123/callback",
        )
        .state(CsrfState::new("st4te-Value_1"))
        .pkce_verifier(PkceVerifier::parse(RFC_VERIFIER).expect("valid"))
        .scopes([Scope::UserRead, Scope::ChannelRead])
        .build()
        .expect("valid");
        assert_eq!(
            url.as_str(),
            "https://proxy.example.com/base/api/v1/kick/authorize\
             ?redirect_uri=http%3A%2F%2F127.0.0.1%3A50123%2Fcallback\
             &scope=user%3Aread%20channel%3Aread&state=st4te-Value_1\
             &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
        );
        assert_eq!(
            pending.redirect_uri(),
            "https://proxy.example.com/base/api/v1/kick/callback"
        );
        assert!(pending.check_state("st4te-Value_1").is_ok());
        let (_, pending) = RelayAuthorizeRequest::new(
            "https://proxy.example.com",
            "kick",
            "http://127.0.0.1:1/callback",
        )
        .callback_url("https://login.example.com/kick/callback")
        .build()
        .expect("valid");
        assert_eq!(
            pending.redirect_uri(),
            "https://login.example.com/kick/callback"
        );
    }

    #[test]
    fn bad_proxy_urls_providers_and_targets_are_refused() {
        for (proxy, provider, target) in [
            (
                "http://proxy.example.com",
                "kick",
                "http://127.0.0.1:1/callback",
            ),
            (
                "https://proxy.example.com?x=1",
                "kick",
                "http://127.0.0.1:1/callback",
            ),
            (
                "https://proxy.example.com",
                "ki/ck",
                "http://127.0.0.1:1/callback",
            ),
            (
                "https://proxy.example.com",
                "",
                "http://127.0.0.1:1/callback",
            ),
            ("https://proxy.example.com", "kick", ""),
        ] {
            assert!(
                matches!(
                    RelayAuthorizeRequest::new(proxy, provider, target).build(),
                    Err(Error::Config(_))
                ),
                "{proxy} {provider} {target}"
            );
        }
    }
}
