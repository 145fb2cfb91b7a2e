//! The TCP endpoint state machine (RFC 9293) without I/O.

use smoltcp::time::{Duration, Instant};
use smoltcp::wire::Ipv4Address;

use crate::ring::Ring;
use crate::segment::{
    emit_header, fill_checksum, EmitHeader, EmitOpts, Segment, SegmentError, ACK, FIN, HEADER_LEN,
    PSH, RST, SYN,
};
use crate::seq::{ge, gt, le, lt};
use crate::tcb::*;

/// The connection's addresses, from this endpoint's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FourTuple {
    pub local_ip: Ipv4Address,
    pub local_port: u16,
    pub remote_ip: Ipv4Address,
    pub remote_port: u16,
}

impl FourTuple {
    /// The same connection seen from the other end.
    pub fn reversed(&self) -> FourTuple {
        FourTuple {
            local_ip: self.remote_ip,
            local_port: self.remote_port,
            remote_ip: self.local_ip,
            remote_port: self.local_port,
        }
    }
}

/// Per-connection tuning. `Default` gives the documented values.
#[derive(Clone, Debug)]
pub struct Config {
    /// MSS we advertise.
    pub mss: u16,
    /// Receive buffer bytes.
    pub rcv_buf: usize,
    /// Send buffer bytes.
    pub snd_buf: usize,
    /// Our window-scale shift (clamped to 14); used only if the peer's SYN offers scaling.
    pub window_scale: u8,
    /// Offer / accept RFC 7323 timestamps.
    pub timestamps: bool,
    /// SACK is not implemented: this endpoint never advertises SACK-permitted,
    /// whatever this says. SACK options from a peer are parsed and ignored.
    pub sack_permitted: bool,
    /// Delayed-ACK timeout (at most 500 ms per RFC 1122; default 40 ms).
    pub delayed_ack: Duration,
    pub min_rto: Duration,
    pub max_rto: Duration,
    pub initial_rto: Duration,
    /// Give up (RST, Closed) after this many consecutive RTOs of the same data.
    pub max_retransmits: u32,
    /// TIME-WAIT duration.
    pub time_wait: Duration,
    /// Give up on a half-open passive connection after this long.
    pub syn_received_timeout: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            mss: 1460,
            rcv_buf: 256 * 1024,
            snd_buf: 256 * 1024,
            window_scale: 7,
            timestamps: true,
            sack_permitted: false,
            delayed_ack: Duration::from_millis(40),
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(60),
            initial_rto: Duration::from_secs(1),
            max_retransmits: 12,
            time_wait: Duration::from_secs(2),
            syn_received_timeout: Duration::from_secs(10),
        }
    }
}

/// RFC 9293 connection states (LISTEN is handled by the owner: `accept` starts in SYN-RECEIVED).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    SynSent,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    CloseWait,
    Closing,
    LastAck,
    TimeWait,
    Closed,
}

/// Per-connection counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub segs_in: u64,
    pub segs_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Segments sent again (RTO go-back-N, fast retransmit, NewReno partial ACK).
    pub retransmits: u64,
    pub fast_retransmits: u64,
    pub rto_timeouts: u64,
    pub dup_acks: u64,
    /// Segments entirely below `rcv_nxt` (duplicates) or otherwise outside the window.
    pub dup_segments: u64,
    pub ooo_segments: u64,
    /// Malformed or foreign segments rejected with an error.
    pub bad_segments: u64,
    pub paws_drops: u64,
    pub challenge_acks: u64,
    pub window_probes: u64,
    pub rst_in: u64,
    pub rst_out: u64,
}

const NONE_AT: i64 = i64::MAX;
const MAX_OOO: usize = 8;
const TS_OPT_LEN: u16 = 12;
/// RFC 1122 / RFC 9293 default MSS when the peer sends none.
const DEFAULT_MSS: u16 = 536;
/// RFC 7323 section 5.5: TS.Recent is invalid after 24 days idle.
const TS_RECENT_MAX_AGE_MS: i64 = 24 * 24 * 3600 * 1000;

