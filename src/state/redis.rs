//! [`RedisStore`]: the shared store on Redis or Valkey, through redis-rs.
//!
//! One `ConnectionManager` (a multiplexed connection that reconnects by itself), created on the
//! first operation, so building the store never connects, blocks or fails because Redis is down.
//! Its own retries are off: an operation either gets an answer within `op_timeout` or fails, and
//! the caller goes on per process. A connection attempt that was refused outright (nothing sent)
//! is retried once at once, so the first operation after Redis comes back succeeds instead of
//! reporting the previous attempt's failure. Consecutive failures open [`super::breaker`]; each
//! failure that leaves it open also drops the connection manager, so the probe after the cooldown
//! connects afresh: the manager reconnects by itself only after I/O errors, and would otherwise
//! keep returning a failed handshake (a rejected password, a server still loading) forever.
//!
//! Logs: one WARN when the store becomes unavailable, one INFO when it answers again, naming only
//! the kind of failure (never a key, a value or a server message).

use super::keys::{bucket_key, flight_key, RateKey};
use super::record::{now_ms, pending_is_live, Pending, Record};
use super::{
    metrics, scripts, BoxFuture, Claim, Completion, Decision, FlightIndex, Health, RateQuota,
    SharedStore, StoreError,
};
use crate::breaker::{self, Breaker, Transition};
use crate::config::state::RedisConfig;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Consecutive failures that open the breaker.
const BREAKER_FAILURES: u32 = 3;
/// How long the breaker stays open before one probe.
const BREAKER_COOLDOWN: Duration = Duration::from_secs(2);

/// The shared store on Redis/Valkey. See the [module docs](super) for the protocol and the
/// failure behaviour.
pub struct RedisStore {
    client: redis::Client,
    /// Made on first use; dropped while the breaker is open (see the module docs).
    connection: Mutex<Option<ConnectionManager>>,
    prefix: String,
    op_timeout: Duration,
    breaker: Breaker,
    scripts: Scripts,
}

struct Scripts {
    gcra: redis::Script,
    claim: redis::Script,
    complete: redis::Script,
    discard: redis::Script,
}

