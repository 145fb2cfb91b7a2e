//! The ipOS encapsulation header (FIG. 11B): 16 bytes, big-endian.
//!
//! ```text
//!  0               4       6               10      12   13   14      16
//! +---------------+-------+---------------+-------+----+----+-------+
//! | source IP     | s.port| destination IP| d.port|type|prot|cksum  |
//! +---------------+-------+---------------+-------+----+----+-------+
//! ```
//!
//! * source IP / port: the connection's client address and port;
//! * destination IP / port: the address the client connected to (the VIP) and
//!   the service port;
//! * type: [`MessageType`]: 0x01 connection, 0x02 data, 0x03 migration
//!   acknowledgement (FIG. 11B), and the ipOS *extensions* 0x10 server-state
//!   advertisement, 0x11 connection notice and 0x12 service state (ours, not
//!   in the seeds);
//! * protocol: [`Protocol`]: 0x01 TCP, 0x02 UDP;
//! * checksum: see below.
//!
//! # Checksum
//!
//! The checksum is the Internet ones'-complement checksum (RFC 1071) computed
//! over the 16-byte ipOS header with the checksum field set to zero, followed by
//!
//! * for connection packets (type 0x01), the connection information: 6 bytes
//!   for UDP (server IP, server port), 146 bytes for TCP (server IP, server
//!   port, 140-byte TCB);
//! * for extension types (0x10, 0x11, 0x12), the extension body: every byte after the
//!   header to the end of the frame (an odd-length body is padded with one zero
//!   byte for the sum, as RFC 1071 says);
//! * for data frames (0x02) and acknowledgements (0x03), nothing: the checksum
//!   covers the header only, because the encapsulated IPv4 packet of a data
//!   frame carries its own IPv4 and TCP/UDP checksums, which the receiver
//!   verifies.
//!
//! The Ethernet header is never covered. The sum runs over big-endian 16-bit
//! words and the complement of the folded sum is stored big-endian. A checksum
//! that verifies yields 0 when the same computation is run with the stored
//! field included. Ones'-complement arithmetic has two zeros, so when the
//! computed value is 0x0000 a stored 0xffff verifies as well; emitters write
//! 0x0000 and receivers accept both. (The computed value is never 0xffff: a
//! header of a known type is never all zero.) [`Packet::fill_checksum`] and [`Packet::verify_checksum`]
//! take the covered bytes after the header as an argument; `Frame` picks
//! them by type.

use crate::checksum;
use crate::error::{Error, Result};
use smoltcp::wire::Ipv4Address;

mod field {
    use core::ops::Range;

    pub const SRC_ADDR: Range<usize> = 0..4;
    pub const SRC_PORT: Range<usize> = 4..6;
    pub const DST_ADDR: Range<usize> = 6..10;
    pub const DST_PORT: Range<usize> = 10..12;
    pub const TYPE: usize = 12;
    pub const PROTOCOL: usize = 13;
    pub const CHECKSUM: Range<usize> = 14..16;
}

/// Length of the ipOS encapsulation header.
pub const HEADER_LEN: usize = 16;

/// The ipOS type field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// 0x01: connection packet (an endpoint migrates; FIG. 11E, 11F).
    Connection,
    /// 0x02: data packet (a client packet forwarded to the endpoint's owner;
    /// FIG. 11G, 11H).
    Data,
    /// 0x03: endpoint migration acknowledgement (FIG. 11I).
    Ack,
    /// 0x10, ipOS extension: server-state advertisement between nodes.
    ServerState,
    /// 0x11, ipOS extension: connection notice (a migrated connection moved
    /// on, closed, or was kept by its source).
    ConnectionNotice,
    /// 0x12, ipOS extension: service state (where a moving connection's
    /// application stands, so that its target continues it mid-response).
    ServiceState,
    /// Any other value.
    Unknown(u8),
}

impl MessageType {
    /// True for the ipOS extension types (0x10, 0x11, 0x12).
    pub const fn is_extension(self) -> bool {
        matches!(
            self,
            MessageType::ServerState | MessageType::ConnectionNotice | MessageType::ServiceState
        )
    }
}

