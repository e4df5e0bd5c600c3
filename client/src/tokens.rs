//! Tokens: the proxy's token response (RFC 6749 §5.1) and the [`TokenSet`] the app keeps.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize};

use oauth_types::secret_type;

secret_type!(
    /// An OAuth access token (RFC 6749 §1.4), sent to Kick's API as `Authorization: Bearer …`
    /// (RFC 6750 §2.1).
    AccessToken,
    serde
);

secret_type!(
    /// An OAuth refresh token (RFC 6749 §1.5), sent only to the proxy's `/refresh` and `/revoke`.
    RefreshToken,
    serde
);

secret_type!(
    /// An authorization code from the redirect (RFC 6749 §4.1.2): single-use, short-lived.
    AuthorizationCode,
    serde
);

/// How long a token is assumed to live when the response has no `expires_in` (RFC 6749 §5.1 makes it
/// only RECOMMENDED; Kick always sends it, 7200 s). An hour keeps refreshes early rather than late.
pub const DEFAULT_EXPIRES_IN: Duration = Duration::from_secs(3600);

/// A successful token response as the proxy returns it (RFC 6749 §5.1). Fields the provider adds
/// (e.g. `id_token`) are ignored.
#[derive(Debug, Clone, Deserialize)]
#[non_exhaustive]
pub struct TokenResponse {
    /// `access_token`.
    pub access_token: AccessToken,
    /// `token_type`, `Bearer` for Kick (RFC 6750).
    pub token_type: String,
    /// `expires_in`, seconds from the moment the response was issued. The proxy always sends an
    /// integer; a numeric string is accepted too.
    #[serde(default, deserialize_with = "de_expires_in")]
    pub expires_in: Option<u64>,
    /// `refresh_token`, when the provider issued one (RFC 6749 §6: may be a new one on refresh).
    #[serde(default)]
    pub refresh_token: Option<RefreshToken>,
    /// `scope`, one space-separated string (RFC 6749 §3.3), when the provider sent it.
    #[serde(default)]
    pub scope: Option<String>,
}

fn de_expires_in<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(u64),
        Float(f64),
        Str(String),
    }
    Ok(match Option::<Raw>::deserialize(d)? {
        None => None,
        Some(Raw::Int(n)) => Some(n),
        Some(Raw::Float(f)) if f.is_finite() && f >= 0.0 => Some(f as u64),
        Some(Raw::Float(_)) => None,
        Some(Raw::Str(s)) => s.trim().parse().ok(),
    })
}

/// The tokens an app holds for one login. `expires_at` is absolute: computed once, on receipt, from
/// `expires_in` (RFC 6749 §5.1), so it stays right after a restart or a suspended laptop.
///
/// Serialises (for a [`crate::TokenStore`]) with the secrets in clear and `expires_at` as Unix
/// seconds; `Debug` shows no secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenSet {
    /// The bearer token for API calls.
    pub access_token: AccessToken,
    /// The refresh token, if the provider issued one.
    pub refresh_token: Option<RefreshToken>,
    /// When the access token stops working.
    #[serde(with = "unix_seconds")]
    pub expires_at: SystemTime,
    /// Granted scopes, space-separated (RFC 6749 §3.3), if known.
    pub scope: Option<String>,
    /// `Bearer` for Kick.
    pub token_type: String,
}

