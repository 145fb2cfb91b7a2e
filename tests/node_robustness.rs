//! Hostile frames. Each crafted invalid frame, of every kind the node
//! understands, is dropped under its own reason and nothing else (counter by
//! counter, and every reason that a single frame can provoke is covered).
//! Tens of thousands of malformed, truncated, spoofed and unexpected frames
//! (mutations of valid ones) never panic a node, leave no table entry, held
//! packet or waiting reply behind once its timers have run, and the node
//! still answers.

use ipos::config::{test_farm_toml, FarmConfig};
use ipos::counters::{DropReason, Event};
use ipos::node::{Node, NodeOptions};
use ipos::port::mem::MemSwitch;
use ipos::port::PacketBuf;
use ipos_wire::{ExtensionKind, Flow, MacAddrs, Protocol};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, Ipv4Address};
use std::path::Path;

const A_MAC: EthernetAddress = EthernetAddress([2, 0, 0xc6, 0x12, 0, 0x0b]);
const B_MAC: EthernetAddress = EthernetAddress([2, 0, 0xc6, 0x12, 0, 0x0c]);
const CLIENT_MAC: EthernetAddress = EthernetAddress([2, 0, 0xc6, 0x12, 0, 0x01]);
const A_IP: Ipv4Address = Ipv4Address::new(198, 18, 0, 11);
const B_IP: Ipv4Address = Ipv4Address::new(198, 18, 0, 12);
const CLIENT_IP: Ipv4Address = Ipv4Address::new(198, 18, 0, 1);
const VIP: Ipv4Address = Ipv4Address::new(198, 18, 0, 100);

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn eth(dst: EthernetAddress, src: EthernetAddress, ty: u16, body: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14 + body.len()];
    ipos_wire::emit_ethernet_header(&mut f, dst, src, ty).expect("room");
    f[14..].copy_from_slice(body);
    f
}

fn ipv4(src: Ipv4Address, dst: Ipv4Address, proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 20 + payload.len()];
    let h = ipos_wire::Ipv4Header {
        src,
        dst,
        protocol: proto.into(),
        payload_len: payload.len(),
        ident: 0,
    };
    ipos_wire::emit_ipv4_header(&mut p, &h).expect("room");
    p[20..].copy_from_slice(payload);
    p
}

fn tcp_seg(
    src: Ipv4Address,
    dst: Ipv4Address,
    sport: u16,
    dport: u16,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut t = vec![0u8; 20 + payload.len()];
    let h = ipos_tcp::TcpHeader {
        src_port: sport,
        dst_port: dport,
        seq: 1000,
        ack: 0,
        flags,
        window: 65535,
    };
    ipos_tcp::write_header(&mut t, &h, &ipos_tcp::TcpOptions::default());
    t[20..].copy_from_slice(payload);
    ipos_tcp::fill_checksum(src, dst, &mut t);
    ipv4(src, dst, 6, &t)
}

