//! HMAC request signing for webhook-style APIs: the agent puts its placeholder in the
//! signature header, and the broker replaces it with an HMAC of a canonical string computed
//! from the request, under the real key:
//!
//! ```toml
//! hmac = { header = "x-signature", algorithm = "sha256", message = "{timestamp}.{body}",
//!          encoding = "hex", prefix = "sha256=", timestamp_header = "x-timestamp" }
//! ```
//!
//! `message` may use `{timestamp}` (unix seconds, also sent in `timestamp_header` when set),
//! `{method}`, `{path}`, `{query}` and `{body}` (the exact body bytes). Algorithms: `sha256`,
//! `sha512`, `sha1`; encodings: `hex`, `base64`. Pure.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HmacSpec {
    pub header: String,
    pub algorithm: &'static str,
    pub message: String,
    pub base64: bool,
    pub prefix: String,
    pub timestamp_header: Option<String>,
}

pub fn parse(v: &Value) -> Result<HmacSpec, String> {
    let o: &Map<String, Value> = v.as_object().ok_or("`hmac` must be a table")?;
    let known = [
        "header",
        "algorithm",
        "message",
        "encoding",
        "prefix",
        "timestamp_header",
    ];
    for k in o.keys() {
        if !known.contains(&k.as_str()) {
            return Err(format!(
                "unknown hmac field `{k}` (known: {})",
                known.join(", ")
            ));
        }
    }
    let s = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
    let header = s("header")
        .map(|h| h.to_ascii_lowercase())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .ok_or("hmac.header (the signature header) is required")?;
    let algorithm = match s("algorithm").as_deref().unwrap_or("sha256") {
        "sha256" => "sha256",
        "sha512" => "sha512",
        "sha1" => "sha1",
        a => {
            return Err(format!(
                "hmac.algorithm {a:?} is not sha256, sha512 or sha1"
            ))
        }
    };
    let base64 = match s("encoding").as_deref().unwrap_or("hex") {
        "hex" => false,
        "base64" => true,
        e => return Err(format!("hmac.encoding {e:?} is not hex or base64")),
    };
    let message = s("message").unwrap_or_else(|| "{body}".into());
    let mut rest = message.as_str();
    while let Some(i) = rest.find('{') {
        let end = rest[i..].find('}').ok_or("hmac.message: unclosed `{`")? + i;
        let name = &rest[i + 1..end];
        if !["timestamp", "method", "path", "query", "body"].contains(&name) {
            return Err(format!(
                "hmac.message: unknown `{{{name}}}` (known: timestamp, method, path, query, body)"
            ));
        }
        rest = &rest[end + 1..];
    }
    let timestamp_header = s("timestamp_header").map(|h| h.to_ascii_lowercase());
    Ok(HmacSpec {
        header,
        algorithm,
        message,
        base64,
        prefix: s("prefix").unwrap_or_default(),
        timestamp_header,
    })
}

impl HmacSpec {
    /// The signature header's value for a request at unix second `now`.
    pub fn sign(
        &self,
        key: &[u8],
        method: &str,
        path: &str,
        query: Option<&str>,
        body: &[u8],
        now: u64,
    ) -> String {
        let ts = now.to_string();
        let mut msg: Vec<u8> = Vec::with_capacity(self.message.len() + body.len());
        let mut rest = self.message.as_str();
        while let Some(i) = rest.find('{') {
            msg.extend_from_slice(&rest.as_bytes()[..i]);
            let end = rest[i..].find('}').map_or(rest.len(), |e| e + i);
            match &rest[i + 1..end] {
                "timestamp" => msg.extend_from_slice(ts.as_bytes()),
                "method" => msg.extend_from_slice(method.as_bytes()),
                "path" => msg.extend_from_slice(path.as_bytes()),
                "query" => msg.extend_from_slice(query.unwrap_or("").as_bytes()),
                "body" => msg.extend_from_slice(body),
                _ => {}
            }
            rest = rest.get(end + 1..).unwrap_or("");
        }
        msg.extend_from_slice(rest.as_bytes());
        let mac: Vec<u8> = match self.algorithm {
            "sha512" => Hmac::<sha2::Sha512>::new_from_slice(key)
                .map(|mut m| {
                    m.update(&msg);
                    m.finalize().into_bytes().to_vec()
                })
                .unwrap_or_default(),
            "sha1" => Hmac::<sha1::Sha1>::new_from_slice(key)
                .map(|mut m| {
                    m.update(&msg);
                    m.finalize().into_bytes().to_vec()
                })
                .unwrap_or_default(),
            _ => Hmac::<sha2::Sha256>::new_from_slice(key)
                .map(|mut m| {
                    m.update(&msg);
                    m.finalize().into_bytes().to_vec()
                })
                .unwrap_or_default(),
        };
        let enc = if self.base64 {
            base64::engine::general_purpose::STANDARD.encode(&mac)
        } else {
            hex::encode(&mac)
        };
        format!("{}{enc}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_a_webhook_provider() {
        // Stripe-style: t.body, hex, with a prefix.
        let s = parse(&serde_json::json!({"header": "X-Signature", "message": "{timestamp}.{body}", "prefix": "sha256=", "timestamp_header": "X-Timestamp"})).unwrap();
        assert_eq!(s.header, "x-signature");
        let v = s.sign(b"whsec", "POST", "/hook", None, b"{\"a\":1}", 1700000000);
        let mut m = Hmac::<sha2::Sha256>::new_from_slice(b"whsec").unwrap();
        m.update(b"1700000000.{\"a\":1}");
        assert_eq!(
            v,
            format!("sha256={}", hex::encode(m.finalize().into_bytes()))
        );
        let b = parse(&serde_json::json!({"header": "sig", "algorithm": "sha1", "encoding": "base64", "message": "{method} {path}?{query}"})).unwrap();
        let v = b.sign(b"k", "GET", "/x", Some("a=1"), b"", 0);
        let mut m = Hmac::<sha1::Sha1>::new_from_slice(b"k").unwrap();
        m.update(b"GET /x?a=1");
        assert_eq!(
            v,
            base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes())
        );
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"header": "x", "algorithm": "md5"}),
            serde_json::json!({"header": "x", "message": "{nope}"}),
            serde_json::json!({"header": "x", "encoding": "rot13"}),
        ] {
            assert!(parse(&bad).is_err(), "{bad}");
        }
    }
}
