//! The poll-mode loop of one node: receive a burst, classify every frame
//! (ARP, ICMP, ipOS, client TCP, other), dispatch it, run connection timers,
//! transmit.
//!
//! A node owns its [`Port`] queue and its tables; nothing here locks, and
//! nothing on the per-packet path allocates once the tables have grown to
//! their working size (packet buffers come from the port's pool, replies are
//! written in place where possible). Every received frame ends either handled
//! or dropped and counted under one [`DropReason`].

use crate::counters::{Counters, DropReason};
use crate::port::{PacketBuf, Port, BURST};
use crate::tables::{ConnKey, LocalTable};
use ipos_http::{HttpConn, Service};
use ipos_tcp::{Endpoint, FourTuple};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, Icmpv4Message, Icmpv4Packet, IpAddress,
    IpProtocol, Ipv4Address, Ipv4Packet, TcpPacket,
};

const ETH_LEN: usize = 14;
const IPV4_LEN: usize = 20;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;

/// Who a node is and what it serves.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    /// Node name, as in the farm file.
    pub name: String,
    /// The MAC its port uses.
    pub mac: EthernetAddress,
    /// Its own IPv4 address.
    pub ip: Ipv4Address,
    /// The VIP, when this node fronts it (answers ARP and accepts on it).
    pub vip: Option<Ipv4Address>,
    /// TCP ports served.
    pub service_ports: Vec<u16>,
    /// EtherType of ipOS frames.
    pub ethertype: u16,
}

/// Tunables of a node.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// TCP endpoint configuration.
    pub tcp: ipos_tcp::Config,
    /// Local connection table limit.
    pub max_connections: usize,
    /// How often connection timers are scanned.
    pub timer_scan: Duration,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            tcp: ipos_tcp::Config::default(),
            max_connections: 16384,
            timer_scan: Duration::from_millis(1),
        }
    }
}

struct Conn {
    ep: Endpoint,
    app: HttpConn,
    /// Next-hop MAC towards the client, learned from its SYN.
    peer_mac: EthernetAddress,
    close_requested: bool,
}

/// One node's data path over one port queue.
pub struct Node<P: Port> {
    port: P,
    id: NodeIdentity,
    opts: NodeOptions,
    service: Service,
    conns: LocalTable<Conn>,
    rx: Vec<P::Buf>,
    spare: Option<P::Buf>,
    counters: Counters,
    ip_ident: u16,
    iss_secret: u64,
    next_scan: Instant,
}

impl<P: Port> Node<P> {
    /// A node on `port`.
    pub fn new(port: P, id: NodeIdentity, opts: NodeOptions) -> Node<P> {
        let service = Service::new(&id.name);
        let iss_secret = {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write(id.name.as_bytes());
            h.finish()
        };
        Node {
            port,
            conns: LocalTable::new(opts.max_connections),
            id,
            opts,
            service,
            rx: Vec::with_capacity(BURST),
            spare: None,
            counters: Counters::default(),
            ip_ident: 1,
            iss_secret,
            next_scan: Instant::from_micros(0),
        }
    }

    /// The node's counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The port (for its counters).
    pub fn port(&self) -> &P {
        &self.port
    }

    /// The port, mutable (tests use it to inject frames).
    pub fn port_mut(&mut self) -> &mut P {
        &mut self.port
    }

    /// Who this node is.
    pub fn identity(&self) -> &NodeIdentity {
        &self.id
    }

    /// Connections in the local table.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// One iteration of the poll loop; returns the number of frames received.
    pub fn poll(&mut self, now: Instant) -> usize {
        let n = self.port.rx_burst(&mut self.rx);
        let mut rx = std::mem::take(&mut self.rx);
        for buf in rx.drain(..) {
            self.counters.rx_frames += 1;
            self.handle_frame(now, buf);
        }
        self.rx = rx;
        if now >= self.next_scan {
            self.next_scan = now + self.opts.timer_scan;
            self.scan_timers(now);
        }
        self.port.flush();
        n
    }