impl From<u8> for MessageType {
    fn from(value: u8) -> Self {
        match value {
            0x01 => MessageType::Connection,
            0x02 => MessageType::Data,
            0x03 => MessageType::Ack,
            0x10 => MessageType::ServerState,
            0x11 => MessageType::ConnectionNotice,
            0x12 => MessageType::ServiceState,
            other => MessageType::Unknown(other),
        }
    }
}

impl From<MessageType> for u8 {
    fn from(value: MessageType) -> Self {
        match value {
            MessageType::Connection => 0x01,
            MessageType::Data => 0x02,
            MessageType::Ack => 0x03,
            MessageType::ServerState => 0x10,
            MessageType::ConnectionNotice => 0x11,
            MessageType::ServiceState => 0x12,
            MessageType::Unknown(other) => other,
        }
    }
}

/// The ipOS protocol field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// 0x01
    Tcp,
    /// 0x02
    Udp,
    /// Any other value.
    Unknown(u8),
}

impl From<u8> for Protocol {
    fn from(value: u8) -> Self {
        match value {
            0x01 => Protocol::Tcp,
            0x02 => Protocol::Udp,
            other => Protocol::Unknown(other),
        }
    }
}

impl From<Protocol> for u8 {
    fn from(value: Protocol) -> Self {
        match value {
            Protocol::Tcp => 0x01,
            Protocol::Udp => 0x02,
            Protocol::Unknown(other) => other,
        }
    }
}

/// The connection an ipOS header speaks about: client (source) and the
/// address it connected to (destination, the VIP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    /// Client IP.
    pub src_addr: Ipv4Address,
    /// Client port.
    pub src_port: u16,
    /// The address the client connected to (VIP).
    pub dst_addr: Ipv4Address,
    /// The service port.
    pub dst_port: u16,
}

impl Flow {
    /// The same connection in the other direction: source and destination
    /// swapped (the flow of the replies).
    pub const fn reversed(&self) -> Flow {
        Flow {
            src_addr: self.dst_addr,
            src_port: self.dst_port,
            dst_addr: self.src_addr,
            dst_port: self.src_port,
        }
    }
}

/// A read/write view of an ipOS header at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wrap a buffer without checking its length; accessors may panic on a
    /// buffer shorter than [`HEADER_LEN`].
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wrap a buffer, making sure it holds a whole header; after this no
    /// accessor can panic.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Err(Truncated)` if the buffer is shorter than [`HEADER_LEN`].
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u16_at(&self, range: core::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[range];
        u16::from_be_bytes([b[0], b[1]])
    }

    fn addr_at(&self, range: core::ops::Range<usize>) -> Ipv4Address {
        let b = &self.buffer.as_ref()[range];
        Ipv4Address::new(b[0], b[1], b[2], b[3])
    }

    /// Source (client) IP.
    pub fn src_addr(&self) -> Ipv4Address {
        self.addr_at(field::SRC_ADDR)
    }

    /// Source (client) port.
    pub fn src_port(&self) -> u16 {
        self.u16_at(field::SRC_PORT)
    }

    /// Destination IP (the VIP the client connected to).
    pub fn dst_addr(&self) -> Ipv4Address {
        self.addr_at(field::DST_ADDR)
    }

    /// Destination (service) port.
    pub fn dst_port(&self) -> u16 {
        self.u16_at(field::DST_PORT)
    }

    /// The four addresses and ports.
    pub fn flow(&self) -> Flow {
        Flow {
            src_addr: self.src_addr(),
            src_port: self.src_port(),
            dst_addr: self.dst_addr(),
            dst_port: self.dst_port(),
        }
    }

    /// Type field.
    pub fn msg_type(&self) -> MessageType {
        MessageType::from(self.buffer.as_ref()[field::TYPE])
    }

    /// Protocol field.
    pub fn protocol(&self) -> Protocol {
        Protocol::from(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// Stored checksum.
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// True when the stored checksum verifies over this header followed by
    /// `covered` (the bytes the type says are covered; see the module docs).
    pub fn verify_checksum(&self, covered: &[u8]) -> bool {
        checksum::verifies(&[&self.buffer.as_ref()[..HEADER_LEN], covered])
    }

    /// Everything after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_u16_at(&mut self, range: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
    }

    /// Set the source (client) IP.
    pub fn set_src_addr(&mut self, value: Ipv4Address) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&value.octets());
    }

    /// Set the source (client) port.
    pub fn set_src_port(&mut self, value: u16) {
        self.set_u16_at(field::SRC_PORT, value);
    }

    /// Set the destination IP (VIP).
    pub fn set_dst_addr(&mut self, value: Ipv4Address) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&value.octets());
    }

    /// Set the destination (service) port.
    pub fn set_dst_port(&mut self, value: u16) {
        self.set_u16_at(field::DST_PORT, value);
    }

    /// Set the four addresses and ports.
    pub fn set_flow(&mut self, flow: &Flow) {
        self.set_src_addr(flow.src_addr);
        self.set_src_port(flow.src_port);
        self.set_dst_addr(flow.dst_addr);
        self.set_dst_port(flow.dst_port);
    }

    /// Set the type field.
    pub fn set_msg_type(&mut self, value: MessageType) {
        self.buffer.as_mut()[field::TYPE] = value.into();
    }

    /// Set the protocol field.
    pub fn set_protocol(&mut self, value: Protocol) {
        self.buffer.as_mut()[field::PROTOCOL] = value.into();
    }

    /// Store a checksum value as is.
    pub fn set_checksum(&mut self, value: u16) {
        self.set_u16_at(field::CHECKSUM, value);
    }

    /// Compute and store the checksum over this header (checksum field zeroed)
    /// followed by `covered` (see the module docs for what a type covers).
    pub fn fill_checksum(&mut self, covered: &[u8]) {
        self.set_checksum(0);
        let value = checksum::checksum(&[&self.buffer.as_ref()[..HEADER_LEN], covered]);
        self.set_checksum(value);
    }

    /// Everything after the header, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// A parsed ipOS header, checksum aside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HeaderRepr {
    /// Client and VIP addresses and ports.
    pub flow: Flow,
    /// Type field.
    pub msg_type: MessageType,
    /// Protocol field.
    pub protocol: Protocol,
}

