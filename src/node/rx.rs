//! Classify: every received frame goes to the room that handles it.
//!
//! Ethernet first (too short, unicast to another MAC, EtherType), then the
//! ipOS frames to [`super::ipos`], ARP to [`super::host`], and IPv4 (header
//! checked: version, checksum, length, no fragments; padding cut) by protocol
//! to ICMP, TCP or UDP, for the addresses this node owns.

use super::lanes::Stage;
use super::{Node, PeerId};
use crate::counters::DropReason;
use crate::port::{PacketBuf, Port};
use ipos_wire::headers::{ETHERNET_LEN, ETHERTYPE_ARP, ETHERTYPE_IPV4};
use ipos_wire::DATA_HEADROOM;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, IpProtocol, Ipv4Packet};

/// How a client packet reached this node, and so where its IPv4 header sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Via {
    /// Straight from the wire: IPv4 at offset 14.
    Wire,
    /// Out of an ipOS data frame that farm node `from` sent (a tunnel): IPv4 at offset 30.
    Tunnel { from: PeerId },
}

impl Via {
    /// Offset of the client's IPv4 header in the buffer.
    pub fn offset(self) -> usize {
        match self {
            Via::Wire => ETHERNET_LEN,
            Via::Tunnel { .. } => DATA_HEADROOM,
        }
    }
}

impl<P: Port> Node<P> {
    /// A frame from the port (`Stage::Wire`), or one another lane handed this one.
    pub(crate) fn handle_frame(&mut self, now: Instant, mut buf: P::Buf, stage: Stage) {
        let data = buf.data();
        if data.len() < ETHERNET_LEN {
            return self.counters.drop(DropReason::EthTruncated);
        }
        let dst = EthernetAddress::from_bytes(&data[0..6]);
        if dst.is_unicast() && dst != self.id.mac {
            return self.counters.drop(DropReason::OtherMac);
        }
        let ethertype = u16::from_be_bytes([data[12], data[13]]);
        if ethertype == self.id.ethertype {
            return self.handle_ipos(now, buf, stage);
        }
        match ethertype {
            ETHERTYPE_ARP => {
                // Every lane learns; the lane that received it answers.
                if stage == Stage::Wire {
                    self.copy_to_lanes(buf.data());
                }
                self.handle_arp(now, buf, stage != Stage::Copy)
            }
            ETHERTYPE_IPV4 => match ipv4_len(&buf.data()[ETHERNET_LEN..]) {
                Ok(len) => {
                    if ETHERNET_LEN + len < buf.len() && buf.set_len(ETHERNET_LEN + len).is_err() {
                        return self.counters.drop(DropReason::Ipv4Malformed);
                    }
                    self.handle_ipv4(now, buf, stage)
                }
                Err(r) => self.counters.drop(r),
            },
            _ => self.counters.drop(DropReason::UnknownEthertype),
        }
    }

    fn handle_ipv4(&mut self, now: Instant, buf: P::Buf, stage: Stage) {
        let ip = Ipv4Packet::new_unchecked(&buf.data()[ETHERNET_LEN..]);
        if !self.id.owns_ip(ip.dst_addr()) {
            return self.counters.drop(DropReason::Ipv4NotForUs);
        }
        let proto = ip.next_header();
        if stage == Stage::Wire && matches!(proto, IpProtocol::Tcp | IpProtocol::Udp) {
            if let Some(lane) = self.other_lane_of_packet(&buf.data()[ETHERNET_LEN..]) {
                return self.hop(lane, buf, Stage::Steered);
            }
        }
        match proto {
            IpProtocol::Icmp => self.handle_icmp(buf),
            IpProtocol::Tcp => self.handle_tcp(now, buf, Via::Wire),
            IpProtocol::Udp => self.handle_udp(now, buf, Via::Wire),
            _ => self.counters.drop(DropReason::Ipv4OtherProtocol),
        }
    }
}

/// Validates an IPv4 header; returns the packet length without padding.
pub(crate) fn ipv4_len(d: &[u8]) -> Result<usize, DropReason> {
    let ip = Ipv4Packet::new_checked(d).map_err(|_| DropReason::Ipv4Malformed)?;
    if ip.version() != 4 {
        return Err(DropReason::Ipv4Malformed);
    }
    if !ip.verify_checksum() {
        return Err(DropReason::Ipv4BadChecksum);
    }
    if ip.more_frags() || ip.frag_offset() != 0 {
        return Err(DropReason::Ipv4Fragment);
    }
    Ok(ip.total_len() as usize)
}
