//! Batch tokens (`type=batch`), as Vault defines them: never stored, the token itself
//! carries its entry, encrypted and authenticated (AES-256-GCM under a key derived from the
//! token HMAC key, which lives behind the barrier). They have no accessor, cannot be
//! renewed, revoked or used to create tokens, and have no cubbyhole. One with a parent stops
//! working when its parent is revoked or expires; leases created with it belong to that
//! parent (an orphan's leases simply expire).
//!
//! Format: `alb_` + base64url(version byte ‖ 12-byte nonce ‖ ciphertext ‖ tag), no padding.

use std::collections::BTreeMap;

use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::TokenEntry;
use crate::error::{ApiError, ApiResult};

/// Prefix of every batch token.
pub const PREFIX: &str = "alb_";
const VERSION: u8 = 1;
const AAD: &[u8] = b"airlock batch token v1";
/// What the key is derived with (an HMAC of this under the token key).
pub(super) const KEY_LABEL: &str = "airlock batch token key v1";
/// The longest batch token accepted (policies and metadata make them grow).
pub const MAX_LEN: usize = 8192;

/// The entry inside a batch token (short names: it travels in every request).
#[derive(Serialize, Deserialize)]
struct Claims {
    #[serde(rename = "p")]
    policies: Vec<String>,
    #[serde(rename = "m", default, skip_serializing_if = "BTreeMap::is_empty")]
    meta: BTreeMap<String, String>,
    #[serde(rename = "d")]
    display_name: String,
    #[serde(rename = "c")]
    creation_time: i64,
    #[serde(rename = "t")]
    creation_ttl: i64,
    #[serde(rename = "e")]
    expire_time: i64,
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    parent: Option<String>,
    #[serde(rename = "x")]
    path: String,
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    role: Option<String>,
    #[serde(rename = "i", default, skip_serializing_if = "String::is_empty")]
    entity_id: String,
    /// `token_bound_cidrs` of the login that minted it: enforced on every use.
    #[serde(rename = "b", default, skip_serializing_if = "Vec::is_empty")]
    bound_cidrs: Vec<String>,
}

fn key(raw: &[u8; 32]) -> ApiResult<LessSafeKey> {
    UnboundKey::new(&AES_256_GCM, raw)
        .map(LessSafeKey::new)
        .map_err(|_| ApiError::internal(&"batch token key"))
}

/// Seals `e` into a batch token. `e.expire_time` must be set (batch tokens always expire).
pub(super) fn seal(raw_key: &[u8; 32], e: &TokenEntry) -> ApiResult<Zeroizing<String>> {
    let claims = Claims {
        policies: e.policies.clone(),
        meta: e.meta.clone(),
        display_name: e.display_name.clone(),
        creation_time: e.creation_time,
        creation_ttl: e.creation_ttl,
        expire_time: e
            .expire_time
            .ok_or_else(|| ApiError::internal(&"batch token without expiry"))?,
        parent: e.parent.clone(),
        path: e.path.clone(),
        role: e.role.clone(),
        entity_id: e.entity_id.clone(),
        bound_cidrs: e.bound_cidrs.clone(),
    };
    let mut buf = Zeroizing::new(serde_json::to_vec(&claims).map_err(|e| ApiError::internal(&e))?);
    let nonce_bytes = airlock_logical::util::random_bytes::<NONCE_LEN>();
    let nonce = Nonce::assume_unique_for_key(nonce_bytes);
    let tag = key(raw_key)?
        .seal_in_place_separate_tag(nonce, Aad::from(AAD), &mut buf)
        .map_err(|_| ApiError::internal(&"sealing a batch token"))?;
    let mut out = Vec::with_capacity(1 + NONCE_LEN + buf.len() + tag.as_ref().len());
    out.push(VERSION);
    out.extend_from_slice(&nonce_bytes);
    out.extend_from_slice(&buf);
    out.extend_from_slice(tag.as_ref());
    let token = format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&out)
    );
    if token.len() > MAX_LEN {
        return Err(ApiError::bad_request(
            "batch token too large: use fewer policies or less metadata",
        ));
    }
    Ok(Zeroizing::new(token))
}

