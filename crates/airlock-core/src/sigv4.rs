//! AWS Signature Version 4, the request signing every AWS API checks (the AWS engine signs
//! its calls with it; the credential broker verifies and re-signs agents' requests). Pure: no clock, no I/O — the caller passes the time.
//!
//! The steps, as AWS documents them:
//! 1. the *canonical request*: method, canonical URI, canonical query string, canonical
//!    headers (lower-case names, trimmed values with inner runs of spaces folded, sorted),
//!    the signed header names, and the hex SHA-256 of the payload;
//! 2. the *string to sign*: `AWS4-HMAC-SHA256`, the request time, the credential scope
//!    (`<date>/<region>/<service>/aws4_request`) and the hex SHA-256 of step 1;
//! 3. the *signing key*: HMAC-SHA256 chained over `"AWS4" + secret`, date, region, service
//!    and `aws4_request`;
//! 4. the signature: hex HMAC-SHA256 of step 2 under step 3, sent in `Authorization`.
//!
//! Unit tests replay vectors of AWS's SigV4 test suite (`get-vanilla`,
//! `get-vanilla-query-order-key-case`, `post-vanilla`, `post-header-value-case`,
//! `post-x-www-form-urlencoded`) and the signing-key example of AWS's documentation.
//!
//! Paths are signed as given, each byte outside the unreserved set percent-encoded once
//! (`/` kept): right for every AWS service but S3's double-encoding rules, which this module
//! does not implement.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// The algorithm name in the string to sign and the `Authorization` header.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Who signs, for which region and service.
pub struct Credentials<'a> {
    pub access_key: &'a str,
    pub secret_key: &'a str,
    /// A session token of temporary credentials: sent (and signed) as
    /// `X-Amz-Security-Token`.
    pub session_token: Option<&'a str>,
}

/// A request to sign. `headers` must include `host` (and whatever else is to be signed);
/// the signer adds `x-amz-date` and, with a session token, `x-amz-security-token`.
pub struct Request<'a> {
    pub method: &'a str,
    /// The path, not yet percent-encoded (`/` for the query APIs).
    pub path: &'a str,
    /// Query parameters, not yet percent-encoded, in any order.
    pub query: &'a [(&'a str, &'a str)],
    pub headers: &'a [(&'a str, &'a str)],
    pub payload: &'a [u8],
}

/// The headers to add to the request: `x-amz-date`, `x-amz-security-token` (temporary
/// credentials) and `authorization`.
pub struct Signed {
    pub headers: Vec<(&'static str, String)>,
    /// The canonical request and string to sign (for tests and debugging; no secret in them).
    pub canonical_request: String,
    pub string_to_sign: String,
}

/// `YYYYMMDDTHHMMSSZ` for unix seconds (`None` outside the representable range).
pub fn amz_date(unix: i64) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp(unix).ok()?;
    t.format(time::macros::format_description!(
        "[year][month][day]T[hour][minute][second]Z"
    ))
    .ok()
}

/// Percent-encodes everything but `A-Z a-z 0-9 - _ . ~` (and `/` when `keep_slash`).
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The canonical query string: each name and value encoded, sorted by name then value.
pub fn canonical_query(query: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Trims a header value and folds inner runs of spaces to one.
fn fold_spaces(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Canonical headers (`name:value\n` each, sorted, duplicates joined with `,`) and the
/// signed header list (`host;x-amz-date`).
pub fn canonical_headers(headers: &[(&str, &str)]) -> (String, String) {
    let mut list: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for (k, v) in headers {
        let name = k.to_ascii_lowercase();
        let value = fold_spaces(v);
        match list.iter_mut().find(|(n, _)| *n == name) {
            Some((_, existing)) => {
                existing.push(',');
                existing.push_str(&value);
            }
            None => list.push((name, value)),
        }
    }
    list.sort_by(|a, b| a.0.cmp(&b.0));
    let canonical = list.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed = list
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    (canonical, signed)
}

/// Step 1: the canonical request and the signed header list.
pub fn canonical_request(
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    headers: &[(&str, &str)],
    payload_sha256_hex: &str,
) -> (String, String) {
    let (canonical, signed) = canonical_headers(headers);
    let path = if path.is_empty() { "/" } else { path };
    (
        format!(
            "{method}\n{}\n{}\n{canonical}\n{signed}\n{payload_sha256_hex}",
            uri_encode(path, true),
            canonical_query(query)
        ),
        signed,
    )
}

/// `<date>/<region>/<service>/aws4_request`.
pub fn scope(date: &str, region: &str, service: &str) -> String {
    format!("{date}/{region}/{service}/aws4_request")
}

/// Step 2: the string to sign.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    )
}

/// HMAC-SHA256.
pub fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length; the error branch cannot happen.
    let Ok(mut m) = HmacSha256::new_from_slice(key) else {
        return [0u8; 32];
    };
    m.update(data);
    m.finalize().into_bytes().into()
}

/// Step 3: the signing key for a day (`YYYYMMDD`), region and service.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Zeroizing<[u8; 32]> {
    let k_secret = Zeroizing::new(format!("AWS4{secret}"));
    let k_date = Zeroizing::new(hmac(k_secret.as_bytes(), date.as_bytes()));
    let k_region = Zeroizing::new(hmac(&*k_date, region.as_bytes()));
    let k_service = Zeroizing::new(hmac(&*k_region, service.as_bytes()));
    Zeroizing::new(hmac(&*k_service, b"aws4_request"))
}

/// Step 4: the hex signature of a string to sign under a signing key.
pub fn signature(key: &[u8; 32], string_to_sign: &str) -> String {
    hex::encode(hmac(key, string_to_sign.as_bytes()))
}

