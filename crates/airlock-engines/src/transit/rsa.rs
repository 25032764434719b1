//! RSA keys of the transit engine (`rsa-2048`, `rsa-3072`, `rsa-4096`) over the `rsa`
//! crate: generation (slow: callers run it on a blocking thread), OAEP encryption as Vault
//! does it (SHA-256 for messages; the import path's hash is chosen by the caller), PSS and
//! PKCS#1 v1.5 signatures with every hash Vault allows, Go's PSS salt-length rules, and the
//! PEM/DER forms Vault shows and exports. Pure: no storage, no request. A stored RSA version
//! keeps its PKCS#8 `PrivateKeyInfo` DER in `key` and its `SubjectPublicKeyInfo` PEM in
//! `public_key`.

use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, Pkcs1v15Sign, PrivateKey, Pss};
use zeroize::Zeroizing;

use super::crypto::{pem, HashAlg};

/// A new key of `bits` bits, as PKCS#8 DER. Takes seconds for 4096 bits.
pub fn generate(bits: usize) -> Result<Zeroizing<Vec<u8>>, String> {
    let k = PrivateKey::new(&mut rand::rng(), bits).map_err(|e| e.to_string())?;
    to_pkcs8(&k)
}

pub fn parse(pkcs8: &[u8]) -> Result<PrivateKey, String> {
    PrivateKey::from_pkcs8_der(pkcs8).map_err(|e| format!("invalid RSA private key: {e}"))
}

pub fn to_pkcs8(k: &PrivateKey) -> Result<Zeroizing<Vec<u8>>, String> {
    k.to_pkcs8_der()
        .map(|d| Zeroizing::new(d.as_bytes().to_vec()))
        .map_err(|e| e.to_string())
}

/// PKCS#1 `RSAPrivateKey` DER (Vault's default `RSA PRIVATE KEY` export).
pub fn to_pkcs1(k: &PrivateKey) -> Result<Zeroizing<Vec<u8>>, String> {
    k.to_pkcs1_der()
        .map(|d| Zeroizing::new(d.as_bytes().to_vec()))
        .map_err(|e| e.to_string())
}

/// The modulus size in bytes (Go's `Size()`).
pub fn size(k: &PrivateKey) -> usize {
    k.n().bit_width().div_ceil(8) as usize
}

pub fn public_der(k: &PrivateKey) -> Result<Vec<u8>, String> {
    k.to_public_key()
        .to_public_key_der()
        .map(|d| d.as_bytes().to_vec())
        .map_err(|e| e.to_string())
}

/// `SubjectPublicKeyInfo` PEM with its final newline, as Vault shows RSA public keys.
pub fn public_pem(k: &PrivateKey) -> Result<String, String> {
    Ok(pem("PUBLIC KEY", &public_der(k)?))
}

/// The hash of an OAEP padding (transit messages use SHA-256; imports may choose).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OaepHash {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl OaepHash {
    /// The import path's `hash_function` (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_uppercase().as_str() {
            "SHA1" => OaepHash::Sha1,
            "SHA224" => OaepHash::Sha224,
            "SHA256" => OaepHash::Sha256,
            "SHA384" => OaepHash::Sha384,
            "SHA512" => OaepHash::Sha512,
            _ => return None,
        })
    }
}

/// Go's words for the errors a caller may see.
fn go_err(e: rsa::Error) -> String {
    match e {
        rsa::Error::MessageTooLong => "crypto/rsa: message too long for RSA key size".into(),
        rsa::Error::Decryption => "crypto/rsa: decryption error".into(),
        rsa::Error::Verification => "crypto/rsa: verification error".into(),
        e => format!("crypto/rsa: {e}"),
    }
}

pub fn oaep_encrypt(k: &PrivateKey, h: OaepHash, msg: &[u8]) -> Result<Vec<u8>, String> {
    let public = k.as_public_key();
    let mut r = rand::rng();
    match h {
        OaepHash::Sha1 => public.encrypt(&mut r, Oaep::<sha1::Sha1>::new(), msg),
        OaepHash::Sha224 => public.encrypt(&mut r, Oaep::<sha2::Sha224>::new(), msg),
        OaepHash::Sha256 => public.encrypt(&mut r, Oaep::<sha2::Sha256>::new(), msg),
        OaepHash::Sha384 => public.encrypt(&mut r, Oaep::<sha2::Sha384>::new(), msg),
        OaepHash::Sha512 => public.encrypt(&mut r, Oaep::<sha2::Sha512>::new(), msg),
    }
    .map_err(go_err)
}

