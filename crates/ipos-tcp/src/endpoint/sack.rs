//! The sender's SACK scoreboard and SACK-based loss recovery (RFC 6675), plus the
//! early timer: the tail loss probe and the reordering window.
//!
//! Promises: the scoreboard is a fixed array of at most `SB_MAX` disjoint,
//! non-adjacent ranges in ascending order, all within (`snd_una`, `snd_max`]; blocks
//! outside that (D-SACK, garbage) are ignored or clipped, and when the array is full
//! the highest range is forgotten. SACK information is only ever advisory (RFC 2018
//! section 8): forgetting it ([`Endpoint::forget_sack`], an import, a second RTO in a
//! row) is always safe.
//!
//! - Scoreboard update from received blocks (RFC 2018 section 4, RFC 6675 section 5
//!   step A) and trimming on the cumulative ACK.
//! - IsLost(), SetPipe() and the holes NextSeg() picks from (RFC 6675 sections 4
//!   and 5); the sending itself is in [`output`](super::output).
//! - Entering recovery on DupThresh duplicate ACKs or lost data (RFC 6675 section 5),
//!   and lost-retransmission detection (data sent
//!   after a retransmission SACKed while the hole is still missing, as Linux does).
//! - The early timer, [`EarlyTimer`]: a tail loss probe after PTO = 2 * SRTT (RFC 8985
//!   section 7.2; the probe repeats the last segment, see `output`) when nothing is
//!   left for SACK to decide. Unlike RFC 8985, which leaves a probe without an answer
//!   to the RTO, up to `TLP_MAX` probes go out, each after twice the previous wait,
//!   before the RTO: on a lossy path the probe or its ACK is lost often enough that
//!   the RTO (at least 200 ms, and a window collapsed to one segment) would otherwise
//!   cost more than the lost data. Or a reordering window of
//!   SRTT/4 (RFC 8985 section 6.2 in spirit) for an undecided hole below SACKed data.

use super::cc::CongestionControl;
use smoltcp::time::Instant;

use super::{Endpoint, DUP_THRESH, NONE_AT, SB_MAX};

/// The least wait before acting on a sign of reneging (Linux: 10 ms).
const RENEGING_WAIT_US: i64 = 10_000;
/// Tail loss probes sent without a cumulative advance before only the RTO is left.
const TLP_MAX: u8 = 3;
use crate::seq::{gt, le, lt};
use crate::tcb::*;

/// The loss-probe / reordering timer (not carried by `export`). Each armed kind holds
/// its deadline (microseconds, as every timer of the endpoint).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum EarlyTimer {
    Off,
    /// Tail loss probe (RFC 8985 section 7), only with SACK and an empty scoreboard.
    Tlp {
        at: i64,
    },
    /// Reordering window expiry (RFC 8985 section 6.2 in spirit): unSACKed holes below
    /// SACKed data that outlive it are lost, even if fewer than DupThresh segments were
    /// SACKed.
    Reorder {
        at: i64,
    },
}

impl EarlyTimer {
    /// The deadline, `NONE_AT` when off.
    pub(super) fn deadline(self) -> i64 {
        match self {
            EarlyTimer::Off => NONE_AT,
            EarlyTimer::Tlp { at } | EarlyTimer::Reorder { at } => at,
        }
    }
}

impl Endpoint {
    /// Offset of `x` from `snd_una`.
    #[inline]
    pub(super) fn off(&self, x: u32) -> u32 {
        x.wrapping_sub(self.snd_una)
    }

    /// Record a received SACK block; returns the number of newly SACKed bytes.
    /// Blocks outside (`snd_una`, `snd_max`] (D-SACK, garbage) are ignored or clipped.
    pub(super) fn sb_add(&mut self, l: u32, r: u32) -> u32 {
        let una = self.snd_una;
        let flight = self.snd_max.wrapping_sub(una);
        let hi = r.wrapping_sub(una);
        if hi == 0 || hi > flight {
            return 0;
        }
        let lo = match l.wrapping_sub(una) {
            lo if lo < hi => lo,
            _ if lt(l, una) => 0,
            _ => return 0,
        };
        let c = &mut *self.cold;
        let mut n = c.sb_len as usize;
        let o = |x: u32| x.wrapping_sub(una);
        let mut i = 0;
        while i < n && o(c.sb[i].1) < lo {
            i += 1;
        }
        let (mut s, mut e) = (lo, hi);
        let mut covered = 0u32;
        let mut j = i;
        while j < n && o(c.sb[j].0) <= hi {
            let (bs, be) = (o(c.sb[j].0), o(c.sb[j].1));
            covered += be.min(hi).saturating_sub(bs.max(lo));
            s = s.min(bs);
            e = e.max(be);
            j += 1;
        }
        let newly = (hi - lo).saturating_sub(covered);
        if newly == 0 {
            return 0;
        }
        let merged = (una.wrapping_add(s), una.wrapping_add(e));
        if j == i {
            if n == SB_MAX {
                if i == n {
                    return 0; // no room for the highest range: forget it
                }
                n -= 1; // forget the highest range to make room
            }
            c.sb.copy_within(i..n, i + 1);
            c.sb[i] = merged;
            c.sb_len = (n + 1) as u8;
        } else {
            c.sb[i] = merged;
            c.sb.copy_within(j..n, i + 1);
            c.sb_len = (n - (j - i) + 1) as u8;
        }
        newly
    }

