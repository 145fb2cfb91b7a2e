//! Per-operation cost of the protocol crates, no I/O (criterion, ns/op).
//!
//! ```sh
//! cargo bench --bench wire -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! | benchmark | what one iteration does |
//! |---|---|
//! | `wire/frame_parse_tcp_data_1530B` | `ipos_wire::Frame::parse` of a TCP data frame: 14 + 16 bytes of headers around a 1500-byte client IPv4/TCP packet (1460 bytes of payload) |
//! | `wire/emit_data_header_in_place` | `ipos_wire::emit_data_header` over the 30 bytes in front of that 1500-byte packet, in the same buffer (the forwarder's per-packet work) |
//! | `tcb/parse` / `tcb/to_bytes` / `tcb/parse_to_bytes` | the 140-byte TCB of an established connection (exported after a real handshake between two `ipos_tcp::Endpoint`s): decode and validate, encode, both |
//! | `policy/choose_{load,url,cookie}` | `ipos_policy::choose` on a view of 3 live servers, each listening on port 80 with an application row, for a request that falls through to the least-loaded rule, one that hits a URL prefix, one that carries the affinity cookie |
//! | `http/peek_request_348B` | `ipos_http::peek_request` of a typical browser-like GET head (348 bytes, 7 headers, a cookie) |
//! | `http/peek_request_path_cookie_348B` | the same, then `path()` and `cookie("IPOSID")`, as the node does before asking the policy |

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use ipos_policy::{
    apply_advert, choose, AdvertRepr, AppEntry, FarmView, ListenEntry, PolicyConfig, RequestInfo,
};
use ipos_tcp::{Config, Endpoint, Instant, Tcb};
use ipos_wire::{emit_data_header, Frame, MacAddrs, Message, DATA_HEADROOM, DEFAULT_ETHERTYPE};
use smoltcp::wire::{EthernetAddress, IpProtocol, Ipv4Address};
use std::time::Duration;

const ET: u16 = DEFAULT_ETHERTYPE;
const CLIENT: Ipv4Address = Ipv4Address::new(198, 18, 0, 1);
const VIP: Ipv4Address = Ipv4Address::new(198, 18, 0, 100);
const NODES: [Ipv4Address; 3] = [
    Ipv4Address::new(198, 18, 0, 11),
    Ipv4Address::new(198, 18, 0, 12),
    Ipv4Address::new(198, 18, 0, 13),
];
/// Inner client IPv4 packet length: a full-MTU segment.
const INNER_LEN: usize = 1500;

fn macs() -> MacAddrs {
    MacAddrs {
        dst: EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x0c]),
        src: EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x0b]),
    }
}

/// A buffer with `DATA_HEADROOM` free bytes followed by a 1500-byte client
/// IPv4/TCP packet (20 + 20 bytes of headers, 1460 bytes of payload).
fn client_packet_with_headroom() -> Vec<u8> {
    let mut buf = vec![0u8; DATA_HEADROOM + INNER_LEN];
    let p = &mut buf[DATA_HEADROOM..];
    let ip = ipos_wire::Ipv4Header {
        src: CLIENT,
        dst: VIP,
        protocol: IpProtocol::Tcp,
        payload_len: INNER_LEN - 20,
        ident: 1,
    };
    ipos_wire::emit_ipv4_header(p, &ip).expect("room");
    let tcp = &mut p[20..];
    let h = ipos_tcp::TcpHeader {
        src_port: 40001,
        dst_port: 80,
        seq: 0x1000_0000,
        ack: 0x2000_0000,
        flags: ipos_tcp::ACK | ipos_tcp::PSH,
        window: 502,
    };
    ipos_tcp::write_header(tcp, &h, &ipos_tcp::TcpOptions::default());
    for (i, b) in tcp[20..].iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    let sum = ipos_tcp::tcp_checksum(CLIENT, VIP, tcp);
    tcp[16..18].copy_from_slice(&sum.to_be_bytes());
    assert!(ipos_tcp::checksum_ok(CLIENT, VIP, tcp));
    buf
}

