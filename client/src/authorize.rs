//! Building the authorization request (RFC 6749 §4.1.1 with RFC 7636 §4.3) and remembering what is
//! needed to finish it.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use subtle::ConstantTimeEq;
use url::Url;

use crate::pkce::PkceVerifier;
use crate::{random, Error};
use oauth_types::secret_type;

/// Kick's authorization endpoint (Kick developer docs, "OAuth 2.1").
pub const KICK_AUTHORIZE_URL: &str = "https://id.kick.com/oauth/authorize";

/// Everything except RFC 3986 §2.3 unreserved characters is percent-encoded, so `:` `/` and space
/// in `redirect_uri` and `scope` become `%3A` `%2F` `%20` and no parser can read them differently.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A Kick OAuth scope (Kick developer docs, "Scopes"); anything Kick adds later fits in [`Scope::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `user:read`: read user information, including the user's id.
    UserRead,
    /// `channel:read`: read channel information.
    ChannelRead,
    /// `channel:write`: update the channel's stream metadata.
    ChannelWrite,
    /// `chat:write`: send chat messages.
    ChatWrite,
    /// `streamkey:read`: read the stream key and URL.
    StreamkeyRead,
    /// `events:subscribe`: subscribe to channel events (webhooks).
    EventsSubscribe,
    /// `moderation:ban`: ban and unban users.
    ModerationBan,
    /// Any other scope string, sent as is.
    Other(String),
}

impl Scope {
    /// The scope string as sent in the `scope` parameter (RFC 6749 §3.3).
    pub fn as_str(&self) -> &str {
        match self {
            Scope::UserRead => "user:read",
            Scope::ChannelRead => "channel:read",
            Scope::ChannelWrite => "channel:write",
            Scope::ChatWrite => "chat:write",
            Scope::StreamkeyRead => "streamkey:read",
            Scope::EventsSubscribe => "events:subscribe",
            Scope::ModerationBan => "moderation:ban",
            Scope::Other(s) => s,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = std::convert::Infallible;

    /// Parses one scope token (RFC 6749 §3.3); unknown ones become [`Scope::Other`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "user:read" => Scope::UserRead,
            "channel:read" => Scope::ChannelRead,
            "channel:write" => Scope::ChannelWrite,
            "chat:write" => Scope::ChatWrite,
            "streamkey:read" => Scope::StreamkeyRead,
            "events:subscribe" => Scope::EventsSubscribe,
            "moderation:ban" => Scope::ModerationBan,
            other => Scope::Other(other.to_owned()),
        })
    }
}

secret_type!(
    /// The `state` parameter (RFC 6749 §4.1.1, §10.12): an unguessable value binding the redirect to
    /// this login, so a forged redirect (login CSRF) is refused.
    CsrfState,
    serde
);

impl CsrfState {
    /// 32 bytes from the OS CSPRNG, base64url-encoded (43 characters, 256 bits).
    pub fn generate() -> Result<Self, Error> {
        let mut bytes = [0u8; 32];
        random::fill(&mut bytes)?;
        let state = URL_SAFE_NO_PAD.encode(bytes);
        bytes.fill(0);
        Ok(Self::new(state))
    }
}

/// Builder for Kick's authorization URL (RFC 6749 §4.1.1, PKCE per RFC 7636 §4.3).
///
/// ```
/// use kick_oauth_client::{AuthorizeRequest, Scope};
/// let (url, pending) = AuthorizeRequest::new("01KCLIENT", "http://localhost:1420/auth/callback")
///     .scopes([Scope::UserRead, Scope::ChannelRead])
///     .build()?;
/// assert!(url.as_str().starts_with("https://id.kick.com/oauth/authorize?response_type=code&"));
/// assert_eq!(pending.redirect_uri(), "http://localhost:1420/auth/callback");
/// # Ok::<(), kick_oauth_client::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct AuthorizeRequest {
    authorize_url: String,
    client_id: String,
    redirect_uri: String,
    scopes: Vec<Scope>,
    state: Option<CsrfState>,
    verifier: Option<PkceVerifier>,
}

impl AuthorizeRequest {
    /// A request for `client_id` (the Kick app's public id) that will come back to `redirect_uri`
    /// (which must be byte-for-byte one the proxy allows, RFC 6749 §3.1.2).
    pub fn new(client_id: impl Into<String>, redirect_uri: impl Into<String>) -> Self {
        Self {
            authorize_url: KICK_AUTHORIZE_URL.to_owned(),
            client_id: client_id.into(),
            redirect_uri: redirect_uri.into(),
            scopes: Vec::new(),
            state: None,
            verifier: None,
        }
    }

    /// Uses another authorization endpoint (an emulator, another provider). Must be `https`, or
    /// `http` on a loopback host.
    pub fn authorize_url(mut self, url: impl Into<String>) -> Self {
        self.authorize_url = url.into();
        self
    }