fn templates() -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    // ARP request for a.
    let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1];
    arp.extend_from_slice(CLIENT_MAC.as_bytes());
    arp.extend_from_slice(&CLIENT_IP.octets());
    arp.extend_from_slice(&[0; 6]);
    arp.extend_from_slice(&A_IP.octets());
    v.push(eth(EthernetAddress::BROADCAST, CLIENT_MAC, 0x0806, &arp));
    // ICMP echo request.
    let mut icmp = vec![8, 0, 0, 0, 0, 1, 0, 1, 1, 2, 3, 4];
    let c = ipos_wire::checksum::checksum(&[&icmp]);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    v.push(eth(
        A_MAC,
        CLIENT_MAC,
        0x0800,
        &ipv4(CLIENT_IP, A_IP, 1, &icmp),
    ));
    // TCP SYN to the VIP, data without a connection, UDP echo.
    v.push(eth(
        A_MAC,
        CLIENT_MAC,
        0x0800,
        &tcp_seg(CLIENT_IP, VIP, 40000, 80, 0x02, b""),
    ));
    v.push(eth(
        A_MAC,
        CLIENT_MAC,
        0x0800,
        &tcp_seg(CLIENT_IP, VIP, 40001, 80, 0x18, b"GET / HTTP/1.1\r\n\r\n"),
    ));
    let udp = [0x9c, 0x40, 0, 7, 0, 12, 0, 0, 1, 2, 3, 4];
    v.push(eth(
        A_MAC,
        CLIENT_MAC,
        0x0800,
        &ipv4(CLIENT_IP, VIP, 17, &udp),
    ));
    // Every ipOS kind, from peer b (a farm node) and from the client (spoofed).
    let flow = Flow {
        src_addr: CLIENT_IP,
        src_port: 40002,
        dst_addr: VIP,
        dst_port: 80,
    };
    let now = Instant::from_millis(0);
    let mut tcb =
        ipos_tcp::Endpoint::connect(&ipos_tcp::Config::default(), flow, 7, now).export(now);
    tcb.link_addr = CLIENT_MAC.0;
    let tcb = tcb.to_bytes();
    for src in [B_MAC, CLIENT_MAC] {
        let macs = MacAddrs { dst: A_MAC, src };
        let mut buf = [0u8; 1600];
        let et = ipos_wire::DEFAULT_ETHERTYPE;
        let n = ipos_wire::emit_tcp_connection(&mut buf, et, &macs, &flow, A_IP, 80, &tcb).unwrap();
        v.push(buf[..n].to_vec());
        let n = ipos_wire::emit_udp_connection(&mut buf, et, &macs, &flow, A_IP, 7).unwrap();
        v.push(buf[..n].to_vec());
        let n = ipos_wire::emit_ack(&mut buf, et, &macs, &flow, Protocol::Tcp).unwrap();
        v.push(buf[..n].to_vec());
        let n = ipos_wire::emit_ack(&mut buf, et, &macs, &flow, Protocol::Udp).unwrap();
        v.push(buf[..n].to_vec());
        let n = ipos_wire::emit_extension(
            &mut buf,
            et,
            &macs,
            &flow,
            ExtensionKind::ConnectionNotice,
            Protocol::Tcp,
            &[198, 18, 0, 12, 0, 80],
        )
        .unwrap();
        v.push(buf[..n].to_vec());
        let mut advert = ipos_policy::AdvertRepr::new(B_IP, 1);
        advert.established = 3;
        let mut body = [0u8; 300];
        let bl = advert.emit(&mut body).unwrap();
        let n = ipos_wire::emit_extension(
            &mut buf,
            et,
            &macs,
            &flow,
            ExtensionKind::ServerState,
            Protocol::Tcp,
            &body[..bl],
        )
        .unwrap();
        v.push(buf[..n].to_vec());
        let inner = tcp_seg(CLIENT_IP, VIP, 40002, 80, 0x18, b"GET /b/ HTTP/1.1\r\n\r\n");
        let mut d = vec![0u8; 30];
        d.extend_from_slice(&inner);
        let n = ipos_wire::emit_data_header(&mut d, et, &macs).unwrap();
        v.push(d[..n].to_vec());
    }
    v
}

fn mutate(rng: &mut Rng, t: &[u8]) -> Vec<u8> {
    let mut f = t.to_vec();
    match rng.below(6) {
        0 => f.truncate(rng.below(f.len() + 1)),
        1 => {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(f.len());
                f[i] ^= 1 << rng.below(8);
            }
        }
        2 => {
            // Corrupt a header field but keep checksums consistent-looking garbage.
            let i = 14 + rng.below(f.len().saturating_sub(14).max(1));
            if i < f.len() {
                f[i] = rng.next() as u8;
            }
        }
        3 => f.extend((0..rng.below(64)).map(|_| rng.next() as u8)),
        4 => f = (0..rng.below(200)).map(|_| rng.next() as u8).collect(),
        _ => {} // unchanged: valid but possibly unexpected
    }
    f
}

