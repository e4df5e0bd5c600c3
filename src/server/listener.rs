//! One way of serving a connection, for every listener: the public one (plain or TLS) and the
//! admin one.
//!
//! What a connection may cost is bounded here, before any request exists, because the layers
//! behind the router (rate limits, shedding) only see requests that were parsed:
//! - **header block**: hyper's read buffer is capped at `server.max_header_bytes` (and so is the
//!   parsed head), so a header block that never ends cannot grow past it; hyper answers 431
//!   `Request Header Fields Too Large` and closes the connection. Without the cap hyper buffers
//!   about 400 KiB per connection;
//! - **header deadline**: `server.header_read_timeout_secs` runs from the accept (a TLS handshake
//!   included), and again while a kept-alive connection waits for its next request, so an idle
//!   keep-alive connection is closed after the same time;
//! - **send deadline**: a response the client does not read is given the same time to make
//!   progress: when the socket has taken none of it for
//!   `server.header_read_timeout_secs`, the connection is closed ([`WriteDeadline`]). Without it, a
//!   client that pipelines requests and never reads would hold its connection, hyper's unsent
//!   output and the kernel's socket buffers for as long as it likes;
//! - **open connections**: at most `max_connections` per listener. When a new connection finds the
//!   listener full, the connection that has been idle the longest (no request in flight: a
//!   kept-alive one, one still sending its headers, one in its TLS handshake) is closed to make
//!   room, so idle or half-sent sockets cannot lock real clients out. Only when every connection
//!   has a request in flight is the new one closed at once, unanswered.
//!
//! Shutdown: [`Listener::close_and_drain`] lets requests in flight finish, closes idle
//! connections, and waits until none is left.

use super::router::App;
use atomic_waker::AtomicWaker;
use axum::extract::ConnectInfo;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;

/// What a connection on one listener may cost.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionRules {
    /// The largest request line plus header block accepted, in bytes (hyper's read buffer is
    /// capped to the same size). At least 8,192: hyper's smallest buffer.
    pub max_header_bytes: usize,
    /// From the accept (or the end of the previous response) to the end of the header block; also
    /// how long a blocked write may wait for the socket to take any of it (the send deadline).
    pub header_read_timeout: Duration,
    /// Connections open at once on this listener.
    pub max_connections: usize,
}

/// A connection's state, as the admission policy sees it.
const IDLE: u8 = 0;
/// A request is being handled; the connection is never closed under it.
const BUSY: u8 = 1;
/// Chosen to make room while idle: its task drops it.
const EVICTED: u8 = 2;

/// [`Slot::signals`]: chosen to make room (its state went from [`IDLE`] to [`EVICTED`]).
const EVICT: u8 = 1;
/// [`Slot::signals`]: the listener is shutting down.
const SHUT_DOWN: u8 = 2;

/// One open connection.
struct Slot {
    state: AtomicU8,
    /// Milliseconds since [`Registry::epoch`] at which it last became idle.
    idle_since_ms: AtomicU64,
    /// [`EVICT`] and [`SHUT_DOWN`], set by the listener before it wakes the connection's task.
    signals: AtomicU8,
    /// The connection's task. An atomic waker, not a `Notify`: the task is polled several times
    /// per request, and re-registering its (unchanged) waker costs one atomic swap here where a
    /// `Notify` takes its mutex.
    task: AtomicWaker,
}

impl Slot {
    fn signal(&self, signal: u8) {
        self.signals.fetch_or(signal, Ordering::AcqRel);
        self.task.wake();
    }

    /// The signals received so far, with `cx`'s task woken on the next one.
    fn poll_signals(&self, cx: &Context<'_>) -> u8 {
        self.task.register(cx.waker());
        self.signals.load(Ordering::Acquire)
    }
}

