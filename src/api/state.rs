//! [`AppState`]: what every handler can reach.

use crate::config::Settings;
use crate::exchange::{ClientBuildError, Exchange};
use crate::state::SharedState;
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

struct Shared {
    settings: ArcSwap<Settings>,
    exchange: Exchange,
    draining: AtomicBool,
    body_read_timeout: Duration,
}

impl AppState {
    /// Builds every provider's client from validated settings; `shared` is the store replicas
    /// share (`None`: everything per process).
    pub fn new(settings: &Settings, shared: Option<SharedState>) -> Result<Self, ClientBuildError> {
        Ok(Self {
            inner: Arc::new(Shared {
                settings: ArcSwap::from_pointee(settings.clone()),
                exchange: Exchange::new(settings, shared)?,
                draining: AtomicBool::new(false),
                body_read_timeout: Duration::from_secs(settings.server.body_read_timeout_secs),
            }),
        })
    }

    /// Applies what can change without a restart from freshly loaded `settings` (see
    /// [`Exchange::reload`]). Returns the names of the keys that changed but need a restart.
    pub fn reload(&self, settings: &Settings) -> Vec<String> {
        let mut needs_restart = self.inner.exchange.reload(settings);
        needs_restart.extend(
            self.settings()
                .state
                .changed_keys(&settings.state)
                .into_iter()
                .map(str::to_owned),
        );
        self.inner.settings.store(Arc::new(settings.clone()));
        needs_restart
    }

    /// The validated settings in force (as of the last reload).
    pub fn settings(&self) -> Arc<Settings> {
        self.inner.settings.load_full()
    }

    /// The providers, replay and single-flight.
    pub fn exchange(&self) -> &Exchange {
        &self.inner.exchange
    }

    /// The body-read deadline.
    pub fn body_read_timeout(&self) -> Duration {
        self.inner.body_read_timeout
    }

    /// From now on `/readyz` answers 503 so load balancers stop sending traffic.
    pub fn start_draining(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
    }

    /// True once shutdown started.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }
}
