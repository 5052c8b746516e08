//! The address ranges no destination may reach unless the operator allows them: each one
//! named, so a refusal says which rule it broke.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv6Net};

/// A refused range and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub name: &'static str,
    pub range: &'static str,
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.name, self.range)
    }
}

const V4: &[(&str, &str)] = &[
    ("0.0.0.0/8", "this network (unspecified)"),
    ("10.0.0.0/8", "private (RFC 1918)"),
    ("100.64.0.0/10", "shared address space (CGNAT, RFC 6598)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata)"),
    ("172.16.0.0/12", "private (RFC 1918)"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation (TEST-NET-1)"),
    ("192.88.99.0/24", "6to4 relay anycast"),
    ("192.168.0.0/16", "private (RFC 1918)"),
    ("198.18.0.0/15", "benchmarking (RFC 2544)"),
    ("198.51.100.0/24", "documentation (TEST-NET-2)"),
    ("203.0.113.0/24", "documentation (TEST-NET-3)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("255.255.255.255/32", "broadcast"),
];

const V6: &[(&str, &str)] = &[
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("100::/64", "discard-only"),
    ("2001::/32", "Teredo (embeds an IPv4 address)"),
    ("2001:10::/28", "ORCHID"),
    ("2001:20::/28", "ORCHIDv2"),
    ("2001:db8::/32", "documentation"),
    ("fc00::/7", "unique local"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local (deprecated)"),
    ("ff00::/8", "multicast"),
];

/// The most specific refused range holding `ip` (broadcast, not the reserved /4 around it).
fn matches(ip: IpAddr, table: &'static [(&'static str, &'static str)]) -> Option<Rule> {
    table
        .iter()
        .filter_map(|(range, name)| {
            let net: IpNet = range.parse().ok()?;
            net.contains(&ip)
                .then_some((net.prefix_len(), Rule { name, range }))
        })
        .max_by_key(|(prefix_len, _)| *prefix_len)
        .map(|(_, rule)| rule)
}

/// The IPv4 address an IPv6 address carries, in the forms that route to it: mapped
/// (`::ffff:a.b.c.d`), compatible (`::a.b.c.d`), 6to4 (`2002:aabb:ccdd::/48`) and NAT64
/// (`64:ff9b::a.b.c.d`).
fn embedded_v4(v6: Ipv6Addr) -> Option<(Ipv4Addr, &'static str)> {
    let segments = v6.segments();
    let octets = v6.octets();
    let tail = Ipv4Addr::new(octets[12], octets[13], octets[14], octets[15]);
    let in_net = |range: &str| {
        range
            .parse::<Ipv6Net>()
            .is_ok_and(|net: Ipv6Net| net.contains(&v6))
    };
    if let Some(mapped) = v6.to_ipv4_mapped() {
        return Some((mapped, "IPv4-mapped"));
    }
    if in_net("64:ff9b::/96") {
        return Some((tail, "NAT64"));
    }
    if segments[0] == 0x2002 {
        let [a, b] = segments[1].to_be_bytes();
        let [c, d] = segments[2].to_be_bytes();
        return Some((Ipv4Addr::new(a, b, c, d), "6to4"));
    }
    // IPv4-compatible (deprecated): ::a.b.c.d, other than :: and ::1.
    if segments[..6] == [0; 6] && !v6.is_unspecified() && !v6.is_loopback() {
        return Some((tail, "IPv4-compatible"));
    }
    None
}

/// Why `ip` may not be a destination, or `None` when it may.
pub fn refused(ip: IpAddr) -> Option<Rule> {
    match ip {
        IpAddr::V4(v4) => matches(IpAddr::V4(v4), V4),
        IpAddr::V6(v6) => {
            if let Some(rule) = matches(IpAddr::V6(v6), V6) {
                return Some(rule);
            }
            let (v4, form) = embedded_v4(v6)?;
            let rule = matches(IpAddr::V4(v4), V4)?;
            Some(Rule {
                name: embedded_name(form),
                range: rule.range,
            })
        }
    }
}

fn embedded_name(form: &str) -> &'static str {
    match form {
        "IPv4-mapped" => "IPv4-mapped form of a refused IPv4 range",
        "NAT64" => "NAT64 form of a refused IPv4 range",
        "6to4" => "6to4 form of a refused IPv4 range",
        _ => "IPv4-compatible form of a refused IPv4 range",
    }
}

/// A CIDR (`10.20.0.0/16`) or a single address.
pub fn parse_net(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One address in each refused range, and what the refusal must name.
    #[test]
    fn every_refused_range_is_refused_by_name() {
        let cases = [
            ("0.1.2.3", "this network"),
            ("10.1.2.3", "private"),
            ("100.64.0.1", "shared address space"),
            ("127.0.0.1", "loopback"),
            ("169.254.169.254", "link-local"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.0.0.8", "IETF"),
            ("192.0.2.1", "documentation"),
            ("192.88.99.1", "6to4 relay"),
            ("192.168.1.1", "private"),
            ("198.18.0.1", "benchmarking"),
            ("198.19.255.255", "benchmarking"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.9", "documentation"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("240.0.0.1", "reserved"),
            ("255.255.255.255", "broadcast"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("100::1", "discard"),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
            ("2001:10::1", "ORCHID"),
            ("2001:db8::1", "documentation"),
            ("fd00::1", "unique local"),
            ("fc00::1", "unique local"),
            ("fe80::1", "link-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
            ("::ffff:127.0.0.1", "IPv4-mapped"),
            ("::ffff:169.254.169.254", "IPv4-mapped"),
            ("::10.0.0.1", "IPv4-compatible"),
            ("2002:7f00:1::1", "6to4"),
            ("2002:a9fe:a9fe::1", "6to4"),
            ("64:ff9b::7f00:1", "NAT64"),
            ("64:ff9b::a00:1", "NAT64"),
        ];
        for (address, name) in cases {
            let ip: IpAddr = address.parse().unwrap();
            let rule = refused(ip).unwrap_or_else(|| panic!("{address} was allowed"));
            assert!(rule.name.contains(name), "{address}: {rule:?}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for address in [
            "93.184.216.34",
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.0",
            "172.32.0.1",
            "198.20.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "2002:0808:0808::1",
            "64:ff9b::808:808",
        ] {
            let ip: IpAddr = address.parse().unwrap();
            assert_eq!(refused(ip), None, "{address}");
        }
    }
}
