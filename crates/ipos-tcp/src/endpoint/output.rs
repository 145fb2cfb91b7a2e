//! Transmit: what goes out next, and the bytes of every segment we write.
//!
//! Promises: at most one whole segment per `poll_transmit` call, written into the
//! caller's buffer with a correct checksum over the IPv4 pseudo-header, never larger
//! than the buffer or the peer's MSS; a pending RST first, then the SYN / SYN-ACK, then
//! data, then a window probe, then a bare ACK. The advertised right edge never shrinks
//! and always fits in the receive ring (one window-scale unit is held in reserve for
//! rounding).
//!
//! - Sending window: min(cwnd, the peer's window) from `snd_nxt` (RFC 9293 section
//!   3.8.6, RFC 5681); limited transmit (RFC 3042) without SACK; the fast retransmit of
//!   `snd_una` (RFC 5681 section 3.2, RFC 6582).
//! - SACK recovery (RFC 6675 section 5 step C): NextSeg() rules 1-3 within cwnd - pipe;
//!   after an RTO the go-back pass skips SACKed data; tail loss probes (RFC 8985
//!   section 7.3: new data if possible, else the last segment again).
//! - Sender SWS avoidance (RFC 9293 section 3.8.6.2.1, no Nagle delay) and the persist
//!   override (RFC 1122 section 4.2.3.4); receiver SWS avoidance for the window we
//!   advertise (RFC 1122 section 4.2.3.3, RFC 9293 section 3.8.6.2.2).
//! - Options: MSS, window scale, SACK-permitted and timestamps on the SYN (RFC 9293
//!   section 3.7.1, RFC 7323 sections 2 and 3, RFC 2018 section 2); timestamps and SACK
//!   blocks on other segments (RFC 7323 section 3, RFC 2018 section 4: most recent
//!   first, up to 3 next to a timestamp, 4 without, as many as fit).
//! - RSTs: `seq` and `ack` as RFC 9293 section 3.10.7 says for the case at hand.
//! - The owner's receive-window cap ([`Endpoint::set_rcv_window_cap`]): while set, the
//!   window we advertise (the SYN's and SYN-ACK's too) reaches at most `cap` beyond
//!   `rcv_nxt`, less the bytes not yet read (as if the buffer held `cap` bytes), within
//!   the same promise (the right edge never moves left, RFC 9293 section 3.8.6; one
//!   scale unit of rounding, RFC 7323 section 2.4); lifting it opens the window with a
//!   prompt update when that is not silly (RFC 9293 section 3.8.6.2.2).

use smoltcp::time::Instant;

use super::{Endpoint, State, NONE_AT};
use crate::segment::{
    fill_checksum, write_header, TcpHeader, TcpOptions, ACK, FIN, HEADER_LEN, PSH, RST, SYN,
};
use crate::seq::{gt, lt};
use crate::tcb::*;

