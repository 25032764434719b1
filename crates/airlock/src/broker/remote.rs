//! How `broker run` and `broker serve` reach Airlock: bound secrets (KV entries and leased
//! engine credentials) read with the broker's token, and broker audit events written to
//! `sys/broker/audit`.

use std::collections::HashMap;
use std::sync::Arc;

use airlock_broker::audit::{Event, Sink, SinkFuture};
use airlock_broker::secrets::{FetchFuture, SecretMap, SecretSource};
use anyhow::{Context, Result};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::client::Client;

/// Reads KV entries through the Vault API with the caller's token.
pub(super) struct ApiSource {
    pub(super) client: Client,
}

impl SecretSource for ApiSource {
    fn fetch<'a>(&'a self, path: &'a str) -> FetchFuture<'a> {
        Box::pin(async move {
            if let Some(engine_path) = path.strip_prefix(airlock_broker::secrets::LEASED_PREFIX) {
                return leased(&self.client, engine_path).await;
            }
            let m = crate::kv::read_map(&self.client, path)
                .await
                .map_err(|e| format!("{e:#}"))?;
            let m = crate::kv::resolve_refs(&self.client, path, m)
                .await
                .map_err(|e| format!("{e:#}"))?;
            let mut out: SecretMap = HashMap::new();
            for (k, v) in m {
                let s = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                out.insert(k, Zeroizing::new(s));
            }
            Ok(out)
        })
    }

    fn replace_if<'a>(
        &'a self,
        path: &'a str,
        key: &'a str,
        expected: &'a str,
        new: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, String>> + Send + 'a>>
    {
        Box::pin(async move {
            crate::kv::replace_if(&self.client, path, key, expected, new)
                .await
                .map_err(|e| format!("{e:#}"))
        })
    }

    fn revoke<'a>(
        &'a self,
        lease_id: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            self.client
                .call(
                    "PUT",
                    "sys/leases/revoke",
                    Some(&json!({ "lease_id": lease_id })),
                )
                .await
                .map(|_| ())
                .map_err(|e| format!("{e:#}"))
        })
    }
}

/// Dynamic credentials from a secrets engine (`aws/creds/<role>`): the answer's data, plus
/// `lease_id` and `lease_duration`.
async fn leased(cl: &Client, path: &str) -> Result<SecretMap, String> {
    let v = cl
        .call("GET", path, None)
        .await
        .map_err(|e| format!("{e:#}"))?
        .ok_or_else(|| format!("no answer at {path}"))?;
    let mut out: SecretMap = HashMap::new();
    if let Some(d) = v.get("data").and_then(Value::as_object) {
        for (k, x) in d {
            if let Some(s) = x.as_str() {
                out.insert(k.clone(), Zeroizing::new(s.to_string()));
            }
        }
    }
    for k in ["lease_id", "lease_duration"] {
        if let Some(x) = v.get(k).filter(|x| !x.is_null()) {
            let s = x
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| x.to_string());
            out.insert(k.into(), Zeroizing::new(s));
        }
    }
    Ok(out)
}

/// Hands broker events to Airlock's audit log (`sys/broker/audit`).
struct ApiSink {
    client: Client,
}

impl Sink for ApiSink {
    fn write<'a>(&'a self, batch: &'a [Event]) -> SinkFuture<'a> {
        Box::pin(async move {
            let body = json!({ "events": batch });
            self.client
                .call("POST", "sys/broker/audit", Some(&body))
                .await
                .map(|_| ())
                .map_err(|e| format!("{e:#}"))
        })
    }
}

/// Checks that this token may write broker audit events (an empty batch), then starts the
/// batching auditor. Refusing to start beats brokering credentials without an audit trail.
pub(super) async fn start_auditor(client: Client) -> Result<airlock_broker::audit::Auditor> {
    client
        .call("POST", "sys/broker/audit", Some(&json!({ "events": [] })))
        .await
        .context(
            "this token cannot write broker audit events (it needs `update` on sys/broker/audit)",
        )?;
    Ok(airlock_broker::audit::Auditor::start(Arc::new(ApiSink {
        client,
    })))
}

/// The budget usage of every agent with a budget (for `sys/broker/usage`).
pub(super) fn usage_report(broker: &airlock_broker::Broker) -> serde_json::Map<String, Value> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut agents = serde_json::Map::new();
    for (name, rt) in broker.agents_now() {
        let m = &rt.meters;
        if m.agent.is_none() && m.bindings.iter().all(Option::is_none) {
            continue;
        }
        let mut bindings = serde_json::Map::new();
        let mut limited = 0;
        for (b, meter) in rt.bindings.iter().zip(&m.bindings) {
            if let Some(meter) = meter {
                bindings.insert(b.name.clone(), meter.snapshot(now));
                limited += meter.refused.load(std::sync::atomic::Ordering::Relaxed);
            }
        }
        if let Some(a) = &m.agent {
            limited += a.refused.load(std::sync::atomic::Ordering::Relaxed);
        }
        agents.insert(
            name,
            json!({
                "agent": m.agent.as_ref().map(|a| a.snapshot(now)),
                "bindings": bindings,
                "limited": limited,
            }),
        );
    }
    agents
}

