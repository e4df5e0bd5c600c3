//! `GET /api/v1/{provider}/authorize` and `GET /api/v1/{provider}/callback`: the relay's two
//! browser-facing steps. Both are navigations, not API calls: success is a `302`, a refusal is a
//! small self-contained HTML page (`400`) and never a redirect. Every answer carries
//! `Cache-Control: no-store` and `Referrer-Policy: no-referrer`: the URLs hold a code and states.
//! Nothing from the query reaches a log; the request line says which rule refused, by code.

use super::docs;
use super::extract::MAX_CREDENTIAL_LEN;
use super::state::AppState;
use crate::config::relay::Relay;
use crate::exchange::Provider;
use crate::oauth::{sanitize_description, OAuthErrorCode, RequestSecrets};
use crate::relay::seal::{Flow, OpenError};
use crate::relay::target::is_allowed;
use crate::reply::{ApiError, Outcome, ProviderLabel};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The relay's routes, merged into the API router (so load shedding covers them).
pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route(
            "/api/v1/{provider}/authorize",
            axum::routing::get(authorize),
        )
        .route("/api/v1/{provider}/callback", axum::routing::get(callback))
}

/// The app's `state`: 8 (fosite's minimum) to 512 visible ASCII characters.
const APP_STATE_LEN: std::ops::RangeInclusive<usize> = 8..=512;
/// A `scope` value.
const MAX_SCOPE_LEN: usize = 1024;

/// Query parameters of `GET /api/v1/{provider}/authorize`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct AuthorizeQuery {
    /// The app's loopback listener: one of the relay's `targets` with a port in place of the `*`
    /// (e.g. `http://127.0.0.1:50123/callback`), byte for byte.
    #[param(example = "http://127.0.0.1:50123/callback")]
    redirect_uri: String,
    /// The app's own `state` (8 to 512 visible ASCII characters), returned to it unchanged with
    /// the code.
    #[param(
        min_length = 8,
        max_length = 512,
        example = "q3Yb0oV2mJ8rUu0c6bTn1x8y5Qw4kLzR2sD7fG9hJ1k"
    )]
    state: String,
    /// The PKCE challenge, `BASE64URL(SHA256(code_verifier))` (RFC 7636 §4.2): 43 characters.
    #[param(
        min_length = 43,
        max_length = 43,
        pattern = "^[A-Za-z0-9_-]{43}$",
        example = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )]
    code_challenge: String,
    /// Must be `S256`; `plain` or none is refused.
    #[param(pattern = "^S256$", example = "S256")]
    code_challenge_method: String,
    /// Space-separated scopes, passed to the provider as they are.
    #[param(example = "user:read channel:read")]
    scope: Option<String>,
}

/// Query parameters of `GET /api/v1/{provider}/callback`, as the provider sends them.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct CallbackQuery {
    /// The sealed state this proxy sent the provider.
    state: String,
    /// The authorization code (RFC 6749 §4.1.2); absent when `error` is sent.
    code: Option<String>,
    /// The provider's error (RFC 6749 §4.1.2.1), passed to the app sanitised.
    error: Option<String>,
    /// The provider's error description, passed to the app sanitised.
    error_description: Option<String>,
    /// The granted scopes, passed to the app when well-formed.
    scope: Option<String>,
}

/// `GET /api/v1/{provider}/authorize`: checks the app's loopback target and PKCE challenge, seals
/// the target, the app's state and an expiry into the provider `state`, and redirects to the
/// provider's authorization endpoint.
#[utoipa::path(
    get,
    path = "/api/v1/{provider}/authorize",
    operation_id = "relayAuthorize",
    tag = "relay",
    summary = "Start a relayed login on an ephemeral loopback port",
    description = "For providers that compare redirect URIs exactly (Kick, Twitch): the app \
        listens on any loopback port and opens this URL in the browser. The proxy checks \
        `redirect_uri` against the relay's loopback `targets` (byte for byte, the port free) and \
        requires an S256 PKCE challenge, then answers 302 to the provider's authorization \
        endpoint with its own `client_id`, `redirect_uri` = the relay's `callback_url`, a sealed \
        `state` (the target, the app's state and an expiry, encrypted and authenticated), the \
        challenge and the scope. Nothing is stored. A refused request gets an HTML page and no \
        redirect. 404 when the provider has no relay configured.",
    params(docs::ProviderPath, AuthorizeQuery),
    responses(
        (status = 302, description = "To the provider's authorization endpoint.", headers(
            ("Location" = String, description = "The provider's authorization URL with `response_type=code`, `client_id`, `redirect_uri`, `state`, `code_challenge`, `code_challenge_method=S256` and `scope`."),
            ("Referrer-Policy" = String, description = "Always `no-referrer`."),
        )),
        (status = 400, description = "Refused (a target that is not an allowed loopback URI, no S256 challenge, no or bad state, a parameter sent twice): a small HTML page, no redirect; nothing is contacted.", content_type = "text/html", body = String),
        (status = 404, response = docs::NotFound),
        (status = 405, response = docs::MethodNotAllowed),
        (status = 503, response = docs::ServiceUnavailable),
    )
)]
pub async fn authorize(
    State(state): State<AppState>,
    provider: Result<Path<String>, PathRejection>,
    uri: Uri,
) -> Response {
    with_relay(&state, provider, "authorize", |relay, provider| {
        // The client id `/token` exchanges with: the one the provider was built with (a change
        // needs a restart), not a reloaded one.
        let client_id = provider.upstream.client_id();
        start(
            relay,
            &provider.label.name,
            client_id,
            uri.query().unwrap_or(""),
        )
    })
}

