//! The web UI's edge: `/` redirects to `/ui/`; `/ui/assets/*` are the compiled-in files
//! (`airlock-ui`); `/ui/api/session` signs in (token, userpass, JWT, OIDC callback), tells
//! the page who it is, and signs out; every other `/ui/...` address is the shell, whose
//! scripts route by the URL's fragment. The pages call the ordinary `/v1/` API with the
//! session cookie and the CSRF header (see [`session_token`]); nothing here bypasses the
//! pipeline: sign-ins are the auth methods' own logins, and are audited as such.
//!
//! Every response here carries the UI's security headers ([`harden`]): a Content-Security-
//! Policy allowing only this origin's scripts and styles (no inline script can run),
//! `frame-ancestors 'none'`, `nosniff`, `no-referrer`.

pub mod session;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::Method;
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use crate::core::{new_uuid, Core};
use crate::error::{ApiError, ApiResult};
use crate::http::respond::{base_response, error_response, json_response, HttpResponse};
use crate::logical::{Op, Request};

/// The policy every UI response carries.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'";

/// Largest sign-in body.
const MAX_BODY: usize = 64 * 1024;

/// Whether `path` is the UI's (or the root, which redirects to it).
pub fn owns(path: &str) -> bool {
    path == "/" || path == "/ui" || path.starts_with("/ui/")
}

/// Adds the UI's security headers.
pub fn harden(mut r: HttpResponse) -> HttpResponse {
    let h = r.headers_mut();
    for (k, v) in [
        ("content-security-policy", CSP),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
        (
            "permissions-policy",
            "camera=(), microphone=(), geolocation=(), clipboard-read=()",
        ),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    r
}

fn redirect(to: &'static str) -> HttpResponse {
    let mut r = base_response(307, Bytes::new(), "text/plain; charset=utf-8");
    r.headers_mut()
        .insert(hyper::header::LOCATION, HeaderValue::from_static(to));
    r
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Serves one UI request.
pub async fn serve(
    core: &Arc<Core>,
    req: hyper::Request<Incoming>,
    remote: Option<SocketAddr>,
) -> HttpResponse {
    let request_id = new_uuid();
    let r = match route(core, req, remote).await {
        Ok(r) => r,
        Err(e) => error_response(&e, &request_id),
    };
    harden(r)
}

async fn route(
    core: &Arc<Core>,
    req: hyper::Request<Incoming>,
    remote: Option<SocketAddr>,
) -> ApiResult<HttpResponse> {
    let path = req.uri().path().to_string();
    if path == "/" || path == "/ui" {
        return Ok(redirect("/ui/"));
    }
    if path == "/ui/api/session" {
        return session_api(core, req, remote).await;
    }
    if path.starts_with("/ui/api/") {
        return Err(ApiError::not_found());
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return Err(ApiError {
            status: 405,
            errors: Vec::new(),
            body: None,
        });
    }
    let asset = match path.strip_prefix("/ui/assets/") {
        Some(name) => airlock_ui::get(name).ok_or_else(ApiError::not_found)?,
        None => airlock_ui::index(),
    };
    let etag = airlock_ui::etag(asset);
    if header(req.headers(), "if-none-match") == Some(etag) {
        let mut r = base_response(304, Bytes::new(), asset.content_type);
        cache_headers(&mut r, etag);
        return Ok(r);
    }
    let body = if req.method() == Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from_static(asset.body)
    };
    let mut r = base_response(200, body, asset.content_type);
    cache_headers(&mut r, etag);
    Ok(r)
}

fn cache_headers(r: &mut HttpResponse, etag: &str) {
    let h = r.headers_mut();
    // Revalidated on every load: a new binary's files are never mixed with old ones.
    h.insert(
        hyper::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(hyper::header::ETAG, v);
    }
}

fn tls(core: &Core) -> bool {
    core.config.listener.tls_cert_file.is_some()
}

/// The token a `/v1/` request carries by its session cookie, if it has one. A cookie
/// without the session's CSRF header is refused (403), so a cross-site form or a link can
/// never act with the session.
pub fn session_token(core: &Core, h: &HeaderMap) -> ApiResult<Option<Zeroizing<String>>> {
    let Some(id) = header(h, "cookie").and_then(session::cookie_id) else {
        return Ok(None);
    };
    match core
        .ui_sessions
        .resolve(id, header(h, session::CSRF_HEADER), false)
    {
        Ok(r) => Ok(Some(r.token)),
        Err(session::Refusal::Csrf) => Err(csrf_refused()),
        // An ended session: the request is anonymous (and is refused as such).
        Err(session::Refusal::Unknown) => Ok(None),
    }
}

fn csrf_refused() -> ApiError {
    ApiError::new(403, "missing or invalid CSRF token")
}

/// A state-changing sign-in call must come from this origin: `Origin`, when the browser
/// sends it, names this host (`Host`, or HTTP/2's `:authority`), and the body is JSON
/// (which a cross-site form cannot send).
fn same_origin(h: &HeaderMap, authority: Option<&str>) -> bool {
    let json = header(h, "content-type").is_some_and(|c| c.starts_with("application/json"));
    let host = header(h, "host").or(authority);
    let origin_ok = match (header(h, "origin"), host) {
        (None, _) => true,
        (Some(o), Some(host)) => o
            .split_once("://")
            .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host)),
        (Some(_), None) => false,
    };
    let site_ok = header(h, "sec-fetch-site").is_none_or(|s| s == "same-origin" || s == "none");
    json && origin_ok && site_ok
}

