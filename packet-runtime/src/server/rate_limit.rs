//! Token bucket for the per-session packet rate limit. Integer arithmetic in thousandths of a token.

use std::time::Instant;

use super::config::RateLimit;

#[derive(Debug)]
pub(crate) struct TokenBucket {
    /// Thousandths of a token available.
    milli_tokens: u64,
    capacity: u64,
    /// Thousandths of a token added per millisecond equals tokens per second.
    per_second: u64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(limit: RateLimit, now: Instant) -> Self {
        let capacity = u64::from(limit.burst.max(1)) * 1000;
        TokenBucket { milli_tokens: capacity, capacity, per_second: u64::from(limit.per_second), last: now }
    }

    /// Takes one token if there is one.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        let elapsed_ms = now.saturating_duration_since(self.last).as_millis() as u64;
        if elapsed_ms > 0 {
            self.milli_tokens = (self.milli_tokens + elapsed_ms.saturating_mul(self.per_second)).min(self.capacity);
            self.last = now;
        }
        if self.milli_tokens >= 1000 {
            self.milli_tokens -= 1000;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn burst_then_refill_at_the_configured_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(RateLimit { per_second: 100, burst: 5 }, t0);
        assert_eq!((0..10).filter(|_| bucket.take(t0)).count(), 5, "the burst");
        // 100/s: one token per 10 ms.
        assert!(!bucket.take(t0 + Duration::from_millis(9)));
        assert!(bucket.take(t0 + Duration::from_millis(10)));
        assert_eq!((0..100).filter(|_| bucket.take(t0 + Duration::from_secs(10))).count(), 5, "capped at burst");
    }
}
