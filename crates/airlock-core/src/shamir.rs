//! Shamir secret sharing over GF(2^8), share-compatible with Vault/OpenBao.
//!
//! Field: GF(2^8) with the AES reduction polynomial x^8 + x^4 + x^3 + x + 1 (0x11b), the
//! same as Vault's `shamir` package. Share layout is Vault's too: `len(secret)` y-bytes
//! followed by one x-coordinate byte. x-coordinates are distinct, non-zero and drawn from a
//! random permutation of 1..=255. Arithmetic is branch-free on secret data (shift-and-add
//! multiplication, inversion by exponentiation), so no lookup tables are indexed by secrets.
//!
//! **1-of-1 mode.** Vault/OpenBao never call Shamir for a single share: at init with
//! `secret_shares = 1` the unseal key *is* the root key (no x byte), and unseal with
//! `secret_threshold = 1` uses the single key as given. [`split`] mirrors that: with
//! `parts == threshold == 1` it returns the secret itself as the only share. [`combine`]
//! always needs at least two shares (Vault's `Combine` rule); use [`recover`], which knows
//! the threshold, to handle both modes.

use std::fmt;

/// Why a split or combine failed. `Display` matches Vault's messages where it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShamirError {
    /// `parts cannot be less than threshold`
    PartsLessThanThreshold,
    /// `threshold must be at least 2` (only 1-of-1 may use a threshold of 1)
    ThresholdTooSmall,
    /// `cannot split an empty secret`
    EmptySecret,
    /// `less than two parts cannot be used to reconstruct the secret`
    TooFewParts,
    /// `parts must be at least two bytes`
    PartTooShort,
    /// `all parts must be the same length`
    LengthMismatch,
    /// `duplicate part detected`
    DuplicatePart,
    /// `invalid part: x-coordinate is zero` (never produced by a split)
    ZeroCoordinate,
}

impl fmt::Display for ShamirError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ShamirError::PartsLessThanThreshold => "parts cannot be less than threshold",
            ShamirError::ThresholdTooSmall => "threshold must be at least 2",
            ShamirError::EmptySecret => "cannot split an empty secret",
            ShamirError::TooFewParts => {
                "less than two parts cannot be used to reconstruct the secret"
            }
            ShamirError::PartTooShort => "parts must be at least two bytes",
            ShamirError::LengthMismatch => "all parts must be the same length",
            ShamirError::DuplicatePart => "duplicate part detected",
            ShamirError::ZeroCoordinate => "invalid part: x-coordinate is zero",
        })
    }
}

impl std::error::Error for ShamirError {}

/// Multiplication in GF(2^8) mod 0x11b, constant time.
fn mul(a: u8, b: u8) -> u8 {
    let mut r: u8 = 0;
    let mut a = a;
    let mut b = b;
    for _ in 0..8 {
        // Add a if the low bit of b is set.
        r ^= a & (b & 1).wrapping_neg();
        // a *= x, reducing by 0x1b when the top bit falls off.
        let carry = (a >> 7).wrapping_neg();
        a = (a << 1) ^ (carry & 0x1b);
        b >>= 1;
    }
    r
}

/// Multiplicative inverse (a^254); maps 0 to 0.
fn inv(a: u8) -> u8 {
    // 254 = 0b1111_1110: square-and-multiply with a fixed sequence.
    let mut result = 1u8;
    let mut base = a;
    let mut e = 254u8;
    for _ in 0..8 {
        let m = mul(result, base);
        let take = (e & 1).wrapping_neg();
        result = (m & take) | (result & !take);
        base = mul(base, base);
        e >>= 1;
    }
    result
}

/// Evaluates the polynomial with `coeffs` (constant term first) at `x` (Horner).
fn eval(coeffs: &[u8], x: u8) -> u8 {
    coeffs.iter().rev().fold(0u8, |acc, c| mul(acc, x) ^ c)
}

/// Draws a uniform value in `0..n` (n ≤ 256) from the byte source, by rejection.
fn uniform(n: usize, rng: &mut dyn FnMut(&mut [u8])) -> usize {
    let n = n.clamp(1, 256);
    let limit = 256 - (256 % n);
    let mut b = [0u8; 1];
    // The loop ends with probability 1; cap it so a broken rng cannot hang us.
    for _ in 0..1024 {
        rng(&mut b);
        let v = usize::from(b[0]);
        if v < limit {
            return v % n;
        }
    }
    usize::from(b[0]) % n
}

