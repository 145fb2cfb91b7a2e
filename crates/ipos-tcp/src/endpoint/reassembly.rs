//! Receiving: in-order data into the receive ring, out-of-order ranges, and the FIN.
//!
//! Promises: nothing is written beyond the receive ring's free space (so never beyond
//! the window we advertised), nor, while the owner caps the window
//! ([`Endpoint::set_rcv_window_cap`]), beyond the farthest right edge the peer was
//! told; `rcv_nxt` moves only over bytes that are in the ring, in order. Out-of-order
//! data waits in the ring itself, described by at most `MAX_OOO` ranges kept most
//! recently changed first, which is the order of the SACK blocks we send (RFC 2018
//! section 4); with no room to describe a range the data is simply not acknowledged
//! and the peer retransmits it. A FIN beyond a gap is remembered and accepted once the
//! data in front of it arrives. Out-of-order data is not carried by `export`: it was
//! never acknowledged cumulatively. It may have been SACKed, though, so whoever takes
//! the connection over should get it (`Endpoint::ooo_range`); one that does not has
//! reneged, which the peer survives (RFC 2018 section 8) at the cost of an RTO.
//!
//! - Segment text (RFC 9293 section 3.10.7.4, seventh check), trimmed to `rcv_nxt`.
//! - ACK policy: immediately for out-of-order data, when a gap is filled and every
//!   second full-sized segment; otherwise delayed (RFC 1122 section 4.2.3.2,
//!   RFC 5681 section 4.2).
//! - FIN (RFC 9293 section 3.10.7.4, eighth check): ESTABLISHED -> CLOSE-WAIT,
//!   FIN-WAIT-1 -> CLOSING (or TIME-WAIT if our FIN is acknowledged too),
//!   FIN-WAIT-2 -> TIME-WAIT; a repeated FIN in TIME-WAIT restarts the 2MSL timer.

use smoltcp::time::Instant;

use super::{Endpoint, State, MAX_OOO, NONE_AT};
use crate::seq::{ge, gt, le, lt};
use crate::tcb::*;

impl Endpoint {
    /// Segment text in ESTABLISHED / FIN-WAIT-1 / FIN-WAIT-2: trimmed to `rcv_nxt` and to
    /// the free ring space, delivered in order or held out of order; schedules the ACK.
    pub(super) fn process_data(&mut self, now: Instant, seq: u32, payload: &[u8]) {
        let mut seq = seq;
        let mut data = payload;
        if lt(seq, self.rcv_nxt) {
            let d = self.rcv_nxt.wrapping_sub(seq) as usize;
            if d >= data.len() {
                self.cold.counters.dup_segments += 1;
                self.dsack_note(seq, seq.wrapping_add(data.len() as u32));
                self.ack_now();
                return;
            }
            self.dsack_note(seq, self.rcv_nxt);
            data = &data[d..];
            seq = self.rcv_nxt;
        }
        let off = seq.wrapping_sub(self.rcv_nxt) as usize;
        let mut space = self.cold.rcv.free();
        if self.cold.rcv_wnd_cap.is_some() {
            // Capped (`set_rcv_window_cap`): nothing beyond the farthest edge the peer
            // was told is taken (RFC 9293 section 3.10.7.4 trims text to the window).
            let told = self.rcv_adv.wrapping_add(self.cold.rcv_adv_slack);
            let wnd = if gt(told, self.rcv_nxt) {
                told.wrapping_sub(self.rcv_nxt)
            } else {
                0
            };
            space = space.min(wnd as usize);
        }
        if off >= space {
            self.ack_now();
            return;
        }
        let n = data.len().min(space - off);
        let data = &data[..n];
        self.cold.rcv.write_at(off, data);
        if off == 0 {
            self.cold.rcv.commit(n);
            self.rcv_nxt = self.rcv_nxt.wrapping_add(n as u32);
            self.cold.counters.bytes_in += n as u64;
            let had_ooo = self.cold.ooo_len > 0;
            if had_ooo {
                self.merge_ooo();
            }
            self.keep_edge_ahead();
            if had_ooo || self.rcv_nxt.wrapping_sub(self.last_ack_sent) >= 2 * self.rmss() {
                self.ack_now();
            } else if self.delack_at == NONE_AT {
                self.delack_at = (now + self.cold.delayed_ack).total_micros();
            }
            if self.cold.ooo_fin == Some(self.rcv_nxt) {
                self.accept_fin(now);
            }
        } else {
            self.cold.counters.ooo_segments += 1;
            self.insert_ooo(seq, seq.wrapping_add(n as u32));
            self.ack_now();
        }
    }

