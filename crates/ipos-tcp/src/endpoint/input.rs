//! Segment arrival: parsing, the RFC 9293 state machine and the acceptability checks.
//!
//! Promises: a segment that does not parse, or whose ports are not this connection's,
//! returns an error and changes nothing but `bad_segments`. Every other segment is
//! judged in the order of RFC 9293 section 3.10.7.4 and then handed on: the ACK to
//! [`ack`](super::ack), text and FIN to [`reassembly`](super::reassembly).
//!
//! - SYN-SENT (RFC 9293 section 3.10.7.3): our SYN acknowledged, or a simultaneous
//!   open (the peer's SYN without ACK: we answer SYN-ACK from the same ISS).
//! - PAWS (RFC 7323 section 5.3 R1), except for a reordered pure ACK at `rcv_nxt`
//!   (as Linux's `tcp_disordered_ack`); TS.Recent updates per section 4.3 (R3).
//! - Sequence acceptability (RFC 9293 section 3.10.7.4, first check), with the special
//!   allowance for ACK / RST at `rcv_nxt` in a closed window; out-of-window segments
//!   get a duplicate ACK (a re-sent SYN-ACK in SYN-RECEIVED, a restarted 2MSL in
//!   TIME-WAIT), with a D-SACK block for data we already had (`dsack.rs`). For a
//!   segment without data, that ACK (like a PAWS drop's and a challenge ACK) goes
//!   out at most once per 500 ms (`Endpoint::oow_ack`, RFC 5961 section 7): no
//!   ACK storm between two endpoints that disagree on the sequence space.
//! - RFC 5961: a RST must be exactly at `rcv_nxt` (section 3.2), an in-window SYN in a
//!   synchronized state (section 4.2) and an ACK outside
//!   [`snd_una - max_snd_wnd`, `snd_max`] (section 5.2) get a challenge ACK.
//! - SYN-RECEIVED -> ESTABLISHED (or FIN-WAIT-1 if the application already closed)
//!   on an ACK of our SYN, which is when the send and receive buffers are enabled;
//!   any other ACK there draws a RST.
//! - A SYN in TIME-WAIT: `on_segment` answers it like any SYN in a synchronized state
//!   (the RFC 5961 challenge ACK); whether it may open a new incarnation instead is the
//!   owner's decision, asked through [`Endpoint::accepts_reuse`] (RFC 6191 section 2,
//!   RFC 1122 section 4.2.2.13), which changes nothing.

use smoltcp::time::Instant;

use super::{Endpoint, State, NONE_AT, TS_RECENT_MAX_AGE_MS};
use crate::segment::{Segment, SegmentError, ACK, FIN, RST, SYN};
use crate::seq::{ge, gt, le, lt};
use crate::tcb::*;

impl Endpoint {
    /// A received TCP segment (header + payload), checksum already verified by the caller.
    pub fn on_segment(&mut self, now: Instant, seg: &[u8]) -> Result<(), SegmentError> {
        let seg = match Segment::parse(seg) {
            Ok(s) => s,
            Err(e) => {
                self.cold.counters.bad_segments += 1;
                return Err(e);
            }
        };
        if seg.dst_port != self.flow.dst_port || seg.src_port != self.flow.src_port {
            self.cold.counters.bad_segments += 1;
            return Err(SegmentError::PortMismatch);
        }
        self.cold.counters.segs_in += 1;
        self.keepalive_heard(now);
        match self.state {
            State::Closed => {}
            State::SynSent => self.on_syn_sent(now, &seg),
            _ => self.on_other(now, &seg),
        }
        Ok(())
    }

    /// May this SYN open a new incarnation of the connection this endpoint holds in
    /// TIME-WAIT? (RFC 6191 section 2; RFC 1122 section 4.2.2.13.) `syn` is a whole TCP
    /// segment, checksum already verified by the caller. Changes nothing: the owner asks
    /// before it drops this endpoint and [`accept`](Endpoint::accept)s the SYN as a new
    /// connection; [`on_segment`](Endpoint::on_segment) itself keeps answering a SYN in
    /// TIME-WAIT with the RFC 5961 challenge ACK.
    ///
    /// True only when all of these hold:
    /// - this endpoint is in TIME-WAIT;
    /// - `syn` parses and is a plain SYN (SYN set; ACK, RST and FIN clear) with this
    ///   connection's ports;
    /// - if timestamps were negotiated on this connection and the SYN carries one: its
    ///   TSval is greater than TS.Recent (RFC 6191 section 2, modulo 2^32, RFC 7323
    ///   section 5.2); an equal TSval is refused;
    /// - otherwise (no timestamp on this connection, or none in the SYN): its sequence
    ///   number is greater than `rcv_nxt`, the end of what the old incarnation received
    ///   (RFC 1122 section 4.2.2.13, modulo 2^32, RFC 9293 section 3.4).
    ///
    /// False in every other state and for anything malformed.
    pub fn accepts_reuse(&self, syn: &[u8]) -> bool {
        if self.state != State::TimeWait {
            return false;
        }
        let Ok(seg) = Segment::parse(syn) else {
            return false;
        };
        if !seg.has(SYN) || seg.has(ACK) || seg.has(RST) || seg.has(FIN) {
            return false;
        }
        if seg.dst_port != self.flow.dst_port || seg.src_port != self.flow.src_port {
            return false;
        }
        match seg.timestamp {
            Some((tsval, _)) if self.has(TCB_F_TIMESTAMPS) => gt(tsval, self.ts_recent),
            _ => gt(seg.seq, self.rcv_nxt),
        }
    }