/// Budget usage is reported at least this often: replicas learn each other's counts from
/// the answers, so this bounds how far past a shared limit they can go together.
const USAGE_PERIOD_MAX: std::time::Duration = std::time::Duration::from_secs(5);

/// Reports budget usage to Airlock every `period` (at most [`USAGE_PERIOD_MAX`]; callers
/// send a last report themselves when they stop).
pub(super) fn spawn_usage_reporter(
    client: Client,
    broker: Arc<airlock_broker::Broker>,
    id: String,
    period: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut t = tokio::time::interval(period.min(USAGE_PERIOD_MAX));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            t.tick().await;
            report_usage(&client, &broker, &id).await;
        }
    })
}

/// One usage report (nothing when no agent has a budget).
pub(super) async fn report_usage(client: &Client, broker: &airlock_broker::Broker, id: &str) {
    let agents = usage_report(broker);
    if agents.is_empty() {
        return;
    }
    let body = json!({ "broker": id, "agents": agents });
    match client.call("POST", "sys/broker/usage", Some(&body)).await {
        Ok(v) => {
            let others = v
                .as_ref()
                .and_then(|v| v.pointer("/data/others"))
                .cloned()
                .unwrap_or(Value::Null);
            apply_others(broker, &others);
        }
        Err(e) => {
            tracing::debug!(error = %format!("{e:#}"), "broker: reporting budget usage failed")
        }
    }
}

/// Hands each meter what the other brokers counted (`others` of the usage answer), so this
/// broker enforces the budget they share.
fn apply_others(broker: &airlock_broker::Broker, others: &Value) {
    for (name, rt) in broker.agents_now() {
        let o = others.get(&name).unwrap_or(&Value::Null);
        if let Some(a) = &rt.meters.agent {
            a.set_others(o.get("agent").unwrap_or(&Value::Null));
        }
        for (b, meter) in rt.bindings.iter().zip(&rt.meters.bindings) {
            if let Some(meter) = meter {
                let theirs = o.get("bindings").and_then(|x| x.get(b.name.as_str()));
                meter.set_others(theirs.unwrap_or(&Value::Null));
            }
        }
    }
}

/// Approvals in Airlock (`sys/broker/approvals`).
pub(super) struct ApiApprovals {
    pub(super) client: Client,
}

fn approval_state(v: Option<Value>) -> Result<airlock_broker::approval::State, String> {
    let d = v
        .and_then(|v| v.get("data").cloned())
        .ok_or("no approval in the answer")?;
    let s = |k: &str| d.get(k).and_then(Value::as_str).map(str::to_string);
    Ok(airlock_broker::approval::State {
        id: s("id").ok_or("no approval id in the answer")?,
        status: s("status").unwrap_or_default(),
        decided_by: s("decided_by"),
        reason: s("reason"),
    })
}

impl airlock_broker::approval::Approvals for ApiApprovals {
    fn ask<'a>(
        &'a self,
        ask: &'a airlock_broker::approval::Ask,
    ) -> airlock_broker::approval::Fut<'a, airlock_broker::approval::State> {
        Box::pin(async move {
            let body = json!({
                "agent": ask.agent, "binding": ask.binding, "method": ask.method,
                "host": ask.host, "path": ask.path, "digest": ask.digest,
                "mode": ask.approval.mode, "window": ask.approval.window,
                "timeout": ask.approval.timeout,
            });
            approval_state(
                self.client
                    .call("POST", "sys/broker/approvals", Some(&body))
                    .await
                    .map_err(|e| format!("{e:#}"))?,
            )
        })
    }

    fn get<'a>(
        &'a self,
        id: &'a str,
    ) -> airlock_broker::approval::Fut<'a, airlock_broker::approval::State> {
        Box::pin(async move {
            approval_state(
                self.client
                    .call("GET", &format!("sys/broker/approvals/{id}"), None)
                    .await
                    .map_err(|e| format!("{e:#}"))?,
            )
        })
    }

    fn consume<'a>(
        &'a self,
        id: &'a str,
    ) -> airlock_broker::approval::Fut<'a, airlock_broker::approval::State> {
        Box::pin(async move {
            approval_state(
                self.client
                    .call(
                        "POST",
                        &format!("sys/broker/approvals/{id}/use"),
                        Some(&json!({})),
                    )
                    .await
                    .map_err(|e| format!("{e:#}"))?,
            )
        })
    }
}