    /// Drop what the cumulative ACK covers; keep `high_rxt` / `rxt_mark` at or above `snd_una`.
    pub(super) fn sb_trim(&mut self) {
        let una = self.snd_una;
        let c = &mut *self.cold;
        let n = c.sb_len as usize;
        let mut k = 0;
        while k < n && le(c.sb[k].1, una) {
            k += 1;
        }
        if k > 0 {
            c.sb.copy_within(k..n, 0);
            c.sb_len = (n - k) as u8;
        }
        if c.sb_len > 0 && lt(c.sb[0].0, una) {
            c.sb[0].0 = una;
        }
        if lt(c.high_rxt, una) {
            c.high_rxt = una;
        }
        if lt(c.rxt_mark, una) {
            c.rxt_mark = una;
        }
        if lt(c.lost_floor, una) {
            c.lost_floor = una;
        }
    }

    /// The scoreboard ranges in use.
    fn sb_blocks(&self) -> &[(u32, u32)] {
        &self.cold.sb[..self.cold.sb_len as usize]
    }

    /// SACKed bytes in [`snd_una`, `snd_una + x`).
    pub(super) fn sb_sacked_below(&self, x: u32) -> u32 {
        let mut sum = 0;
        for &(a, b) in self.sb_blocks() {
            let (a, b) = (self.off(a), self.off(b));
            if a >= x {
                break;
            }
            sum += b.min(x) - a;
        }
        sum
    }

    /// RFC 6675 IsLost() as a boundary (offset from `snd_una`): every unSACKed byte below
    /// it has DupThresh SACKed blocks or more than (DupThresh - 1) * SMSS SACKed bytes
    /// above it. 0 when nothing is lost.
    pub(super) fn sb_lost_end(&self) -> u32 {
        let floor = if gt(self.cold.lost_floor, self.snd_una) {
            self.off(self.cold.lost_floor).min(self.sb_high_sacked())
        } else {
            0
        };
        floor.max(self.sb_lost_end_dupthresh())
    }

    /// The IsLost() boundary from SACKed blocks alone: the start of the highest block
    /// that, with the blocks above it, makes DupThresh blocks or more than
    /// (DupThresh - 1) * SMSS SACKed bytes (0 if none does).
    fn sb_lost_end_dupthresh(&self) -> u32 {
        let smss = self.smss();
        let mut bytes = 0u32;
        let mut cnt = 0u32;
        for &(a, b) in self.sb_blocks().iter().rev() {
            bytes = bytes.saturating_add(b.wrapping_sub(a));
            cnt += 1;
            if bytes > (DUP_THRESH - 1) * smss || cnt >= DUP_THRESH {
                return self.off(a);
            }
        }
        0
    }

    /// True when enough data sent after `mark` has been SACKed to call anything still
    /// missing below `mark` lost.
    fn sb_loss_evidence_above(&self, mark: u32) -> bool {
        if lt(mark, self.snd_una) {
            return false;
        }
        let m = self.off(mark);
        let smss = self.smss();
        let mut bytes = 0u32;
        let mut cnt = 0u32;
        for &(a, b) in self.sb_blocks().iter().rev() {
            let (a, b) = (self.off(a), self.off(b));
            if b <= m {
                break;
            }
            bytes = bytes.saturating_add(b - a.max(m));
            cnt += 1;
        }
        bytes > (DUP_THRESH - 1) * smss || cnt >= DUP_THRESH
    }

    /// RFC 6675 SetPipe(): bytes presumed in the network during SACK recovery.
    pub(super) fn sb_pipe(&self) -> u32 {
        let f = self.snd_max.wrapping_sub(self.snd_una);
        let sacked = self.sb_sacked_below(f);
        let le = self.sb_lost_end();
        let lost = le - self.sb_sacked_below(le);
        let hr = self.high_rxt_off();
        let rxt = hr - self.sb_sacked_below(hr);
        (f - sacked - lost).saturating_add(rxt)
    }

    /// HighRxt as an offset from `snd_una` (0 if stale, at most the flight).
    pub(super) fn high_rxt_off(&self) -> u32 {
        if lt(self.cold.high_rxt, self.snd_una) {
            0
        } else {
            self.off(self.cold.high_rxt)
                .min(self.snd_max.wrapping_sub(self.snd_una))
        }
    }

