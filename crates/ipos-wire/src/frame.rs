//! Whole ipOS frames: Ethernet header + ipOS header + body (FIG. 11A-11I).
//!
//! | frame | type/proto | body | length |
//! |---|---|---|---|
//! | TCP connection packet | 0x01/0x01 | server IP, server port, TCB (140) | 14+16+146 = 176 |
//! | UDP connection packet | 0x01/0x02 | server IP, server port | 14+16+6 = 36 |
//! | TCP data packet | 0x02/0x01 | the client's whole IPv4/TCP packet | 14+16+40+data |
//! | UDP data packet | 0x02/0x02 | the client's whole IPv4/UDP packet | 14+16+28+data |
//! | migration acknowledgement | 0x03/(TCP or UDP) | none | 14+16 = 30 |
//! | extension (ours) | 0x10, 0x11 or 0x12/any | all remaining bytes | 14+16+body |
//!
//! [`Frame::parse`] reads a received Ethernet frame into a [`Frame`] whose
//! [`Message`] borrows the body from the buffer; [`Frame::emit`] and the
//! `emit_*` builders write frames into a caller's buffer and return their
//! length. Nothing here allocates or panics, whatever the input.
//!
//! The ethertype is a parameter of every parser and builder
//! ([`crate::DEFAULT_ETHERTYPE`] is 0x0007); it is matched exactly, 802.3
//! length range or not.
//!
//! **Padding.** Bytes after the end of a complete frame (Ethernet padding to
//! the 60-byte minimum, or anything else) are accepted and ignored for every
//! kind, except that an extension's body is by definition everything after
//! the ipOS header: extension bodies must be self-delimiting, and since the
//! checksum covers the body, padding must be zero bytes (which do not change
//! a ones'-complement sum) for a padded extension frame to verify.
//!
//! **Checks, in order** (each failure has its own [`Error`]): Ethernet header
//! present (`Truncated`), ethertype (`WrongEtherType`), ipOS header present
//! (`Truncated`), type (`UnknownType`), protocol (`UnknownProtocol`), minimum
//! body for the kind (`Truncated`), ipOS checksum (`BadChecksum`), and for data
//! frames the inner packet ([`crate::inner::parse_inner`]: `BadInnerPacket`,
//! `BadLength`) and its addresses and ports, which must equal the ipOS
//! header's source and destination (`BadInnerPacket`).

use crate::conn_info::{self, ConnInfoRepr, TCB_LEN, TCP_CONN_INFO_LEN, UDP_CONN_INFO_LEN};
use crate::error::{Error, Result};
use crate::header::{self, Flow, HeaderRepr, MessageType, Protocol, HEADER_LEN};
use crate::inner::{inner_protocol, parse_inner, MIN_TCP_PACKET_LEN, MIN_UDP_PACKET_LEN};
use smoltcp::wire::{EthernetAddress, EthernetFrame, Ipv4Address};

/// Length of the Ethernet header (FIG. 11A).
pub const ETHERNET_HEADER_LEN: usize = 14;
/// Ethernet + ipOS header: the bytes a data frame puts in front of the
/// client's IPv4 packet, and the length of an acknowledgement frame.
pub const FRAME_HEADER_LEN: usize = ETHERNET_HEADER_LEN + HEADER_LEN;
/// Headroom [`emit_data_header`] needs in front of an inner packet.
pub const DATA_HEADROOM: usize = FRAME_HEADER_LEN;
/// Length of a TCP connection frame (FIG. 11E).
pub const TCP_CONNECTION_FRAME_LEN: usize = FRAME_HEADER_LEN + TCP_CONN_INFO_LEN;
/// Length of a UDP connection frame (FIG. 11F).
pub const UDP_CONNECTION_FRAME_LEN: usize = FRAME_HEADER_LEN + UDP_CONN_INFO_LEN;
/// Length of a migration acknowledgement frame (FIG. 11I).
pub const ACK_FRAME_LEN: usize = FRAME_HEADER_LEN;
/// The shortest ipOS frame: Ethernet and ipOS headers.
pub const MIN_FRAME_LEN: usize = FRAME_HEADER_LEN;
/// Shortest TCP data frame (FIG. 11G).
pub const MIN_TCP_DATA_FRAME_LEN: usize = FRAME_HEADER_LEN + MIN_TCP_PACKET_LEN;
/// Shortest UDP data frame (FIG. 11H).
pub const MIN_UDP_DATA_FRAME_LEN: usize = FRAME_HEADER_LEN + MIN_UDP_PACKET_LEN;

/// Ethernet destination and source addresses of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddrs {
    /// Destination MAC.
    pub dst: EthernetAddress,
    /// Source MAC.
    pub src: EthernetAddress,
}

/// The ipOS extension types (ours, not in the seeds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExtensionKind {
    /// 0x10: server-state advertisement between nodes.
    ServerState,
    /// 0x11: connection notice: a connection moved on, closed, or was kept
    /// by its source (see the node's `migration` module).
    ConnectionNotice,
    /// 0x12: service state: where a moving connection's application stands
    /// (see the node's `migration::service_state`).
    ServiceState,
}

impl ExtensionKind {
    /// The ipOS type value of this extension.
    pub const fn msg_type(self) -> MessageType {
        match self {
            ExtensionKind::ServerState => MessageType::ServerState,
            ExtensionKind::ConnectionNotice => MessageType::ConnectionNotice,
            ExtensionKind::ServiceState => MessageType::ServiceState,
        }
    }

    /// The extension kind of an ipOS type, if it is one.
    pub const fn from_msg_type(msg_type: MessageType) -> Option<ExtensionKind> {
        match msg_type {
            MessageType::ServerState => Some(ExtensionKind::ServerState),
            MessageType::ConnectionNotice => Some(ExtensionKind::ConnectionNotice),
            MessageType::ServiceState => Some(ExtensionKind::ServiceState),
            _ => None,
        }
    }
}