impl HeaderRepr {
    /// Parse a header. Refuses unknown types (`UnknownType`) and, for the
    /// seed types (connection, data, acknowledgement), protocols other than
    /// TCP and UDP (`UnknownProtocol`); extension types carry the protocol
    /// byte through uninterpreted. Does not verify the checksum, whose
    /// coverage reaches past the header: see [`Packet::verify_checksum`].
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<HeaderRepr> {
        packet.check_len()?;
        let msg_type = packet.msg_type();
        let protocol = packet.protocol();
        match (msg_type, protocol) {
            (MessageType::Unknown(t), _) => Err(Error::UnknownType(t)),
            (
                MessageType::Connection | MessageType::Data | MessageType::Ack,
                Protocol::Unknown(p),
            ) => Err(Error::UnknownProtocol(p)),
            _ => Ok(HeaderRepr {
                flow: packet.flow(),
                msg_type,
                protocol,
            }),
        }
    }

    /// Bytes [`HeaderRepr::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write every field, with a zero checksum (fill it afterwards with
    /// [`Packet::fill_checksum`], once the covered bytes are in place).
    /// `Err(BadLength)` if the buffer is shorter than [`HEADER_LEN`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        packet.check_len().map_err(|_| Error::BadLength)?;
        packet.set_flow(&self.flow);
        packet.set_msg_type(self.msg_type);
        packet.set_protocol(self.protocol);
        packet.set_checksum(0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // An acknowledgement header, checksum computed by hand:
    static HEADER_BYTES: [u8; 16] = [
        0xc6, 0x12, 0x00, 0x01, // source IP 198.18.0.1 (client)
        0xc0, 0x00, // source port 49152
        0xc6, 0x13, 0x01, 0x0a, // destination IP 198.19.1.10 (VIP)
        0x00, 0x50, // destination port 80
        0x03, // type: migration acknowledgement
        0x01, // protocol: TCP
        // checksum 0xaf7c, by hand (words, checksum field as zero):
        //   0xc612 + 0x0001 + 0xc000 + 0xc613 + 0x010a + 0x0050 + 0x0301 + 0x0000
        //   = 0x25081; fold: 0x5081 + 0x2 = 0x5083; complement: 0xaf7c.
        0xaf, 0x7c,
    ];

    fn flow() -> Flow {
        Flow {
            src_addr: Ipv4Address::new(198, 18, 0, 1),
            src_port: 49152,
            dst_addr: Ipv4Address::new(198, 19, 1, 10),
            dst_port: 80,
        }
    }

    #[test]
    fn deconstruct() {
        let packet = Packet::new_checked(&HEADER_BYTES[..]).unwrap();
        assert_eq!(packet.src_addr(), Ipv4Address::new(198, 18, 0, 1));
        assert_eq!(packet.src_port(), 49152);
        assert_eq!(packet.dst_addr(), Ipv4Address::new(198, 19, 1, 10));
        assert_eq!(packet.dst_port(), 80);
        assert_eq!(packet.msg_type(), MessageType::Ack);
        assert_eq!(packet.protocol(), Protocol::Tcp);
        assert_eq!(packet.checksum(), 0xaf7c);
        assert!(packet.verify_checksum(&[]));
        assert!(!packet.verify_checksum(&[0, 1]));
        assert_eq!(packet.payload(), &[] as &[u8]);
        let repr = HeaderRepr::parse(&packet).unwrap();
        assert_eq!(
            repr,
            HeaderRepr {
                flow: flow(),
                msg_type: MessageType::Ack,
                protocol: Protocol::Tcp
            }
        );
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 16];
        let mut packet = Packet::new_checked(&mut bytes[..]).unwrap();
        let repr = HeaderRepr {
            flow: flow(),
            msg_type: MessageType::Ack,
            protocol: Protocol::Tcp,
        };
        repr.emit(&mut packet).unwrap();
        assert_eq!(packet.checksum(), 0);
        packet.fill_checksum(&[]);
        assert_eq!(bytes, HEADER_BYTES);
    }

