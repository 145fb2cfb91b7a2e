//! Congestion control behind one small trait: what congestion avoidance adds to
//! `cwnd` per ACK, and what `ssthresh` becomes at a loss. Slow start (RFC 5681
//! section 3.1), fast recovery and the RTO's collapse to one segment stay in
//! `ack.rs`, `sack.rs` and `timers.rs`, common to every algorithm.
//!
//! Two implementations: [`NewReno`] (RFC 5681 section 3.1 congestion avoidance, RFC
//! 6582 halving) and [`Cubic`](super::cubic::Cubic) (RFC 9438), the default, chosen by
//! [`Congestion`] in [`Config`](super::Config).
//!
//! The algorithm's own state does not travel in the TCB (`cwnd` and `ssthresh` do):
//! an import starts it with [`CongestionControl::restart`] at the carried `cwnd`, as
//! if the window had just been reduced to it, which can only grow it more slowly
//! than the exporter would have. [`Endpoint::forget_sack`](super::Endpoint) restarts
//! it the same way, so that `import(export(s))` still behaves like `s` after it.

use super::cubic::Cubic;

/// Which congestion control a connection uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Congestion {
    /// RFC 9438: Linux's default. A loss takes `cwnd` to 0.7 of itself, and the
    /// window then grows back along a cubic curve towards where the loss happened.
    #[default]
    Cubic,
    /// RFC 5681 / RFC 6582: a loss halves `cwnd`; one SMSS more per round trip.
    NewReno,
}

/// One congestion-control algorithm. All sizes in bytes, times in microseconds.
pub(super) trait CongestionControl {
    /// `cwnd` after `acked` newly acknowledged bytes in congestion avoidance
    /// (`cwnd >= ssthresh`, not in recovery). `srtt_us` is 0 before any sample.
    fn avoid(&mut self, cwnd: u32, acked: u32, smss: u32, now_us: i64, srtt_us: u32) -> u32;
    /// `ssthresh` after a loss (a fast retransmit, SACK loss recovery or an RTO), the
    /// reduction taken from `base` (FlightSize, or min(FlightSize, cwnd)) while the
    /// window was `cwnd`; never below 2 SMSS.
    fn reduce(&mut self, cwnd: u32, base: u32, smss: u32) -> u32;
    /// Forget what was learnt: continue from `cwnd` as if a loss had just taken the
    /// window there.
    fn restart(&mut self, cwnd: u32);
}

/// RFC 5681 section 3.1 congestion avoidance, about one SMSS per round trip
/// (SMSS * SMSS / cwnd per ACK, at least one byte); a loss halves the window (RFC
/// 6582 section 3.2 step 2, RFC 6675 section 5 step 4.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct NewReno;

impl CongestionControl for NewReno {
    fn avoid(&mut self, cwnd: u32, _acked: u32, smss: u32, _now_us: i64, _srtt_us: u32) -> u32 {
        let inc = (u64::from(smss) * u64::from(smss) / u64::from(cwnd.max(1))).max(1) as u32;
        cwnd.saturating_add(inc)
    }

    fn reduce(&mut self, _cwnd: u32, base: u32, smss: u32) -> u32 {
        (base / 2).max(2 * smss)
    }

    fn restart(&mut self, _cwnd: u32) {}
}

/// The algorithm of one connection (an enum, so the endpoint allocates nothing).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Cc {
    NewReno(NewReno),
    Cubic(Cubic),
}

impl Cc {
    pub(super) fn new(kind: Congestion) -> Cc {
        match kind {
            Congestion::NewReno => Cc::NewReno(NewReno),
            Congestion::Cubic => Cc::Cubic(Cubic::default()),
        }
    }

    pub(super) fn kind(&self) -> Congestion {
        match self {
            Cc::NewReno(_) => Congestion::NewReno,
            Cc::Cubic(_) => Congestion::Cubic,
        }
    }
}

impl CongestionControl for Cc {
    fn avoid(&mut self, cwnd: u32, acked: u32, smss: u32, now_us: i64, srtt_us: u32) -> u32 {
        match self {
            Cc::NewReno(c) => c.avoid(cwnd, acked, smss, now_us, srtt_us),
            Cc::Cubic(c) => c.avoid(cwnd, acked, smss, now_us, srtt_us),
        }
    }

    fn reduce(&mut self, cwnd: u32, base: u32, smss: u32) -> u32 {
        match self {
            Cc::NewReno(c) => c.reduce(cwnd, base, smss),
            Cc::Cubic(c) => c.reduce(cwnd, base, smss),
        }
    }

    fn restart(&mut self, cwnd: u32) {
        match self {
            Cc::NewReno(c) => c.restart(cwnd),
            Cc::Cubic(c) => c.restart(cwnd),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_reno_adds_about_one_smss_per_window_and_halves() {
        let mut c = NewReno;
        let mut cwnd = 10 * 1448;
        // One window of ACKs, one SMSS each: one SMSS more (within rounding).
        for _ in 0..10 {
            cwnd = c.avoid(cwnd, 1448, 1448, 0, 1000);
        }
        assert!((11 * 1448 - 200..=11 * 1448).contains(&cwnd), "{cwnd}");
        assert_eq!(c.reduce(cwnd, 20_000, 1448), 10_000);
        assert_eq!(c.reduce(cwnd, 1000, 1448), 2 * 1448, "never below 2 SMSS");
    }

    #[test]
    fn the_enum_names_its_algorithm() {
        assert_eq!(Cc::new(Congestion::NewReno).kind(), Congestion::NewReno);
        assert_eq!(Cc::new(Congestion::Cubic).kind(), Congestion::Cubic);
        assert_eq!(Congestion::default(), Congestion::Cubic);
    }
}
