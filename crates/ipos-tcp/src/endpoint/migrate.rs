//! Migration: the connection as a [`Tcb`] and back (see [`crate::tcb`] for the layout).
//!
//! Promises: `import(export(s))`, with the carried send and receive bytes, continues
//! byte for byte like `s` once `s` has forgotten its SACK scoreboard
//! ([`Endpoint::forget_sack`]): every timer and age travels relative to the export
//! instant and is re-based on the importer's clock; the TSval clock continues from the
//! exporter's (so the peer never sees a timestamp go backwards, RFC 7323 section 5.3).
//! Not carried: the SACK scoreboard, the early timer, out-of-order data (never
//! acknowledged, so the peer retransmits it), the receive-window cap
//! ([`Endpoint::set_rcv_window_cap`]: the TCB reports the window actually advertised,
//! and an importer starts uncapped). `import` validates the TCB and the
//! buffer sizes and never panics on a bad one.

use super::cc::CongestionControl;
use smoltcp::time::{Duration, Instant};

use super::{Config, Endpoint, Flow, State, NONE_AT};
use crate::tcb::*;

impl Endpoint {
    /// Snapshot the connection state (no data). The node-owned fields (`link_addr`,
    /// `next_hop`, `moves`, `service_len`) are zero.
    /// The SACK scoreboard and loss-probe / reorder timer are not included (see [`crate::tcb`]
    /// and [`Endpoint::forget_sack`]).
    pub fn export(&self, now: Instant) -> Tcb {
        let t = now.total_micros();
        let rel = |at: i64| -> u32 {
            if at == NONE_AT {
                TIMER_OFF
            } else {
                (at.saturating_sub(t)).clamp(0, i64::from(u32::MAX - 1)) as u32
            }
        };
        let c = &self.cold;
        Tcb {
            state: self.state,
            flags: self.flags,
            iss: c.iss,
            irs: c.irs,
            snd_una: self.snd_una,
            snd_nxt: self.snd_nxt,
            snd_max: self.snd_max,
            snd_wnd: self.snd_wnd,
            snd_wnd_raw: c.snd_wnd_raw,
            snd_wscale: self.snd_wscale,
            rcv_wscale: self.rcv_wscale,
            snd_wl1: self.snd_wl1,
            snd_wl2: self.snd_wl2,
            rcv_nxt: self.rcv_nxt,
            rcv_wnd: self.rcv_wnd(),
            peer_mss: self.peer_mss,
            mss: self.mss,
            ts_recent: self.ts_recent,
            ts_recent_age_ms: (now - c.ts_recent_age)
                .total_millis()
                .min(u64::from(u32::MAX)) as u32,
            ts_clock: self.ts_now(now),
            last_ack_sent: self.last_ack_sent,
            srtt_us: self.srtt,
            rttvar_us: self.rttvar,
            rto_us: self.rto,
            cwnd: self.cwnd,
            ssthresh: self.ssthresh,
            recover: self.recover,
            max_snd_wnd: self.max_snd_wnd,
            dupacks: self.dupacks,
            backoff: self.backoff,
            snd_data_len: c.snd.len() as u32,
            rcv_data_len: c.rcv.len() as u32,
            rtt_seq: c.rtt_seq,
            rtt_elapsed_us: if self.has(TCB_F_RTT_TIMING) {
                (now - c.rtt_start).total_micros().min(u64::from(u32::MAX)) as u32
            } else {
                0
            },
            rtx_timer_us: rel(self.retx_at),
            delack_timer_us: rel(self.delack_at),
            syn_timer_us: rel(c.syn_deadline),
            link_addr: [0; 6],
            next_hop: [0; 4],
            moves: 0,
            service_len: 0,
        }
    }

