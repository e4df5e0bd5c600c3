//! RFC 7009 §2.1 `token_type_hint`: which kind of token a revocation request carries.

// The doc comment below is also the schema's description in the proxy's committed `openapi.json`:
// changing it changes that document.

/// RFC 7009 §2.1 `token_type_hint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    feature = "utoipa",
    derive(utoipa::ToSchema),
    schema(rename_all = "snake_case")
)]
pub enum TokenTypeHint {
    /// `access_token`.
    AccessToken,
    /// `refresh_token`.
    RefreshToken,
}

impl TokenTypeHint {
    /// The value as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessToken => "access_token",
            Self::RefreshToken => "refresh_token",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_values_are_the_rfc_7009_ones() {
        assert_eq!(TokenTypeHint::AccessToken.as_str(), "access_token");
        assert_eq!(TokenTypeHint::RefreshToken.as_str(), "refresh_token");
    }
}
