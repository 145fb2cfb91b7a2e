//! The `node` target's world: two whole nodes (a fronts the VIP, b is a
//! target) and a client host on one `MemSwitch`, built from
//! `ipos::config::test_farm_toml(2)`, driven by a sequence of [`Op`]s.
//!
//! The client host runs real `ipos_tcp` endpoints, so that connections get
//! through the handshake, send requests and migrate; around them the input
//! injects frames of every kind (templates from [`crate::frames`], mutated,
//! checksums repaired or not), replays mutated copies of frames that went
//! over the switch, and drops, duplicates or holds frames in flight.
//!
//! Invariants, checked after every operation that polls:
//! - every frame that reached a node is counted once (`rx_frames` equals the
//!   frames injected into it plus those the switch delivered to it, and the
//!   port's own count);
//! - every frame a node sent is accounted for (`tx_frames` equals what its
//!   port sent, dropped or still queues);
//! - every table stays within its limit;
//! - every IPv4 frame a node sends the client carries valid checksums and
//!   comes from the VIP or a node address; UDP echoes carry what was sent.
//!
//! When the input injects nothing of its own (only client actions, time and
//! at most a few lost frames), the farm must also deliver: after a settling
//! period every request gets its complete, byte-exact response.

use crate::frames::{self, Mutation, CLIENT_IP, CLIENT_MAC, IPS, MACS, VIP};
use crate::input::{Reader, Writer};
use ipos::config::{test_farm_toml, FarmConfig};
use ipos::counters::Event;
use ipos::node::{Node, NodeIdentity, NodeOptions};
use ipos::port::mem::{HookAction, MemPort, MemSwitch};
use ipos::port::{PacketBuf, Port};
use ipos_tcp::{Endpoint, Flow, State};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, Ipv4Packet};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::Path;
use std::rc::Rc;
use std::sync::OnceLock;

/// Client connection slots (client ports 40000..40008).
pub const SLOTS: usize = 8;
/// Client UDP ports (41000..41004).
pub const UDP_PORTS: usize = 4;
/// Operations one input runs at most.
pub const MAX_OPS: usize = 128;
/// Frames the switch remembers for [`Op::Replay`].
const RECENT: usize = 16;
/// Entries [`Op::Plan`] queues at most.
const MAX_PLAN: usize = 64;
/// Poll rounds within one time step, at most.
const ROUNDS: usize = 64;
/// Frames lost in flight (dropped or held) beyond which delivery is not checked.
const LIVENESS_MAX_LOST: u32 = 3;
/// Virtual time the settling period may take.
const SETTLE: Duration = Duration::from_secs(60);
/// More forwarded packets plus commits than one run can cause without a loop.
const MAX_LOOPED: u64 = 20_000;

/// The requests a client can send, in the order [`Op::Request`] names them.
pub const REQUESTS: &[&[u8]] = &[
    b"GET /bytes/100 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /b/bytes/2000 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nCookie: IPOSID=b\r\n\r\n",
    b"GET /bytes/5000 HTTP/1.1\r\nHost: x\r\nCookie: IPOSID=a\r\n\r\n",
    b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789",
    b"POST /b/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"GET /bytes/10 HTTP/1.1\r\nHost: x\r\n\r\nGET /b/bytes/20 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /c/bytes/30 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GARBAGE\r\n\r\n",
    b"GET /b/byt",
    b"POST /b/upload HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
];

/// What a complete response to each entry of [`REQUESTS`] must be, or None
/// when its responses are not checked (errors, a partial head, an interim
/// `100 Continue`): a list of (status, `/bytes/N` body length).
fn expected(kind: usize) -> Option<&'static [(u16, Option<usize>)]> {
    Some(match kind {
        0 => &[(200, Some(100))],
        1 => &[(200, Some(2000))],
        2 => &[(200, None)],
        3 => &[(200, Some(5000))],
        4 | 5 => &[(200, None)],
        6 => &[(200, Some(10)), (200, Some(20))],
        7 => &[(200, Some(30))],
        _ => return None,
    })
}

