//! The server core: the stores and their handles (barrier, tokens, policies, leases, the
//! router with its mount tables), the seal lifecycle (init, unseal, seal, rotate) and token
//! authentication. The request pipeline that uses it is `pipeline`; the stores never see the
//! core.

use std::sync::{Arc, Mutex};

use airlock_audit::Auditor;
use airlock_core::policy::Acl;
use airlock_store::seal::{self, SealConfig, SealKind};
use airlock_store::{Backend, Barrier, BarrierOp};
use zeroize::Zeroizing;

use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::hmac::HmacKey;
use crate::leases::LeaseManager;
use crate::limiter::LoginLimiter;
use crate::metrics::Metrics;
use crate::mounts::{MountTable, MOUNTS_KEY};
use crate::policies::PolicyStore;
use crate::router::{Router, Which};
use crate::token::{TokenEntry, TokenStore};

pub use airlock_logical::util::{
    new_uuid, now_nanos, now_unix, parse_rfc3339_nanos, random_base62, random_bytes, rfc3339_nanos,
};
pub use airlock_logical::{KeyLocks, Locked, View};

/// Unseal progress between `sys/unseal` calls.
#[derive(Default)]
struct UnsealProgress {
    shares: Vec<Zeroizing<Vec<u8>>>,
    nonce: String,
}

pub struct Core {
    pub config: Arc<Config>,
    pub barrier: Arc<Barrier>,
    pub audit: Auditor,
    pub metrics: Arc<Metrics>,
    pub policies: PolicyStore,
    pub tokens: TokenStore,
    /// The key tokens and other ids are stored under (as HMACs).
    pub hmac: Arc<HmacKey>,
    /// The mount tables and their engines.
    pub router: Arc<Router>,
    pub leases: Arc<LeaseManager>,
    /// Login rate limits.
    pub limiter: LoginLimiter,
    pub locks: Arc<KeyLocks>,
    /// This node among others on a shared store (change feed, leader); inert on SQLite.
    pub ha: crate::ha::Ha,
    /// Wakes event readers when the log grows.
    pub events: crate::event_hub::EventsHub,
    /// The whole barrier as a storage view: read-modify-write sequences lock through it
    /// (`root.lock(key)`), so their writes are conditional across nodes.
    pub root: View,
    /// This cluster's identity, generated once at the first unseal and stored in the barrier
    /// (`core/cluster/local/info`); known only while unsealed, as in Vault.
    cluster: Mutex<Option<ClusterIdentity>>,
    unseal: Mutex<UnsealProgress>,
    root_key: Mutex<Option<Zeroizing<[u8; 32]>>>,
    /// Serialises init/unseal/seal/rotate.
    pub(crate) seal_lock: tokio::sync::Mutex<()>,
    auto_unseal_key: Option<Zeroizing<[u8; 32]>>,
    /// `[seal] type = "transit"`: the unseal key is wrapped by another server's key.
    transit_seal: Option<crate::transit_seal::TransitSeal>,
    /// The web UI's browser sessions on this node (cookie → token).
    pub ui_sessions: crate::ui::session::Sessions,
    /// Registered honeytokens, as last read (checked when a presented token is unknown).
    pub honeytokens: crate::honeytoken_cache::HoneytokenCache,
}

/// Where the cluster's identity is stored (in the barrier).
pub const CLUSTER_INFO_KEY: &str = "core/cluster/local/info";

/// A cluster's `cluster_id` and `cluster_name`, the same on every node and at every start.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ClusterIdentity {
    pub id: String,
    pub name: String,
}

/// What an authenticated request runs as.
pub struct Caller {
    pub entry: Option<TokenEntry>,
    pub acl: Arc<Acl>,
    pub is_root: bool,
}

/// Storage key of the auth mount table.
pub const AUTH_TABLE_KEY: &str = "core/auth";