    /// After `rcv_nxt` moved: a peer that sent beyond the advertised right edge
    /// (the ring had room for it) used up the window; the edge moves to `rcv_nxt`
    /// instead of staying behind it, so that the window is never negative. That is
    /// all a TCB can carry (`rcv_wnd` >= 0): `import(export(s))` then chooses its
    /// next window exactly as `s` does. The farthest edge the peer was told stays.
    fn keep_edge_ahead(&mut self) {
        if gt(self.rcv_nxt, self.rcv_adv) {
            let told = self.rcv_adv.wrapping_add(self.cold.rcv_adv_slack);
            self.cold.rcv_adv_slack = if gt(told, self.rcv_nxt) {
                told.wrapping_sub(self.rcv_nxt)
            } else {
                0
            };
            self.rcv_adv = self.rcv_nxt;
        }
    }

    /// Remember [start, end) as held out of order. The ranges are kept most recently
    /// changed first: that is the order of the SACK blocks we send (RFC 2018 section 4).
    fn insert_ooo(&mut self, start: u32, end: u32) {
        let c = &mut *self.cold;
        let mut s = start;
        let mut e = end;
        // Merge with every overlapping / adjacent range, keeping the others in order.
        let n = c.ooo_len as usize;
        let mut w = 0;
        for i in 0..n {
            let (a, b) = c.ooo[i];
            if le(a, e) && ge(b, s) {
                if lt(a, s) {
                    s = a;
                }
                if gt(b, e) {
                    e = b;
                }
            } else {
                c.ooo[w] = c.ooo[i];
                w += 1;
            }
        }
        if w < MAX_OOO {
            c.ooo.copy_within(0..w, 1);
            c.ooo[0] = (s, e);
            w += 1;
        }
        // else: no room to remember it; the data is simply not acknowledged later and
        // the peer retransmits it.
        c.ooo_len = w as u8;
    }

    /// After `rcv_nxt` moved: deliver every held range it now reaches.
    fn merge_ooo(&mut self) {
        loop {
            let mut progressed = false;
            let n = self.cold.ooo_len as usize;
            let mut w = 0;
            for i in 0..n {
                let (a, b) = self.cold.ooo[i];
                if le(a, self.rcv_nxt) {
                    if gt(b, self.rcv_nxt) {
                        let k = b.wrapping_sub(self.rcv_nxt);
                        let k = self.cold.rcv.commit(k as usize);
                        self.rcv_nxt = self.rcv_nxt.wrapping_add(k as u32);
                        self.cold.counters.bytes_in += k as u64;
                        progressed = true;
                    }
                } else {
                    self.cold.ooo[w] = (a, b);
                    w += 1;
                }
            }
            self.cold.ooo_len = w as u8;
            if !progressed {
                break;
            }
        }
    }

    /// A FIN at `fin_seq` (just after the segment's text): accepted when it is next in
    /// sequence, else remembered beyond the gap until the data in front of it arrives
    /// (`process_data` then accepts it).
    pub(super) fn process_fin(&mut self, now: Instant, fin_seq: u32) {
        if fin_seq == self.rcv_nxt {
            self.accept_fin(now);
        } else if gt(fin_seq, self.rcv_nxt) && !self.has(TCB_F_FIN_RECEIVED) {
            self.cold.ooo_fin = Some(fin_seq);
            self.ack_now();
        }
    }

    /// The FIN is next in sequence: it takes one sequence number and moves the state
    /// (RFC 9293 section 3.10.7.4, eighth check); held out-of-order data is dropped.
    fn accept_fin(&mut self, now: Instant) {
        if self.has(TCB_F_FIN_RECEIVED) {
            return;
        }
        self.flags |= TCB_F_FIN_RECEIVED;
        self.cold.ooo_fin = None;
        self.cold.ooo_len = 0;
        self.rcv_nxt = self.rcv_nxt.wrapping_add(1);
        self.keep_edge_ahead();
        self.ack_now();
        match self.state {
            State::SynReceived | State::Established => self.state = State::CloseWait,
            State::FinWait1 => {
                if self.has(TCB_F_FIN_SENT) && self.snd_una == self.snd_max {
                    self.enter_time_wait(now);
                } else {
                    self.state = State::Closing;
                }
            }
            State::FinWait2 => self.enter_time_wait(now),
            State::TimeWait => self.enter_time_wait(now),
            _ => {}
        }
    }
}
