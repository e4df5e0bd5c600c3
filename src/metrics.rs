//! Prometheus metrics, served on the admin listener (`server.admin_listen`), never on the public
//! port. Built on the `metrics` facade and its Prometheus exporter.
//!
//! Labels are bounded and hold nothing secret or personal: provider (from the config), endpoint,
//! status, error code (OAuth codes outside the RFC 6749 set become `other`), upstream outcome kind.
//! Never a token, a code, an IP address or a path as sent.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `kick_proxy_requests_total` | counter | provider, endpoint, status, error |
//! | `kick_proxy_request_duration_seconds` | histogram | provider, endpoint |
//! | `kick_proxy_upstream_requests_total` | counter | provider, endpoint, outcome |
//! | `kick_proxy_upstream_duration_seconds` | histogram | provider, endpoint, outcome |
//! | `kick_proxy_replay_hits_total` | counter | provider, endpoint |
//! | `kick_proxy_singleflight_shared_total` | counter | provider, endpoint |
//! | `kick_proxy_rate_limited_total` | counter | endpoint |
//! | `kick_proxy_shed_total` | counter | reason (`overloaded`, `breaker_open`) |
//! | `kick_proxy_build_info` | gauge (1) | version |
//! | `kick_proxy_open_connections` | gauge | listener (`public`, `admin`) |
//! | `kick_proxy_connections_evicted_total` | counter | listener |
//! | `kick_proxy_connections_refused_total` | counter | listener |
//! | `kick_proxy_connection_errors_total` | counter | listener, reason (`header_too_large`, `header_timeout`, `send_timeout`, `tls_handshake`, `other`) |
//! | `kick_proxy_state_ops_total` | counter | op, outcome (shared state store, see `state`) |
//! | `kick_proxy_state_op_duration_seconds` | histogram | op |
//! | `kick_proxy_state_backend_up` | gauge | |
//! | `kick_proxy_state_fallback_total` | counter | op (the store did not answer; served per process) |
//! | `kick_proxy_flight_takeovers_total` | counter | |

use crate::reply::Outcome;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{LazyLock, OnceLock, PoisonError, RwLock};
use std::time::Duration;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Latency buckets, seconds: a proxy adds microseconds, Kick answers in tens to hundreds of ms,
/// the deadline is 10 s.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Installs the process-wide recorder once (later calls return the same handle) and starts its
/// upkeep task. `None` if another recorder was installed first.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            metrics::gauge!("kick_proxy_build_info", "version" => env!("CARGO_PKG_VERSION"))
                .set(1.0);
            Some(handle)
        })
        .clone()
}

/// Drains histogram buffers now and then; the exporter's own HTTP listener would do it, and we do
/// not use that listener (ours runs on the admin port with the rest of the service).
pub async fn upkeep(handle: PrometheusHandle) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        handle.run_upkeep();
    }
}

/// RFC 6749 §5.2 codes and ours keep their name; anything else a provider invents is `other`.
fn error_label(code: &str) -> &'static str {
    const KEPT: [&str; 11] = [
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "unsupported_token_type",
        "access_denied",
        "not_found",
        "slow_down",
        "temporarily_unavailable",
    ];
    match KEPT.iter().find(|kept| **kept == code) {
        Some(kept) => kept,
        None if code.starts_with("error_") && code.ends_with("_server_error") => "server_error",
        None => "other",
    }
}

/// Metric handles per provider and label set, registered on first use. Looking a series up in the
/// recorder hashes its name and labels and builds its key (label strings included) every time;
/// here a request pays one read lock and a small hash instead. The label sets are bounded (the
/// configured providers, the endpoints, the statuses and error labels the proxy answers, the
/// upstream outcome kinds), so the map stops growing.
struct Series<K, V> {
    by_provider: RwLock<HashMap<String, HashMap<K, V>>>,
}

impl<K: Hash + Eq, V: Clone> Series<K, V> {
    fn new() -> Self {
        Self {
            by_provider: RwLock::new(HashMap::new()),
        }
    }

    fn get(&self, provider: &str, key: K, register: impl FnOnce() -> V) -> V {
        let found = self
            .by_provider
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(provider)
            .and_then(|series| series.get(&key))
            .cloned();
        found.unwrap_or_else(|| {
            self.by_provider
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(provider.to_owned())
                .or_default()
                .entry(key)
                .or_insert_with(register)
                .clone()
        })
    }
}

