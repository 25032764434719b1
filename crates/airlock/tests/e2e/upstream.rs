//! A stand-in upstream for broker tests: one HTTPS server (HTTP/1.1 and HTTP/2 by ALPN)
//! answering for api.openai.com, api.anthropic.com, generativelanguage.googleapis.com and
//! tunnel.test, with a certificate from its own test CA. It knows the real keys, so it can
//! say whether a request carried the right one (`auth_ok`) and echo it back (to prove the
//! broker scrubs echoes). Endpoints: see tests/broker/README.md.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = http_body_util::combinators::BoxBody<Bytes, BoxError>;

pub const HOSTS: &[&str] = &[
    "api.openai.com",
    "api.anthropic.com",
    "generativelanguage.googleapis.com",
    "tunnel.test",
    "body.test",
    "templates.test",
    "auth.test",
    "api.test",
    "hooks.test",
];

/// The real keys the upstream accepts, per host (shared with the test, which rotates them).
#[derive(Clone, Default)]
pub struct Keys(pub Arc<Mutex<HashMap<String, String>>>);

impl Keys {
    pub fn set(&self, host: &str, key: &str) {
        self.0.lock().unwrap().insert(host.into(), key.into());
    }
    pub fn get(&self, host: &str) -> Option<String> {
        self.0.lock().unwrap().get(host).cloned()
    }
}

pub struct Upstream {
    pub port: u16,
    pub ca_pem: String,
    pub keys: Keys,
    _rt: tokio::runtime::Runtime,
}

