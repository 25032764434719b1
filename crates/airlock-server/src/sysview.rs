//! The server's side of the logical SDK: the [`SystemView`] engines get — the clock, TTL
//! limits from the config, password policies, the HMAC key, and the lease manager — built
//! from handles, never from the core.

use std::sync::{Arc, Weak};

use airlock_core::password_policy::PasswordPolicy;
use airlock_logical::{ApiError, ApiResult, CallerInfo, LeaseGrant, NewLease, SystemView};
use airlock_store::Barrier;
use async_trait::async_trait;

use crate::config::Config;
use crate::hmac::HmacKey;
use crate::leases::LeaseManager;

pub struct SysView {
    /// Weak: an engine call never keeps the lease manager alive.
    pub(crate) leases: Weak<LeaseManager>,
    pub(crate) barrier: Arc<Barrier>,
    pub(crate) config: Arc<Config>,
    pub(crate) hmac: Arc<HmacKey>,
}

impl SysView {
    fn leases(&self) -> ApiResult<Arc<LeaseManager>> {
        self.leases.upgrade().ok_or_else(ApiError::sealed)
    }
}

#[async_trait]
impl SystemView for SysView {
    fn now_unix(&self) -> i64 {
        airlock_logical::util::now_unix()
    }
    fn now_nanos(&self) -> i128 {
        airlock_logical::util::now_nanos()
    }
    fn default_lease_ttl(&self) -> i64 {
        self.config.default_ttl()
    }
    fn max_lease_ttl(&self) -> i64 {
        self.config.max_ttl()
    }
    async fn password_policy(&self, name: &str) -> ApiResult<Option<PasswordPolicy>> {
        crate::policies::load_password_policy(&self.barrier, name).await
    }
    fn hmac(&self, s: &str) -> ApiResult<String> {
        self.hmac.hmac(s)
    }
    async fn create_lease(
        &self,
        mount_uuid: &str,
        caller: Option<&CallerInfo>,
        lease: NewLease,
    ) -> ApiResult<LeaseGrant> {
        self.leases()?.create(mount_uuid, caller, lease).await
    }
    async fn revoke_lease(&self, lease_id: &str, force: bool) -> ApiResult<bool> {
        self.leases()?.revoke(lease_id, force).await
    }
}
