//! What an acceptable ACK does on the sending side: the cumulative advance, RTT
//! samples, congestion control, duplicate ACKs and the peer's window.
//!
//! Promises: data is released from the send ring only once acknowledged; `cwnd`
//! never falls below one SMSS; the send window is taken only from a segment that is
//! not older than the one that last set it.
//!
//! - Cumulative ACK and the FIN-acknowledged transitions (RFC 9293 section 3.10.7.4,
//!   fifth check: FIN-WAIT-1 -> FIN-WAIT-2, CLOSING -> TIME-WAIT, LAST-ACK -> CLOSED).
//! - RTT: RFC 7323 section 4.1 (TSecr) with timestamps, else one Karn-timed segment at
//!   a time; SRTT / RTTVAR / RTO per RFC 6298 section 2, clamped to the configured bounds.
//! - Slow start (RFC 5681 section 3.1), congestion avoidance by the connection's
//!   algorithm ([`cc`](super::cc): CUBIC or NewReno); fast retransmit and
//!   NewReno fast recovery (RFC 5681 section 3.2, RFC 6582 section 3.2) with the
//!   section 4.1 ACK heuristic. With SACK, loss decisions belong to
//!   [`sack`](super::sack) (RFC 6675); an ACK carrying new SACK information counts as
//!   a duplicate (RFC 6675 section 2).
//! - Window update rule (RFC 9293 section 3.10.7.4: SND.WL1 / SND.WL2); a window that
//!   reopens ends the persist state.

use super::cc::CongestionControl;
use smoltcp::time::Instant;

use super::{Endpoint, State, NONE_AT};
use crate::segment::{Segment, FIN, SYN};
use crate::seq::{ge, gt, le, lt};
use crate::tcb::*;

