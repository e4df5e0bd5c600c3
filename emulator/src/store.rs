//! Grant state: authorization codes, access and refresh tokens, and the rules fosite applies
//! to them (single-use codes, PKCE, rotation with a grace period, grant-wide revocation).
//!
//! Every credential belongs to a *grant*: the authorization request it descends from (fosite's
//! request id). Revoking any token, or replaying a used code, revokes the whole grant.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::clock::go_utc_string;
use crate::config::EmulatorConfig;
use crate::error::{ErrorCode, OAuthError};
use crate::tokens::{check_s256, random_token};

/// How long expired records are kept before pruning, so a late replay is still recognised.
const RETAIN_AFTER_EXPIRY: Duration = Duration::from_secs(3600);
/// Pruning runs at most this often (emulator time).
const PRUNE_EVERY: Duration = Duration::from_secs(60);

type GrantId = u64;

/// Lifetimes copied from [`EmulatorConfig`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lifetimes {
    pub(crate) code: Duration,
    pub(crate) access: Duration,
    pub(crate) refresh: Duration,
    pub(crate) grace: Duration,
}

impl From<&EmulatorConfig> for Lifetimes {
    fn from(config: &EmulatorConfig) -> Self {
        Self {
            code: config.code_ttl,
            access: config.access_token_ttl,
            refresh: config.refresh_token_ttl,
            grace: config.refresh_grace,
        }
    }
}

/// An approved authorization request, remembered with its code (RFC 6749 §4.1.2, RFC 7636 §4.4).
#[derive(Debug, Clone)]
pub(crate) struct ApprovedRequest {
    pub(crate) client_id: String,
    /// The `redirect_uri` parameter as sent; `None` when the client omitted it (then the token
    /// request does not have to repeat it, RFC 6749 §4.1.3).
    pub(crate) redirect_uri: Option<String>,
    pub(crate) scope: String,
    pub(crate) code_challenge: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CodeStage {
    /// Waiting to be exchanged.
    Issued,
    /// A token request got past the code checks and consumed the PKCE data, but its verifier was
    /// wrong. Like fosite, the code cannot be exchanged any more.
    PkceSpent,
    /// Exchanged for tokens; a replay revokes the grant (RFC 6749 §4.1.2).
    Exchanged,
}

struct CodeRecord {
    grant: GrantId,
    request: ApprovedRequest,
    expires_at: Duration,
    stage: CodeStage,
}

struct AccessRecord {
    grant: GrantId,
    client_id: String,
    scope: String,
    expires_at: Duration,
    /// Set when the refresh token issued with it is used (fosite revokes the old access token).
    revoked: bool,
}

struct RefreshRecord {
    grant: GrantId,
    client_id: String,
    scope: String,
    expires_at: Duration,
    /// The access token issued in the same response.
    access_token: String,
    /// When this token was first used; it keeps working until `rotated_at + grace`.
    rotated_at: Option<Duration>,
}

/// A freshly issued token pair (RFC 6749 §5.1).
pub(crate) struct IssuedTokens {
    pub(crate) access_token: String,
    pub(crate) refresh_token: String,
    pub(crate) expires_in: u64,
    pub(crate) scope: String,
}

impl std::fmt::Debug for IssuedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedTokens")
            .field("access_token", &"[redacted]")
            .field("refresh_token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish()
    }
}

/// What introspection reports about an active access token.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ActiveToken {
    pub(crate) client_id: String,
    pub(crate) scope: String,
    pub(crate) exp: u64,
}

/// Which kind of token a revocation request says it carries (`token_hint_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenHint {
    AccessToken,
    RefreshToken,
}

/// All mutable OAuth state. Callers hold it behind one mutex and pass the emulator time in.
/// Not `Debug`, so its codes and tokens cannot end up in a log.
pub(crate) struct Store {
    lifetimes: Lifetimes,
    codes: HashMap<String, CodeRecord>,
    access: HashMap<String, AccessRecord>,
    refresh: HashMap<String, RefreshRecord>,
    revoked_grants: HashSet<GrantId>,
    next_grant: GrantId,
    next_prune: Duration,
}

fn server_error() -> OAuthError {
    OAuthError::new(ErrorCode::ServerError)
}

impl Store {
    pub(crate) fn new(lifetimes: Lifetimes) -> Self {
        Self {
            lifetimes,
            codes: HashMap::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            revoked_grants: HashSet::new(),
            next_grant: 1,
            next_prune: Duration::ZERO,
        }
    }

    /// Issues a single-use authorization code for an approved request, starting a new grant.
    pub(crate) fn issue_code(
        &mut self,
        request: ApprovedRequest,
        now: Duration,
    ) -> Result<String, OAuthError> {
        self.maybe_prune(now);
        let code = random_token().map_err(|_| server_error())?;
        let grant = self.next_grant;
        self.next_grant += 1;
        self.codes.insert(
            code.clone(),
            CodeRecord {
                grant,
                request,
                expires_at: now.saturating_add(self.lifetimes.code),
                stage: CodeStage::Issued,
            },
        );
        Ok(code)
    }

