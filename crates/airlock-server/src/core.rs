//! The server core: seal state, mount routing, authentication, ACL checks, auditing, and
//! dispatch to the sys, token and KV backends.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use airlock_audit::Auditor;
use airlock_core::policy::{Acl, Operation};
use airlock_store::seal::{self, SealConfig, SealKind};
use airlock_store::{Backend, Barrier};
use rand::RngCore;
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::logical::{Op, Request, Response};
use crate::metrics::Metrics;
use crate::mounts::{MountTable, MOUNTS_KEY};
use crate::policies::PolicyStore;
use crate::token::{TokenEntry, TokenStore};

pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn now_nanos() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// RFC 3339 with nanoseconds, as Go prints `time.Time` in JSON.
pub fn rfc3339_nanos(nanos: i128) -> String {
    match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => {
            let base = t
                .format(time::macros::format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second]"
                ))
                .unwrap_or_default();
            let ns = t.nanosecond();
            if ns == 0 {
                format!("{base}Z")
            } else {
                let frac = format!("{ns:09}");
                format!("{base}.{}Z", frac.trim_end_matches('0'))
            }
        }
        Err(_) => String::new(),
    }
}

pub fn parse_rfc3339_nanos(s: &str) -> Option<i128> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp_nanos())
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::thread_rng().fill_bytes(&mut b);
    b
}

pub fn new_uuid() -> String {
    airlock_core::token_format::uuid(&random_bytes::<16>())
}

pub fn random_base62(len: usize) -> String {
    let mut r = vec![0u8; len * 2 + 16];
    rand::thread_rng().fill_bytes(&mut r);
    airlock_core::token_format::base62(&r, len)
}

/// Unseal progress between `sys/unseal` calls.
#[derive(Default)]
struct UnsealProgress {
    shares: Vec<Zeroizing<Vec<u8>>>,
    nonce: String,
}

/// Striped async locks serialising read-modify-write sequences per storage key.
pub struct KeyLocks {
    shards: Vec<tokio::sync::Mutex<()>>,
}

impl KeyLocks {
    fn new(n: usize) -> Self {
        Self {
            shards: (0..n).map(|_| tokio::sync::Mutex::new(())).collect(),
        }
    }
    pub async fn lock(&self, key: &str) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        let n = self.shards.len().max(1);
        let i = (h.finish() as usize) % n;
        match self.shards.get(i) {
            Some(m) => m.lock().await,
            None => self.shards[0].lock().await,
        }
    }
}

pub struct Core {
    pub config: Arc<Config>,
    pub barrier: Barrier,
    pub audit: Auditor,
    pub metrics: Metrics,
    pub policies: PolicyStore,
    pub tokens: TokenStore,
    pub db_pools: crate::database::Pools,
    pub mounts: RwLock<MountTable>,
    /// Enabled auth methods (paths below `auth/`, without the token method).
    pub auth_mounts: RwLock<MountTable>,
    pub auth_rt: crate::auth::AuthRuntime,
    pub locks: KeyLocks,
    pub cluster_name: String,
    pub cluster_id: String,
    unseal: Mutex<UnsealProgress>,
    root_key: Mutex<Option<Zeroizing<[u8; 32]>>>,
    /// Serialises init/unseal/seal/rotate.
    seal_lock: tokio::sync::Mutex<()>,
    auto_unseal_key: Option<Zeroizing<[u8; 32]>>,
}

/// What an authenticated request runs as.
pub struct Caller {
    pub entry: Option<TokenEntry>,
    pub acl: Arc<Acl>,
    pub is_root: bool,
}

/// Paths that need `sudo` in addition to the operation's capability (Vault's root paths).
fn needs_sudo(path: &str, op: Op) -> bool {
    const EXACT: &[&str] = &[
        "sys/rotate",
        "sys/seal",
        "sys/key-status",
        "sys/audit",
        "sys/broker/keys",
        "auth/token/revoke-orphan",
        "auth/token/accessors",
        "auth/token/accessors/",
    ];
    const PREFIX: &[&str] = &[
        "sys/auth/",
        "sys/audit/",
        "sys/audit-hash/",
        "sys/raw",
        "sys/leases/lookup/",
        "sys/leases/revoke-prefix/",
        "sys/leases/revoke-force/",
        "sys/revoke-prefix/",
        "sys/revoke-force/",
        "auth/token/revoke-orphan/",
    ];
    if path == "sys/auth" && op != Op::Read {
        return true;
    }
    EXACT.contains(&path) || PREFIX.iter().any(|p| path.starts_with(p))
}

