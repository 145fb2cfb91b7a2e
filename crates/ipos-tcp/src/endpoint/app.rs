//! The application's side: reading and writing the byte streams, closing, aborting,
//! and what the owner may look at.
//!
//! Promises: the application reads only in-order data and writes only into free send
//! space while the connection may still send (before `close`); consuming received data
//! announces a larger window only when that is not silly (RFC 1122 section 4.2.3.3).
//! `close` queues a FIN after everything already written (RFC 9293 section 3.10.4);
//! `abort` goes CLOSED at once, with a RST unless there is nothing to reset (CLOSED,
//! SYN-SENT, TIME-WAIT; RFC 9293 section 3.10.5).

use super::cc::CongestionControl;
use smoltcp::time::Instant;

use super::{Counters, Endpoint, Flow, State};
use crate::tcb::*;

impl Endpoint {
    /// Contiguous in-order received bytes not yet consumed.
    pub fn recv_slice(&self) -> &[u8] {
        self.cold.rcv.readable().0
    }

    /// Consume `n` received bytes; may schedule a window update (SWS-avoided).
    pub fn recv_consume(&mut self, n: usize) {
        self.cold.rcv.consume(n);
        if self.cold.ooo_len == 0 {
            self.cold.rcv.release_if_empty();
        }
        // Announce when the window grew by at least min(buf/2, MSS), or reopens from zero.
        self.window_update_if_grown();
    }

    /// Received in-order bytes not yet consumed (both slices of [`Endpoint::unconsumed`]).
    pub fn recv_available(&self) -> usize {
        self.cold.rcv.len()
    }

    /// The application may still queue data: it has not closed, and the state is at most
    /// ESTABLISHED or CLOSE-WAIT.
    fn can_send(&self) -> bool {
        matches!(
            self.state,
            State::SynSent | State::SynReceived | State::Established | State::CloseWait
        ) && !self.has(TCB_F_FIN_QUEUED)
    }

    /// Free send-buffer bytes the application may fill now (0 once it cannot send, and
    /// 0 while a passive connection is half-open: it has no buffers yet).
    pub fn send_space(&self) -> usize {
        if self.can_send() && self.cold.snd.is_enabled() {
            self.cold.snd.free()
        } else {
            0
        }
    }

    /// `f` writes into contiguous free send space and returns how many bytes it wrote.
    pub fn send_with(&mut self, f: impl FnOnce(&mut [u8]) -> usize) -> usize {
        if !self.can_send() {
            return 0;
        }
        let buf = self.cold.snd.free_contig_mut();
        let cap = buf.len();
        let n = f(buf).min(cap);
        let n = self.cold.snd.commit(n);
        self.cold.snd.release_if_empty();
        n
    }

    /// Queue as much of `data` as fits; returns bytes queued.
    pub fn send_slice(&mut self, data: &[u8]) -> usize {
        let mut done = 0;
        for _ in 0..2 {
            let rest = &data[done..];
            if rest.is_empty() {
                break;
            }
            done += self.send_with(|b| {
                let n = b.len().min(rest.len());
                b[..n].copy_from_slice(&rest[..n]);
                n
            });
        }
        done
    }

    /// No more data from the application: FIN after everything queued.
    pub fn close(&mut self) {
        match self.state {
            State::SynSent => self.enter_closed(),
            State::SynReceived => self.flags |= TCB_F_FIN_QUEUED,
            State::Established => {
                self.flags |= TCB_F_FIN_QUEUED;
                self.state = State::FinWait1;
            }
            State::CloseWait => {
                self.flags |= TCB_F_FIN_QUEUED;
                self.state = State::LastAck;
            }
            _ => {}
        }
    }

    /// Send RST and go Closed.
    pub fn abort(&mut self) {
        match self.state {
            State::Closed | State::TimeWait | State::SynSent => {}
            _ => {
                self.cold.pending_rst = Some((self.snd_max, Some(self.rcv_nxt)));
            }
        }
        self.enter_closed();
    }

