//! The pure cryptography of the transit engine, with no storage and no request: the KDF
//! (HKDF-SHA256, as Vault's `hkdf_sha256`), the AEADs, the convergent nonce, Go's base64 and
//! its error texts, the `vault:v<N>:` envelope, hashes and HMACs by Vault's names, and the
//! DER/PEM shapes Vault exports. Every error is a `String` in Vault's wording; the callers
//! decide the status.

use aes_gcm::aead::{Aead as _, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Mac, SimpleHmac};
use zeroize::Zeroizing;

/// Vault's prefix template `vault:v{{version}}:`.
pub const PREFIX: &str = "vault:v";

/// Base64 (standard, padded) as Go's `StdEncoding.DecodeString`, with Go's error text.
pub fn b64d(s: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    // Go skips CR and LF anywhere in the input.
    let cleaned: std::borrow::Cow<'_, str> = if s.contains(['\r', '\n']) {
        s.chars().filter(|c| *c != '\r' && *c != '\n').collect()
    } else {
        s.into()
    };
    STANDARD
        .decode(cleaned.as_bytes())
        .map(Zeroizing::new)
        .map_err(|e| go_b64_error(&cleaned, e))
}

fn go_b64_error(s: &str, e: base64::DecodeError) -> String {
    let at = match e {
        base64::DecodeError::InvalidByte(i, _) | base64::DecodeError::InvalidLastSymbol(i, _) => i,
        // Go reports the start of the last, incomplete quantum.
        base64::DecodeError::InvalidLength(n) => {
            let full = n - n % 4;
            if n % 4 == 1 {
                full
            } else {
                n
            }
        }
        base64::DecodeError::InvalidPadding => s.find('=').unwrap_or(s.len()),
    };
    format!("illegal base64 data at input byte {at}")
}

pub fn b64e(b: &[u8]) -> String {
    STANDARD.encode(b)
}

pub fn b64url(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

pub fn b64url_d(s: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(s.as_bytes())
        .map_err(|e| go_b64_error(s, e))
}

/// `vault:v<ver>:<body>`.
pub fn envelope(ver: u64, body: &str) -> String {
    format!("{PREFIX}{ver}:{body}")
}

/// Splits `vault:v<N>:<rest>` as Vault does (`what` is "ciphertext" or "signature"); a
/// version Go's `strconv.Atoi` would read (a sign is allowed) is returned as is.
pub fn split_envelope<'a>(s: &'a str, what: &str) -> Result<(i64, &'a str), String> {
    let Some(rest) = s.strip_prefix(PREFIX) else {
        return Err(format!("invalid {what}: no prefix"));
    };
    let Some((v, body)) = rest.split_once(':') else {
        return Err(format!("invalid {what}: wrong number of fields"));
    };
    let ok = {
        let digits = v.strip_prefix(['+', '-']).unwrap_or(v);
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    };
    match v.parse::<i64>() {
        Ok(n) if ok => Ok((n, body)),
        _ => Err(format!(
            "invalid {what}: version number could not be decoded"
        )),
    }
}

/// HKDF-SHA256 (RFC 5869) with an empty salt: `len` bytes of key for `info` (Vault's
/// context). `len` is at most 255 × 32.
pub fn hkdf_sha256(ikm: &[u8], info: &[u8], len: usize) -> Result<Zeroizing<Vec<u8>>, String> {
    type H = SimpleHmac<sha2::Sha256>;
    if len > 255 * 32 {
        return Err("HKDF output too long".into());
    }
    let mut ext = <H as KeyInit>::new_from_slice(&[0u8; 32]).map_err(|e| e.to_string())?;
    ext.update(ikm);
    let prk = Zeroizing::new(ext.finalize().into_bytes().to_vec());
    let mut out = Zeroizing::new(Vec::with_capacity(len + 32));
    let mut prev: Zeroizing<Vec<u8>> = Zeroizing::new(Vec::new());
    let mut counter = 1u8;
    while out.len() < len {
        let mut m = <H as KeyInit>::new_from_slice(&prk).map_err(|e| e.to_string())?;
        m.update(&prev);
        m.update(info);
        m.update(&[counter]);
        prev = Zeroizing::new(m.finalize().into_bytes().to_vec());
        out.extend_from_slice(&prev);
        counter = counter.wrapping_add(1);
    }
    out.truncate(len);
    Ok(out)
}