/// What an ipOS frame says. Type and protocol follow from the variant (and
/// from `protocol` for acknowledgements and extensions), so a `Message`
/// cannot contradict its own header; [`Message::header`] rebuilds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Message<'a> {
    /// Type 0x01, protocol 0x01: a TCP endpoint migrates to `server_addr`.
    TcpConnection {
        /// Client and VIP of the migrated connection.
        flow: Flow,
        /// Where the endpoint now lives: IP.
        server_addr: Ipv4Address,
        /// Where the endpoint now lives: port.
        server_port: u16,
        /// TCP control block information, opaque here.
        tcb: &'a [u8; TCB_LEN],
    },
    /// Type 0x01, protocol 0x02: a UDP endpoint migrates to `server_addr`.
    UdpConnection {
        /// Client and VIP of the migrated endpoint.
        flow: Flow,
        /// Where the endpoint now lives: IP.
        server_addr: Ipv4Address,
        /// Where the endpoint now lives: port.
        server_port: u16,
    },
    /// Type 0x02, protocol 0x01: a forwarded client IPv4/TCP packet, cut to
    /// its IPv4 total length.
    TcpData {
        /// Client and VIP (equal to the inner packet's).
        flow: Flow,
        /// The whole inner IPv4 packet.
        packet: &'a [u8],
    },
    /// Type 0x02, protocol 0x02: a forwarded client IPv4/UDP packet, cut to
    /// its IPv4 total length.
    UdpData {
        /// Client and VIP (equal to the inner packet's).
        flow: Flow,
        /// The whole inner IPv4 packet.
        packet: &'a [u8],
    },
    /// Type 0x03: the target installed the endpoint.
    Ack {
        /// Client and VIP of the migrated connection.
        flow: Flow,
        /// TCP or UDP.
        protocol: Protocol,
    },
    /// Types 0x10 / 0x11 / 0x12: an ipOS extension; the body's content is the
    /// node's to define.
    Extension {
        /// Addresses and ports, as the extension defines them.
        flow: Flow,
        /// Which extension.
        kind: ExtensionKind,
        /// The protocol byte, carried through uninterpreted.
        protocol: Protocol,
        /// Every byte after the ipOS header.
        body: &'a [u8],
    },
}

impl<'a> Message<'a> {
    /// Client and VIP addresses and ports.
    pub const fn flow(&self) -> Flow {
        match *self {
            Message::TcpConnection { flow, .. }
            | Message::UdpConnection { flow, .. }
            | Message::TcpData { flow, .. }
            | Message::UdpData { flow, .. }
            | Message::Ack { flow, .. }
            | Message::Extension { flow, .. } => flow,
        }
    }

    /// The ipOS type.
    pub const fn msg_type(&self) -> MessageType {
        match self {
            Message::TcpConnection { .. } | Message::UdpConnection { .. } => {
                MessageType::Connection
            }
            Message::TcpData { .. } | Message::UdpData { .. } => MessageType::Data,
            Message::Ack { .. } => MessageType::Ack,
            Message::Extension { kind, .. } => kind.msg_type(),
        }
    }

    /// The ipOS protocol.
    pub const fn protocol(&self) -> Protocol {
        match *self {
            Message::TcpConnection { .. } | Message::TcpData { .. } => Protocol::Tcp,
            Message::UdpConnection { .. } | Message::UdpData { .. } => Protocol::Udp,
            Message::Ack { protocol, .. } | Message::Extension { protocol, .. } => protocol,
        }
    }

    /// The ipOS header this message is sent with (checksum aside).
    pub const fn header(&self) -> HeaderRepr {
        HeaderRepr {
            flow: self.flow(),
            msg_type: self.msg_type(),
            protocol: self.protocol(),
        }
    }

    /// Bytes after the ipOS header.
    pub const fn body_len(&self) -> usize {
        match self {
            Message::TcpConnection { .. } => TCP_CONN_INFO_LEN,
            Message::UdpConnection { .. } => UDP_CONN_INFO_LEN,
            Message::TcpData { packet, .. } | Message::UdpData { packet, .. } => packet.len(),
            Message::Ack { .. } => 0,
            Message::Extension { body, .. } => body.len(),
        }
    }
}

/// A parsed (or to-be-emitted) ipOS frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Frame<'a> {
    /// Ethernet addresses.
    pub macs: MacAddrs,
    /// What the frame says.
    pub message: Message<'a>,
}

impl<'a> Frame<'a> {
    /// Parse a whole received Ethernet frame whose type field must equal
    /// `ethertype`. See the module docs for the checks and their order.
    pub fn parse(buf: &'a [u8], ethertype: u16) -> Result<Frame<'a>> {
        let eth = EthernetFrame::new_checked(buf).map_err(|_| Error::Truncated)?;
        if u16::from(eth.ethertype()) != ethertype {
            return Err(Error::WrongEtherType);
        }
        let macs = MacAddrs {
            dst: eth.dst_addr(),
            src: eth.src_addr(),
        };
        let ipos = header::Packet::new_checked(eth.payload())?;
        let (head, body) = eth.payload().split_at(HEADER_LEN);
        let header = header::Packet::new_unchecked(head);
        let repr = HeaderRepr::parse(&ipos)?;
        let flow = repr.flow;
        let protocol = repr.protocol;

        let covered_len = match repr.msg_type {
            MessageType::Connection => conn_info::conn_info_len(protocol),
            MessageType::Data => {
                let min = match protocol {
                    Protocol::Tcp => MIN_TCP_PACKET_LEN,
                    _ => MIN_UDP_PACKET_LEN,
                };
                if body.len() < min {
                    return Err(Error::Truncated);
                }
                Some(0)
            }
            MessageType::Ack => Some(0),
            _ => Some(body.len()),
        }
        .ok_or(Error::UnknownProtocol(protocol.into()))?;
        let covered = body.get(..covered_len).ok_or(Error::Truncated)?;
        if !header.verify_checksum(covered) {
            return Err(Error::BadChecksum);
        }

        let message = match repr.msg_type {
            MessageType::Connection => {
                match ConnInfoRepr::parse(&conn_info::Packet::new_unchecked(covered), protocol)? {
                    ConnInfoRepr::Tcp {
                        server_addr,
                        server_port,
                        tcb,
                    } => Message::TcpConnection {
                        flow,
                        server_addr,
                        server_port,
                        tcb,
                    },
                    ConnInfoRepr::Udp {
                        server_addr,
                        server_port,
                    } => Message::UdpConnection {
                        flow,
                        server_addr,
                        server_port,
                    },
                }
            }
            MessageType::Data => {
                let (packet, inner_flow) = parse_inner(body, protocol)?;
                if inner_flow != flow {
                    return Err(Error::BadInnerPacket);
                }
                match protocol {
                    Protocol::Tcp => Message::TcpData { flow, packet },
                    _ => Message::UdpData { flow, packet },
                }
            }
            MessageType::Ack => Message::Ack { flow, protocol },
            other => match ExtensionKind::from_msg_type(other) {
                Some(kind) => Message::Extension {
                    flow,
                    kind,
                    protocol,
                    body,
                },
                None => return Err(Error::UnknownType(other.into())),
            },
        };
        Ok(Frame { macs, message })
    }

    /// Bytes [`Frame::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        FRAME_HEADER_LEN + self.message.body_len()
    }

