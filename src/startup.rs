//! Binding, serving and shutting down.
//!
//! [`Application::build`] binds first (port 0 in tests) so [`Application::port`] is known before
//! serving. Connections are served by hyper directly (not `axum::serve`) to set a header-read
//! deadline against slow clients. Shutdown: `/readyz` turns 503, the listener keeps accepting for
//! `drain_delay_secs`, then closes; in-flight requests get `shutdown_grace_secs` to finish.

use crate::config::Settings;
use crate::routes::{router, AppState, ClientBuildError};
use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// A start-up failure.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address from `server.listen`.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A provider's client could not be built.
    #[error(transparent)]
    Client(#[from] ClientBuildError),
}

/// The bound, ready-to-run service.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    router: Router,
    settings: Settings,
}

impl Application {
    /// Builds the state and binds `settings.server.listen`.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let state = AppState::new(&settings)?;
        let addr = settings.server.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartupError::Bind { addr, source })?;
        Ok(Self {
            router: router(state.clone()),
            listener,
            state,
            settings,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.settings.server.listen)
    }

    /// The shared state (readiness, providers).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Accepts and serves connections until `stop` completes.
    async fn accept_until(
        &self,
        builder: &auto::Builder<TokioExecutor>,
        graceful: &hyper_util::server::graceful::GracefulShutdown,
        stop: impl Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(error) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut stop => return,
            };
            let _ = stream.set_nodelay(true);
            let router = self.router.clone();
            let service = hyper::service::service_fn(
                move |mut request: hyper::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    router.clone().oneshot(request.map(axum::body::Body::new))
                },
            );
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            let connection = graceful.watch(connection.into_owned());
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(error = %error, "connection ended with an error");
                }
            });
        }
    }

    /// Serves until SIGTERM or SIGINT, then drains.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `shutdown` completes, then drains and returns.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let server = &self.settings.server;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(server.header_read_timeout_secs));
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(64);
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let drain_delay = Duration::from_secs(server.drain_delay_secs);
        let grace = Duration::from_secs(server.shutdown_grace_secs);

        self.accept_until(&builder, &graceful, shutdown).await;
        tracing::info!(
            drain_delay_secs = drain_delay.as_secs(),
            "shutdown requested: /readyz now answers 503"
        );
        self.state.start_draining();
        self.accept_until(&builder, &graceful, tokio::time::sleep(drain_delay))
            .await;
        drop(self.listener);
        tracing::info!(
            grace_secs = grace.as_secs(),
            "listener closed; waiting for in-flight requests"
        );
        tokio::select! {
            () = graceful.shutdown() => tracing::info!("all connections closed"),
            () = tokio::time::sleep(grace) => tracing::warn!("shutdown grace elapsed; remaining connections dropped"),
        }
        Ok(())
    }
}

/// Resolves on SIGTERM (orchestrators) or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                tracing::error!("cannot install signal handlers; Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
