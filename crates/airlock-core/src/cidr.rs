//! CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`, or a bare address) for the `*_bound_cidrs`
//! fields of auth roles and tokens.

use std::net::IpAddr;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `addr/prefix` or a bare address (a single host).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        // The value is never quoted back: it is a request field.
        let net: IpAddr = a.parse().map_err(|_| "invalid CIDR block".to_string())?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| "invalid CIDR block".to_string())?,
            None => max,
        };
        Ok(Cidr { net, prefix })
    }

    /// True when every address of `self` is inside `outer`.
    pub fn within(&self, outer: &Cidr) -> bool {
        outer.prefix <= self.prefix && outer.contains(self.net)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client that arrived over an IPv6 socket as ::ffff:a.b.c.d is IPv4.
        let ip = match ip {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(i) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(i) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let full = if self.net.is_ipv4() { 32 } else { 128 };
        if self.prefix == full {
            write!(f, "{}", self.net)
        } else {
            write!(f, "{}/{}", self.net, self.prefix)
        }
    }
}

/// Parses a list of blocks; the first bad one is the error.
pub fn parse_list(items: &[String]) -> Result<Vec<Cidr>, String> {
    items.iter().map(|s| Cidr::parse(s)).collect()
}

/// True when every block of `inner` lies inside some block of `outer` (an empty `outer`
/// bounds nothing).
pub fn subset(inner: &[Cidr], outer: &[Cidr]) -> bool {
    outer.is_empty() || inner.iter().all(|i| outer.iter().any(|o| i.within(o)))
}

/// True when `list` is empty (unbound) or some block contains `ip`.
pub fn allows(list: &[Cidr], ip: Option<IpAddr>) -> bool {
    if list.is_empty() {
        return true;
    }
    match ip {
        Some(ip) => list.iter().any(|c| c.contains(ip)),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v4_and_v6_blocks() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains(ip("10.1.200.3")));
        assert!(!c.contains(ip("10.2.0.1")));
        assert!(c.contains(ip("::ffff:10.1.0.9")));
        let h = Cidr::parse("127.0.0.1").unwrap();
        assert!(h.contains(ip("127.0.0.1")) && !h.contains(ip("127.0.0.2")));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(ip("8.8.8.8")));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8::1")) && !v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        for bad in ["10.0.0.0/33", "x/8", "", "1.2.3.4/-1", "::/129"] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn subsets() {
        let outer = parse_list(&["10.0.0.0/8".into()]).unwrap();
        assert!(subset(
            &parse_list(&["10.1.0.0/16".into(), "10.2.3.4".into()]).unwrap(),
            &outer
        ));
        assert!(!subset(&parse_list(&["0.0.0.0/0".into()]).unwrap(), &outer));
        assert!(!subset(
            &parse_list(&["11.0.0.0/16".into()]).unwrap(),
            &outer
        ));
        assert!(subset(&parse_list(&["0.0.0.0/0".into()]).unwrap(), &[]));
        assert!(subset(&[], &outer));
    }

    #[test]
    fn empty_list_allows_and_missing_address_does_not() {
        assert!(allows(&[], None));
        let l = parse_list(&["192.168.0.0/24".into()]).unwrap();
        assert!(!allows(&l, None));
        assert!(allows(&l, Some(ip("192.168.0.7"))));
        assert!(!allows(&l, Some(ip("192.168.1.7"))));
    }
}
