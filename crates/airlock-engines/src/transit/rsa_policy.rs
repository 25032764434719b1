//! RSA operations on a transit key (a [`Policy`] of an RSA type): OAEP encryption in
//! Vault's envelope, and signatures with the options Vault's `sign`/`verify` take. The RSA
//! primitives are in `rsa.rs`, which knows nothing of keys' versions.

use zeroize::Zeroizing;

use super::crypto::{self, b64e, HashAlg};
use super::policy::{KeyErr, Policy};
use ::rsa::PrivateKey;

use super::rsa::{oaep_decrypt, oaep_encrypt, parse, salt_valid, sign, verify, OaepHash};

/// How an RSA signature is made: Vault's `hash_algorithm`, `signature_algorithm` (empty is
/// `pss`) and `salt_length` (as Go's constants: 0 auto, -1 the hash's length).
pub struct SigOpts<'a> {
    pub hash: HashAlg,
    pub algorithm: &'a str,
    pub salt: i64,
}

impl SigOpts<'_> {
    fn pss(&self) -> Result<bool, KeyErr> {
        match self.algorithm {
            "" | "pss" => Ok(true),
            "pkcs1v15" => Ok(false),
            other => Err(KeyErr::Internal(format!(
                "unsupported rsa signature algorithm {other}"
            ))),
        }
    }
}

impl Policy {
    fn rsa_key(&self, ver: u64) -> Result<PrivateKey, KeyErr> {
        parse(&self.entry(ver)?.key).map_err(KeyErr::Internal)
    }

    /// OAEP-SHA256 under version `ver`: `vault:v<N>:<base64>`.
    pub fn rsa_encrypt(&self, ver: u64, plain: &[u8]) -> Result<String, KeyErr> {
        let ct = oaep_encrypt(&self.rsa_key(ver)?, OaepHash::Sha256, plain)
            .map_err(|e| KeyErr::Internal(format!("failed to RSA encrypt the plaintext: {e}")))?;
        Ok(crypto::envelope(ver, &b64e(&ct)))
    }

    pub fn rsa_decrypt(&self, ver: u64, ct: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyErr> {
        oaep_decrypt(&self.rsa_key(ver)?, OaepHash::Sha256, ct)
            .map_err(|e| KeyErr::Internal(format!("failed to RSA decrypt the ciphertext: {e}")))
    }

    /// Signs a digest (or, for `none`, the prehashed input) with version `ver` (0: latest).
    pub fn rsa_sign(
        &self,
        ver: i64,
        digest: &[u8],
        o: &SigOpts,
        jws: bool,
    ) -> Result<(String, u64), KeyErr> {
        let ver = self.pick_version(ver, "signing")?;
        let k = self.rsa_key(ver)?;
        let pss = o.pss()?;
        if pss && !salt_valid(&k, o.hash, o.salt) {
            return Err(KeyErr::User(format!(
                "requested salt length {} is invalid",
                o.salt
            )));
        }
        let sig = sign(&k, o.hash, pss, o.salt, digest).map_err(KeyErr::Internal)?;
        let body = if jws {
            crypto::b64url(&sig)
        } else {
            b64e(&sig)
        };
        Ok((crypto::envelope(ver, &body), ver))
    }

    /// Verifies a `vault:v<N>:...` signature over a digest.
    pub fn rsa_verify(
        &self,
        digest: &[u8],
        sig: &str,
        o: &SigOpts,
        jws: bool,
    ) -> Result<bool, KeyErr> {
        let (ver, body) = crypto::split_envelope(sig, "signature").map_err(KeyErr::User)?;
        if ver > self.latest_version as i64 {
            return Err(KeyErr::User("invalid signature: version is too new".into()));
        }
        if ver < self.min_decryption_version as i64 {
            return Err(KeyErr::User(
                "ciphertext or signature version is disallowed by policy (too old)".into(),
            ));
        }
        let sig = if jws {
            crypto::b64url_d(body)
        } else {
            crypto::b64d(body).map(|s| s.to_vec())
        }
        .map_err(|_| KeyErr::User("invalid base64 signature value".into()))?;
        let k = self.rsa_key(ver.max(0) as u64)?;
        let pss = o.pss()?;
        if pss && !salt_valid(&k, o.hash, o.salt) {
            return Err(KeyErr::User(format!(
                "requested salt length {} is invalid",
                o.salt
            )));
        }
        verify(&k, o.hash, pss, o.salt, digest, &sig).map_err(KeyErr::Internal)
    }
}