/// The open connections of one listener.
struct Registry {
    /// `public` or `admin`: the metrics label and the log field.
    name: &'static str,
    slots: Mutex<BTreeMap<u64, Arc<Slot>>>,
    next_id: AtomicU64,
    epoch: Instant,
    /// Connection tasks still running (an evicted one too, until it is gone).
    live: AtomicUsize,
    /// Signalled when `live` drops to zero.
    emptied: Notify,
    /// When a refusal was last logged, for one warning per [`REFUSAL_LOG_INTERVAL`].
    last_refusal_log_ms: AtomicU64,
}

/// How often a full listener may say so in the log.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What the listener does with a new connection.
enum Admission {
    /// Served under this slot.
    Admitted(u64, Arc<Slot>),
    /// Full, and every connection has a request in flight.
    Refused,
}

impl Registry {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            slots: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(0),
            epoch: Instant::now(),
            live: AtomicUsize::new(0),
            emptied: Notify::new(),
            last_refusal_log_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Takes a slot for a new connection, closing the longest-idle one when the listener is full.
    fn admit(&self, max_connections: usize) -> Admission {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        while slots.len() >= max_connections {
            let victim = slots
                .iter()
                .filter(|(_, slot)| slot.state.load(Ordering::Acquire) == IDLE)
                .min_by_key(|(_, slot)| slot.idle_since_ms.load(Ordering::Relaxed))
                .map(|(id, slot)| (*id, Arc::clone(slot)));
            let Some((id, slot)) = victim else {
                return Admission::Refused;
            };
            // A request may have arrived on it since the scan: then it stays, and we look again.
            if slot
                .state
                .compare_exchange(IDLE, EVICTED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                slots.remove(&id);
                slot.signal(EVICT);
                crate::metrics::record_connection_evicted(self.name);
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot {
            state: AtomicU8::new(IDLE),
            idle_since_ms: AtomicU64::new(self.now_ms()),
            signals: AtomicU8::new(0),
            task: AtomicWaker::new(),
        });
        slots.insert(id, Arc::clone(&slot));
        self.live.fetch_add(1, Ordering::AcqRel);
        crate::metrics::record_open_connections(self.name, slots.len());
        Admission::Admitted(id, slot)
    }

    /// Asks every connection to close once its request in flight, if any, is answered.
    fn shut_down(&self) {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        for slot in slots.values() {
            slot.signal(SHUT_DOWN);
        }
    }

    /// A connection task ended.
    fn release(&self, id: u64) {
        let open = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            slots.remove(&id);
            slots.len()
        };
        crate::metrics::record_open_connections(self.name, open);
        if self.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.emptied.notify_waiters();
        }
    }

    fn log_refusal(&self, max_connections: usize) {
        crate::metrics::record_connection_refused(self.name);
        let now = self.now_ms();
        let last = self.last_refusal_log_ms.load(Ordering::Relaxed);
        let interval = u64::try_from(REFUSAL_LOG_INTERVAL.as_millis()).unwrap_or(u64::MAX);
        if (last == 0 || now.saturating_sub(last) >= interval)
            && self
                .last_refusal_log_ms
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                listener = self.name,
                max_connections,
                "connection limit reached with a request in flight on every connection; new connections are closed"
            );
        }
    }

    /// Resolves once no connection task is left.
    async fn drained(&self) {
        loop {
            let emptied = self.emptied.notified();
            tokio::pin!(emptied);
            emptied.as_mut().enable();
            if self.live.load(Ordering::Acquire) == 0 {
                return;
            }
            emptied.await;
        }
    }
}

/// Ends a connection's registration however its task ends.
struct Registered {
    registry: Arc<Registry>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.release(self.id);
    }
}

/// Marks a connection busy while its request is handled, idle again after.
struct Busy {
    slot: Arc<Slot>,
    registry: Arc<Registry>,
}

