//! The `transit` secrets engine, Vault's "encryption as a service": named keys that never
//! leave the server unless marked exportable, and operations with them — encrypt, decrypt,
//! rewrap, data keys, sign and verify, HMAC, plus random bytes and hashes.
//!
//! - [`policy`]: a named key and its versions as stored (`policy/<name>`, Vault's JSON, so a
//!   plaintext backup is Vault's document), the version rules, encrypt/decrypt/sign/verify.
//! - `format.rs`: the key read and the backup document.
//! - [`crypto`], [`asym`], [`rsa`] and [`kwp`]: the pure cryptography (HKDF-SHA256, AES-GCM,
//!   ChaCha20-Poly1305, the `vault:v<N>:` envelope, Ed25519, ECDSA, RSA-OAEP/PSS/PKCS#1
//!   v1.5, RFC 5649 key wrap, hashes, HMACs, Go's base64 errors).
//! - `keys.rs`: key management (create, read, list, config, rotate, trim, delete, export,
//!   backup, restore); `ops.rs`: encrypt, decrypt, rewrap, data keys; `sign.rs`: sign,
//!   verify, HMAC, random, hash; `import.rs`: bring your own key (`wrapping_key`,
//!   `keys/<name>/import`, `import_version`).
//!
//! Keys are cached in memory (parsed, zeroised on drop) per mount; every write goes through
//! `View::lock` on the key's storage entry (a conditional write: a concurrent rotate on
//! another node makes this one retry), then drops the cached copy; other nodes' writes
//! arrive through [`Engine::invalidate`]. A generation counter keeps a read that raced a
//! write from putting the old key back into the cache.

pub mod asym;
pub mod crypto;
mod format;
mod import;
mod keys;
pub mod kwp;
mod ops;
pub mod policy;
pub mod rsa;
mod rsa_policy;
mod sign;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use airlock_logical::{ApiError, ApiResult, Ctx, Engine, Field, Op, PathSpec, Request, Response};
use async_trait::async_trait;

use policy::{KeyErr, Policy};

/// The most items one `batch_input` may hold.
pub const MAX_BATCH: usize = 10_000;

/// The transit engine of one mount, with its key cache.
#[derive(Default)]
pub struct Transit {
    cache: Mutex<HashMap<String, Arc<Policy>>>,
    generation: AtomicU64,
    /// Unix seconds before which `periodic` does not look for keys to rotate (hourly).
    rotate_after: std::sync::atomic::AtomicI64,
}

#[derive(Clone, Copy)]
pub enum H {
    KeysList,
    KeyRead,
    KeyWrite,
    KeyDelete,
    KeyConfig,
    Rotate,
    Trim,
    Encrypt,
    Decrypt,
    Rewrap,
    Datakey,
    Sign,
    Verify,
    Hmac,
    Random,
    Hash,
    Export,
    Backup,
    Restore,
    ConfigKeysRead,
    ConfigKeysWrite,
    WrappingKey,
    Import,
    ImportVersion,
}

