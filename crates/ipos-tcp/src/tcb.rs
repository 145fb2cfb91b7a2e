//! The 140-byte TCP control block (TCB) that travels in an ipOS TCP connection packet.
//!
//! Version 1. All integers are big-endian. Sequence numbers are absolute (wrapping)
//! values; every timer and age is carried *relative* to the export instant, so the
//! importing host (whose clock differs) re-bases them on its own `now`.
//!
//! | offset | size | field | meaning |
//! |---:|---:|---|---|
//! | 0 | 1 | `version` | always 1 |
//! | 1 | 1 | `state` | [`State`] code: 0 Closed, 2 SynSent, 3 SynReceived, 4 Established, 5 FinWait1, 6 FinWait2, 7 CloseWait, 8 Closing, 9 LastAck, 10 TimeWait (1 = Listen is reserved, rejected) |
//! | 2 | 2 | `flags` | bit 0 timestamps negotiated, 1 SACK-permitted negotiated, 2 window scaling negotiated, 3 FIN queued by the app, 4 FIN sent (in `snd_max`), 5 FIN received, 6 in fast recovery (NewReno, or RFC 6675 with SACK), 7 ACK owed now, 8 persist timer mode, 9 RTT timing running (no timestamps), 10 zero-window probe owed, 11 fast retransmit of `snd_una` owed, 12 passive open, 13 the latest cumulative ACK advanced by at most 4 SMSS (RFC 6582 section 4.1 ACK heuristic); bits 14-15 must be zero |
//! | 4 | 4 | `iss` | our initial sequence number |
//! | 8 | 4 | `irs` | peer's initial sequence number |
//! | 12 | 4 | `snd_una` | oldest unacknowledged sequence number; the carried send data starts here |
//! | 16 | 4 | `snd_nxt` | next sequence number to send (may be below `snd_max` after an RTO) |
//! | 20 | 4 | `snd_max` | highest sequence number sent + 1 |
//! | 24 | 4 | `snd_wnd` | peer's receive window in bytes (already scaled) |
//! | 28 | 2 | `snd_wnd_raw` | the raw 16-bit window field of the segment that set `snd_wnd` |
//! | 30 | 1 | `snd_wscale` | shift applied to the peer's window field (0..=14) |
//! | 31 | 1 | `rcv_wscale` | shift we apply to our advertised window (0..=14) |
//! | 32 | 4 | `snd_wl1` | segment sequence number used for the last window update |
//! | 36 | 4 | `snd_wl2` | segment acknowledgment number used for the last window update |
//! | 40 | 4 | `rcv_nxt` | next sequence number expected from the peer |
//! | 44 | 4 | `rcv_wnd` | window we advertised, in bytes from `rcv_nxt` (right edge `rcv_nxt + rcv_wnd` must never shrink) |
//! | 48 | 2 | `peer_mss` | MSS the peer advertised (536 if none) |
//! | 50 | 2 | `mss` | MSS we advertised |
//! | 52 | 4 | `ts_recent` | latest valid TSval received (RFC 7323 TS.Recent) |
//! | 56 | 4 | `ts_recent_age_ms` | milliseconds since `ts_recent` was recorded |
//! | 60 | 4 | `ts_clock` | our TSval clock reading at the export instant: the importer continues its TSvals from here, so the peer never sees a timestamp go backwards (PAWS) |
//! | 64 | 4 | `last_ack_sent` | acknowledgment number of the last segment we sent (RFC 7323 Last.ACK.sent) |
//! | 68 | 4 | `srtt_us` | smoothed RTT in microseconds (0 = no sample yet) |
//! | 72 | 4 | `rttvar_us` | RTT variation in microseconds |
//! | 76 | 4 | `rto_us` | current retransmission timeout before backoff, microseconds |
//! | 80 | 4 | `cwnd` | congestion window, bytes |
//! | 84 | 4 | `ssthresh` | slow-start threshold, bytes |
//! | 88 | 4 | `recover` | NewReno `recover` sequence number |
//! | 92 | 4 | `max_snd_wnd` | largest window the peer ever offered (RFC 5961 ACK check, sender SWS) |
//! | 96 | 1 | `dupacks` | consecutive duplicate ACKs counted |
//! | 97 | 1 | `backoff` | consecutive RTO (or persist) expirations without progress |
//! | 98 | 2 | `service_len` | node-owned (formerly reserved, zero): the length of the service-state record (ipOS extension 0x12) that travels with this TCB, from which the target rebuilds the application and the `snd_data_len` send bytes; 0 = none (nothing in the send buffer, the application starts fresh). The endpoint exports 0 and ignores it on import |
//! | 100 | 4 | `snd_data_len` | bytes of send-buffer data carried alongside (from `snd_una`: sent-unacked, then unsent) |
//! | 104 | 4 | `rcv_data_len` | bytes of received in-order data not yet consumed by the app, carried alongside (they end at `rcv_nxt`, minus one if FIN received) |
//! | 108 | 4 | `rtt_seq` | sequence number being timed when bit 9 is set |
//! | 112 | 4 | `rtt_elapsed_us` | microseconds since the timed segment was sent |
//! | 116 | 4 | `rtx_timer_us` | retransmission / persist / TIME-WAIT timer, microseconds from export; `0xFFFF_FFFF` = not armed |
//! | 120 | 4 | `delack_timer_us` | delayed-ACK timer, same encoding |
//! | 124 | 4 | `syn_timer_us` | SYN-RECEIVED give-up timer, same encoding |
//! | 128 | 6 | `link_addr` | node-owned: client or next-hop MAC address |
//! | 134 | 4 | `next_hop` | node-owned: next-hop IPv4 address |
//! | 138 | 2 | `moves` | node-owned: the number of times the connection has moved (formerly `flags_ext`); the node increments it on every move and refuses a move beyond its limit. The endpoint exports 0 and ignores it on import |
//!
//! Out-of-order data held by the exporter is deliberately not carried: it was never
//! acknowledged, so the peer retransmits it.
//!
//! The sender's SACK scoreboard (SACKed ranges, HighRxt, the lost-retransmission mark) and
//! the tail-loss-probe / reorder timer are not carried either: they do not fit, and they
//! are only hints (RFC 2018 section 8: a sender must not rely on SACKed data staying at the
//! receiver). The importer starts with an empty scoreboard and rebuilds it from the next
//! ACKs; at worst it retransmits something the peer already has. Export/import is therefore
//! exact only relative to an exporter that forgets the same state:
//! `import(export(s))` behaves byte for byte like `s` after [`Endpoint::forget_sack`]
//! (that is what the `twin_prop` property test checks). Flag bit 13, the RFC 6582 ACK
//! heuristic state, does travel.
//!
//! [`Endpoint::forget_sack`]: crate::Endpoint::forget_sack