/// An AEAD Vault offers, with its key length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aead {
    Aes128Gcm,
    Aes256Gcm,
    ChaCha20Poly1305,
}

pub const NONCE_LEN: usize = 12;

impl Aead {
    pub fn key_len(self) -> usize {
        match self {
            Aead::Aes128Gcm => 16,
            _ => 32,
        }
    }

    /// `nonce || ciphertext || tag`.
    pub fn seal(
        self,
        key: &[u8],
        nonce: &[u8; NONCE_LEN],
        plain: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, String> {
        let payload = Payload { msg: plain, aad };
        let ct = match self {
            Aead::Aes128Gcm => Aes128Gcm::new_from_slice(key)
                .map_err(|_| "invalid key length".to_string())?
                .encrypt(&Nonce::from(*nonce), payload)
                .map_err(|_| "encryption failed".to_string())?,
            Aead::Aes256Gcm => Aes256Gcm::new_from_slice(key)
                .map_err(|_| "invalid key length".to_string())?
                .encrypt(&Nonce::from(*nonce), payload)
                .map_err(|_| "encryption failed".to_string())?,
            Aead::ChaCha20Poly1305 => {
                use ring::aead;
                let k = aead::UnboundKey::new(&aead::CHACHA20_POLY1305, key)
                    .map_err(|_| "invalid key length".to_string())?;
                let k = aead::LessSafeKey::new(k);
                let mut buf = plain.to_vec();
                k.seal_in_place_append_tag(
                    aead::Nonce::assume_unique_for_key(*nonce),
                    aead::Aad::from(aad),
                    &mut buf,
                )
                .map_err(|_| "encryption failed".to_string())?;
                buf
            }
        };
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens `nonce || ciphertext || tag`, with Vault's error texts.
    pub fn open(self, key: &[u8], data: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
        let Some((nonce, ct)) = data.split_first_chunk::<NONCE_LEN>() else {
            return Err("invalid ciphertext length".into());
        };
        let fail = || match self {
            Aead::ChaCha20Poly1305 => "chacha20poly1305: message authentication failed".to_string(),
            _ => "cipher: message authentication failed".to_string(),
        };
        let payload = Payload { msg: ct, aad };
        let plain = match self {
            Aead::Aes128Gcm => Aes128Gcm::new_from_slice(key)
                .map_err(|_| "invalid key length".to_string())?
                .decrypt(&Nonce::from(*nonce), payload)
                .map_err(|_| fail())?,
            Aead::Aes256Gcm => Aes256Gcm::new_from_slice(key)
                .map_err(|_| "invalid key length".to_string())?
                .decrypt(&Nonce::from(*nonce), payload)
                .map_err(|_| fail())?,
            Aead::ChaCha20Poly1305 => {
                use ring::aead;
                let k = aead::UnboundKey::new(&aead::CHACHA20_POLY1305, key)
                    .map_err(|_| "invalid key length".to_string())?;
                let k = aead::LessSafeKey::new(k);
                let mut buf = Zeroizing::new(ct.to_vec());
                let n = k
                    .open_in_place(
                        aead::Nonce::assume_unique_for_key(*nonce),
                        aead::Aad::from(aad),
                        &mut buf,
                    )
                    .map_err(|_| fail())?
                    .len();
                buf.truncate(n);
                return Ok(buf);
            }
        };
        Ok(Zeroizing::new(plain))
    }
}

/// The nonce of convergent encryption (Vault's version 3): the first 12 bytes of
/// HMAC-SHA256 of the plaintext under the second half of the derived key.
pub fn convergent_nonce(hmac_key: &[u8], plain: &[u8]) -> Result<[u8; NONCE_LEN], String> {
    let mut m = <SimpleHmac<sha2::Sha256> as KeyInit>::new_from_slice(hmac_key)
        .map_err(|e| e.to_string())?;
    m.update(plain);
    let sum = m.finalize().into_bytes();
    let mut n = [0u8; NONCE_LEN];
    n.copy_from_slice(&sum[..NONCE_LEN]);
    Ok(n)
}

/// A hash Vault names (`sha2-256`, `sha3-512`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashAlg {
    None,
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
    Sha3_224,
    Sha3_256,
    Sha3_384,
    Sha3_512,
}

impl HashAlg {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" => HashAlg::None,
            "sha1" => HashAlg::Sha1,
            "sha2-224" => HashAlg::Sha224,
            "sha2-256" => HashAlg::Sha256,
            "sha2-384" => HashAlg::Sha384,
            "sha2-512" => HashAlg::Sha512,
            "sha3-224" => HashAlg::Sha3_224,
            "sha3-256" => HashAlg::Sha3_256,
            "sha3-384" => HashAlg::Sha3_384,
            "sha3-512" => HashAlg::Sha3_512,
            _ => return None,
        })
    }

    /// The digest of `data` (`None` for `none`).
    pub fn digest(self, data: &[u8]) -> Option<Vec<u8>> {
        use sha2::Digest;
        Some(match self {
            HashAlg::None => return None,
            HashAlg::Sha1 => sha1::Sha1::digest(data).to_vec(),
            HashAlg::Sha224 => sha2::Sha224::digest(data).to_vec(),
            HashAlg::Sha256 => sha2::Sha256::digest(data).to_vec(),
            HashAlg::Sha384 => sha2::Sha384::digest(data).to_vec(),
            HashAlg::Sha512 => sha2::Sha512::digest(data).to_vec(),
            HashAlg::Sha3_224 => sha3::Sha3_224::digest(data).to_vec(),
            HashAlg::Sha3_256 => sha3::Sha3_256::digest(data).to_vec(),
            HashAlg::Sha3_384 => sha3::Sha3_384::digest(data).to_vec(),
            HashAlg::Sha3_512 => sha3::Sha3_512::digest(data).to_vec(),
        })
    }

    /// HMAC of `data` under `key` (`None` for `none`).
    pub fn hmac(self, key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
        fn mac<D>(key: &[u8], data: &[u8]) -> Option<Vec<u8>>
        where
            D: sha2::Digest + hmac::digest::block_api::BlockSizeUser,
        {
            let mut m = <SimpleHmac<D> as KeyInit>::new_from_slice(key).ok()?;
            m.update(data);
            Some(m.finalize().into_bytes().to_vec())
        }
        match self {
            HashAlg::None => None,
            HashAlg::Sha1 => mac::<sha1::Sha1>(key, data),
            HashAlg::Sha224 => mac::<sha2::Sha224>(key, data),
            HashAlg::Sha256 => mac::<sha2::Sha256>(key, data),
            HashAlg::Sha384 => mac::<sha2::Sha384>(key, data),
            HashAlg::Sha512 => mac::<sha2::Sha512>(key, data),
            HashAlg::Sha3_224 => mac::<sha3::Sha3_224>(key, data),
            HashAlg::Sha3_256 => mac::<sha3::Sha3_256>(key, data),
            HashAlg::Sha3_384 => mac::<sha3::Sha3_384>(key, data),
            HashAlg::Sha3_512 => mac::<sha3::Sha3_512>(key, data),
        }
    }
}

