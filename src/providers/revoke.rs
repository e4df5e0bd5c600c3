//! The shape of a revocation request (RFC 7009 §2.1, and the providers that differ from it).

/// How the provider's revocation endpoint wants the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeStyle {
    /// Kick: `POST {revoke_url}?token=…&token_hint_type=…`, empty body, no client authentication.
    KickQuery,
    /// Twitch: RFC 7009 form body `client_id`, `token` (and `token_type_hint`), no secret.
    FormClientId,
    /// Google: form body `token` only.
    FormTokenOnly,
    /// RFC 7009 §2.1: form body `token`, `token_type_hint`, plus the configured client auth.
    Rfc7009,
}

/// A revocation request as data; the upstream client sends it.
#[derive(Debug, PartialEq, Eq)]
pub struct RevokeRequest<'a> {
    /// Parameters added to the revocation URL's query.
    pub query: Vec<(&'static str, &'a str)>,
    /// The form body; `None` for an empty body.
    pub form: Option<Vec<(&'static str, &'a str)>>,
    /// True when the configured client authentication (RFC 6749 §2.3.1) is added.
    pub client_auth: bool,
}

impl RevokeStyle {
    /// The request revoking `token` (with the caller's `hint`, when the style sends one).
    pub fn request<'a>(
        self,
        token: &'a str,
        hint: Option<&'a str>,
        client_id: &'a str,
    ) -> RevokeRequest<'a> {
        match self {
            // Kick's own parameter name for the hint.
            Self::KickQuery => RevokeRequest {
                query: [("token", token)]
                    .into_iter()
                    .chain(hint.map(|hint| ("token_hint_type", hint)))
                    .collect(),
                form: None,
                client_auth: false,
            },
            Self::FormClientId => RevokeRequest {
                query: Vec::new(),
                form: Some(
                    [("client_id", client_id), ("token", token)]
                        .into_iter()
                        .chain(hint.map(|hint| ("token_type_hint", hint)))
                        .collect(),
                ),
                client_auth: false,
            },
            Self::FormTokenOnly => RevokeRequest {
                query: Vec::new(),
                form: Some(vec![("token", token)]),
                client_auth: false,
            },
            Self::Rfc7009 => RevokeRequest {
                query: Vec::new(),
                form: Some(
                    [("token", token)]
                        .into_iter()
                        .chain(hint.map(|hint| ("token_type_hint", hint)))
                        .collect(),
                ),
                client_auth: true,
            },
        }
    }
}