    fn handle_frame(&mut self, now: Instant, mut buf: P::Buf) {
        let data = buf.data();
        if data.len() < ETH_LEN {
            return self.counters.drop(DropReason::EthTruncated);
        }
        let dst = EthernetAddress::from_bytes(&data[0..6]);
        if dst.is_unicast() && dst != self.id.mac {
            return self.counters.drop(DropReason::OtherMac);
        }
        let ethertype = u16::from_be_bytes([data[12], data[13]]);
        if ethertype == self.id.ethertype {
            return self.handle_ipos(now, buf);
        }
        match ethertype {
            ETHERTYPE_ARP => self.handle_arp(buf),
            ETHERTYPE_IPV4 => {
                // Drop Ethernet padding behind the IPv4 packet.
                match ipv4_frame_len(buf.data()) {
                    Ok(len) => {
                        if len < buf.len() && buf.set_len(len).is_err() {
                            return self.counters.drop(DropReason::Ipv4Malformed);
                        }
                        self.handle_ipv4(now, buf)
                    }
                    Err(r) => self.counters.drop(r),
                }
            }
            _ => {
                let _ = &mut buf;
                self.counters.drop(DropReason::UnknownEthertype)
            }
        }
    }

    fn owns_ip(&self, ip: Ipv4Address) -> bool {
        ip == self.id.ip || Some(ip) == self.id.vip
    }

    fn handle_arp(&mut self, mut buf: P::Buf) {
        let repr =
            match ArpPacket::new_checked(&buf.data()[ETH_LEN..]).and_then(|p| ArpRepr::parse(&p)) {
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
        if operation != ArpOperation::Request || !self.owns_ip(target_protocol_addr) {
            return self.counters.drop(DropReason::ArpNotForUs);
        }
        // Answer in place: the request buffer becomes the reply.
        let reply = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_hardware_addr: self.id.mac,
            source_protocol_addr: target_protocol_addr,
            target_hardware_addr: source_hardware_addr,
            target_protocol_addr: source_protocol_addr,
        };
        let len = ETH_LEN + reply.buffer_len();
        if buf.set_len(len).is_err() {
            return self.counters.drop(DropReason::ArpMalformed);
        }
        let d = buf.data_mut();
        write_eth(d, source_hardware_addr, self.id.mac, ETHERTYPE_ARP);
        reply.emit(&mut ArpPacket::new_unchecked(&mut d[ETH_LEN..]));
        self.counters.arp_replies += 1;
        self.transmit(buf);
    }

    fn handle_ipv4(&mut self, now: Instant, buf: P::Buf) {
        let d = buf.data();
        let ip = Ipv4Packet::new_unchecked(&d[ETH_LEN..]);
        let dst = ip.dst_addr();
        if !self.owns_ip(dst) {
            return self.counters.drop(DropReason::Ipv4NotForUs);
        }
        match ip.next_header() {
            IpProtocol::Icmp => self.handle_icmp(buf),
            IpProtocol::Tcp => self.handle_tcp(now, buf),
            _ => self.counters.drop(DropReason::Ipv4OtherProtocol),
        }
    }

    fn handle_icmp(&mut self, mut buf: P::Buf) {
        let d = buf.data();
        let ihl = ((d[ETH_LEN] & 0x0f) as usize) * 4;
        let icmp_off = ETH_LEN + ihl;
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
        write_eth(d, src_mac, self.id.mac, ETHERTYPE_IPV4);
        {
            let mut ip = Ipv4Packet::new_unchecked(&mut d[ETH_LEN..]);
            let (s, t) = (ip.src_addr(), ip.dst_addr());
            ip.set_src_addr(t);
            ip.set_dst_addr(s);
            ip.set_hop_limit(64);
            ip.fill_checksum();
        }
        let mut icmp = Icmpv4Packet::new_unchecked(&mut d[icmp_off..]);
        icmp.set_msg_type(Icmpv4Message::EchoReply);
        icmp.fill_checksum();
        self.counters.icmp_echo_replies += 1;
        self.transmit(buf);
    }

