//! Pure request/response rewriting: where placeholders are, whether a request may carry
//! them, swapping them for credentials, and scrubbing echoed credentials out of responses.
//!
//! Nothing here does I/O. [`analyse`] decides (forward with these bindings, or block and
//! why); [`inject_header`]/[`inject_query`] rewrite; [`Scrubber`] replaces needles in a byte
//! stream across chunk boundaries while holding back only a possible partial match, so an
//! SSE event is never delayed by it.

use airlock_core::binding::{find_placeholders, normalize_path, Outgoing, PLACEHOLDER_PREFIX};
use airlock_core::percent::{self, Plus};
use base64::Engine;

use crate::config::Binding;

/// Where a placeholder was found in a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    Header(String),
    Query(String),
    Path,
    Body,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Header(h) => write!(f, "header {h}"),
            Place::Query(q) => write!(f, "query parameter {q}"),
            Place::Path => write!(f, "URL path"),
            Place::Body => write!(f, "body"),
        }
    }
}

/// The verdict on one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Forward; inject the credentials of these bindings (indices; may be empty).
    Forward(Vec<usize>),
    /// Do not forward. `binding` is the binding whose placeholder was misused, if known.
    Block {
        binding: Option<String>,
        reason: String,
    },
}

/// A placeholder → binding index lookup.
pub trait Placeholders {
    fn binding_of(&self, placeholder: &str) -> Option<usize>;
}

impl Placeholders for [(String, usize)] {
    fn binding_of(&self, p: &str) -> Option<usize> {
        self.iter().find(|(x, _)| x == p).map(|(_, i)| *i)
    }
}

/// Percent-decodes for placeholder search: `+` is a space, and a malformed escape stays
/// as it is (what a lenient upstream would see); never `%+f` as a byte.
fn decode_lossy(s: &str) -> String {
    String::from_utf8_lossy(&percent::decode_lenient(s, Plus::Space)).into_owned()
}

/// Texts to search inside one header value: the value, and for `Basic` credentials the
/// decoded `user:password`.
fn header_texts(value: &[u8]) -> Vec<String> {
    let v = String::from_utf8_lossy(value).into_owned();
    let mut out = vec![v.clone()];
    if let Some(b64) = v
        .get(..6)
        .filter(|p| p.eq_ignore_ascii_case("basic "))
        .and_then(|_| v.get(6..))
    {
        if let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) {
            out.push(String::from_utf8_lossy(&raw).into_owned());
        }
    }
    out
}

fn has(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && hay.len() >= needle.len()
        && hay.windows(needle.len()).any(|w| w == needle)
}

/// `hay` with every `needle` replaced by `with`, byte for byte (bodies need not be UTF-8:
/// binary and multipart uploads pass through unchanged around the replacements).
pub fn replace_bytes(hay: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    if needle.is_empty() {
        return hay.to_vec();
    }
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

/// Could this text hide a placeholder (directly, percent-encoded, or in Basic credentials)?
/// A cheap test so ordinary requests allocate nothing.
fn may_hide(v: &[u8]) -> bool {
    has(v, PLACEHOLDER_PREFIX.as_bytes())
        || v.contains(&b'%')
        || v.get(..6)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"basic "))
}

/// Every placeholder-shaped string in the request's path, query and headers, with where.
pub fn locate<'h>(
    raw_path: &str,
    query: Option<&str>,
    headers: impl Iterator<Item = (&'h str, &'h [u8])>,
) -> Vec<(String, Place)> {
    let mut found = Vec::new();
    if may_hide(raw_path.as_bytes()) {
        for text in [raw_path.to_string(), decode_lossy(raw_path)] {
            for (_, p) in find_placeholders(&text) {
                found.push((p.to_string(), Place::Path));
            }
        }
    }
    if let Some(q) = query.filter(|q| may_hide(q.as_bytes()) || q.contains('+')) {
        for pair in q.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode_lossy(k);
            for text in [decode_lossy(k), decode_lossy(v)] {
                for (_, p) in find_placeholders(&text) {
                    found.push((p.to_string(), Place::Query(name.clone())));
                }
            }
        }
    }
    for (name, value) in headers {
        if !may_hide(value) {
            continue;
        }
        for text in header_texts(value) {
            let direct = find_placeholders(&text);
            for (_, p) in &direct {
                found.push((p.to_string(), Place::Header(name.to_ascii_lowercase())));
            }
            // Placeholders disguised (percent-encoded) in a header value.
            if direct.is_empty() && text.contains('%') {
                for (_, p) in find_placeholders(&decode_lossy(&text)) {
                    found.push((p.to_string(), Place::Header(name.to_ascii_lowercase())));
                }
            }
        }
    }
    found.dedup();
    found
}

