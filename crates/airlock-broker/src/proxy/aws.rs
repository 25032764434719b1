//! SigV4 in the request path of an intercepted request, for agents with `aws_sigv4`
//! bindings (the signing rules themselves are in [`crate::sigv4`]).
//!
//! Request filter: a request signed with an agent's placeholder key id must go where that
//! binding allows (destination, service, region) and its signature must verify with the
//! placeholder secret; a request to a bound AWS endpoint signed with any other key id is
//! blocked. Request rewrite: the same request is signed again with the real credentials
//! (header, presigned query, and each chunk of a signed streaming upload).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::header::HeaderValue;
use hyper::{HeaderMap, Request};
use zeroize::Zeroizing;

use super::body::BodyError;
use crate::sigv4::{self, ChunkChain, ChunkResigner, Found, Real};
use crate::upstream::BoxError;
use crate::AgentRuntime;
use airlock_core::binding::Outgoing;

/// What the SigV4 steps need of an intercepted request.
pub(super) struct Ctx<'a> {
    pub(super) agent: &'a AgentRuntime,
    pub(super) host: &'a str,
    pub(super) port: u16,
    pub(super) method: &'a str,
    pub(super) raw_path: &'a str,
    pub(super) query: Option<&'a str>,
}

impl Ctx<'_> {
    fn outgoing(&self) -> Outgoing<'_> {
        Outgoing {
            scheme: "https",
            host: self.host,
            port: self.port,
            method: self.method,
            raw_path: self.raw_path,
        }
    }
}

/// A SigV4 request admitted by the filter, to be signed again.
pub(super) struct Signed {
    pub(super) binding: usize,
    pub(super) found: Found,
    pub(super) checked: Option<sigv4::Checked>,
    /// The request's headers as the agent signed them (lower-case names).
    pub(super) headers: Vec<(String, String)>,
}

/// The real credentials of an `aws_sigv4` binding, from the cache.
pub(super) struct Creds {
    access_key: Arc<Zeroizing<String>>,
    secret_key: Arc<Zeroizing<String>>,
    session_token: Option<Arc<Zeroizing<String>>>,
}

impl Creds {
    pub(super) fn get(agent: &AgentRuntime, binding: usize) -> Option<Creds> {
        let b = agent.bindings.get(binding)?;
        let c = &agent.cache;
        Some(Creds {
            access_key: c.get(&b.secret_path, "access_key")?,
            secret_key: c.get(&b.secret_path, "secret_key")?,
            session_token: c
                .get(&b.secret_path, "?security_token")
                .or_else(|| c.get(&b.secret_path, "?session_token"))
                .filter(|t| !t.is_empty()),
        })
    }

    fn real(&self) -> Real<'_> {
        Real {
            access_key: self.access_key.as_str(),
            secret_key: self.secret_key.as_str(),
            session_token: self.session_token.as_deref().map(|t| t.as_str()),
        }
    }
}

/// The request's headers as SigV4 sees them; `host` added from the target when the client
/// sent none (HTTP/2).
fn header_view(x: &Ctx<'_>, headers: &HeaderMap) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    if !v.iter().any(|(k, _)| k == "host") {
        let host = if x.port == 443 {
            x.host.to_string()
        } else {
            format!("{}:{}", x.host, x.port)
        };
        v.push(("host".into(), host));
    }
    v
}

/// The filter's verdict.
pub(super) enum Verdict {
    /// Not a SigV4 request for this agent's AWS bindings: the usual rules apply.
    NotAws,
    Admit(Box<Signed>),
    Block {
        binding: Option<String>,
        reason: String,
    },
}

/// Request filter, first part: which binding the signature names and whether it may go
/// here. The signature itself is checked by [`check`] once the body hash is known.
pub(super) fn filter(x: &Ctx<'_>, req: &Request<Incoming>) -> Verdict {
    let agent = x.agent;
    if !agent.bindings.iter().any(|b| b.aws.is_some()) {
        return Verdict::NotAws;
    }
    let out = x.outgoing();
    // An aws binding that would take this request (for blocking foreign signatures).
    let guarding = agent
        .bindings
        .iter()
        .find(|b| b.aws.is_some() && b.dest.check(&out).is_ok())
        .map(|b| b.name.clone());
    // Most requests carry no AWS signature of any version: nothing to copy or parse.
    let signed_header = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .is_some_and(|v| v.as_bytes().starts_with(b"AWS"));
    let signed_query = x
        .query
        .is_some_and(|q| q.contains("X-Amz-") || q.contains("AWSAccessKeyId"));
    if !signed_header && !signed_query {
        return Verdict::NotAws;
    }
    let headers = header_view(x, req.headers());
    let is_placeholder = |id: &str| {
        agent
            .placeholders
            .iter()
            .any(|(p, i)| p == id && agent.bindings.get(*i).is_some_and(|b| b.aws.is_some()))
    };
    if let Some(id) = sigv4::sigv2_key_id(&headers, x.query) {
        if guarding.is_some() || is_placeholder(&id) {
            return Verdict::Block {
                binding: guarding,
                reason: "aws: Signature Version 2 cannot be re-signed; sign with SigV4 (boto3: Config(signature_version=\"s3v4\"))".into(),
            };
        }
        return Verdict::NotAws;
    }
    let found = match sigv4::find(&headers, x.query) {
        Ok(Some(f)) => f,
        Ok(None) => return Verdict::NotAws,
        Err(e) if guarding.is_some() => {
            return Verdict::Block {
                binding: guarding,
                reason: format!("aws: {e}"),
            }
        }
        Err(_) => return Verdict::NotAws,
    };
    let bound = agent
        .placeholders
        .iter()
        .find(|(p, i)| {
            *p == found.key_id && agent.bindings.get(*i).is_some_and(|b| b.aws.is_some())
        })
        .map(|(_, i)| *i);
    let Some(i) = bound else {
        return match guarding {
            Some(b) => Verdict::Block {
                binding: Some(b),
                reason: "aws: signed with a key id that is not this agent's placeholder".into(),
            },
            None => Verdict::NotAws,
        };
    };
    let Some(b) = agent.bindings.get(i) else {
        return Verdict::NotAws;
    };
    let block = |reason: String| Verdict::Block {
        binding: Some(b.name.clone()),
        reason,
    };
    if let Err(v) = b.dest.check(&out) {
        return block(format!("aws placeholder key id: {v}"));
    }
    if let Some(a) = &b.aws {
        if !a.services.is_empty() && !a.services.contains(&found.service) {
            return block(format!("aws: service {:?} is not bound", found.service));
        }
        if !a.regions.is_empty() && !a.regions.contains(&found.region) {
            return block(format!("aws: region {:?} is not bound", found.region));
        }
    }
    Verdict::Admit(Box::new(Signed {
        binding: i,
        found,
        checked: None,
        headers,
    }))
}