    /// Write this frame at the start of `buf` with Ethernet type `ethertype`,
    /// checksum filled, and return its length ([`Frame::buffer_len`]).
    ///
    /// Errors: `BadLength` if `buf` is too short; `UnknownProtocol` for an
    /// acknowledgement whose protocol is neither TCP nor UDP; for data
    /// messages, whatever [`crate::inner::parse_inner`] says of `packet`, and
    /// `BadInnerPacket` if its addresses and ports are not `flow`. Nothing is
    /// written when an error is returned.
    pub fn emit(&self, buf: &mut [u8], ethertype: u16) -> Result<usize> {
        let len = self.buffer_len();
        match self.message {
            Message::TcpData { flow, packet } | Message::UdpData { flow, packet } => {
                let (_, inner_flow) = parse_inner(packet, self.message.protocol())?;
                if inner_flow != flow {
                    return Err(Error::BadInnerPacket);
                }
            }
            Message::Ack {
                protocol: Protocol::Unknown(p),
                ..
            } => return Err(Error::UnknownProtocol(p)),
            _ => {}
        }
        let out = buf.get_mut(..len).ok_or(Error::BadLength)?;
        let (eth, rest) = out.split_at_mut(ETHERNET_HEADER_LEN);
        emit_ethernet(eth, ethertype, &self.macs);
        let (head, body) = rest.split_at_mut(HEADER_LEN);
        let covered_len = match self.message {
            Message::TcpConnection {
                server_addr,
                server_port,
                tcb,
                ..
            } => {
                let info = ConnInfoRepr::Tcp {
                    server_addr,
                    server_port,
                    tcb,
                };
                info.emit(&mut conn_info::Packet::new_unchecked(&mut *body))?;
                info.buffer_len()
            }
            Message::UdpConnection {
                server_addr,
                server_port,
                ..
            } => {
                let info = ConnInfoRepr::Udp {
                    server_addr,
                    server_port,
                };
                info.emit(&mut conn_info::Packet::new_unchecked(&mut *body))?;
                info.buffer_len()
            }
            Message::TcpData { packet, .. } | Message::UdpData { packet, .. } => {
                body.copy_from_slice(packet);
                0
            }
            Message::Ack { .. } => 0,
            Message::Extension { body: ext, .. } => {
                body.copy_from_slice(ext);
                ext.len()
            }
        };
        let mut header = header::Packet::new_unchecked(head);
        self.message.header().emit(&mut header)?;
        header.fill_checksum(body.get(..covered_len).ok_or(Error::BadLength)?);
        Ok(len)
    }
}

fn emit_ethernet(eth: &mut [u8], ethertype: u16, macs: &MacAddrs) {
    // `eth` is the first 14 bytes of a buffer already checked to be long enough.
    let _ = crate::headers::emit_ethernet_header(eth, macs.dst, macs.src, ethertype);
}

/// Write a TCP connection packet (FIG. 11E); returns 176.
pub fn emit_tcp_connection(
    buf: &mut [u8],
    ethertype: u16,
    macs: &MacAddrs,
    flow: &Flow,
    server_addr: Ipv4Address,
    server_port: u16,
    tcb: &[u8; TCB_LEN],
) -> Result<usize> {
    Frame {
        macs: *macs,
        message: Message::TcpConnection {
            flow: *flow,
            server_addr,
            server_port,
            tcb,
        },
    }
    .emit(buf, ethertype)
}

/// Write a UDP connection packet (FIG. 11F); returns 36.
pub fn emit_udp_connection(
    buf: &mut [u8],
    ethertype: u16,
    macs: &MacAddrs,
    flow: &Flow,
    server_addr: Ipv4Address,
    server_port: u16,
) -> Result<usize> {
    Frame {
        macs: *macs,
        message: Message::UdpConnection {
            flow: *flow,
            server_addr,
            server_port,
        },
    }
    .emit(buf, ethertype)
}

/// Write a migration acknowledgement (FIG. 11I); returns 30.
/// `protocol` must be TCP or UDP.
pub fn emit_ack(
    buf: &mut [u8],
    ethertype: u16,
    macs: &MacAddrs,
    flow: &Flow,
    protocol: Protocol,
) -> Result<usize> {
    Frame {
        macs: *macs,
        message: Message::Ack {
            flow: *flow,
            protocol,
        },
    }
    .emit(buf, ethertype)
}

