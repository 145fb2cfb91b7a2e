//! A node fed tens of thousands of malformed, truncated, spoofed and
//! unexpected frames (mutations of every kind it understands) never panics,
//! counts every frame, and still answers afterwards.

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
    let tcb = ipos_tcp::Endpoint::connect(&ipos_tcp::Config::default(), flow, 7, now)
        .export(now)
        .to_bytes();
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
    // Let every timer run out.
    for _ in 0..400 {
        node.poll(now);
        now += Duration::from_millis(50);
        let _ = client.take_all();
    }
    let c = node.counters();
    assert_eq!(
        c.get(Event::RxFrames),
        injected,
        "every injected frame was received"
    );
    assert!(c.total_drops() > injected / 4, "drops: {}", c.summary());
    assert!(
        c.dropped(DropReason::IposUnknownSender) > 0,
        "{}",
        c.summary()
    );
    assert!(c.dropped(DropReason::IposBadChecksum) + c.dropped(DropReason::IposTruncated) > 0);
    assert!(node.connection_count() <= 256);
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