#[test]
fn random_and_mutated_frames_never_break_a_node() {
    let switch = MemSwitch::new(1);
    let port = switch.port(A_MAC);
    let client = switch.port(CLIENT_MAC);
    let farm = FarmConfig::parse(&test_farm_toml(2), Path::new("test-farm.toml")).unwrap();
    let id = farm.identity("a").unwrap();
    assert_eq!(id.udp_echo_port, Some(7));
    let opts = NodeOptions {
        max_connections: 256,
        ..farm.node_options()
    };
    let mut node = Node::new(port, id, opts);
    let templates = templates();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut now = Instant::from_millis(1);
    let mut injected = 0u64;
    for round in 0..2000 {
        for _ in 0..16 {
            let t = &templates[rng.below(templates.len())];
            let f = mutate(&mut rng, t);
            if f.len() > 1900 {
                continue;
            }
            node.port_mut().inject(&f);
            injected += 1;
        }
        node.poll(now);
        now += Duration::from_millis(if round % 50 == 0 { 500 } else { 1 });
        let _ = client.take_all();
    }
    let c = node.counters();
    assert!(c.total_drops() > injected / 4, "drops: {}", c.summary());
    // The storm reached the roles that keep state: connections, moves in,
    // farm members heard.
    for e in [
        Event::TcpAccepted,
        Event::MigrationsReceived,
        Event::AdvertsReceived,
    ] {
        assert!(c.get(e) > 0, "{}: {}", e.label(), c.summary());
    }
    // Let every timer run out: the longest is a forward entry's idle time-out
    // (15 min + 60 s), and entries towards b go as soon as b, heard only in
    // the storm's adverts, is down.
    for _ in 0..1100 {
        node.poll(now);
        now += Duration::from_secs(1);
        let _ = client.take_all();
    }
    let c = node.counters();
    let tables = [
        ("connections", node.connection_count()),
        ("forward", node.forward_count()),
        ("pending moves", node.pending_count()),
        ("UDP flows", node.udp_flow_count()),
        ("held packets", node.held_count()),
        ("ARP wait", node.arp_wait_count()),
    ];
    for (name, n) in tables {
        assert_eq!(n, 0, "{name} left after the timers: {}", c.summary());
    }
    assert!(node.peer_is_down(B_IP), "b never advertised again");
    // Still alive and answering: a clean echo request gets its reply.
    let echo = &templates[1];
    node.port_mut().inject(echo);
    node.poll(now);
    let replies = client.take_all();
    assert!(
        replies
            .iter()
            .any(|f| f.data().len() > 34 && f.data()[12..14] == [8, 0] && f.data()[34] == 0),
        "no echo reply after the storm"
    );
}

/// Sets the IPv4 header checksum of the packet at `off` afresh.
fn fix_ipv4_checksum(f: &mut [u8], off: usize) {
    f[off + 10..off + 12].copy_from_slice(&[0, 0]);
    let c = ipos_wire::checksum::checksum(&[&f[off..off + 20]]);
    f[off + 10..off + 12].copy_from_slice(&c.to_be_bytes());
}

/// An ipOS frame from `src` built by `emit`.
fn ipos_frame(
    src: EthernetAddress,
    emit: impl FnOnce(&mut [u8], u16, &MacAddrs) -> ipos_wire::Result<usize>,
) -> Vec<u8> {
    let mut buf = [0u8; 1600];
    let macs = MacAddrs { dst: A_MAC, src };
    let n = emit(&mut buf, ipos_wire::DEFAULT_ETHERTYPE, &macs).expect("emit");
    buf[..n].to_vec()
}

/// A TCP data frame from b carrying `inner` (a client IPv4/TCP packet).
fn data_frame(inner: &[u8]) -> Vec<u8> {
    let mut d = vec![0u8; 30];
    d.extend_from_slice(inner);
    let macs = MacAddrs {
        dst: A_MAC,
        src: B_MAC,
    };
    let n = ipos_wire::emit_data_header(&mut d, ipos_wire::DEFAULT_ETHERTYPE, &macs).unwrap();
    d.truncate(n);
    d
}

fn flow(port: u16) -> Flow {
    Flow {
        src_addr: CLIENT_IP,
        src_port: port,
        dst_addr: VIP,
        dst_port: 80,
    }
}