async fn read_body(body: Incoming) -> ApiResult<Bytes> {
    let limited = http_body_util::Limited::new(body, MAX_BODY);
    Ok(
        tokio::time::timeout(Duration::from_secs(10), limited.collect())
            .await
            .map_err(|_| ApiError::bad_request("request body took too long"))?
            .map_err(|_| ApiError::new(413, "request body too large"))?
            .to_bytes(),
    )
}

fn json_object(bytes: &[u8]) -> ApiResult<Map<String, Value>> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(ApiError::bad_request("the body must be a JSON object")),
    }
}

fn text<'a>(m: &'a Map<String, Value>, k: &str) -> &'a str {
    m.get(k).and_then(Value::as_str).unwrap_or("")
}

/// A mount name for a sign-in: a plain path segment or two.
fn mount_name<'a>(m: &'a Map<String, Value>, default: &'a str) -> ApiResult<&'a str> {
    let name = text(m, "mount").trim_matches('/');
    let name = if name.is_empty() { default } else { name };
    let ok = name.len() <= 128
        && name
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != ".." && s.bytes().all(plain_byte));
    if ok {
        Ok(name)
    } else {
        Err(ApiError::bad_request("invalid mount"))
    }
}

fn plain_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

fn logical(
    op: Op,
    path: String,
    data: Map<String, Value>,
    query: Vec<(String, String)>,
    token: Option<Zeroizing<String>>,
    remote: Option<SocketAddr>,
) -> Request {
    let mut r = Request::new(op, path);
    r.id = new_uuid();
    r.data = data;
    r.query = query;
    r.token = token;
    r.remote = remote;
    r.content_type = Some("application/json".into());
    r
}

/// Signs in with one of the methods and returns the token it gave.
async fn sign_in(
    core: &Arc<Core>,
    m: &Map<String, Value>,
    remote: Option<SocketAddr>,
) -> ApiResult<Zeroizing<String>> {
    let method = text(m, "method");
    let (op, path, data, query) = match method {
        "token" => {
            let t = text(m, "token").trim();
            if t.is_empty() {
                return Err(ApiError::bad_request("a token is required"));
            }
            return Ok(Zeroizing::new(t.to_string()));
        }
        "userpass" | "ldap" => {
            let user = text(m, "username");
            if user.is_empty() || user.len() > 256 || user.contains('/') {
                return Err(ApiError::bad_request("invalid username"));
            }
            let mount = mount_name(m, method)?;
            let mut d = Map::new();
            d.insert("password".into(), json!(text(m, "password")));
            (
                Op::Update,
                format!("auth/{mount}/login/{user}"),
                d,
                Vec::new(),
            )
        }
        "jwt" => {
            let mount = mount_name(m, "jwt")?;
            let mut d = Map::new();
            d.insert("jwt".into(), json!(text(m, "jwt")));
            if !text(m, "role").is_empty() {
                d.insert("role".into(), json!(text(m, "role")));
            }
            (Op::Update, format!("auth/{mount}/login"), d, Vec::new())
        }
        "oidc" => {
            let mount = mount_name(m, "oidc")?;
            let q = ["state", "code", "client_nonce"]
                .iter()
                .filter(|k| !text(m, k).is_empty())
                .map(|k| (k.to_string(), text(m, k).to_string()))
                .collect();
            (
                Op::Read,
                format!("auth/{mount}/oidc/callback"),
                Map::new(),
                q,
            )
        }
        _ => return Err(ApiError::bad_request("unknown sign-in method")),
    };
    let resp = core
        .handle(logical(op, path, data, query, None, remote))
        .await?;
    resp.auth
        .map(|a| Zeroizing::new(a.client_token))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::bad_request("the sign-in gave no token"))
}

