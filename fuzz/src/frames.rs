//! Frames for the `node` target: valid templates of every kind a node
//! understands, byte mutations, and checksum repair so that a mutated frame
//! still gets past the checksums and reaches the code behind them.
//!
//! The addresses are those of `ipos::config::test_farm_toml(2)`: node a
//! (front of the VIP) and node b, and a client host.

use ipos_tcp::{Config, Endpoint, Flow, Instant, Ipv4Address};
use ipos_wire::{ExtensionKind, MacAddrs, Protocol, DEFAULT_ETHERTYPE};
use smoltcp::wire::EthernetAddress;
use std::sync::OnceLock;

/// MACs of node a, node b and the client host (switch ports 0, 1, 2).
pub const MACS: [EthernetAddress; 3] = [
    EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x0b]),
    EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x0c]),
    CLIENT_MAC,
];
/// Addresses of node a and node b.
pub const IPS: [Ipv4Address; 2] = [
    Ipv4Address::new(198, 18, 0, 11),
    Ipv4Address::new(198, 18, 0, 12),
];
/// The client host.
pub const CLIENT_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x01]);
/// The client host's address.
pub const CLIENT_IP: Ipv4Address = Ipv4Address::new(198, 18, 0, 1);
/// The VIP (fronted by node a).
pub const VIP: Ipv4Address = Ipv4Address::new(198, 18, 0, 100);
/// The client port of the flow the ipOS templates describe.
pub const TEMPLATE_PORT: u16 = 40_100;
/// The request the ipOS connection template carries (unread at the source).
pub const TEMPLATE_REQUEST: &[u8] = b"GET /b/bytes/300 HTTP/1.1\r\nHost: x\r\n\r\n";

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;

/// Kinds of template, in the order of [`templates`]'s lists.
pub const TEMPLATE_NAMES: &[&str] = &[
    "arp_request_vip",
    "arp_request_node",
    "arp_reply",
    "icmp_echo",
    "tcp_syn_vip",
    "tcp_syn_node",
    "tcp_data_vip",
    "tcp_rst_vip",
    "udp_echo_vip",
    "udp_echo_node",
    "ipos_tcp_connection",
    "ipos_tcp_connection_empty",
    "ipos_carried_chunk",
    "ipos_udp_connection",
    "ipos_ack_tcp",
    "ipos_ack_udp",
    "ipos_notice_moved",
    "ipos_notice_closed",
    "ipos_advert",
    "ipos_tcp_data",
    "ipos_udp_data",
    "ipos_tcp_connection_mid_response",
    "ipos_service_state",
];

/// The templates for each destination node (index 0: a, 1: b), one per
/// entry of [`TEMPLATE_NAMES`]. ipOS frames come from the other node.
pub fn templates() -> &'static [Vec<Vec<u8>>; 2] {
    static T: OnceLock<[Vec<Vec<u8>>; 2]> = OnceLock::new();
    T.get_or_init(|| [build(0), build(1)])
}

fn eth(dst: EthernetAddress, src: EthernetAddress, ty: u16, body: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14 + body.len()];
    ipos_wire::emit_ethernet_header(&mut f, dst, src, ty).expect("room");
    f[14..].copy_from_slice(body);
    f
}

/// An IPv4 packet (header checksum filled) around `payload`.
pub fn ipv4(src: Ipv4Address, dst: Ipv4Address, proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 20 + payload.len()];
    let h = ipos_wire::Ipv4Header {
        src,
        dst,
        protocol: proto.into(),
        payload_len: payload.len(),
        ident: 1,
    };
    ipos_wire::emit_ipv4_header(&mut p, &h).expect("room");
    p[20..].copy_from_slice(payload);
    p
}

/// A TCP segment (checksum filled) inside an IPv4 packet.
pub fn tcp_packet(
    src: (Ipv4Address, u16),
    dst: (Ipv4Address, u16),
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let mut t = vec![0u8; 20 + payload.len()];
    let h = ipos_tcp::TcpHeader {
        src_port: src.1,
        dst_port: dst.1,
        seq,
        ack,
        flags,
        window: 65535,
    };
    ipos_tcp::write_header(&mut t, &h, &ipos_tcp::TcpOptions::default());
    t[20..].copy_from_slice(payload);
    ipos_tcp::fill_checksum(src.0, dst.0, &mut t);
    ipv4(src.0, dst.0, 6, &t)
}