    /// Adds one scope (RFC 6749 §3.3).
    pub fn scope(mut self, scope: Scope) -> Self {
        if !self.scopes.contains(&scope) {
            self.scopes.push(scope);
        }
        self
    }

    /// Adds several scopes, keeping order and dropping duplicates.
    pub fn scopes(mut self, scopes: impl IntoIterator<Item = Scope>) -> Self {
        for scope in scopes {
            self = self.scope(scope);
        }
        self
    }

    /// Uses this `state` instead of a generated one. Only for tests and for apps that must
    /// reproduce a URL; the default (CSPRNG) is what RFC 6749 §10.12 asks for.
    pub fn state(mut self, state: CsrfState) -> Self {
        self.state = Some(state);
        self
    }

    /// Uses this verifier instead of a generated one (tests, RFC 7636 Appendix B vectors).
    pub fn pkce_verifier(mut self, verifier: PkceVerifier) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// The URL to open in the browser, and the [`PendingLogin`] to keep until the redirect comes back.
    ///
    /// Query parameters, in this order: `response_type=code`, `client_id`, `redirect_uri`, `scope`
    /// (space-separated, omitted when empty), `state`, `code_challenge`, `code_challenge_method=S256`.
    pub fn build(self) -> Result<(Url, PendingLogin), Error> {
        if self.client_id.is_empty() {
            return Err(Error::Config("client_id is empty".into()));
        }
        if self.redirect_uri.is_empty() {
            return Err(Error::Config("redirect_uri is empty".into()));
        }
        let base = parse_endpoint(&self.authorize_url, "authorize URL")?;
        let state = match self.state {
            Some(state) => state,
            None => CsrfState::generate()?,
        };
        let verifier = match self.verifier {
            Some(verifier) => verifier,
            None => PkceVerifier::generate()?,
        };

        let mut query = format!(
            "response_type=code&client_id={}&redirect_uri={}",
            enc(&self.client_id),
            enc(&self.redirect_uri)
        );
        if !self.scopes.is_empty() {
            let scope = self
                .scopes
                .iter()
                .map(Scope::as_str)
                .collect::<Vec<_>>()
                .join(" ");
            query.push_str("&scope=");
            query.push_str(&enc(&scope));
        }
        query.push_str("&state=");
        query.push_str(&enc(state.secret()));
        query.push_str("&code_challenge=");
        query.push_str(&verifier.challenge_s256());
        query.push_str("&code_challenge_method=S256");

        let mut url = base;
        let full_query = match url.query() {
            Some(existing) if !existing.is_empty() => format!("{existing}&{query}"),
            _ => query,
        };
        url.set_query(Some(&full_query));

        Ok((
            url,
            PendingLogin {
                state,
                verifier,
                redirect_uri: self.redirect_uri,
            },
        ))
    }
}

/// Percent-encodes a query value: everything but RFC 3986 unreserved characters.
pub(crate) fn enc(value: &str) -> String {
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

/// Parses an endpoint URL and refuses cleartext HTTP except to a loopback host (RFC 6749 §3.1, §10.9).
pub(crate) fn parse_endpoint(raw: &str, what: &str) -> Result<Url, Error> {
    let url = Url::parse(raw).map_err(|e| Error::Config(format!("{what} is not a URL: {e}")))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback_host(&url) => Ok(url),
        "http" => Err(Error::Config(format!(
            "{what} must use https (http is allowed only for localhost/127.0.0.1/[::1])"
        ))),
        other => Err(Error::Config(format!(
            "{what} has unsupported scheme {other}"
        ))),
    }
}

pub(crate) fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// A login in progress: the `state` to check on return (RFC 6749 §10.12), the PKCE verifier to send
/// with the code (RFC 7636 §4.5), and the `redirect_uri` the token request must repeat
/// (RFC 6749 §4.1.3). Keep it in memory only; `Debug` shows no secret.
#[derive(Debug)]
pub struct PendingLogin {
    state: CsrfState,
    verifier: PkceVerifier,
    redirect_uri: String,
}

impl PendingLogin {
    /// A login in progress whose exchange sends `redirect_uri` (the relay's callback URL for a
    /// relayed login).
    pub(crate) fn new(state: CsrfState, verifier: PkceVerifier, redirect_uri: String) -> Self {
        Self {
            state,
            verifier,
            redirect_uri,
        }
    }

    /// Checks the `state` that came back in the redirect against the one sent, in constant time so
    /// response timing does not leak how much of a guess was right.
    pub fn check_state(&self, returned: &str) -> Result<(), Error> {
        check_state(&self.state, returned)
    }

    pub(crate) fn state(&self) -> &CsrfState {
        &self.state
    }

    /// The PKCE verifier to send with the code.
    pub fn verifier(&self) -> &PkceVerifier {
        &self.verifier
    }

    /// The `redirect_uri` sent in the authorization request.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }
}

