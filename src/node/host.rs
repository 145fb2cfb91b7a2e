//! What any IPv4 host does: answer ARP for its addresses, answer ICMP echo,
//! reset TCP segments that belong to no connection, and resolve a MAC
//! address before answering a client that did not send to us directly.

use super::Node;
use crate::counters::{DropReason, Event};
use crate::port::{PacketBuf, Port};
use ipos_tcp::{fill_checksum, write_header, TcpHeader, TcpOptions, ACK, RST};
use ipos_wire::headers::{ETHERNET_LEN, ETHERTYPE_ARP, ETHERTYPE_IPV4, IPV4_LEN};
use ipos_wire::{emit_ipv4_header, Ipv4Header};
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, Icmpv4Message, Icmpv4Packet, IpProtocol,
    Ipv4Address, Ipv4Packet, TcpPacket,
};

/// A bare TCP header: a RST carries no options.
const TCP_HEADER_LEN: usize = 20;

impl<P: Port> Node<P> {
    pub(crate) fn handle_arp(&mut self, mut buf: P::Buf) {
        let repr = match ArpPacket::new_checked(&buf.data()[ETHERNET_LEN..])
            .and_then(|p| ArpRepr::parse(&p))
        {
            Ok(r) => r,
            Err(_) => return self.counters.drop(DropReason::ArpMalformed),
        };
        let ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr,
            source_protocol_addr,
            target_protocol_addr,
            ..
        } = repr
        else {
            return self.counters.drop(DropReason::ArpMalformed);
        };
        if operation == ArpOperation::Reply && target_protocol_addr == self.id.ip {
            let _ = self.arp.learn(source_protocol_addr, source_hardware_addr);
            return self.flush_arp_wait(source_protocol_addr, source_hardware_addr);
        }
        if operation != ArpOperation::Request || !self.id.owns_ip(target_protocol_addr) {
            // Refresh what we already know, like a kernel does; learn nothing new.
            self.arp.refresh(source_protocol_addr, source_hardware_addr);
            return self.counters.drop(DropReason::ArpNotForUs);
        }
        // A full cache keeps what it knows; the reply below needs no entry.
        let _ = self.arp.learn(source_protocol_addr, source_hardware_addr);
        // Answer in place: the request buffer becomes the reply.
        let reply = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_hardware_addr: self.id.mac,
            source_protocol_addr: target_protocol_addr,
            target_hardware_addr: source_hardware_addr,
            target_protocol_addr: source_protocol_addr,
        };
        if buf.set_len(ETHERNET_LEN + reply.buffer_len()).is_err() {
            return self.counters.drop(DropReason::ArpMalformed);
        }
        let d = buf.data_mut();
        self.write_eth(d, source_hardware_addr, ETHERTYPE_ARP);
        reply.emit(&mut ArpPacket::new_unchecked(&mut d[ETHERNET_LEN..]));
        self.counters.inc(Event::ArpReplies);
        self.transmit(buf);
    }

    pub(crate) fn handle_icmp(&mut self, mut buf: P::Buf) {
        let d = buf.data();
        let ihl = ((d[ETHERNET_LEN] & 0x0f) as usize) * 4;
        let icmp_off = ETHERNET_LEN + ihl;
        match Icmpv4Packet::new_checked(&d[icmp_off..]) {
            Ok(p) if p.verify_checksum() => {
                if p.msg_type() != Icmpv4Message::EchoRequest {
                    return self.counters.drop(DropReason::IcmpIgnored);
                }
            }
            _ => return self.counters.drop(DropReason::IcmpMalformed),
        }
        // Echo reply in place: swap addresses, change the type, fix checksums.
        let src_mac = EthernetAddress::from_bytes(&d[6..12]);
        let d = buf.data_mut();
        self.write_eth(d, src_mac, ETHERTYPE_IPV4);
        {
            let mut ip = Ipv4Packet::new_unchecked(&mut d[ETHERNET_LEN..]);
            let (s, t) = (ip.src_addr(), ip.dst_addr());
            ip.set_src_addr(t);
            ip.set_dst_addr(s);
            ip.set_hop_limit(ipos_wire::headers::DEFAULT_TTL);
            ip.fill_checksum();
        }
        let mut icmp = Icmpv4Packet::new_unchecked(&mut d[icmp_off..]);
        icmp.set_msg_type(Icmpv4Message::EchoReply);
        icmp.fill_checksum();
        self.counters.inc(Event::IcmpEchoReplies);
        self.transmit(buf);
    }

    /// Answers a segment (straight from the wire) that has no connection with
    /// a RST, reusing its buffer (RFC 9293 section 3.10.7.1).
    pub(crate) fn send_reset(&mut self, mut buf: P::Buf) {
        let d = buf.data();
        let src_mac = EthernetAddress::from_bytes(&d[6..12]);
        let ip = Ipv4Packet::new_unchecked(&d[ETHERNET_LEN..]);
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let tcp = TcpPacket::new_unchecked(ip.payload());
        let seg_len = tcp.payload().len() as u32 + tcp.syn() as u32 + tcp.fin() as u32;
        let (seq, ack, flags) = if tcp.ack() {
            (tcp.ack_number().0 as u32, 0u32, RST)
        } else {
            (
                0,
                (tcp.seq_number().0 as u32).wrapping_add(seg_len),
                RST | ACK,
            )
        };
        let h = TcpHeader {
            src_port: tcp.dst_port(),
            dst_port: tcp.src_port(),
            seq,
            ack,
            flags,
            window: 0,
        };
        if buf
            .set_len(ETHERNET_LEN + IPV4_LEN + TCP_HEADER_LEN)
            .is_err()
        {
            return self.counters.drop(DropReason::TxNoBuffer);
        }
        let ident = self.next_ident();
        let d = buf.data_mut();
        self.write_eth(d, src_mac, ETHERTYPE_IPV4);
        let ip = Ipv4Header {
            src: dst,
            dst: src,
            protocol: IpProtocol::Tcp,
            payload_len: TCP_HEADER_LEN,
            ident,
        };
        let _ = emit_ipv4_header(&mut d[ETHERNET_LEN..], &ip);
        let t = &mut d[ETHERNET_LEN + IPV4_LEN..];
        write_header(t, &h, &TcpOptions::default());
        fill_checksum(dst, src, t);
        self.counters.inc(Event::TcpResetsSent);
        self.transmit(buf);
    }

    /// Sends a ready IPv4 reply (Ethernet header still to write) to `ip`:
    /// at once when its MAC is known, else parked until ARP resolves it.
    pub(crate) fn send_resolved(&mut self, mut buf: P::Buf, ip: Ipv4Address) {
        if let Some(mac) = self.arp.lookup(ip) {
            self.write_eth(buf.data_mut(), mac, ETHERTYPE_IPV4);
            return self.transmit(buf);
        }
        match self.arp.park(buf, ip) {
            Err(_) => self.counters.drop(DropReason::ArpWaitFull),
            Ok(true) => {}
            Ok(false) => self.send_arp_request(ip),
        }
    }

    fn send_arp_request(&mut self, ip: Ipv4Address) {
        let req = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: self.id.mac,
            source_protocol_addr: self.id.ip,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: ip,
        };
        let Some(mut b) = self.alloc_full() else {
            return;
        };
        if b.set_len(ETHERNET_LEN + req.buffer_len()).is_err() {
            return;
        }
        let d = b.data_mut();
        self.write_eth(d, EthernetAddress::BROADCAST, ETHERTYPE_ARP);
        req.emit(&mut ArpPacket::new_unchecked(&mut d[ETHERNET_LEN..]));
        self.counters.inc(Event::ArpRequestsSent);
        self.transmit(b);
    }

    /// Sends the replies that waited for `ip`'s MAC address.
    fn flush_arp_wait(&mut self, ip: Ipv4Address, mac: EthernetAddress) {
        while let Some(mut b) = self.arp.take_waiting(ip) {
            self.write_eth(b.data_mut(), mac, ETHERTYPE_IPV4);
            self.transmit(b);
        }
    }
}
