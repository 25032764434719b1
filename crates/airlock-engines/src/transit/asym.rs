//! Asymmetric keys of the transit engine: Ed25519 (ring) and ECDSA P-256/P-384 (RustCrypto,
//! for prehashed signing with any of Vault's hashes), their generation, signatures in
//! Vault's two marshalings (ASN.1 DER, JWS `r || s`) and the public and private forms
//! Vault exports. Pure: no storage, no request.

use p256::pkcs8::{EncodePrivateKey, EncodePublicKey};
use ring::signature::{self, KeyPair};
use zeroize::Zeroizing;

use super::crypto::{b64e, ed25519_pkcs8, ed25519_spki, pem};

/// The two ECDSA curves offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
}

impl Curve {
    pub fn scalar_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }
    /// Go's curve name (`P-256`), shown in key reads.
    pub fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
        }
    }
}

/// A new ECDSA private scalar (big-endian, fixed length).
pub fn ec_generate(c: Curve) -> Result<Zeroizing<Vec<u8>>, String> {
    for _ in 0..16 {
        let mut b = Zeroizing::new(vec![0u8; c.scalar_len()]);
        rand::fill(&mut b[..]);
        if ec_check(c, &b).is_ok() {
            return Ok(b);
        }
    }
    Err("could not generate an ECDSA key".into())
}

fn ec_check(c: Curve, d: &[u8]) -> Result<(), String> {
    let ok = match c {
        Curve::P256 => p256::SecretKey::from_slice(d).is_ok(),
        Curve::P384 => p384::SecretKey::from_slice(d).is_ok(),
    };
    if ok {
        Ok(())
    } else {
        Err("invalid ECDSA private key".into())
    }
}

/// The public key as a `SubjectPublicKeyInfo` PEM (Go's layout, final newline included).
pub fn ec_public_pem(c: Curve, d: &[u8]) -> Result<String, String> {
    Ok(pem("PUBLIC KEY", &ec_public_der(c, d)?))
}

pub fn ec_public_der(c: Curve, d: &[u8]) -> Result<Vec<u8>, String> {
    let err = |_| "invalid ECDSA private key".to_string();
    let der = match c {
        Curve::P256 => p256::SecretKey::from_slice(d)
            .map_err(err)?
            .public_key()
            .to_public_key_der(),
        Curve::P384 => p384::SecretKey::from_slice(d)
            .map_err(err)?
            .public_key()
            .to_public_key_der(),
    };
    der.map(|d| d.as_bytes().to_vec())
        .map_err(|e| e.to_string())
}

/// SEC1 `ECPrivateKey` DER (Vault's default `EC PRIVATE KEY` export).
pub fn ec_sec1_der(c: Curve, d: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    let err = |_| "invalid ECDSA private key".to_string();
    match c {
        Curve::P256 => p256::SecretKey::from_slice(d)
            .map_err(err)?
            .to_sec1_der()
            .map_err(|e| e.to_string()),
        Curve::P384 => p384::SecretKey::from_slice(d)
            .map_err(err)?
            .to_sec1_der()
            .map_err(|e| e.to_string()),
    }
}

/// PKCS#8 `PrivateKeyInfo` DER.
pub fn ec_pkcs8_der(c: Curve, d: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    let err = |_| "invalid ECDSA private key".to_string();
    let doc = match c {
        Curve::P256 => p256::SecretKey::from_slice(d).map_err(err)?.to_pkcs8_der(),
        Curve::P384 => p384::SecretKey::from_slice(d).map_err(err)?.to_pkcs8_der(),
    };
    doc.map(|d| Zeroizing::new(d.as_bytes().to_vec()))
        .map_err(|e| e.to_string())
}

/// Signs a digest (Go truncates a longer digest to the curve's size; so does `ecdsa`).
/// `jws`: fixed-width `r || s`; otherwise ASN.1 DER.
pub fn ec_sign(c: Curve, d: &[u8], digest: &[u8], jws: bool) -> Result<Vec<u8>, String> {
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    let err = |_| "invalid ECDSA private key".to_string();
    let serr = |e: p256::ecdsa::Error| format!("signing failed: {e}");
    match c {
        Curve::P256 => {
            let k = p256::ecdsa::SigningKey::from_slice(d).map_err(err)?;
            let s: p256::ecdsa::Signature = k.sign_prehash(digest).map_err(serr)?;
            Ok(if jws {
                s.to_bytes().to_vec()
            } else {
                s.to_der().as_bytes().to_vec()
            })
        }
        Curve::P384 => {
            let k = p384::ecdsa::SigningKey::from_slice(d).map_err(err)?;
            let s: p384::ecdsa::Signature = k.sign_prehash(digest).map_err(serr)?;
            Ok(if jws {
                s.to_bytes().to_vec()
            } else {
                s.to_der().as_bytes().to_vec()
            })
        }
    }
}