pub fn parse_key_material(raw: &str) -> Result<Zeroizing<[u8; 32]>, String> {
    use base64::Engine;
    let t = raw.trim();
    let bytes = if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(t).map_err(|_| "key is not valid hex".to_string())?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(t)
            .map_err(|_| "key is neither 64 hex characters nor base64".to_string())?
    };
    if bytes.len() != 32 {
        return Err(format!("key must be 32 bytes, got {}", bytes.len()));
    }
    let mut k = Zeroizing::new([0u8; 32]);
    k.copy_from_slice(&bytes);
    Ok(k)
}

impl Core {
    pub fn new(
        config: Arc<Config>,
        backend: Arc<dyn Backend>,
        audit: Auditor,
    ) -> Result<Arc<Self>, String> {
        let auto_unseal_key = if let Some(p) = &config.seal.key_file {
            let raw = std::fs::read_to_string(p)
                .map_err(|e| format!("seal.key_file {}: {e}", p.display()))?;
            Some(parse_key_material(&raw).map_err(|e| format!("seal.key_file: {e}"))?)
        } else if let Some(var) = &config.seal.key_env {
            let raw = std::env::var(var).map_err(|_| format!("seal.key_env: {var} is not set"))?;
            Some(parse_key_material(&raw).map_err(|e| format!("seal.key_env: {e}"))?)
        } else {
            None
        };
        let cluster_id = new_uuid();
        let cluster_name = config
            .cluster_name
            .clone()
            .unwrap_or_else(|| format!("airlock-cluster-{}", &cluster_id[..8]));
        Ok(Arc::new(Self {
            barrier: Barrier::new(backend),
            audit,
            metrics: Metrics::new(),
            policies: PolicyStore::new(),
            tokens: TokenStore::new(),
            db_pools: Default::default(),
            mounts: RwLock::new(MountTable::default()),
            auth_mounts: RwLock::new(MountTable::default()),
            auth_rt: Default::default(),
            locks: KeyLocks::new(256),
            cluster_name,
            cluster_id,
            unseal: Mutex::new(UnsealProgress::default()),
            root_key: Mutex::new(None),
            seal_lock: tokio::sync::Mutex::new(()),
            auto_unseal_key,
            config,
        }))
    }

    pub fn is_sealed(&self) -> bool {
        self.barrier.is_sealed()
    }

    pub async fn seal_config(&self) -> ApiResult<Option<SealConfig>> {
        Ok(seal::read_config(self.barrier.backend().as_ref()).await?)
    }

    pub fn unseal_progress(&self) -> (usize, String) {
        self.unseal
            .lock()
            .map(|p| (p.shares.len(), p.nonce.clone()))
            .unwrap_or((0, String::new()))
    }

    pub fn uses_auto_unseal(&self) -> bool {
        self.auto_unseal_key.is_some()
    }