fn bench_wire(c: &mut Criterion) {
    let mut frame = client_packet_with_headroom();
    let len = emit_data_header(&mut frame, ET, &macs()).expect("data header");
    assert_eq!(len, DATA_HEADROOM + INNER_LEN);
    match Frame::parse(&frame, ET).expect("parse").message {
        Message::TcpData { packet, .. } => assert_eq!(packet.len(), INNER_LEN),
        m => panic!("not a TCP data frame: {m:?}"),
    }

    let mut g = c.benchmark_group("wire");
    g.throughput(Throughput::Elements(1));
    g.bench_function("frame_parse_tcp_data_1530B", |b| {
        b.iter(|| Frame::parse(black_box(&frame), ET).map(|f| f.message.body_len()))
    });
    let mut buf = client_packet_with_headroom();
    let m = macs();
    g.bench_function("emit_data_header_in_place", |b| {
        b.iter(|| emit_data_header(black_box(&mut buf), ET, black_box(&m)))
    });
    // The TCP checksum of the inner segment (pseudo-header included), as an
    // endpoint computes it for every segment it sends and receives.
    let seg = &client_packet_with_headroom()[DATA_HEADROOM + 20..];
    g.bench_function("tcp_checksum_1480B", |b| {
        b.iter(|| ipos_tcp::tcp_checksum(CLIENT, VIP, black_box(seg)))
    });
    // The ipOS checksum of a TCP connection packet: its 16-byte header and the
    // 146 bytes of connection information it covers.
    g.bench_function("ipos_checksum_162B", |b| {
        b.iter(|| ipos_wire::checksum::sum(&[black_box(&seg[..16]), black_box(&seg[16..162])]))
    });
    g.finish();
}

/// The TCB of the server side of an established connection, exported right
/// after a real three-way handshake.
fn established_tcb() -> Tcb {
    let cfg = Config::default();
    let now = Instant::from_millis(1_000);
    let client_flow = ipos_wire::Flow {
        src_addr: VIP,
        src_port: 80,
        dst_addr: CLIENT,
        dst_port: 40001,
    };
    let server_flow = ipos_wire::Flow {
        src_addr: CLIENT,
        src_port: 40001,
        dst_addr: VIP,
        dst_port: 80,
    };
    let mut buf = [0u8; 2048];
    let mut client = Endpoint::connect(&cfg, client_flow, 0x1234_5678, now);
    let n = client.poll_transmit(now, &mut buf).expect("SYN");
    let mut server =
        Endpoint::accept(&cfg, server_flow, &buf[..n], 0x8765_4321, now).expect("SYN accepted");
    let n = server.poll_transmit(now, &mut buf).expect("SYN-ACK");
    client.on_segment(now, &buf[..n]).expect("SYN-ACK accepted");
    let n = client.poll_transmit(now, &mut buf).expect("ACK");
    server.on_segment(now, &buf[..n]).expect("ACK accepted");
    assert_eq!(server.state(), ipos_tcp::State::Established);
    let mut tcb = server.export(now + ipos_tcp::Duration::from_millis(1));
    // The node-owned fields, as a front fills them before sending.
    tcb.link_addr = [0x02, 0x00, 0xc6, 0x12, 0x00, 0x01];
    tcb.next_hop = NODES[0].octets();
    tcb
}

fn bench_tcb(c: &mut Criterion) {
    let tcb = established_tcb();
    let bytes = tcb.to_bytes();
    assert_eq!(Tcb::parse(&bytes).expect("parse"), tcb);

    let mut g = c.benchmark_group("tcb");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse", |b| b.iter(|| Tcb::parse(black_box(&bytes))));
    g.bench_function("to_bytes", |b| b.iter(|| black_box(&tcb).to_bytes()));
    g.bench_function("parse_to_bytes", |b| {
        b.iter(|| Tcb::parse(black_box(&bytes)).map(|t| t.to_bytes()))
    });
    g.finish();
}

