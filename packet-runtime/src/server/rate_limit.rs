//! Token bucket for the per-session packet rate limit.
//!
//! Integer arithmetic in billionths of a token, so that a refill is exact to the nanosecond: `per_second` tokens a
//! second are `per_second` billionths of a token per nanosecond. Nothing is rounded away between two reads, which
//! matters because reads come every few hundred microseconds from a busy client: a bucket that credits whole
//! milliseconds and then moves its clock to `now` loses up to a millisecond of refill on every read, and closes
//! clients that stay well under the limit (one at 74% of 1,500/s was closed after ~11 s that way).

use std::time::Instant;

use super::config::RateLimit;

/// Billionths of a token in one token.
const UNIT: u64 = 1_000_000_000;

#[derive(Debug)]
pub(crate) struct TokenBucket {
    /// Billionths of a token available, at most `capacity`.
    nano_tokens: u64,
    /// `burst` tokens, in billionths.
    capacity: u64,
    /// Billionths of a token credited per nanosecond (numerically, tokens per second).
    per_second: u64,
    /// The instant up to which refill has been credited.
    last: Instant,
    /// Billionths of a token credited for time the server did not read ([`forgive`](Self::forgive)), beyond the
    /// burst.
    forgiven: u64,
}

impl TokenBucket {
    pub(crate) fn new(limit: RateLimit, now: Instant) -> Self {
        // At most 2^32 * 10^9 < 2^62: no overflow.
        let capacity = u64::from(limit.burst.max(1)) * UNIT;
        TokenBucket { nano_tokens: capacity, capacity, per_second: u64::from(limit.per_second), last: now, forgiven: 0 }
    }

    /// Credits `paused` (a time the server did not read from the peer) on top of the burst: what the peer sent at
    /// the allowed rate meanwhile arrives at once when reading resumes, and must not be refused for that.
    pub(crate) fn forgive(&mut self, paused: std::time::Duration) {
        let paused_ns = u64::try_from(paused.as_nanos()).unwrap_or(u64::MAX);
        self.forgiven = self.forgiven.saturating_add(paused_ns.saturating_mul(self.per_second));
    }

    /// Takes one token if there is one.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        self.take_n(1, now)
    }

    /// Takes `n` tokens if there are that many (the byte rate limit takes one per byte read).
    pub(crate) fn take_n(&mut self, n: u64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        // Every nanosecond since `last` is credited exactly, so `last` can move to `now` without losing a remainder.
        // Saturating: hours of silence times a large rate exceed u64, and the result is capped at the burst anyway.
        let elapsed_ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let credit = elapsed_ns.saturating_mul(self.per_second);
        self.nano_tokens = self.nano_tokens.saturating_add(credit).min(self.capacity);
        self.last = self.last.max(now);
        let wanted = n.saturating_mul(UNIT);
        // What was forgiven is spent first; it is not capped by the burst.
        let from_forgiven = wanted.min(self.forgiven);
        if self.nano_tokens >= wanted - from_forgiven {
            self.forgiven -= from_forgiven;
            self.nano_tokens -= wanted - from_forgiven;
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

    /// Sends `count` packets in groups of `group`, the groups evenly spaced so that the mean rate is `fraction` of
    /// the limit; returns the index of the first refused packet, if any. Time is simulated: the instants are made
    /// up, so an hour of sending takes milliseconds.
    fn first_refusal(limit: RateLimit, fraction: f64, group: u64, count: u64) -> Option<u64> {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(limit, t0);
        let period_ns = group as f64 * 1e9 / (f64::from(limit.per_second) * fraction);
        (0..count).find(|&i| {
            let now = t0 + Duration::from_nanos(((i / group) as f64 * period_ns) as u64);
            !bucket.take(now)
        })
    }

    #[test]
    fn a_client_at_95_percent_of_the_limit_is_never_refused() {
        for per_second in [1, 7, 300, 1_000, 1_500, 100_000] {
            // One packet at a time with no burst to spare (the strictest), and in pairs with the demo's burst.
            // Ten simulated minutes, or half a million packets at the highest rates.
            let count = (u64::from(per_second) * 600).min(500_000);
            for (group, burst) in [(1, 1), (2, per_second * 2)] {
                let limit = RateLimit { per_second, burst };
                assert_eq!(first_refusal(limit, 0.95, group, count), None, "{limit:?}, {group} at a time");
            }
        }
    }

    #[test]
    fn the_case_that_was_refused_two_pings_every_1_8_ms_at_1500_per_second() {
        // 1,111 packets/s, 74% of the limit, for 10 simulated minutes.
        let limit = RateLimit { per_second: 1_500, burst: 3_000 };
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(limit, t0);
        for i in 0..333_333u64 {
            let now = t0 + Duration::from_micros(i * 1_800);
            assert!(bucket.take(now) && bucket.take(now), "refused at pair {i}");
        }
    }

    #[test]
    fn a_client_over_the_limit_is_refused_once_its_burst_is_spent() {
        // At 105% the bucket loses 5% of the rate each second: a burst of 100 at 1,000/s lasts 2 s, give or take
        // the one packet in flight.
        let limit = RateLimit { per_second: 1_000, burst: 100 };
        let refused = first_refusal(limit, 1.05, 1, 100_000).expect("refused eventually");
        assert!((2_000..=2_200).contains(&refused), "refused at packet {refused}");
    }

    #[test]
    fn a_byte_bucket_takes_whole_reads_and_refills_per_byte() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(RateLimit { per_second: 1_000, burst: 10_000 }, t0);
        assert!(bucket.take_n(8_000, t0));
        assert!(!bucket.take_n(2_001, t0), "only 2,000 left");
        assert!(bucket.take_n(2_000, t0));
        // 1,000 bytes/s: one byte per millisecond.
        assert!(!bucket.take_n(100, t0 + Duration::from_millis(99)));
        assert!(bucket.take_n(100, t0 + Duration::from_millis(100)));
        // Saturates instead of overflowing on an absurd read.
        assert!(!bucket.take_n(u64::MAX, t0 + Duration::from_secs(1)));
    }

    #[test]
    fn a_pause_is_forgiven_beyond_the_burst() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(RateLimit { per_second: 100, burst: 5 }, t0);
        assert_eq!((0..10).filter(|_| bucket.take(t0)).count(), 5, "the burst");
        // Not read for a second: the 100 packets sent meanwhile arrive at once, on top of the refilled burst.
        let later = t0 + Duration::from_secs(1);
        bucket.forgive(Duration::from_secs(1));
        assert_eq!((0..200).filter(|_| bucket.take(later)).count(), 105);
    }

    #[test]
    fn hours_of_silence_at_the_highest_rate_do_not_overflow() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(RateLimit { per_second: u32::MAX, burst: u32::MAX }, t0);
        assert!(bucket.take(t0));
        let later = t0 + Duration::from_secs(100 * 3600);
        assert_eq!((0..1_000).filter(|_| bucket.take(later)).count(), 1_000);
    }
}
