//! The provider's token and revocation endpoints: the requests this proxy sends, and every answer
//! classified once ([`UpstreamError`], [`Class`]) so nothing above looks at raw bodies.
//!
//! - here: [`Upstream`], one provider's endpoints and credentials, each request built directly as
//!   an `http::Request` (the endpoint's URI parsed once, static header values, the form encoded
//!   once), the next-secret fallback;
//! - [`mod@client`]: the provider's HTTP client, built once from its settings: hyper-util's pooled
//!   legacy client (HTTP/1.1, HTTP/2 by ALPN) over rustls, which follows no redirect and retries
//!   nothing itself but a request whose pooled connection was found closed before it was written;
//! - `connect`: opening a connection, straight or through the environment's egress proxy
//!   (`HTTP_PROXY`, `HTTPS_PROXY` by `CONNECT`, `ALL_PROXY`, `NO_PROXY`; HTTP/1.1 to the proxy, a
//!   SOCKS one refused when the client is built), under the timeout;
//! - `form`: the form bodies, written straight into the bytes sent;
//! - [`transport`]: one request under one deadline, the body capped;
//! - [`classify`]: an answer sorted into the contract's table;
//! - [`error`]: [`UpstreamError`] and the one table of what each outcome means.
//!
//! Each provider's circuit breaker is [`crate::breaker`], held beside its `Upstream` in the exchange.
//!
//! Nothing here retries a request that may have reached the provider: an authorization code is
//! single-use and a replayed refresh can revoke the grant.

pub mod classify;
mod client;
mod connect;
mod error;
mod form;
mod transport;

pub use client::{BuildError, Client};
pub use error::UpstreamError;

/// At most this much of a provider response is read (contract: 64 KiB).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// `User-Agent` of every provider call (and of a `CONNECT` to an egress proxy).
const USER_AGENT: HeaderValue =
    HeaderValue::from_static(concat!("kick-oauth-proxy/", env!("CARGO_PKG_VERSION")));
/// `Accept` of a token request, built once.
const ACCEPT_JSON: HeaderValue = HeaderValue::from_static("application/json");
/// `Accept` of a revocation request (any answer: Kick's is `OK`), as reqwest sent it.
const ACCEPT_ANY: HeaderValue = HeaderValue::from_static("*/*");
/// `Content-Type` of a form (RFC 6749 §4.1.3, §6; RFC 7009 §2.1), built once.
const FORM_URLENCODED: HeaderValue = HeaderValue::from_static("application/x-www-form-urlencoded");
/// `Content-Length` of a revocation request without a body.
const ZERO_LENGTH: HeaderValue = HeaderValue::from_static("0");

use crate::config::ClientAuth;
use crate::oauth::{OAuthErrorCode, RequestSecrets, TokenResponse};
use crate::providers::{Dialect, RevokeStyle};
use crate::secret::{AnyToken, AuthorizationCode, ClientSecret, CodeVerifier, RefreshToken};
use arc_swap::ArcSwap;
use bytes::Bytes;
use classify::{classify, classify_revoke};
use form::Form;
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use std::time::Duration;
use url::Url;

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
    client: Client,
    token: Endpoint,
    revoke: Option<Endpoint>,
    client_id: String,
    credentials: ArcSwap<Credentials>,
    timeout: Duration,
    client_auth: ClientAuth,
    revoke_style: RevokeStyle,
    dialect: Dialect,
}

/// One endpoint, resolved once when the client is built: nothing about it is parsed per request.
struct Endpoint {
    /// As configured, without user info: a revocation adds its query string to it.
    url: Url,
    /// The same, as the HTTP client takes it.
    uri: Uri,
    /// HTTP Basic credentials from the URL's user info, as reqwest sent them.
    userinfo: Option<HeaderValue>,
    /// `Proxy-Authorization` of an http:// endpoint reached through an egress proxy whose URL
    /// carries credentials (for https:// they go in the tunnel's `CONNECT`).
    proxy_authorization: Option<HeaderValue>,
}

impl Endpoint {
    /// A `POST` of `body` to `uri` (this endpoint's, or it with a query) with the headers every
    /// provider call carries. `Host` and `Content-Length` (of a body) are the client's.
    fn post(&self, uri: Uri, body: Bytes, accept: HeaderValue) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        // Room for ours and the client's (`Host`, `Content-Length`) without growing.
        *request.headers_mut() = HeaderMap::with_capacity(8);
        let headers = request.headers_mut();
        if let Some(userinfo) = &self.userinfo {
            headers.append(header::AUTHORIZATION, userinfo.clone());
        }
        headers.append(header::ACCEPT, accept);
        headers.append(header::USER_AGENT, USER_AGENT);
        if let Some(proxy_authorization) = &self.proxy_authorization {
            headers.append(header::PROXY_AUTHORIZATION, proxy_authorization.clone());
        }
        request
    }
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