    /// The first unSACKed hole at or after offset `from`, as offsets [start, end); the
    /// hole ends at the next SACKed range or at `snd_max`.
    pub(super) fn sb_hole_from(&self, from: u32) -> (u32, u32) {
        let f = self.snd_max.wrapping_sub(self.snd_una);
        let mut p = from;
        for &(a, b) in self.sb_blocks() {
            let (a, b) = (self.off(a), self.off(b));
            if b <= p {
                continue;
            }
            if a <= p {
                p = b;
                continue;
            }
            return (p, a);
        }
        (p.min(f), f)
    }

    /// Highest SACKed offset (0 if none).
    pub(super) fn sb_high_sacked(&self) -> u32 {
        match self.sb_blocks().last() {
            Some(&(_, b)) => self.off(b),
            None => 0,
        }
    }

    /// True when a scoreboard range starts at `snd_una`: a receiver that still held
    /// it would have acknowledged past it, so it reneged (Linux reads the same sign,
    /// `tcp_check_sack_reneging`), or the next ACK is about to cover it (a reordered
    /// ACK, or a new owner of a moved connection that has yet to take in what its
    /// predecessor SACKed).
    fn sb_at_una(&self) -> bool {
        self.cold.sb_len > 0 && self.cold.sb[0].0 == self.snd_una
    }

    /// After a cumulative advance: if the receiver may have reneged, the RTO comes
    /// after max(SRTT/16, 10 ms), as in Linux, instead of a whole RTO; an ACK that
    /// covers the range meanwhile restarts the timer as usual.
    pub(super) fn sb_suspect_reneging(&mut self, now: Instant) {
        if self.sb_at_una() {
            let wait = (i64::from(self.srtt) / 16).max(RENEGING_WAIT_US);
            self.retx_at = self.retx_at.min(now.total_micros().saturating_add(wait));
        }
    }

    /// At an RTO: a range at `snd_una` was reneged on. The scoreboard is forgotten
    /// (`sack_reneged`), so the left edge is sent again (RFC 2018 section 8: after
    /// an RTO, whether or not it is SACKed).
    pub(super) fn sb_check_reneging(&mut self) {
        if self.sb_at_una() {
            self.cold.counters.sack_reneged += 1;
            self.sb_clear();
        }
    }

    /// Forget all SACK information (what an imported endpoint starts with).
    pub(super) fn sb_clear(&mut self) {
        self.cold.sb_len = 0;
        self.reset_loss_marks(self.snd_una);
    }

    /// Restart loss detection from `snd_una`: no retransmission marked, no
    /// early-retransmit or loss-probe timer, retransmissions marked up to `rxt_mark`.
    pub(super) fn reset_loss_marks(&mut self, rxt_mark: u32) {
        let c = &mut *self.cold;
        c.high_rxt = self.snd_una;
        c.rxt_mark = rxt_mark;
        c.lost_floor = self.snd_una;
        c.early = EarlyTimer::Off;
        c.tlp_now = false;
        c.tlp_out = 0;
    }

    /// RFC 6675 section 5 on a duplicate ACK, plus lost-retransmission detection.
    pub(super) fn sack_loss_detection(&mut self) {
        // Has the segment at snd_una been retransmitted since the last RTO / recovery start?
        let una_rxt = lt(self.snd_una, self.cold.high_rxt);
        let rxt_lost = una_rxt && self.sb_loss_evidence_above(self.cold.rxt_mark);
        if self.has(TCB_F_RECOVERY) {
            if rxt_lost {
                // A retransmission was lost: start a new pass over the holes. Same
                // recovery episode, so no further window reduction.
                self.cold.high_rxt = self.snd_una;
                self.cold.rxt_mark = self.snd_max;
            }
            return;
        }
        let lost = u32::from(self.dupacks) >= DUP_THRESH || self.sb_lost_end() > 0;
        // While going back after an RTO (snd_nxt < snd_max) the slow-start pass repairs
        // the holes; a new episode starts only once it is done and still loses data.
        if !lost || una_rxt && !rxt_lost || lt(self.snd_nxt, self.snd_max) {
            return;
        }
        self.enter_sack_recovery();
    }