/// An exported TCB of a client connection on `port`, carrying `carried` bytes.
fn tcb(port: u16, carried: u32) -> [u8; ipos_wire::TCB_LEN] {
    let now = Instant::from_millis(0);
    let mut t =
        ipos_tcp::Endpoint::connect(&ipos_tcp::Config::default(), flow(port), 7, now).export(now);
    t.rcv_data_len = carried;
    // The node-owned field a front fills in: the client's MAC (a TCB without one is refused).
    t.link_addr = CLIENT_MAC.0;
    t.to_bytes()
}

/// Reasons no single frame on a fresh node can provoke: they need a state
/// (a full table, a move in progress, a closed connection, an exhausted
/// budget or buffer pool) and are tested where that state is built
/// (`tests/node_bounds.rs`, `tests/migration_mem.rs`, `tests/arp_mem.rs`).
const NEED_STATE: &[DropReason] = &[
    // A draining node: tests/drain_mem.rs.
    DropReason::Draining,
    // A node on several lanes whose other lane does not poll: tests/lanes_mem.rs.
    DropReason::LaneRingFull,
    DropReason::TcpAfterClose,
    DropReason::TcpRejected,
    DropReason::TcpTableFull,
    DropReason::UdpRateLimited,
    DropReason::UdpTableFull,
    DropReason::ArpWaitFull,
    DropReason::ArpUnresolved,
    DropReason::TxNoBuffer,
    DropReason::MigrationHoldFull,
    DropReason::HoldBudgetFull,
    DropReason::PendingFull,
    DropReason::TunnelTooBig,
    // Cookies sent a moment ago, after the SYN budget filled (tests/syn_flood_mem.rs).
    DropReason::TcpBadCookie,
    // A forward entry or an import awaiting its commit (tests/farm_auth.rs).
    DropReason::NoticeNotOwner,
    // A forward entry (below: `loops_between_two_nodes_are_cut_and_bounded`).
    DropReason::ForwardLoop,
    DropReason::ForwardTtlExpired,
    DropReason::RecommitRate,
    // A node with a farm key (tests/farm_auth.rs): this one has none.
    DropReason::AuthNoTrailer,
    DropReason::AuthWrongMode,
    DropReason::AuthUnknownKey,
    DropReason::AuthBadTag,
    DropReason::AuthReplayed,
    DropReason::AuthOldEpoch,
];

