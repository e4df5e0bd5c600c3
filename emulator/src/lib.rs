//! An offline emulator of Kick's OAuth server (`id.kick.com`), for end-to-end tests and the
//! proxy's `dev` mode.
//!
//! It speaks the same protocol as the real server, an ORY fosite deployment: the authorization
//! endpoint approves at once (no login page) and redirects with a code; the token endpoint takes
//! `client_secret_post` credentials, enforces PKCE `S256`, single-use codes, rotation of
//! "reusable/flexible" refresh tokens with a grace period, and answers with fosite's error
//! wording; revocation and introspection follow Kick's own shapes. Tests can move its clock
//! forward, inject the failures seen in the wild ([`Fault`]) and read [`Stats`].
//!
//! # Layout
//! - `config`: [`EmulatorConfig`] and [`RegisteredClient`], registered clients and lifetimes.
//! - `routes`: the four endpoints and the router.
//! - `store`: codes, tokens and grants, with fosite's rules.
//! - `error`: fosite's error codes, descriptions and hints.
//! - `faults`: [`Fault`] and the middleware that injects it.
//! - `server`: the accept loop, one hyper connection per TCP stream (so a fault can reset one).
//! - `clock`, `tokens`, `stats`: emulator time, random credentials and PKCE, counters.
//!
//! # Endpoints
//! | method, path | answers |
//! |---|---|
//! | `GET /oauth/authorize` | 302 to `redirect_uri?code&scope&state`, or an error (JSON 400 while the client or redirect URI is unknown, a redirect with `error` after that) |
//! | `POST /oauth/token` | token JSON, or fosite's `{"error","error_description"}` |
//! | `POST /oauth/revoke?token&token_hint_type` | 200 `OK` |
//! | `POST /oauth/token/introspect` | `{"data":{"active":…},"message":"OK"}` |
//!
//! # Example
//! ```
//! use kick_emulator::{Emulator, EmulatorConfig, Fault};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let kick = Emulator::start(EmulatorConfig::default()).await?;
//! // Point the code under test at the emulator instead of https://id.kick.com:
//! let token_url = kick.token_url();
//! assert!(token_url.starts_with("http://127.0.0.1:"));
//!
//! let http = reqwest::Client::new();
//! let answer = http
//!     .post(&token_url)
//!     .form(&[("grant_type", "refresh_token"), ("refresh_token", "unknown"),
//!             ("client_id", "emulator-client-id"), ("client_secret", "emulator-client-secret")])
//!     .send()
//!     .await
//!     .expect("emulator answers");
//! assert_eq!(answer.status(), 400); // invalid_grant
//!
//! kick.set_fault(Fault::ServerError(503));
//! let answer = http.post(&token_url).send().await.expect("emulator answers");
//! assert_eq!(answer.status(), 503);
//! assert_eq!(kick.stats().token_requests, 2);
//! kick.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod clock;
mod config;
mod error;
mod faults;
mod routes;
mod server;
mod state;
mod stats;
mod store;
mod tokens;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use config::{EmulatorConfig, RegisteredClient};
pub use faults::Fault;
pub use stats::Stats;

use state::App;

/// A running emulated Kick OAuth server.
///
/// Cheap to clone; all clones control the same server. The server stops when
/// [`shutdown`](Self::shutdown) is called on any clone or when the last clone is dropped.
#[derive(Clone)]
pub struct Emulator {
    inner: Arc<Inner>,
}

/// Shows the address only: the state behind it holds live codes and tokens.
impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("base_url", &self.base_url())
            .finish_non_exhaustive()
    }
}

struct Inner {
    addr: SocketAddr,
    app: Arc<App>,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Aborting the accept task drops its connection set, which aborts every connection.
        if let Some(task) = self
            .task
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

impl Emulator {
    /// Binds `127.0.0.1` on a free port and starts serving.
    ///
    /// Must be called within a Tokio runtime. Fails if binding fails or the configuration
    /// registers a client id twice.
    pub async fn start(config: EmulatorConfig) -> std::io::Result<Emulator> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        Self::start_on(listener, config).await
    }

