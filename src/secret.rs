//! Secret-bearing values: the client secret and everything a caller sends or receives that grants
//! access (authorization codes, PKCE verifiers, tokens).
//!
//! Each type is made by [`oauth_types::secret_type!`], the macro the desktop client uses too: it
//! wraps [`secrecy::SecretString`], so the value is zeroized on drop, prints as `[redacted]` in
//! `Debug` and `Display`, and is reached only through `.secret()` at the one place it is needed
//! (the upstream form, the response body). The newtypes make a function signature say which
//! secret it takes, as oauth2-rs's `new_secret_type!` does. None of them implements serde: the
//! server never stores a secret.

use oauth_types::secret_type;

secret_type!(
    /// The OAuth client secret this proxy exists to keep (RFC 6749 §2.3.1).
    ClientSecret
);
secret_type!(
    /// An authorization code from the provider's redirect (RFC 6749 §4.1.2). Single-use.
    AuthorizationCode
);
secret_type!(
    /// A PKCE code verifier (RFC 7636 §4.1).
    CodeVerifier
);
secret_type!(
    /// A refresh token (RFC 6749 §1.5).
    RefreshToken
);
secret_type!(
    /// Any token a caller asks us to revoke (RFC 7009 §2.1).
    AnyToken
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = ClientSecret::new("canary-client-secret");
        let code = AuthorizationCode::new("canary-code");
        let printed = format!(
            "{secret:?} {secret} {code:?} {code} {:#?}",
            (&secret, &code)
        );
        assert!(!printed.contains("canary"), "{printed}");
        assert!(printed.contains("[redacted]"));
        assert_eq!(secret.secret(), "canary-client-secret");
    }
}
