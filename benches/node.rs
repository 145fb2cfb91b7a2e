//! Whole-node per-packet cost on the in-memory port (criterion).
//!
//! ```sh
//! cargo bench --bench node -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Every iteration injects a burst of 32 frames into a node's `MemPort`
//! (as if they had arrived from the wire), then times exactly one
//! `Node::poll(now)`, which receives the burst, handles every frame and
//! flushes what it sends; the frames that come out are drained from the
//! receiving side afterwards, outside the timed part. `now` follows the real
//! clock, as in `iposd`, so the node's timers run as they would there.
//! Criterion's throughput line is in frames per second (32 per iteration);
//! divide the time by 32 for ns/frame.
//!
//! | benchmark | frames |
//! |---|---|
//! | `node/icmp_echo_60B` | 32 ICMP echo requests (60-byte frames) to the node's own address, answered in place |
//! | `node/forward_ack_54B` | 32 pure client ACKs (54-byte frames) of a connection that a real in-memory migration moved from node a to node b; a wraps each in an ipOS data frame (prepend in the same buffer) and sends it to b |
//! | `node/forward_data_1514B` | the same with full-size client segments (1460 bytes of payload) |
//! | `node/drop_ipos_bad_checksum_1530B` | 32 ipOS TCP data frames whose ipOS checksum is wrong: parsed and dropped |
//! | `node/drop_ipv4_bad_checksum_60B` | 32 IPv4 frames whose header checksum is wrong: dropped before dispatch |
//! | `handoff/move_between_requests` | one live move (`Node::move_connection`) of a keep-alive connection between requests, b to c and back, timed from the call to the target's commit, the three nodes polled meanwhile: the farm's CPU per handoff |
//! | `handoff/move_mid_response_256KiB` | the same in the middle of a download whose client stopped reading: the service state travels and the target regenerates a full 256 KiB send buffer |
//! | `memport/reflect_60B` | no node: the same 32 frames through a bare `MemPort` (rx burst, send, flush): the in-memory port's own share of every figure above |
//!
//! The `MemPort` is not free (a 2 KiB heap buffer per frame and a copy per
//! frame inside the switch), so `memport/reflect_60B` is there to be
//! subtracted; DPDK's mbufs do neither. `scripts/bench-pps` measures the
//! real `iposd` on a DPDK device.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ipos::config::{test_farm_toml, FarmConfig};
use ipos::counters::{DropReason, Event};
use ipos::node::{Node, NodeIdentity, NodeOptions};
use ipos::port::mem::{MemPort, MemSwitch};
use ipos::port::{PacketBuf, Port, BURST};
use ipos_policy::PolicyConfig;
use ipos_tcp::{Endpoint, State};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    EthernetAddress, Icmpv4Message, Icmpv4Packet, IpProtocol, Ipv4Address, Ipv4Packet,
};
use std::path::Path;

const A: usize = 0;
const B: usize = 1;
const NAMES: [&str; 3] = ["a", "b", "c"];
const MACS: [EthernetAddress; 3] = [
    EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x0b]),
    EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x0c]),
    EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x0d]),
];
const IPS: [Ipv4Address; 3] = [
    Ipv4Address::new(198, 18, 0, 11),
    Ipv4Address::new(198, 18, 0, 12),
    Ipv4Address::new(198, 18, 0, 13),
];
const VIP: Ipv4Address = Ipv4Address::new(198, 18, 0, 100);
const SERVICE_PORT: u16 = 80;
const CLIENT_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x01]);
const CLIENT_IP: Ipv4Address = Ipv4Address::new(198, 18, 0, 1);
const CLIENT_PORT: u16 = 40001;
const ETHERTYPE_IPOS: u16 = ipos_wire::DEFAULT_ETHERTYPE;

/// Node `n` of the `nodes`-node test farm (the farm `scripts/farm` writes), without UDP echo.
fn identity(n: usize, nodes: usize) -> NodeIdentity {
    let farm = FarmConfig::parse(&test_farm_toml(nodes), Path::new("test-farm.toml"))
        .expect("test farm file");
    let mut id = farm.identity(NAMES[n]).expect("node of the test farm");
    id.udp_echo_port = None;
    id
}

/// Ethernet + IPv4 header around `payload` (protocol `proto`), checksums filled.
fn ipv4_frame(
    dst_mac: EthernetAddress,
    src_mac: EthernetAddress,
    src: Ipv4Address,
    dst: Ipv4Address,
    proto: IpProtocol,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + payload.len()];
    ipos_wire::emit_ethernet_header(&mut f, dst_mac, src_mac, 0x0800).expect("room");
    let ip = ipos_wire::Ipv4Header {
        src,
        dst,
        protocol: proto,
        payload_len: payload.len(),
        ident: 7,
    };
    ipos_wire::emit_ipv4_header(&mut f[14..], &ip).expect("room");
    f[34..].copy_from_slice(payload);
    f
}

