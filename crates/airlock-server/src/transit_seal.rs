//! The transit seal: the unseal key is kept wrapped by a key of another server's transit
//! engine (another Airlock, OpenBao or Vault), as Vault's `seal "transit"` does. At `init`
//! a random unseal key is encrypted there (`<mount>/encrypt/<key>`) and the ciphertext is
//! stored with the seal configuration; every start decrypts it there and unseals. Whoever
//! holds this store alone cannot unseal it: it takes the transit key's server and a token
//! that may use the key.
//!
//! The token comes from `token`, `token_file` or `AIRLOCK_TRANSIT_SEAL_TOKEN` (never logged);
//! `tls_ca_cert` names a PEM bundle for an `https` address with a private CA.

use base64::Engine;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::config::SealFileConfig;
use crate::error::{ApiError, ApiResult};

/// How to reach the transit key.
pub struct TransitSeal {
    address: String,
    mount: String,
    key: String,
    token: Zeroizing<String>,
    ca_pem: String,
}

impl std::fmt::Debug for TransitSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransitSeal")
            .field("address", &self.address)
            .field("mount", &self.mount)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && s != "."
        && s != ".."
}

impl TransitSeal {
    /// From `[seal] type = "transit"`; `env` reads a variable (the process environment).
    pub fn from_config(
        c: &SealFileConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let address = c
            .address
            .clone()
            .ok_or("seal: type \"transit\" needs address")?
            .trim_end_matches('/')
            .to_string();
        if !(address.starts_with("http://") || address.starts_with("https://")) {
            return Err("seal.address: must start with http:// or https://".into());
        }
        let key = c
            .key_name
            .clone()
            .ok_or("seal: type \"transit\" needs key_name")?;
        let mount = c
            .mount_path
            .clone()
            .unwrap_or_else(|| "transit".into())
            .trim_matches('/')
            .to_string();
        if !valid_segment(&key) || !mount.split('/').all(valid_segment) {
            return Err("seal: key_name and mount_path must be plain path segments".into());
        }
        let token = match (&c.token, &c.token_file) {
            (Some(t), None) => t.clone(),
            (None, Some(f)) => std::fs::read_to_string(f)
                .map_err(|e| format!("seal.token_file {}: {e}", f.display()))?
                .trim()
                .to_string(),
            (None, None) => env("AIRLOCK_TRANSIT_SEAL_TOKEN").ok_or(
                "seal: type \"transit\" needs token, token_file or AIRLOCK_TRANSIT_SEAL_TOKEN",
            )?,
            (Some(_), Some(_)) => return Err("seal: set token or token_file, not both".into()),
        };
        if token.is_empty() || token.chars().any(char::is_control) {
            return Err("seal: the transit token is empty or holds a control character".into());
        }
        let ca_pem = match &c.tls_ca_cert {
            Some(p) => std::fs::read_to_string(p)
                .map_err(|e| format!("seal.tls_ca_cert {}: {e}", p.display()))?,
            None => String::new(),
        };
        Ok(Self {
            address,
            mount,
            key,
            token: Zeroizing::new(token),
            ca_pem,
        })
    }

    async fn call(&self, op: &str, body: Value) -> ApiResult<Value> {
        let url = format!("{}/v1/{}/{op}/{}", self.address, self.mount, self.key);
        let body = serde_json::to_vec(&body).map_err(|e| ApiError::internal(&e))?;
        let reply = airlock_engines::http_client::request(
            "POST",
            &url,
            &self.ca_pem,
            Some(self.token.as_str()),
            Some(body),
        )
        .await
        .map_err(|e| unavailable(&format!("the transit seal's server: {e}")))?;
        let v: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        if reply.status >= 300 {
            // The remote error names the key or the permission, never the plaintext.
            let why = v["errors"]
                .as_array()
                .map(|e| {
                    e.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_default();
            return Err(unavailable(&format!(
                "the transit seal's server answered {} to {op}: {why}",
                reply.status
            )));
        }
        Ok(v)
    }

    /// Encrypts the unseal key with the transit key: the ciphertext to store.
    pub async fn wrap(&self, key: &[u8; 32]) -> ApiResult<String> {
        let plaintext = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(key));
        let v = self
            .call("encrypt", json!({ "plaintext": plaintext.as_str() }))
            .await?;
        v["data"]["ciphertext"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| unavailable("the transit seal's server returned no ciphertext"))
    }

    /// Decrypts the stored ciphertext into the unseal key.
    pub async fn unwrap(&self, ciphertext: &str) -> ApiResult<Zeroizing<[u8; 32]>> {
        let v = self
            .call("decrypt", json!({ "ciphertext": ciphertext }))
            .await?;
        let b64 = Zeroizing::new(v["data"]["plaintext"].as_str().unwrap_or("").to_string());
        let raw = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map_err(|_| unavailable("the transit seal's server returned a malformed key"))?,
        );
        if raw.len() != 32 {
            return Err(unavailable(
                "the transit seal's server returned a key of the wrong length",
            ));
        }
        let mut k = Zeroizing::new([0u8; 32]);
        k.copy_from_slice(&raw);
        Ok(k)
    }
}

fn unavailable(msg: &str) -> ApiError {
    ApiError::new(503, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: impl FnOnce(&mut SealFileConfig)) -> SealFileConfig {
        let mut c = SealFileConfig {
            kind: Some("transit".into()),
            address: Some("https://vault.internal:8200/".into()),
            key_name: Some("autounseal".into()),
            ..Default::default()
        };
        extra(&mut c);
        c
    }

    #[test]
    fn settings_are_checked_and_the_token_never_shows() {
        let s = TransitSeal::from_config(&cfg(|_| {}), |k| {
            (k == "AIRLOCK_TRANSIT_SEAL_TOKEN").then(|| "hvs.secret-token".to_string())
        })
        .unwrap();
        assert_eq!(s.address, "https://vault.internal:8200");
        assert_eq!(s.mount, "transit");
        assert!(!format!("{s:?}").contains("secret-token"));
        let none = |_: &str| None;
        assert!(TransitSeal::from_config(&cfg(|_| {}), none).is_err());
        let bad = cfg(|c| {
            c.token = Some("t".into());
            c.key_name = Some("../sys".into());
        });
        assert!(TransitSeal::from_config(&bad, none).is_err());
        let bad = cfg(|c| {
            c.token = Some("t".into());
            c.address = Some("vault:8200".into());
        });
        assert!(TransitSeal::from_config(&bad, none).is_err());
    }
}