/// Opens a batch token: the entry it carries, or `None` for anything not sealed with this
/// key (tampered, truncated, another server's). Expiry and the parent are the caller's to
/// check.
pub(super) fn open(raw_key: &[u8; 32], token: &str, id_hash: String) -> Option<TokenEntry> {
    if token.len() > MAX_LEN {
        return None;
    }
    let body = token.strip_prefix(PREFIX)?;
    let raw = Zeroizing::new(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .ok()?,
    );
    let (&version, rest) = raw.split_first()?;
    if version != VERSION || rest.len() < NONCE_LEN + AES_256_GCM.tag_len() {
        return None;
    }
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut sealed = Zeroizing::new(sealed.to_vec());
    let plain = key(raw_key)
        .ok()?
        .open_in_place(nonce, Aad::from(AAD), &mut sealed)
        .ok()?;
    let c: Claims = serde_json::from_slice(plain).ok()?;
    Some(TokenEntry {
        id_hash,
        accessor: String::new(),
        orphan: c.parent.is_none(),
        parent: c.parent,
        policies: c.policies,
        meta: c.meta,
        display_name: c.display_name,
        num_uses: 0,
        creation_time: c.creation_time,
        creation_ttl: c.creation_ttl,
        expire_time: Some(c.expire_time),
        explicit_max_ttl: 0,
        period: 0,
        renewable: false,
        path: c.path,
        role: c.role,
        last_renewal: None,
        issue_nanos: c.creation_time as i128 * 1_000_000_000,
        period_from_role: false,
        role_max_ttl: 0,
        renew_ttl: 0,
        bound_cidrs: c.bound_cidrs,
        entity_id: c.entity_id,
        batch: true,
    })
}

impl super::TokenStore {
    /// The key batch tokens are sealed with (derived from the token HMAC key).
    pub(super) fn batch_key(&self) -> ApiResult<Zeroizing<[u8; 32]>> {
        let hex_key = Zeroizing::new(self.hmac(KEY_LABEL)?);
        let mut k = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(hex_key.as_bytes(), k.as_mut_slice())
            .map_err(|e| ApiError::internal(&e))?;
        Ok(k)
    }

    /// A batch token's entry, if it opens, has not expired, and its parent (if any) is
    /// still a valid token.
    pub(super) async fn lookup_batch(&self, token: &str) -> ApiResult<Option<TokenEntry>> {
        let Some(e) = open(&*self.batch_key()?, token, self.hmac(token)?) else {
            return Ok(None);
        };
        if e.expire_time
            .is_none_or(|x| x <= airlock_logical::util::now_unix())
        {
            return Ok(None);
        }
        if let Some(p) = &e.parent {
            let alive = self.get_entry(p).await?.is_some_and(|pe| {
                pe.num_uses >= 0
                    && pe
                        .expire_time
                        .is_none_or(|x| x > airlock_logical::util::now_unix())
            });
            if !alive {
                return Ok(None);
            }
        }
        Ok(Some(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> TokenEntry {
        TokenEntry {
            id_hash: String::new(),
            accessor: String::new(),
            parent: Some("parent-hash".into()),
            policies: vec!["default".into(), "dev".into()],
            meta: BTreeMap::from([("team".into(), "a".into())]),
            display_name: "token".into(),
            num_uses: 0,
            creation_time: 1_000,
            creation_ttl: 300,
            expire_time: Some(1_300),
            explicit_max_ttl: 0,
            period: 0,
            renewable: false,
            orphan: false,
            path: "auth/token/create".into(),
            role: None,
            last_renewal: None,
            issue_nanos: 0,
            period_from_role: false,
            role_max_ttl: 0,
            renew_ttl: 0,
            bound_cidrs: Vec::new(),
            entity_id: String::new(),
            batch: true,
        }
    }

    #[test]
    fn a_sealed_entry_opens_only_untampered_and_under_its_key() {
        let k = [7u8; 32];
        let t = seal(&k, &entry()).unwrap();
        assert!(t.starts_with(PREFIX));
        let e = open(&k, &t, "h".into()).unwrap();
        assert_eq!(
            (e.policies, e.expire_time, e.parent, e.accessor, e.batch),
            (
                vec!["default".to_string(), "dev".to_string()],
                Some(1_300),
                Some("parent-hash".to_string()),
                String::new(),
                true
            )
        );
        assert_eq!(e.meta["team"], "a");
        // Another key, any flipped character, a truncation, another prefix: nothing.
        assert!(open(&[8u8; 32], &t, "h".into()).is_none());
        for i in PREFIX.len()..t.len() {
            let mut b = t.as_bytes().to_vec();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let s = String::from_utf8(b).unwrap();
            assert!(open(&k, &s, "h".into()).is_none(), "flip at {i} accepted");
        }
        assert!(open(&k, &t[..t.len() - 4], "h".into()).is_none());
        assert!(open(&k, &t.replacen(PREFIX, "alt_", 1), "h".into()).is_none());
        // Two seals of one entry differ (random nonce).
        assert_ne!(*t, *seal(&k, &entry()).unwrap());
        // The token carries no plaintext of the entry.
        assert!(!t.contains("default") && !t.contains("team"));
    }
}
