//! Injected failures: the ways id.kick.com has been seen to misbehave, on demand.
//!
//! A fault is checked on every request to the token, revoke and introspect endpoints (never the
//! authorization endpoint, which a browser drives), so it also hits requests on keep-alive
//! connections opened before it was set.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::server::ConnectionAbort;
use crate::state::App;
use crate::stats::bump;
use crate::tokens::random_hex;

/// A failure to inject into the token, revoke and introspect endpoints.
///
/// Set with [`Emulator::set_fault`](crate::Emulator::set_fault); it stays in force for every
/// following request until [`Emulator::clear_fault`](crate::Emulator::clear_fault) or another
/// `set_fault`. [`Emulator::set_fault_times`](crate::Emulator::set_fault_times) sets one for a
/// number of requests only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Waits this long (real time), then answers normally.
    Latency(Duration),
    /// Answers with this status (e.g. 500, 503) and a short `text/plain` body. A value that is
    /// not a valid HTTP status becomes 500.
    ServerError(u16),
    /// 403 `text/html` Cloudflare "Just a moment..." challenge page (`cf-mitigated: challenge`).
    HtmlChallenge,
    /// Kick's WAF block: 403 `application/json`
    /// `{"error":"Request blocked by security policy.","reference":"<id>"}`. It has an `error`
    /// field but is not an OAuth error.
    Waf403,
    /// 400 with an empty body (and a `Content-Type: application/json` it does not honour).
    EmptyBody400,
    /// Aborts the TCP connection (RST) without any HTTP response, before the request is
    /// processed. Works on pooled keep-alive connections too.
    ConnectionReset,
    /// Processes the request (a code is consumed, a refresh rotates, a token is revoked), then
    /// aborts the connection without sending the answer: the provider acted but the caller saw
    /// only a transport error — why a token request must never be retried.
    ConnectionResetAfterProcessing,
    /// The whole site is gone: 404 `text/html`.
    Outage,
    /// Never answers; the connection stays open until the client gives up or the emulator stops.
    Hang,
}

/// The fault currently in force, and for how many more requests.
#[derive(Debug, Default)]
pub(crate) struct FaultSlot(Mutex<Option<Armed>>);

#[derive(Debug, Clone, Copy)]
struct Armed {
    fault: Fault,
    /// Requests it still applies to; `None` means until cleared. Never `Some(0)`.
    remaining: Option<u32>,
}

impl FaultSlot {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Armed>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets `fault` until cleared (`None` clears).
    pub(crate) fn set(&self, fault: Option<Fault>) {
        *self.slot() = fault.map(|fault| Armed {
            fault,
            remaining: None,
        });
    }

    /// Sets `fault` for the next `times` requests (`0` clears).
    pub(crate) fn set_times(&self, fault: Fault, times: u32) {
        *self.slot() = (times > 0).then_some(Armed {
            fault,
            remaining: Some(times),
        });
    }

    /// The fault for the request that just arrived, using up one of its `times`.
    pub(crate) fn take(&self) -> Option<Fault> {
        let mut slot = self.slot();
        let armed = (*slot)?;
        match armed.remaining {
            None => {}
            Some(1) => *slot = None,
            Some(n) => {
                *slot = Some(Armed {
                    remaining: Some(n - 1),
                    ..armed
                })
            }
        }
        Some(armed.fault)
    }
}

/// Middleware on the API routes: counts what was received, then applies the current fault.
pub(crate) async fn gate(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    count_received(&app, request.method(), request.uri().path());
    let Some(fault) = app.faults.take() else {
        return next.run(request).await;
    };
    bump(&app.counters.faults_injected);
    tracing::debug!(?fault, path = request.uri().path(), "injecting fault");
    match fault {
        Fault::Latency(delay) => {
            tokio::time::sleep(delay).await;
            next.run(request).await
        }
        Fault::ServerError(status) => server_error(status),
        Fault::HtmlChallenge => html_challenge(),
        Fault::Waf403 => waf_block(),
        Fault::EmptyBody400 => empty_400(),
        Fault::Outage => outage(),
        Fault::Hang => {
            let abort = request.extensions().get::<ConnectionAbort>().cloned();
            hang(abort).await
        }
        Fault::ConnectionReset => {
            let abort = request.extensions().get::<ConnectionAbort>().cloned();
            reset(abort).await
        }
        Fault::ConnectionResetAfterProcessing => {
            let abort = request.extensions().get::<ConnectionAbort>().cloned();
            drop(next.run(request).await);
            reset(abort).await
        }
    }
}