impl RedisStore {
    /// The store for validated settings. Does not connect.
    pub fn new(config: &RedisConfig) -> Result<Self, StoreError> {
        let client = match config.ca_pem() {
            Some(pem) => {
                ensure_crypto_provider();
                redis::Client::build_with_tls(
                    config.connection().clone(),
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem.to_vec()),
                    },
                )
            }
            None => {
                if matches!(
                    config.connection().addr(),
                    redis::ConnectionAddr::TcpTls { .. }
                ) {
                    ensure_crypto_provider();
                }
                redis::Client::open(config.connection().clone())
            }
        }
        .map_err(|e| StoreError::Failed(category(&e)))?;
        metrics::record_backend_up(true);
        Ok(Self {
            client,
            connection: Mutex::new(None),
            prefix: config.key_prefix().to_owned(),
            op_timeout: config.op_timeout(),
            breaker: Breaker::new(BREAKER_FAILURES, BREAKER_COOLDOWN),
            scripts: Scripts {
                gcra: redis::Script::new(&scripts::gcra()),
                claim: redis::Script::new(&scripts::claim()),
                complete: redis::Script::new(scripts::COMPLETE),
                discard: redis::Script::new(scripts::DISCARD),
            },
        })
    }

    /// The same store with another breaker: open after `failures` consecutive failures, for
    /// `cooldown` (by default 3 failures, 2 s).
    pub fn with_breaker(mut self, failures: u32, cooldown: Duration) -> Self {
        self.breaker = Breaker::new(failures.max(1), cooldown);
        self
    }

    /// [`SharedStore::gcra`] at a given time (µs since the Unix epoch) instead of Redis `TIME`:
    /// for tests that compare decisions with `governor` under a fake clock.
    pub async fn gcra_at(
        &self,
        key: &RateKey,
        quota: RateQuota,
        now_us: u64,
    ) -> Result<Decision, StoreError> {
        self.gcra_inner(key, quota, Some(now_us)).await
    }

    async fn gcra_inner(
        &self,
        key: &RateKey,
        quota: RateQuota,
        now: Option<u64>,
    ) -> Result<Decision, StoreError> {
        let key = bucket_key(&self.prefix, key);
        let now = now.map(|n| n.to_string()).unwrap_or_default();
        let script = &self.scripts.gcra;
        let reply: Vec<i64> = self
            .run_decoded(
                "gcra",
                |mut c| {
                    let (key, now) = (key.clone(), now.clone());
                    async move {
                        script
                            .key(key)
                            .arg(quota.emission_us())
                            .arg(quota.burst())
                            .arg(now)
                            .invoke_async(&mut c)
                            .await
                    }
                },
                |reply: &Vec<i64>| match reply.as_slice() {
                    [_, _, 1] => "corrupt",
                    _ => "ok",
                },
            )
            .await?;
        match reply.as_slice() {
            [1, _, _] => Ok(Decision::Allow),
            [0, wait, _] if *wait > 0 => Ok(Decision::Deny {
                retry_after: Duration::from_micros(wait.unsigned_abs()),
            }),
            _ => Err(StoreError::Corrupt),
        }
    }

    fn connection(&self) -> Result<ConnectionManager, StoreError> {
        let mut slot = self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(connection) = slot.as_ref() {
            return Ok(connection.clone());
        }
        // No retries inside the client: the breaker decides when to try again, and every
        // attempt is bounded by `op_timeout` (connect included).
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(self.op_timeout))
            .set_response_timeout(Some(self.op_timeout));
        let connection = ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            .map_err(|e| StoreError::Failed(category(&e)))?;
        *slot = Some(connection.clone());
        Ok(connection)
    }

    /// Forgets the connection manager; the next operation makes a new one.
    fn reset_connection(&self) {
        *self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Runs one operation: breaker, `op_timeout`, metrics, health transitions. Replies are
    /// counted `ok`.
    async fn run<T, F, Fut>(&self, op: &'static str, call: F) -> Result<T, StoreError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        self.run_decoded(op, call, |_| "ok").await
    }

    /// [`Self::run`], with `outcome` naming how a reply is counted (`ok` or `corrupt`).
    async fn run_decoded<T, F, Fut>(
        &self,
        op: &'static str,
        call: F,
        outcome: impl Fn(&T) -> &'static str,
    ) -> Result<T, StoreError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let ticket = match self.breaker.admit() {
            Ok(ticket) => ticket,
            Err(retry_after) => {
                metrics::record_op(op, "unavailable", None);
                return Err(StoreError::Unavailable { retry_after });
            }
        };
        let started = Instant::now();
        let result = match self.connection() {
            Ok(connection) => {
                let attempt = async {
                    match call(connection.clone()).await {
                        // Refused before anything was sent (often the cached failure of the
                        // previous connection attempt): one fresh attempt.
                        Err(e) if e.is_connection_refusal() => call(connection).await,
                        other => other,
                    }
                };
                match tokio::time::timeout(self.op_timeout, attempt).await {
                    Ok(Ok(reply)) => Ok(reply),
                    // The client's own response timeout is the same length: the same failure.
                    Ok(Err(e)) if e.is_timeout() => Err(StoreError::Timeout),
                    Ok(Err(e)) => Err(StoreError::Failed(category(&e))),
                    Err(_) => Err(StoreError::Timeout),
                }
            }
            Err(e) => Err(e),
        };
        let elapsed = started.elapsed();
        let label = match &result {
            Ok(reply) => outcome(reply),
            Err(StoreError::Timeout) => "timeout",
            Err(_) => "error",
        };
        metrics::record_op(op, label, Some(elapsed));
        match ticket.record(result.is_ok()) {
            Some(Transition::Opened) => {
                let reason = match &result {
                    Err(e) => e.to_string(),
                    Ok(_) => String::new(),
                };
                tracing::warn!(
                    backend = "redis",
                    %reason,
                    "shared state store unavailable; replay, single-flight and rate limits run \
                     per process until it answers"
                );
                metrics::record_backend_up(false);
            }
            Some(Transition::Closed) => {
                tracing::info!(backend = "redis", "shared state store answering again");
                metrics::record_backend_up(true);
            }
            None => {}
        }
        if result.is_err() && self.breaker.health() != breaker::Health::Ok {
            self.reset_connection();
        }
        result
    }
}