    /// SYN-SENT (RFC 9293 section 3.10.7.3): our SYN acknowledged (-> ESTABLISHED), or
    /// the peer's SYN alone (simultaneous open, -> SYN-RECEIVED).
    fn on_syn_sent(&mut self, now: Instant, seg: &Segment<'_>) {
        let iss = self.cold.iss;
        let ack_ok = seg.has(ACK) && gt(seg.ack, iss) && le(seg.ack, self.snd_max);
        if seg.has(ACK) && !ack_ok {
            if !seg.has(RST) {
                self.cold.pending_rst = Some((seg.ack, None));
            }
            return;
        }
        if seg.has(RST) {
            if ack_ok {
                self.cold.counters.rst_in += 1;
                self.enter_closed();
            }
            return;
        }
        if !seg.has(SYN) {
            return;
        }
        self.cold.irs = seg.seq;
        self.rcv_nxt = seg.seq.wrapping_add(1);
        self.rcv_adv = self.rcv_nxt;
        self.last_ack_sent = self.rcv_nxt;
        self.learn_syn_options(seg, now);
        if ack_ok {
            self.enable_buffers();
            self.on_syn_acked(now, seg);
            self.snd_una = seg.ack;
            if lt(self.snd_nxt, self.snd_una) {
                self.snd_nxt = self.snd_una;
            }
            self.set_snd_wnd(seg.window, 0, seg.seq, seg.ack);
            self.state = if self.has(TCB_F_FIN_QUEUED) {
                State::FinWait1
            } else {
                State::Established
            };
            self.retx_at = NONE_AT;
            self.ack_now();
        } else {
            // Simultaneous open: answer with SYN-ACK from iss.
            self.state = State::SynReceived;
            self.snd_nxt = self.snd_una;
            self.retx_at = NONE_AT;
            self.set_snd_wnd(seg.window, 0, seg.seq, iss);
            self.cold.syn_deadline = (now + self.cold.syn_received_timeout).total_micros();
        }
    }

    /// RTT sample and backoff reset when our SYN is acknowledged.
    fn on_syn_acked(&mut self, now: Instant, seg: &Segment<'_>) {
        self.backoff = 0;
        if let (true, Some((_, tsecr))) = (self.has(TCB_F_TIMESTAMPS), seg.timestamp) {
            let ms = self.ts_now(now).wrapping_sub(tsecr);
            if tsecr != 0 && ms < 60_000 {
                self.rtt_sample(ms.saturating_mul(1000));
            }
        } else if self.has(TCB_F_RTT_TIMING) {
            self.flags &= !TCB_F_RTT_TIMING;
            let r = (now - self.cold.rtt_start).total_micros();
            self.rtt_sample(r.min(u64::from(u32::MAX)) as u32);
        }
    }