pub fn oaep_decrypt(k: &PrivateKey, h: OaepHash, ct: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    let mut r = rand::rng();
    match h {
        OaepHash::Sha1 => k.decrypt_blinded(&mut r, Oaep::<sha1::Sha1>::new(), ct),
        OaepHash::Sha224 => k.decrypt_blinded(&mut r, Oaep::<sha2::Sha224>::new(), ct),
        OaepHash::Sha256 => k.decrypt_blinded(&mut r, Oaep::<sha2::Sha256>::new(), ct),
        OaepHash::Sha384 => k.decrypt_blinded(&mut r, Oaep::<sha2::Sha384>::new(), ct),
        OaepHash::Sha512 => k.decrypt_blinded(&mut r, Oaep::<sha2::Sha512>::new(), ct),
    }
    .map(Zeroizing::new)
    .map_err(go_err)
}

/// Go's `PSSSaltLengthAuto` (0) and `PSSSaltLengthEqualsHash` (-1), as Vault passes them.
pub const SALT_AUTO: i64 = 0;
pub const SALT_HASH: i64 = -1;

/// Vault's bounds: from "equals hash" to the largest salt the key leaves room for.
pub fn salt_valid(k: &PrivateKey, hash: HashAlg, salt: i64) -> bool {
    salt >= SALT_HASH && salt <= max_salt(k, hash) as i64
}

fn hash_len(hash: HashAlg) -> usize {
    hash.digest(b"").map(|d| d.len()).unwrap_or(0)
}

fn max_salt(k: &PrivateKey, hash: HashAlg) -> usize {
    let em_len = (k.n().bit_width() as usize).saturating_sub(1).div_ceil(8);
    em_len.saturating_sub(2 + hash_len(hash))
}

/// The salt length a PSS signature is made with (`None`: let verification detect it).
fn salt_len(k: &PrivateKey, hash: HashAlg, salt: i64, signing: bool) -> Option<usize> {
    match salt {
        SALT_AUTO if signing => Some(max_salt(k, hash)),
        SALT_AUTO => None,
        SALT_HASH => Some(hash_len(hash)),
        n => Some(n.max(0) as usize),
    }
}

/// `DigestInfo` prefixes (RFC 8017 §9.2 note 1, plus SHA-3 as Go has them).
fn digest_info_prefix(hash: HashAlg) -> Option<Vec<u8>> {
    let nist = |n: u8, len: u8| {
        vec![
            0x30,
            0x11 + len,
            0x30,
            0x0d,
            0x06,
            0x09,
            0x60,
            0x86,
            0x48,
            0x01,
            0x65,
            0x03,
            0x04,
            0x02,
            n,
            0x05,
            0x00,
            0x04,
            len,
        ]
    };
    Some(match hash {
        HashAlg::None => Vec::new(),
        HashAlg::Sha1 => vec![
            0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
            0x14,
        ],
        HashAlg::Sha256 => nist(1, 32),
        HashAlg::Sha384 => nist(2, 48),
        HashAlg::Sha512 => nist(3, 64),
        HashAlg::Sha224 => nist(4, 28),
        HashAlg::Sha3_224 => nist(7, 28),
        HashAlg::Sha3_256 => nist(8, 32),
        HashAlg::Sha3_384 => nist(9, 48),
        HashAlg::Sha3_512 => nist(10, 64),
    })
}

fn pkcs1v15(hash: HashAlg) -> Result<Pkcs1v15Sign, String> {
    if hash == HashAlg::None {
        return Ok(Pkcs1v15Sign::new_unprefixed());
    }
    let prefix = digest_info_prefix(hash).ok_or("crypto/rsa: unsupported hash function")?;
    Ok(Pkcs1v15Sign {
        hash_len: Some(hash_len(hash)),
        prefix: prefix.into_boxed_slice(),
    })
}

macro_rules! with_digest {
    ($hash:expr, $d:ident => $body:expr) => {
        match $hash {
            HashAlg::Sha1 => {
                type $d = sha1::Sha1;
                $body
            }
            HashAlg::Sha224 => {
                type $d = sha2::Sha224;
                $body
            }
            HashAlg::Sha256 => {
                type $d = sha2::Sha256;
                $body
            }
            HashAlg::Sha384 => {
                type $d = sha2::Sha384;
                $body
            }
            HashAlg::Sha512 => {
                type $d = sha2::Sha512;
                $body
            }
            HashAlg::Sha3_224 => {
                type $d = sha3::Sha3_224;
                $body
            }
            HashAlg::Sha3_256 => {
                type $d = sha3::Sha3_256;
                $body
            }
            HashAlg::Sha3_384 => {
                type $d = sha3::Sha3_384;
                $body
            }
            HashAlg::Sha3_512 => {
                type $d = sha3::Sha3_512;
                $body
            }
            HashAlg::None => Err("crypto/rsa: PSS needs a hash function".to_string()),
        }
    };
}