/// Every crafted invalid frame, with the one reason it must be dropped for.
/// A case is a list of frames: all but the last are valid set-up.
fn crafted() -> Vec<(&'static str, Vec<Vec<u8>>, DropReason)> {
    let t = templates();
    let (arp_req, icmp, syn, _data, udp) = (&t[0], &t[1], &t[2], &t[3], &t[4]);
    let mut v: Vec<(&'static str, Vec<Vec<u8>>, DropReason)> = Vec::new();
    let mut case = |name, frames: Vec<Vec<u8>>, r| v.push((name, frames, r));
    let other = Ipv4Address::new(198, 18, 0, 99);

    case("runt", vec![vec![0u8; 10]], DropReason::EthTruncated);
    let mut f = icmp.clone();
    f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 0x99]);
    case("unicast to another MAC", vec![f], DropReason::OtherMac);
    case(
        "IPv6",
        vec![eth(A_MAC, CLIENT_MAC, 0x86dd, &[0x60; 40])],
        DropReason::UnknownEthertype,
    );
    let mut f = arp_req.clone();
    f[15] = 6; // hardware type 6
    case("ARP, not Ethernet", vec![f], DropReason::ArpMalformed);
    case(
        "ARP, cut",
        vec![arp_req[..30].to_vec()],
        DropReason::ArpMalformed,
    );
    let mut f = arp_req.clone();
    f[38..42].copy_from_slice(&other.octets());
    case(
        "ARP request for another address",
        vec![f],
        DropReason::ArpNotForUs,
    );
    let mut f = arp_req.clone();
    f[0..6].copy_from_slice(A_MAC.as_bytes());
    f[21] = 2; // a reply nobody asked for
    case("unsolicited ARP reply", vec![f], DropReason::ArpUnsolicited);
    let mut f = icmp.clone();
    f[14] = 0x65; // version 6 in an IPv4 frame
    fix_ipv4_checksum(&mut f, 14);
    case("IPv4 version 6", vec![f], DropReason::Ipv4Malformed);
    let mut f = icmp.clone();
    f[16..18].copy_from_slice(&1000u16.to_be_bytes());
    fix_ipv4_checksum(&mut f, 14);
    case(
        "IPv4 longer than the frame",
        vec![f],
        DropReason::Ipv4Malformed,
    );
    let mut f = icmp.clone();
    f[24] ^= 0xff;
    case("IPv4 checksum", vec![f], DropReason::Ipv4BadChecksum);
    let mut f = icmp.clone();
    f[20] = 0x20; // more fragments
    fix_ipv4_checksum(&mut f, 14);
    case("IPv4 fragment", vec![f], DropReason::Ipv4Fragment);
    let mut f = icmp.clone();
    f[30..34].copy_from_slice(&other.octets());
    fix_ipv4_checksum(&mut f, 14);
    case("IPv4 to another address", vec![f], DropReason::Ipv4NotForUs);
    let mut f = icmp.clone();
    f[23] = 47;
    fix_ipv4_checksum(&mut f, 14);
    case("GRE", vec![f], DropReason::Ipv4OtherProtocol);
    let mut f = icmp.clone();
    f[36] ^= 0xff;
    case("ICMP checksum", vec![f], DropReason::IcmpMalformed);
    let mut f = icmp.clone();
    f[34] = 13; // timestamp request
    f[36..38].copy_from_slice(&[0, 0]);
    let c = ipos_wire::checksum::checksum(&[&f[34..]]);
    f[36..38].copy_from_slice(&c.to_be_bytes());
    case("ICMP timestamp", vec![f], DropReason::IcmpIgnored);
    let mut f = udp.clone();
    f[40..42].copy_from_slice(&[0x12, 0x34]);
    case("UDP checksum", vec![f], DropReason::UdpMalformed);
    let mut f = udp.clone();
    f[36..38].copy_from_slice(&9u16.to_be_bytes());
    case(
        "UDP to a port without service",
        vec![f],
        DropReason::UdpNoService,
    );
    let mut f = udp.clone();
    f[34..36].copy_from_slice(&53u16.to_be_bytes());
    case(
        "UDP from a server port",
        vec![f],
        DropReason::UdpServerSource,
    );
    let mut f = syn.clone();
    f[46] = 0xf0; // data offset 60 in a 20-byte segment
    case(
        "TCP header longer than the segment",
        vec![f],
        DropReason::TcpMalformed,
    );
    let mut f = syn.clone();
    f[50] ^= 0xff;
    case("TCP checksum", vec![f], DropReason::TcpBadChecksum);
    let f = eth(
        A_MAC,
        CLIENT_MAC,
        0x0800,
        &tcp_seg(CLIENT_IP, VIP, 40010, 81, 0x02, b""),
    );
    case(
        "SYN to a port not served",
        vec![f],
        DropReason::TcpNoListener,
    );
    let f = eth(
        A_MAC,
        CLIENT_MAC,
        0x0800,
        &tcp_seg(CLIENT_IP, VIP, 40011, 80, 0x10, b""),
    );
    case(
        "ACK without a connection",
        vec![f],
        DropReason::TcpNoConnection,
    );

    let ack = ipos_frame(B_MAC, |b, et, m| {
        ipos_wire::emit_ack(b, et, m, &flow(40020), Protocol::Tcp)
    });
    case(
        "ipOS, cut",
        vec![ack[..20].to_vec()],
        DropReason::IposTruncated,
    );
    let mut f = ack.clone();
    f[28] ^= 0xff;
    case("ipOS checksum", vec![f], DropReason::IposBadChecksum);
    let mut f = ack.clone();
    f[26] = 0x07;
    case("ipOS type 7", vec![f], DropReason::IposUnknownType);
    let mut f = ack.clone();
    f[27] = 0x09;
    case("ipOS protocol 9", vec![f], DropReason::IposUnknownProtocol);
    let mut spoofed = ack.clone();
    spoofed[6..12].copy_from_slice(CLIENT_MAC.as_bytes());
    case(
        "ipOS from no farm member",
        vec![spoofed],
        DropReason::IposUnknownSender,
    );
    let inner = tcp_seg(CLIENT_IP, VIP, 40021, 80, 0x10, b"x");
    let mut f = data_frame(&inner);
    f[30 + 8] = 9; // TTL: the inner IPv4 checksum no longer holds
    case(
        "data frame, inner IPv4 checksum",
        vec![f],
        DropReason::IposBadInner,
    );
    let f = data_frame(&inner);
    case(
        "data frame cut inside its packet",
        vec![f[..f.len() - 1].to_vec()],
        DropReason::IposBadLength,
    );
    case(
        "data frame for no known flow",
        vec![data_frame(&inner)],
        DropReason::ForwardNoTarget,
    );
    let c_ip = Ipv4Address::new(198, 18, 0, 13);
    let f = ipos_frame(B_MAC, |b, et, m| {
        ipos_wire::emit_tcp_connection(b, et, m, &flow(40022), c_ip, 80, &tcb(40022, 0))
    });
    case(
        "connection packet for another node",
        vec![f],
        DropReason::IposUnexpected,
    );
    let mut other_port = flow(40025);
    other_port.dst_port = 81;
    let f = ipos_frame(B_MAC, |b, et, m| {
        ipos_wire::emit_tcp_connection(b, et, m, &other_port, A_IP, 81, &tcb(40025, 0))
    });
    case(
        "connection packet for a port the farm does not serve",
        vec![f],
        DropReason::ConnNotOurService,
    );
    let mut other_ip = flow(40026);
    other_ip.dst_addr = Ipv4Address::new(198, 18, 0, 50);
    let f = ipos_frame(B_MAC, |b, et, m| {
        ipos_wire::emit_tcp_connection(b, et, m, &other_ip, A_IP, 80, &tcb(40026, 0))
    });
    case(
        "connection packet for an address that is not the VIP",
        vec![f],
        DropReason::ConnNotOurService,
    );
    let mut bcast = ipos_tcp::Tcb::parse(&tcb(40027, 0)).unwrap();
    bcast.link_addr = [0xff; 6];
    let bcast = bcast.to_bytes();
    let f = ipos_frame(B_MAC, |b, et, m| {
        ipos_wire::emit_tcp_connection(b, et, m, &flow(40027), A_IP, 80, &bcast)
    });
    case(
        "connection packet whose client MAC is broadcast",
        vec![f],
        DropReason::IposBadTcb,
    );
    let f = ipos_frame(B_MAC, |b, et, m| {
        ipos_wire::emit_tcp_connection(b, et, m, &flow(40023), A_IP, 80, &[0u8; 140])
    });
    case(
        "connection packet, TCB of zeros",
        vec![f],
        DropReason::IposBadTcb,
    );
    // A move announcing a 30-byte service-state record, then one of 10.
    let mut svc = ipos_tcp::Tcb::parse(&tcb(40028, 0)).unwrap();
    svc.service_len = 30;
    let svc = svc.to_bytes();
    let open = ipos_frame(B_MAC, |b, et, m| {
        ipos_wire::emit_tcp_connection(b, et, m, &flow(40028), A_IP, 80, &svc)
    });
    let record = ipos_frame(B_MAC, |b, et, m| {
        ipos_wire::emit_extension(
            b,
            et,
            m,
            &flow(40028),
            ExtensionKind::ServiceState,
            Protocol::Tcp,
            &[1u8; 10],
        )
    });
    case(
        "service-state record of another length than its TCB announced",
        vec![open, record],
        DropReason::ServiceStateMalformed,
    );
    // A move carrying 100 bytes, then a chunk at the wrong offset.
    let open = ipos_frame(B_MAC, |b, et, m| {
        ipos_wire::emit_tcp_connection(b, et, m, &flow(40024), A_IP, 80, &tcb(40024, 100))
    });
    let chunk = data_frame(&tcp_seg(CLIENT_IP, VIP, 40024, 80, 0x18, &[7u8; 50]));
    case(
        "carried chunk out of range",
        vec![open, chunk],
        DropReason::BadChunk,
    );
    let ext = |kind, body: &[u8]| {
        let body = body.to_vec();
        ipos_frame(B_MAC, move |b, et, m| {
            ipos_wire::emit_extension(b, et, m, &flow(40025), kind, Protocol::Tcp, &body)
        })
    };
    let mut bad = [0u8; 28];
    bad[0] = 2; // version 2
    case(
        "advert of another version",
        vec![ext(ExtensionKind::ServerState, &bad)],
        DropReason::AdvertMalformed,
    );
    let mut body = [0u8; 300];
    let n = ipos_policy::AdvertRepr::new(A_IP, 1)
        .emit(&mut body)
        .unwrap();
    case(
        "advert naming this node",
        vec![ext(ExtensionKind::ServerState, &body[..n])],
        DropReason::IposUnexpected,
    );
    case(
        "notice, cut",
        vec![ext(ExtensionKind::ConnectionNotice, &[198, 18, 0, 12])],
        DropReason::NoticeMalformed,
    );
    v
}

