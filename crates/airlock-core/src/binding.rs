//! Credential-broker bindings: where a brokered credential may go, decided purely.
//!
//! A [`Destination`] names `https` host(s), a port, optional methods and optional path
//! prefixes. [`Destination::check`] takes the parts of an outgoing request and says whether
//! the credential may ride on it, or which rule it breaks. Paths are compared only after
//! percent-decoding and dot-segment removal, so `/v1/../admin` and `/v1/%2e%2e/admin` cannot
//! sneak past a `/v1/` scope. Placeholders (`airlock-ph-<name>-<random>`) are minted from
//! caller-supplied randomness and found in text by [`find_placeholders`].

use crate::token_format::base62;

/// Why a request may not carry a credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// Anything but `https`.
    Scheme(String),
    Host(String),
    Port(u16),
    Method(String),
    /// The normalised path is outside every allowed prefix.
    Path(String),
    /// The path cannot be normalised (invalid escape, NUL, climbs above the root).
    BadPath,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Violation::Scheme(s) => write!(f, "scheme {s:?} is not allowed (https only)"),
            Violation::Host(h) => write!(f, "host {h:?} is not bound"),
            Violation::Port(p) => write!(f, "port {p} is not bound"),
            Violation::Method(m) => write!(f, "method {m} is not allowed"),
            Violation::Path(p) => write!(f, "path {p:?} is outside the bound prefixes"),
            Violation::BadPath => write!(f, "path cannot be normalised"),
        }
    }
}

/// A host pattern: exact, or `*.suffix` matching exactly one extra label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPattern {
    Exact(String),
    OneLabel(String),
}

impl HostPattern {
    /// Parses `api.openai.com` or `*.openai.azure.com`. Errors name the problem.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let h = normalize_host(raw);
        let valid = |s: &str| {
            !s.is_empty()
                && s.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                })
        };
        match h.strip_prefix("*.") {
            Some(rest) if valid(rest) && rest.contains('.') => {
                Ok(HostPattern::OneLabel(rest.into()))
            }
            Some(_) => Err(format!(
                "host pattern {raw:?}: `*.` needs a suffix with at least two labels"
            )),
            None if valid(&h) => Ok(HostPattern::Exact(h)),
            None => Err(format!("host {raw:?} is not a valid DNS name")),
        }
    }

    pub fn matches(&self, host: &str) -> bool {
        let h = normalize_host(host);
        match self {
            HostPattern::Exact(e) => h == *e,
            HostPattern::OneLabel(suffix) => h
                .strip_suffix(suffix.as_str())
                .and_then(|p| p.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty() && !label.contains('.')),
        }
    }
}

fn normalize_host(h: &str) -> String {
    h.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// Where a credential may be sent.
#[derive(Clone, Debug)]
pub struct Destination {
    pub hosts: Vec<HostPattern>,
    pub port: u16,
    /// Upper-case methods; empty = any.
    pub methods: Vec<String>,
    /// Normalised prefixes starting with `/`; empty = any path.
    pub path_prefixes: Vec<String>,
}

/// The parts of an outgoing request that bindings look at.
pub struct Outgoing<'a> {
    pub scheme: &'a str,
    pub host: &'a str,
    pub port: u16,
    pub method: &'a str,
    /// The request target's path as sent (percent-encoded), without the query.
    pub raw_path: &'a str,
}

impl Destination {
    pub fn check(&self, req: &Outgoing<'_>) -> Result<(), Violation> {
        if !req.scheme.eq_ignore_ascii_case("https") {
            return Err(Violation::Scheme(req.scheme.to_string()));
        }
        if !self.hosts.iter().any(|h| h.matches(req.host)) {
            return Err(Violation::Host(normalize_host(req.host)));
        }
        if req.port != self.port {
            return Err(Violation::Port(req.port));
        }
        if !self.methods.is_empty()
            && !self
                .methods
                .iter()
                .any(|m| m.eq_ignore_ascii_case(req.method))
        {
            return Err(Violation::Method(req.method.to_ascii_uppercase()));
        }
        if self.path_prefixes.is_empty() {
            return normalize_path(req.raw_path)
                .map(|_| ())
                .ok_or(Violation::BadPath);
        }
        let path = normalize_path(req.raw_path).ok_or(Violation::BadPath)?;
        if self.path_prefixes.iter().any(|p| path_has_prefix(&path, p)) {
            Ok(())
        } else {
            Err(Violation::Path(path))
        }
    }
}

