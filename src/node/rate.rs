//! A token bucket: at most `rate` events a second on average, `burst` at once.

use smoltcp::time::Instant;

/// Tokens refill continuously at `rate` per second up to `burst`; each event
/// takes one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenBucket {
    rate: u64,
    burst: u64,
    /// Tokens, in millionths (so that refills of less than one token add up).
    micro_tokens: u64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket; `rate` 0 means no limit.
    pub fn new(rate: u32, burst: u32) -> TokenBucket {
        let burst = u64::from(burst.max(1));
        TokenBucket {
            rate: u64::from(rate),
            burst,
            micro_tokens: burst * 1_000_000,
            last: Instant::from_micros(0),
        }
    }

    /// Takes a token at `now`; false when none is left.
    pub fn take(&mut self, now: Instant) -> bool {
        if !self.ready(now) {
            return false;
        }
        if self.rate > 0 {
            self.micro_tokens -= 1_000_000;
        }
        true
    }

    /// True when a token is there at `now` (none is taken).
    pub fn ready(&mut self, now: Instant) -> bool {
        if self.rate == 0 {
            return true;
        }
        let elapsed = (now - self.last)
            .total_micros()
            .min(u64::MAX / self.rate.max(1));
        self.last = now.max(self.last);
        self.micro_tokens = (self.micro_tokens + elapsed * self.rate).min(self.burst * 1_000_000);
        self.micro_tokens >= 1_000_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let mut b = TokenBucket::new(1000, 10);
        let t0 = Instant::from_millis(5);
        assert_eq!((0..20).filter(|_| b.take(t0)).count(), 10, "the burst");
        // 5 ms later: 5 tokens at 1000/s.
        let t1 = Instant::from_millis(10);
        assert_eq!((0..20).filter(|_| b.take(t1)).count(), 5);
        // Refill never exceeds the burst.
        let t2 = Instant::from_millis(10_000);
        assert_eq!((0..50).filter(|_| b.take(t2)).count(), 10);
        let mut unlimited = TokenBucket::new(0, 1);
        assert!((0..1000).all(|_| unlimited.take(t0)));
    }
}