    /// `grant_type=authorization_code` for an authenticated client (RFC 6749 §4.1.3,
    /// RFC 7636 §4.6), checked in fosite's order: replay, expiry, client, redirect URI, PKCE.
    pub(crate) fn exchange_code(
        &mut self,
        client_id: &str,
        code: &str,
        redirect_uri: &str,
        code_verifier: &str,
        now: Duration,
    ) -> Result<IssuedTokens, OAuthError> {
        let Some(record) = self.codes.get_mut(code) else {
            return Err(OAuthError::invalid_grant());
        };
        if record.stage == CodeStage::Exchanged {
            // fosite: "If an authorize code is used twice, we revoke all refresh and access
            // tokens associated with this request."
            let grant = record.grant;
            self.revoked_grants.insert(grant);
            return Err(OAuthError::invalid_grant()
                .with_hint("The authorization code has already been used."));
        }
        if now >= record.expires_at {
            return Err(OAuthError::invalid_grant().with_hint(format!(
                "Authorize code expired at '{}'.",
                go_utc_string(record.expires_at)
            )));
        }
        if record.request.client_id != client_id {
            return Err(OAuthError::invalid_grant().with_hint(
                "The OAuth 2.0 Client ID from this request does not match the one from the authorize request.",
            ));
        }
        if let Some(expected) = &record.request.redirect_uri {
            if expected != redirect_uri {
                return Err(OAuthError::invalid_grant().with_hint(
                    "The \"redirect_uri\" from this request does not match the one from the authorize request.",
                ));
            }
        }
        if record.stage == CodeStage::PkceSpent {
            return Err(OAuthError::invalid_grant()
                .with_hint("Unable to find initial PKCE data tied to this request"));
        }
        // fosite deletes the PKCE session before comparing, so a wrong verifier burns the code.
        record.stage = CodeStage::PkceSpent;
        check_s256(code_verifier, &record.request.code_challenge)
            .map_err(|problem| OAuthError::invalid_grant().with_hint(problem.hint()))?;
        record.stage = CodeStage::Exchanged;
        let grant = record.grant;
        let scope = record.request.scope.clone();
        let client = record.request.client_id.clone();
        self.issue_pair(grant, client, scope, now)
    }

    /// `grant_type=refresh_token` for an authenticated client (RFC 6749 §6): a new access and
    /// refresh token; the presented refresh token stays usable for the grace period.
    pub(crate) fn refresh(
        &mut self,
        client_id: &str,
        refresh_token: &str,
        now: Duration,
    ) -> Result<IssuedTokens, OAuthError> {
        let grace = self.lifetimes.grace;
        let Some(record) = self.refresh.get_mut(refresh_token) else {
            return Err(OAuthError::invalid_grant());
        };
        let retired = record
            .rotated_at
            .is_some_and(|at| now >= at.saturating_add(grace));
        if self.revoked_grants.contains(&record.grant) || retired || now >= record.expires_at {
            return Err(OAuthError::invalid_grant());
        }
        if record.client_id != client_id {
            return Err(OAuthError::invalid_grant().with_hint(
                "The OAuth 2.0 Client ID from this request does not match the ID during the initial token issuance.",
            ));
        }
        if record.rotated_at.is_none() {
            record.rotated_at = Some(now);
            let paired = record.access_token.clone();
            if let Some(access) = self.access.get_mut(&paired) {
                access.revoked = true;
            }
        }
        let (grant, client, scope) = (record.grant, record.client_id.clone(), record.scope.clone());
        self.issue_pair(grant, client, scope, now)
    }

    /// Revokes the grant a token belongs to (fosite's revocation handler: refresh and access
    /// tokens of the whole grant). Returns whether the token was known.
    pub(crate) fn revoke(&mut self, token: &str, hint: Option<TokenHint>) -> bool {
        let as_refresh = self.refresh.get(token).map(|r| r.grant);
        let as_access = self.access.get(token).map(|a| a.grant);
        let grant = match hint {
            Some(TokenHint::AccessToken) => as_access.or(as_refresh),
            _ => as_refresh.or(as_access),
        };
        match grant {
            Some(grant) => {
                self.revoked_grants.insert(grant);
                true
            }
            None => false,
        }
    }

    /// The access token's metadata if it is active (known, unexpired, not revoked).
    pub(crate) fn introspect(&self, access_token: &str, now: Duration) -> Option<ActiveToken> {
        let record = self.access.get(access_token)?;
        let active = !record.revoked
            && !self.revoked_grants.contains(&record.grant)
            && now < record.expires_at;
        active.then(|| ActiveToken {
            client_id: record.client_id.clone(),
            scope: record.scope.clone(),
            exp: record.expires_at.as_secs(),
        })
    }