impl Busy {
    fn enter(slot: &Arc<Slot>, registry: &Arc<Registry>) -> Self {
        // Also from EVICTED: the eviction lost the race to this request, and the connection task
        // sees BUSY and lets the request finish before closing.
        slot.state.store(BUSY, Ordering::Release);
        Self {
            slot: Arc::clone(slot),
            registry: Arc::clone(registry),
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.slot
            .idle_since_ms
            .store(self.registry.now_ms(), Ordering::Relaxed);
        let _ = self
            .slot
            .state
            .compare_exchange(BUSY, IDLE, Ordering::AcqRel, Ordering::Acquire);
    }
}

/// A bound listener with its application and rules.
pub struct Listener {
    tcp: TcpListener,
    app: App,
    tls: Option<TlsAcceptor>,
    rules: ConnectionRules,
    http1: http1::Builder,
    registry: Arc<Registry>,
}

/// Dropping the listener closes its socket and asks every connection to close.
impl Drop for Listener {
    fn drop(&mut self) {
        self.registry.shut_down();
    }
}

impl Listener {
    /// Wraps a bound socket. `name` labels its metrics and log lines (`public`, `admin`).
    pub fn new(
        name: &'static str,
        tcp: TcpListener,
        app: App,
        tls: Option<TlsAcceptor>,
        rules: ConnectionRules,
    ) -> Self {
        let mut http1 = http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(rules.header_read_timeout)
            // Both, so neither a header block that never ends nor a complete one can exceed it.
            .max_buf_size(rules.max_header_bytes.max(MIN_HEADER_BYTES))
            .max_header_size(rules.max_header_bytes);
        Self {
            tcp,
            app,
            tls,
            rules,
            http1,
            registry: Arc::new(Registry::new(name)),
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    /// Accepts and serves connections until `stop` completes.
    pub async fn accept_until(&self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = self.tcp.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(error) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(listener = self.registry.name, %error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut stop => return,
            };
            match self.registry.admit(self.rules.max_connections) {
                Admission::Admitted(id, slot) => self.spawn(stream, peer, id, slot),
                Admission::Refused => {
                    self.registry.log_refusal(self.rules.max_connections);
                    drop(stream);
                }
            }
        }
    }

    fn spawn(&self, stream: TcpStream, peer: SocketAddr, id: u64, slot: Arc<Slot>) {
        let _ = stream.set_nodelay(true);
        let stream = WriteDeadline::new(stream, self.rules.header_read_timeout);
        let registered = Registered {
            registry: Arc::clone(&self.registry),
            id,
        };
        let app = self.app.clone();
        let registry = Arc::clone(&self.registry);
        let service_slot = Arc::clone(&slot);
        let service = hyper::service::service_fn(
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                let busy = Busy::enter(&service_slot, &registry);
                request.extensions_mut().insert(ConnectInfo(peer));
                let response = app.serve(request.map(axum::body::Body::new));
                async move {
                    let response = response.await;
                    drop(busy);
                    Ok::<_, std::convert::Infallible>(response)
                }
            },
        );
        let http1 = self.http1.clone();
        let tls = self.tls.clone();
        let handshake_deadline = self.rules.header_read_timeout;
        let name = self.registry.name;
        tokio::spawn(async move {
            let _registered = registered;
            let served = match tls {
                None => {
                    let connection = http1.serve_connection(TokioIo::new(stream), service);
                    drive(connection, &slot).await
                }
                Some(acceptor) => {
                    // The handshake counts against the header deadline, and an idle connection
                    // may be chosen to make room while in it.
                    let handshake =
                        tokio::time::timeout(handshake_deadline, acceptor.accept(stream));
                    let stream = tokio::select! {
                        done = handshake => match done {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(error)) => {
                                tracing::debug!(listener = name, %error, "TLS handshake failed");
                                crate::metrics::record_connection_error(name, "tls_handshake");
                                return;
                            }
                            Err(_) => {
                                crate::metrics::record_connection_error(name, "header_timeout");
                                return;
                            }
                        },
                        // Evicted, or the listener shuts down: nothing is owed yet.
                        _ = std::future::poll_fn(|cx| match slot.poll_signals(cx) {
                            0 => Poll::Pending,
                            signals => Poll::Ready(signals),
                        }) => return,
                    };
                    let connection = http1.serve_connection(TokioIo::new(stream), service);
                    drive(connection, &slot).await
                }
            };
            if let Err(error) = served {
                let reason = if error.is_parse_too_large() {
                    "header_too_large"
                } else if error.is_timeout() {
                    "header_timeout"
                } else if crate::error_chain::chain(&error).any(WriteDeadline::expired) {
                    "send_timeout"
                } else {
                    "other"
                };
                crate::metrics::record_connection_error(name, reason);
                tracing::debug!(listener = name, %error, reason, "connection ended with an error");
            }
        });
    }

