//! Binding, serving and shutting down.
//!
//! [`Application::build`] binds first (port 0 in tests) so [`Application::port`] is known before
//! serving. Both listeners serve their connections the same way ([`super::listener`]: header cap,
//! header deadline, connection cap). Shutdown: `/readyz` turns 503, the listener keeps accepting for
//! `drain_delay_secs`, then closes; in-flight requests get `shutdown_grace_secs` to finish.

use super::listener::{ConnectionRules, Listener};
use super::router::router;
use super::tls::{TlsError, TlsReloader};
use crate::api::AppState;
use crate::config::Settings;
use crate::exchange::ClientBuildError;
use crate::state::SharedState;
use axum::Router;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

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
    /// The shared state store's client cannot be built from its settings (never because the
    /// store is down: the connection is made on first use).
    #[error("shared state store: {0}")]
    State(#[from] crate::state::StoreError),
}

/// The bound, ready-to-run service.
pub struct Application {
    listener: Listener,
    tls: Option<Arc<TlsReloader>>,
    admin: Option<Listener>,
    state: AppState,
    settings: Settings,
}

impl Application {
    /// Builds the state and binds `settings.server.listen` (and `admin_listen` when set). With
    /// `[state] backend = "redis"` the store is built but not connected: a store that is down
    /// at start-up is logged, and the service serves per process until it answers.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let public = bind(settings.server.listen).await?;
        Self::build_on(settings, public).await
    }

    /// As [`Application::build`], serving the public API on `public`, already bound: for a
    /// config that must name its own address before the app exists (the relay's `callback_url`
    /// in `dev` mode and tests, on a port picked by the OS).
    pub async fn build_on(settings: Settings, public: TcpListener) -> Result<Self, StartupError> {
        let shared = crate::state::build(&settings.state)?;
        if let Some(shared) = &shared {
            announce_store(shared.clone());
        }
        Self::build_with(settings, public, shared).await
    }

    /// As [`Application::build`], with the shared store given (tests run several replicas on one
    /// store); `None` keeps everything per process.
    pub async fn build_with_state(
        settings: Settings,
        shared: Option<SharedState>,
    ) -> Result<Self, StartupError> {
        let public = bind(settings.server.listen).await?;
        Self::build_with(settings, public, shared).await
    }

    async fn build_with(
        settings: Settings,
        public: TcpListener,
        shared: Option<SharedState>,
    ) -> Result<Self, StartupError> {
        let state = AppState::new(&settings, shared)?;
        let (tls, acceptor) = match &settings.server.tls {
            Some(tls) => {
                let reloader = TlsReloader::load(tls)?;
                let acceptor = reloader.acceptor()?;
                (Some(reloader), Some(acceptor))
            }
            None => (None, None),
        };
        let server = &settings.server;
        let rules = |max_connections| ConnectionRules {
            max_header_bytes: server.max_header_bytes,
            header_read_timeout: Duration::from_secs(server.header_read_timeout_secs),
            max_connections,
        };
        let listener = Listener::new(
            "public",
            public,
            router(state.clone()),
            acceptor,
            rules(server.max_connections),
        );
        let admin = match server.admin_listen {
            Some(addr) => Some(Listener::new(
                "admin",
                bind(addr).await?,
                admin_router().into(),
                None,
                rules(server.admin_max_connections),
            )),
            None => None,
        };
        Ok(Self {
            listener,
            tls,
            admin,
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
        self.tls.clone()
    }

    /// The admin listener's address, when `server.admin_listen` is set.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The shared state (readiness, providers).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGTERM or SIGINT, then drains.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `shutdown` completes, then drains and returns.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let Self {
            listener,
            admin,
            state,
            settings,
            ..
        } = self;
        // The admin listener lives as long as the process serves; it stops with the runtime.
        let admin = admin.map(|admin| {
            tokio::spawn(async move { admin.accept_until(std::future::pending()).await })
        });
        let drain_delay = Duration::from_secs(settings.server.drain_delay_secs);
        let grace = Duration::from_secs(settings.server.shutdown_grace_secs);

        listener.accept_until(shutdown).await;
        tracing::info!(
            drain_delay_secs = drain_delay.as_secs(),
            "shutdown requested: /readyz now answers 503"
        );
        state.start_draining();
        listener.accept_until(tokio::time::sleep(drain_delay)).await;
        tracing::info!(
            grace_secs = grace.as_secs(),
            "listener closed; waiting for in-flight requests"
        );
        if listener.close_and_drain(grace).await {
            tracing::info!("all connections closed");
        } else {
            tracing::warn!("shutdown grace elapsed; remaining connections dropped");
        }
        if let Some(admin) = admin {
            admin.abort();
        }
        Ok(())
    }
}

/// Binds one listen address.
async fn bind(addr: SocketAddr) -> Result<TcpListener, StartupError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind { addr, source })
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

/// One log line saying whether the store answers at start-up (it connects lazily; later changes
/// are logged by the store itself, once per change).
fn announce_store(shared: SharedState) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let backend = shared.store().backend();
        let answered = shared.store().ping().await;
        // The gauge's first value: the store set it when it was built, before the recorder.
        crate::state::publish_health(shared.store());
        match answered {
            Ok(()) => tracing::info!(backend, "shared state store answers"),
            Err(error) => tracing::error!(
                backend,
                %error,
                "shared state store unreachable at start-up: serving with per-process replay, \
                 single-flight and rate limits until it answers"
            ),
        }
    });
}
