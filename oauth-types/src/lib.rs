//! The OAuth 2.0 vocabulary that kick-oauth-proxy, its desktop client (`kick-oauth-client`) and its
//! Kick emulator (`kick-emulator`) share, defined once so the two sides of the wire cannot drift.
//!
//! # Layout
//! - [`error_code`]: [`OAuthErrorCode`], the `error` codes of RFC 6749 §4.1.2.1 and §5.2 (plus
//!   RFC 8628 `slow_down`) and what the proxy makes of each;
//! - [`token_type_hint`]: [`TokenTypeHint`], RFC 7009 §2.1's `token_type_hint`;
//! - [`pkce`]: the RFC 7636 §4.1 `code_verifier` rule, for the server's input check and the
//!   client's generation and parsing alike;
//! - [`secret_type!`]: the secret newtype macro: `Debug`/`Display` print `[redacted]`, the value is
//!   reached only through `.secret()`, and it is zeroed on drop.
//!
//! # Features
//! - `utoipa`: derives `utoipa::ToSchema` for the types the proxy's OpenAPI document describes.

pub mod error_code;
pub mod pkce;
mod secret;
pub mod token_type_hint;

pub use error_code::OAuthErrorCode;
pub use pkce::{is_valid_verifier, VerifierError};
pub use token_type_hint::TokenTypeHint;

/// What [`secret_type!`] expands to refers to; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use secrecy;
    pub use serde;
}
