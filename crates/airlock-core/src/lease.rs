//! Lease and TTL arithmetic, with time as a parameter (Unix seconds).
//!
//! A lease is issued with a TTL and may be renewed up to a hard end: the earliest of the
//! role's `max_ttl` from issue, the mount/system maximum from issue, and the owning token's
//! expiry (a lease never outlives its token). Renewal asks for an increment; what is granted
//! is capped at the hard end, with Vault's warning text when capping happened.

use crate::duration::format_go_duration;

/// The limits that bound one lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// TTL when none is requested (seconds, > 0).
    pub default_ttl: u64,
    /// Maximum lifetime from issue (seconds, > 0).
    pub max_ttl: u64,
    /// Expiry of the owning token, if it has one.
    pub token_expiry: Option<i64>,
}

/// The outcome of an issue or renewal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Seconds from `now` until the lease ends (0 = ends now).
    pub ttl: u64,
    pub expires_at: i64,
    pub warning: Option<String>,
}

/// The hard end of a lease issued at `issued_at`.
pub fn hard_end(issued_at: i64, limits: &Limits) -> i64 {
    let by_max = issued_at.saturating_add(limits.max_ttl as i64);
    match limits.token_expiry {
        Some(t) => by_max.min(t),
        None => by_max,
    }
}

/// Vault prints durations without trailing zero units in these warnings ("10h", "1h59m58s").
pub fn short_duration(secs: u64) -> String {
    let s = format_go_duration(secs);
    let s = s.strip_suffix("m0s").map(|x| format!("{x}m")).unwrap_or(s);
    match s.strip_suffix("h0m") {
        Some(x) => format!("{x}h"),
        None => s,
    }
}

fn grant(issued_at: i64, now: i64, requested: u64, limits: &Limits) -> Grant {
    let end = hard_end(issued_at, limits);
    let remaining = (end - now).max(0) as u64;
    if requested > remaining {
        Grant {
            ttl: remaining,
            expires_at: now + remaining as i64,
            warning: Some(format!(
                "TTL of \"{}\" exceeded the effective max_ttl of \"{}\"; TTL value is capped accordingly",
                short_duration(requested),
                short_duration(remaining)
            )),
        }
    } else {
        Grant {
            ttl: requested,
            expires_at: now + requested as i64,
            warning: None,
        }
    }
}

/// A new lease at `now`. `requested` 0 means the default TTL.
pub fn issue(now: i64, requested: u64, limits: &Limits) -> Grant {
    let want = if requested == 0 {
        limits.default_ttl
    } else {
        requested
    };
    grant(now, now, want, limits)
}

/// Renewing a lease issued at `issued_at`. `increment` 0 means the default TTL.
pub fn renew(issued_at: i64, now: i64, increment: u64, limits: &Limits) -> Grant {
    let want = if increment == 0 {
        limits.default_ttl
    } else {
        increment
    };
    grant(issued_at, now, want, limits)
}

/// Whether a lease that ends at `expires_at` is over at `now`.
pub fn is_expired(expires_at: i64, now: i64) -> bool {
    expires_at <= now
}

/// Delay before retry `attempt` (0-based) of a failed revocation: exponential from 1 s,
/// capped at 5 minutes.
pub fn revoke_backoff(attempt: u32) -> u64 {
    1u64.checked_shl(attempt.min(16))
        .unwrap_or(u64::MAX)
        .min(300)
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits {
        default_ttl: 3600,
        max_ttl: 86_400,
        token_expiry: None,
    };

    #[test]
    fn issue_uses_default_and_caps_at_max() {
        assert_eq!(issue(1000, 0, &L).ttl, 3600);
        let g = issue(1000, 100 * 3600, &L);
        assert_eq!(g.ttl, 86_400);
        assert_eq!(
            g.warning.as_deref(),
            Some("TTL of \"100h\" exceeded the effective max_ttl of \"24h\"; TTL value is capped accordingly")
        );
    }

    #[test]
    fn renew_is_capped_by_max_from_issue() {
        let g = renew(0, 86_400 - 2, 3600, &L);
        assert_eq!(g.ttl, 2);
        assert_eq!(g.expires_at, 86_400);
        assert!(g.warning.is_some());
        let g = renew(0, 86_400 + 5, 3600, &L);
        assert_eq!(g.ttl, 0);
        assert!(is_expired(g.expires_at, 86_400 + 5));
    }

    #[test]
    fn lease_never_outlives_its_token() {
        let l = Limits {
            token_expiry: Some(1800),
            ..L
        };
        let g = issue(0, 0, &l);
        assert_eq!((g.ttl, g.expires_at), (1800, 1800));
        assert_eq!(renew(0, 1000, 3600, &l).ttl, 800);
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(revoke_backoff(0), 1);
        assert_eq!(revoke_backoff(3), 8);
        assert_eq!(revoke_backoff(20), 300);
    }
}
