//! Deterministic in-memory farm for migration tests: three full
//! `Node<MemPort>`s (a, b, c) and a client host on one `MemSwitch`, driven
//! by a virtual clock that the test advances. No threads, no real time, no
//! DPDK.
//!
//! The client host runs an `ipos_tcp::Endpoint` per connection, wraps its
//! segments in Ethernet + IPv4 towards node a's MAC and the VIP, and checks
//! every frame it receives (IPv4 header checksum, from the VIP, TCP
//! checksum) before feeding it to the endpoint.
#![allow(dead_code)]

use ipos::config::{test_farm_toml, FarmConfig};
use ipos::node::{Node, NodeIdentity, NodeOptions};
use ipos::port::mem::{MemPort, MemSwitch};
use ipos::port::{PacketBuf, Port};
use ipos_policy::PolicyConfig;
use ipos_tcp::{Endpoint, State};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, IpProtocol, Ipv4Address, Ipv4Packet};
use std::path::Path;

/// Node indices in [`Farm::nodes`] (and switch port indices).
pub const A: usize = 0;
pub const B: usize = 1;
pub const C: usize = 2;
/// Switch port index of the client host.
pub const CLIENT_PORT: usize = 3;

pub const NAMES: [&str; 3] = ["a", "b", "c"];
pub const MACS: [EthernetAddress; 3] = [
    EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x0b]),
    EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x0c]),
    EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x0d]),
];
pub const IPS: [Ipv4Address; 3] = [
    Ipv4Address::new(198, 18, 0, 11),
    Ipv4Address::new(198, 18, 0, 12),
    Ipv4Address::new(198, 18, 0, 13),
];
pub const VIP: Ipv4Address = Ipv4Address::new(198, 18, 0, 100);
pub const SERVICE_PORT: u16 = 80;
pub const CLIENT_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x01]);
pub const CLIENT_IP: Ipv4Address = Ipv4Address::new(198, 18, 0, 1);

pub const ETHERTYPE_IPOS: u16 = ipos_wire::DEFAULT_ETHERTYPE;
/// Offset of the ipOS type byte in a frame (Ethernet 14 + 12).
pub const IPOS_TYPE_AT: usize = 14 + 12;
pub const T_CONNECTION: u8 = 0x01;
pub const T_DATA: u8 = 0x02;
pub const T_ACK: u8 = 0x03;
pub const T_ADVERT: u8 = 0x10;
pub const T_NOTICE: u8 = 0x11;

/// The ipOS type of a frame, None for other frames.
pub fn ipos_type(f: &[u8]) -> Option<u8> {
    (f.len() > IPOS_TYPE_AT && f[12..14] == ETHERTYPE_IPOS.to_be_bytes()).then(|| f[IPOS_TYPE_AT])
}

/// Destination MAC of a frame.
pub fn dst_mac(f: &[u8]) -> EthernetAddress {
    EthernetAddress::from_bytes(&f[0..6])
}

/// Index of the node owning `mac`.
pub fn node_of_mac(mac: EthernetAddress) -> Option<usize> {
    MACS.iter().position(|m| *m == mac)
}

/// The farm's policy with URL rules `(prefix, node index)`.
pub fn policy(url_rules: &[(&str, usize)]) -> PolicyConfig {
    PolicyConfig {
        url_rules: url_rules
            .iter()
            .map(|(p, n)| (p.to_string(), IPS[*n]))
            .collect(),
        cookie_rules: (0..3).map(|n| (NAMES[n].to_string(), IPS[n])).collect(),
        cookie_name: "IPOSID".to_string(),
        ..PolicyConfig::default()
    }
}

/// The farm file of the test farm (the one `scripts/farm` writes).
pub fn farm_config() -> FarmConfig {
    FarmConfig::parse(&test_farm_toml(3), Path::new("test-farm.toml")).expect("test farm file")
}

/// Options of a test node: the farm file's (`/b/` -> b, `/c/` -> c), adverts
/// every 20 ms (a peer silent for 120 ms is down).
pub fn options() -> NodeOptions {
    let mut o = farm_config().node_options();
    o.set_advert_interval(Duration::from_millis(20));
    o
}

/// Node `n` of the test farm, without the UDP echo service.
pub fn identity(n: usize) -> NodeIdentity {
    let mut id = farm_config()
        .identity(NAMES[n])
        .expect("node of the test farm");
    id.udp_echo_port = None;
    id
}

