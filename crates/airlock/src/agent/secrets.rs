//! The secrets templates read, as consul-template keeps them: fetched the first time a
//! template asks, shared by every template that asks for the same path and parameters,
//! then renewed or fetched again on the schedule `lease.rs` computes, or at once when the
//! server pushes a change to the path.
//!
//! `secret "path"` is a read; with parameters (`secret "pki/issue/web" "common_name=a"`) a
//! write. On a KV version 2 mount, `data/` is added after the mount when the path lacks it,
//! as consul-template does, found by asking `sys/internal/ui/mounts/<path>` once per secret.
//! What a template sees is consul-template's `Secret`: `RequestID`, `LeaseID`,
//! `LeaseDuration`, `Renewable`, `Data`, `Warnings`, `Auth`, `WrapInfo`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::{anyhow, Result};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::auth::{self, api_error};
use super::lease::{self, Lifetime, Next};
use super::Log;
use crate::client::Client;

/// A secret as a template names it: the path as written and the parameters of a write.
pub type Key = (String, Vec<(String, String)>);

/// The key for `secret(path, params)`: surrounding spaces and slashes do not matter.
pub fn key(path: &str, params: &[(String, String)]) -> Key {
    (path.trim().trim_matches('/').to_string(), params.to_vec())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Fetch,
    Renew,
}

struct Entry {
    /// The `Secret` templates see, once fetched.
    value: Option<Value>,
    /// The path asked of the server (after the KV v2 shim), without the query, and
    /// whether it is on a KV version 2 mount.
    resolved: Option<(String, bool)>,
    lease_id: String,
    lifetime: Lifetime,
    due: Instant,
    action: Action,
    failures: u32,
}

/// What a pass over due entries did.
#[derive(Default)]
pub struct Outcome {
    /// A value was fetched (new or again): templates may render differently.
    pub changed: bool,
    /// A fetch failed more than `num_retries` times in a row (for exit_on_retry_failure).
    pub exhausted: Option<anyhow::Error>,
}

pub struct Store {
    entries: HashMap<Key, Entry>,
    static_interval: Duration,
    num_retries: u32,
    log: Log,
}

impl Store {
    pub fn new(static_interval: Duration, num_retries: u32, log: Log) -> Self {
        Store {
            entries: HashMap::new(),
            static_interval,
            num_retries,
            log,
        }
    }

    /// The value for `k`, or `None` (and the key is fetched next) while there is none.
    pub fn lookup(&mut self, k: &Key) -> Option<Value> {
        if let Some(e) = self.entries.get(k) {
            return e.value.clone();
        }
        self.entries.insert(
            k.clone(),
            Entry {
                value: None,
                resolved: None,
                lease_id: String::new(),
                lifetime: Lifetime::default(),
                due: Instant::now(),
                action: Action::Fetch,
                failures: 0,
            },
        );
        None
    }

    /// Forgets every secret (a new token: its leases are not the old token's).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Forgets secrets no template asked for in the last complete pass.
    pub fn retain(&mut self, used: &HashSet<Key>) {
        self.entries.retain(|k, _| used.contains(k));
    }

    pub fn next_due(&self) -> Option<Instant> {
        self.entries.values().map(|e| e.due).min()
    }

    pub fn due_now(&self) -> bool {
        let now = Instant::now();
        self.entries.values().any(|e| e.due <= now)
    }

    /// A pushed change to `data_path`: fetch the secrets read from it now (never a leased
    /// one: a new lease is not what a change elsewhere asks for).
    pub fn changed(&mut self, data_path: &str) -> bool {
        let mut hit = false;
        for e in self.entries.values_mut() {
            if e.lease_id.is_empty() && e.resolved.as_ref().is_some_and(|(p, _)| p == data_path) {
                e.due = Instant::now();
                e.action = Action::Fetch;
                hit = true;
            }
        }
        hit
    }

    /// Fetch every secret without a lease now (changes may have been missed).
    pub fn resync(&mut self) {
        for e in self.entries.values_mut() {
            if e.lease_id.is_empty() && e.value.is_some() {
                e.due = Instant::now();
                e.action = Action::Fetch;
            }
        }
    }