use core::fmt;

use crate::State;

/// Length of the wire form.
pub const TCB_LEN: usize = 140;
/// Version written in byte 0.
pub const TCB_VERSION: u8 = 1;
/// `rtx_timer_us` etc. value meaning "timer not armed".
pub const TIMER_OFF: u32 = u32::MAX;

pub const TCB_F_TIMESTAMPS: u16 = 1 << 0;
pub const TCB_F_SACK: u16 = 1 << 1;
pub const TCB_F_WSCALE: u16 = 1 << 2;
pub const TCB_F_FIN_QUEUED: u16 = 1 << 3;
pub const TCB_F_FIN_SENT: u16 = 1 << 4;
pub const TCB_F_FIN_RECEIVED: u16 = 1 << 5;
pub const TCB_F_RECOVERY: u16 = 1 << 6;
pub const TCB_F_ACK_NOW: u16 = 1 << 7;
pub const TCB_F_PERSIST: u16 = 1 << 8;
pub const TCB_F_RTT_TIMING: u16 = 1 << 9;
pub const TCB_F_PROBE_NOW: u16 = 1 << 10;
pub const TCB_F_RETX_ONE: u16 = 1 << 11;
pub const TCB_F_PASSIVE: u16 = 1 << 12;
pub const TCB_F_SMALL_ADVANCE: u16 = 1 << 13;
const TCB_F_ALL: u16 = (1 << 14) - 1;

/// Why a TCB could not be parsed or imported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcbError {
    /// Not exactly 140 bytes.
    BadLength(usize),
    /// Unknown version byte.
    BadVersion(u8),
    /// Unknown or forbidden state code.
    BadState(u8),
    /// A field holds an impossible value (names the field).
    BadValue(&'static str),
    /// The carried data does not match the lengths in the TCB.
    DataLengthMismatch,
    /// The importer's buffers cannot hold the carried data and the advertised window.
    BufferTooSmall,
}