/// Rarely touched state and the buffers, kept out of the hot part.
struct Cold {
    delayed_ack: Duration,
    min_rto_us: u32,
    max_rto_us: u32,
    max_retransmits: u32,
    time_wait: Duration,
    syn_received_timeout: Duration,
    iss: u32,
    irs: u32,
    snd_wnd_raw: u16,
    ts_recent_age: Instant,
    rtt_seq: u32,
    rtt_start: Instant,
    syn_deadline: i64,
    /// Out-of-order ranges [start, end) in sequence space, all beyond `rcv_nxt`.
    ooo: [(u32, u32); MAX_OOO],
    ooo_len: u8,
    /// Sequence number of a FIN seen beyond a gap.
    ooo_fin: Option<u32>,
    /// RST to send: (seq, Some(ack) for RST|ACK).
    pending_rst: Option<(u32, Option<u32>)>,
    counters: Counters,
    snd: Ring,
    rcv: Ring,
}

/// A TCP endpoint. Hot state is inline (see `hot_size_is_compact` test); buffers live in `cold`.
pub struct Endpoint {
    tuple: FourTuple,
    flags: u16,
    state: State,
    snd_wscale: u8,
    rcv_wscale: u8,
    dupacks: u8,
    backoff: u8,
    peer_mss: u16,
    mss: u16,
    snd_una: u32,
    snd_nxt: u32,
    snd_max: u32,
    snd_wnd: u32,
    snd_wl1: u32,
    snd_wl2: u32,
    max_snd_wnd: u32,
    rcv_nxt: u32,
    rcv_adv: u32,
    last_ack_sent: u32,
    ts_recent: u32,
    ts_offset: u32,
    srtt: u32,
    rttvar: u32,
    rto: u32,
    cwnd: u32,
    ssthresh: u32,
    recover: u32,
    /// Retransmission / persist / TIME-WAIT deadline in microseconds (`NONE_AT` = off).
    retx_at: i64,
    delack_at: i64,
    cold: Box<Cold>,
}

impl core::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Endpoint")
            .field("tuple", &self.tuple)
            .field("state", &self.state)
            .field("flags", &format_args!("{:#06x}", self.flags))
            .field("snd_una", &self.snd_una)
            .field("snd_nxt", &self.snd_nxt)
            .field("snd_max", &self.snd_max)
            .field("snd_wnd", &self.snd_wnd)
            .field("rcv_nxt", &self.rcv_nxt)
            .field("rcv_wnd", &self.rcv_wnd())
            .field("cwnd", &self.cwnd)
            .field("ssthresh", &self.ssthresh)
            .field("rto_us", &self.rto)
            .field("snd_buffered", &self.cold.snd.len())
            .field("rcv_buffered", &self.cold.rcv.len())
            .finish()
    }
}

fn dur_us(d: Duration) -> u32 {
    d.total_micros().min(u64::from(u32::MAX)) as u32
}

fn ts_offset_from_iss(iss: u32) -> u32 {
    let x = iss.wrapping_mul(0x9E37_79B9) ^ 0x5bd1_e995;
    x.rotate_left(13)
}

impl Endpoint {
    fn new(cfg: &Config, tuple: FourTuple, iss: u32, state: State, now: Instant) -> Endpoint {
        let mss = cfg.mss.max(64);
        let min_rto_us = dur_us(cfg.min_rto).max(1);
        let max_rto_us = dur_us(cfg.max_rto).max(min_rto_us);
        let rto = dur_us(cfg.initial_rto).clamp(min_rto_us, max_rto_us);
        let mut flags = 0;
        if cfg.timestamps {
            flags |= TCB_F_TIMESTAMPS;
        }
        Endpoint {
            tuple,
            flags,
            state,
            snd_wscale: 0,
            rcv_wscale: cfg.window_scale.min(14),
            dupacks: 0,
            backoff: 0,
            peer_mss: DEFAULT_MSS,
            mss,
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            snd_wnd: 0,
            snd_wl1: 0,
            snd_wl2: iss,
            max_snd_wnd: 0,
            rcv_nxt: 0,
            rcv_adv: 0,
            last_ack_sent: 0,
            ts_recent: 0,
            ts_offset: ts_offset_from_iss(iss),
            srtt: 0,
            rttvar: 0,
            rto,
            cwnd: u32::from(mss),
            ssthresh: u32::MAX,
            recover: iss,
            retx_at: NONE_AT,
            delack_at: NONE_AT,
            cold: Box::new(Cold {
                delayed_ack: cfg.delayed_ack,
                min_rto_us,
                max_rto_us,
                max_retransmits: cfg.max_retransmits,
                time_wait: cfg.time_wait,
                syn_received_timeout: cfg.syn_received_timeout,
                iss,
                irs: 0,
                snd_wnd_raw: 0,
                ts_recent_age: now,
                rtt_seq: 0,
                rtt_start: now,
                syn_deadline: NONE_AT,
                ooo: [(0, 0); MAX_OOO],
                ooo_len: 0,
                ooo_fin: None,
                pending_rst: None,
                counters: Counters::default(),
                snd: Ring::new(cfg.snd_buf),
                rcv: Ring::new(cfg.rcv_buf),
            }),
        }
    }