impl Endpoint {
    /// Writes at most one whole TCP segment into `out` and returns its length; `None`
    /// when there is nothing to send now. Handles expired timers. Call until `None`.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        self.on_timers(now);
        if out.len() < HEADER_LEN + 20 {
            return None;
        }
        if let Some((seq, ack)) = self.cold.pending_rst.take() {
            let flags = if ack.is_some() { RST | ACK } else { RST };
            let saved = self.rcv_nxt;
            if let Some(a) = ack {
                self.rcv_nxt = a;
            }
            let n = self.write_segment(out, seq, flags, TcpOptions::default(), 0, 0);
            self.rcv_nxt = saved;
            self.cold.counters.rst_out += 1;
            return Some(n);
        }
        match self.state {
            State::Closed => return None,
            State::SynSent | State::SynReceived => return self.send_syn(now, out),
            _ => {}
        }
        if let Some(n) = self.send_data(now, out) {
            return Some(n);
        }
        if let Some(n) = self.send_keepalive(now, out) {
            return Some(n);
        }
        if self.has(TCB_F_PROBE_NOW) {
            self.flags &= !TCB_F_PROBE_NOW;
            self.cold.counters.window_probes += 1;
            let opts = self.seg_opts(now, out.len());
            let seq = self.snd_una.wrapping_sub(1);
            return Some(self.write_segment(out, seq, ACK, opts, 0, 0));
        }
        if self.has(TCB_F_ACK_NOW) {
            let opts = self.seg_opts(now, out.len());
            return Some(self.write_segment(out, self.snd_nxt, ACK, opts, 0, 0));
        }
        None
    }

    /// SYN (active open) or SYN-ACK (SYN-RECEIVED), with our options; again after an RTO.
    fn send_syn(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        let passive_reply = self.state == State::SynReceived;
        if self.snd_nxt != self.snd_una {
            // SYN in flight; in SYN-RECEIVED an owed ACK is answered by the SYN-ACK path only.
            self.flags &= !TCB_F_ACK_NOW;
            return None;
        }
        let iss = self.cold.iss;
        let opts = TcpOptions {
            mss: Some(self.mss),
            wscale: if self.has(TCB_F_WSCALE) {
                Some(self.rcv_wscale)
            } else {
                None
            },
            sack_permitted: self.has(TCB_F_SACK),
            timestamp: if self.has(TCB_F_TIMESTAMPS) {
                Some((
                    self.ts_now(now),
                    if passive_reply { self.ts_recent } else { 0 },
                ))
            } else {
                None
            },
            ..TcpOptions::default()
        };
        let flags = if passive_reply { SYN | ACK } else { SYN };
        if self.snd_max != iss {
            self.cold.counters.retransmits += 1;
        } else if !self.has(TCB_F_TIMESTAMPS) {
            self.flags |= TCB_F_RTT_TIMING;
            self.cold.rtt_seq = iss;
            self.cold.rtt_start = now;
        }
        let n = self.write_segment(out, iss, flags, opts, 0, 0);
        self.snd_nxt = iss.wrapping_add(1);
        self.snd_max = self.snd_nxt;
        if self.retx_at == NONE_AT {
            self.arm_retx(now);
        }
        Some(n)
    }

    /// The next data segment, in priority order: owed fast retransmit, tail loss probe,
    /// SACK recovery (NextSeg), then new data or the go-back-N pass within cwnd.
    fn send_data(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        if !self.sends_data() {
            return None;
        }
        let opts = self.seg_opts(now, out.len());
        let hlen = HEADER_LEN + opts.len();
        let room = (out.len() - hlen) as u32;
        // Options beyond the negotiated ones (SACK blocks) come out of the payload.
        let mss = u32::from(self.peer_mss)
            .saturating_sub(opts.len() as u32)
            .min(self.smss())
            .min(room)
            .max(1);
        let buffered = self.cold.snd.len() as u32;
        let fin_queued = self.has(TCB_F_FIN_QUEUED);
        let sack = self.has(TCB_F_SACK);

        if self.has(TCB_F_RETX_ONE) {
            self.flags &= !TCB_F_RETX_ONE;
            // With SACK, only the hole at snd_una (up to the first SACKed range).
            let hole = if sack {
                self.sb_hole_from(0).1
            } else {
                u32::MAX
            };
            let len = mss.min(buffered).min(hole);
            let fin = fin_queued && self.has(TCB_F_FIN_SENT) && len == buffered;
            if len > 0 || fin {
                let mut flags = ACK;
                if fin {
                    flags |= FIN;
                }
                let n = self.write_segment(out, self.snd_una, flags, opts, 0, len as usize);
                let end = self.snd_una.wrapping_add(len + u32::from(fin));
                if gt(end, self.cold.high_rxt) {
                    self.cold.high_rxt = end;
                }
                self.cold.rxt_mark = self.snd_max;
                if self.retx_at == NONE_AT {
                    self.arm_retx(now);
                }
                self.rearm_early(now);
                return Some(n);
            }
        }

        if self.cold.tlp_now {
            // Tail loss probe: the last segment sent again. RFC 8985 section 7.3
            // prefers a new segment, but when only the ACKs were lost (the common
            // tail event on a small window) a receiver holds the ACK of one new
            // segment for its delayed-ACK time, while a duplicate it answers at
            // once (RFC 9293 section 3.10.7.4; Linux adds a D-SACK block).
            self.cold.tlp_now = false;
            if self.snd_una != self.snd_max {
                let f = self.snd_max.wrapping_sub(self.snd_una);
                let p = f.min(buffered).saturating_sub(mss);
                if let Some(n) = self.send_retransmission(now, out, opts, (p, f), mss, true) {
                    return Some(n);
                }
            }
        }

        if sack && self.has(TCB_F_RECOVERY) {
            // RFC 6675 section 5 step C: send while cwnd - pipe allows, choosing with NextSeg().
            let avail = self.cwnd.saturating_sub(self.sb_pipe());
            let from = self.high_rxt_off();
            // Rule 1: the first lost hole above HighRxt.
            let (p, e) = self.sb_hole_from(from);
            if p < self.sb_lost_end() {
                if avail >= mss.min(e - p) {
                    return self.send_retransmission(now, out, opts, (p, e), mss, false);
                }
                return None;
            }
            // Rule 2: new data.
            if let Some(n) = self.send_new(now, out, opts, mss, avail, u32::MAX) {
                return Some(n);
            }
            // Rule 3: a hole below the highest SACKed byte, not yet deemed lost.
            if p < self.sb_high_sacked() && avail >= mss.min(e - p) {
                return self.send_retransmission(now, out, opts, (p, e), mss, false);
            }
            return None;
        }

        let mut hole_end = u32::MAX;
        let cwnd_avail = if sack {
            if lt(self.snd_nxt, self.snd_max) {
                // Going back after an RTO: skip what the receiver SACKed.
                let (p, e) = self.sb_hole_from(self.off(self.snd_nxt));
                self.snd_nxt = self.snd_una.wrapping_add(p);
                if lt(self.snd_nxt, self.snd_max) {
                    hole_end = e - p;
                }
            }
            let sent_off = self.off(self.snd_nxt);
            let in_flight = sent_off - self.sb_sacked_below(sent_off);
            self.cwnd.saturating_sub(in_flight)
        } else {
            // Limited transmit (RFC 3042): the first two duplicate ACKs each let one new
            // segment out beyond cwnd, so small windows still produce a third dup ACK.
            let lt_extra = if self.has(TCB_F_RECOVERY) || lt(self.snd_nxt, self.snd_max) {
                0
            } else {
                u32::from(self.dupacks.min(2)) * self.smss()
            };
            let sent_off = self.off(self.snd_nxt);
            self.cwnd.saturating_add(lt_extra).saturating_sub(sent_off)
        };
        self.send_new(now, out, opts, mss, cwnd_avail, hole_end)
    }

    /// Send from `snd_nxt` (new data, or going back after an RTO): at most `cwnd_avail`
    /// and `max_len` bytes.
    fn send_new(
        &mut self,
        now: Instant,
        out: &mut [u8],
        opts: TcpOptions,
        mss: u32,
        cwnd_avail: u32,
        max_len: u32,
    ) -> Option<usize> {
        let buffered = self.cold.snd.len() as u32;
        let fin_queued = self.has(TCB_F_FIN_QUEUED);
        let sent_off = self.snd_nxt.wrapping_sub(self.snd_una);
        if sent_off > buffered {
            return None; // FIN already sent, nothing new
        }
        let unsent = buffered - sent_off;
        let wnd_edge = self.snd_una.wrapping_add(self.snd_wnd);
        let usable = if gt(wnd_edge, self.snd_nxt) {
            wnd_edge.wrapping_sub(self.snd_nxt)
        } else {
            0
        };
        let seq = self.snd_nxt;
        let retransmission = lt(seq, self.snd_max);
        let len = unsent.min(usable).min(cwnd_avail).min(mss).min(max_len);
        let all = len == unsent;
        let send_fin = fin_queued && all && !self.has(TCB_F_FIN_SENT)
            || fin_queued && all && self.has(TCB_F_FIN_SENT) && retransmission;
        // Sender-side silly window avoidance (RFC 9293 3.8.6.2.1), no Nagle delay.
        // When the persist timer fires with a small but open window, send what fits
        // (RFC 1122 4.2.3.4 override) instead of waiting forever. A retransmission
        // that fills a hole up to a SACKed range is never silly.
        let sws_ok = len == mss
            || all
            || len >= self.max_snd_wnd / 2
            || self.has(TCB_F_PROBE_NOW) && len > 0
            || len > 0 && len == max_len;
        if (len == 0 || !sws_ok) && !send_fin {
            if unsent > 0
                && self.snd_una == self.snd_max
                && self.retx_at == NONE_AT
                && !self.has(TCB_F_PERSIST)
            {
                self.flags |= TCB_F_PERSIST;
                self.arm_retx(now);
            }
            return None;
        }
        let mut flags = ACK;
        if len > 0 && all {
            flags |= PSH;
        }
        if send_fin {
            flags |= FIN;
        }
        if retransmission {
            self.cold.counters.retransmits += 1;
            let end = seq.wrapping_add(len + u32::from(send_fin));
            if gt(end, self.cold.high_rxt) {
                self.cold.high_rxt = end;
            }
            self.cold.rxt_mark = self.snd_max;
        } else {
            self.cold.counters.bytes_out += u64::from(len);
            if !self.has(TCB_F_TIMESTAMPS) && !self.has(TCB_F_RTT_TIMING) && len > 0 {
                self.flags |= TCB_F_RTT_TIMING;
                self.cold.rtt_seq = seq;
                self.cold.rtt_start = now;
            }
        }
        let n = self.write_segment(out, seq, flags, opts, sent_off as usize, len as usize);
        self.snd_nxt = seq.wrapping_add(len + u32::from(send_fin));
        if gt(self.snd_nxt, self.snd_max) {
            self.snd_max = self.snd_nxt;
        }
        if send_fin {
            self.flags |= TCB_F_FIN_SENT;
        }
        self.flags &= !TCB_F_PROBE_NOW;
        if self.has(TCB_F_PERSIST) {
            self.flags &= !TCB_F_PERSIST;
            self.retx_at = NONE_AT;
        }
        if self.retx_at == NONE_AT {
            self.arm_retx(now);
        }
        self.rearm_early(now);
        Some(n)
    }

    /// Retransmit from offset `p` (from `snd_una`) up to `hole_end`, at most `mss`
    /// bytes; with FIN if the hole covers it. Updates HighRxt and the loss mark.
    fn send_retransmission(
        &mut self,
        now: Instant,
        out: &mut [u8],
        opts: TcpOptions,
        (p, hole_end): (u32, u32),
        mss: u32,
        probe: bool,
    ) -> Option<usize> {
        let buffered = self.cold.snd.len() as u32;
        let len = hole_end
            .saturating_sub(p)
            .min(mss)
            .min(buffered.saturating_sub(p));
        let fin = self.has(TCB_F_FIN_SENT) && p + len == buffered && hole_end > buffered;
        if len == 0 && !fin {
            return None;
        }
        let flags = if fin { ACK | FIN } else { ACK };
        let seq = self.snd_una.wrapping_add(p);
        let n = self.write_segment(out, seq, flags, opts, p as usize, len as usize);
        let end = seq.wrapping_add(len + u32::from(fin));
        if !probe {
            if gt(end, self.cold.high_rxt) {
                self.cold.high_rxt = end;
            }
            self.cold.rxt_mark = self.snd_max;
        }
        self.cold.counters.retransmits += 1;
        self.flags &= !TCB_F_RTT_TIMING;
        if self.retx_at == NONE_AT {
            self.arm_retx(now);
        }
        self.rearm_early(now);
        Some(n)
    }

    /// Options for a non-SYN segment: timestamps and, when SACK was negotiated and data
    /// is held out of order, SACK blocks (most recently changed first, RFC 2018: up to 3
    /// with timestamps, 4 without), as many as fit in `out_len` with 8 payload bytes spare.
    pub(super) fn seg_opts(&self, now: Instant, out_len: usize) -> TcpOptions {
        let mut o = TcpOptions {
            timestamp: self.ts_opt(now),
            ..TcpOptions::default()
        };
        let have = self.cold.ooo_len as usize;
        let dsack = self.cold.dsack.filter(|_| self.has(TCB_F_SACK));
        if self.has(TCB_F_SACK) && (have > 0 || dsack.is_some()) {
            let max = if o.timestamp.is_some() { 3 } else { 4 };
            let fit = out_len.saturating_sub(HEADER_LEN + o.len() + 4 + 8) / 8;
            let room = max.min(fit);
            // RFC 2883: the D-SACK block first, then the out-of-order ranges.
            let mut n = 0;
            if let Some(d) = dsack {
                if room > 0 {
                    o.sack[0] = d;
                    n = 1;
                }
            }
            let k = have.min(room - n.min(room));
            o.sack[n..n + k].copy_from_slice(&self.cold.ooo[..k]);
            o.sack_n = (n + k) as u8;
        }
        o
    }

    /// The timestamp option (TSval, TSecr = TS.Recent) when negotiated.
    fn ts_opt(&self, now: Instant) -> Option<(u32, u32)> {
        if self.has(TCB_F_TIMESTAMPS) {
            Some((self.ts_now(now), self.ts_recent))
        } else {
            None
        }
    }

    /// Cap the window this endpoint advertises: while `cap` is `Some`, the right edge
    /// it announces reaches at most `cap` bytes beyond `rcv_nxt`, less the received
    /// bytes the application has not consumed yet (the receive buffer behaves as if it
    /// held `cap` bytes, RFC 9293 section 3.8.6: the window is the room the receiver
    /// offers), so that at most about `cap` bytes pile up unread. An edge already
    /// advertised is never taken back (RFC 9293 section 3.8.6: the right edge does not
    /// move left); as for every window, one window-scale unit of rounding up is
    /// allowed (RFC 7323 section 2.4). It applies from the very next segment sent,
    /// so set right after [`accept`](Endpoint::accept) (or
    /// [`connect`](Endpoint::connect)) it caps the SYN-ACK's (SYN's) window too. While
    /// capped, received bytes beyond the edge the peer was told are not taken (RFC 9293
    /// section 3.10.7.4: text beyond the window is trimmed) and so never acknowledged.
    ///
    /// `None` lifts the cap: the window opens to the free receive buffer on the next
    /// segment sent, and if it thereby grows by at least the receiver's SWS threshold
    /// (RFC 9293 section 3.8.6.2.2, RFC 1122 section 4.2.3.3) a window update is sent
    /// at once, as after an application read.
    ///
    /// Not carried by the TCB: [`export`](Endpoint::export) reports the window actually
    /// advertised and an [`import`](Endpoint::import)ed endpoint starts uncapped.
    pub fn set_rcv_window_cap(&mut self, cap: Option<u32>) {
        self.cold.rcv_wnd_cap = cap;
        self.window_update_if_grown();
    }

    /// The receive-window cap set by [`Endpoint::set_rcv_window_cap`], if any.
    pub fn rcv_window_cap(&self) -> Option<u32> {
        self.cold.rcv_wnd_cap
    }

    /// The most the window may reach beyond `rcv_nxt` under the cap: the cap less the
    /// received bytes the application has not consumed (`u32::MAX` when uncapped).
    fn capped_room(&self) -> u32 {
        match self.cold.rcv_wnd_cap {
            Some(cap) => cap.saturating_sub(self.cold.rcv.len().min(u32::MAX as usize) as u32),
            None => u32::MAX,
        }
    }

    /// Receiver SWS threshold (RFC 9293 section 3.8.6.2.2, RFC 1122 section 4.2.3.3):
    /// the window is moved right by at least min(buffer / 2, MSS), the buffer being
    /// the receive ring, or the cap while one is set.
    pub(super) fn rcv_sws(&self) -> u32 {
        let buf = self.cold.rcv.cap() as u32;
        let buf = self.cold.rcv_wnd_cap.map_or(buf, |c| buf.min(c));
        (buf / 2).min(u32::from(self.mss)).max(1)
    }

    /// After the room for the window grew (the application read, the cap was lifted or
    /// raised): owe a window update now if the edge would move right by at least the
    /// SWS threshold, or the window reopens from zero (RFC 9293 section 3.8.6.2.2).
    /// Only while the peer may still send.
    pub(super) fn window_update_if_grown(&mut self) {
        if !matches!(
            self.state,
            State::Established | State::FinWait1 | State::FinWait2
        ) || self.has(TCB_F_FIN_RECEIVED)
        {
            return;
        }
        let before = self.rcv_adv;
        let (_, edge) = self.window_to_advertise();
        if gt(edge, before) && (edge.wrapping_sub(before) >= self.rcv_sws() || self.rcv_wnd() == 0)
        {
            self.ack_now();
        }
    }

    /// Our window field and the new right edge; never shrinks the right edge and
    /// avoids silly-window advertisements (RFC 1122 4.2.3.3); within the owner's cap
    /// if one is set ([`Endpoint::set_rcv_window_cap`]).
    pub(super) fn window_to_advertise(&self) -> (u16, u32) {
        let ws = self.rcv_wscale;
        // Keep one scale unit in reserve: when the old right edge is re-advertised its
        // field is rounded *up* (a window must not shrink), and the reserve guarantees
        // the peer's view of the edge still fits in the ring.
        let free = (self.cold.rcv.free() as u64)
            .saturating_sub((1u64 << ws) - 1)
            .min(65535u64 << ws)
            .min(u64::from(self.capped_room())) as u32;
        let cand_field = free >> ws;
        let cand_edge = self.rcv_nxt.wrapping_add(cand_field << ws);
        let old = self.rcv_wnd();
        let sws = self.rcv_sws();
        let old_field = old.div_ceil(1 << ws);
        let field = if gt(cand_edge, self.rcv_adv) && cand_edge.wrapping_sub(self.rcv_adv) >= sws
            || old == 0 && cand_field > 0 && free >= sws
        {
            cand_field.max(old_field)
        } else {
            old_field
        };
        let field = field.min(65535);
        let edge = self.rcv_nxt.wrapping_add(field << ws);
        // Rounding up the old edge does not move our promise (no compounding drift).
        let edge = if gt(edge, self.rcv_adv) && field > old_field {
            edge
        } else if gt(self.rcv_adv, self.rcv_nxt) {
            self.rcv_adv
        } else {
            self.rcv_nxt.wrapping_add(field << ws)
        };
        (field as u16, edge)
    }

    /// Write one segment: header, options, `data_len` send-ring bytes from offset
    /// `data_off` (from `snd_una`), checksum. Sending an ACK records what it acknowledged
    /// and advertised and settles any owed or delayed ACK.
    pub(super) fn write_segment(
        &mut self,
        out: &mut [u8],
        seq: u32,
        flags: u8,
        opts: TcpOptions,
        data_off: usize,
        data_len: usize,
    ) -> usize {
        if self.has(TCB_F_RECOVERY) {
            self.prr_sent(data_len);
        }
        // A D-SACK block is reported once (seg_opts put it in this segment's options).
        self.cold.dsack = None;
        let (window, edge) = if flags & SYN != 0 {
            // Never scaled (RFC 7323 section 2.2); within the owner's cap if one is set,
            // but never below what an earlier SYN-ACK advertised.
            let w = (self.cold.rcv.free() as u32)
                .min(65535)
                .min(self.capped_room())
                .max(self.rcv_wnd().min(65535));
            (w as u16, self.rcv_nxt.wrapping_add(w))
        } else if flags & RST != 0 {
            (0, self.rcv_adv)
        } else {
            self.window_to_advertise()
        };
        let ack = if flags & ACK != 0 { self.rcv_nxt } else { 0 };
        // Our flow is named in the direction the peer sends: we write dst -> src.
        let h = TcpHeader {
            src_port: self.flow.dst_port,
            dst_port: self.flow.src_port,
            seq,
            ack,
            flags,
            window,
        };
        let hlen = write_header(out, &h, &opts);
        let (a, b) = self.cold.snd.range(data_off, data_len);
        out[hlen..hlen + a.len()].copy_from_slice(a);
        out[hlen + a.len()..hlen + a.len() + b.len()].copy_from_slice(b);
        let total = hlen + a.len() + b.len();
        fill_checksum(self.flow.dst_addr, self.flow.src_addr, &mut out[..total]);
        if flags & ACK != 0 && flags & RST == 0 {
            // The edge the peer reads from this segment (the field rounds the old edge
            // up), and the farthest one it has been told, kept relative to `rcv_adv`.
            let shift = if flags & SYN != 0 { 0 } else { self.rcv_wscale };
            let told = self.rcv_nxt.wrapping_add(u32::from(window) << shift);
            let told_before = self.rcv_adv.wrapping_add(self.cold.rcv_adv_slack);
            let told_max = if gt(told, told_before) {
                told
            } else {
                told_before
            };
            self.cold.rcv_adv_slack = if gt(told_max, edge) {
                told_max.wrapping_sub(edge)
            } else {
                0
            };
            self.last_ack_sent = self.rcv_nxt;
            self.rcv_adv = edge;
            self.flags &= !TCB_F_ACK_NOW;
            self.delack_at = NONE_AT;
        }
        self.cold.counters.segs_out += 1;
        total
    }
}
