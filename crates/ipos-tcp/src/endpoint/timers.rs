//! Timers: retransmission, persist, TIME-WAIT, delayed ACK, the SYN-RECEIVED give-up
//! and the early timer's expiry; and the next deadline for the owner.
//!
//! Every deadline is an absolute time in microseconds, `NONE_AT` meaning off. One
//! deadline, `retx_at`, serves the retransmission timer, the persist timer (flag
//! `TCB_F_PERSIST`) and the TIME-WAIT timer, which never run at the same time.
//! Expired timers are handled at the start of `poll_transmit`: they only set what is
//! owed; the segments themselves are written by [`output`](super::output).
//!
//! - RTO (RFC 6298 section 5): go back to `snd_una`, exponential backoff (capped at
//!   `max_rto`), ssthresh = the algorithm's reduction of FlightSize (NewReno: half,
//!   CUBIC: 0.7, RFC 9438 section 4.8; at least 2 SMSS) and cwnd = one SMSS
//!   (RFC 5681 section 3.1); give up with a RST after `max_retransmits` (RFC 9293
//!   section 3.8.3, R2). The timer restarts at once (section 5.6), whether or not
//!   anything may go out. The SACK scoreboard survives the first RTO (RFC 6675
//!   section 5.1) but not a second in a row (the receiver may have reneged), nor a
//!   range at `snd_una` (it did renege: RFC 2018 section 8's left edge goes out).
//! - Persist: zero-window probes with backoff (RFC 9293 section 3.8.6.1, RFC 1122
//!   section 4.2.2.17).
//! - TIME-WAIT: `Config::time_wait`, then CLOSED (RFC 9293 section 3.6.1).
//! - Delayed ACK (RFC 1122 section 4.2.3.2: at most 500 ms).

use super::cc::CongestionControl;
use smoltcp::time::Instant;

use super::{Endpoint, State, NONE_AT};
use crate::tcb::*;

impl Endpoint {
    /// Handle expired timers (called from `poll_transmit`).
    pub(super) fn on_timers(&mut self, now: Instant) {
        let t = now.total_micros();
        if self.state == State::Closed {
            return;
        }
        if self.state == State::TimeWait {
            if self.retx_at <= t {
                self.enter_closed();
            }
            return;
        }
        if self.state == State::SynReceived && self.cold.syn_deadline <= t {
            self.cold.pending_rst = Some((self.snd_max, Some(self.rcv_nxt)));
            self.enter_closed();
            return;
        }
        if self.delack_at <= t {
            self.delack_at = NONE_AT;
            self.ack_now();
        }
        if self.cold.early.deadline() <= t {
            self.on_early_timer();
        }
        if self.cold.keepalive.at <= t {
            self.on_keepalive_timer(now);
            if self.state == State::Closed {
                return;
            }
        }
        if self.retx_at <= t {
            self.retx_at = NONE_AT;
            if self.has(TCB_F_PERSIST) {
                self.flags |= TCB_F_PROBE_NOW;
                self.backoff = self.backoff.saturating_add(1);
                self.arm_retx(now);
            } else if self.snd_una != self.snd_max {
                if u32::from(self.backoff) >= self.cold.max_retransmits {
                    // No RST for an unanswered SYN: nobody is synchronized with us.
                    if self.state != State::SynSent {
                        self.cold.pending_rst = Some((self.snd_max, Some(self.rcv_nxt)));
                    }
                    self.enter_closed();
                    return;
                }
                self.backoff = self.backoff.saturating_add(1);
                self.cold.counters.rto_timeouts += 1;
                self.undo_forget();
                if self.synchronized() {
                    let smss = self.smss();
                    let flight = self.snd_max.wrapping_sub(self.snd_una);
                    self.ssthresh = self.cold.cc.reduce(self.cwnd, flight, smss);
                    self.cwnd = smss;
                    self.recover = self.snd_max;
                    self.dupacks = 0;
                }
                self.flags &= !(TCB_F_RECOVERY | TCB_F_RTT_TIMING | TCB_F_RETX_ONE);
                self.snd_nxt = self.snd_una;
                // Keep the SACK scoreboard so the slow-start pass skips SACKed data
                // (RFC 6675 section 5.1 allows it), but forget it on a second RTO in a row
                // in case the receiver reneged on what it SACKed.
                if self.backoff >= 2 {
                    self.cold.sb_len = 0;
                }
                self.sb_check_reneging();
                self.reset_loss_marks(self.snd_max);
                // Restart the timer now (RFC 6298 section 5.6), not when something
                // goes out: if nothing may go (all SACKed, a closed window), the
                // next RTO must still come.
                self.arm_retx(now);
            }
        }
    }

    /// Earliest instant at which `poll_transmit` has timer work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        let mut t = self
            .retx_at
            .min(self.delack_at)
            .min(self.cold.early.deadline())
            .min(self.cold.keepalive.at);
        if self.state == State::SynReceived {
            t = t.min(self.cold.syn_deadline);
        }
        (t != NONE_AT).then(|| Instant::from_micros(t))
    }

    /// The RTO with exponential backoff, capped at `max_rto` (RFC 6298 section 5.5).
    fn rto_backed_us(&self) -> u64 {
        let shift = u32::from(self.backoff.min(20));
        (u64::from(self.rto) << shift).min(u64::from(self.cold.max_rto_us))
    }

    /// (Re)start the retransmission / persist timer from `now`.
    pub(super) fn arm_retx(&mut self, now: Instant) {
        self.retx_at = now
            .total_micros()
            .saturating_add(self.rto_backed_us() as i64);
    }
}