/// A 60-byte ICMP echo request from the client to `dst` (18 bytes of data).
fn icmp_echo(dst_mac: EthernetAddress, dst: Ipv4Address) -> Vec<u8> {
    let mut icmp = vec![0u8; 8 + 18];
    {
        let mut p = Icmpv4Packet::new_unchecked(&mut icmp[..]);
        p.set_msg_type(Icmpv4Message::EchoRequest);
        p.set_msg_code(0);
        p.set_echo_ident(0x1234);
        p.set_echo_seq_no(1);
        p.data_mut().copy_from_slice(b"ipos-bench-icmp-18");
        p.fill_checksum();
    }
    ipv4_frame(dst_mac, CLIENT_MAC, CLIENT_IP, dst, IpProtocol::Icmp, &icmp)
}

/// A client TCP segment to VIP:80 from `CLIENT_PORT` (20-byte header, ACK,
/// PSH when it carries data), checksum filled.
fn client_segment(seq: u32, ack: u32, payload_len: usize) -> Vec<u8> {
    let mut tcp = vec![0u8; 20 + payload_len];
    let h = ipos_tcp::TcpHeader {
        src_port: CLIENT_PORT,
        dst_port: SERVICE_PORT,
        seq,
        ack,
        flags: ipos_tcp::ACK | if payload_len > 0 { ipos_tcp::PSH } else { 0 },
        window: 1024,
    };
    ipos_tcp::write_header(&mut tcp, &h, &ipos_tcp::TcpOptions::default());
    for (i, b) in tcp[20..].iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    ipos_tcp::fill_checksum(CLIENT_IP, VIP, &mut tcp);
    ipv4_frame(MACS[A], CLIENT_MAC, CLIENT_IP, VIP, IpProtocol::Tcp, &tcp)
}

/// The real clock as the node's `Instant`, starting at `base` (iposd does the same).
struct Clock {
    start: std::time::Instant,
    base: Instant,
}

impl Clock {
    fn new(base: Instant) -> Clock {
        Clock {
            start: std::time::Instant::now(),
            base,
        }
    }
    fn now(&self) -> Instant {
        self.base + Duration::from_micros(self.start.elapsed().as_micros() as u64)
    }
}

/// Injects `frames` into `node`'s port, times one poll, drains `sink`.
/// Returns the time of the poll alone.
fn timed_poll(
    node: &mut Node<MemPort>,
    clock: &Clock,
    frames: &[Vec<u8>],
    sinks: &[&MemPort],
    expect_out: Option<(usize, usize)>,
) -> std::time::Duration {
    for f in frames {
        node.port().inject(f);
    }
    let now = clock.now();
    let t = std::time::Instant::now();
    let n = node.poll(now);
    let dt = t.elapsed();
    assert_eq!(n, frames.len(), "one poll takes the whole burst");
    for (i, s) in sinks.iter().enumerate() {
        let out = s.take_all();
        if let Some((sink, want)) = expect_out {
            if sink == i {
                assert!(
                    out.len() >= want,
                    "{} frames out, {want} expected",
                    out.len()
                );
            }
        }
    }
    dt
}