impl fmt::Display for TcbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TcbError::BadLength(n) => write!(f, "TCB must be {TCB_LEN} bytes, got {n}"),
            TcbError::BadVersion(v) => write!(f, "unknown TCB version {v}"),
            TcbError::BadState(s) => write!(f, "invalid TCB state code {s}"),
            TcbError::BadValue(name) => write!(f, "impossible TCB value in field {name}"),
            TcbError::DataLengthMismatch => f.write_str("carried data length does not match TCB"),
            TcbError::BufferTooSmall => f.write_str("buffers too small for the carried TCB"),
        }
    }
}

impl std::error::Error for TcbError {}

/// The TCB, decoded. See the module documentation for the meaning of each field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tcb {
    pub state: State,
    pub flags: u16,
    pub iss: u32,
    pub irs: u32,
    pub snd_una: u32,
    pub snd_nxt: u32,
    pub snd_max: u32,
    pub snd_wnd: u32,
    pub snd_wnd_raw: u16,
    pub snd_wscale: u8,
    pub rcv_wscale: u8,
    pub snd_wl1: u32,
    pub snd_wl2: u32,
    pub rcv_nxt: u32,
    pub rcv_wnd: u32,
    pub peer_mss: u16,
    pub mss: u16,
    pub ts_recent: u32,
    pub ts_recent_age_ms: u32,
    pub ts_clock: u32,
    pub last_ack_sent: u32,
    pub srtt_us: u32,
    pub rttvar_us: u32,
    pub rto_us: u32,
    pub cwnd: u32,
    pub ssthresh: u32,
    pub recover: u32,
    pub max_snd_wnd: u32,
    pub dupacks: u8,
    pub backoff: u8,
    pub snd_data_len: u32,
    pub rcv_data_len: u32,
    pub rtt_seq: u32,
    pub rtt_elapsed_us: u32,
    pub rtx_timer_us: u32,
    pub delack_timer_us: u32,
    pub syn_timer_us: u32,
    pub link_addr: [u8; 6],
    pub next_hop: [u8; 4],
    /// Node-owned (offset 138): how many times the connection has moved. The node
    /// increments it on every move and refuses a move beyond its limit; the endpoint
    /// exports 0 and ignores it on import.
    pub moves: u16,
    /// Node-owned (offset 98): length of the service-state record that
    /// travels with this TCB (0: none). The endpoint exports 0 and ignores it
    /// on import.
    pub service_len: u16,
}

pub(crate) fn state_code(s: State) -> u8 {
    match s {
        State::Closed => 0,
        State::SynSent => 2,
        State::SynReceived => 3,
        State::Established => 4,
        State::FinWait1 => 5,
        State::FinWait2 => 6,
        State::CloseWait => 7,
        State::Closing => 8,
        State::LastAck => 9,
        State::TimeWait => 10,
    }
}

fn state_from_code(c: u8) -> Option<State> {
    Some(match c {
        0 => State::Closed,
        2 => State::SynSent,
        3 => State::SynReceived,
        4 => State::Established,
        5 => State::FinWait1,
        6 => State::FinWait2,
        7 => State::CloseWait,
        8 => State::Closing,
        9 => State::LastAck,
        10 => State::TimeWait,
        _ => return None,
    })
}

struct W<'a> {
    b: &'a mut [u8; TCB_LEN],
    i: usize,
}

impl W<'_> {
    fn put(&mut self, v: &[u8]) {
        self.b[self.i..self.i + v.len()].copy_from_slice(v);
        self.i += v.len();
    }
    fn u8(&mut self, v: u8) {
        self.put(&[v]);
    }
    fn u16(&mut self, v: u16) {
        self.put(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.put(&v.to_be_bytes());
    }
}

struct R<'a> {
    b: &'a [u8],
    i: usize,
}

impl R<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        a.copy_from_slice(&self.b[self.i..self.i + N]);
        self.i += N;
        a
    }
    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.take())
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.take())
    }
}

