//! The provider's token endpoint: one `reqwest::Client` per provider, one deadline covering connect,
//! send and the whole body, a cap on what is read, and every outcome classified once
//! ([`UpstreamError`]) so handlers never look at raw bodies.
//!
//! Nothing here retries a request that may have reached the provider: an authorization code is
//! single-use and a replayed refresh can revoke the grant.

pub mod breaker;

use crate::config::{ClientAuth, ProviderSettings, RevokeStyle};
use crate::oauth::{
    sanitize_description, OAuthErrorCode, RequestSecrets, TokenResponse, TokenResponseError,
};
use crate::secret::{AnyToken, AuthorizationCode, ClientSecret, CodeVerifier, RefreshToken};
use arc_swap::ArcSwap;
use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;
use url::Url;

/// At most this much of a provider response is read (contract: 64 KiB).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// What went wrong talking to the provider. Every variant but [`UpstreamError::Grant`] is a 502.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The provider answered an OAuth error about the caller's grant: the caller sees it (400).
    #[error("provider refused the grant: {code}")]
    Grant {
        /// The provider's code.
        code: OAuthErrorCode,
        /// Its description, sanitised; `None` to use the code's fixed text.
        description: Option<String>,
        /// The HTTP status it came with.
        status: StatusCode,
    },
    /// The provider refused for a reason the caller cannot fix: *our* client credentials or
    /// registration (`invalid_client`, `unauthorized_client`, `unsupported_grant_type`), or its own
    /// trouble (`server_error`, `temporarily_unavailable`).
    #[error("provider refused this server's request: {code} (HTTP {status})")]
    Refused {
        /// The provider's code.
        code: OAuthErrorCode,
        /// The HTTP status.
        status: StatusCode,
    },
    /// No answer within the deadline (connect, send and body together).
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
    /// The TCP/TLS connection could not be made.
    #[error("cannot connect: {0}")]
    Connect(#[source] reqwest::Error),
    /// The connection failed after the request may have been sent (reset, truncated body).
    #[error("transport failure: {0}")]
    Transport(#[source] reqwest::Error),
    /// A 3xx: never followed.
    #[error("provider answered with a redirect (HTTP {0})")]
    Redirect(StatusCode),
    /// A 5xx.
    #[error("provider error (HTTP {0})")]
    ServerError(StatusCode),
    /// An HTML page: a CDN challenge, an outage page.
    #[error("provider answered an HTML page (HTTP {0})")]
    Html(StatusCode),
    /// A JSON body with an `error` that is not an OAuth error (Kick's WAF answers 403 so).
    #[error("provider's firewall blocked the request (HTTP {0})")]
    Blocked(StatusCode),
    /// A body that is not JSON, or JSON we do not understand, with a non-2xx status.
    #[error("provider answered an unexpected body (HTTP {0})")]
    Unexpected(StatusCode),
    /// A 2xx whose body is not a JSON object.
    #[error("provider answered 2xx without a JSON body")]
    NotJson,
    /// A 2xx JSON body without `access_token`.
    #[error("provider answered 2xx without an access_token")]
    NoAccessToken,
    /// More than [`MAX_RESPONSE_BYTES`].
    #[error("provider response exceeds {MAX_RESPONSE_BYTES} bytes")]
    Oversized,
}

impl UpstreamError {
    /// A short stable label for logs (and metrics): what kind of failure this was.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Grant { .. } => "oauth_error",
            Self::Refused { .. } => "refused",
            Self::Timeout(_) => "timeout",
            Self::Connect(_) => "connect",
            Self::Transport(_) => "transport",
            Self::Redirect(_) => "redirect",
            Self::ServerError(_) => "5xx",
            Self::Html(_) | Self::Blocked(_) => "waf_or_html",
            Self::Unexpected(_) | Self::NotJson | Self::NoAccessToken => "bad_response",
            Self::Oversized => "oversized",
        }
    }

    /// True when this says the provider is unusable right now (the breaker counts these): no
    /// answer in time, no connection, a broken one, or a 5xx. Not a WAF or HTML page, nor any 4xx:
    /// what the caller sends (a code, a token) can provoke those, and one client must not be able
    /// to open the breaker for everyone.
    pub fn is_provider_failure(&self) -> bool {
        matches!(
            self,
            Self::Timeout(_) | Self::Connect(_) | Self::Transport(_) | Self::ServerError(_)
        )
    }

    /// The provider's HTTP status, when it answered at all.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Grant { status, .. } | Self::Refused { status, .. } => Some(*status),
            Self::Redirect(s) | Self::ServerError(s) | Self::Html(s) | Self::Blocked(s) => Some(*s),
            Self::Unexpected(s) => Some(*s),
            _ => None,
        }
    }
}