fn bench_single_node(c: &mut Criterion) {
    let switch = MemSwitch::new(1);
    let opts = NodeOptions {
        advert_interval: Duration::ZERO,
        ..NodeOptions::default()
    };
    // A farm of two: the ipOS frame below comes from b, a member (a node
    // checks the sender before anything else of an ipOS frame).
    let mut node = Node::new(switch.port(MACS[A]), identity(A, 2), opts);
    let wire = switch.port(CLIENT_MAC);
    let clock = Clock::new(Instant::from_millis(1_000));

    let echo: Vec<Vec<u8>> = (0..BURST).map(|_| icmp_echo(MACS[A], IPS[A])).collect();
    assert_eq!(echo[0].len(), 60);
    // An ipOS TCP data frame from b (a 1500-byte client packet) with its ipOS
    // checksum broken.
    let bad_ipos: Vec<Vec<u8>> = {
        let seg = client_segment(1, 1, 1460);
        let mut f = vec![0u8; ipos_wire::DATA_HEADROOM];
        f.extend_from_slice(&seg[14..]);
        let macs = ipos_wire::MacAddrs {
            dst: MACS[A],
            src: MACS[B],
        };
        let len = ipos_wire::emit_data_header(&mut f, ETHERTYPE_IPOS, &macs).expect("header");
        assert_eq!(len, 1530);
        f.truncate(len);
        assert!(ipos_wire::Frame::parse(&f, ETHERTYPE_IPOS).is_ok());
        f[14 + 14] ^= 0xff;
        vec![f; BURST]
    };
    let bad_ipv4: Vec<Vec<u8>> = {
        let mut f = icmp_echo(MACS[A], IPS[A]);
        f[14 + 10] ^= 0xff;
        vec![f; BURST]
    };

    let mut g = c.benchmark_group("node");
    g.throughput(Throughput::Elements(BURST as u64));
    g.bench_function("icmp_echo_60B", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| timed_poll(&mut node, &clock, &echo, &[&wire], Some((0, BURST))))
                .sum()
        })
    });
    let replies = node.counters().get(Event::IcmpEchoReplies);
    g.bench_function("drop_ipos_bad_checksum_1530B", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| timed_poll(&mut node, &clock, &bad_ipos, &[&wire], None))
                .sum()
        })
    });
    g.bench_function("drop_ipv4_bad_checksum_60B", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| timed_poll(&mut node, &clock, &bad_ipv4, &[&wire], None))
                .sum()
        })
    });
    g.finish();
    let cs = node.counters();
    // No echo reply during the drop benches (replies is 0 when a filter skipped the echo bench).
    assert_eq!(cs.get(Event::IcmpEchoReplies), replies);
    // Each drop bench ran (or a filter skipped it): its frames were dropped for their reason.
    assert_eq!(cs.dropped(DropReason::IposUnknownSender), 0);
    assert_eq!(
        cs.get(Event::TxFrames),
        replies,
        "only echo replies went out"
    );

    // The in-memory port alone: receive the burst, send it back, flush.
    let mut port = switch.port(EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x2a]));
    let peer = switch.port(EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x2b]));
    let mut rx = Vec::with_capacity(BURST);
    let mut g = c.benchmark_group("memport");
    g.throughput(Throughput::Elements(BURST as u64));
    g.bench_function("reflect_60B", |b| {
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iters {
                for f in &echo {
                    port.inject(f);
                }
                let t = std::time::Instant::now();
                port.rx_burst(&mut rx);
                for mut buf in rx.drain(..) {
                    let d = buf.data_mut();
                    d[0..6].copy_from_slice(&[0x02, 0x00, 0xc6, 0x12, 0x00, 0x2b]);
                    port.send(buf);
                }
                port.flush();
                total += t.elapsed();
                assert_eq!(peer.take_all().len(), BURST);
            }
            total
        })
    });
    g.finish();
}

/// The client side of one TCP connection to the VIP, on its own `MemPort`.
struct Client {
    port: MemPort,
    ep: Endpoint,
    received: Vec<u8>,
    buf: Vec<u8>,
    unsent: Vec<u8>,
    /// Reads nothing (its window closes), as a paused download.
    paused: bool,
}

impl Client {
    fn poll(&mut self, now: Instant) {
        for f in self.port.take_all() {
            let f = f.data();
            if f.len() < 34 || f[12..14] != [0x08, 0x00] {
                continue; // adverts and other broadcasts
            }
            let Ok(ip) = Ipv4Packet::new_checked(&f[14..]) else {
                continue;
            };
            if ip.next_header() != IpProtocol::Tcp || ip.dst_addr() != CLIENT_IP {
                continue;
            }
            let _ = self.ep.on_segment(now, ip.payload());
        }
        while !self.paused {
            let s = self.ep.recv_slice();
            if s.is_empty() {
                break;
            }
            let n = s.len();
            self.received.extend_from_slice(s);
            self.ep.recv_consume(n);
        }
        if !self.unsent.is_empty() {
            let n = self.ep.send_slice(&self.unsent);
            self.unsent.drain(..n);
        }
        while let Some(n) = self.ep.poll_transmit(now, &mut self.buf[..]) {
            let seg = self.buf[..n].to_vec();
            let frame = ipv4_frame(MACS[A], CLIENT_MAC, CLIENT_IP, VIP, IpProtocol::Tcp, &seg);
            let mut b = self.port.alloc().expect("mem buffer");
            b.set_len(frame.len()).expect("fits");
            b.data_mut().copy_from_slice(&frame);
            self.port.send(b);
        }
        self.port.flush();
    }
}