    fn handle_tcp(&mut self, now: Instant, buf: P::Buf) {
        let d = buf.data();
        let ip = Ipv4Packet::new_unchecked(&d[ETH_LEN..]);
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let seg = ip.payload();
        let tcp = match TcpPacket::new_checked(seg) {
            Ok(t) => t,
            Err(_) => return self.counters.drop(DropReason::TcpMalformed),
        };
        if !tcp.verify_checksum(&IpAddress::Ipv4(src), &IpAddress::Ipv4(dst)) {
            return self.counters.drop(DropReason::TcpBadChecksum);
        }
        let key = ConnKey {
            client_ip: src,
            client_port: tcp.src_port(),
            endpoint_ip: dst,
            endpoint_port: tcp.dst_port(),
        };
        if let Some(slot) = self.conns.find(&key) {
            self.counters.tcp_segments_in += 1;
            let conn = self.conns.get_mut(slot).expect("slot from index");
            if conn.ep.on_segment(now, seg).is_err() {
                self.counters.drop(DropReason::TcpRejected);
            }
            return self.service(now, slot);
        }
        let (syn, ack, rst) = (tcp.syn(), tcp.ack(), tcp.rst());
        if syn && !ack && !rst {
            if !self.id.service_ports.contains(&key.endpoint_port) {
                self.counters.drop(DropReason::TcpNoListener);
                return self.send_reset(buf);
            }
            let tuple = FourTuple {
                local_ip: dst,
                local_port: key.endpoint_port,
                remote_ip: src,
                remote_port: key.client_port,
            };
            let iss = self.initial_sequence(&key, now);
            let ep = match Endpoint::accept(&self.opts.tcp, tuple, seg, iss, now) {
                Ok(ep) => ep,
                Err(_) => return self.counters.drop(DropReason::TcpRejected),
            };
            let conn = Conn {
                ep,
                app: HttpConn::new(),
                peer_mac: EthernetAddress::from_bytes(&d[6..12]),
                close_requested: false,
            };
            match self.conns.insert(key, conn) {
                Ok(slot) => {
                    self.counters.tcp_accepted += 1;
                    self.counters.tcp_segments_in += 1;
                    self.service(now, slot);
                }
                Err(_) => self.counters.drop(DropReason::TcpTableFull),
            }
            return;
        }
        self.counters.drop(DropReason::TcpNoConnection);
        if !rst {
            self.send_reset(buf);
        }
    }

