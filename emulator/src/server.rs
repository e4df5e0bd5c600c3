//! The accept loop: one hyper connection per TCP stream, so a fault can abort a single
//! connection with a TCP reset, and shutdown can stop every connection at once.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch, Notify};
use tokio::task::JoinSet;
use tower::ServiceExt as _;

use crate::routes;
use crate::state::App;
use crate::stats::bump;

/// Lets a request ask for its own connection to be reset, and learn when the connection is gone.
/// Inserted into every request's extensions by [`serve_connection`].
#[derive(Debug, Clone)]
pub(crate) struct ConnectionAbort {
    state: Arc<AbortState>,
    /// Its sender lives as long as the connection task; `changed()` fails once it is dropped.
    alive: watch::Receiver<()>,
}

#[derive(Debug, Default)]
struct AbortState {
    reset: AtomicBool,
    requested: Notify,
}

impl ConnectionAbort {
    /// Marks the connection for a reset and wakes its task, which then drops it.
    pub(crate) fn reset(&self) {
        self.state.reset.store(true, Ordering::Release);
        // notify_one keeps a permit if the task is not waiting yet.
        self.state.requested.notify_one();
    }

    fn is_reset(&self) -> bool {
        self.state.reset.load(Ordering::Acquire)
    }

    /// Resolves once the connection is gone: closed, reset, or stopped with the emulator. A
    /// request that must never be answered waits on this, so it does not outlive its
    /// connection (HTTP/2 runs each request in its own task).
    pub(crate) async fn closed(&self) {
        let mut alive = self.alive.clone();
        while alive.changed().await.is_ok() {}
    }
}

/// A TCP stream that, when dropped after [`ConnectionAbort::reset`], closes with `SO_LINGER` 0:
/// the kernel discards unsent data and sends RST instead of FIN, which a client sees as
/// "connection reset by peer". Normal closes stay graceful.
struct ResettableStream {
    inner: TcpStream,
    abort: ConnectionAbort,
}

impl Drop for ResettableStream {
    fn drop(&mut self) {
        if self.abort.is_reset() {
            if let Err(error) = self.inner.set_zero_linger() {
                tracing::debug!(%error, "could not arm the connection reset");
            }
        }
    }
}

impl AsyncRead for ResettableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Accepts connections until `shutdown` fires (or its sender is dropped), then aborts every
/// open connection and waits for them to finish.
pub(crate) async fn run(listener: TcpListener, app: Arc<App>, mut shutdown: oneshot::Receiver<()>) {
    let router = routes::router(app.clone());
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    bump(&app.counters.connections_accepted);
                    connections.spawn(serve_connection(stream, router.clone()));
                }
                Err(error) => {
                    // Usually out of file descriptors; back off instead of spinning.
                    tracing::debug!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
    tracing::debug!("emulator stopped");
}

/// Serves HTTP/1.1 or HTTP/2 (prior knowledge) on one connection until the client closes it or a
/// request asks for a reset.
async fn serve_connection(stream: TcpStream, router: Router) {
    // Token responses are small; do not let Nagle delay them.
    let _ = stream.set_nodelay(true);
    let (_alive, alive) = watch::channel(());
    let abort = ConnectionAbort {
        state: Arc::default(),
        alive,
    };
    let io = TokioIo::new(ResettableStream {
        inner: stream,
        abort: abort.clone(),
    });
    let service = {
        let abort = abort.clone();
        hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(abort.clone());
            router.clone().oneshot(request)
        })
    };
    let builder = Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(io, service);
    tokio::select! {
        result = connection => {
            if let Err(error) = result {
                tracing::debug!(%error, "connection ended with an error");
            }
        }
        // Dropping `connection` here drops the stream, which resets it.
        () = abort.state.requested.notified() => tracing::debug!("connection reset by fault"),
    }
}
