//! Which address a request comes from: the socket's peer, or, when the peer is one of our own
//! proxies, the hop that proxy saw.
//!
//! `X-Forwarded-For` is a list each proxy appends its peer to, so only its right end can be
//! believed, and only as far as the proxies that wrote it are ours. The client is therefore the
//! rightmost hop that is *not* a trusted proxy. Anything to the left of it was written by the
//! client itself and may be forged. From a peer that is not a trusted proxy the header is ignored
//! altogether: otherwise anyone could pick a fresh rate-limit bucket per request.
//!
//! Accepted hop forms: `1.2.3.4`, `2001:db8::1`, and, leniently, `1.2.3.4:5678`, `[2001:db8::1]`
//! and `[2001:db8::1]:5678` (the port is dropped). IPv4-mapped IPv6 (`::ffff:1.2.3.4`) counts as
//! the IPv4 address, on the socket and in the header. Anything else (`unknown`, obfuscated RFC
//! 7239 identifiers, zone ids, empty entries) is malformed. The RFC 7239 `Forwarded` header is not
//! read.

use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderMap;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// `X-Forwarded-For` (de-facto standard; RFC 7239 §5.2 describes its `for=` successor).
pub static X_FORWARDED_FOR: axum::http::HeaderName =
    axum::http::HeaderName::from_static("x-forwarded-for");

/// The `rate_limit.trusted_proxies` networks, parsed once at start-up.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// Parses validated config entries (CIDRs or single addresses). Entries that do not parse are
    /// skipped (config validation already refused them); IPv4-mapped IPv6 networks become IPv4.
    pub fn new<S: AsRef<str>>(entries: &[S]) -> Self {
        let nets = entries
            .iter()
            .filter_map(|entry| {
                let entry = entry.as_ref().trim();
                entry
                    .parse::<IpNet>()
                    .ok()
                    .or_else(|| entry.parse::<IpAddr>().ok().map(IpNet::from))
            })
            .map(|net| canonical_net(net.trunc()))
            .collect();
        Self { nets }
    }

    /// The networks, for [`client_ip`].
    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }
}

/// `::ffff:a.b.c.d/n` (n ≥ 96) is the IPv4 network `a.b.c.d/(n-96)`.
fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net {
        if let (Some(v4), Some(len)) = (v6.addr().to_ipv4_mapped(), v6.prefix_len().checked_sub(96))
        {
            if let Ok(v4net) = ipnet::Ipv4Net::new(v4, len) {
                return IpNet::V4(v4net);
            }
        }
    }
    net
}

/// The client address of a request: `peer` itself unless `peer` is in `trusted`, then the
/// rightmost `X-Forwarded-For` hop outside `trusted`.
///
/// - Several `X-Forwarded-For` headers count as one list, in order (RFC 9110 §5.3).
/// - Every hop being trusted: the leftmost one (the farthest we can see).
/// - A malformed hop stops the walk: the answer is the last address examined before it (a trusted
///   one, on the peer side), never anything written to the left of garbage. That can only make
///   requests share a proxy's bucket (more limiting), never give a caller a fresh one.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut current = peer.to_canonical();
    if !is_trusted(&current) {
        return current;
    }
    for value in headers.get_all(&X_FORWARDED_FOR).iter().rev() {
        let Ok(list) = value.to_str() else {
            return current;
        };
        for hop in list.rsplit(',') {
            let Some(ip) = parse_hop(hop) else {
                return current;
            };
            current = ip.to_canonical();
            if !is_trusted(&current) {
                return current;
            }
        }
    }
    current
}

/// The client address of `request` (see [`client_ip`]), from the `ConnectInfo` the server puts in
/// every request's extensions. Without it (a router driven in-process), the unspecified address:
/// such requests share one bucket rather than escape limits.
pub fn request_client_ip(request: &Request, trusted: &TrustedProxies) -> IpAddr {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
    client_ip(peer, request.headers(), trusted.nets())
}

