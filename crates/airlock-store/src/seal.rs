//! Initialisation, unsealing and data-key rotation.
//!
//! Key hierarchy: unseal key → root key → keyring (data-key terms) → every stored value.
//! - `core/seal-config` (plaintext JSON): seal type, shares, threshold.
//! - `core/root-key`: the root key, AES-256-GCM under the unseal key.
//! - `core/keyring`: the keyring, AES-256-GCM under the root key.
//!
//! With the `shamir` seal the unseal key exists only as shares handed out at `sys/init`.
//! With the `keyfile` seal (auto-unseal) the unseal key is read from a file or environment
//! variable at start-up: convenient for unattended restarts, but whoever can read that key
//! and the database can read every secret.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::backend::{Backend, Op};
use crate::keyring::{open_with, random_key, seal_with, Keyring};
use crate::{Result, StoreError};

pub const SEAL_CONFIG_KEY: &str = "core/seal-config";
const ROOT_KEY_KEY: &str = "core/root-key";
pub const KEYRING_KEY: &str = "core/keyring";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SealKind {
    Shamir,
    Keyfile,
    /// The unseal key is kept wrapped by another server's transit key (`wrapped_key`).
    Transit,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SealConfig {
    #[serde(rename = "type")]
    pub kind: SealKind,
    pub secret_shares: u8,
    pub secret_threshold: u8,
    /// The transit seal's unseal key, encrypted by the remote transit key
    /// (`vault:v1:…`): useless without that key's server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrapped_key: Option<String>,
}

pub async fn read_config(backend: &dyn Backend) -> Result<Option<SealConfig>> {
    match backend.get(SEAL_CONFIG_KEY).await? {
        None => Ok(None),
        Some(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|_| StoreError::Corrupt("seal configuration is malformed".into())),
    }
}

/// What `initialize` hands back exactly once.
pub struct InitOutput {
    /// Shamir shares of the unseal key (empty for the keyfile seal).
    pub shares: Vec<Zeroizing<Vec<u8>>>,
    pub keyring: Keyring,
    pub root_key: Zeroizing<[u8; 32]>,
}

/// Creates the key hierarchy. `unseal_key` is `Some` for the keyfile seal; with the shamir seal
/// a random unseal key is split into `shares` shares with `threshold` needed.
pub async fn initialize(
    backend: &dyn Backend,
    config: SealConfig,
    unseal_key: Option<&[u8; 32]>,
    now_unix: i64,
) -> Result<InitOutput> {
    if read_config(backend).await?.is_some() {
        return Err(StoreError::AlreadyInitialized);
    }
    let (ukey, shares) = match (config.kind, unseal_key) {
        (SealKind::Keyfile | SealKind::Transit, Some(k)) => (Zeroizing::new(*k), Vec::new()),
        (SealKind::Keyfile | SealKind::Transit, None) => {
            return Err(StoreError::InvalidKey(
                "an auto-unseal seal needs a key".into(),
            ))
        }
        (SealKind::Shamir, _) => {
            let k = random_key();
            let shares = if config.secret_shares == 1 {
                vec![Zeroizing::new(k.to_vec())]
            } else {
                let mut fill = |b: &mut [u8]| rand::fill(b);
                airlock_core::shamir::split(
                    k.as_ref(),
                    config.secret_shares,
                    config.secret_threshold,
                    &mut fill,
                )
                .map_err(|e| StoreError::InvalidKey(e.to_string()))?
                .into_iter()
                .map(Zeroizing::new)
                .collect()
            };
            (k, shares)
        }
    };
    let root = random_key();
    let keyring = Keyring::generate(now_unix);
    let cfg = serde_json::to_vec(&config).map_err(|e| StoreError::Backend(e.to_string()))?;
    // Conditional on nothing being there: of two nodes initialising at once, one wins.
    backend
        .commit(vec![
            Op::PutIf(
                ROOT_KEY_KEY.into(),
                seal_with(&ukey, ROOT_KEY_KEY.as_bytes(), root.as_ref())?,
                None,
            ),
            Op::PutIf(
                KEYRING_KEY.into(),
                seal_with(&root, KEYRING_KEY.as_bytes(), &keyring.to_bytes())?,
                None,
            ),
            // Written last in the same batch: a store is initialised only when all three exist.
            Op::PutIf(SEAL_CONFIG_KEY.into(), cfg, None),
        ])
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => StoreError::AlreadyInitialized,
            other => other,
        })?;
    Ok(InitOutput {
        shares,
        keyring,
        root_key: root,
    })
}