/// A UDP datagram (checksum 0: none) inside an IPv4 packet.
pub fn udp_packet(src: (Ipv4Address, u16), dst: (Ipv4Address, u16), payload: &[u8]) -> Vec<u8> {
    let mut u = vec![0u8; 8 + payload.len()];
    u[0..2].copy_from_slice(&src.1.to_be_bytes());
    u[2..4].copy_from_slice(&dst.1.to_be_bytes());
    let ulen = (u.len() as u16).to_be_bytes();
    u[4..6].copy_from_slice(&ulen);
    u[8..].copy_from_slice(payload);
    ipv4(src.0, dst.0, 17, &u)
}

/// An ARP packet (Ethernet/IPv4, `op` 1 request or 2 reply).
pub fn arp(
    op: u16,
    sha: EthernetAddress,
    spa: Ipv4Address,
    tha: EthernetAddress,
    tpa: Ipv4Address,
) -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4];
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(sha.as_bytes());
    a.extend_from_slice(&spa.octets());
    a.extend_from_slice(tha.as_bytes());
    a.extend_from_slice(&tpa.octets());
    a
}

/// A client endpoint and the server endpoint of `flow` (client -> VIP) that
/// accepted its SYN, at time 0 (the SYN-ACK not yet sent).
fn handshake(flow: Flow) -> (Endpoint, Endpoint) {
    let now = Instant::from_millis(0);
    let cfg = Config::default();
    let mut client = Endpoint::connect(&cfg, flow.reversed(), 0x1000_0000, now);
    let mut buf = [0u8; 1600];
    let n = client.poll_transmit(now, &mut buf).expect("SYN");
    let server = Endpoint::accept(&cfg, flow, &buf[..n], 0x2000_0000, now).expect("accept");
    (client, server)
}

/// A server endpoint of `flow` (client -> VIP) that accepted a handshake and
/// received `request` without consuming it, exported at time 0.
fn template_tcb(flow: Flow, request: &[u8]) -> ipos_tcp::Tcb {
    let now = Instant::from_millis(0);
    let (mut client, mut server) = handshake(flow);
    let mut buf = [0u8; 1600];
    for _ in 0..8 {
        while let Some(n) = server.poll_transmit(now, &mut buf) {
            let _ = client.on_segment(now, &buf[..n]);
        }
        if client.send_space() > 0 && client.state() == ipos_tcp::State::Established {
            client.send_slice(request);
        }
        while let Some(n) = client.poll_transmit(now, &mut buf) {
            let _ = server.on_segment(now, &buf[..n]);
        }
        if server.recv_available() == request.len() {
            break;
        }
    }
    server.export(now)
}

/// The TCB of a connection 3000 bytes into its response to
/// `GET /bytes/100000` (some of them sent, none acknowledged) and the
/// service-state record that goes with it.
fn mid_response(flow: Flow) -> (ipos_tcp::Tcb, Vec<u8>) {
    let now = Instant::from_millis(0);
    let (mut client, mut server) = handshake(flow);
    let mut buf = [0u8; 1600];
    while let Some(n) = server.poll_transmit(now, &mut buf) {
        let _ = client.on_segment(now, &buf[..n]);
    }
    client.send_slice(b"GET /bytes/100000 HTTP/1.1\r\nHost: x\r\n\r\n");
    while let Some(n) = client.poll_transmit(now, &mut buf) {
        let _ = server.on_segment(now, &buf[..n]);
    }
    let svc = ipos_http::Service::new("a");
    let mut app = ipos_http::HttpConn::new();
    let used = app.on_recv(&svc, server.recv_slice());
    server.recv_consume(used);
    let mut out = [0u8; 3000];
    let made = app.poll_send(&svc, &mut out);
    server.send_slice(&out[..made]);
    // Two segments leave; the client's ACKs never come back.
    for _ in 0..2 {
        let _ = server.poll_transmit(now, &mut buf);
    }
    let (a, b) = server.unacked_and_unsent();
    let p = app.progress(a.len() + b.len()).expect("mid-response");
    let mut record = vec![0u8; ipos::migration::service_state::MAX_SERVICE_STATE_LEN];
    let n = ipos::migration::service_state::emit_http(&p, &mut record).expect("room");
    record.truncate(n);
    let mut tcb = server.export(now);
    tcb.service_len = n as u16;
    (tcb, record)
}

