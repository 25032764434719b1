//! `sys/broker/approvals`: human approval of brokered requests. State lives behind the
//! barrier, so a pending approval survives a broker restart and every `broker serve` replica
//! sees the same decisions.
//!
//! - `POST sys/broker/approvals` (a broker asks): `{agent, binding, method, host, path,
//!   digest, mode, window, timeout}` → the approval for that agent, binding and digest
//!   (`mode = "request"`: the exact request; `"window"`: any request of the binding while an
//!   approval's window lasts), created pending if there is none.
//! - `LIST sys/broker/approvals`, `GET sys/broker/approvals/<id>`: what is waiting and decided.
//! - `POST sys/broker/approvals/<id>/approve | deny` `{reason}`: a human decides (the request
//!   is audited like every API call, before the broker can forward anything).
//! - `POST sys/broker/approvals/<id>/use`: the broker consumes a per-request approval, which
//!   then cannot let another request through.
//!
//! A pending approval expires at its `timeout`; decided ones are removed a day after.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use airlock_store::BarrierOp;

use crate::core::{new_uuid, now_unix, Caller, Core};
use crate::error::{ApiError, ApiResult};
use crate::logical::{Request, Response};

const PREFIX: &str = "broker/approvals/";
/// How long decided approvals are kept.
const KEEP_SECS: i64 = 86_400;

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Approval {
    pub id: String,
    pub agent: String,
    pub binding: String,
    pub method: String,
    pub host: String,
    pub path: String,
    pub digest: String,
    /// `request` or `window`.
    pub mode: String,
    pub window: i64,
    /// `pending`, `approved`, `denied`, `expired` or `used`.
    pub status: String,
    pub created: i64,
    /// Pending: when it times out. Approved window: when the window ends.
    pub expires: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Approval {
    /// The status as of `now` (a pending one past its timeout is expired; an approved window
    /// past its end is expired).
    fn settle(&mut self, now: i64) {
        let lapsed = now >= self.expires;
        match self.status.as_str() {
            "pending" if lapsed => self.status = "expired".into(),
            "approved" if self.mode == "window" && lapsed => self.status = "expired".into(),
            _ => {}
        }
    }
}

fn text<'a>(req: &'a Request, k: &str, max: usize) -> ApiResult<&'a str> {
    req.data
        .get(k)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= max)
        .ok_or_else(|| ApiError::bad_request(format!("`{k}` is required (at most {max} bytes)")))
}

fn secs(req: &Request, k: &str, default: i64, max: i64) -> ApiResult<i64> {
    match req.data.get(k) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_i64()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| ApiError::bad_request(format!("`{k}` must be 1-{max} seconds"))),
    }
}

async fn load(core: &Core, id: &str) -> ApiResult<Approval> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(ApiError::not_found());
    }
    core.barrier
        .get_json::<Approval>(&format!("{PREFIX}{id}"))
        .await?
        .ok_or_else(ApiError::not_found)
}

async fn save(core: &Core, a: &Approval) -> ApiResult<()> {
    core.barrier
        .commit(vec![BarrierOp::Put(
            format!("{PREFIX}{}", a.id),
            serde_json::to_vec(a).map_err(|e| ApiError::internal(&e))?,
        )])
        .await?;
    Ok(())
}

/// Every stored approval, settled as of now; decided ones older than a day are removed.
async fn all(core: &Core) -> ApiResult<Vec<Approval>> {
    let now = now_unix();
    let mut out = Vec::new();
    let mut gone = Vec::new();
    for id in core.barrier.list(PREFIX).await? {
        let Some(mut a) = core
            .barrier
            .get_json::<Approval>(&format!("{PREFIX}{id}"))
            .await?
        else {
            continue;
        };
        a.settle(now);
        if a.status != "pending"
            && a.status != "approved"
            && now - a.expires.max(a.created) > KEEP_SECS
        {
            gone.push(BarrierOp::Delete(format!("{PREFIX}{id}")));
            continue;
        }
        out.push(a);
    }
    if !gone.is_empty() {
        core.barrier.commit(gone).await?;
    }
    out.sort_by_key(|a| a.created);
    Ok(out)
}