/// Equality that takes the same time whatever the first difference (lengths are public).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// PEM with 64-character lines, as Go's `pem.EncodeToMemory` (ends in a newline).
pub fn pem(label: &str, der: &[u8]) -> String {
    let b = b64e(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Ed25519 PKCS#8 v1 `PrivateKeyInfo` for a seed (RFC 8410), as Go marshals it.
pub fn ed25519_pkcs8(seed: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut v = Zeroizing::new(hex_bytes("302e020100300506032b657004220420"));
    v.extend_from_slice(seed);
    v
}

/// Ed25519 `SubjectPublicKeyInfo`.
pub fn ed25519_spki(public: &[u8]) -> Vec<u8> {
    let mut v = hex_bytes("302a300506032b6570032100");
    v.extend_from_slice(public);
    v
}

fn hex_bytes(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hkdf_matches_rfc5869_without_salt() {
        // RFC 5869 test case 3 (zero-length salt and info).
        let ikm = [0x0bu8; 22];
        let okm = hkdf_sha256(&ikm, b"", 42).unwrap();
        assert_eq!(
            hex::encode(&*okm),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
        );
    }

    #[test]
    fn envelope_parsing_in_vaults_words() {
        assert_eq!(split_envelope("vault:v3:abc", "ciphertext"), Ok((3, "abc")));
        assert_eq!(split_envelope("vault:v3:a:b", "ciphertext"), Ok((3, "a:b")));
        assert_eq!(
            split_envelope("vault:v3", "ciphertext").unwrap_err(),
            "invalid ciphertext: wrong number of fields"
        );
        assert_eq!(
            split_envelope("foo", "signature").unwrap_err(),
            "invalid signature: no prefix"
        );
        assert_eq!(
            split_envelope("vault:vx:a", "ciphertext").unwrap_err(),
            "invalid ciphertext: version number could not be decoded"
        );
        assert_eq!(split_envelope("vault:v-1:a", "ciphertext"), Ok((-1, "a")));
    }

    #[test]
    fn base64_errors_are_gos() {
        assert_eq!(
            b64d("!!").unwrap_err(),
            "illegal base64 data at input byte 0"
        );
        assert_eq!(b64d("aGk=").unwrap().as_slice(), b"hi");
        assert_eq!(b64d("aGk=\n").unwrap().as_slice(), b"hi");
        assert!(b64d("aGk").is_err());
        assert_eq!(b64d("").unwrap().len(), 0);
    }

    #[test]
    fn aeads_round_trip_and_refuse_tampering() {
        for a in [Aead::Aes128Gcm, Aead::Aes256Gcm, Aead::ChaCha20Poly1305] {
            let key = vec![7u8; a.key_len()];
            let nonce = [1u8; NONCE_LEN];
            let mut ct = a.seal(&key, &nonce, b"hello", b"ad").unwrap();
            assert_eq!(ct.len(), NONCE_LEN + 5 + 16);
            assert_eq!(&ct[..NONCE_LEN], &nonce);
            assert_eq!(a.open(&key, &ct, b"ad").unwrap().as_slice(), b"hello");
            assert!(a.open(&key, &ct, b"other").is_err());
            let last = ct.len() - 1;
            ct[last] ^= 1;
            assert!(a.open(&key, &ct, b"ad").is_err());
            assert_eq!(
                a.open(&key, &ct[..5], b"").unwrap_err(),
                "invalid ciphertext length"
            );
        }
    }

    #[test]
    fn aes_gcm_matches_a_known_vector() {
        // NIST GCM test case 3 (AES-128), truncated to the first block of plaintext.
        let key = hex::decode("feffe9928665731c6d6a8f9467308308").unwrap();
        let iv: [u8; 12] = hex::decode("cafebabefacedbaddecaf888")
            .unwrap()
            .try_into()
            .unwrap();
        let pt = hex::decode("d9313225f88406e5a55909c5aff5269a").unwrap();
        let out = Aead::Aes128Gcm.seal(&key, &iv, &pt, b"").unwrap();
        assert_eq!(
            hex::encode(&out[12..28]),
            "42831ec2217774244b7221b784d0d49c"
        );
    }

    #[test]
    fn hashes_and_hmacs_by_vault_names() {
        assert_eq!(
            hex::encode(
                HashAlg::parse("sha2-256")
                    .unwrap()
                    .digest(b"hello")
                    .unwrap()
            ),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(
            b64e(&HashAlg::Sha3_256.digest(b"hello").unwrap()),
            "Mzi+aU9QxfM4gUmGzfBoZFOoiLhPQk15KvS5ICOY85I="
        );
        // RFC 4231 test case 2.
        assert_eq!(
            hex::encode(
                HashAlg::Sha256
                    .hmac(b"Jefe", b"what do ya want for nothing?")
                    .unwrap()
            ),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(HashAlg::None.digest(b"x").is_none());
        assert!(HashAlg::parse("md5").is_none());
    }

    #[test]
    fn pem_lines_are_64_wide() {
        let p = pem("PUBLIC KEY", &[0u8; 91]);
        assert!(p.lines().all(|l| l.len() <= 64));
        assert!(p.ends_with("-----END PUBLIC KEY-----\n"));
    }
}