pub fn start() -> Upstream {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ca = airlock_broker::ca::Ca::generate_named(None, "airlock-test-upstream CA").unwrap();
    let names: Vec<String> = HOSTS.iter().map(|s| s.to_string()).collect();
    let cfg = ca.leaf_config(&names).unwrap();
    let keys = Keys::default();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let k = keys.clone();
    rt.spawn(async move {
        let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            let k = k.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(move |req| {
                    let k = k.clone();
                    async move { Ok::<_, std::convert::Infallible>(handle(k, req).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    Upstream {
        port,
        ca_pem: ca.cert_pem().to_string(),
        keys,
        _rt: rt,
    }
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

pub fn json_resp(status: u16, v: Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(full(v.to_string()))
        .unwrap()
}

fn query_param(q: &str, name: &str) -> Option<String> {
    q.split('&').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k == name).then(|| percent_decode(v))
    })
}

/// Percent-decoding (lossy); also used by the identity-provider stand-in.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn host_of(req: &Request<Incoming>) -> String {
    req.uri()
        .authority()
        .map(|a| a.host().to_string())
        .or_else(|| {
            req.headers()
                .get("host")
                .and_then(|h| h.to_str().ok())
                .map(|h| h.split(':').next().unwrap_or("").to_string())
        })
        .unwrap_or_default()
}

fn auth_ok(keys: &Keys, host: &str, req: &Request<Incoming>) -> bool {
    let Some(key) = keys.get(host) else {
        return false;
    };
    let h = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    match host {
        "api.openai.com" | "tunnel.test" => h("authorization") == format!("Bearer {key}"),
        "api.anthropic.com" => h("x-api-key") == key,
        "body.test" => false,
        // Injection templates: the whole Authorization value; what the other bindings sent
        // is recorded for the test to check.
        "templates.test" => {
            for (name, v) in [
                ("seen:x-otp", h("x-otp")),
                ("seen:path", req.uri().path().to_string()),
            ] {
                keys.set(name, &v);
            }
            h("authorization") == key
        }
        "generativelanguage.googleapis.com" => {
            query_param(req.uri().query().unwrap_or(""), "key").as_deref() == Some(key.as_str())
        }
        _ => false,
    }
}

/// A body fed from a channel, for SSE.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

async fn handle(keys: Keys, req: Request<Incoming>) -> Response<Body> {
    let host = host_of(&req);
    let mut req = match crate::token_endpoint::handle(&keys, &host, req).await {
        Ok(r) => return r,
        Err(req) => req,
    };
    let ok = auth_ok(&keys, &host, &req);
    let path = req.uri().path().to_string();
    let key = keys.get(&host).unwrap_or_default();
    if path == "/v1/ws" {
        return websocket(&mut req, ok);
    }
    let version = format!("{:?}", req.version());
    let method = req.method().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let headers: serde_json::Map<String, Value> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
            )
        })
        .collect();
    if path == "/v1/echo" || path.starts_with("/v1/echo/") {
        let body = req
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        // body.test: the key travels in a JSON body as "token" (echoed back as JSON).
        if host == "body.test" {
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let ok = !key.is_empty() && v["token"].as_str() == Some(key.as_str());
            return json_resp(
                200,
                json!({"method": method, "path": path, "headers": headers, "body": v,
                       "http_version": version, "auth_ok": ok, "host": host}),
            );
        }
        return json_resp(
            200,
            json!({"method": method, "path": path, "query": query, "headers": headers,
                   "body": String::from_utf8_lossy(&body), "http_version": version,
                   "auth_ok": ok, "host": host}),
        );
    }
    if path == "/v1/upload" {
        let mut body = req.into_body();
        let mut n = 0u64;
        let mut h = sha2::Sha256::new();
        while let Some(Ok(f)) = body.frame().await {
            if let Some(d) = f.data_ref() {
                n += d.len() as u64;
                h.update(d);
            }
        }
        return json_resp(
            200,
            json!({"bytes": n, "sha256": hex::encode(h.finalize())}),
        );
    }
    if !ok {
        return json_resp(
            401,
            json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}),
        );
    }
    match path.as_str() {
        "/v1/models" => json_resp(
            200,
            json!({"object":"list","data":[{"id":"gpt-test","object":"model","created":0,"owned_by":"test"}]}),
        ),
        "/v1/leak" => Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .header("x-leak", key.as_str())
            .body(full(json!({"echo": key}).to_string()))
            .unwrap(),
        "/v1/leak-stream" => {
            // A streamed body (no Content-Length) that echoes the key split across chunks
            // sent apart, after more than the broker's whole-body limit of filler.
            let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
            let key = key.clone();
            tokio::spawn(async move {
                let (a, b) = key.split_at(key.len() / 2);
                for chunk in [
                    "x".repeat(100 << 10),
                    format!("key1={a}"),
                    format!("{b};key2={key};end"),
                ] {
                    if tx.send(Bytes::from(chunk)).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
            Response::builder()
                .status(200)
                .header("content-type", "text/plain")
                .body(ChannelBody(rx).boxed())
                .unwrap()
        }
        "/v1/gzip" => Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(full(Bytes::from_static(b"\x1f\x8b\x08\x00not really gzip")))
            .unwrap(),
        "/v1/chat/completions" => {
            let body = req
                .into_body()
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if v["stream"] == json!(true) {
                let usage = v["stream_options"]["include_usage"] == json!(true);
                let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
                tokio::spawn(async move {
                    for (i, c) in ["a", "b", "c", "d", "e"].iter().enumerate() {
                        let ev = json!({"id":"chatcmpl-test","object":"chat.completion.chunk","created":0,"model":"gpt-test",
                            "choices":[{"index":0,"delta": if i == 0 {json!({"role":"assistant","content":c})} else {json!({"content":c})},"finish_reason":null}]});
                        if tx
                            .send(Bytes::from(format!("data: {ev}\n\n")))
                            .await
                            .is_err()
                        {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    let end = json!({"id":"chatcmpl-test","object":"chat.completion.chunk","created":0,"model":"gpt-test",
                        "choices":[{"index":0,"delta":{},"finish_reason":"stop"}]});
                    let _ = tx.send(Bytes::from(format!("data: {end}\n\n"))).await;
                    if usage {
                        let u = json!({"id":"chatcmpl-test","object":"chat.completion.chunk","created":0,"model":"gpt-test",
                            "choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}});
                        let _ = tx.send(Bytes::from(format!("data: {u}\n\n"))).await;
                    }
                    let _ = tx.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
                });
                return Response::builder()
                    .status(200)
                    .header("content-type", "text/event-stream")
                    .header("cache-control", "no-cache")
                    .body(ChannelBody(rx).boxed())
                    .unwrap();
            }
            json_resp(
                200,
                json!({"id":"chatcmpl-test","object":"chat.completion","created":0,"model":"gpt-test",
                    "choices":[{"index":0,"message":{"role":"assistant","content":"hello from upstream"},"finish_reason":"stop"}],
                    "usage":{"prompt_tokens":1,"completion_tokens":3,"total_tokens":4}}),
            )
        }
        _ => json_resp(404, json!({"error": "not found"})),
    }
}

fn ws_accept(key: &str) -> String {
    let mut h = sha1::Sha1::new();
    h.update(key.as_bytes());
    h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    if payload.len() < 126 {
        f.push(payload.len() as u8);
    } else {
        f.push(126);
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    f.extend_from_slice(payload);
    f
}

fn websocket(req: &mut Request<Incoming>, ok: bool) -> Response<Body> {
    let key = req
        .headers()
        .get("sec-websocket-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    // What the broker sent, echoed back in the 101 and (on request) in a fragmented message,
    // to prove the broker scrubs WebSocket traffic too.
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let extensions = req.headers().contains_key("sec-websocket-extensions");
    let echo = auth.clone();
    let on = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(up) = on.await else { return };
        let mut io = TokioIo::new(up);
        let _ = io
            .write_all(&frame(1, format!("auth_ok:{ok}").as_bytes()))
            .await;
        loop {
            let mut hdr = [0u8; 2];
            if io.read_exact(&mut hdr).await.is_err() {
                return;
            }
            let opcode = hdr[0] & 0x0f;
            let mut len = u64::from(hdr[1] & 0x7f);
            if len == 126 {
                let mut b = [0u8; 2];
                if io.read_exact(&mut b).await.is_err() {
                    return;
                }
                len = u64::from(u16::from_be_bytes(b));
            } else if len == 127 {
                let mut b = [0u8; 8];
                if io.read_exact(&mut b).await.is_err() {
                    return;
                }
                len = u64::from_be_bytes(b);
            }
            let mut mask = [0u8; 4];
            if hdr[1] & 0x80 != 0 && io.read_exact(&mut mask).await.is_err() {
                return;
            }
            let mut payload = vec![0u8; len.min(1 << 20) as usize];
            if io.read_exact(&mut payload).await.is_err() {
                return;
            }
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= mask[i % 4];
            }
            match opcode {
                8 => {
                    let _ = io.write_all(&frame(8, &[])).await;
                    return;
                }
                1 if payload == b"echo-key" => {
                    // The credential split over two fragments.
                    let text = format!("key={echo}!");
                    let (a, b) = text.as_bytes().split_at(text.len() / 2);
                    let mut first = frame(1, a);
                    first[0] &= 0x7f;
                    let mut out = first;
                    out.extend(frame(0, b));
                    if io.write_all(&out).await.is_err() {
                        return;
                    }
                }
                1 | 2 if io.write_all(&frame(opcode, &payload)).await.is_err() => return,
                _ => {}
            }
        }
    });
    Response::builder()
        .status(101)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", ws_accept(&key))
        .header("x-echo-authorization", auth)
        .header("x-saw-extensions", extensions.to_string())
        .body(full(Bytes::new()))
        .unwrap()
}
