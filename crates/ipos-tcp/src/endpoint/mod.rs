//! The TCP endpoint (RFC 9293) without I/O: one connection, driven by
//! [`Endpoint::on_segment`], [`Endpoint::poll_transmit`] and the application calls,
//! with time passed in as an argument.
//!
//! One `impl Endpoint` block per concern, one file each:
//!
//! | file | concern | follows |
//! |---|---|---|
//! | `mod.rs` | [`Config`], [`State`], [`Counters`], the endpoint's hot and cold state, constants, constructors (passive / active open, SYN option negotiation, the initial window), helpers shared by every file | RFC 9293 sections 3.3.2, 3.4, 3.7.1; RFC 7323 sections 2.2, 3.2; RFC 2018 section 2; RFC 6928 |
//! | `input.rs` | segment arrival, the state machine, acceptability, PAWS; the TIME-WAIT reuse check | RFC 9293 section 3.10.7; RFC 5961 sections 3-5; RFC 7323 sections 4.3, 5.3; RFC 6191 section 2; RFC 1122 section 4.2.2.13 |
//! | `ack.rs` | ACK processing: cumulative advance, RTT, congestion control, window update | RFC 9293 section 3.10.7.4; RFC 6298; RFC 7323 section 4.1; RFC 5681; RFC 6582 |
//! | `cc.rs` | the congestion-control trait (what avoidance adds per ACK, what a loss leaves), NewReno, the choice ([`Congestion`]) | RFC 5681 section 3.1; RFC 6582 section 3.2 |
//! | `cubic.rs` | CUBIC, the default | RFC 9438 sections 4.2-4.8 |
//! | `dsack.rs` | D-SACK blocks sent for duplicate data; D-SACKs received undo a needless reduction | RFC 2883 sections 4-5; RFC 3708 |
//! | `prr.rs` | how much goes out per ACK in SACK recovery | RFC 6937 section 3 |
//! | `sack.rs` | the sender's SACK scoreboard, loss detection and recovery entry, the early (tail loss probe / reorder) timer | RFC 6675; RFC 2018 section 8; RFC 8985 sections 6.2, 7.2 |
//! | `reassembly.rs` | received data, out-of-order ranges, FIN acceptance, delayed-ACK policy | RFC 9293 section 3.10.7.4; RFC 2018 section 4; RFC 1122 section 4.2.3.2 |
//! | `timers.rs` | RTO, persist, TIME-WAIT, delayed ACK, SYN-RECEIVED give-up; `poll_timeout` | RFC 6298 section 5; RFC 9293 sections 3.6.1, 3.8.6.1; RFC 1122 section 4.2.3.2 |
//! | `output.rs` | `poll_transmit`: what goes out next, options, the window we advertise (and its optional cap), writing segments | RFC 9293 sections 3.8.6, 3.10.7; RFC 5681; RFC 3042; RFC 6675 section 5; RFC 8985 section 7.3; RFC 1122 section 4.2.3.3 |
//! | `app.rs` | the application side: read, write, close, abort, accessors | RFC 9293 sections 3.10.2-3.10.5 |
//! | `migrate.rs` | `export` / `import` of the [`Tcb`] | [`crate::tcb`] |
//! | `keepalive.rs` | keep-alive probes of an idle connection (off by default) | RFC 9293 section 3.8.4; RFC 1122 section 4.2.3.6 |
//! | `cookie.rs` | the stateless SYN-ACK that carries a SYN cookie, and the endpoint created ESTABLISHED from the ACK that returns it | RFC 4987 section 3.6; Linux `net/ipv4/syncookies.c` (see [`crate::syncookie`]) |
//!
//! Invariants every file keeps:
//! - sequence numbers compare only with the wrapping functions of `crate::seq`
//!   (RFC 9293 section 3.4);
//! - `snd_una <= snd_nxt <= snd_max`; the send ring holds the bytes from `snd_una`
//!   (sent-unacknowledged, then unsent), the receive ring's readable bytes end at
//!   `rcv_nxt` (minus one once a FIN is in);
//! - the advertised right edge `rcv_adv` never moves left;
//! - every timer is an absolute deadline in microseconds, `NONE_AT` when off;
//! - the hot fields of [`Endpoint`] stay within 128 bytes (test `hot_size_is_compact`);
//!   rarely used state and the buffers live in the boxed `Cold`;
//! - the send and receive rings may hold data only once the connection is synchronized
//!   (a passive open enables them on reaching ESTABLISHED, an active open at once, an
//!   import or a cookie connection when it is created): a half-open connection costs
//!   the `Cold` box and no buffer;
//! - a ring holds memory only while it holds data ([`crate::buffers`]): the send ring
//!   gives its buffer back when everything in it is acknowledged (`ack.rs`) and when
//!   the application wrote nothing into it (`app.rs`), the receive ring when the
//!   application has read everything and no out-of-order range waits (`app.rs`); an
//!   idle established connection costs no buffer either.

