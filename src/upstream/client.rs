//! The HTTP client of one provider, built once at start-up from its settings, and its endpoints
//! resolved once into what each request needs.

use super::connect::{Connecting, Connector};
use super::{Credentials, Endpoint, Upstream};
use crate::config::ProviderSettings;
use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// A provider's pooled HTTP client, and the egress proxy settings it was built with.
pub struct Client {
    pub(super) http: hyper_util::client::legacy::Client<Connector, Full<Bytes>>,
    proxies: Arc<Matcher>,
}

/// A provider's client or endpoints could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The TLS settings (never the `ca_file` certificates: those were checked with the config).
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// An endpoint URL the HTTP client does not accept as a URI.
    #[error("`{key}` is not a URI the HTTP client accepts: {source}")]
    Uri {
        /// The config key.
        key: &'static str,
        /// Why.
        #[source]
        source: hyper::http::uri::InvalidUri,
    },
    /// The environment's egress proxy for an endpoint is a SOCKS proxy (`socks4://`, `socks4a://`,
    /// `socks5://`, `socks5h://`), which this client does not speak: spoken to as an HTTP proxy,
    /// it would fail every call. Both are named as `scheme://host:port` alone: never the proxy's
    /// credentials, nor the endpoint's user info, path or query.
    #[error(
        "`{key}` ({endpoint}) would go through the SOCKS proxy {proxy} named by the environment \
         (`ALL_PROXY`, `HTTPS_PROXY` or `HTTP_PROXY`): only http:// and https:// egress proxies \
         are supported; exclude the host with `NO_PROXY` or use an HTTP proxy"
    )]
    SocksProxy {
        /// The config key of the endpoint.
        key: &'static str,
        /// The endpoint, `scheme://host:port`.
        endpoint: String,
        /// The proxy, `scheme://host:port`.
        proxy: String,
    },
}

/// `scheme://host:port` of `uri` (the scheme's default port when it names none): how logs and
/// errors name an endpoint or an egress proxy, without user info, path or query.
fn origin(uri: &hyper::Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("http");
    let port = uri.port_u16().unwrap_or(match scheme {
        "https" => 443,
        "http" => 80,
        // SOCKS (RFC 1928 §3).
        _ => 1080,
    });
    format!("{scheme}://{}:{port}", uri.host().unwrap_or_default())
}

impl ProviderSettings {
    /// The HTTP client for this provider: rustls (ring; the built-in webpki roots plus the
    /// certificates of `ca_file`, if set; ALPN `h2`, `http/1.1`), no redirects (it follows none),
    /// pooled connections (idle 90 s, at most `max_idle` idle per host), `TCP_NODELAY`, the deadline on
    /// connecting, the egress proxy of the environment (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`,
    /// `NO_PROXY`, read now). The whole call's deadline (connect, send, the whole body, the
    /// next-secret attempt) is enforced once around it, by `Upstream::send`'s `timeout_at`.
    pub fn client(&self, max_idle: usize) -> Result<Client, BuildError> {
        let mut roots = rustls::RootCertStore::empty();
        for certificate in self.ca_certificates.certificates() {
            roots.add(certificate.clone())?;
        }
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(rustls::ALL_VERSIONS)?
        .with_root_certificates(roots)
        .with_no_client_auth();
        // An https:// proxy is spoken to in HTTP/1.1 whatever the provider speaks: a `CONNECT`,
        // or an http:// endpoint's request in absolute form. Offering it `h2` by ALPN would
        // have the request sent to the proxy over HTTP/2.
        let to_proxy = Arc::new(tls.clone());
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let tls = Arc::new(tls);

        // getaddrinfo; TCP keepalive as reqwest set it (15 s, every 15 s, 3 probes; 30 s user
        // timeout) so a dead pooled connection is noticed.
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(self.timeout));
        tcp.set_keepalive(Some(Duration::from_secs(15)));
        tcp.set_keepalive_interval(Some(Duration::from_secs(15)));
        tcp.set_keepalive_retries(Some(3));
        #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
        tcp.set_tcp_user_timeout(Some(Duration::from_secs(30)));