/// `GET /api/v1/{provider}/callback`: opens the sealed state and redirects the code (or the
/// provider's error, sanitised) to the app's loopback target with the app's own state.
#[utoipa::path(
    get,
    path = "/api/v1/{provider}/callback",
    operation_id = "relayCallback",
    tag = "relay",
    summary = "The provider's redirect back to a relayed login",
    description = "Registered at the provider as the relay's `callback_url`. Opens the sealed \
        `state`; when it is authentic (sealed by this proxy's current or previous key, for this \
        provider) and not expired, answers 302 to the app's loopback target with `code` and the \
        app's own `state` (or the provider's `error` and `error_description`, sanitised). A \
        missing, altered, foreign-key or expired state gets an HTML page and no redirect. The app \
        then exchanges the code at `/token` with `redirect_uri` = the relay's `callback_url`. \
        404 when the provider has no relay configured.",
    params(docs::ProviderPath, CallbackQuery),
    responses(
        (status = 302, description = "To the app's loopback target.", headers(
            ("Location" = String, description = "The loopback target with `code`, `state` (the app's) and `scope`, or with `error`, `error_description` and `state`."),
            ("Referrer-Policy" = String, description = "Always `no-referrer`."),
        )),
        (status = 400, description = "Refused (no state, an altered or foreign-key state, an expired login, a malformed code): a small HTML page, no redirect.", content_type = "text/html", body = String),
        (status = 404, response = docs::NotFound),
        (status = 405, response = docs::MethodNotAllowed),
        (status = 503, response = docs::ServiceUnavailable),
    )
)]
pub async fn callback(
    State(state): State<AppState>,
    provider: Result<Path<String>, PathRejection>,
    uri: Uri,
) -> Response {
    with_relay(&state, provider, "callback", |relay, provider| {
        come_back(
            relay,
            &provider.label.name,
            uri.query().unwrap_or(""),
            unix_now(),
        )
    })
}

/// Runs one relay step for the running provider with its relay in the settings in force
/// (reloaded on SIGHUP), and turns the answer into the response; a 404 for an unknown provider or
/// one without a relay.
fn with_relay(
    state: &AppState,
    provider: Result<Path<String>, PathRejection>,
    endpoint: &'static str,
    step: impl FnOnce(&Relay, &Provider) -> Answer,
) -> Response {
    let Some(provider) = provider
        .ok()
        .and_then(|Path(name)| state.exchange().provider(&name).cloned())
    else {
        return not_found(None, endpoint);
    };
    let settings = state.settings();
    let label = provider.label.clone();
    let Some(relay) = settings
        .providers
        .get(&label.name)
        .and_then(|p| p.relay.as_ref())
    else {
        return not_found(Some(label), endpoint);
    };
    finish(step(relay, &provider), label, endpoint)
}

/// An unknown provider.
fn not_found(provider: Option<Arc<ProviderLabel>>, endpoint: &'static str) -> Response {
    let mut response = ApiError::NotFound.into_response();
    if let Some(outcome) = response.extensions_mut().get_mut::<Outcome>() {
        outcome.provider = provider;
        outcome.endpoint = Some(endpoint);
    }
    response
}

/// What a step decided: a redirect, or a refusal.
enum Answer {
    /// 302 to this URL.
    Redirect(String),
    /// 400 with the page for this refusal.
    Refused(Refusal),
    /// 503: no randomness for the nonce.
    Unavailable,
}