#[test]
fn every_crafted_invalid_frame_is_dropped_for_its_reason() {
    let farm = FarmConfig::parse(&test_farm_toml(3), Path::new("test-farm.toml")).unwrap();
    let mut covered = Vec::new();
    for (name, frames, reason) in crafted() {
        let switch = MemSwitch::new(1);
        let mut node = Node::new(
            switch.port(A_MAC),
            farm.identity("a").unwrap(),
            farm.node_options(),
        );
        let _peer = switch.port(CLIENT_MAC);
        let now = Instant::from_millis(1);
        let (last, setup) = frames.split_last().expect("a frame");
        for f in setup {
            node.port_mut().inject(f);
            node.poll(now);
        }
        assert_eq!(
            node.counters().total_drops(),
            0,
            "{name}: set-up dropped: {}",
            node.counters().summary()
        );
        node.port_mut().inject(last);
        node.poll(now);
        let c = node.counters();
        for r in DropReason::ALL {
            let want = u64::from(*r == reason);
            assert_eq!(
                c.dropped(*r),
                want,
                "{name}: drop.{} (expected one drop.{}): {}",
                r.label(),
                reason.label(),
                c.summary()
            );
        }
        covered.push(reason);
    }
    for r in DropReason::ALL {
        assert!(
            covered.contains(r) || NEED_STATE.contains(r),
            "no crafted frame for drop.{}: add one, or list it in NEED_STATE",
            r.label()
        );
    }
}