const KEY_FIELDS: &[Field] = &[
    Field::str("type")
        .default("aes256-gcm96")
        .help("The key type."),
    Field::bool("derived").help("Derive a key per context (HKDF-SHA256)."),
    Field::bool("convergent_encryption")
        .help("The same plaintext and context give the same ciphertext (needs derived)."),
    Field::bool("exportable").help("The key may be exported (cannot be undone)."),
    Field::bool("allow_plaintext_backup").help("The key may be backed up in plaintext."),
    Field::str("context").help("Base64 context: the derived Ed25519 public key to show."),
    Field::duration("auto_rotate_period").help("Rotate this often (0: never; at least 1h)."),
    Field::int("key_size").help("HMAC keys: the key size in bytes (32 to 512)."),
];
const CONFIG_FIELDS: &[Field] = &[
    Field::int("min_decryption_version"),
    Field::int("min_encryption_version"),
    Field::bool("deletion_allowed"),
    Field::bool("exportable"),
    Field::bool("allow_plaintext_backup"),
    Field::duration("auto_rotate_period"),
];
const TRIM_FIELDS: &[Field] = &[Field::int("min_available_version")];
const ENCRYPT_FIELDS: &[Field] = &[
    Field::str("plaintext").sensitive(),
    Field::str("context"),
    Field::str("type").default("aes256-gcm96"),
    Field::bool("convergent_encryption"),
    Field::int("key_version"),
    Field::int("partial_failure_response_code"),
    Field::str("associated_data"),
    Field::json("batch_input"),
];
const DECRYPT_FIELDS: &[Field] = &[
    Field::str("ciphertext"),
    Field::str("context"),
    Field::int("partial_failure_response_code"),
    Field::str("associated_data"),
    Field::json("batch_input"),
];
const REWRAP_FIELDS: &[Field] = &[
    Field::str("ciphertext"),
    Field::str("context"),
    Field::int("key_version"),
    Field::json("batch_input"),
];
const DATAKEY_FIELDS: &[Field] = &[
    Field::str("context"),
    Field::int("bits").default("256"),
    Field::int("key_version"),
    Field::str("associated_data"),
];
const SIGN_FIELDS: &[Field] = &[
    Field::str("input"),
    Field::str("context"),
    Field::str("hash_algorithm").default("sha2-256"),
    Field::str("algorithm").default("sha2-256"),
    Field::int("key_version"),
    Field::bool("prehashed"),
    Field::str("signature_algorithm"),
    Field::str("marshaling_algorithm").default("asn1"),
    Field::str("salt_length").default("auto"),
    Field::json("batch_input"),
];
const VERIFY_FIELDS: &[Field] = &[
    Field::str("input"),
    Field::str("context"),
    Field::str("signature"),
    Field::str("hmac"),
    Field::str("hash_algorithm").default("sha2-256"),
    Field::str("algorithm").default("sha2-256"),
    Field::bool("prehashed"),
    Field::str("signature_algorithm"),
    Field::str("marshaling_algorithm").default("asn1"),
    Field::str("salt_length").default("auto"),
    Field::json("batch_input"),
];
const HMAC_FIELDS: &[Field] = &[
    Field::str("input"),
    Field::str("algorithm").default("sha2-256"),
    Field::int("key_version"),
    Field::json("batch_input"),
];
const RANDOM_FIELDS: &[Field] = &[
    Field::int("bytes").default("32"),
    Field::str("format").default("base64"),
];
const HASH_FIELDS: &[Field] = &[
    Field::str("input"),
    Field::str("algorithm").default("sha2-256"),
    Field::str("format").default("hex"),
];
const EXPORT_FIELDS: &[Field] = &[Field::str("format")];
const RESTORE_FIELDS: &[Field] = &[Field::str("backup").sensitive(), Field::bool("force")];
const CONFIG_KEYS_FIELDS: &[Field] = &[Field::bool("disable_upsert")];
const IMPORT_FIELDS: &[Field] = &[
    Field::str("type").default("aes256-gcm96"),
    Field::str("hash_function").default("SHA256").help(
        "The OAEP hash of the ephemeral key's wrapping (SHA1, SHA224, SHA256, SHA384, SHA512).",
    ),
    Field::str("ciphertext")
        .sensitive()
        .help("Base64: RSA-OAEP(ephemeral AES-256 key) || KWP(ephemeral key, target key)."),
    Field::str("public_key").help("Not supported: import the wrapped private key."),
    Field::bool("allow_rotation").help("The imported key may be rotated within Airlock."),
    Field::bool("derived"),
    Field::bool("exportable"),
    Field::bool("allow_plaintext_backup"),
    Field::str("context"),
    Field::duration("auto_rotate_period"),
    // Declared so that its presence can be refused, as Vault refuses it.
    Field::bool("convergent_encryption"),
];
const IMPORT_VERSION_FIELDS: &[Field] = &[
    Field::str("hash_function").default("SHA256"),
    Field::str("ciphertext").sensitive(),
    Field::str("public_key"),
    Field::int("version"),
];

