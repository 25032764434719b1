//! Token and identifier formats.
//!
//! Service tokens look like `alt_` + 32 base62 characters + a 6-character base62 CRC-32 of
//! the random part: a recognisable prefix and a checksum let secret scanners match Airlock
//! tokens without false positives, and let the server reject mistyped tokens without a
//! storage look-up. Randomness is passed in, so these functions stay pure.

/// Prefix of every service token Airlock mints.
pub const TOKEN_PREFIX: &str = "alt_";
const RANDOM_LEN: usize = 32;
const CHECK_LEN: usize = 6;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Maps random bytes onto base62 characters (rejection sampling: unbiased). `rand` must hold
/// at least `2 * len` bytes; missing characters are filled deterministically from the rest.
pub fn base62(rand: &[u8], len: usize) -> String {
    let mut out = String::with_capacity(len);
    for b in rand.iter() {
        if out.len() == len {
            break;
        }
        let v = (b & 0x3F) as usize;
        if let Some(c) = ALPHABET.get(v) {
            out.push(*c as char);
        }
    }
    let mut i = 0usize;
    while out.len() < len {
        let b = rand.get(i % rand.len().max(1)).copied().unwrap_or(0) as usize;
        out.push(
            ALPHABET
                .get((b + i) % 62)
                .map(|c| *c as char)
                .unwrap_or('0'),
        );
        i += 1;
    }
    out
}

/// CRC-32 (IEEE), bitwise: small inputs only.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc: u32 = 0xFFFF_FFFF;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            let mask = (!(crc & 1)).wrapping_add(1);
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

fn encode_check(mut v: u32) -> String {
    let mut chars = [b'0'; CHECK_LEN];
    for c in chars.iter_mut().rev() {
        *c = ALPHABET.get((v % 62) as usize).copied().unwrap_or(b'0');
        v /= 62;
    }
    String::from_utf8_lossy(&chars).into_owned()
}

/// Builds a service token from at least 64 random bytes.
pub fn mint_token(rand: &[u8]) -> String {
    let body = base62(rand, RANDOM_LEN);
    let check = encode_check(crc32(body.as_bytes()));
    format!("{TOKEN_PREFIX}{body}{check}")
}

/// True when `token` has Airlock's shape and a valid checksum.
pub fn is_well_formed(token: &str) -> bool {
    let Some(rest) = token.strip_prefix(TOKEN_PREFIX) else {
        return false;
    };
    if rest.len() != RANDOM_LEN + CHECK_LEN || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return false;
    }
    let (body, check) = rest.split_at(RANDOM_LEN);
    encode_check(crc32(body.as_bytes())) == check
}

/// A UUID-shaped identifier (version 4 layout) from 16 random bytes.
pub fn uuid(r: &[u8; 16]) -> String {
    let mut b = *r;
    b[6] = (b[6] & 0x0F) | 0x40;
    b[8] = (b[8] & 0x3F) | 0x80;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut h = String::with_capacity(32);
    for x in b {
        h.push(HEX[(x >> 4) as usize] as char);
        h.push(HEX[(x & 0xF) as usize] as char);
    }
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_known_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn minted_tokens_validate_and_typos_do_not() {
        let rand: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37)).collect();
        let t = mint_token(&rand);
        assert!(t.starts_with("alt_"));
        assert_eq!(t.len(), 4 + 32 + 6);
        assert!(is_well_formed(&t));
        let mut typo = t.clone().into_bytes();
        typo[10] = if typo[10] == b'a' { b'b' } else { b'a' };
        assert!(!is_well_formed(&String::from_utf8(typo).unwrap()));
        assert!(!is_well_formed("root"));
    }

    #[test]
    fn uuid_shape() {
        let u = uuid(&[7u8; 16]);
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }
}
