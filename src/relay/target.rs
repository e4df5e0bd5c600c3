//! The strict loopback target rule: where the relay may send a code.
//!
//! A target entry is one of the wildcard-port loopback forms of RFC 8252 §7.3 that the redirect
//! allowlist already knows (`http://127.0.0.1:*/callback`, `http://[::1]:*/callback`,
//! `http://localhost:*/callback`) and nothing else. An app's `redirect_uri` matches an entry when
//! it is the identical text with the `*` replaced by a port: 1 to 5 ASCII digits, no leading zero,
//! 1..=65535. The comparison is on bytes, with no URL parsing: a parser would turn look-alikes
//! (`127.0.0.1.evil.com`, `localhost@evil`, userinfo, `0.0.0.0`, `[::ffff:127.0.0.1]`, an
//! upper-case host, `%2F`) into something else. So the code only ever goes to a loopback address,
//! on the machine whose browser ran the login.

/// The loopback prefixes a target may start with; the port follows.
pub const LOOPBACK_PREFIXES: [&str; 3] =
    ["http://127.0.0.1:", "http://[::1]:", "http://localhost:"];

/// The longest path a target entry may have.
const MAX_PATH_LEN: usize = 256;

/// A validated target entry: a loopback prefix, a wildcard port, a plain path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPattern {
    entry: String,
    prefix: &'static str,
    path: String,
}

impl TargetPattern {
    /// Parses an entry, or says why it is not one (for the config error).
    pub fn parse(entry: &str) -> Result<Self, &'static str> {
        let Some((prefix, rest)) = LOOPBACK_PREFIXES
            .iter()
            .find_map(|p| entry.strip_prefix(p).map(|rest| (*p, rest)))
        else {
            return Err("must start with http://127.0.0.1:*, http://[::1]:* or http://localhost:*");
        };
        let Some(path) = rest.strip_prefix('*') else {
            return Err("the port must be `*` (any port: the app binds an ephemeral one)");
        };
        if !path.starts_with('/') || path.len() > MAX_PATH_LEN {
            return Err(
                "the port must be followed by a path such as /callback (at most 256 bytes)",
            );
        }
        // RFC 3986 unreserved characters and `/` only: no query, fragment, percent-encoding,
        // `*`, `@` or anything else a client could read differently.
        if !path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'.' | b'_' | b'~'))
            || path.contains("//")
            || path
                .split('/')
                .any(|segment| segment == "." || segment == "..")
        {
            return Err(
                "the path may hold only letters, digits, '/', '-', '.', '_' and '~' (no query, \
                 fragment, '%', '//' or dot segments)",
            );
        }
        Ok(Self {
            entry: entry.to_owned(),
            prefix,
            path: path.to_owned(),
        })
    }

    /// The entry as configured.
    pub fn as_str(&self) -> &str {
        &self.entry
    }

    /// The port of `target` when it is this entry with a valid port in place of the `*`.
    pub fn port_of(&self, target: &str) -> Option<u16> {
        let port = target
            .strip_prefix(self.prefix)?
            .strip_suffix(self.path.as_str())?;
        let valid = (1..=5).contains(&port.len())
            && port.bytes().all(|b| b.is_ascii_digit())
            && !port.starts_with('0');
        if !valid {
            return None;
        }
        port.parse::<u16>().ok().filter(|p| *p != 0)
    }
}

/// True when `target` matches one of `patterns`.
pub fn is_allowed(patterns: &[TargetPattern], target: &str) -> bool {
    patterns.iter().any(|p| p.port_of(target).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Vec<TargetPattern> {
        [
            "http://127.0.0.1:*/callback",
            "http://[::1]:*/callback",
            "http://localhost:*/callback",
        ]
        .iter()
        .map(|e| TargetPattern::parse(e).expect("valid entry"))
        .collect()
    }

    #[test]
    fn loopback_targets_on_any_valid_port_match() {
        let patterns = defaults();
        for target in [
            "http://127.0.0.1:1/callback",
            "http://127.0.0.1:50123/callback",
            "http://127.0.0.1:65535/callback",
            "http://[::1]:8080/callback",
            "http://localhost:1420/callback",
        ] {
            assert!(is_allowed(&patterns, target), "{target}");
        }
    }

    #[test]
    fn look_alikes_and_bad_ports_do_not_match() {
        let patterns = defaults();
        for target in [
            "http://127.0.0.1.evil.com:5000/callback",
            "http://127.0.0.1:5000.evil.com/callback",
            "http://localhost@evil.com:5000/callback",
            "http://localhost:5000@evil.com/callback",
            "http://user:pass@127.0.0.1:5000/callback",
            "http://0.0.0.0:5000/callback",
            "http://[::ffff:127.0.0.1]:5000/callback",
            "http://[::ffff:7f00:1]:5000/callback",
            "http://127.0.0.2:5000/callback",
            "http://LOCALHOST:5000/callback",
            "http://LocalHost:5000/callback",
            "HTTP://127.0.0.1:5000/callback",
            "https://127.0.0.1:5000/callback",
            "http://127.0.0.1:0/callback",
            "http://127.0.0.1:00/callback",
            "http://127.0.0.1:05000/callback",
            "http://127.0.0.1:65536/callback",
            "http://127.0.0.1:99999/callback",
            "http://127.0.0.1:123456/callback",
            "http://127.0.0.1:/callback",
            "http://127.0.0.1:*/callback",
            "http://127.0.0.1:+5000/callback",
            "http://127.0.0.1:5000/callback/",
            "http://127.0.0.1:5000/callback?x=1",
            "http://127.0.0.1:5000/callback#x",
            "http://127.0.0.1:5000/Callback",
            "http://127.0.0.1:5000%2Fcallback",
            "http://127.0.0.1:5000/other",
            "http://127.0.0.1/callback",
            "https://evil.com/callback",
            "",
        ] {
            assert!(!is_allowed(&patterns, target), "{target}");
        }
    }

    #[test]
    fn only_wildcard_port_loopback_entries_with_plain_paths_are_entries() {
        for bad in [
            "http://127.0.0.1:1420/callback",
            "http://127.0.0.1:*",
            "http://127.0.0.1:*callback",
            "http://example.com:*/callback",
            "https://127.0.0.1:*/callback",
            "http://0.0.0.0:*/callback",
            "http://127.0.0.1:*/cb?x=1",
            "http://127.0.0.1:*/cb#x",
            "http://127.0.0.1:*/c%2Fb",
            "http://127.0.0.1:*/c*",
            "http://127.0.0.1:*//cb",
            "http://127.0.0.1:*/a/../cb",
            "battles-record://oauth/callback",
        ] {
            assert!(TargetPattern::parse(bad).is_err(), "{bad}");
        }
        assert!(TargetPattern::parse("http://localhost:*/auth/callback").is_ok());
    }
}
