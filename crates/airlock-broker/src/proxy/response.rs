//! The response filter of an intercepted request: what comes back from upstream is checked
//! for echoed credentials before the client sees it. Headers are scrubbed; on a request that
//! carried a credential, a compressed body, an upgrade to anything but WebSocket, or a
//! WebSocket extension the broker did not offer is refused, since it could not be checked.
//! Small bodies are read whole and sent with their scrubbed length; others are scrubbed as
//! they stream, trailers included (`body.rs`); WebSocket frames through [`crate::ws`].

use std::sync::atomic::Ordering;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::http::response::Parts;
use hyper::upgrade::OnUpgrade;
use hyper::{HeaderMap, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::intercept::{Exchange, Forwarded, Needles};
use super::log::{elapsed_ms, record_with_scrub};
use super::{content_length, full, read_whole, strip_hop_by_hop, SMALL_BODY};
use crate::rewrite::{self, Scrubber};
use crate::upstream::Body;
use crate::Broker;

impl Broker {
    /// Response filter: a `101 Switching Protocols` to an upgrade request goes to
    /// [`Broker::upgraded`]. Otherwise hop-by-hop headers are dropped and, when the request
    /// carried a credential, a compressed body is refused and echoed credentials are
    /// scrubbed from the headers and then from the body. Small bodies of known length are
    /// read whole ([`Broker::small_response`]); others stream, and their event is recorded
    /// when they end.
    pub(super) async fn response_filter(&self, f: Forwarded<'_>) -> Response<Body> {
        let Forwarded {
            mut x,
            resp,
            client_upgrade,
            needles,
            credential,
        } = f;
        if x.is_upgrade && resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            return self.upgraded(x, resp, client_upgrade, needles);
        }
        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers, false);
        let head = x.method == "HEAD";
        // Decided before the scrubber drops the length.
        let small = content_length(&parts.headers).is_some_and(|n| n <= SMALL_BODY) && !head;
        let mut scrubber = None;
        if credential {
            if is_compressed(&parts.headers) {
                return x.refuse(
                    self,
                    None,
                    "upstream sent a compressed response to a request carrying a credential; refused because it cannot be checked for an echoed credential",
                );
            }
            x.ev.scrubbed = scrub_headers(&needles, &mut parts.headers);
            if !head {
                // A scrubbed body may change length; small ones get their new length below.
                parts.headers.remove(hyper::header::CONTENT_LENGTH);
            }
            scrubber = Some(Scrubber::new(needles));
        }
        if small {
            return self.small_response(x, parts, body, scrubber).await;
        }
        let body = self.resp_body(body, scrubber, x.ev, x.bytes_in, x.start, x.meters);
        let body = self.mcp_tap(
            x.agent,
            x.host,
            &x.method,
            &x.raw_path,
            &parts.headers,
            body.boxed(),
        );
        Response::from_parts(parts, body)
    }

    /// A small response of known length: read whole, scrubbed, and sent in one write with its
    /// (possibly new) length; its event is recorded at once. A body that does not match its
    /// length is answered 502.
    async fn small_response(
        &self,
        mut x: Exchange<'_>,
        mut parts: Parts,
        body: Incoming,
        scrubber: Option<Scrubber>,
    ) -> Response<Body> {
        let Some(b) = read_whole(body, SMALL_BODY as usize).await else {
            return x.fail(self, 502, "upstream body did not match its Content-Length");
        };
        let tokens = if x.meters.is_empty() {
            0
        } else {
            let mut u = crate::budget::UsageMeter::default();
            u.feed(&b);
            u.finish()
        };
        let b = match scrubber {
            Some(mut sc) => {
                let mut out = sc.feed(&b);
                out.extend(sc.finish());
                x.ev.scrubbed += sc.hits;
                Bytes::from(out)
            }
            None => b,
        };
        parts
            .headers
            .insert(hyper::header::CONTENT_LENGTH, HeaderValue::from(b.len()));
        x.ev.bytes_out = b.len() as u64;
        x.ev.bytes_in = x.bytes_in.load(Ordering::Relaxed);
        x.ev.latency_ms = elapsed_ms(x.start);
        super::log::charge(&x.meters, x.ev.bytes_in + x.ev.bytes_out, tokens);
        record_with_scrub(&self.audit, &self.stats.scrubbed, x.ev);
        Response::from_parts(parts, full(b))
    }

    /// Response filter for an accepted upgrade. When the request carried a credential, only
    /// a WebSocket without extensions may follow (its frames are scrubbed by [`crate::ws`]);
    /// anything else is refused, since its traffic could not be checked. The client's and the
    /// upstream's upgraded connections are then spliced, and the event recorded when they
    /// close.
    fn upgraded(
        &self,
        mut x: Exchange<'_>,
        mut resp: Response<Incoming>,
        client_upgrade: Option<OnUpgrade>,
        needles: Needles,
    ) -> Response<Body> {
        let up_fut = hyper::upgrade::on(&mut resp);
        let (mut p, _) = resp.into_parts();
        let websocket = x.client_websocket
            && p.headers
                .get(hyper::header::UPGRADE)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
        if !needles.is_empty() {
            if !websocket {
                return x.refuse(
                    self,
                    None,
                    "upgrade to a protocol other than WebSocket on a request carrying a credential; refused because its traffic cannot be checked for an echoed credential",
                );
            }
            if p.headers
                .contains_key(hyper::header::SEC_WEBSOCKET_EXTENSIONS)
            {
                return x.refuse(
                    self,
                    None,
                    "upstream accepted a WebSocket extension the broker did not offer; refused because its frames cannot be checked for an echoed credential",
                );
            }
            x.ev.scrubbed += scrub_headers(&needles, &mut p.headers);
        }
        if let Some(cu) = client_upgrade {
            let audit = self.audit.clone();
            let scrubbed = self.stats.scrubbed.clone();
            let (mut ev, start) = (x.ev, x.start);
            tokio::spawn(async move {
                if let (Ok(c), Ok(u)) = (cu.await, up_fut.await) {
                    let (mut c, mut u) = (TokioIo::new(c), TokioIo::new(u));
                    if websocket && !needles.is_empty() {
                        let s = crate::ws::splice(c, u, needles).await;
                        ev.bytes_in = s.bytes_in;
                        ev.bytes_out = s.bytes_out;
                        ev.scrubbed += s.scrubbed;
                    } else if let Ok((a, b)) = tokio::io::copy_bidirectional(&mut c, &mut u).await {
                        ev.bytes_in = a;
                        ev.bytes_out = b;
                    }
                }
                ev.latency_ms = elapsed_ms(start);
                record_with_scrub(&audit, &scrubbed, ev);
            });
        }
        Response::from_parts(p, full(Bytes::new()))
    }
}

/// Whether the body is compressed (any `Content-Encoding` but `identity`).
fn is_compressed(h: &HeaderMap) -> bool {
    h.get(hyper::header::CONTENT_ENCODING)
        .is_some_and(|enc| !enc.as_bytes().eq_ignore_ascii_case(b"identity"))
}

/// Replaces echoed credentials in header values; returns how many were replaced.
fn scrub_headers(needles: &[(Vec<u8>, Vec<u8>)], headers: &mut HeaderMap) -> u64 {
    let mut hits = 0;
    for v in headers.values_mut() {
        if let Some((nv, n)) = rewrite::scrub_value(needles, v.as_bytes()) {
            hits += n;
            if let Ok(h) = HeaderValue::from_bytes(&nv) {
                *v = h;
            }
        }
    }
    hits
}