/// Why a step refused. Each has a fixed page text and a log code; none carries a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// A parameter sent twice, not UTF-8, or missing.
    Malformed,
    /// `redirect_uri` missing or not one of the targets.
    Target,
    /// No challenge, or not S256.
    Challenge,
    /// The app's `state` missing or outside the rules.
    AppState,
    /// A `scope` with characters RFC 6749 §3.3 does not allow.
    Scope,
    /// The callback has no `state`.
    NoState,
    /// The sealed state did not open.
    Sealed(OpenError),
    /// A code that is not visible ASCII or too long.
    Code,
}

impl Refusal {
    fn code(self) -> &'static str {
        match self {
            Self::Malformed | Self::Scope | Self::AppState => "invalid_request",
            Self::Target => "invalid_target",
            Self::Challenge => "invalid_challenge",
            Self::NoState => "missing_state",
            Self::Sealed(e) => e.code(),
            Self::Code => "invalid_code",
        }
    }

    fn text(self) -> &'static str {
        match self {
            Self::Malformed => {
                "The login request is malformed (a parameter is missing or sent twice). Start the \
                 login again from the app."
            }
            Self::Target => {
                "The app asked to receive the login at an address this server does not send \
                 logins to. Nothing was sent anywhere."
            }
            Self::Challenge => {
                "The app's login request has no PKCE S256 code challenge, which this server \
                 requires. Update the app."
            }
            Self::AppState => {
                "The app's login request has no valid state (8 to 512 visible ASCII characters). \
                 Update the app."
            }
            Self::Scope => "The app's login request has a malformed scope.",
            Self::NoState => {
                "This page was opened without the login's state, so it cannot tell which app the \
                 login belongs to. Start the login again from the app."
            }
            Self::Sealed(OpenError::Expired) => {
                "This login took too long and has expired. Start the login again from the app."
            }
            Self::Sealed(_) => {
                "This login link is not valid here: it was altered, or started on another \
                 server. Start the login again from the app."
            }
            Self::Code => {
                "The provider's answer was malformed. Start the login again from the app."
            }
        }
    }
}

/// The query's parameters, refusing any that appears twice (RFC 6749 §3.1).
/// More query parameters than any authorize request or provider callback sends: refused, so the
/// duplicate check below stays cheap whatever the query holds.
const MAX_PARAMETERS: usize = 32;

fn parameters(query: &str) -> Option<Vec<(String, String)>> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if pairs.len() == MAX_PARAMETERS || pairs.iter().any(|(k, _)| *k == key) {
            return None;
        }
        pairs.push((key.into_owned(), value.into_owned()));
    }
    Some(pairs)
}

fn get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

fn is_visible_ascii(value: &str) -> bool {
    value.bytes().all(|b| b.is_ascii_graphic())
}