/// Splits `secret` into `parts` shares, any `threshold` of which recover it.
///
/// `rng` must fill its buffer with cryptographically secure random bytes. With
/// `parts == threshold == 1` the single share is the secret itself (see the module doc).
pub fn split(
    secret: &[u8],
    parts: u8,
    threshold: u8,
    rng: &mut dyn FnMut(&mut [u8]),
) -> Result<Vec<Vec<u8>>, ShamirError> {
    if parts < threshold {
        return Err(ShamirError::PartsLessThanThreshold);
    }
    if secret.is_empty() {
        return Err(ShamirError::EmptySecret);
    }
    if parts == 1 && threshold == 1 {
        return Ok(vec![secret.to_vec()]);
    }
    if threshold < 2 {
        return Err(ShamirError::ThresholdTooSmall);
    }

    // Random permutation of the x-coordinates 1..=255 (Fisher-Yates).
    let mut xs: Vec<u8> = (1..=255u8).collect();
    for i in (1..xs.len()).rev() {
        let j = uniform(i + 1, rng);
        xs.swap(i, j);
    }

    let parts = usize::from(parts);
    let mut out: Vec<Vec<u8>> = xs
        .iter()
        .take(parts)
        .map(|x| {
            let mut share = vec![0u8; secret.len() + 1];
            if let Some(last) = share.last_mut() {
                *last = *x;
            }
            share
        })
        .collect();

    let mut coeffs = vec![0u8; usize::from(threshold)];
    for (idx, byte) in secret.iter().enumerate() {
        if let Some((c0, rest)) = coeffs.split_first_mut() {
            *c0 = *byte;
            rng(rest);
        }
        for share in out.iter_mut() {
            let x = share.last().copied().unwrap_or(1);
            if let Some(y) = share.get_mut(idx) {
                *y = eval(&coeffs, x);
            }
        }
    }
    coeffs.iter_mut().for_each(|c| *c = 0);
    Ok(out)
}

/// Recombines shares produced by [`split`] with a threshold of at least 2.
///
/// Needs at least `threshold` shares to give the right answer; with fewer it returns a
/// wrong secret (Shamir cannot tell), so callers verify the result (Vault decrypts the
/// keyring with it).
pub fn combine(shares: &[Vec<u8>]) -> Result<Vec<u8>, ShamirError> {
    if shares.len() < 2 {
        return Err(ShamirError::TooFewParts);
    }
    let len = shares.first().map(Vec::len).unwrap_or(0);
    if len < 2 {
        return Err(ShamirError::PartTooShort);
    }
    if shares.iter().any(|s| s.len() != len) {
        return Err(ShamirError::LengthMismatch);
    }
    let xs: Vec<u8> = shares
        .iter()
        .map(|s| s.last().copied().unwrap_or(0))
        .collect();
    let mut seen = [false; 256];
    for &x in &xs {
        if x == 0 {
            return Err(ShamirError::ZeroCoordinate);
        }
        let slot = &mut seen[usize::from(x)];
        if *slot {
            return Err(ShamirError::DuplicatePart);
        }
        *slot = true;
    }

    // Lagrange basis polynomials evaluated at 0 depend only on the xs.
    let basis: Vec<u8> = xs
        .iter()
        .enumerate()
        .map(|(i, &xi)| {
            xs.iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .fold(1u8, |acc, (_, &xj)| mul(acc, mul(xj, inv(xi ^ xj))))
        })
        .collect();

    let mut secret = vec![0u8; len - 1];
    for (idx, out) in secret.iter_mut().enumerate() {
        *out = shares.iter().zip(&basis).fold(0u8, |acc, (s, b)| {
            acc ^ mul(s.get(idx).copied().unwrap_or(0), *b)
        });
    }
    Ok(secret)
}

