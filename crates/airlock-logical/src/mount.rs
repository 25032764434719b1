//! A mount as the mount table stores it: where an engine or auth method is enabled, with its
//! identity (uuid, accessor), options and TTL settings. Engines see their own entry in their
//! context; only the server's router changes the table.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MountEntry {
    /// Always ends in `/` (below `auth/` for auth methods).
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub description: String,
    pub accessor: String,
    pub uuid: String,
    pub options: BTreeMap<String, String>,
    pub default_lease_ttl: i64,
    pub max_lease_ttl: i64,
    #[serde(default)]
    pub local: bool,
    #[serde(default)]
    pub seal_wrap: bool,
}

impl MountEntry {
    /// Storage prefix of this mount's data.
    pub fn storage_prefix(&self) -> String {
        format!("logical/{}/", self.uuid)
    }

    /// A mount option (`version` for KV).
    pub fn option(&self, k: &str) -> Option<&str> {
        self.options.get(k).map(String::as_str)
    }
}