fn build(dst: usize) -> Vec<Vec<u8>> {
    let me = MACS[dst];
    let my_ip = IPS[dst];
    let other = 1 - dst;
    let peer = MACS[other];
    let peer_ip = IPS[other];
    let c = CLIENT_MAC;
    let vip_flow = Flow {
        src_addr: CLIENT_IP,
        src_port: TEMPLATE_PORT,
        dst_addr: VIP,
        dst_port: 80,
    };
    let mut v = Vec::new();
    let bc = EthernetAddress::BROADCAST;
    let zero = EthernetAddress([0; 6]);
    v.push(eth(bc, c, ETHERTYPE_ARP, &arp(1, c, CLIENT_IP, zero, VIP)));
    v.push(eth(
        bc,
        c,
        ETHERTYPE_ARP,
        &arp(1, c, CLIENT_IP, zero, my_ip),
    ));
    v.push(eth(me, c, ETHERTYPE_ARP, &arp(2, c, CLIENT_IP, me, my_ip)));
    let mut icmp = vec![8, 0, 0, 0, 0, 1, 0, 1, 1, 2, 3, 4];
    let sum = ipos_wire::checksum::checksum(&[&icmp]);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    v.push(eth(
        me,
        c,
        ETHERTYPE_IPV4,
        &ipv4(CLIENT_IP, my_ip, 1, &icmp),
    ));
    let cl = (CLIENT_IP, 40_000);
    v.push(eth(
        me,
        c,
        ETHERTYPE_IPV4,
        &tcp_packet(cl, (VIP, 80), 1000, 0, ipos_tcp::SYN, b""),
    ));
    v.push(eth(
        me,
        c,
        ETHERTYPE_IPV4,
        &tcp_packet(cl, (my_ip, 80), 1000, 0, ipos_tcp::SYN, b""),
    ));
    v.push(eth(
        me,
        c,
        ETHERTYPE_IPV4,
        &tcp_packet(
            cl,
            (VIP, 80),
            1001,
            1,
            ipos_tcp::ACK | ipos_tcp::PSH,
            b"GET / HTTP/1.1\r\n\r\n",
        ),
    ));
    v.push(eth(
        me,
        c,
        ETHERTYPE_IPV4,
        &tcp_packet(cl, (VIP, 80), 1001, 0, ipos_tcp::RST, b""),
    ));
    v.push(eth(
        me,
        c,
        ETHERTYPE_IPV4,
        &udp_packet((CLIENT_IP, 41_000), (VIP, 7), b"ipos-echo"),
    ));
    v.push(eth(
        me,
        c,
        ETHERTYPE_IPV4,
        &udp_packet((CLIENT_IP, 41_000), (my_ip, 7), b"ipos-echo"),
    ));

    let macs = MacAddrs { dst: me, src: peer };
    let et = DEFAULT_ETHERTYPE;
    let mut buf = [0u8; 1600];
    let mut tcb = template_tcb(vip_flow, TEMPLATE_REQUEST);
    tcb.link_addr = CLIENT_MAC.0;
    tcb.next_hop = peer_ip.octets();
    let n =
        ipos_wire::emit_tcp_connection(&mut buf, et, &macs, &vip_flow, my_ip, 80, &tcb.to_bytes())
            .expect("room");
    v.push(buf[..n].to_vec());
    let mut empty = template_tcb(vip_flow, b"");
    empty.link_addr = CLIENT_MAC.0;
    empty.next_hop = peer_ip.octets();
    let n = ipos_wire::emit_tcp_connection(
        &mut buf,
        et,
        &macs,
        &vip_flow,
        my_ip,
        80,
        &empty.to_bytes(),
    )
    .expect("room");
    v.push(buf[..n].to_vec());
    // The carried request, rebuilt at its original sequence number.
    let seq = tcb.rcv_nxt.wrapping_sub(tcb.rcv_data_len);
    let mut d = vec![0u8; 30 + 40 + TEMPLATE_REQUEST.len()];
    let m = ipos::migration::emit_request_segment(
        &mut d[30..],
        &vip_flow,
        seq,
        tcb.snd_nxt,
        512,
        3,
        TEMPLATE_REQUEST,
    )
    .expect("room");
    let n = ipos_wire::emit_data_header(&mut d[..30 + m], et, &macs).expect("room");
    v.push(d[..n].to_vec());
    let udp_flow = Flow {
        src_port: 41_000,
        dst_port: 7,
        ..vip_flow
    };
    let n = ipos_wire::emit_udp_connection(&mut buf, et, &macs, &udp_flow, my_ip, 7).expect("room");
    v.push(buf[..n].to_vec());
    let n = ipos_wire::emit_ack(&mut buf, et, &macs, &vip_flow, Protocol::Tcp).expect("room");
    v.push(buf[..n].to_vec());
    let n = ipos_wire::emit_ack(&mut buf, et, &macs, &udp_flow, Protocol::Udp).expect("room");
    v.push(buf[..n].to_vec());
    let mut moved = peer_ip.octets().to_vec();
    moved.extend_from_slice(&80u16.to_be_bytes());
    for body in [&moved[..], &[0, 0, 0, 0, 0, 80][..]] {
        let n = ipos_wire::emit_extension(
            &mut buf,
            et,
            &macs,
            &vip_flow,
            ExtensionKind::ConnectionNotice,
            Protocol::Tcp,
            body,
        )
        .expect("room");
        v.push(buf[..n].to_vec());
    }
    let mut advert = ipos_policy::AdvertRepr::new(peer_ip, 1);
    advert.established = 3;
    let mut body = [0u8; 300];
    let bl = advert.emit(&mut body).expect("room");
    let n = ipos_wire::emit_extension(
        &mut buf,
        et,
        &macs,
        &vip_flow,
        ExtensionKind::ServerState,
        Protocol::Tcp,
        &body[..bl],
    )
    .expect("room");
    v.push(buf[..n].to_vec());
    for inner in [
        tcp_packet(
            (CLIENT_IP, TEMPLATE_PORT),
            (VIP, 80),
            seq,
            tcb.snd_nxt,
            ipos_tcp::ACK | ipos_tcp::PSH,
            b"GET /b/ HTTP/1.1\r\n\r\n",
        ),
        udp_packet((CLIENT_IP, 41_000), (VIP, 7), b"ipos-echo"),
    ] {
        let mut d = vec![0u8; 30];
        d.extend_from_slice(&inner);
        let n = ipos_wire::emit_data_header(&mut d, et, &macs).expect("room");
        v.push(d[..n].to_vec());
    }
    // A move in the middle of a response: its TCB, then its service state.
    let (mut mid, record) = mid_response(vip_flow);
    mid.link_addr = CLIENT_MAC.0;
    mid.next_hop = peer_ip.octets();
    let n =
        ipos_wire::emit_tcp_connection(&mut buf, et, &macs, &vip_flow, my_ip, 80, &mid.to_bytes())
            .expect("room");
    v.push(buf[..n].to_vec());
    let n = ipos_wire::emit_extension(
        &mut buf,
        et,
        &macs,
        &vip_flow,
        ExtensionKind::ServiceState,
        Protocol::Tcp,
        &record,
    )
    .expect("room");
    v.push(buf[..n].to_vec());
    debug_assert_eq!(v.len(), TEMPLATE_NAMES.len());
    v
}

