//! Sending one request to the provider: one deadline covering connect, send and the whole body, a
//! cap on what is read, one connect retry (nothing was sent), and errors that never carry a URL.

use super::connect::ConnectTimedOut;
use super::error::{Cause, UpstreamError};
use super::{Upstream, MAX_RESPONSE_BYTES};
use crate::error_chain::chain;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::{Request, StatusCode};
use std::time::Duration;

impl Upstream {
    /// Sends the request `build` makes and reads the whole (capped) body before `deadline`.
    /// `build` runs again only for the one connect retry, so the common path copies nothing.
    pub(super) async fn send(
        &self,
        build: impl Fn() -> Request<Full<Bytes>>,
        deadline: tokio::time::Instant,
    ) -> Result<(StatusCode, Vec<u8>), UpstreamError> {
        let exchange = async {
            let mut response = self.client.http.request(build()).await;
            if matches!(&response, Err(error) if error.is_connect()) {
                // Nothing was sent: a second connection attempt is safe.
                tracing::debug!("connecting to the provider failed; retrying once");
                response = self.client.http.request(build()).await;
            }
            // An HTTP/2 stream the provider refused or left out of a graceful shutdown was not
            // processed (RFC 9113 §8.7): sent again, at most twice, as reqwest did.
            for _ in 0..2 {
                match &response {
                    Err(error) if unprocessed(error) => {
                        tracing::debug!("the provider did not process the stream; sending again");
                        response = self.client.http.request(build()).await;
                    }
                    _ => break,
                }
            }
            let response = response.map_err(request_error)?;
            let status = response.status();
            let body = read_capped(response.into_body()).await?;
            Ok((status, body))
        };
        tokio::time::timeout_at(deadline, exchange)
            .await
            .unwrap_or(Err(UpstreamError::Timeout(self.timeout)))
            .map_err(|error| match error {
                // The connect timeout fired: the same deadline.
                UpstreamError::Timeout(_) => UpstreamError::Timeout(self.timeout),
                other => other,
            })
    }
}

/// True for an HTTP/2 stream the provider did not process: reset with `REFUSED_STREAM`, or
/// beyond the last stream of its graceful `GOAWAY` (`NO_ERROR`). RFC 9113 §8.7: "the request has
/// not been processed", so sending it again cannot spend a code or a refresh token twice.
fn unprocessed(error: &hyper_util::client::legacy::Error) -> bool {
    chain(error)
        .find_map(|error| error.downcast_ref::<h2::Error>())
        .is_some_and(|h2| {
            h2.is_remote()
                && ((h2.is_reset() && h2.reason() == Some(h2::Reason::REFUSED_STREAM))
                    || (h2.is_go_away() && h2.reason() == Some(h2::Reason::NO_ERROR)))
        })
}

/// The client's error: a failed connect (nothing sent) or a failure after the request may have
/// been sent. Neither it nor its sources carry the URL (a revoke URL carries the token in its
/// query) or a header value: hyper-util's says what kind of failure, the connector's names at
/// most the socket address.
fn request_error(error: hyper_util::client::legacy::Error) -> UpstreamError {
    let connect = error.is_connect();
    cause_error(Box::new(error), connect)
}

fn cause_error(cause: Cause, connect: bool) -> UpstreamError {
    if timed_out(&*cause) {
        UpstreamError::Timeout(Duration::ZERO)
    } else if connect {
        UpstreamError::Connect(cause)
    } else {
        UpstreamError::Transport(cause)
    }
}

/// A timeout anywhere in the chain: the connect timeout, or the socket's own.
fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    chain(error).any(|error| {
        error.is::<ConnectTimedOut>()
            || error
                .downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_timeout)
            || error
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut)
    })
}

/// The whole body, refused past [`MAX_RESPONSE_BYTES`] by its `Content-Length` or while read.
async fn read_capped(mut body: Incoming) -> Result<Vec<u8>, UpstreamError> {
    let length = body.size_hint().exact();
    if length.is_some_and(|len| len > MAX_RESPONSE_BYTES as u64) {
        return Err(UpstreamError::Oversized);
    }
    let mut bytes = Vec::with_capacity(length.map_or(1024, |len| len as usize));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| cause_error(Box::new(e), false))?;
        // Trailers carry nothing we read.
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(UpstreamError::Oversized);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}
