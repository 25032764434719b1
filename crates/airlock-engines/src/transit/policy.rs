//! A named transit key (Vault's "policy"): its type, settings and key versions, as stored in
//! the mount's view at `policy/<name>` (JSON with Vault's field names, so a backup is the
//! same document Vault writes), and the version rules every operation applies. Key bytes are
//! zeroised when an entry is dropped.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use super::asym::{self, Curve};
use super::crypto::{self, b64e, Aead};

/// A key type, with Vault's name and its numeric code in Vault's stored policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    Aes128Gcm96,
    Aes256Gcm96,
    ChaCha20Poly1305,
    Ed25519,
    EcdsaP256,
    EcdsaP384,
    Hmac,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

impl KeyType {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "aes128-gcm96" => KeyType::Aes128Gcm96,
            "aes256-gcm96" => KeyType::Aes256Gcm96,
            "chacha20-poly1305" => KeyType::ChaCha20Poly1305,
            "ed25519" => KeyType::Ed25519,
            "ecdsa-p256" => KeyType::EcdsaP256,
            "ecdsa-p384" => KeyType::EcdsaP384,
            "hmac" => KeyType::Hmac,
            "rsa-2048" => KeyType::Rsa2048,
            "rsa-3072" => KeyType::Rsa3072,
            "rsa-4096" => KeyType::Rsa4096,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            KeyType::Aes128Gcm96 => "aes128-gcm96",
            KeyType::Aes256Gcm96 => "aes256-gcm96",
            KeyType::ChaCha20Poly1305 => "chacha20-poly1305",
            KeyType::Ed25519 => "ed25519",
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::EcdsaP384 => "ecdsa-p384",
            KeyType::Hmac => "hmac",
            KeyType::Rsa2048 => "rsa-2048",
            KeyType::Rsa3072 => "rsa-3072",
            KeyType::Rsa4096 => "rsa-4096",
        }
    }
    fn code(self) -> i64 {
        match self {
            KeyType::Aes256Gcm96 => 0,
            KeyType::EcdsaP256 => 1,
            KeyType::Ed25519 => 2,
            KeyType::Rsa2048 => 3,
            KeyType::Rsa4096 => 4,
            KeyType::Rsa3072 => 9,
            KeyType::ChaCha20Poly1305 => 5,
            KeyType::EcdsaP384 => 6,
            KeyType::Aes128Gcm96 => 8,
            KeyType::Hmac => 10,
        }
    }
    fn from_code(c: i64) -> Option<Self> {
        Some(match c {
            0 => KeyType::Aes256Gcm96,
            1 => KeyType::EcdsaP256,
            2 => KeyType::Ed25519,
            3 => KeyType::Rsa2048,
            4 => KeyType::Rsa4096,
            9 => KeyType::Rsa3072,
            5 => KeyType::ChaCha20Poly1305,
            6 => KeyType::EcdsaP384,
            8 => KeyType::Aes128Gcm96,
            10 => KeyType::Hmac,
            _ => return None,
        })
    }
    pub fn aead(self) -> Option<Aead> {
        match self {
            KeyType::Aes128Gcm96 => Some(Aead::Aes128Gcm),
            KeyType::Aes256Gcm96 => Some(Aead::Aes256Gcm),
            KeyType::ChaCha20Poly1305 => Some(Aead::ChaCha20Poly1305),
            _ => None,
        }
    }
    pub fn curve(self) -> Option<Curve> {
        match self {
            KeyType::EcdsaP256 => Some(Curve::P256),
            KeyType::EcdsaP384 => Some(Curve::P384),
            _ => None,
        }
    }
    /// The modulus size of an RSA type.
    pub fn rsa_bits(self) -> Option<usize> {
        match self {
            KeyType::Rsa2048 => Some(2048),
            KeyType::Rsa3072 => Some(3072),
            KeyType::Rsa4096 => Some(4096),
            _ => None,
        }
    }
    pub fn encryption(self) -> bool {
        self.aead().is_some() || self.rsa_bits().is_some()
    }
    pub fn signing(self) -> bool {
        matches!(
            self,
            KeyType::Ed25519 | KeyType::EcdsaP256 | KeyType::EcdsaP384
        ) || self.rsa_bits().is_some()
    }
    pub fn derivation(self) -> bool {
        self.aead().is_some() || self == KeyType::Ed25519
    }
    pub fn asymmetric(self) -> bool {
        self.signing()
    }
}

