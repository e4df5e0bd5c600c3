//! The endpoints of id.kick.com: authorize, token, revoke and introspect.
//!
//! Parameters are read the way Go's `net/http` reads them (first value wins, a missing parameter
//! is the empty string), because that is what fosite sees.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Serialize;
use serde_json::json;

use crate::config::RegisteredClient;
use crate::error::{plain_server_error, ErrorCode, OAuthError};
use crate::faults;
use crate::state::App;
use crate::stats::bump;
use crate::store::{ApprovedRequest, IssuedTokens, TokenHint};
use crate::tokens::constant_time_eq;

/// Assembles the emulated server: the three API routes behind the fault gate, the authorization
/// endpoint outside it, and a 404 page for everything else.
pub(crate) fn router(app: Arc<App>) -> Router {
    let api = Router::new()
        .route("/oauth/token", any(token))
        .route("/oauth/revoke", post(revoke))
        .route("/oauth/token/introspect", post(introspect))
        .route_layer(middleware::from_fn_with_state(app.clone(), faults::gate));
    Router::new()
        .route("/oauth/authorize", get(authorize))
        .merge(api)
        .fallback(not_found)
        .with_state(app)
}

/// Query or form parameters with Go's `url.Values.Get` semantics.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(input: &[u8]) -> Self {
        Self(url::form_urlencoded::parse(input).into_owned().collect())
    }

    fn from_uri(uri: &Uri) -> Self {
        Self::parse(uri.query().unwrap_or_default().as_bytes())
    }

    /// The first value of `key`, or `""` when absent.
    fn get(&self, key: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A JSON answer with the headers fosite puts on every token endpoint response
/// (RFC 6749 §5.1: `Cache-Control: no-store`, `Pragma: no-cache`).
pub(crate) fn oauth_json(status: StatusCode, body: &impl Serialize) -> Response {
    let Ok(bytes) = serde_json::to_vec(body) else {
        return plain_server_error();
    };
    let mut response = (status, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// A JSON answer in the shape of Kick's public API (`{"data": …, "message": …}`).
fn api_json(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `redirect_uri` with `pairs` appended to its query (RFC 6749 §4.1.2: keep any existing query).
fn redirect_to(redirect_uri: &str, pairs: &[(&str, &str)]) -> Response {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        query.append_pair(key, value);
    }
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    let location = format!("{redirect_uri}{separator}{}", query.finish());
    match HeaderValue::from_str(&location) {
        Ok(value) => (StatusCode::FOUND, [(header::LOCATION, value)]).into_response(),
        // Only a registered URI with characters illegal in a header gets here.
        Err(_) => plain_server_error(),
    }
}

/// `GET /oauth/authorize` (RFC 6749 §4.1.1, RFC 7636 §4.3). The user is deemed logged in and
/// consenting, so a valid request is redirected at once with a code. Until the client and its
/// redirect URI are known to be genuine, errors are JSON; after that they are redirects.
async fn authorize(State(app): State<Arc<App>>, uri: Uri) -> Response {
    bump(&app.counters.authorize_requests);
    let query = Params::from_uri(&uri);
    let Some(client) = app.client(query.get("client_id")) else {
        tracing::debug!("authorize refused: unknown client");
        return OAuthError::invalid_client()
            .with_hint("The requested OAuth 2.0 Client does not exist.")
            .with_status(StatusCode::BAD_REQUEST)
            .into_response();
    };
    let requested = query.get("redirect_uri");
    let redirect_uri = match (requested, client.redirect_uris.as_slice()) {
        ("", [only]) => only.clone(),
        (uri, registered) if registered.iter().any(|r| r == uri) => uri.to_owned(),
        _ => {
            tracing::debug!(client_id = %client.client_id, "authorize refused: redirect_uri not registered");
            return OAuthError::invalid_request(
                "The 'redirect_uri' parameter does not match any of the OAuth 2.0 Client's pre-registered redirect urls.",
            )
            .into_response();
        }
    };
    let state = query.get("state");
    let fail = |err: OAuthError| {
        tracing::debug!(client_id = %client.client_id, error = err.code().as_str(), "authorize refused");
        let [(k1, v1), (k2, v2)] = err.query_pairs();
        redirect_to(&redirect_uri, &[(k1, &v1), (k2, &v2), ("state", state)])
    };
    if state.len() < 8 {
        return fail(OAuthError::new(ErrorCode::InvalidState).with_hint(
            "Request parameter 'state' must be at least be 8 characters long to ensure sufficient entropy.",
        ));
    }
    let response_type = query.get("response_type");
    if response_type != "code" {
        return fail(
            OAuthError::new(ErrorCode::UnsupportedResponseType).with_hint(format!(
                "The client is not allowed to request response_type '{response_type}'."
            )),
        );
    }
    let code_challenge = query.get("code_challenge");
    if code_challenge.is_empty() {
        return fail(OAuthError::invalid_request(
            "Clients must include a code_challenge when performing the authorize code flow, but it is missing.",
        ));
    }
    match query.get("code_challenge_method") {
        "S256" => {}
        "" | "plain" => {
            return fail(OAuthError::invalid_request(
                "Clients must use code_challenge_method=S256, plain is not allowed.",
            ))
        }
        _ => {
            return fail(OAuthError::invalid_request(
                "The code_challenge_method is not supported, use S256 instead.",
            ))
        }
    }
    let scope = query
        .get("scope")
        .split(' ')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let approved = ApprovedRequest {
        client_id: client.client_id.clone(),
        redirect_uri: (!requested.is_empty()).then(|| requested.to_owned()),
        scope: scope.clone(),
        code_challenge: code_challenge.to_owned(),
    };
    let now = app.clock.now();
    let issued = app.store().issue_code(approved, now);
    match issued {
        Ok(code) => {
            bump(&app.counters.codes_issued);
            tracing::debug!(client_id = %client.client_id, "authorization code issued");
            redirect_to(
                &redirect_uri,
                &[("code", &code), ("scope", &scope), ("state", state)],
            )
        }
        Err(err) => fail(err),
    }
}

#[derive(Debug, Clone, Copy)]
enum Grant {
    AuthorizationCode,
    RefreshToken,
}

/// The success body, fields in Kick's order (RFC 6749 §5.1).
#[derive(Serialize)]
struct TokenBody<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
    refresh_token: &'a str,
    scope: &'a str,
}

/// `/oauth/token` (RFC 6749 §3.2): the authorization code and refresh grants.
async fn token(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match token_outcome(&app, &method, &headers, &body) {
        Ok((grant, tokens)) => {
            let counter = match grant {
                Grant::AuthorizationCode => &app.counters.authorization_code_grants_ok,
                Grant::RefreshToken => &app.counters.refresh_grants_ok,
            };
            bump(counter);
            tracing::debug!(?grant, "tokens issued");
            token_response(&tokens)
        }
        Err(err) => {
            bump(&app.counters.token_errors);
            tracing::debug!(error = err.code().as_str(), "token request refused");
            err.into_response()
        }
    }
}

fn token_response(tokens: &IssuedTokens) -> Response {
    oauth_json(
        StatusCode::OK,
        &TokenBody {
            access_token: &tokens.access_token,
            token_type: "Bearer",
            expires_in: tokens.expires_in,
            refresh_token: &tokens.refresh_token,
            scope: &tokens.scope,
        },
    )
}

/// fosite's `NewAccessRequest` order: method, body, `grant_type`, client authentication, grant.
fn token_outcome(
    app: &App,
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Grant, IssuedTokens), OAuthError> {
    if method != Method::POST {
        return Err(OAuthError::invalid_request(format!(
            "HTTP method is '{method}', expected 'POST'."
        )));
    }
    // Go's ParseForm ignores bodies that are not form-encoded, so fosite then sees no
    // parameters at all.
    let form = if is_form_urlencoded(headers) {
        Params::parse(body)
    } else {
        Params(Vec::new())
    };
    if form.is_empty() {
        return Err(OAuthError::invalid_request(
            "The POST body can not be empty.",
        ));
    }
    let grant_type = form.get("grant_type");
    if grant_type.is_empty() {
        return Err(OAuthError::invalid_request(
            "Request parameter 'grant_type' is missing",
        ));
    }
    let client = authenticate_client(app, headers, &form)?;
    let now = app.clock.now();
    match grant_type {
        "authorization_code" => app
            .store()
            .exchange_code(
                &client.client_id,
                form.get("code"),
                form.get("redirect_uri"),
                form.get("code_verifier"),
                now,
            )
            .map(|tokens| (Grant::AuthorizationCode, tokens)),
        "refresh_token" => app
            .store()
            .refresh(&client.client_id, form.get("refresh_token"), now)
            .map(|tokens| (Grant::RefreshToken, tokens)),
        _ => Err(OAuthError::new(ErrorCode::UnsupportedGrantType)),
    }
}

fn is_form_urlencoded(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| {
            essence
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// `client_secret_post` (RFC 6749 §2.3.1), the method Kick's clients are registered with.
/// Like fosite, HTTP Basic credentials take precedence and are then refused for that reason.
fn authenticate_client<'a>(
    app: &'a App,
    headers: &HeaderMap,
    form: &Params,
) -> Result<&'a RegisteredClient, OAuthError> {
    let basic = basic_credentials(headers);
    let (client_id, secret) = match &basic {
        Some((id, secret)) => (id.as_str(), secret.as_str()),
        None => {
            let id = form.get("client_id");
            if id.is_empty() {
                return Err(OAuthError::invalid_request(
                    "Client credentials missing or malformed in both HTTP Authorization header and HTTP POST body.",
                ));
            }
            (id, form.get("client_secret"))
        }
    };
    let client = app
        .client(client_id)
        .ok_or_else(OAuthError::invalid_client)?;
    if basic.is_some() && !secret.is_empty() {
        return Err(OAuthError::invalid_client().with_hint(
            "The OAuth 2.0 Client supports client authentication method 'client_secret_post', but method 'client_secret_basic' was requested. You must configure the OAuth 2.0 client's 'token_endpoint_auth_method' value to accept 'client_secret_basic'.",
        ));
    }
    if !constant_time_eq(secret.as_bytes(), client.client_secret.as_bytes()) {
        tracing::debug!(client_id = %client.client_id, "client authentication failed");
        return Err(OAuthError::invalid_client());
    }
    Ok(client)
}

/// `Authorization: Basic` credentials, as Go's `Request.BasicAuth` reads them.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// `POST /oauth/revoke?token=…&token_hint_type=…`: Kick's revocation endpoint, parameters in the
/// query string. Like RFC 7009 §2.2 it answers 200 for unknown tokens too. A known token revokes
/// its whole grant (every access and refresh token descended from the same authorization).
async fn revoke(State(app): State<Arc<App>>, uri: Uri) -> Response {
    let query = Params::from_uri(&uri);
    let token = query.get("token");
    if token.is_empty() {
        tracing::debug!("revocation refused: no token parameter");
        return OAuthError::invalid_request("The 'token' query parameter is missing.")
            .into_response();
    }
    let hint = match query.get("token_hint_type") {
        "access_token" => Some(TokenHint::AccessToken),
        "refresh_token" => Some(TokenHint::RefreshToken),
        _ => None,
    };
    let known = app.store().revoke(token, hint);
    bump(&app.counters.revocations);
    if known {
        bump(&app.counters.revocations_of_known_tokens);
    }
    tracing::debug!(known, "revocation processed");
    let mut response = (StatusCode::OK, "OK").into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// `POST /oauth/token/introspect` with `Authorization: Bearer <access token>`: Kick's
/// introspection (the token to inspect is the caller's own bearer token).
async fn introspect(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let Some(token) = bearer_token(&headers) else {
        return api_json(
            StatusCode::UNAUTHORIZED,
            &json!({"data": {}, "message": "Unauthorized"}),
        );
    };
    let now = app.clock.now();
    let active = app.store().introspect(token, now);
    let data = match active {
        Some(t) => json!({
            "active": true,
            "client_id": t.client_id,
            "exp": t.exp,
            "scope": t.scope,
            "token_type": "user",
        }),
        None => json!({"active": false}),
    };
    api_json(StatusCode::OK, &json!({"data": data, "message": "OK"}))
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

async fn not_found() -> Response {
    faults::outage()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_follow_go_semantics() {
        let p = Params::parse(b"a=1&a=2&b=x+y%21&c");
        assert_eq!(p.get("a"), "1");
        assert_eq!(p.get("b"), "x y!");
        assert_eq!(p.get("c"), "");
        assert_eq!(p.get("missing"), "");
    }

    #[test]
    fn form_content_type_accepts_charset_and_case() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("Application/X-WWW-Form-Urlencoded; charset=UTF-8"),
        );
        assert!(is_form_urlencoded(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        assert!(!is_form_urlencoded(&headers));
    }

    #[test]
    fn redirect_keeps_an_existing_query() {
        let response = redirect_to("app://cb?x=1", &[("code", "A B")]);
        assert_eq!(
            response.headers().get(header::LOCATION),
            Some(&HeaderValue::from_static("app://cb?x=1&code=A+B"))
        );
    }
}
