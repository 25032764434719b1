//! The router: the two mount tables (secrets engines at `<path>/`, auth methods at
//! `auth/<path>/`), each entry with its engine instance from the catalog, and the lookup of a
//! request path to (mount, engine, path below the mount). With the catalog, the only code that
//! names engine types.
//!
//! Tables are swapped whole (`Arc` snapshots): a request routes against one consistent table
//! while a mount is being enabled or disabled. An engine instance lives as long as its mount
//! (its caches and connection pools with it); re-saving a table keeps the instances of the
//! mounts it still holds.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use airlock_engines::catalog;
use airlock_logical::{ApiResult, Backend, MountEntry};
use serde_json::{json, Value};

use crate::mounts::MountTable;

/// Which table: secrets engines or auth methods.
pub use airlock_engines::catalog::Table as Which;

/// One mount table and its engines.
#[derive(Default)]
pub struct Table {
    pub entries: MountTable,
    mounted: HashMap<String, Mounted>,
}

/// A mount with its engine instance and storage prefix (shared, so routing a request
/// allocates nothing per mount).
#[derive(Clone)]
pub struct Mounted {
    pub entry: Arc<MountEntry>,
    pub backend: Arc<dyn Backend>,
    /// `logical/<uuid>/`: the engine's storage view.
    pub prefix: Arc<str>,
}

/// Where a request path goes.
#[derive(Clone)]
pub struct Route {
    pub mounted: Mounted,
    /// The path below the mount.
    pub rel: String,
    /// An auth method (the path started with `auth/`).
    pub auth: bool,
}

impl std::ops::Deref for Route {
    type Target = Mounted;
    fn deref(&self) -> &Mounted {
        &self.mounted
    }
}

impl Route {
    /// The mount point as audit entries and `sys/` name it (`auth/` included).
    pub fn mount_point(&self) -> String {
        if self.auth {
            format!("auth/{}", self.entry.path)
        } else {
            self.entry.path.clone()
        }
    }
}

#[derive(Default)]
pub struct Router {
    secrets: RwLock<Arc<Table>>,
    auth: RwLock<Arc<Table>>,
    /// Finished remounts by migration id: (from, to). Kept in memory, the last 100.
    remounts: Mutex<VecDeque<(String, String, String)>>,
}

impl Router {
    fn lock(&self, which: Which) -> &RwLock<Arc<Table>> {
        match which {
            Which::Secrets => &self.secrets,
            Which::Auth => &self.auth,
        }
    }

    fn current(&self, which: Which) -> Arc<Table> {
        self.lock(which)
            .read()
            .map(|t| Arc::clone(&t))
            .unwrap_or_default()
    }

    /// A copy of a mount table.
    pub fn snapshot(&self, which: Which) -> MountTable {
        self.current(which).entries.clone()
    }

    /// Installs a table, creating engines for new mounts and keeping existing ones. Fails
    /// (and changes nothing) when an entry's type or options are not in the catalog.
    pub fn install(&self, which: Which, entries: MountTable) -> ApiResult<()> {
        let old = self.current(which);
        let mut mounted = HashMap::with_capacity(entries.entries.len());
        for e in &entries.entries {
            let backend = match old.mounted.get(&e.uuid) {
                Some(m) if m.entry.options == e.options => Arc::clone(&m.backend),
                _ => catalog::instantiate(which, e)?,
            };
            mounted.insert(
                e.uuid.clone(),
                Mounted {
                    entry: Arc::new(e.clone()),
                    backend,
                    prefix: e.storage_prefix().into(),
                },
            );
        }
        if let Ok(mut t) = self.lock(which).write() {
            *t = Arc::new(Table { entries, mounted });
        }
        Ok(())
    }

    /// Forgets both tables (sealing).
    pub fn clear(&self) {
        for which in [Which::Secrets, Which::Auth] {
            if let Ok(mut t) = self.lock(which).write() {
                *t = Arc::new(Table::default());
            }
        }
    }

    /// The mount serving `path` (a request path below `/v1/`): `auth/<m>/...` in the auth
    /// table, anything else in the secrets table. `sys/` and `auth/token/` are not mounts.
    pub fn route(&self, path: &str) -> Option<Route> {
        let (which, rest, auth) = match path.strip_prefix("auth/") {
            Some(r) => (Which::Auth, r, true),
            None => (Which::Secrets, path, false),
        };
        let t = self.current(which);
        let mounted = t.mounted.get(&t.entries.route(rest)?.uuid)?.clone();
        let rel = rest
            .get(mounted.entry.path.len()..)
            .unwrap_or("")
            .to_string();
        Some(Route { mounted, rel, auth })
    }

    /// A mount by uuid, in either table (the lease manager finds the engine that issued a
    /// lease this way).
    pub fn by_uuid(&self, uuid: &str) -> Option<Mounted> {
        [Which::Secrets, Which::Auth]
            .into_iter()
            .find_map(|w| self.current(w).mounted.get(uuid).cloned())
    }

    pub fn record_remount(&self, id: &str, from: &str, to: &str) {
        if let Ok(mut r) = self.remounts.lock() {
            if r.len() >= 100 {
                r.pop_front();
            }
            r.push_back((id.to_string(), from.to_string(), to.to_string()));
        }
    }

    pub fn remount_record(&self, id: &str) -> Option<(String, String)> {
        let r = self.remounts.lock().ok()?;
        r.iter()
            .find(|(i, _, _)| i == id)
            .map(|(_, f, t)| (f.clone(), t.clone()))
    }

    /// Every mount with its engine (periodic work).
    pub fn all(&self) -> Vec<Mounted> {
        let mut out = Vec::new();
        for w in [Which::Secrets, Which::Auth] {
            out.extend(self.current(w).mounted.values().cloned());
        }
        out
    }
}

/// The type a user names, normalised (`kv-v2` → `kv` with `version=2`).
pub fn resolve_type(which: Which, name: &str) -> ApiResult<catalog::Resolved> {
    catalog::resolve(which, name)
}

/// A secrets mount as `sys/mounts` shows it. KV mounts always show their options (`{}`
/// when empty), as Vault does; other engines show null.
pub fn mount_json(e: &MountEntry) -> Value {
    let options = if e.options.is_empty() && e.kind != "kv" {
        Value::Null
    } else {
        json!(e.options)
    };
    let mut config = json!({
        "default_lease_ttl": e.default_lease_ttl,
        "force_no_cache": false,
        "max_lease_ttl": e.max_lease_ttl,
    });
    if e.kind == "identity" {
        config["passthrough_request_headers"] = json!(["Authorization"]);
    }
    let mut v = json!({
        "accessor": e.accessor,
        "config": config,
        "deprecation_status": "supported",
        "description": e.description,
        "external_entropy_access": false,
        "local": e.local,
        "options": options,
        "plugin_version": "",
        "running_plugin_version": concat!("v", env!("CARGO_PKG_VERSION"), "+builtin.airlock"),
        "running_sha256": "",
        "seal_wrap": e.seal_wrap,
        "type": e.kind,
        "uuid": e.uuid,
    });
    // The built-in mounts carry no deprecation status (they are not catalog plugins).
    if crate::mounts::BUILTIN.contains(&e.path.as_str()) {
        if let Value::Object(m) = &mut v {
            m.remove("deprecation_status");
        }
    }
    v
}

/// The mounts of a fresh dev-mode server: KV version 2 at `secret/`.
pub fn dev_mounts() -> Vec<MountEntry> {
    vec![crate::mounts::new_mount_entry(
        "secret/",
        "kv",
        "key/value secret storage",
        [("version".to_string(), "2".to_string())].into(),
    )]
}