mod ack;
mod app;
mod cc;
mod cookie;
mod cubic;
mod dsack;
mod input;
mod keepalive;
mod migrate;
mod output;
mod prr;
mod reassembly;
mod sack;
mod timers;

use smoltcp::time::{Duration, Instant};

use ipos_wire::Flow;

use crate::ring::Ring;
use crate::segment::{Segment, SegmentError, ACK, FIN, RST, SYN};
use crate::seq::ge;
use crate::tcb::*;
use cc::Cc;
pub use cc::Congestion;
pub use keepalive::Keepalive;
use keepalive::KeepaliveState;
use sack::EarlyTimer;

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
    /// Congestion control (default CUBIC, RFC 9438).
    pub congestion: Congestion,
    /// Initial window in segments (RFC 6928: 10, the default): the first window
    /// is min(N * SMSS, max(2 * SMSS, N * 1460)) bytes.
    pub initial_window: u8,
    /// TCP keep-alive probes of an idle connection (RFC 9293 section 3.8.4); `None`,
    /// the default, sends none.
    pub keepalive: Option<Keepalive>,
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
            congestion: Congestion::Cubic,
            initial_window: 10,
            keepalive: None,
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
    /// Keep-alive probes sent, and connections aborted after unanswered ones.
    pub keepalive_probes: u64,
    pub keepalive_timeouts: u64,
    /// Window reductions undone because D-SACKs showed every retransmission of the
    /// episode was needless (RFC 2883).
    pub spurious_undos: u64,
    /// ACKs not sent for segments we could not take, past one per 500 ms.
    pub acks_rate_limited: u64,
    /// RTOs at which the receiver had dropped data it SACKed (its cumulative ACK
    /// stopped at a SACKed range): the scoreboard was forgotten and the data sent again.
    pub sack_reneged: u64,
    pub rst_in: u64,
    pub rst_out: u64,
}

const NONE_AT: i64 = i64::MAX;
/// At most one ACK per this many microseconds for segments we could not take.
const OOW_ACK_GAP_US: i64 = 500_000;
const MAX_OOO: usize = 8;
/// SACKed ranges the sender remembers (RFC 6675 scoreboard). When full, the highest
/// range is forgotten: less SACK information only means more conservative recovery.
const SB_MAX: usize = 32;
/// RFC 5681 / 6675 DupThresh.
const DUP_THRESH: u32 = 3;
const TS_OPT_LEN: u16 = 12;
/// RFC 1122 / RFC 9293 default MSS when the peer sends none.
const DEFAULT_MSS: u16 = 536;
/// RFC 7323 section 5.5: TS.Recent is invalid after 24 days idle.
const TS_RECENT_MAX_AGE_MS: i64 = 24 * 24 * 3600 * 1000;

