//! The HTTP edge: turns hyper requests into logical requests, serves the unauthenticated
//! `sys/` endpoints, and renders responses and errors in Vault's shapes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::Method;
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use airlock_core::percent::{self, Plus};

mod body;
pub mod respond;
mod stream_body;
mod streams;
mod ws;
use body::{collect_body, may_read_large, BodyRules};
use respond::render;
pub use respond::{error_response, HttpResponse};
pub use stream_body::Body;

use crate::core::{new_uuid, now_unix, Core};
use crate::error::{ApiError, ApiResult};
use crate::logical::{Op, Request, Response};

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Longest accepted request path (bytes, before decoding).
const MAX_PATH_LEN: usize = 8192;

fn percent_decode(s: &str, plus: Plus) -> Result<String, ()> {
    percent::decode_utf8(s, plus).ok_or(())
}

fn parse_query(q: Option<&str>) -> Result<Vec<(String, String)>, ()> {
    let mut out = Vec::new();
    if let Some(q) = q {
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = percent_decode(k, Plus::Space)?;
            let v = percent_decode(v, Plus::Space)?;
            out.push((k, v));
        }
    }
    Ok(out)
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn extract_token(h: &HeaderMap) -> Option<Zeroizing<String>> {
    if let Some(t) = header_str(h, "x-vault-token").filter(|t| !t.is_empty()) {
        return Some(Zeroizing::new(t.to_string()));
    }
    header_str(h, "authorization")
        .and_then(|a| {
            a.strip_prefix("Bearer ")
                .or_else(|| a.strip_prefix("bearer "))
        })
        .map(|t| Zeroizing::new(t.trim().to_string()))
}

/// Paths OpenBao serves with its own HTTP handlers rather than the logical router: an
/// unsupported method there is a bare 405.
const SPECIAL_HANDLERS: &[&str] = &[
    "sys/health",
    "sys/seal-status",
    "sys/leader",
    "sys/init",
    "sys/unseal",
    "sys/seal",
];

/// Parses a body as a JSON object (empty and `null` are an empty object).
fn parse_body(bytes: &[u8]) -> ApiResult<(Map<String, Value>, bool)> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok((Map::new(), false));
    }
    let v: Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "failed to decode JSON input: {}",
            json_error_kind(&e)
        ))
    })?;
    match v {
        Value::Object(m) => Ok((m, true)),
        Value::Null => Ok((Map::new(), false)),
        _ => Err(ApiError::bad_request(
            "failed to decode JSON input: body must be a JSON object",
        )),
    }
}

