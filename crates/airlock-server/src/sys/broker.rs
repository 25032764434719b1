//! `sys/broker/*`: Airlock's own API for the credential broker (not a Vault path; Vault
//! clients never see it). Bindings and agents are validated with the same code as profile
//! files and stored behind the barrier; policies on these paths decide who may change them.
//!
//! - `sys/broker/bindings[/<name>]`: LIST, read, write, delete.
//! - `sys/broker/agents[/<name>]`: LIST, read, write (`bindings`, `egress`, `allow_hosts`), delete.
//! - `sys/broker/agents/<name>/credential`: write `{ttl}` → a proxy credential for that agent
//!   and the agent's placeholders (the environment an agent needs; never a real secret).
//! - `sys/broker/ca`: read the broker CA certificate (public).
//! - `sys/broker/keys`: read (sudo) the CA key and the credential/placeholder keys for
//!   `airlock broker serve`; created on first read, stored encrypted.
//! - `sys/broker/audit`: write a batch of broker events into the audit log.
//! - `sys/broker/approvals[/<id>[/approve|deny|use]]`: human approval of brokered requests
//!   (see `approvals.rs`).
//! - `sys/broker/honeytokens[/<name>]`: LIST, read, write (`value`, or `kind` to mint a
//!   decoy of that shape; `env`, `description`), delete. A honeytoken presented to the API as
//!   a token is refused like any unknown token, and raises a high-severity `honeytoken`
//!   audit entry and `airlock_honeytoken_uses_total`.

use std::sync::Arc;

use airlock_broker::config;
use airlock_core::policy::Operation;
use airlock_store::BarrierOp;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use airlock_logical::framework::{self, PathSpec};

use crate::core::{now_unix, Caller, Core};
use crate::error::{ApiError, ApiResult};
use crate::logical::{Op, Request, Response};

const BINDINGS: &str = "broker/bindings/";
const AGENTS: &str = "broker/agents/";
const KEYS: &str = "broker/keys";
const HONEYTOKENS: &str = "broker/honeytokens/";

/// Called for a presented token that is not a token: if it is a registered honeytoken, a
/// high-severity audit entry and a metric (the caller is refused either way).
pub async fn honeytoken_presented(core: &Core, token: &str, remote: Option<std::net::IpAddr>) {
    let list = match core.honeytokens.fresh() {
        Some(l) => l,
        None => {
            let mut v = Vec::new();
            for name in core.barrier.list(HONEYTOKENS).await.unwrap_or_default() {
                if let Ok(Some(h)) = core
                    .barrier
                    .get_json::<Value>(&format!("{HONEYTOKENS}{name}"))
                    .await
                {
                    if let Some(val) = h.get("value").and_then(Value::as_str) {
                        v.push((name, val.to_string()));
                    }
                }
            }
            let v = Arc::new(v);
            core.honeytokens.set(v.clone());
            v
        }
    };
    let Some((name, _)) = list
        .iter()
        .find(|(_, v)| airlock_logical::auth::ct_eq(v.as_bytes(), token.as_bytes()))
    else {
        return;
    };
    core.metrics
        .honeytoken_uses
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::error!(honeytoken = %name, remote = ?remote, "a honeytoken was presented to the API as a token");
    let entry = json!({
        "type": "honeytoken",
        "time": crate::core::rfc3339_nanos(crate::core::now_nanos()),
        "severity": "high",
        "honeytoken": name,
        "remote_address": remote.map(|r| r.to_string()),
    });
    if let Err(e) = core.audit.log_many(&[entry]).await {
        tracing::error!(error = %e, "the honeytoken audit entry could not be written");
    }
}

#[derive(Serialize, Deserialize)]
struct BrokerKeys {
    ca_key_pem: String,
    ca_cert_pem: String,
    credential_key: String,
    placeholder_key: String,
}

impl Drop for BrokerKeys {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.ca_key_pem.zeroize();
        self.credential_key.zeroize();
        self.placeholder_key.zeroize();
    }
}

fn name_ok(n: &str) -> ApiResult<&str> {
    let n = n.trim_end_matches('/');
    if n.is_empty()
        || n.len() > 64
        || !n
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        || n.starts_with('.')
    {
        return Err(ApiError::bad_request(format!(
            "invalid name {n:?}: use 1-64 letters, digits, `_`, `-` or `.`"
        )));
    }
    Ok(n)
}

