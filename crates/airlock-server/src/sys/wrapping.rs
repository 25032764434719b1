//! Response wrapping: with `X-Vault-Wrap-TTL`, a response is stored behind a single-use
//! wrapping token and the client receives only `wrap_info`. Whoever unwraps first gets the
//! response; a second unwrap fails, so an intercepted token is noticed. This is how a trusted
//! orchestrator hands an AppRole secret id to a workload without seeing it itself.
//!
//! Storage: `wrap/<hmac(wrapping token)>` → the response (encrypted like every value).
//! The wrapping token is an orphan with the `response-wrapping` policy (which grants nothing
//! elsewhere), one use, and the wrap TTL; expired entries are purged by housekeeping.

use std::sync::Arc;

use airlock_store::BarrierOp;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::core::{now_nanos, now_unix, rfc3339_nanos, Core};
use crate::error::{ApiError, ApiResult};
use crate::logical::{AuthBlock, Request, Response};
use crate::token::CreateParams;

#[derive(Serialize, Deserialize)]
struct Stored {
    creation_path: String,
    creation_nanos: i128,
    ttl: i64,
    expire: i64,
    data: Option<Value>,
    auth: Option<AuthBlock>,
    lease_id: String,
    lease_duration: i64,
    renewable: bool,
    warnings: Vec<String>,
}

const INVALID: &str = "wrapping token is not valid or does not exist";

fn wrap_key(h: &str) -> String {
    format!("wrap/{h}")
}

/// Expiry index: `wrap-due/<unix secs, 12 digits>-<hmac>`, sorted by time.
fn due_key(expire: i64, h: &str) -> String {
    format!("wrap-due/{:012}-{h}", expire.max(0))
}

/// The longest wrap TTL accepted (ten years).
pub const MAX_WRAP_TTL: i64 = 87_600 * 3600;

/// `X-Vault-Wrap-TTL`: seconds or a Go duration, at most [`MAX_WRAP_TTL`].
pub fn parse_ttl_header(v: &str) -> ApiResult<i64> {
    let ttl = airlock_core::duration::parse_duration_value(&Value::String(v.trim().to_string()))
        .map(|s| s as i64)
        .map_err(|_| {
            ApiError::bad_request("error parsing X-Vault-Wrap-TTL header: time: invalid duration")
        })?;
    if ttl > MAX_WRAP_TTL {
        return Err(ApiError::bad_request(
            "error parsing X-Vault-Wrap-TTL header: requested wrap ttl is longer than 87600h",
        ));
    }
    Ok(ttl)
}

/// Replaces `resp` by its wrapping.
pub async fn wrap(
    core: &Arc<Core>,
    resp: Response,
    ttl: i64,
    creation_path: &str,
) -> ApiResult<Response> {
    let wrapped_accessor = resp
        .wrapped_accessor
        .clone()
        .or_else(|| resp.auth.as_ref().map(|a| a.accessor.clone()));
    let stored = Stored {
        creation_path: creation_path.to_string(),
        creation_nanos: now_nanos(),
        ttl,
        expire: now_unix() + ttl,
        data: resp.data,
        auth: resp.auth,
        lease_id: resp.lease_id,
        lease_duration: resp.lease_duration,
        renewable: resp.renewable,
        warnings: resp.warnings,
    };
    store(core, stored, wrapped_accessor).await
}

async fn store(
    core: &Arc<Core>,
    stored: Stored,
    wrapped_accessor: Option<String>,
) -> ApiResult<Response> {
    let params = CreateParams {
        policies: vec!["response-wrapping".into()],
        display_name: "token".into(),
        num_uses: 1,
        ttl: Some(stored.ttl),
        explicit_max_ttl: Some(stored.ttl),
        renewable: false,
        path: stored.creation_path.clone(),
        ttl_uncapped: true,
        ..Default::default()
    };
    let (token, entry, _) = core.tokens.create(params, None).await?;
    core.barrier
        .commit(vec![
            BarrierOp::Put(
                wrap_key(&entry.id_hash),
                serde_json::to_vec(&stored).map_err(|e| ApiError::internal(&e))?,
            ),
            BarrierOp::Put(due_key(stored.expire, &entry.id_hash), Vec::new()),
        ])
        .await?;
    let mut info = json!({
        "token": token.as_str(),
        "accessor": entry.accessor,
        "ttl": stored.ttl,
        "creation_time": rfc3339_nanos(stored.creation_nanos),
        "creation_path": stored.creation_path,
    });
    if let Some(a) = wrapped_accessor {
        info["wrapped_accessor"] = json!(a);
    }
    Ok(Response {
        wrap_info: Some(info),
        ..Default::default()
    })
}