/// What one finished request records: endpoint, status, error label, `served_from`.
type RequestKey = (&'static str, u16, &'static str, Option<&'static str>);

#[derive(Clone)]
struct RequestSeries {
    total: Counter,
    duration: Histogram,
    /// `kick_proxy_replay_hits_total` or `kick_proxy_singleflight_shared_total`.
    served_from: Option<Counter>,
}

static REQUEST_SERIES: LazyLock<Series<RequestKey, RequestSeries>> = LazyLock::new(Series::new);
/// What one provider call records: endpoint, outcome kind.
type UpstreamKey = (&'static str, &'static str);

static UPSTREAM_SERIES: LazyLock<Series<UpstreamKey, (Counter, Histogram)>> =
    LazyLock::new(Series::new);

/// True once the recorder is installed (the admin listener is configured); until then recording
/// is skipped, so a deployment without metrics pays no label allocations.
pub(crate) fn enabled() -> bool {
    HANDLE.get().is_some_and(Option::is_some)
}

/// One finished request.
pub fn record_request(outcome: &Outcome, route: &str, status: u16, latency: Duration) {
    if !enabled() {
        return;
    }
    let provider = outcome
        .provider
        .as_ref()
        .map_or("none", |p| p.name.as_str());
    let endpoint = outcome.endpoint.unwrap_or(match route {
        "/healthz" => "healthz",
        "/readyz" => "readyz",
        "/api/v1/openapi.json" => "openapi",
        r if r.ends_with("/token") => "token",
        r if r.ends_with("/refresh") => "refresh",
        r if r.ends_with("/revoke") => "revoke",
        _ => "other",
    });
    let error = outcome.error.as_deref().map_or("none", error_label);
    let served_from = match outcome.served_from {
        Some("replay") => Some("kick_proxy_replay_hits_total"),
        Some("shared") => Some("kick_proxy_singleflight_shared_total"),
        _ => None,
    };
    let series = REQUEST_SERIES.get(provider, (endpoint, status, error, served_from), || {
        let provider = provider.to_owned();
        RequestSeries {
            total: metrics::counter!(
                "kick_proxy_requests_total",
                "provider" => provider.clone(),
                "endpoint" => endpoint,
                "status" => status.to_string(),
                "error" => error,
            ),
            duration: metrics::histogram!(
                "kick_proxy_request_duration_seconds",
                "provider" => provider.clone(),
                "endpoint" => endpoint,
            ),
            served_from: served_from.map(
                |name| metrics::counter!(name, "provider" => provider, "endpoint" => endpoint),
            ),
        }
    });
    series.total.increment(1);
    series.duration.record(latency.as_secs_f64());
    if let Some(counter) = series.served_from {
        counter.increment(1);
    }
    match outcome.error.as_deref() {
        Some("slow_down") => {
            metrics::counter!("kick_proxy_rate_limited_total", "endpoint" => endpoint).increment(1)
        }
        Some("temporarily_unavailable") => metrics::counter!(
            "kick_proxy_shed_total",
            "reason" => if outcome.upstream == Some("breaker_open") { "breaker_open" } else { "overloaded" },
        )
        .increment(1),
        _ => {}
    }
}

/// One provider call and how it ended (`ok`, `oauth_error`, `timeout`, `5xx`, `waf_or_html`,
/// `connect`, …).
pub fn record_upstream(
    provider: &str,
    endpoint: &'static str,
    outcome: &'static str,
    latency: Duration,
) {
    if !enabled() {
        return;
    }
    let (total, duration) = UPSTREAM_SERIES.get(provider, (endpoint, outcome), || {
        (
            metrics::counter!(
                "kick_proxy_upstream_requests_total",
                "provider" => provider.to_owned(),
                "endpoint" => endpoint,
                "outcome" => outcome,
            ),
            metrics::histogram!(
                "kick_proxy_upstream_duration_seconds",
                "provider" => provider.to_owned(),
                "endpoint" => endpoint,
                "outcome" => outcome,
            ),
        )
    });
    total.increment(1);
    duration.record(latency.as_secs_f64());
}

/// The open connections on a listener, after one opened or closed.
pub fn record_open_connections(listener: &'static str, open: usize) {
    if !enabled() {
        return;
    }
    #[allow(clippy::cast_precision_loss)] // connection counts are far below 2^52
    metrics::gauge!("kick_proxy_open_connections", "listener" => listener).set(open as f64);
}

/// An idle connection closed to make room for a new one on a full listener.
pub fn record_connection_evicted(listener: &'static str) {
    if enabled() {
        metrics::counter!("kick_proxy_connections_evicted_total", "listener" => listener)
            .increment(1);
    }
}

/// A new connection closed unanswered: the listener was full with a request on every connection.
pub fn record_connection_refused(listener: &'static str) {
    if enabled() {
        metrics::counter!("kick_proxy_connections_refused_total", "listener" => listener)
            .increment(1);
    }
}

/// A connection that ended before a request could be answered on it (431, header deadline, TLS).
pub fn record_connection_error(listener: &'static str, reason: &'static str) {
    if enabled() {
        metrics::counter!(
            "kick_proxy_connection_errors_total",
            "listener" => listener,
            "reason" => reason,
        )
        .increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::error_label;

    #[test]
    fn provider_invented_codes_do_not_become_labels() {
        assert_eq!(error_label("invalid_grant"), "invalid_grant");
        assert_eq!(error_label("error_kick_server_error"), "server_error");
        assert_eq!(error_label("NZQ4ZWE3OTCTMJC5ZS0ZNJQ5"), "other");
    }
}
