//! Sending one request to the provider: one deadline covering connect, send and the whole body, a
//! cap on what is read, one connect retry (nothing was sent), and errors that never carry a URL.

use super::error::UpstreamError;
use super::{Upstream, MAX_RESPONSE_BYTES};
use reqwest::StatusCode;
use std::time::Duration;

impl Upstream {
    /// Sends the request `build` makes and reads the whole (capped) body before `deadline`.
    /// `build` runs again only for the one connect retry, so the common path copies nothing.
    pub(super) async fn send(
        &self,
        build: impl Fn() -> reqwest::RequestBuilder,
        deadline: tokio::time::Instant,
    ) -> Result<(StatusCode, Vec<u8>), UpstreamError> {
        let exchange = async {
            let response = match build().send().await {
                // Nothing was sent: a second connection attempt is safe.
                Err(error) if error.is_connect() => {
                    tracing::debug!("connecting to the provider failed; retrying once");
                    build().send().await.map_err(transport_error)?
                }
                other => other.map_err(transport_error)?,
            };
            let status = response.status();
            let body = read_capped(response).await?;
            Ok((status, body))
        };
        tokio::time::timeout_at(deadline, exchange)
            .await
            .unwrap_or(Err(UpstreamError::Timeout(self.timeout)))
            .map_err(|error| match error {
                // reqwest's connect timeout fired: the same deadline.
                UpstreamError::Timeout(_) => UpstreamError::Timeout(self.timeout),
                other => other,
            })
    }
}

/// reqwest's errors print the URL; a revoke URL carries the token in its query. Strip it always.
fn transport_error(error: reqwest::Error) -> UpstreamError {
    let error = error.without_url();
    if error.is_timeout() {
        UpstreamError::Timeout(Duration::ZERO)
    } else if error.is_connect() {
        UpstreamError::Connect(error)
    } else {
        UpstreamError::Transport(error)
    }
}

async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, UpstreamError> {
    if response
        .content_length()
        .is_some_and(|len| len > MAX_RESPONSE_BYTES as u64)
    {
        return Err(UpstreamError::Oversized);
    }
    let mut body = Vec::with_capacity(response.content_length().map_or(1024, |len| len as usize));
    while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(UpstreamError::Oversized);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
