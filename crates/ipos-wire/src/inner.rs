//! Checks on the client packet a data frame carries (FIG. 11G, 11H).
//!
//! A data frame's body is the client's whole IPv4 packet, exactly as it reached
//! the forwarding node. [`parse_inner`] accepts it when it is an unfragmented
//! IPv4 packet of the announced transport protocol whose IPv4 total length,
//! IPv4 header length and transport header fit in the bytes carried. Bytes
//! after the IPv4 total length (Ethernet padding of the client's frame) are
//! allowed and cut off. The inner IPv4 header checksum and the TCP/UDP checksum
//! are *not* verified here: they belong to the endpoint that consumes the
//! packet.
//!
//! Fragments are refused: a data frame carries one whole datagram, because
//! only a first fragment would name the ports that the forward table keys on.

use crate::error::{Error, Result};
use crate::header::{Flow, Protocol};
use smoltcp::wire::{IpProtocol, Ipv4Packet, TcpPacket, UdpPacket};

/// Smallest IPv4/TCP packet: 20 + 20 bytes.
pub const MIN_TCP_PACKET_LEN: usize = 40;
/// Smallest IPv4/UDP packet: 20 + 8 bytes.
pub const MIN_UDP_PACKET_LEN: usize = 28;

const IPV4_MIN_HEADER_LEN: usize = 20;
const TCP_MIN_HEADER_LEN: usize = 20;
const UDP_HEADER_LEN: usize = 8;

/// Smallest inner packet for an ipOS protocol.
pub const fn min_packet_len(protocol: Protocol) -> Option<usize> {
    match protocol {
        Protocol::Tcp => Some(MIN_TCP_PACKET_LEN),
        Protocol::Udp => Some(MIN_UDP_PACKET_LEN),
        Protocol::Unknown(_) => None,
    }
}

/// The ipOS protocol of an inner IPv4 packet (from its protocol field), if it
/// is TCP or UDP. `None` also for buffers too short to hold the field.
pub fn inner_protocol(packet: &[u8]) -> Option<Protocol> {
    if packet.len() < IPV4_MIN_HEADER_LEN {
        return None;
    }
    match Ipv4Packet::new_unchecked(packet).next_header() {
        IpProtocol::Tcp => Some(Protocol::Tcp),
        IpProtocol::Udp => Some(Protocol::Udp),
        _ => None,
    }
}

/// Validate `body` as the inner packet of a data frame of `protocol`.
///
/// Returns the packet cut to its IPv4 total length and the addresses and
/// ports it carries (source = client, destination = VIP for a forwarded
/// client packet). Errors, checked in this order:
///
/// * `UnknownProtocol`: `protocol` is neither TCP nor UDP;
/// * `Truncated`: `body` is shorter than 40 (TCP) or 28 (UDP) bytes;
/// * `BadInnerPacket`: IP version not 4, IHL below 5, IPv4 protocol not the
///   announced one;
/// * `BadLength`: total length beyond `body`, or below the IPv4 header plus
///   the minimal transport header;
/// * `BadInnerPacket`: a fragment (MF set or non-zero offset), TCP data
///   offset below 5;
/// * `BadLength`: the TCP header runs past the IPv4 payload, or the UDP length
///   is below 8 or beyond the IPv4 payload.
pub fn parse_inner(body: &[u8], protocol: Protocol) -> Result<(&[u8], Flow)> {
    let (min_len, ip_protocol, transport_min) = match protocol {
        Protocol::Tcp => (MIN_TCP_PACKET_LEN, IpProtocol::Tcp, TCP_MIN_HEADER_LEN),
        Protocol::Udp => (MIN_UDP_PACKET_LEN, IpProtocol::Udp, UDP_HEADER_LEN),
        Protocol::Unknown(p) => return Err(Error::UnknownProtocol(p)),
    };
    if body.len() < min_len {
        return Err(Error::Truncated);
    }
    // body.len() >= 20: every fixed IPv4 header accessor is in bounds.
    let ip = Ipv4Packet::new_unchecked(body);
    if ip.version() != 4 {
        return Err(Error::BadInnerPacket);
    }
    let header_len = usize::from(ip.header_len());
    if header_len < IPV4_MIN_HEADER_LEN {
        return Err(Error::BadInnerPacket);
    }
    if ip.next_header() != ip_protocol {
        return Err(Error::BadInnerPacket);
    }
    let total_len = usize::from(ip.total_len());
    if total_len > body.len() || total_len < header_len + transport_min {
        return Err(Error::BadLength);
    }
    if ip.more_frags() || ip.frag_offset() != 0 {
        return Err(Error::BadInnerPacket);
    }
    let packet = body.get(..total_len).ok_or(Error::BadLength)?;
    let segment = packet.get(header_len..).ok_or(Error::BadLength)?;
    // segment.len() >= transport_min: the port accessors are in bounds.
    let (src_port, dst_port) = match protocol {
        Protocol::Tcp => {
            let tcp = TcpPacket::new_unchecked(segment);
            let data_offset = usize::from(tcp.header_len());
            if data_offset < TCP_MIN_HEADER_LEN {
                return Err(Error::BadInnerPacket);
            }
            if data_offset > segment.len() {
                return Err(Error::BadLength);
            }
            (tcp.src_port(), tcp.dst_port())
        }
        _ => {
            let udp = UdpPacket::new_unchecked(segment);
            let len = usize::from(udp.len());
            if len < UDP_HEADER_LEN || len > segment.len() {
                return Err(Error::BadLength);
            }
            (udp.src_port(), udp.dst_port())
        }
    };
    let flow = Flow {
        src_addr: ip.src_addr(),
        src_port,
        dst_addr: ip.dst_addr(),
        dst_port,
    };
    Ok((packet, flow))
}