    /// True once the send and receive buffers may hold data: from ESTABLISHED on for a
    /// passive open (never while half-open), at once for an active open, an import or
    /// a connection made from a SYN cookie. Their memory comes and goes with the data
    /// (see [`Endpoint::buffer_memory`]).
    pub fn has_buffers(&self) -> bool {
        self.cold.snd.is_enabled() && self.cold.rcv.is_enabled()
    }

    /// Bytes of buffer memory the connection holds now: a ring's capacity while it
    /// stores data, nothing once it is drained ([`crate::buffers`]).
    pub fn buffer_memory(&self) -> usize {
        self.cold.snd.memory() + self.cold.rcv.memory()
    }

    /// The RFC 9293 connection state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The connection's addresses, named in the direction the peer sends: source = the
    /// peer, destination = this endpoint (see [`Endpoint`]).
    pub fn flow(&self) -> Flow {
        self.flow
    }

    /// The peer's initial sequence number: it tells two incarnations of a
    /// connection on the same ports apart (0 before a SYN was received).
    pub fn irs(&self) -> u32 {
        self.cold.irs
    }

    /// The peer closed its direction (FIN received in order).
    pub fn peer_fin_received(&self) -> bool {
        self.has(TCB_F_FIN_RECEIVED)
    }

    /// Nothing more to do: the owner may drop it.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed && self.cold.pending_rst.is_none()
    }

    /// Per-connection counters.
    pub fn counters(&self) -> &Counters {
        &self.cold.counters
    }

    /// Send-buffer bytes from `snd_una` on (sent-unacked, then unsent), up to two slices.
    pub fn unacked_and_unsent(&self) -> (&[u8], &[u8]) {
        self.cold.snd.readable()
    }

    /// Received in-order bytes not consumed by the application, up to two slices.
    pub fn unconsumed(&self) -> (&[u8], &[u8]) {
        self.cold.rcv.readable()
    }

    /// Bytes received out of order and held beyond `rcv_nxt` (not carried by `export`).
    pub fn ooo_ranges(&self) -> usize {
        self.cold.ooo_len as usize
    }

    /// Range `i` of the bytes held out of order (`i` < [`Endpoint::ooo_ranges`]):
    /// its first sequence number and its bytes, up to two slices. `export` does not
    /// carry them, but the peer was told (SACK) that they arrived: whoever takes
    /// the connection over must get them (a migration sends them as segments).
    pub fn ooo_range(&self, i: usize) -> Option<(u32, &[u8], &[u8])> {
        let c = &*self.cold;
        let &(start, end) = c.ooo[..usize::from(c.ooo_len)].get(i)?;
        let off = start.wrapping_sub(self.rcv_nxt) as usize;
        let n = end.wrapping_sub(start) as usize;
        let (a, b) = c.rcv.beyond(off, n);
        Some((start, a, b))
    }

    /// Forget what `export` does not carry, exactly as [`Endpoint::import`] starts:
    /// the SACK scoreboard (SACKed ranges, HighRxt and the lost-retransmission mark),
    /// a D-SACK block not yet sent, the recovery episode's PRR and undo records and
    /// the clock of the out-of-window ACK limit; and restart the congestion control's
    /// own state from `cwnd`. Then `import(export(s))` behaves exactly like `s`
    /// (keep-alive aside: an import starts its idle time afresh). Always safe: SACK
    /// information is advisory (RFC 2018 section 8), a lost D-SACK or undo only
    /// keeps a window reduced, and the restarted algorithm grows the window no
    /// faster than before.
    pub fn forget_sack(&mut self) {
        self.sb_clear();
        self.cold.cc.restart(self.cwnd);
        self.cold.dsack = None;
        self.cold.undo = Default::default();
        self.cold.prr = Default::default();
        self.cold.oow_ack_at = super::NONE_AT;
    }

    /// The congestion control this connection uses.
    pub fn congestion(&self) -> crate::Congestion {
        self.cold.cc.kind()
    }

    /// Number of SACKed ranges in the sender's scoreboard.
    pub fn sack_ranges(&self) -> usize {
        self.cold.sb_len as usize
    }

    /// Our TSval clock reading at `now` (what a segment sent now would carry).
    pub fn ts_clock(&self, now: Instant) -> u32 {
        self.ts_now(now)
    }
}
