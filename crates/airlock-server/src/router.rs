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
    backends: HashMap<String, Arc<dyn Backend>>,
}

/// Where a request path goes.
#[derive(Clone)]
pub struct Route {
    pub entry: MountEntry,
    pub backend: Arc<dyn Backend>,
    /// The path below the mount.
    pub rel: String,
    /// An auth method (the path started with `auth/`).
    pub auth: bool,
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
        let mut backends = HashMap::with_capacity(entries.entries.len());
        for e in &entries.entries {
            let b = match old.backends.get(&e.uuid) {
                Some(b)
                    if old
                        .entries
                        .entries
                        .iter()
                        .any(|o| o.uuid == e.uuid && o.options == e.options) =>
                {
                    Arc::clone(b)
                }
                _ => catalog::instantiate(which, e)?,
            };
            backends.insert(e.uuid.clone(), b);
        }
        if let Ok(mut t) = self.lock(which).write() {
            *t = Arc::new(Table { entries, backends });
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
        let entry = t.entries.route(rest)?.clone();
        let backend = Arc::clone(t.backends.get(&entry.uuid)?);
        let rel = rest.get(entry.path.len()..).unwrap_or("").to_string();
        Some(Route {
            entry,
            backend,
            rel,
            auth,
        })
    }

    /// A mount by uuid, in either table (the lease manager finds the engine that issued a
    /// lease this way).
    pub fn by_uuid(&self, uuid: &str) -> Option<(MountEntry, Arc<dyn Backend>)> {
        [Which::Secrets, Which::Auth].into_iter().find_map(|w| {
            let t = self.current(w);
            let e = t.entries.entries.iter().find(|e| e.uuid == uuid)?.clone();
            let b = Arc::clone(t.backends.get(uuid)?);
            Some((e, b))
        })
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
    pub fn all(&self) -> Vec<(MountEntry, Arc<dyn Backend>)> {
        let mut out = Vec::new();
        for w in [Which::Secrets, Which::Auth] {
            let t = self.current(w);
            for e in &t.entries.entries {
                if let Some(b) = t.backends.get(&e.uuid) {
                    out.push((e.clone(), Arc::clone(b)));
                }
            }
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
    json!({
        "accessor": e.accessor,
        "config": {
            "default_lease_ttl": e.default_lease_ttl,
            "force_no_cache": false,
            "max_lease_ttl": e.max_lease_ttl,
        },
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
    })
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
