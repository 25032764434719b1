//! `sys/broker/usage`: budget usage reported by every credential broker, shared so that
//! replicas enforce one budget together.
//!
//! A broker reports its own counters (per agent, for the agent's meter and each binding's:
//! `{window: {used, limit, start, resets_in}}`) every few seconds. The report is kept behind
//! the barrier under `broker/usage/<hex of the broker id>` (so every server node sees it),
//! and the answer carries, for each meter and window of the report, what the *other*
//! brokers reported for the same window (`others`): a broker refuses once its own count plus
//! the others' reaches the limit. Reports older than [`FRESH`] are ignored and those older
//! than [`FORGET`] deleted. The counters are not secret; they are stored encrypted like
//! everything else. The node's Prometheus lines keep using the reports it received itself.

use serde_json::{json, Map, Value};

use crate::core::{now_unix, Core};
use crate::error::{ApiError, ApiResult};
use crate::logical::{Request, Response};
use airlock_store::BarrierOp;

const USAGE: &str = "broker/usage/";
/// A report counts while it is younger than this (seconds).
const FRESH: i64 = 300;
/// A report is deleted once older than this (seconds).
const FORGET: i64 = 3600;
/// At most this many brokers are remembered.
const MAX_BROKERS: usize = 1024;

/// A broker's entry name under [`USAGE`]: its id in hex (ids are free text).
fn entry(broker: &str) -> String {
    broker.bytes().map(|b| format!("{b:02x}")).collect()
}

/// The stored reports: `(storage name, report)`, each with its `at`.
async fn stored(core: &Core) -> ApiResult<Vec<(String, Value)>> {
    let mut out = Vec::new();
    for name in core.barrier.list(USAGE).await? {
        if let Some(v) = core
            .barrier
            .get_json::<Value>(&format!("{USAGE}{name}"))
            .await?
        {
            out.push((name, v));
        }
    }
    Ok(out)
}

/// `POST sys/broker/usage {broker, agents}`: stores the report, answers with `others`.
pub(super) async fn report(core: &Core, req: &Request) -> ApiResult<Response> {
    let broker = req
        .data
        .get("broker")
        .and_then(Value::as_str)
        .filter(|b| !b.is_empty() && b.len() <= 128)
        .ok_or_else(|| ApiError::bad_request("`broker` (an id) is required"))?
        .to_string();
    let agents = req
        .data
        .get("agents")
        .and_then(Value::as_object)
        .filter(|a| a.len() <= 4096)
        .ok_or_else(|| ApiError::bad_request("`agents` must be an object"))?;
    let now = now_unix();
    let report = json!({ "broker": broker, "agents": agents, "at": now });
    if let Ok(mut m) = core.metrics.broker_usage.lock() {
        if m.len() < MAX_BROKERS || m.contains_key(&broker) {
            m.insert(broker.clone(), (std::time::Instant::now(), report.clone()));
        }
    }
    let own = entry(&broker);
    let all = stored(core).await?;
    let mut ops = Vec::new();
    let mut others = Vec::new();
    for (name, r) in all.iter() {
        let at = r.get("at").and_then(Value::as_i64).unwrap_or(0);
        if now - at > FORGET {
            ops.push(BarrierOp::Delete(format!("{USAGE}{name}")));
        } else if now - at <= FRESH && *name != own {
            others.push(r);
        }
    }
    if all.len() < MAX_BROKERS || all.iter().any(|(n, _)| *n == own) {
        ops.push(BarrierOp::Put(
            format!("{USAGE}{own}"),
            serde_json::to_vec(&report).map_err(|e| ApiError::internal(&e))?,
        ));
    }
    core.barrier.commit(ops).await?;
    Ok(Response::data(
        json!({ "others": sum_others(agents, &others) }),
    ))
}

/// For each meter and window of `own`, the sum of what `others` reported for the same
/// window (same `start`): `{agent: {agent: {window: {start, used}}, bindings: {b: …}}}`.
fn sum_others(own: &Map<String, Value>, others: &[&Value]) -> Value {
    let mut out = Map::new();
    for (agent, a) in own {
        let theirs: Vec<&Value> = others
            .iter()
            .filter_map(|r| r.get("agents")?.get(agent))
            .collect();
        let mut o = Map::new();
        if let Some(m) = a.get("agent").filter(|m| m.is_object()) {
            let meters = theirs.iter().filter_map(|t| t.get("agent"));
            o.insert("agent".into(), window_sums(m, meters));
        }
        let mut bindings = Map::new();
        for (b, m) in a
            .get("bindings")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let meters = theirs.iter().filter_map(|t| t.get("bindings")?.get(b));
            bindings.insert(b.clone(), window_sums(m, meters));
        }
        o.insert("bindings".into(), Value::Object(bindings));
        out.insert(agent.clone(), Value::Object(o));
    }
    Value::Object(out)
}

/// For each window of one meter (`own`), the `used` of `theirs` in the same window.
fn window_sums<'a>(own: &Value, theirs: impl Iterator<Item = &'a Value> + Clone) -> Value {
    let mut windows = Map::new();
    for (w, v) in own.as_object().into_iter().flatten() {
        let Some(start) = v.get("start").and_then(Value::as_u64) else {
            continue;
        };
        let used: u64 = theirs
            .clone()
            .filter_map(|m| {
                let x = m.get(w)?;
                (x.get("start")?.as_u64()? == start).then(|| x.get("used")?.as_u64())?
            })
            .sum();
        windows.insert(w.clone(), json!({ "start": start, "used": used }));
    }
    Value::Object(windows)
}

/// The fresh reports naming `agent`, each as that agent's entry plus `broker`.
pub(super) async fn for_agent(core: &Core, agent: &str) -> ApiResult<Vec<Value>> {
    let now = now_unix();
    Ok(stored(core)
        .await?
        .into_iter()
        .filter(|(_, r)| now - r.get("at").and_then(Value::as_i64).unwrap_or(0) <= FRESH)
        .filter_map(|(_, r)| {
            let mut a = r.get("agents")?.get(agent)?.clone();
            a["broker"] = r.get("broker").cloned().unwrap_or(Value::Null);
            Some(a)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn others_are_summed_per_meter_and_window() {
        let w = |start: u64, used: u64| json!({"start": start, "used": used, "limit": 10});
        let own = json!({"coder": {
            "agent": {"requests_per_minute": w(60, 2), "tokens_per_day": w(0, 5)},
            "bindings": {"openai": {"requests_per_minute": w(60, 1)}},
        }});
        let a = json!({"agents": {"coder": {
            "agent": {"requests_per_minute": w(60, 3), "tokens_per_day": w(0, 7)},
            "bindings": {"openai": {"requests_per_minute": w(60, 4)}},
        }}});
        // An older window, and another agent: not counted.
        let b = json!({"agents": {
            "coder": {"agent": {"requests_per_minute": w(0, 100)}},
            "other": {"agent": {"requests_per_minute": w(60, 50)}},
        }});
        let got = sum_others(own.as_object().unwrap(), &[&a, &b]);
        assert_eq!(
            got["coder"]["agent"]["requests_per_minute"],
            json!({"start": 60, "used": 3})
        );
        assert_eq!(got["coder"]["agent"]["tokens_per_day"]["used"], 7);
        assert_eq!(
            got["coder"]["bindings"]["openai"]["requests_per_minute"]["used"],
            4
        );
        assert_eq!(entry("serve-1:2"), "73657276652d313a32");
    }
}