mod code_serde {
    use super::KeyType;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(t: &KeyType, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(t.code())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<KeyType, D::Error> {
        let c = i64::deserialize(d)?;
        KeyType::from_code(c).ok_or_else(|| serde::de::Error::custom("unsupported key type"))
    }
}

/// `[]byte` as Go's JSON writes it: base64, or null.
mod b64_opt {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        if v.is_empty() {
            s.serialize_none()
        } else {
            s.serialize_str(&STANDARD.encode(v))
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(Vec::new()),
            Some(s) => STANDARD
                .decode(s.as_bytes())
                .map_err(serde::de::Error::custom),
        }
    }
}

/// One version of a key.
#[derive(Clone, Serialize, Deserialize, Default)]
pub struct KeyEntry {
    /// Symmetric key, HMAC key (type `hmac`), Ed25519 `seed || public`, ECDSA scalar, or
    /// RSA PKCS#8 DER.
    #[serde(with = "b64_opt", default)]
    pub key: Vec<u8>,
    #[serde(with = "b64_opt", default)]
    pub hmac_key: Vec<u8>,
    /// RFC 3339 with nanoseconds.
    #[serde(default)]
    pub time: String,
    /// Vault's ECDSA coordinates (never written by Airlock; present in Vault's backups).
    #[serde(default, skip_serializing)]
    pub ec_d: Option<serde_json::Value>,
    /// Vault's RSA key as Go's big integers (never written by Airlock; only noticed, so a
    /// Vault backup of an RSA key is refused rather than restored without its material).
    #[serde(default, skip_serializing)]
    pub rsa_key: Option<serde::de::IgnoredAny>,
    /// Base64 (Ed25519) or PEM (ECDSA, RSA) public key.
    #[serde(default)]
    pub public_key: String,
    /// The Ed25519 signing key built from `key` on first use (building it costs a scalar
    /// multiplication; a cached key signs at half the cost). Never stored.
    #[serde(skip)]
    pub ed_signer: std::sync::OnceLock<std::sync::Arc<ring::signature::Ed25519KeyPair>>,
    #[serde(default)]
    pub convergent_version: i64,
    /// Unix seconds.
    #[serde(default)]
    pub creation_time: i64,
}

impl Drop for KeyEntry {
    fn drop(&mut self) {
        self.key.zeroize();
        self.hmac_key.zeroize();
    }
}

impl KeyEntry {
    pub(super) fn is_empty(&self) -> bool {
        self.key.is_empty() && self.hmac_key.is_empty() && self.public_key.is_empty()
    }
}

#[derive(Clone, Serialize, Deserialize)]
pub struct OpInfo {
    pub time: String,
    pub version: u64,
}

/// Convergent encryption's current scheme (Vault's version 3).
pub const CONVERGENT_VERSION: i64 = 3;
/// Vault's `kdf` value for HKDF-SHA256.
pub(super) const KDF_HKDF_SHA256: i64 = 1;