/// One step of a `node` input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// The client opens a connection from its port `40000 + slot % 8` (a
    /// connection still open on that slot is forgotten without a word).
    Connect { slot: u8 },
    /// The client sends request `kind` of [`REQUESTS`] on `slot`.
    Request { slot: u8, kind: u8 },
    /// The client closes `slot` (after what it queued).
    Close { slot: u8 },
    /// The client aborts `slot` (RST).
    Abort { slot: u8 },
    /// The client sends a UDP datagram of `len % 64 + 1` bytes to the VIP's
    /// echo port from port `41000 + port % 4`.
    Udp { port: u8, len: u8 },
    /// A template frame, mutated, injected into node `node % 2`; `spoof` puts
    /// the client's MAC as its source.
    Inject {
        node: u8,
        template: u8,
        spoof: bool,
        m: Mutation,
    },
    /// A mutated copy of one of the last frames that crossed the switch,
    /// injected into node `node % 2`.
    Replay { recent: u8, node: u8, m: Mutation },
    /// Queues what happens to a later frame in flight: low 3 bits
    /// 1/4 drop, 2/6 duplicate, 3/7 hold, else deliver; bits 3-4 the frames it
    /// applies to: any, ipOS but adverts, to the client, from the client.
    Plan { action: u8 },
    /// Frames held by [`Op::Plan`] go on their way (late).
    Release,
    /// Time goes on: `amount + 1` ms below 128, else `(amount - 127) * 100`
    /// ms in steps of 100 ms.
    Advance { amount: u8 },
    /// One round of polls, at the same instant.
    Poll,
}

const OPS: u8 = 11;

impl Op {
    /// Decodes the next operation.
    pub fn read(r: &mut Reader<'_>) -> Op {
        let mutation = |r: &mut Reader<'_>| {
            let kind = r.u8();
            Mutation {
                kind: kind & 0x7f,
                pos: r.u16(),
                val: r.u8(),
                fix: kind & 0x80 == 0,
            }
        };
        match r.u8() % OPS {
            0 => Op::Connect { slot: r.u8() },
            1 => Op::Request {
                slot: r.u8(),
                kind: r.u8(),
            },
            2 => Op::Close { slot: r.u8() },
            3 => Op::Abort { slot: r.u8() },
            4 => Op::Udp {
                port: r.u8(),
                len: r.u8(),
            },
            5 => {
                let node = r.u8();
                let t = r.u8();
                Op::Inject {
                    node,
                    template: t & 0x7f,
                    spoof: t & 0x80 != 0,
                    m: mutation(r),
                }
            }
            6 => Op::Replay {
                recent: r.u8(),
                node: r.u8(),
                m: mutation(r),
            },
            7 => Op::Plan { action: r.u8() },
            8 => Op::Release,
            9 => Op::Advance { amount: r.u8() },
            _ => Op::Poll,
        }
    }

    /// Encodes the operation (the mirror of [`Op::read`]).
    pub fn write(&self, w: &mut Writer) {
        let mutation = |w: &mut Writer, m: &Mutation| {
            w.u8((m.kind & 0x7f) | if m.fix { 0 } else { 0x80 })
                .u16(m.pos)
                .u8(m.val);
        };
        match *self {
            Op::Connect { slot } => {
                w.u8(0).u8(slot);
            }
            Op::Request { slot, kind } => {
                w.u8(1).u8(slot).u8(kind);
            }
            Op::Close { slot } => {
                w.u8(2).u8(slot);
            }
            Op::Abort { slot } => {
                w.u8(3).u8(slot);
            }
            Op::Udp { port, len } => {
                w.u8(4).u8(port).u8(len);
            }
            Op::Inject {
                node,
                template,
                spoof,
                m,
            } => {
                w.u8(5)
                    .u8(node)
                    .u8((template & 0x7f) | if spoof { 0x80 } else { 0 });
                mutation(w, &m);
            }
            Op::Replay { recent, node, m } => {
                w.u8(6).u8(recent).u8(node);
                mutation(w, &m);
            }
            Op::Plan { action } => {
                w.u8(7).u8(action);
            }
            Op::Release => {
                w.u8(8);
            }
            Op::Advance { amount } => {
                w.u8(9).u8(amount);
            }
            Op::Poll => {
                w.u8(10);
            }
        }
    }
}

