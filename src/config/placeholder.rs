//! The shipped examples' placeholders, refused wherever an operator's own value belongs.

/// How every placeholder in the shipped examples begins, where the operator's own value goes:
/// `replace-with-your-kick-client-id` (`config/default.toml`, `deploy/kubernetes/configmap.yaml`),
/// `replace-with-your-kick-client-secret` (`deploy/kubernetes/secret.example.yaml`) and the
/// commented-out Twitch and Google ones. A proxy started with one passes every probe and answers
/// every login 502 (the provider rejects the client), so start-up refuses it instead.
pub const PLACEHOLDER_PREFIX: &str = "replace-with-";

/// The refusal for a client secret that is still a placeholder; the value itself is not quoted.
pub(super) const PLACEHOLDER_SECRET: &str =
    "is still the shipped placeholder: put your app's client secret from the provider's developer console there";

/// True for a value still holding one of the shipped placeholders ([`PLACEHOLDER_PREFIX`]).
pub fn is_placeholder(value: &str) -> bool {
    value
        .trim()
        .get(..PLACEHOLDER_PREFIX.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(PLACEHOLDER_PREFIX))
}
