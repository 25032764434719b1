//! When to renew, fetch again or log in again: pure arithmetic over a lease's TTL, tested
//! without a clock. The rules are the Vault agent's (consul-template's and the API
//! client's lifetime watcher), without their random jitter:
//!
//! - a renewable lease is renewed at 2/3 of its TTL, asking for its first TTL again;
//! - a renewal that comes back shorter than asked (the maximum TTL is near), a lease that
//!   cannot be renewed, and a failed renewal all end in a new secret: fetched again at 85%
//!   of what is left;
//! - a secret without a lease (KV) is fetched again every `static_secret_render_interval`
//!   (and sooner when the server pushes a change), a database static role when its
//!   password rotates, a certificate without a lease before it expires.

use std::time::Duration;

/// What to do next about a secret, and after how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Renew the lease.
    Renew(Duration),
    /// Fetch the secret again (a new lease, new credentials).
    Fetch(Duration),
}

/// What a response says about its lifetime.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lifetime {
    pub has_lease: bool,
    pub ttl: u64,
    pub renewable: bool,
    /// The TTL asked for at each renewal (the first TTL seen).
    pub increment: u64,
    /// A database static role's seconds until rotation (`rotation_period` with `ttl`).
    pub rotates_in: Option<u64>,
    /// A certificate's seconds until `expiration` (no lease).
    pub expires_in: Option<i64>,
}

fn fraction(secs: u64, f: f64) -> Duration {
    Duration::from_secs_f64(secs as f64 * f)
}

/// The next step for a secret just fetched or renewed.
pub fn plan(l: &Lifetime, static_interval: Duration) -> Next {
    if l.has_lease && l.ttl > 0 {
        if l.renewable && l.ttl >= l.increment {
            return Next::Renew(fraction(l.ttl, 2.0 / 3.0));
        }
        return Next::Fetch(fraction(l.ttl, 0.85));
    }
    if let Some(r) = l.rotates_in {
        return Next::Fetch(Duration::from_secs(r + 1));
    }
    if let Some(e) = l.expires_in {
        return Next::Fetch(fraction(e.max(0) as u64, 0.85));
    }
    if l.ttl > 0 {
        return Next::Fetch(fraction(l.ttl, 0.85).min(static_interval));
    }
    Next::Fetch(static_interval)
}

/// The next step for the agent's own token: renew at 2/3 of its TTL, or log in again at
/// 2/3 of what is left when it cannot be renewed (further). `None`: it never expires.
pub fn plan_token(ttl: u64, renewable: bool, increment: u64) -> Option<TokenStep> {
    if ttl == 0 {
        return None;
    }
    let at = fraction(ttl, 2.0 / 3.0);
    Some(if renewable && ttl >= increment {
        TokenStep::Renew(at)
    } else {
        TokenStep::Login(at)
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenStep {
    Renew(Duration),
    Login(Duration),
}

/// Exponential backoff with a cap: `min`, doubled per failure, at most `max`.
pub fn backoff(min: Duration, max: Duration, failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(20));
    min.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIVE_MIN: Duration = Duration::from_secs(300);

    fn leased(ttl: u64, renewable: bool, increment: u64) -> Lifetime {
        Lifetime {
            has_lease: true,
            ttl,
            renewable,
            increment,
            ..Lifetime::default()
        }
    }

    #[test]
    fn renewable_leases_renew_at_two_thirds() {
        assert_eq!(
            plan(&leased(6, true, 6), FIVE_MIN),
            Next::Renew(Duration::from_secs(4))
        );
    }

    #[test]
    fn a_capped_renewal_or_a_non_renewable_lease_fetches_again_at_85_percent() {
        assert_eq!(
            plan(&leased(4, true, 6), FIVE_MIN),
            Next::Fetch(Duration::from_secs_f64(3.4))
        );
        assert_eq!(
            plan(&leased(100, false, 100), FIVE_MIN),
            Next::Fetch(Duration::from_secs(85))
        );
    }

    #[test]
    fn static_secrets_follow_the_interval() {
        assert_eq!(plan(&Lifetime::default(), FIVE_MIN), Next::Fetch(FIVE_MIN));
        // KV v1 with a ttl key: the sooner of the two.
        let kv_ttl = Lifetime {
            ttl: 60,
            ..Lifetime::default()
        };
        assert_eq!(
            plan(&kv_ttl, FIVE_MIN),
            Next::Fetch(Duration::from_secs(51))
        );
        let rotating = Lifetime {
            rotates_in: Some(10),
            ..Lifetime::default()
        };
        assert_eq!(
            plan(&rotating, FIVE_MIN),
            Next::Fetch(Duration::from_secs(11))
        );
    }

    #[test]
    fn tokens_renew_then_log_in_again() {
        assert_eq!(plan_token(0, true, 0), None);
        assert_eq!(
            plan_token(30, true, 30),
            Some(TokenStep::Renew(Duration::from_secs(20)))
        );
        assert_eq!(
            plan_token(9, true, 30),
            Some(TokenStep::Login(Duration::from_secs(6)))
        );
        assert_eq!(
            plan_token(9, false, 9),
            Some(TokenStep::Login(Duration::from_secs(6)))
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(5));
        let seq: Vec<u64> = (1..=5).map(|n| backoff(min, max, n).as_secs()).collect();
        assert_eq!(seq, vec![1, 2, 4, 5, 5]);
    }
}