impl Tcb {
    /// Write the 140-byte wire form.
    pub fn emit(&self, buf: &mut [u8; TCB_LEN]) {
        let mut w = W { b: buf, i: 0 };
        w.u8(TCB_VERSION);
        w.u8(state_code(self.state));
        w.u16(self.flags);
        w.u32(self.iss);
        w.u32(self.irs);
        w.u32(self.snd_una);
        w.u32(self.snd_nxt);
        w.u32(self.snd_max);
        w.u32(self.snd_wnd);
        w.u16(self.snd_wnd_raw);
        w.u8(self.snd_wscale);
        w.u8(self.rcv_wscale);
        w.u32(self.snd_wl1);
        w.u32(self.snd_wl2);
        w.u32(self.rcv_nxt);
        w.u32(self.rcv_wnd);
        w.u16(self.peer_mss);
        w.u16(self.mss);
        w.u32(self.ts_recent);
        w.u32(self.ts_recent_age_ms);
        w.u32(self.ts_clock);
        w.u32(self.last_ack_sent);
        w.u32(self.srtt_us);
        w.u32(self.rttvar_us);
        w.u32(self.rto_us);
        w.u32(self.cwnd);
        w.u32(self.ssthresh);
        w.u32(self.recover);
        w.u32(self.max_snd_wnd);
        w.u8(self.dupacks);
        w.u8(self.backoff);
        w.u16(self.service_len);
        w.u32(self.snd_data_len);
        w.u32(self.rcv_data_len);
        w.u32(self.rtt_seq);
        w.u32(self.rtt_elapsed_us);
        w.u32(self.rtx_timer_us);
        w.u32(self.delack_timer_us);
        w.u32(self.syn_timer_us);
        w.put(&self.link_addr);
        w.put(&self.next_hop);
        w.u16(self.moves);
        debug_assert_eq!(w.i, TCB_LEN);
    }

    /// The 140-byte wire form.
    pub fn to_bytes(&self) -> [u8; TCB_LEN] {
        let mut b = [0u8; TCB_LEN];
        self.emit(&mut b);
        b
    }

    /// Decode and validate a wire-form TCB. Never panics.
    pub fn parse(buf: &[u8]) -> Result<Tcb, TcbError> {
        if buf.len() != TCB_LEN {
            return Err(TcbError::BadLength(buf.len()));
        }
        let mut r = R { b: buf, i: 0 };
        let version = r.u8();
        if version != TCB_VERSION {
            return Err(TcbError::BadVersion(version));
        }
        let sc = r.u8();
        let state = state_from_code(sc).ok_or(TcbError::BadState(sc))?;
        let t = Tcb {
            state,
            flags: r.u16(),
            iss: r.u32(),
            irs: r.u32(),
            snd_una: r.u32(),
            snd_nxt: r.u32(),
            snd_max: r.u32(),
            snd_wnd: r.u32(),
            snd_wnd_raw: r.u16(),
            snd_wscale: r.u8(),
            rcv_wscale: r.u8(),
            snd_wl1: r.u32(),
            snd_wl2: r.u32(),
            rcv_nxt: r.u32(),
            rcv_wnd: r.u32(),
            peer_mss: r.u16(),
            mss: r.u16(),
            ts_recent: r.u32(),
            ts_recent_age_ms: r.u32(),
            ts_clock: r.u32(),
            last_ack_sent: r.u32(),
            srtt_us: r.u32(),
            rttvar_us: r.u32(),
            rto_us: r.u32(),
            cwnd: r.u32(),
            ssthresh: r.u32(),
            recover: r.u32(),
            max_snd_wnd: r.u32(),
            dupacks: r.u8(),
            backoff: r.u8(),
            // Offset 98, before snd_data_len (fields are read in this order).
            service_len: r.u16(),
            snd_data_len: r.u32(),
            rcv_data_len: r.u32(),
            rtt_seq: r.u32(),
            rtt_elapsed_us: r.u32(),
            rtx_timer_us: r.u32(),
            delack_timer_us: r.u32(),
            syn_timer_us: r.u32(),
            link_addr: r.take(),
            next_hop: r.take(),
            moves: r.u16(),
        };
        t.validate()?;
        Ok(t)
    }

