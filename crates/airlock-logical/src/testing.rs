//! In-memory implementations for engine tests: a system view with a settable clock, fixed
//! TTL limits, password policies and a lease table that calls back into nothing (tests
//! drive renew/revoke through the engine directly).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use airlock_core::password_policy::PasswordPolicy;
use async_trait::async_trait;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::mount::MountEntry;
use crate::request::{Op, Request};
use crate::storage::View;
use crate::system::{CallerInfo, Ctx, LeaseGrant, NewLease, SystemView};

/// A lease recorded by [`TestSystem`].
#[derive(Clone, Debug)]
pub struct TestLease {
    pub mount_uuid: String,
    pub path: String,
    pub ttl: u64,
    pub internal: Value,
}

pub struct TestSystem {
    pub now: AtomicI64,
    pub default_ttl: i64,
    pub max_ttl: i64,
    pub policies: Mutex<HashMap<String, String>>,
    pub leases: Mutex<BTreeMap<String, TestLease>>,
}

impl Default for TestSystem {
    fn default() -> Self {
        TestSystem {
            now: AtomicI64::new(1_700_000_000),
            default_ttl: 768 * 3600,
            max_ttl: 768 * 3600,
            policies: Mutex::new(HashMap::new()),
            leases: Mutex::new(BTreeMap::new()),
        }
    }
}

impl TestSystem {
    pub fn with_limits(default_ttl: i64, max_ttl: i64) -> Self {
        TestSystem {
            default_ttl,
            max_ttl,
            ..Default::default()
        }
    }
    pub fn advance(&self, secs: i64) {
        self.now.fetch_add(secs, Ordering::SeqCst);
    }
    pub fn lease_ids(&self) -> Vec<String> {
        self.leases
            .lock()
            .map(|l| l.keys().cloned().collect())
            .unwrap_or_default()
    }
    pub fn lease(&self, id: &str) -> Option<TestLease> {
        self.leases.lock().ok().and_then(|l| l.get(id).cloned())
    }
}

#[async_trait]
impl SystemView for TestSystem {
    fn now_unix(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }
    fn now_nanos(&self) -> i128 {
        self.now_unix() as i128 * 1_000_000_000
    }
    fn default_lease_ttl(&self) -> i64 {
        self.default_ttl
    }
    fn max_lease_ttl(&self) -> i64 {
        self.max_ttl
    }
    async fn password_policy(&self, name: &str) -> ApiResult<Option<PasswordPolicy>> {
        let text = self.policies.lock().ok().and_then(|p| p.get(name).cloned());
        match text {
            Some(t) => PasswordPolicy::parse(&t)
                .map(Some)
                .map_err(ApiError::bad_request),
            None => Ok(None),
        }
    }
    fn hmac(&self, s: &str) -> ApiResult<String> {
        use sha2::Digest;
        Ok(hex::encode(sha2::Sha256::digest(
            format!("test-hmac\0{s}").as_bytes(),
        )))
    }
    async fn create_lease(
        &self,
        mount_uuid: &str,
        _caller: Option<&CallerInfo>,
        lease: NewLease,
    ) -> ApiResult<LeaseGrant> {
        let ttl = lease.default_ttl.min(lease.max_ttl).max(1);
        let now = self.now_unix();
        if let Ok(mut l) = self.leases.lock() {
            l.insert(
                lease.lease_id.clone(),
                TestLease {
                    mount_uuid: mount_uuid.to_string(),
                    path: lease.path,
                    ttl,
                    internal: lease.internal,
                },
            );
        }
        Ok(LeaseGrant {
            lease_id: lease.lease_id,
            ttl,
            expires_at: now + ttl as i64,
            warning: None,
        })
    }
    async fn revoke_lease(&self, lease_id: &str, _force: bool) -> ApiResult<bool> {
        Ok(self
            .leases
            .lock()
            .map(|mut l| l.remove(lease_id).is_some())
            .unwrap_or(false))
    }
}

/// A mount entry for tests.
pub fn mount(path: &str, kind: &str) -> MountEntry {
    MountEntry {
        path: path.to_string(),
        kind: kind.to_string(),
        description: String::new(),
        accessor: format!("{kind}_test"),
        uuid: format!("uuid-{kind}"),
        options: Default::default(),
        default_lease_ttl: 0,
        max_lease_ttl: 0,
        local: false,
        seal_wrap: false,
    }
}

/// A context over fresh in-memory storage.
pub fn ctx(sys: Arc<TestSystem>, mount: MountEntry) -> Ctx {
    Ctx {
        storage: View::memory(),
        sys,
        mount: Arc::new(mount),
        caller: Some(CallerInfo {
            display_name: "token".into(),
            ..Default::default()
        }),
    }
}

/// A request with JSON data.
pub fn request(op: Op, path: &str, data: Value) -> Request {
    let mut r = Request::new(op, path);
    if let Value::Object(m) = data {
        r.data = m;
    }
    r
}
