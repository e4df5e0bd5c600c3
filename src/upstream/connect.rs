//! Opening a connection to the provider, as reqwest's connector did: straight there (TCP, then TLS
//! for `https://`), or through the environment's egress proxy: a `CONNECT` tunnel for `https://`
//! (TLS to the provider inside it), the request in absolute form for `http://`. The whole of it
//! (DNS, TCP, proxy tunnel, TLS handshake) is bounded by the provider's timeout.
//!
//! This runs once per new pooled connection, never per request.

use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::Uri;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A TCP connection, with TLS for `https://` (to the provider, or to an `https://` proxy).
type Stream = MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>;

/// The provider client's connector: see the module docs. One `Arc`: hyper-util's client clones
/// its connector for every request, and this makes that one reference count.
#[derive(Clone)]
pub(super) struct Connector(pub(super) Arc<Connecting>);

/// What opening a connection needs.
pub(super) struct Connecting {
    /// TCP (getaddrinfo, `TCP_NODELAY`, the connect timeout), then TLS for `https://` with ALPN
    /// `h2`, `http/1.1`.
    pub(super) direct: HttpsConnector<HttpConnector>,
    /// The same for reaching an egress proxy: no ALPN for an `https://` one, since what it is
    /// sent (a `CONNECT`, or an `http://` endpoint's request in absolute form) is HTTP/1.1.
    pub(super) to_proxy: HttpsConnector<HttpConnector>,
    /// The provider's TLS settings, for the handshake inside a tunnel.
    pub(super) tls: Arc<rustls::ClientConfig>,
    /// `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`, read once when the client was built.
    pub(super) proxies: Arc<Matcher>,
    /// The provider's timeout, for the whole of opening a connection.
    pub(super) timeout: Duration,
}

impl Service<Uri> for Connector {
    type Response = Conn;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let connecting = Arc::clone(&self.0);
        Box::pin(async move {
            tokio::time::timeout(connecting.timeout, connecting.connect(dst))
                .await
                .unwrap_or_else(|_| Err(Box::new(ConnectTimedOut)))
        })
    }
}

impl Connecting {
    async fn connect(&self, dst: Uri) -> Result<Conn, BoxError> {
        let Some(proxy) = self.proxies.intercept(&dst) else {
            return Ok(Conn {
                inner: MaybeHttpsStream::Http(self.direct.clone().call(dst).await?),
                is_proxy: false,
            });
        };
        if dst.scheme() != Some(&hyper::http::uri::Scheme::HTTPS) {
            // `http://` through the proxy: the request goes to it in absolute form over HTTP/1.1,
            // with its credentials in `Proxy-Authorization` (added by the request, see `Endpoint`).
            return Ok(Conn {
                inner: MaybeHttpsStream::Http(
                    self.to_proxy.clone().call(proxy.uri().clone()).await?,
                ),
                is_proxy: true,
            });
        }
        let mut tunnel = Tunnel::new(proxy.uri().clone(), self.to_proxy.clone());
        if let Some(auth) = proxy.basic_auth() {
            tunnel = tunnel.with_auth(auth.clone());
        }
        let mut headers = hyper::HeaderMap::with_capacity(1);
        headers.insert(hyper::header::USER_AGENT, super::USER_AGENT);
        tunnel = tunnel.with_headers(headers);
        let tunneled = tunnel.call(dst.clone()).await?;
        let host = dst.host().ok_or("no host in the provider's URL")?;
        // An IPv6 literal comes bracketed in a URI, never in a server name.
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let server_name = rustls::pki_types::ServerName::try_from(host.to_owned())
            .map_err(|_| "the provider's host is not a valid TLS server name")?;
        let tls = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls))
            .connect(server_name, TokioIo::new(tunneled))
            .await?;
        Ok(Conn {
            inner: MaybeHttpsStream::Https(TokioIo::new(tls)),
            is_proxy: false,
        })
    }
}

/// Opening the connection took longer than the provider's timeout.
#[derive(Debug)]
pub(super) struct ConnectTimedOut;

impl std::fmt::Display for ConnectTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connecting timed out")
    }
}

impl std::error::Error for ConnectTimedOut {}

/// A connection to the provider: direct (`Http` of a plain or TLS stream), or TLS inside a proxy's
/// tunnel (`Https` over the stream to the proxy).
pub(super) struct Conn {
    inner: MaybeHttpsStream<Stream>,
    /// A plain-HTTP proxy's connection: requests on it go in absolute form.
    is_proxy: bool,
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        // HTTP/2 when the provider's TLS handshake negotiated `h2` (ALPN). Nothing else of what
        // the TCP connector reports: its `HttpInfo` (the socket addresses) would be copied into
        // every response's extensions, three allocations per call, and nothing reads it.
        let connected = Connected::new().proxy(self.is_proxy);
        if self.inner.connected().is_negotiated_h2() {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}

impl Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl Write for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
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

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