fn count_received(app: &App, method: &Method, path: &str) {
    if method != Method::POST {
        return;
    }
    let counter = match path {
        "/oauth/token" => &app.counters.token_requests,
        "/oauth/revoke" => &app.counters.revoke_requests,
        "/oauth/token/introspect" => &app.counters.introspect_requests,
        _ => return,
    };
    bump(counter);
}

/// Asks the connection task to abort with a RST; the answer is never delivered.
async fn reset(abort: Option<ConnectionAbort>) -> Response {
    if let Some(abort) = &abort {
        abort.reset();
    }
    hang(abort).await
}

/// Answers nothing for as long as the connection lives.
async fn hang(abort: Option<ConnectionAbort>) -> Response {
    match abort {
        Some(abort) => abort.closed().await,
        // Only reachable if the router were served without the emulator's connection loop.
        None => std::future::pending().await,
    }
    // The connection is gone: nobody can receive this.
    StatusCode::SERVICE_UNAVAILABLE.into_response()
}

fn with_content_type(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn server_error(status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let text = status.canonical_reason().unwrap_or("Server Error");
    with_content_type(status, "text/plain; charset=utf-8", format!("{text}\n"))
}

fn html_challenge() -> Response {
    let ray = random_hex(16);
    let body = format!(
        r#"<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title><meta http-equiv="Content-Type" content="text/html; charset=UTF-8"><meta http-equiv="X-UA-Compatible" content="IE=Edge"><meta name="robots" content="noindex,nofollow"><meta name="viewport" content="width=device-width,initial-scale=1"></head><body><div class="main-wrapper" role="main"><div class="main-content"><h1 class="zone-name-title h1">id.kick.com</h1><h2 class="h2">Verifying you are human. This may take a few seconds.</h2><noscript><div class="h2">Enable JavaScript and cookies to continue</div></noscript></div></div><script>(function(){{window._cf_chl_opt={{cvId: '3',cZone: "id.kick.com",cType: 'managed',cRay: '{ray}'}};}}());</script><div class="footer" role="contentinfo"><div class="footer-inner"><div class="text-center" id="footer-text">Ray ID: <code>{ray}</code></div><div class="text-center">Performance &amp; security by Cloudflare</div></div></div></body></html>"#
    );
    let mut response = with_content_type(StatusCode::FORBIDDEN, "text/html; charset=UTF-8", body);
    let headers = response.headers_mut();
    headers.insert(header::SERVER, HeaderValue::from_static("cloudflare"));
    headers.insert("cf-mitigated", HeaderValue::from_static("challenge"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=0, no-store, no-cache, must-revalidate"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("{ray}-FRA")) {
        headers.insert("cf-ray", value);
    }
    response
}

fn waf_block() -> Response {
    let reference = format!(
        "18.{}.{}.{}",
        random_hex(8),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs(),
        random_hex(8)
    );
    let body = serde_json::json!({
        "error": "Request blocked by security policy.",
        "reference": reference,
    });
    with_content_type(StatusCode::FORBIDDEN, "application/json", body.to_string())
}

fn empty_400() -> Response {
    with_content_type(StatusCode::BAD_REQUEST, "application/json", String::new())
}

/// 404 page used by the outage fault and by unknown paths.
pub(crate) fn outage() -> Response {
    with_content_type(
        StatusCode::NOT_FOUND,
        "text/html; charset=utf-8",
        "<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n".to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_server_error_status_becomes_500() {
        assert_eq!(server_error(42).status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(server_error(503).status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn fault_slot_replaces_and_clears() {
        let slot = FaultSlot::default();
        slot.set(Some(Fault::Outage));
        slot.set(Some(Fault::Waf403));
        assert_eq!(slot.take(), Some(Fault::Waf403));
        assert_eq!(
            slot.take(),
            Some(Fault::Waf403),
            "a plain fault is not used up"
        );
        slot.set(None);
        assert_eq!(slot.take(), None);
    }

    #[test]
    fn fault_slot_with_times_clears_itself_after_that_many_requests() {
        let slot = FaultSlot::default();
        slot.set_times(Fault::ServerError(500), 2);
        assert_eq!(slot.take(), Some(Fault::ServerError(500)));
        assert_eq!(slot.take(), Some(Fault::ServerError(500)));
        assert_eq!(slot.take(), None);
        slot.set_times(Fault::Outage, 0);
        assert_eq!(slot.take(), None, "zero times clears");
        slot.set_times(Fault::Outage, 3);
        slot.set(Some(Fault::Waf403));
        for _ in 0..5 {
            assert_eq!(
                slot.take(),
                Some(Fault::Waf403),
                "set_fault replaces a counted fault"
            );
        }
        slot.set_times(Fault::Outage, 3);
        slot.set(None);
        assert_eq!(slot.take(), None, "clear_fault clears a counted fault");
    }
}