static PATHS: &[PathSpec<H>] = &[
    PathSpec::new("keys/?", &[(Op::List, H::KeysList)]).help("The named keys.", ""),
    PathSpec::new("keys/{name}/config", &[(Op::Update, H::KeyConfig)])
        .fields(&[CONFIG_FIELDS])
        .help("Configure a named key.", ""),
    PathSpec::new("keys/{name}/rotate", &[(Op::Update, H::Rotate)])
        .help("Add a new version of a named key.", ""),
    PathSpec::new("keys/{name}/import", &[(Op::Update, H::Import)])
        .fields(&[IMPORT_FIELDS])
        .help(
            "Import an externally generated key as a new key.",
            "The key arrives wrapped for the mount's wrapping_key (CKM_RSA_AES_KEY_WRAP).",
        ),
    PathSpec::new(
        "keys/{name}/import_version",
        &[(Op::Update, H::ImportVersion)],
    )
    .fields(&[IMPORT_VERSION_FIELDS])
    .help("Import a new version of an imported key.", ""),
    PathSpec::new("wrapping_key", &[(Op::Read, H::WrappingKey)]).help(
        "Returns the public key to use for wrapping imported keys.",
        "The mount's RSA-4096 wrapping key, made on first use.",
    ),
    PathSpec::new("keys/{name}/trim", &[(Op::Update, H::Trim)])
        .fields(&[TRIM_FIELDS])
        .help("Remove key versions below a minimum for good.", ""),
    PathSpec::new(
        "keys/{name}",
        &[
            (Op::Read, H::KeyRead),
            (Op::Update, H::KeyWrite),
            (Op::Delete, H::KeyDelete),
        ],
    )
    .fields(&[KEY_FIELDS])
    .help(
        "Manage named encryption keys.",
        "A write creates the key (an existing key is returned unchanged).",
    ),
    PathSpec::new("encrypt/{name}", &[(Op::Update, H::Encrypt)])
        .fields(&[ENCRYPT_FIELDS])
        .existence()
        .help(
            "Encrypt a plaintext, or a batch, with a named key.",
            "A write to a key that does not exist creates it (`create` capability).",
        ),
    PathSpec::new("decrypt/{name}", &[(Op::Update, H::Decrypt)])
        .fields(&[DECRYPT_FIELDS])
        .help("Decrypt a ciphertext, or a batch, with a named key.", ""),
    PathSpec::new("rewrap/{name}", &[(Op::Update, H::Rewrap)])
        .fields(&[REWRAP_FIELDS])
        .help(
            "Re-encrypt ciphertexts with the latest (or given) key version.",
            "",
        ),
    PathSpec::new("datakey/{plaintext}/{name}", &[(Op::Update, H::Datakey)])
        .fields(&[DATAKEY_FIELDS])
        .help(
            "Generate a data key, returned encrypted (and in plaintext).",
            "",
        ),
    PathSpec::new("sign/{name}/{urlalgorithm}", &[(Op::Update, H::Sign)])
        .fields(&[SIGN_FIELDS])
        .help("Sign input data with a named key.", ""),
    PathSpec::new("sign/{name}", &[(Op::Update, H::Sign)])
        .fields(&[SIGN_FIELDS])
        .help("Sign input data with a named key.", ""),
    PathSpec::new("verify/{name}/{urlalgorithm}", &[(Op::Update, H::Verify)])
        .fields(&[VERIFY_FIELDS])
        .help("Verify a signature or an HMAC.", ""),
    PathSpec::new("verify/{name}", &[(Op::Update, H::Verify)])
        .fields(&[VERIFY_FIELDS])
        .help("Verify a signature or an HMAC.", ""),
    PathSpec::new("hmac/{name}/{urlalgorithm}", &[(Op::Update, H::Hmac)])
        .fields(&[HMAC_FIELDS])
        .help("HMAC input data with a named key.", ""),
    PathSpec::new("hmac/{name}", &[(Op::Update, H::Hmac)])
        .fields(&[HMAC_FIELDS])
        .help("HMAC input data with a named key.", ""),
    PathSpec::new("random/{source}/{urlbytes}", &[(Op::Update, H::Random)])
        .fields(&[RANDOM_FIELDS])
        .help("Random bytes.", ""),
    PathSpec::new("random/{source}", &[(Op::Update, H::Random)])
        .fields(&[RANDOM_FIELDS])
        .help("Random bytes.", ""),
    PathSpec::new("random", &[(Op::Update, H::Random)])
        .fields(&[RANDOM_FIELDS])
        .help("Random bytes.", ""),
    PathSpec::new("hash/{urlalgorithm}", &[(Op::Update, H::Hash)])
        .fields(&[HASH_FIELDS])
        .help("Hash input data.", ""),
    PathSpec::new("hash", &[(Op::Update, H::Hash)])
        .fields(&[HASH_FIELDS])
        .help("Hash input data.", ""),
    PathSpec::new("export/{type}/{name}/{version}", &[(Op::Read, H::Export)])
        .fields(&[EXPORT_FIELDS])
        .help("Export one version of an exportable key.", ""),
    PathSpec::new("export/{type}/{name}", &[(Op::Read, H::Export)])
        .fields(&[EXPORT_FIELDS])
        .help("Export an exportable key.", ""),
    PathSpec::new("backup/{name}", &[(Op::Read, H::Backup)])
        .help("A plaintext backup of a key (allow_plaintext_backup).", ""),
    PathSpec::new("restore/{name}", &[(Op::Update, H::Restore)])
        .fields(&[RESTORE_FIELDS])
        .help("Restore a key from a backup, under another name.", ""),
    PathSpec::new("restore", &[(Op::Update, H::Restore)])
        .fields(&[RESTORE_FIELDS])
        .help("Restore a key from a backup.", ""),
    PathSpec::new(
        "config/keys",
        &[
            (Op::Read, H::ConfigKeysRead),
            (Op::Update, H::ConfigKeysWrite),
        ],
    )
    .fields(&[CONFIG_KEYS_FIELDS])
    .help("Mount-wide key settings (disable_upsert).", ""),
];