/// One `X-Forwarded-For` entry: an address, optionally bracketed and/or with a port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim_matches(|c| c == ' ' || c == '\t');
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(socket) = hop.parse::<SocketAddr>() {
        return Some(socket.ip());
    }
    hop.strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| inner.parse::<std::net::Ipv6Addr>().ok())
        .map(IpAddr::V6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for v in values {
            map.append(
                X_FORWARDED_FOR.clone(),
                HeaderValue::from_str(v).expect("test header"),
            );
        }
        map
    }

    fn trusted(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::new(entries)
    }

    const PROXIES: &[&str] = &["10.0.0.0/8", "192.168.1.1", "2001:db8:ffff::/48"];

    fn resolve(peer: &str, xff: &[&str]) -> IpAddr {
        client_ip(ip(peer), &headers(xff), trusted(PROXIES).nets())
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_the_header_says() {
        assert_eq!(resolve("203.0.113.9", &[]), ip("203.0.113.9"));
        assert_eq!(resolve("203.0.113.9", &["1.1.1.1"]), ip("203.0.113.9"));
        assert_eq!(
            resolve("203.0.113.9", &["1.1.1.1, 10.0.0.1", "8.8.8.8"]),
            ip("203.0.113.9")
        );
        assert_eq!(resolve("203.0.113.9", &["garbage"]), ip("203.0.113.9"));
    }

    #[test]
    fn no_trusted_proxies_means_the_header_is_never_read() {
        let none = TrustedProxies::new::<&str>(&[]);
        let h = headers(&["1.1.1.1"]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, none.nets()), ip("10.0.0.1"));
    }

    #[test]
    fn trusted_peer_gives_the_rightmost_untrusted_hop() {
        assert_eq!(resolve("10.0.0.1", &["198.51.100.7"]), ip("198.51.100.7"));
        // The client forged a left part; the proxy appended the real address.
        assert_eq!(
            resolve("10.0.0.1", &["1.2.3.4, 198.51.100.7"]),
            ip("198.51.100.7")
        );
        // Chain of our own proxies: skip them all.
        assert_eq!(
            resolve(
                "10.0.0.1",
                &["1.2.3.4, 198.51.100.7, 192.168.1.1, 10.9.9.9"]
            ),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn a_forged_trusted_address_on_the_left_does_not_help() {
        // The client claims to be a proxy; its real address is still appended by ours.
        assert_eq!(
            resolve("10.0.0.1", &["10.1.1.1, 198.51.100.7"]),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn several_headers_are_one_list_in_order() {
        assert_eq!(
            resolve("10.0.0.1", &["1.2.3.4", "198.51.100.7, 10.0.0.2"]),
            ip("198.51.100.7")
        );
        assert_eq!(resolve("10.0.0.1", &["1.2.3.4", "10.0.0.2"]), ip("1.2.3.4"));
    }

    #[test]
    fn all_trusted_gives_the_leftmost() {
        assert_eq!(resolve("10.0.0.1", &["10.0.0.3, 10.0.0.2"]), ip("10.0.0.3"));
    }

    #[test]
    fn trusted_peer_without_header_is_itself() {
        assert_eq!(resolve("10.0.0.1", &[]), ip("10.0.0.1"));
    }

    #[test]
    fn garbage_stops_the_walk_at_the_last_address_seen() {
        // Nothing left of garbage is believed, however plausible it looks.
        assert_eq!(resolve("10.0.0.1", &["1.2.3.4, unknown"]), ip("10.0.0.1"));
        assert_eq!(
            resolve("10.0.0.1", &["1.2.3.4, garbage, 10.0.0.2"]),
            ip("10.0.0.2")
        );
        assert_eq!(resolve("10.0.0.1", &["1.2.3.4,,10.0.0.2"]), ip("10.0.0.2"));
        assert_eq!(resolve("10.0.0.1", &[""]), ip("10.0.0.1"));
        assert_eq!(resolve("10.0.0.1", &["1.2.3.4", "x"]), ip("10.0.0.1"));
        assert_eq!(resolve("10.0.0.1", &["fe80::1%eth0"]), ip("10.0.0.1"));
        // An untrusted hop right of the garbage is found first.
        assert_eq!(
            resolve("10.0.0.1", &["garbage, 198.51.100.7"]),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn non_ascii_header_value_counts_as_garbage() {
        let mut h = HeaderMap::new();
        h.append(
            X_FORWARDED_FOR.clone(),
            HeaderValue::from_bytes(b"1.2.3.4, \xff").expect("opaque header"),
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), &h, trusted(PROXIES).nets()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn ports_and_brackets_are_accepted() {
        assert_eq!(
            resolve("10.0.0.1", &["198.51.100.7:4711"]),
            ip("198.51.100.7")
        );
        assert_eq!(
            resolve("10.0.0.1", &["[2001:db8::7]:4711"]),
            ip("2001:db8::7")
        );
        assert_eq!(resolve("10.0.0.1", &["[2001:db8::7]"]), ip("2001:db8::7"));
        assert_eq!(resolve("10.0.0.1", &[" 2001:db8::7\t"]), ip("2001:db8::7"));
    }

    #[test]
    fn ipv6_proxies_and_clients() {
        assert_eq!(
            resolve("2001:db8:ffff::1", &["2001:db8:1::5, 2001:db8:ffff::2"]),
            ip("2001:db8:1::5")
        );
        assert_eq!(
            resolve("2001:db8:1::1", &["198.51.100.7"]),
            ip("2001:db8:1::1")
        );
    }

    #[test]
    fn ipv4_mapped_addresses_are_ipv4() {
        // A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d.
        assert_eq!(
            resolve("::ffff:10.0.0.1", &["198.51.100.7"]),
            ip("198.51.100.7")
        );
        assert_eq!(
            resolve("::ffff:203.0.113.9", &["1.1.1.1"]),
            ip("203.0.113.9")
        );
        assert_eq!(
            resolve("10.0.0.1", &["::ffff:198.51.100.7"]),
            ip("198.51.100.7")
        );
        // A mapped trusted address is skipped like the plain one.
        assert_eq!(
            resolve("10.0.0.1", &["198.51.100.7, ::ffff:10.0.0.2"]),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn trusted_entries_are_normalised() {
        let t = TrustedProxies::new(&["::ffff:10.0.0.0/104", "172.16.5.4/12", "nonsense"]);
        assert_eq!(
            t.nets(),
            &[
                "10.0.0.0/8".parse::<IpNet>().expect("net"),
                "172.16.0.0/12".parse::<IpNet>().expect("net")
            ]
        );
    }
}