    /// `sys/init`: returns (shares, root token). As in Vault, a Shamir-sealed server is sealed
    /// again after initialisation (the root token is created in between); with a key-file
    /// seal, or when `stay_unsealed` (dev mode), it stays unsealed.
    pub async fn initialize(
        &self,
        shares: u8,
        threshold: u8,
        root_token: Option<String>,
        stay_unsealed: bool,
    ) -> ApiResult<(Vec<Zeroizing<Vec<u8>>>, Zeroizing<String>)> {
        let _g = self.seal_lock.lock().await;
        let cfg = match &self.auto_unseal_key {
            Some(_) => SealConfig {
                kind: SealKind::Keyfile,
                secret_shares: 0,
                secret_threshold: 0,
            },
            None => {
                if shares == 0 || threshold == 0 {
                    return Err(ApiError::bad_request(
                        "invalid seal configuration: number of shares must be at least one",
                    ));
                }
                if threshold > shares {
                    return Err(ApiError::bad_request(
                        "invalid seal configuration: threshold cannot be larger than shares",
                    ));
                }
                if shares > 1 && threshold < 2 {
                    return Err(ApiError::bad_request(
                        "invalid seal configuration: threshold must be greater than one for multiple shares",
                    ));
                }
                SealConfig {
                    kind: SealKind::Shamir,
                    secret_shares: shares,
                    secret_threshold: threshold,
                }
            }
        };
        let out = seal::initialize(
            self.barrier.backend().as_ref(),
            cfg,
            self.auto_unseal_key.as_deref(),
            now_unix(),
        )
        .await?;
        self.barrier.install(out.keyring);
        if let Ok(mut rk) = self.root_key.lock() {
            *rk = Some(out.root_key);
        }
        let token = match self.post_unseal().await {
            Ok(()) => self.tokens.create_root(self, root_token).await,
            Err(e) => Err(e),
        };
        if token.is_err() || (!stay_unsealed && self.auto_unseal_key.is_none()) {
            self.seal_now();
        }
        Ok((out.shares, token?))
    }

    /// Feeds one unseal share. Returns true when the barrier is now unsealed.
    pub async fn submit_unseal_key(&self, key: Zeroizing<Vec<u8>>) -> ApiResult<bool> {
        let _g = self.seal_lock.lock().await;
        if !self.is_sealed() {
            return Ok(true);
        }
        let cfg = self
            .seal_config()
            .await?
            .ok_or_else(|| ApiError::bad_request("Vault is not initialized"))?;
        let shares: Vec<Vec<u8>> = {
            let mut p = self
                .unseal
                .lock()
                .map_err(|_| ApiError::internal(&"unseal state poisoned"))?;
            if p.shares.iter().any(|s| s.as_slice() == key.as_slice()) {
                return Ok(false);
            }
            if p.shares.is_empty() {
                p.nonce = new_uuid();
            }
            p.shares.push(key);
            if p.shares.len() < cfg.secret_threshold.max(1) as usize {
                return Ok(false);
            }
            let v = p.shares.iter().map(|s| s.to_vec()).collect();
            p.shares.clear();
            p.nonce.clear();
            v
        };
        let shares = Zeroizing::new(shares);
        let ukey = seal::combine_shares(&cfg, &shares)?;
        self.unseal_with(&ukey).await?;
        Ok(true)
    }

    pub fn reset_unseal(&self) {
        if let Ok(mut p) = self.unseal.lock() {
            p.shares.clear();
            p.nonce.clear();
        }
    }

    async fn unseal_with(&self, ukey: &[u8; 32]) -> ApiResult<()> {
        let (kr, root) = seal::unseal(self.barrier.backend().as_ref(), ukey)
            .await
            .map_err(|e| match e {
                airlock_store::StoreError::InvalidKey(m) => {
                    ApiError::bad_request(format!("invalid key: {m}"))
                }
                other => ApiError::from(other),
            })?;
        self.barrier.install(kr);
        if let Ok(mut rk) = self.root_key.lock() {
            *rk = Some(root);
        }
        if let Err(e) = self.post_unseal().await {
            self.seal_now();
            return Err(e);
        }
        tracing::info!("unsealed");
        Ok(())
    }

    /// Unseals with the configured key file / env key, if any and if initialised.
    pub async fn try_auto_unseal(&self) -> ApiResult<bool> {
        let Some(k) = &self.auto_unseal_key else {
            return Ok(false);
        };
        if self.seal_config().await?.is_none() {
            return Ok(false);
        }
        let _g = self.seal_lock.lock().await;
        self.unseal_with(k).await?;
        Ok(true)
    }

    fn seal_now(&self) {
        self.barrier.seal();
        self.audit.clear_key();
        self.tokens.clear();
        self.policies.clear();
        if let Ok(mut rk) = self.root_key.lock() {
            *rk = None;
        }
        if let Ok(mut m) = self.mounts.write() {
            *m = MountTable::default();
        }
        if let Ok(mut m) = self.auth_mounts.write() {
            *m = MountTable::default();
        }
        self.auth_rt.clear();
    }