/// The storage entry of a key.
pub fn policy_key(name: &str) -> String {
    format!("policy/{name}")
}

/// Vault's `GenericNameRegex`: letters, digits, `-`, `_` and `.`, not starting or ending
/// with `-` or `.` (the router answers other names with its "unsupported path").
pub fn valid_name(n: &str) -> ApiResult<&str> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.';
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    if n.is_empty()
        || n.len() > 512
        || !n.chars().all(ok_char)
        || !edge(n.chars().next())
        || !edge(n.chars().last())
    {
        return Err(ApiError::unsupported_path());
    }
    Ok(n)
}

impl From<KeyErr> for ApiError {
    fn from(e: KeyErr) -> Self {
        match e {
            KeyErr::User(m) => ApiError::bad_request(m),
            KeyErr::Internal(m) => internal(&m),
        }
    }
}

/// A 500 with Vault's wording for an error its handlers return as a Go `error`.
pub fn internal(msg: &str) -> ApiError {
    ApiError::new(500, airlock_logical::error::multierror(msg))
}

impl Transit {
    pub fn new() -> Self {
        Self::default()
    }

    /// The named key, from the cache or storage.
    pub async fn load(&self, ctx: &Ctx, name: &str) -> ApiResult<Option<Arc<Policy>>> {
        if let Some(p) = self.cache.lock().ok().and_then(|c| c.get(name).cloned()) {
            return Ok(Some(p));
        }
        let seen = self.generation.load(Ordering::SeqCst);
        let Some(raw) = ctx.storage.get(&policy_key(name)).await? else {
            return Ok(None);
        };
        let p: Policy = serde_json::from_slice(&raw)
            .map_err(|e| ApiError::internal(&format_args!("transit key {name}: {e}")))?;
        let p = Arc::new(p);
        if let Ok(mut c) = self.cache.lock() {
            if self.generation.load(Ordering::SeqCst) == seen {
                c.insert(name.to_string(), Arc::clone(&p));
            }
        }
        Ok(Some(p))
    }