/// A tiny seeded PRNG (splitmix64) for client ISNs and test schedules.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// One frame the client received on a connection.
#[derive(Debug, Clone, Copy)]
pub struct RxFrame {
    pub at: Instant,
    pub src_mac: EthernetAddress,
    pub tcp_flags: u8,
    pub payload_len: usize,
}

/// A client-side TCP connection.
pub struct ClientConn {
    pub ep: Endpoint,
    /// Every byte the endpoint delivered, in order.
    pub received: Vec<u8>,
    /// Every frame received for this connection.
    pub frames: Vec<RxFrame>,
    /// Bytes queued by the test, not yet accepted by the endpoint.
    unsent: Vec<u8>,
    /// Segments sent (SYN, data, ACKs, FIN).
    pub segments_out: u64,
    /// Segments the endpoint refused.
    pub rejected: u64,
    pub close_requested: bool,
    /// The client's application reads at most this many bytes in all
    /// (None: everything); beyond it the receive window closes, as for a
    /// paused or rate-limited download.
    pub read_limit: Option<usize>,
}

impl ClientConn {
    /// True when a RST arrived.
    pub fn rst_seen(&self) -> bool {
        self.frames.iter().any(|f| f.tcp_flags & ipos_tcp::RST != 0)
    }

    /// Source MACs of the received frames, consecutive repeats collapsed.
    pub fn mac_runs(&self) -> Vec<EthernetAddress> {
        let mut v: Vec<EthernetAddress> = Vec::new();
        for f in &self.frames {
            if v.last() != Some(&f.src_mac) {
                v.push(f.src_mac);
            }
        }
        v
    }

    /// Frames whose source MAC is `mac`.
    pub fn frames_from(&self, mac: EthernetAddress) -> usize {
        self.frames.iter().filter(|f| f.src_mac == mac).count()
    }
}

/// What the client host saw that belongs to no connection, or was wrong.
#[derive(Debug, Default, Clone)]
pub struct ClientStats {
    pub frames_in: u64,
    /// Non-IPv4 frames (ipOS broadcasts, ...): ignored.
    pub other_ethertype: u64,
    pub bad_ipv4: u64,
    pub not_from_vip: u64,
    pub bad_tcp_checksum: u64,
    pub unknown_connection: u64,
    pub rst_in: u64,
}

/// The test client host: a MemPort and its TCP endpoints.
pub struct Client {
    pub port: MemPort,
    pub conns: Vec<ClientConn>,
    pub stats: ClientStats,
    /// The client endpoints' TCP configuration (tests may change it).
    pub cfg: ipos_tcp::Config,
    rng: Rng,
    ident: u16,
    buf: Vec<u8>,
}

impl Client {
    pub fn new(port: MemPort, seed: u64) -> Client {
        Client {
            port,
            conns: Vec::new(),
            stats: ClientStats::default(),
            cfg: ipos_tcp::Config::default(),
            rng: Rng::new(seed ^ 0xc11e),
            ident: 0,
            buf: vec![0; 1600],
        }
    }

    /// Opens a connection from `local_port` to VIP:80; returns its index.
    pub fn connect(&mut self, now: Instant, local_port: u16) -> usize {
        let iss = self.rng.next_u64() as u32;
        self.connect_with_iss(now, local_port, iss)
    }

    /// Opens a connection from `local_port` to VIP:80 with initial sequence
    /// number `iss`; returns its index.
    pub fn connect_with_iss(&mut self, now: Instant, local_port: u16, iss: u32) -> usize {
        let flow = ipos_wire::Flow {
            src_addr: VIP,
            src_port: SERVICE_PORT,
            dst_addr: CLIENT_IP,
            dst_port: local_port,
        };
        self.conns.push(ClientConn {
            ep: Endpoint::connect(&self.cfg, flow, iss, now),
            received: Vec::new(),
            frames: Vec::new(),
            unsent: Vec::new(),
            segments_out: 0,
            rejected: 0,
            close_requested: false,
            read_limit: None,
        });
        self.conns.len() - 1
    }

    /// Queues bytes to send on connection `id`.
    pub fn send(&mut self, id: usize, bytes: &[u8]) {
        self.conns[id].unsent.extend_from_slice(bytes);
    }

    /// Closes connection `id` once its queued bytes are sent.
    pub fn close(&mut self, id: usize) {
        self.conns[id].close_requested = true;
    }