/// What the provider answered, with its status.
#[derive(Debug)]
pub struct Answer<T> {
    /// The HTTP status.
    pub status: StatusCode,
    /// The parsed answer.
    pub value: T,
}

/// A grant to redeem at the token endpoint (RFC 6749 §4.1.3, §6).
pub enum Grant<'a> {
    /// `grant_type=authorization_code` with PKCE (RFC 7636 §4.5).
    AuthorizationCode {
        /// The code from the redirect.
        code: &'a AuthorizationCode,
        /// The PKCE verifier.
        verifier: &'a CodeVerifier,
        /// The redirect URI used at the authorize step (already checked against the allowlist).
        redirect_uri: &'a str,
    },
    /// `grant_type=refresh_token`.
    RefreshToken(&'a RefreshToken),
}

/// One provider's token endpoint, credentials and HTTP client.
pub struct Upstream {
    client: reqwest::Client,
    token_url: Url,
    revoke_url: Option<Url>,
    client_id: String,
    credentials: ArcSwap<Credentials>,
    timeout: Duration,
    client_auth: ClientAuth,
    revoke_style: RevokeStyle,
}

/// The client secrets in force; swapped whole on reload (SIGHUP) or when the next one is promoted.
#[derive(Debug)]
pub struct Credentials {
    /// Sent with every token request.
    pub current: ClientSecret,
    /// Tried once when the provider answers `invalid_client` to the current one.
    pub next: Option<ClientSecret>,
}

impl Credentials {
    /// Both secrets' values: what a provider's text must never carry back to a caller.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.current.secret()).chain(self.next.iter().map(ClientSecret::secret))
    }
}

impl ProviderSettings {
    /// The HTTP client for this provider: rustls, no redirects, pooled connections, the deadline as
    /// a backstop (the caller also enforces it around body reading). It trusts the built-in
    /// (webpki) roots plus the certificates of `ca_file`, if set.
    pub fn client(&self) -> Result<reqwest::Client, reqwest::Error> {
        let mut builder = reqwest::Client::builder();
        for certificate in self.ca_certificates.certificates() {
            builder = builder.add_root_certificate(certificate.clone());
        }
        builder
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.timeout)
            .timeout(self.timeout)
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
        })
    }
}

impl Upstream {
    /// Replaces the secrets (reload): requests already sent keep the old one, the next use the new.
    pub fn set_credentials(&self, credentials: Credentials) {
        self.credentials.store(std::sync::Arc::new(credentials));
    }

    /// Redeems a grant at the token endpoint (credentials `client_secret_post` or
    /// `client_secret_basic` as configured, RFC 6749 §2.3.1).
    /// On success, the HTTP status and the normalised token response.
    ///
    /// During a secret rotation (a `next` secret configured), an `invalid_client` answer to the
    /// current secret is followed by one attempt with the next one. That is safe: the provider
    /// authenticates the client before it looks at the grant (RFC 6749 §5.2, fosite), so the code
    /// or refresh token was not used. If the next secret works, it becomes the current one.
    pub async fn token(&self, grant: Grant<'_>) -> Result<Answer<TokenResponse>, UpstreamError> {
        // One deadline for the whole exchange, the next-secret attempt included.
        let deadline = tokio::time::Instant::now() + self.timeout;
        let credentials = self.credentials.load_full();
        let first = self
            .token_with(&grant, &credentials.current, &credentials, deadline)
            .await;
        let (
            Err(UpstreamError::Refused {
                code: OAuthErrorCode::InvalidClient,
                ..
            }),
            Some(next),
        ) = (&first, &credentials.next)
        else {
            return first;
        };
        tracing::warn!("the provider refused the current client secret; trying the next one");
        let second = self.token_with(&grant, next, &credentials, deadline).await;
        // Accepted means the provider authenticated us: tokens, or an error about the grant.
        // A timeout or a WAF page says nothing about the secret.
        let next_accepted = matches!(&second, Ok(_) | Err(UpstreamError::Grant { .. }));
        if next_accepted {
            tracing::warn!(
                "the provider accepted the next client secret: it is now the current one; \
                 move it to client_secret(_file) before the next reload"
            );
            self.set_credentials(Credentials {
                current: next.clone(),
                next: None,
            });
        }
        second
    }