    /// Renews and fetches whatever is due.
    pub async fn run_due(&mut self, cl: &Client) -> Outcome {
        let now = Instant::now();
        let due: Vec<Key> = self
            .entries
            .iter()
            .filter(|(_, e)| e.due <= now)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Outcome::default();
        let mut this_pass: HashMap<String, Fetched> = HashMap::new();
        for k in due {
            let Some(e) = self.entries.get_mut(&k) else {
                continue;
            };
            let what = describe(&k);
            if e.action == Action::Renew {
                match renew(cl, &e.lease_id, e.lifetime.increment).await {
                    Ok((ttl, renewable)) if ttl > 0 => {
                        self.log
                            .debug("template", format!("{what}: lease renewed ({ttl}s)"));
                        e.lifetime.ttl = ttl;
                        e.lifetime.renewable = renewable;
                        schedule(e, self.static_interval);
                        continue;
                    }
                    Ok(_) => {
                        self.log.info(
                            "template",
                            format!("{what}: the lease is at its end; fetching it again"),
                        );
                        e.action = Action::Fetch;
                    }
                    Err(err) => {
                        self.log.warn(
                            "template",
                            format!(
                                "{what}: renewing the lease failed ({err:#}); fetching it again"
                            ),
                        );
                        e.action = Action::Fetch;
                    }
                }
            }
            // Two names of one static secret (`secret/app`, `secret/data/app`) are read
            // once per pass, so templates never see two versions of it side by side.
            let shared = match (&e.resolved, k.1.is_empty() && e.lease_id.is_empty()) {
                (Some((p, _)), true) => Some(match k.0.split_once('?') {
                    Some((_, q)) => format!("{p}?{q}"),
                    None => p.clone(),
                }),
                _ => None,
            };
            let result = match shared.as_ref().and_then(|c| this_pass.get(c)) {
                Some(f) => Ok(f.clone()),
                None => fetch(cl, &k, e.resolved.clone(), self.log).await,
            };
            if let (Ok(f), Some(c)) = (&result, shared) {
                this_pass.insert(c, f.clone());
            }
            match result {
                Ok(f) => {
                    e.resolved = Some((f.resolved, f.kv2));
                    e.value = Some(f.secret);
                    e.lease_id = f.lease_id;
                    e.lifetime = f.lifetime;
                    e.failures = 0;
                    schedule(e, self.static_interval);
                    out.changed = true;
                }
                Err(err) => {
                    e.failures += 1;
                    let wait = lease::backoff(
                        Duration::from_millis(250),
                        Duration::from_secs(60),
                        e.failures,
                    );
                    self.log.error(
                        "template",
                        format!("{what}: {err:#} (retry {} in {wait:?})", e.failures),
                    );
                    e.due = Instant::now() + wait;
                    e.action = Action::Fetch;
                    if e.failures > self.num_retries && out.exhausted.is_none() {
                        out.exhausted = Some(err.context(format!("{what}: retries exhausted")));
                    }
                }
            }
        }
        out
    }
}

fn describe(k: &Key) -> String {
    if k.1.is_empty() {
        format!("vault.read({})", k.0)
    } else {
        format!("vault.write({})", k.0)
    }
}

fn schedule(e: &mut Entry, static_interval: Duration) {
    let (after, action) = match lease::plan(&e.lifetime, static_interval) {
        Next::Renew(d) => (d, Action::Renew),
        Next::Fetch(d) => (d, Action::Fetch),
    };
    e.due = Instant::now() + after.max(Duration::from_millis(100));
    e.action = action;
}

async fn renew(cl: &Client, lease_id: &str, increment: u64) -> Result<(u64, bool)> {
    let v = auth::api(
        cl,
        "PUT",
        "sys/leases/renew",
        Some(&json!({"lease_id": lease_id, "increment": increment})),
    )
    .await?;
    Ok((
        v["lease_duration"].as_u64().unwrap_or(0),
        v["renewable"].as_bool().unwrap_or(false),
    ))
}

#[derive(Clone)]
struct Fetched {
    secret: Value,
    resolved: String,
    kv2: bool,
    lease_id: String,
    lifetime: Lifetime,
}

/// Whether `path` is on a KV version 2 mount, and the mount's path (`secret/`).
async fn kv2_mount(cl: &Client, path: &str, log: Log) -> Result<Option<String>> {
    let (status, v) = cl
        .raw("GET", &format!("sys/internal/ui/mounts/{path}"), None, None)
        .await?;
    if status != 200 {
        log.debug(
            "template",
            format!("{path}: mount lookup answered {status}; assuming it is not KV version 2"),
        );
        return Ok(None);
    }
    let d = &v["data"];
    let v2 = d["type"] == "kv" && d["options"]["version"] == "2";
    Ok(v2.then(|| d["path"].as_str().unwrap_or("").to_string()))
}

/// consul-template's `shimKVv2Path`: `data/` after the mount unless the path has it (or
/// `metadata/`) already.
pub fn shim_kv2(raw: &str, mount: &str) -> String {
    let m = mount.trim_end_matches('/');
    if raw == mount || raw == m {
        return format!("{m}/data");
    }
    let rest = raw.strip_prefix(mount).unwrap_or(raw);
    if rest.starts_with("data/") || rest.starts_with("metadata/") {
        return raw.to_string();
    }
    let rest = rest.trim_matches('/');
    if m.is_empty() {
        format!("data/{rest}")
    } else {
        format!("{m}/data/{rest}")
    }
}

