//! A fixed-size latency histogram: the handoff time of every move a node
//! makes as a source, from the decision to the commit it sends (the target
//! has imported the connection and the forward entry is in place).
//!
//! Log-linear buckets, as HdrHistogram's: values below 16 µs have a bucket
//! each, and every power of two above is cut into 8, so a percentile is known
//! to within 12.5 %. 192 buckets reach past 2^26 µs (67 s); anything longer
//! lands in the last. Recording is an index computation and an increment:
//! no allocation, nothing to walk. Histograms of several lanes add up.

/// Buckets: 16 exact ones, then 8 per power of two from 2^4 to 2^26.
const BUCKETS: usize = 16 + 8 * 22;

/// Counts of values, in microseconds, by bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LatencyHistogram {
    counts: [u64; BUCKETS],
    total: u64,
    max_us: u64,
}

impl Default for LatencyHistogram {
    fn default() -> LatencyHistogram {
        LatencyHistogram {
            counts: [0; BUCKETS],
            total: 0,
            max_us: 0,
        }
    }
}

/// The bucket of `us`.
fn bucket(us: u64) -> usize {
    if us < 16 {
        return us as usize;
    }
    let msb = 63 - us.leading_zeros() as usize; // >= 4
    let sub = ((us >> (msb - 3)) & 7) as usize;
    (16 + (msb - 4) * 8 + sub).min(BUCKETS - 1)
}

/// The largest value of bucket `i`.
fn upper(i: usize) -> u64 {
    if i < 16 {
        return i as u64;
    }
    let msb = (i - 16) / 8 + 4;
    let sub = ((i - 16) % 8) as u64;
    ((8 + sub + 1) << (msb - 3)) - 1
}

impl LatencyHistogram {
    /// Counts one value.
    pub fn record(&mut self, us: u64) {
        self.counts[bucket(us)] += 1;
        self.total += 1;
        self.max_us = self.max_us.max(us);
    }

    /// Values counted.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The largest value counted (0 when none).
    pub fn max(&self) -> u64 {
        self.max_us
    }

    /// The value at quantile `q` (0.0..=1.0), as the upper edge of its bucket
    /// (never above the largest value counted); 0 when nothing was counted.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return upper(i).min(self.max_us);
            }
        }
        self.max_us
    }

    /// Adds another histogram's counts (another lane's).
    pub fn add(&mut self, o: &LatencyHistogram) {
        for (a, b) in self.counts.iter_mut().zip(o.counts.iter()) {
            *a += b;
        }
        self.total += o.total;
        self.max_us = self.max_us.max(o.max_us);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut prev = 0;
        for us in [0u64, 1, 15, 16, 17, 18, 31, 32, 100, 1_000, 65_535, 1 << 26] {
            let b = bucket(us);
            assert!(b >= prev, "{us} went back to bucket {b}");
            assert!(
                upper(b) >= us.min(upper(BUCKETS - 1)),
                "{us} above its bucket"
            );
            if b > 0 && b < BUCKETS - 1 {
                assert!(upper(b - 1) < us, "{us} belongs lower");
            }
            prev = b;
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        assert_eq!((bucket(16), upper(16)), (16, 17));
        assert_eq!((bucket(1000), upper(bucket(1000))), (63, 1023));
    }

    #[test]
    fn quantiles_are_within_an_eighth() {
        let mut h = LatencyHistogram::default();
        assert_eq!((h.quantile(0.5), h.count(), h.max()), (0, 0, 0));
        for us in 1..=1000 {
            h.record(us);
        }
        let p50 = h.quantile(0.5);
        assert!((500..=563).contains(&p50), "p50 {p50}");
        let p99 = h.quantile(0.99);
        assert!((990..=1000).contains(&p99), "p99 {p99}");
        assert_eq!(h.quantile(1.0), 1000, "never above the max");
        assert_eq!(h.quantile(0.0), 1);
        let mut other = LatencyHistogram::default();
        other.record(5_000_000);
        h.add(&other);
        assert_eq!((h.count(), h.max()), (1001, 5_000_000));
        assert!(h.quantile(0.5) <= 563);
    }
}
