//! The keyring: numbered data-key terms. New data is encrypted with the newest term; every
//! older term stays so data written before a rotation remains readable.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::{Result, StoreError};

/// Format byte in front of every barrier ciphertext.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;

/// One data key. The key bytes are zeroised on drop and never formatted.
pub struct Term {
    pub term: u32,
    pub installed_unix: i64,
    key: Zeroizing<[u8; 32]>,
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Term {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Term({}, key: ***)", self.term)
    }
}

/// All data-key terms; the last one is active.
#[derive(Debug, Default)]
pub struct Keyring {
    terms: Vec<Term>,
}

#[derive(Serialize, Deserialize)]
struct StoredTerm {
    term: u32,
    installed_unix: i64,
    key_hex: String,
}

#[derive(Serialize, Deserialize)]
struct StoredKeyring {
    terms: Vec<StoredTerm>,
}

pub fn random_key() -> Zeroizing<[u8; 32]> {
    let mut k = Zeroizing::new([0u8; 32]);
    rand::fill(k.as_mut_slice());
    k
}

impl Term {
    fn new(term: u32, installed_unix: i64, key: Zeroizing<[u8; 32]>) -> Self {
        let cipher = Aes256Gcm::new((&*key).into());
        Self {
            term,
            installed_unix,
            key,
            cipher,
        }
    }
}

/// Encrypts `plaintext` under `key` (a one-off key, e.g. the unseal key), binding `aad`.
pub fn seal_with(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let t = Term::new(0, 0, Zeroizing::new(*key));
    encrypt_term(&t, aad, plaintext)
}

/// Decrypts a blob made by [`seal_with`].
pub fn open_with(key: &[u8; 32], aad: &[u8], blob: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let t = Term::new(0, 0, Zeroizing::new(*key));
    decrypt_term(&t, aad, blob)
}

fn encrypt_term(t: &Term, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::fill(&mut nonce);
    let ct = t
        .cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| StoreError::Corrupt("encryption failed".into()))?;
    let mut out = Vec::with_capacity(HEADER_LEN + ct.len());
    out.push(VERSION);
    out.extend_from_slice(&t.term.to_be_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

fn decrypt_term(t: &Term, aad: &[u8], blob: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let nonce: [u8; NONCE_LEN] = blob
        .get(5..HEADER_LEN)
        .and_then(|n| n.try_into().ok())
        .ok_or_else(|| StoreError::Corrupt("ciphertext too short".into()))?;
    let ct = blob
        .get(HEADER_LEN..)
        .ok_or_else(|| StoreError::Corrupt("ciphertext too short".into()))?;
    t.cipher
        .decrypt(&Nonce::from(nonce), Payload { msg: ct, aad })
        .map(Zeroizing::new)
        .map_err(|_| StoreError::Corrupt("authentication failed".into()))
}

/// Reads the term number from a ciphertext header.
pub fn blob_term(blob: &[u8]) -> Result<u32> {
    match blob {
        [VERSION, a, b, c, d, ..] if blob.len() >= HEADER_LEN => {
            Ok(u32::from_be_bytes([*a, *b, *c, *d]))
        }
        _ => Err(StoreError::Corrupt("unknown ciphertext format".into())),
    }
}

impl Keyring {
    /// A keyring with one fresh term.
    pub fn generate(now_unix: i64) -> Self {
        Self {
            terms: vec![Term::new(1, now_unix, random_key())],
        }
    }

    /// Adds a new term and makes it active. Returns its number.
    pub fn rotate(&mut self, now_unix: i64) -> u32 {
        let next = self.active_term() + 1;
        self.terms.push(Term::new(next, now_unix, random_key()));
        next
    }

    pub fn active_term(&self) -> u32 {
        self.terms.last().map(|t| t.term).unwrap_or(0)
    }

    pub fn active_installed(&self) -> i64 {
        self.terms.last().map(|t| t.installed_unix).unwrap_or(0)
    }

    pub fn terms(&self) -> usize {
        self.terms.len()
    }

    pub fn encrypt(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let t = self.terms.last().ok_or(StoreError::Sealed)?;
        encrypt_term(t, aad, plaintext)
    }

    pub fn decrypt(&self, aad: &[u8], blob: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let term = blob_term(blob)?;
        let t = self
            .terms
            .iter()
            .find(|t| t.term == term)
            .ok_or_else(|| StoreError::Corrupt(format!("no key for term {term}")))?;
        decrypt_term(t, aad, blob)
    }

    /// Serialises the keyring (plaintext key material: only ever passed to [`seal_with`]).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let stored = StoredKeyring {
            terms: self
                .terms
                .iter()
                .map(|t| StoredTerm {
                    term: t.term,
                    installed_unix: t.installed_unix,
                    key_hex: hex::encode(t.key.as_ref()),
                })
                .collect(),
        };
        let out = Zeroizing::new(serde_json::to_vec(&stored).unwrap_or_default());
        for mut t in stored.terms {
            t.key_hex.zeroize();
        }
        out
    }

    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        let stored: StoredKeyring = serde_json::from_slice(b)
            .map_err(|_| StoreError::Corrupt("keyring is malformed".into()))?;
        let mut terms = Vec::new();
        for mut st in stored.terms {
            let mut key = Zeroizing::new([0u8; 32]);
            hex::decode_to_slice(&st.key_hex, key.as_mut())
                .map_err(|_| StoreError::Corrupt("keyring is malformed".into()))?;
            st.key_hex.zeroize();
            terms.push(Term::new(st.term, st.installed_unix, key));
        }
        if terms.is_empty() {
            return Err(StoreError::Corrupt("keyring is empty".into()));
        }
        Ok(Self { terms })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aad_binds_ciphertext_to_row() {
        let k = Keyring::generate(0);
        let c = k.encrypt(b"row/a", b"secret").unwrap();
        assert_eq!(&k.decrypt(b"row/a", &c).unwrap()[..], b"secret");
        assert!(k.decrypt(b"row/b", &c).is_err());
    }

    #[test]
    fn rotation_keeps_old_terms_readable() {
        let mut k = Keyring::generate(0);
        let c1 = k.encrypt(b"x", b"one").unwrap();
        assert_eq!(k.rotate(1), 2);
        let c2 = k.encrypt(b"x", b"two").unwrap();
        assert_eq!(blob_term(&c2).unwrap(), 2);
        let k2 = Keyring::from_bytes(&k.to_bytes()).unwrap();
        assert_eq!(&k2.decrypt(b"x", &c1).unwrap()[..], b"one");
        assert_eq!(&k2.decrypt(b"x", &c2).unwrap()[..], b"two");
    }

    #[test]
    fn debug_hides_key() {
        let k = Keyring::generate(0);
        let s = format!("{k:?}");
        assert!(s.contains("***"));
        assert!(!s.contains(&hex::encode(k.terms[0].key.as_ref())));
    }
}