/// Where a mount table is stored.
pub fn table_key(which: Which) -> &'static str {
    match which {
        Which::Secrets => MOUNTS_KEY,
        Which::Auth => AUTH_TABLE_KEY,
    }
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
        let transit_seal = if config.seal.is_transit() {
            Some(crate::transit_seal::TransitSeal::from_config(
                &config.seal,
                |k| std::env::var(k).ok(),
            )?)
        } else {
            None
        };
        let ha = crate::ha::Ha::new(backend.cluster());
        let barrier = Arc::new(Barrier::new(backend));
        let barrier_for_root = Arc::clone(&barrier);
        let locks = Arc::new(KeyLocks::new(256));
        let metrics = Arc::new(Metrics::new());
        let router = Arc::new(Router::default());
        let hmac = Arc::new(HmacKey::default());
        let leases = LeaseManager::new(
            Arc::clone(&barrier),
            Arc::clone(&locks),
            Arc::clone(&metrics),
            Arc::clone(&router),
            Arc::clone(&config),
            Arc::clone(&hmac),
        );
        Ok(Arc::new(Self {
            tokens: TokenStore::new(
                Arc::clone(&barrier),
                Arc::clone(&locks),
                Arc::clone(&config),
                Arc::clone(&hmac),
                Arc::clone(&leases),
                Arc::clone(&router),
            ),
            policies: PolicyStore::new(Arc::clone(&barrier), Arc::clone(&locks)),
            barrier,
            audit,
            metrics,
            hmac,
            router,
            leases,
            limiter: LoginLimiter::default(),
            ha,
            events: crate::event_hub::EventsHub::default(),
            root: View::new(barrier_for_root, "", Arc::clone(&locks)),
            locks,
            cluster: Mutex::new(None),
            unseal: Mutex::new(UnsealProgress::default()),
            root_key: Mutex::new(None),
            seal_lock: tokio::sync::Mutex::new(()),
            auto_unseal_key,
            transit_seal,
            ui_sessions: Default::default(),
            honeytokens: Default::default(),
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
        self.auto_unseal_key.is_some() || self.transit_seal.is_some()
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
        // The transit seal: a fresh unseal key, wrapped by the remote key before anything
        // is written (an unreachable key server leaves the store uninitialised).
        let transit_key = match &self.transit_seal {
            Some(t) => {
                let k = airlock_store::keyring::random_key();
                let wrapped = t.wrap(&k).await?;
                Some((k, wrapped))
            }
            None => None,
        };
        let cfg = match (&self.auto_unseal_key, &transit_key) {
            (_, Some((_, wrapped))) => SealConfig {
                kind: SealKind::Transit,
                secret_shares: 0,
                secret_threshold: 0,
                wrapped_key: Some(wrapped.clone()),
            },
            (Some(_), None) => SealConfig {
                kind: SealKind::Keyfile,
                secret_shares: 0,
                secret_threshold: 0,
                wrapped_key: None,
            },
            (None, None) => {
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
                    wrapped_key: None,
                }
            }
        };
        let auto_key = match &transit_key {
            Some((k, _)) => Some(&**k),
            None => self.auto_unseal_key.as_deref(),
        };
        let out =
            seal::initialize(self.barrier.backend().as_ref(), cfg, auto_key, now_unix()).await?;
        self.barrier.install(out.keyring);
        self.barrier.set_root_key(out.root_key.clone());
        if let Ok(mut rk) = self.root_key.lock() {
            *rk = Some(out.root_key);
        }
        let token = match self.post_unseal().await {
            Ok(()) => self.tokens.create_root(root_token).await,
            Err(e) => Err(e),
        };
        if token.is_err() || (!stay_unsealed && !self.uses_auto_unseal()) {
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
        self.barrier.set_root_key(root.clone());
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
        if let Some(t) = &self.transit_seal {
            let Some(cfg) = self.seal_config().await? else {
                return Ok(false);
            };
            let wrapped = match (cfg.kind, &cfg.wrapped_key) {
                (SealKind::Transit, Some(w)) => w.clone(),
                _ => {
                    return Err(ApiError::bad_request(
                        "the store was not initialised with the transit seal",
                    ))
                }
            };
            let k = t.unwrap(&wrapped).await?;
            let _g = self.seal_lock.lock().await;
            if self.is_sealed() {
                self.unseal_with(&k).await?;
            }
            return Ok(true);
        }
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

    pub(crate) fn seal_now(&self) {
        self.barrier.seal();
        self.ui_sessions.clear();
        self.audit.clear_key();
        self.hmac.clear();
        self.policies.clear();
        if let Ok(mut rk) = self.root_key.lock() {
            *rk = None;
        }
        self.router.clear();
        self.limiter.clear();
        if let Ok(mut c) = self.cluster.lock() {
            *c = None;
        }
    }

    /// The cluster's identity while unsealed.
    pub fn cluster(&self) -> Option<ClusterIdentity> {
        self.cluster.lock().ok().and_then(|c| c.clone())
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

    /// A record made once for the whole cluster (HMAC keys, identity): read it, or create it
    /// if absent; of several nodes creating it at once, one wins and all use its record.
    async fn create_once<T>(&self, key: &str, make: impl Fn() -> T) -> ApiResult<T>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        for _ in 0..3 {
            let (cur, version) = self.barrier.get_fresh(key).await?;
            if let Some(b) = cur {
                return serde_json::from_slice(&b)
                    .map_err(|_| ApiError::internal(&format!("record {key} is malformed")));
            }
            let v = make();
            let b = serde_json::to_vec(&v).map_err(|e| ApiError::internal(&e))?;
            match self
                .barrier
                .commit(vec![BarrierOp::PutIf(key.to_string(), b, version)])
                .await
            {
                Ok(()) => return Ok(v),
                Err(airlock_store::StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::conflict())
    }

    /// Loads everything that lives behind the barrier.
    async fn post_unseal(&self) -> ApiResult<()> {
        #[derive(serde::Serialize, serde::Deserialize)]
        struct HmacKeys {
            token: String,
            audit: String,
        }
        let keys: HmacKeys = self
            .create_once("core/hmac-keys", || HmacKeys {
                token: hex::encode(random_bytes::<32>()),
                audit: hex::encode(random_bytes::<32>()),
            })
            .await?;
        let tk = Zeroizing::new(hex::decode(&keys.token).map_err(|e| ApiError::internal(&e))?);
        let ak = Zeroizing::new(hex::decode(&keys.audit).map_err(|e| ApiError::internal(&e))?);
        self.hmac.set(tk);
        self.audit.set_key(ak);
        let mut cluster: ClusterIdentity = self
            .create_once(CLUSTER_INFO_KEY, || {
                let id = new_uuid();
                ClusterIdentity {
                    name: format!("airlock-cluster-{}", &id[..8]),
                    id,
                }
            })
            .await?;
        if let Some(name) = &self.config.cluster_name {
            cluster.name.clone_from(name);
        }
        if let Ok(mut c) = self.cluster.lock() {
            *c = Some(cluster);
        }
        let mut tries = 0;
        loop {
            match self.load_mounts_first_time().await {
                Err(e) if e.is_conflict() && tries < 3 => tries += 1,
                other => break other?,
            }
        }
        let auth: MountTable = self
            .barrier
            .get_json(AUTH_TABLE_KEY)
            .await?
            .unwrap_or_default();
        self.router.install(Which::Auth, auth)?;
        Ok(())
    }

    /// Installs the secrets mount table, adding the built-in mounts (and the dev mounts) the
    /// first time; conditional, so nodes unsealing a new store at once agree on one table.
    async fn load_mounts_first_time(&self) -> ApiResult<()> {
        let g = self.root.lock(MOUNTS_KEY).await?;
        let stored: Option<MountTable> = self.barrier.get_json(MOUNTS_KEY).await?;
        let fresh = stored.is_none();
        let mut table = stored.unwrap_or_default();
        if fresh && self.config.dev.is_some() {
            table.entries.extend(crate::router::dev_mounts());
        }
        // Every server has the built-in mounts, made once (a store from a release before
        // them gets them at its first unseal) and kept with their uuids.
        let mut changed = fresh;
        for path in crate::mounts::BUILTIN {
            if table.get(path).is_none() {
                if let Some(e) = crate::mounts::builtin_entry(path) {
                    table.entries.push(e);
                    changed = true;
                }
            }
        }
        if changed {
            g.put_json(MOUNTS_KEY, &table).await?;
        }
        self.router.install(Which::Secrets, table)
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
            .lookup_for_use(token, remote)
            .await?
            .ok_or_else(ApiError::permission_denied)?;
        let is_root = entry.policies.iter().any(|p| p == "root");
        let acl = if is_root {
            Arc::new(Acl::root())
        } else {
            self.policies.acl_for(&entry.policies).await?
        };
        Ok(Caller {
            entry: Some(entry),
            acl,
            is_root,
        })
    }

    pub fn mounts_snapshot(&self) -> MountTable {
        self.router.snapshot(Which::Secrets)
    }

    /// Starts a change of a mount table: locks it (conditionally on its stored version,
    /// across nodes) and installs the stored table, so the change applies to the current
    /// one even if this node has not heard of another node's change yet.
    pub async fn lock_table(&self, which: Which) -> ApiResult<Locked<'_>> {
        let g = self.root.lock(table_key(which)).await?;
        self.reload_table(which).await?;
        Ok(g)
    }

    /// Installs a mount table as stored (another node changed it, or it is about to be
    /// changed here).
    pub async fn reload_table(&self, which: Which) -> ApiResult<()> {
        let table: Option<MountTable> = self.barrier.get_json(table_key(which)).await?;
        match table {
            Some(t) => self.router.install(which, t),
            // A table once stored is never deleted: reading none while one is installed
            // is a read gone wrong (storage coming back), not a cluster without mounts.
            None if !self.router.snapshot(which).entries.is_empty() => {
                tracing::warn!("a mount table read as absent; keeping the installed one");
                Ok(())
            }
            None => self.router.install(which, MountTable::default()),
        }
    }

    /// Persists and installs a mount table under [`Core::lock_table`]'s lock (engines for new
    /// mounts are created first, so a table the catalog cannot serve is never stored).
    pub async fn save_table(
        &self,
        lock: &Locked<'_>,
        which: Which,
        table: MountTable,
    ) -> ApiResult<()> {
        let old = self.router.snapshot(which);
        self.router.install(which, table.clone())?;
        let b = serde_json::to_vec(&table).map_err(|e| ApiError::internal(&e))?;
        let path = match which {
            Which::Secrets => "sys/mounts",
            Which::Auth => "sys/auth",
        };
        let event = airlock_logical::system::event_op(
            "mounts/table-write",
            path,
            path,
            &crate::mounts::system_entry(),
            &[],
            now_nanos(),
        );
        if let Err(e) = lock
            .commit(vec![BarrierOp::Put(table_key(which).to_string(), b), event])
            .await
        {
            let _ = self.router.install(which, old);
            return Err(e);
        }
        Ok(())
    }
}