impl Endpoint {
    /// An acceptable ACK (RFC 5961 section 5.2 already checked): cumulative advance, RTT,
    /// congestion control, SACK blocks, duplicate ACKs, window update, early-timer rearm.
    pub(super) fn process_ack(&mut self, now: Instant, seg: &Segment<'_>) {
        let ack = seg.ack;
        let smss = self.smss();
        let sack = self.has(TCB_F_SACK);
        let new_wnd = u32::from(seg.window) << self.snd_wscale;
        let advanced = gt(ack, self.snd_una);
        let mut delivered = 0u32;
        if advanced {
            let acked = ack.wrapping_sub(self.snd_una);
            let buffered = self.cold.snd.len() as u32;
            let data_acked = acked.min(buffered);
            delivered = data_acked;
            let fin_acked = self.has(TCB_F_FIN_SENT) && acked > buffered;
            self.cold.snd.consume(data_acked as usize);
            self.cold.snd.release_if_empty();
            // RFC 6582 section 4.1 ACK heuristic: remember whether the latest cumulative
            // advance was small (at most 4 SMSS).
            if acked <= 4 * smss {
                self.flags |= TCB_F_SMALL_ADVANCE;
            } else {
                self.flags &= !TCB_F_SMALL_ADVANCE;
            }

            // RTT (RFC 7323 section 4.1 with timestamps, else Karn-timed segment).
            if let (true, Some((_, tsecr))) = (self.has(TCB_F_TIMESTAMPS), seg.timestamp) {
                let ms = self.ts_now(now).wrapping_sub(tsecr);
                if tsecr != 0 && ms < 60_000 {
                    self.rtt_sample(ms.saturating_mul(1000));
                }
            } else if self.has(TCB_F_RTT_TIMING) && gt(ack, self.cold.rtt_seq) {
                self.flags &= !TCB_F_RTT_TIMING;
                let r = (now - self.cold.rtt_start).total_micros();
                self.rtt_sample(r.min(u64::from(u32::MAX)) as u32);
            }
            self.backoff = 0;

            // Congestion control (RFC 5681, NewReno RFC 6582, SACK RFC 6675).
            if self.has(TCB_F_RECOVERY) {
                if ge(ack, self.recover) {
                    // Full ACK: deflate (with SACK, PRR's end: cwnd = ssthresh).
                    let flight = self.snd_max.wrapping_sub(ack);
                    self.cwnd = if sack {
                        self.ssthresh
                    } else {
                        self.ssthresh.min(flight.max(smss) + smss)
                    };
                    self.flags &= !TCB_F_RECOVERY;
                    self.dupacks = 0;
                } else if !sack {
                    // Partial ACK: retransmit the next hole, partially deflate.
                    self.flags |= TCB_F_RETX_ONE;
                    self.cwnd = self.cwnd.saturating_sub(data_acked);
                    if data_acked >= smss {
                        self.cwnd = self.cwnd.saturating_add(smss);
                    }
                    self.cwnd = self.cwnd.max(smss);
                    self.cold.counters.retransmits += 1;
                }
                // With SACK a partial ACK only updates the scoreboard (RFC 6675 step B);
                // the pipe decides what goes out next.
            } else {
                self.dupacks = 0;
                if self.cwnd < self.ssthresh {
                    self.cwnd = self.cwnd.saturating_add(data_acked.min(smss));
                } else {
                    let (t, srtt) = (now.total_micros(), self.srtt);
                    self.cwnd = self.cold.cc.avoid(self.cwnd, data_acked, smss, t, srtt);
                }
            }

            self.snd_una = ack;
            if lt(self.snd_nxt, self.snd_una) {
                self.snd_nxt = self.snd_una;
            }
            self.sb_trim();
            if self.snd_una == self.snd_max {
                if !self.has(TCB_F_PERSIST) {
                    self.retx_at = NONE_AT;
                }
            } else {
                self.flags &= !TCB_F_PERSIST;
                self.arm_retx(now);
                self.sb_suspect_reneging(now);
            }

            if fin_acked {
                match self.state {
                    State::FinWait1 => {
                        self.state = State::FinWait2;
                        self.retx_at = NONE_AT;
                    }
                    State::Closing => self.enter_time_wait(now),
                    State::LastAck => self.enter_closed(),
                    _ => {}
                }
            }
        }

        // SACK blocks (RFC 2018), after the cumulative ACK moved `snd_una`.
        let mut newly_sacked = 0u32;
        let blocks = &seg.sack[..usize::from(seg.sack_blocks.min(4))];
        if let (true, Some((l, r))) = (sack, Endpoint::dsack_of(blocks, ack)) {
            self.on_dsack(l, r);
        }
        if sack && self.snd_una != self.snd_max {
            for &(l, r) in &seg.sack[..usize::from(seg.sack_blocks.min(4))] {
                newly_sacked = newly_sacked.saturating_add(self.sb_add(l, r));
            }
        }

        let classic_dup = !advanced
            && ack == self.snd_una
            && seg.payload.is_empty()
            && !seg.has(SYN)
            && !seg.has(FIN)
            && self.snd_una != self.snd_max
            && new_wnd == self.snd_wnd;
        // RFC 6675 section 2: with SACK, an ACK reporting new SACKed data is a duplicate.
        let sack_dup = newly_sacked > 0 && self.snd_una != self.snd_max;
        if (classic_dup || sack_dup) && self.state != State::Closed {
            self.cold.counters.dup_acks += 1;
            self.dupacks = self.dupacks.saturating_add(1);
            if sack {
                self.sack_loss_detection();
            } else if self.has(TCB_F_RECOVERY) {
                if self.dupacks > 3 {
                    self.cwnd = self.cwnd.saturating_add(smss);
                }
            } else if self.dupacks == 3
                && (gt(ack, self.recover) || self.cwnd > smss && self.has(TCB_F_SMALL_ADVANCE))
            {
                // RFC 6582 section 3.2 step 1, with the section 4.1 ACK heuristic: after
                // a small cumulative advance the dup ACKs below `recover` cannot come from
                // needless go-back-N retransmissions, so they signal a new loss.
                let flight = self.snd_max.wrapping_sub(self.snd_una);
                self.ssthresh = self.cold.cc.reduce(self.cwnd, flight, smss);
                self.recover = self.snd_max;
                self.cwnd = self.ssthresh + 3 * smss;
                self.flags |= TCB_F_RECOVERY | TCB_F_RETX_ONE;
                self.cold.counters.fast_retransmits += 1;
                self.cold.counters.retransmits += 1;
                self.flags &= !TCB_F_RTT_TIMING;
            }
        }

        // Window update (RFC 9293: SND.WL1 < SEG.SEQ or (== and SND.WL2 =< SEG.ACK)).
        if lt(self.snd_wl1, seg.seq) || (self.snd_wl1 == seg.seq && le(self.snd_wl2, ack)) {
            self.set_snd_wnd(seg.window, self.snd_wscale, seg.seq, ack);
            if self.snd_wnd > 0 && self.has(TCB_F_PERSIST) {
                self.flags &= !(TCB_F_PERSIST | TCB_F_PROBE_NOW);
                self.retx_at = NONE_AT;
                self.backoff = 0;
            }
        }
        if advanced {
            self.cold.tlp_out = 0;
        }
        if sack && self.has(TCB_F_RECOVERY) {
            // RFC 6937: what this ACK lets out during recovery.
            self.prr_on_ack(delivered.saturating_add(newly_sacked));
        }
        self.rearm_early(now);
    }

    /// One RTT measurement, microseconds: SRTT / RTTVAR / RTO per RFC 6298 section 2
    /// (RTO at least SRTT + 1 ms, clamped to the configured bounds).
    pub(super) fn rtt_sample(&mut self, r_us: u32) {
        let r = r_us.max(1);
        if self.srtt == 0 {
            self.srtt = r;
            self.rttvar = r / 2;
        } else {
            let delta = self.srtt.abs_diff(r);
            self.rttvar = ((3 * u64::from(self.rttvar) + u64::from(delta)) / 4) as u32;
            self.srtt = ((7 * u64::from(self.srtt) + u64::from(r)) / 8) as u32;
        }
        let rto = u64::from(self.srtt) + u64::from(self.rttvar.saturating_mul(4)).max(1000);
        self.rto = rto.clamp(
            u64::from(self.cold.min_rto_us),
            u64::from(self.cold.max_rto_us),
        ) as u32;
    }
}