/// A description of a JSON error that never quotes the input.
fn json_error_kind(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Io => "I/O error",
        Category::Syntax => "invalid JSON syntax",
        Category::Data => "invalid JSON data",
        Category::Eof => "unexpected end of JSON input",
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

/// Splits `/v1/<path>` into a clean logical path, or explains why not.
/// A request target (`/v1/…` path and query) as the edge reads it: the logical path and the
/// decoded query pairs. Public for fuzzing; never panics.
#[doc(hidden)]
pub fn parse_target(path: &str, query: Option<&str>) -> ApiResult<(String, Vec<(String, String)>)> {
    let p = logical_path(path)?;
    let q = parse_query(query).map_err(|_| ApiError::bad_request("invalid query string"))?;
    Ok((p, q))
}

fn logical_path(raw: &str) -> ApiResult<String> {
    if raw.len() > MAX_PATH_LEN {
        return Err(ApiError::new(414, "request path too long"));
    }
    let decoded = percent_decode(raw, Plus::Literal)
        .map_err(|_| ApiError::bad_request("invalid path: not valid percent-encoded UTF-8"))?;
    let Some(p) = decoded.strip_prefix("/v1/") else {
        return Err(ApiError::not_found());
    };
    if p.chars().any(|c| c.is_control()) {
        return Err(ApiError::bad_request("invalid path: control characters"));
    }
    let segs: Vec<&str> = p.split('/').collect();
    let n = segs.len();
    for (i, s) in segs.iter().enumerate() {
        if *s == ".." || *s == "." {
            return Err(ApiError::bad_request("relative paths not supported"));
        }
        if s.is_empty() && i + 1 != n {
            return Err(ApiError::bad_request("invalid path: empty segment"));
        }
    }
    Ok(p.to_string())
}

pub async fn serve(
    core: Arc<Core>,
    req: hyper::Request<Incoming>,
    remote: Option<SocketAddr>,
) -> Result<HttpResponse, std::convert::Infallible> {
    let start = Instant::now();
    let method = req.method().clone();
    if crate::ui::owns(req.uri().path()) {
        let resp = crate::ui::serve(&core, req, remote).await;
        core.metrics
            .record(method.as_str(), resp.status().as_u16(), start.elapsed());
        return Ok(resp);
    }
    let request_id = new_uuid();
    let mut body_done = false;
    let mut resp = match handle(&core, req, remote, &request_id, &mut body_done).await {
        Ok(r) => r,
        Err(e) => error_response(&e, &request_id),
    };
    if !body_done {
        // Unread request bytes would be taken for the next request: end the connection
        // after this response instead.
        resp.headers_mut()
            .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    }
    let status = resp.status().as_u16();
    core.metrics
        .record(method.as_str(), status, start.elapsed());
    tracing::debug!(method = %method, status, elapsed_us = start.elapsed().as_micros() as u64, request_id, "request");
    Ok(resp)
}

async fn handle(
    core: &Arc<Core>,
    req: hyper::Request<Incoming>,
    remote: Option<SocketAddr>,
    request_id: &str,
    body_done: &mut bool,
) -> ApiResult<HttpResponse> {
    let mut req = req;
    let upgrade = header_str(req.headers(), "upgrade")
        .is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
        .then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    *body_done = hyper::body::Body::is_end_stream(&body);
    let raw_path = parts.uri.path();
    let path = logical_path(raw_path)?;
    let mut query = parse_query(parts.uri.query())
        .map_err(|_| ApiError::bad_request("invalid query string"))?;
    let stream = streams::kind_of(&path, &parts.headers, &mut query);
    let l = &core.config.listener;
    let rules = BodyRules {
        small: l.max_unauthenticated_request_size,
        large: l.max_request_size,
        grace: std::time::Duration::from_secs(l.http_read_timeout),
        min_rate: l.http_read_min_rate,
    };
    let content_length =
        header_str(&parts.headers, "content-length").and_then(|l| l.parse::<usize>().ok());
    let list_query = query
        .iter()
        .any(|(k, v)| k == "list" && (v == "true" || v == "1"));
    // Methods as OpenBao answers them: an unknown one (methods are case-sensitive) is a 405
    // with no error text, before authentication; OPTIONS is an internal-only operation on
    // logical paths; HEAD is served by sys/health only.
    let bare_405 = || ApiError {
        status: 405,
        errors: Vec::new(),
        body: None,
    };
    let special = SPECIAL_HANDLERS.contains(&path.as_str());
    let op = match parts.method {
        Method::GET if list_query => Op::List,
        Method::GET => Op::Read,
        Method::HEAD if path == "sys/health" => Op::Read,
        Method::HEAD if special => return Err(bare_405()),
        Method::HEAD => return Err(ApiError::unsupported_operation()),
        Method::POST | Method::PUT => Op::Update,
        Method::DELETE => Op::Delete,
        Method::PATCH => Op::Patch,
        Method::OPTIONS if special => return Err(bare_405()),
        Method::OPTIONS => {
            return Err(ApiError::bad_request(
                "cannot handle internal-only request operation",
            ))
        }
        ref m if m.as_str() == "LIST" => Op::List,
        _ => return Err(bare_405()),
    };
    let content_type = header_str(&parts.headers, "content-type").map(str::to_string);
    // Every method's body is read (GET bodies are ignored, as OpenBao does, but drained).
    // The web UI's calls carry the session cookie and its CSRF header instead of a token.
    // A refused session is answered once the body has been read (as an anonymous one).
    let (token, session_refused) = match extract_token(&parts.headers) {
        Some(t) => (Some(t), None),
        None => match crate::ui::session_token(core, &parts.headers) {
            Ok(t) => (t, None),
            Err(e) => (None, Some(e)),
        },
    };
    let ask = may_read_large(core, &path, token.as_deref().map(|t| t.as_str()));
    let raw_body = collect_body(body, &rules, content_length, ask).await?;
    *body_done = true;
    if let Some(e) = session_refused {
        return Err(e);
    }

    // Unauthenticated endpoints that also work while sealed.
    if let Some(r) = unauthenticated(core, &parts.method, &path, &query).await {
        return r.map(|resp| {
            let mut h = render(resp, request_id);
            if parts.method == Method::HEAD {
                *h.body_mut() = Body::empty();
            }
            h
        });
    }
    if path == body::RESTORE_PATH
        && matches!(parts.method, Method::PUT | Method::POST)
        && core.seal_config().await?.is_none()
    {
        // Into a new server: like `sys/init`, before any token exists.
        core.restore(&raw_body, false).await?;
        return Ok(render(Response::empty(), request_id));
    }
    if path == "sys/init" || path == "sys/unseal" {
        let (data, _) = parse_body(&raw_body)?;
        return sys_init_unseal(core, &parts.method, &path, data)
            .await
            .map(|r| render(r, request_id));
    }
    if core.is_sealed() {
        return Err(ApiError::sealed());
    }
    if op == Op::Patch
        && content_type
            .as_deref()
            .map(str::trim)
            .unwrap_or("")
            .is_empty()
    {
        return Err(ApiError::bad_request("mime: no media type"));
    }
    if op == Op::Patch
        && !content_type
            .as_deref()
            .map(|c| c.starts_with("application/merge-patch+json"))
            .unwrap_or(false)
    {
        return Err(ApiError::new(
            415,
            format!(
                "PATCH requires Content-Type of application/merge-patch+json, provided {}",
                content_type.as_deref().unwrap_or("")
            ),
        ));
    }
    let wrap_ttl = match header_str(&parts.headers, "x-vault-wrap-ttl") {
        Some(v) if !v.trim().is_empty() => {
            if v.trim().starts_with('-') {
                return Err(ApiError::bad_request(
                    "error parsing X-Vault-Wrap-TTL header: requested wrap ttl cannot be negative",
                ));
            }
            Some(crate::sys::wrapping::parse_ttl_header(v)?).filter(|t| *t > 0)
        }
        _ => None,
    };
    // A backup to restore is binary: handed over as it came.
    let restore_body = (path == body::RESTORE_PATH && op == Op::Update).then(|| raw_body.to_vec());
    // Like OpenBao, only methods that carry data parse the body.
    let (data, _) = if restore_body.is_some() {
        (Map::new(), false)
    } else if matches!(op, Op::Update | Op::Patch) {
        parse_body(&raw_body)?
    } else {
        (Map::new(), false)
    };
    drop(raw_body);
    if path == "sys/metrics" && core.config.unauthenticated_metrics_access && op == Op::Read {
        let lreq = Request {
            id: request_id.to_string(),
            op,
            path,
            data,
            query,
            token: None,
            remote,
            content_type,
            wrap_ttl: None,
            fields: None,
            captures: Vec::new(),
            validation_prefix: true,
            body: None,
        };
        return Ok(render(
            crate::metrics::response(&core.metrics, core.is_sealed(), &lreq),
            request_id,
        ));
    }
    if op == Op::Update && path.ends_with('/') {
        return Err(ApiError::bad_request(
            "cannot write to a path ending in '/'",
        ));
    }
    let stream_query = stream.map(|_| query.clone());
    let stream_token = stream.and(token.clone());
    let lreq = Request {
        id: request_id.to_string(),
        op,
        // A trailing `/` is kept: lists use it, and a KV read of `key/` is not `key`.
        path,
        data,
        query,
        token,
        remote,
        content_type,
        wrap_ttl,
        fields: None,
        captures: Vec::new(),
        validation_prefix: true,
        body: restore_body,
    };
    let stream_path = lreq.path.clone();
    let resp = core.handle(lreq).await?;
    if let (Some(kind), Some(token), Some(query), Op::Read) =
        (stream, stream_token, stream_query, op)
    {
        return match kind {
            streams::Kind::Sse => streams::open_sse(core, token, &query),
            streams::Kind::Vault => {
                streams::open_ws(core, token, &stream_path, &query, &parts.headers, upgrade)
            }
        };
    }
    let mut h = render(resp, request_id);
    if parts.method == Method::HEAD {
        *h.body_mut() = Body::empty();
    }
    Ok(h)
}

fn qflag(query: &[(String, String)], k: &str) -> Option<String> {
    query.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone())
}