/// Rarely touched state and the buffers, kept out of the hot part.
struct Cold {
    // From `Config`.
    delayed_ack: Duration,
    min_rto_us: u32,
    max_rto_us: u32,
    max_retransmits: u32,
    time_wait: Duration,
    syn_received_timeout: Duration,
    initial_window: u8,
    // cc.rs: the congestion control's own state (not carried by the TCB).
    cc: Cc,
    // keepalive.rs (not carried by the TCB).
    keepalive: KeepaliveState,
    // prr.rs: the recovery episode's bookkeeping (not carried by the TCB).
    prr: prr::Prr,
    // dsack.rs: the latest episode's record for its undo; a D-SACK block to send.
    undo: dsack::Undo,
    dsack: Option<(u32, u32)>,
    /// When the last rate-limited ACK went out (`NONE_AT`: never).
    oow_ack_at: i64,
    // Carried by the TCB.
    iss: u32,
    irs: u32,
    snd_wnd_raw: u16,
    ts_recent_age: Instant,
    rtt_seq: u32,
    rtt_start: Instant,
    syn_deadline: i64,
    // reassembly.rs
    /// Out-of-order ranges [start, end) in sequence space, all beyond `rcv_nxt`, most
    /// recently changed first.
    ooo: [(u32, u32); MAX_OOO],
    ooo_len: u8,
    /// Sequence number of a FIN seen beyond a gap.
    ooo_fin: Option<u32>,
    // Set by input.rs, timers.rs and app.rs; sent by output.rs.
    /// RST to send: (seq, Some(ack) for RST|ACK).
    pending_rst: Option<(u32, Option<u32>)>,
    // output.rs (the window we advertise); not carried by the TCB.
    /// While set, the window we advertise reaches at most this far beyond `rcv_nxt`,
    /// less the bytes not yet read (`Endpoint::set_rcv_window_cap`).
    rcv_wnd_cap: Option<u32>,
    /// How far beyond `rcv_adv` the peer may have been told our window reaches: a
    /// re-advertised edge is rounded up to a window-scale unit, so this stays below one
    /// unit. Used only to trim received data while `rcv_wnd_cap` is set.
    rcv_adv_slack: u32,
    // sack.rs (the scoreboard and the early timer)
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
    /// Loss-probe (TLP) or reorder timer, with its deadline.
    early: EarlyTimer,
    /// A tail loss probe is owed now; probes sent since the last cumulative advance.
    tlp_now: bool,
    tlp_out: u8,
    // Everyone.
    counters: Counters,
    /// Send buffer: the bytes from `snd_una` on (sent-unacknowledged, then unsent).
    snd: Ring,
    /// Receive buffer: in-order bytes the application has not consumed, then room for
    /// the window (out-of-order data waits in that room).
    rcv: Ring,
}