/// Combines shares (or takes the single key) into the unseal key.
pub fn combine_shares(config: &SealConfig, shares: &[Vec<u8>]) -> Result<Zeroizing<[u8; 32]>> {
    let raw = if config.secret_shares == 1 || config.kind != SealKind::Shamir {
        Zeroizing::new(shares.first().cloned().unwrap_or_default())
    } else {
        Zeroizing::new(
            airlock_core::shamir::combine(shares)
                .map_err(|e| StoreError::InvalidKey(e.to_string()))?,
        )
    };
    let mut k = Zeroizing::new([0u8; 32]);
    if raw.len() != 32 {
        return Err(StoreError::InvalidKey(
            "unseal key has the wrong length".into(),
        ));
    }
    k.copy_from_slice(&raw);
    Ok(k)
}

async fn root_key(backend: &dyn Backend, unseal_key: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>> {
    let blob = backend
        .get(ROOT_KEY_KEY)
        .await?
        .ok_or(StoreError::NotInitialized)?;
    let raw = open_with(unseal_key, ROOT_KEY_KEY.as_bytes(), &blob)
        .map_err(|_| StoreError::InvalidKey("unseal key does not decrypt the root key".into()))?;
    let mut k = Zeroizing::new([0u8; 32]);
    if raw.len() != 32 {
        return Err(StoreError::Corrupt("root key has the wrong length".into()));
    }
    k.copy_from_slice(&raw);
    Ok(k)
}

/// Decrypts the root key and the keyring with the unseal key. The caller keeps the root key
/// in memory while unsealed (for rotation) and drops it on seal.
pub async fn unseal(
    backend: &dyn Backend,
    unseal_key: &[u8; 32],
) -> Result<(Keyring, Zeroizing<[u8; 32]>)> {
    let root = root_key(backend, unseal_key).await?;
    let blob = backend
        .get(KEYRING_KEY)
        .await?
        .ok_or(StoreError::NotInitialized)?;
    let raw = open_with(&root, KEYRING_KEY.as_bytes(), &blob)?;
    Ok((Keyring::from_bytes(&raw)?, root))
}

/// Adds a data-key term to the stored keyring and returns the new keyring.
pub async fn rotate(backend: &dyn Backend, root: &[u8; 32], now_unix: i64) -> Result<Keyring> {
    let blob = backend
        .get(KEYRING_KEY)
        .await?
        .ok_or(StoreError::NotInitialized)?;
    let raw = open_with(root, KEYRING_KEY.as_bytes(), &blob)?;
    let mut kr = Keyring::from_bytes(&raw)?;
    kr.rotate(now_unix);
    // Conditional on the keyring read: two nodes rotating at once cannot both add "the next"
    // term with different keys (the loser's data would be unreadable).
    backend
        .commit(vec![Op::PutIf(
            KEYRING_KEY.into(),
            seal_with(root, KEYRING_KEY.as_bytes(), &kr.to_bytes())?,
            Some(blob),
        )])
        .await?;
    Ok(kr)
}

/// The stored keyring, opened with the root key (another node rotated it).
pub async fn load_keyring(backend: &dyn Backend, root: &[u8; 32]) -> Result<Keyring> {
    let blob = backend
        .get(KEYRING_KEY)
        .await?
        .ok_or(StoreError::NotInitialized)?;
    let raw = open_with(root, KEYRING_KEY.as_bytes(), &blob)?;
    Keyring::from_bytes(&raw)
}