    /// One attempt with `client_secret`, one of `credentials`.
    async fn token_with(
        &self,
        grant: &Grant<'_>,
        client_secret: &ClientSecret,
        credentials: &Credentials,
        deadline: tokio::time::Instant,
    ) -> Result<Answer<TokenResponse>, UpstreamError> {
        let secret = client_secret.secret();
        let (mut form, secrets): (Vec<(&str, &str)>, RequestSecrets<'_>) = match grant {
            Grant::AuthorizationCode {
                code,
                verifier,
                redirect_uri,
            } => (
                vec![
                    ("grant_type", "authorization_code"),
                    ("code", code.secret()),
                    ("redirect_uri", redirect_uri),
                    ("code_verifier", verifier.secret()),
                ],
                RequestSecrets::code(code, verifier),
            ),
            Grant::RefreshToken(token) => (
                vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", token.secret()),
                ],
                RequestSecrets::refresh(token),
            ),
        };
        if self.client_auth == ClientAuth::ClientSecretPost {
            // Kick's documented order: the credentials right after the grant.
            form.insert(2, ("client_id", &self.client_id));
            form.insert(3, ("client_secret", secret));
        }
        // A provider echoing our own secret in a description must not pass it on either: the one
        // sent, and the other one of a rotation.
        let secrets = secrets.with_client_secrets(credentials.secrets());
        tracing::debug!(
            grant_type = form[0].1,
            "calling the provider's token endpoint"
        );
        let build = || {
            self.authenticate(
                self.client
                    .post(self.token_url.clone())
                    .header(reqwest::header::ACCEPT, "application/json")
                    .form(&form),
                client_secret,
            )
        };
        let (status, body) = self.send(build, deadline).await?;
        tracing::trace!(
            status = status.as_u16(),
            bytes = body.len(),
            "provider answered"
        );
        classify(status, &body, &secrets)
    }

    /// True when the provider has a revocation endpoint.
    pub fn can_revoke(&self) -> bool {
        self.revoke_url.is_some()
    }

    /// Revokes a token in the preset's style: Kick's `POST {revoke_url}?token=…&token_hint_type=…`
    /// (query string, Kick's own parameter name, answered `200 OK`); Twitch's form body with
    /// `client_id`; Google's form body with `token` only; else RFC 7009 §2.1 with client auth.
    ///
    /// RFC 7009 §2.2: an unknown or already invalid token is not an error, so a provider's
    /// `invalid_grant`/`invalid_token` counts as revoked.
    pub async fn revoke(
        &self,
        token: &AnyToken,
        hint: Option<&str>,
    ) -> Result<StatusCode, UpstreamError> {
        let Some(revoke_url) = &self.revoke_url else {
            return Err(UpstreamError::Unexpected(StatusCode::NOT_FOUND));
        };
        tracing::debug!(hint, "calling the provider's revocation endpoint");
        let credentials = self.credentials.load_full();
        let build = || match self.revoke_style {
            RevokeStyle::KickQuery => {
                let mut url = revoke_url.clone();
                {
                    let mut query = url.query_pairs_mut();
                    query.append_pair("token", token.secret());
                    if let Some(hint) = hint {
                        query.append_pair("token_hint_type", hint);
                    }
                }
                self.client
                    .post(url)
                    .header(reqwest::header::CONTENT_LENGTH, "0")
            }
            RevokeStyle::FormClientId => {
                let mut form = vec![
                    ("client_id", self.client_id.as_str()),
                    ("token", token.secret()),
                ];
                if let Some(hint) = hint {
                    form.push(("token_type_hint", hint));
                }
                self.client.post(revoke_url.clone()).form(&form)
            }
            RevokeStyle::FormTokenOnly => self
                .client
                .post(revoke_url.clone())
                .form(&[("token", token.secret())]),
            RevokeStyle::Rfc7009 => {
                let mut form = vec![("token", token.secret())];
                if let Some(hint) = hint {
                    form.push(("token_type_hint", hint));
                }
                if self.client_auth == ClientAuth::ClientSecretPost {
                    form.push(("client_id", &self.client_id));
                    form.push(("client_secret", credentials.current.secret()));
                }
                self.authenticate(
                    self.client.post(revoke_url.clone()).form(&form),
                    &credentials.current,
                )
            }
        };
        let deadline = tokio::time::Instant::now() + self.timeout;
        let (status, body) = self.send(build, deadline).await?;
        tracing::trace!(
            status = status.as_u16(),
            bytes = body.len(),
            "provider answered"
        );
        let secrets = RequestSecrets {
            values: vec![token.secret()],
        }
        .with_client_secrets(credentials.secrets());
        classify_revoke(status, &body, &secrets)
    }

    /// Adds HTTP Basic client authentication when configured (RFC 6749 §2.3.1: id and secret are
    /// form-urlencoded before they are joined and base64-encoded).
    fn authenticate(
        &self,
        request: reqwest::RequestBuilder,
        client_secret: &ClientSecret,
    ) -> reqwest::RequestBuilder {
        match self.client_auth {
            ClientAuth::ClientSecretPost => request,
            ClientAuth::ClientSecretBasic => {
                let encode = |s: &str| {
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                };
                request.basic_auth(
                    encode(&self.client_id),
                    Some(encode(client_secret.secret())),
                )
            }
        }
    }

    /// Sends the request `build` makes and reads the whole (capped) body before `deadline`.
    /// `build` runs again only for the one connect retry, so the common path copies nothing.
    async fn send(
        &self,
        build: impl Fn() -> reqwest::RequestBuilder,
        deadline: tokio::time::Instant,
    ) -> Result<(StatusCode, Vec<u8>), UpstreamError> {
        let exchange = async {
            let response = match build().send().await {
                // Nothing was sent: a second connection attempt is safe.
                Err(error) if error.is_connect() => {
                    tracing::debug!("connecting to the provider failed; retrying once");
                    build().send().await.map_err(transport_error)?
                }
                other => other.map_err(transport_error)?,
            };
            let status = response.status();
            let body = read_capped(response).await?;
            Ok((status, body))
        };
        tokio::time::timeout_at(deadline, exchange)
            .await
            .unwrap_or(Err(UpstreamError::Timeout(self.timeout)))
            .map_err(|error| match error {
                // reqwest's own backstop timer fired first: the same deadline.
                UpstreamError::Timeout(_) => UpstreamError::Timeout(self.timeout),
                other => other,
            })
    }
}