    /// Every synchronized state and SYN-RECEIVED: the checks of RFC 9293 section 3.10.7.4
    /// in order (with PAWS and RFC 5961), then ACK, text and FIN.
    pub(super) fn on_other(&mut self, now: Instant, seg: &Segment<'_>) {
        let mut seg = *seg;
        if self.state == State::SynReceived
            && seg.has(SYN)
            && seg.has(ACK)
            && seg.seq == self.cold.irs
        {
            // Simultaneous open: the peer's SYN-ACK repeats the SYN we already
            // accepted; only its ACK (and anything after the SYN) is new.
            seg.flags &= !SYN;
            seg.seq = seg.seq.wrapping_add(1);
        }
        let seg = &seg;
        let ts_ok = self.has(TCB_F_TIMESTAMPS);
        // RFC 7323 PAWS (section 5.3 R1).
        if ts_ok && !seg.has(RST) {
            if let Some((tsval, _)) = seg.timestamp {
                let idle = (now - self.cold.ts_recent_age).total_millis() as i64;
                // Like Linux's tcp_disordered_ack(): a reordered pure ACK at rcv_nxt
                // cannot carry old data, so PAWS does not discard it (it still never
                // updates TS.Recent, see R3 below).
                let pure_ack = seg.payload.is_empty()
                    && seg.flags & (SYN | FIN) == 0
                    && seg.seq == self.rcv_nxt
                    && le(seg.ack, self.snd_una);
                if lt(tsval, self.ts_recent) && idle < TS_RECENT_MAX_AGE_MS && !pure_ack {
                    self.cold.counters.paws_drops += 1;
                    // As Linux does: old data that PAWS turned away is reported as a
                    // D-SACK (its sender may have retransmitted it needlessly).
                    let end = seg.seq.wrapping_add(seg.payload.len() as u32);
                    if !seg.payload.is_empty() && le(end, self.rcv_nxt) {
                        self.dsack_note(seg.seq, end);
                    }
                    if seg.seg_len() == 0 {
                        self.oow_ack(now);
                    } else {
                        self.ack_now();
                    }
                    return;
                }
            }
        }

        // Sequence acceptability (RFC 9293 3.10.7.4 first check).
        let seg_len = seg.seg_len();
        let wnd = self.rcv_wnd();
        let seq = seg.seq;
        let in_wnd = |s: u32| ge(s, self.rcv_nxt) && lt(s, self.rcv_nxt.wrapping_add(wnd));
        let acceptable = match (seg_len, wnd) {
            (0, 0) => seq == self.rcv_nxt,
            (0, _) => in_wnd(seq),
            (_, 0) => false,
            (n, _) => in_wnd(seq) || in_wnd(seq.wrapping_add(n - 1)),
        };
        // A segment at rcv_nxt with a closed window still carries a valid ACK/RST
        // (RFC 9293: "special allowance should be made to accept valid ACKs, URGs, and RSTs").
        let zero_wnd_at_edge = !acceptable && wnd == 0 && seq == self.rcv_nxt;
        if !acceptable && !zero_wnd_at_edge {
            if seg.has(RST) {
                return;
            }
            self.cold.counters.dup_segments += 1;
            if seg_len > 0 && le(seq.wrapping_add(seg_len), self.rcv_nxt) {
                self.dsack_note(seq, seq.wrapping_add(seg_len));
            }
            if self.state == State::SynReceived {
                // Our SYN-ACK was probably lost: send it again.
                self.snd_nxt = self.snd_una;
            } else if seg_len == 0 {
                // A pure ACK out of the window: answered, but not in a storm.
                self.oow_ack(now);
            } else {
                self.ack_now();
            }
            if self.state == State::TimeWait && seg.has(FIN) {
                self.enter_time_wait(now);
            }
            return;
        }

        // RST (RFC 5961 section 3).
        if seg.has(RST) {
            if seq == self.rcv_nxt {
                self.cold.counters.rst_in += 1;
                self.enter_closed();
            } else {
                self.challenge_ack(now);
            }
            return;
        }

        // RFC 7323 R3: remember the timestamp if the segment covers Last.ACK.sent.
        if ts_ok {
            if let Some((tsval, _)) = seg.timestamp {
                if le(seq, self.last_ack_sent) && ge(tsval, self.ts_recent) {
                    self.ts_recent = tsval;
                    self.cold.ts_recent_age = now;
                }
            }
        }

        // SYN in a synchronized state (RFC 5961 section 4).
        if seg.has(SYN) {
            self.challenge_ack(now);
            return;
        }

        if !seg.has(ACK) {
            return;
        }

        if self.state == State::SynReceived {
            if gt(seg.ack, self.snd_una) && le(seg.ack, self.snd_max) {
                // Synchronized: only now does the connection get its buffers.
                self.enable_buffers();
                self.state = if self.has(TCB_F_FIN_QUEUED) {
                    State::FinWait1
                } else {
                    State::Established
                };
                self.cold.syn_deadline = NONE_AT;
                self.set_snd_wnd(seg.window, self.snd_wscale, seq, seg.ack);
                self.on_syn_acked(now, seg);
                // The SYN's sequence number; the rest is ordinary ACK processing.
                self.snd_una = self.snd_una.wrapping_add(1);
                if lt(self.snd_nxt, self.snd_una) {
                    self.snd_nxt = self.snd_una;
                }
                if self.snd_una == self.snd_max {
                    self.retx_at = NONE_AT;
                }
            } else {
                self.cold.pending_rst = Some((seg.ack, None));
                return;
            }
        }

        // ACK acceptability (RFC 5961 section 5.2).
        if gt(seg.ack, self.snd_max) {
            self.challenge_ack(now);
            return;
        }
        if lt(seg.ack, self.snd_una.wrapping_sub(self.max_snd_wnd)) {
            self.challenge_ack(now);
            return;
        }
        self.process_ack(now, seg);
        if self.state == State::Closed {
            return;
        }

        // Segment text.
        if !seg.payload.is_empty() {
            if matches!(
                self.state,
                State::Established | State::FinWait1 | State::FinWait2
            ) && !self.has(TCB_F_FIN_RECEIVED)
            {
                self.process_data(now, seq, seg.payload);
            } else {
                self.ack_now();
            }
        }

        // FIN.
        if seg.has(FIN) {
            self.process_fin(now, seq.wrapping_add(seg.payload.len() as u32));
        }
    }
}
