//! TCP keep-alive (RFC 9293 section 3.8.4, RFC 1122 section 4.2.3.6): off unless
//! [`Config::keepalive`](super::Config) sets it. After `idle` without a segment from
//! the peer, while nothing we sent is unacknowledged (the retransmission timer
//! covers that case) and the window is open (the persist timer covers a closed
//! one), the endpoint sends a probe: an ACK with `seq = snd_una - 1`, which the peer
//! answers with an ACK; another after each `interval` without an answer; after
//! `probes` unanswered it aborts (a RST, CLOSED, counted in `keepalive_timeouts`).
//! Any segment from the peer starts the idle time again. The state does not
//! travel in the TCB: an endpoint starts its idle time when it is created (an
//! imported one at the import).

use smoltcp::time::{Duration, Instant};

use super::{Endpoint, State, NONE_AT};
use crate::segment::{TcpOptions, ACK};

/// When and how often to probe an idle connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// Time without a segment from the peer before the first probe (RFC 1122: at
    /// least two hours by default; Linux's `tcp_keepalive_time`).
    pub idle: Duration,
    /// Time between unanswered probes.
    pub interval: Duration,
    /// Unanswered probes before the connection is aborted.
    pub probes: u8,
}

impl Default for Keepalive {
    /// Linux's defaults: 7200 s, 75 s, 9 probes.
    fn default() -> Keepalive {
        Keepalive {
            idle: Duration::from_secs(7200),
            interval: Duration::from_secs(75),
            probes: 9,
        }
    }
}

/// One connection's keep-alive state (in `Cold`).
#[derive(Clone, Copy, Debug)]
pub(super) struct KeepaliveState {
    pub(super) cfg: Option<Keepalive>,
    /// When the next probe is due (`NONE_AT`: off).
    pub(super) at: i64,
    /// Probes sent since the peer was last heard.
    pub(super) out: u8,
    /// A probe is owed now.
    pub(super) now: bool,
}

impl KeepaliveState {
    /// The idle time starts at the endpoint's creation (`now`).
    pub(super) fn new(cfg: Option<Keepalive>, now: Instant) -> KeepaliveState {
        KeepaliveState {
            cfg,
            at: cfg.map_or(NONE_AT, |c| (now + c.idle).total_micros()),
            out: 0,
            now: false,
        }
    }
}

impl Endpoint {
    /// The peer was heard at `now`: the idle time starts again.
    pub(super) fn keepalive_heard(&mut self, now: Instant) {
        let k = &mut self.cold.keepalive;
        if let Some(cfg) = k.cfg {
            k.out = 0;
            k.at = (now + cfg.idle).total_micros();
        }
    }

    /// The keep-alive deadline passed: owe a probe, or give up.
    pub(super) fn on_keepalive_timer(&mut self, now: Instant) {
        let Some(cfg) = self.cold.keepalive.cfg else {
            self.cold.keepalive.at = NONE_AT;
            return;
        };
        let probing = matches!(self.state, State::Established | State::CloseWait)
            && self.snd_una == self.snd_max
            && self.snd_wnd > 0;
        if !probing {
            // Not idle in the keep-alive sense: look again after another idle time.
            self.keepalive_heard(now);
            return;
        }
        if self.cold.keepalive.out >= cfg.probes {
            self.cold.counters.keepalive_timeouts += 1;
            self.cold.pending_rst = Some((self.snd_max, Some(self.rcv_nxt)));
            self.enter_closed();
            return;
        }
        let k = &mut self.cold.keepalive;
        k.out += 1;
        k.now = true;
        k.at = (now + cfg.interval).total_micros();
    }

    /// The probe, if one is owed: an ACK one below `snd_una`.
    pub(super) fn send_keepalive(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        if !core::mem::take(&mut self.cold.keepalive.now) {
            return None;
        }
        self.cold.counters.keepalive_probes += 1;
        let opts: TcpOptions = self.seg_opts(now, out.len());
        let seq = self.snd_una.wrapping_sub(1);
        Some(self.write_segment(out, seq, ACK, opts, 0, 0))
    }
}