/// Node a forwards two flows to b. A client packet of the first comes back from b
/// in a data frame (b forwards the flow to a: a loop, nobody holds it): a drops it
/// and its entry, instead of sending it back. b acknowledges the second's move a
/// hundred times at once (b answering a's commits as acknowledgements, say): a
/// sends its commit again within its budget only.
#[test]
fn loops_between_two_nodes_are_cut_and_bounded() {
    let farm = FarmConfig::parse(&test_farm_toml(3), Path::new("test-farm.toml")).unwrap();
    let switch = MemSwitch::new(1);
    let mut node = Node::new(
        switch.port(A_MAC),
        farm.identity("a").unwrap(),
        farm.node_options(),
    );
    let b = switch.port(B_MAC);
    let now = Instant::from_millis(1);
    assert_eq!(node.preload_forward_flows(now, B_IP, 2).unwrap(), 2);
    let looped = ipos::node::preload_flow(0, VIP, 80);
    let acked = ipos::node::preload_flow(1, VIP, 80);
    let inner = tcp_seg(
        looped.src_addr,
        VIP,
        looped.src_port,
        80,
        0x18,
        b"GET / HTTP/1.1\r\n\r\n",
    );
    node.port_mut().inject(&data_frame(&inner));
    node.poll(now);
    let c = node.counters();
    assert_eq!(c.dropped(DropReason::ForwardLoop), 1, "{}", c.summary());
    assert_eq!(c.get(Event::PacketsForwarded), 0, "{}", c.summary());
    assert_eq!(node.forward_count(), 1, "the looped entry is gone");
    let _ = b.take_all();
    let macs = MacAddrs {
        dst: A_MAC,
        src: B_MAC,
    };
    let mut buf = [0u8; 200];
    let n = ipos_wire::emit_ack(
        &mut buf,
        ipos_wire::DEFAULT_ETHERTYPE,
        &macs,
        &acked,
        Protocol::Tcp,
    )
    .unwrap();
    for _ in 0..100 {
        node.port_mut().inject(&buf[..n]);
    }
    // A poll takes one burst: enough polls for all of them, at the same instant.
    for _ in 0..10 {
        node.poll(now);
    }
    let c = node.counters();
    let commits = c.get(Event::MigrationCommitsSent);
    assert!(
        (1..=16).contains(&commits),
        "{commits} commits: {}",
        c.summary()
    );
    assert_eq!(c.dropped(DropReason::RecommitRate), 100 - commits);
    assert_eq!(
        b.take_all().len() as u64,
        commits,
        "only the commits reached b"
    );
}