    /// Starts serving on an already bound listener (for a fixed port, as in `dev` mode).
    ///
    /// Must be called within a Tokio runtime. Fails if the listener has no local address or the
    /// configuration registers a client id twice.
    pub async fn start_on(
        listener: TcpListener,
        config: EmulatorConfig,
    ) -> std::io::Result<Emulator> {
        config.validate()?;
        let mut addr = listener.local_addr()?;
        if addr.ip().is_unspecified() {
            // Bound to every interface: advertise the loopback address of the same family.
            addr.set_ip(match addr.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        let app = Arc::new(App::new(&config));
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(server::run(listener, app.clone(), stopped));
        tracing::debug!(%addr, clients = config.clients.len(), "Kick emulator listening");
        Ok(Emulator {
            inner: Arc::new(Inner {
                addr,
                app,
                stop: Mutex::new(Some(stop)),
                task: Mutex::new(Some(task)),
            }),
        })
    }

    /// The server's origin, `http://127.0.0.1:PORT` (`http://[::1]:PORT` for IPv6).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// `base_url() + "/oauth/authorize"`, Kick's authorization endpoint (RFC 6749 §3.1).
    pub fn authorize_url(&self) -> String {
        format!("{}/oauth/authorize", self.base_url())
    }

    /// `base_url() + "/oauth/token"`, Kick's token endpoint (RFC 6749 §3.2).
    pub fn token_url(&self) -> String {
        format!("{}/oauth/token", self.base_url())
    }

    /// `base_url() + "/oauth/revoke"`, Kick's revocation endpoint (parameters in the query).
    pub fn revoke_url(&self) -> String {
        format!("{}/oauth/revoke", self.base_url())
    }

    /// `base_url() + "/oauth/token/introspect"`, Kick's token introspection endpoint.
    pub fn introspect_url(&self) -> String {
        format!("{}/oauth/token/introspect", self.base_url())
    }

    /// Injects `fault` into every following request to the token, revoke and introspect
    /// endpoints, including requests on keep-alive connections that are already open.
    /// Replaces any fault already set.
    pub fn set_fault(&self, fault: Fault) {
        tracing::debug!(?fault, "fault set");
        self.inner.app.faults.set(Some(fault));
    }

    /// Injects `fault` into the next `times` requests to the token, revoke and introspect
    /// endpoints only; the request after those is answered normally, as if
    /// [`clear_fault`](Self::clear_fault) had been called in between. For "fail N times, then
    /// recover" tests without racing the client's retries. A request counts when it arrives
    /// (concurrent requests each take one of the `times`). `times == 0` clears the fault.
    /// Replaces any fault already set; [`set_fault`](Self::set_fault) or `clear_fault` replace
    /// this one.
    ///
    /// ```
    /// use kick_emulator::{Emulator, EmulatorConfig, Fault};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let kick = Emulator::start(EmulatorConfig::default()).await?;
    /// kick.set_fault_times(Fault::ServerError(500), 1);
    /// let http = reqwest::Client::new();
    /// let first = http.post(kick.token_url()).send().await.expect("answer");
    /// assert_eq!(first.status(), 500);
    /// let second = http.post(kick.token_url()).send().await.expect("answer");
    /// assert_eq!(second.status(), 400); // the fault is spent: a normal (empty) request's error
    /// assert_eq!(kick.stats().faults_injected, 1);
    /// kick.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn set_fault_times(&self, fault: Fault, times: u32) {
        tracing::debug!(?fault, times, "fault set for a number of requests");
        self.inner.app.faults.set_times(fault, times);
    }

    /// Removes the current fault: following requests are answered normally.
    pub fn clear_fault(&self) {
        tracing::debug!("fault cleared");
        self.inner.app.faults.set(None);
    }

    /// Moves emulator time forward, so codes, tokens and refresh grace periods expire without
    /// sleeping. Introspection's `exp` is on this clock too.
    pub fn advance_clock(&self, by: Duration) {
        self.inner.app.clock.advance(by);
    }

    /// What the emulator has received and answered so far.
    pub fn stats(&self) -> Stats {
        self.inner.app.counters.snapshot()
    }

    /// Stops the server: closes the listener and every open connection (requests in flight get
    /// no answer), and waits until that is done. Other clones see a closed port afterwards.
    pub async fn shutdown(self) {
        let stop = self
            .inner
            .stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(stop) = stop {
            // An error only means the server task has already ended.
            let _ = stop.send(());
        }
        let task = self
            .inner
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            if let Err(error) = task.await {
                tracing::debug!(%error, "emulator task ended abnormally");
            }
        }
    }
}