    /// Passive open from a received SYN (whole TCP segment, checksum verified by the caller).
    pub fn accept(
        cfg: &Config,
        tuple: FourTuple,
        syn: &[u8],
        iss: u32,
        now: Instant,
    ) -> Result<Endpoint, SegmentError> {
        let seg = Segment::parse(syn)?;
        if !seg.has(SYN) || seg.has(ACK) || seg.has(RST) || seg.has(FIN) {
            return Err(SegmentError::NotSyn);
        }
        if seg.dst_port != tuple.local_port || seg.src_port != tuple.remote_port {
            return Err(SegmentError::PortMismatch);
        }
        let mut ep = Endpoint::new(cfg, tuple, iss, State::SynReceived, now);
        ep.flags |= TCB_F_PASSIVE;
        ep.learn_syn_options(&seg, now);
        ep.cold.irs = seg.seq;
        ep.rcv_nxt = seg.seq.wrapping_add(1);
        ep.rcv_adv = ep.rcv_nxt;
        ep.last_ack_sent = ep.rcv_nxt;
        ep.set_snd_wnd(seg.window, 0, seg.seq, iss);
        ep.cold.syn_deadline = (now + ep.cold.syn_received_timeout).total_micros();
        ep.cold.counters.segs_in += 1;
        Ok(ep)
    }

    /// Active open: the SYN goes out on the first `poll_transmit`.
    pub fn connect(cfg: &Config, tuple: FourTuple, iss: u32, now: Instant) -> Endpoint {
        let mut ep = Endpoint::new(cfg, tuple, iss, State::SynSent, now);
        // Offered; cleared if the SYN-ACK does not confirm.
        ep.flags |= TCB_F_WSCALE;
        ep
    }

    fn learn_syn_options(&mut self, seg: &Segment<'_>, now: Instant) {
        self.peer_mss = seg.mss.unwrap_or(DEFAULT_MSS).max(64);
        match seg.wscale {
            Some(ws) => {
                self.flags |= TCB_F_WSCALE;
                self.snd_wscale = ws.min(14);
            }
            None => {
                self.flags &= !TCB_F_WSCALE;
                self.snd_wscale = 0;
                self.rcv_wscale = 0;
            }
        }
        match seg.timestamp {
            Some((tsval, _)) if self.has(TCB_F_TIMESTAMPS) => {
                self.ts_recent = tsval;
                self.cold.ts_recent_age = now;
            }
            _ => self.flags &= !TCB_F_TIMESTAMPS,
        }
        let smss = self.smss();
        self.cwnd = (4 * smss).min((2 * smss).max(4380));
    }

    // ----- small helpers -----

    #[inline]
    fn has(&self, f: u16) -> bool {
        self.flags & f != 0
    }

    /// Sender MSS: payload bytes per full segment.
    fn smss(&self) -> u32 {
        let opt = if self.has(TCB_F_TIMESTAMPS) {
            TS_OPT_LEN
        } else {
            0
        };
        u32::from(self.peer_mss.saturating_sub(opt).max(1))
    }