/// Verifies a signature over a digest. `Err` only for an ASN.1 signature that does not
/// parse (Vault's "supplied signature is invalid"); a JWS signature of the wrong size is
/// simply not valid.
pub fn ec_verify(c: Curve, d: &[u8], digest: &[u8], sig: &[u8], jws: bool) -> Result<bool, String> {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    let err = |_| "invalid ECDSA private key".to_string();
    let bad = || "supplied signature is invalid".to_string();
    match c {
        Curve::P256 => {
            let k = *p256::ecdsa::SigningKey::from_slice(d)
                .map_err(err)?
                .verifying_key();
            let s = if jws {
                match p256::ecdsa::Signature::from_slice(sig) {
                    Ok(s) => s,
                    Err(_) => return Ok(false),
                }
            } else {
                p256::ecdsa::Signature::from_der(sig).map_err(|_| bad())?
            };
            Ok(k.verify_prehash(digest, &s).is_ok())
        }
        Curve::P384 => {
            let k = *p384::ecdsa::SigningKey::from_slice(d)
                .map_err(err)?
                .verifying_key();
            let s = if jws {
                match p384::ecdsa::Signature::from_slice(sig) {
                    Ok(s) => s,
                    Err(_) => return Ok(false),
                }
            } else {
                p384::ecdsa::Signature::from_der(sig).map_err(|_| bad())?
            };
            Ok(k.verify_prehash(digest, &s).is_ok())
        }
    }
}

/// An Ed25519 key in Vault's stored form: the 64-byte `seed || public`.
pub fn ed25519_from_seed(seed: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    let kp = signature::Ed25519KeyPair::from_seed_unchecked(seed)
        .map_err(|_| "invalid Ed25519 seed".to_string())?;
    let mut v = Zeroizing::new(seed.to_vec());
    v.extend_from_slice(kp.public_key().as_ref());
    Ok(v)
}

/// The public half of a stored Ed25519 key (its last 32 bytes, recomputed from the seed).
pub fn ed25519_public(key: &[u8]) -> Result<Vec<u8>, String> {
    let seed = key.get(..32).ok_or("invalid Ed25519 key")?;
    let kp = signature::Ed25519KeyPair::from_seed_unchecked(seed)
        .map_err(|_| "invalid Ed25519 key".to_string())?;
    Ok(kp.public_key().as_ref().to_vec())
}

pub fn ed25519_sign(key: &[u8], msg: &[u8]) -> Result<Vec<u8>, String> {
    Ok(ed25519_keypair(key)?.sign(msg).as_ref().to_vec())
}

/// The signing key of a stored Ed25519 key (`seed || public`), to keep and reuse.
pub fn ed25519_keypair(key: &[u8]) -> Result<signature::Ed25519KeyPair, String> {
    let seed = key.get(..32).ok_or("invalid Ed25519 key")?;
    signature::Ed25519KeyPair::from_seed_unchecked(seed)
        .map_err(|_| "invalid Ed25519 key".to_string())
}

pub fn ed25519_verify(public: &[u8], msg: &[u8], sig: &[u8]) -> bool {
    signature::UnparsedPublicKey::new(&signature::ED25519, public)
        .verify(msg, sig)
        .is_ok()
}

/// Ed25519 private key export: base64 of the 64 bytes (default and `raw`), PKCS#8.
pub fn ed25519_private_export(key: &[u8], format: &str) -> Result<String, String> {
    match format {
        "" | "raw" => Ok(b64e(key)),
        _ => {
            let seed = key.get(..32).ok_or("invalid Ed25519 key")?;
            let der = ed25519_pkcs8(seed);
            Ok(der_or_pem(&der, "PRIVATE KEY", format))
        }
    }
}

pub fn ed25519_public_export(public: &[u8], format: &str) -> String {
    match format {
        "" | "raw" => b64e(public),
        _ => der_or_pem(&ed25519_spki(public), "PUBLIC KEY", format),
    }
}

/// `der`: base64 of the DER; `pem`: PEM without its final newline (Vault trims it).
pub fn der_or_pem(der: &[u8], label: &str, format: &str) -> String {
    if format == "der" {
        b64e(der)
    } else {
        pem(label, der).trim().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_signs_any_digest_and_verifies_both_marshalings() {
        for c in [Curve::P256, Curve::P384] {
            let d = ec_generate(c).unwrap();
            let digest = super::super::crypto::HashAlg::Sha512
                .digest(b"msg")
                .unwrap();
            for jws in [false, true] {
                let s = ec_sign(c, &d, &digest, jws).unwrap();
                assert!(ec_verify(c, &d, &digest, &s, jws).unwrap());
                assert!(!ec_verify(c, &d, b"0123456789abcdef0123456789abcdef", &s, jws).unwrap());
            }
            assert_eq!(
                ec_verify(c, &d, &digest, b"junk", false).unwrap_err(),
                "supplied signature is invalid"
            );
            assert!(!ec_verify(c, &d, &digest, b"junk", true).unwrap());
            assert!(ec_public_pem(c, &d)
                .unwrap()
                .starts_with("-----BEGIN PUBLIC KEY-----\n"));
            assert!(!ec_sec1_der(c, &d).unwrap().is_empty());
        }
    }

    #[test]
    fn ed25519_rfc8032_vector() {
        // RFC 8032 test 1.
        let seed = hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
            .unwrap();
        let key = ed25519_from_seed(&seed).unwrap();
        assert_eq!(
            hex::encode(&key[32..]),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        let sig = ed25519_sign(&key, b"").unwrap();
        assert!(hex::encode(&sig).starts_with("e5564300c360ac72"));
        assert!(ed25519_verify(&key[32..], b"", &sig));
        assert!(!ed25519_verify(&key[32..], b"x", &sig));
    }
}
