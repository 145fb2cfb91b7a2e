//! The poll-mode loop of one node: receive a burst, classify every frame
//! (ARP, ICMP, ipOS, client TCP, other), dispatch it, run timers, transmit.
//!
//! A node owns its [`Port`] queue and its tables; nothing here locks, and
//! nothing on the per-packet path allocates once the tables have grown to
//! their working size (packet buffers come from the port's pool, replies are
//! written in place, forwarded packets get their ipOS header prepended in
//! the same buffer). Every received frame ends either handled or dropped and
//! counted under one [`DropReason`].
//!
//! The node plays every migration role (see [`crate::migrate`] for the
//! protocol): the *front* accepts connections on the VIP, asks the policy for
//! an owner once the request head is in, and moves the endpoint; a *target*
//! imports it and answers the client directly; a *forwarder* wraps later
//! client packets in ipOS data frames to the owner.

use crate::counters::{Counters, DropReason, Event};
use crate::migrate::{self, Notice, Reassembly, CHUNK};
use crate::port::{PacketBuf, Port, BURST};
use crate::tables::{ConnKey, ForwardEntry, ForwardKey, ForwardTable, LocalTable};
use hashbrown::HashMap;
use ipos_http::{HttpConn, Service};
use ipos_policy::{AdvertRepr, AppEntry, FarmView, ListenEntry, PolicyConfig, Reason, RequestInfo};
use ipos_tcp::{Endpoint, FourTuple, State, Tcb};
use ipos_wire::{ExtensionKind, Flow, MacAddrs, Message, Protocol, TCB_LEN};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    ArpHardware, ArpOperation, ArpPacket, ArpRepr, EthernetAddress, Icmpv4Message, Icmpv4Packet,
    IpAddress, IpProtocol, Ipv4Address, Ipv4Packet, TcpPacket, UdpPacket,
};

const ETH_LEN: usize = 14;
const IPV4_LEN: usize = 20;
/// Ethernet + ipOS header in front of a forwarded packet.
const DATA_HEAD: usize = ipos_wire::DATA_HEADROOM;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
/// The process id advertised for the built-in HTTP service.
pub const HTTP_PID: u32 = 1;
/// The process id advertised for the built-in UDP echo service.
pub const UDP_ECHO_PID: u32 = 2;
/// Replies waiting for a MAC address resolution, at most.
const ARP_WAIT_LIMIT: usize = 64;

/// Another node of the farm (or this one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Node name.
    pub name: String,
    /// Its MAC on the farm network.
    pub mac: EthernetAddress,
    /// Its address.
    pub ip: Ipv4Address,
}

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
    /// UDP echo service port, if any.
    pub udp_echo_port: Option<u16>,
    /// Every node of the farm, this one included.
    pub peers: Vec<Peer>,
}

/// Tunables of a node.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// TCP endpoint configuration.
    pub tcp: ipos_tcp::Config,
    /// Local / forward-connect / temporary table limit.
    pub max_connections: usize,
    /// Forward table limit.
    pub max_forward: usize,
    /// Incoming migrations waiting for their carried bytes, at most.
    pub max_pending: usize,
    /// Client packets held per migrating endpoint, at most.
    pub hold_limit: usize,
    /// How often connection timers are scanned.
    pub timer_scan: Duration,
    /// Whether this node moves connections at all (targets always accept).
    pub migration: bool,
    /// Time before the first connection packet retry; it doubles after each
    /// try, up to 8 times this.
    pub migrate_retry: Duration,
    /// Connection packets sent before the source serves the connection itself.
    pub migrate_tries: u32,
    /// How often server state is advertised (zero: never).
    pub advert_interval: Duration,
    /// Forward entries unused this long are removed.
    pub forward_idle: Duration,
    /// Incoming migrations not completed within this time are dropped.
    pub pending_timeout: Duration,
    /// The policy's static part (URL map, cookie map, weights).
    pub policy: PolicyConfig,
    /// Advertised available memory, MiB.
    pub mem_avail_mib: u32,
    /// Advertised available bandwidth, Mbit/s.
    pub bw_avail_mbps: u32,
    /// UDP flow entries (all roles) unused this long are removed.
    pub udp_idle: Duration,
    /// UDP flow table limit.
    pub max_udp_flows: usize,
    /// TCP connections with no segment from the client for this long are aborted.
    pub conn_idle: Duration,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            tcp: ipos_tcp::Config::default(),
            max_connections: 16384,
            max_forward: 65536,
            max_pending: 1024,
            hold_limit: 32,
            timer_scan: Duration::from_millis(1),
            migration: true,
            migrate_retry: Duration::from_millis(40),
            migrate_tries: 7,
            advert_interval: Duration::from_millis(500),
            forward_idle: Duration::from_secs(120),
            pending_timeout: Duration::from_secs(2),
            policy: PolicyConfig::default(),
            mem_avail_mib: 4096,
            bw_avail_mbps: 10_000,
            udp_idle: Duration::from_secs(30),
            max_udp_flows: 16384,
            conn_idle: Duration::from_secs(300),
        }
    }
}

/// A migration in progress, at its source (the *temporary* state).
struct Migration<B> {
    target: usize,
    tcb: [u8; TCB_LEN],
    tries: u32,
    next_try: Instant,
    /// Client packets that arrived meanwhile, with the offset of their IPv4 header.
    held: Vec<(B, usize)>,
}

/// A UDP flow (client IP and port) in one of its roles.
enum UdpFlow<B> {
    /// Served here.
    Local { last: Instant },
    /// Being moved to `target` (temporary): datagrams are held.
    Moving {
        target: usize,
        tries: u32,
        next_try: Instant,
        held: Vec<(B, usize)>,
        last: Instant,
    },
    /// Moved: datagrams are forwarded to `target` (forward entry).
    Forwarded { target: usize, last: Instant },
    /// Taken over from a front that forwards the datagrams (forward-connect entry).
    Owned { last: Instant },
}

struct Conn<B> {
    ep: Endpoint,
    /// Last segment from the client.
    last_active: Instant,
    app: HttpConn,
    /// Next-hop MAC towards the client.
    peer_mac: EthernetAddress,
    close_requested: bool,
    /// The policy was asked (or need not be).
    decided: bool,
    /// Forward-connect entry: the node that forwards this client's packets here.
    forwarder: Option<usize>,
    /// Temporary entry: being moved away.
    migration: Option<Box<Migration<B>>>,
    /// How many times the endpoint has moved (carried in the TCB's `flags_ext`).
    moves: u16,
    /// Imported but not yet confirmed by its source: nothing is sent to the
    /// client until the source's commit arrives.
    commit: Option<AwaitCommit>,
    /// The target this node gave up moving the connection to (a late
    /// acknowledgement from it gets the abort notice again).
    gave_up_on: Option<usize>,
}

/// A peer's addresses, copied out of [`Peer`] where a frame is built.
#[derive(Clone, Copy)]
struct PeerAddr {
    mac: EthernetAddress,
    ip: Ipv4Address,
}

/// A target's wait for the source's commit.
struct AwaitCommit {
    source: usize,
    tries: u32,
    next_try: Instant,
}