    /// Receives every waiting frame, then lets every endpoint send.
    pub fn poll(&mut self, now: Instant) -> usize {
        let frames = self.port.take_all();
        let n = frames.len();
        for f in frames {
            self.receive(now, f.data());
        }
        for id in 0..self.conns.len() {
            self.service(now, id);
        }
        self.port.flush();
        n
    }

    fn receive(&mut self, now: Instant, f: &[u8]) {
        self.stats.frames_in += 1;
        if f.len() < 14 || f[12..14] != [0x08, 0x00] {
            self.stats.other_ethertype += 1;
            return;
        }
        let src_mac = EthernetAddress::from_bytes(&f[6..12]);
        let ip = match Ipv4Packet::new_checked(&f[14..]) {
            Ok(ip) if ip.verify_checksum() && ip.next_header() == IpProtocol::Tcp => ip,
            _ => {
                self.stats.bad_ipv4 += 1;
                return;
            }
        };
        if ip.src_addr() != VIP || ip.dst_addr() != CLIENT_IP {
            self.stats.not_from_vip += 1;
            return;
        }
        let seg = ip.payload();
        if !ipos_tcp::checksum_ok(ip.src_addr(), ip.dst_addr(), seg) {
            self.stats.bad_tcp_checksum += 1;
            return;
        }
        let sport = u16::from_be_bytes([seg[0], seg[1]]);
        let dport = u16::from_be_bytes([seg[2], seg[3]]);
        let flags = seg[13];
        let hlen = ((seg[12] >> 4) as usize) * 4;
        if flags & ipos_tcp::RST != 0 {
            self.stats.rst_in += 1;
        }
        let Some(c) = self.conns.iter_mut().find(|c| {
            let t = c.ep.flow();
            t.dst_port == dport && t.src_port == sport && c.ep.state() != State::Closed
        }) else {
            self.stats.unknown_connection += 1;
            return;
        };
        c.frames.push(RxFrame {
            at: now,
            src_mac,
            tcp_flags: flags,
            payload_len: seg.len().saturating_sub(hlen),
        });
        if c.ep.on_segment(now, seg).is_err() {
            c.rejected += 1;
        }
    }

    fn service(&mut self, now: Instant, id: usize) {
        let c = &mut self.conns[id];
        loop {
            let room = c
                .read_limit
                .map_or(usize::MAX, |l| l.saturating_sub(c.received.len()));
            let s = c.ep.recv_slice();
            let s = &s[..s.len().min(room)];
            if s.is_empty() {
                break;
            }
            let n = s.len();
            c.received.extend_from_slice(s);
            c.ep.recv_consume(n);
        }
        if !c.unsent.is_empty() {
            let n = c.ep.send_slice(&c.unsent);
            c.unsent.drain(..n);
        }
        if c.close_requested && c.unsent.is_empty() {
            c.ep.close();
        }
        loop {
            let c = &mut self.conns[id];
            let Some(n) = c.ep.poll_transmit(now, &mut self.buf[..]) else {
                break;
            };
            c.segments_out += 1;
            let flow = c.ep.flow();
            self.ident = self.ident.wrapping_add(1);
            let mut frame = MemBufWriter::new(14 + 20 + n);
            let d = frame.bytes_mut();
            ipos_wire::emit_ethernet_header(d, MACS[A], CLIENT_MAC, 0x0800).expect("room");
            let ip = ipos_wire::Ipv4Header {
                src: flow.dst_addr,
                dst: flow.src_addr,
                protocol: IpProtocol::Tcp,
                payload_len: n,
                ident: self.ident,
            };
            ipos_wire::emit_ipv4_header(&mut d[14..], &ip).expect("room");
            d[34..34 + n].copy_from_slice(&self.buf[..n]);
            let buf = frame.into_buf(&mut self.port);
            self.port.send(buf);
        }
    }
}

/// Builds a frame and moves it into a port buffer.
struct MemBufWriter(Vec<u8>);

impl MemBufWriter {
    fn new(len: usize) -> MemBufWriter {
        MemBufWriter(vec![0; len])
    }
    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
    fn into_buf(self, port: &mut MemPort) -> ipos::port::mem::MemBuf {
        let mut b = port.alloc().expect("mem buffer");
        b.set_len(self.0.len()).expect("frame fits");
        b.data_mut().copy_from_slice(&self.0);
        b
    }
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Index of the first body byte that breaks the `/bytes/N` pattern.
    pub fn first_bad_byte(&self) -> Option<usize> {
        self.body
            .iter()
            .enumerate()
            .find(|(i, b)| **b != (*i % 251) as u8)
            .map(|(i, _)| i)
    }