async fn seal_status(core: &Core) -> ApiResult<Value> {
    let cfg = core.seal_config().await?;
    let (progress, nonce) = core.unseal_progress();
    let (t, n, kind) = match &cfg {
        Some(c) if c.kind == airlock_store::seal::SealKind::Keyfile => (1, 1, "keyfile"),
        Some(c) if c.kind == airlock_store::seal::SealKind::Transit => (1, 1, "transit"),
        Some(c) => (c.secret_threshold, c.secret_shares, "shamir"),
        None => (0, 0, "shamir"),
    };
    let mut v = json!({
        "type": kind,
        "initialized": cfg.is_some(),
        "sealed": core.is_sealed(),
        "t": t,
        "n": n,
        "progress": progress,
        "nonce": nonce,
        "recovery_seal": false,
        "version": VERSION,
        "commit_date": option_env!("AIRLOCK_COMMIT_DATE").unwrap_or("1970-01-01T00:00:00Z"),
        "migration": false,
        "storage_type": core.barrier.backend().kind(),
    });
    if let (Some(c), Value::Object(m)) = (core.cluster(), &mut v) {
        m.insert("cluster_name".into(), json!(c.name));
        m.insert("cluster_id".into(), json!(c.id));
    }
    Ok(v)
}

/// Serves `sys/health`, `sys/seal-status`, `sys/leader` and `GET sys/init`.
async fn unauthenticated(
    core: &Arc<Core>,
    method: &Method,
    path: &str,
    query: &[(String, String)],
) -> Option<ApiResult<Response>> {
    if !matches!(*method, Method::GET | Method::HEAD) {
        return match path {
            "sys/health" | "sys/seal-status" | "sys/leader" => Some(Err(ApiError {
                status: 405,
                errors: Vec::new(),
                body: None,
            })),
            _ => None,
        };
    }
    match path {
        "sys/health" => Some(match health_query_ok(query) {
            true => health(core, query).await,
            false => Err(ApiError {
                status: 400,
                errors: Vec::new(),
                body: None,
            }),
        }),
        "sys/seal-status" => Some(seal_status(core).await.map(Response::raw)),
        "sys/leader" if core.is_sealed() => Some(Err(ApiError::sealed())),
        // Single node, no HA: Vault answers only `ha_enabled: false`.
        "sys/leader" => Some(core.leader_status().await.map(Response::raw)),
        "sys/init" => Some(
            core.seal_config()
                .await
                .map(|c| Response::raw(json!({"initialized": c.is_some()}))),
        ),
        _ => None,
    }
}

