//! What any IPv4 host does: answer ARP for its addresses, answer ICMP echo,
//! reset TCP segments that belong to no connection, and resolve a MAC
//! address before answering a client that did not send to us directly (the
//! cache's rules, aging and retries are in [`crate::tables::arp`]; their
//! timers are in the node's wheel).

use super::{Node, Timer};
use crate::counters::{DropReason, Event};
use crate::port::{PacketBuf, Port};
use crate::tables::arp::{ARP_MAX_AGE, ARP_RETRY_INTERVAL};
use crate::tables::{IdleCheck, RetryCheck};
use ipos_tcp::{fill_checksum, write_header, TcpHeader, TcpOptions, ACK, RST};
use ipos_wire::headers::{ETHERNET_LEN, ETHERTYPE_ARP, ETHERTYPE_IPV4, IPV4_LEN};
use smoltcp::time::Instant;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, Icmpv4Message, Icmpv4Packet, Ipv4Address,
    Ipv4Packet, TcpPacket,
};

/// A bare TCP header: a RST carries no options.
const TCP_HEADER_LEN: usize = 20;

impl<P: Port> Node<P> {
    /// An ARP frame; `answer` is false for a copy another lane received (it
    /// learns from it, and neither answers nor counts it).
    pub(crate) fn handle_arp(&mut self, now: Instant, mut buf: P::Buf, answer: bool) {
        let repr = match ArpPacket::new_checked(&buf.data()[ETHERNET_LEN..])
            .and_then(|p| ArpRepr::parse(&p))
        {
            Ok(r) => r,
            Err(_) => return self.counters.drop(DropReason::ArpMalformed),
        };
        let ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr: mac,
            source_protocol_addr: ip,
            target_protocol_addr,
            ..
        } = repr
        else {
            return self.counters.drop(DropReason::ArpMalformed);
        };
        let request_for_us =
            operation == ArpOperation::Request && self.id.owns_ip(target_protocol_addr);
        let asked = self.arp.is_resolving(ip);
        if request_for_us || asked {
            // RFC 826's merge for a request to us; the answer we asked for.
            self.learn_arp(now, ip, mac);
            if asked {
                self.flush_arp_wait(ip, mac);
            }
        } else {
            // Refresh what we already know, like a kernel does; learn nothing new.
            self.arp.refresh(ip, mac, now);
        }
        if !answer {
            return;
        }
        if !request_for_us {
            let reply_to_us =
                operation == ArpOperation::Reply && target_protocol_addr == self.id.ip;
            return match (reply_to_us, asked) {
                (true, true) => {} // the answer to our request
                (true, false) => self.counters.drop(DropReason::ArpUnsolicited),
                (false, _) => self.counters.drop(DropReason::ArpNotForUs),
            };
        }
        // Answer in place: the request buffer becomes the reply.
        let reply = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_hardware_addr: self.id.mac,
            source_protocol_addr: target_protocol_addr,
            target_hardware_addr: mac,
            target_protocol_addr: ip,
        };
        if buf.set_len(ETHERNET_LEN + reply.buffer_len()).is_err() {
            return self.counters.drop(DropReason::ArpMalformed);
        }
        let d = buf.data_mut();
        self.write_eth(d, mac, ETHERTYPE_ARP);
        reply.emit(&mut ArpPacket::new_unchecked(&mut d[ETHERNET_LEN..]));
        self.counters.inc(Event::ArpReplies);
        self.transmit(buf);
    }

    /// Learns `ip`'s MAC within the cache's limit (a full cache keeps what
    /// it has: counted), arming a new entry's aging timer.
    fn learn_arp(&mut self, now: Instant, ip: Ipv4Address, mac: EthernetAddress) {
        match self.arp.learn(ip, mac, now) {
            Ok(Some(gen)) => self
                .timers
                .arm(now + ARP_MAX_AGE, Timer::ArpAge { ip, gen }),
            Ok(None) => {}
            Err(_) => self.counters.inc(Event::ArpCacheFull),
        }
    }

    /// The aging timer of `ip`'s ARP entry.
    pub(crate) fn on_arp_age(&mut self, now: Instant, ip: Ipv4Address, gen: u32) {
        match self.arp.check_age(ip, gen, now) {
            IdleCheck::Stale => {}
            IdleCheck::Expired => self.counters.inc(Event::ArpExpired),
            IdleCheck::Later(at) => self.timers.arm(at, Timer::ArpAge { ip, gen }),
        }
    }

    /// The retry timer of `ip`'s resolution: ask again, or free what waited.
    pub(crate) fn on_arp_retry(&mut self, now: Instant, ip: Ipv4Address, gen: u32) {
        match self.arp.retry_due(ip, gen) {
            RetryCheck::Stale => {}
            RetryCheck::Again => {
                self.send_arp_request(ip);
                self.timers
                    .arm(now + ARP_RETRY_INTERVAL, Timer::ArpRetry { ip, gen });
            }
            RetryCheck::GiveUp => {
                while let Some(b) = self.arp.take_waiting(ip) {
                    drop(b);
                    self.counters.drop(DropReason::ArpUnresolved);
                }
            }
        }
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
        let d = buf.data_mut();
        self.wrap_tcp(d, src_mac, dst, src, TCP_HEADER_LEN);
        let t = &mut d[ETHERNET_LEN + IPV4_LEN..];
        write_header(t, &h, &TcpOptions::default());
        fill_checksum(dst, src, t);
        self.counters.inc(Event::TcpResetsSent);
        self.transmit(buf);
    }

    /// Sends a ready IPv4 reply (Ethernet header still to write) to `ip`:
    /// at once when its MAC is known (and not stale), else parked until ARP
    /// resolves it (see [`crate::tables::arp`] for the retries and the limit).
    pub(crate) fn send_resolved(&mut self, now: Instant, mut buf: P::Buf, ip: Ipv4Address) {
        if let Some(mac) = self.arp.lookup(ip, now) {
            self.write_eth(buf.data_mut(), mac, ETHERTYPE_IPV4);
            return self.transmit(buf);
        }
        match self.arp.park(buf, ip) {
            Err(_) => self.counters.drop(DropReason::ArpWaitFull),
            Ok(None) => {}
            Ok(Some(gen)) => {
                self.send_arp_request(ip);
                self.timers
                    .arm(now + ARP_RETRY_INTERVAL, Timer::ArpRetry { ip, gen });
            }
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
        self.arp.end_resolution(ip);
        while let Some(mut b) = self.arp.take_waiting(ip) {
            self.write_eth(b.data_mut(), mac, ETHERTYPE_IPV4);
            self.transmit(b);
        }
    }
}