    pub async fn seal(&self) {
        let _g = self.seal_lock.lock().await;
        self.seal_now();
        tracing::info!("sealed");
    }

    /// `sys/rotate`.
    pub async fn rotate(&self) -> ApiResult<()> {
        let _g = self.seal_lock.lock().await;
        let root = self
            .root_key
            .lock()
            .map_err(|_| ApiError::internal(&"root key lock poisoned"))?
            .clone()
            .ok_or_else(ApiError::sealed)?;
        let kr = seal::rotate(self.barrier.backend().as_ref(), &root, now_unix()).await?;
        self.barrier.install(kr);
        Ok(())
    }

    /// Loads everything that lives behind the barrier.
    async fn post_unseal(&self) -> ApiResult<()> {
        #[derive(serde::Serialize, serde::Deserialize)]
        struct HmacKeys {
            token: String,
            audit: String,
        }
        let keys: HmacKeys = match self.barrier.get_json("core/hmac-keys").await? {
            Some(k) => k,
            None => {
                let k = HmacKeys {
                    token: hex::encode(random_bytes::<32>()),
                    audit: hex::encode(random_bytes::<32>()),
                };
                self.barrier.put_json("core/hmac-keys", &k).await?;
                k
            }
        };
        let tk = Zeroizing::new(hex::decode(&keys.token).map_err(|e| ApiError::internal(&e))?);
        let ak = Zeroizing::new(hex::decode(&keys.audit).map_err(|e| ApiError::internal(&e))?);
        self.tokens.set_key(tk);
        self.audit.set_key(ak);
        let table: MountTable = match self.barrier.get_json(MOUNTS_KEY).await? {
            Some(t) => t,
            None => {
                let mut t = MountTable::default();
                if self.config.dev.is_some() {
                    t.entries.push(crate::sys::new_mount_entry(
                        "secret/",
                        "kv",
                        "key/value secret storage",
                        [("version".to_string(), "2".to_string())].into(),
                    ));
                }
                self.barrier.put_json(MOUNTS_KEY, &t).await?;
                t
            }
        };
        if let Ok(mut m) = self.mounts.write() {
            *m = table;
        }
        crate::auth::load(self).await?;
        Ok(())
    }

    /// Resolves the caller's token. `None` token → error. A token bound to client addresses
    /// is refused from elsewhere before a use is counted.
    pub async fn authenticate(
        &self,
        token: Option<&str>,
        remote: Option<std::net::IpAddr>,
    ) -> ApiResult<Caller> {
        let token = token.ok_or_else(ApiError::permission_denied)?;
        let entry = self
            .tokens
            .lookup_for_use(self, token, remote)
            .await?
            .ok_or_else(ApiError::permission_denied)?;
        let is_root = entry.policies.iter().any(|p| p == "root");
        let acl = if is_root {
            Arc::new(Acl::root())
        } else {
            self.policies.acl_for(self, &entry.policies).await?
        };
        Ok(Caller {
            entry: Some(entry),
            acl,
            is_root,
        })
    }

    /// The existence check: POST/PUT on a path whose target does not exist is `create`.
    async fn resolve_op(&self, req: &Request) -> ApiResult<Op> {
        if req.op != Op::Update {
            return Ok(req.op);
        }
        let exists = if req.path.starts_with("sys/") {
            None
        } else if let Some(name) = req.path.strip_prefix("auth/token/roles/") {
            Some(self.tokens.role_exists(self, name).await?)
        } else if req.path.starts_with("auth/") {
            crate::auth::exists(self, &req.path).await?
        } else {
            let mount = self
                .mounts
                .read()
                .ok()
                .and_then(|m| m.route(&req.path).cloned());
            match mount {
                Some(m) if m.kind == "kv" => crate::kv::exists(self, &m, &req.path).await?,
                _ => None,
            }
        };
        Ok(match exists {
            Some(false) => Op::Create,
            _ => Op::Update,
        })
    }