/// Constant-time `state` comparison (RFC 6749 §10.12); a length difference is not hidden, and
/// need not be: every state this crate generates has the same length.
pub(crate) fn check_state(expected: &CsrfState, returned: &str) -> Result<(), Error> {
    if bool::from(expected.secret().as_bytes().ct_eq(returned.as_bytes())) {
        Ok(())
    } else {
        Err(Error::StateMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    fn fixed() -> AuthorizeRequest {
        AuthorizeRequest::new("01KCLIENTID", "http://localhost:1420/auth/callback")
            .state(CsrfState::new("st4te-Value_1"))
            .pkce_verifier(PkceVerifier::parse(RFC_VERIFIER).expect("valid"))
    }

    #[test]
    fn url_has_exact_parameters_with_percent_encoded_redirect_uri_and_scopes() {
        let (url, _) = fixed()
            .scopes([Scope::UserRead, Scope::ChannelRead, Scope::EventsSubscribe])
            .build()
            .expect("valid request");
        assert_eq!(
            url.as_str(),
            "https://id.kick.com/oauth/authorize?response_type=code&client_id=01KCLIENTID\
             &redirect_uri=http%3A%2F%2Flocalhost%3A1420%2Fauth%2Fcallback\
             &scope=user%3Aread%20channel%3Aread%20events%3Asubscribe\
             &state=st4te-Value_1\
             &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM\
             &code_challenge_method=S256"
        );
        // And a standard parser reads back the intended values.
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert!(pairs.contains(&(
            "redirect_uri".into(),
            "http://localhost:1420/auth/callback".into()
        )));
        assert!(pairs.contains(&(
            "scope".into(),
            "user:read channel:read events:subscribe".into()
        )));
    }

    #[test]
    fn custom_deep_link_redirect_and_other_scope_are_encoded() {
        let (url, pending) = AuthorizeRequest::new("id", "battles-record://oauth/callback")
            .state(CsrfState::new("s"))
            .pkce_verifier(PkceVerifier::parse(RFC_VERIFIER).expect("valid"))
            .scopes([
                Scope::ChatWrite,
                Scope::Other("kicks:read".into()),
                Scope::ChatWrite,
            ])
            .authorize_url("http://127.0.0.1:9000/oauth/authorize?prompt=login")
            .build()
            .expect("valid");
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9000/oauth/authorize?prompt=login&response_type=code&client_id=id\
             &redirect_uri=battles-record%3A%2F%2Foauth%2Fcallback&scope=chat%3Awrite%20kicks%3Aread\
             &state=s&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
        );
        assert_eq!(pending.redirect_uri(), "battles-record://oauth/callback");
        assert_eq!(pending.verifier().secret(), RFC_VERIFIER);
    }

    #[test]
    fn generated_state_and_verifier_differ_between_logins_and_are_not_in_debug_output() {
        let build = || {
            AuthorizeRequest::new("id", "http://localhost:1420/cb")
                .build()
                .expect("valid")
        };
        let (url1, p1) = build();
        let (url2, p2) = build();
        assert_ne!(url1, url2);
        let state1 = url1
            .query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned())
            .expect("state present");
        assert_eq!(state1.len(), 43);
        assert!(p1.check_state(&state1).is_ok());
        assert!(matches!(p2.check_state(&state1), Err(Error::StateMismatch)));
        let debug = format!("{p1:?}");
        assert!(!debug.contains(&state1));
        assert!(!debug.contains(p1.verifier().secret()));
        // No scope parameter when no scope was asked for.
        assert!(url1.query_pairs().all(|(k, _)| k != "scope"));
    }

    #[test]
    fn state_mismatch_prefix_and_empty_are_rejected() {
        let (_, pending) = fixed().build().expect("valid");
        assert!(pending.check_state("st4te-Value_1").is_ok());
        for wrong in ["st4te-Value_2", "st4te-Value_", "st4te-Value_11", ""] {
            assert!(matches!(
                pending.check_state(wrong),
                Err(Error::StateMismatch)
            ));
        }
    }

    #[test]
    fn cleartext_non_loopback_endpoint_and_empty_fields_are_refused() {
        let err = fixed()
            .authorize_url("http://id.kick.com/oauth/authorize")
            .build()
            .expect_err("http to a remote host");
        assert!(matches!(err, Error::Config(_)));
        assert!(matches!(
            AuthorizeRequest::new("", "http://localhost/cb").build(),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            AuthorizeRequest::new("id", "").build(),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn scope_strings_round_trip() {
        for scope in [
            Scope::UserRead,
            Scope::ChannelRead,
            Scope::ChannelWrite,
            Scope::ChatWrite,
            Scope::StreamkeyRead,
            Scope::EventsSubscribe,
            Scope::ModerationBan,
            Scope::Other("kicks:read".into()),
        ] {
            assert_eq!(scope.as_str().parse::<Scope>(), Ok(scope.clone()));
        }
    }
}
