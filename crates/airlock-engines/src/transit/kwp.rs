//! AES Key Wrap with Padding (RFC 5649, NIST SP 800-38F KWP) with a 256-bit key-encryption
//! key: the second half of Vault's BYOK blob (`CKM_RSA_AES_KEY_WRAP`). Built on the `aes`
//! block cipher already in the tree (AES-GCM's), so no key-wrap crate is added. Unwrapping
//! checks the integrity value, the length and the zero padding before returning anything.

use aes::cipher::consts::U16;
use aes::cipher::{Array, BlockCipherDecrypt, BlockCipherEncrypt, BlockSizeUser, KeyInit};
use zeroize::Zeroizing;

/// RFC 5649's alternative initial value (its high half).
const AIV: [u8; 4] = [0xa6, 0x59, 0x59, 0xa6];

fn cipher(kek: &[u8]) -> Result<aes::Aes256, String> {
    aes::Aes256::new_from_slice(kek).map_err(|_| "kwp: the wrapping key must be 256-bit".into())
}

fn half(b: &[u8]) -> [u8; 8] {
    let mut o = [0u8; 8];
    for (d, s) in o.iter_mut().zip(b) {
        *d = *s;
    }
    o
}

/// A 128-bit block cipher (AES with any key size: RFC 5649's vectors use AES-192).
pub trait Block16:
    BlockCipherEncrypt + BlockCipherDecrypt + BlockSizeUser<BlockSize = U16>
{
}
impl<C: BlockCipherEncrypt + BlockCipherDecrypt + BlockSizeUser<BlockSize = U16>> Block16 for C {}

/// Wraps `key` (1 byte to 2^32 − 1 bytes) under a 256-bit KEK.
pub fn wrap(kek: &[u8], key: &[u8]) -> Result<Vec<u8>, String> {
    wrap_with(&cipher(kek)?, key)
}

/// Unwraps under a 256-bit KEK; any failure is the one error (no oracle on which check
/// failed).
pub fn unwrap(kek: &[u8], wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    unwrap_with(&cipher(kek)?, wrapped)
}

pub fn wrap_with<C: Block16>(c: &C, key: &[u8]) -> Result<Vec<u8>, String> {
    let mli = u32::try_from(key.len())
        .ok()
        .filter(|n| *n > 0)
        .ok_or("kwp: bad key length")?;
    let mut a = [0u8; 8];
    a[..4].copy_from_slice(&AIV);
    a[4..].copy_from_slice(&mli.to_be_bytes());
    let mut padded = Zeroizing::new(key.to_vec());
    padded.resize(key.len().div_ceil(8) * 8, 0);
    let n = padded.len() / 8;
    if n == 1 {
        let mut b = Array::from([0u8; 16]);
        b[..8].copy_from_slice(&a);
        b[8..].copy_from_slice(&padded);
        c.encrypt_block(&mut b);
        return Ok(b.to_vec());
    }
    let mut r: Vec<[u8; 8]> = padded.chunks(8).map(half).collect();
    for j in 0..6u64 {
        for (i, ri) in r.iter_mut().enumerate() {
            let mut b = Array::from([0u8; 16]);
            b[..8].copy_from_slice(&a);
            b[8..].copy_from_slice(ri);
            c.encrypt_block(&mut b);
            let t = (n as u64) * j + i as u64 + 1;
            a = (u64::from_be_bytes(half(&b[..8])) ^ t).to_be_bytes();
            *ri = half(&b[8..]);
        }
    }
    let mut out = a.to_vec();
    for ri in &r {
        out.extend_from_slice(ri);
    }
    Ok(out)
}

pub fn unwrap_with<C: Block16>(c: &C, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    const BAD: &str = "kwp: the wrapped key does not unwrap with this key (integrity check failed)";
    if wrapped.len() < 16 || !wrapped.len().is_multiple_of(8) {
        return Err("kwp: the wrapped key has an invalid length".into());
    }
    let n = wrapped.len() / 8 - 1;
    let mut a;
    let mut r: Zeroizing<Vec<u8>>;
    if n == 1 {
        let mut b = Array::from([0u8; 16]);
        b.copy_from_slice(wrapped);
        c.decrypt_block(&mut b);
        a = half(&b[..8]);
        r = Zeroizing::new(b[8..].to_vec());
        b.fill(0);
    } else {
        a = half(wrapped);
        r = Zeroizing::new(wrapped.get(8..).unwrap_or_default().to_vec());
        for j in (0..6u64).rev() {
            for i in (0..n).rev() {
                let t = (n as u64) * j + i as u64 + 1;
                let mut b = Array::from([0u8; 16]);
                b[..8].copy_from_slice(&(u64::from_be_bytes(a) ^ t).to_be_bytes());
                let ri = r.get_mut(i * 8..i * 8 + 8).ok_or(BAD)?;
                b[8..].copy_from_slice(ri);
                c.decrypt_block(&mut b);
                a = half(&b[..8]);
                ri.copy_from_slice(&b[8..]);
                b.fill(0);
            }
        }
    }
    let mli = u32::from_be_bytes(half(&a[4..])[..4].try_into().map_err(|_| BAD)?) as usize;
    let padded = n * 8;
    let pad_ok = r
        .get(mli.min(padded)..)
        .is_some_and(|p| p.iter().all(|b| *b == 0));
    if a[..4] != AIV || mli + 8 <= padded || mli > padded || !pad_ok {
        return Err(BAD.into());
    }
    r.truncate(mli);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every length class (one block, several, with and without padding) under a 256-bit
    /// KEK; a flipped bit, another KEK or a shortened blob never unwraps.
    #[test]
    fn round_trips_and_refuses_tampering() {
        let kek = [7u8; 32];
        for len in [1usize, 7, 8, 9, 16, 20, 32, 48, 100, 1218] {
            let key: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let w = wrap(&kek, &key).unwrap();
            assert_eq!(w.len(), len.div_ceil(8) * 8 + 8);
            assert_eq!(&unwrap(&kek, &w).unwrap()[..], &key[..]);
            let mut bad = w.clone();
            bad[3] ^= 1;
            assert!(unwrap(&kek, &bad).is_err());
            assert!(unwrap(&[8u8; 32], &w).is_err());
            assert!(unwrap(&kek, &w[..w.len() - 8]).is_err());
        }
        assert!(unwrap(&kek, &[0u8; 15]).is_err());
        assert!(unwrap(&kek, &[0u8; 20]).is_err());
    }

    /// RFC 5649 §6 (its KEK is 192-bit, so AES-192 under the same code).
    #[test]
    fn rfc5649_vectors() {
        let kek = hex::decode("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8").unwrap();
        let c = aes::Aes192::new_from_slice(&kek).unwrap();
        for (key, want) in [
            (
                "c37b7e6492584340bed12207808941155068f738",
                "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a",
            ),
            ("466f7250617369", "afbeb0f07dfbf5419200f2ccb50bb24f"),
        ] {
            let key = hex::decode(key).unwrap();
            let w = wrap_with(&c, &key).unwrap();
            assert_eq!(hex::encode(&w), want);
            assert_eq!(&unwrap_with(&c, &w).unwrap()[..], &key[..]);
        }
    }
}