/// Encodes a whole input.
pub fn encode(ops: &[Op]) -> Vec<u8> {
    let mut w = Writer::default();
    for op in ops {
        op.write(&mut w);
    }
    w.0
}

/// What the switch saw, shared with its hook.
#[derive(Default)]
struct Wire {
    plan: VecDeque<u8>,
    recent: VecDeque<Vec<u8>>,
    /// Frames the switch delivered to each station.
    delivered: [u64; 3],
    /// Frames each station transmitted.
    sent: [u64; 3],
    /// (sender, destination MAC) of every frame held, in order.
    held: Vec<(usize, EthernetAddress)>,
    /// Frames dropped or held by the plan.
    lost: u32,
}

impl Wire {
    /// The stations a frame from `from` to `dst` reaches (as `MemSwitch` routes).
    fn count_delivery(&mut self, from: usize, dst: EthernetAddress, copies: u64) {
        match MACS.iter().position(|m| *m == dst) {
            Some(i) if dst.is_unicast() => self.delivered[i] += copies,
            _ => {
                for (i, d) in self.delivered.iter_mut().enumerate() {
                    if i != from {
                        *d += copies;
                    }
                }
            }
        }
    }

    fn on_transmit(&mut self, from: usize, f: &[u8]) -> HookAction {
        self.sent[from] += 1;
        if self.recent.len() == RECENT {
            let mut old = self.recent.pop_front().expect("full");
            old.clear();
            old.extend_from_slice(f);
            self.recent.push_back(old);
        } else {
            self.recent.push_back(f.to_vec());
        }
        let dst = if f.len() >= 6 {
            EthernetAddress::from_bytes(&f[..6])
        } else {
            EthernetAddress::BROADCAST
        };
        let action = match self.plan.front() {
            Some(&p) if applies(p, from, dst, f) => {
                self.plan.pop_front();
                match p & 7 {
                    1 | 4 => HookAction::Drop,
                    2 | 6 => HookAction::Duplicate,
                    3 | 7 => HookAction::Hold,
                    _ => HookAction::Deliver,
                }
            }
            _ => HookAction::Deliver,
        };
        match action {
            HookAction::Deliver => self.count_delivery(from, dst, 1),
            HookAction::Duplicate => self.count_delivery(from, dst, 2),
            HookAction::Hold => {
                self.lost += 1;
                self.held.push((from, dst));
            }
            _ => self.lost += 1,
        }
        action
    }
}

/// Does plan entry `p` apply to this frame?
fn applies(p: u8, from: usize, dst: EthernetAddress, f: &[u8]) -> bool {
    match (p >> 3) & 3 {
        0 => true,
        1 => {
            f.len() > 26 && f[12..14] == ipos_wire::DEFAULT_ETHERTYPE.to_be_bytes() && f[26] != 0x10
        }
        2 => dst == CLIENT_MAC,
        _ => from == 2,
    }
}

/// A client connection.
struct Conn {
    ep: Endpoint,
    /// Bytes accepted by the endpoint.
    received: Vec<u8>,
    /// Bytes queued for the endpoint.
    unsent: Vec<u8>,
    /// Complete responses this connection must get, in order.
    expect: Vec<(u16, Option<usize>)>,
    /// False once something makes the responses unpredictable.
    checked: bool,
    close: bool,
}