/// One byte-level change to a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mutation {
    /// What to do: see [`Mutation::apply`].
    pub kind: u8,
    /// Where (taken modulo the frame length where it must fall inside).
    pub pos: u16,
    /// With what.
    pub val: u8,
    /// Recompute the IPv4, TCP, UDP, ICMP and ipOS checksums afterwards.
    pub fix: bool,
}

impl Mutation {
    /// No change; checksums left as they are.
    pub const NONE: Mutation = Mutation {
        kind: 0,
        pos: 0,
        val: 0,
        fix: false,
    };

    /// Applies the change: 0 none, 1 flip bit `val % 8` of byte `pos`, 2 set
    /// byte `pos` to `val`, 3 truncate to `pos`, 4 append `val` bytes, 5 add
    /// `val` to the big-endian u32 at `pos` (a sequence number, a TCB field),
    /// 6 set 16 bits at `pos` to `val` repeated, 7 drop byte `pos`.
    pub fn apply(&self, f: &mut Vec<u8>) {
        let len = f.len();
        let at = if len == 0 { 0 } else { self.pos as usize % len };
        match self.kind % 8 {
            1 if len > 0 => f[at] ^= 1 << (self.val % 8),
            2 if len > 0 => f[at] = self.val,
            3 => f.truncate(self.pos as usize),
            4 => f.extend((0..self.val).map(|i| i.wrapping_mul(37) ^ self.val)),
            5 if len >= 4 => {
                let at = at.min(len - 4);
                let v = u32::from_be_bytes(f[at..at + 4].try_into().expect("4 bytes"));
                let v = v.wrapping_add(u32::from(self.val).wrapping_sub(128));
                f[at..at + 4].copy_from_slice(&v.to_be_bytes());
            }
            6 if len >= 2 => {
                let at = at.min(len - 2);
                f[at] = self.val;
                f[at + 1] = self.val;
            }
            7 if len > 0 => {
                f.remove(at);
            }
            _ => {}
        }
        if self.fix {
            fix_checksums(f);
        }
    }
}

