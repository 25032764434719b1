//! Backups of a whole store, restore, and copying one backend into another (migration).
//!
//! A backup is the physical rows as stored — every value still encrypted under the barrier
//! (and the root key under the unseal key), so a backup is no more sensitive than the
//! database it came from, and restoring it needs the same unseal keys. The file:
//!
//! ```text
//! airlock-backup\n
//! {"version":1,"cluster_id":…,"key_term":…,"created":…,"entries":N,"sha256":…}\n
//! N records: u32 key length, key, u32 value length, value (big-endian lengths)
//! ```
//!
//! `sha256` covers the records; a file whose records do not hash to it, do not number
//! `entries`, or do not end where the file ends is refused (truncated or corrupted).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::backend::{Backend, Op};
use crate::{Result, StoreError};

const MAGIC: &[u8] = b"airlock-backup\n";
pub const FORMAT_VERSION: u32 = 1;

/// What a backup says about itself.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Header {
    pub version: u32,
    pub cluster_id: String,
    pub key_term: u32,
    /// RFC 3339.
    pub created: String,
    pub entries: u64,
    pub sha256: String,
}

/// Rows of a store: (key, stored bytes), sorted by key.
pub type Rows = Vec<(String, Vec<u8>)>;

fn records(rows: &Rows) -> Vec<u8> {
    let mut out = Vec::with_capacity(rows.iter().map(|(k, v)| 8 + k.len() + v.len()).sum());
    for (k, v) in rows {
        out.extend_from_slice(&(k.len() as u32).to_be_bytes());
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(&(v.len() as u32).to_be_bytes());
        out.extend_from_slice(v);
    }
    out
}

/// SHA-256 (hex) of the rows as a backup encodes them: the same rows give the same
/// checksum whatever backend they were read from.
pub fn checksum(rows: &Rows) -> String {
    hex::encode(Sha256::digest(records(rows)))
}

/// Encodes a backup of `rows`.
pub fn encode(rows: &Rows, cluster_id: &str, key_term: u32, created: &str) -> Vec<u8> {
    let body = records(rows);
    let header = Header {
        version: FORMAT_VERSION,
        cluster_id: cluster_id.to_string(),
        key_term,
        created: created.to_string(),
        entries: rows.len() as u64,
        sha256: hex::encode(Sha256::digest(&body)),
    };
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&serde_json::to_vec(&header).unwrap_or_default());
    out.push(b'\n');
    out.extend_from_slice(&body);
    out
}

fn bad(msg: &str) -> StoreError {
    StoreError::Corrupt(format!("not a valid Airlock backup: {msg}"))
}

/// Decodes and verifies a backup.
pub fn decode(b: &[u8]) -> Result<(Header, Rows)> {
    let rest = b.strip_prefix(MAGIC).ok_or_else(|| bad("missing header"))?;
    let nl = rest
        .iter()
        .position(|c| *c == b'\n')
        .ok_or_else(|| bad("truncated header"))?;
    let header: Header =
        serde_json::from_slice(&rest[..nl]).map_err(|_| bad("malformed header"))?;
    if header.version != FORMAT_VERSION {
        return Err(bad(&format!(
            "format version {} is not supported",
            header.version
        )));
    }
    let body = &rest[nl + 1..];
    if hex::encode(Sha256::digest(body)) != header.sha256 {
        return Err(bad("checksum mismatch (truncated or corrupted)"));
    }
    let mut rows = Vec::new();
    let mut p = body;
    let take = |p: &mut &[u8], n: usize| -> Result<Vec<u8>> {
        if p.len() < n {
            return Err(bad("truncated record"));
        }
        let (a, b) = p.split_at(n);
        *p = b;
        Ok(a.to_vec())
    };
    let len = |p: &mut &[u8]| -> Result<usize> {
        let b = take(p, 4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    while !p.is_empty() {
        let kl = len(&mut p)?;
        let k = String::from_utf8(take(&mut p, kl)?).map_err(|_| bad("a key is not UTF-8"))?;
        let vl = len(&mut p)?;
        let v = take(&mut p, vl)?;
        rows.push((k, v));
    }
    if rows.len() as u64 != header.entries {
        return Err(bad("entry count mismatch"));
    }
    if rows.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err(bad("records out of order"));
    }
    Ok((header, rows))
}

/// Replaces the whole content of `backend` with `rows`, atomically (one batch). Without
/// `force`, only into an empty store.
pub async fn restore(backend: &dyn Backend, rows: &Rows, force: bool) -> Result<()> {
    let existing = backend.scan("").await?;
    if !existing.is_empty() && !force {
        return Err(StoreError::Backend(format!(
            "the store is not empty ({} entries): a restore replaces everything in it; force it to proceed",
            existing.len()
        )));
    }
    let keep: std::collections::HashSet<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
    let mut ops: Vec<Op> = existing
        .iter()
        .filter(|k| !keep.contains(k.as_str()))
        .map(|k| Op::Delete(k.clone()))
        .collect();
    ops.extend(rows.iter().map(|(k, v)| Op::Put(k.clone(), v.clone())));
    backend.commit(ops).await
}

/// Copies every row of `from` into the empty `to`, then reads `to` back and checks count
/// and checksum. Returns (entries, checksum).
pub async fn migrate(from: &dyn Backend, to: &dyn Backend) -> Result<(usize, String)> {
    let rows = from.snapshot().await?;
    if !to.scan("").await?.is_empty() {
        return Err(StoreError::Backend(
            "the destination store is not empty".into(),
        ));
    }
    for chunk in rows.chunks(1000) {
        to.commit(
            chunk
                .iter()
                .map(|(k, v)| Op::Put(k.clone(), v.clone()))
                .collect(),
        )
        .await?;
    }
    let sum = checksum(&rows);
    let back = to.snapshot().await?;
    if back.len() != rows.len() || checksum(&back) != sum {
        return Err(StoreError::Corrupt(format!(
            "verification failed: {} entries read back of {}, or their checksum differs",
            back.len(),
            rows.len()
        )));
    }
    Ok((rows.len(), sum))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Rows {
        vec![
            ("a".into(), b"1".to_vec()),
            ("b/c".into(), vec![0, 255, 3]),
            ("z".into(), Vec::new()),
        ]
    }

    #[test]
    fn backups_round_trip_and_refuse_damage() {
        let b = encode(&rows(), "cid", 3, "2026-12-03T00:00:00Z");
        let (h, r) = decode(&b).unwrap();
        assert_eq!(r, rows());
        assert_eq!(
            (h.cluster_id.as_str(), h.key_term, h.entries),
            ("cid", 3, 3)
        );
        for cut in [1, 10, b.len() / 2, b.len() - 1] {
            assert!(decode(&b[..cut]).is_err(), "truncated at {cut} accepted");
        }
        let mut flipped = b.clone();
        let last = flipped.len() - 2;
        flipped[last] ^= 1;
        assert!(decode(&flipped).is_err(), "corrupted body accepted");
        let mut extra = b.clone();
        extra.push(0);
        assert!(decode(&extra).is_err());
        assert!(decode(b"not a backup").is_err());
    }
}
