//! The AWS Query API client the engine uses for IAM and STS: a form-encoded POST signed with
//! [`super::sigv4`], sent over the server's outbound connector
//! ([`crate::http_client::dial`], its TLS roots and proxy rules), the XML answer read with
//! `roxmltree`. Bounded in time and size; throttling, 5xx answers and transport errors are
//! tried again up to `max_retries` times with exponential backoff (the AWS SDKs' default of
//! 3 when the config says -1).
//!
//! An endpoint is `https://…`, or plain `http://` on a loopback address (a local emulator),
//! as for every outbound URL of the server.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

use super::sigv4;
use crate::http_client::{dial, form_encode, parse_url, tls_config, Url};

const MAX_BODY: usize = 1 << 20;
const TIMEOUT: Duration = Duration::from_secs(15);
/// The AWS SDKs' default number of retries.
const DEFAULT_RETRIES: u32 = 3;

/// Credentials to sign with.
pub(super) struct Keys<'a> {
    pub access_key: &'a str,
    pub secret_key: &'a str,
    pub session_token: Option<&'a str>,
}

/// One AWS service endpoint.
pub(super) struct Service {
    /// The signing name: `iam` or `sts`.
    pub name: &'static str,
    pub version: &'static str,
    pub url: String,
    pub region: String,
    /// -1: the SDK default.
    pub max_retries: i64,
}

/// An AWS error answer, or a failure to reach AWS.
#[derive(Debug)]
pub(super) struct AwsError {
    /// AWS's error code (`NoSuchEntity`), or `Transport` when nothing usable came back.
    pub code: String,
    pub message: String,
    pub status: u16,
}

impl AwsError {
    fn transport(message: String) -> Self {
        AwsError {
            code: "Transport".into(),
            message,
            status: 0,
        }
    }
    pub fn is(&self, code: &str) -> bool {
        self.code == code
    }
    /// Worth trying again: throttled, AWS-side failure, or not reached at all.
    fn transient(&self) -> bool {
        self.status == 0
            || self.status >= 500
            || matches!(
                self.code.as_str(),
                "Throttling"
                    | "ThrottlingException"
                    | "RequestLimitExceeded"
                    | "ServiceUnavailable"
            )
    }
}

impl std::fmt::Display for AwsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.status == 0 {
            write!(f, "{}", self.message)
        } else {
            write!(
                f,
                "{}: {} (status code {})",
                self.code, self.message, self.status
            )
        }
    }
}

/// Calls `action` with `params`; the answer's XML text on success. `now`: unix seconds for
/// the signature.
pub(super) async fn call(
    keys: &Keys<'_>,
    svc: &Service,
    action: &str,
    params: &[(&str, &str)],
    now: i64,
) -> Result<String, AwsError> {
    let u = parse_url(&svc.url).map_err(AwsError::transport)?;
    let mut fields: Vec<(&str, &str)> = vec![("Action", action), ("Version", svc.version)];
    fields.extend_from_slice(params);
    let body = form_encode(&fields);
    let retries = if svc.max_retries < 0 {
        DEFAULT_RETRIES
    } else {
        svc.max_retries.min(10) as u32
    };
    let mut attempt = 0u32;
    loop {
        let r = match tokio::time::timeout(TIMEOUT, send(keys, svc, &u, &body, now)).await {
            Ok(r) => r,
            Err(_) => Err(AwsError::transport(format!(
                "{} {action}: timed out",
                svc.name
            ))),
        };
        match r {
            Err(e) if e.transient() && attempt < retries => {
                tracing::debug!(service = svc.name, action, attempt, error = %e, "AWS call failed; retrying");
                tokio::time::sleep(Duration::from_millis(100u64 << attempt.min(6))).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

async fn send(
    keys: &Keys<'_>,
    svc: &Service,
    u: &Url,
    body: &str,
    now: i64,
) -> Result<String, AwsError> {
    let host = match (u.https, u.port) {
        (true, 443) | (false, 80) => u.host.clone(),
        _ if u.host.contains(':') => format!("[{}]:{}", u.host, u.port),
        _ => format!("{}:{}", u.host, u.port),
    };
    let date = sigv4::amz_date(now).ok_or_else(|| AwsError::transport("bad clock".into()))?;
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let path = u.path.split('?').next().unwrap_or("/");
    let signed = sigv4::sign(
        &sigv4::Credentials {
            access_key: keys.access_key,
            secret_key: keys.secret_key,
            session_token: keys.session_token,
        },
        &svc.region,
        svc.name,
        &date,
        &sigv4::Request {
            method: "POST",
            path,
            query: &[],
            headers: &[("content-type", content_type), ("host", &host)],
            payload: body.as_bytes(),
        },
    );
    let mut builder = hyper::Request::builder()
        .method("POST")
        .uri(path)
        .header("host", host.as_str())
        .header("content-type", content_type)
        .header("user-agent", concat!("airlock/", env!("CARGO_PKG_VERSION")));
    for (k, v) in &signed.headers {
        builder = builder.header(*k, v.as_str());
    }
    let req = builder
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| AwsError::transport(format!("building request: {e}")))?;
    let tcp = dial(&u.host, u.port, u.https)
        .await
        .map_err(AwsError::transport)?;
    let resp = if u.https {
        let cfg = tokio::task::spawn_blocking(|| tls_config(""))
            .await
            .map_err(|e| AwsError::transport(e.to_string()))?
            .map_err(AwsError::transport)?;
        let name = ServerName::try_from(u.host.clone())
            .map_err(|_| AwsError::transport(format!("invalid server name {}", u.host)))?;
        let tls = TlsConnector::from(cfg)
            .connect(name, tcp)
            .await
            .map_err(|e| AwsError::transport(format!("TLS handshake with {}: {e}", u.host)))?;
        exchange(TokioIo::new(tls), req).await?
    } else {
        exchange(TokioIo::new(tcp), req).await?
    };
    let (status, text) = resp;
    if (200..300).contains(&status) {
        return Ok(text);
    }
    let code = first(&text, "Code").unwrap_or_else(|| "Unknown".into());
    let message = first(&text, "Message").unwrap_or_default();
    Err(AwsError {
        code,
        message,
        status,
    })
}

async fn exchange<T>(io: T, req: hyper::Request<Full<Bytes>>) -> Result<(u16, String), AwsError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| AwsError::transport(format!("HTTP handshake failed: {e}")))?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| AwsError::transport(format!("request failed: {e}")));
    let out = match resp {
        Ok(resp) => {
            let status = resp.status().as_u16();
            Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map(|b| (status, String::from_utf8_lossy(&b.to_bytes()).into_owned()))
                .map_err(|_| AwsError::transport("response too large or cut off".into()))
        }
        Err(e) => Err(e),
    };
    drop(sender);
    driver.abort();
    out
}