    fn issue_pair(
        &mut self,
        grant: GrantId,
        client_id: String,
        scope: String,
        now: Duration,
    ) -> Result<IssuedTokens, OAuthError> {
        self.maybe_prune(now);
        let access_token = random_token().map_err(|_| server_error())?;
        let refresh_token = random_token().map_err(|_| server_error())?;
        self.access.insert(
            access_token.clone(),
            AccessRecord {
                grant,
                client_id: client_id.clone(),
                scope: scope.clone(),
                expires_at: now.saturating_add(self.lifetimes.access),
                revoked: false,
            },
        );
        self.refresh.insert(
            refresh_token.clone(),
            RefreshRecord {
                grant,
                client_id,
                scope: scope.clone(),
                expires_at: now.saturating_add(self.lifetimes.refresh),
                access_token: access_token.clone(),
                rotated_at: None,
            },
        );
        Ok(IssuedTokens {
            access_token,
            refresh_token,
            expires_in: self.lifetimes.access.as_secs(),
            scope,
        })
    }

    /// Drops records that expired long ago, so a long-running dev server stays small.
    fn maybe_prune(&mut self, now: Duration) {
        if now < self.next_prune {
            return;
        }
        self.next_prune = now.saturating_add(PRUNE_EVERY);
        let keep = |expires_at: Duration| now < expires_at.saturating_add(RETAIN_AFTER_EXPIRY);
        let grace = self.lifetimes.grace;
        self.codes.retain(|_, c| keep(c.expires_at));
        self.access.retain(|_, a| keep(a.expires_at));
        self.refresh.retain(|_, r| {
            let end = match r.rotated_at {
                Some(at) => r.expires_at.min(at.saturating_add(grace)),
                None => r.expires_at,
            };
            keep(end)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    const REDIRECT: &str = "http://localhost:1420/auth/callback";
    const T0: Duration = Duration::from_secs(1_764_000_000);

    fn store() -> Store {
        Store::new(Lifetimes::from(&EmulatorConfig::default()))
    }

    fn code(store: &mut Store) -> String {
        store
            .issue_code(
                ApprovedRequest {
                    client_id: "c".into(),
                    redirect_uri: Some(REDIRECT.into()),
                    scope: "user:read".into(),
                    code_challenge: CHALLENGE.into(),
                },
                T0,
            )
            .expect("code")
    }

    #[test]
    fn replaying_a_code_revokes_what_it_issued() {
        let mut s = store();
        let c = code(&mut s);
        let tokens = s
            .exchange_code("c", &c, REDIRECT, VERIFIER, T0)
            .expect("first exchange");
        let replay = s
            .exchange_code("c", &c, REDIRECT, VERIFIER, T0)
            .expect_err("replay");
        assert_eq!(replay.code(), ErrorCode::InvalidGrant);
        assert!(s.introspect(&tokens.access_token, T0).is_none());
        assert!(s.refresh("c", &tokens.refresh_token, T0).is_err());
    }

    #[test]
    fn a_wrong_verifier_burns_the_code() {
        let mut s = store();
        let c = code(&mut s);
        let wrong = "x".repeat(43);
        assert!(s.exchange_code("c", &c, REDIRECT, &wrong, T0).is_err());
        let again = s
            .exchange_code("c", &c, REDIRECT, VERIFIER, T0)
            .expect_err("burnt");
        assert!(again
            .description()
            .contains("Unable to find initial PKCE data"));
    }

    #[test]
    fn a_wrong_redirect_does_not_burn_the_code() {
        let mut s = store();
        let c = code(&mut s);
        assert!(s
            .exchange_code("c", &c, "battles-record://oauth/callback", VERIFIER, T0)
            .is_err());
        assert!(s.exchange_code("c", &c, REDIRECT, VERIFIER, T0).is_ok());
    }

    #[test]
    fn refresh_revokes_the_previous_access_token_and_keeps_grace() {
        let mut s = store();
        let c = code(&mut s);
        let first = s
            .exchange_code("c", &c, REDIRECT, VERIFIER, T0)
            .expect("exchange");
        let second = s.refresh("c", &first.refresh_token, T0).expect("refresh");
        assert!(s.introspect(&first.access_token, T0).is_none());
        assert!(s.introspect(&second.access_token, T0).is_some());
        let within = T0 + Duration::from_secs(59);
        assert!(s.refresh("c", &first.refresh_token, within).is_ok());
        let after = T0 + Duration::from_secs(60);
        assert!(s.refresh("c", &first.refresh_token, after).is_err());
        assert!(s.refresh("c", &second.refresh_token, after).is_ok());
    }

    #[test]
    fn revoking_an_access_token_revokes_its_grant() {
        let mut s = store();
        let c = code(&mut s);
        let t = s
            .exchange_code("c", &c, REDIRECT, VERIFIER, T0)
            .expect("exchange");
        assert!(s.revoke(&t.access_token, Some(TokenHint::AccessToken)));
        assert!(s.refresh("c", &t.refresh_token, T0).is_err());
        assert!(!s.revoke("unknown", None));
    }

    #[test]
    fn pruning_forgets_long_expired_records_only() {
        let mut s = store();
        let c = code(&mut s);
        let t = s
            .exchange_code("c", &c, REDIRECT, VERIFIER, T0)
            .expect("exchange");
        let later = T0 + Duration::from_secs(7200) + RETAIN_AFTER_EXPIRY;
        s.maybe_prune(later);
        assert!(!s.access.contains_key(&t.access_token));
        assert!(s.refresh.contains_key(&t.refresh_token));
    }
}
