//! The SSRF guard: which resolved addresses the broker may connect to.
//!
//! Checked after DNS resolution, on the address actually dialled (so a name that resolves to
//! `169.254.169.254` is caught, and a rebinding answer cannot slip in between check and
//! connect). Loopback, private, link-local, CGNAT, unique-local, multicast, unspecified,
//! benchmarking and cloud-metadata addresses — also when embedded in an IPv4-mapped,
//! IPv4-compatible, NAT64, 6to4 or Teredo address — are refused unless an allowance names the
//! host or network, or the operator pinned the host with `--resolve`.

use std::net::IpAddr;

/// An explicit exception: a host name or an IP network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Allowance {
    Host(String),
    Net(IpAddr, u8),
}

impl Allowance {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some((ip, bits)) = s.split_once('/') {
            let ip: IpAddr = ip
                .parse()
                .map_err(|_| format!("{s:?} is not an IP network (e.g. 10.0.0.0/8)"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits: u8 = bits
                .parse()
                .ok()
                .filter(|b| *b <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0-{max}"))?;
            return Ok(Allowance::Net(ip, bits));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Allowance::Net(ip, if ip.is_ipv4() { 32 } else { 128 }));
        }
        airlock_core::binding::HostPattern::parse(s)
            .map(|_| Allowance::Host(s.trim_end_matches('.').to_ascii_lowercase()))
    }

    fn covers(&self, host: &str, ip: IpAddr) -> bool {
        match self {
            Allowance::Host(h) => h.eq_ignore_ascii_case(host.trim_end_matches('.')),
            Allowance::Net(net, bits) => in_net(ip, *net, *bits),
        }
    }
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(bits))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Why an address is not public, or `None` for a public address.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    };
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            if a.is_loopback() {
                Some("loopback")
            } else if o == [169, 254, 169, 254] || o == [100, 100, 100, 200] {
                Some("cloud metadata")
            } else if a.is_private() {
                Some("private")
            } else if a.is_link_local() {
                Some("link-local")
            } else if o[0] == 100 && (64..128).contains(&o[1]) {
                Some("shared (CGNAT)")
            } else if o[0] == 198 && (o[1] & 0xfe) == 18 {
                Some("benchmarking (198.18.0.0/15)")
            } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
                Some("IETF protocol assignments (192.0.0.0/24)")
            } else if a.is_unspecified() || o[0] == 0 {
                Some("unspecified")
            } else if a.is_multicast() || a.is_broadcast() || o[0] >= 240 {
                Some("multicast/reserved")
            } else {
                None
            }
        }
        IpAddr::V6(a) => {
            let s = a.segments();
            if a.is_loopback() {
                Some("loopback")
            } else if a.is_unspecified() {
                Some("unspecified")
            } else if s[0] == 0xfd00 && s[1] == 0x0ec2 && s[7] == 0x254 {
                Some("cloud metadata")
            } else if s[0] & 0xfe00 == 0xfc00 {
                Some("unique-local (private)")
            } else if s[0] & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if a.is_multicast() {
                Some("multicast")
            } else if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
                // Local-use NAT64 (64:ff9b:1::/48): where the IPv4 address sits varies.
                Some("local-use NAT64")
            } else if (s[0] == 0x64 && s[1] == 0xff9b)
                || s[..6] == [0; 6]
                || s[..6] == [0, 0, 0, 0, 0xffff, 0]
            {
                // NAT64 (64:ff9b::/96), SIIT (::ffff:0:a.b.c.d) and the deprecated
                // IPv4-compatible form (::a.b.c.d):
                // judge the embedded IPv4 address.
                non_public(IpAddr::V4(v4_from(s[6], s[7])))
            } else if s[0] == 0x2002 {
                // 6to4: the relay reaches the IPv4 address in bits 16-48.
                non_public(IpAddr::V4(v4_from(s[1], s[2])))
            } else if s[0] == 0x2001 && s[1] == 0 {
                // Teredo: the client's address is the complement of the last 32 bits.
                non_public(IpAddr::V4(v4_from(!s[6], !s[7])))
            } else {
                None
            }
        }
    }
}

fn v4_from(hi: u16, lo: u16) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)
}

/// The guard: refuses non-public addresses unless allowed.
#[derive(Clone, Debug, Default)]
pub struct Guard {
    pub allow: Vec<Allowance>,
}

impl Guard {
    pub fn new(allow: &[String]) -> Result<Self, String> {
        Ok(Guard {
            allow: allow
                .iter()
                .map(|a| Allowance::parse(a))
                .collect::<Result<_, _>>()?,
        })
    }

    /// `Err(reason)` when `host` resolving to `ip` must not be dialled.
    pub fn check(&self, host: &str, ip: IpAddr) -> Result<(), String> {
        match non_public(ip) {
            None => Ok(()),
            Some(_) if self.allow.iter().any(|a| a.covers(host, ip)) => Ok(()),
            Some(why) => Err(format!(
                "{host} resolves to a {why} address; refused by the SSRF guard (allow it with `allow_private`)"
            )),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn refuses_internal_addresses() {
        let g = Guard::default();
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "fc00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "224.0.0.1",
            "198.18.0.1",
            "192.0.0.170",
            "::127.0.0.1",
            "::a9fe:a9fe",
            "2002:7f00:1::1",
            "2002:a00:1::",
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
            "::ffff:0:7f00:1",
            "64:ff9b:1::808:808",
        ] {
            assert!(g.check("h", ip.parse().unwrap()).is_err(), "{ip}");
        }
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "2606:4700::1111",
            "100.128.0.1",
            "2002:808:808::1",
            "198.20.0.1",
        ] {
            assert!(g.check("h", ip.parse().unwrap()).is_ok(), "{ip}");
        }
    }

    #[test]
    fn allowances() {
        let g = Guard::new(&["10.0.0.0/8".into(), "db.internal".into()]).unwrap();
        assert!(g.check("x", "10.9.9.9".parse().unwrap()).is_ok());
        assert!(g.check("x", "192.168.0.1".parse().unwrap()).is_err());
        assert!(g
            .check("DB.internal.", "192.168.0.1".parse().unwrap())
            .is_ok());
        assert!(Allowance::parse("10.0.0.0/33").is_err());
        assert!(Allowance::parse("not a host").is_err());
    }
}
