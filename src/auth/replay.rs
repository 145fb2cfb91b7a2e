//! The replay window of one sender's farm frames (the anti-replay window of
//! IPsec, RFC 4303 §3.4.3, over the trailer's 64-bit sequence numbers).
//!
//! A sequence number is accepted once: when it is above the highest seen
//! (the window slides up), or within the last [`WINDOW`] numbers and not
//! seen before. Anything older is refused. The window is updated only after
//! the frame's tag verified ([`ReplayWindow::check`] then
//! [`ReplayWindow::accept`]), so a forged frame cannot move it.

/// How many sequence numbers below the highest one are still accepted (once
/// each): reordering on a farm segment is far below this.
pub const WINDOW: u64 = 1024;
const WORDS: usize = (WINDOW / 64) as usize;

/// Why a sequence number was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Seen already.
    Duplicate,
    /// Older than the window.
    TooOld,
}

/// Seen sequence numbers, `highest` and the [`WINDOW`] below it.
#[derive(Debug, Clone, Default)]
pub struct ReplayWindow {
    /// Highest accepted sequence number; 0 before the first.
    highest: u64,
    /// Bit `i` set: `highest - i` was accepted.
    seen: [u64; WORDS],
}

impl ReplayWindow {
    /// Whether `seq` would be accepted (0 never is: senders start at 1).
    pub fn check(&self, seq: u64) -> Result<(), Replay> {
        if seq == 0 {
            return Err(Replay::TooOld);
        }
        if seq > self.highest {
            return Ok(());
        }
        let age = self.highest - seq;
        if age >= WINDOW {
            return Err(Replay::TooOld);
        }
        let (w, b) = ((age / 64) as usize, age % 64);
        if self.seen[w] & (1 << b) != 0 {
            Err(Replay::Duplicate)
        } else {
            Ok(())
        }
    }

    /// Records `seq` as seen (after [`Self::check`] accepted it and its tag verified).
    pub fn accept(&mut self, seq: u64) {
        if seq > self.highest {
            self.shift(seq - self.highest);
            self.highest = seq;
        }
        let age = self.highest - seq;
        if age < WINDOW {
            self.seen[(age / 64) as usize] |= 1 << (age % 64);
        }
    }

    /// Ages every recorded number by `n` (the window slides up by `n`).
    fn shift(&mut self, n: u64) {
        if n >= WINDOW {
            self.seen = [0; WORDS];
            return;
        }
        let (words, bits) = ((n / 64) as usize, (n % 64) as u32);
        for i in (0..WORDS).rev() {
            let from = i.checked_sub(words);
            let hi = from.map_or(0, |j| self.seen[j]);
            let lo = from
                .and_then(|j| j.checked_sub(1))
                .map_or(0, |j| self.seen[j]);
            self.seen[i] = if bits == 0 {
                hi
            } else {
                (hi << bits) | (lo >> (64 - bits))
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(w: &mut ReplayWindow, seq: u64) -> Result<(), Replay> {
        w.check(seq)?;
        w.accept(seq);
        Ok(())
    }

    #[test]
    fn in_order_reordered_duplicate_and_old() {
        let mut w = ReplayWindow::default();
        assert_eq!(take(&mut w, 0), Err(Replay::TooOld));
        for s in 1..=100 {
            assert_eq!(take(&mut w, s), Ok(()));
        }
        assert_eq!(take(&mut w, 100), Err(Replay::Duplicate));
        assert_eq!(take(&mut w, 1), Err(Replay::Duplicate));
        // A gap, then the missing ones arrive late.
        assert_eq!(take(&mut w, 200), Ok(()));
        assert_eq!(take(&mut w, 150), Ok(()));
        assert_eq!(take(&mut w, 150), Err(Replay::Duplicate));
        assert_eq!(take(&mut w, 101), Ok(()));
        assert_eq!(take(&mut w, 100), Err(Replay::Duplicate));
        // Far ahead: everything before the window is too old.
        assert_eq!(take(&mut w, 200 + WINDOW), Ok(()));
        assert_eq!(take(&mut w, 200), Err(Replay::TooOld));
        assert_eq!(take(&mut w, 201), Ok(()));
        assert_eq!(take(&mut w, 201), Err(Replay::Duplicate));
        assert_eq!(take(&mut w, u64::MAX), Ok(()));
        assert_eq!(take(&mut w, 200 + WINDOW), Err(Replay::TooOld));
    }

    #[test]
    fn matches_a_set_model() {
        // Pseudo-random arrivals around a rising point, against a set of every number taken.
        let mut w = ReplayWindow::default();
        let mut taken = std::collections::BTreeSet::new();
        let mut highest = 0u64;
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let seq = (i / 2 + 1 + x % 1500).saturating_sub(700).max(1);
            let want = if seq + WINDOW <= highest {
                Err(Replay::TooOld)
            } else if taken.contains(&seq) {
                Err(Replay::Duplicate)
            } else {
                Ok(())
            };
            assert_eq!(take(&mut w, seq), want, "seq {seq} highest {highest}");
            if want.is_ok() {
                taken.insert(seq);
                highest = highest.max(seq);
            }
        }
    }
}
