//! Receiving the authorization response (RFC 6749 §4.1.2): a one-shot loopback HTTP listener for
//! `http://localhost:PORT/path` redirects (RFC 8252 §7.3), and [`parse_callback_url`] for
//! private-use URI scheme deep links such as `battles-record://oauth/callback?code=…` (RFC 8252 §7.1).

use std::convert::Infallible;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use url::Url;

use crate::authorize::{check_state, CsrfState, PendingLogin};
use crate::error::sanitize;
use crate::{AuthorizationCode, Error, OAuthErrorCode};

/// How long [`CallbackListener::wait`] waits for the browser by default: long enough to log in and
/// approve, short enough that an abandoned login frees the port.
pub const DEFAULT_CALLBACK_TIMEOUT: Duration = Duration::from_secs(300);

/// Bounds one browser connection (slow or idle sockets, e.g. speculative pre-connects).
const CONNECTION_DEADLINE: Duration = Duration::from_secs(20);

/// A loopback listener that receives exactly one authorization redirect (RFC 8252 §7.3).
///
/// Bind it *before* building the authorization URL, so the URL carries the real port
/// ([`CallbackListener::redirect_uri`]), then [`CallbackListener::wait`] for the browser.
///
/// - `localhost` binds `127.0.0.1` and, on the same port when possible, `[::1]` (browsers may try
///   either); `127.0.0.1` and `[::1]` bind only that address. Nothing listens beyond loopback.
/// - Requests to other paths (`/favicon.ico`, …) get a 404 and are otherwise ignored.
/// - The first request to the callback path ends the wait, success or not, and the browser gets a
///   small HTML page saying what happened.
#[derive(Debug)]
pub struct CallbackListener {
    listeners: Vec<TcpListener>,
    redirect_uri: String,
    path: String,
    timeout: Duration,
}

impl CallbackListener {
    /// Binds for `redirect_uri`, which must be `http://localhost[:PORT]/path`,
    /// `http://127.0.0.1[:PORT]/path` or `http://[::1][:PORT]/path`, without query or fragment
    /// (RFC 6749 §3.1.2). Port `0` picks a free port; [`Self::redirect_uri`] then shows it.
    pub async fn bind(redirect_uri: &str) -> Result<Self, Error> {
        let url = Url::parse(redirect_uri)
            .map_err(|e| Error::Config(format!("redirect URI is not a URL: {e}")))?;
        if url.scheme() != "http" {
            return Err(Error::Config(
                "the loopback listener serves http:// redirect URIs only (RFC 8252 §7.3)".into(),
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(Error::Config(
                "the loopback redirect URI must not have a query or fragment".into(),
            ));
        }
        let port = url.port_or_known_default().unwrap_or(80);
        let listeners = match url.host() {
            Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") => {
                let v4 = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
                let bound = v4.local_addr()?.port();
                let mut listeners = vec![v4];
                // Best effort: some systems have no IPv6 loopback, and the port may be taken there.
                if let Ok(v6) = TcpListener::bind((Ipv6Addr::LOCALHOST, bound)).await {
                    listeners.push(v6);
                }
                listeners
            }
            Some(url::Host::Ipv4(ip)) if ip.is_loopback() => {
                vec![TcpListener::bind((ip, port)).await?]
            }
            Some(url::Host::Ipv6(ip)) if ip.is_loopback() => {
                vec![TcpListener::bind((ip, port)).await?]
            }
            _ => {
                return Err(Error::Config(
                    "the loopback redirect URI's host must be localhost, 127.0.0.1 or [::1]".into(),
                ))
            }
        };
        let bound = listeners
            .first()
            .map(TcpListener::local_addr)
            .transpose()?
            .map(|a| a.port())
            .unwrap_or(port);
        // Keep the caller's exact string when the port is fixed: the proxy compares redirect URIs
        // byte for byte (RFC 6749 §3.1.2.3).
        let redirect_uri = if url.port() == Some(0) {
            let mut with_port = url.clone();
            with_port
                .set_port(Some(bound))
                .map_err(|()| Error::Config("cannot set the port on the redirect URI".into()))?;
            with_port.to_string()
        } else {
            redirect_uri.to_owned()
        };
        Ok(Self {
            listeners,
            redirect_uri,
            path: url.path().to_owned(),
            timeout: DEFAULT_CALLBACK_TIMEOUT,
        })
    }

    /// The redirect URI to put in the authorization request, with the bound port.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// The bound address (the IPv4 one for `localhost`).
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        match self.listeners.first() {
            Some(l) => Ok(l.local_addr()?),
            None => Err(Error::Config("listener has no socket".into())),
        }
    }