/// Prefix match on segment boundaries: `/v1` and `/v1/` both cover `/v1/chat`; `/v1`
/// does not cover `/v10`.
pub fn path_has_prefix(path: &str, prefix: &str) -> bool {
    if prefix.is_empty() || prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// Percent-decodes (repeatedly, so `%252e` cannot hide a dot) and removes dot segments
/// (RFC 3986 §5.2.4). `None` for invalid escapes, invalid UTF-8, NUL/control characters,
/// backslashes, or a path that climbs above the root.
pub fn normalize_path(raw: &str) -> Option<String> {
    let mut cur = raw.to_string();
    for _ in 0..4 {
        if !cur.contains('%') {
            break;
        }
        cur = percent_decode(&cur)?;
    }
    if cur.contains('%') || cur.chars().any(|c| c.is_control() || c == '\\') {
        return None;
    }
    if !cur.starts_with('/') {
        cur.insert(0, '/');
    }
    let mut out: Vec<&str> = Vec::new();
    let segs: Vec<&str> = cur.split('/').skip(1).collect();
    let last = segs.len().saturating_sub(1);
    for (i, s) in segs.iter().enumerate() {
        // Servers that honour path parameters (Tomcat, Spring, Jetty) read `..;x` as `..`,
        // most others as an ordinary segment: a path whose meaning depends on the server is
        // refused.
        let bare = s.split(';').next().unwrap_or(s);
        if bare != *s && (bare == "." || bare == "..") {
            return None;
        }
        match *s {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                out.pop()?;
                if i == last {
                    out.push("");
                }
            }
            "" if i != last && s.is_empty() => {}
            _ => out.push(s),
        }
    }
    Some(format!("/{}", out.join("/")))
}

fn percent_decode(s: &str) -> Option<String> {
    crate::percent::decode_utf8(s, crate::percent::Plus::Literal)
}

/// Prefix of every placeholder.
pub const PLACEHOLDER_PREFIX: &str = "airlock-ph-";
const PLACEHOLDER_RANDOM: usize = 24;

/// Mints `airlock-ph-<name>-<24 base62>` from at least 48 random bytes. `name` is reduced
/// to lower-case letters, digits and `_`.
pub fn mint_placeholder(name: &str, rand: &[u8]) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    format!(
        "{PLACEHOLDER_PREFIX}{clean}-{}",
        base62(rand, PLACEHOLDER_RANDOM)
    )
}

/// Every placeholder-shaped substring of `text`, in order (byte offset, placeholder).
pub fn find_placeholders(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(rel) = text.get(from..).and_then(|t| t.find(PLACEHOLDER_PREFIX)) {
        let start = from + rel;
        let body_start = start + PLACEHOLDER_PREFIX.len();
        let end = text
            .get(body_start..)
            .map(|t| {
                t.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                    .unwrap_or(t.len())
            })
            .map(|n| body_start + n)
            .unwrap_or(body_start);
        if let Some(candidate) = text.get(start..end) {
            // name, dash, exactly the random part at the end.
            let ok = candidate.rsplit_once('-').is_some_and(|(head, tail)| {
                tail.len() == PLACEHOLDER_RANDOM && head.len() > PLACEHOLDER_PREFIX.len()
            });
            if ok {
                out.push((start, candidate));
            }
        }
        from = end.max(start + 1);
    }
    out
}

