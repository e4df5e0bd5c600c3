//! Logging: JSON lines in production, readable text in a terminal.
//!
//! Dependencies (hyper, hyper-util, hyper-rustls, h2, reqwest, rustls, axum, …: every crate not in
//! [`OWN_CRATES`]) are capped at INFO whatever the filter says: at DEBUG and TRACE they print
//! request lines, URLs and frames, and a revoke URL carries a token in its query. Our own crates log
//! no value that grants access at any level.

use crate::config::{LogFormat, LogSettings};
use std::io::IsTerminal;
use tracing::level_filters::LevelFilter;
use tracing::Subscriber;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// Crates whose every level is ours, and so proven secret-free by the leak tests.
const OWN_CRATES: [&str; 3] = ["kick_oauth_proxy", "kick_emulator", "kick_oauth_client"];

/// The subscriber for `settings`, writing to `writer`. `RUST_LOG`, when set, replaces the
/// configured filter.
pub fn subscriber<W>(settings: &LogSettings, writer: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_new(&settings.filter).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let json = match settings.format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    subscriber_with(filter, json, writer)
}

/// The subscriber with an explicit filter and format (the leak tests run it at TRACE).
/// Dependencies stay capped at INFO whatever `filter` allows.
pub fn subscriber_with<W>(
    filter: EnvFilter,
    json: bool,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let cap = OWN_CRATES
        .iter()
        .fold(Targets::new().with_default(LevelFilter::INFO), |t, c| {
            t.with_target(*c, LevelFilter::TRACE)
        });
    let layer = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(writer)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stdout().is_terminal())
            .with_writer(writer)
            .boxed()
    };
    Box::new(Registry::default().with(layer.with_filter(cap).with_filter(filter)))
}

/// Installs the process-wide subscriber writing to stdout. Call once, from `main`.
pub fn init(settings: &LogSettings) {
    // A second call (tests) keeps the first subscriber.
    let _ = tracing::subscriber::set_global_default(subscriber(settings, std::io::stdout));
}