/// Decides whether a request may go out, and with which credentials.
///
/// `found` comes from [`locate`] (plus [`Place::Body`] entries when the body was inspected).
/// Every placeholder must belong to one of `bindings` (via `ph`), its binding must allow the
/// destination, and it must sit where the binding injects it.
pub fn analyse(
    bindings: &[Binding],
    ph: &[(String, usize)],
    req: &Outgoing<'_>,
    found: &[(String, Place)],
) -> Verdict {
    let mut inject: Vec<usize> = Vec::new();
    for (p, place) in found {
        let Some(i) = ph.binding_of(p) else {
            return Verdict::Block {
                binding: None,
                reason: format!("unknown placeholder in {place}"),
            };
        };
        let Some(b) = bindings.get(i) else {
            return Verdict::Block {
                binding: None,
                reason: "unknown placeholder".into(),
            };
        };
        if let Err(v) = b.dest.check(req) {
            return Verdict::Block {
                binding: Some(b.name.clone()),
                reason: format!("placeholder of binding {:?} in {place}: {v}", b.name),
            };
        }
        let allowed_place = match place {
            Place::Header(h) => b.header.as_deref() == Some(h.as_str()),
            Place::Query(q) => b.query.as_deref() == Some(q.as_str()),
            Place::Body => b.body,
            Place::Path => b.path,
        };
        if !allowed_place {
            return Verdict::Block {
                binding: Some(b.name.clone()),
                reason: format!(
                    "placeholder of binding {:?} in {place}, which the binding does not name",
                    b.name
                ),
            };
        }
        if !inject.contains(&i) {
            inject.push(i);
        }
    }
    Verdict::Forward(inject)
}

/// The new value of a header that carried `placeholder`: the binding's format with the
/// credential, or — for `Basic` credentials — the same user with the credential as password.
pub fn inject_header(value: &[u8], placeholder: &str, format: &str, secret: &str) -> Vec<u8> {
    let v = String::from_utf8_lossy(value);
    if let Some(b64) = v
        .get(..6)
        .filter(|p| p.eq_ignore_ascii_case("basic "))
        .and_then(|_| v.get(6..))
    {
        if let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) {
            let dec = String::from_utf8_lossy(&raw);
            if dec.contains(placeholder) {
                let swapped = dec.replace(placeholder, secret);
                return format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(swapped.as_bytes())
                )
                .into_bytes();
            }
        }
    }
    if format == "{}" {
        // Keep whatever the client put around the placeholder (`Bearer `, `token `...).
        return v.replace(placeholder, secret).into_bytes();
    }
    format.replace("{}", secret).into_bytes()
}

/// Extra scrub needles for a `Basic` header the broker rebuilt: the new base64 credentials
/// (which decode to the secret) map back to the client's own, with and without padding.
/// Empty when `old` was not a `Basic` header or nothing changed.
pub fn basic_needles(old: &[u8], new: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let b64 = |v: &[u8]| -> Option<Vec<u8>> {
        let p = v.get(..6)?;
        p.eq_ignore_ascii_case(b"basic ")
            .then(|| v[6..].trim_ascii().to_vec())
    };
    let (Some(o), Some(n)) = (b64(old), b64(new)) else {
        return Vec::new();
    };
    if o == n || n.is_empty() {
        return Vec::new();
    }
    let unpad = |v: &[u8]| -> Vec<u8> {
        let mut v = v.to_vec();
        while v.last() == Some(&b'=') {
            v.pop();
        }
        v
    };
    let mut out = vec![(n.clone(), o.clone())];
    let (nu, ou) = (unpad(&n), unpad(&o));
    if nu != n {
        out.push((nu, ou));
    }
    out
}

const QUERY_SAFE: &[u8] = b"-._~";

pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || QUERY_SAFE.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Replaces the placeholder in the value of query parameter `param` (only there).
pub fn inject_query(query: &str, param: &str, placeholder: &str, secret: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if decode_lossy(k) == param && decode_lossy(v).contains(placeholder) => {
                format!(
                    "{k}={}",
                    percent_encode(&decode_lossy(v).replace(placeholder, secret))
                )
            }
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// How a credential is escaped inside a body of this content type.
pub fn body_escape(content_type: Option<&str>, secret: &str) -> String {
    let ct = content_type.unwrap_or("").to_ascii_lowercase();
    if ct.contains("json") {
        let s = serde_json::Value::String(secret.to_string()).to_string();
        s.get(1..s.len().saturating_sub(1))
            .unwrap_or(secret)
            .to_string()
    } else if ct.contains("x-www-form-urlencoded") {
        percent_encode(secret)
    } else {
        secret.to_string()
    }
}

/// Normalised path for audit entries (never the query: it may hold a credential).
pub fn audit_path(raw_path: &str) -> String {
    normalize_path(raw_path).unwrap_or_else(|| "<unnormalisable>".into())
}

/// The forms in which an upstream might echo `secret`, each with its replacement: as is,
/// JSON-escaped and percent-encoded (the latter two only when they differ).
pub fn scrub_needles(secret: &str, placeholder: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = vec![(secret.into(), placeholder.into())];
    let plain = secret
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || QUERY_SAFE.contains(&b));
    if !plain {
        let json = body_escape(Some("json"), secret);
        let url = percent_encode(secret);
        for alt in [json, url] {
            if alt != secret && !out.iter().any(|(n, _)| n == alt.as_bytes()) {
                out.push((alt.into_bytes(), placeholder.into()));
            }
        }
    }
    out.retain(|(n, _)| !n.is_empty());
    out
}

/// A credential as a URL path segment: everything but the characters a segment may hold
/// as they are (RFC 3986 `pchar`) percent-encoded.
pub fn path_encode(secret: &str) -> String {
    let mut out = String::with_capacity(secret.len());
    for b in secret.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Replaces every needle in one complete value (a header); `None` when there is none.
pub fn scrub_value(needles: &[(Vec<u8>, Vec<u8>)], v: &[u8]) -> Option<(Vec<u8>, u64)> {
    if !needles.iter().any(|(n, _)| has(v, n)) {
        return None;
    }
    let mut s = Scrubber::new(needles.to_vec());
    let mut out = s.feed(v);
    out.extend(s.finish());
    Some((out, s.hits))
}

/// Streaming multi-needle replacement. Holds back only the longest tail of the data seen so
/// far that could still grow into a needle, so output is delayed by at most a partial match.
pub struct Scrubber {
    needles: Vec<(Vec<u8>, Vec<u8>)>,
    carry: Vec<u8>,
    /// Number of replacements made.
    pub hits: u64,
}

impl Scrubber {
    pub fn new(needles: Vec<(Vec<u8>, Vec<u8>)>) -> Self {
        Scrubber {
            needles,
            carry: Vec::new(),
            hits: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// Scrubs one complete value (a header or trailer) with this scrubber's needles, counting
    /// the hits; `None` when there is nothing to replace.
    pub fn scrub_whole(&mut self, v: &[u8]) -> Option<Vec<u8>> {
        let (out, n) = scrub_value(&self.needles, v)?;
        self.hits += n;
        Some(out)
    }

    /// Like [`Scrubber::feed`], but hands an untouched chunk back without copying it.
    pub fn feed_bytes(&mut self, chunk: bytes::Bytes) -> bytes::Bytes {
        if self.carry.is_empty() {
            let first_bytes_absent = !self
                .needles
                .iter()
                .any(|(n, _)| n.first().is_some_and(|f| chunk.contains(f)));
            if first_bytes_absent {
                return chunk;
            }
        }
        bytes::Bytes::from(self.feed(&chunk))
    }

    /// Feeds a chunk; returns what may be released now.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(chunk);
        let mut out = Vec::with_capacity(buf.len());
        let mut i = 0;
        'outer: while i < buf.len() {
            for (n, r) in &self.needles {
                if buf.get(i..i + n.len()) == Some(n.as_slice()) {
                    out.extend_from_slice(r);
                    i += n.len();
                    self.hits += 1;
                    continue 'outer;
                }
            }
            // Could a needle start here but run past the end of what we have?
            let tail = buf.get(i..).unwrap_or_default();
            if self
                .needles
                .iter()
                .any(|(n, _)| n.len() > tail.len() && n.starts_with(tail))
            {
                self.carry = tail.to_vec();
                return out;
            }
            if let Some(&b) = buf.get(i) {
                out.push(b);
            }
            i += 1;
        }
        out
    }

    /// End of stream: releases the held-back tail (it did not become a needle).
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.carry)
    }
}

/// Streaming detector of the placeholder prefix, across chunk boundaries.
#[derive(Default)]
pub struct PrefixDetector {
    tail: Vec<u8>,
}