/// Three nodes and a client on one switch; the client's connection asks for
/// `/b/bytes/1000`, which the URL map sends to b: a real migration in
/// virtual time, after which a holds the forward entry. Returns the switch,
/// the nodes, the client and the virtual time reached.
fn migrated_farm(
    auth: Option<ipos::auth::AuthConfig>,
) -> (MemSwitch, Vec<Node<MemPort>>, Client, Instant) {
    let switch = MemSwitch::new(7);
    let policy = PolicyConfig {
        url_rules: vec![("/b/".into(), IPS[1]), ("/c/".into(), IPS[2])],
        ..PolicyConfig::default()
    };
    let opts = NodeOptions {
        policy,
        advert_interval: Duration::from_millis(20),
        // Only a is polled while the benches run: b must not be called down
        // for its silence (its forward entry would go).
        peer_down_after: Duration::from_secs(3600),
        ..NodeOptions::default()
    };
    let mut nodes: Vec<Node<MemPort>> = (0..3)
        .map(|n| {
            let id = NodeIdentity {
                auth: auth.clone(),
                ..identity(n, 3)
            };
            Node::new(switch.port(MACS[n]), id, opts.clone())
        })
        .collect();
    let mut now = Instant::from_millis(1_000);
    let flow = ipos_wire::Flow {
        src_addr: VIP,
        src_port: SERVICE_PORT,
        dst_addr: CLIENT_IP,
        dst_port: CLIENT_PORT,
    };
    let mut client = Client {
        port: switch.port(CLIENT_MAC),
        ep: Endpoint::connect(&ipos_tcp::Config::default(), flow, 0x0bad_cafe, now),
        received: Vec::new(),
        buf: vec![0; 2048],
        unsent: Vec::new(),
        paused: false,
    };
    let step = |nodes: &mut Vec<Node<MemPort>>, client: &mut Client, now: Instant| {
        for _ in 0..64 {
            client.poll(now);
            for n in nodes.iter_mut() {
                n.poll(now);
            }
            if switch.pending() == 0 {
                break;
            }
        }
    };
    // Adverts first, so that a knows b is live.
    for _ in 0..500 {
        step(&mut nodes, &mut client, now);
        now += Duration::from_micros(200);
        if nodes
            .iter()
            .all(|n| IPS.iter().all(|ip| n.view().servers().get(*ip).is_some()))
        {
            break;
        }
    }
    client.unsent = b"GET /b/bytes/1000 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    let done = |c: &Client| {
        c.received
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .is_some_and(|h| c.received.len() >= h + 4 + 1000)
    };
    for _ in 0..50_000 {
        if done(&client) && nodes[A].forward_count() == 1 {
            break;
        }
        step(&mut nodes, &mut client, now);
        now += Duration::from_micros(200);
    }
    // Let the last ACKs settle.
    for _ in 0..50 {
        step(&mut nodes, &mut client, now);
        now += Duration::from_micros(200);
    }
    let head = String::from_utf8_lossy(&client.received);
    assert!(done(&client), "no response: {head:?}");
    assert!(head.contains("X-Ipos-Node: b"), "not served by b: {head:?}");
    assert_eq!(client.ep.state(), State::Established);
    assert_eq!(nodes[A].forward_count(), 1, "a holds no forward entry");
    assert_eq!(nodes[A].connection_count(), 0);
    assert_eq!(nodes[B].connection_count(), 1);
    assert_eq!(nodes[A].counters().get(Event::MigrationsAcked), 1);
    (switch, nodes, client, now)
}

/// The forward path with the farm's three frame settings: no key, every
/// data frame authenticated, every data frame encrypted.
fn bench_forward(c: &mut Criterion) {
    use ipos::auth::{AuthConfig, FarmKey, Mode};
    let key = FarmKey::from_bytes([0x5a; 32]);
    let settings = [
        ("", None),
        (
            "_auth",
            Some(AuthConfig {
                key: key.clone(),
                mode: Mode::Authenticated,
            }),
        ),
        (
            "_encrypt",
            Some(AuthConfig {
                key,
                mode: Mode::Encrypted,
            }),
        ),
    ];
    let mut g = c.benchmark_group("node");
    g.throughput(Throughput::Elements(BURST as u64));
    for (suffix, auth) in settings {
        let (_switch, mut nodes, client, now) = migrated_farm(auth);
        let clock = Clock::new(now);
        let before = nodes[A].counters().get(Event::PacketsForwarded);
        let acks: Vec<Vec<u8>> = (0..BURST)
            .map(|i| client_segment(0x1000, 0x2000 + 1448 * i as u32, 0))
            .collect();
        // The largest segment a movable connection's MSS allows with the
        // trailer (1408 bytes), so that every setting forwards the same frames.
        let data: Vec<Vec<u8>> = (0..BURST)
            .map(|i| client_segment(0x1000 + 1408 * i as u32, 0x2000, 1408))
            .collect();
        assert_eq!(acks[0].len(), 54);
        assert_eq!(data[0].len(), 1462);

        let (na, rest) = nodes.split_at_mut(1);
        let node_a = &mut na[0];
        let sinks = [rest[0].port(), rest[1].port(), &client.port];
        // Checked below only when a filter on the command line let it run.
        let ran = std::cell::Cell::new(false);
        for (name, frames) in [("forward_ack_54B", &acks), ("forward_data_1462B", &data)] {
            g.bench_function(format!("{name}{suffix}"), |b| {
                ran.set(true);
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| timed_poll(node_a, &clock, frames, &sinks, Some((0, BURST))))
                        .sum()
                })
            });
        }
        let cs = node_a.counters();
        assert!(!ran.get() || cs.get(Event::PacketsForwarded) > before);
        assert_eq!(node_a.forward_count(), 1, "the forward entry stayed");
        assert_eq!(cs.dropped(DropReason::TcpBadChecksum), 0);
        assert_eq!(cs.dropped(DropReason::TunnelTooBig), 0);
    }
    g.finish();
}