    /// RFC 6675 section 5 steps 4.1-4.3: RecoveryPoint = HighData, ssthresh = cwnd =
    /// the algorithm's reduction of min(FlightSize, cwnd) (NewReno: half, CUBIC: 0.7;
    /// at least 2 SMSS), retransmit the first hole.
    fn enter_sack_recovery(&mut self) {
        self.undo_start();
        let flight = self.snd_max.wrapping_sub(self.snd_una);
        let smss = self.smss();
        self.ssthresh = self.cold.cc.reduce(self.cwnd, flight.min(self.cwnd), smss);
        self.cwnd = self.ssthresh;
        // PRR (prr.rs) sets the window from the next ACK on; this one's share
        // follows in `process_ack`.
        self.prr_start(flight);
        self.recover = self.snd_max;
        self.snd_nxt = self.snd_max;
        self.cold.high_rxt = self.snd_una;
        self.cold.rxt_mark = self.snd_max;
        self.flags |= TCB_F_RECOVERY | TCB_F_RETX_ONE;
        self.flags &= !TCB_F_RTT_TIMING;
        self.cold.counters.fast_retransmits += 1;
        self.cold.counters.retransmits += 1;
    }

    // ----- the early timer: tail loss probe, reordering window -----

    /// Arm, keep or stop the loss-probe / reorder timer after an ACK or a transmission.
    pub(super) fn rearm_early(&mut self, now: Instant) {
        let off = !self.has(TCB_F_SACK)
            || self.srtt == 0
            || self.snd_una == self.snd_max
            || self.has(TCB_F_PERSIST)
            || !self.sends_data();
        if off {
            self.cold.early = EarlyTimer::Off;
            return;
        }
        let t = now.total_micros();
        if self.cold.sb_len > 0 {
            // A hole below SACKed data that is not (yet) lost, or a retransmission
            // with data sent after it SACKed: give it a reordering window.
            let hs = self.sb_high_sacked();
            let (p, _) = self.sb_hole_from(self.sb_lost_end().max(self.high_rxt_off()));
            let undecided_hole = p < hs;
            let rxt_suspect = lt(self.snd_una, self.cold.high_rxt)
                && gt(self.snd_una.wrapping_add(hs), self.cold.rxt_mark);
            if undecided_hole || rxt_suspect {
                if !matches!(self.cold.early, EarlyTimer::Reorder { .. }) {
                    let reo = u64::from(self.srtt / 4).max(1000);
                    self.cold.early = EarlyTimer::Reorder {
                        at: t.saturating_add(reo as i64),
                    };
                }
                return;
            }
        }
        // Nothing left for SACK to decide: a tail loss probe gets the ACK clock going
        // again (also in recovery, where a lost retransmission with nothing sent after it
        // would otherwise wait for the RTO).
        if self.cold.tlp_out >= TLP_MAX || self.backoff > 0 || lt(self.snd_nxt, self.snd_max) {
            self.cold.early = EarlyTimer::Off;
            return;
        }
        // RFC 8985 section 7.2: PTO = 2 * SRTT (+ a delayed-ACK allowance for one segment).
        let flight = self.snd_max.wrapping_sub(self.snd_una);
        let extra: u64 = if flight <= self.smss() {
            200_000
        } else {
            2_000
        };
        // A probe whose ACK does not come (the probe or the ACK lost) is followed by
        // another after twice the wait, up to TLP_MAX, before the RTO.
        let pto = (2 * u64::from(self.srtt) + extra) << self.cold.tlp_out;
        let at = t.saturating_add(pto as i64);
        if at >= self.retx_at {
            // The RTO comes first anyway.
            self.cold.early = EarlyTimer::Off;
            return;
        }
        self.cold.early = EarlyTimer::Tlp { at };
    }

    /// The loss-probe / reorder timer expired.
    pub(super) fn on_early_timer(&mut self) {
        match core::mem::replace(&mut self.cold.early, EarlyTimer::Off) {
            EarlyTimer::Tlp { .. } => {
                self.cold.tlp_now = true;
                self.cold.tlp_out = self.cold.tlp_out.saturating_add(1);
            }
            EarlyTimer::Reorder { .. } if self.cold.sb_len > 0 => {
                let hs = self.snd_una.wrapping_add(self.sb_high_sacked());
                if gt(hs, self.cold.lost_floor) {
                    self.cold.lost_floor = hs;
                }
                let una_rxt = lt(self.snd_una, self.cold.high_rxt);
                let rxt_lost = una_rxt && gt(hs, self.cold.rxt_mark);
                if self.has(TCB_F_RECOVERY) {
                    if rxt_lost {
                        // Data sent after the latest retransmission arrived, the
                        // retransmitted hole did not: lost again, start a new pass.
                        self.cold.high_rxt = self.snd_una;
                        self.cold.rxt_mark = self.snd_max;
                    }
                } else if !lt(self.snd_nxt, self.snd_max) && (!una_rxt || rxt_lost) {
                    self.enter_sack_recovery();
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_timer_deadline() {
        assert_eq!(EarlyTimer::Off.deadline(), NONE_AT);
        assert_eq!(EarlyTimer::Tlp { at: 5 }.deadline(), 5);
        assert_eq!(EarlyTimer::Reorder { at: 7 }.deadline(), 7);
    }
}
