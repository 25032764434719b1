//! ACL policy storage: `sys/policies/acl/*`, legacy `sys/policy/*`, and the compiled-ACL
//! cache used on every request.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use airlock_core::policy::{Acl, Policy, DEFAULT_POLICY};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::logical::Response;
use airlock_logical::util::{now_nanos, rfc3339_nanos};
use airlock_logical::{KeyLocks, View};
use airlock_store::Barrier;

const PREFIX: &str = "sys/policy/";

#[derive(Serialize, Deserialize)]
struct StoredPolicy {
    name: String,
    policy: String,
    version: u64,
    modified_nanos: i128,
}

pub struct PolicyStore {
    barrier: Arc<Barrier>,
    root: View,
    parsed: RwLock<HashMap<String, Arc<Policy>>>,
    acls: RwLock<HashMap<Vec<String>, Arc<Acl>>>,
}

/// Policy names: what Vault accepts, lower-cased.
pub fn normalize_name(raw: &str) -> ApiResult<String> {
    let n = raw.trim().to_lowercase();
    if n.is_empty() {
        return Err(ApiError::bad_request("policy name missing"));
    }
    if n.len() > 4096
        || n.contains("..")
        || n.chars()
            .any(|c| c.is_control() || c == '/' || c == '*' || c == '+' || c.is_whitespace())
    {
        return Err(ApiError::bad_request(format!(
            "invalid policy name \"{n}\""
        )));
    }
    Ok(n)
}

impl PolicyStore {
    pub fn new(barrier: Arc<Barrier>, locks: Arc<KeyLocks>) -> Self {
        PolicyStore {
            root: View::new(barrier.clone(), "", locks),
            barrier,
            parsed: RwLock::new(HashMap::new()),
            acls: RwLock::new(HashMap::new()),
        }
    }

    pub fn clear(&self) {
        if let Ok(mut p) = self.parsed.write() {
            p.clear();
        }
        self.invalidate();
    }

    fn invalidate(&self) {
        if let Ok(mut a) = self.acls.write() {
            a.clear();
        }
    }

    async fn load_stored(&self, name: &str) -> ApiResult<Option<StoredPolicy>> {
        let key = format!("{PREFIX}{name}");
        if let Some(p) = self.barrier.get_json::<StoredPolicy>(&key).await? {
            return Ok(Some(p));
        }
        if name == "default" {
            let p = StoredPolicy {
                name: "default".into(),
                policy: DEFAULT_POLICY.to_string(),
                version: 1,
                modified_nanos: now_nanos(),
            };
            self.barrier.put_json(&key, &p).await?;
            return Ok(Some(p));
        }
        Ok(None)
    }

    async fn get(&self, name: &str) -> ApiResult<Option<Arc<Policy>>> {
        if let Some(p) = self.parsed.read().ok().and_then(|m| m.get(name).cloned()) {
            return Ok(Some(p));
        }
        let Some(sp) = self.load_stored(name).await? else {
            return Ok(None);
        };
        let parsed = Policy::parse(name, &sp.policy).map_err(|e| ApiError::internal(&e))?;
        let arc = Arc::new(parsed);
        if let Ok(mut m) = self.parsed.write() {
            m.insert(name.to_string(), Arc::clone(&arc));
        }
        Ok(Some(arc))
    }

    /// The compiled ACL for a token's policy list (unknown policy names are ignored, as Vault
    /// does).
    pub async fn acl_for(&self, names: &[String]) -> ApiResult<Arc<Acl>> {
        if let Some(a) = self.acls.read().ok().and_then(|m| m.get(names).cloned()) {
            return Ok(a);
        }
        let mut pols = Vec::with_capacity(names.len());
        for n in names {
            if let Some(p) = self.get(n).await? {
                pols.push((*p).clone());
            }
        }
        let acl = Arc::new(Acl::new(&pols));
        if let Ok(mut m) = self.acls.write() {
            if m.len() > 10_000 {
                m.clear();
            }
            m.insert(names.to_vec(), Arc::clone(&acl));
        }
        Ok(acl)
    }

    pub async fn exists(&self, name: &str) -> ApiResult<bool> {
        Ok(self.load_stored(name).await?.is_some())
    }