impl Upstream {
    /// The client id this provider's requests carry (restart-only: a reload does not change it).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

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
            // Only over the secrets this call started with: a reload that landed meanwhile
            // (SIGHUP) is the operator's newer word, and stays.
            let promoted = std::sync::Arc::new(Credentials {
                current: next.clone(),
                next: None,
            });
            let before = self.credentials.compare_and_swap(&credentials, promoted);
            if std::sync::Arc::ptr_eq(&before, &credentials) {
                tracing::warn!(
                    "the provider accepted the next client secret: it is now the current one; \
                     move it to client_secret(_file) before the next reload"
                );
            } else if before.next.is_none() && before.current.secret() == next.secret() {
                // Another call that met the same refusal promoted it first.
                tracing::debug!("the next client secret was already promoted");
            } else {
                tracing::warn!(
                    "the provider accepted the next client secret, but the secrets were reloaded \
                     meanwhile: the reloaded ones stay"
                );
            }
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
        // The form, encoded once into one buffer; a connect retry sends the same bytes again.
        let (form, grant_type, secrets) = {
            let mut form = Form::with_capacity(384);
            let post_credentials = |form: &mut Form| {
                if self.client_auth == ClientAuth::ClientSecretPost {
                    // Kick's documented order: the credentials right after the grant.
                    form.append_pair("client_id", &self.client_id);
                    form.append_pair("client_secret", client_secret.secret());
                }
            };
            let (grant_type, secrets) = match grant {
                Grant::AuthorizationCode {
                    code,
                    verifier,
                    redirect_uri,
                } => {
                    form.append_pair("grant_type", "authorization_code");
                    form.append_pair("code", code.secret());
                    post_credentials(&mut form);
                    form.append_pair("redirect_uri", redirect_uri);
                    form.append_pair("code_verifier", verifier.secret());
                    ("authorization_code", RequestSecrets::code(code, verifier))
                }
                Grant::RefreshToken(token) => {
                    form.append_pair("grant_type", "refresh_token");
                    form.append_pair("refresh_token", token.secret());
                    post_credentials(&mut form);
                    ("refresh_token", RequestSecrets::refresh(token))
                }
            };
            (form.finish(), grant_type, secrets)
        };
        // A provider echoing our own secret in a description must not pass it on either: the one
        // sent, and the other one of a rotation.
        let secrets = secrets.with_client_secrets(credentials.secrets());
        tracing::debug!(grant_type, "calling the provider's token endpoint");
        let authorization = self.basic_authorization(client_secret)?;
        let build = || {
            let mut request = self
                .token
                .post(self.token.uri.clone(), form.clone(), ACCEPT_JSON);
            let headers = request.headers_mut();
            headers.append(header::CONTENT_TYPE, FORM_URLENCODED);
            if let Some(authorization) = &authorization {
                headers.append(header::AUTHORIZATION, authorization.clone());
            }
            request
        };
        let (status, body) = self.send(build, deadline).await?;
        tracing::trace!(
            status = status.as_u16(),
            bytes = body.len(),
            "provider answered"
        );
        classify(status, &body, self.dialect, &secrets)
    }

    /// The one deadline of a call (connect, send, whole body, the next-secret retry included).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// True when the provider has a revocation endpoint.
    pub fn can_revoke(&self) -> bool {
        self.revoke.is_some()
    }

    /// Revokes a token in the provider's [`RevokeStyle`] (Kick's query string, Twitch's form with
    /// `client_id`, Google's `token` only, else RFC 7009 §2.1 with client authentication).
    ///
    /// RFC 7009 §2.2: an unknown or already invalid token is not an error, so a provider's
    /// `invalid_grant`/`invalid_token` counts as revoked.
    pub async fn revoke(
        &self,
        token: &AnyToken,
        hint: Option<&str>,
    ) -> Result<StatusCode, UpstreamError> {
        let Some(revoke) = &self.revoke else {
            return Err(UpstreamError::Unexpected(StatusCode::NOT_FOUND));
        };
        tracing::debug!(hint, "calling the provider's revocation endpoint");
        let credentials = self.credentials.load_full();
        let request = self
            .revoke_style
            .request(token.secret(), hint, &self.client_id);
        // Built once; a connect retry sends the same again. With Kick the URI carries the token
        // in its query: no error quotes it.
        let uri = if request.query.is_empty() {
            revoke.uri.clone()
        } else {
            let mut url = revoke.url.clone();
            url.query_pairs_mut().extend_pairs(&request.query);
            url.as_str()
                .parse::<Uri>()
                .map_err(|e| UpstreamError::Transport(Box::new(e)))?
        };
        let mut headers = HeaderMap::with_capacity(2);
        let body = match &request.form {
            None => {
                headers.append(header::CONTENT_LENGTH, ZERO_LENGTH);
                Bytes::new()
            }
            Some(form) => {
                let mut serializer = Form::with_capacity(256);
                for (name, value) in form {
                    serializer.append_pair(name, value);
                }
                headers.append(header::CONTENT_TYPE, FORM_URLENCODED);
                if request.client_auth {
                    if self.client_auth == ClientAuth::ClientSecretPost {
                        serializer.append_pair("client_id", &self.client_id);
                        serializer.append_pair("client_secret", credentials.current.secret());
                    }
                    if let Some(authorization) = self.basic_authorization(&credentials.current)? {
                        headers.append(header::AUTHORIZATION, authorization);
                    }
                }
                serializer.finish()
            }
        };
        let build = || {
            let mut built = revoke.post(uri.clone(), body.clone(), ACCEPT_ANY);
            for (name, value) in &headers {
                built.headers_mut().append(name, value.clone());
            }
            built
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
        classify_revoke(status, &body, self.dialect, &secrets)
    }

    /// HTTP Basic client authentication when configured (RFC 6749 §2.3.1: id and secret are
    /// form-urlencoded before they are joined and base64-encoded).
    fn basic_authorization(
        &self,
        client_secret: &ClientSecret,
    ) -> Result<Option<HeaderValue>, UpstreamError> {
        match self.client_auth {
            ClientAuth::ClientSecretPost => Ok(None),
            ClientAuth::ClientSecretBasic => {
                basic(
                    &form::encoded(&self.client_id),
                    Some(&form::encoded(client_secret.secret())),
                )
                .map(Some)
                // Base64 and "Basic " are visible ASCII: not reached.
                .map_err(|e| UpstreamError::Transport(Box::new(e)))
            }
        }
    }
}