    /// Structural checks shared by `parse` and `Endpoint::import`.
    pub fn validate(&self) -> Result<(), TcbError> {
        use crate::seq::le;
        if self.flags & !TCB_F_ALL != 0 {
            return Err(TcbError::BadValue("flags"));
        }
        if self.snd_wscale > 14 {
            return Err(TcbError::BadValue("snd_wscale"));
        }
        if self.rcv_wscale > 14 {
            return Err(TcbError::BadValue("rcv_wscale"));
        }
        if self.peer_mss < 64 {
            return Err(TcbError::BadValue("peer_mss"));
        }
        if self.mss < 64 {
            return Err(TcbError::BadValue("mss"));
        }
        if !(le(self.snd_una, self.snd_nxt) && le(self.snd_nxt, self.snd_max)) {
            return Err(TcbError::BadValue("snd_una/snd_nxt/snd_max"));
        }
        // Everything in flight is carried data, plus at most a SYN and a FIN.
        let flight = u64::from(self.snd_max.wrapping_sub(self.snd_una));
        if flight > u64::from(self.snd_data_len) + 2 {
            return Err(TcbError::BadValue("snd_max"));
        }
        if self.rto_us == 0 {
            return Err(TcbError::BadValue("rto_us"));
        }
        if self.cwnd == 0 {
            return Err(TcbError::BadValue("cwnd"));
        }
        if u64::from(self.snd_wnd) > (65535u64 << self.snd_wscale) {
            return Err(TcbError::BadValue("snd_wnd"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Tcb {
        Tcb {
            state: State::Established,
            flags: TCB_F_TIMESTAMPS | TCB_F_WSCALE | TCB_F_PASSIVE,
            iss: 0x0102_0304,
            irs: 0xA0B0_C0D0,
            snd_una: 0x0102_1000,
            snd_nxt: 0x0102_2000,
            snd_max: 0x0102_2000,
            snd_wnd: 0x0002_0000,
            snd_wnd_raw: 0x0400,
            snd_wscale: 7,
            rcv_wscale: 7,
            snd_wl1: 0xA0B0_C100,
            snd_wl2: 0x0102_1000,
            rcv_nxt: 0xA0B0_C200,
            rcv_wnd: 0x0003_0000,
            peer_mss: 1460,
            mss: 1460,
            ts_recent: 0xDEAD_BEEF,
            ts_recent_age_ms: 12,
            ts_clock: 0x1122_3344,
            last_ack_sent: 0xA0B0_C200,
            srtt_us: 10_000,
            rttvar_us: 5_000,
            rto_us: 200_000,
            cwnd: 14_600,
            ssthresh: 0xFFFF_FFFF,
            recover: 0x0102_0304,
            max_snd_wnd: 0x0002_0000,
            dupacks: 1,
            backoff: 0,
            snd_data_len: 0x2000,
            rcv_data_len: 0x100,
            rtt_seq: 0,
            rtt_elapsed_us: 0,
            rtx_timer_us: 150_000,
            delack_timer_us: TIMER_OFF,
            syn_timer_us: TIMER_OFF,
            link_addr: [0x02, 0, 0, 0, 0, 0x01],
            next_hop: [198, 18, 0, 254],
            moves: 0xBEEF,
            service_len: 0x0123,
        }
    }

    #[rustfmt::skip]
    static SAMPLE_BYTES: [u8; TCB_LEN] = [
        0x01,                   //   0 version
        0x04,                   //   1 state Established
        0x10, 0x05,             //   2 flags: passive | wscale | timestamps
        0x01, 0x02, 0x03, 0x04, //   4 iss
        0xA0, 0xB0, 0xC0, 0xD0, //   8 irs
        0x01, 0x02, 0x10, 0x00, //  12 snd_una
        0x01, 0x02, 0x20, 0x00, //  16 snd_nxt
        0x01, 0x02, 0x20, 0x00, //  20 snd_max
        0x00, 0x02, 0x00, 0x00, //  24 snd_wnd
        0x04, 0x00,             //  28 snd_wnd_raw
        0x07,                   //  30 snd_wscale
        0x07,                   //  31 rcv_wscale
        0xA0, 0xB0, 0xC1, 0x00, //  32 snd_wl1
        0x01, 0x02, 0x10, 0x00, //  36 snd_wl2
        0xA0, 0xB0, 0xC2, 0x00, //  40 rcv_nxt
        0x00, 0x03, 0x00, 0x00, //  44 rcv_wnd
        0x05, 0xB4,             //  48 peer_mss 1460
        0x05, 0xB4,             //  50 mss 1460
        0xDE, 0xAD, 0xBE, 0xEF, //  52 ts_recent
        0x00, 0x00, 0x00, 0x0C, //  56 ts_recent_age_ms 12
        0x11, 0x22, 0x33, 0x44, //  60 ts_clock
        0xA0, 0xB0, 0xC2, 0x00, //  64 last_ack_sent
        0x00, 0x00, 0x27, 0x10, //  68 srtt_us 10000
        0x00, 0x00, 0x13, 0x88, //  72 rttvar_us 5000
        0x00, 0x03, 0x0D, 0x40, //  76 rto_us 200000
        0x00, 0x00, 0x39, 0x08, //  80 cwnd 14600
        0xFF, 0xFF, 0xFF, 0xFF, //  84 ssthresh
        0x01, 0x02, 0x03, 0x04, //  88 recover
        0x00, 0x02, 0x00, 0x00, //  92 max_snd_wnd
        0x01,                   //  96 dupacks
        0x00,                   //  97 backoff
        0x01, 0x23,             //  98 service_len 291
        0x00, 0x00, 0x20, 0x00, // 100 snd_data_len
        0x00, 0x00, 0x01, 0x00, // 104 rcv_data_len
        0x00, 0x00, 0x00, 0x00, // 108 rtt_seq
        0x00, 0x00, 0x00, 0x00, // 112 rtt_elapsed_us
        0x00, 0x02, 0x49, 0xF0, // 116 rtx_timer_us 150000
        0xFF, 0xFF, 0xFF, 0xFF, // 120 delack_timer_us off
        0xFF, 0xFF, 0xFF, 0xFF, // 124 syn_timer_us off
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // 128 link_addr
        0xC6, 0x12, 0x00, 0xFE, // 134 next_hop 198.18.0.254
        0xBE, 0xEF,             // 138 moves
    ];

    #[test]
    fn emit_matches_vector() {
        assert_eq!(sample().to_bytes(), SAMPLE_BYTES);
    }

    #[test]
    fn parse_vector() {
        assert_eq!(Tcb::parse(&SAMPLE_BYTES).unwrap(), sample());
    }

    #[test]
    fn truncated_and_long() {
        for n in [0, 1, 100, 139] {
            assert_eq!(Tcb::parse(&SAMPLE_BYTES[..n]), Err(TcbError::BadLength(n)));
        }
        let mut long = [0u8; 141];
        long[..140].copy_from_slice(&SAMPLE_BYTES);
        assert_eq!(Tcb::parse(&long), Err(TcbError::BadLength(141)));
    }

    #[test]
    fn bad_version_state_values() {
        let mut b = SAMPLE_BYTES;
        b[0] = 2;
        assert_eq!(Tcb::parse(&b), Err(TcbError::BadVersion(2)));
        for s in [1u8, 11, 0xFF] {
            let mut b = SAMPLE_BYTES;
            b[1] = s;
            assert_eq!(Tcb::parse(&b), Err(TcbError::BadState(s)));
        }
        let mut b = SAMPLE_BYTES;
        b[30] = 15;
        assert_eq!(Tcb::parse(&b), Err(TcbError::BadValue("snd_wscale")));
        let mut b = SAMPLE_BYTES;
        b[2] = 0x40; // flag bit 14
        assert_eq!(Tcb::parse(&b), Err(TcbError::BadValue("flags")));
        let mut b = SAMPLE_BYTES;
        b[16..20].copy_from_slice(&[0x01, 0x02, 0x30, 0x00]); // snd_nxt > snd_max
        assert!(matches!(Tcb::parse(&b), Err(TcbError::BadValue(_))));
        let mut b = SAMPLE_BYTES;
        b[100..104].copy_from_slice(&[0, 0, 0, 0]); // in flight but no data carried
        assert_eq!(Tcb::parse(&b), Err(TcbError::BadValue("snd_max")));
    }

    #[test]
    fn every_state_roundtrips() {
        for code in 0u8..=255 {
            let mut b = SAMPLE_BYTES;
            b[1] = code;
            match Tcb::parse(&b) {
                Ok(t) => assert_eq!(state_code(t.state), code),
                Err(e) => assert_eq!(e, TcbError::BadState(code)),
            }
        }
    }
}