    #[test]
    fn truncated() {
        assert_eq!(
            Packet::new_checked(&HEADER_BYTES[..15]).unwrap_err(),
            Error::Truncated
        );
        let mut short = [0u8; 15];
        let mut packet = Packet::new_unchecked(&mut short[..]);
        let repr = HeaderRepr::parse(&Packet::new_unchecked(&HEADER_BYTES[..])).unwrap();
        assert_eq!(repr.emit(&mut packet), Err(Error::BadLength));
    }

    #[test]
    fn unknown_type_and_protocol() {
        let mut bytes = HEADER_BYTES;
        bytes[12] = 0x04;
        assert_eq!(
            HeaderRepr::parse(&Packet::new_unchecked(&bytes[..])),
            Err(Error::UnknownType(0x04))
        );
        bytes[12] = 0x02;
        bytes[13] = 0x06;
        assert_eq!(
            HeaderRepr::parse(&Packet::new_unchecked(&bytes[..])),
            Err(Error::UnknownProtocol(0x06))
        );
        // Extension types carry the protocol byte through.
        bytes[12] = 0x10;
        let repr = HeaderRepr::parse(&Packet::new_unchecked(&bytes[..])).unwrap();
        assert_eq!(repr.msg_type, MessageType::ServerState);
        assert_eq!(repr.protocol, Protocol::Unknown(0x06));
    }

    #[test]
    fn reversed_swaps_source_and_destination() {
        let f = flow();
        let r = f.reversed();
        assert_eq!(r.src_addr, Ipv4Address::new(198, 19, 1, 10));
        assert_eq!(r.src_port, 80);
        assert_eq!(r.dst_addr, Ipv4Address::new(198, 18, 0, 1));
        assert_eq!(r.dst_port, 49152);
        assert_eq!(r.reversed(), f);
        const R: Flow = Flow {
            src_addr: Ipv4Address::new(198, 18, 0, 1),
            src_port: 1,
            dst_addr: Ipv4Address::new(198, 18, 0, 2),
            dst_port: 2,
        }
        .reversed();
        assert_eq!((R.src_port, R.dst_port), (2, 1));
    }

    #[test]
    fn enum_round_trips() {
        for v in 0..=255u8 {
            assert_eq!(u8::from(MessageType::from(v)), v);
            assert_eq!(u8::from(Protocol::from(v)), v);
            assert_eq!(
                MessageType::from(v).is_extension(),
                (0x10..=0x12).contains(&v)
            );
        }
    }
}