impl PrefixDetector {
    /// True once the prefix has been seen.
    pub fn feed(&mut self, chunk: &[u8]) -> bool {
        let needle = PLACEHOLDER_PREFIX.as_bytes();
        let mut buf = std::mem::take(&mut self.tail);
        buf.extend_from_slice(chunk);
        let hit = buf.windows(needle.len()).any(|w| w == needle);
        let keep = needle.len().saturating_sub(1).min(buf.len());
        self.tail = buf.get(buf.len() - keep..).unwrap_or_default().to_vec();
        hit
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::parse_binding;
    use serde_json::json;

    fn bindings() -> Vec<Binding> {
        vec![
            parse_binding(
                &json!({"name":"openai","secret":"s/a#K","hosts":["api.openai.com"],
                "header":"authorization","format":"Bearer {}","paths":["/v1/"]}),
            )
            .unwrap(),
            parse_binding(
                &json!({"name":"gem","secret":"s/a#G","hosts":["gen.example.com"],
                "query":"key"}),
            )
            .unwrap(),
        ]
    }

    const P0: &str = "airlock-ph-openai-AAAAAAAAAAAAAAAAAAAAAAAA";
    const P1: &str = "airlock-ph-gem-BBBBBBBBBBBBBBBBBBBBBBBB";

    fn ph() -> Vec<(String, usize)> {
        vec![(P0.into(), 0), (P1.into(), 1)]
    }

    fn req<'a>(scheme: &'a str, host: &'a str, port: u16, path: &'a str) -> Outgoing<'a> {
        Outgoing {
            scheme,
            host,
            port,
            method: "POST",
            raw_path: path,
        }
    }

    fn verdict(r: &Outgoing<'_>, query: Option<&str>, headers: &[(&str, String)]) -> Verdict {
        let found = locate(
            r.raw_path,
            query,
            headers.iter().map(|(k, v)| (*k, v.as_bytes())),
        );
        analyse(&bindings(), &ph(), r, &found)
    }

    #[test]
    fn injects_only_where_bound() {
        let auth = [("authorization", format!("Bearer {P0}"))];
        let r = req("https", "api.openai.com", 443, "/v1/chat");
        assert_eq!(verdict(&r, None, &auth), Verdict::Forward(vec![0]));
        assert_eq!(verdict(&r, None, &[]), Verdict::Forward(vec![]));
        let g = req("https", "gen.example.com", 443, "/x");
        assert_eq!(
            verdict(&g, Some(&format!("key={P1}&a=b")), &[]),
            Verdict::Forward(vec![1])
        );
    }

    #[test]
    fn blocks_every_misuse() {
        let auth = [("authorization", format!("Bearer {P0}"))];
        let blocked = |r: &Outgoing<'_>, q: Option<&str>, h: &[(&str, String)]| {
            matches!(verdict(r, q, h), Verdict::Block { .. })
        };
        assert!(blocked(
            &req("http", "api.openai.com", 80, "/v1/x"),
            None,
            &auth
        ));
        assert!(blocked(
            &req("https", "api.openai.com", 8443, "/v1/x"),
            None,
            &auth
        ));
        assert!(blocked(
            &req("https", "evil.com", 443, "/v1/x"),
            None,
            &auth
        ));
        assert!(blocked(
            &req("https", "api.openai.com", 443, "/v1/../admin"),
            None,
            &auth
        ));
        assert!(blocked(
            &req("https", "api.openai.com", 443, "/v1/%2e%2e/admin"),
            None,
            &auth
        ));
        let r = req("https", "api.openai.com", 443, "/v1/x");
        assert!(blocked(&r, None, &[("x-other", P0.to_string())]));
        assert!(blocked(&r, Some(&format!("k={P0}")), &[]));
        assert!(blocked(
            &r,
            Some(&format!("k=%61irlock-ph-openai-{}", "A".repeat(24))),
            &[]
        ));
        assert!(blocked(
            &req("https", "api.openai.com", 443, &format!("/v1/{P0}")),
            None,
            &[]
        ));
        // Another binding's placeholder in this binding's header.
        assert!(blocked(&r, None, &[("authorization", P1.to_string())]));
        // Unknown placeholder.
        assert!(blocked(
            &r,
            None,
            &[("authorization", format!("airlock-ph-x-{}", "C".repeat(24)))]
        ));
        // Hidden in Basic credentials to a host it is not bound to.
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("u:{P0}"));
        assert!(blocked(
            &req("https", "evil.com", 443, "/"),
            None,
            &[("authorization", format!("Basic {basic}"))]
        ));
    }

    #[test]
    fn header_and_query_injection() {
        assert_eq!(
            inject_header(format!("Bearer {P0}").as_bytes(), P0, "Bearer {}", "sk-1"),
            b"Bearer sk-1"
        );
        assert_eq!(
            inject_header(P0.as_bytes(), P0, "Bearer {}", "sk-1"),
            b"Bearer sk-1"
        );
        assert_eq!(
            inject_header(format!("token {P0}").as_bytes(), P0, "{}", "sk"),
            b"token sk"
        );
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("AC1:{P0}"));
        let out = inject_header(format!("Basic {basic}").as_bytes(), P0, "Basic {}", "pw");
        let want = base64::engine::general_purpose::STANDARD.encode("AC1:pw");
        assert_eq!(out, format!("Basic {want}").into_bytes());
        assert_eq!(
            inject_query(&format!("a=1&key={P1}&b=2"), "key", P1, "s k&"),
            "a=1&key=s%20k%26&b=2"
        );
        assert_eq!(body_escape(Some("application/json"), "a\"b"), "a\\\"b");
        assert_eq!(
            body_escape(Some("application/x-www-form-urlencoded"), "a b"),
            "a%20b"
        );
    }

    #[test]
    fn scrubber_across_chunks_without_delaying_other_bytes() {
        let mut s = Scrubber::new(scrub_needles("sk-SECRET", "PH"));
        let mut out = Vec::new();
        out.extend(s.feed(b"data: {\"k\":\"sk-SE"));
        out.extend(s.feed(b"CRET\"}\n\n"));
        // An SSE event ending in "\n\n" is released at once.
        let ev = s.feed(b"data: next\n\n");
        assert_eq!(ev, b"data: next\n\n");
        out.extend(ev);
        out.extend(s.finish());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "data: {\"k\":\"PH\"}\n\ndata: next\n\n"
        );
        assert_eq!(s.hits, 1);
        // Byte-by-byte.
        let mut s = Scrubber::new(scrub_needles("abc", "X"));
        let mut out = Vec::new();
        for b in b"aabcab" {
            out.extend(s.feed(&[*b]));
        }
        out.extend(s.finish());
        assert_eq!(out, b"aXab");
    }

    #[test]
    fn prefix_detector_spans_chunks() {
        let mut d = PrefixDetector::default();
        assert!(!d.feed(b"hello airlock-"));
        assert!(d.feed(b"ph-x"));
        let mut d = PrefixDetector::default();
        assert!(!d.feed(b"nothing here"));
    }

    #[test]
    fn rebuilt_basic_credentials_are_scrubbed_back() {
        use base64::Engine;
        let e = base64::engine::general_purpose::STANDARD;
        let ph = "airlock-ph-twilio-0123456789abcdefghijklmnopqrstuv";
        let old = format!("Basic {}", e.encode(format!("AC123:{ph}")));
        let new = inject_header(old.as_bytes(), ph, "Basic {}", "s3cret-auth-token");
        let new_b64 = String::from_utf8(new.clone()).unwrap()[6..].to_string();
        assert_eq!(e.decode(&new_b64).unwrap(), b"AC123:s3cret-auth-token");
        let needles = basic_needles(old.as_bytes(), &new);
        // An upstream echoing the header, or only its base64, gets the client's own back.
        let echoed = format!(
            "{{\"authorization\":\"Basic {new_b64}\",\"raw\":\"{}\"}}",
            new_b64.trim_end_matches('=')
        );
        let (clean, hits) = scrub_value(&needles, echoed.as_bytes()).unwrap();
        assert_eq!(hits, 2);
        let clean = String::from_utf8(clean).unwrap();
        assert!(!clean.contains(new_b64.trim_end_matches('=')), "{clean}");
        assert!(clean.contains(&old), "{clean}");
        assert!(basic_needles(b"Bearer x", b"Bearer y").is_empty());
    }

    #[test]
    fn body_replacement_keeps_non_utf8_bytes() {
        let body = [b"\xff\xfe--ph--\x00\x80".as_slice()].concat();
        let out = replace_bytes(&body, b"ph", b"secret");
        assert_eq!(out, b"\xff\xfe--secret--\x00\x80".to_vec());
        assert_eq!(replace_bytes(b"abc", b"", b"x"), b"abc".to_vec());
    }
}