/// One node's data path over one port queue.
pub struct Node<P: Port> {
    port: P,
    id: NodeIdentity,
    me: usize,
    opts: NodeOptions,
    service: Service,
    conns: LocalTable<Conn<P::Buf>>,
    forward: ForwardTable,
    pending: HashMap<ConnKey, Reassembly>,
    udp_flows: HashMap<ForwardKey, UdpFlow<P::Buf>>,
    udp_moving: usize,
    arp: HashMap<Ipv4Address, EthernetAddress>,
    arp_wait: Vec<(P::Buf, Ipv4Address)>,
    view: FarmView,
    rx: Vec<P::Buf>,
    spare: Option<P::Buf>,
    counters: Counters,
    ip_ident: u16,
    iss_secret: u64,
    next_scan: Instant,
    next_slow: Instant,
    next_advert: Instant,
    advert_seq: u32,
    polls: u64,
    busy_polls: u64,
}

/// Where a TCP packet sits in its buffer and how it came.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    /// Straight from the wire: IPv4 at offset 14.
    Wire,
    /// Inside an ipOS data frame from another node: IPv4 at offset 30.
    Frame,
}

impl Via {
    fn offset(self) -> usize {
        match self {
            Via::Wire => ETH_LEN,
            Via::Frame => DATA_HEAD,
        }
    }
}

impl<P: Port> Node<P> {
    /// A node on `port`. `id.peers` must contain the node itself.
    pub fn new(port: P, id: NodeIdentity, opts: NodeOptions) -> Node<P> {
        let service = Service::new(&id.name);
        let iss_secret = {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write(id.name.as_bytes());
            h.finish()
        };
        let mut id = id;
        let me = match id.peers.iter().position(|p| p.ip == id.ip) {
            Some(i) => i,
            None => {
                id.peers.push(Peer {
                    name: id.name.clone(),
                    mac: id.mac,
                    ip: id.ip,
                });
                id.peers.len() - 1
            }
        };
        let view = FarmView::new(&opts.policy);
        Node {
            port,
            conns: LocalTable::new(opts.max_connections),
            forward: ForwardTable::new(opts.max_forward),
            pending: HashMap::new(),
            udp_flows: HashMap::new(),
            udp_moving: 0,
            arp: HashMap::new(),
            arp_wait: Vec::new(),
            view,
            id,
            me,
            opts,
            service,
            rx: Vec::with_capacity(BURST),
            spare: None,
            counters: Counters::default(),
            ip_ident: 1,
            iss_secret,
            next_scan: Instant::from_micros(0),
            next_slow: Instant::from_micros(0),
            next_advert: Instant::from_micros(0),
            advert_seq: 0,
            polls: 0,
            busy_polls: 0,
        }
    }

