//! The redirect-URI allowlist rule: byte-for-byte, with one opt-in exception, a loopback entry
//! whose port is `*` (RFC 8252 §7.3), for providers that allow it.

/// What a provider's authorize endpoint accepts, and so what its allowlist may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedirectRule {
    /// Exact strings only: the provider compares redirect URIs exactly (Kick), so a wildcard port
    /// here would accept codes the provider never issued to that URI.
    ExactOnly,
    /// Exact strings, and loopback entries with a wildcard port.
    LoopbackWildcardPort,
}

/// Loopback redirect prefixes whose port may be `*` (RFC 8252 §7.3).
pub const WILDCARD_PORT_PREFIXES: [&str; 3] =
    ["http://127.0.0.1:", "http://[::1]:", "http://localhost:"];

/// True when `entry` is a loopback redirect with a wildcard port: one of
/// [`WILDCARD_PORT_PREFIXES`], then `*/`, and no other `*`.
pub fn is_wildcard_port_entry(entry: &str) -> bool {
    WILDCARD_PORT_PREFIXES.iter().any(|prefix| {
        entry
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix("*/"))
            .is_some_and(|rest| !rest.contains('*'))
    })
}

/// True when `redirect_uri` matches one of `allowed`.
///
/// Byte-for-byte: no parsing, no normalisation (a parser turns look-alikes into the real thing;
/// RFC 9700 §4.1.3 asks for exact string matching). The one exception: a loopback entry with a
/// wildcard port, opted into per entry, matches the same text with the `*` replaced by a port.
pub fn is_allowed(allowed: &[String], redirect_uri: &str) -> bool {
    allowed.iter().any(|entry| matches(entry, redirect_uri))
}

/// One allowlist entry against a request's `redirect_uri`. Byte-for-byte, except for an entry such
/// as `http://127.0.0.1:*/callback` (validated at start-up: loopback, `*` only as the port), which
/// matches the identical text with the `*` replaced by 1 to 5 ASCII digits, no leading zero, value
/// 1..=65535. Such an entry never matches itself (a literal `*`).
pub fn matches(entry: &str, redirect_uri: &str) -> bool {
    if !is_wildcard_port_entry(entry) {
        return entry.as_bytes() == redirect_uri.as_bytes();
    }
    let Some((prefix, suffix)) = entry.split_once('*') else {
        return false;
    };
    let Some(port) = redirect_uri
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(suffix))
    else {
        return false;
    };
    (1..=5).contains(&port.len())
        && port.bytes().all(|b| b.is_ascii_digit())
        && !port.starts_with('0')
        && port.parse::<u32>().is_ok_and(|p| (1..=65535).contains(&p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_port_entry_matches_only_a_valid_port() {
        for entry in [
            "http://127.0.0.1:*/callback",
            "http://[::1]:*/callback",
            "http://localhost:*/callback",
        ] {
            let with = |port: &str| entry.replace('*', port);
            for port in ["1", "8080", "65535"] {
                assert!(matches(entry, &with(port)), "{entry} {port}");
            }
            for port in [
                "0", "65536", "01420", "", "*", "123456", "80a", "+80", " 80",
            ] {
                assert!(!matches(entry, &with(port)), "{entry} {port:?}");
            }
            for other in [
                with("8080/"),
                with("8080?x=1"),
                with("8080").replace("/callback", "/other"),
                with("8080").replace("http://", "https://"),
                format!("{}/", with("8080")),
                format!("{}?code=x", with("8080")),
            ] {
                assert!(!matches(entry, &other), "{other}");
            }
        }
        assert!(!matches(
            "http://127.0.0.1:*/callback",
            "http://127.0.0.2:8080/callback"
        ));
        assert!(matches(
            "http://localhost:1420/cb",
            "http://localhost:1420/cb"
        ));
        assert!(!matches(
            "http://localhost:1420/cb",
            "http://localhost:1421/cb"
        ));
    }
}
