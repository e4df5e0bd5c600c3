//! Test harness: a started emulator plus a client that behaves like the proxy's (no redirects).

use std::collections::HashMap;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use kick_emulator::{Emulator, EmulatorConfig};
use reqwest::redirect::Policy;
use serde::Deserialize;
use sha2::{Digest, Sha256};

pub const CLIENT_ID: &str = "emulator-client-id";
pub const CLIENT_SECRET: &str = "emulator-client-secret";
pub const DEV_REDIRECT: &str = "http://localhost:1420/auth/callback";
pub const APP_REDIRECT: &str = "battles-record://oauth/callback";
pub const STATE: &str = "state-0123456789";
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const OTHER_VERIFIER: &str = "OTHERverifierOTHERverifierOTHERverifier-._~";
pub const SCOPE: &str = "user:read channel:read";

/// The fosite description every `invalid_grant` starts with.
pub const INVALID_GRANT: &str = "The provided authorization grant (e.g., authorization code, resource owner credentials) or refresh token is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.";

/// A successful token response, parsed strictly.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tokens {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    pub refresh_token: String,
    pub scope: String,
}

/// An OAuth error body.
#[derive(Debug, Deserialize)]
pub struct OAuthError {
    pub error: String,
    pub error_description: String,
}

pub struct TestKick {
    pub kick: Emulator,
    pub http: reqwest::Client,
}

pub fn challenge_for(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

pub async fn spawn() -> TestKick {
    spawn_with(EmulatorConfig::default()).await
}

pub async fn spawn_with(config: EmulatorConfig) -> TestKick {
    let kick = Emulator::start(config).await.expect("emulator starts");
    TestKick {
        kick,
        http: client(),
    }
}

/// The query of a redirect's `Location`, as a map.
pub fn redirect_query(response: &reqwest::Response) -> (String, HashMap<String, String>) {
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .expect("a Location header")
        .to_str()
        .expect("ASCII Location")
        .to_owned();
    let (base, query) = location.split_once('?').expect("a query");
    let params = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    (base.to_owned(), params)
}

impl TestKick {
    /// The standard authorization request with some parameters replaced (an empty value
    /// removes the parameter).
    pub async fn authorize_with(&self, overrides: &[(&str, &str)]) -> reqwest::Response {
        let challenge = challenge_for(VERIFIER);
        let mut params: Vec<(&str, &str)> = vec![
            ("client_id", CLIENT_ID),
            ("response_type", "code"),
            ("redirect_uri", DEV_REDIRECT),
            ("state", STATE),
            ("scope", SCOPE),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ];
        for (key, value) in overrides {
            params.retain(|(k, _)| k != key);
            if !value.is_empty() {
                params.push((key, value));
            }
        }
        self.http
            .get(self.kick.authorize_url())
            .query(&params)
            .send()
            .await
            .expect("authorize answers")
    }

    /// A fresh code for [`VERIFIER`] and [`DEV_REDIRECT`].
    pub async fn code(&self) -> String {
        let response = self.authorize_with(&[]).await;
        assert_eq!(response.status(), 302);
        let (_, params) = redirect_query(&response);
        params.get("code").expect("a code").clone()
    }

    pub async fn token(&self, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(self.kick.token_url())
            .form(form)
            .send()
            .await
            .expect("token endpoint answers")
    }

    pub async fn exchange(&self, code: &str, verifier: &str, redirect: &str) -> reqwest::Response {
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("redirect_uri", redirect),
            ("code_verifier", verifier),
        ])
        .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> reqwest::Response {
        self.token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .await
    }

    /// A complete authorization: code, then tokens.
    pub async fn login(&self) -> Tokens {
        let code = self.code().await;
        let response = self.exchange(&code, VERIFIER, DEV_REDIRECT).await;
        assert_eq!(response.status(), 200);
        response.json().await.expect("token JSON")
    }

    pub async fn revoke(&self, token: &str, hint: &str) -> reqwest::Response {
        self.http
            .post(self.kick.revoke_url())
            .query(&[("token", token), ("token_hint_type", hint)])
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .send()
            .await
            .expect("revoke answers")
    }

    /// The `data` object of an introspection of `access_token`.
    pub async fn introspect(&self, access_token: &str) -> serde_json::Value {
        let response = self
            .http
            .post(self.kick.introspect_url())
            .bearer_auth(access_token)
            .send()
            .await
            .expect("introspect answers");
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.expect("JSON");
        assert_eq!(body["message"], "OK");
        body["data"].clone()
    }
}

/// Asserts an OAuth error status and code, and returns the parsed body.
pub async fn expect_error(response: reqwest::Response, status: u16, error: &str) -> OAuthError {
    assert_eq!(response.status(), status);
    let body: OAuthError = response.json().await.expect("an OAuth error body");
    assert_eq!(body.error, error, "{}", body.error_description);
    body
}

/// Whether a request failed because the server reset the TCP connection (the client saw no
/// HTTP response at all).
pub fn is_connection_reset(error: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionReset {
                return true;
            }
        }
        source = current.source();
    }
    false
}
