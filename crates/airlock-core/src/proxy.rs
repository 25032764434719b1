//! Which outbound connections go through a proxy: the `HTTPS_PROXY` / `NO_PROXY`
//! conventions (curl's and Go's), as pure functions of the variables' values.
//!
//! - A proxy is an `http://[user:password@]host[:port]` URL (port 80 by default); other
//!   schemes are refused, never ignored.
//! - `NO_PROXY` is a comma-separated list: `*` (everything), a host name (`example.com`
//!   matches it and its subdomains; a leading `.` or `*.` is the same), an IP address, or a
//!   CIDR block; any entry may end in `:port` to match that port only.
//! - Loopback destinations (`localhost`, 127.0.0.0/8, ::1) never go through a proxy.

use std::net::IpAddr;

/// A parsed proxy URL. `Debug` hides the credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    pub host: String,
    pub port: u16,
    /// `user:password`, already percent-decoded, for `Proxy-Authorization: Basic`.
    pub credentials: Option<String>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("host", &self.host)
            .field("port", &self.port)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Parses `HTTPS_PROXY`'s value. A bare `host:port` is taken as `http://host:port`.
pub fn parse_proxy(url: &str) -> Result<Proxy, String> {
    let u = url.trim();
    let rest = match u.split_once("://") {
        Some(("http", r)) => r,
        Some((scheme, _)) => {
            return Err(format!(
                "proxy scheme {:?} is not supported (only http:// proxies, which tunnel TLS with CONNECT)",
                scheme.chars().take(16).collect::<String>()
            ))
        }
        None => u,
    };
    let authority = rest.split('/').next().unwrap_or("");
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((ui, hp)) => (Some(ui), hp),
        None => (None, authority),
    };
    let (host, port) = if let Some(r) = hostport.strip_prefix('[') {
        let (h, tail) = r.split_once(']').ok_or("proxy URL has a bad host")?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| "proxy URL has a bad port")?,
            None => 80,
        };
        (h.to_string(), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse().map_err(|_| "proxy URL has a bad port")?,
            ),
            None => (hostport.to_string(), 80),
        }
    };
    if host.is_empty() {
        return Err("proxy URL has no host".into());
    }
    let credentials = match userinfo {
        Some(ui) => Some(
            crate::percent::decode_utf8(ui, crate::percent::Plus::Literal)
                .ok_or("proxy credentials are not valid percent-encoded UTF-8")?,
        ),
        None => None,
    };
    Ok(Proxy {
        host,
        port,
        credentials,
    })
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .map(|a| a.is_loopback())
            .unwrap_or(false)
}

/// Whether a connection to `host:port` bypasses the proxy under `no_proxy`.
pub fn bypass(no_proxy: &str, host: &str, port: u16) -> bool {
    if is_loopback(host) {
        return true;
    }
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let ip = host.parse::<IpAddr>().ok();
    for raw in no_proxy.split(',') {
        let e = raw.trim().to_ascii_lowercase();
        if e.is_empty() {
            continue;
        }
        if e == "*" {
            return true;
        }
        // An optional `:port` (not inside an IPv6 address).
        let (name, want_port) = match e.rsplit_once(':') {
            Some((n, p)) if !n.contains(':') || n.ends_with(']') => match p.parse::<u16>() {
                Ok(p) => (
                    n.trim_start_matches('[').trim_end_matches(']').to_string(),
                    Some(p),
                ),
                Err(_) => (e.clone(), None),
            },
            _ => (
                e.trim_start_matches('[').trim_end_matches(']').to_string(),
                None,
            ),
        };
        if want_port.is_some_and(|p| p != port) {
            continue;
        }
        if let Some(ip) = ip {
            if name.contains('/') {
                if let Ok(c) = crate::cidr::Cidr::parse(&name) {
                    if c.contains(ip) {
                        return true;
                    }
                }
                continue;
            }
            if name.parse::<IpAddr>().ok() == Some(ip) {
                return true;
            }
            continue;
        }
        let suffix = name
            .trim_start_matches("*.")
            .trim_start_matches('.')
            .trim_end_matches('.');
        if suffix.is_empty() {
            continue;
        }
        if host == suffix || host.ends_with(&format!(".{suffix}")) {
            return true;
        }
    }
    false
}

/// The proxy for an `https` connection to `host:port`, given the variables' values
/// (`https_proxy`: `HTTPS_PROXY` or `https_proxy`; `no_proxy` likewise). `Ok(None)`: direct.
pub fn for_https(
    https_proxy: Option<&str>,
    no_proxy: Option<&str>,
    host: &str,
    port: u16,
) -> Result<Option<Proxy>, String> {
    let Some(p) = https_proxy.map(str::trim).filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    if bypass(no_proxy.unwrap_or(""), host, port) {
        return Ok(None);
    }
    parse_proxy(p).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls() {
        assert_eq!(
            parse_proxy("http://proxy.corp:3128").unwrap(),
            Proxy {
                host: "proxy.corp".into(),
                port: 3128,
                credentials: None
            }
        );
        let p = parse_proxy("http://us%40er:p%3Ass@10.0.0.1:8080/").unwrap();
        assert_eq!(
            (p.host.as_str(), p.port, p.credentials.as_deref()),
            ("10.0.0.1", 8080, Some("us@er:p:ss"))
        );
        assert!(!format!("{p:?}").contains("p:ss"));
        assert_eq!(parse_proxy("proxy:3128").unwrap().port, 3128);
        assert_eq!(parse_proxy("http://proxy").unwrap().port, 80);
        assert_eq!(parse_proxy("http://[::1]:9").unwrap().host, "::1");
        for bad in [
            "https://proxy:443",
            "socks5://p:1080",
            "http://:80",
            "http://p:x",
        ] {
            assert!(parse_proxy(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn no_proxy_rules() {
        let np = "example.com, .corp.internal,*.svc, 10.0.0.0/8, 192.168.1.5, api.local:8443";
        for (host, port, want) in [
            ("example.com", 443, true),
            ("api.example.com", 443, true),
            ("badexample.com", 443, false),
            ("x.corp.internal", 443, true),
            ("corp.internal", 443, true),
            ("kubernetes.default.svc", 443, true),
            ("10.1.2.3", 443, true),
            ("11.1.2.3", 443, false),
            ("192.168.1.5", 443, true),
            ("api.local", 8443, true),
            ("api.local", 443, false),
            ("EXAMPLE.COM.", 443, true),
            ("other.org", 443, false),
            ("localhost", 443, true),
            ("127.0.0.7", 443, true),
            ("[::1]", 443, true),
        ] {
            assert_eq!(bypass(np, host, port), want, "{host}:{port}");
        }
        assert!(bypass("*", "anything.example", 1));
        assert!(!bypass("", "anything.example", 1));
    }

    #[test]
    fn which_proxy() {
        let p = for_https(
            Some("http://p:3128"),
            Some("internal"),
            "api.github.com",
            443,
        );
        assert_eq!(p.unwrap().unwrap().host, "p");
        assert_eq!(
            for_https(
                Some("http://p:3128"),
                Some("github.com"),
                "api.github.com",
                443
            )
            .unwrap(),
            None
        );
        assert_eq!(for_https(None, None, "api.github.com", 443).unwrap(), None);
        assert_eq!(
            for_https(Some(""), None, "api.github.com", 443).unwrap(),
            None
        );
        assert!(for_https(Some("socks5://p:1"), None, "x.example", 443).is_err());
        // Loopback is never proxied.
        assert_eq!(
            for_https(Some("http://p:3128"), None, "localhost", 8200).unwrap(),
            None
        );
    }
}