/// A named key with every version it keeps.
#[derive(Clone, Serialize, Deserialize)]
pub struct Policy {
    pub name: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub key_size: usize,
    /// Version → entry (versions below `min_available_version` are trimmed).
    pub keys: BTreeMap<String, KeyEntry>,
    pub derived: bool,
    #[serde(default)]
    pub kdf: i64,
    pub convergent_encryption: bool,
    pub exportable: bool,
    pub min_decryption_version: u64,
    pub min_encryption_version: u64,
    pub latest_version: u64,
    #[serde(default)]
    pub archive_version: u64,
    #[serde(default)]
    pub archive_min_version: u64,
    #[serde(default)]
    pub min_available_version: u64,
    pub deletion_allowed: bool,
    #[serde(default)]
    pub convergent_version: i64,
    #[serde(rename = "type", with = "code_serde")]
    pub kind: KeyType,
    #[serde(default)]
    pub backup_info: Option<OpInfo>,
    #[serde(default)]
    pub restore_info: Option<OpInfo>,
    #[serde(default)]
    pub allow_plaintext_backup: bool,
    #[serde(default)]
    pub version_template: String,
    #[serde(default)]
    pub storage_prefix: String,
    /// Nanoseconds (Go's `time.Duration`).
    #[serde(default)]
    pub auto_rotate_period: i64,
    #[serde(rename = "Imported", default)]
    pub imported: bool,
    #[serde(rename = "AllowImportedKeyRotation", default)]
    pub allow_imported_key_rotation: bool,
    #[serde(default)]
    pub soft_deleted: bool,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// What creating a key asks for.
pub struct NewKey {
    pub kind: KeyType,
    pub derived: bool,
    pub convergent: bool,
    pub exportable: bool,
    pub allow_plaintext_backup: bool,
    pub auto_rotate_secs: i64,
    pub key_size: usize,
}

pub const HMAC_MIN: usize = 32;
pub const HMAC_MAX: usize = 512;

/// A user error (400) or an internal one (500), in Vault's words.
#[derive(Debug)]
pub enum KeyErr {
    User(String),
    Internal(String),
}

impl KeyErr {
    pub fn msg(&self) -> &str {
        match self {
            KeyErr::User(m) | KeyErr::Internal(m) => m,
        }
    }
}

fn user(m: impl Into<String>) -> KeyErr {
    KeyErr::User(m.into())
}

const MISSING_CONTEXT: &str = "missing 'context' for key derivation; the key was created using a derived key, which means additional, per-request information must be included in order to perform operations with the key";

impl Policy {
    /// A new key with its first version (`rsa`: the RSA key, generated off the async
    /// workers by the caller).
    pub fn create(
        name: &str,
        n: &NewKey,
        now_nanos: i128,
        rsa: Option<Zeroizing<Vec<u8>>>,
    ) -> Result<Policy, KeyErr> {
        let mut p = Policy::empty(name, n)?;
        p.rotate(now_nanos, rsa)?;
        Ok(p)
    }

    /// A new key with no version yet (an import adds the first), its settings checked.
    pub fn empty(name: &str, n: &NewKey) -> Result<Policy, KeyErr> {
        let p = Policy {
            name: name.to_string(),
            key_size: if n.kind == KeyType::Hmac {
                n.key_size
            } else {
                0
            },
            keys: BTreeMap::new(),
            derived: n.derived,
            kdf: if n.derived { KDF_HKDF_SHA256 } else { 0 },
            convergent_encryption: n.convergent,
            exportable: n.exportable,
            min_decryption_version: 1,
            min_encryption_version: 0,
            latest_version: 0,
            archive_version: 0,
            archive_min_version: 0,
            min_available_version: 0,
            deletion_allowed: false,
            convergent_version: -1,
            kind: n.kind,
            backup_info: None,
            restore_info: None,
            allow_plaintext_backup: n.allow_plaintext_backup,
            version_template: String::new(),
            storage_prefix: String::new(),
            auto_rotate_period: n.auto_rotate_secs.saturating_mul(1_000_000_000),
            imported: false,
            allow_imported_key_rotation: false,
            soft_deleted: false,
        };
        if n.kind == KeyType::Ed25519 && n.convergent {
            return Err(KeyErr::Internal(
                "convergent encryption not supported for keys of type ed25519".into(),
            ));
        }
        if (n.derived || n.convergent) && !n.kind.derivation() {
            return Err(KeyErr::Internal(format!(
                "key derivation and convergent encryption not supported for keys of type {}",
                n.kind.name()
            )));
        }
        Ok(p)
    }

