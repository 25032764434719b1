//! Token buckets for login rate limits. Time (seconds, any origin) is a parameter.

#[derive(Clone, Copy, Debug)]
pub struct Bucket {
    tokens: f64,
    last: f64,
}

/// Refill rate (per second) and capacity. A rate of zero means unlimited.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limit {
    pub rate: f64,
    pub burst: f64,
}

impl Limit {
    pub fn unlimited(&self) -> bool {
        self.rate <= 0.0
    }
}

impl Bucket {
    pub fn full(limit: Limit, now: f64) -> Self {
        Bucket {
            tokens: limit.burst.max(1.0),
            last: now,
        }
    }

    fn refill(&mut self, limit: Limit, now: f64) {
        if now > self.last {
            self.tokens = (self.tokens + (now - self.last) * limit.rate).min(limit.burst.max(1.0));
            self.last = now;
        }
    }

    /// True when at least one token is available (nothing is taken).
    pub fn has(&mut self, limit: Limit, now: f64) -> bool {
        if limit.unlimited() {
            return true;
        }
        self.refill(limit, now);
        self.tokens >= 1.0
    }

    /// Takes one token if available.
    pub fn take(&mut self, limit: Limit, now: f64) -> bool {
        if limit.unlimited() {
            return true;
        }
        self.refill(limit, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Returns one token (an attempt that turned out not to count).
    pub fn give_back(&mut self, limit: Limit) {
        if !limit.unlimited() {
            self.tokens = (self.tokens + 1.0).min(limit.burst.max(1.0));
        }
    }

    /// True when the bucket is full again (an idle entry that can be forgotten).
    pub fn idle(&mut self, limit: Limit, now: f64) -> bool {
        self.refill(limit, now);
        limit.unlimited() || self.tokens >= limit.burst.max(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let l = Limit {
            rate: 2.0,
            burst: 3.0,
        };
        let mut b = Bucket::full(l, 0.0);
        assert!(b.take(l, 0.0) && b.take(l, 0.0) && b.take(l, 0.0));
        assert!(!b.take(l, 0.0));
        assert!(!b.has(l, 0.4));
        assert!(b.take(l, 0.5));
        assert!(!b.take(l, 0.5));
        assert!(!b.idle(l, 1.0));
        assert!(b.idle(l, 10.0));
        assert!(b.take(l, 10.0) && b.take(l, 10.0) && b.take(l, 10.0) && !b.take(l, 10.0));
        b.give_back(l);
        assert!(b.take(l, 10.0) && !b.take(l, 10.0));
        for _ in 0..10 {
            b.give_back(l);
        }
        assert!(b.idle(l, 10.0));
    }

    #[test]
    fn zero_rate_is_unlimited_and_clock_going_back_is_harmless() {
        let u = Limit {
            rate: 0.0,
            burst: 0.0,
        };
        let mut b = Bucket::full(u, 0.0);
        for _ in 0..1000 {
            assert!(b.take(u, 0.0));
        }
        let l = Limit {
            rate: 1.0,
            burst: 1.0,
        };
        let mut c = Bucket::full(l, 100.0);
        assert!(c.take(l, 100.0));
        assert!(!c.take(l, 50.0));
    }
}