        let proxies = Arc::new(Matcher::from_env());
        let connector = Connector(Arc::new(Connecting {
            direct: hyper_rustls::HttpsConnector::from((tcp.clone(), Arc::clone(&tls))),
            to_proxy: hyper_rustls::HttpsConnector::from((tcp, to_proxy)),
            tls,
            proxies: Arc::clone(&proxies),
            timeout: self.timeout,
        }));
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            // A burst opens one connection per call in flight and the pool keeps them all: no
            // more can be in use at once, and closing one only to open another under the same
            // load costs more CPU than the ~14 KB an idle plain connection holds for 90 s (bench).
            .pool_max_idle_per_host(max_idle)
            .build(connector);
        Ok(Client { http, proxies })
    }

    /// The upstream endpoint for this provider; its pool keeps at most `max_idle` idle connections
    /// (`limits.max_upstream_calls`: as many as can be in use at once). Refuses an endpoint the
    /// environment would send through a SOCKS proxy ([`BuildError::SocksProxy`]); logs, once per
    /// proxy, that the provider's calls go through one.
    pub fn upstream(&self, max_idle: usize) -> Result<Upstream, BuildError> {
        let client = self.client(max_idle)?;
        let (token, token_proxy) = client.endpoint("token_url", &self.token_url)?;
        let (revoke, revoke_proxy) = match &self.revoke_url {
            Some(url) => {
                let (revoke, proxy) = client.endpoint("revoke_url", url)?;
                (Some(revoke), proxy)
            }
            None => (None, None),
        };
        let mut proxies: Vec<(String, Vec<&str>)> = Vec::new();
        for (key, proxy) in [("token_url", token_proxy), ("revoke_url", revoke_proxy)] {
            let Some(proxy) = proxy else {
                continue;
            };
            match proxies.iter_mut().find(|(p, _)| *p == proxy) {
                Some((_, keys)) => keys.push(key),
                None => proxies.push((proxy, vec![key])),
            }
        }
        for (proxy, keys) in proxies {
            tracing::info!(
                provider = %self.name,
                proxy,
                endpoints = %keys.join(","),
                "provider calls go through an egress proxy"
            );
        }
        Ok(Upstream {
            client,
            token,
            revoke,
            client_id: self.client_id.clone(),
            credentials: ArcSwap::from_pointee(Credentials {
                current: self.client_secret.clone(),
                next: self.next_client_secret.clone(),
            }),
            timeout: self.timeout,
            client_auth: self.client_auth,
            revoke_style: self.revoke_style,
            dialect: self.dialect,
        })
    }
}

impl Client {
    /// `url` resolved once: its URI, the Basic credentials of its user info (sent as reqwest sent
    /// them, and taken out of the URI), and the egress proxy's credentials when an http:// URL is
    /// reached through one (an https:// one sends them in the tunnel's `CONNECT`); beside it, the
    /// egress proxy its calls go through as `scheme://host:port`, for the start-up log. An egress
    /// proxy that is not http:// or https:// is refused.
    fn endpoint(
        &self,
        key: &'static str,
        url: &Url,
    ) -> Result<(Endpoint, Option<String>), BuildError> {
        let mut url = url.clone();
        let userinfo = super::userinfo_authorization(&mut url);
        let uri: hyper::Uri = url
            .as_str()
            .parse()
            .map_err(|source| BuildError::Uri { key, source })?;
        let proxy = self.proxies.intercept(&uri);
        if let Some(proxy) = &proxy {
            // `Matcher` keeps only http://, https:// and SOCKS proxies.
            if !matches!(proxy.uri().scheme_str(), Some("http" | "https")) {
                return Err(BuildError::SocksProxy {
                    key,
                    endpoint: origin(&uri),
                    proxy: origin(proxy.uri()),
                });
            }
        }
        let proxy_authorization = proxy
            .as_ref()
            .filter(|_| uri.scheme() == Some(&hyper::http::uri::Scheme::HTTP))
            .and_then(|proxy| proxy.basic_auth().cloned());
        let endpoint = Endpoint {
            url,
            uri,
            userinfo,
            proxy_authorization,
        };
        Ok((endpoint, proxy.map(|proxy| origin(proxy.uri()))))
    }
}