    /// Receiver's notion of a full segment from the peer.
    fn rmss(&self) -> u32 {
        let opt = if self.has(TCB_F_TIMESTAMPS) {
            TS_OPT_LEN
        } else {
            0
        };
        u32::from(self.mss.saturating_sub(opt).max(1))
    }

    fn ts_now(&self, now: Instant) -> u32 {
        (now.total_millis() as u32).wrapping_add(self.ts_offset)
    }

    fn rto_backed_us(&self) -> u64 {
        let shift = u32::from(self.backoff.min(20));
        (u64::from(self.rto) << shift).min(u64::from(self.cold.max_rto_us))
    }

    fn arm_retx(&mut self, now: Instant) {
        self.retx_at = now
            .total_micros()
            .saturating_add(self.rto_backed_us() as i64);
    }

    fn ack_now(&mut self) {
        self.flags |= TCB_F_ACK_NOW;
    }

    fn challenge_ack(&mut self) {
        self.cold.counters.challenge_acks += 1;
        self.ack_now();
    }

    fn set_snd_wnd(&mut self, raw: u16, shift: u8, seq: u32, ack: u32) {
        self.snd_wnd = u32::from(raw) << shift;
        self.cold.snd_wnd_raw = raw;
        self.snd_wl1 = seq;
        self.snd_wl2 = ack;
        self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
    }

    fn synchronized(&self) -> bool {
        !matches!(
            self.state,
            State::SynSent | State::SynReceived | State::Closed
        )
    }

    fn enter_time_wait(&mut self, now: Instant) {
        self.state = State::TimeWait;
        self.flags &= !(TCB_F_PERSIST | TCB_F_PROBE_NOW | TCB_F_RETX_ONE);
        self.retx_at = (now + self.cold.time_wait).total_micros();
    }

    fn enter_closed(&mut self) {
        self.state = State::Closed;
        self.retx_at = NONE_AT;
        self.delack_at = NONE_AT;
        self.cold.syn_deadline = NONE_AT;
        self.flags &=
            !(TCB_F_ACK_NOW | TCB_F_PERSIST | TCB_F_PROBE_NOW | TCB_F_RETX_ONE | TCB_F_RTT_TIMING);
    }