/// Write an extension frame with `body` after the ipOS header; returns
/// 30 + `body.len()`.
pub fn emit_extension(
    buf: &mut [u8],
    ethertype: u16,
    macs: &MacAddrs,
    flow: &Flow,
    kind: ExtensionKind,
    protocol: Protocol,
    body: &[u8],
) -> Result<usize> {
    Frame {
        macs: *macs,
        message: Message::Extension {
            flow: *flow,
            kind,
            protocol,
            body,
        },
    }
    .emit(buf, ethertype)
}

/// Zero-copy forwarding: turn a client packet into a data frame in place.
///
/// `buf[..DATA_HEADROOM]` (30 bytes) is free; `buf[DATA_HEADROOM..]` holds
/// the client's IPv4 packet (possibly followed by the Ethernet padding it
/// arrived with). Fills the 30 bytes with the Ethernet header and an ipOS data
/// header whose type is 0x02, protocol and addresses/ports taken from the
/// inner packet, checksum filled. Returns the frame length, 30 + the inner
/// IPv4 total length: trim the buffer to it so that padding is not sent on.
///
/// Errors: `BadLength` if `buf` is shorter than 30 bytes; `BadInnerPacket` if
/// the inner packet is neither TCP nor UDP over IPv4 (or is too short to tell);
/// otherwise those of [`crate::inner::parse_inner`]. The inner packet is
/// never modified; the headroom is written only on success.
pub fn emit_data_header(buf: &mut [u8], ethertype: u16, macs: &MacAddrs) -> Result<usize> {
    let (head, inner) = buf
        .split_at_mut_checked(DATA_HEADROOM)
        .ok_or(Error::BadLength)?;
    let protocol = inner_protocol(inner).ok_or(Error::BadInnerPacket)?;
    let (packet, flow) = parse_inner(inner, protocol)?;
    let len = DATA_HEADROOM + packet.len();
    let (eth, head) = head.split_at_mut(ETHERNET_HEADER_LEN);
    emit_ethernet(eth, ethertype, macs);
    let mut header = header::Packet::new_unchecked(head);
    HeaderRepr {
        flow,
        msg_type: MessageType::Data,
        protocol,
    }
    .emit(&mut header)?;
    header.fill_checksum(&[]);
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{tcp_packet, udp_packet};
    use crate::DEFAULT_ETHERTYPE;

    const ET: u16 = DEFAULT_ETHERTYPE;

    fn macs() -> MacAddrs {
        MacAddrs {
            dst: EthernetAddress([0x02, 0, 0, 0, 0, 0x02]),
            src: EthernetAddress([0x02, 0, 0, 0, 0, 0x01]),
        }
    }

    fn flow() -> Flow {
        Flow {
            src_addr: Ipv4Address::new(198, 18, 0, 1),
            src_port: 49152,
            dst_addr: Ipv4Address::new(198, 19, 1, 10),
            dst_port: 80,
        }
    }

    fn udp_flow() -> Flow {
        Flow {
            dst_port: 53,
            ..flow()
        }
    }

    const SERVER: Ipv4Address = Ipv4Address::new(198, 18, 0, 2);

    fn tcb() -> [u8; TCB_LEN] {
        core::array::from_fn(|i| i as u8)
    }

    // Migration acknowledgement, TCP (FIG. 11I): 30 bytes.
    static ACK_FRAME: [u8; 30] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // destination MAC
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // source MAC
        0x00, 0x07, // ethertype 0x0007
        0xc6, 0x12, 0x00, 0x01, // source IP 198.18.0.1 (client)
        0xc0, 0x00, // source port 49152
        0xc6, 0x13, 0x01, 0x0a, // destination IP 198.19.1.10 (VIP)
        0x00, 0x50, // destination port 80
        0x03, // type: migration acknowledgement
        0x01, // protocol: TCP
        // Checksum, computed by hand over the ipOS header only (checksum
        // field as zero), 16-bit big-endian words:
        //   0xc612 + 0x0001 + 0xc000 + 0xc613 + 0x010a + 0x0050 + 0x0301
        //   + 0x0000 = 0x25081; end-around carry: 0x5081 + 0x0002 = 0x5083;
        //   ones' complement: !0x5083 = 0xaf7c.
        0xaf, 0x7c,
    ];

    // UDP connection packet (FIG. 11F): 36 bytes.
    static UDP_CONN_FRAME: [u8; 36] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // destination MAC
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // source MAC
        0x00, 0x07, // ethertype
        0xc6, 0x12, 0x00, 0x01, // source IP 198.18.0.1
        0xc0, 0x00, // source port 49152
        0xc6, 0x13, 0x01, 0x0a, // destination IP 198.19.1.10
        0x00, 0x50, // destination port 80
        0x01, // type: connection
        0x02, // protocol: UDP
        // checksum over header + the 6 bytes of connection information:
        // 0x25081 - 0x0301 + 0x0102 (type/proto) + 0xc612 + 0x0002 + 0x1f90
        // = 0x33426 -> 0x3429 -> !0x3429 = 0xcbd6
        0xcb, 0xd6, //
        0xc6, 0x12, 0x00, 0x02, // server IP 198.18.0.2
        0x1f, 0x90, // server port 8080
    ];

    // TCP connection packet (FIG. 11E), first 36 bytes; the 140-byte TCB
    // 0x00, 0x01, ..., 0x8b follows (see `tcp_conn_frame`).
    static TCP_CONN_FRAME_HEAD: [u8; 36] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // destination MAC
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // source MAC
        0x00, 0x07, // ethertype
        0xc6, 0x12, 0x00, 0x01, // source IP 198.18.0.1
        0xc0, 0x00, // source port 49152
        0xc6, 0x13, 0x01, 0x0a, // destination IP 198.19.1.10
        0x00, 0x50, // destination port 80
        0x01, // type: connection
        0x01, // protocol: TCP
        0xda, 0xa0, // checksum over header + 146 bytes of connection information
        0xc6, 0x12, 0x00, 0x02, // server IP 198.18.0.2
        0x1f, 0x90, // server port 8080
    ];

    fn tcp_conn_frame() -> Vec<u8> {
        let mut v = TCP_CONN_FRAME_HEAD.to_vec();
        v.extend_from_slice(&tcb());
        v
    }

    // TCP data packet (FIG. 11G): 30 + 44 bytes.
    static TCP_DATA_FRAME: [u8; 74] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // destination MAC
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // source MAC
        0x00, 0x07, // ethertype
        0xc6, 0x12, 0x00, 0x01, // source IP 198.18.0.1
        0xc0, 0x00, // source port 49152
        0xc6, 0x13, 0x01, 0x0a, // destination IP 198.19.1.10
        0x00, 0x50, // destination port 80
        0x02, // type: data
        0x01, // protocol: TCP
        0xb0, 0x7c, // checksum, header only: as ACK_FRAME's with 0x0201 for 0x0301
        // inner IPv4 header
        0x45, 0x00, 0x00, 0x2c, // version 4, IHL 5, total length 44
        0x00, 0x01, 0x40, 0x00, // ident 1, DF
        0x40, 0x06, 0xad, 0x9a, // TTL 64, protocol TCP, header checksum
        0xc6, 0x12, 0x00, 0x01, // source 198.18.0.1
        0xc6, 0x13, 0x01, 0x0a, // destination 198.19.1.10
        // inner TCP header
        0xc0, 0x00, 0x00, 0x50, // ports 49152 -> 80
        0x00, 0x00, 0x00, 0x01, // seq 1
        0x00, 0x00, 0x00, 0x01, // ack 1
        0x50, 0x18, 0x04, 0x00, // data offset 5, PSH|ACK, window 1024
        0xc2, 0xdf, 0x00, 0x00, // checksum, urgent pointer
        b'G', b'E', b'T', b' ', // data
    ];

    // UDP data packet (FIG. 11H): 30 + 32 bytes.
    static UDP_DATA_FRAME: [u8; 62] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // destination MAC
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // source MAC
        0x00, 0x07, // ethertype
        0xc6, 0x12, 0x00, 0x01, // source IP 198.18.0.1
        0xc0, 0x00, // source port 49152
        0xc6, 0x13, 0x01, 0x0a, // destination IP 198.19.1.10
        0x00, 0x35, // destination port 53
        0x02, // type: data
        0x02, // protocol: UDP
        0xb0, 0x96, // checksum, header only
        // inner IPv4 header
        0x45, 0x00, 0x00, 0x20, // version 4, IHL 5, total length 32
        0x00, 0x02, 0x40, 0x00, // ident 2, DF
        0x40, 0x11, 0xad, 0x9a, // TTL 64, protocol UDP, header checksum
        0xc6, 0x12, 0x00, 0x01, // source 198.18.0.1
        0xc6, 0x13, 0x01, 0x0a, // destination 198.19.1.10
        // inner UDP header
        0xc0, 0x00, 0x00, 0x35, // ports 49152 -> 53
        0x00, 0x0c, 0xd3, 0x9e, // length 12, checksum
        b'p', b'i', b'n', b'g', // data
    ];

    // Server-state advertisement (extension 0x10) with a 3-byte body.
    static EXT_FRAME: [u8; 33] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // destination MAC
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // source MAC
        0x00, 0x07, // ethertype
        0xc6, 0x12, 0x00, 0x01, // source IP 198.18.0.1
        0xc0, 0x00, // source port 49152
        0xc6, 0x13, 0x01, 0x0a, // destination IP 198.19.1.10
        0x00, 0x50, // destination port 80
        0x10, // type: server-state advertisement (ipOS extension)
        0x01, // protocol byte (carried through)
        // checksum over header + body, odd body padded with a zero byte:
        // 0x25081 - 0x0301 + 0x1001 + 0x0102 + 0x0300 = 0x26183 -> 0x6185
        // -> !0x6185 = 0x9e7a
        0x9e, 0x7a, //
        0x01, 0x02, 0x03, // body
    ];

    /// Every sample frame with what it must parse to.
    fn samples() -> Vec<(Vec<u8>, Frame<'static>)> {
        static TCB: [u8; TCB_LEN] = {
            let mut t = [0u8; TCB_LEN];
            let mut i = 0;
            while i < TCB_LEN {
                t[i] = i as u8;
                i += 1;
            }
            t
        };
        vec![
            (
                ACK_FRAME.to_vec(),
                Frame {
                    macs: macs(),
                    message: Message::Ack {
                        flow: flow(),
                        protocol: Protocol::Tcp,
                    },
                },
            ),
            (
                UDP_CONN_FRAME.to_vec(),
                Frame {
                    macs: macs(),
                    message: Message::UdpConnection {
                        flow: flow(),
                        server_addr: SERVER,
                        server_port: 8080,
                    },
                },
            ),
            (
                tcp_conn_frame(),
                Frame {
                    macs: macs(),
                    message: Message::TcpConnection {
                        flow: flow(),
                        server_addr: SERVER,
                        server_port: 8080,
                        tcb: &TCB,
                    },
                },
            ),
            (
                TCP_DATA_FRAME.to_vec(),
                Frame {
                    macs: macs(),
                    message: Message::TcpData {
                        flow: flow(),
                        packet: &TCP_DATA_FRAME[30..],
                    },
                },
            ),
            (
                UDP_DATA_FRAME.to_vec(),
                Frame {
                    macs: macs(),
                    message: Message::UdpData {
                        flow: udp_flow(),
                        packet: &UDP_DATA_FRAME[30..],
                    },
                },
            ),
            (
                EXT_FRAME.to_vec(),
                Frame {
                    macs: macs(),
                    message: Message::Extension {
                        flow: flow(),
                        kind: ExtensionKind::ServerState,
                        protocol: Protocol::Tcp,
                        body: &EXT_FRAME[30..],
                    },
                },
            ),
        ]
    }

    #[test]
    fn sample_constants() {
        assert_eq!(TCP_CONNECTION_FRAME_LEN, 176);
        assert_eq!(UDP_CONNECTION_FRAME_LEN, 36);
        assert_eq!(ACK_FRAME_LEN, 30);
        assert_eq!(MIN_TCP_DATA_FRAME_LEN, 70);
        assert_eq!(MIN_UDP_DATA_FRAME_LEN, 58);
        assert_eq!(tcp_conn_frame().len(), TCP_CONNECTION_FRAME_LEN);
        // The hand-written inner packets are what the test builders produce.
        assert_eq!(tcp_packet(&flow(), b"GET "), TCP_DATA_FRAME[30..]);
        assert_eq!(udp_packet(&udp_flow(), b"ping"), UDP_DATA_FRAME[30..]);
    }

    #[test]
    fn deconstruct_ack() {
        let frame = Frame::parse(&ACK_FRAME, ET).unwrap();
        assert_eq!(frame.macs.dst, EthernetAddress([2, 0, 0, 0, 0, 2]));
        assert_eq!(frame.macs.src, EthernetAddress([2, 0, 0, 0, 0, 1]));
        assert_eq!(
            frame.message,
            Message::Ack {
                flow: flow(),
                protocol: Protocol::Tcp
            }
        );
        let header = frame.message.header();
        assert_eq!(header.msg_type, MessageType::Ack);
        assert_eq!(header.protocol, Protocol::Tcp);
        assert_eq!(header.flow.src_addr, Ipv4Address::new(198, 18, 0, 1));
        assert_eq!(header.flow.src_port, 49152);
        assert_eq!(header.flow.dst_addr, Ipv4Address::new(198, 19, 1, 10));
        assert_eq!(header.flow.dst_port, 80);
        assert_eq!(frame.buffer_len(), 30);
    }

    #[test]
    fn deconstruct_udp_connection() {
        let frame = Frame::parse(&UDP_CONN_FRAME, ET).unwrap();
        let Message::UdpConnection {
            flow: f,
            server_addr,
            server_port,
        } = frame.message
        else {
            panic!("{frame:?}")
        };
        assert_eq!(f, flow());
        assert_eq!(server_addr, SERVER);
        assert_eq!(server_port, 8080);
        assert_eq!(frame.message.msg_type(), MessageType::Connection);
        assert_eq!(frame.message.protocol(), Protocol::Udp);
    }

    #[test]
    fn deconstruct_tcp_connection() {
        let bytes = tcp_conn_frame();
        let frame = Frame::parse(&bytes, ET).unwrap();
        let Message::TcpConnection {
            flow: f,
            server_addr,
            server_port,
            tcb: t,
        } = frame.message
        else {
            panic!("{frame:?}")
        };
        assert_eq!(f, flow());
        assert_eq!(server_addr, SERVER);
        assert_eq!(server_port, 8080);
        assert_eq!(t, &tcb());
        assert_eq!(frame.buffer_len(), 176);
    }

    #[test]
    fn deconstruct_tcp_data() {
        let frame = Frame::parse(&TCP_DATA_FRAME, ET).unwrap();
        let Message::TcpData { flow: f, packet } = frame.message else {
            panic!("{frame:?}")
        };
        assert_eq!(f, flow());
        assert_eq!(packet.len(), 44);
        assert_eq!(&packet[40..], b"GET ");
        let ip = smoltcp::wire::Ipv4Packet::new_checked(packet).unwrap();
        assert!(ip.verify_checksum());
    }

    #[test]
    fn deconstruct_udp_data() {
        let frame = Frame::parse(&UDP_DATA_FRAME, ET).unwrap();
        let Message::UdpData { flow: f, packet } = frame.message else {
            panic!("{frame:?}")
        };
        assert_eq!(f, udp_flow());
        assert_eq!(packet.len(), 32);
        assert_eq!(&packet[28..], b"ping");
    }

    #[test]
    fn deconstruct_extension() {
        let frame = Frame::parse(&EXT_FRAME, ET).unwrap();
        assert_eq!(
            frame.message,
            Message::Extension {
                flow: flow(),
                kind: ExtensionKind::ServerState,
                protocol: Protocol::Tcp,
                body: &[1, 2, 3]
            }
        );
        assert_eq!(frame.message.msg_type(), MessageType::ServerState);
        // Connection-closed notice, any protocol byte.
        let mut bytes = [0u8; 64];
        let n = emit_extension(
            &mut bytes,
            ET,
            &macs(),
            &flow(),
            ExtensionKind::ConnectionNotice,
            Protocol::Unknown(0),
            &[],
        )
        .unwrap();
        assert_eq!(n, 30);
        let frame = Frame::parse(&bytes[..n], ET).unwrap();
        assert_eq!(frame.message.msg_type(), MessageType::ConnectionNotice);
        assert_eq!(frame.message.protocol(), Protocol::Unknown(0));
    }

    #[test]
    fn construct_with_builders() {
        let mut buf = [0xa5u8; 256];
        let n = emit_ack(&mut buf, ET, &macs(), &flow(), Protocol::Tcp).unwrap();
        assert_eq!(&buf[..n], &ACK_FRAME[..]);

        let mut buf = [0xa5u8; 256];
        let n = emit_udp_connection(&mut buf, ET, &macs(), &flow(), SERVER, 8080).unwrap();
        assert_eq!(&buf[..n], &UDP_CONN_FRAME[..]);

        let mut buf = [0xa5u8; 256];
        let n = emit_tcp_connection(&mut buf, ET, &macs(), &flow(), SERVER, 8080, &tcb()).unwrap();
        assert_eq!(&buf[..n], &tcp_conn_frame()[..]);

        let mut buf = [0xa5u8; 256];
        let n = emit_extension(
            &mut buf,
            ET,
            &macs(),
            &flow(),
            ExtensionKind::ServerState,
            Protocol::Tcp,
            &[1, 2, 3],
        )
        .unwrap();
        assert_eq!(&buf[..n], &EXT_FRAME[..]);
    }

    #[test]
    fn construct_with_frame_emit() {
        for (bytes, frame) in samples() {
            let mut buf = [0xa5u8; 256];
            assert_eq!(frame.buffer_len(), bytes.len());
            let n = frame.emit(&mut buf, ET).unwrap();
            assert_eq!(&buf[..n], &bytes[..], "{frame:?}");
        }
    }

    #[test]
    fn construct_data_header_in_place() {
        for (frame_bytes, payload_at) in [(&TCP_DATA_FRAME[..], 30), (&UDP_DATA_FRAME[..], 30)] {
            // The client's packet as it arrived, plus 6 bytes of Ethernet
            // padding, behind 30 bytes of headroom holding garbage.
            let mut buf = vec![0xa5u8; 30];
            buf.extend_from_slice(&frame_bytes[payload_at..]);
            buf.extend_from_slice(&[0; 6]);
            let n = emit_data_header(&mut buf, ET, &macs()).unwrap();
            assert_eq!(n, frame_bytes.len());
            assert_eq!(&buf[..n], frame_bytes);
            assert_eq!(&buf[n..], &[0; 6]);
        }
    }

    #[test]
    fn configurable_ethertype() {
        let mut buf = [0u8; 64];
        let n = emit_ack(&mut buf, 0x88b5, &macs(), &flow(), Protocol::Udp).unwrap();
        assert_eq!(&buf[12..14], &[0x88, 0xb5]);
        assert!(Frame::parse(&buf[..n], 0x88b5).is_ok());
        assert_eq!(Frame::parse(&buf[..n], ET), Err(Error::WrongEtherType));
        // IPv4's ethertype round-trips too (smoltcp knows it by name).
        let n = emit_ack(&mut buf, 0x0800, &macs(), &flow(), Protocol::Udp).unwrap();
        assert!(Frame::parse(&buf[..n], 0x0800).is_ok());
    }

    #[test]
    fn wrong_ethertype() {
        for (mut bytes, _) in samples() {
            bytes[13] = 0x08;
            assert_eq!(Frame::parse(&bytes, ET), Err(Error::WrongEtherType));
        }
    }

    #[test]
    fn truncated() {
        for (bytes, frame) in samples() {
            // Each cut below the kind's minimum is Truncated; data frames cut
            // between their minimum and their IPv4 total length are BadLength.
            let min = match frame.message {
                Message::TcpData { .. } => MIN_TCP_DATA_FRAME_LEN,
                Message::UdpData { .. } => MIN_UDP_DATA_FRAME_LEN,
                // An extension body is whatever follows the header: a cut one
                // only fails its checksum.
                Message::Extension { .. } => FRAME_HEADER_LEN,
                _ => bytes.len(),
            };
            for cut in 0..bytes.len() {
                let expect = if cut < min {
                    Error::Truncated
                } else if let Message::Extension { .. } = frame.message {
                    Error::BadChecksum
                } else {
                    Error::BadLength
                };
                assert_eq!(
                    Frame::parse(&bytes[..cut], ET),
                    Err(expect),
                    "{frame:?} cut {cut}"
                );
            }
        }
    }

    #[test]
    fn extension_body_may_be_empty() {
        let frame = Frame::parse(&EXT_FRAME[..30], ET);
        // The checksum covered the 3 body bytes, so without them it fails.
        assert_eq!(frame, Err(Error::BadChecksum));
    }

    #[test]
    fn bad_length_inner_total_length() {
        // Total length one beyond the bytes carried.
        let mut bytes = TCP_DATA_FRAME;
        bytes[33] = 45;
        assert_eq!(Frame::parse(&bytes, ET), Err(Error::BadLength));
        // Total length below IPv4 + TCP headers.
        bytes[33] = 39;
        assert_eq!(Frame::parse(&bytes, ET), Err(Error::BadLength));
        // TCP data offset 15 (60 bytes) beyond the 24-byte segment.
        let mut bytes = TCP_DATA_FRAME;
        bytes[62] = 0xf0;
        assert_eq!(Frame::parse(&bytes, ET), Err(Error::BadLength));
        // UDP length 7, and 13 (beyond the 12-byte IPv4 payload).
        let mut bytes = UDP_DATA_FRAME;
        bytes[55] = 7;
        assert_eq!(Frame::parse(&bytes, ET), Err(Error::BadLength));
        bytes[55] = 13;
        assert_eq!(Frame::parse(&bytes, ET), Err(Error::BadLength));
        // UDP length shorter than the IPv4 payload is accepted (as Linux does).
        bytes[55] = 8;
        assert!(Frame::parse(&bytes, ET).is_ok());
    }

    #[test]
    fn bad_length_emit_buffer_too_small() {
        for (bytes, frame) in samples() {
            let mut buf = vec![0u8; bytes.len() - 1];
            assert_eq!(frame.emit(&mut buf, ET), Err(Error::BadLength), "{frame:?}");
            assert!(buf.iter().all(|&b| b == 0), "nothing written on error");
        }
        let mut buf = [0u8; 29];
        assert_eq!(
            emit_ack(&mut buf, ET, &macs(), &flow(), Protocol::Tcp),
            Err(Error::BadLength)
        );
        assert_eq!(
            emit_data_header(&mut buf, ET, &macs()),
            Err(Error::BadLength)
        );
    }

    #[test]
    fn bad_checksum() {
        for (bytes, frame) in samples() {
            // Any covered byte changed: header fields, connection info, TCB,
            // extension body.
            let covered_end = match frame.message {
                Message::TcpData { .. } | Message::UdpData { .. } | Message::Ack { .. } => 30,
                _ => bytes.len(),
            };
            for i in 14..covered_end {
                if i == 26 || i == 27 {
                    continue; // type and protocol have their own errors
                }
                let mut b = bytes.clone();
                b[i] ^= 0x40;
                assert_eq!(
                    Frame::parse(&b, ET),
                    Err(Error::BadChecksum),
                    "{frame:?} byte {i}"
                );
            }
        }
        // A wrong type/protocol that is still a valid combination.
        let mut b = ACK_FRAME;
        b[27] = 0x02;
        assert_eq!(Frame::parse(&b, ET), Err(Error::BadChecksum));
    }

    #[test]
    fn negative_zero_checksum_accepted() {
        // Found by the fuzzer: this ServerState header's other words sum to
        // 0xffff, so the computed checksum is 0x0000 and 0xffff verifies too.
        let mut bytes = [0u8; 33];
        bytes[12..14].copy_from_slice(&[0x00, 0x07]);
        bytes[14..28].copy_from_slice(&[
            0xc6, 0x12, 0x00, 0x01, 0xc0, 0x00, 0xc6, 0x13, 0x01, 0x0a, 0x00, 0x50, 0x11, 0x01,
        ]);
        bytes[30..32].copy_from_slice(&[0xa1, 0x7c]);
        assert_eq!(crate::checksum::sum(&[&bytes[14..]]), 0xffff);
        let zero = Frame::parse(&bytes, ET).unwrap();
        let mut neg = bytes;
        neg[28..30].copy_from_slice(&[0xff, 0xff]);
        let neg_zero = Frame::parse(&neg, ET).unwrap();
        assert_eq!(zero, neg_zero);
        let mut out = [0xa5u8; 33];
        zero.emit(&mut out, ET).unwrap();
        assert_eq!(&out[28..30], &[0, 0]);
    }

    #[test]
    fn inner_bytes_are_not_covered() {
        // Data frames: the inner packet has its own checksums; changing its
        // payload leaves the ipOS checksum valid.
        let mut bytes = TCP_DATA_FRAME;
        bytes[73] = b'!';
        assert!(Frame::parse(&bytes, ET).is_ok());
    }

    #[test]
    fn unknown_type() {
        for (mut bytes, _) in samples() {
            for t in [0x00, 0x04, 0x0f, 0x13, 0xff] {
                bytes[26] = t;
                assert_eq!(Frame::parse(&bytes, ET), Err(Error::UnknownType(t)));
            }
        }
    }

    #[test]
    fn unknown_protocol() {
        for (mut bytes, frame) in samples() {
            if let Message::Extension { .. } = frame.message {
                continue; // the protocol byte is carried through
            }
            for p in [0x00, 0x03, 0x06, 0x11, 0xff] {
                bytes[27] = p;
                assert_eq!(Frame::parse(&bytes, ET), Err(Error::UnknownProtocol(p)));
            }
        }
        let mut buf = [0u8; 64];
        assert_eq!(
            emit_ack(&mut buf, ET, &macs(), &flow(), Protocol::Unknown(9)),
            Err(Error::UnknownProtocol(9))
        );
    }

    #[test]
    fn padded_frames_accepted() {
        for (bytes, frame) in samples() {
            for total in [60, bytes.len() + 1, bytes.len() + 4, bytes.len() + 100] {
                if total < bytes.len() {
                    continue;
                }
                let mut padded = bytes.clone();
                padded.resize(total, 0);
                let parsed = Frame::parse(&padded, ET).unwrap();
                match (parsed.message, frame.message) {
                    // An extension body is everything after the header.
                    (Message::Extension { body, .. }, Message::Extension { body: want, .. }) => {
                        assert_eq!(&body[..want.len()], want);
                        assert!(body[want.len()..].iter().all(|&b| b == 0));
                    }
                    _ => assert_eq!(parsed, frame),
                }
            }
        }
    }

    #[test]
    fn inner_packet_mismatch() {
        let cases: &[(usize, u8)] = &[
            (30, 0x65), // IP version 6
            (30, 0x44), // IHL 4
            (39, 0x11), // protocol UDP inside a TCP data frame
            (36, 0x20), // MF set (fragment)
            (37, 0x01), // fragment offset 1
            (45, 0x02), // inner source 198.18.0.2
            (49, 0x0b), // inner destination 198.19.1.11
            (51, 0x01), // inner source port 49153
            (53, 0x51), // inner destination port 81
            (62, 0x40), // TCP data offset 4
        ];
        for &(at, value) in cases {
            let mut bytes = TCP_DATA_FRAME;
            bytes[at] = value;
            assert_eq!(
                Frame::parse(&bytes, ET),
                Err(Error::BadInnerPacket),
                "byte {at}"
            );
        }
        // The ipOS header disagreeing with a correct inner packet.
        let mut buf = [0u8; 128];
        let wrong = Flow {
            src_port: 1,
            ..flow()
        };
        let frame = Frame {
            macs: macs(),
            message: Message::TcpData {
                flow: wrong,
                packet: &TCP_DATA_FRAME[30..],
            },
        };
        assert_eq!(frame.emit(&mut buf, ET), Err(Error::BadInnerPacket));
        // TCP packet in a UDP data frame, UDP packet in a TCP data frame.
        let mut bytes = TCP_DATA_FRAME;
        bytes[27] = 0x02;
        bytes[28..30].copy_from_slice(&[0xb0, 0x7b]);
        assert_eq!(Frame::parse(&bytes, ET), Err(Error::BadInnerPacket));
        let mut bytes = UDP_DATA_FRAME.to_vec();
        bytes[27] = 0x01;
        bytes[28..30].copy_from_slice(&[0xb0, 0x97]);
        bytes.resize(80, 0);
        assert_eq!(Frame::parse(&bytes, ET), Err(Error::BadInnerPacket));
        // Not TCP/UDP at all for the in-place builder.
        let mut buf = vec![0u8; 30];
        buf.extend_from_slice(&TCP_DATA_FRAME[30..]);
        buf[39] = 1; // ICMP
        assert_eq!(
            emit_data_header(&mut buf, ET, &macs()),
            Err(Error::BadInnerPacket)
        );
        assert!(
            buf[..30].iter().all(|&b| b == 0),
            "headroom untouched on error"
        );
    }
}