/// The client host.
struct Client {
    port: MemPort,
    conns: [Option<Conn>; SLOTS],
    /// Times each slot was connected.
    opened: [u32; SLOTS],
    next_iss: u32,
    udp_sent: [u64; UDP_PORTS],
    /// UDP echoes are checked (nothing else was injected that could be echoed).
    strict: bool,
    buf: Vec<u8>,
    ident: u16,
}

fn udp_payload(port: u16, len: usize) -> impl Iterator<Item = u8> {
    (0..len).map(move |i| (port as u8).wrapping_add(i as u8).wrapping_mul(3))
}

/// Sends a frame from the client's port.
fn send_frame(port: &mut MemPort, dst: EthernetAddress, ethertype: u16, body: &[u8]) {
    let Some(mut b) = port.alloc() else {
        return;
    };
    if b.set_len(14 + body.len()).is_err() {
        return;
    }
    let d = b.data_mut();
    ipos_wire::emit_ethernet_header(d, dst, CLIENT_MAC, ethertype).expect("room");
    d[14..].copy_from_slice(body);
    port.send(b);
}

impl Client {
    /// Receives every waiting frame; panics on a frame no node may send.
    fn receive(&mut self, now: Instant) -> usize {
        let frames = self.port.take_all();
        for f in &frames {
            let f = f.data();
            if f.len() < 14 {
                continue;
            }
            match u16::from_be_bytes([f[12], f[13]]) {
                0x0806 => self.on_arp(&f[14..]),
                0x0800 => self.on_ipv4(now, &f[14..]),
                _ => {}
            }
        }
        frames.len()
    }

    fn on_arp(&mut self, a: &[u8]) {
        // A request for the client's address gets a reply (nodes resolve
        // the client before answering it directly).
        if a.len() < 28 || a[6..8] != [0, 1] || a[24..28] != CLIENT_IP.octets() {
            return;
        }
        let sha = EthernetAddress::from_bytes(&a[8..14]);
        let spa = ipos_tcp::Ipv4Address::new(a[14], a[15], a[16], a[17]);
        if !sha.is_unicast() {
            return;
        }
        let reply = frames::arp(2, CLIENT_MAC, CLIENT_IP, sha, spa);
        send_frame(&mut self.port, sha, 0x0806, &reply);
    }

    fn on_ipv4(&mut self, now: Instant, p: &[u8]) {
        let ip = Ipv4Packet::new_checked(p).expect("a node sent a malformed IPv4 packet");
        assert!(ip.verify_checksum(), "a node sent a bad IPv4 checksum");
        let src = ip.src_addr();
        assert!(
            src == VIP || IPS.contains(&src),
            "a node sent a packet from {src}"
        );
        if ip.dst_addr() != CLIENT_IP {
            return;
        }
        let body = ip.payload();
        match u8::from(ip.next_header()) {
            6 => {
                assert!(
                    ipos_tcp::checksum_ok(src, CLIENT_IP, body),
                    "a node sent a bad TCP checksum"
                );
                if body.len() < 20 {
                    return;
                }
                let sport = u16::from_be_bytes([body[0], body[1]]);
                let dport = u16::from_be_bytes([body[2], body[3]]);
                let slot = dport.wrapping_sub(40_000) as usize;
                if let Some(Some(c)) = self.conns.get_mut(slot) {
                    let fl = c.ep.flow();
                    if fl.src_port == sport && fl.src_addr == src {
                        let _ = c.ep.on_segment(now, body);
                    }
                }
            }
            17 if body.len() >= 8 => {
                let sport = u16::from_be_bytes([body[0], body[1]]);
                let dport = u16::from_be_bytes([body[2], body[3]]);
                let ulen = usize::from(u16::from_be_bytes([body[4], body[5]]));
                let slot = dport.wrapping_sub(41_000) as usize;
                if sport != 7 || slot >= UDP_PORTS || ulen < 8 || ulen > body.len() {
                    return;
                }
                let payload = &body[8..ulen];
                if !self.strict {
                    return;
                }
                assert!(
                    payload
                        .iter()
                        .copied()
                        .eq(udp_payload(dport, payload.len())),
                    "a UDP echo does not carry what was sent"
                );
                assert!(self.udp_sent[slot] > 0, "a UDP echo of nothing sent");
            }
            _ => {}
        }
    }