async fn keys(core: &Core) -> ApiResult<BrokerKeys> {
    if let Some(k) = core.barrier.get_json::<BrokerKeys>(KEYS).await? {
        return Ok(k);
    }
    let ca = airlock_broker::ca::Ca::generate(None).map_err(|e| ApiError::internal(&e))?;
    let k = BrokerKeys {
        ca_key_pem: ca.key_pem().to_string(),
        ca_cert_pem: ca.cert_pem().to_string(),
        credential_key: hex::encode(crate::core::random_bytes::<32>()),
        placeholder_key: hex::encode(crate::core::random_bytes::<32>()),
    };
    core.barrier.put_json(KEYS, &k).await?;
    Ok(k)
}

/// Whoever writes a binding decides where its secret may be sent, so they must be able to
/// read that secret themselves: otherwise `update` on `sys/broker/bindings/*` would let a
/// token send any secret the broker can read to a host of its choosing.
fn may_send_secret(core: &Core, caller: &Caller, secret_path: &str) -> ApiResult<()> {
    if caller.is_root {
        return Ok(());
    }
    // Leased credentials (`lease:aws/creds/<role>`): reading the engine path mints them.
    let secret_path = secret_path
        .strip_prefix(airlock_broker::secrets::LEASED_PREFIX)
        .unwrap_or(secret_path);
    let read_path = core
        .router
        .route(secret_path)
        .and_then(|r| {
            let rel = r.backend.read_path(&r.rel)?;
            Some(format!("{}{rel}", r.entry.path))
        })
        .unwrap_or_else(|| secret_path.to_string());
    caller
        .acl
        .allowed(&read_path, Operation::Read, None)
        .map(|_| ())
        .map_err(|_| {
            ApiError::new(
                403,
                format!(
                    "permission denied: a binding for {secret_path} can only be written by a token that may read {read_path}"
                ),
            )
        })
}

#[derive(Clone, Copy)]
enum B {
    BindingsList,
    AgentsList,
    Ca,
    Keys,
    BindingRead,
    BindingWrite,
    BindingDelete,
    Credential,
    AgentRead,
    AgentWrite,
    AgentDelete,
    HoneytokensList,
    HoneytokenRead,
    HoneytokenWrite,
    HoneytokenDelete,
    Usage,
    ApprovalsList,
    ApprovalAsk,
    ApprovalRead,
    ApprovalDecide,
}

#[rustfmt::skip]
static PATHS: &[PathSpec<B>] = &[
    PathSpec::new("bindings/?", &[(Op::List, B::BindingsList)]),
    PathSpec::new("agents/?", &[(Op::List, B::AgentsList)]),
    PathSpec::new("ca", &[(Op::Read, B::Ca)]),
    PathSpec::new("keys", &[(Op::Read, B::Keys)]),
    PathSpec::new("bindings/{name+}", &[(Op::Read, B::BindingRead), (Op::Update, B::BindingWrite), (Op::Delete, B::BindingDelete)]),
    PathSpec::new("agents/{name+}/credential", &[(Op::Update, B::Credential)]),
    PathSpec::new("agents/{name+}", &[(Op::Read, B::AgentRead), (Op::Update, B::AgentWrite), (Op::Delete, B::AgentDelete)]),
    PathSpec::new("honeytokens/?", &[(Op::List, B::HoneytokensList)]),
    PathSpec::new("usage", &[(Op::Update, B::Usage)]),
    PathSpec::new("approvals/?", &[(Op::List, B::ApprovalsList), (Op::Update, B::ApprovalAsk)]),
    PathSpec::new("approvals/{id}/{action}", &[(Op::Update, B::ApprovalDecide)]),
    PathSpec::new("approvals/{id}", &[(Op::Read, B::ApprovalRead)]),
    PathSpec::new("honeytokens/{name+}", &[(Op::Read, B::HoneytokenRead), (Op::Update, B::HoneytokenWrite), (Op::Delete, B::HoneytokenDelete)]),
];