    fn rtt_sample(&mut self, r_us: u32) {
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

    // ----- receive path -----

    /// A received TCP segment (header + payload), checksum already verified by the caller.
    pub fn on_segment(&mut self, now: Instant, seg: &[u8]) -> Result<(), SegmentError> {
        let seg = match Segment::parse(seg) {
            Ok(s) => s,
            Err(e) => {
                self.cold.counters.bad_segments += 1;
                return Err(e);
            }
        };
        if seg.dst_port != self.tuple.local_port || seg.src_port != self.tuple.remote_port {
            self.cold.counters.bad_segments += 1;
            return Err(SegmentError::PortMismatch);
        }
        self.cold.counters.segs_in += 1;
        match self.state {
            State::Closed => {}
            State::SynSent => self.on_syn_sent(now, &seg),
            _ => self.on_other(now, &seg),
        }
        Ok(())
    }

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

    fn rcv_wnd(&self) -> u32 {
        if ge(self.rcv_adv, self.rcv_nxt) {
            self.rcv_adv.wrapping_sub(self.rcv_nxt)
        } else {
            0
        }
    }

    fn on_other(&mut self, now: Instant, seg: &Segment<'_>) {
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
                    self.ack_now();
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
            if self.state == State::SynReceived {
                // Our SYN-ACK was probably lost: send it again.
                self.snd_nxt = self.snd_una;
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
                self.challenge_ack();
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
            self.challenge_ack();
            return;
        }

        if !seg.has(ACK) {
            return;
        }

        if self.state == State::SynReceived {
            if gt(seg.ack, self.snd_una) && le(seg.ack, self.snd_max) {
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
            self.challenge_ack();
            return;
        }
        if lt(seg.ack, self.snd_una.wrapping_sub(self.max_snd_wnd)) {
            self.challenge_ack();
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
            let fin_seq = seq.wrapping_add(seg.payload.len() as u32);
            if fin_seq == self.rcv_nxt {
                self.accept_fin(now);
            } else if gt(fin_seq, self.rcv_nxt) && !self.has(TCB_F_FIN_RECEIVED) {
                self.cold.ooo_fin = Some(fin_seq);
                self.ack_now();
            }
        }
    }

    fn process_ack(&mut self, now: Instant, seg: &Segment<'_>) {
        let ack = seg.ack;
        let smss = self.smss();
        let new_wnd = u32::from(seg.window) << self.snd_wscale;
        if gt(ack, self.snd_una) {
            let acked = ack.wrapping_sub(self.snd_una);
            let buffered = self.cold.snd.len() as u32;
            let data_acked = acked.min(buffered);
            let fin_acked = self.has(TCB_F_FIN_SENT) && acked > buffered;
            self.cold.snd.consume(data_acked as usize);

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

            // Congestion control (RFC 5681, NewReno RFC 6582).
            if self.has(TCB_F_RECOVERY) {
                if ge(ack, self.recover) {
                    // Full ACK: deflate.
                    let flight = self.snd_max.wrapping_sub(ack);
                    self.cwnd = self.ssthresh.min(flight.max(smss) + smss);
                    self.flags &= !TCB_F_RECOVERY;
                    self.dupacks = 0;
                } else {
                    // Partial ACK: retransmit the next hole, partially deflate.
                    self.flags |= TCB_F_RETX_ONE;
                    self.cwnd = self.cwnd.saturating_sub(data_acked);
                    if data_acked >= smss {
                        self.cwnd = self.cwnd.saturating_add(smss);
                    }
                    self.cwnd = self.cwnd.max(smss);
                    self.cold.counters.retransmits += 1;
                }
            } else {
                self.dupacks = 0;
                if self.cwnd < self.ssthresh {
                    self.cwnd = self.cwnd.saturating_add(data_acked.min(smss));
                } else {
                    let inc = (u64::from(smss) * u64::from(smss) / u64::from(self.cwnd.max(1)))
                        .max(1) as u32;
                    self.cwnd = self.cwnd.saturating_add(inc);
                }
            }

            self.snd_una = ack;
            if lt(self.snd_nxt, self.snd_una) {
                self.snd_nxt = self.snd_una;
            }
            if self.snd_una == self.snd_max {
                if !self.has(TCB_F_PERSIST) {
                    self.retx_at = NONE_AT;
                }
            } else {
                self.flags &= !TCB_F_PERSIST;
                self.arm_retx(now);
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
        } else if ack == self.snd_una
            && seg.payload.is_empty()
            && !seg.has(SYN)
            && !seg.has(FIN)
            && self.snd_una != self.snd_max
            && new_wnd == self.snd_wnd
        {
            self.cold.counters.dup_acks += 1;
            self.dupacks = self.dupacks.saturating_add(1);
            if self.has(TCB_F_RECOVERY) {
                if self.dupacks > 3 {
                    self.cwnd = self.cwnd.saturating_add(smss);
                }
            } else if self.dupacks == 3 && gt(ack, self.recover) {
                let flight = self.snd_max.wrapping_sub(self.snd_una);
                self.ssthresh = (flight / 2).max(2 * smss);
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
    }

    fn process_data(&mut self, now: Instant, seq: u32, payload: &[u8]) {
        let mut seq = seq;
        let mut data = payload;
        if lt(seq, self.rcv_nxt) {
            let d = self.rcv_nxt.wrapping_sub(seq) as usize;
            if d >= data.len() {
                self.cold.counters.dup_segments += 1;
                self.ack_now();
                return;
            }
            data = &data[d..];
            seq = self.rcv_nxt;
        }
        let off = seq.wrapping_sub(self.rcv_nxt) as usize;
        let space = self.cold.rcv.free();
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
                self.ack_now();
            } else if self.rcv_nxt.wrapping_sub(self.last_ack_sent) >= 2 * self.rmss() {
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

    fn insert_ooo(&mut self, start: u32, end: u32) {
        let c = &mut *self.cold;
        let mut s = start;
        let mut e = end;
        // Merge with every overlapping / adjacent range.
        let mut i = 0;
        while i < c.ooo_len as usize {
            let (a, b) = c.ooo[i];
            if le(a, e) && ge(b, s) {
                if lt(a, s) {
                    s = a;
                }
                if gt(b, e) {
                    e = b;
                }
                c.ooo_len -= 1;
                c.ooo[i] = c.ooo[c.ooo_len as usize];
            } else {
                i += 1;
            }
        }
        if (c.ooo_len as usize) < MAX_OOO {
            c.ooo[c.ooo_len as usize] = (s, e);
            c.ooo_len += 1;
        }
        // else: no room to remember it; the data is simply not acknowledged later and
        // the peer retransmits it.
    }

    fn merge_ooo(&mut self) {
        loop {
            let mut progressed = false;
            let mut i = 0;
            while i < self.cold.ooo_len as usize {
                let (a, b) = self.cold.ooo[i];
                if le(a, self.rcv_nxt) {
                    if gt(b, self.rcv_nxt) {
                        let n = b.wrapping_sub(self.rcv_nxt);
                        let n = self.cold.rcv.commit(n as usize);
                        self.rcv_nxt = self.rcv_nxt.wrapping_add(n as u32);
                        self.cold.counters.bytes_in += n as u64;
                        progressed = true;
                    }
                    let c = &mut *self.cold;
                    c.ooo_len -= 1;
                    c.ooo[i] = c.ooo[c.ooo_len as usize];
                } else {
                    i += 1;
                }
            }
            if !progressed {
                break;
            }
        }
    }

    fn accept_fin(&mut self, now: Instant) {
        if self.has(TCB_F_FIN_RECEIVED) {
            return;
        }
        self.flags |= TCB_F_FIN_RECEIVED;
        self.cold.ooo_fin = None;
        self.cold.ooo_len = 0;
        self.rcv_nxt = self.rcv_nxt.wrapping_add(1);
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

    // ----- transmit path -----

    /// Our window field and the new right edge; never shrinks the right edge and
    /// avoids silly-window advertisements (RFC 1122 4.2.3.3).
    fn window_to_advertise(&self) -> (u16, u32) {
        let ws = self.rcv_wscale;
        // Keep one scale unit in reserve: when the old right edge is re-advertised its
        // field is rounded *up* (a window must not shrink), and the reserve guarantees
        // the peer's view of the edge still fits in the ring.
        let free = (self.cold.rcv.free() as u64)
            .saturating_sub((1u64 << ws) - 1)
            .min(65535u64 << ws) as u32;
        let cand_field = free >> ws;
        let cand_edge = self.rcv_nxt.wrapping_add(cand_field << ws);
        let old = self.rcv_wnd();
        let sws = (self.cold.rcv.cap() as u32 / 2)
            .min(u32::from(self.mss))
            .max(1);
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

    fn write_segment(
        &mut self,
        out: &mut [u8],
        seq: u32,
        flags: u8,
        opts: EmitOpts,
        data_off: usize,
        data_len: usize,
    ) -> usize {
        let (window, edge) = if flags & SYN != 0 {
            let w = (self.cold.rcv.free() as u32).min(65535);
            (w as u16, self.rcv_nxt.wrapping_add(w))
        } else if flags & RST != 0 {
            (0, self.rcv_adv)
        } else {
            self.window_to_advertise()
        };
        let ack = if flags & ACK != 0 { self.rcv_nxt } else { 0 };
        let h = EmitHeader {
            src_port: self.tuple.local_port,
            dst_port: self.tuple.remote_port,
            seq,
            ack,
            flags,
            window,
        };
        let hlen = emit_header(out, &h, &opts);
        let (a, b) = self.cold.snd.range(data_off, data_len);
        out[hlen..hlen + a.len()].copy_from_slice(a);
        out[hlen + a.len()..hlen + a.len() + b.len()].copy_from_slice(b);
        let total = hlen + a.len() + b.len();
        fill_checksum(self.tuple.local_ip, self.tuple.remote_ip, &mut out[..total]);
        if flags & ACK != 0 && flags & RST == 0 {
            self.last_ack_sent = self.rcv_nxt;
            self.rcv_adv = edge;
            self.flags &= !TCB_F_ACK_NOW;
            self.delack_at = NONE_AT;
        }
        self.cold.counters.segs_out += 1;
        total
    }

    fn ts_opt(&self, now: Instant) -> Option<(u32, u32)> {
        if self.has(TCB_F_TIMESTAMPS) {
            Some((self.ts_now(now), self.ts_recent))
        } else {
            None
        }
    }

    /// Handle expired timers (called from `poll_transmit`).
    fn on_timers(&mut self, now: Instant) {
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
                if self.synchronized() {
                    let smss = self.smss();
                    let flight = self.snd_max.wrapping_sub(self.snd_una);
                    self.ssthresh = (flight / 2).max(2 * smss);
                    self.cwnd = smss;
                    self.recover = self.snd_max;
                    self.dupacks = 0;
                }
                self.flags &= !(TCB_F_RECOVERY | TCB_F_RTT_TIMING | TCB_F_RETX_ONE);
                self.snd_nxt = self.snd_una;
            }
        }
    }

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
            let n = self.write_segment(out, seq, flags, EmitOpts::default(), 0, 0);
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
        if self.has(TCB_F_PROBE_NOW) {
            self.flags &= !TCB_F_PROBE_NOW;
            self.cold.counters.window_probes += 1;
            let opts = EmitOpts {
                timestamp: self.ts_opt(now),
                ..EmitOpts::default()
            };
            let seq = self.snd_una.wrapping_sub(1);
            return Some(self.write_segment(out, seq, ACK, opts, 0, 0));
        }
        if self.has(TCB_F_ACK_NOW) {
            let opts = EmitOpts {
                timestamp: self.ts_opt(now),
                ..EmitOpts::default()
            };
            return Some(self.write_segment(out, self.snd_nxt, ACK, opts, 0, 0));
        }
        None
    }

    fn send_syn(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        let passive_reply = self.state == State::SynReceived;
        if self.snd_nxt != self.snd_una {
            // SYN in flight; in SYN-RECEIVED an owed ACK is answered by the SYN-ACK path only.
            self.flags &= !TCB_F_ACK_NOW;
            return None;
        }
        let iss = self.cold.iss;
        let opts = EmitOpts {
            mss: Some(self.mss),
            wscale: if self.has(TCB_F_WSCALE) {
                Some(self.rcv_wscale)
            } else {
                None
            },
            sack_permitted: false,
            timestamp: if self.has(TCB_F_TIMESTAMPS) {
                Some((
                    self.ts_now(now),
                    if passive_reply { self.ts_recent } else { 0 },
                ))
            } else {
                None
            },
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

    fn send_data(&mut self, now: Instant, out: &mut [u8]) -> Option<usize> {
        if !matches!(
            self.state,
            State::Established
                | State::CloseWait
                | State::FinWait1
                | State::Closing
                | State::LastAck
        ) {
            return None;
        }
        let opts = EmitOpts {
            timestamp: self.ts_opt(now),
            ..EmitOpts::default()
        };
        let hlen = HEADER_LEN + opts.len();
        let room = (out.len() - hlen) as u32;
        let mss = self.smss().min(room).max(1);
        let buffered = self.cold.snd.len() as u32;
        let fin_queued = self.has(TCB_F_FIN_QUEUED);

        if self.has(TCB_F_RETX_ONE) {
            self.flags &= !TCB_F_RETX_ONE;
            let len = mss.min(buffered);
            let fin = fin_queued && self.has(TCB_F_FIN_SENT) && len == buffered;
            if len > 0 || fin {
                let mut flags = ACK;
                if fin {
                    flags |= FIN;
                }
                let n = self.write_segment(out, self.snd_una, flags, opts, 0, len as usize);
                if self.retx_at == NONE_AT {
                    self.arm_retx(now);
                }
                return Some(n);
            }
        }

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
        // Limited transmit (RFC 3042): the first two duplicate ACKs each let one new
        // segment out beyond cwnd, so small windows still produce a third dup ACK.
        let lt_extra = if self.has(TCB_F_RECOVERY) || lt(self.snd_nxt, self.snd_max) {
            0
        } else {
            u32::from(self.dupacks.min(2)) * self.smss()
        };
        let cwnd_avail = self.cwnd.saturating_add(lt_extra).saturating_sub(sent_off);
        let len = unsent.min(usable).min(cwnd_avail).min(mss);
        let all = len == unsent;
        let send_fin = fin_queued && all && !self.has(TCB_F_FIN_SENT)
            || fin_queued && all && self.has(TCB_F_FIN_SENT) && lt(self.snd_nxt, self.snd_max);
        // Sender-side silly window avoidance (RFC 9293 3.8.6.2.1), no Nagle delay.
        // When the persist timer fires with a small but open window, send what fits
        // (RFC 1122 4.2.3.4 override) instead of waiting forever.
        let sws_ok = len == mss
            || all
            || len >= self.max_snd_wnd / 2
            || self.has(TCB_F_PROBE_NOW) && len > 0;
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
        let seq = self.snd_nxt;
        let retransmission = lt(seq, self.snd_max);
        if retransmission {
            self.cold.counters.retransmits += 1;
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
        Some(n)
    }

    /// Earliest instant at which `poll_transmit` has timer work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        let mut t = self.retx_at.min(self.delack_at);
        if self.state == State::SynReceived {
            t = t.min(self.cold.syn_deadline);
        }
        (t != NONE_AT).then(|| Instant::from_micros(t))
    }

    // ----- application side -----

    /// Contiguous in-order received bytes not yet consumed.
    pub fn recv_slice(&self) -> &[u8] {
        self.cold.rcv.readable().0
    }

    /// Consume `n` received bytes; may schedule a window update (SWS-avoided).
    pub fn recv_consume(&mut self, n: usize) {
        let before = self.rcv_adv;
        self.cold.rcv.consume(n);
        if !matches!(
            self.state,
            State::Established | State::FinWait1 | State::FinWait2
        ) || self.has(TCB_F_FIN_RECEIVED)
        {
            return;
        }
        let (_, edge) = self.window_to_advertise();
        if gt(edge, before) {
            let sws = (self.cold.rcv.cap() as u32 / 2).min(u32::from(self.mss));
            // Announce when the window grew by at least min(buf/2, MSS), or reopens from zero.
            if edge.wrapping_sub(before) >= sws || self.rcv_wnd() == 0 {
                self.ack_now();
            }
        }
    }

    pub fn recv_available(&self) -> usize {
        self.cold.rcv.len()
    }

    fn can_send(&self) -> bool {
        matches!(
            self.state,
            State::SynSent | State::SynReceived | State::Established | State::CloseWait
        ) && !self.has(TCB_F_FIN_QUEUED)
    }

    pub fn send_space(&self) -> usize {
        if self.can_send() {
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
        self.cold.snd.commit(n)
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

    pub fn state(&self) -> State {
        self.state
    }

    pub fn tuple(&self) -> FourTuple {
        self.tuple
    }

    /// The peer closed its direction (FIN received in order).
    pub fn peer_fin_received(&self) -> bool {
        self.has(TCB_F_FIN_RECEIVED)
    }

    /// Nothing more to do: the owner may drop it.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed && self.cold.pending_rst.is_none()
    }

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

    /// Our TSval clock reading at `now` (what a segment sent now would carry).
    pub fn ts_clock(&self, now: Instant) -> u32 {
        self.ts_now(now)
    }

    // ----- migration -----

    /// Snapshot the connection state (no data). The node-owned fields are zero.
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
            flags_ext: 0,
        }
    }

    /// Rebuild an endpoint from a TCB and the carried send / receive data.
    pub fn import(
        cfg: &Config,
        tcb: &Tcb,
        tuple: FourTuple,
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
        let mut ep = Endpoint::new(cfg, tuple, tcb.iss, tcb.state, now);
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
        c.snd.write_at(0, snd_data);
        c.snd.commit(snd_data.len());
        c.rcv.write_at(0, rcv_data);
        c.rcv.commit(rcv_data.len());
        Ok(ep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hot_size_is_compact() {
        let n = core::mem::size_of::<Endpoint>();
        println!("size_of::<Endpoint>() = {n} bytes (hot state + Box pointer)");
        assert!(n <= 128, "hot state is {n} bytes");
    }
}