/// reqwest's errors print the URL; a revoke URL carries the token in its query. Strip it always.
fn transport_error(error: reqwest::Error) -> UpstreamError {
    let error = error.without_url();
    if error.is_timeout() {
        UpstreamError::Timeout(Duration::ZERO)
    } else if error.is_connect() {
        UpstreamError::Connect(error)
    } else {
        UpstreamError::Transport(error)
    }
}

async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, UpstreamError> {
    if response
        .content_length()
        .is_some_and(|len| len > MAX_RESPONSE_BYTES as u64)
    {
        return Err(UpstreamError::Oversized);
    }
    let mut body = Vec::with_capacity(response.content_length().map_or(1024, |len| len as usize));
    while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(UpstreamError::Oversized);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Sorts a provider answer into the contract's table. Pure: unit-testable without a network.
pub fn classify(
    status: StatusCode,
    body: &[u8],
    secrets: &RequestSecrets<'_>,
) -> Result<Answer<TokenResponse>, UpstreamError> {
    if status.is_redirection() {
        return Err(UpstreamError::Redirect(status));
    }
    if status.is_success() {
        return match TokenResponse::from_provider_body(body) {
            Ok(value) => Ok(Answer { status, value }),
            Err(TokenResponseError::NotJson) => Err(UpstreamError::NotJson),
            Err(TokenResponseError::NoAccessToken) => Err(UpstreamError::NoAccessToken),
        };
    }
    let json: Option<serde_json::Map<String, Value>> = serde_json::from_slice(body).ok();
    let oauth_error = json.as_ref().and_then(|obj| match obj.get("error") {
        Some(Value::String(code)) => Some((
            OAuthErrorCode::parse(code),
            obj.get("error_description").and_then(Value::as_str),
        )),
        _ => None,
    });
    let has_oauth_code = matches!(oauth_error, Some((Some(_), _)));
    if !has_oauth_code && !status.is_server_error() {
        if let Some(error) = json
            .as_ref()
            .and_then(|obj| twitch_error(status, obj, secrets))
        {
            return Err(error);
        }
    }
    match oauth_error {
        // RFC 6749 §5.2: OAuth errors come as 400 (401 for client authentication).
        // A "code" that contains one of the request's secrets is not passed on, nor logged.
        Some((Some(code), _))
            if secrets
                .values
                .iter()
                .any(|secret| secret.len() >= 4 && code.as_str().contains(secret)) =>
        {
            Err(UpstreamError::Unexpected(status))
        }
        Some((Some(code), description)) if matches!(status.as_u16(), 400 | 401) => {
            if code.is_about_the_grant() {
                Err(UpstreamError::Grant {
                    description: sanitize_description(description, secrets),
                    code,
                    status,
                })
            } else {
                Err(UpstreamError::Refused { code, status })
            }
        }
        Some(_) => {
            if status.is_server_error() {
                Err(UpstreamError::ServerError(status))
            } else {
                Err(UpstreamError::Blocked(status))
            }
        }
        None if status.is_server_error() => Err(UpstreamError::ServerError(status)),
        None if looks_like_html(body) => Err(UpstreamError::Html(status)),
        None => Err(UpstreamError::Unexpected(status)),
    }
}

/// Sorts a revocation answer: any 2xx is success (Kick answers `OK`, RFC 7009 an empty body).
pub fn classify_revoke(
    status: StatusCode,
    body: &[u8],
    secrets: &RequestSecrets<'_>,
) -> Result<StatusCode, UpstreamError> {
    if status.is_success() {
        return Ok(status);
    }
    match classify(status, body, secrets) {
        Err(UpstreamError::Grant { code, .. })
            if matches!(code.as_str(), "invalid_grant" | "invalid_token") =>
        {
            Ok(status)
        }
        Err(other) => Err(other),
        Ok(_) => Err(UpstreamError::Unexpected(status)),
    }
}

/// Twitch answers errors as `{"status":400,"message":"Invalid authorization code"}` (sometimes with
/// an `"error":"Bad Request"` that is not an OAuth code). Normalised to the contract: a message
/// about the code or token is `invalid_grant`, about our client `invalid_client` (502), any other
/// 400 `invalid_request`. `None` when the body is not that shape.
fn twitch_error(
    status: StatusCode,
    obj: &serde_json::Map<String, Value>,
    secrets: &RequestSecrets<'_>,
) -> Option<UpstreamError> {
    let body_status = obj.get("status")?.as_u64()?;
    let message = obj.get("message")?.as_str()?;
    if !(400..500).contains(&body_status) || !status.is_client_error() {
        return None;
    }
    let lower = message.to_ascii_lowercase();
    if lower.contains("client") {
        // "invalid client", "invalid client secret", "missing client id": our registration.
        return Some(UpstreamError::Refused {
            code: OAuthErrorCode::InvalidClient,
            status,
        });
    }
    let code = if ["authorization code", "refresh token", "invalid token"]
        .iter()
        .any(|about| lower.contains(about))
    {
        OAuthErrorCode::InvalidGrant
    } else if status == StatusCode::BAD_REQUEST {
        OAuthErrorCode::InvalidRequest
    } else {
        return None;
    };
    Some(UpstreamError::Grant {
        description: sanitize_description(Some(message), secrets),
        code,
        status,
    })
}

fn looks_like_html(body: &[u8]) -> bool {
    body.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'<')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(status: u16, body: &str) -> Result<Answer<TokenResponse>, UpstreamError> {
        let secrets = RequestSecrets::default();
        classify(
            StatusCode::from_u16(status).expect("status"),
            body.as_bytes(),
            &secrets,
        )
    }

    #[test]
    fn a_provider_code_that_echoes_a_request_secret_is_not_passed_on() {
        let secrets = RequestSecrets {
            values: vec!["SECRETREFRESHTOKEN"],
        };
        let answer = classify(
            StatusCode::BAD_REQUEST,
            br#"{"error":"xSECRETREFRESHTOKENx"}"#,
            &secrets,
        );
        assert!(matches!(answer, Err(UpstreamError::Unexpected(_))));
    }

    #[test]
    fn revocation_treats_unknown_tokens_as_revoked() {
        let secrets = RequestSecrets::default();
        let revoke = |status: u16, body: &str| {
            classify_revoke(
                StatusCode::from_u16(status).expect("status"),
                body.as_bytes(),
                &secrets,
            )
        };
        assert!(revoke(200, "OK").is_ok());
        assert!(revoke(400, r#"{"error":"invalid_grant"}"#).is_ok());
        assert!(matches!(
            revoke(400, r#"{"error":"unsupported_token_type"}"#),
            Err(UpstreamError::Grant { .. })
        ));
        assert!(matches!(
            revoke(401, r#"{"error":"invalid_client"}"#),
            Err(UpstreamError::Refused { .. })
        ));
        assert!(matches!(
            revoke(503, ""),
            Err(UpstreamError::ServerError(_))
        ));
    }

    #[test]
    fn twitch_error_shapes_are_normalised() {
        let grant = |status: u16, body: &str| match run(status, body) {
            Err(UpstreamError::Grant {
                code, description, ..
            }) => Some((code.as_str().to_owned(), description)),
            _ => None,
        };
        assert_eq!(
            grant(
                400,
                r#"{"status":400,"message":"Invalid authorization code"}"#
            ),
            Some((
                "invalid_grant".to_owned(),
                Some("Invalid authorization code".to_owned())
            ))
        );
        assert_eq!(
            grant(400, r#"{"status":400,"message":"Invalid refresh token"}"#).map(|g| g.0),
            Some("invalid_grant".to_owned())
        );
        assert_eq!(
            grant(400, r#"{"status":400,"message":"missing code verifier"}"#).map(|g| g.0),
            Some("invalid_request".to_owned())
        );
        for (status, body) in [
            (403, r#"{"status":403,"message":"invalid client secret"}"#),
            (401, r#"{"status":401,"message":"invalid client"}"#),
            (400, r#"{"status":400,"message":"invalid client"}"#),
        ] {
            assert!(matches!(
                run(status, body),
                Err(UpstreamError::Refused {
                    code: OAuthErrorCode::InvalidClient,
                    ..
                })
            ));
        }
        // A 5xx stays a provider failure whatever its body says.
        assert!(matches!(
            run(
                500,
                r#"{"status":500,"message":"Invalid authorization code"}"#
            ),
            Err(UpstreamError::ServerError(_))
        ));
        // Kick's WAF body is unaffected.
        assert!(matches!(
            run(
                403,
                r#"{"error":"Request blocked by security policy.","reference":"x"}"#
            ),
            Err(UpstreamError::Blocked(_))
        ));
    }

    #[test]
    fn every_upstream_shape_lands_in_its_row() {
        assert!(run(200, r#"{"access_token":"a"}"#).is_ok());
        assert!(matches!(
            run(400, r#"{"error":"invalid_grant","error_description":"expired"}"#),
            Err(UpstreamError::Grant { code: OAuthErrorCode::InvalidGrant, description: Some(d), .. }) if d == "expired"
        ));
        assert!(matches!(
            run(401, r#"{"error":"invalid_client"}"#),
            Err(UpstreamError::Refused { .. })
        ));
        assert!(matches!(
            run(
                403,
                r#"{"error":"Request blocked by security policy.","reference":"x"}"#
            ),
            Err(UpstreamError::Blocked(_))
        ));
        assert!(matches!(
            run(403, "<!DOCTYPE html><title>Just a moment...</title>"),
            Err(UpstreamError::Html(_))
        ));
        assert!(matches!(run(400, ""), Err(UpstreamError::Unexpected(_))));
        assert!(matches!(
            run(503, r#"{"error":"invalid_grant"}"#),
            Err(UpstreamError::ServerError(_))
        ));
        assert!(matches!(run(302, ""), Err(UpstreamError::Redirect(_))));
        assert!(matches!(run(200, "OK"), Err(UpstreamError::NotJson)));
        assert!(matches!(run(200, "{}"), Err(UpstreamError::NoAccessToken)));
        assert!(matches!(
            run(400, r#"{"error":"server_error"}"#),
            Err(UpstreamError::Refused { .. })
        ));
    }
}