pub async fn handle(
    core: &Arc<Core>,
    req: &Request,
    caller: &Caller,
    rest: &str,
) -> ApiResult<Response> {
    let Some((_, h, caps)) = framework::route(PATHS, rest, req.op)? else {
        return Err(ApiError::unsupported_path());
    };
    let raw = caps.first().map(|(_, v)| v.as_str()).unwrap_or("");
    match h {
        B::BindingsList => list(core, BINDINGS).await,
        B::AgentsList => list(core, AGENTS).await,
        B::Ca => {
            let k = keys(core).await?;
            Ok(Response::data(json!({ "certificate": k.ca_cert_pem })))
        }
        B::Keys => {
            let k = keys(core).await?;
            Ok(Response::data(json!({
                "ca_key_pem": k.ca_key_pem,
                "ca_cert_pem": k.ca_cert_pem,
                "credential_key": k.credential_key,
                "placeholder_key": k.placeholder_key,
            })))
        }
        B::BindingRead => read(core, &format!("{BINDINGS}{}", name_ok(raw)?)).await,
        B::BindingDelete => {
            let name = name_ok(raw)?;
            let key = format!("{BINDINGS}{name}");
            core.barrier
                .commit(vec![
                    BarrierOp::Delete(key),
                    event("broker/binding-delete", "bindings", name),
                ])
                .await?;
            Ok(Response::empty())
        }
        B::BindingWrite => {
            let name = name_ok(raw)?;
            let key = format!("{BINDINGS}{name}");
            let mut v = Value::Object(req.data.clone());
            v["name"] = json!(name);
            let b = config::parse_binding(&v).map_err(ApiError::bad_request)?;
            may_send_secret(core, caller, &b.secret_path)?;
            core.barrier
                .commit(vec![
                    BarrierOp::Put(
                        key,
                        serde_json::to_vec(&v).map_err(|e| ApiError::internal(&e))?,
                    ),
                    event("broker/binding-write", "bindings", name),
                ])
                .await?;
            Ok(Response::empty())
        }
        B::Credential => credential(core, req, name_ok(raw)?).await,
        B::ApprovalsList => super::approvals::list(core).await,
        B::ApprovalAsk => super::approvals::ask(core, req).await,
        B::ApprovalRead => super::approvals::read(core, raw).await,
        B::ApprovalDecide => {
            let action = caps.get(1).map(|(_, v)| v.as_str()).unwrap_or("");
            if !matches!(action, "approve" | "deny" | "use") {
                return Err(ApiError::unsupported_path());
            }
            super::approvals::decide(core, req, caller, raw, action).await
        }
        B::HoneytokensList => list(core, HONEYTOKENS).await,
        B::HoneytokenRead => read(core, &format!("{HONEYTOKENS}{}", name_ok(raw)?)).await,
        B::HoneytokenDelete => {
            let name = name_ok(raw)?;
            core.barrier
                .commit(vec![
                    BarrierOp::Delete(format!("{HONEYTOKENS}{name}")),
                    event("broker/honeytoken-delete", "honeytokens", name),
                ])
                .await?;
            core.honeytokens.clear();
            Ok(Response::empty())
        }
        B::HoneytokenWrite => {
            let name = name_ok(raw)?;
            let mut v = Value::Object(req.data.clone());
            if v.get("value").is_none() {
                let kind = v.get("kind").and_then(Value::as_str).unwrap_or("generic");
                let decoy =
                    airlock_broker::honeytoken::mint(kind, &crate::core::random_bytes::<48>())
                        .map_err(ApiError::bad_request)?;
                v["value"] = json!(decoy);
            }
            airlock_broker::honeytoken::parse(name, &v).map_err(ApiError::bad_request)?;
            v["name"] = json!(name);
            core.barrier
                .commit(vec![
                    BarrierOp::Put(
                        format!("{HONEYTOKENS}{name}"),
                        serde_json::to_vec(&v).map_err(|e| ApiError::internal(&e))?,
                    ),
                    event("broker/honeytoken-write", "honeytokens", name),
                ])
                .await?;
            core.honeytokens.clear();
            // The value is returned once, so the writer can plant it.
            Ok(Response::data(
                json!({ "name": name, "value": v["value"], "env": v.get("env") }),
            ))
        }
        B::AgentRead => {
            let name = name_ok(raw)?;
            let mut r = read(core, &format!("{AGENTS}{name}")).await?;
            // Budget usage as each broker last reported it (from every node's brokers).
            let usage = super::broker_usage::for_agent(core, name).await?;
            if let Some(d) = r.data.as_mut().and_then(Value::as_object_mut) {
                d.insert("usage".into(), json!(usage));
            }
            Ok(r)
        }
        B::Usage => super::broker_usage::report(core, req).await,
        B::AgentDelete => {
            let name = name_ok(raw)?;
            core.barrier
                .commit(vec![
                    BarrierOp::Delete(format!("{AGENTS}{name}")),
                    event("broker/agent-delete", "agents", name),
                ])
                .await?;
            Ok(Response::empty())
        }
        B::AgentWrite => {
            let name = name_ok(raw)?;
            let key = format!("{AGENTS}{name}");
            let v = Value::Object(req.data.clone());
            let a = config::parse_agent(name, &v).map_err(ApiError::bad_request)?;
            for b in &a.bindings {
                let Some(bv) = core
                    .barrier
                    .get_json::<Value>(&format!("{BINDINGS}{b}"))
                    .await?
                else {
                    return Err(ApiError::bad_request(format!(
                        "agent {name:?} names binding {b:?}, which does not exist"
                    )));
                };
                // An agent spends its bindings' secrets: whoever defines it must be
                // able to read them, as for writing the bindings themselves.
                let binding = config::parse_binding(&bv).map_err(ApiError::bad_request)?;
                may_send_secret(core, caller, &binding.secret_path)?;
            }

            core.barrier
                .commit(vec![
                    BarrierOp::Put(
                        key,
                        serde_json::to_vec(&v).map_err(|e| ApiError::internal(&e))?,
                    ),
                    event("broker/agent-write", "agents", name),
                ])
                .await?;
            Ok(Response::empty())
        }
    }
}