/// The text of every element named `tag` (namespace ignored), in document order.
pub(super) fn all(xml: &str, tag: &str) -> Vec<String> {
    let Ok(doc) = roxmltree::Document::parse(xml) else {
        return Vec::new();
    };
    doc.descendants()
        .filter(|n| n.is_element() && n.tag_name().name() == tag)
        .map(|n| n.text().unwrap_or("").trim().to_string())
        .collect()
}

/// The text of the first element named `tag`.
pub(super) fn first(xml: &str, tag: &str) -> Option<String> {
    all(xml, tag).into_iter().next()
}

/// The first `tag`, or an error naming what the answer lacked.
pub(super) fn need(xml: &str, tag: &str) -> Result<String, AwsError> {
    first(xml, tag)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| AwsError {
            code: "MalformedResponse".into(),
            message: format!("the answer has no {tag}"),
            status: 200,
        })
}

/// The text of `tag` inside the first element named `parent`.
pub(super) fn within(xml: &str, parent: &str, tag: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    let p = doc
        .descendants()
        .find(|n| n.is_element() && n.tag_name().name() == parent)?;
    p.descendants()
        .find(|n| n.is_element() && n.tag_name().name() == tag)
        .map(|n| n.text().unwrap_or("").trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_answers_and_errors() {
        let ok = r#"<CreateAccessKeyResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">
  <CreateAccessKeyResult><AccessKey><UserName>u</UserName>
  <AccessKeyId>AKIA1</AccessKeyId><Status>Active</Status>
  <SecretAccessKey>s&amp;k</SecretAccessKey></AccessKey></CreateAccessKeyResult>
</CreateAccessKeyResponse>"#;
        assert_eq!(need(ok, "AccessKeyId").ok().as_deref(), Some("AKIA1"));
        assert_eq!(first(ok, "SecretAccessKey").as_deref(), Some("s&k"));
        assert!(need(ok, "Nope").is_err());
        assert_eq!(within(ok, "AccessKey", "UserName").as_deref(), Some("u"));
        let list = "<R><member><GroupName>a</GroupName></member><member><GroupName>b</GroupName></member></R>";
        assert_eq!(all(list, "GroupName"), vec!["a", "b"]);
        let err = "<ErrorResponse><Error><Type>Sender</Type><Code>NoSuchEntity</Code><Message>gone</Message></Error></ErrorResponse>";
        assert_eq!(first(err, "Code").as_deref(), Some("NoSuchEntity"));
        assert!(all("<not xml", "x").is_empty());
        let e = AwsError {
            code: "Throttling".into(),
            message: String::new(),
            status: 400,
        };
        assert!(e.transient());
        assert!(!AwsError {
            code: "NoSuchEntity".into(),
            message: String::new(),
            status: 404
        }
        .transient());
    }
}