/// Step 1 from parts already canonical: the URI (encoded as the service expects), the query
/// (see [`canonical_query`]), the headers and signed list (see [`canonical_headers`]).
pub fn canonical_request_parts(
    method: &str,
    canonical_uri: &str,
    canonical_query: &str,
    canonical_headers: &str,
    signed_headers: &str,
    payload_hash: &str,
) -> String {
    format!("{method}\n{canonical_uri}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{payload_hash}")
}

/// Signs `req` at `amz_date` (`YYYYMMDDTHHMMSSZ`) for `region` and `service`.
pub fn sign(
    creds: &Credentials<'_>,
    region: &str,
    service: &str,
    amz_date: &str,
    req: &Request<'_>,
) -> Signed {
    let date = amz_date.get(..8).unwrap_or(amz_date);
    let mut headers: Vec<(&str, &str)> = req.headers.to_vec();
    headers.push(("x-amz-date", amz_date));
    if let Some(t) = creds.session_token {
        headers.push(("x-amz-security-token", t));
    }
    let payload_hash = hex::encode(Sha256::digest(req.payload));
    let (creq, signed_headers) =
        canonical_request(req.method, req.path, req.query, &headers, &payload_hash);
    let scope = scope(date, region, service);
    let sts = string_to_sign(amz_date, &scope, &creq);
    let key = signing_key(creds.secret_key, date, region, service);
    let signature = hex::encode(hmac(&*key, sts.as_bytes()));
    let mut out = vec![("x-amz-date", amz_date.to_string())];
    if let Some(t) = creds.session_token {
        out.push(("x-amz-security-token", t.to_string()));
    }
    out.push((
        "authorization",
        format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            creds.access_key
        ),
    ));
    Signed {
        headers: out,
        canonical_request: creq,
        string_to_sign: sts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREDS: Credentials<'static> = Credentials {
        access_key: "AKIDEXAMPLE",
        secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        session_token: None,
    };
    const DATE: &str = "20150830T123600Z";
    const HOST: (&str, &str) = ("Host", "example.amazonaws.com");
    const EMPTY_SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn authz(
        method: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        payload: &[u8],
    ) -> Signed {
        sign(
            &CREDS,
            "us-east-1",
            "service",
            DATE,
            &Request {
                method,
                path: "/",
                query,
                headers,
                payload,
            },
        )
    }

    fn header<'a>(s: &'a Signed, name: &str) -> &'a str {
        s.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    const PREFIX: &str =
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, ";

    #[test]
    fn get_vanilla() {
        let s = authz("GET", &[], &[HOST], b"");
        assert_eq!(
            s.canonical_request,
            format!("GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:{DATE}\n\nhost;x-amz-date\n{EMPTY_SHA}")
        );
        assert_eq!(
            s.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
        );
        assert_eq!(
            header(&s, "authorization"),
            format!("{PREFIX}SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
        );
        assert_eq!(header(&s, "x-amz-date"), DATE);
    }

    #[test]
    fn get_vanilla_query_order_key_case() {
        let s = authz(
            "GET",
            &[("Param2", "value2"), ("Param1", "value1")],
            &[HOST],
            b"",
        );
        assert!(s
            .canonical_request
            .starts_with("GET\n/\nParam1=value1&Param2=value2\n"));
        assert!(s
            .string_to_sign
            .ends_with("816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0"));
        assert_eq!(
            header(&s, "authorization"),
            format!("{PREFIX}SignedHeaders=host;x-amz-date, Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500")
        );
    }

    #[test]
    fn post_vanilla_and_header_value_case() {
        let s = authz("POST", &[], &[HOST], b"");
        assert_eq!(
            header(&s, "authorization"),
            format!("{PREFIX}SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b")
        );
        let s = authz("POST", &[], &[HOST, ("My-Header1", "VALUE1")], b"");
        assert_eq!(
            header(&s, "authorization"),
            format!("{PREFIX}SignedHeaders=host;my-header1;x-amz-date, Signature=cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d")
        );
    }

    #[test]
    fn post_x_www_form_urlencoded() {
        let s = authz(
            "POST",
            &[],
            &[("Content-Type", "application/x-www-form-urlencoded"), HOST],
            b"Param1=value1",
        );
        assert_eq!(
            header(&s, "authorization"),
            format!("{PREFIX}SignedHeaders=content-type;host;x-amz-date, Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a")
        );
    }

    /// The example of AWS's "derive a signing key" documentation (IAM, 2015-08-30).
    #[test]
    fn signing_key_example() {
        let k = signing_key(CREDS.secret_key, "20150830", "us-east-1", "iam");
        assert_eq!(
            hex::encode(*k),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
    }

    #[test]
    fn header_folding_encoding_and_session_token() {
        let (c, signed) = canonical_headers(&[("My-Header", "  a   b  "), ("my-header", "c")]);
        assert_eq!(
            (c.as_str(), signed.as_str()),
            ("my-header:a b,c\n", "my-header")
        );
        assert_eq!(uri_encode("a b/ሴ~", true), "a%20b/%E1%88%B4~");
        assert_eq!(
            canonical_query(&[("b", "x y"), ("a", "=")]),
            "a=%3D&b=x%20y"
        );
        let creds = Credentials {
            session_token: Some("tok"),
            ..CREDS
        };
        let s = sign(
            &creds,
            "us-east-1",
            "sts",
            DATE,
            &Request {
                method: "POST",
                path: "/",
                query: &[],
                headers: &[HOST],
                payload: b"",
            },
        );
        assert_eq!(header(&s, "x-amz-security-token"), "tok");
        assert!(header(&s, "authorization")
            .contains("SignedHeaders=host;x-amz-date;x-amz-security-token"));
        assert_eq!(amz_date(1_440_938_160).as_deref(), Some(DATE));
    }
}