    /// Adds a new latest version (`rsa`: the new RSA key for RSA types, PKCS#8 DER).
    pub fn rotate(
        &mut self,
        now_nanos: i128,
        rsa: Option<Zeroizing<Vec<u8>>>,
    ) -> Result<(), KeyErr> {
        let mut e = KeyEntry::default();
        e.hmac_key = random(32).to_vec();
        e.time = airlock_logical::util::rfc3339_nanos(now_nanos);
        e.creation_time = (now_nanos / 1_000_000_000) as i64;
        match self.kind {
            KeyType::Aes128Gcm96 | KeyType::Aes256Gcm96 | KeyType::ChaCha20Poly1305 => {
                let len = self.kind.aead().map(Aead::key_len).unwrap_or(32);
                e.key = random(len).to_vec();
            }
            KeyType::Hmac => {
                if !(HMAC_MIN..=HMAC_MAX).contains(&self.key_size) {
                    return Err(KeyErr::Internal(format!(
                        "invalid key size for HMAC key, must be between {HMAC_MIN} and {HMAC_MAX} bytes"
                    )));
                }
                e.key = random(self.key_size).to_vec();
                e.hmac_key = e.key.clone();
            }
            KeyType::Ed25519 => {
                let seed = random(32);
                e.key = asym::ed25519_from_seed(&seed)
                    .map_err(KeyErr::Internal)?
                    .to_vec();
                e.public_key = b64e(e.key.get(32..).unwrap_or_default());
            }
            KeyType::EcdsaP256 | KeyType::EcdsaP384 => {
                let c = self.kind.curve().unwrap_or(Curve::P256);
                let d = asym::ec_generate(c).map_err(KeyErr::Internal)?;
                e.public_key = asym::ec_public_pem(c, &d).map_err(KeyErr::Internal)?;
                e.key = d.to_vec();
            }
            KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
                let Some(der) = rsa else {
                    return Err(KeyErr::Internal("no RSA key was generated".into()));
                };
                let k = super::rsa::parse(&der).map_err(KeyErr::Internal)?;
                e.public_key = super::rsa::public_pem(&k).map_err(KeyErr::Internal)?;
                e.key = der.to_vec();
            }
        }
        if self.convergent_encryption {
            e.convergent_version = CONVERGENT_VERSION;
        }
        self.latest_version += 1;
        self.archive_version = self.latest_version;
        self.keys.insert(self.latest_version.to_string(), e);
        if self.min_decryption_version == 0 {
            self.min_decryption_version = 1;
        }
        Ok(())
    }

    pub fn entry(&self, ver: u64) -> Result<&KeyEntry, KeyErr> {
        self.keys
            .get(&ver.to_string())
            .filter(|e| !e.is_empty())
            .ok_or_else(|| user("no such key version"))
    }

    /// Versions a read shows (those not below the minimum decryption version).
    pub fn visible(&self) -> impl Iterator<Item = (u64, &KeyEntry)> {
        let min = self.min_decryption_version;
        self.keys
            .iter()
            .filter_map(|(k, e)| k.parse::<u64>().ok().map(|v| (v, e)))
            .filter(move |(v, _)| *v >= min)
    }

    /// The key of `ver`, derived for `context` when the key is derived (HKDF-SHA256, Vault's
    /// `hkdf_sha256`), `len` bytes.
    pub fn key_for(
        &self,
        context: &[u8],
        ver: u64,
        len: usize,
    ) -> Result<Zeroizing<Vec<u8>>, KeyErr> {
        if !self.derived {
            return Ok(Zeroizing::new(self.entry(ver)?.key.clone()));
        }
        if !self.kind.derivation() {
            return Err(user(format!(
                "derivation not supported for key type {}",
                self.kind.name()
            )));
        }
        if ver == 0 || ver > self.latest_version {
            return Err(user("invalid key version"));
        }
        if context.is_empty() {
            return Err(user(MISSING_CONTEXT));
        }
        let e = self.entry(ver)?;
        crypto::hkdf_sha256(&e.key, context, len).map_err(KeyErr::Internal)
    }

    /// The version to encrypt (or sign) with: 0 is the latest.
    pub(super) fn pick_version(&self, ver: i64, what: &str) -> Result<u64, KeyErr> {
        if ver < 0 {
            return Err(user(format!("requested version for {what} is negative")));
        }
        let v = ver as u64;
        if v == 0 {
            return Ok(self.latest_version);
        }
        if v > self.latest_version {
            return Err(user(format!(
                "requested version for {what} is higher than the latest key version"
            )));
        }
        if v < self.min_encryption_version {
            let label = if what == "signing" {
                "signing is less than the minimum encryption key version"
            } else {
                "encryption is less than the minimum encryption key version"
            };
            return Err(user(format!("requested version for {label}")));
        }
        Ok(v)
    }