    /// How long [`Self::wait`] waits (default [`DEFAULT_CALLBACK_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Serves until the browser hits the callback path, then returns the authorization code once
    /// `state` matched `pending` (RFC 6749 §4.1.2, §10.12). The browser's page has been sent by the
    /// time this returns. The listener is closed afterwards.
    ///
    /// Errors: [`Error::CallbackTimeout`], [`Error::StateMismatch`], [`Error::Authorization`] (the
    /// user denied, RFC 6749 §4.1.2.1), [`Error::Callback`] (no code), [`Error::Io`].
    pub async fn wait(self, pending: &PendingLogin) -> Result<AuthorizationCode, Error> {
        let expected = Arc::new(Expected {
            path: self.path.clone(),
            state: pending.state().clone(),
        });
        let (tx, mut rx) = mpsc::channel::<Result<AuthorizationCode, Error>>(4);
        let mut connections = JoinSet::new();
        let deadline = tokio::time::sleep(self.timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                outcome = rx.recv() => {
                    if let Some(outcome) = outcome {
                        return outcome;
                    }
                }
                accepted = accept_any(&self.listeners) => match accepted {
                    Ok(stream) => {
                        connections.spawn(serve(stream, Arc::clone(&expected), tx.clone()));
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: don't spin.
                        tracing::debug!(error = %e, "loopback accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                () = &mut deadline => return Err(Error::CallbackTimeout),
            }
        }
    }
}

struct Expected {
    path: String,
    state: CsrfState,
}

async fn accept_any(listeners: &[TcpListener]) -> std::io::Result<TcpStream> {
    match listeners {
        [] => std::future::pending().await,
        [one] => one.accept().await.map(|(s, _)| s),
        [a, b, ..] => tokio::select! {
            r = a.accept() => r.map(|(s, _)| s),
            r = b.accept() => r.map(|(s, _)| s),
        },
    }
}

/// Serves one browser connection (one request: keep-alive is off). If it was the callback, the
/// outcome is reported only after the page has been written, so the browser always gets it.
async fn serve(
    stream: TcpStream,
    expected: Arc<Expected>,
    outcomes: mpsc::Sender<Result<AuthorizationCode, Error>>,
) {
    let slot: Arc<Mutex<Option<Result<AuthorizationCode, Error>>>> = Arc::new(Mutex::new(None));
    let service_slot = Arc::clone(&slot);
    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let response = handle(&req, &expected, &service_slot);
        async move { Ok::<_, Infallible>(response) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .timer(TokioTimer::new())
        .header_read_timeout(CONNECTION_DEADLINE)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(e) = tokio::time::timeout(CONNECTION_DEADLINE, connection)
        .await
        .unwrap_or(Ok(()))
    {
        tracing::debug!(error = %e, "loopback connection ended with an error");
    }
    let outcome = slot
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    if let Some(outcome) = outcome {
        let _ = outcomes.send(outcome).await;
    }
}

fn handle(
    req: &Request<hyper::body::Incoming>,
    expected: &Expected,
    slot: &Mutex<Option<Result<AuthorizationCode, Error>>>,
) -> Response<Full<Bytes>> {
    if req.uri().path() != expected.path {
        // Browsers ask for /favicon.ico and the like; those say nothing about the login.
        tracing::debug!(path = %sanitize(req.uri().path(), 100), "ignoring stray request on the loopback listener");
        return page(StatusCode::NOT_FOUND, "Not found", "Nothing here.");
    }
    if req.method() != Method::GET {
        return page(
            StatusCode::METHOD_NOT_ALLOWED,
            "Not allowed",
            "The login redirect is a GET request.",
        );
    }
    let mut slot = slot
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let outcome = outcome_from_query(req.uri().query().unwrap_or(""), &expected.state);
    let response = match &outcome {
        Ok(_) => page(
            StatusCode::OK,
            "Logged in",
            "You are logged in. You can close this window and return to the app.",
        ),
        Err(err) => error_page(err),
    };
    match &outcome {
        Ok(_) => tracing::info!("authorization code received on the loopback listener"),
        Err(err) => tracing::warn!(error = %err, "authorization redirect refused"),
    }
    *slot = Some(outcome);
    response
}

fn error_page(err: &Error) -> Response<Full<Bytes>> {
    let text = match err {
        Error::Authorization {
            error: OAuthErrorCode::AccessDenied,
            ..
        } => "The login was cancelled. You can close this window.".to_owned(),
        Error::Authorization { error, .. } => format!(
            "The login did not complete ({}). Close this window and try again from the app.",
            html_escape(error.as_str())
        ),
        Error::StateMismatch => "This login response does not belong to the login the app started \
             (an old tab, or a forged link). Close this window and start the login again from the app."
            .to_owned(),
        _ => "The login response was incomplete. Close this window and try again from the app."
            .to_owned(),
    };
    page(StatusCode::BAD_REQUEST, "Login failed", &text)
}

fn page(status: StatusCode, title: &str, text: &str) -> Response<Full<Bytes>> {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:32em;margin:4em auto;padding:0 1em}}</style>\
         </head><body><h1>{title}</h1><p>{text}</p></body></html>"
    );
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The URL holds the code: no resources, no referrer (RFC 6749 §10.6, RFC 8252 §8.12).
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    response
}

fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Reads the authorization response from a deep link the OS handed to the app, e.g.
/// `battles-record://oauth/callback?code=…&state=…` (RFC 8252 §7.1), checking that it is this
/// login's redirect URI (scheme, host, port and path) and that `state` matches (RFC 6749 §10.12).
pub fn parse_callback_url(url: &str, pending: &PendingLogin) -> Result<AuthorizationCode, Error> {
    let got = Url::parse(url).map_err(|_| Error::Callback("not a URL".into()))?;
    let want = Url::parse(pending.redirect_uri())
        .map_err(|e| Error::Config(format!("pending redirect URI is not a URL: {e}")))?;
    let same_target = got.scheme() == want.scheme()
        && got.host() == want.host()
        && got.port_or_known_default() == want.port_or_known_default()
        && got.path().trim_end_matches('/') == want.path().trim_end_matches('/');
    if !same_target {
        return Err(Error::Callback(
            "the URL is not this login's redirect URI".into(),
        ));
    }
    outcome_from_query(got.query().unwrap_or(""), pending.state())
}

/// Interprets the redirect's query (RFC 6749 §4.1.2 success, §4.1.2.1 error).
fn outcome_from_query(query: &str, expected: &CsrfState) -> Result<AuthorizationCode, Error> {
    let mut code: Option<AuthorizationCode> = None;
    let mut state: Option<String> = None;
    let mut error: Option<String> = None;
    let mut description: Option<String> = None;
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let duplicate = match key.as_ref() {
            "code" => code.replace(AuthorizationCode::new(value)).is_some(),
            "state" => state.replace(value.into_owned()).is_some(),
            "error" => error.replace(value.into_owned()).is_some(),
            "error_description" => description.replace(value.into_owned()).is_some(),
            _ => false,
        };
        if duplicate {
            // RFC 6749 §3.1: parameters MUST NOT be included more than once.
            return Err(Error::Callback(format!(
                "parameter {} given more than once",
                sanitize(&key, 32)
            )));
        }
    }
    if let Some(error) = error {
        // An error redirect with a wrong state is not ours; one without state still ends the login.
        if let Some(state) = &state {
            check_state(expected, state)?;
        }
        return Err(Error::Authorization {
            error: OAuthErrorCode::parse_lossy(&error),
            description: description.map(|d| sanitize(&d, 512)),
        });
    }
    match state {
        Some(state) => check_state(expected, &state)?,
        None => return Err(Error::StateMismatch),
    }
    match code {
        Some(code) if !code.secret().is_empty() => Ok(code),
        _ => Err(Error::Callback("the redirect has no code".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AuthorizeRequest, CsrfState, PkceVerifier};

    const STATE: &str = "expected-state-123";

    fn pending(redirect_uri: &str) -> PendingLogin {
        AuthorizeRequest::new("client", redirect_uri)
            .state(CsrfState::new(STATE))
            .pkce_verifier(
                PkceVerifier::parse("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").expect("valid"),
            )
            .build()
            .expect("valid")
            .1
    }

    fn browser() -> reqwest::Client {
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client")
    }

    type Waiting = tokio::task::JoinHandle<Result<AuthorizationCode, Error>>;

    async fn start(timeout: Duration) -> (String, Waiting) {
        let listener = CallbackListener::bind("http://127.0.0.1:0/auth/callback")
            .await
            .expect("bind")
            .timeout(timeout);
        let redirect = listener.redirect_uri().to_owned();
        let login = pending(&redirect);
        let waiting = tokio::spawn(async move { listener.wait(&login).await });
        (redirect, waiting)
    }

    #[tokio::test]
    async fn browser_redirect_with_matching_state_yields_the_code_and_a_close_page() {
        let (redirect, waiting) = start(Duration::from_secs(10)).await;
        assert!(redirect.starts_with("http://127.0.0.1:"));
        assert!(redirect.ends_with("/auth/callback"));
        assert!(!redirect.contains(":0/"));

        let client = browser();
        // A stray request first: must not end the login.
        let favicon = client
            .get(redirect.replace("/auth/callback", "/favicon.ico"))
            .send()
            .await
            .expect("favicon request answered");
        assert_eq!(favicon.status(), 404);
        assert!(!waiting.is_finished());

        let response = client
            .get(format!("{redirect}?code=the-code%2B1&state={STATE}"))
            .send()
            .await
            .expect("callback answered");
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
        let html = response.text().await.expect("body");
        assert!(html.contains("You can close this window"), "{html}");

        let code = waiting.await.expect("no panic").expect("code");
        assert_eq!(code.secret(), "the-code+1");
    }

    #[tokio::test]
    async fn wrong_state_is_refused_and_the_browser_is_told() {
        let (redirect, waiting) = start(Duration::from_secs(10)).await;
        let response = browser()
            .get(format!("{redirect}?code=abc&state=not-the-state"))
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status(), 400);
        let html = response.text().await.expect("body");
        assert!(html.contains("start the login again"), "{html}");
        assert!(matches!(
            waiting.await.expect("no panic"),
            Err(Error::StateMismatch)
        ));
    }

    #[tokio::test]
    async fn error_redirect_reports_the_oauth_error_without_echoing_markup() {
        let (redirect, waiting) = start(Duration::from_secs(10)).await;
        let response = browser()
            .get(format!(
                "{redirect}?error=%3Cscript%3E&error_description=nope&state={STATE}"
            ))
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status(), 400);
        let html = response.text().await.expect("body");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        match waiting.await.expect("no panic") {
            Err(Error::Authorization { error, description }) => {
                assert_eq!(error, OAuthErrorCode::Other("<script>".into()));
                assert_eq!(description.as_deref(), Some("nope"));
            }
            other => panic!("expected an authorization error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn user_denying_access_is_reported_as_access_denied() {
        let (redirect, waiting) = start(Duration::from_secs(10)).await;
        let html = browser()
            .get(format!("{redirect}?error=access_denied&state={STATE}"))
            .send()
            .await
            .expect("answered")
            .text()
            .await
            .expect("body");
        assert!(html.contains("cancelled"), "{html}");
        assert!(matches!(
            waiting.await.expect("no panic"),
            Err(Error::Authorization {
                error: OAuthErrorCode::AccessDenied,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn no_redirect_in_time_is_a_timeout_and_frees_the_port() {
        let listener = CallbackListener::bind("http://localhost:0/cb")
            .await
            .expect("bind")
            .timeout(Duration::from_millis(200));
        let addr = listener.local_addr().expect("addr");
        let pending = pending(listener.redirect_uri());
        let started = std::time::Instant::now();
        let result = listener.wait(&pending).await;
        assert!(matches!(result, Err(Error::CallbackTimeout)));
        assert!(started.elapsed() < Duration::from_secs(5));
        // The port is released: binding it again works.
        TcpListener::bind(addr).await.expect("port free again");
    }

    #[tokio::test]
    async fn localhost_redirect_uri_is_kept_byte_for_byte_when_the_port_is_fixed() {
        // Find a free port, release it, and ask for it explicitly.
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let uri = format!("http://localhost:{port}/auth/callback");
        let listener = CallbackListener::bind(&uri).await.expect("bind");
        assert_eq!(listener.redirect_uri(), uri);
    }

    #[tokio::test]
    async fn non_loopback_or_non_http_redirect_uris_are_refused() {
        for uri in [
            "http://example.com:0/cb",
            "https://localhost:0/cb",
            "battles-record://oauth/callback",
            "http://0.0.0.0:0/cb",
            "http://localhost:0/cb?x=1",
        ] {
            assert!(
                matches!(CallbackListener::bind(uri).await, Err(Error::Config(_))),
                "{uri}"
            );
        }
    }

    #[test]
    fn deep_link_with_matching_state_yields_the_code() {
        let p = pending("battles-record://oauth/callback");
        let code = parse_callback_url(
            &format!("battles-record://oauth/callback?code=c0de&state={STATE}"),
            &p,
        )
        .expect("valid deep link");
        assert_eq!(code.secret(), "c0de");
    }

    #[test]
    fn deep_link_problems_are_refused() {
        let p = pending("battles-record://oauth/callback");
        let parse = |url: &str| parse_callback_url(url, &p);
        assert!(matches!(
            parse("battles-record://oauth/callback?code=c&state=other"),
            Err(Error::StateMismatch)
        ));
        assert!(matches!(
            parse("battles-record://oauth/callback?code=c"),
            Err(Error::StateMismatch)
        ));
        assert!(matches!(
            parse(&format!("battles-record://oauth/callback?state={STATE}")),
            Err(Error::Callback(_))
        ));
        assert!(matches!(
            parse(&format!(
                "battles-record://oauth/callback?code=a&code=b&state={STATE}"
            )),
            Err(Error::Callback(_))
        ));
        assert!(matches!(
            parse(&format!("evil-app://oauth/callback?code=c&state={STATE}")),
            Err(Error::Callback(_))
        ));
        assert!(matches!(
            parse(&format!(
                "battles-record://oauth/other?code=c&state={STATE}"
            )),
            Err(Error::Callback(_))
        ));
        assert!(matches!(
            parse("battles-record://oauth/callback?error=access_denied&state=forged"),
            Err(Error::StateMismatch)
        ));
        assert!(matches!(
            parse(&format!(
                "battles-record://oauth/callback?error=access_denied&state={STATE}"
            )),
            Err(Error::Authorization {
                error: OAuthErrorCode::AccessDenied,
                ..
            })
        ));
    }
}