/// RFC 6749 §3.3: scope tokens of `%x21 / %x23-5B / %x5D-7E`, separated by spaces.
fn is_valid_scope(scope: &str) -> bool {
    scope.len() <= MAX_SCOPE_LEN
        && scope
            .bytes()
            .all(|b| b == b' ' || ((0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\'))
}

/// RFC 7636 §4.2: an S256 challenge is base64url without padding of 32 bytes: 43 characters.
fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The `/authorize` step, on the query as sent.
fn start(relay: &Relay, provider: &str, client_id: &str, query: &str) -> Answer {
    let Some(pairs) = parameters(query) else {
        return Answer::Refused(Refusal::Malformed);
    };
    let Some(target) = get(&pairs, "redirect_uri") else {
        return Answer::Refused(Refusal::Target);
    };
    if !is_allowed(&relay.targets, target) {
        return Answer::Refused(Refusal::Target);
    }
    if get(&pairs, "code_challenge_method") != Some("S256") {
        return Answer::Refused(Refusal::Challenge);
    }
    let Some(challenge) = get(&pairs, "code_challenge").filter(|c| is_s256_challenge(c)) else {
        return Answer::Refused(Refusal::Challenge);
    };
    let Some(app_state) =
        get(&pairs, "state").filter(|s| APP_STATE_LEN.contains(&s.len()) && is_visible_ascii(s))
    else {
        return Answer::Refused(Refusal::AppState);
    };
    let scope = get(&pairs, "scope")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty());
    if scope.is_some_and(|s| !is_valid_scope(s)) {
        return Answer::Refused(Refusal::Scope);
    }
    let flow = Flow {
        target: target.to_owned(),
        app_state: app_state.to_owned(),
        expires_at: unix_now().saturating_add(relay.flow_lifetime.as_secs()),
    };
    let Ok(sealed) = relay.sealer.seal(provider, &flow) else {
        return Answer::Unavailable;
    };
    let mut location = url::form_urlencoded::Serializer::new(String::new());
    location
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", &relay.callback_url);
    if let Some(scope) = scope {
        location.append_pair("scope", scope);
    }
    location
        .append_pair("state", &sealed)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256");
    Answer::Redirect(with_query(relay.authorize_url.as_str(), &location.finish()))
}

/// The `/callback` step, on the query the provider sent, at `now` (Unix seconds).
fn come_back(relay: &Relay, provider: &str, query: &str, now: u64) -> Answer {
    let Some(pairs) = parameters(query) else {
        return Answer::Refused(Refusal::Malformed);
    };
    let Some(sealed) = get(&pairs, "state") else {
        return Answer::Refused(Refusal::NoState);
    };
    let flow = match relay.sealer.open(provider, sealed, now) {
        Ok(flow) => flow,
        Err(error) => return Answer::Refused(Refusal::Sealed(error)),
    };
    // Defence in depth: a target removed from the config since the flow started is not used.
    if !is_allowed(&relay.targets, &flow.target) {
        return Answer::Refused(Refusal::Target);
    }
    let mut back = url::form_urlencoded::Serializer::new(String::new());
    match (get(&pairs, "code"), get(&pairs, "error")) {
        (None, Some(error)) => {
            // RFC 6749 §4.1.2.1: the provider's error for the app, sanitised; error_uri dropped.
            // A code RFC 6749 does not define becomes `server_error`.
            let code = match OAuthErrorCode::parse(error) {
                Some(OAuthErrorCode::Other(_)) | None => OAuthErrorCode::ServerError,
                Some(code) => code,
            };
            back.append_pair("error", code.as_str());
            if let Some(description) =
                sanitize_description(get(&pairs, "error_description"), &RequestSecrets::default())
            {
                back.append_pair("error_description", &description);
            }
        }
        // An authorization code: the `/token` rule for credentials.
        (Some(code), None) if code.len() <= MAX_CREDENTIAL_LEN && is_visible_ascii(code) => {
            back.append_pair("code", code);
            if let Some(scope) = get(&pairs, "scope").filter(|s| is_valid_scope(s)) {
                back.append_pair("scope", scope);
            }
        }
        (Some(_), None) => return Answer::Refused(Refusal::Code),
        _ => return Answer::Refused(Refusal::Malformed),
    }
    back.append_pair("state", &flow.app_state);
    Answer::Redirect(with_query(&flow.target, &back.finish()))
}

/// `base` with `query` appended (after its own query, if it has one).
fn with_query(base: &str, query: &str) -> String {
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}{query}")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Renders an answer with the relay's headers and the log line's outcome.
fn finish(answer: Answer, label: Arc<ProviderLabel>, endpoint: &'static str) -> Response {
    let (mut response, error) = match answer {
        Answer::Redirect(location) => match HeaderValue::from_str(&location) {
            Ok(location) => (
                (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
                None,
            ),
            // Every part is percent-encoded or validated ASCII: not reachable, but not a panic.
            Err(_) => (page(Refusal::Malformed), Some(Refusal::Malformed.code())),
        },
        Answer::Refused(refusal) => {
            tracing::debug!(
                endpoint,
                refused = refusal.code(),
                "relay refused the request"
            );
            (page(refusal), Some(refusal.code()))
        }
        Answer::Unavailable => {
            let mut response = ApiError::Unavailable {
                retry_after: 1,
                reason: "no_randomness",
            }
            .into_response();
            if let Some(outcome) = response.extensions_mut().get_mut::<Outcome>() {
                outcome.provider = Some(label);
                outcome.endpoint = Some(endpoint);
            }
            return response;
        }
    };
    secure_headers(response.headers_mut());
    response.extensions_mut().insert(Outcome {
        provider: Some(label),
        endpoint: Some(endpoint),
        error: error.map(str::to_owned),
        ..Outcome::default()
    });
    response
}

/// No caching, no referrer: the URLs carry a code and states (RFC 6749 §10.6, RFC 8252 §8.12).
fn secure_headers(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

/// The self-contained error page: fixed text only, nothing from the request.
fn page(refusal: Refusal) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Login failed</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:32em;margin:4em auto;padding:0 1em}}</style>\
         </head><body><h1>Login failed</h1><p>{}</p><p><small>{}</small></p></body></html>",
        refusal.text(),
        refusal.code()
    );
    let mut response = (StatusCode::BAD_REQUEST, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::relay::RelaySettings;

    const SECRET: &str = "relay-unit-test-secret-0123456789abcdef";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn relay() -> Relay {
        RelaySettings {
            callback_url: Some("https://proxy.example.com/api/v1/kick/callback".to_owned()),
            sealing_secret: Some(SECRET.to_owned()),
            ..RelaySettings::default()
        }
        .validate("kick", "kick")
        .expect("valid relay")
    }

    fn query(pairs: &[(&str, &str)]) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    }

    fn sealed_state(location: &str) -> String {
        let url = url::Url::parse(location).expect("URL");
        let found = url.query_pairs().find(|(k, _)| k == "state");
        found.expect("state").1.into_owned()
    }

    #[test]
    fn a_started_flow_comes_back_to_its_target_with_the_apps_state() {
        let relay = relay();
        let Answer::Redirect(to_provider) = start(
            &relay,
            "kick",
            "client-1",
            &query(&[
                ("redirect_uri", "http://127.0.0.1:50123/callback"),
                ("state", "app-state-1234"),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
                ("scope", "user:read channel:read"),
            ]),
        ) else {
            panic!("not a redirect");
        };
        assert!(to_provider.starts_with("https://id.kick.com/oauth/authorize?response_type=code&client_id=client-1&redirect_uri=https%3A%2F%2Fproxy.example.com%2Fapi%2Fv1%2Fkick%2Fcallback&scope=user%3Aread+channel%3Aread&state="));
        assert!(to_provider.ends_with(&format!(
            "&code_challenge={CHALLENGE}&code_challenge_method=S256"
        )));
        assert!(!to_provider.contains("app-state-1234") && !to_provider.contains("50123"));
        let sealed = sealed_state(&to_provider);
        let Answer::Redirect(to_app) = come_back(
            &relay,
            "kick",
            &query(&[
                ("code", "the-code"),
                ("scope", "user:read"),
                ("state", &sealed),
            ]),
            unix_now(),
        ) else {
            panic!("not a redirect");
        };
        assert_eq!(
            to_app,
            "http://127.0.0.1:50123/callback?code=the-code&scope=user%3Aread&state=app-state-1234"
        );
        let too_late = unix_now() + 601;
        assert!(matches!(
            come_back(
                &relay,
                "kick",
                &query(&[("code", "c"), ("state", &sealed)]),
                too_late
            ),
            Answer::Refused(Refusal::Sealed(OpenError::Expired))
        ));
    }

    #[test]
    fn duplicated_or_missing_parameters_are_refused() {
        let relay = relay();
        let twice = "redirect_uri=http%3A%2F%2F127.0.0.1%3A5%2Fcallback&redirect_uri=http%3A%2F%2Fevil.com%2F&state=app-state-1234&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256";
        assert!(matches!(
            start(&relay, "kick", "c", twice),
            Answer::Refused(Refusal::Malformed)
        ));
        assert!(matches!(
            come_back(&relay, "kick", "code=abc", unix_now()),
            Answer::Refused(Refusal::NoState)
        ));
    }

    #[test]
    fn localhost_is_no_default_target_and_a_flood_of_parameters_is_refused() {
        let relay = relay();
        let flow = |target: &str, extra: usize| {
            let mut pairs = vec![
                ("redirect_uri".to_owned(), target.to_owned()),
                ("state".to_owned(), "app-state-1234".to_owned()),
                ("code_challenge".to_owned(), CHALLENGE.to_owned()),
                ("code_challenge_method".to_owned(), "S256".to_owned()),
            ];
            pairs.extend((0..extra).map(|i| (format!("x{i}"), "1".to_owned())));
            let query = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&pairs)
                .finish();
            matches!(
                start(&relay, "kick", "client-1", &query),
                Answer::Redirect(_)
            )
        };
        assert!(flow("http://127.0.0.1:50123/callback", 0));
        assert!(flow("http://[::1]:50123/callback", 0));
        assert!(!flow("http://localhost:50123/callback", 0), "RFC 8252 §8.3");
        assert!(flow("http://127.0.0.1:50123/callback", MAX_PARAMETERS - 4));
        assert!(!flow("http://127.0.0.1:50123/callback", MAX_PARAMETERS - 3));
    }

    #[test]
    fn relay_settings_debug_never_shows_a_sealing_secret() {
        let settings = RelaySettings {
            sealing_secret: Some(SECRET.to_owned()),
            previous_sealing_secret: Some(format!("{SECRET}-old")),
            ..RelaySettings::default()
        };
        let printed = format!("{settings:?}");
        assert!(!printed.contains(SECRET), "{printed}");
        assert!(printed.contains("[redacted]"), "{printed}");
    }
}