    /// Encrypts base64-decoded `plain`: `vault:v<N>:<base64(nonce || ciphertext || tag)>`.
    pub fn encrypt(
        &self,
        ver: i64,
        context: &[u8],
        plain: &[u8],
        aad: &[u8],
    ) -> Result<(String, u64), KeyErr> {
        if self.kind.rsa_bits().is_some() {
            let ver = self.pick_version(ver, "encryption")?;
            return Ok((self.rsa_encrypt(ver, plain)?, ver));
        }
        let Some(aead) = self.kind.aead() else {
            return Err(user(format!(
                "message encryption not supported for key type {}",
                self.kind.name()
            )));
        };
        let ver = self.pick_version(ver, "encryption")?;
        let enc_len = aead.key_len();
        let convergent = self.convergent_encryption;
        let want = if convergent { enc_len + 32 } else { enc_len };
        let key = self.key_for(context, ver, want)?;
        let (enc, mac) = key.split_at(enc_len.min(key.len()));
        if enc.len() != enc_len {
            return Err(KeyErr::Internal(
                "could not derive enc key, length not correct".into(),
            ));
        }
        let nonce = if convergent {
            crypto::convergent_nonce(mac, plain).map_err(KeyErr::Internal)?
        } else {
            airlock_logical::util::random_bytes::<{ crypto::NONCE_LEN }>()
        };
        let ct = aead
            .seal(enc, &nonce, plain, aad)
            .map_err(KeyErr::Internal)?;
        Ok((crypto::envelope(ver, &b64e(&ct)), ver))
    }