/// `Basic base64(user:password)` (RFC 7617), marked sensitive (HPACK never indexes it).
fn basic(user: &str, password: Option<&str>) -> Result<HeaderValue, header::InvalidHeaderValue> {
    use base64::Engine;
    let mut credentials = String::with_capacity(user.len() + password.map_or(0, str::len) + 1);
    credentials.push_str(user);
    credentials.push(':');
    if let Some(password) = password {
        credentials.push_str(password);
    }
    let mut value = String::from("Basic ");
    base64::engine::general_purpose::STANDARD.encode_string(credentials, &mut value);
    let mut value = HeaderValue::try_from(value)?;
    value.set_sensitive(true);
    Ok(value)
}

/// Takes the user info out of `url` and returns it as HTTP Basic credentials (percent-decoded),
/// as reqwest did with a URL's user info.
fn userinfo_authorization(url: &mut Url) -> Option<HeaderValue> {
    if !url.has_authority() {
        return None;
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .ok()
            .map(String::from)
    };
    let user = decode(url.username());
    let password = url.password().and_then(decode);
    // Out of the URI in every case: it is the HTTP/2 `:authority` and the pool's key. User info
    // that does not decode to UTF-8 is dropped rather than sent there.
    let (Ok(()), Ok(())) = (url.set_username(""), url.set_password(None)) else {
        return None;
    };
    match user {
        Some(user) if !user.is_empty() || password.is_some() => {
            basic(&user, password.as_deref()).ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::userinfo_authorization;
    use url::Url;

    #[test]
    fn user_info_becomes_basic_credentials_and_leaves_the_uri() {
        let mut url = Url::parse("https://us%40er:p%3Ass@id.example/oauth/token").expect("url");
        let header = userinfo_authorization(&mut url).expect("credentials");
        // base64("us@er:p:ss")
        assert_eq!(header.to_str().ok(), Some("Basic dXNAZXI6cDpzcw=="));
        assert!(header.is_sensitive());
        assert_eq!(url.as_str(), "https://id.example/oauth/token");
    }

    #[test]
    fn user_info_that_does_not_decode_is_dropped_not_sent_in_the_uri() {
        let mut url = Url::parse("https://%FF:secret@id.example/oauth/token").expect("url");
        assert!(userinfo_authorization(&mut url).is_none());
        assert_eq!(url.as_str(), "https://id.example/oauth/token");
        let mut plain = Url::parse("https://id.example/oauth/token").expect("url");
        assert!(userinfo_authorization(&mut plain).is_none());
    }
}