    /// Panics unless this is a complete, byte-exact `/bytes/len` response from `node`.
    pub fn assert_bytes_from(&self, node: &str, len: usize) {
        assert_eq!(self.status, 200, "status; headers {:?}", self.headers);
        assert_eq!(
            self.header("X-Ipos-Node"),
            Some(node),
            "served by; headers {:?}",
            self.headers
        );
        assert_eq!(
            self.header("Content-Length"),
            Some(len.to_string().as_str()),
            "content length"
        );
        assert_eq!(self.body.len(), len, "body length");
        assert_eq!(
            self.first_bad_byte(),
            None,
            "body byte differs from i % 251"
        );
    }
}

/// Parses the complete responses at the start of `bytes` (with
/// Content-Length bodies); returns them and the bytes they used.
pub fn parse_responses(bytes: &[u8]) -> (Vec<Response>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        let rest = &bytes[at..];
        let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") else {
            break;
        };
        let head = String::from_utf8_lossy(&rest[..end]).to_string();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| {
                let (k, v) = l.split_once(':')?;
                Some((k.trim().to_string(), v.trim().to_string()))
            })
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let body_at = end + 4;
        if rest.len() < body_at + len {
            break;
        }
        out.push(Response {
            status,
            headers,
            body: rest[body_at..body_at + len].to_vec(),
        });
        at += body_at + len;
    }
    (out, at)
}

/// The farm: nodes a, b, c and the client on one switch, a virtual clock.
pub struct Farm {
    pub switch: MemSwitch,
    pub nodes: Vec<Node<MemPort>>,
    pub client: Client,
    pub now: Instant,
    /// Virtual time added by [`Farm::step`].
    pub tick: Duration,
    /// Steps taken so far.
    pub steps: u64,
    /// Nodes that are dead ([`Farm::kill`]): never polled, their frames lost.
    pub dead: [bool; 3],
    /// Lanes 1.. of each node ([`Farm::with_lanes`]; `nodes[n]` is lane 0).
    pub lanes: Vec<Vec<Node<MemPort>>>,
}

/// Most poll rounds within one time step (each round polls every host).
const ROUNDS_PER_STEP: usize = 64;
/// Most steps any run may take (a hard bound on the work of one test).
const MAX_STEPS: u64 = 400_000;

impl Farm {
    /// A farm whose node `n` uses `opts(n)`.
    pub fn with_options(seed: u64, opts: impl Fn(usize) -> NodeOptions) -> Farm {
        Farm::with_identities(seed, opts, identity)
    }

    /// A farm whose node `n` is `id(n)` with `opts(n)`.
    pub fn with_identities(
        seed: u64,
        opts: impl Fn(usize) -> NodeOptions,
        id: impl Fn(usize) -> NodeIdentity,
    ) -> Farm {
        let switch = MemSwitch::new(seed);
        let nodes: Vec<Node<MemPort>> = (0..3)
            .map(|n| Node::new(switch.port(MACS[n]), id(n), opts(n)))
            .collect();
        let port = switch.port(CLIENT_MAC);
        assert_eq!(port.index(), CLIENT_PORT);
        Farm {
            switch,
            nodes,
            client: Client::new(port, seed),
            now: Instant::from_millis(1_000),
            tick: Duration::from_micros(200),
            steps: 0,
            dead: [false; 3],
            lanes: vec![Vec::new(), Vec::new(), Vec::new()],
        }
    }

    /// A farm whose nodes each poll `lanes` lcores: node `n` is `lanes`
    /// `Node`s on the queues of one switch port, `id(n)` with `opts(n)`.
    pub fn with_lanes(
        seed: u64,
        lanes: usize,
        opts: impl Fn(usize) -> NodeOptions,
        id: impl Fn(usize) -> NodeIdentity,
    ) -> Farm {
        let switch = MemSwitch::new(seed);
        let mut nodes = Vec::new();
        let mut extra = Vec::new();
        for (n, &mac) in MACS.iter().enumerate() {
            let ports = switch.port_queues(mac, lanes);
            let mut all: Vec<Node<MemPort>> = ports
                .into_iter()
                .zip(ipos::node::Lane::group(lanes))
                .map(|(port, lane)| Node::with_lane(port, id(n), opts(n), lane))
                .collect();
            let rest = all.split_off(1);
            nodes.push(all.pop().expect("lane 0"));
            extra.push(rest);
        }
        let port = switch.port(CLIENT_MAC);
        assert_eq!(port.index(), CLIENT_PORT);
        Farm {
            switch,
            nodes,
            client: Client::new(port, seed),
            now: Instant::from_millis(1_000),
            tick: Duration::from_micros(200),
            steps: 0,
            dead: [false; 3],
            lanes: extra,
        }
    }