    /// RFC 6528-style initial sequence number: a keyed hash of the 4-tuple
    /// plus a 4-microsecond clock.
    fn initial_sequence(&self, key: &ConnKey, now: Instant) -> u32 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.iss_secret.hash(&mut h);
        key.hash(&mut h);
        (h.finish() as u32).wrapping_add((now.total_micros() / 4) as u32)
    }

    /// Answers a segment without a connection with a RST, reusing its buffer
    /// (RFC 9293 section 3.10.7.1).
    fn send_reset(&mut self, mut buf: P::Buf) {
        let d = buf.data();
        let src_mac = EthernetAddress::from_bytes(&d[6..12]);
        let ip = Ipv4Packet::new_unchecked(&d[ETH_LEN..]);
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let tcp = TcpPacket::new_unchecked(ip.payload());
        let (sport, dport) = (tcp.src_port(), tcp.dst_port());
        let seg_len = tcp.payload().len() as u32 + tcp.syn() as u32 + tcp.fin() as u32;
        let (seq, ack_no, flags) = if tcp.ack() {
            (tcp.ack_number().0 as u32, 0u32, 0x04u8)
        } else {
            (0, (tcp.seq_number().0 as u32).wrapping_add(seg_len), 0x14u8)
        };
        let total = ETH_LEN + IPV4_LEN + 20;
        if buf.set_len(total).is_err() {
            return self.counters.drop(DropReason::TxNoBuffer);
        }
        let ident = self.next_ident();
        let d = buf.data_mut();
        write_eth(d, src_mac, self.id.mac, ETHERTYPE_IPV4);
        write_ipv4(&mut d[ETH_LEN..], dst, src, IpProtocol::Tcp, 20, ident);
        let t = &mut d[ETH_LEN + IPV4_LEN..];
        t[0..2].copy_from_slice(&dport.to_be_bytes());
        t[2..4].copy_from_slice(&sport.to_be_bytes());
        t[4..8].copy_from_slice(&seq.to_be_bytes());
        t[8..12].copy_from_slice(&ack_no.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = flags;
        t[14..20].fill(0);
        TcpPacket::new_unchecked(&mut t[..20])
            .fill_checksum(&IpAddress::Ipv4(dst), &IpAddress::Ipv4(src));
        self.counters.tcp_resets_sent += 1;
        self.transmit(buf);
    }

    fn next_ident(&mut self) -> u16 {
        self.ip_ident = self.ip_ident.wrapping_add(1);
        self.ip_ident
    }

    /// Moves data between a connection's endpoint and its application, sends
    /// what the endpoint has to send, and removes the connection once closed.
    fn service(&mut self, now: Instant, slot: u32) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        // Application <-> endpoint, until neither side makes progress.
        for _ in 0..64 {
            let mut progress = false;
            let avail = conn.ep.recv_slice();
            if !avail.is_empty() {
                let n = conn.app.on_recv(&self.service, avail);
                if n > 0 {
                    conn.ep.recv_consume(n);
                    progress = true;
                }
            }
            if conn.app.has_pending_output() && conn.ep.send_space() > 0 {
                let svc = &self.service;
                let app = &mut conn.app;
                if conn.ep.send_with(|b| app.poll_send(svc, b)) > 0 {
                    progress = true;
                }
            }
            if !progress {
                break;
            }
        }
        if conn.ep.peer_fin_received() && conn.ep.recv_available() == 0 {
            conn.app.on_peer_fin();
        }
        if !conn.close_requested && conn.app.wants_close() && !conn.app.has_pending_output() {
            conn.ep.close();
            conn.close_requested = true;
        }
        // Transmit everything the endpoint has ready.
        let peer_mac = conn.peer_mac;
        let tuple = conn.ep.tuple();
        loop {
            let mut buf = match self.spare.take().or_else(|| self.port.alloc()) {
                Some(b) => b,
                None => {
                    self.counters.drop(DropReason::TxNoBuffer);
                    break;
                }
            };
            let room = (buf.len() + buf.tailroom())
                .min(ETH_LEN + IPV4_LEN + 60 + self.opts.tcp.mss as usize);
            if buf.set_len(room).is_err() {
                self.counters.drop(DropReason::TxNoBuffer);
                break;
            }
            let conn = self.conns.get_mut(slot).expect("live slot");
            let n = match conn
                .ep
                .poll_transmit(now, &mut buf.data_mut()[ETH_LEN + IPV4_LEN..])
            {
                Some(n) => n,
                None => {
                    self.spare = Some(buf);
                    break;
                }
            };
            let ident = self.next_ident();
            if buf.set_len(ETH_LEN + IPV4_LEN + n).is_err() {
                continue;
            }
            let d = buf.data_mut();
            write_eth(d, peer_mac, self.id.mac, ETHERTYPE_IPV4);
            write_ipv4(
                &mut d[ETH_LEN..],
                tuple.local_ip,
                tuple.remote_ip,
                IpProtocol::Tcp,
                n,
                ident,
            );
            self.counters.tcp_segments_out += 1;
            self.transmit(buf);
        }
        let conn = self.conns.get(slot).expect("live slot");
        if conn.ep.is_closed() {
            self.conns.remove(slot);
            self.counters.tcp_closed += 1;
        }
    }

    fn scan_timers(&mut self, now: Instant) {
        for slot in 0..self.conns.slot_count() {
            let due = match self.conns.get(slot) {
                Some(c) => c.ep.poll_timeout().is_some_and(|t| t <= now) || c.ep.is_closed(),
                None => false,
            };
            if due {
                self.service(now, slot);
            }
        }
    }

    fn transmit(&mut self, buf: P::Buf) {
        self.counters.tx_frames += 1;
        self.port.send(buf);
    }

    fn handle_ipos(&mut self, _now: Instant, buf: P::Buf) {
        use ipos_wire::Message;
        match ipos_wire::Frame::parse(buf.data(), self.id.ethertype) {
            Ok(frame) => {
                let idx = match frame.message {
                    Message::TcpConnection { .. } | Message::UdpConnection { .. } => 0,
                    Message::TcpData { .. } | Message::UdpData { .. } => 1,
                    Message::Ack { .. } => 2,
                    Message::Extension { .. } => 3,
                };
                self.counters.ipos_rx[idx] += 1;
                // Nothing on this node expects it (no migration in progress for it).
                self.counters.drop(DropReason::IposUnexpected);
            }
            Err(e) => self.counters.drop(ipos_drop_reason(&e)),
        }
    }
}