    /// Rebuild an endpoint from a TCB and the carried send / receive data. `flow` is
    /// the exporter's [`Endpoint::flow`] (source = the peer). The node-owned fields
    /// are ignored.
    pub fn import(
        cfg: &Config,
        tcb: &Tcb,
        flow: Flow,
        snd_data: &[u8],
        rcv_data: &[u8],
        now: Instant,
    ) -> Result<Endpoint, TcbError> {
        tcb.validate()?;
        if snd_data.len() != tcb.snd_data_len as usize
            || rcv_data.len() != tcb.rcv_data_len as usize
        {
            return Err(TcbError::DataLengthMismatch);
        }
        if snd_data.len() > cfg.snd_buf.max(1)
            || rcv_data.len() as u64 + u64::from(tcb.rcv_wnd) > cfg.rcv_buf.max(1) as u64
        {
            return Err(TcbError::BufferTooSmall);
        }
        let mut ep = Endpoint::new(cfg, flow, tcb.iss, tcb.state, now);
        // Buffers as the exporter had them: none while a passive open is half-open.
        let half_open = tcb.state == State::SynReceived && tcb.flags & TCB_F_PASSIVE != 0;
        if !half_open {
            ep.enable_buffers();
        }
        let t = now.total_micros();
        let abs = |rel: u32| -> i64 {
            if rel == TIMER_OFF {
                NONE_AT
            } else {
                t.saturating_add(i64::from(rel))
            }
        };
        ep.flags = tcb.flags;
        ep.snd_wscale = tcb.snd_wscale;
        ep.rcv_wscale = tcb.rcv_wscale;
        ep.dupacks = tcb.dupacks;
        ep.backoff = tcb.backoff;
        ep.peer_mss = tcb.peer_mss;
        ep.mss = tcb.mss;
        ep.snd_una = tcb.snd_una;
        ep.snd_nxt = tcb.snd_nxt;
        ep.snd_max = tcb.snd_max;
        ep.snd_wnd = tcb.snd_wnd;
        ep.snd_wl1 = tcb.snd_wl1;
        ep.snd_wl2 = tcb.snd_wl2;
        ep.max_snd_wnd = tcb.max_snd_wnd;
        ep.rcv_nxt = tcb.rcv_nxt;
        ep.rcv_adv = tcb.rcv_nxt.wrapping_add(tcb.rcv_wnd);
        ep.last_ack_sent = tcb.last_ack_sent;
        ep.ts_recent = tcb.ts_recent;
        ep.ts_offset = tcb.ts_clock.wrapping_sub(now.total_millis() as u32);
        ep.srtt = tcb.srtt_us;
        ep.rttvar = tcb.rttvar_us;
        ep.rto = tcb.rto_us;
        ep.cwnd = tcb.cwnd;
        ep.ssthresh = tcb.ssthresh;
        ep.recover = tcb.recover;
        ep.retx_at = abs(tcb.rtx_timer_us);
        ep.delack_at = abs(tcb.delack_timer_us);
        let c = &mut *ep.cold;
        c.irs = tcb.irs;
        c.snd_wnd_raw = tcb.snd_wnd_raw;
        c.ts_recent_age = now - Duration::from_millis(u64::from(tcb.ts_recent_age_ms));
        c.rtt_seq = tcb.rtt_seq;
        c.rtt_start = now - Duration::from_micros(u64::from(tcb.rtt_elapsed_us));
        c.syn_deadline = abs(tcb.syn_timer_us);
        // The exporter may have told the peer up to one scale unit beyond `rcv_wnd`
        // (rounding); assume it did, in case this endpoint is capped later.
        c.rcv_adv_slack = (1u32 << ep.rcv_wscale.min(14)) - 1;
        c.high_rxt = tcb.snd_una;
        c.rxt_mark = tcb.snd_una;
        // The algorithm's own state does not travel: it continues from the window.
        c.cc.restart(tcb.cwnd);
        c.snd.write_at(0, snd_data);
        c.snd.commit(snd_data.len());
        c.rcv.write_at(0, rcv_data);
        c.rcv.commit(rcv_data.len());
        Ok(ep)
    }
}
