//! The providers this proxy knows, as data: one [`Preset`] per provider in [`PRESETS`], holding
//! everything that differs between them (endpoints, the name in the 502 text, how the revocation
//! endpoint wants the token, how its errors are written, what its redirect URIs allow).
//!
//! Adding a provider is one entry in [`PRESETS`], plus a [`Dialect`] parser only when its errors
//! are not RFC 6749 §5.2 JSON. Nothing elsewhere branches on a provider's name.
//!
//! - [`dialect`]: providers' non-standard error bodies, read into RFC 6749 codes;
//! - [`revoke`]: the shape of a revocation request per provider;
//! - [`redirect`]: the redirect-URI allowlist rule (exact, or a loopback wildcard port).

pub mod dialect;
pub mod redirect;
pub mod revoke;

pub use dialect::Dialect;
pub use redirect::RedirectRule;
pub use revoke::RevokeStyle;

/// What a named preset brings to a `[providers.<name>]` table.
#[derive(Debug)]
pub struct Preset {
    /// The `preset = "…"` value, and the table name that selects it implicitly.
    pub name: &'static str,
    /// The name in the 502 text ("Failed to communicate with Kick OAuth server"); empty to use
    /// the table name capitalised.
    pub display_name: &'static str,
    /// The token endpoint (RFC 6749 §3.2); `None` when the operator must set `token_url`.
    pub token_url: Option<&'static str>,
    /// The revocation endpoint (RFC 7009 §2), if the provider has one.
    pub revoke_url: Option<&'static str>,
    /// How the revocation endpoint wants the token.
    pub revoke_style: RevokeStyle,
    /// How its error answers are written.
    pub dialect: Dialect,
    /// What its authorize endpoint accepts as a redirect URI, and so what the allowlist may hold.
    pub redirects: RedirectRule,
}

/// The built-in presets. `generic` is the fallback for a table whose name is no preset's.
pub static PRESETS: [Preset; 4] = [
    // https://docs.kick.com/getting-started/generating-tokens-oauth2-flow
    Preset {
        name: "kick",
        display_name: "Kick",
        token_url: Some("https://id.kick.com/oauth/token"),
        revoke_url: Some("https://id.kick.com/oauth/revoke"),
        revoke_style: RevokeStyle::KickQuery,
        // Kick's id.kick.com is fosite: RFC 6749 §5.2 errors.
        dialect: Dialect::Rfc6749,
        // Kick compares redirect URIs exactly: no wildcard port.
        redirects: RedirectRule::ExactOnly,
    },
    // https://dev.twitch.tv/docs/authentication/getting-tokens-oauth/
    Preset {
        name: "twitch",
        display_name: "Twitch",
        token_url: Some("https://id.twitch.tv/oauth2/token"),
        revoke_url: Some("https://id.twitch.tv/oauth2/revoke"),
        revoke_style: RevokeStyle::FormClientId,
        dialect: Dialect::Twitch,
        redirects: RedirectRule::LoopbackWildcardPort,
    },
    // https://developers.google.com/identity/protocols/oauth2/native-app
    Preset {
        name: "google",
        display_name: "Google",
        token_url: Some("https://oauth2.googleapis.com/token"),
        revoke_url: Some("https://oauth2.googleapis.com/revoke"),
        revoke_style: RevokeStyle::FormTokenOnly,
        dialect: Dialect::Rfc6749,
        redirects: RedirectRule::LoopbackWildcardPort,
    },
    Preset {
        name: "generic",
        display_name: "",
        token_url: None,
        revoke_url: None,
        revoke_style: RevokeStyle::Rfc7009,
        dialect: Dialect::Rfc6749,
        redirects: RedirectRule::LoopbackWildcardPort,
    },
];

/// The preset named `name`.
pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|preset| preset.name == name)
}

/// The preset for a table named `table` without `preset = "…"`: its namesake, else `generic`.
pub fn implied_preset(table: &str) -> &'static Preset {
    preset(table).unwrap_or(&PRESETS[PRESETS.len() - 1])
}

/// Every preset's name, for messages: `kick, twitch, google, generic`.
pub fn preset_names() -> String {
    PRESETS
        .iter()
        .map(|preset| preset.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_generic_is_the_fallback() {
        let mut names: Vec<_> = PRESETS.iter().map(|p| p.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PRESETS.len());
        assert_eq!(implied_preset("my-idp").name, "generic");
        assert_eq!(implied_preset("twitch").name, "twitch");
        assert_eq!(preset_names(), "kick, twitch, google, generic");
    }
}
