//! The outward forms of a key: Vault's `keys/<name>` read and the plaintext backup
//! document (base64 of `{"policy": ..., "archived_keys": {"keys": [...]}}`, byte-compatible
//! with Vault's for symmetric, HMAC and Ed25519 keys, so backups move between the two).

use serde::Deserialize;
use zeroize::Zeroizing;

use super::asym;
use super::crypto::{self, b64e};
use super::policy::{KeyEntry, KeyErr, KeyType, Policy, KDF_HKDF_SHA256};

fn user(m: impl Into<String>) -> KeyErr {
    KeyErr::User(m.into())
}

impl Policy {
    /// Vault's `keys/<name>` read.
    pub fn read_json(&self, context: &[u8]) -> Result<serde_json::Value, KeyErr> {
        use serde_json::{json, Map, Value};
        let k = self.kind;
        let mut d = json!({
            "name": self.name,
            "type": k.name(),
            "derived": self.derived,
            "deletion_allowed": self.deletion_allowed,
            "min_available_version": self.min_available_version,
            "min_decryption_version": self.min_decryption_version,
            "min_encryption_version": self.min_encryption_version,
            "latest_version": self.latest_version,
            "exportable": self.exportable,
            "allow_plaintext_backup": self.allow_plaintext_backup,
            "supports_encryption": k.encryption(),
            "supports_decryption": k.encryption(),
            "supports_signing": k.signing(),
            "supports_derivation": k.derivation(),
            "auto_rotate_period": self.auto_rotate_period / 1_000_000_000,
            "imported_key": self.imported,
            "soft_deleted": self.soft_deleted,
        });
        let Value::Object(m) = &mut d else {
            return Err(KeyErr::Internal("unreachable".into()));
        };
        if self.key_size != 0 {
            m.insert("key_size".into(), json!(self.key_size));
        }
        if self.imported {
            m.insert(
                "imported_key_allow_rotation".into(),
                json!(self.allow_imported_key_rotation),
            );
        }
        for (field, info) in [
            ("backup_info", &self.backup_info),
            ("restore_info", &self.restore_info),
        ] {
            if let Some(i) = info {
                m.insert(field.into(), json!({"time": i.time, "version": i.version}));
            }
        }
        if self.derived {
            if self.kdf == KDF_HKDF_SHA256 {
                m.insert("kdf".into(), json!("hkdf_sha256"));
            } else {
                m.insert("kdf".into(), json!("hmac-sha256-counter"));
                m.insert("kdf_mode".into(), json!("hmac-sha256-counter"));
            }
            m.insert(
                "convergent_encryption".into(),
                json!(self.convergent_encryption),
            );
            if self.convergent_encryption {
                m.insert(
                    "convergent_encryption_version".into(),
                    json!(self.convergent_version),
                );
            }
        }
        if k == KeyType::Hmac {
            // Vault lists no versions for HMAC keys.
            return Ok(d);
        }
        let mut keys = Map::new();
        for (v, e) in self.visible() {
            let val = if k.asymmetric() {
                let mut public = e.public_key.clone();
                if k == KeyType::Ed25519 && self.derived {
                    public = if context.is_empty() {
                        String::new()
                    } else {
                        let seed = self.key_for(context, v, 32)?;
                        let full = asym::ed25519_from_seed(&seed).map_err(KeyErr::Internal)?;
                        b64e(full.get(32..).unwrap_or_default())
                    };
                }
                let name = match k.curve() {
                    Some(c) => c.name(),
                    None => k.name(),
                };
                json!({"certificate_chain": "", "creation_time": e.time, "name": name, "public_key": public})
            } else {
                json!(e.creation_time)
            };
            keys.insert(v.to_string(), val);
        }
        m.insert("keys".into(), Value::Object(keys));
        Ok(d)
    }

    /// The backup document: base64 of `{"policy": ..., "archived_keys": {"keys": [...]}}`,
    /// Vault's layout (the archive is indexed from `min_available_version`).
    pub fn backup_blob(&self) -> Result<String, KeyErr> {
        let mut p = self.clone();
        p.keys.retain(|k, _| {
            k.parse::<u64>()
                .is_ok_and(|v| v >= self.min_decryption_version)
        });
        p.archive_version = self.latest_version;
        p.archive_min_version = self.min_available_version;
        let mut archive = Vec::new();
        for v in self.min_available_version..=self.latest_version {
            archive.push(self.keys.get(&v.to_string()).cloned().unwrap_or_else(|| {
                // Go's zero time: Vault's own placeholder for version 0.
                let mut e = KeyEntry::default();
                e.time = "0001-01-01T00:00:00Z".into();
                e
            }));
        }
        let doc = serde_json::json!({"policy": p, "archived_keys": {"keys": archive}});
        let text =
            Zeroizing::new(serde_json::to_vec(&doc).map_err(|e| KeyErr::Internal(e.to_string()))?);
        Ok(b64e(&text))
    }

    /// Reads a backup document (Airlock's or Vault's), with every version it holds.
    pub fn from_backup(blob: &str) -> Result<Policy, KeyErr> {
        #[derive(Deserialize)]
        struct Archive {
            #[serde(default)]
            keys: Vec<KeyEntry>,
        }
        #[derive(Deserialize)]
        struct Doc {
            policy: Option<Policy>,
            archived_keys: Option<Archive>,
        }
        let raw = crypto::b64d(blob).map_err(user)?;
        let doc: Doc = serde_json::from_slice(&raw)
            .map_err(|_| user("invalid backup: not a transit key backup"))?;
        let Some(mut p) = doc.policy else {
            return Err(user("invalid backup: no key in it"));
        };
        for (i, e) in doc
            .archived_keys
            .map(|a| a.keys)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let v = i as u64 + p.min_available_version;
            if v >= 1 && !e.is_empty() {
                p.keys.entry(v.to_string()).or_insert(e);
            }
        }
        if p.keys
            .values()
            .any(|e| e.key.is_empty() && (e.ec_d.is_some() || e.rsa_key.is_some()))
        {
            return Err(user(
                "invalid backup: ECDSA and RSA keys in OpenBao's big-integer form cannot be restored",
            ));
        }
        if p.latest_version == 0 || p.entry(p.latest_version).is_err() {
            return Err(user("invalid backup: the latest key version is missing"));
        }
        if p.min_decryption_version == 0 {
            p.min_decryption_version = 1;
        }
        Ok(p)
    }
}
