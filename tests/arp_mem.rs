//! The ARP cache's bounds, in memory (one node, frames injected, virtual
//! time): unsolicited replies learn nothing and the cap holds, entries age
//! out and are resolved again, and replies waiting for a resolution that
//! gets no answer are freed after a bounded number of requests.
//!
//! The node is b of the test farm, owning UDP flows moved to it by a: it
//! answers their datagrams directly, so it needs the client's MAC.

mod support;

use ipos::config::FarmConfig;
use ipos::counters::{DropReason, Event};
use ipos::node::Node;
use ipos::port::mem::{MemPort, MemSwitch};
use ipos::port::PacketBuf;
use ipos::tables::arp::{ARP_CACHE_LIMIT, ARP_MAX_AGE, ARP_TRIES};
use ipos_wire::{Flow, MacAddrs};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, Ipv4Address};
use std::path::Path;
use support::{CLIENT_IP, CLIENT_MAC, IPS, MACS, VIP};

const A: usize = support::A;
const B: usize = support::B;
const ECHO: u16 = 7;

/// Node b (with the UDP echo service) and a port playing every other host.
fn node_b() -> (Node<MemPort>, MemPort) {
    let switch = MemSwitch::new(3);
    let port = switch.port(MACS[B]);
    let host = switch.port(CLIENT_MAC);
    let farm = FarmConfig::parse(&ipos::config::test_farm_toml(3), Path::new("farm.toml")).unwrap();
    let id = farm.identity("b").unwrap();
    assert_eq!(id.udp_echo_port, Some(ECHO));
    let mut opts = farm.node_options();
    opts.advert_interval = Duration::ZERO;
    (Node::new(port, id, opts), host)
}

fn arp(
    op: u16,
    dst: EthernetAddress,
    smac: EthernetAddress,
    sip: Ipv4Address,
    tip: Ipv4Address,
) -> Vec<u8> {
    let mut f = vec![0u8; 42];
    ipos_wire::emit_ethernet_header(&mut f, dst, smac, 0x0806).unwrap();
    f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, op as u8]);
    f[22..28].copy_from_slice(smac.as_bytes());
    f[28..32].copy_from_slice(&sip.octets());
    f[38..42].copy_from_slice(&tip.octets());
    f
}

fn flow(client: Ipv4Address, port: u16) -> Flow {
    Flow {
        src_addr: client,
        src_port: port,
        dst_addr: VIP,
        dst_port: ECHO,
    }
}

/// a moves the UDP flow of `client`:`port` to b.
fn move_flow_to_b(node: &mut Node<MemPort>, client: Ipv4Address, port: u16) {
    let macs = MacAddrs {
        dst: MACS[B],
        src: MACS[A],
    };
    let mut buf = [0u8; 128];
    let et = ipos_wire::DEFAULT_ETHERTYPE;
    let n = ipos_wire::emit_udp_connection(&mut buf, et, &macs, &flow(client, port), IPS[B], ECHO)
        .unwrap();
    node.port_mut().inject(&buf[..n]);
}