/// The event for a change of a binding or an agent (`sys/broker/<what>/<name>`).
fn event(kind: &str, what: &str, name: &str) -> BarrierOp {
    let path = format!("sys/broker/{what}/{name}");
    airlock_logical::system::event_op(
        kind,
        &path,
        &path,
        &crate::mounts::system_entry(),
        &[],
        airlock_logical::util::now_nanos(),
    )
}

async fn list(core: &Core, prefix: &str) -> ApiResult<Response> {
    let mut keys = core.barrier.list(prefix).await?;
    keys.sort();
    if keys.is_empty() {
        return Err(ApiError::not_found());
    }
    Ok(Response::list(keys))
}

async fn read(core: &Core, key: &str) -> ApiResult<Response> {
    match core.barrier.get_json::<Value>(key).await? {
        Some(v) => Ok(Response::data(v)),
        None => Err(ApiError::not_found()),
    }
}

/// Mints a proxy credential for `agent` and returns the environment the agent needs.
async fn credential(core: &Core, req: &Request, agent: &str) -> ApiResult<Response> {
    let spec: Value = core
        .barrier
        .get_json(&format!("{AGENTS}{agent}"))
        .await?
        .ok_or_else(|| ApiError::bad_request(format!("agent {agent:?} does not exist")))?;
    let a = config::parse_agent(agent, &spec).map_err(ApiError::bad_request)?;
    let ttl = req.duration_field("ttl")?.unwrap_or(3600);
    if !(1..=31 * 24 * 3600).contains(&ttl) {
        return Err(ApiError::bad_request("ttl must be between 1s and 744h"));
    }
    let k = keys(core).await?;
    let cred_key =
        Zeroizing::new(hex::decode(&k.credential_key).map_err(|e| ApiError::internal(&e))?);
    let ph_key =
        Zeroizing::new(hex::decode(&k.placeholder_key).map_err(|e| ApiError::internal(&e))?);
    let expiry = now_unix().max(0) as u64 + ttl as u64;
    let credential = airlock_broker::cred::CredKey::new(cred_key.to_vec()).mint(agent, expiry);
    let mut env = Map::new();
    for b in &a.bindings {
        let Some(v) = core
            .barrier
            .get_json::<Value>(&format!("{BINDINGS}{b}"))
            .await?
        else {
            continue;
        };
        let binding = config::parse_binding(&v).map_err(ApiError::bad_request)?;
        env.insert(
            binding.env.clone(),
            json!(airlock_broker::derived_placeholder(
                &ph_key, agent, &binding
            )),
        );
        if let Some(s) = airlock_broker::derived_aws_secret(&ph_key, agent, &binding) {
            env.insert(config::AWS_SECRET_ENV.into(), json!(s.as_str()));
        }
    }
    for name in core.barrier.list(HONEYTOKENS).await? {
        if let Some(h) = core
            .barrier
            .get_json::<Value>(&format!("{HONEYTOKENS}{name}"))
            .await?
        {
            if let (Some(e), Some(v)) = (
                h.get("env").and_then(Value::as_str),
                h.get("value").and_then(Value::as_str),
            ) {
                if !env.contains_key(e) {
                    env.insert(e.to_string(), json!(v));
                }
            }
        }
    }
    Ok(Response::data(json!({
        "agent": agent,
        "credential": credential.as_str(),
        "expires_at": expiry,
        "ttl": ttl,
        "env": env,
    })))
}