/// `POST sys/broker/approvals`: the approval a broker needs, created if there is none.
pub async fn ask(core: &Core, req: &Request) -> ApiResult<Response> {
    let agent = text(req, "agent", 64)?;
    let binding = text(req, "binding", 64)?;
    let digest = text(req, "digest", 128)?;
    let mode = match req
        .data
        .get("mode")
        .and_then(Value::as_str)
        .unwrap_or("request")
    {
        m @ ("request" | "window") => m,
        _ => return Err(ApiError::bad_request("`mode` must be request or window")),
    };
    let window = secs(req, "window", 900, 30 * 86_400)?;
    let timeout = secs(req, "timeout", 120, 3600)?;
    let now = now_unix();
    let existing = all(core).await?.into_iter().rev().find(|a| {
        a.agent == agent
            && a.binding == binding
            && a.mode == mode
            && (mode == "window" || a.digest == digest)
            && (a.status == "pending" || a.status == "approved")
    });
    if let Some(a) = existing {
        return Ok(Response::data(json!(a)));
    }
    let a = Approval {
        id: new_uuid(),
        agent: agent.into(),
        binding: binding.into(),
        method: text(req, "method", 16)?.into(),
        host: text(req, "host", 256)?.into(),
        path: text(req, "path", 2048)?.into(),
        digest: digest.into(),
        mode: mode.into(),
        window,
        status: "pending".into(),
        created: now,
        expires: now + timeout,
        decided_by: None,
        reason: None,
    };
    save(core, &a).await?;
    tracing::info!(id = %a.id, agent = %a.agent, binding = %a.binding, host = %a.host, "broker: a request waits for approval");
    Ok(Response::data(json!(a)))
}

pub async fn list(core: &Core) -> ApiResult<Response> {
    let ids: Vec<String> = all(core).await?.into_iter().map(|a| a.id).collect();
    if ids.is_empty() {
        return Err(ApiError::not_found());
    }
    Ok(Response::list(ids))
}

pub async fn read(core: &Core, id: &str) -> ApiResult<Response> {
    let mut a = load(core, id).await?;
    a.settle(now_unix());
    Ok(Response::data(json!(a)))
}

/// `approve`, `deny` or `use` of one approval.
pub async fn decide(
    core: &Core,
    req: &Request,
    caller: &Caller,
    id: &str,
    action: &str,
) -> ApiResult<Response> {
    let _g = core.root.lock(&format!("{PREFIX}{id}")).await?;
    let mut a = load(core, id).await?;
    let now = now_unix();
    a.settle(now);
    let who = caller
        .entry
        .as_ref()
        .map(|e| e.display_name.clone())
        .unwrap_or_else(|| "root".into());
    let reason = req
        .data
        .get("reason")
        .and_then(Value::as_str)
        .map(|r| r.chars().take(512).collect::<String>());
    match (action, a.status.as_str()) {
        ("approve", "pending") => {
            a.status = "approved".into();
            if a.mode == "window" {
                a.expires = now + a.window;
            }
        }
        ("deny", "pending") => a.status = "denied".into(),
        ("use", "approved") if a.mode == "request" => a.status = "used".into(),
        ("use", "approved") => {}
        (_, s) => {
            return Err(ApiError::bad_request(format!(
                "approval {id} is {s}: it cannot be {}",
                match action {
                    "approve" => "approved",
                    "deny" => "denied",
                    _ => "used",
                }
            )))
        }
    }
    if action != "use" {
        a.decided_by = Some(who);
        a.reason = reason;
    }
    save(core, &a).await?;
    Ok(Response::data(json!(a)))
}