    /// Lets every endpoint read, write and transmit.
    fn service(&mut self, now: Instant) {
        for slot in 0..SLOTS {
            let Some(c) = self.conns[slot].as_mut() else {
                continue;
            };
            loop {
                let s = c.ep.recv_slice();
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
            // Like an application that closes after connect() returned: a
            // close in SYN-SENT would drop the connection (RFC 9293 3.10.4).
            if c.close && c.unsent.is_empty() && c.ep.state() != State::SynSent {
                c.ep.close();
            }
            let flow = c.ep.flow();
            let mut out = 0;
            while out < 64 {
                let Some(n) = c.ep.poll_transmit(now, &mut self.buf) else {
                    break;
                };
                out += 1;
                self.ident = self.ident.wrapping_add(1);
                let mut p = vec![0u8; 20 + n];
                let h = ipos_wire::Ipv4Header {
                    src: flow.dst_addr,
                    dst: flow.src_addr,
                    protocol: smoltcp::wire::IpProtocol::Tcp,
                    payload_len: n,
                    ident: self.ident,
                };
                ipos_wire::emit_ipv4_header(&mut p, &h).expect("room");
                p[20..].copy_from_slice(&self.buf[..n]);
                send_frame(&mut self.port, MACS[0], 0x0800, &p);
            }
        }
        self.port.flush();
    }

    fn conn(&mut self, slot: u8) -> Option<&mut Conn> {
        self.conns[slot as usize % SLOTS].as_mut()
    }
}

/// The farm of the `node` target.
pub struct Farm {
    switch: MemSwitch,
    nodes: Vec<Node<MemPort>>,
    client: Client,
    wire: Rc<RefCell<Wire>>,
    /// Frames injected into each node directly.
    injected: [u64; 2],
    limits: NodeOptions,
    now: Instant,
    /// No frame of the input's own was injected.
    clean: bool,
}

/// TCP buffers of the nodes' and the client's endpoints: small, so that a
/// run allocates little (every response of [`REQUESTS`] fits).
const TCP_BUF: usize = 32 * 1024;

/// The two nodes' identities and options, from the test farm file (parsed once).
fn nodes() -> &'static ([NodeIdentity; 2], NodeOptions) {
    static N: OnceLock<([NodeIdentity; 2], NodeOptions)> = OnceLock::new();
    N.get_or_init(|| {
        let farm = FarmConfig::parse(&test_farm_toml(2), Path::new("fuzz-farm.toml"))
            .expect("the test farm file parses");
        let id = |name| {
            let mut id = farm.identity(name).expect("node of the test farm");
            id.udp_echo_port = Some(7);
            id
        };
        let base = farm.node_options();
        let opts = NodeOptions {
            advert_interval: Duration::from_secs(1),
            max_connections: 32,
            max_forward: 32,
            max_pending: 8,
            max_udp_flows: 16,
            tcp: ipos_tcp::Config {
                rcv_buf: TCP_BUF,
                snd_buf: TCP_BUF,
                ..base.tcp.clone()
            },
            ..base
        };
        ([id("a"), id("b")], opts)
    })
}

fn client_config() -> ipos_tcp::Config {
    ipos_tcp::Config {
        rcv_buf: TCP_BUF,
        snd_buf: TCP_BUF,
        ..ipos_tcp::Config::default()
    }
}

