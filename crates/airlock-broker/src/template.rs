//! Injection templates: a binding's credential computed from several keys of its KV entry,
//! or from a value that changes over time, instead of one stored value.
//!
//! `template = "…"` with, besides literal text:
//! - `{key}`: the entry's `key`;
//! - `{basic:user:password}`: `base64("<user>:<password>")` from two keys (HTTP Basic);
//! - `{totp:key}`: the current RFC 6238 one-time code from a base32 seed, or from an
//!   `otpauth://totp/…?secret=…&digits=…&period=…&algorithm=…` URI stored in `key`.
//!
//! `{{` and `}}` are literal braces. Pure: the caller passes the values and the time.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use zeroize::Zeroizing;

/// One piece of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    Lit(String),
    Key(String),
    Basic(String, String),
    Totp(String),
}

/// A parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pub parts: Vec<Part>,
}

fn key_ok(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 128
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

impl Template {
    pub fn parse(s: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = s;
        while let Some(c) = rest.chars().next() {
            if rest.starts_with("{{") || rest.starts_with("}}") {
                lit.push(c);
                rest = &rest[2..];
                continue;
            }
            if c == '}' {
                return Err("template: unmatched `}` (write `}}` for a brace)".into());
            }
            if c != '{' {
                lit.push(c);
                rest = &rest[c.len_utf8()..];
                continue;
            }
            let end = rest
                .find('}')
                .ok_or("template: unclosed `{` (write `{{` for a brace)")?;
            let inner = &rest[1..end];
            rest = &rest[end + 1..];
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut lit)));
            }
            let fields: Vec<&str> = inner.split(':').collect();
            let part = match fields.as_slice() {
                [k] if key_ok(k) => Part::Key(k.to_string()),
                ["basic", u, p] if key_ok(u) && key_ok(p) => Part::Basic(u.to_string(), p.to_string()),
                ["totp", k] if key_ok(k) => Part::Totp(k.to_string()),
                _ => {
                    return Err(format!(
                        "template: `{{{inner}}}` is not {{key}}, {{basic:user_key:password_key}} or {{totp:key}}"
                    ))
                }
            };
            parts.push(part);
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        if !parts.iter().any(|p| !matches!(p, Part::Lit(_))) {
            return Err("template: names no key (e.g. \"{basic:user:password}\")".into());
        }
        if parts
            .iter()
            .any(|p| matches!(p, Part::Lit(l) if l.bytes().any(|b| b < 0x20 || b == 0x7f)))
        {
            return Err("template: control characters".into());
        }
        Ok(Template { parts })
    }

    /// The entry keys the template reads.
    pub fn keys(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for p in &self.parts {
            let ks: Vec<&String> = match p {
                Part::Lit(_) => vec![],
                Part::Key(k) | Part::Totp(k) => vec![k],
                Part::Basic(u, pw) => vec![u, pw],
            };
            for k in ks {
                if !out.contains(k) {
                    out.push(k.clone());
                }
            }
        }
        out
    }

    /// The credential at unix second `now`, from `value(key)`; `None` when a key is missing
    /// or a TOTP seed is unusable.
    pub fn render(
        &self,
        value: impl Fn(&str) -> Option<Zeroizing<String>>,
        now: u64,
    ) -> Option<Zeroizing<String>> {
        let mut out = Zeroizing::new(String::new());
        for p in &self.parts {
            match p {
                Part::Lit(l) => out.push_str(l),
                Part::Key(k) => out.push_str(&value(k)?),
                Part::Basic(u, pw) => {
                    let pair = Zeroizing::new(format!("{}:{}", *value(u)?, *value(pw)?));
                    out.push_str(
                        &base64::engine::general_purpose::STANDARD.encode(pair.as_bytes()),
                    );
                }
                Part::Totp(k) => out.push_str(&totp_from(&value(k)?, now)?),
            }
        }
        Some(out)
    }
}