/// Takes the stored response for `token` out (single use): the entry and the token go.
async fn take(core: &Arc<Core>, token: &str) -> ApiResult<Stored> {
    let h = core.tokens.hmac(token)?;
    let k = wrap_key(&h);
    let g = core.root.lock(&k).await?;
    let stored: Stored = core
        .barrier
        .get_json(&k)
        .await?
        .ok_or_else(|| ApiError::bad_request(INVALID))?;
    let alive = core.tokens.lookup(token).await?.is_some();
    // Conditional on the entry read: of two nodes unwrapping at once, one gets it.
    g.commit(vec![
        BarrierOp::Delete(k),
        BarrierOp::Delete(due_key(stored.expire, &h)),
    ])
    .await?;
    core.tokens.revoke_tree(&h).await?;
    if !alive || stored.expire <= now_unix() {
        return Err(ApiError::bad_request(INVALID));
    }
    Ok(stored)
}

pub async fn unwrap(core: &Arc<Core>, token: &str) -> ApiResult<Response> {
    let s = take(core, token).await?;
    Ok(Response {
        data: s.data,
        auth: s.auth,
        lease_id: s.lease_id,
        lease_duration: s.lease_duration,
        renewable: s.renewable,
        warnings: s.warnings,
        ..Default::default()
    })
}

pub async fn lookup(core: &Arc<Core>, token: &str) -> ApiResult<Response> {
    let h = core.tokens.hmac(token)?;
    let stored: Option<Stored> = core.barrier.get_json(&wrap_key(&h)).await?;
    let alive = core.tokens.lookup(token).await?.is_some();
    match stored {
        Some(s) if alive && s.expire > now_unix() => Ok(Response::data(json!({
            "creation_path": s.creation_path,
            "creation_time": rfc3339_nanos(s.creation_nanos),
            "creation_ttl": s.ttl,
        }))),
        _ => Err(ApiError::bad_request(INVALID)),
    }
}

/// A new wrapping token for the same response and TTL; the old one stops working.
pub async fn rewrap(core: &Arc<Core>, token: &str, ttl: Option<i64>) -> ApiResult<Response> {
    let mut s = take(core, token).await?;
    // A new TTL may shorten the wrapping, never extend it.
    if let Some(t) = ttl {
        s.ttl = s.ttl.min(t);
    }
    s.creation_nanos = now_nanos();
    s.expire = now_unix() + s.ttl;
    let acc = s.auth.as_ref().map(|a| a.accessor.clone());
    store(core, s, acc).await
}

/// The wrapping token of a request: the body's `token`, else the request's own token.
fn token_of(req: &Request) -> ApiResult<Option<String>> {
    Ok(req
        .str_field("token")?
        .filter(|t| !t.is_empty())
        .or_else(|| req.token.as_ref().map(|t| t.to_string())))
}

fn pre_auth_kind(req: &Request) -> Option<u8> {
    let body_token = req
        .data
        .get("token")
        .and_then(Value::as_str)
        .map(|s| !s.is_empty())
        .unwrap_or(false);
    match req.path.as_str() {
        "sys/wrapping/lookup" => Some(0),
        "sys/wrapping/unwrap" if !body_token => Some(1),
        "sys/wrapping/rewrap" if !body_token => Some(2),
        _ => None,
    }
}

/// Wrapping endpoints that authenticate with the wrapping token itself (no ACL): `lookup`
/// always, `unwrap` and `rewrap` when the body names no other token.
pub fn is_pre_auth(req: &Request) -> bool {
    pre_auth_kind(req).is_some()
}

pub async fn pre_auth(core: &Arc<Core>, req: &Request) -> ApiResult<Response> {
    let f = pre_auth_kind(req).ok_or_else(ApiError::unsupported_path)?;
    let tok = token_of(req)?
        .ok_or_else(|| ApiError::new(403, "error validating wrapping token: token is empty"))?;
    match f {
        0 => lookup(core, &tok).await,
        1 => unwrap(core, &tok).await,
        _ => rewrap(core, &tok, req.wrap_ttl).await,
    }
}

/// Drops entries whose wrapping token has expired, walking the expiry index in time order
/// (only due entries are read). Returns how many.
pub async fn purge(core: &Core, now: i64) -> ApiResult<usize> {
    let mut n = 0;
    let mut due = core.barrier.list("wrap-due/").await?;
    due.sort();
    for k in due {
        let Some((t, h)) = k.split_once('-') else {
            continue;
        };
        let Ok(t) = t.parse::<i64>() else {
            continue;
        };
        if t > now {
            break;
        }
        core.barrier
            .commit(vec![
                BarrierOp::Delete(wrap_key(h)),
                BarrierOp::Delete(format!("wrap-due/{k}")),
            ])
            .await?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_header() {
        assert_eq!(parse_ttl_header("120").unwrap(), 120);
        assert_eq!(parse_ttl_header("5m").unwrap(), 300);
        assert_eq!(parse_ttl_header("1000h").unwrap(), 3_600_000);
        assert!(parse_ttl_header("100000h").is_err());
        assert_eq!(due_key(5, "ab"), "wrap-due/000000000005-ab");
        assert_eq!(
            parse_ttl_header("abc").unwrap_err().errors[0],
            "error parsing X-Vault-Wrap-TTL header: time: invalid duration"
        );
    }
}