/// Recovers the secret given the configured threshold: with a threshold of 1 the first
/// share is the secret itself (Vault's single-key mode); otherwise [`combine`].
pub fn recover(shares: &[Vec<u8>], threshold: u8) -> Result<Vec<u8>, ShamirError> {
    if threshold <= 1 {
        return match shares.first() {
            Some(s) if !s.is_empty() => Ok(s.clone()),
            Some(_) => Err(ShamirError::EmptySecret),
            None => Err(ShamirError::TooFewParts),
        };
    }
    combine(shares)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xorshift(seed: u64) -> impl FnMut(&mut [u8]) {
        let mut state = seed | 1;
        move |buf: &mut [u8]| {
            for b in buf.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *b = (state >> 24) as u8;
            }
        }
    }

    fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
        let mut out = Vec::new();
        for mask in 0u32..(1 << n) {
            if mask.count_ones() as usize == k {
                out.push((0..n).filter(|i| mask & (1 << i) != 0).collect());
            }
        }
        out
    }

    #[test]
    fn field_arithmetic_matches_aes_field() {
        // FIPS-197 section 4.2 example and a known inverse pair.
        assert_eq!(mul(0x57, 0x83), 0xc1);
        assert_eq!(mul(0x57, 0x13), 0xfe);
        assert_eq!(inv(0x53), 0xca);
        assert_eq!(inv(0), 0);
        for a in 1..=255u8 {
            assert_eq!(mul(a, inv(a)), 1, "a = {a}");
            assert_eq!(mul(a, 1), a);
            assert_eq!(mul(a, 0), 0);
        }
        for a in 0..=255u8 {
            for b in [0u8, 1, 2, 3, 0x80, 0xff] {
                assert_eq!(mul(a, b), mul(b, a));
            }
        }
    }

    #[test]
    fn every_k_subset_reconstructs_and_k_minus_1_does_not() {
        let mut rng = xorshift(42);
        let secret: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(37) ^ 0xa5).collect();
        for (n, k) in [(5u8, 3u8), (5, 2), (5, 5), (6, 4), (3, 2), (2, 2)] {
            let shares = split(&secret, n, k, &mut rng).unwrap();
            assert_eq!(shares.len(), usize::from(n));
            for s in &shares {
                assert_eq!(s.len(), secret.len() + 1);
                assert_ne!(*s.last().unwrap(), 0);
            }
            let mut xs: Vec<u8> = shares.iter().map(|s| *s.last().unwrap()).collect();
            xs.sort_unstable();
            xs.dedup();
            assert_eq!(xs.len(), usize::from(n), "x-coordinates must be distinct");
            for size in usize::from(k)..=usize::from(n) {
                for subset in subsets(usize::from(n), size) {
                    let picked: Vec<Vec<u8>> = subset.iter().map(|&i| shares[i].clone()).collect();
                    assert_eq!(combine(&picked).unwrap(), secret, "n={n} k={k} {subset:?}");
                }
            }
            if k > 2 {
                for subset in subsets(usize::from(n), usize::from(k) - 1) {
                    let picked: Vec<Vec<u8>> = subset.iter().map(|&i| shares[i].clone()).collect();
                    assert_ne!(combine(&picked).unwrap(), secret, "n={n} k={k} {subset:?}");
                }
            }
        }
    }

    #[test]
    fn random_round_trips() {
        let mut rng = xorshift(7);
        let mut pick = xorshift(99);
        for round in 0..200 {
            let mut b = [0u8; 4];
            pick(&mut b);
            let len = usize::from(b[0]) % 70 + 1;
            let n = b[1] % 20 + 2;
            let k = b[2] % (n - 1) + 2;
            let mut secret = vec![0u8; len];
            rng(&mut secret);
            let shares = split(&secret, n, k, &mut rng).unwrap();
            // Take the last k shares in reverse order.
            let picked: Vec<Vec<u8>> = shares.iter().rev().take(usize::from(k)).cloned().collect();
            assert_eq!(combine(&picked).unwrap(), secret, "round {round}");
            assert_eq!(recover(&picked, k).unwrap(), secret);
        }
    }

    #[test]
    fn max_parts() {
        let mut rng = xorshift(3);
        let shares = split(b"x", 255, 255, &mut rng).unwrap();
        assert_eq!(combine(&shares).unwrap(), b"x");
        let shares = split(b"hello", 255, 2, &mut rng).unwrap();
        assert_eq!(combine(&shares[100..102]).unwrap(), b"hello");
    }

    #[test]
    fn single_share_mode() {
        let mut rng = xorshift(1);
        let shares = split(b"root-key", 1, 1, &mut rng).unwrap();
        assert_eq!(shares, vec![b"root-key".to_vec()]);
        assert_eq!(recover(&shares, 1).unwrap(), b"root-key");
        assert_eq!(combine(&shares), Err(ShamirError::TooFewParts));
    }

    #[test]
    fn split_validation() {
        let mut rng = xorshift(1);
        assert_eq!(
            split(b"s", 2, 3, &mut rng),
            Err(ShamirError::PartsLessThanThreshold)
        );
        assert_eq!(
            split(b"s", 3, 1, &mut rng),
            Err(ShamirError::ThresholdTooSmall)
        );
        assert_eq!(
            split(b"s", 0, 0, &mut rng),
            Err(ShamirError::ThresholdTooSmall)
        );
        assert_eq!(split(b"", 3, 2, &mut rng), Err(ShamirError::EmptySecret));
        assert_eq!(split(b"", 1, 1, &mut rng), Err(ShamirError::EmptySecret));
        assert_eq!(
            ShamirError::PartsLessThanThreshold.to_string(),
            "parts cannot be less than threshold"
        );
    }

    #[test]
    fn combine_validation() {
        let mut rng = xorshift(5);
        let shares = split(b"secret", 3, 2, &mut rng).unwrap();
        assert_eq!(combine(&shares[..1]), Err(ShamirError::TooFewParts));
        assert_eq!(combine(&[]), Err(ShamirError::TooFewParts));
        assert_eq!(
            combine(&[shares[0].clone(), shares[0].clone()]),
            Err(ShamirError::DuplicatePart)
        );
        let mut short = shares[1].clone();
        short.remove(0);
        assert_eq!(
            combine(&[shares[0].clone(), short]),
            Err(ShamirError::LengthMismatch)
        );
        assert_eq!(combine(&[vec![1], vec![2]]), Err(ShamirError::PartTooShort));
        assert_eq!(
            combine(&[vec![1, 0], vec![2, 5]]),
            Err(ShamirError::ZeroCoordinate)
        );
        assert_eq!(recover(&[], 1), Err(ShamirError::TooFewParts));
    }

    #[test]
    fn deterministic_given_rng() {
        let a = split(b"abc", 4, 3, &mut xorshift(11)).unwrap();
        let b = split(b"abc", 4, 3, &mut xorshift(11)).unwrap();
        assert_eq!(a, b);
        let c = split(b"abc", 4, 3, &mut xorshift(12)).unwrap();
        assert_ne!(a, c);
    }
}
