//! Login rate limits: token buckets per (mount, role or user, client address group), and per
//! address across a mount, so guessing passwords or secret ids is slow whatever the target.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use airlock_core::ratelimit::{Bucket, Limit};
use airlock_logical::MountEntry;
use sha2::Digest;

use crate::config::AuthLimits as AuthConfig;

/// Login rate buckets.
#[derive(Default)]
pub struct LoginLimiter {
    limiter: Mutex<HashMap<LimitKey, (Bucket, Bucket)>>,
}

/// (mount uuid, hash of the role/user, client address group). Fixed size whatever the
/// request carried.
type LimitKey = (String, [u8; 16], Option<IpAddr>);

/// Most buckets kept; beyond it (after dropping idle ones) the table starts over.
const MAX_BUCKETS: usize = 200_000;

/// The address a limit applies to: IPv4 as is, IPv6 by /64 (one host usually owns a /64).
fn addr_group(ip: Option<IpAddr>) -> Option<IpAddr> {
    match ip? {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Some(IpAddr::V4(v4)),
            None => {
                let b = u128::from(v6) & (u128::MAX << 64);
                Some(IpAddr::V6(std::net::Ipv6Addr::from(b)))
            }
        },
        v4 => Some(v4),
    }
}

fn who_hash(who: &str) -> [u8; 16] {
    let capped: String = who.trim().to_lowercase().chars().take(512).collect();
    let d = sha2::Sha256::digest(capped.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

/// The keys one login attempt counts against: its (role or user, address) and the address
/// across every role of the mount (so guessing many usernames is limited too).
pub struct Attempt {
    keys: [LimitKey; 2],
}

impl LoginLimiter {
    pub fn clear(&self) {
        if let Ok(mut l) = self.limiter.lock() {
            l.clear();
        }
    }

    fn limits(a: &AuthConfig) -> (Limit, Limit) {
        (
            Limit {
                rate: a.login_rate,
                burst: a.login_burst,
            },
            Limit {
                rate: a.failed_login_rate,
                burst: a.failed_login_burst,
            },
        )
    }

    /// Failures from one address across every role/user of a mount: five times the
    /// per-role allowance, so one user's typos do not lock out a whole NAT.
    fn address_limit(failed: Limit) -> Limit {
        Limit {
            rate: failed.rate * 5.0,
            burst: failed.burst * 5.0,
        }
    }

    fn limit_for(k: &LimitKey, failed: Limit) -> Limit {
        if k.1 == [0u8; 16] {
            Self::address_limit(failed)
        } else {
            failed
        }
    }

    pub fn attempt(mount: &MountEntry, who: &str, ip: Option<IpAddr>) -> Attempt {
        let g = addr_group(ip);
        Attempt {
            keys: [
                (mount.uuid.clone(), who_hash(who), g),
                (mount.uuid.clone(), [0u8; 16], g),
            ],
        }
    }

    /// Admits one attempt, taking a token from every bucket it counts against — a failed
    /// token too, given back by [`Self::succeeded`], so parallel guesses cannot all slip
    /// through on one remaining token. False when any bucket is empty.
    pub fn admit(&self, cfg: &AuthConfig, a: &Attempt) -> bool {
        let (all, failed) = Self::limits(cfg);
        if all.unlimited() && failed.unlimited() {
            return true;
        }
        let now = mono_secs();
        let Ok(mut m) = self.limiter.lock() else {
            return false;
        };
        if m.len() > MAX_BUCKETS {
            m.retain(|k, (a, f)| !(a.idle(all, now) && f.idle(Self::limit_for(k, failed), now)));
            if m.len() > MAX_BUCKETS {
                m.clear();
            }
        }
        // The per-role bucket counts every attempt; the address-wide one only failures.
        let wide = Self::address_limit(failed);
        let ok = {
            let (a0, f0) = m
                .entry(a.keys[0].clone())
                .or_insert_with(|| (Bucket::full(all, now), Bucket::full(failed, now)));
            f0.has(failed, now) && a0.has(all, now)
        } && {
            let (_, f1) = m
                .entry(a.keys[1].clone())
                .or_insert_with(|| (Bucket::full(all, now), Bucket::full(wide, now)));
            f1.has(wide, now)
        };
        if !ok {
            return false;
        }
        if let Some((a0, f0)) = m.get_mut(&a.keys[0]) {
            a0.take(all, now);
            f0.take(failed, now);
        }
        if let Some((_, f1)) = m.get_mut(&a.keys[1]) {
            f1.take(wide, now);
        }
        true
    }

    /// The attempt succeeded: its failed tokens go back.
    pub fn succeeded(&self, cfg: &AuthConfig, a: &Attempt) {
        let (_, failed) = Self::limits(cfg);
        if failed.unlimited() {
            return;
        }
        if let Ok(mut m) = self.limiter.lock() {
            for k in &a.keys {
                if let Some((_, f)) = m.get_mut(k) {
                    f.give_back(Self::limit_for(k, failed));
                }
            }
        }
    }

    /// Drops buckets that are full again (called by housekeeping).
    pub fn sweep(&self, cfg: &AuthConfig) {
        let (all, failed) = Self::limits(cfg);
        let now = mono_secs();
        if let Ok(mut m) = self.limiter.lock() {
            m.retain(|k, (a, f)| !(a.idle(all, now) && f.idle(Self::limit_for(k, failed), now)));
        }
    }
}

fn mono_secs() -> f64 {
    use std::sync::OnceLock;
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs_f64()
}
