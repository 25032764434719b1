//! A mount table (secrets engines or auth methods): longest-prefix lookup, overlap checks
//! and mount-path validation. The router holds two of them with their engine instances.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
pub use airlock_logical::MountEntry;

pub const MOUNTS_KEY: &str = "core/mounts";

/// A new mount entry with a fresh uuid and accessor.
pub fn new_mount_entry(
    path: &str,
    kind: &str,
    description: &str,
    options: BTreeMap<String, String>,
) -> MountEntry {
    MountEntry {
        path: path.to_string(),
        kind: kind.to_string(),
        description: description.to_string(),
        accessor: format!(
            "{kind}_{}",
            &airlock_logical::util::random_base62(8).to_lowercase()
        ),
        uuid: airlock_logical::util::new_uuid(),
        options,
        default_lease_ttl: 0,
        max_lease_ttl: 0,
        local: false,
        seal_wrap: false,
    }
}

/// The system mount as shown in `sys/mounts` (served by `sys.rs`, not stored).
pub fn system_mount_json() -> Value {
    json!({
        "accessor": "system_00000000",
        "config": {"default_lease_ttl": 0, "force_no_cache": false, "max_lease_ttl": 0,
                   "passthrough_request_headers": ["Accept"]},
        "description": "system endpoints used for control, policy and debugging",
        "external_entropy_access": false,
        "local": false,
        "options": null,
        "plugin_version": "",
        "running_plugin_version": concat!("v", env!("CARGO_PKG_VERSION"), "+builtin.airlock"),
        "running_sha256": "",
        "seal_wrap": true,
        "type": "system",
        "uuid": "00000000-0000-0000-0000-000000000000",
    })
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MountTable {
    pub entries: Vec<MountEntry>,
}

/// Paths no user mount may take or sit under.
pub const RESERVED: &[&str] = &["sys/", "auth/", "cubbyhole/", "identity/"];

/// Mounts every server has, made by the server (never enabled, disabled, moved or tuned by
/// users): `cubbyhole/` and `identity/`. `sys/` is served by the system backend itself.
pub const BUILTIN: &[&str] = &["cubbyhole/", "identity/"];

/// Normalises a mount path (`a/b` → `a/b/`) and checks its syntax.
pub fn mount_path_syntax(raw: &str) -> ApiResult<String> {
    let p = raw.trim_matches('/');
    if p.is_empty() {
        return Err(ApiError::bad_request("path cannot be empty"));
    }
    if p.split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(ApiError::bad_request(format!("invalid mount path \"{p}\"")));
    }
    if p.chars().any(|c| c.is_control() || c == '*' || c == '+') {
        return Err(ApiError::bad_request(format!("invalid mount path \"{p}\"")));
    }
    Ok(format!("{p}/"))
}

/// Normalises and validates a path to mount at (`sys/mounts/<path>`): not at or under a
/// reserved path.
pub fn normalize_mount_path(raw: &str) -> ApiResult<String> {
    let p = mount_path_syntax(raw)?;
    if RESERVED.iter().any(|r| p.starts_with(r)) {
        return Err(ApiError::bad_request(format!("cannot mount \"{p}\"")));
    }
    Ok(p)
}

/// Whether `path` (normalised) is one of the mounts only the server manages.
pub fn is_builtin(path: &str) -> bool {
    path == "sys/" || BUILTIN.contains(&path)
}

/// The `sys/` mount as events name it (the server's own changes: policies, mount tables).
pub fn system_entry() -> MountEntry {
    MountEntry {
        path: "sys/".into(),
        kind: "system".into(),
        description: "system endpoints".into(),
        accessor: "system".into(),
        uuid: String::new(),
        options: BTreeMap::new(),
        default_lease_ttl: 0,
        max_lease_ttl: 0,
        local: false,
        seal_wrap: false,
    }
}

/// The built-in mount at `path`, as a new server gets it.
pub fn builtin_entry(path: &str) -> Option<MountEntry> {
    let (kind, description, local) = match path {
        "cubbyhole/" => ("cubbyhole", "per-token private secret storage", true),
        "identity/" => ("identity", "identity store", false),
        _ => return None,
    };
    let mut e = new_mount_entry(path, kind, description, BTreeMap::new());
    e.local = local;
    Some(e)
}

impl MountTable {
    /// The mount serving `path` (longest prefix match).
    pub fn route(&self, path: &str) -> Option<&MountEntry> {
        let with_slash;
        let probe = if path.ends_with('/') {
            path
        } else {
            with_slash = format!("{path}/");
            &with_slash
        };
        self.entries
            .iter()
            .filter(|m| path.starts_with(&m.path) || probe == m.path)
            .max_by_key(|m| m.path.len())
    }

    pub fn get(&self, path: &str) -> Option<&MountEntry> {
        self.entries.iter().find(|m| m.path == path)
    }

    /// Fails when `path` overlaps an existing mount (either contains the other).
    pub fn check_free(&self, path: &str) -> ApiResult<()> {
        self.check_free_except(path, "")
    }

    /// [`Self::check_free`], not counting the mount `uuid` (the one being moved).
    pub fn check_free_except(&self, path: &str, uuid: &str) -> ApiResult<()> {
        for m in self.entries.iter().filter(|m| m.uuid != uuid) {
            if path.starts_with(&m.path) || m.path.starts_with(path) {
                return Err(ApiError::bad_request(format!(
                    "path is already in use at {}",
                    m.path
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(p: &str) -> MountEntry {
        MountEntry {
            path: p.into(),
            kind: "kv".into(),
            description: String::new(),
            accessor: "kv_1".into(),
            uuid: "u".into(),
            options: BTreeMap::new(),
            default_lease_ttl: 0,
            max_lease_ttl: 0,
            local: false,
            seal_wrap: false,
        }
    }

    #[test]
    fn longest_prefix_wins() {
        let t = MountTable {
            entries: vec![entry("a/"), entry("a/b/")],
        };
        assert_eq!(t.route("a/b/c").unwrap().path, "a/b/");
        assert_eq!(t.route("a/x").unwrap().path, "a/");
        assert_eq!(t.route("a").unwrap().path, "a/");
        assert!(t.route("ab/x").is_none());
        assert!(t.check_free("a/b/c/").is_err());
        assert!(t.check_free("c/").is_ok());
    }

    #[test]
    fn hostile_mount_paths_rejected() {
        assert!(normalize_mount_path("../x").is_err());
        assert!(normalize_mount_path("a//b").is_err());
        assert!(normalize_mount_path("sys/x").is_err());
        assert_eq!(normalize_mount_path("/kv/").unwrap(), "kv/");
    }
}
