//! Binding, serving and shutting down.
//!
//! [`Application::build`] binds first (port 0 in tests) so [`Application::port`] is known before
//! serving. Connections are served by hyper directly (not `axum::serve`) to set a header-read
//! deadline against slow clients. Shutdown: `/readyz` turns 503, the listener keeps accepting for
//! `drain_delay_secs`, then closes; in-flight requests get `shutdown_grace_secs` to finish.

use crate::config::Settings;
use crate::routes::{router, AppState, ClientBuildError};
use crate::tls::{TlsError, TlsReloader};
use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
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
    /// The TLS certificate or key cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Connection builders: HTTP/1.1 for every connection.
#[derive(Clone)]
struct Builders {
    http1: hyper::server::conn::http1::Builder,
}

/// The bound, ready-to-run service.
pub struct Application {
    listener: TcpListener,
    tls: Option<(Arc<TlsReloader>, TlsAcceptor)>,
    admin: Option<(TcpListener, Router)>,
    state: AppState,
    router: Router,
    settings: Settings,
}

impl Application {
    /// Builds the state and binds `settings.server.listen`.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let state = AppState::new(&settings)?;
        let tls = match &settings.server.tls {
            Some(tls) => {
                let reloader = TlsReloader::load(tls)?;
                let acceptor = reloader.acceptor()?;
                Some((reloader, acceptor))
            }
            None => None,
        };
        let addr = settings.server.listen;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartupError::Bind { addr, source })?;
        let admin = match settings.server.admin_listen {
            Some(addr) => {
                let admin = TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartupError::Bind { addr, source })?;
                Some((admin, admin_router()))
            }
            None => None,
        };
        Ok(Self {
            tls,
            admin,
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

    /// The certificate reloader, when TLS is on (SIGHUP re-reads the files through it).
    pub fn tls(&self) -> Option<Arc<TlsReloader>> {
        self.tls.as_ref().map(|(reloader, _)| Arc::clone(reloader))
    }

    /// The admin listener's address, when `server.admin_listen` is set.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// The shared state (readiness, providers).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Accepts and serves connections until `stop` completes.
    async fn accept_until(
        &self,
        builders: &Builders,
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
            let builders = builders.clone();
            let watcher = graceful.watcher();
            let tls = self.tls.as_ref().map(|(_, acceptor)| acceptor.clone());
            let handshake_deadline =
                Duration::from_secs(self.settings.server.header_read_timeout_secs);
            tokio::spawn(async move {
                let served = match tls {
                    // HTTP/1.1 only, plain or TLS: hyper's header deadline then runs from the
                    // first moment (a silent socket is closed too) and between keep-alive
                    // requests. hyper's HTTP/2 server has no such deadline, and OAuth clients
                    // gain nothing from it.
                    None => {
                        let connection = builders
                            .http1
                            .serve_connection(TokioIo::new(stream), service);
                        watcher.watch(connection).await
                    }
                    Some(acceptor) => {
                        // The handshake counts against the header deadline: a client that opens
                        // a socket and stalls is dropped like a slow-header one.
                        let stream =
                            match tokio::time::timeout(handshake_deadline, acceptor.accept(stream))
                                .await
                            {
                                Ok(Ok(stream)) => stream,
                                Ok(Err(error)) => {
                                    tracing::debug!(%error, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => return,
                            };
                        let connection = builders
                            .http1
                            .serve_connection(TokioIo::new(stream), service);
                        watcher.watch(connection).await
                    }
                };
                if let Err(error) = served {
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
    pub async fn run_until(mut self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        // The admin listener lives as long as the process serves; it stops with the runtime.
        let admin = self.admin.take().map(|(listener, router)| {
            tokio::spawn(async move {
                if let Err(error) = axum::serve(listener, router).await {
                    tracing::error!(%error, "admin listener failed");
                }
            })
        });
        let server = &self.settings.server;
        let header_deadline = Duration::from_secs(server.header_read_timeout_secs);
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(header_deadline);
        let builders = Builders { http1 };
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let drain_delay = Duration::from_secs(server.drain_delay_secs);
        let grace = Duration::from_secs(server.shutdown_grace_secs);

        self.accept_until(&builders, &graceful, shutdown).await;
        tracing::info!(
            drain_delay_secs = drain_delay.as_secs(),
            "shutdown requested: /readyz now answers 503"
        );
        self.state.start_draining();
        self.accept_until(&builders, &graceful, tokio::time::sleep(drain_delay))
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
        if let Some(admin) = admin {
            admin.abort();
        }
        Ok(())
    }
}

/// The admin listener's routes: `GET /metrics` in the Prometheus text format.
fn admin_router() -> Router {
    let handle = crate::metrics::install();
    if let Some(handle) = handle.clone() {
        tokio::spawn(crate::metrics::upkeep(handle));
    }
    Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move {
                let body = handle.map(|h| h.render()).unwrap_or_default();
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    body,
                )
            }
        }),
    )
}

/// On SIGHUP, re-reads `path` and applies what changes without a restart (client secrets, redirect
/// allowlists; see [`AppState::reload`]). A file that does not load keeps the running
/// configuration and logs why (the message names the key, never a secret).
pub async fn reload_on_sighup(
    state: AppState,
    path: std::path::PathBuf,
    tls: Option<Arc<TlsReloader>>,
) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangup) = signal(SignalKind::hangup()) else {
            tracing::error!("cannot listen for SIGHUP; reload needs a restart");
            return;
        };
        while hangup.recv().await.is_some() {
            match crate::config::Settings::load(&path) {
                Ok(settings) => {
                    let needs_restart = state.reload(&settings);
                    tracing::info!("SIGHUP: client secrets and redirect allowlists reloaded");
                    if !needs_restart.is_empty() {
                        tracing::warn!(
                            changed = ?needs_restart,
                            "these changes apply only after a restart"
                        );
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "SIGHUP: reload failed; keeping the running configuration")
                }
            }
            if let Some(tls) = &tls {
                match tls.reload() {
                    Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                    Err(error) => {
                        tracing::error!(%error, "SIGHUP: TLS reload failed; keeping the current certificate")
                    }
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (state, path, tls);
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