    /// Full pipeline for a logical request, then response wrapping when asked for.
    pub async fn handle(self: &Arc<Self>, req: Request) -> ApiResult<Response> {
        let wrap_ttl = req.wrap_ttl;
        let path = req.path.clone();
        let resp = self.handle_unwrapped(req).await?;
        match wrap_ttl {
            Some(ttl)
                if resp.wrap_info.is_none()
                    && resp.raw.is_none()
                    && resp.text.is_none()
                    && (resp.data.is_some() || resp.auth.is_some()) =>
            {
                crate::wrapping::wrap(self, resp, ttl, &path).await
            }
            _ => Ok(resp),
        }
    }

    async fn handle_unwrapped(self: &Arc<Self>, mut req: Request) -> ApiResult<Response> {
        if self.is_sealed() {
            return Err(ApiError::sealed());
        }
        // Logins and the wrapping token's own endpoints carry their credential in the request.
        if let Some((mount, sub)) = crate::auth::route(self, &req.path) {
            if crate::auth::is_login(&mount.kind, &sub) {
                // The presented credential is not audited, not even as an HMAC.
                let mut logged = Request {
                    id: req.id.clone(),
                    op: req.op,
                    path: req.path.clone(),
                    data: req.data.clone(),
                    query: Vec::new(),
                    token: None,
                    remote: req.remote,
                    content_type: None,
                    wrap_ttl: None,
                };
                for k in crate::auth::CREDENTIAL_FIELDS {
                    logged.data.remove(*k);
                }
                self.audit_request(&logged, None, None).await?;
                let result = crate::auth::login(self, &mount, &sub, &req).await;
                self.audit_response(&logged, None, &result).await?;
                return result;
            }
        }
        if crate::wrapping::is_pre_auth(&req) {
            let mut logged = Request {
                id: req.id.clone(),
                op: req.op,
                path: req.path.clone(),
                data: req.data.clone(),
                query: Vec::new(),
                token: None,
                remote: req.remote,
                content_type: None,
                wrap_ttl: None,
            };
            logged.data.remove("token");
            self.audit_request(&logged, None, None).await?;
            let result = crate::wrapping::pre_auth(self, &req).await;
            self.audit_response(&logged, None, &result).await?;
            return result;
        }
        let caller = self
            .authenticate(
                req.token.as_ref().map(|t| t.as_str()),
                req.remote.map(|r| r.ip()),
            )
            .await;
        let caller = match caller {
            Ok(c) => c,
            Err(e) => {
                self.audit_request(&req, None, Some(&e)).await?;
                return Err(e);
            }
        };
        req.op = self.resolve_op(&req).await?;
        if let Err(e) = self.authorize(&caller, &req) {
            self.audit_request(&req, Some(&caller), Some(&e)).await?;
            return Err(e);
        }
        self.audit_request(&req, Some(&caller), None).await?;
        let result = self.dispatch(&req, &caller).await;
        self.audit_response(&req, Some(&caller), &result).await?;
        if let Some(e) = &caller.entry {
            if e.num_uses == -1 {
                self.tokens.revoke_tree(self, &e.id_hash).await?;
            }
        }
        result
    }

    fn authorize(&self, caller: &Caller, req: &Request) -> ApiResult<()> {
        if caller.is_root {
            return Ok(());
        }
        let op = match req.op {
            Op::Read => Operation::Read,
            Op::Create => Operation::Create,
            Op::Update => Operation::Update,
            Op::Delete => Operation::Delete,
            Op::List => Operation::List,
            Op::Patch => Operation::Patch,
        };
        let params = match req.op {
            Op::Create | Op::Update | Op::Patch => Some(&req.data),
            _ => None,
        };
        // `sys/internal/ui/mounts` answers any valid token (Vault checks access to the mount
        // itself in the handler); the CLIs call it before every KV command.
        if req.path.starts_with("sys/internal/ui/mounts") {
            return Ok(());
        }
        // A list is authorised on the folder: `metadata/app/*` permits listing `metadata/app`.
        let acl_path = if req.op == Op::List && !req.path.ends_with('/') {
            format!("{}/", req.path)
        } else {
            req.path.clone()
        };
        if caller.acl.allowed(&acl_path, op, params).is_err() {
            return Err(ApiError::policy_denied());
        }
        if needs_sudo(&req.path, req.op) && !caller.acl.has_sudo(&acl_path) {
            return Err(ApiError::policy_denied());
        }
        Ok(())
    }

