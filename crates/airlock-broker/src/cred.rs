//! Proxy credentials: what a client must present (`Proxy-Authorization: Basic agent:cred`)
//! before the broker does anything for it, so another local process cannot spend an agent's
//! credentials.
//!
//! A credential is `<expiry unix seconds>.<HMAC-SHA256(key, agent|expiry) as hex>`, bound to
//! one agent name. `broker run` keys it with a random per-run key held in memory; `broker
//! serve` keys it with a key kept encrypted in Airlock, so Airlock can mint credentials that
//! the broker verifies without a per-request lookup.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

pub struct CredKey(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for CredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredKey(<redacted>)")
    }
}

impl CredKey {
    pub fn new(key: Vec<u8>) -> Self {
        CredKey(Zeroizing::new(key))
    }

    pub fn random() -> Self {
        let mut k = vec![0u8; 32];
        rand::fill(&mut k[..]);
        CredKey(Zeroizing::new(k))
    }

    fn mac(&self, agent: &str, expiry: u64) -> Option<HmacSha256> {
        let mut m = HmacSha256::new_from_slice(&self.0).ok()?;
        m.update(agent.as_bytes());
        m.update(b"|");
        m.update(expiry.to_string().as_bytes());
        Some(m)
    }

    /// Mints a credential for `agent` valid until `expiry` (unix seconds).
    pub fn mint(&self, agent: &str, expiry: u64) -> Zeroizing<String> {
        let tag = self
            .mac(agent, expiry)
            .map(|m| hex::encode(m.finalize().into_bytes()))
            .unwrap_or_default();
        Zeroizing::new(format!("{expiry}.{tag}"))
    }

    /// Checks a `Proxy-Authorization` header value at time `now`; returns the agent name.
    pub fn verify_header(&self, header: &[u8], now: u64) -> Result<String, &'static str> {
        let v = std::str::from_utf8(header).map_err(|_| "malformed credentials")?;
        let b64 = v
            .get(..6)
            .filter(|p| p.eq_ignore_ascii_case("basic "))
            .and_then(|_| v.get(6..))
            .ok_or("Basic proxy credentials required")?;
        let raw = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|_| "malformed credentials")?,
        );
        let s = std::str::from_utf8(&raw).map_err(|_| "malformed credentials")?;
        let (agent, cred) = s.split_once(':').ok_or("malformed credentials")?;
        self.verify(agent, cred, now)?;
        Ok(agent.to_string())
    }

    pub fn verify(&self, agent: &str, cred: &str, now: u64) -> Result<(), &'static str> {
        let (exp, tag) = cred.split_once('.').ok_or("malformed credentials")?;
        let expiry: u64 = exp.parse().map_err(|_| "malformed credentials")?;
        let tag = hex::decode(tag).map_err(|_| "malformed credentials")?;
        let m = self.mac(agent, expiry).ok_or("invalid credentials")?;
        m.verify_slice(&tag).map_err(|_| "invalid credentials")?;
        if expiry <= now {
            return Err("expired credentials");
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn header(agent: &str, cred: &str) -> Vec<u8> {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{agent}:{cred}"))
        )
        .into_bytes()
    }

    #[test]
    fn mint_verify_and_reject() {
        let k = CredKey::random();
        let c = k.mint("voice", 1000);
        assert_eq!(k.verify_header(&header("voice", &c), 999).unwrap(), "voice");
        assert_eq!(
            k.verify_header(&header("voice", &c), 1000),
            Err("expired credentials")
        );
        assert_eq!(
            k.verify_header(&header("other", &c), 1),
            Err("invalid credentials")
        );
        let forged = c.replace("1000.", "9999.");
        assert_eq!(
            k.verify_header(&header("voice", &forged), 1),
            Err("invalid credentials")
        );
        assert!(CredKey::random()
            .verify_header(&header("voice", &c), 1)
            .is_err());
        assert!(k.verify_header(b"Bearer x", 1).is_err());
        assert!(k.verify_header(b"Basic !!!", 1).is_err());
        assert!(format!("{k:?}").contains("redacted"));
    }
}