/// Whether `k` can name an environment variable (`[A-Za-z_][A-Za-z0-9_]*`).
pub fn valid_env_name(k: &str) -> bool {
    let mut chars = k.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openai() -> Destination {
        Destination {
            hosts: vec![HostPattern::parse("api.openai.com").unwrap()],
            port: 443,
            methods: vec![],
            path_prefixes: vec!["/v1/".into()],
        }
    }

    fn out<'a>(scheme: &'a str, host: &'a str, port: u16, path: &'a str) -> Outgoing<'a> {
        Outgoing {
            scheme,
            host,
            port,
            method: "POST",
            raw_path: path,
        }
    }

    #[test]
    fn allowed_request() {
        assert_eq!(
            openai().check(&out(
                "https",
                "API.OpenAI.com.",
                443,
                "/v1/chat/completions"
            )),
            Ok(())
        );
    }

    #[test]
    fn exfiltration_attempts_are_violations() {
        let d = openai();
        type Case<'a> = (Outgoing<'a>, fn(&Violation) -> bool);
        let cases: &[Case<'_>] = &[
            (out("http", "api.openai.com", 443, "/v1/x"), |v| {
                matches!(v, Violation::Scheme(_))
            }),
            (out("https", "evil.com", 443, "/v1/x"), |v| {
                matches!(v, Violation::Host(_))
            }),
            (out("https", "api.openai.com.evil.com", 443, "/v1/x"), |v| {
                matches!(v, Violation::Host(_))
            }),
            (out("https", "api.openai.com", 8443, "/v1/x"), |v| {
                matches!(v, Violation::Port(_))
            }),
            (out("https", "api.openai.com", 443, "/v1/../admin"), |v| {
                matches!(v, Violation::Path(_))
            }),
            (
                out("https", "api.openai.com", 443, "/v1/%2e%2e/admin"),
                |v| matches!(v, Violation::Path(_)),
            ),
            (
                out("https", "api.openai.com", 443, "/v1/%252e%252e/admin"),
                |v| matches!(v, Violation::Path(_)),
            ),
            (
                out("https", "api.openai.com", 443, "/v1%2f..%2fadmin"),
                |v| matches!(v, Violation::Path(_)),
            ),
            (out("https", "api.openai.com", 443, "/v10/x"), |v| {
                matches!(v, Violation::Path(_))
            }),
            (out("https", "api.openai.com", 443, "/../../x"), |v| {
                *v == Violation::BadPath
            }),
            (out("https", "api.openai.com", 443, "/v1/%zz"), |v| {
                *v == Violation::BadPath
            }),
            // A sign is not a hex digit: `%+f` is not byte 0x0F to us, nor to upstreams.
            (out("https", "api.openai.com", 443, "/v1/a%+fb"), |v| {
                *v == Violation::BadPath
            }),
            (out("https", "api.openai.com", 443, "/v1/%-1"), |v| {
                *v == Violation::BadPath
            }),
            (out("https", "api.openai.com", 443, "/v1/a%00b"), |v| {
                *v == Violation::BadPath
            }),
            (out("https", "api.openai.com", 443, "/v1\\..\\admin"), |v| {
                *v == Violation::BadPath
            }),
        ];
        for (o, want) in cases {
            let r = d.check(o);
            assert!(
                matches!(&r, Err(v) if want(v)),
                "{} {} → {r:?}",
                o.host,
                o.raw_path
            );
        }
    }

    #[test]
    fn methods_and_wildcard_hosts() {
        let d = Destination {
            hosts: vec![HostPattern::parse("*.example.com").unwrap()],
            port: 443,
            methods: vec!["GET".into()],
            path_prefixes: vec![],
        };
        let mut o = out("https", "a.example.com", 443, "/anything");
        o.method = "get";
        assert_eq!(d.check(&o), Ok(()));
        o.method = "DELETE";
        assert!(matches!(d.check(&o), Err(Violation::Method(_))));
        o.method = "GET";
        o.host = "a.b.example.com";
        assert!(matches!(d.check(&o), Err(Violation::Host(_))));
        o.host = "example.com";
        assert!(matches!(d.check(&o), Err(Violation::Host(_))));
        assert!(HostPattern::parse("*.com").is_err());
        assert!(HostPattern::parse("a..b").is_err());
        assert!(HostPattern::parse("a/b.com").is_err());
    }

    #[test]
    fn dot_segments_removed() {
        assert_eq!(normalize_path("/a/./b/../c").as_deref(), Some("/a/c"));
        assert_eq!(normalize_path("/a//b/").as_deref(), Some("/a/b/"));
        assert_eq!(normalize_path("/a/b/..").as_deref(), Some("/a/"));
        assert_eq!(normalize_path("/..").as_deref(), None);
        // A dot segment with path parameters means different things to different servers
        // (`/admin/..;/v1/x` is `/v1/x` to Tomcat, `/admin/..;/v1/x` to nginx): refused.
        assert_eq!(normalize_path("/v1/..;/admin"), None);
        assert_eq!(normalize_path("/admin/..;/v1/x"), None);
        assert_eq!(normalize_path("/v1/%2e%2e;x=1/admin"), None);
        assert_eq!(normalize_path("/v1/.;/a"), None);
        assert_eq!(normalize_path("/v1;x/a").as_deref(), Some("/v1;x/a"));
        assert_eq!(normalize_path("/v1/a;b/c").as_deref(), Some("/v1/a;b/c"));

        assert!(path_has_prefix("/v1", "/v1"));
        assert!(path_has_prefix("/v1/x", "/v1"));
        assert!(!path_has_prefix("/v1x", "/v1"));
    }

    #[test]
    fn placeholders_round_trip() {
        let rand: Vec<u8> = (0..64u8).collect();
        let p = mint_placeholder("OPENAI_API_KEY", &rand);
        assert!(p.starts_with("airlock-ph-openai_api_key-"));
        let text = format!("Authorization: Bearer {p}\r\nx: airlock-ph-short");
        let found = find_placeholders(&text);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].1, p);
        let json = format!("{{\"key\":\"{p}\",\"other\":\"{p}\"}}");
        assert_eq!(find_placeholders(&json).len(), 2);
    }

    /// Property test against a reference model of RFC 3986 dot-segment removal (with this
    /// module's conventions: empty segments dropped but a trailing one kept, climbing above
    /// the root refused), over every path of up to six segments from a small alphabet, and
    /// the same paths percent-encoded.
    #[test]
    fn normalisation_matches_the_reference_model() {
        fn reference(segs: &[&str]) -> Option<String> {
            let mut stack: Vec<&str> = Vec::new();
            let mut trailing = false;
            for (i, s) in segs.iter().enumerate() {
                let last = i + 1 == segs.len();
                match *s {
                    "." => trailing = last,
                    ".." => {
                        stack.pop()?;
                        trailing = last;
                    }
                    "" => trailing = last,
                    other => {
                        stack.push(other);
                        trailing = false;
                    }
                }
            }
            let mut out = format!("/{}", stack.join("/"));
            if trailing && !stack.is_empty() {
                out.push('/');
            }
            Some(out)
        }
        let alphabet = ["a", "bc", ".", "..", ""];
        let mut paths: Vec<Vec<&str>> = vec![vec![]];
        let mut all = Vec::new();
        for _ in 0..6 {
            let mut next = Vec::new();
            for p in &paths {
                for a in alphabet {
                    let mut q = p.clone();
                    q.push(a);
                    next.push(q);
                }
            }
            all.extend(next.iter().cloned());
            paths = next;
        }
        assert!(all.len() > 19_000);
        for segs in all {
            let raw = format!("/{}", segs.join("/"));
            let want = reference(&segs);
            assert_eq!(normalize_path(&raw), want, "{raw}");
            // Encoded dots and slashes mean the same (they are decoded before the check).
            let enc = raw.replace('.', "%2e");
            assert_eq!(normalize_path(&enc), want, "{enc}");
            if let Some(n) = &want {
                assert_eq!(normalize_path(n).as_ref(), Some(n), "not idempotent: {n}");
            }
        }
    }
}