    /// Every lane of node `n`, lane 0 first.
    pub fn lanes_of(&self, n: usize) -> impl Iterator<Item = &Node<MemPort>> {
        std::iter::once(&self.nodes[n]).chain(self.lanes[n].iter())
    }

    /// Connections node `n` holds, over all its lanes.
    pub fn conns(&self, n: usize) -> usize {
        self.lanes_of(n).map(|l| l.connection_count()).sum()
    }

    /// Node `n` dies (as under `kill -9`): it is polled no more, and the
    /// frames sent to it are lost.
    pub fn kill(&mut self, n: usize) {
        self.dead[n] = true;
    }

    /// Node `n` starts again from nothing (no connections, advert sequence
    /// from 1) on the same switch port, with `opts`.
    pub fn restart(&mut self, n: usize, opts: NodeOptions) {
        let port = self.switch.reattach(n);
        self.nodes[n] = Node::new(port, identity(n), opts);
        self.dead[n] = false;
    }

    /// A farm of nodes with [`options`].
    pub fn new(seed: u64) -> Farm {
        Farm::with_options(seed, |_| options())
    }

    /// Polls every host until the switch is quiet (bounded), then advances
    /// the clock by one tick.
    pub fn step(&mut self) {
        for _ in 0..ROUNDS_PER_STEP {
            self.client.poll(self.now);
            for (i, n) in self.nodes.iter_mut().enumerate() {
                if self.dead[i] {
                    drop(n.port_mut().take_all());
                } else {
                    n.poll(self.now);
                }
            }
            for (i, lanes) in self.lanes.iter_mut().enumerate() {
                for n in lanes.iter_mut() {
                    if self.dead[i] {
                        drop(n.port_mut().take_all());
                    } else {
                        n.poll(self.now);
                    }
                }
            }
            if self.switch.pending() == 0 {
                break;
            }
        }
        self.now += self.tick;
        self.steps += 1;
        assert!(self.steps < MAX_STEPS, "step bound exceeded");
    }