/// OpenBao refuses unparsable status codes and flags with a bare 400. Airlock also refuses
/// codes outside 200–599: an informational status (1xx) would leave the client waiting for
/// a final response, and 101 would hand it the connection.
fn health_query_ok(query: &[(String, String)]) -> bool {
    query.iter().all(|(k, v)| {
        if k.ends_with("code") {
            v.parse::<i64>().is_ok_and(|c| (200..600).contains(&c))
        } else if k == "standbyok" {
            v.is_empty()
                || matches!(
                    v.as_str(),
                    "true"
                        | "false"
                        | "1"
                        | "0"
                        | "t"
                        | "f"
                        | "TRUE"
                        | "FALSE"
                        | "True"
                        | "False"
                        | "T"
                        | "F"
                )
        } else {
            true
        }
    })
}

async fn health(core: &Core, query: &[(String, String)]) -> ApiResult<Response> {
    let init = core
        .seal_config()
        .await
        .map(|c| c.is_some())
        .unwrap_or(false);
    let sealed = core.is_sealed();
    let code = |k: &str, d: u16| -> u16 {
        qflag(query, k)
            .and_then(|v| v.parse::<u16>().ok())
            .filter(|c| (200..600).contains(c))
            .unwrap_or(d)
    };
    let status = if !init {
        code("uninitcode", 501)
    } else if sealed {
        code("sealedcode", 503)
    } else if !core.ha.is_coherent() {
        // Serving nothing until its change feed is back: a load balancer takes it out.
        503
    } else {
        // Every node of a cluster serves reads and writes: each is "active" to a balancer.
        code("activecode", 200)
    };
    let mut v = json!({
        "initialized": init,
        "sealed": sealed,
        "standby": false,
        "replication_performance_mode": "disabled",
        "replication_dr_mode": "disabled",
        "server_time_utc": now_unix(),
        "version": VERSION,
    });
    if let (Some(c), Value::Object(m)) = (core.cluster(), &mut v) {
        m.insert("cluster_name".into(), json!(c.name));
        m.insert("cluster_id".into(), json!(c.id));
    }
    let mut r = Response::raw(v);
    r.status = Some(status);
    Ok(r)
}