/// Signs a digest. `pss`: RSASSA-PSS with Vault's `salt` (already checked with
/// [`salt_valid`]); otherwise PKCS#1 v1.5 (`HashAlg::None`: the input signed as is).
pub fn sign(
    k: &PrivateKey,
    hash: HashAlg,
    pss: bool,
    salt: i64,
    digest: &[u8],
) -> Result<Vec<u8>, String> {
    let mut r = rand::rng();
    if !pss {
        return k
            .sign_with_rng(&mut r, pkcs1v15(hash)?, digest)
            .map_err(go_err);
    }
    let len = salt_len(k, hash, salt, true).unwrap_or(0);
    with_digest!(hash, D => k
        .sign_with_rng(&mut r, Pss::<D>::new_with_salt(len), digest)
        .map_err(go_err))
}

/// Verifies a signature over a digest; a signature that does not check is `Ok(false)`.
pub fn verify(
    k: &PrivateKey,
    hash: HashAlg,
    pss: bool,
    salt: i64,
    digest: &[u8],
    sig: &[u8],
) -> Result<bool, String> {
    let public = k.as_public_key();
    if !pss {
        return Ok(public.verify(pkcs1v15(hash)?, digest, sig).is_ok());
    }
    let len = salt_len(k, hash, salt, false);
    with_digest!(hash, D => {
        let mut scheme = Pss::<D>::new();
        scheme.salt_len = len;
        Ok(public.verify(scheme, digest, sig).is_ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> PrivateKey {
        parse(&generate(2048).unwrap()).unwrap()
    }

    #[test]
    fn oaep_round_trip_and_tamper() {
        let k = key();
        assert_eq!(size(&k), 256);
        for h in [OaepHash::Sha1, OaepHash::Sha256, OaepHash::Sha512] {
            let ct = oaep_encrypt(&k, h, b"secret").unwrap();
            assert_eq!(ct.len(), 256);
            assert_eq!(&oaep_decrypt(&k, h, &ct).unwrap()[..], b"secret");
            let mut bad = ct.clone();
            bad[10] ^= 1;
            assert_eq!(
                oaep_decrypt(&k, h, &bad).unwrap_err(),
                "crypto/rsa: decryption error"
            );
        }
        let ct = oaep_encrypt(&k, OaepHash::Sha256, b"x").unwrap();
        assert!(oaep_decrypt(&k, OaepHash::Sha1, &ct).is_err());
        assert_eq!(
            oaep_encrypt(&k, OaepHash::Sha256, &[0u8; 300]).unwrap_err(),
            "crypto/rsa: message too long for RSA key size"
        );
    }

    #[test]
    fn pss_and_pkcs1v15_sign_and_verify_with_every_hash() {
        let k = key();
        for hash in [
            HashAlg::Sha1,
            HashAlg::Sha224,
            HashAlg::Sha256,
            HashAlg::Sha384,
            HashAlg::Sha512,
            HashAlg::Sha3_224,
            HashAlg::Sha3_256,
            HashAlg::Sha3_384,
            HashAlg::Sha3_512,
        ] {
            let d = hash.digest(b"msg").unwrap();
            let other = hash.digest(b"other").unwrap();
            for pss in [false, true] {
                let s = sign(&k, hash, pss, SALT_AUTO, &d).unwrap();
                assert!(
                    verify(&k, hash, pss, SALT_AUTO, &d, &s).unwrap(),
                    "{hash:?}"
                );
                assert!(!verify(&k, hash, pss, SALT_AUTO, &other, &s).unwrap());
                assert!(!verify(&k, hash, pss, SALT_AUTO, &d, b"junk").unwrap());
            }
            // An explicit salt length must match on verification; auto detects it.
            let s = sign(&k, hash, true, SALT_HASH, &d).unwrap();
            assert!(verify(&k, hash, true, SALT_HASH, &d, &s).unwrap());
            assert!(verify(&k, hash, true, SALT_AUTO, &d, &s).unwrap());
            assert!(!verify(&k, hash, true, 5, &d, &s).unwrap());
        }
        // Unprefixed PKCS#1 v1.5 over a prehashed input (hash_algorithm=none).
        let s = sign(&k, HashAlg::None, false, 0, b"0123456789").unwrap();
        assert!(verify(&k, HashAlg::None, false, 0, b"0123456789", &s).unwrap());
        assert!(salt_valid(&k, HashAlg::Sha256, 222));
        assert!(!salt_valid(&k, HashAlg::Sha256, 223));
        assert!(!salt_valid(&k, HashAlg::Sha256, -2));
        assert!(public_pem(&k)
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert!(!to_pkcs1(&k).unwrap().is_empty());
    }
}
