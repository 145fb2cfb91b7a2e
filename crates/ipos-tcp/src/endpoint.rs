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
    /// Offer / accept SACK (RFC 2018). Used only if both SYNs carry SACK-permitted:
    /// we then send SACK blocks for out-of-order data and recover from loss with an
    /// RFC 6675 scoreboard. Default `true`.
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
            sack_permitted: true,
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
    /// Segments sent again (RTO go-back-N, fast retransmit, NewReno partial ACK, SACK
    /// hole repair, tail loss probes that resend the last segment).
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
/// SACKed ranges the sender remembers (RFC 6675 scoreboard). When full, the highest
/// range is forgotten: less SACK information only means more conservative recovery.
const SB_MAX: usize = 32;
/// RFC 5681 / 6675 DupThresh.
const DUP_THRESH: u32 = 3;
const EARLY_NONE: u8 = 0;
/// Tail loss probe (RFC 8985 section 7), only with SACK and an empty scoreboard.
const EARLY_TLP: u8 = 1;
/// Reordering window expiry (RFC 8985 section 6.2 in spirit): unSACKed holes below SACKed
/// data that outlive it are lost, even if fewer than DupThresh segments were SACKed.
const EARLY_REO: u8 = 2;
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
    /// Sender's SACK scoreboard: disjoint, non-adjacent ranges [start, end) in ascending
    /// order, all within (`snd_una`, `snd_max`]. Not carried by `export`.
    sb: [(u32, u32); SB_MAX],
    sb_len: u8,
    /// RFC 6675 HighRxt (exclusive): unSACKed data below it has been retransmitted since
    /// the last RTO or loss-recovery start. Never below `snd_una`.
    high_rxt: u32,
    /// `snd_max` when the latest retransmission was sent. Original data above it sent
    /// later; if enough of that is SACKed while a retransmitted hole is still missing,
    /// the retransmission was lost (lost-retransmission detection, as in Linux).
    rxt_mark: u32,
    /// Unsacked data below this is lost (set when the reorder timer expires, RFC 8985-like).
    lost_floor: u32,
    /// Loss-probe (TLP) or reorder timer, microseconds (`NONE_AT` = off); kind in `early_kind`.
    early_at: i64,
    early_kind: u8,
    /// A tail loss probe is owed now / has been sent and not yet acknowledged.
    tlp_now: bool,
    tlp_out: bool,
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
        if cfg.sack_permitted {
            // Offered; cleared if the peer's SYN does not offer it too.
            flags |= TCB_F_SACK;
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
                sb: [(0, 0); SB_MAX],
                sb_len: 0,
                high_rxt: iss,
                rxt_mark: iss,
                lost_floor: iss,
                early_at: NONE_AT,
                early_kind: EARLY_NONE,
                tlp_now: false,
                tlp_out: false,
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
        if !seg.sack_permitted {
            self.flags &= !TCB_F_SACK;
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
        self.cold.early_at = NONE_AT;
        self.cold.early_kind = EARLY_NONE;
        self.cold.tlp_now = false;
        self.flags &= !(TCB_F_PERSIST | TCB_F_PROBE_NOW | TCB_F_RETX_ONE);
        self.retx_at = (now + self.cold.time_wait).total_micros();
    }

    fn enter_closed(&mut self) {
        self.state = State::Closed;
        self.retx_at = NONE_AT;
        self.cold.early_at = NONE_AT;
        self.cold.early_kind = EARLY_NONE;
        self.cold.tlp_now = false;
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
        let sack = self.has(TCB_F_SACK);
        let new_wnd = u32::from(seg.window) << self.snd_wscale;
        let advanced = gt(ack, self.snd_una);
        if advanced {
            let acked = ack.wrapping_sub(self.snd_una);
            let buffered = self.cold.snd.len() as u32;
            let data_acked = acked.min(buffered);
            let fin_acked = self.has(TCB_F_FIN_SENT) && acked > buffered;
            self.cold.snd.consume(data_acked as usize);
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
                    // Full ACK: deflate.
                    let flight = self.snd_max.wrapping_sub(ack);
                    self.cwnd = self.ssthresh.min(flight.max(smss) + smss);
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
                    let inc = (u64::from(smss) * u64::from(smss) / u64::from(self.cwnd.max(1)))
                        .max(1) as u32;
                    self.cwnd = self.cwnd.saturating_add(inc);
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
        if advanced {
            self.cold.tlp_out = false;
        }
        self.rearm_early(now);
    }

    // ----- SACK scoreboard (RFC 6675) -----

    /// Offset of `x` from `snd_una`.
    #[inline]
    fn off(&self, x: u32) -> u32 {
        x.wrapping_sub(self.snd_una)
    }

    /// Record a received SACK block; returns the number of newly SACKed bytes.
    /// Blocks outside (`snd_una`, `snd_max`] (D-SACK, garbage) are ignored or clipped.
    fn sb_add(&mut self, l: u32, r: u32) -> u32 {
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
    fn sb_trim(&mut self) {
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

    fn sb_blocks(&self) -> &[(u32, u32)] {
        &self.cold.sb[..self.cold.sb_len as usize]
    }

    /// SACKed bytes in [`snd_una`, `snd_una + x`).
    fn sb_sacked_below(&self, x: u32) -> u32 {
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
    fn sb_lost_end(&self) -> u32 {
        let floor = if gt(self.cold.lost_floor, self.snd_una) {
            self.off(self.cold.lost_floor).min(self.sb_high_sacked())
        } else {
            0
        };
        floor.max(self.sb_lost_end_dupthresh())
    }

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
    fn sb_pipe(&self) -> u32 {
        let f = self.snd_max.wrapping_sub(self.snd_una);
        let sacked = self.sb_sacked_below(f);
        let le = self.sb_lost_end();
        let lost = le - self.sb_sacked_below(le);
        let hr = self.high_rxt_off();
        let rxt = hr - self.sb_sacked_below(hr);
        (f - sacked - lost).saturating_add(rxt)
    }

    /// HighRxt as an offset from `snd_una` (0 if stale, at most the flight).
    fn high_rxt_off(&self) -> u32 {
        if lt(self.cold.high_rxt, self.snd_una) {
            0
        } else {
            self.off(self.cold.high_rxt)
                .min(self.snd_max.wrapping_sub(self.snd_una))
        }
    }

    /// The first unSACKed hole at or after offset `from`, as offsets [start, end); the
    /// hole ends at the next SACKed range or at `snd_max`.
    fn sb_hole_from(&self, from: u32) -> (u32, u32) {
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
    fn sb_high_sacked(&self) -> u32 {
        match self.sb_blocks().last() {
            Some(&(_, b)) => self.off(b),
            None => 0,
        }
    }

    /// Forget all SACK information (what an imported endpoint starts with).
    fn sb_clear(&mut self) {
        self.cold.sb_len = 0;
        self.reset_loss_marks(self.snd_una);
    }

    /// Restart loss detection from `snd_una`: no retransmission marked, no
    /// early-retransmit or loss-probe timer, retransmissions marked up to `rxt_mark`.
    fn reset_loss_marks(&mut self, rxt_mark: u32) {
        let c = &mut *self.cold;
        c.high_rxt = self.snd_una;
        c.rxt_mark = rxt_mark;
        c.lost_floor = self.snd_una;
        c.early_at = NONE_AT;
        c.early_kind = EARLY_NONE;
        c.tlp_now = false;
        c.tlp_out = false;
    }

    /// Arm, keep or stop the loss-probe / reorder timer after an ACK or a transmission.
    fn rearm_early(&mut self, now: Instant) {
        let off = !self.has(TCB_F_SACK)
            || self.srtt == 0
            || self.snd_una == self.snd_max
            || self.has(TCB_F_PERSIST)
            || !matches!(
                self.state,
                State::Established
                    | State::CloseWait
                    | State::FinWait1
                    | State::Closing
                    | State::LastAck
            );
        if off {
            self.cold.early_at = NONE_AT;
            self.cold.early_kind = EARLY_NONE;
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
                if self.cold.early_kind != EARLY_REO {
                    let reo = u64::from(self.srtt / 4).max(1000);
                    self.cold.early_at = t.saturating_add(reo as i64);
                    self.cold.early_kind = EARLY_REO;
                }
                return;
            }
        }
        // Nothing left for SACK to decide: a tail loss probe gets the ACK clock going
        // again (also in recovery, where a lost retransmission with nothing sent after it
        // would otherwise wait for the RTO).
        if self.cold.tlp_out || self.backoff > 0 || lt(self.snd_nxt, self.snd_max) {
            self.cold.early_at = NONE_AT;
            self.cold.early_kind = EARLY_NONE;
            return;
        }
        // RFC 8985 section 7.2: PTO = 2 * SRTT (+ a delayed-ACK allowance for one segment).
        let flight = self.snd_max.wrapping_sub(self.snd_una);
        let extra: u64 = if flight <= self.smss() {
            200_000
        } else {
            2_000
        };
        let pto = 2 * u64::from(self.srtt) + extra;
        let at = t.saturating_add(pto as i64);
        if at >= self.retx_at {
            // The RTO comes first anyway.
            self.cold.early_at = NONE_AT;
            self.cold.early_kind = EARLY_NONE;
            return;
        }
        self.cold.early_at = at;
        self.cold.early_kind = EARLY_TLP;
    }

    /// The loss-probe / reorder timer expired.
    fn on_early_timer(&mut self) {
        let kind = self.cold.early_kind;
        self.cold.early_at = NONE_AT;
        self.cold.early_kind = EARLY_NONE;
        match kind {
            EARLY_TLP => {
                self.cold.tlp_now = true;
                self.cold.tlp_out = true;
            }
            EARLY_REO if self.cold.sb_len > 0 => {
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

    /// RFC 6675 section 5 on a duplicate ACK, plus lost-retransmission detection.
    fn sack_loss_detection(&mut self) {
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

    fn enter_sack_recovery(&mut self) {
        let flight = self.snd_max.wrapping_sub(self.snd_una);
        self.ssthresh = (flight.min(self.cwnd) / 2).max(2 * self.smss());
        self.cwnd = self.ssthresh;
        self.recover = self.snd_max;
        self.snd_nxt = self.snd_max;
        self.cold.high_rxt = self.snd_una;
        self.cold.rxt_mark = self.snd_max;
        self.flags |= TCB_F_RECOVERY | TCB_F_RETX_ONE;
        self.flags &= !TCB_F_RTT_TIMING;
        self.cold.counters.fast_retransmits += 1;
        self.cold.counters.retransmits += 1;
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
        if self.cold.early_at <= t {
            self.on_early_timer();
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
                // Keep the SACK scoreboard so the slow-start pass skips SACKed data
                // (RFC 6675 section 5.1 allows it), but forget it on a second RTO in a row
                // in case the receiver reneged on what it SACKed.
                if self.backoff >= 2 {
                    self.cold.sb_len = 0;
                }
                self.reset_loss_marks(self.snd_max);
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
            sack_permitted: self.has(TCB_F_SACK),
            timestamp: if self.has(TCB_F_TIMESTAMPS) {
                Some((
                    self.ts_now(now),
                    if passive_reply { self.ts_recent } else { 0 },
                ))
            } else {
                None
            },
            ..EmitOpts::default()
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

    /// Options for a non-SYN segment: timestamps and, when SACK was negotiated and data
    /// is held out of order, SACK blocks (most recently changed first, RFC 2018: up to 3
    /// with timestamps, 4 without), as many as fit in `out_len` with 8 payload bytes spare.
    fn seg_opts(&self, now: Instant, out_len: usize) -> EmitOpts {
        let mut o = EmitOpts {
            timestamp: self.ts_opt(now),
            ..EmitOpts::default()
        };
        let have = self.cold.ooo_len as usize;
        if self.has(TCB_F_SACK) && have > 0 {
            let max = if o.timestamp.is_some() { 3 } else { 4 };
            let fit = out_len.saturating_sub(HEADER_LEN + o.len() + 4 + 8) / 8;
            let n = have.min(max).min(fit);
            o.sack[..n].copy_from_slice(&self.cold.ooo[..n]);
            o.sack_n = n as u8;
        }
        o
    }

    /// Retransmit from offset `p` (from `snd_una`) up to `hole_end`, at most `mss`
    /// bytes; with FIN if the hole covers it. Updates HighRxt and the loss mark.
    fn send_retransmission(
        &mut self,
        now: Instant,
        out: &mut [u8],
        opts: EmitOpts,
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
            // Tail loss probe: one segment of new data if possible, else the last one.
            self.cold.tlp_now = false;
            if self.snd_una != self.snd_max {
                if let Some(n) = self.send_new(now, out, opts, mss, u32::MAX, u32::MAX) {
                    return Some(n);
                }
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
        opts: EmitOpts,
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

    /// Earliest instant at which `poll_transmit` has timer work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        let mut t = self.retx_at.min(self.delack_at).min(self.cold.early_at);
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

    /// Forget the SACK scoreboard (SACKed ranges, HighRxt and the lost-retransmission
    /// mark), exactly as [`Endpoint::import`] starts. `export` does not carry the
    /// scoreboard, so `import(export(s))` behaves exactly like `s` after this call.
    /// Always safe: SACK information is advisory (RFC 2018 section 8).
    pub fn forget_sack(&mut self) {
        self.sb_clear();
    }

    /// Number of SACKed ranges in the sender's scoreboard.
    pub fn sack_ranges(&self) -> usize {
        self.cold.sb_len as usize
    }

    /// Our TSval clock reading at `now` (what a segment sent now would carry).
    pub fn ts_clock(&self, now: Instant) -> u32 {
        self.ts_now(now)
    }

    // ----- migration -----

    /// Snapshot the connection state (no data). The node-owned fields are zero.
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
        c.high_rxt = tcb.snd_una;
        c.rxt_mark = tcb.snd_una;
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
