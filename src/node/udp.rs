//! Client UDP: the echo service on `udp_echo_port`, and the flow table that
//! says whether a datagram is echoed here, held while its flow moves, or
//! forwarded to the flow's owner (the moves themselves are in
//! [`crate::migration::udp`]).

use super::{Node, Via};
use crate::counters::{DropReason, Event};
use crate::migration::udp::UdpFlow;
use crate::port::{PacketBuf, Port};
use crate::tables::{ForwardEntry, ForwardKey};
use ipos_wire::headers::{ETHERNET_LEN, ETHERTYPE_IPV4};
use ipos_wire::{Flow, DATA_HEADROOM};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, IpAddress, Ipv4Packet, UdpPacket};

/// Source ports below this belong to servers, not clients: never echoed.
const FIRST_CLIENT_PORT: u16 = 1024;

impl<P: Port> Node<P> {
    /// A client UDP datagram, from the wire or out of an ipOS data frame.
    pub(crate) fn handle_udp(&mut self, now: Instant, buf: P::Buf, via: Via) {
        let off = via.offset();
        let flow = {
            let ip = Ipv4Packet::new_unchecked(&buf.data()[off..]);
            let (src, dst) = (ip.src_addr(), ip.dst_addr());
            let udp = match UdpPacket::new_checked(ip.payload()) {
                Ok(u) => u,
                Err(_) => return self.counters.drop(DropReason::UdpMalformed),
            };
            if Some(udp.dst_port()) != self.id.udp_echo_port {
                return self.counters.drop(DropReason::UdpNoService);
            }
            if udp.checksum() != 0
                && !udp.verify_checksum(&IpAddress::Ipv4(src), &IpAddress::Ipv4(dst))
            {
                return self.counters.drop(DropReason::UdpMalformed);
            }
            Flow {
                src_addr: src,
                src_port: udp.src_port(),
                dst_addr: dst,
                dst_port: udp.dst_port(),
            }
        };
        if flow.src_port < FIRST_CLIENT_PORT {
            // Echo, chargen, DNS and other services send from these ports: an
            // echo of theirs would be answered again, forever.
            return self.counters.drop(DropReason::UdpServerSource);
        }
        let key = ForwardKey::of(&flow);
        if let Some((_, UdpFlow::Forwarded { target, .. })) = self.udp_flows.get(&key) {
            if self.peers.is_down(*target) {
                // Its owner went down: the datagram starts a new flow.
                self.udp_flows.remove(&key);
                self.counters.inc(Event::ForwardTargetDown);
            }
        }
        let hold_limit = self.opts.hold_limit;
        let budget_full = self.held >= self.opts.max_held;
        match self.udp_flows.get_mut(&key).map(|(_, f)| f) {
            Some(UdpFlow::Forwarded { target, last }) => {
                *last = now;
                let p = self.peers.addr(*target);
                let entry = ForwardEntry {
                    target_ip: p.ip,
                    target_port: flow.dst_port,
                    target_mac: p.mac,
                    target_epoch: self.peers.epoch(*target),
                    last_used: now,
                };
                return self.forward_packet(buf, off, &entry, Event::UdpForwarded);
            }
            Some(UdpFlow::Moving(m)) => {
                m.last = now;
                if m.held.len() >= hold_limit {
                    self.counters.drop(DropReason::MigrationHoldFull);
                } else if budget_full {
                    self.counters.drop(DropReason::HoldBudgetFull);
                } else {
                    m.held.push((buf, via));
                    self.held += 1;
                    self.counters.inc(Event::UdpHeld);
                }
                return;
            }
            Some(UdpFlow::Local { last }) | Some(UdpFlow::Owned { last }) => {
                *last = now;
                return self.echo_udp(now, buf, via);
            }
            None => {}
        }
        if let Via::Tunnel { .. } = via {
            return self.counters.drop(DropReason::ForwardNoTarget);
        }
        if self.udp_flows.is_full() {
            return self.counters.drop(DropReason::UdpTableFull);
        }
        // A new flow: to the VIP, the policy may place it elsewhere.
        match self.place_udp_flow(now, &flow) {
            None => {
                self.counters.inc(Event::DecisionLocal);
                self.add_udp_flow(now, key, UdpFlow::Local { last: now });
                self.echo_udp(now, buf, via);
            }
            Some(target) => self.start_udp_move(now, flow, target, buf, via),
        }
    }

    /// Echoes a datagram back to its client, in the same buffer. A datagram
    /// that came in a data frame is answered directly, from the address the
    /// client sent it to (the VIP), to the client's MAC as ARP resolves it.
    pub(crate) fn echo_udp(&mut self, now: Instant, mut buf: P::Buf, via: Via) {
        if !self.udp_echo_budget.take(now) {
            return self.counters.drop(DropReason::UdpRateLimited);
        }
        let peer_mac = match via {
            Via::Wire => Some(EthernetAddress::from_bytes(&buf.data()[6..12])),
            Via::Tunnel { .. } => {
                if buf.adj(DATA_HEADROOM - ETHERNET_LEN).is_err() {
                    return self.counters.drop(DropReason::UdpMalformed);
                }
                None
            }
        };
        let ident = self.next_ident();
        let client = {
            let d = buf.data_mut();
            let mut ip = Ipv4Packet::new_unchecked(&mut d[ETHERNET_LEN..]);
            let (s, t) = (ip.src_addr(), ip.dst_addr());
            ip.set_src_addr(t);
            ip.set_dst_addr(s);
            ip.set_hop_limit(ipos_wire::headers::DEFAULT_TTL);
            ip.set_ident(ident);
            ip.fill_checksum();
            let ihl = ip.header_len() as usize;
            let mut udp = UdpPacket::new_unchecked(&mut d[ETHERNET_LEN + ihl..]);
            let (sp, dp) = (udp.src_port(), udp.dst_port());
            udp.set_src_port(dp);
            udp.set_dst_port(sp);
            udp.fill_checksum(&IpAddress::Ipv4(t), &IpAddress::Ipv4(s));
            s
        };
        self.counters.inc(Event::UdpEchoed);
        match peer_mac.filter(|m| m.is_unicast()) {
            Some(m) => {
                self.write_eth(buf.data_mut(), m, ETHERTYPE_IPV4);
                self.transmit(buf);
            }
            None => self.send_resolved(now, buf, client),
        }
    }
}