    async fn dispatch(self: &Arc<Self>, req: &Request, caller: &Caller) -> ApiResult<Response> {
        if let Some(rest) = req.path.strip_prefix("sys/") {
            return crate::sys::handle(self, req, caller, rest).await;
        }
        if req.path == "sys" {
            return Err(ApiError::unsupported_path());
        }
        if let Some(rest) = req.path.strip_prefix("auth/token/") {
            return crate::token::handle(self, req, caller, rest).await;
        }
        if let Some((m, sub)) = crate::auth::route(self, &req.path) {
            return crate::auth::handle(self, &m, &sub, req).await;
        }
        let mount = self
            .mounts
            .read()
            .ok()
            .and_then(|m| m.route(&req.path).cloned());
        match mount {
            Some(m) if m.kind == "kv" => crate::kv::handle(self, &m, req).await,
            Some(m) if m.kind == "database" => crate::database::handle(self, &m, req, caller).await,
            _ => Err(ApiError::no_route(&req.path)),
        }
    }

    /// Mount type and mount point of a path, for audit entries.
    fn mount_of(&self, path: &str) -> (String, String) {
        if path.starts_with("sys/") {
            return ("system".into(), "sys/".into());
        }
        if path.starts_with("auth/token/") {
            return ("token".into(), "auth/token/".into());
        }
        if let Some((m, _)) = crate::auth::route(self, path) {
            return (m.kind, format!("auth/{}", m.path));
        }
        self.mounts
            .read()
            .ok()
            .and_then(|m| m.route(path).map(|e| (e.kind.clone(), e.path.clone())))
            .unwrap_or_default()
    }

    fn audit_auth(&self, caller: Option<&Caller>) -> Value {
        let Some(e) = caller.and_then(|c| c.entry.as_ref()) else {
            return Value::Null;
        };
        json!({
            "accessor": self.audit.hash(&e.accessor),
            "display_name": e.display_name,
            "policies": e.policies,
            "token_policies": e.policies,
            "metadata": e.meta,
            "token_type": "service",
            "token_ttl": e.creation_ttl,
            "token_issue_time": rfc3339_nanos(e.creation_time as i128 * 1_000_000_000),
        })
    }

    async fn audit_request(
        &self,
        req: &Request,
        caller: Option<&Caller>,
        err: Option<&ApiError>,
    ) -> ApiResult<()> {
        if !self.audit.enabled() {
            return Ok(());
        }
        let (mount_type, mount_point) = self.mount_of(&req.path);
        let mut data = Value::Object(req.data.clone());
        self.audit.hash_value(&mut data);
        let token_h = req.token.as_ref().and_then(|t| self.audit.hash(t));
        let mut auth = self.audit_auth(caller);
        if let (Value::Object(m), Some(h)) = (&mut auth, &token_h) {
            m.insert("client_token".into(), json!(h));
        }
        let entry = json!({
            "time": rfc3339_nanos(now_nanos()),
            "type": "request",
            "auth": auth,
            "request": {
                "id": req.id,
                "operation": req.op.as_str(),
                "mount_point": mount_point,
                "mount_type": mount_type,
                "client_token": token_h,
                "client_token_accessor": caller.and_then(|c| c.entry.as_ref()).and_then(|e| self.audit.hash(&e.accessor)),
                "namespace": {"id": "root"},
                "path": req.path,
                "data": if req.data.is_empty() { Value::Null } else { data },
                "remote_address": req.remote.map(|r| r.ip().to_string()),
                "remote_port": req.remote.map(|r| r.port()),
            },
            "error": err.map(|e| e.errors.join("; ")).unwrap_or_default(),
        });
        self.audit.log(&entry).await?;
        Ok(())
    }

