//! Proportional Rate Reduction (RFC 6937) for SACK loss recovery: how much may be
//! sent on each ACK while recovering, so that the window comes down to `ssthresh`
//! smoothly (a little for every ACK, not silence for half a round trip and then a
//! burst, as RFC 6675's cwnd = ssthresh does) and ends exactly there.
//!
//! - Section 3: at the start of recovery `prr_delivered = prr_out = 0` and
//!   `RecoverFS` = FlightSize. On every ACK of the episode (the one that starts it
//!   included), `prr_delivered` grows by DeliveredData (the cumulative advance plus
//!   the bytes newly SACKed); while `pipe > ssthresh` the sender may send
//!   `ceil(prr_delivered * ssthresh / RecoverFS) - prr_out` (the proportional part;
//!   the ceiling in whole segments),
//!   else up to `ssthresh - pipe`, at most `max(prr_delivered - prr_out,
//!   DeliveredData) + SMSS` (PRR-SSRB, the slow-start reduction bound). The window
//!   becomes `pipe + sndcnt`; `prr_out` counts every data byte sent in recovery
//!   (`output.rs`).
//! - Recovery ends (the full ACK, `ack.rs`) with cwnd = ssthresh.
//!
//! NewReno recovery without SACK keeps RFC 6582's window inflation. The PRR
//! counters do not travel in the TCB: an endpoint imported in the middle of an
//! episode starts counting at its first ACK there, with what is outstanding then.

use super::Endpoint;

/// One episode's bookkeeping (in `Cold`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Prr {
    /// FlightSize when the episode started.
    pub(super) recover_fs: u32,
    /// Bytes the receiver got during the episode (cumulatively ACKed or SACKed).
    pub(super) delivered: u64,
    /// Data bytes sent during the episode.
    pub(super) out: u64,
}

impl Prr {
    /// RFC 6937 section 3 on one ACK: adds `delivered` to `prr_delivered` and
    /// returns `sndcnt`, the bytes that may go out now.
    fn on_ack(&mut self, delivered: u64, pipe: u64, ssthresh: u64, smss: u64) -> u64 {
        self.delivered += delivered;
        if pipe > ssthresh {
            // Proportional: ceil(prr_delivered * ssthresh / RecoverFS) - prr_out, the
            // ceiling taken in whole segments (as the RFC counts them) so that no
            // runt segment goes out.
            let fs = u64::from(self.recover_fs.max(1));
            let allowed = (self.delivered * ssthresh / fs).div_ceil(smss) * smss;
            allowed.saturating_sub(self.out)
        } else {
            // PRR-SSRB: back up to ssthresh, at most one SMSS beyond what arrived.
            let limit = self.delivered.saturating_sub(self.out).max(delivered) + smss;
            (ssthresh - pipe).min(limit)
        }
    }
}

impl Endpoint {
    /// Recovery starts with `flight` bytes outstanding.
    pub(super) fn prr_start(&mut self, flight: u32) {
        self.cold.prr = Prr {
            recover_fs: flight.max(1),
            ..Prr::default()
        };
    }

    /// An ACK in SACK recovery that delivered `delivered` bytes: the window for what
    /// may go out now (RFC 6937 section 3).
    pub(super) fn prr_on_ack(&mut self, delivered: u32) {
        if self.cold.prr.recover_fs == 0 {
            // An episode this endpoint did not start (it was imported, or forgot it):
            // count from here, with what is outstanding now.
            self.prr_start(self.snd_max.wrapping_sub(self.snd_una));
        }
        let smss = u64::from(self.smss());
        let pipe = u64::from(self.sb_pipe());
        let ssthresh = u64::from(self.ssthresh);
        let sndcnt = self
            .cold
            .prr
            .on_ack(u64::from(delivered), pipe, ssthresh, smss);
        self.cwnd = (pipe + sndcnt).min(u64::from(u32::MAX)) as u32;
    }

    /// `n` data bytes went out during recovery.
    pub(super) fn prr_sent(&mut self, n: usize) {
        self.cold.prr.out += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::Prr;

    const MSS: u64 = 1000;

    /// RFC 6937's setting: 20 segments outstanding, one lost, ssthresh 10 (a
    /// halving). Each duplicate ACK delivers one segment; whatever is sent keeps the
    /// pipe where it was, so the pipe falls by one per ACK less what went out.
    /// While the pipe is above ssthresh, one segment goes out for every two
    /// delivered (the proportional part); the window reaches ssthresh without a
    /// pause and without a burst.
    #[test]
    fn one_segment_per_two_delivered_down_to_ssthresh() {
        let mut p = Prr {
            recover_fs: 20 * MSS as u32,
            ..Prr::default()
        };
        // The lost segment is out of the pipe; its retransmission is back in it.
        let mut pipe = 19 * MSS;
        let mut sent = Vec::new();
        for _ in 0..18 {
            pipe -= MSS;
            let n = p.on_ack(MSS, pipe, 10 * MSS, MSS);
            p.out += n;
            pipe += n;
            sent.push(n / MSS);
        }
        assert_eq!(&sent[..8], &[1, 0, 1, 0, 1, 0, 1, 0], "{sent:?}");
        // ceil(18 * 10 / 20) = 9 sent for 18 delivered.
        assert_eq!(p.out, 9 * MSS);
        assert!(pipe >= 10 * MSS, "never below ssthresh: {pipe}");
    }

    /// PRR-SSRB: when losses took the pipe below ssthresh, the sender climbs back
    /// like slow start: what was delivered, plus one SMSS, per ACK.
    #[test]
    fn below_ssthresh_it_climbs_back_by_what_arrived_plus_one() {
        let mut p = Prr {
            recover_fs: 20 * MSS as u32,
            ..Prr::default()
        };
        assert_eq!(p.on_ack(MSS, 4 * MSS, 10 * MSS, MSS), 2 * MSS);
        p.out += 2 * MSS;
        assert_eq!(p.on_ack(2 * MSS, 5 * MSS, 10 * MSS, MSS), 3 * MSS);
        p.out += 3 * MSS;
        // Never past ssthresh.
        assert_eq!(p.on_ack(8 * MSS, 9 * MSS, 10 * MSS, MSS), MSS);
    }
}
