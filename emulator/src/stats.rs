//! Request counters, so tests can assert what reached the provider (and what did not).

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of what the emulator has seen since it started.
///
/// "Received" counters include requests answered by a [`Fault`](crate::Fault); outcome counters
/// only count requests the OAuth logic answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// `GET /oauth/authorize` requests received.
    pub authorize_requests: u64,
    /// Authorization codes issued (successful authorize redirects).
    pub codes_issued: u64,
    /// `POST /oauth/token` requests received, whatever their outcome (faulted ones included).
    pub token_requests: u64,
    /// `grant_type=authorization_code` requests answered with tokens.
    pub authorization_code_grants_ok: u64,
    /// `grant_type=refresh_token` requests answered with tokens.
    pub refresh_grants_ok: u64,
    /// Token endpoint requests answered with an OAuth error (`invalid_grant`, `invalid_client`, …).
    pub token_errors: u64,
    /// `POST /oauth/revoke` requests received, faulted ones included.
    pub revoke_requests: u64,
    /// Revocation requests answered `200 OK` (RFC 7009: unknown tokens included).
    pub revocations: u64,
    /// Revocations whose token was known, so a grant was revoked.
    pub revocations_of_known_tokens: u64,
    /// `POST /oauth/token/introspect` requests received, faulted ones included.
    pub introspect_requests: u64,
    /// Requests answered (or dropped) by an injected [`Fault`](crate::Fault).
    pub faults_injected: u64,
    /// TCP connections accepted: shows whether a client reuses its keep-alive connections.
    pub connections_accepted: u64,
}

/// The live counters behind [`Stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) authorize_requests: AtomicU64,
    pub(crate) codes_issued: AtomicU64,
    pub(crate) token_requests: AtomicU64,
    pub(crate) authorization_code_grants_ok: AtomicU64,
    pub(crate) refresh_grants_ok: AtomicU64,
    pub(crate) token_errors: AtomicU64,
    pub(crate) revoke_requests: AtomicU64,
    pub(crate) revocations: AtomicU64,
    pub(crate) revocations_of_known_tokens: AtomicU64,
    pub(crate) introspect_requests: AtomicU64,
    pub(crate) faults_injected: AtomicU64,
    pub(crate) connections_accepted: AtomicU64,
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            authorize_requests: get(&self.authorize_requests),
            codes_issued: get(&self.codes_issued),
            token_requests: get(&self.token_requests),
            authorization_code_grants_ok: get(&self.authorization_code_grants_ok),
            refresh_grants_ok: get(&self.refresh_grants_ok),
            token_errors: get(&self.token_errors),
            revoke_requests: get(&self.revoke_requests),
            revocations: get(&self.revocations),
            revocations_of_known_tokens: get(&self.revocations_of_known_tokens),
            introspect_requests: get(&self.introspect_requests),
            faults_injected: get(&self.faults_injected),
            connections_accepted: get(&self.connections_accepted),
        }
    }
}