    /// Steps for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.step();
        }
    }

    /// Steps until `done` or `limit` of virtual time has passed; returns
    /// whether `done` held.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Farm) -> bool) -> bool {
        let end = self.now + limit;
        while self.now < end {
            if done(self) {
                return true;
            }
            self.step();
        }
        done(self)
    }

    /// Runs until every node has seen the others' adverts.
    pub fn warm_up(&mut self) {
        let ok = self.run_until(Duration::from_millis(500), |f| {
            f.nodes.iter().chain(f.lanes.iter().flatten()).all(|n| {
                n.counters().get(ipos::counters::Event::AdvertsReceived) >= 4
                    && IPS.iter().all(|ip| n.view().servers().get(*ip).is_some())
            })
        });
        assert!(ok, "adverts were not exchanged");
    }

    pub fn node(&self, n: usize) -> &Node<MemPort> {
        &self.nodes[n]
    }

    /// Counter `e` of node `n`, over all its lanes.
    pub fn ev(&self, n: usize, e: ipos::counters::Event) -> u64 {
        self.lanes_of(n).map(|l| l.counters().get(e)).sum()
    }

    /// Drop counter `r` of node `n`, over all its lanes.
    pub fn drops(&self, n: usize, r: ipos::counters::DropReason) -> u64 {
        self.lanes_of(n).map(|l| l.counters().dropped(r)).sum()
    }

    /// Complete responses received on client connection `id` so far.
    pub fn responses(&self, id: usize) -> Vec<Response> {
        parse_responses(&self.client.conns[id].received).0
    }

    /// Opens a connection and sends `request` on it; returns its index.
    pub fn request(&mut self, local_port: u16, request: &str) -> usize {
        let id = self.client.connect(self.now, local_port);
        self.client.send(id, request.as_bytes());
        id
    }

    /// Runs until connection `id` holds `n` complete responses.
    pub fn await_responses(&mut self, id: usize, n: usize, limit: Duration) -> Vec<Response> {
        let ok = self.run_until(limit, |f| f.responses(id).len() >= n);
        let r = self.responses(id);
        assert!(
            ok,
            "{} of {n} responses after {limit:?} (received {} bytes); {}",
            r.len(),
            self.client.conns[id].received.len(),
            self.summary()
        );
        r
    }

    /// Closes connection `id` and runs until the client endpoint is closed
    /// (TIME-WAIT over) and no node holds a connection.
    pub fn close_and_drain(&mut self, id: usize, limit: Duration) {
        self.client.close(id);
        let ok = self.run_until(limit, |f| {
            f.client.conns[id].ep.state() == State::Closed && (0..3).all(|n| f.conns(n) == 0)
        });
        assert!(
            ok,
            "connection not drained: client {:?}; {}",
            self.client.conns[id].ep.state(),
            self.summary()
        );
    }

    /// Closes connections `ids` and runs until every client endpoint is
    /// closed and no node holds a connection.
    pub fn close_all_and_drain(&mut self, ids: &[usize], limit: Duration) {
        for &id in ids {
            self.client.close(id);
        }
        let ok = self.run_until(limit, |f| {
            f.client.conns.iter().all(|c| c.ep.state() == State::Closed)
                && (0..3).all(|n| f.conns(n) == 0)
        });
        assert!(ok, "not drained; {}", self.summary());
    }

    /// Every node's non-zero counters, for failure messages.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for (i, name) in NAMES.iter().enumerate() {
            for (l, n) in self.lanes_of(i).enumerate() {
                s.push_str(&format!(
                    "\n  {}{}: conns={} fwd={} pending={} {}",
                    name,
                    if self.lanes[i].is_empty() {
                        String::new()
                    } else {
                        format!("/{l}")
                    },
                    n.connection_count(),
                    n.forward_count(),
                    n.pending_count(),
                    n.counters().summary()
                ));
            }
        }
        s.push_str(&format!("\n  client: {:?}", self.client.stats));
        s
    }
}

/// Client connection `id` and the farm are clean: no RST at the client or
/// from a node, every frame the client got well formed and from the VIP, no
/// move given up, no service state or TCB refused, no data frame into the
/// void.
pub fn assert_clean(f: &Farm, id: usize) {
    use ipos::counters::{DropReason, Event};
    assert!(!f.client.conns[id].rst_seen(), "RST at the client");
    assert_eq!(f.client.stats.rst_in, 0);
    assert_eq!(f.client.stats.bad_tcp_checksum, 0);
    assert_eq!(f.client.stats.not_from_vip, 0);
    for (n, name) in NAMES.iter().enumerate() {
        assert_eq!(f.ev(n, Event::TcpResetsSent), 0, "{name} sent a RST");
        assert_eq!(f.ev(n, Event::MigrationsFallback), 0, "{name}");
        assert_eq!(f.drops(n, DropReason::ForwardNoTarget), 0, "{name}");
        assert_eq!(f.drops(n, DropReason::ServiceStateMalformed), 0, "{name}");
        assert_eq!(f.drops(n, DropReason::IposBadTcb), 0, "{name}");
    }
}

/// A node's key of the client's connection from `port` (client -> VIP).
pub fn node_flow(port: u16) -> ipos_wire::Flow {
    ipos_wire::Flow {
        src_addr: CLIENT_IP,
        src_port: port,
        dst_addr: VIP,
        dst_port: SERVICE_PORT,
    }
}

/// Drops `pct`% of every ipOS frame on the switch (seeded); the counter
/// says how many were lost.
pub fn lose_ipos(f: &Farm, seed: u64, pct: u64) -> std::rc::Rc<std::cell::Cell<u32>> {
    let lost = std::rc::Rc::new(std::cell::Cell::new(0u32));
    let l = lost.clone();
    let mut rng = Rng::new(seed);
    f.switch.set_hook(move |_, frame| {
        if ipos_type(frame).is_some() && rng.next_u64() % 100 < pct {
            l.set(l.get() + 1);
            ipos::port::mem::HookAction::Drop
        } else {
            ipos::port::mem::HookAction::Deliver
        }
    });
    lost
}

/// `GET <path>` request text.
pub fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n")
}
