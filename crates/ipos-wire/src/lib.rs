//! Wire formats of ipOS endpoint migration (FIG. 11A-11I), smoltcp style.
//!
//! Bytes only, no I/O: views (`Packet<T: AsRef<[u8]>>`) over any buffer whose
//! accessors cannot panic once `new_checked` / `check_len` succeeded, setters
//! where `T: AsMut<[u8]>`, and `Repr`s with `parse`, `emit` and `buffer_len`.
//! Nothing here allocates or panics, whatever the input.
//!
//! * [`ethertype`]: [`DEFAULT_ETHERTYPE`] (0x0007); every Ethernet-level API
//!   takes the ethertype as a parameter.
//! * [`header`]: the 16-byte ipOS encapsulation header, its type and protocol
//!   values, and the **checksum definition**.
//! * [`conn_info`]: the body of connection packets (server IP, port, TCB).
//! * [`inner`]: checks on the client IPv4 packet a data frame carries.
//! * [`frame`]: whole frames: [`Frame::parse`], [`Frame::emit`] and builders.
//! * [`headers`]: the plain Ethernet and IPv4 header writers all of ipos uses.
//! * [`trailer`]: the farm authentication trailer (ours) at the end of every
//!   ipOS frame of a farm with a key.
//! * [`checksum`]: the RFC 1071 Internet checksum over several slices.
//! * [`error`]: [`Error`], one variant per drop reason.
//!
//! # Type values
//!
//! | value | meaning | source |
//! |---|---|---|
//! | 0x01 | connection packet | FIG. 11B |
//! | 0x02 | data packet | FIG. 11B |
//! | 0x03 | migration acknowledgement | FIG. 11B |
//! | 0x10 | server-state advertisement | ipOS extension (ours) |
//! | 0x11 | connection notice: moved, closed, or kept (owner tells forwarder, source tells target) | ipOS extension (ours) |
//! | 0x12 | service state: where a moving connection's application stands (source tells target, for a move mid-response) | ipOS extension (ours) |
//!
//! Protocol values: 0x01 TCP, 0x02 UDP.
//!
//! # Checksum
//!
//! The ipOS checksum is the Internet ones'-complement checksum (RFC 1071)
//! computed over the 16-byte ipOS header with the checksum field set to zero,
//! followed by the frame's connection information for connection packets
//! (6 bytes UDP, 146 bytes TCP) and followed by the extension body for
//! extension types; for data frames (type 0x02) and acknowledgements (0x03) it
//! covers the header only, because the encapsulated IPv4 packet carries its own
//! IPv4 and TCP/UDP checksums which the receiver verifies. The Ethernet header
//! is never covered; an odd-length extension body is padded with a zero byte
//! for the sum. A checksum that verifies yields 0 when summing including the
//! field. See [`header::Packet::fill_checksum`] and
//! [`header::Packet::verify_checksum`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod checksum;
pub mod conn_info;
pub mod error;
pub mod ethertype;
pub mod frame;
pub mod header;
pub mod headers;
pub mod inner;
pub mod trailer;

pub use conn_info::{ConnInfoRepr, Packet as ConnInfoPacket, TCB_LEN};
pub use error::{Error, Result};
pub use ethertype::DEFAULT_ETHERTYPE;
pub use frame::{
    emit_ack, emit_data_header, emit_extension, emit_tcp_connection, emit_udp_connection,
    ExtensionKind, Frame, MacAddrs, Message, DATA_HEADROOM,
};
pub use header::{Flow, HeaderRepr, MessageType, Packet as HeaderPacket, Protocol, HEADER_LEN};
pub use headers::{emit_ethernet_header, emit_ipv4_header, Ipv4Header};

#[cfg(test)]
pub(crate) mod test_util;

#[cfg(test)]
mod proptests;