async fn fetch(
    cl: &Client,
    k: &Key,
    resolved: Option<(String, bool)>,
    log: Log,
) -> Result<Fetched> {
    let (raw, query) = match k.0.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (k.0.as_str(), None),
    };
    let (path, kv2) = match resolved {
        Some(r) => r,
        None => match kv2_mount(cl, raw, log).await? {
            Some(mount) => (shim_kv2(raw, &mount), true),
            None => (raw.to_string(), false),
        },
    };
    let (status, v) = if k.1.is_empty() {
        let target = match query {
            Some(q) => format!("{path}?{q}"),
            None => path.clone(),
        };
        cl.raw("GET", &target, None, None).await?
    } else {
        let params: serde_json::Map<String, Value> =
            k.1.iter()
                .map(|(a, b)| (a.clone(), Value::String(b.clone())))
                .collect();
        let body = if kv2 {
            json!({ "data": params })
        } else {
            Value::Object(params)
        };
        cl.raw("PUT", &path, Some(&body), None).await?
    };
    match status {
        200 | 204 => {}
        404 if k.1.is_empty() => return Err(anyhow!("no secret exists at {path}")),
        _ => return Err(api_error(&path, status, &v)),
    }
    if kv2
        && v["data"]["metadata"]["deletion_time"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    {
        return Err(anyhow!("no secret exists at {path}"));
    }
    let lease_id = v["lease_id"].as_str().unwrap_or("").to_string();
    let ttl = v["lease_duration"].as_u64().unwrap_or(0);
    let data = &v["data"];
    let lifetime = Lifetime {
        has_lease: !lease_id.is_empty(),
        ttl,
        renewable: v["renewable"].as_bool().unwrap_or(false),
        increment: ttl,
        rotates_in: (lease_id.is_empty() && data.get("rotation_period").is_some())
            .then(|| data["ttl"].as_u64())
            .flatten(),
        expires_in: (lease_id.is_empty() && data.get("certificate").is_some())
            .then(|| data["expiration"].as_i64())
            .flatten()
            .map(|exp| exp - unix_now()),
    };
    Ok(Fetched {
        secret: to_secret(&v),
        resolved: path,
        kv2,
        lease_id,
        lifetime,
    })
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A response as consul-template's `Secret`.
pub fn to_secret(v: &Value) -> Value {
    let s = |x: &Value| Value::String(x.as_str().unwrap_or("").to_string());
    let auth = match v.get("auth") {
        Some(a) if a.is_object() => json!({
            "ClientToken": s(&a["client_token"]),
            "Accessor": s(&a["accessor"]),
            "Policies": a.get("policies").cloned().unwrap_or(Value::Null),
            "Metadata": a.get("metadata").cloned().unwrap_or(Value::Null),
            "LeaseDuration": a["lease_duration"].as_i64().unwrap_or(0),
            "Renewable": a["renewable"].as_bool().unwrap_or(false),
        }),
        _ => Value::Null,
    };
    let wrap = match v.get("wrap_info") {
        Some(w) if w.is_object() => json!({
            "Token": s(&w["token"]),
            "TTL": w["ttl"].as_i64().unwrap_or(0),
            "CreationTime": s(&w["creation_time"]),
            "WrappedAccessor": s(&w["wrapped_accessor"]),
        }),
        _ => Value::Null,
    };
    json!({
        "RequestID": s(&v["request_id"]),
        "LeaseID": s(&v["lease_id"]),
        "LeaseDuration": v["lease_duration"].as_i64().unwrap_or(0),
        "Renewable": v["renewable"].as_bool().unwrap_or(false),
        "Data": v.get("data").cloned().unwrap_or(Value::Null),
        "Warnings": v.get("warnings").cloned().unwrap_or(Value::Null),
        "Auth": auth,
        "WrapInfo": wrap,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv2_paths_get_data_after_the_mount_once() {
        assert_eq!(shim_kv2("secret/app", "secret/"), "secret/data/app");
        assert_eq!(shim_kv2("secret/data/app", "secret/"), "secret/data/app");
        assert_eq!(
            shim_kv2("secret/metadata/app", "secret/"),
            "secret/metadata/app"
        );
        assert_eq!(shim_kv2("secret", "secret/"), "secret/data");
        assert_eq!(shim_kv2("team/kv/a/b", "team/kv/"), "team/kv/data/a/b");
    }

    #[test]
    fn keys_ignore_surrounding_slashes_and_spaces() {
        assert_eq!(key(" /secret/app/ ", &[]), key("secret/app", &[]));
    }
}
