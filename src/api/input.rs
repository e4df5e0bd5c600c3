//! The contract's input rules, checked before anything reaches the provider: one typed input per
//! grant, built from the request's [`Fields`].
//!
//! Unknown fields (including a caller's `client_id` or `client_secret`) are ignored and never
//! forwarded. `grant_type` is read at `/token` only, to pick the grant ([`TokenGrantType`]), and
//! never forwarded either: the proxy sends the grant type of what it does.

use super::extract::Fields;
use crate::providers::redirect;
use crate::reply::ApiError;
use crate::secret::{AnyToken, AuthorizationCode, CodeVerifier, RefreshToken};
use std::borrow::Cow;

fn invalid(text: &'static str) -> ApiError {
    ApiError::InvalidRequest(Cow::Borrowed(text))
}

/// The grant a `/token` request asks for, from its `grant_type` (RFC 6749 §4.1.3, §6). `/refresh`
/// and `/revoke` never read `grant_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenGrantType {
    /// Absent, empty or `authorization_code`: the code exchange. Battles Record sends no
    /// `grant_type`, and RFC 6749 §3.2 treats a parameter sent without a value as omitted.
    AuthorizationCode,
    /// `refresh_token`: exactly what `/refresh` does (RFC 6749 §6), as standard client libraries
    /// send it to the token endpoint.
    RefreshToken,
}

impl TokenGrantType {
    /// Reads `grant_type`. Any other string is `unsupported_grant_type` (RFC 6749 §5.2, the value
    /// compared exactly: `Refresh_Token` is another grant type); a `grant_type` sent twice or that
    /// is not a string is a malformed request, `invalid_request`.
    pub fn from_fields(fields: &Fields) -> Result<Self, ApiError> {
        match fields.optional("grant_type")? {
            None | Some("" | "authorization_code") => Ok(Self::AuthorizationCode),
            Some("refresh_token") => Ok(Self::RefreshToken),
            Some(_) => Err(ApiError::UnsupportedGrantType),
        }
    }
}

/// `POST /api/v1/{provider}/token` input (RFC 6749 §4.1.3 with RFC 7636 §4.5).
#[derive(Debug)]
pub struct CodeExchange {
    /// The authorization code.
    pub code: AuthorizationCode,
    /// The PKCE verifier.
    pub code_verifier: CodeVerifier,
    /// The redirect URI, byte-for-byte one of the allowlist's entries.
    pub redirect_uri: String,
}

impl CodeExchange {
    /// Applies the contract's input rules; `allowed` is the provider's redirect allowlist.
    pub fn from_fields(fields: &Fields, allowed: &[String]) -> Result<Self, ApiError> {
        let code = fields.credential("code")?;
        let verifier = fields.required("code_verifier")?;
        if !is_valid_verifier(verifier) {
            return Err(invalid(
                "The `code_verifier` must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636 §4.1).",
            ));
        }
        let redirect_uri = fields.required("redirect_uri")?;
        if !redirect::is_allowed(allowed, redirect_uri) {
            return Err(invalid("The `redirect_uri` is not one this server allows."));
        }
        Ok(Self {
            code: AuthorizationCode::new(code),
            code_verifier: CodeVerifier::new(verifier.to_owned()),
            redirect_uri: redirect_uri.to_owned(),
        })
    }
}

/// RFC 7636 §4.1: `code-verifier = 43*128unreserved`, `unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"`.
pub fn is_valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// `POST /api/v1/{provider}/refresh` input (RFC 6749 §6).
#[derive(Debug)]
pub struct Refresh {
    /// The refresh token.
    pub refresh_token: RefreshToken,
}

impl Refresh {
    /// Applies the contract's input rules.
    pub fn from_fields(fields: &Fields) -> Result<Self, ApiError> {
        Ok(Self {
            refresh_token: RefreshToken::new(fields.credential("refresh_token")?),
        })
    }
}

/// `POST /api/v1/{provider}/revoke` input (RFC 7009 §2.1).
#[derive(Debug)]
pub struct Revocation {
    /// The token to revoke.
    pub token: AnyToken,
    /// `access_token` or `refresh_token`, when the caller said.
    pub token_type_hint: Option<TokenTypeHint>,
}

/// RFC 7009 §2.1 `token_type_hint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum TokenTypeHint {
    /// `access_token`.
    AccessToken,
    /// `refresh_token`.
    RefreshToken,
}

impl TokenTypeHint {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessToken => "access_token",
            Self::RefreshToken => "refresh_token",
        }
    }
}

impl Revocation {
    /// Applies the contract's input rules.
    pub fn from_fields(fields: &Fields) -> Result<Self, ApiError> {
        let token = AnyToken::new(fields.credential("token")?);
        let token_type_hint = match fields.optional("token_type_hint")? {
            None | Some("") => None,
            Some("access_token") => Some(TokenTypeHint::AccessToken),
            Some("refresh_token") => Some(TokenTypeHint::RefreshToken),
            Some(_) => {
                return Err(invalid(
                    "The `token_type_hint` must be access_token or refresh_token.",
                ))
            }
        };
        Ok(Self {
            token,
            token_type_hint,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_rules_follow_rfc_7636() {
        assert!(is_valid_verifier(&"a".repeat(43)));
        assert!(is_valid_verifier(&"a-._~Z9".repeat(19)[..128]));
        assert!(!is_valid_verifier(&"a".repeat(42)));
        assert!(!is_valid_verifier(&"a".repeat(129)));
        assert!(!is_valid_verifier(&format!("{}+", "a".repeat(43))));
        assert!(!is_valid_verifier(&format!("{}é", "a".repeat(43))));
    }
}