impl TokenSet {
    /// Builds a set from a response received at `received_at`. `expires_at = received_at + expires_in`
    /// (or [`DEFAULT_EXPIRES_IN`] when absent), rounded down to a whole second, the precision it is
    /// stored with, so a reloaded set is identical to the one saved.
    pub fn from_response(response: TokenResponse, received_at: SystemTime) -> Self {
        let lifetime = response
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_EXPIRES_IN);
        let expires_at = received_at
            .checked_add(lifetime)
            // An absurd `expires_in` cannot be represented: treat the token as already stale so
            // it is refreshed at once rather than trusted forever.
            .unwrap_or(received_at);
        Self {
            access_token: response.access_token,
            refresh_token: response.refresh_token,
            expires_at: floor_to_second(expires_at),
            scope: response.scope,
            token_type: response.token_type,
        }
    }

    /// Time left before expiry at `now`; zero once expired.
    pub fn remaining(&self, now: SystemTime) -> Duration {
        self.expires_at
            .duration_since(now)
            .unwrap_or(Duration::ZERO)
    }

    /// `true` once `now` has reached `expires_at`.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        now >= self.expires_at
    }

    /// The granted scopes as a list.
    pub fn scopes(&self) -> Vec<crate::Scope> {
        self.scope
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
            .filter_map(|s| s.parse().ok())
            .collect()
    }
}

fn floor_to_second(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        Err(_) => t,
    }
}

mod unix_seconds {
    use super::*;
    use serde::Serializer;

    pub(super) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        let secs = t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        s.serialize_u64(secs)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let secs = u64::deserialize(d)?;
        UNIX_EPOCH
            .checked_add(Duration::from_secs(secs))
            .ok_or_else(|| serde::de::Error::custom("expires_at out of range"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANARY_ACCESS: &str = "CANARY-access-7f3a9";
    const CANARY_REFRESH: &str = "CANARY-refresh-81bd2";

    fn sample() -> TokenSet {
        TokenSet {
            access_token: AccessToken::new(CANARY_ACCESS),
            refresh_token: Some(RefreshToken::new(CANARY_REFRESH)),
            expires_at: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            scope: Some("user:read channel:read".into()),
            token_type: "Bearer".into(),
        }
    }

    #[test]
    fn debug_output_of_a_token_set_never_shows_the_tokens() {
        let set = sample();
        let debug = format!("{set:?} {set:#?}");
        assert!(!debug.contains(CANARY_ACCESS), "{debug}");
        assert!(!debug.contains(CANARY_REFRESH), "{debug}");
        assert!(debug.contains("[redacted]"));
        assert_eq!(set.access_token.to_string(), "[redacted]");
        assert_eq!(set.access_token.secret(), CANARY_ACCESS);
    }

    #[test]
    fn serde_round_trip_keeps_values_and_stores_unix_seconds() {
        let json = serde_json::to_string(&sample()).expect("serialise");
        assert!(json.contains("\"expires_at\":1800000000"), "{json}");
        let back: TokenSet = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back.access_token.secret(), CANARY_ACCESS);
        assert_eq!(
            back.refresh_token.as_ref().map(RefreshToken::secret),
            Some(CANARY_REFRESH)
        );
        assert_eq!(back.expires_at, sample().expires_at);
        assert_eq!(
            back.scopes(),
            vec![crate::Scope::UserRead, crate::Scope::ChannelRead]
        );
    }

    #[test]
    fn expires_at_is_computed_from_expires_in_at_receipt() {
        let received = UNIX_EPOCH + Duration::from_secs(1_000);
        let parse = |body: &str| {
            let r: TokenResponse = serde_json::from_str(body).expect("valid response");
            TokenSet::from_response(r, received)
        };
        let set =
            parse(r#"{"access_token":"a","token_type":"Bearer","expires_in":7200,"id_token":"x"}"#);
        assert_eq!(set.expires_at, received + Duration::from_secs(7200));
        assert!(set.refresh_token.is_none());
        let set = parse(r#"{"access_token":"a","token_type":"Bearer","expires_in":"60"}"#);
        assert_eq!(set.remaining(received), Duration::from_secs(60));
        let set = parse(r#"{"access_token":"a","token_type":"Bearer"}"#);
        assert_eq!(set.expires_at, received + DEFAULT_EXPIRES_IN);
        assert!(!set.is_expired(received));
        assert!(set.is_expired(received + DEFAULT_EXPIRES_IN));
    }
}