/// Three nodes forward one flow round in a circle (a to b, b to c, c to a:
/// stale or replayed notices, nobody holds it). A client segment that enters
/// at a goes round until its IP TTL is spent, not forever: the node where it
/// runs out drops it and its entry (`forward_ttl_expired`), and the next
/// segment is not looped at all.
#[test]
fn loops_of_three_nodes_end_with_the_ttl() {
    const C_MAC: EthernetAddress = EthernetAddress([2, 0, 0xc6, 0x12, 0, 0x0d]);
    const C_IP: Ipv4Address = Ipv4Address::new(198, 18, 0, 13);
    let farm = FarmConfig::parse(&test_farm_toml(3), Path::new("test-farm.toml")).unwrap();
    let switch = MemSwitch::new(1);
    let now = Instant::from_millis(1);
    let ring = [("a", A_MAC, B_IP), ("b", B_MAC, C_IP), ("c", C_MAC, A_IP)];
    let mut nodes: Vec<_> = ring
        .iter()
        .map(|&(name, mac, next)| {
            // b and c as fronts of the VIP too, so that they can preload its flows.
            let mut id = farm.identity(name).unwrap();
            id.vip = Some(VIP);
            let mut n = Node::new(switch.port(mac), id, farm.node_options());
            assert_eq!(n.preload_forward_flows(now, next, 1).unwrap(), 1);
            n
        })
        .collect();
    let looped = ipos::node::preload_flow(0, VIP, 80);
    let segment = eth(
        A_MAC,
        CLIENT_MAC,
        0x0800,
        &tcp_seg(looped.src_addr, VIP, looped.src_port, 80, 0x18, b"x"),
    );
    let forwarded = |nodes: &[Node<_>]| -> u64 {
        nodes
            .iter()
            .map(|n| n.counters().get(Event::PacketsForwarded))
            .sum()
    };
    let run = |nodes: &mut Vec<Node<_>>| {
        for _ in 0..200 {
            for n in nodes.iter_mut() {
                n.poll(now);
            }
        }
    };
    nodes[0].port_mut().inject(&segment);
    run(&mut nodes);
    // 64 (emit_ipv4_header's TTL): the front's hop from the wire spends none,
    // each of the 63 hops after it one, and the 64th finds TTL 1.
    assert_eq!(forwarded(&nodes), 64, "forwarded in all");
    let expired: Vec<u64> = nodes
        .iter()
        .map(|n| n.counters().dropped(DropReason::ForwardTtlExpired))
        .collect();
    assert_eq!(expired.iter().sum::<u64>(), 1, "{expired:?}");
    let at = expired.iter().position(|&e| e == 1).unwrap();
    assert_eq!(nodes[at].forward_count(), 0, "its entry went with it");
    for n in &nodes {
        assert_eq!(n.counters().dropped(DropReason::ForwardLoop), 0);
    }
    // The ring is open now: the next segment ends where the entry went.
    let before = forwarded(&nodes);
    nodes[0].port_mut().inject(&segment);
    run(&mut nodes);
    assert!(forwarded(&nodes) - before <= 3, "looped again");
}
