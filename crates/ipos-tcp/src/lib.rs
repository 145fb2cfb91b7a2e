//! `ipos-tcp`: a TCP endpoint without I/O (RFC 9293), in the style of quinn-proto / smoltcp.
//!
//! Promises:
//! - **No I/O, no clock, no per-segment allocation.** Time is an argument
//!   ([`Instant`]); segments come in as bytes ([`Endpoint::on_segment`]) and go out as bytes
//!   written into a caller buffer ([`Endpoint::poll_transmit`]) with a correct checksum
//!   over the IPv4 pseudo-header. Buffers are allocated once, when the endpoint is created.
//! - **Nothing from the wire panics.** Malformed segments return a [`SegmentError`] and
//!   leave the endpoint unchanged; malformed TCBs return a [`TcbError`]. No `unsafe`.
//! - **Wrapping sequence arithmetic** everywhere (RFC 9293 section 3.4).
//! - **Features:** active/passive open (incl. simultaneous open), MSS, window scaling and
//!   timestamps (RFC 7323: used only if the peer's SYN offers them; PAWS; TS.Recent per
//!   section 4.3), out-of-order reassembly (up to 8 ranges inside the receive ring), delayed
//!   ACKs (RFC 1122/5681), RTO (RFC 6298, Karn, backoff, timestamp RTT), slow start,
//!   congestion avoidance, fast retransmit and NewReno fast recovery (RFC 5681/6582, with
//!   the section 4.1 ACK heuristic), limited transmit (RFC 3042), SACK (RFC 2018: blocks
//!   sent most recent first, up to 3 with timestamps / 4 without) with RFC 6675 loss
//!   recovery (fixed-size scoreboard, IsLost / pipe / NextSeg, scoreboard kept across the
//!   first RTO so the slow-start pass skips SACKed data), lost-retransmission detection, a
//!   RACK-style reordering timer (srtt/4) and tail loss probes (RFC 8985 style PTO of
//!   2*SRTT), flow control with zero-window probes (persist timer with
//!   backoff), SWS avoidance on both sides, FIN in every state (including simultaneous
//!   open and close), RFC 5961 RST/SYN/ACK checks with challenge ACKs, TIME-WAIT.
//!   Like Linux, PAWS does not discard a reordered *pure ACK* at `rcv_nxt`.
//! - **Window promise:** the advertised right edge never shrinks and always fits in the
//!   receive ring (one window-scale unit is kept in reserve for rounding).
//! - [`sim`] is a deterministic two-endpoint link simulator (virtual clock, seeded loss,
//!   reordering, duplication, clock skew, a byte-exact "twin" checker) used by the tests
//!   and reusable by other crates.
//! - **Not implemented:** D-SACK, urgent data, ECN, challenge-ACK rate limiting, Nagle.
//! - **Migration:** [`Endpoint::export`] yields a [`Tcb`] (140 bytes on the wire, see
//!   [`tcb`]) which, with the carried send/receive bytes, lets [`Endpoint::import`] rebuild an
//!   endpoint that continues byte-exactly; its TSval clock continues from the exporter's.
//!   The SACK scoreboard and the loss-probe / reorder timer are not carried (the importer
//!   starts without them, which is always safe); [`Endpoint::forget_sack`] puts the exporter
//!   in exactly that state.
#![forbid(unsafe_code)]

mod endpoint;
mod ring;
mod segment;
mod seq;
pub mod sim;
pub mod tcb;

pub use endpoint::{Config, Counters, Endpoint, FourTuple, State};
pub use segment::{checksum_ok, tcp_checksum, Segment, SegmentError, ACK, FIN, PSH, RST, SYN};
pub use smoltcp::time::{Duration, Instant};
pub use smoltcp::wire::Ipv4Address;
pub use tcb::{Tcb, TcbError, TCB_LEN};