impl SharedStore for RedisStore {
    fn claim<'a>(
        &'a self,
        index: &'a FlightIndex,
        pending: &'a Pending,
    ) -> BoxFuture<'a, Result<Claim, StoreError>> {
        Box::pin(async move {
            let key = flight_key(&self.prefix, index);
            let ours = pending.encode();
            let ttl_ms = pending.remaining().as_millis().max(1).to_string();
            let script = &self.scripts.claim;
            let reply: Option<Vec<u8>> = self
                .run_decoded(
                    "claim",
                    |mut c| {
                        let (key, ours, ttl_ms) = (key.clone(), ours.clone(), ttl_ms.clone());
                        async move {
                            script
                                .key(key)
                                .arg(ours)
                                .arg(ttl_ms)
                                .invoke_async(&mut c)
                                .await
                        }
                    },
                    |reply: &Option<Vec<u8>>| match reply.as_deref().map(claimed) {
                        Some(Err(StoreError::Corrupt)) => "corrupt",
                        _ => "ok",
                    },
                )
                .await?;
            match reply {
                None => Ok(Claim::Held),
                Some(bytes) if bytes == ours => Ok(Claim::Held),
                Some(bytes) => claimed(&bytes),
            }
        })
    }

    fn complete<'a>(
        &'a self,
        index: &'a FlightIndex,
        pending: &'a Pending,
        outcome: Completion,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let key = flight_key(&self.prefix, index);
            let ours = pending.encode();
            let record = completion_record(pending, outcome).encode();
            let ttl_ms = ttl.as_millis().max(1).to_string();
            let script = &self.scripts.complete;
            let stored: i64 = self
                .run("complete", |mut c| {
                    let (key, ours, record, ttl_ms) =
                        (key.clone(), ours.clone(), record.clone(), ttl_ms.clone());
                    async move {
                        script
                            .key(key)
                            .arg(ours)
                            .arg(record)
                            .arg(ttl_ms)
                            .invoke_async(&mut c)
                            .await
                    }
                })
                .await?;
            Ok(stored == 1)
        })
    }

    fn discard<'a>(
        &'a self,
        index: &'a FlightIndex,
        record: &'a Record,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let key = flight_key(&self.prefix, index);
            let expected = record.encode();
            let script = &self.scripts.discard;
            let deleted: i64 = self
                .run("discard", |mut c| {
                    let (key, expected) = (key.clone(), expected.clone());
                    async move { script.key(key).arg(expected).invoke_async(&mut c).await }
                })
                .await?;
            Ok(deleted == 1)
        })
    }

    fn peek<'a>(
        &'a self,
        index: &'a FlightIndex,
    ) -> BoxFuture<'a, Result<Option<Record>, StoreError>> {
        Box::pin(async move {
            let key = flight_key(&self.prefix, index);
            let bytes: Option<Vec<u8>> = self
                .run_decoded(
                    "peek",
                    |mut c| {
                        let key = key.clone();
                        async move { redis::cmd("GET").arg(key).query_async(&mut c).await }
                    },
                    |bytes: &Option<Vec<u8>>| match bytes {
                        Some(b) if Record::decode(b).is_none() => "corrupt",
                        _ => "ok",
                    },
                )
                .await?;
            Ok(bytes.as_deref().and_then(Record::decode).filter(|record| {
                // A planted pending record that the claim script would overwrite is no reason
                // to wait.
                !matches!(record, Record::Pending(p) if !pending_is_live(p, now_ms()))
            }))
        })
    }

    fn gcra<'a>(
        &'a self,
        key: &'a RateKey,
        quota: RateQuota,
    ) -> BoxFuture<'a, Result<Decision, StoreError>> {
        Box::pin(self.gcra_inner(key, quota, None))
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.run("ping", |mut c| async move {
                redis::cmd("PING").query_async::<String>(&mut c).await
            })
            .await
            .map(|_| ())
        })
    }

    fn health(&self) -> Health {
        match self.breaker.health() {
            breaker::Health::Ok => Health::Ok,
            breaker::Health::Failing { retry_after } => Health::Degraded { retry_after },
        }
    }

    fn op_timeout(&self) -> Duration {
        self.op_timeout
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}

/// What a claim found standing, from the bytes the claim script returned: only `D` and live `P`
/// records it checked, so anything else is corrupt.
fn claimed(bytes: &[u8]) -> Result<Claim, StoreError> {
    match Record::decode(bytes) {
        Some(Record::Answer(sealed)) => Ok(Claim::Done(sealed)),
        Some(Record::Pending(theirs)) => Ok(Claim::Pending(theirs)),
        Some(Record::Error { .. }) | None => Err(StoreError::Corrupt),
    }
}

/// The record a holder's outcome becomes.
pub(super) fn completion_record(pending: &Pending, outcome: Completion) -> Record {
    match outcome {
        Completion::Answer(sealed) => Record::Answer(sealed),
        Completion::Error(sealed) => Record::Error {
            owner: pending.owner(),
            sealed,
        },
    }
}

/// A failure's kind, in words that hold nothing from the request or the server's message.
fn category(e: &redis::RedisError) -> &'static str {
    use redis::{ErrorKind, ServerErrorKind};
    if e.is_connection_refusal() {
        return "connection refused";
    }
    if e.is_timeout() {
        return "timed out";
    }
    if e.is_connection_dropped() {
        return "connection lost";
    }
    match e.kind() {
        ErrorKind::Io => "I/O error",
        ErrorKind::AuthenticationFailed => "authentication failed",
        ErrorKind::InvalidClientConfig => "invalid client configuration",
        ErrorKind::UnexpectedReturnType | ErrorKind::Parse => "unexpected reply",
        ErrorKind::Server(ServerErrorKind::NoPerm) => "permission denied (ACL)",
        ErrorKind::Server(ServerErrorKind::ReadOnly) => "read-only replica",
        ErrorKind::Server(ServerErrorKind::BusyLoading) => "loading",
        ErrorKind::Server(ServerErrorKind::Moved | ServerErrorKind::Ask) => "cluster redirect",
        ErrorKind::Server(_) => match e.code() {
            Some("OOM") => "out of memory",
            Some("NOAUTH" | "WRONGPASS") => "authentication failed",
            _ => "server error",
        },
        _ => "client error",
    }
}

/// rustls needs a process-wide crypto provider to build the client configuration redis-rs
/// makes; install ring (the provider the rest of the proxy uses) unless one is already set.
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Another thread may have installed one meanwhile; either way one is set afterwards.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