    /// Stops accepting (drops the socket), asks every connection to finish its request in flight
    /// and close, and waits at most `grace` for them. True when all closed in time.
    pub async fn close_and_drain(self, grace: Duration) -> bool {
        let registry = Arc::clone(&self.registry);
        drop(self);
        tokio::time::timeout(grace, registry.drained())
            .await
            .is_ok()
    }
}

/// A client's socket with a deadline on writes that make no progress: when a write finds the
/// socket's buffer full, a timer starts; any byte the socket then takes stops it; when it fires
/// first, the write fails with [`std::io::ErrorKind::TimedOut`] and hyper (or the TLS layer)
/// closes the connection. A write that does not block, the common case, costs one branch.
struct WriteDeadline {
    stream: TcpStream,
    limit: Duration,
    /// Created the first time a write blocks, and reset for each later stall.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// A write is blocked and the timer runs for it.
    stalled: bool,
}

/// Why a stalled write failed: inside the [`std::io::ErrorKind::TimedOut`] error it returns.
#[derive(Debug)]
struct SendTimedOut;

impl std::fmt::Display for SendTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the client took none of the response within the send deadline")
    }
}

impl std::error::Error for SendTimedOut {}

impl WriteDeadline {
    fn new(stream: TcpStream, limit: Duration) -> Self {
        Self {
            stream,
            limit,
            timer: None,
            stalled: false,
        }
    }

    /// True for the error a stalled write ends with (`io::Error::source` skips its payload, so
    /// the payload is looked at directly).
    fn expired(error: &(dyn std::error::Error + 'static)) -> bool {
        error
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .is_some_and(|payload| payload.is::<SendTimedOut>())
    }

    /// What a write returns once the socket answered: `Pending` runs (or starts) the timer under
    /// `cx` and becomes the timeout when it has fired; anything else stops it.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        if written.is_ready() {
            self.stalled = false;
            return written;
        }
        let timer = match &mut self.timer {
            Some(timer) => {
                if !self.stalled {
                    timer
                        .as_mut()
                        .reset(tokio::time::Instant::now() + self.limit);
                }
                timer
            }
            None => self.timer.insert(Box::pin(tokio::time::sleep(self.limit))),
        };
        self.stalled = true;
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                SendTimedOut,
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for WriteDeadline {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteDeadline {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.watch(cx, written)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.watch(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// hyper's smallest read buffer; config validation refuses less, this only guards the builder.
const MIN_HEADER_BYTES: usize = 8192;

/// Serves one HTTP/1.1 connection until it ends, is evicted while idle, or the listener shuts down
/// (then the request in flight, if any, finishes first).
async fn drive<I, S>(connection: http1::Connection<I, S>, slot: &Slot) -> Result<(), hyper::Error>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::pin!(connection);
    let mut closing = false;
    std::future::poll_fn(|cx| loop {
        if let Poll::Ready(served) = connection.as_mut().poll(cx) {
            return Poll::Ready(served);
        }
        if closing {
            return Poll::Pending;
        }
        let signals = slot.poll_signals(cx);
        if signals == 0 {
            return Poll::Pending;
        }
        if signals & EVICT != 0 && slot.state.load(Ordering::Acquire) == EVICTED {
            // No request was handed to the router: nothing is owed; drop the socket.
            return Poll::Ready(Ok(()));
        }
        // Shutting down, or a request arrived as it was chosen: let the request in flight
        // finish, then close (polled again at once: an idle connection ends there).
        connection.as_mut().graceful_shutdown();
        closing = true;
    })
    .await
}