/// Whether the signature check needs the body's hash (so the body must be read first).
pub(super) fn needs_body(s: &Signed) -> bool {
    sigv4::needs_body_hash(&s.found, &s.headers)
}

/// Request filter, second part: the signature verifies with the placeholder secret.
pub(super) fn check(x: &Ctx<'_>, s: &mut Signed, body: Option<&[u8]>) -> Result<(), String> {
    use sha2::Digest;
    let secret = x
        .agent
        .aws_secrets
        .iter()
        .find(|(i, _)| *i == s.binding)
        .map(|(_, s)| s)
        .ok_or("aws: no placeholder secret for this binding")?;
    let hash = body.map(|b| hex::encode(sha2::Sha256::digest(b)));
    let checked = sigv4::verify(
        &s.found,
        x.method,
        x.raw_path,
        x.query,
        &s.headers,
        hash.as_deref(),
        secret,
    )
    .map_err(|e| format!("aws: {e}"))?;
    s.checked = Some(checked);
    Ok(())
}

/// What the rewrite changes.
pub(super) struct Rewrite {
    /// A new query string (presigned URLs).
    pub(super) query: Option<String>,
    /// For signed streaming uploads: the body re-signer.
    pub(super) chunks: Option<ChunkResigner>,
}

/// Request rewrite: sign again with the real credentials; edits `headers` in place.
pub(super) fn resign(
    x: &Ctx<'_>,
    s: &Signed,
    creds: &Creds,
    headers: &mut HeaderMap,
) -> Result<Rewrite, String> {
    let checked = s.checked.as_ref().ok_or("aws: signature not checked")?;
    let real = creds.real();
    if s.found.presigned {
        let q = x.query.unwrap_or_default();
        let nq = sigv4::resign_query(&s.found, checked, x.method, q, &s.headers, &real)?;
        return Ok(Rewrite {
            query: Some(nq),
            chunks: None,
        });
    }
    let r = sigv4::resign_header(&s.found, checked, x.method, x.query, &s.headers, &real)?;
    let mut auth = HeaderValue::from_str(&r.authorization)
        .map_err(|_| "aws: the real key id cannot be sent in a header")?;
    auth.set_sensitive(true);
    headers.insert(hyper::header::AUTHORIZATION, auth);
    match &r.session_token {
        Some(t) => {
            let mut v = HeaderValue::from_str(t)
                .map_err(|_| "aws: the session token cannot be sent in a header")?;
            v.set_sensitive(true);
            headers.insert("x-amz-security-token", v);
        }
        None => {
            headers.remove("x-amz-security-token");
        }
    }
    let chunks = (checked.payload_hash == sigv4::STREAMING_SIGNED).then(|| {
        let placeholder = x
            .agent
            .aws_secrets
            .iter()
            .find(|(i, _)| *i == s.binding)
            .map(|(_, p)| p.as_str())
            .unwrap_or_default();
        let f = &s.found;
        let scope = f.scope();
        ChunkResigner::new(
            ChunkChain::new(
                airlock_core::sigv4::signing_key(placeholder, &f.date, &f.region, &f.service),
                &f.amz_date,
                &scope,
                &f.signature,
            ),
            ChunkChain::new(r.key.clone(), &f.amz_date, &scope, &r.signature),
        )
    });
    Ok(Rewrite {
        query: None,
        chunks,
    })
}

/// A signed streaming upload on its way upstream, each chunk checked and signed again.
pub(super) struct ResignBody {
    inner: Incoming,
    chunks: ChunkResigner,
    ended: bool,
}

impl ResignBody {
    pub(super) fn new(inner: Incoming, chunks: ChunkResigner) -> Self {
        ResignBody {
            inner,
            chunks,
            ended: false,
        }
    }
}

impl hyper::body::Body for ResignBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.ended {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(f))) => {
                    let Ok(d) = f.into_data() else {
                        continue; // trailers: not part of a signed chunk stream
                    };
                    match this.chunks.feed(&d) {
                        Ok(out) if out.is_empty() => continue,
                        Ok(out) => return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out))))),
                        Err(e) => return Poll::Ready(Some(Err(Box::new(BodyError(e))))),
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(Box::new(e)))),
                Poll::Ready(None) => {
                    this.ended = true;
                    return match this.chunks.finish() {
                        Ok(()) => Poll::Ready(None),
                        Err(e) => Poll::Ready(Some(Err(Box::new(BodyError(e))))),
                    };
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
