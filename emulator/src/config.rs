//! What the emulated server knows before it starts: registered clients and lifetimes.

use std::fmt;
use std::time::Duration;

/// An OAuth client registered with the emulated Kick server (what a developer creates in
/// Kick's developer settings).
///
/// Clients authenticate at the token endpoint with `client_secret_post` (RFC 6749 §2.3.1:
/// `client_id` and `client_secret` in the form body), the only method Kick documents.
#[derive(Clone, PartialEq, Eq)]
pub struct RegisteredClient {
    /// The public client identifier (`client_id`).
    pub client_id: String,
    /// The client secret. `Debug` prints it as `[redacted]`.
    pub client_secret: String,
    /// Redirect URIs accepted at the authorization endpoint, compared byte for byte
    /// (RFC 6749 §3.1.2.3; fosite does the same for non-loopback URIs).
    pub redirect_uris: Vec<String>,
}

impl fmt::Debug for RegisteredClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisteredClient")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("redirect_uris", &self.redirect_uris)
            .finish()
    }
}

impl RegisteredClient {
    /// The client of [`EmulatorConfig::default`]: `emulator-client-id` / `emulator-client-secret`,
    /// redirect URIs `http://localhost:1420/auth/callback` (Battles Record's development URI) and
    /// `battles-record://oauth/callback` (production).
    pub fn emulator_default() -> Self {
        Self {
            client_id: "emulator-client-id".to_owned(),
            client_secret: "emulator-client-secret".to_owned(),
            redirect_uris: vec![
                "http://localhost:1420/auth/callback".to_owned(),
                "battles-record://oauth/callback".to_owned(),
            ],
        }
    }
}

/// Configuration of an [`Emulator`](crate::Emulator).
///
/// Lifetimes are measured on the emulator's own clock, which
/// [`Emulator::advance_clock`](crate::Emulator::advance_clock) moves forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatorConfig {
    /// Registered clients. Client ids must be unique.
    pub clients: Vec<RegisteredClient>,
    /// How long an authorization code can be exchanged (default 10 minutes, RFC 6749 §4.1.2
    /// recommends at most 10).
    pub code_ttl: Duration,
    /// Access token lifetime, reported as `expires_in` (default 7200 s, what Kick sends).
    pub access_token_ttl: Duration,
    /// Refresh token lifetime, renewed by every refresh (default 30 days, fosite's default).
    pub refresh_token_ttl: Duration,
    /// Kick's "reusable/flexible" refresh tokens (since 2025-11-25): after a refresh, the
    /// previous refresh token keeps working for this long, then dies (default 60 s; fosite's
    /// `RefreshTokenRotationGracePeriod`). Zero means strict rotation.
    pub refresh_grace: Duration,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            clients: vec![RegisteredClient::emulator_default()],
            code_ttl: Duration::from_secs(10 * 60),
            access_token_ttl: Duration::from_secs(7200),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            refresh_grace: Duration::from_secs(60),
        }
    }
}

impl EmulatorConfig {
    /// Refuses configurations the emulator cannot serve faithfully (duplicate client ids).
    pub(crate) fn validate(&self) -> std::io::Result<()> {
        for (i, client) in self.clients.iter().enumerate() {
            if self.clients[..i]
                .iter()
                .any(|c| c.client_id == client.client_id)
            {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "EmulatorConfig.clients: client_id {:?} is registered twice",
                        client.client_id
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_client_secret() {
        let shown = format!("{:?}", EmulatorConfig::default());
        assert!(!shown.contains("emulator-client-secret"), "{shown}");
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn duplicate_client_ids_are_refused() {
        let mut config = EmulatorConfig::default();
        config.clients.push(RegisteredClient::emulator_default());
        assert!(config.validate().is_err());
        assert!(EmulatorConfig::default().validate().is_ok());
    }
}
