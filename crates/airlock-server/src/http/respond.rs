//! Rendering: a logical response or an error as an HTTP response in Vault's shapes (the
//! envelope, raw bodies, `{"errors": [...]}`). The one place an `ApiError` becomes a status
//! and a body.

use bytes::Bytes;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::StatusCode;
use serde::Serialize;
use serde_json::{json, Value};

use super::Body;
use crate::error::ApiError;
use crate::logical::{AuthBlock, Response};

pub type HttpResponse = hyper::Response<Body>;

#[derive(Serialize)]
struct Envelope<'a> {
    request_id: &'a str,
    lease_id: &'a str,
    renewable: bool,
    lease_duration: i64,
    data: &'a Option<Value>,
    wrap_info: Option<Value>,
    warnings: Option<&'a Vec<String>>,
    auth: &'a Option<AuthBlock>,
}

pub fn base_response(status: u16, body: Bytes, content_type: &'static str) -> HttpResponse {
    let mut r = hyper::Response::new(Body::full(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        "strict-transport-security",
        HeaderValue::from_static("max-age=31536000; includeSubDomains"),
    );
    r
}

pub fn json_response(status: u16, v: &Value) -> HttpResponse {
    let body = serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec());
    base_response(status, Bytes::from(body), "application/json")
}

/// Renders an error: `{"errors":[...]}` or the error's own body.
pub fn error_response(e: &ApiError, request_id: &str) -> HttpResponse {
    match &e.body {
        // Vault answers some 404s with no body at all.
        Some(Value::Null) => base_response(e.status, Bytes::new(), "application/json"),
        Some(Value::Object(data_and_more)) => {
            let data = Some(Value::Object(data_and_more.clone()));
            let env = Envelope {
                request_id,
                lease_id: "",
                renewable: false,
                lease_duration: 0,
                data: &data,
                wrap_info: None,
                warnings: None,
                auth: &None,
            };
            json_response(e.status, &serde_json::to_value(&env).unwrap_or(Value::Null))
        }
        _ => json_response(e.status, &json!({ "errors": e.errors })),
    }
}

pub(super) fn render(resp: Response, request_id: &str) -> HttpResponse {
    // Vault leaves the request id out of wrapped responses.
    let request_id = if resp.wrap_info.is_some() {
        ""
    } else {
        request_id
    };
    if let Some(b) = resp.bytes {
        return base_response(
            resp.status.unwrap_or(200),
            Bytes::from(b),
            resp.content_type.unwrap_or("application/octet-stream"),
        );
    }
    if let Some(t) = resp.text {
        return base_response(
            resp.status.unwrap_or(200),
            Bytes::from(t),
            resp.content_type.unwrap_or("text/plain; version=0.0.4"),
        );
    }
    if let Some(raw) = &resp.raw {
        return json_response(resp.status.unwrap_or(200), raw);
    }
    if resp.is_empty() && resp.lease_duration == 0 {
        let mut r = base_response(resp.status.unwrap_or(204), Bytes::new(), "application/json");
        if r.status() == StatusCode::NO_CONTENT {
            r.headers_mut().remove(CONTENT_TYPE);
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        return r;
    }
    let env = Envelope {
        request_id,
        lease_id: &resp.lease_id,
        renewable: resp.renewable,
        lease_duration: resp.lease_duration,
        data: &resp.data,
        wrap_info: resp.wrap_info.clone(),
        warnings: if resp.warnings.is_empty() {
            None
        } else {
            Some(&resp.warnings)
        },
        auth: &resp.auth,
    };
    if !resp.top_level {
        let body = serde_json::to_vec(&env).unwrap_or_else(|_| b"{}".to_vec());
        return base_response(
            resp.status.unwrap_or(200),
            Bytes::from(body),
            "application/json",
        );
    }
    let mut v = serde_json::to_value(&env).unwrap_or(Value::Null);
    {
        if let (Value::Object(top), Some(Value::Object(d))) = (&mut v, &resp.data) {
            for (k, val) in d {
                if !top.contains_key(k) {
                    top.insert(k.clone(), val.clone());
                }
            }
        }
    }
    json_response(resp.status.unwrap_or(200), &v)
}