/// A datagram of that flow, forwarded by a in a data frame.
fn forwarded_datagram(node: &mut Node<MemPort>, client: Ipv4Address, port: u16) {
    let payload = b"ping";
    let mut d = vec![0u8; 30 + 28 + payload.len()];
    let ip = ipos_wire::Ipv4Header {
        src: client,
        dst: VIP,
        protocol: smoltcp::wire::IpProtocol::Udp,
        payload_len: 8 + payload.len(),
        ident: 1,
    };
    ipos_wire::emit_ipv4_header(&mut d[30..], &ip).unwrap();
    let u = &mut d[50..];
    u[0..2].copy_from_slice(&port.to_be_bytes());
    u[2..4].copy_from_slice(&ECHO.to_be_bytes());
    u[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u[8..].copy_from_slice(payload);
    let macs = MacAddrs {
        dst: MACS[B],
        src: MACS[A],
    };
    let n = ipos_wire::emit_data_header(&mut d, ipos_wire::DEFAULT_ETHERTYPE, &macs).unwrap();
    node.port_mut().inject(&d[..n]);
}

/// Frames the host port got: (ARP requests for `ip`, UDP echoes to `mac`).
fn seen(host: &MemPort, ip: Ipv4Address, mac: EthernetAddress) -> (usize, usize) {
    let (mut asks, mut echoes) = (0, 0);
    for f in host.take_all() {
        let d = f.data();
        if d[12..14] == [8, 6] && d[21] == 1 && d[38..42] == ip.octets() {
            asks += 1;
        } else if d[12..14] == [8, 0] && d[0..6] == *mac.as_bytes() && d[23] == 17 {
            echoes += 1;
        }
    }
    (asks, echoes)
}

#[test]
fn unsolicited_replies_learn_nothing_and_the_cap_holds() {
    let (mut node, host) = node_b();
    let mut now = Instant::from_millis(1);
    for i in 0..100u32 {
        let mac = EthernetAddress([2, 0, 0, 0, (i >> 8) as u8, i as u8]);
        let ip = Ipv4Address::from(0xc613_0000 + i);
        node.port_mut().inject(&arp(2, MACS[B], mac, ip, IPS[B]));
    }
    while node.poll(now) > 0 {}
    assert_eq!(node.arp_cache_count(), 0, "unsolicited replies learned");
    assert_eq!(node.counters().dropped(DropReason::ArpUnsolicited), 100);
    // Requests for our address are learned, up to the cap.
    let n = ARP_CACHE_LIMIT as u32 + 100;
    for i in 0..n {
        let mac = EthernetAddress([2, 1, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
        let ip = Ipv4Address::from(0xc613_0000 + i);
        node.port_mut()
            .inject(&arp(1, EthernetAddress::BROADCAST, mac, ip, IPS[B]));
        if i % 32 == 31 {
            node.poll(now);
            now += Duration::from_millis(1);
        }
    }
    while node.poll(now) > 0 {}
    assert_eq!(node.arp_cache_count(), ARP_CACHE_LIMIT);
    assert_eq!(node.counters().get(Event::ArpCacheFull), 100);
    assert_eq!(
        node.counters().get(Event::ArpReplies),
        u64::from(n),
        "all answered"
    );
    assert_eq!(host.take_all().len(), n as usize);
    // Every entry ages out, a timer budget per poll (re-placing the wheel's
    // slots counts too): within a few polls, not at once.
    let mut polls = 0;
    while node.arp_cache_count() > 0 && polls < 64 {
        polls += 1;
        node.poll(now + ARP_MAX_AGE + Duration::from_millis(100 * polls));
    }
    assert_eq!(node.arp_cache_count(), 0, "after {polls} polls");
    assert!(
        polls > 1,
        "4096 entries aged in one poll: the budget did not hold"
    );
    assert_eq!(
        node.counters().get(Event::ArpExpired),
        ARP_CACHE_LIMIT as u64
    );
}

#[test]
fn entries_age_and_are_resolved_again() {
    let (mut node, host) = node_b();
    let t0 = Instant::from_millis(10);
    // The client asks for b: b learns it (and answers).
    node.port_mut().inject(&arp(
        1,
        EthernetAddress::BROADCAST,
        CLIENT_MAC,
        CLIENT_IP,
        IPS[B],
    ));
    move_flow_to_b(&mut node, CLIENT_IP, 40000);
    forwarded_datagram(&mut node, CLIENT_IP, 40000);
    node.poll(t0);
    assert_eq!(node.arp_cache_count(), 1);
    assert_eq!(
        seen(&host, CLIENT_IP, CLIENT_MAC),
        (0, 1),
        "echoed at once, no ARP request"
    );
    // Heard again at t0 + 200 s: the entry lives until t0 + 500 s.
    let t1 = t0 + Duration::from_secs(200);
    node.port_mut().inject(&arp(
        1,
        EthernetAddress::BROADCAST,
        CLIENT_MAC,
        CLIENT_IP,
        IPS[B],
    ));
    node.poll(t1);
    let _ = host.take_all();
    node.poll(t0 + ARP_MAX_AGE + Duration::from_secs(1));
    assert_eq!(node.arp_cache_count(), 1, "refreshed when heard");
    assert_eq!(node.counters().get(Event::ArpExpired), 0);
    let t2 = t1 + ARP_MAX_AGE;
    node.poll(t2);
    assert_eq!(node.arp_cache_count(), 0, "not heard for ARP_MAX_AGE");
    assert_eq!(node.counters().get(Event::ArpExpired), 1);
    // The next echo waits for a new resolution.
    move_flow_to_b(&mut node, CLIENT_IP, 40001);
    forwarded_datagram(&mut node, CLIENT_IP, 40001);
    node.poll(t2);
    assert_eq!(seen(&host, CLIENT_IP, CLIENT_MAC), (1, 0), "resolved again");
    assert_eq!(node.arp_wait_count(), 1);
    // The client answers: the echo goes out, nothing waits.
    node.port_mut()
        .inject(&arp(2, MACS[B], CLIENT_MAC, CLIENT_IP, IPS[B]));
    node.poll(t2 + Duration::from_millis(1));
    assert_eq!(seen(&host, CLIENT_IP, CLIENT_MAC), (0, 1));
    assert_eq!(node.arp_wait_count(), 0);
    assert_eq!(node.arp_cache_count(), 1);
    assert_eq!(node.counters().dropped(DropReason::ArpUnsolicited), 0);
    assert_eq!(node.counters().get(Event::ArpRequestsSent), 1);
}

#[test]
fn waiting_replies_expire_after_bounded_retries() {
    let (mut node, host) = node_b();
    let silent = Ipv4Address::new(198, 18, 0, 77);
    let t0 = Instant::from_millis(10);
    for port in [41000u16, 41001, 41002] {
        move_flow_to_b(&mut node, silent, port);
        forwarded_datagram(&mut node, silent, port);
    }
    node.poll(t0);
    assert_eq!(node.arp_wait_count(), 3);
    let mut asks = seen(&host, silent, CLIENT_MAC).0;
    assert_eq!(asks, 1, "one request for three waiting replies");
    // Ask every second, ARP_TRIES requests in all; free the replies after.
    for s in 1..=10u64 {
        node.poll(t0 + Duration::from_millis(s * 500));
        asks += seen(&host, silent, CLIENT_MAC).0;
        if s * 500 < 3000 {
            assert_eq!(node.arp_wait_count(), 3, "at {} ms", s * 500);
        }
    }
    assert_eq!(asks, ARP_TRIES as usize);
    assert_eq!(
        node.counters().get(Event::ArpRequestsSent),
        u64::from(ARP_TRIES)
    );
    assert_eq!(node.arp_wait_count(), 0);
    assert_eq!(node.counters().dropped(DropReason::ArpUnresolved), 3);
    // A late answer is unsolicited now, and learns nothing.
    let late = EthernetAddress([2, 0, 0, 0, 0, 0x77]);
    node.port_mut()
        .inject(&arp(2, MACS[B], late, silent, IPS[B]));
    node.poll(t0 + Duration::from_secs(6));
    assert_eq!(node.arp_cache_count(), 0);
    assert_eq!(node.counters().dropped(DropReason::ArpUnsolicited), 1);
}