/// Polls every node until the switch is quiet (bounded).
fn settle(switch: &MemSwitch, nodes: &mut [Node<MemPort>], now: Instant) {
    for _ in 0..64 {
        for n in nodes.iter_mut() {
            n.poll(now);
        }
        if switch.pending() == 0 {
            break;
        }
    }
}

/// One live move of the connection from `from` to `to`, timed from
/// `move_connection` to the target's commit (every node polled until then);
/// the client is not polled meanwhile.
fn timed_move(
    switch: &MemSwitch,
    nodes: &mut [Node<MemPort>],
    clock: &Clock,
    from: usize,
    to: usize,
) -> std::time::Duration {
    let flow = ipos_wire::Flow {
        src_addr: CLIENT_IP,
        src_port: CLIENT_PORT,
        dst_addr: VIP,
        dst_port: SERVICE_PORT,
    };
    let committed = nodes[to].counters().get(Event::MigrationsCommitted);
    let now = clock.now();
    let t = std::time::Instant::now();
    nodes[from]
        .move_connection(now, &flow, IPS[to])
        .unwrap_or_else(|e| {
            panic!(
                "move {from} -> {to}: {e}: {}",
                nodes[from].counters().summary()
            )
        });
    for _ in 0..64 {
        for n in nodes.iter_mut() {
            n.poll(now);
        }
        if nodes[to].counters().get(Event::MigrationsCommitted) > committed {
            break;
        }
    }
    let dt = t.elapsed();
    assert!(
        nodes[to].counters().get(Event::MigrationsCommitted) > committed,
        "the move did not complete"
    );
    settle(switch, nodes, now);
    dt
}

/// The handoff: a move between requests, and one in the middle of a
/// download whose client has stopped reading (a full 256 KiB send buffer to
/// regenerate), back and forth between b and c.
fn bench_handoff(c: &mut Criterion) {
    let mut g = c.benchmark_group("handoff");
    for mid in [false, true] {
        let (switch, mut nodes, mut client, mut now) = migrated_farm(None);
        if mid {
            client.paused = true;
            client.unsent = b"GET /bytes/100000000000 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        }
        // 400 ms of virtual time: the client's delayed ACKs go out, and a
        // paused download fills b's send buffer.
        for _ in 0..2000 {
            client.poll(now);
            settle(&switch, &mut nodes, now);
            now += Duration::from_micros(200);
        }
        let clock = Clock::new(now);
        let before = nodes[B].counters().get(Event::MovesMidResponse);
        let name = if mid {
            "move_mid_response_256KiB"
        } else {
            "move_between_requests"
        };
        let mut at = B;
        let ran = std::cell::Cell::new(false);
        g.bench_function(name, |b| {
            ran.set(true);
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        let to = if at == B { 2 } else { B };
                        let dt = timed_move(&switch, &mut nodes, &clock, at, to);
                        at = to;
                        let _ = client.port.take_all();
                        dt
                    })
                    .sum()
            })
        });
        let mids = nodes[B].counters().get(Event::MovesMidResponse) - before;
        assert!(
            !ran.get() || (mids > 0) == mid,
            "{name}: {mids} moves mid-response at b"
        );
        assert_eq!(nodes[B].counters().get(Event::MigrationsFallback), 0);
    }
    g.finish();
}

fn config() -> Criterion {
    // Short by default (2-core machine); the command line overrides these.
    Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_single_node, bench_forward, bench_handoff
}
criterion_main!(benches);
