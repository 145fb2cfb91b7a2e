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
use crate::tables::ForwardKey;
use ipos_wire::headers::{ETHERNET_LEN, ETHERTYPE_ARP, ETHERTYPE_IPV4};
use ipos_wire::DATA_HEADROOM;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, IpProtocol, Ipv4Address, Ipv4Packet};

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
    /// Looks up the forward entries of a whole burst before any of its frames
    /// is handled: the lookups of a big table miss the cache, and back to
    /// back (with no frame's work between them) the CPU overlaps their
    /// misses; the handling that follows finds the table's lines in the
    /// cache. Costs one lookup more per client TCP frame, so only for a table
    /// of [`WARM_FORWARD_FROM`] entries or more (a smaller one stays in the
    /// cache).
    pub(crate) fn warm_forward(&self, burst: &[P::Buf]) {
        if self.forward.len() < WARM_FORWARD_FROM || burst.len() < 2 {
            return;
        }
        for buf in burst {
            if let Some(key) = client_key(buf.data()) {
                std::hint::black_box(self.forward.contains(&key));
            }
        }
    }

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

/// Forward entries from which [`Node::warm_forward`] looks a burst up ahead
/// (about 2 MB of table).
pub(crate) const WARM_FORWARD_FROM: usize = 1 << 16;

/// The forward key (source address and port) of an Ethernet frame that
/// carries TCP over IPv4 (the only packets that look the table up), read
/// without checks beyond the lengths (a hint: the frame's handling checks it
/// all).
fn client_key(d: &[u8]) -> Option<ForwardKey> {
    if d.len() < ETHERNET_LEN + 20 || u16::from_be_bytes([d[12], d[13]]) != ETHERTYPE_IPV4 {
        return None;
    }
    let ip = &d[ETHERNET_LEN..];
    if ip[9] != 6 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let port = ip.get(ihl..ihl + 2)?;
    Some(ForwardKey {
        client_ip: Ipv4Address::new(ip[12], ip[13], ip[14], ip[15]),
        client_port: u16::from_be_bytes([port[0], port[1]]),
    })
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