    async fn audit_response(
        &self,
        req: &Request,
        caller: Option<&Caller>,
        result: &ApiResult<Response>,
    ) -> ApiResult<()> {
        if !self.audit.enabled() {
            return Ok(());
        }
        let (mount_type, mount_point) = self.mount_of(&req.path);
        let mut resp = Map::new();
        let mut error = String::new();
        let status = match result {
            Ok(r) => {
                let mut data = r
                    .data
                    .clone()
                    .or_else(|| r.raw.clone())
                    .unwrap_or(Value::Null);
                self.audit.hash_value(&mut data);
                resp.insert("data".into(), data);
                if let Some(a) = &r.auth {
                    let mut av = serde_json::to_value(a).unwrap_or(Value::Null);
                    if let Value::Object(m) = &mut av {
                        for k in ["client_token", "accessor"] {
                            if let Some(Value::String(s)) = m.get_mut(k) {
                                *s = self.audit.hash(s).unwrap_or_default();
                            }
                        }
                    }
                    resp.insert("auth".into(), av);
                }
                if !r.warnings.is_empty() {
                    resp.insert("warnings".into(), json!(r.warnings));
                }
                r.status.unwrap_or(if r.is_empty() { 204 } else { 200 })
            }
            Err(e) => {
                error = e.errors.join("; ");
                e.status
            }
        };
        resp.insert("mount_point".into(), json!(mount_point));
        resp.insert("mount_type".into(), json!(mount_type));
        resp.insert("status".into(), json!(status));
        let mut auth = self.audit_auth(caller);
        if let (Value::Object(m), Some(t)) = (&mut auth, req.token.as_ref()) {
            m.insert("client_token".into(), json!(self.audit.hash(t)));
        }
        let entry = json!({
            "time": rfc3339_nanos(now_nanos()),
            "type": "response",
            "auth": auth,
            "request": {
                "id": req.id,
                "operation": req.op.as_str(),
                "mount_point": mount_point,
                "mount_type": mount_type,
                "namespace": {"id": "root"},
                "path": req.path,
                "remote_address": req.remote.map(|r| r.ip().to_string()),
            },
            "response": Value::Object(resp),
            "error": error,
        });
        self.audit.log(&entry).await?;
        Ok(())
    }

    /// Background work: purge expired tokens. Runs until the returned handle is aborted.
    pub fn spawn_housekeeping(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let core = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                tick.tick().await;
                if core.is_sealed() {
                    continue;
                }
                match core.tokens.purge_expired(&core, now_unix()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(count = n, "purged expired tokens"),
                    Err(e) => tracing::warn!(error = ?e.errors, "token purge failed"),
                }
                if let Err(e) = crate::wrapping::purge(&core, now_unix()).await {
                    tracing::warn!(error = ?e.errors, "wrapped response purge failed");
                }
                core.auth_rt.sweep(&core);
            }
        })
    }

    /// Background work: revoke leases that reached their end (and retry failed revocations).
    /// Runs every second; the first pass after start-up catches leases that ended while
    /// Airlock was stopped.
    pub fn spawn_lease_expiry(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let core = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if core.is_sealed() {
                    continue;
                }
                match crate::leases::expire_due(&core, now_unix()).await {
                    Ok((0, 0)) => {}
                    Ok((n, f)) => tracing::info!(revoked = n, failed = f, "expired leases"),
                    Err(e) => tracing::warn!(error = ?e.errors, "lease expiry pass failed"),
                }
                if let Err(e) = crate::database::rotate_due_static(&core, now_unix()).await {
                    tracing::warn!(error = ?e.errors, "static role rotation pass failed");
                }
            }
        })
    }

    pub fn mounts_snapshot(&self) -> MountTable {
        self.mounts.read().map(|m| m.clone()).unwrap_or_default()
    }

    pub async fn save_mounts(&self, table: MountTable) -> ApiResult<()> {
        self.barrier.put_json(MOUNTS_KEY, &table).await?;
        if let Ok(mut m) = self.mounts.write() {
            *m = table;
        }
        Ok(())
    }
}