    fn peer(&self, i: usize) -> PeerAddr {
        let p = &self.id.peers[i];
        PeerAddr {
            mac: p.mac,
            ip: p.ip,
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

    /// Entries in the local / forward-connect / temporary table.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Entries in the forward table.
    pub fn forward_count(&self) -> usize {
        self.forward.len()
    }

    /// Incoming migrations waiting for carried bytes.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// The policy's current view of the farm.
    pub fn view(&self) -> &FarmView {
        &self.view
    }

    /// One iteration of the poll loop; returns the number of frames received.
    pub fn poll(&mut self, now: Instant) -> usize {
        let n = self.port.rx_burst(&mut self.rx);
        let mut rx = std::mem::take(&mut self.rx);
        for buf in rx.drain(..) {
            self.counters.inc(Event::RxFrames);
            self.handle_frame(now, buf);
        }
        self.rx = rx;
        self.polls += 1;
        self.busy_polls += (n > 0) as u64;
        if now >= self.next_scan {
            self.next_scan = now + self.opts.timer_scan;
            self.scan_timers(now);
        }
        if now >= self.next_slow {
            self.next_slow = now + Duration::from_millis(250);
            self.slow_timers(now);
        }
        if self.opts.advert_interval > Duration::ZERO && now >= self.next_advert {
            self.next_advert = now + self.opts.advert_interval;
            self.advertise(now);
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
            ETHERTYPE_IPV4 => match ipv4_len(&buf.data()[ETH_LEN..]) {
                Ok(len) => {
                    if ETH_LEN + len < buf.len() && buf.set_len(ETH_LEN + len).is_err() {
                        return self.counters.drop(DropReason::Ipv4Malformed);
                    }
                    self.handle_ipv4(now, buf)
                }
                Err(r) => self.counters.drop(r),
            },
            _ => self.counters.drop(DropReason::UnknownEthertype),
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
        if operation == ArpOperation::Reply && target_protocol_addr == self.id.ip {
            self.arp.insert(source_protocol_addr, source_hardware_addr);
            return self.flush_arp_wait(source_protocol_addr, source_hardware_addr);
        }
        if operation != ArpOperation::Request || !self.owns_ip(target_protocol_addr) {
            // Refresh what we already know, like a kernel does; learn nothing new.
            if let Some(m) = self.arp.get_mut(&source_protocol_addr) {
                *m = source_hardware_addr;
            }
            return self.counters.drop(DropReason::ArpNotForUs);
        }
        if self.arp.len() < 4096 || self.arp.contains_key(&source_protocol_addr) {
            self.arp.insert(source_protocol_addr, source_hardware_addr);
        }
        // Answer in place: the request buffer becomes the reply.
        let reply = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_hardware_addr: self.id.mac,
            source_protocol_addr: target_protocol_addr,
            target_hardware_addr: source_hardware_addr,
            target_protocol_addr: source_protocol_addr,
        };
        if buf.set_len(ETH_LEN + reply.buffer_len()).is_err() {
            return self.counters.drop(DropReason::ArpMalformed);
        }
        let d = buf.data_mut();
        write_eth(d, source_hardware_addr, self.id.mac, ETHERTYPE_ARP);
        reply.emit(&mut ArpPacket::new_unchecked(&mut d[ETH_LEN..]));
        self.counters.inc(Event::ArpReplies);
        self.transmit(buf);
    }

    fn handle_ipv4(&mut self, now: Instant, buf: P::Buf) {
        let ip = Ipv4Packet::new_unchecked(&buf.data()[ETH_LEN..]);
        if !self.owns_ip(ip.dst_addr()) {
            return self.counters.drop(DropReason::Ipv4NotForUs);
        }
        match ip.next_header() {
            IpProtocol::Icmp => self.handle_icmp(buf),
            IpProtocol::Tcp => self.handle_tcp(now, buf, Via::Wire),
            IpProtocol::Udp => self.handle_udp(now, buf, Via::Wire),
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
        self.counters.inc(Event::IcmpEchoReplies);
        self.transmit(buf);
    }

    /// A client TCP packet, from the wire or out of an ipOS data frame.
    fn handle_tcp(&mut self, now: Instant, buf: P::Buf, via: Via) {
        let off = via.offset();
        let d = buf.data();
        let ip = Ipv4Packet::new_unchecked(&d[off..]);
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let seg = ip.payload();
        let tcp = match TcpPacket::new_checked(seg) {
            Ok(t) => t,
            Err(_) => return self.counters.drop(DropReason::TcpMalformed),
        };
        let (sport, dport) = (tcp.src_port(), tcp.dst_port());
        // Forwarded connections first: no checksum work, the owner verifies.
        let fkey = ForwardKey {
            client_ip: src,
            client_port: sport,
        };
        if !self.forward.is_empty() {
            if let Some(entry) = self.forward.lookup(&fkey, now) {
                if tcp.syn() && !tcp.ack() {
                    // A forwarded connection never sends a SYN again: the client
                    // reuses the port for a new connection. The old entry is stale
                    // (its close notice was lost).
                    self.forward.remove(&fkey);
                    self.counters.inc(Event::ForwardExpired);
                } else if entry.target_port == dport {
                    return self.forward_packet(buf, off, &entry, Event::PacketsForwarded);
                }
            }
        }
        if !tcp.verify_checksum(&IpAddress::Ipv4(src), &IpAddress::Ipv4(dst)) {
            return self.counters.drop(DropReason::TcpBadChecksum);
        }
        let key = ConnKey {
            client_ip: src,
            client_port: sport,
            endpoint_ip: dst,
            endpoint_port: dport,
        };
        if let Some(slot) = self.conns.find(&key) {
            let hold_limit = self.opts.hold_limit;
            let conn = self.conns.get_mut(slot).expect("slot from index");
            if let Some(m) = conn.migration.as_mut() {
                if m.held.len() < hold_limit {
                    m.held.push((buf, off));
                    self.counters.inc(Event::PacketsHeld);
                } else {
                    self.counters.drop(DropReason::MigrationHoldFull);
                }
                return;
            }
            self.counters.inc(Event::TcpSegmentsIn);
            conn.last_active = now;
            if conn.ep.on_segment(now, seg).is_err() {
                self.counters.drop(DropReason::TcpRejected);
            }
            return self.service(now, slot);
        }
        if let Via::Frame = via {
            // Carried request bytes of an incoming migration?
            if let Some(r) = self.pending.get_mut(&key) {
                let seq = tcp.seq_number().0 as u32;
                if r.add(seq, tcp.payload()).is_err() {
                    return self.counters.drop(DropReason::BadChunk);
                }
                if r.is_complete() {
                    let r = self.pending.remove(&key).expect("present");
                    self.install(now, key, r);
                }
                return;
            }
            return self.counters.drop(DropReason::ForwardNoTarget);
        }
        let (syn, ack, rst) = (tcp.syn(), tcp.ack(), tcp.rst());
        if syn && !ack && !rst {
            if !self.id.service_ports.contains(&dport) {
                self.counters.drop(DropReason::TcpNoListener);
                return self.send_reset(buf);
            }
            let tuple = FourTuple {
                local_ip: dst,
                local_port: dport,
                remote_ip: src,
                remote_port: sport,
            };
            let iss = self.initial_sequence(&key, now);
            let ep = match Endpoint::accept(&self.opts.tcp, tuple, seg, iss, now) {
                Ok(ep) => ep,
                Err(_) => return self.counters.drop(DropReason::TcpRejected),
            };
            // Only connections to the VIP are candidates for migration.
            let decided = !(self.opts.migration && Some(dst) == self.id.vip);
            let conn = Conn {
                ep,
                last_active: now,
                app: HttpConn::new(),
                peer_mac: EthernetAddress::from_bytes(&d[6..12]),
                close_requested: false,
                decided,
                forwarder: None,
                migration: None,
                moves: 0,
                commit: None,
                gave_up_on: None,
            };
            match self.conns.insert(key, conn) {
                Ok(slot) => {
                    self.counters.inc(Event::TcpAccepted);
                    self.counters.inc(Event::TcpSegmentsIn);
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

    /// Wraps a client packet (IPv4 header at `off`) in an ipOS data frame to
    /// the endpoint's owner, in the same buffer.
    fn forward_packet(&mut self, mut buf: P::Buf, off: usize, entry: &ForwardEntry, ev: Event) {
        if off < DATA_HEAD && buf.prepend(DATA_HEAD - off).is_err() {
            return self.counters.drop(DropReason::TxNoBuffer);
        }
        let macs = MacAddrs {
            dst: entry.target_mac,
            src: self.id.mac,
        };
        match ipos_wire::emit_data_header(buf.data_mut(), self.id.ethertype, &macs) {
            Ok(len) => {
                if len < buf.len() && buf.set_len(len).is_err() {
                    return self.counters.drop(DropReason::TxNoBuffer);
                }
                self.counters.inc(ev);
                self.transmit(buf);
            }
            Err(e) => self.counters.drop(ipos_drop_reason(&e)),
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
        if buf.set_len(ETH_LEN + IPV4_LEN + 20).is_err() {
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
        self.counters.inc(Event::TcpResetsSent);
        self.transmit(buf);
    }

    fn next_ident(&mut self) -> u16 {
        self.ip_ident = self.ip_ident.wrapping_add(1);
        self.ip_ident
    }

    fn alloc(&mut self) -> Option<P::Buf> {
        let b = self.spare.take().or_else(|| self.port.alloc());
        if b.is_none() {
            self.counters.drop(DropReason::TxNoBuffer);
        }
        b
    }

    /// Allocates a buffer and sets it to its largest length.
    fn alloc_full(&mut self) -> Option<P::Buf> {
        let mut b = self.alloc()?;
        let room = b.len() + b.tailroom();
        b.set_len(room.min(2048)).ok()?;
        Some(b)
    }

    /// Asks the policy where an undecided connection should live, once its
    /// request head is in. Returns the target peer when it is not here.
    fn decide(&mut self, now: Instant, slot: u32) -> Option<usize> {
        let conn = self.conns.get_mut(slot)?;
        let head = match ipos_http::peek_request(conn.ep.recv_slice()) {
            Ok(Some(h)) => h,
            Ok(None) => {
                // Wait for the rest of the head, unless it can never come.
                if conn.ep.recv_available() >= self.service.max_head_bytes()
                    || conn.ep.peer_fin_received()
                {
                    conn.decided = true;
                }
                return None;
            }
            Err(_) => {
                conn.decided = true;
                return None;
            }
        };
        conn.decided = true;
        if conn.moves >= migrate::MAX_MOVES {
            // Enough: policies that disagree must not bounce a connection forever.
            self.counters.inc(Event::DecisionLocal);
            return None;
        }
        let tuple = conn.ep.tuple();
        let imported = conn.forwarder.is_some();
        let info = RequestInfo {
            path: head.path().unwrap_or("/"),
            cookie_value: head.cookie(self.view.cookie_name()),
            service_port: tuple.local_port,
            local_ip: self.id.ip,
            spread_key: spread_key(tuple.remote_ip, tuple.remote_port),
        };
        let d = ipos_policy::choose(&self.view, &info, now.total_millis() as u64);
        // A target moves a connection on only for an explicit rule (URL or
        // cookie), never for load: that could bounce it between nodes.
        let stay = d.target == self.id.ip
            || (imported && !matches!(d.reason, Reason::Url | Reason::Cookie));
        let target = if stay {
            None
        } else {
            self.id.peers.iter().position(|p| p.ip == d.target)
        };
        self.counters.inc(match (target, d.reason) {
            (None, _) | (_, Reason::Local) => Event::DecisionLocal,
            (_, Reason::Url) => Event::DecisionUrl,
            (_, Reason::Cookie) => Event::DecisionCookie,
            (_, Reason::Load) => Event::DecisionLoad,
        });
        target
    }

    /// Freezes a connection and sends its endpoint to `target`.
    fn start_migration(&mut self, now: Instant, slot: u32, target: usize) -> bool {
        let fkey_free = self.forward.len() < self.opts.max_forward;
        let me_ip = self.id.ip;
        let hold = self.opts.hold_limit;
        let Some(conn) = self.conns.get_mut(slot) else {
            return false;
        };
        let (a, b) = conn.ep.unconsumed();
        let carried = a.len() + b.len();
        let (s1, s2) = conn.ep.unacked_and_unsent();
        if !fkey_free
            || conn.ep.state() != State::Established
            || conn.ep.peer_fin_received()
            || !s1.is_empty()
            || !s2.is_empty()
            || carried > migrate::MAX_CARRIED
        {
            self.counters.inc(Event::MigrationsRefused);
            return false;
        }
        let mut tcb: Tcb = conn.ep.export(now);
        tcb.link_addr = conn.peer_mac.0;
        tcb.flags_ext = conn.moves.saturating_add(1);
        let forwarder_ip = conn.forwarder.map(|f| self.id.peers[f].ip).unwrap_or(me_ip);
        tcb.next_hop = forwarder_ip.octets();
        conn.migration = Some(Box::new(Migration {
            target,
            tcb: tcb.to_bytes(),
            tries: 0,
            next_try: now,
            held: Vec::with_capacity(hold),
        }));
        self.counters.inc(Event::MigrationsStarted);
        self.send_migration(now, slot);
        true
    }

    /// Sends (or resends) the connection packet and the carried bytes.
    fn send_migration(&mut self, now: Instant, slot: u32) {
        let retry = self.opts.migrate_retry;
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        let Some(m) = conn.migration.as_mut() else {
            return;
        };
        m.tries += 1;
        // Exponential back-off: a busy target is not a dead one.
        m.next_try = now + retry * (1u32 << (m.tries - 1).min(3));
        let tries = m.tries;
        let target = m.target;
        let tcb = m.tcb;
        let tuple = conn.ep.tuple();
        let peer = self.peer(target);
        let macs = MacAddrs {
            dst: peer.mac,
            src: self.id.mac,
        };
        let flow = flow_of(&tuple);
        if tries > 1 {
            self.counters.inc(Event::MigrationsRetried);
        }
        if !self.send_built(Event::MigrationsSent, |b, et| {
            ipos_wire::emit_tcp_connection(b, et, &macs, &flow, peer.ip, tuple.local_port, &tcb)
        }) {
            return;
        }
        // The carried bytes, as rebuilt client segments in data frames.
        let parsed = match Tcb::parse(&tcb) {
            Ok(t) => t,
            Err(_) => return,
        };
        let carried = parsed.rcv_data_len as usize;
        let base = parsed.rcv_nxt.wrapping_sub(parsed.rcv_data_len);
        let mut chunk = [0u8; CHUNK];
        let mut off = 0;
        while off < carried {
            let n = CHUNK.min(carried - off);
            {
                let conn = self.conns.get(slot).expect("live slot");
                let (a, b) = conn.ep.unconsumed();
                copy_range(a, b, off, &mut chunk[..n]);
            }
            let ident = self.next_ident();
            let Some(mut buf) = self.alloc_full() else {
                return;
            };
            let d = buf.data_mut();
            let Some(len) = migrate::emit_request_segment(
                &mut d[DATA_HEAD..],
                (tuple.remote_ip, tuple.remote_port),
                (tuple.local_ip, tuple.local_port),
                base.wrapping_add(off as u32),
                parsed.snd_nxt,
                u16::MAX,
                ident,
                &chunk[..n],
            ) else {
                return self.counters.drop(DropReason::TxNoBuffer);
            };
            match ipos_wire::emit_data_header(&mut d[..DATA_HEAD + len], self.id.ethertype, &macs) {
                Ok(total) if buf.set_len(total).is_ok() => {
                    self.counters.inc(Event::MigrationChunksSent);
                    self.transmit(buf);
                }
                _ => return self.counters.drop(DropReason::TxNoBuffer),
            }
            off += n;
        }
    }

    /// The target side: imports an endpoint whose carried bytes are all in.
    fn install(&mut self, now: Instant, key: ConnKey, r: Reassembly) {
        let tuple = FourTuple {
            local_ip: key.endpoint_ip,
            local_port: key.endpoint_port,
            remote_ip: key.client_ip,
            remote_port: key.client_port,
        };
        let ep = match Endpoint::import(&self.opts.tcp, &r.tcb, tuple, &[], r.data(), now) {
            Ok(ep) => ep,
            Err(_) => return self.counters.drop(DropReason::IposBadTcb),
        };
        let forwarder = self.id.peers.iter().position(|p| p.ip == r.forwarder_ip);
        let source = self.id.peers.iter().position(|p| p.mac == r.source_mac);
        let conn = Conn {
            ep,
            last_active: now,
            app: HttpConn::new(),
            peer_mac: EthernetAddress(r.tcb.link_addr),
            close_requested: false,
            decided: !self.opts.migration,
            forwarder: Some(forwarder.unwrap_or(self.me)),
            migration: None,
            moves: r.tcb.flags_ext,
            commit: source.map(|s| AwaitCommit {
                source: s,
                tries: 1,
                next_try: now + self.opts.migrate_retry,
            }),
            gave_up_on: None,
        };
        match self.conns.insert(key, conn) {
            Ok(slot) => {
                self.counters.inc(Event::MigrationsReceived);
                self.send_ack(&key, r.source_mac, Protocol::Tcp);
                if source.is_none() {
                    self.service(now, slot);
                }
            }
            Err(_) => self.counters.drop(DropReason::TcpTableFull),
        }
    }

    fn send_ack(&mut self, key: &ConnKey, to: EthernetAddress, protocol: Protocol) {
        let flow = Flow {
            src_addr: key.client_ip,
            src_port: key.client_port,
            dst_addr: key.endpoint_ip,
            dst_port: key.endpoint_port,
        };
        let macs = MacAddrs {
            dst: to,
            src: self.id.mac,
        };
        self.send_built(Event::MigrationAcksSent, |b, et| {
            ipos_wire::emit_ack(b, et, &macs, &flow, protocol)
        });
    }

    /// Builds a frame with `emit` (given the buffer and the EtherType) in a
    /// fresh buffer and sends it, counting `ev`; false when it could not.
    fn send_built(
        &mut self,
        ev: Event,
        emit: impl FnOnce(&mut [u8], u16) -> ipos_wire::Result<usize>,
    ) -> bool {
        let Some(mut buf) = self.alloc_full() else {
            return false;
        };
        match emit(buf.data_mut(), self.id.ethertype) {
            Ok(n) if buf.set_len(n).is_ok() => {
                self.counters.inc(ev);
                self.transmit(buf);
                true
            }
            _ => {
                self.counters.drop(DropReason::TxNoBuffer);
                false
            }
        }
    }

    fn send_notice(&mut self, flow: &Flow, to: usize, notice: Notice) {
        let macs = MacAddrs {
            dst: self.id.peers[to].mac,
            src: self.id.mac,
        };
        self.send_built(Event::NoticesSent, |b, et| {
            ipos_wire::emit_extension(
                b,
                et,
                &macs,
                flow,
                ExtensionKind::ConnectionClosed,
                Protocol::Tcp,
                &notice.emit(),
            )
        });
    }

    /// Moves data between a connection's endpoint and its application, sends
    /// what the endpoint has to send, and removes the connection once closed.
    fn service(&mut self, now: Instant, slot: u32) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        if conn.migration.is_some() || conn.commit.is_some() {
            return; // frozen while it moves, or until its source commits the move
        }
        if !conn.decided {
            if let Some(target) = self.decide(now, slot) {
                if self.start_migration(now, slot, target) {
                    return;
                }
            }
        }
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        if conn.decided {
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
        }
        // Transmit everything the endpoint has ready.
        let peer_mac = conn.peer_mac;
        let tuple = conn.ep.tuple();
        loop {
            let Some(mut buf) = self.alloc() else { break };
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
            self.counters.inc(Event::TcpSegmentsOut);
            self.transmit(buf);
        }
        let conn = self.conns.get(slot).expect("live slot");
        if conn.ep.is_closed() {
            let forwarder = conn.forwarder.filter(|&f| f != self.me);
            self.conns.remove(slot);
            self.counters.inc(Event::TcpClosed);
            if let Some(f) = forwarder {
                self.send_notice(&flow_of(&tuple), f, Notice::CLOSED);
            }
        }
    }

    fn scan_timers(&mut self, now: Instant) {
        if self.udp_moving > 0 {
            self.udp_timers(now);
        }
        for slot in 0..self.conns.slot_count() {
            let Some(c) = self.conns.get(slot) else {
                continue;
            };
            if let Some(m) = &c.migration {
                if now >= m.next_try {
                    if m.tries < self.opts.migrate_tries {
                        self.send_migration(now, slot);
                    } else {
                        self.fall_back(now, slot);
                    }
                }
                continue;
            }
            if let Some(w) = &c.commit {
                if now >= w.next_try {
                    self.await_commit(now, slot);
                }
                continue;
            }
            if c.ep.poll_timeout().is_some_and(|t| t <= now) || c.ep.is_closed() {
                self.service(now, slot);
            }
        }
    }

    /// No commit yet: acknowledge again, or, after as many tries as a source
    /// makes (and then as many again), drop the copy silently: the source
    /// must have served the connection itself.
    fn await_commit(&mut self, now: Instant, slot: u32) {
        let retry = self.opts.migrate_retry;
        let limit = self.opts.migrate_tries * 2;
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        let Some(w) = conn.commit.as_mut() else {
            return;
        };
        if w.tries >= limit {
            self.conns.remove(slot);
            self.counters.inc(Event::MigrationsAborted);
            return;
        }
        w.tries += 1;
        w.next_try = now + retry * (1u32 << (w.tries - 1).min(3));
        let to = self.id.peers[w.source].mac;
        let flow = flow_of(&conn.ep.tuple());
        self.send_ack(&key_of(&flow), to, Protocol::Tcp);
    }

    /// The target never answered: thaw the endpoint and serve it here.
    fn fall_back(&mut self, now: Instant, slot: u32) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        let Some(m) = conn.migration.take() else {
            return;
        };
        conn.decided = true;
        conn.gave_up_on = Some(m.target);
        let flow = flow_of(&conn.ep.tuple());
        self.counters.inc(Event::MigrationsFallback);
        // Should the target have installed the endpoint after all (every
        // acknowledgement lost), tell it to forget its copy.
        let me = self.id.ip;
        self.send_notice(
            &flow,
            m.target,
            Notice {
                owner_ip: me,
                owner_port: flow.dst_port,
            },
        );
        for (buf, off) in m.held {
            let conn = self.conns.get_mut(slot).expect("live slot");
            let ip = Ipv4Packet::new_unchecked(&buf.data()[off..]);
            self.counters.inc(Event::TcpSegmentsIn);
            if conn.ep.on_segment(now, ip.payload()).is_err() {
                self.counters.drop(DropReason::TcpRejected);
            }
        }
        self.service(now, slot);
    }

    fn slow_timers(&mut self, now: Instant) {
        let n = self.forward.expire(now, self.opts.forward_idle);
        for _ in 0..n {
            self.counters.inc(Event::ForwardExpired);
        }
        let timeout = self.opts.pending_timeout;
        self.pending.retain(|_, r| now < r.started + timeout);
        let idle = self.opts.udp_idle;
        let before = self.udp_flows.len();
        self.udp_flows.retain(|_, f| match f {
            UdpFlow::Moving { .. } => true,
            UdpFlow::Local { last } | UdpFlow::Forwarded { last, .. } | UdpFlow::Owned { last } => {
                now < *last + idle
            }
        });
        for _ in self.udp_flows.len()..before {
            self.counters.inc(Event::UdpFlowsExpired);
        }
        let conn_idle = self.opts.conn_idle;
        for slot in 0..self.conns.slot_count() {
            let Some(c) = self.conns.get_mut(slot) else {
                continue;
            };
            if c.migration.is_none() && now >= c.last_active + conn_idle {
                c.ep.abort();
                self.counters.inc(Event::ConnIdleClosed);
                self.service(now, slot);
            }
        }
    }

    fn advertise(&mut self, now: Instant) {
        self.advert_seq = self.advert_seq.wrapping_add(1);
        let cpu = (self.busy_polls * 1000)
            .checked_div(self.polls)
            .unwrap_or(0) as u16;
        self.polls = 0;
        self.busy_polls = 0;
        let mut a = AdvertRepr::new(self.id.ip, self.advert_seq);
        // Load = connections served here; those still waiting for a decision
        // (most of which will move) do not count.
        a.established = (0..self.conns.slot_count())
            .filter(|&i| {
                self.conns
                    .get(i)
                    .is_some_and(|c| c.decided && c.migration.is_none())
            })
            .count() as u32;
        a.cpu_permille = cpu.min(1000);
        a.mem_avail_mib = self.opts.mem_avail_mib;
        a.bw_avail_mbps = self.opts.bw_avail_mbps;
        // The built-in services: (process, memory it needs in MiB, its ports).
        let services = [
            (HTTP_PID, 16, &self.id.service_ports[..]),
            (UDP_ECHO_PID, 1, self.id.udp_echo_port.as_slice()),
        ];
        for (pid, mem_mib, ports) in services {
            if ports.is_empty() {
                continue;
            }
            for &port in ports {
                let _ = a.push_listening(ListenEntry { port, pid });
            }
            let _ = a.push_app(AppEntry {
                pid,
                mem_mib,
                cpu_permille: 1,
            });
        }
        // Our own row, so that the policy weighs this node like the others.
        self.view = ipos_policy::apply_advert(&self.view, &a, now.total_millis() as u64);
        let mut body = [0u8; ipos_policy::advert::MAX_LEN];
        let Ok(blen) = a.emit(&mut body) else { return };
        let flow = Flow {
            // An advert is about a node, not a connection: no destination.
            src_addr: self.id.ip,
            src_port: 0,
            dst_addr: Ipv4Address::UNSPECIFIED,
            dst_port: 0,
        };
        let macs = MacAddrs {
            dst: EthernetAddress::BROADCAST,
            src: self.id.mac,
        };
        self.send_built(Event::AdvertsSent, |b, et| {
            ipos_wire::emit_extension(
                b,
                et,
                &macs,
                &flow,
                ExtensionKind::ServerState,
                Protocol::Tcp,
                &body[..blen],
            )
        });
    }

    fn transmit(&mut self, buf: P::Buf) {
        self.counters.inc(Event::TxFrames);
        self.port.send(buf);
    }

    fn handle_ipos(&mut self, now: Instant, mut buf: P::Buf) {
        let src_mac = EthernetAddress::from_bytes(&buf.data()[6..12]);
        let frame = match ipos_wire::Frame::parse(buf.data(), self.id.ethertype) {
            Ok(f) => f,
            Err(e) => return self.counters.drop(ipos_drop_reason(&e)),
        };
        // Only the farm's nodes speak ipOS to us: a valid frame from any other
        // MAC is spoofed or misdirected.
        if !self.id.peers.iter().any(|p| p.mac == src_mac) {
            return self.counters.drop(DropReason::IposUnknownSender);
        }
        match frame.message {
            Message::TcpConnection {
                flow,
                server_addr,
                tcb,
                ..
            } => {
                self.counters.inc(Event::IposRxConnection);
                let tcb = *tcb;
                self.on_connection_packet(now, flow, server_addr, &tcb, src_mac);
            }
            Message::TcpData { packet, .. } => {
                self.counters.inc(Event::IposRxData);
                let len = DATA_HEAD + packet.len();
                if len < buf.len() && buf.set_len(len).is_err() {
                    return self.counters.drop(DropReason::IposBadLength);
                }
                self.handle_tcp(now, buf, Via::Frame);
            }
            Message::Ack { flow, protocol } => {
                self.counters.inc(Event::IposRxAck);
                if protocol == Protocol::Udp {
                    self.on_udp_ack(flow, src_mac);
                } else {
                    self.on_ack(now, flow, src_mac);
                }
            }
            Message::Extension {
                flow, kind, body, ..
            } => {
                self.counters.inc(Event::IposRxExtension);
                match kind {
                    ExtensionKind::ServerState => match AdvertRepr::parse(body) {
                        Ok(a) => {
                            if a.node_ip != self.id.ip
                                && self.id.peers.iter().any(|p| p.ip == a.node_ip)
                            {
                                self.view = ipos_policy::apply_advert(
                                    &self.view,
                                    &a,
                                    now.total_millis() as u64,
                                );
                                self.counters.inc(Event::AdvertsReceived);
                            } else {
                                self.counters.drop(DropReason::IposUnexpected);
                            }
                        }
                        Err(_) => self.counters.drop(DropReason::AdvertMalformed),
                    },
                    ExtensionKind::ConnectionClosed => match Notice::parse(body) {
                        Some(n) => self.on_notice(flow, n, src_mac),
                        None => self.counters.drop(DropReason::NoticeMalformed),
                    },
                }
            }
            Message::UdpConnection {
                flow, server_addr, ..
            } => {
                self.counters.inc(Event::IposRxConnection);
                self.on_udp_connection(now, flow, server_addr, src_mac);
            }
            Message::UdpData { packet, .. } => {
                self.counters.inc(Event::IposRxData);
                let len = DATA_HEAD + packet.len();
                if len < buf.len() && buf.set_len(len).is_err() {
                    return self.counters.drop(DropReason::IposBadLength);
                }
                self.handle_udp(now, buf, Via::Frame);
            }
        }
    }

    fn on_connection_packet(
        &mut self,
        now: Instant,
        flow: Flow,
        server_addr: Ipv4Address,
        tcb: &[u8; TCB_LEN],
        src_mac: EthernetAddress,
    ) {
        if server_addr != self.id.ip {
            return self.counters.drop(DropReason::IposUnexpected);
        }
        let key = key_of(&flow);
        // The endpoint comes (back) here: stop forwarding this client elsewhere.
        let fkey = ForwardKey {
            client_ip: flow.src_addr,
            client_port: flow.src_port,
        };
        if self
            .forward
            .get(&fkey)
            .is_some_and(|e| e.target_port == flow.dst_port)
        {
            self.forward.remove(&fkey);
            self.counters.inc(Event::ForwardMoved);
        }
        if let Some(slot) = self.conns.find(&key) {
            // Already ours: the acknowledgement was lost. Say it again.
            let c = self.conns.get(slot).expect("slot from index");
            if c.forwarder.is_some() && c.migration.is_none() {
                return self.send_ack(&key, src_mac, Protocol::Tcp);
            }
            return self.counters.drop(DropReason::IposUnexpected);
        }
        if self.pending.contains_key(&key) {
            return; // a retry while the carried bytes are still coming
        }
        let tcb = match Tcb::parse(tcb) {
            Ok(t) => t,
            Err(_) => return self.counters.drop(DropReason::IposBadTcb),
        };
        let Some(r) = Reassembly::new(tcb, src_mac, now) else {
            return self.counters.drop(DropReason::IposBadTcb);
        };
        if r.is_complete() {
            return self.install(now, key, r);
        }
        if self.pending.len() >= self.opts.max_pending {
            return self.counters.drop(DropReason::PendingFull);
        }
        self.pending.insert(key, r);
    }

    fn on_ack(&mut self, now: Instant, flow: Flow, src_mac: EthernetAddress) {
        let key = key_of(&flow);
        let Some(slot) = self.conns.find(&key) else {
            // Ours no more: the target lost our commit and acknowledges again.
            let fkey = ForwardKey {
                client_ip: flow.src_addr,
                client_port: flow.src_port,
            };
            if self
                .forward
                .get(&fkey)
                .is_some_and(|e| e.target_mac == src_mac)
            {
                self.send_ack(&key, src_mac, Protocol::Tcp);
                self.counters.inc(Event::MigrationCommitsSent);
            }
            return self.counters.inc(Event::MigrationAcksDuplicate);
        };
        let c = self.conns.get_mut(slot).expect("slot from index");
        // The target side: our source commits the move.
        if let Some(w) = &c.commit {
            if self.id.peers[w.source].mac == src_mac {
                c.commit = None;
                self.counters.inc(Event::MigrationsCommitted);
                return self.service(now, slot);
            }
            return self.counters.drop(DropReason::IposUnexpected);
        }
        let Some(m) = &c.migration else {
            // A late acknowledgement from a target we gave up on: abort again.
            if let Some(t) = c.gave_up_on.filter(|&t| self.id.peers[t].mac == src_mac) {
                let me = self.id.ip;
                self.send_notice(
                    &flow,
                    t,
                    Notice {
                        owner_ip: me,
                        owner_port: flow.dst_port,
                    },
                );
            }
            return self.counters.inc(Event::MigrationAcksDuplicate);
        };
        let t = m.target;
        let target = self.peer(t);
        if target.mac != src_mac {
            return self.counters.drop(DropReason::IposUnexpected);
        }
        let conn = self.conns.remove(slot).expect("present");
        let m = conn.migration.expect("checked");
        let entry = ForwardEntry {
            target_ip: target.ip,
            target_port: flow.dst_port,
            target_mac: target.mac,
            last_used: now,
        };
        let fkey = ForwardKey {
            client_ip: flow.src_addr,
            client_port: flow.src_port,
        };
        // Room was checked when the migration started; a race with another
        // insert is counted by the table.
        let _ = self.forward.insert(fkey, entry);
        self.counters.inc(Event::MigrationsAcked);
        // Commit: from now on the target owns the connection and may talk.
        self.send_ack(&key, src_mac, Protocol::Tcp);
        self.counters.inc(Event::MigrationCommitsSent);
        if let Some(f) = conn.forwarder.filter(|&f| f != self.me && f != m.target) {
            // A chained move: the front should forward to the new owner directly.
            self.send_notice(
                &flow,
                f,
                Notice {
                    owner_ip: target.ip,
                    owner_port: flow.dst_port,
                },
            );
        }
        for (buf, off) in m.held {
            self.forward_packet(buf, off, &entry, Event::PacketsForwarded);
        }
    }

    /// A client UDP datagram, from the wire or out of an ipOS data frame.
    fn handle_udp(&mut self, now: Instant, buf: P::Buf, via: Via) {
        let off = via.offset();
        let d = buf.data();
        let ip = Ipv4Packet::new_unchecked(&d[off..]);
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let udp = match UdpPacket::new_checked(ip.payload()) {
            Ok(u) => u,
            Err(_) => return self.counters.drop(DropReason::UdpMalformed),
        };
        let (sport, dport) = (udp.src_port(), udp.dst_port());
        if Some(dport) != self.id.udp_echo_port {
            return self.counters.drop(DropReason::UdpNoService);
        }
        if udp.checksum() != 0 && !udp.verify_checksum(&IpAddress::Ipv4(src), &IpAddress::Ipv4(dst))
        {
            return self.counters.drop(DropReason::UdpMalformed);
        }
        let key = ForwardKey {
            client_ip: src,
            client_port: sport,
        };
        let hold_limit = self.opts.hold_limit;
        match self.udp_flows.get_mut(&key) {
            Some(UdpFlow::Forwarded { target, last }) => {
                *last = now;
                let p = &self.id.peers[*target];
                let entry = ForwardEntry {
                    target_ip: p.ip,
                    target_port: dport,
                    target_mac: p.mac,
                    last_used: now,
                };
                return self.forward_packet(buf, off, &entry, Event::UdpForwarded);
            }
            Some(UdpFlow::Moving { held, last, .. }) => {
                *last = now;
                if held.len() < hold_limit {
                    held.push((buf, off));
                    self.counters.inc(Event::UdpHeld);
                } else {
                    self.counters.drop(DropReason::MigrationHoldFull);
                }
                return;
            }
            Some(UdpFlow::Local { last }) | Some(UdpFlow::Owned { last }) => {
                *last = now;
                return self.echo_udp(buf, via);
            }
            None => {}
        }
        if let Via::Frame = via {
            return self.counters.drop(DropReason::ForwardNoTarget);
        }
        if self.udp_flows.len() >= self.opts.max_udp_flows {
            return self.counters.drop(DropReason::UdpTableFull);
        }
        // A new flow: to the VIP, the policy may place it elsewhere.
        let mut target = None;
        if self.opts.migration && Some(dst) == self.id.vip {
            let info = RequestInfo {
                path: "",
                cookie_value: None,
                service_port: dport,
                local_ip: self.id.ip,
                spread_key: spread_key(src, sport),
            };
            let d = ipos_policy::choose(&self.view, &info, now.total_millis() as u64);
            if d.target != self.id.ip {
                target = self.id.peers.iter().position(|p| p.ip == d.target);
            }
        }
        match target {
            None => {
                self.counters.inc(Event::DecisionLocal);
                self.udp_flows.insert(key, UdpFlow::Local { last: now });
                self.echo_udp(buf, via);
            }
            Some(t) => {
                self.counters.inc(Event::DecisionLoad);
                self.counters.inc(Event::UdpMigrationsStarted);
                self.counters.inc(Event::UdpHeld);
                let mut held = Vec::with_capacity(hold_limit);
                held.push((buf, off));
                self.udp_flows.insert(
                    key,
                    UdpFlow::Moving {
                        target: t,
                        tries: 0,
                        next_try: now,
                        held,
                        last: now,
                    },
                );
                self.udp_moving += 1;
                self.send_udp_migration(now, key, dst, dport);
            }
        }
    }

    /// Echoes a datagram back to its client, in the same buffer. A datagram
    /// that came in a data frame is answered directly, from the address the
    /// client sent it to (the VIP).
    fn echo_udp(&mut self, mut buf: P::Buf, via: Via) {
        let peer_mac = match via {
            Via::Wire => EthernetAddress::from_bytes(&buf.data()[6..12]),
            Via::Frame => {
                if buf.adj(DATA_HEAD - ETH_LEN).is_err() {
                    return self.counters.drop(DropReason::UdpMalformed);
                }
                EthernetAddress::BROADCAST
            }
        };
        let ident = self.next_ident();
        let client = {
            let d = buf.data_mut();
            let mut ip = Ipv4Packet::new_unchecked(&mut d[ETH_LEN..]);
            let (s, t) = (ip.src_addr(), ip.dst_addr());
            ip.set_src_addr(t);
            ip.set_dst_addr(s);
            ip.set_hop_limit(64);
            ip.set_ident(ident);
            ip.fill_checksum();
            let ihl = ip.header_len() as usize;
            let mut udp = UdpPacket::new_unchecked(&mut d[ETH_LEN + ihl..]);
            let (sp, dp) = (udp.src_port(), udp.dst_port());
            udp.set_src_port(dp);
            udp.set_dst_port(sp);
            udp.fill_checksum(&IpAddress::Ipv4(t), &IpAddress::Ipv4(s));
            s
        };
        self.counters.inc(Event::UdpEchoed);
        let mac = if peer_mac.is_unicast() {
            Some(peer_mac)
        } else {
            self.arp.get(&client).copied()
        };
        match mac {
            Some(m) => {
                write_eth(buf.data_mut(), m, self.id.mac, ETHERTYPE_IPV4);
                self.transmit(buf);
            }
            None => self.wait_for_mac(buf, client),
        }
    }

    /// Parks a ready reply until `ip`'s MAC address is known, and asks for it.
    fn wait_for_mac(&mut self, buf: P::Buf, ip: Ipv4Address) {
        if self.arp_wait.len() >= ARP_WAIT_LIMIT {
            return self.counters.drop(DropReason::ArpWaitFull);
        }
        let asked = self.arp_wait.iter().any(|(_, w)| *w == ip);
        self.arp_wait.push((buf, ip));
        if asked {
            return;
        }
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
        if b.set_len(ETH_LEN + req.buffer_len()).is_err() {
            return;
        }
        let d = b.data_mut();
        write_eth(d, EthernetAddress::BROADCAST, self.id.mac, ETHERTYPE_ARP);
        let mut p = ArpPacket::new_unchecked(&mut d[ETH_LEN..]);
        req.emit(&mut p);
        debug_assert_eq!(p.hardware_type(), ArpHardware::Ethernet);
        self.counters.inc(Event::ArpRequestsSent);
        self.transmit(b);
    }

    /// Sends the replies that waited for `ip`'s MAC address.
    fn flush_arp_wait(&mut self, ip: Ipv4Address, mac: EthernetAddress) {
        let mut i = 0;
        while i < self.arp_wait.len() {
            if self.arp_wait[i].1 == ip {
                let (mut b, _) = self.arp_wait.swap_remove(i);
                write_eth(b.data_mut(), mac, self.id.mac, ETHERTYPE_IPV4);
                self.transmit(b);
            } else {
                i += 1;
            }
        }
    }

    fn send_udp_migration(&mut self, now: Instant, key: ForwardKey, vip: Ipv4Address, port: u16) {
        let retry = self.opts.migrate_retry;
        let Some(UdpFlow::Moving {
            target,
            tries,
            next_try,
            ..
        }) = self.udp_flows.get_mut(&key)
        else {
            return;
        };
        *tries += 1;
        *next_try = now + retry * (1u32 << (*tries - 1).min(3));
        let t = *target;
        let peer = self.peer(t);
        let flow = Flow {
            src_addr: key.client_ip,
            src_port: key.client_port,
            dst_addr: vip,
            dst_port: port,
        };
        let macs = MacAddrs {
            dst: peer.mac,
            src: self.id.mac,
        };
        self.send_built(Event::MigrationsSent, |b, et| {
            ipos_wire::emit_udp_connection(b, et, &macs, &flow, peer.ip, port)
        });
    }

    /// Retries (or gives up on) UDP flows being moved.
    fn udp_timers(&mut self, now: Instant) {
        let due: Vec<(ForwardKey, u32, Ipv4Address, u16)> = self
            .udp_flows
            .iter()
            .filter_map(|(k, f)| match f {
                UdpFlow::Moving {
                    tries,
                    next_try,
                    held,
                    ..
                } if now >= *next_try => {
                    let (b, off) = held.first()?;
                    let ip = Ipv4Packet::new_unchecked(&b.data()[*off..]);
                    let port = UdpPacket::new_unchecked(ip.payload()).dst_port();
                    Some((*k, *tries, ip.dst_addr(), port))
                }
                _ => None,
            })
            .collect();
        for (key, tries, vip, port) in due {
            if tries < self.opts.migrate_tries {
                self.counters.inc(Event::MigrationsRetried);
                self.send_udp_migration(now, key, vip, port);
                continue;
            }
            // Never acknowledged: serve the flow here.
            let Some(UdpFlow::Moving { held, .. }) =
                self.udp_flows.insert(key, UdpFlow::Local { last: now })
            else {
                continue;
            };
            self.udp_moving = self.udp_moving.saturating_sub(1);
            self.counters.inc(Event::UdpMigrationsFallback);
            for (b, _) in held {
                self.echo_udp(b, Via::Wire);
            }
        }
    }

    fn on_udp_connection(
        &mut self,
        now: Instant,
        flow: Flow,
        server_addr: Ipv4Address,
        src_mac: EthernetAddress,
    ) {
        if server_addr != self.id.ip || Some(flow.dst_port) != self.id.udp_echo_port {
            return self.counters.drop(DropReason::IposUnexpected);
        }
        let key = ForwardKey {
            client_ip: flow.src_addr,
            client_port: flow.src_port,
        };
        let ckey = key_of(&flow);
        if !self.id.peers.iter().any(|p| p.mac == src_mac) {
            return self.counters.drop(DropReason::IposUnexpected);
        }
        match self.udp_flows.get(&key) {
            Some(UdpFlow::Owned { .. }) => {}
            Some(_) => return self.counters.drop(DropReason::IposUnexpected),
            None => {
                if self.udp_flows.len() >= self.opts.max_udp_flows {
                    return self.counters.drop(DropReason::UdpTableFull);
                }
                self.udp_flows.insert(key, UdpFlow::Owned { last: now });
                self.counters.inc(Event::UdpMigrationsReceived);
            }
        }
        self.send_ack(&ckey, src_mac, Protocol::Udp);
    }

    fn on_udp_ack(&mut self, flow: Flow, src_mac: EthernetAddress) {
        let key = ForwardKey {
            client_ip: flow.src_addr,
            client_port: flow.src_port,
        };
        let target = match self.udp_flows.get(&key) {
            Some(UdpFlow::Moving { target, .. }) if self.id.peers[*target].mac == src_mac => {
                *target
            }
            _ => return self.counters.inc(Event::MigrationAcksDuplicate),
        };
        let Some(UdpFlow::Moving { held, last, .. }) = self.udp_flows.insert(
            key,
            UdpFlow::Forwarded {
                target,
                last: Instant::from_micros(0),
            },
        ) else {
            return;
        };
        if let Some(UdpFlow::Forwarded { last: l, .. }) = self.udp_flows.get_mut(&key) {
            *l = last;
        }
        self.udp_moving = self.udp_moving.saturating_sub(1);
        self.counters.inc(Event::UdpMigrationsAcked);
        let p = self.peer(target);
        let entry = ForwardEntry {
            target_ip: p.ip,
            target_port: flow.dst_port,
            target_mac: p.mac,
            last_used: last,
        };
        for (b, off) in held {
            self.forward_packet(b, off, &entry, Event::UdpForwarded);
        }
    }

    fn on_notice(&mut self, flow: Flow, n: Notice, src_mac: EthernetAddress) {
        let fkey = ForwardKey {
            client_ip: flow.src_addr,
            client_port: flow.src_port,
        };
        let Some(e) = self.forward.get(&fkey).copied() else {
            // Not a forwarder of it: maybe a source that gave up on moving it here.
            let key = key_of(&flow);
            let sender = self
                .id
                .peers
                .iter()
                .find(|p| p.mac == src_mac)
                .map(|p| p.ip);
            if sender.is_some() && sender == Some(n.owner_ip) {
                self.pending.remove(&key);
                if let Some(slot) = self.conns.find(&key) {
                    if self
                        .conns
                        .get(slot)
                        .is_some_and(|c| c.forwarder.is_some() && c.migration.is_none())
                    {
                        self.conns.remove(slot);
                        self.counters.inc(Event::MigrationsAborted);
                    }
                }
                return;
            }
            return self.counters.drop(DropReason::IposUnexpected);
        };
        if n.is_closed() {
            if e.target_mac != src_mac {
                return self.counters.drop(DropReason::IposUnexpected);
            }
            self.forward.remove(&fkey);
            return self.counters.inc(Event::ForwardClosed);
        }
        let Some(p) = self
            .id
            .peers
            .iter()
            .position(|p| p.ip == n.owner_ip)
            .map(|i| self.peer(i))
        else {
            return self.counters.drop(DropReason::NoticeMalformed);
        };
        if p.ip == self.id.ip {
            return self.counters.drop(DropReason::NoticeMalformed);
        }
        let _ = self.forward.insert(
            fkey,
            ForwardEntry {
                target_ip: p.ip,
                target_port: n.owner_port,
                target_mac: p.mac,
                last_used: e.last_used,
            },
        );
        self.counters.inc(Event::ForwardMoved);
    }
}

fn spread_key(ip: Ipv4Address, port: u16) -> u32 {
    let o = ip.octets();
    (u32::from_be_bytes(o).wrapping_mul(0x9e37_79b9) ^ u32::from(port)).wrapping_mul(0x85eb_ca6b)
        >> 8
}

fn flow_of(t: &FourTuple) -> Flow {
    Flow {
        src_addr: t.remote_ip,
        src_port: t.remote_port,
        dst_addr: t.local_ip,
        dst_port: t.local_port,
    }
}

fn key_of(f: &Flow) -> ConnKey {
    ConnKey {
        client_ip: f.src_addr,
        client_port: f.src_port,
        endpoint_ip: f.dst_addr,
        endpoint_port: f.dst_port,
    }
}

/// Copies `out.len()` bytes starting at `off` of the concatenation `a ++ b`.
fn copy_range(a: &[u8], b: &[u8], off: usize, out: &mut [u8]) {
    for (i, o) in out.iter_mut().enumerate() {
        let j = off + i;
        *o = if j < a.len() {
            a[j]
        } else {
            b.get(j - a.len()).copied().unwrap_or(0)
        };
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

/// Validates an IPv4 header; returns the packet length without padding.
fn ipv4_len(d: &[u8]) -> Result<usize, DropReason> {
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
