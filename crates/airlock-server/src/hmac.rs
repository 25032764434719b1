//! The HMAC key behind the barrier that tokens, accessors and secret ids are stored under
//! (only their HMACs are stored). Set at unseal, forgotten at seal.

use std::sync::{Arc, RwLock};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{ApiError, ApiResult};

#[derive(Default)]
pub struct HmacKey {
    key: RwLock<Option<Arc<Zeroizing<Vec<u8>>>>>,
}

impl HmacKey {
    pub fn set(&self, k: Zeroizing<Vec<u8>>) {
        if let Ok(mut g) = self.key.write() {
            *g = Some(Arc::new(k));
        }
    }

    pub fn clear(&self) {
        if let Ok(mut g) = self.key.write() {
            *g = None;
        }
    }

    /// HMAC-SHA256 of `s`, hex; fails while sealed.
    pub fn hmac(&self, s: &str) -> ApiResult<String> {
        let key = self
            .key
            .read()
            .ok()
            .and_then(|k| k.clone())
            .ok_or_else(ApiError::sealed)?;
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&key).map_err(|e| ApiError::internal(&e))?;
        mac.update(s.as_bytes());
        Ok(hex::encode(mac.finalize().into_bytes()))
    }
}