    /// Decrypts a `vault:v<N>:...` ciphertext.
    pub fn decrypt(
        &self,
        context: &[u8],
        value: &str,
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KeyErr> {
        if self.kind.rsa_bits().is_some() {
            let (ver, body) = crypto::split_envelope(value, "ciphertext").map_err(KeyErr::User)?;
            let ver = self.check_read_version(ver, "invalid ciphertext: version is too new")?;
            let data = crypto::b64d(body)
                .map_err(|_| user("invalid ciphertext: could not decode base64"))?;
            return self.rsa_decrypt(ver, &data);
        }
        let Some(aead) = self.kind.aead() else {
            return Err(user(format!(
                "message decryption not supported for key type {}",
                self.kind.name()
            )));
        };
        let (ver, body) = crypto::split_envelope(value, "ciphertext").map_err(KeyErr::User)?;
        let ver = self.check_read_version(ver, "invalid ciphertext: version is too new")?;
        let data =
            crypto::b64d(body).map_err(|_| user("invalid ciphertext: could not decode base64"))?;
        let key = self.key_for(context, ver, aead.key_len())?;
        aead.open(&key, &data, aad).map_err(KeyErr::User)
    }

    /// A version from a ciphertext, signature or HMAC: not newer than the latest, not older
    /// than the minimum decryption version (0 reads as 1, as in Vault).
    pub fn check_read_version(&self, ver: i64, too_new: &str) -> Result<u64, KeyErr> {
        let ver = if ver == 0 { 1 } else { ver };
        if ver > self.latest_version as i64 {
            return Err(user(too_new));
        }
        if ver < self.min_decryption_version as i64 {
            return Err(user(
                "ciphertext or signature version is disallowed by policy (too old)",
            ));
        }
        Ok(ver as u64)
    }

    /// The HMAC key of `ver` (every version has one; an `hmac` key's is its key).
    pub fn hmac_key(&self, ver: u64) -> Result<&[u8], KeyErr> {
        if ver > self.latest_version {
            return Err(user(format!(
                "key version does not exist; latest key version is {}",
                self.latest_version
            )));
        }
        let e = self.entry(ver)?;
        if self.kind == KeyType::Hmac {
            return Ok(&e.key);
        }
        if e.hmac_key.is_empty() {
            return Err(user("no HMAC key exists for that key version"));
        }
        Ok(&e.hmac_key)
    }

    /// Signs `input` (already hashed for ECDSA). Returns the signature text, the version,
    /// and for a derived Ed25519 key the derived public key.
    pub fn sign(
        &self,
        ver: i64,
        context: &[u8],
        input: &[u8],
        jws: bool,
    ) -> Result<(String, u64, Option<Vec<u8>>), KeyErr> {
        if !self.kind.signing() {
            return Err(KeyErr::Internal(format!(
                "message signing not supported for key type {}",
                self.kind.name()
            )));
        }
        let ver = self.pick_version(ver, "signing")?;
        let mut public = None;
        let sig = match self.kind {
            KeyType::Ed25519 if self.derived => {
                let seed = self
                    .key_for(context, ver, 32)
                    .map_err(|e| KeyErr::Internal(format!("error deriving key: {}", e.msg())))?;
                let k = asym::ed25519_from_seed(&seed).map_err(KeyErr::Internal)?;
                public = Some(k.get(32..).unwrap_or_default().to_vec());
                asym::ed25519_sign(&k, input).map_err(KeyErr::Internal)?
            }
            KeyType::Ed25519 => {
                let e = self.entry(ver)?;
                let kp = match e.ed_signer.get() {
                    Some(kp) => std::sync::Arc::clone(kp),
                    None => {
                        let kp = std::sync::Arc::new(
                            asym::ed25519_keypair(&e.key).map_err(KeyErr::Internal)?,
                        );
                        std::sync::Arc::clone(e.ed_signer.get_or_init(|| kp))
                    }
                };
                kp.sign(input).as_ref().to_vec()
            }
            _ => {
                let c = self
                    .kind
                    .curve()
                    .ok_or_else(|| KeyErr::Internal("unsupported key type".into()))?;
                asym::ec_sign(c, &self.entry(ver)?.key, input, jws).map_err(KeyErr::Internal)?
            }
        };
        let body = if jws {
            crypto::b64url(&sig)
        } else {
            b64e(&sig)
        };
        Ok((crypto::envelope(ver, &body), ver, public))
    }

    /// Verifies a `vault:v<N>:...` signature over `input` (already hashed for ECDSA).
    pub fn verify(
        &self,
        context: &[u8],
        input: &[u8],
        sig: &str,
        jws: bool,
    ) -> Result<bool, KeyErr> {
        if !self.kind.signing() {
            return Err(user(format!(
                "message verification not supported for key type {}",
                self.kind.name()
            )));
        }
        let (ver, body) = crypto::split_envelope(sig, "signature").map_err(KeyErr::User)?;
        if ver > self.latest_version as i64 {
            return Err(user("invalid signature: version is too new"));
        }
        if ver < self.min_decryption_version as i64 {
            return Err(user(
                "ciphertext or signature version is disallowed by policy (too old)",
            ));
        }
        let ver = ver.max(0) as u64;
        let sig = if jws {
            crypto::b64url_d(body).map(Zeroizing::new)
        } else {
            crypto::b64d(body)
        }
        .map_err(|_| user("invalid base64 signature value"))?;
        match self.kind {
            KeyType::Ed25519 => {
                let public = if self.derived {
                    let seed = self.key_for(context, ver, 32).map_err(|e| {
                        KeyErr::Internal(format!("error deriving key: {}", e.msg()))
                    })?;
                    asym::ed25519_public(&asym::ed25519_from_seed(&seed).map_err(KeyErr::Internal)?)
                        .map_err(KeyErr::Internal)?
                } else {
                    crypto::b64d(&self.entry(ver)?.public_key)
                        .map_err(KeyErr::Internal)?
                        .to_vec()
                };
                Ok(asym::ed25519_verify(&public, input, &sig))
            }
            _ => {
                let c = self
                    .kind
                    .curve()
                    .ok_or_else(|| KeyErr::Internal("unsupported key type".into()))?;
                asym::ec_verify(c, &self.entry(ver)?.key, input, &sig, jws).map_err(KeyErr::User)
            }
        }
    }

    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, KeyErr> {
        serde_json::to_vec(self)
            .map(Zeroizing::new)
            .map_err(|e| KeyErr::Internal(e.to_string()))
    }
}

fn random(n: usize) -> Zeroizing<Vec<u8>> {
    let mut b = Zeroizing::new(vec![0u8; n]);
    rand::fill(&mut b[..]);
    b
}