    /// Reads the key for a read-modify-write (the caller holds the entry's lock).
    async fn load_fresh(&self, ctx: &Ctx, name: &str) -> ApiResult<Option<Policy>> {
        match ctx.storage.get(&policy_key(name)).await? {
            None => Ok(None),
            Some(raw) => serde_json::from_slice(&raw)
                .map(Some)
                .map_err(|e| ApiError::internal(&format_args!("transit key {name}: {e}"))),
        }
    }

    /// Drops cached keys (`None`: all) after a write here or on another node.
    fn forget(&self, name: Option<&str>) {
        if let Ok(mut c) = self.cache.lock() {
            self.generation.fetch_add(1, Ordering::SeqCst);
            match name {
                Some(n) => {
                    c.remove(n);
                }
                None => c.clear(),
            }
        }
    }

    /// Writes a key under the held lock and forgets the cached copy.
    async fn store(&self, g: &airlock_logical::Locked<'_>, p: &Policy) -> ApiResult<()> {
        let bytes = p.to_bytes()?;
        let r = g.put(&policy_key(&p.name), &bytes).await;
        self.forget(Some(&p.name));
        r
    }
}

#[async_trait]
impl Engine for Transit {
    type H = H;

    fn paths(&self) -> &'static [PathSpec<H>] {
        PATHS
    }

    async fn exists(&self, ctx: &Ctx, h: H, req: &Request) -> ApiResult<Option<bool>> {
        match h {
            H::Encrypt => match valid_name(req.cap("name")) {
                Ok(n) => Ok(Some(self.load(ctx, n).await?.is_some())),
                Err(_) => Ok(None),
            },
            _ => Ok(None),
        }
    }

    async fn call(&self, ctx: &Ctx, h: H, req: &Request) -> ApiResult<Response> {
        match h {
            H::KeysList => ctx.storage.list_response("policy/").await,
            H::KeyRead => keys::read(self, ctx, req).await,
            H::KeyWrite => keys::write(self, ctx, req).await,
            H::KeyDelete => keys::delete(self, ctx, req).await,
            H::KeyConfig => keys::config(self, ctx, req).await,
            H::Rotate => keys::rotate(self, ctx, req).await,
            H::Trim => keys::trim(self, ctx, req).await,
            H::Export => keys::export(self, ctx, req).await,
            H::Backup => keys::backup(self, ctx, req).await,
            H::Restore => keys::restore(self, ctx, req).await,
            H::ConfigKeysRead => keys::config_keys_read(ctx).await,
            H::ConfigKeysWrite => keys::config_keys_write(ctx, req).await,
            H::Encrypt => ops::encrypt(self, ctx, req).await,
            H::Decrypt => ops::decrypt(self, ctx, req).await,
            H::Rewrap => ops::rewrap(self, ctx, req).await,
            H::Datakey => ops::datakey(self, ctx, req).await,
            H::Sign => sign::sign(self, ctx, req).await,
            H::Verify => sign::verify(self, ctx, req).await,
            H::Hmac => sign::hmac(self, ctx, req).await,
            H::Random => sign::random(req),
            H::Hash => sign::hash(req),
            H::WrappingKey => import::read_wrapping_key(self, ctx).await,
            H::Import => import::import(self, ctx, req).await,
            H::ImportVersion => import::import_version(self, ctx, req).await,
        }
    }

    async fn periodic(&self, ctx: &Ctx) -> ApiResult<()> {
        keys::auto_rotate(self, ctx).await
    }

    async fn cleanup(&self, _ctx: &Ctx) -> ApiResult<()> {
        self.forget(None);
        Ok(())
    }

    async fn invalidate(&self, _ctx: &Ctx, rel: &str) {
        match rel.strip_prefix("policy/") {
            Some(name) if !name.is_empty() => self.forget(Some(name)),
            _ if rel.is_empty() => self.forget(None),
            _ => {}
        }
    }
}
