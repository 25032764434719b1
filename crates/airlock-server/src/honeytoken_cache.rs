//! The registered honeytokens as last read, for the check of a presented token that is not
//! a token (`sys::broker::honeytoken_presented`); no I/O here.

use std::sync::Arc;

/// (name, value) of each registered honeytoken.
pub(crate) type Decoys = Arc<Vec<(String, String)>>;

/// The registered honeytokens, re-read at most every few seconds when an unknown token is
/// presented.
#[derive(Default)]
pub struct HoneytokenCache(std::sync::Mutex<Option<(std::time::Instant, Decoys)>>);

impl HoneytokenCache {
    pub(crate) fn fresh(&self) -> Option<Decoys> {
        let g = self.0.lock().ok()?;
        g.as_ref()
            .filter(|(t, _)| t.elapsed() < std::time::Duration::from_secs(5))
            .map(|(_, v)| v.clone())
    }

    pub(crate) fn set(&self, v: Decoys) {
        if let Ok(mut g) = self.0.lock() {
            *g = Some((std::time::Instant::now(), v));
        }
    }

    /// Forgets the list (it changed on this node).
    pub(crate) fn clear(&self) {
        if let Ok(mut g) = self.0.lock() {
            *g = None;
        }
    }
}
