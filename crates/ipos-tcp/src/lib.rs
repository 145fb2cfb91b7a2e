//! `ipos-tcp`: a TCP endpoint without I/O (RFC 9293), in the style of quinn-proto / smoltcp.
//!
//! Promises:
//! - **No I/O, no clock, no per-segment allocation.** Time is an argument
//!   ([`Instant`]); segments come in as bytes ([`Endpoint::on_segment`]) and go out as bytes
//!   written into a caller buffer ([`Endpoint::poll_transmit`]) with a correct checksum
//!   over the IPv4 pseudo-header. A connection's buffers hold memory only while they
//!   hold data, taken from and given back to a pool per thread ([`buffers`]): a
//!   half-open passive connection holds none, nor does an idle established one.
//! - **Nothing from the wire panics.** Malformed segments return a [`SegmentError`] and
//!   leave the endpoint unchanged; malformed TCBs return a [`TcbError`]. No `unsafe`.
//! - **Wrapping sequence arithmetic** everywhere (RFC 9293 section 3.4).
//! - **Features:** active/passive open (incl. simultaneous open), MSS, window scaling and
//!   timestamps (RFC 7323: used only if the peer's SYN offers them; PAWS; TS.Recent per
//!   section 4.3), out-of-order reassembly (up to 8 ranges inside the receive ring), delayed
//!   ACKs (RFC 1122/5681), RTO (RFC 6298, Karn, backoff, timestamp RTT), an initial
//!   window of 10 segments (RFC 6928), slow start, congestion avoidance by CUBIC (RFC
//!   9438, the default) or NewReno ([`Congestion`]), fast retransmit and NewReno fast
//!   recovery (RFC 5681/6582, with the section 4.1 ACK heuristic), PRR in SACK recovery
//!   (RFC 6937), D-SACK both ways with the undo of a needless reduction (RFC 2883),
//!   keep-alive (off by default), limited transmit (RFC 3042), SACK (RFC 2018: blocks
//!   sent most recent first, up to 3 with timestamps / 4 without) with RFC 6675 loss
//!   recovery (fixed-size scoreboard, IsLost / pipe / NextSeg, scoreboard kept across the
//!   first RTO so the slow-start pass skips SACKed data), lost-retransmission detection, a
//!   RACK-style reordering timer (srtt/4) and tail loss probes (RFC 8985 style PTO of
//!   2*SRTT; the probe repeats the last segment, which a receiver answers at once, and
//!   up to three probes, the wait doubling, go out before the RTO),
//!   flow control with zero-window probes (persist timer with
//!   backoff), SWS avoidance on both sides, FIN in every state (including simultaneous
//!   open and close), RFC 5961 RST/SYN/ACK checks with challenge ACKs, TIME-WAIT
//!   (with an RFC 6191 check, [`Endpoint::accepts_reuse`], for the owner deciding whether
//!   a SYN may open a new incarnation), and an owner-set cap on the receive window
//!   ([`Endpoint::set_rcv_window_cap`], not carried by the TCB).
//!   Like Linux, PAWS does not discard a reordered *pure ACK* at `rcv_nxt`.
//! - **Window promise:** the advertised right edge never shrinks and always fits in the
//!   receive ring (one window-scale unit is kept in reserve for rounding). The edge a
//!   peer reads from a scaled window field is that edge rounded up, so it may lie up to
//!   one scale unit beyond it and, a segment later, appear to recede by less than one
//!   unit (RFC 7323 section 2.4); never by a whole unit.
//! - [`sim`] is a deterministic two-endpoint link simulator (virtual clock, seeded loss,
//!   reordering, duplication, clock skew, a byte-exact "twin" checker) used by the tests
//!   and reusable by other crates.
//! - **SYN cookies** (RFC 4987 section 3.6, Linux's encoding, [`syncookie`]):
//!   [`Endpoint::write_cookie_syn_ack`] answers a SYN without keeping anything, and
//!   [`Endpoint::from_cookie`] makes an ESTABLISHED endpoint from the ACK that returns
//!   the cookie, with the MSS, window scale, SACK and timestamps the handshake agreed.
//! - **Not implemented:** D-SACK, urgent data, ECN, challenge-ACK rate limiting, Nagle.
//! - **Migration:** [`Endpoint::export`] yields a [`Tcb`] (140 bytes on the wire, see
//!   [`tcb`]) which, with the carried send/receive bytes, lets [`Endpoint::import`] rebuild an
//!   endpoint that continues byte-exactly; its TSval clock continues from the exporter's.
//!   The SACK scoreboard and the loss-probe / reorder timer are not carried (the importer
//!   starts without them, which is always safe); [`Endpoint::forget_sack`] puts the exporter
//!   in exactly that state. The TCB's node-owned `moves` field counts how many times the
//!   connection has moved (the node's business; the endpoint exports 0).
//!
//! # Addresses: one 4-tuple type
//!
//! A connection's addresses are an [`ipos_wire::Flow`], re-exported here as [`Flow`]: the
//! type the ipOS header carries, and the one key for the node's tables. **An endpoint's
//! flow is named in the direction its peer sends**: `src_addr` / `src_port` are the peer
//! (remote), `dst_addr` / `dst_port` this endpoint (local). A server endpoint's flow is
//! therefore the flow of the client's packets (client -> VIP). [`Endpoint::accept`] takes
//! the SYN's flow; [`Endpoint::connect`] takes the flow the server will answer on (src =
//! server, dst = us); [`Endpoint::import`] takes the exporter's [`Endpoint::flow`]. The
//! segments an endpoint writes travel on `flow.reversed()`
//! ([`Flow::reversed`](ipos_wire::Flow::reversed)).
//!
//! # Writing TCP headers outside an endpoint
//!
//! The endpoint's own header writer is public for segments that belong to no endpoint
//! (a node's RSTs, rebuilt client segments): fill a [`TcpHeader`] and [`TcpOptions`]
//! (`Default` = none), [`write_header`] it, put the payload after it and call
//! [`fill_checksum`] over the whole segment. See [`write_header`] for a bare RST.
//!
//! # Layout
//!
//! The endpoint is one `impl Endpoint` per concern, one file each under `src/endpoint/`:
//! `mod.rs` (state, constructors), `input.rs` (segment arrival, RFC 9293 / 5961 / 7323
//! checks), `ack.rs` (ACKs, RTT, recovery), `cc.rs` and
//! `cubic.rs` (congestion control), `sack.rs` (RFC 6675 scoreboard, loss probes),
//! `reassembly.rs` (received data, out-of-order ranges, FIN), `timers.rs`, `output.rs`
//! (`poll_transmit`, options, window), `app.rs` (application side) and `migrate.rs`
//! (`export` / `import`). Next to it: `segment.rs` (parse / write TCP segments),
//! [`tcb`] (the TCB codec), `ring.rs` (buffers), [`buffers`] (their memory), `seq.rs` (wrapping sequence comparisons)
//! and [`sim`].
#![forbid(unsafe_code)]

pub mod buffers;
mod endpoint;
mod ring;
mod segment;
mod seq;
pub mod sim;
pub mod syncookie;
pub mod tcb;

pub use endpoint::{Config, Congestion, Counters, Endpoint, Keepalive, State};
pub use ipos_wire::Flow;
pub use segment::{
    checksum_ok, fill_checksum, tcp_checksum, write_header, Segment, SegmentError, TcpHeader,
    TcpOptions, ACK, FIN, PSH, RST, SYN,
};
pub use smoltcp::time::{Duration, Instant};
pub use smoltcp::wire::Ipv4Address;
pub use syncookie::{CookieError, CookieOptions, SynCookies};
pub use tcb::{Tcb, TcbError, TCB_LEN};