/// Recomputes every checksum a frame carries that can be found: the IPv4
/// header and its TCP, UDP or ICMP payload, the ipOS header (with the body
/// it covers) and the IPv4 packet inside an ipOS data frame.
pub fn fix_checksums(f: &mut [u8]) {
    if f.len() < 14 {
        return;
    }
    match u16::from_be_bytes([f[12], f[13]]) {
        ETHERTYPE_IPV4 => fix_ipv4(&mut f[14..]),
        DEFAULT_ETHERTYPE if f.len() >= 30 => {
            let (head, body) = f[14..].split_at_mut(16);
            let covered = match head[12] {
                1 => match head[13] {
                    1 => ipos_wire::conn_info::TCP_CONN_INFO_LEN,
                    _ => ipos_wire::conn_info::UDP_CONN_INFO_LEN,
                },
                2 => {
                    fix_ipv4(body);
                    0
                }
                3 => 0,
                _ => body.len(),
            }
            .min(body.len());
            head[14] = 0;
            head[15] = 0;
            let c = ipos_wire::checksum::checksum(&[head, &body[..covered]]);
            head[14..16].copy_from_slice(&c.to_be_bytes());
        }
        _ => {}
    }
}

fn fix_ipv4(p: &mut [u8]) {
    if p.len() < 20 {
        return;
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    if ihl < 20 || ihl > p.len() {
        return;
    }
    p[10] = 0;
    p[11] = 0;
    let c = ipos_wire::checksum::checksum(&[&p[..ihl]]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    let total = usize::from(u16::from_be_bytes([p[2], p[3]])).clamp(ihl, p.len());
    let src = Ipv4Address::new(p[12], p[13], p[14], p[15]);
    let dst = Ipv4Address::new(p[16], p[17], p[18], p[19]);
    let proto = p[9];
    let l4 = &mut p[ihl..total];
    match proto {
        1 if l4.len() >= 4 => {
            l4[2] = 0;
            l4[3] = 0;
            let c = ipos_wire::checksum::checksum(&[l4]);
            l4[2..4].copy_from_slice(&c.to_be_bytes());
        }
        6 if l4.len() >= 20 => ipos_tcp::fill_checksum(src, dst, l4),
        17 if l4.len() >= 8 => {
            l4[6] = 0;
            l4[7] = 0;
            let len = (l4.len() as u16).to_be_bytes();
            let pseudo = [&src.octets()[..], &dst.octets()[..], &[0, 17], &len[..]].concat();
            let c = match ipos_wire::checksum::checksum(&[&pseudo, l4]) {
                0 => 0xffff,
                c => c,
            };
            l4[6..8].copy_from_slice(&c.to_be_bytes());
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ipos_template_parses() {
        for (dst, list) in templates().iter().enumerate() {
            assert_eq!(list.len(), TEMPLATE_NAMES.len());
            for (i, t) in list.iter().enumerate() {
                if u16::from_be_bytes([t[12], t[13]]) == DEFAULT_ETHERTYPE {
                    let parsed = ipos_wire::Frame::parse(t, DEFAULT_ETHERTYPE);
                    assert!(parsed.is_ok(), "{dst} {}: {parsed:?}", TEMPLATE_NAMES[i]);
                    let mut fixed = t.clone();
                    fix_checksums(&mut fixed);
                    assert_eq!(fixed[28..30], t[28..30], "{}", TEMPLATE_NAMES[i]);
                    assert!(ipos_wire::Frame::parse(&fixed, DEFAULT_ETHERTYPE).is_ok());
                }
            }
        }
    }

    #[test]
    fn repaired_checksums_verify() {
        let t = &templates()[0][4];
        let mut f = t.clone();
        Mutation {
            kind: 5,
            pos: 38,
            val: 200,
            fix: true,
        }
        .apply(&mut f);
        assert_ne!(&f, t);
        let mut again = f.clone();
        fix_checksums(&mut again);
        assert_eq!(again, f);
        let ip = smoltcp::wire::Ipv4Packet::new_checked(&f[14..]).unwrap();
        assert!(ip.verify_checksum());
        assert!(ipos_tcp::checksum_ok(CLIENT_IP, VIP, ip.payload()));
    }
}
