//! The plain Ethernet and IPv4 header writers that every part of ipos uses:
//! the ipOS frames of this crate, the node's own replies (ARP, ICMP, RST, TCP
//! segments), the client segments a migration rebuilds, and the tests.
//!
//! Both write a complete header at the start of a caller's buffer and return
//! `BadLength` (writing nothing) when the buffer is too short; neither
//! allocates nor panics.

use crate::error::{Error, Result};
use smoltcp::wire::{EthernetAddress, IpProtocol, Ipv4Address, Ipv4Packet};

/// Length of an Ethernet header (no VLAN tag).
pub const ETHERNET_LEN: usize = 14;
/// Length of an IPv4 header without options.
pub const IPV4_LEN: usize = 20;
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// Time to live of every IPv4 packet a node originates.
pub const DEFAULT_TTL: u8 = 64;

/// Writes an Ethernet header (`dst`, `src`, `ethertype`) into `buf[..14]`.
pub fn emit_ethernet_header(
    buf: &mut [u8],
    dst: EthernetAddress,
    src: EthernetAddress,
    ethertype: u16,
) -> Result<()> {
    let h = buf.get_mut(..ETHERNET_LEN).ok_or(Error::BadLength)?;
    h[0..6].copy_from_slice(dst.as_bytes());
    h[6..12].copy_from_slice(src.as_bytes());
    h[12..14].copy_from_slice(&ethertype.to_be_bytes());
    Ok(())
}

/// What an IPv4 header says (no options, never fragmented: DF set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Header {
    /// Source address.
    pub src: Ipv4Address,
    /// Destination address.
    pub dst: Ipv4Address,
    /// The payload's protocol.
    pub protocol: IpProtocol,
    /// Payload bytes after the 20-byte header.
    pub payload_len: usize,
    /// Identification field.
    pub ident: u16,
}

/// Writes `h` into `buf[..20]` with its header checksum filled: version 4,
/// IHL 5, DSCP/ECN 0, DF, TTL [`DEFAULT_TTL`]. `BadLength` when `buf` is
/// shorter than 20 bytes or the total length does not fit in 16 bits.
pub fn emit_ipv4_header(buf: &mut [u8], h: &Ipv4Header) -> Result<()> {
    let total = IPV4_LEN + h.payload_len;
    let total = u16::try_from(total).map_err(|_| Error::BadLength)?;
    let b = buf.get_mut(..IPV4_LEN).ok_or(Error::BadLength)?;
    let mut ip = Ipv4Packet::new_unchecked(b);
    ip.set_version(4);
    ip.set_header_len(IPV4_LEN as u8);
    ip.set_dscp(0);
    ip.set_ecn(0);
    ip.set_total_len(total);
    ip.set_ident(h.ident);
    ip.clear_flags();
    ip.set_dont_frag(true);
    ip.set_frag_offset(0);
    ip.set_hop_limit(DEFAULT_TTL);
    ip.set_next_header(h.protocol);
    ip.set_src_addr(h.src);
    ip.set_dst_addr(h.dst);
    ip.fill_checksum();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ethernet_header_bytes() {
        let mut b = [0u8; 14];
        emit_ethernet_header(
            &mut b,
            EthernetAddress([2, 0, 0, 0, 0, 2]),
            EthernetAddress([2, 0, 0, 0, 0, 1]),
            0x0007,
        )
        .unwrap();
        assert_eq!(b, [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x00, 0x07]);
        assert_eq!(
            emit_ethernet_header(
                &mut b[..13],
                EthernetAddress([0; 6]),
                EthernetAddress([0; 6]),
                1
            ),
            Err(Error::BadLength)
        );
    }

    #[test]
    fn ipv4_header_bytes() {
        let mut b = [0u8; 20];
        let h = Ipv4Header {
            src: Ipv4Address::new(198, 18, 0, 1),
            dst: Ipv4Address::new(198, 18, 0, 100),
            protocol: IpProtocol::Tcp,
            payload_len: 20,
            ident: 0x1234,
        };
        emit_ipv4_header(&mut b, &h).unwrap();
        // The header checksum (0x9c12) computed by hand, RFC 1071.
        assert_eq!(
            b,
            [
                0x45, 0x00, 0x00, 0x28, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0x9c, 0x12, 198, 18, 0,
                1, 198, 18, 0, 100
            ]
        );
        assert!(Ipv4Packet::new_unchecked(&b[..]).verify_checksum());
        assert_eq!(emit_ipv4_header(&mut b[..19], &h), Err(Error::BadLength));
        let huge = Ipv4Header {
            payload_len: 65_516,
            ..h
        };
        assert_eq!(emit_ipv4_header(&mut b, &huge), Err(Error::BadLength));
    }
}
