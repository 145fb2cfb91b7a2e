//! The one retry schedule of every migration role: connection packets
//! (TCP and UDP) at the source, acknowledgements at a target waiting for its
//! commit.
//!
//! A try made at `now` schedules the next one `base * 2^(tries - 1)` later,
//! capped at `8 * base`: with the default 40 ms, tries go out at 0, 40, 120,
//! 280, 600, 920, 1240 ms... (intervals 40, 80, 160, 320, 320...). Doubling
//! tells a busy peer from a dead one without flooding it; the cap bounds how
//! long a loss can delay a move.

use smoltcp::time::{Duration, Instant};

/// Largest interval, as a multiple of the base: 2^3.
const MAX_SHIFT: u32 = 3;

/// How many tries were made and when the next one is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    tries: u32,
    next_at: Instant,
}

impl Retry {
    /// No try made yet; the first is due at `now`.
    pub const fn new(now: Instant) -> Retry {
        Retry {
            tries: 0,
            next_at: now,
        }
    }

    /// A first try made at `now`.
    pub fn first_try(now: Instant, base: Duration) -> Retry {
        let mut r = Retry::new(now);
        r.record_try(now, base);
        r
    }

    /// Tries made so far.
    pub const fn tries(&self) -> u32 {
        self.tries
    }

    /// When the next try is due.
    pub const fn next_at(&self) -> Instant {
        self.next_at
    }

    /// True when the next try is due at `now`.
    pub fn is_due(&self, now: Instant) -> bool {
        now >= self.next_at
    }

    /// Counts a try made at `now` and schedules the next.
    pub fn record_try(&mut self, now: Instant, base: Duration) {
        self.tries += 1;
        self.next_at = now + base * (1u32 << (self.tries - 1).min(MAX_SHIFT));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_double_up_to_eight_times_the_base() {
        let base = Duration::from_millis(40);
        let mut now = Instant::from_millis(0);
        let mut r = Retry::new(now);
        assert!(r.is_due(now));
        let mut gaps = Vec::new();
        for _ in 0..6 {
            r.record_try(now, base);
            gaps.push((r.next_at() - now).total_millis());
            now = r.next_at();
        }
        assert_eq!(gaps, vec![40, 80, 160, 320, 320, 320]);
        assert_eq!(r.tries(), 6);
        let f = Retry::first_try(Instant::from_millis(5), base);
        assert_eq!((f.tries(), f.next_at()), (1, Instant::from_millis(45)));
        assert!(!f.is_due(Instant::from_millis(44)));
    }
}