impl Farm {
    /// Two nodes that have heard each other's adverts, and a client.
    pub fn new() -> Farm {
        let (ids, opts) = nodes();
        let opts = opts.clone();
        let switch = MemSwitch::new(1);
        let nodes: Vec<Node<MemPort>> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| Node::new(switch.port(MACS[i]), id.clone(), opts.clone()))
            .collect();
        let port = switch.port(CLIENT_MAC);
        let wire = Rc::new(RefCell::new(Wire::default()));
        let w = wire.clone();
        switch.set_hook(move |from, f| w.borrow_mut().on_transmit(from, f));
        let mut farm = Farm {
            switch,
            nodes,
            client: Client {
                port,
                conns: Default::default(),
                opened: [0; SLOTS],
                next_iss: 0x0100_0000,
                udp_sent: [0; UDP_PORTS],
                strict: true,
                buf: vec![0; 1600],
                ident: 0,
            },
            wire,
            injected: [0; 2],
            limits: opts,
            now: Instant::from_millis(1_000),
            clean: true,
        };
        // The first adverts go out at once: one step and each node knows the other.
        for _ in 0..8 {
            if farm
                .nodes
                .iter()
                .all(|n| n.counters().get(Event::AdvertsReceived) >= 1)
            {
                break;
            }
            farm.step(Duration::from_millis(1));
        }
        farm
    }

    /// Polls every host until the switch is quiet (bounded), checks the
    /// invariants, then lets `dt` pass.
    fn step(&mut self, dt: Duration) {
        self.rounds();
        self.now += dt;
    }

    /// Polls until quiet; returns the frames the client received.
    fn rounds(&mut self) -> usize {
        let mut got = 0;
        for _ in 0..ROUNDS {
            got += self.round();
            if self.switch.pending() == 0 {
                break;
            }
        }
        if self.switch.pending() == 0 {
            self.check_counts();
        }
        self.check_limits();
        got
    }

    fn round(&mut self) -> usize {
        let got = self.client.receive(self.now);
        self.client.service(self.now);
        for n in self.nodes.iter_mut() {
            n.poll(self.now);
        }
        got
    }

    fn check_counts(&self) {
        let w = self.wire.borrow();
        for (i, n) in self.nodes.iter().enumerate() {
            let c = n.counters();
            let p = n.port().counters();
            let rx = c.get(Event::RxFrames);
            assert_eq!(
                rx,
                self.injected[i] + w.delivered[i],
                "node {i}: frames received != frames injected + delivered"
            );
            assert_eq!(rx, p.rx_packets, "node {i}: rx_frames != port rx_packets");
            assert_eq!(p.tx_packets, w.sent[i], "node {i}: port tx != switch saw");
            assert_eq!(
                c.get(Event::TxFrames),
                p.tx_packets + p.tx_dropped + n.port().tx_backlog() as u64,
                "node {i}: tx_frames != frames the port sent, dropped or queues"
            );
        }
    }

    fn check_limits(&self) {
        let o = &self.limits;
        for n in &self.nodes {
            assert!(n.connection_count() <= o.max_connections);
            assert!(n.forward_count() <= o.max_forward);
            assert!(n.pending_count() <= o.max_pending);
            assert!(n.udp_flow_count() <= o.max_udp_flows);
            assert!(n.held_count() <= o.max_held);
            assert!(
                n.serving_count() <= n.connection_count(),
                "{} connections served, {} in the table; {}",
                n.serving_count(),
                n.connection_count(),
                self.summary()
            );
        }
    }

    fn inject(&mut self, node: u8, frame: &[u8]) {
        let i = node as usize % 2;
        if frame.len() > ipos::port::mem::MEM_BUF_SIZE - ipos::port::mem::MEM_HEADROOM {
            return;
        }
        self.nodes[i].port_mut().inject(frame);
        self.injected[i] += 1;
        self.clean = false;
        self.client.strict = false;
    }

    /// Runs one operation.
    pub fn apply(&mut self, op: Op) {
        match op {
            Op::Connect { slot } => {
                let s = slot as usize % SLOTS;
                let flow = Flow {
                    src_addr: VIP,
                    src_port: 80,
                    dst_addr: CLIENT_IP,
                    dst_port: 40_000 + s as u16,
                };
                // Each incarnation of a port starts above the last (RFC 6191).
                self.client.next_iss = self.client.next_iss.wrapping_add(0x0101_0101);
                let ep = Endpoint::connect(&client_config(), flow, self.client.next_iss, self.now);
                self.client.opened[s] += 1;
                self.client.conns[s] = Some(Conn {
                    ep,
                    received: Vec::new(),
                    unsent: Vec::new(),
                    expect: Vec::new(),
                    checked: self.client.opened[s] == 1,
                    close: false,
                });
            }
            Op::Request { slot, kind } => {
                let k = kind as usize % REQUESTS.len();
                if let Some(c) = self.client.conn(slot) {
                    if c.close {
                        c.checked = false;
                    }
                    c.unsent.extend_from_slice(REQUESTS[k]);
                    match expected(k) {
                        Some(e) => c.expect.extend_from_slice(e),
                        None => c.checked = false,
                    }
                }
            }
            Op::Close { slot } => {
                if let Some(c) = self.client.conn(slot) {
                    c.close = true;
                }
            }
            Op::Abort { slot } => {
                if let Some(c) = self.client.conn(slot) {
                    c.ep.abort();
                    c.checked = false;
                }
            }
            Op::Udp { port, len } => {
                let p = port as usize % UDP_PORTS;
                let sport = 41_000 + p as u16;
                let payload: Vec<u8> = udp_payload(sport, len as usize % 64 + 1).collect();
                let pkt = frames::udp_packet((CLIENT_IP, sport), (VIP, 7), &payload);
                self.client.udp_sent[p] += 1;
                send_frame(&mut self.client.port, MACS[0], 0x0800, &pkt);
                self.client.port.flush();
            }
            Op::Inject {
                node,
                template,
                spoof,
                m,
            } => {
                let list = &frames::templates()[node as usize % 2];
                let mut f = list[template as usize % list.len()].clone();
                if spoof {
                    f[6..12].copy_from_slice(CLIENT_MAC.as_bytes());
                }
                m.apply(&mut f);
                self.inject(node, &f);
            }
            Op::Replay { recent, node, m } => {
                let f = {
                    let w = self.wire.borrow();
                    if w.recent.is_empty() {
                        return;
                    }
                    let mut f = w.recent[recent as usize % w.recent.len()].clone();
                    m.apply(&mut f);
                    f
                };
                self.inject(node, &f);
            }
            Op::Plan { action } => {
                let mut w = self.wire.borrow_mut();
                if w.plan.len() < MAX_PLAN {
                    w.plan.push_back(action);
                }
            }
            Op::Release => self.release(),
            Op::Advance { amount } => {
                if amount < 128 {
                    self.step(Duration::from_millis(u64::from(amount) + 1));
                } else {
                    // Longer waits in steps, as a poll loop that never stalls
                    // long: timers fire on time, not all at once.
                    for _ in 0..amount - 127 {
                        self.step(Duration::from_millis(100));
                    }
                }
            }
            Op::Poll => {
                self.round();
                self.check_limits();
            }
        }
    }

    fn release(&mut self) {
        let held = std::mem::take(&mut self.wire.borrow_mut().held);
        let n = self.switch.release_hooked();
        assert_eq!(n, held.len(), "held frames");
        let mut w = self.wire.borrow_mut();
        for (from, dst) in held {
            w.count_delivery(from, dst, 1);
        }
    }

    /// After the last operation: the invariants once more and, for a clean
    /// input, delivery of every response.
    pub fn finish(&mut self) {
        self.rounds();
        // No frame loops (two nodes that forward a flow, or answer a move's
        // acknowledgement, to each other): what one run can send is far below this.
        for (i, n) in self.nodes.iter().enumerate() {
            let c = n.counters();
            let sent = c.get(Event::PacketsForwarded) + c.get(Event::MigrationCommitsSent);
            assert!(
                sent <= MAX_LOOPED,
                "node {i} forwarded or committed {sent} times: a loop; {}",
                self.summary()
            );
        }
        let lost = self.wire.borrow().lost;
        let timeouts: u64 = self
            .nodes
            .iter()
            .map(|n| {
                let c = n.counters();
                c.get(Event::HttpHeadTimeouts) + c.get(Event::ConnIdleClosed)
            })
            .sum();
        let want = self
            .client
            .conns
            .iter()
            .flatten()
            .any(|c| c.checked && !c.expect.is_empty());
        if !(self.clean && lost <= LIVENESS_MAX_LOST && timeouts == 0 && want) {
            return;
        }
        self.wire.borrow_mut().plan.clear();
        self.release();
        let end = self.now + SETTLE;
        let mut dt = Duration::from_millis(1);
        while self.now < end && !self.delivered() {
            let got = self.rounds();
            dt = if got > 0 {
                Duration::from_millis(1)
            } else {
                (dt * 2).min(Duration::from_millis(100))
            };
            self.now += dt;
        }
        for (slot, c) in self.client.conns.iter().enumerate() {
            let Some(c) = c else { continue };
            if !c.checked || c.expect.is_empty() {
                continue;
            }
            let got = responses(&c.received);
            assert_eq!(
                got.len(),
                c.expect.len(),
                "slot {slot}: {} of {} responses after {SETTLE:?} (client {:?}, {} bytes in); {}",
                got.len(),
                c.expect.len(),
                c.ep.state(),
                c.received.len(),
                self.summary()
            );
        }
    }

    /// True when every checked connection has all its responses; panics on
    /// a response that is not the one expected.
    fn delivered(&self) -> bool {
        let mut all = true;
        for c in self.client.conns.iter().flatten() {
            if !c.checked || c.expect.is_empty() {
                continue;
            }
            let got = responses(&c.received);
            for (i, (status, body)) in got.iter().enumerate() {
                let Some(&(want, len)) = c.expect.get(i) else {
                    panic!("more responses than requests");
                };
                assert_eq!(*status, want, "response {i}: status");
                if let Some(n) = len {
                    assert_eq!(body.len(), n, "response {i}: body length");
                    assert!(
                        body.iter().enumerate().all(|(j, b)| *b == (j % 251) as u8),
                        "response {i}: body bytes"
                    );
                }
            }
            if got.len() < c.expect.len() {
                all = false;
                if c.ep.state() == State::Closed {
                    // Nothing more can come: let the caller report it.
                    return true;
                }
            }
        }
        all
    }

    /// Counter `e` of node `node` (0: a, 1: b).
    pub fn event(&self, node: usize, e: Event) -> u64 {
        self.nodes[node].counters().get(e)
    }

    /// Every node's non-zero counters (for failure messages).
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            s.push_str(&format!(
                "\n  node {i}: conns={} fwd={} pending={} {}",
                n.connection_count(),
                n.forward_count(),
                n.pending_count(),
                n.counters().summary()
            ));
        }
        s
    }
}

impl Default for Farm {
    fn default() -> Self {
        Farm::new()
    }
}

/// The complete responses at the start of `bytes`: (status, body).
fn responses(bytes: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(end) = bytes[at..].windows(4).position(|w| w == b"\r\n\r\n") {
        let head = &bytes[at..at + end];
        let text = String::from_utf8_lossy(head);
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let len: usize = text
            .split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0);
        let body_at = at + end + 4;
        if bytes.len() < body_at + len {
            break;
        }
        out.push((status, &bytes[body_at..body_at + len]));
        at = body_at + len;
    }
    out
}

/// Runs a whole `node` input.
pub fn run(data: &[u8]) {
    let mut farm = Farm::new();
    let mut r = Reader::new(data);
    let mut ops = 0;
    while !r.is_empty() && ops < MAX_OPS {
        farm.apply(Op::read(&mut r));
        ops += 1;
    }
    farm.finish();
}