async fn sys_init_unseal(
    core: &Arc<Core>,
    method: &Method,
    path: &str,
    data: Map<String, Value>,
) -> ApiResult<Response> {
    if !matches!(*method, Method::PUT | Method::POST) {
        return Err(ApiError {
            status: 405,
            errors: Vec::new(),
            body: None,
        });
    }
    let int = |k: &str| -> ApiResult<u8> {
        match data.get(k) {
            None | Some(Value::Null) => Ok(0),
            Some(v) => v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .filter(|n| *n <= 255)
                .map(|n| n as u8)
                .ok_or_else(|| ApiError::bad_request(format!("invalid {k}"))),
        }
    };
    if path == "sys/init" {
        let (shares, threshold) = (int("secret_shares")?, int("secret_threshold")?);
        let (keys, root) = core.initialize(shares, threshold, None, false).await?;
        use base64::Engine;
        let hexes: Vec<String> = keys.iter().map(|k| hex::encode(k.as_slice())).collect();
        let b64s: Vec<String> = keys
            .iter()
            .map(|k| base64::engine::general_purpose::STANDARD.encode(k.as_slice()))
            .collect();
        return Ok(Response::raw(json!({
            "keys": hexes,
            "keys_base64": b64s,
            "root_token": root.as_str(),
        })));
    }
    // sys/unseal
    if data.get("reset").and_then(Value::as_bool).unwrap_or(false) {
        core.reset_unseal();
        return seal_status(core).await.map(Response::raw);
    }
    let key = match data.get("key") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => {
            return Err(ApiError::bad_request(
                "'key' must be specified in request body as JSON, or 'reset' set to true",
            ))
        }
    };
    if core.seal_config().await?.is_none() {
        return Err(ApiError::bad_request("Vault is not initialized"));
    }
    let raw = {
        use base64::Engine;
        let t = key.trim();
        match hex::decode(t) {
            Ok(b) => b,
            Err(_) => base64::engine::general_purpose::STANDARD
                .decode(t)
                .map_err(|_| ApiError::bad_request("invalid key: must be hex or base64"))?,
        }
    };
    core.submit_unseal_key(Zeroizing::new(raw)).await?;
    seal_status(core).await.map(Response::raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_paths_are_rejected() {
        assert!(logical_path("/v1/secret/data/../x").is_err());
        assert!(logical_path("/v1/secret/data/%2e%2e/x").is_err());
        assert!(logical_path("/v1/secret//x").is_err());
        assert!(logical_path("/v1/secret/%ff").is_err());
        assert!(logical_path("/v1/a%0ab").is_err());
        assert_eq!(
            logical_path("/v1/secret/data/x/").unwrap(),
            "secret/data/x/"
        );
        assert!(logical_path(&format!("/v1/{}", "a".repeat(10_000))).is_err());
    }

    #[test]
    fn malformed_escapes_are_refused_in_paths_and_queries() {
        for bad in [
            "/v1/secret/%+f",
            "/v1/secret/%-1x",
            "/v1/secret/a%4",
            "/v1/s%",
        ] {
            assert!(logical_path(bad).is_err(), "{bad}");
        }
        assert!(parse_query(Some("list=%+f")).is_err());
        assert!(parse_query(Some("a%zz=1")).is_err());
        assert_eq!(
            parse_query(Some("a=b+c%2B&list=true")).unwrap(),
            [("a".into(), "b c+".into()), ("list".into(), "true".into())]
        );
    }
}
