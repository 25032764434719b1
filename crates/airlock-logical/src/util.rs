//! Small helpers every layer shares: the wall clock, randomness, RFC 3339 times as Go prints
//! them. Engines read the clock through their context ([`crate::Ctx::now_unix`]) so tests can
//! set it; these are the real sources behind the server's system view.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn now_nanos() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// RFC 3339 with nanoseconds, as Go prints `time.Time` in JSON.
pub fn rfc3339_nanos(nanos: i128) -> String {
    match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => {
            let base = t
                .format(time::macros::format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second]"
                ))
                .unwrap_or_default();
            let ns = t.nanosecond();
            if ns == 0 {
                format!("{base}Z")
            } else {
                let frac = format!("{ns:09}");
                format!("{base}.{}Z", frac.trim_end_matches('0'))
            }
        }
        Err(_) => String::new(),
    }
}

pub fn parse_rfc3339_nanos(s: &str) -> Option<i128> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp_nanos())
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::fill(&mut b);
    b
}

pub fn new_uuid() -> String {
    airlock_core::token_format::uuid(&random_bytes::<16>())
}

pub fn random_base62(len: usize) -> String {
    let mut r = vec![0u8; len * 2 + 16];
    rand::fill(&mut r[..]);
    airlock_core::token_format::base62(&r, len)
}

/// A random index in `0..n`, without modulo bias.
pub fn random_index(n: usize) -> usize {
    rand::random_range(0..n.max(1))
}