/// A view of 3 live servers (the farm's a, b, c), each listening on port 80
/// with an application row, URL rules `/b/` -> b and `/c/` -> c, and cookie
/// rules `a`, `b`, `c`.
fn three_server_view(now_ms: u64) -> FarmView {
    let names = ["a", "b", "c"];
    let cfg = PolicyConfig {
        url_rules: vec![("/b/".into(), NODES[1]), ("/c/".into(), NODES[2])],
        cookie_rules: (0..3).map(|i| (names[i].to_string(), NODES[i])).collect(),
        ..PolicyConfig::default()
    };
    let mut view = FarmView::new(&cfg);
    for (i, ip) in NODES.iter().enumerate() {
        let mut adv = AdvertRepr::new(*ip, 1);
        adv.established = 10 * i as u32;
        adv.cpu_permille = 100 + 50 * i as u16;
        adv.mem_avail_mib = 4096;
        adv.bw_avail_mbps = 10_000;
        adv.push_listening(ListenEntry { port: 80, pid: 1 })
            .expect("listening entry");
        adv.push_app(AppEntry {
            pid: 1,
            mem_mib: 64,
            cpu_permille: 10,
        })
        .expect("app entry");
        view = apply_advert(&view, &adv, now_ms);
    }
    view
}

fn bench_policy(c: &mut Criterion) {
    let now_ms = 10_000;
    let view = three_server_view(now_ms);
    let req = |path, cookie_value| RequestInfo {
        path,
        cookie_value,
        service_port: 80,
        local_ip: NODES[0],
        spread_key: 40001,
    };
    let cases = [
        (
            "choose_load",
            req("/bytes/1000", None),
            ipos_policy::Reason::Load,
        ),
        (
            "choose_url",
            req("/c/bytes/1000", None),
            ipos_policy::Reason::Url,
        ),
        (
            "choose_cookie",
            req("/bytes/1000", Some("b")),
            ipos_policy::Reason::Cookie,
        ),
    ];
    let mut g = c.benchmark_group("policy");
    g.throughput(Throughput::Elements(1));
    for (name, info, reason) in cases {
        assert_eq!(choose(&view, &info, now_ms).reason, reason, "{name}");
        g.bench_function(name, |b| {
            b.iter(|| choose(black_box(&view), black_box(&info), now_ms))
        });
    }
    g.finish();
}

const REQUEST: &[u8] = b"GET /b/bytes/1000 HTTP/1.1\r\n\
Host: 198.18.0.100\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate\r\n\
Connection: keep-alive\r\n\
Cookie: theme=dark; IPOSID=b; session=4f2a9c1e7d3b\r\n\
\r\n";

fn bench_http(c: &mut Criterion) {
    let head = ipos_http::peek_request(REQUEST)
        .expect("valid")
        .expect("complete");
    assert_eq!(head.head_len, REQUEST.len());
    assert_eq!(head.path(), Some("/b/bytes/1000"));
    assert_eq!(head.cookie("IPOSID"), Some("b"));

    let mut g = c.benchmark_group("http");
    g.throughput(Throughput::Elements(1));
    g.bench_function(format!("peek_request_{}B", REQUEST.len()), |b| {
        b.iter(|| ipos_http::peek_request(black_box(REQUEST)).map(|h| h.map(|h| h.head_len)))
    });
    g.bench_function(
        format!("peek_request_path_cookie_{}B", REQUEST.len()),
        |b| {
            b.iter(|| {
                let head = ipos_http::peek_request(black_box(REQUEST))
                    .ok()
                    .flatten()
                    .expect("complete head");
                (
                    head.path().map(str::len),
                    head.cookie("IPOSID").map(str::len),
                )
            })
        },
    );
    g.finish();
}

fn config() -> Criterion {
    // Short by default (2-core machine); the command line overrides these.
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_wire, bench_tcb, bench_policy, bench_http
}
criterion_main!(benches);