/// Maps a wire error to its drop counter.
pub fn ipos_drop_reason(e: &ipos_wire::Error) -> DropReason {
    use ipos_wire::Error as E;
    match e {
        E::Truncated => DropReason::IposTruncated,
        E::BadChecksum => DropReason::IposBadChecksum,
        E::UnknownType(_) => DropReason::IposUnknownType,
        E::UnknownProtocol(_) => DropReason::IposUnknownProtocol,
        E::BadInnerPacket => DropReason::IposBadInner,
        E::BadLength | E::WrongEtherType => DropReason::IposBadLength,
    }
}

/// Validates the IPv4 header of an Ethernet frame; returns the frame length
/// without Ethernet padding.
fn ipv4_frame_len(d: &[u8]) -> Result<usize, DropReason> {
    let ip = Ipv4Packet::new_checked(&d[ETH_LEN..]).map_err(|_| DropReason::Ipv4Malformed)?;
    if ip.version() != 4 {
        return Err(DropReason::Ipv4Malformed);
    }
    if !ip.verify_checksum() {
        return Err(DropReason::Ipv4BadChecksum);
    }
    if ip.more_frags() || ip.frag_offset() != 0 {
        return Err(DropReason::Ipv4Fragment);
    }
    Ok(ETH_LEN + ip.total_len() as usize)
}

fn write_eth(d: &mut [u8], dst: EthernetAddress, src: EthernetAddress, ethertype: u16) {
    d[0..6].copy_from_slice(dst.as_bytes());
    d[6..12].copy_from_slice(src.as_bytes());
    d[12..14].copy_from_slice(&ethertype.to_be_bytes());
}

fn write_ipv4(
    d: &mut [u8],
    src: Ipv4Address,
    dst: Ipv4Address,
    proto: IpProtocol,
    payload: usize,
    ident: u16,
) {
    let mut ip = Ipv4Packet::new_unchecked(&mut d[..IPV4_LEN]);
    ip.set_version(4);
    ip.set_header_len(IPV4_LEN as u8);
    ip.set_dscp(0);
    ip.set_ecn(0);
    ip.set_total_len((IPV4_LEN + payload) as u16);
    ip.set_ident(ident);
    ip.clear_flags();
    ip.set_dont_frag(true);
    ip.set_frag_offset(0);
    ip.set_hop_limit(64);
    ip.set_next_header(proto);
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
    ip.fill_checksum();
}
