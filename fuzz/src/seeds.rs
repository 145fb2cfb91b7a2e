//! The seed corpus: a few small, meaningful inputs for every target but
//! `frame` (whose seeds `ipos-wire`'s `write_fuzz_seeds` example writes).
//! `examples/write_seeds.rs` writes them to `fuzz/seeds/<target>/<name>`.

use crate::farm::{self, Op};
use crate::frames::{Mutation, TEMPLATE_NAMES};
use crate::input::Writer;
use crate::stream::{EpOp, ReasmOp, Setup};
use ipos_tcp::{Config, Endpoint, Instant};

/// One seed: (target, file name, bytes).
pub type Seed = (&'static str, String, Vec<u8>);

/// Every seed of every target.
pub fn all() -> Vec<Seed> {
    let mut v = Vec::new();
    v.extend(node());
    v.extend(reassembly());
    v.extend(endpoint());
    v.extend(tcb());
    v.extend(tcp_segment());
    v.extend(http_request());
    v.extend(advert());
    v.extend(progress());
    v
}

fn wait(ms_steps: usize) -> Vec<Op> {
    vec![Op::Advance { amount: 9 }; ms_steps]
}

fn seed(target: &'static str, name: &str, bytes: Vec<u8>) -> Seed {
    (target, name.to_string(), bytes)
}

/// `node`: connections that migrate, by URL and cookie, with a lost
/// connection packet, UDP flows, a port reused, and one injection of every
/// template (and one replay).
pub fn node() -> Vec<Seed> {
    let t = "node";
    let mut v = Vec::new();
    let mut ops = vec![Op::Connect { slot: 0 }, Op::Request { slot: 0, kind: 1 }];
    ops.extend(wait(40));
    ops.push(Op::Close { slot: 0 });
    ops.extend(wait(40));
    v.push(seed(t, "migrate_url", farm::encode(&ops)));

    let mut ops = vec![
        Op::Connect { slot: 1 },
        Op::Connect { slot: 2 },
        Op::Request { slot: 1, kind: 2 },
        Op::Request { slot: 2, kind: 5 },
        Op::Request { slot: 2, kind: 6 },
    ];
    ops.extend(wait(40));
    v.push(seed(t, "cookie_upload_pipelined", farm::encode(&ops)));

    // The first ipOS frame (but adverts) after the request is lost: the
    // connection packet is sent again.
    let mut ops = vec![
        Op::Connect { slot: 3 },
        Op::Plan { action: 8 | 1 },
        Op::Request { slot: 3, kind: 1 },
    ];
    ops.extend(wait(60));
    v.push(seed(t, "lost_connection_packet", farm::encode(&ops)));

    let mut ops = vec![
        Op::Udp { port: 0, len: 20 },
        Op::Udp { port: 1, len: 5 },
        Op::Udp { port: 0, len: 63 },
    ];
    ops.extend(wait(20));
    ops.push(Op::Advance { amount: 200 });
    v.push(seed(t, "udp_flows", farm::encode(&ops)));

    let mut ops = vec![Op::Connect { slot: 4 }, Op::Request { slot: 4, kind: 0 }];
    ops.extend(wait(20));
    ops.push(Op::Close { slot: 4 });
    ops.extend(wait(10));
    ops.push(Op::Connect { slot: 4 });
    ops.push(Op::Request { slot: 4, kind: 1 });
    ops.extend(wait(40));
    v.push(seed(t, "port_reused", farm::encode(&ops)));

    let mut ops = vec![Op::Connect { slot: 5 }, Op::Request { slot: 5, kind: 1 }];
    ops.extend(wait(5));
    for i in 0..16u8 {
        ops.push(Op::Replay {
            recent: i,
            node: i,
            m: Mutation {
                kind: 5,
                pos: 40 + u16::from(i),
                val: 100 + i,
                fix: true,
            },
        });
        ops.push(Op::Poll);
    }
    ops.extend(wait(20));
    v.push(seed(t, "replay_mutated", farm::encode(&ops)));

    for (i, name) in TEMPLATE_NAMES.iter().enumerate() {
        let mut ops = Vec::new();
        for node in 0..2u8 {
            ops.push(Op::Inject {
                node,
                template: i as u8,
                spoof: false,
                m: Mutation::NONE,
            });
            ops.push(Op::Poll);
        }
        ops.extend(wait(3));
        v.push(seed(t, &format!("inject_{name}"), farm::encode(&ops)));
    }
    v
}

fn setup(options: u8) -> Setup {
    Setup {
        peer_isn: 0xffff_f000,
        iss: 0x7fff_fff0,
        options,
        peer_mss: 1460,
    }
}

/// `reassembly`: in order, reversed, overlapping with a FIN, more ranges
/// than the endpoint describes, and carried chunks.
pub fn reassembly() -> Vec<Seed> {
    let t = "reassembly";
    let mut v = Vec::new();
    let stream = |name: &str, options: u8, len: u16, ops: &[ReasmOp]| {
        let mut w = Writer::default();
        w.u8(0);
        setup(options).write(&mut w);
        w.u16(len - 1);
        for op in ops {
            op.write(&mut w);
        }
        seed(t, name, w.0)
    };
    let seg = |off: u16, len: u16, fin: bool| ReasmOp::Segment { off, len, fin };
    v.push(stream(
        "in_order",
        0xc7,
        3000,
        &[
            seg(0, 1000, false),
            seg(1000, 1000, false),
            ReasmOp::Poll,
            seg(2000, 1000, true),
            ReasmOp::Consume { n: 0 },
            ReasmOp::Poll,
        ],
    ));
    v.push(stream(
        "reversed_with_fin",
        0xc3,
        4000,
        &[
            seg(3000, 1000, true),
            seg(2000, 1000, false),
            ReasmOp::Poll,
            seg(1000, 1000, false),
            seg(0, 1000, false),
            ReasmOp::Consume { n: 500 },
            ReasmOp::Advance { ms: 50 },
            ReasmOp::Poll,
        ],
    ));
    let mut many = Vec::new();
    for i in (1..12u16).rev() {
        many.push(seg(i * 200, 100, false));
    }
    many.push(ReasmOp::Poll);
    many.push(seg(0, 2400, true));
    many.push(ReasmOp::Consume { n: 0 });
    v.push(stream("more_ranges_than_described", 0x80, 2400, &many));
    v.push(stream(
        "small_ring_overlaps",
        0x01,
        3000,
        &[
            seg(500, 800, false),
            seg(0, 700, false),
            seg(300, 1200, false),
            ReasmOp::Consume { n: 100 },
            ReasmOp::Poll,
            seg(1000, 1460, false),
            ReasmOp::Consume { n: 0 },
            seg(2000, 1000, true),
        ],
    ));
    let carried = |name: &str, len: u32, chunks: &[(u8, u16, u16)]| {
        let mut w = Writer::default();
        w.u8(1).u32(0x0000_1000).u32(len);
        for (i, &(index, skew, cut)) in chunks.iter().enumerate() {
            w.u8(index).u16(skew).u16(cut).u8(i as u8);
        }
        seed(t, name, w.0)
    };
    v.push(carried(
        "carried_every_chunk",
        3000,
        &[
            (2, 0xf000, 0xf000),
            (0, 0xf000, 0xf000),
            (1, 0xf000, 0xf000),
        ],
    ));
    v.push(carried(
        "carried_bad_chunks",
        3000,
        &[
            (0, 1, 0xf000),
            (1, 0xf000, 100),
            (3, 0xf000, 0xf000),
            (0, 0xf000, 0xf000),
        ],
    ));
    v
}

/// `endpoint`: a transfer both ways with SACK, a move in the middle, a close,
/// an import from the start, and odd segments.
pub fn endpoint() -> Vec<Seed> {
    let t = "endpoint";
    let mut v = Vec::new();
    let ep = |name: &str, s: Setup, ops: &[EpOp]| {
        let mut w = Writer::default();
        s.write(&mut w);
        for op in ops {
            op.write(&mut w);
        }
        seed(t, name, w.0)
    };
    let data = |seq: i16, ack: i16, len: u16| EpOp::Segment {
        seq_delta: seq,
        ack_delta: ack,
        flags: ipos_tcp::ACK | ipos_tcp::PSH,
        window: 65535,
        len,
        sack: 0,
    };
    let acks = |ack: i16, sack: u8| EpOp::Segment {
        seq_delta: 0,
        ack_delta: ack,
        flags: ipos_tcp::ACK,
        window: 65535,
        len: 0,
        sack,
    };
    let transfer = [
        EpOp::Send { n: 3000 },
        EpOp::Poll,
        acks(536, 0),
        acks(0, 0x21),
        EpOp::Poll,
        data(0, 0, 800),
        data(1000, 0, 300),
        EpOp::Consume { n: 0 },
        EpOp::Advance { ms: 250 },
        EpOp::Poll,
        EpOp::Migrate,
        acks(1072, 0),
        EpOp::Send { n: 500 },
        EpOp::Poll,
        data(0, 0, 200),
        EpOp::Consume { n: 0 },
        EpOp::Close,
        EpOp::Poll,
        acks(3000, 0),
        EpOp::Advance { ms: 220 },
        EpOp::Poll,
    ];
    v.push(ep("transfer_sack_migrate", setup(0x97), &transfer));
    v.push(ep(
        "imported_from_the_start",
        Setup {
            peer_mss: 0x8000 | 1460,
            ..setup(0x43)
        },
        &transfer,
    ));
    v.push(ep(
        "odd_segments",
        setup(0x03),
        &[
            EpOp::Send { n: 1000 },
            EpOp::Poll,
            EpOp::Segment {
                seq_delta: 0,
                ack_delta: 0,
                flags: ipos_tcp::SYN,
                window: 100,
                len: 0,
                sack: 0,
            },
            EpOp::Poll,
            EpOp::Segment {
                seq_delta: -5,
                ack_delta: 2000,
                flags: ipos_tcp::ACK,
                window: 0,
                len: 10,
                sack: 0,
            },
            data(0, 0, 1199),
            EpOp::Poll,
            EpOp::Segment {
                seq_delta: 0,
                ack_delta: 0,
                flags: ipos_tcp::RST,
                window: 0,
                len: 0,
                sack: 0,
            },
            EpOp::Poll,
        ],
    ));
    v.push(ep(
        "zero_window_abort",
        setup(0x0b),
        &[
            EpOp::Send { n: 4000 },
            EpOp::Segment {
                seq_delta: 0,
                ack_delta: 0,
                flags: ipos_tcp::ACK,
                window: 0,
                len: 0,
                sack: 0,
            },
            EpOp::Poll,
            EpOp::Advance { ms: 230 },
            EpOp::Poll,
            EpOp::Advance { ms: 250 },
            EpOp::Poll,
            EpOp::Abort,
            EpOp::Poll,
        ],
    ));
    v
}

fn flow() -> ipos_tcp::Flow {
    crate::stream::flow()
}

/// `tcb`: exported TCBs of endpoints in several states.
pub fn tcb() -> Vec<Seed> {
    let mut v = Vec::new();
    let now = Instant::from_millis(5);
    let cfg = Config::default();
    let connecting = Endpoint::connect(&cfg, flow().reversed(), 1, now);
    v.push(seed(
        "tcb",
        "syn_sent",
        connecting.export(now).to_bytes().to_vec(),
    ));
    for (name, options) in [("established", 0x07u8), ("established_plain", 0xc0)] {
        let (mut ep, _) = crate::stream::established(&setup(options), now);
        v.push(seed("tcb", name, ep.export(now).to_bytes().to_vec()));
        ep.send_slice(b"response bytes in flight");
        ep.close();
        let mut buf = [0u8; 1600];
        while ep.poll_transmit(now, &mut buf).is_some() {}
        v.push(seed(
            "tcb",
            &format!("{name}_fin_wait"),
            ep.export(now).to_bytes().to_vec(),
        ));
    }
    v
}

/// `tcp_segment`: a SYN (for the listener), and a SYN-ACK then data for
/// the active opener (segments are split at 0xA5 bytes).
pub fn tcp_segment() -> Vec<Seed> {
    let f = flow();
    let mut v = Vec::new();
    // A segment for the active opener (iss 1) must not contain 0xA5.
    let craft = |seq: u32, ack: u32, flags: u8, ts: Option<(u32, u32)>, payload: &[u8]| {
        (0..64u32)
            .map(|k| {
                ipos_tcp::sim::craft(
                    f,
                    seq.wrapping_add(k * 7919),
                    ack,
                    flags,
                    65535,
                    ts,
                    payload,
                )
            })
            .find(|s| !s.contains(&0xA5))
            .expect("a segment without 0xA5")
    };
    let syn = craft(1000, 0, ipos_tcp::SYN, Some((1, 0)), b"");
    v.push(seed("tcp_segment", "syn", syn));
    let reversed = f.reversed();
    let _ = reversed;
    let synack = craft(5000, 2, ipos_tcp::SYN | ipos_tcp::ACK, None, b"");
    let seq = u32::from_be_bytes(synack[4..8].try_into().expect("4 bytes"));
    let data = craft(
        seq.wrapping_add(1),
        2,
        ipos_tcp::ACK | ipos_tcp::PSH,
        None,
        b"HTTP/1.1 200 OK\r\n\r\n",
    );
    let fin = craft(
        seq.wrapping_add(20),
        2,
        ipos_tcp::ACK | ipos_tcp::FIN,
        None,
        b"",
    );
    let mut s = synack;
    for part in [&data, &fin] {
        s.push(0xA5);
        s.extend_from_slice(part);
    }
    v.push(seed("tcp_segment", "synack_data_fin", s));
    v
}

/// `http_request`: the requests the node target's client sends.
pub fn http_request() -> Vec<Seed> {
    farm::REQUESTS
        .iter()
        .enumerate()
        .map(|(i, r)| seed("http_request", &format!("request_{i}"), r.to_vec()))
        .collect()
}

/// `advert`: server-state adverts, empty and full.
pub fn advert() -> Vec<Seed> {
    let mut v = Vec::new();
    let mut a = ipos_policy::AdvertRepr::new(crate::frames::IPS[1], 7);
    let mut buf = [0u8; 512];
    let n = a.emit(&mut buf).expect("room");
    v.push(seed("advert", "empty", buf[..n].to_vec()));
    a.established = 12;
    a.cpu_permille = 400;
    let n = a.emit(&mut buf).expect("room");
    v.push(seed("advert", "loaded", buf[..n].to_vec()));
    v
}

/// `progress`: records of HTTP connections before their first request,
/// between requests, in the middle of a response head, of a pattern body, and
/// of a closing 404, taken from real connections.
pub fn progress() -> Vec<Seed> {
    use ipos_http::{HttpConn, Service, MAX_PROGRESS_LEN};
    let svc = Service::new("n1");
    let mut v = Vec::new();
    // (name, request, bytes pulled from poll_send, bytes in flight)
    let cases: [(&str, &[u8], usize, usize); 5] = [
        ("fresh", b"", 0, 0),
        ("between_requests", b"GET /bytes/3 HTTP/1.1\r\n\r\n", 98, 0),
        ("in_head", b"GET / HTTP/1.1\r\n\r\n", 40, 25),
        (
            "in_body",
            b"GET /bytes/100000 HTTP/1.1\r\n\r\n",
            30_000,
            8_760,
        ),
        (
            "closing_404",
            b"GET /a/b HTTP/1.1\r\nConnection: close\r\n\r\n",
            10,
            10,
        ),
    ];
    for (name, req, pull, in_flight) in cases {
        let mut c = HttpConn::new();
        assert_eq!(c.on_recv(&svc, req), req.len(), "{name}");
        let mut out = vec![0u8; pull];
        assert_eq!(c.poll_send(&svc, &mut out), pull, "{name}");
        let p = c.progress(in_flight).expect("movable");
        let mut b = [0u8; MAX_PROGRESS_LEN];
        let n = p.emit(&mut b).expect("room");
        v.push(seed("progress", name, b[..n].to_vec()));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Reader;

    #[test]
    fn every_seed_runs_and_is_small() {
        for (target, name, bytes) in all() {
            assert!(
                bytes.len() <= 2048,
                "{target}/{name}: {} bytes",
                bytes.len()
            );
            match target {
                "node" => farm::run(&bytes),
                "reassembly" => crate::stream::run_reassembly(&bytes),
                "endpoint" => crate::stream::run_endpoint(&bytes),
                "progress" => {
                    ipos_http::Progress::parse(&bytes).expect("a valid record");
                }
                _ => {}
            }
        }
    }

    fn farm_after(ops: &[u8]) -> farm::Farm {
        let mut f = farm::Farm::new();
        let mut r = Reader::new(ops);
        while !r.is_empty() {
            f.apply(Op::read(&mut r));
        }
        f.finish();
        f
    }

    #[test]
    fn node_seeds_reach_what_they_are_named_for() {
        use ipos::counters::Event as E;
        let seeds = node();
        let get = |name: &str| {
            let (_, _, b) = seeds.iter().find(|(_, n, _)| n == name).expect("seed");
            farm_after(b)
        };
        let f = get("migrate_url");
        assert_eq!(f.event(0, E::MigrationsAcked), 1, "{}", f.summary());
        assert_eq!(f.event(1, E::MigrationsReceived), 1);
        let f = get("lost_connection_packet");
        assert!(f.event(0, E::MigrationsRetried) >= 1, "{}", f.summary());
        assert_eq!(f.event(0, E::MigrationsAcked), 1);
        let f = get("cookie_upload_pipelined");
        assert!(f.event(0, E::DecisionCookie) >= 1, "{}", f.summary());
        let f = get("udp_flows");
        assert!(
            f.event(0, E::UdpEchoed) + f.event(1, E::UdpEchoed) >= 1,
            "{}",
            f.summary()
        );
        let f = get("port_reused");
        assert_eq!(f.event(0, E::TcpAccepted), 2, "{}", f.summary());
        let f = get("inject_ipos_tcp_connection");
        assert!(f.event(1, E::IposRxConnection) >= 1, "{}", f.summary());
    }

    #[test]
    fn ops_round_trip() {
        for (target, name, bytes) in node() {
            let mut r = Reader::new(&bytes);
            let mut ops = Vec::new();
            while !r.is_empty() {
                ops.push(Op::read(&mut r));
            }
            assert_eq!(farm::encode(&ops), bytes, "{target}/{name}");
        }
    }
}