/// RFC 4648 base32 (upper or lower case, padding and spaces ignored).
pub fn base32_decode(s: &str) -> Option<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(Vec::with_capacity(s.len() * 5 / 8));
    let (mut acc, mut bits) = (0u64, 0u32);
    for c in s.bytes().filter(|c| *c != b'=' && *c != b' ' && *c != b'-') {
        let v = match c.to_ascii_uppercase() {
            c @ b'A'..=b'Z' => c - b'A',
            c @ b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        acc = (acc << 5) | u64::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The TOTP code for a seed given as base32 or as an `otpauth://` URI.
fn totp_from(seed: &str, now: u64) -> Option<String> {
    let (mut secret, mut digits, mut period, mut algo) =
        (seed.to_string(), 6u32, 30u64, "SHA1".to_string());
    if let Some(q) = seed
        .strip_prefix("otpauth://")
        .and_then(|r| r.split_once('?'))
        .map(|(_, q)| q)
    {
        secret.clear();
        for pair in q.split('&') {
            let (k, v) = pair.split_once('=')?;
            let v = String::from_utf8_lossy(&airlock_core::percent::decode_lenient(
                v,
                airlock_core::percent::Plus::Literal,
            ))
            .into_owned();
            match k {
                "secret" => secret = v,
                "digits" => digits = v.parse().ok().filter(|d| (6..=8).contains(d))?,
                "period" => period = v.parse().ok().filter(|p| *p > 0)?,
                "algorithm" => algo = v.to_ascii_uppercase(),
                _ => {}
            }
        }
    }
    let key = base32_decode(&secret).filter(|k| !k.is_empty())?;
    totp(&key, now, digits, period, &algo)
}

/// RFC 6238 TOTP (HMAC-SHA1/SHA256/SHA512 per RFC 4226's dynamic truncation).
pub fn totp(key: &[u8], now: u64, digits: u32, period: u64, algo: &str) -> Option<String> {
    let counter = (now / period).to_be_bytes();
    let mac: Vec<u8> = match algo {
        "SHA1" => {
            let mut m = Hmac::<sha1::Sha1>::new_from_slice(key).ok()?;
            m.update(&counter);
            m.finalize().into_bytes().to_vec()
        }
        "SHA256" => {
            let mut m = Hmac::<sha2::Sha256>::new_from_slice(key).ok()?;
            m.update(&counter);
            m.finalize().into_bytes().to_vec()
        }
        "SHA512" => {
            let mut m = Hmac::<sha2::Sha512>::new_from_slice(key).ok()?;
            m.update(&counter);
            m.finalize().into_bytes().to_vec()
        }
        _ => return None,
    };
    let off = (*mac.last()? & 0x0f) as usize;
    let b = mac.get(off..off + 4)?;
    let code = u32::from_be_bytes([b[0] & 0x7f, b[1], b[2], b[3]]) % 10u32.pow(digits);
    Some(format!("{code:0width$}", width = digits as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totp_matches_rfc_6238() {
        // RFC 6238 appendix B: the SHA1 seed "12345678901234567890", 8 digits.
        let key = b"12345678901234567890";
        for (t, code) in [
            (59, "94287082"),
            (1111111109, "07081804"),
            (2000000000, "69279037"),
        ] {
            assert_eq!(totp(key, t, 8, 30, "SHA1").unwrap(), code);
        }
        let k256 = b"12345678901234567890123456789012";
        assert_eq!(totp(k256, 59, 8, 30, "SHA256").unwrap(), "46119246");
        assert_eq!(
            base32_decode("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
                .unwrap()
                .as_slice(),
            key
        );
        assert_eq!(
            totp_from("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 59).unwrap(),
            "287082"
        );
        assert_eq!(
            totp_from(
                "otpauth://totp/x?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&digits=8",
                59
            )
            .unwrap(),
            "94287082"
        );
        assert!(totp_from("not base32!", 59).is_none());
    }

    #[test]
    fn templates_parse_and_render() {
        let t = Template::parse("Basic {basic:user:password}").unwrap();
        assert_eq!(t.keys(), ["user", "password"]);
        let v = |k: &str| match k {
            "user" => Some(Zeroizing::new("alice".to_string())),
            "password" => Some(Zeroizing::new("s3cret".to_string())),
            "seed" => Some(Zeroizing::new(
                "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ".to_string(),
            )),
            _ => None,
        };
        assert_eq!(t.render(v, 0).unwrap().as_str(), "Basic YWxpY2U6czNjcmV0");
        let t = Template::parse("{password}-{totp:seed} {{x}}").unwrap();
        assert_eq!(t.render(v, 59).unwrap().as_str(), "s3cret-287082 {x}");
        assert!(Template::parse("{missing}").unwrap().render(v, 0).is_none());
        for bad in [
            "no key",
            "{",
            "}",
            "{a:b}",
            "{basic:u}",
            "{totp:}",
            "{a b}",
            "x\n{k}",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }
}