/// Who a token is (`auth/token/lookup-self`), for the page; an error if it is not valid.
async fn whoami(
    core: &Arc<Core>,
    token: &Zeroizing<String>,
    remote: Option<SocketAddr>,
) -> ApiResult<Value> {
    let resp = core
        .handle(logical(
            Op::Read,
            "auth/token/lookup-self".into(),
            Map::new(),
            Vec::new(),
            Some(token.clone()),
            remote,
        ))
        .await?;
    let d = resp.data.unwrap_or(Value::Null);
    Ok(json!({
        "display_name": d["display_name"],
        "policies": d["policies"],
        "accessor": d["accessor"],
        "ttl": d["ttl"],
        "expire_time": d["expire_time"],
    }))
}

/// A 401 that also clears the browser's cookie of a session that no longer exists.
fn ended(core: &Core, why: &str) -> HttpResponse {
    let mut r = error_response(&ApiError::new(401, why), &new_uuid());
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie("", tls(core))) {
        r.headers_mut().insert(hyper::header::SET_COOKIE, v);
    }
    r
}

async fn session_api(
    core: &Arc<Core>,
    req: hyper::Request<Incoming>,
    remote: Option<SocketAddr>,
) -> ApiResult<HttpResponse> {
    if core.is_sealed() {
        return Err(ApiError::sealed());
    }
    let (parts, body) = req.into_parts();
    let h = &parts.headers;
    let id = header(h, "cookie").and_then(session::cookie_id);
    match parts.method {
        Method::GET => {
            let Some(id) = id else {
                return Err(ApiError::new(401, "not signed in"));
            };
            let Ok(s) = core.ui_sessions.resolve(id, None, true) else {
                return Ok(ended(core, "not signed in"));
            };
            match whoami(core, &s.token, remote).await {
                Ok(mut who) => {
                    who["csrf"] = json!(s.csrf.as_str());
                    Ok(json_response(200, &who))
                }
                Err(_) => {
                    core.ui_sessions.end(id);
                    Ok(ended(core, "the session's token is no longer valid"))
                }
            }
        }
        Method::POST => {
            // The body is read before any refusal, so the connection stays usable.
            let raw = read_body(body).await?;
            if !same_origin(h, parts.uri.authority().map(|a| a.as_str())) {
                return Err(ApiError::new(403, "cross-origin sign-in refused"));
            }
            let m = json_object(&raw)?;
            let token = sign_in(core, &m, remote).await?;
            let mut who = whoami(core, &token, remote)
                .await
                .map_err(|_| ApiError::new(403, "permission denied"))?;
            let ttl = Duration::from_secs(who["ttl"].as_u64().unwrap_or(0));
            let (sid, csrf) = core
                .ui_sessions
                .create(&token, ttl)
                .ok_or_else(|| ApiError::new(503, "too many sessions on this node"))?;
            who["csrf"] = json!(csrf.as_str());
            let mut r = json_response(200, &who);
            if let Ok(v) = HeaderValue::from_str(&session::set_cookie(&sid, tls(core))) {
                r.headers_mut().insert(hyper::header::SET_COOKIE, v);
            }
            Ok(r)
        }
        Method::DELETE => {
            let Some(id) = id else {
                return Err(ApiError::new(401, "not signed in"));
            };
            let s = core
                .ui_sessions
                .resolve(id, header(h, session::CSRF_HEADER), false)
                .map_err(|e| match e {
                    session::Refusal::Csrf => csrf_refused(),
                    session::Refusal::Unknown => ApiError::new(401, "not signed in"),
                })?;
            let revoke = parts
                .uri
                .query()
                .is_some_and(|q| q.split('&').any(|kv| kv == "revoke_token=true"));
            if revoke {
                core.handle(logical(
                    Op::Update,
                    "auth/token/revoke-self".into(),
                    Map::new(),
                    Vec::new(),
                    Some(s.token.clone()),
                    remote,
                ))
                .await?;
            }
            core.ui_sessions.end(id);
            let mut r = base_response(204, Bytes::new(), "application/json");
            if let Ok(v) = HeaderValue::from_str(&session::set_cookie("", tls(core))) {
                r.headers_mut().insert(hyper::header::SET_COOKIE, v);
            }
            Ok(r)
        }
        _ => Err(ApiError {
            status: 405,
            errors: Vec::new(),
            body: None,
        }),
    }
}