/// A TCP endpoint. Hot state is inline (see `hot_size_is_compact` test); buffers live in `cold`.
///
/// # Flow convention
///
/// An endpoint's [`Flow`] is named **in the direction its peer sends**: `src_addr` /
/// `src_port` are the peer (remote), `dst_addr` / `dst_port` this endpoint (local). A
/// server endpoint's flow is therefore exactly the flow of the client's packets
/// (client -> VIP), the key the node and the ipOS header use; the segments the endpoint
/// writes travel on `flow.reversed()`. [`Endpoint::accept`] takes the SYN's flow,
/// [`Endpoint::connect`] the flow the server will send us on (src = server, dst = us),
/// and [`Endpoint::import`] the exporter's [`Endpoint::flow`].
pub struct Endpoint {
    flow: Flow,
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
            .field("flow", &self.flow)
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
    /// The common part of every constructor: RTO bounds, offered options, the buffers'
    /// sizes (not yet enabled: see [`Endpoint::enable_buffers`]).
    fn new(cfg: &Config, flow: Flow, iss: u32, state: State, now: Instant) -> Endpoint {
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
            flow,
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
                initial_window: cfg.initial_window.max(1),
                cc: Cc::new(cfg.congestion),
                keepalive: KeepaliveState::new(cfg.keepalive, now),
                prr: prr::Prr::default(),
                undo: dsack::Undo::default(),
                dsack: None,
                oow_ack_at: NONE_AT,
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
                rcv_wnd_cap: None,
                rcv_adv_slack: 0,
                sb: [(0, 0); SB_MAX],
                sb_len: 0,
                high_rxt: iss,
                rxt_mark: iss,
                lost_floor: iss,
                early: EarlyTimer::Off,
                tlp_now: false,
                tlp_out: 0,
                counters: Counters::default(),
                snd: Ring::new(cfg.snd_buf),
                rcv: Ring::new(cfg.rcv_buf),
            }),
        }
    }

    /// Passive open from a received SYN (whole TCP segment, checksum verified by the caller).
    /// `flow` is the SYN's own flow: source = the client, destination = us (see
    /// [`Endpoint`] for the convention); the SYN's ports must match it.
    pub fn accept(
        cfg: &Config,
        flow: Flow,
        syn: &[u8],
        iss: u32,
        now: Instant,
    ) -> Result<Endpoint, SegmentError> {
        let seg = Segment::parse(syn)?;
        if !seg.has(SYN) || seg.has(ACK) || seg.has(RST) || seg.has(FIN) {
            return Err(SegmentError::NotSyn);
        }
        if seg.dst_port != flow.dst_port || seg.src_port != flow.src_port {
            return Err(SegmentError::PortMismatch);
        }
        let mut ep = Endpoint::new(cfg, flow, iss, State::SynReceived, now);
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

    /// Active open: the SYN goes out on the first `poll_transmit`. `flow` is what the
    /// server will send us: source = the server, destination = us (see [`Endpoint`]).
    pub fn connect(cfg: &Config, flow: Flow, iss: u32, now: Instant) -> Endpoint {
        let mut ep = Endpoint::new(cfg, flow, iss, State::SynSent, now);
        // Offered; cleared if the SYN-ACK does not confirm.
        ep.flags |= TCB_F_WSCALE;
        // Our own application may queue data before the handshake completes.
        ep.enable_buffers();
        ep
    }

    /// Adopt what the peer's SYN offers (RFC 9293 section 3.7.1 MSS, RFC 7323 sections 2.2
    /// and 3.2, RFC 2018 section 2): an option is used only if both sides offer it. Sets
    /// the initial window ([`Endpoint::initial_cwnd`]).
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
        self.cwnd = self.initial_cwnd();
    }

    /// The initial window: min(N * SMSS, max(2 * SMSS, N * 1460)) for N =
    /// `Config::initial_window` segments (RFC 6928 section 2 for N = 10; RFC 3390's
    /// 4380 bytes is close to N = 3).
    fn initial_cwnd(&self) -> u32 {
        let smss = self.smss();
        let n = u32::from(self.cold.initial_window);
        (n * smss).min((2 * smss).max(n * 1460))
    }

    // ----- small helpers shared by every file -----

    /// Lets the send and receive rings store data (their memory comes with the first
    /// byte). Called when the connection becomes synchronized, never for a half-open
    /// passive connection.
    fn enable_buffers(&mut self) {
        self.cold.snd.enable();
        self.cold.rcv.enable();
    }

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

    /// Our TSval clock: milliseconds, offset per connection (continued across a move).
    fn ts_now(&self, now: Instant) -> u32 {
        (now.total_millis() as u32).wrapping_add(self.ts_offset)
    }

    /// An ACK is owed: the next `poll_transmit` sends one (possibly on data).
    fn ack_now(&mut self) {
        self.flags |= TCB_F_ACK_NOW;
    }

    /// RFC 5961 challenge ACK (not rate-limited).
    fn challenge_ack(&mut self, now: Instant) {
        self.cold.counters.challenge_acks += 1;
        self.oow_ack(now);
    }

    /// An ACK answering a segment that carries no data and that we could not take
    /// (outside the window, turned away by PAWS, or answered by a challenge ACK),
    /// at most one per `OOW_ACK_GAP_US` (as Linux's `tcp_invalid_ratelimit`; RFC
    /// 5961 section 7): two endpoints that disagree on the sequence space would
    /// otherwise answer each other's ACKs forever (an ACK storm).
    fn oow_ack(&mut self, now: Instant) {
        let t = now.total_micros();
        if self.cold.oow_ack_at != NONE_AT && t - self.cold.oow_ack_at < OOW_ACK_GAP_US {
            self.cold.counters.acks_rate_limited += 1;
            return;
        }
        self.cold.oow_ack_at = t;
        self.ack_now();
    }

    /// Take the peer's window from a segment (SND.WND, SND.WL1, SND.WL2).
    fn set_snd_wnd(&mut self, raw: u16, shift: u8, seq: u32, ack: u32) {
        self.snd_wnd = u32::from(raw) << shift;
        self.cold.snd_wnd_raw = raw;
        self.snd_wl1 = seq;
        self.snd_wl2 = ack;
        self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
    }

    /// The window we advertised that is still open: from `rcv_nxt` to `rcv_adv`.
    fn rcv_wnd(&self) -> u32 {
        if ge(self.rcv_adv, self.rcv_nxt) {
            self.rcv_adv.wrapping_sub(self.rcv_nxt)
        } else {
            0
        }
    }

    /// A synchronized state (RFC 9293 section 3.5.2): past the handshake, not CLOSED.
    fn synchronized(&self) -> bool {
        !matches!(
            self.state,
            State::SynSent | State::SynReceived | State::Closed
        )
    }

    /// A state in which data may be in flight from us: sent data can still be
    /// (re)transmitted and acknowledged.
    fn sends_data(&self) -> bool {
        matches!(
            self.state,
            State::Established
                | State::CloseWait
                | State::FinWait1
                | State::Closing
                | State::LastAck
        )
    }

    /// TIME-WAIT, (re)starting its timer; nothing more is sent but ACKs.
    fn enter_time_wait(&mut self, now: Instant) {
        self.state = State::TimeWait;
        self.cold.early = EarlyTimer::Off;
        self.cold.tlp_now = false;
        self.flags &= !(TCB_F_PERSIST | TCB_F_PROBE_NOW | TCB_F_RETX_ONE);
        self.retx_at = (now + self.cold.time_wait).total_micros();
    }

    /// CLOSED: every timer off, nothing owed (but a pending RST still goes out).
    fn enter_closed(&mut self) {
        self.state = State::Closed;
        self.retx_at = NONE_AT;
        self.cold.early = EarlyTimer::Off;
        self.cold.tlp_now = false;
        self.delack_at = NONE_AT;
        self.cold.syn_deadline = NONE_AT;
        self.flags &=
            !(TCB_F_ACK_NOW | TCB_F_PERSIST | TCB_F_PROBE_NOW | TCB_F_RETX_ONE | TCB_F_RTT_TIMING);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A passive open holds no buffers while half-open: they come with ESTABLISHED.
    #[test]
    fn buffers_come_with_established() {
        use smoltcp::wire::Ipv4Address;
        let cfg = Config::default();
        let now = Instant::from_secs(1);
        let flow = Flow {
            src_addr: Ipv4Address::new(198, 18, 0, 1),
            src_port: 40000,
            dst_addr: Ipv4Address::new(198, 18, 0, 100),
            dst_port: 80,
        };
        let mut client = Endpoint::connect(&cfg, flow.reversed(), 77, now);
        assert!(
            client.has_buffers(),
            "an active open may queue data at once"
        );
        let mut b = [0u8; 1600];
        let n = client.poll_transmit(now, &mut b).unwrap();
        let mut server = Endpoint::accept(&cfg, flow, &b[..n], 1000, now).unwrap();
        assert!(!server.has_buffers());
        assert_eq!(server.send_space(), 0);
        let n = server.poll_transmit(now, &mut b).unwrap();
        let syn_ack = Segment::parse(&b[..n]).unwrap();
        assert_eq!(syn_ack.window, 65535, "the window the buffer will give");
        assert!(!server.has_buffers());
        client.on_segment(now, &b[..n]).unwrap();
        let n = client.poll_transmit(now, &mut b).unwrap();
        server.on_segment(now, &b[..n]).unwrap();
        assert_eq!(server.state(), State::Established);
        assert!(server.has_buffers());
        assert_eq!(server.send_space(), cfg.snd_buf);
        assert_eq!(server.buffer_memory(), 0, "nothing stored: no memory yet");

        // A request: the receive ring holds memory until the application reads it all.
        assert_eq!(client.send_slice(b"GET / HTTP/1.1\r\n\r\n"), 18);
        let n = client.poll_transmit(now, &mut b).unwrap();
        server.on_segment(now, &b[..n]).unwrap();
        assert_eq!(server.buffer_memory(), cfg.rcv_buf);
        server.recv_consume(10);
        assert_eq!(server.buffer_memory(), cfg.rcv_buf, "8 bytes still unread");
        server.recv_consume(8);
        assert_eq!(server.buffer_memory(), 0, "read: given back");

        // A response: the send ring holds memory until the client acknowledges it.
        assert_eq!(server.send_slice(b"HTTP/1.1 200 OK\r\n\r\n"), 19);
        assert_eq!(server.buffer_memory(), cfg.snd_buf);
        let n = server.poll_transmit(now, &mut b).unwrap();
        client.on_segment(now, &b[..n]).unwrap();
        let later = now + Duration::from_millis(50);
        let n = client.poll_transmit(later, &mut b).unwrap();
        server.on_segment(later, &b[..n]).unwrap();
        assert_eq!(server.buffer_memory(), 0, "acknowledged: given back");
        assert_eq!(server.send_space(), cfg.snd_buf);
        assert_eq!(server.send_with(|_| 0), 0);
        assert_eq!(server.buffer_memory(), 0, "writing nothing keeps nothing");
    }

    /// Data held out of order keeps the receive ring's memory even when every in-order
    /// byte has been read; the memory goes once the gap is filled and read.
    #[test]
    fn out_of_order_data_keeps_the_receive_buffer() {
        use crate::sim::craft as seg;
        use smoltcp::wire::Ipv4Address;
        let cfg = Config::default();
        let now = Instant::from_secs(1);
        let flow = Flow {
            src_addr: Ipv4Address::new(198, 18, 0, 1),
            src_port: 40001,
            dst_addr: Ipv4Address::new(198, 18, 0, 100),
            dst_port: 80,
        };
        let mut client = Endpoint::connect(&cfg, flow.reversed(), 500, now);
        let mut b = [0u8; 1600];
        let n = client.poll_transmit(now, &mut b).unwrap();
        let mut server = Endpoint::accept(&cfg, flow, &b[..n], 9000, now).unwrap();
        let n = server.poll_transmit(now, &mut b).unwrap();
        client.on_segment(now, &b[..n]).unwrap();
        let n = client.poll_transmit(now, &mut b).unwrap();
        server.on_segment(now, &b[..n]).unwrap();
        assert_eq!(server.state(), State::Established);
        let ts = Some((client.ts_clock(now), 0));
        let later = seg(flow, 511, 9001, ACK, 1000, ts, b"klmnopqrst");
        server.on_segment(now, &later).unwrap();
        assert_eq!((server.ooo_ranges(), server.recv_available()), (1, 0));
        assert_eq!(server.buffer_memory(), cfg.rcv_buf, "held out of order");
        server.recv_consume(0);
        assert_eq!(server.buffer_memory(), cfg.rcv_buf, "still held");
        let first = seg(flow, 501, 9001, ACK, 1000, ts, b"abcdefghij");
        server.on_segment(now, &first).unwrap();
        assert_eq!((server.ooo_ranges(), server.recv_available()), (0, 20));
        assert_eq!(server.recv_slice(), b"abcdefghijklmnopqrst");
        server.recv_consume(20);
        assert_eq!(server.buffer_memory(), 0);
    }

    #[test]
    fn hot_size_is_compact() {
        let n = core::mem::size_of::<Endpoint>();
        println!("size_of::<Endpoint>() = {n} bytes (hot state + Box pointer)");
        assert!(n <= 128, "hot state is {n} bytes");
    }
}