    pub async fn list(&self) -> ApiResult<Vec<String>> {
        self.load_stored("default").await?;
        let mut keys = self.barrier.list(PREFIX).await?;
        keys.retain(|k| !k.ends_with('/'));
        keys.push("root".into());
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    pub async fn read(&self, name: &str) -> ApiResult<Response> {
        let name = normalize_name(name)?;
        if name == "root" {
            return Ok(Response::data(json!({
                "allow_slashes_in_identity_templates": false,
                "allow_wildcards_in_identity_templates": false,
                "cas_required": false,
                "name": "root",
                "policy": "",
                "version": 0,
            })));
        }
        let Some(sp) = self.load_stored(&name).await? else {
            return Err(ApiError::not_found());
        };
        Ok(Response::data(json!({
            "allow_slashes_in_identity_templates": false,
            "allow_wildcards_in_identity_templates": false,
            "cas_required": false,
            "modified": rfc3339_nanos(sp.modified_nanos),
            "name": sp.name,
            "policy": sp.policy,
            "version": sp.version,
        })))
    }

    pub async fn write(&self, name: &str, text: &str) -> ApiResult<()> {
        let name = normalize_name(name)?;
        if name == "root" {
            return Err(ApiError::bad_request("cannot update \"root\" policy"));
        }
        if name == "response-wrapping" {
            return Err(ApiError::bad_request(
                "cannot update \"response-wrapping\" policy: the name is reserved for wrapping tokens",
            ));
        }
        if text.trim().is_empty() {
            return Err(ApiError::bad_request(
                "'policy' parameter not supplied or empty",
            ));
        }
        let parsed = Policy::parse(&name, text)
            .map_err(|e| ApiError::bad_request(format!("failed to parse policy: {e}")))?;
        let key = format!("{PREFIX}{name}");
        let g = self.root.lock(&key).await?;
        let version = match self.barrier.get_json::<StoredPolicy>(&key).await? {
            Some(p) => p.version + 1,
            None => 1,
        };
        let sp = StoredPolicy {
            name: name.clone(),
            policy: text.to_string(),
            version,
            modified_nanos: now_nanos(),
        };
        let b = serde_json::to_vec(&sp).map_err(|e| ApiError::internal(&e))?;
        g.commit(vec![
            airlock_store::BarrierOp::Put(key.clone(), b),
            sys_event("policy/write", &name),
        ])
        .await?;
        if let Ok(mut m) = self.parsed.write() {
            m.insert(name, Arc::new(parsed));
        }
        self.invalidate();
        Ok(())
    }

    pub async fn delete(&self, name: &str) -> ApiResult<()> {
        let name = normalize_name(name)?;
        match name.as_str() {
            "root" => return Err(ApiError::bad_request("cannot delete \"root\" policy")),
            "default" => return Err(ApiError::bad_request("cannot delete default policy")),
            _ => {}
        }
        self.barrier
            .commit(vec![
                airlock_store::BarrierOp::Delete(format!("{PREFIX}{name}")),
                sys_event("policy/delete", &name),
            ])
            .await?;
        if let Ok(mut m) = self.parsed.write() {
            m.remove(&name);
        }
        self.invalidate();
        Ok(())
    }
}

/// The event of a policy change: path `sys/policies/acl/<name>` (readable by who may read
/// the policy).
fn sys_event(event_type: &str, name: &str) -> airlock_store::BarrierOp {
    let path = format!("sys/policies/acl/{name}");
    airlock_logical::system::event_op(
        event_type,
        &path,
        &path,
        &crate::mounts::system_entry(),
        &[],
        now_nanos(),
    )
}

/// Loads a password policy by name (`sys/policies/password/<name>`).
pub async fn load_password_policy(
    barrier: &Barrier,
    name: &str,
) -> ApiResult<Option<airlock_core::password_policy::PasswordPolicy>> {
    let Some(v) = barrier
        .get_json::<serde_json::Value>(&format!("sys/password-policy/{name}"))
        .await?
    else {
        return Ok(None);
    };
    let text = v["policy"].as_str().unwrap_or_default();
    airlock_core::password_policy::PasswordPolicy::parse(text)
        .map(Some)
        .map_err(ApiError::bad_request)
}
