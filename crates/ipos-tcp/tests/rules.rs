//! RST / SYN / ACK rules (RFC 5961), PAWS, timers, flow and congestion control.

use std::cell::RefCell;
use std::rc::Rc;

use ipos_tcp::sim::{client_flow, craft, server_flow, LinkConfig, Sim};
use ipos_tcp::{
    Config, Duration, Endpoint, Instant, Segment, SegmentError, State, ACK, FIN, PSH, RST, SYN,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn established_with(ccfg: &Config, scfg: &Config) -> Sim {
    let mut sim = Sim::new(ccfg, scfg, LinkConfig::default(), 3);
    assert!(
        sim.run_until(ms(100), |s| s.client.state() == State::Established
            && s.server.state() == State::Established)
    );
    sim.run_for(ms(1));
    sim
}

fn established() -> Sim {
    let cfg = Config::default();
    established_with(&cfg, &cfg)
}

/// Everything the endpoint wants to send right now.
fn drain(ep: &mut Endpoint, now: Instant) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1500];
    while let Some(n) = ep.poll_transmit(now, &mut buf) {
        out.push(buf[..n].to_vec());
        assert!(out.len() < 1000);
    }
    out
}

/// (client seq = server rcv_nxt, client ack = server snd_nxt, client TSval to use, server ts_recent)
fn server_view(sim: &Sim) -> (u32, u32, u32) {
    let t = sim.server.export(sim.now);
    (t.rcv_nxt, t.snd_nxt, t.ts_recent)
}

#[test]
fn rst_exactly_at_rcv_nxt_resets() {
    let mut sim = established();
    let (rn, sn, tr) = server_view(&sim);
    let rst = craft(server_flow(), rn, sn, RST | ACK, 0, Some((tr + 1, 0)), b"");
    sim.server.on_segment(sim.now, &rst).unwrap();
    assert_eq!(sim.server.state(), State::Closed);
    assert!(sim.server.is_closed());
    assert!(drain(&mut sim.server, sim.now).is_empty());
    assert_eq!(sim.server.counters().rst_in, 1);
}

#[test]
fn rst_in_window_but_not_exact_gets_challenge_ack() {
    let mut sim = established();
    let (rn, sn, _) = server_view(&sim);
    let rst = craft(server_flow(), rn.wrapping_add(1000), sn, RST, 0, None, b"");
    sim.server.on_segment(sim.now, &rst).unwrap();
    assert_eq!(sim.server.state(), State::Established);
    let out = drain(&mut sim.server, sim.now);
    assert_eq!(out.len(), 1);
    let s = Segment::parse(&out[0]).unwrap();
    assert_eq!(s.flags, ACK);
    assert_eq!(s.ack, rn);
    assert_eq!(s.seq, sn);
    assert_eq!(sim.server.counters().challenge_acks, 1);
    // The peer's answer to the challenge ACK (an RST at exactly rcv_nxt) then resets.
    let rst = craft(server_flow(), rn, 0, RST, 0, None, b"");
    sim.server.on_segment(sim.now, &rst).unwrap();
    assert_eq!(sim.server.state(), State::Closed);
}

#[test]
fn rst_outside_window_is_ignored() {
    let mut sim = established();
    let (rn, sn, _) = server_view(&sim);
    for seq in [rn.wrapping_sub(1), rn.wrapping_add(10_000_000)] {
        let rst = craft(server_flow(), seq, sn, RST, 0, None, b"");
        sim.server.on_segment(sim.now, &rst).unwrap();
        assert_eq!(sim.server.state(), State::Established);
        assert!(drain(&mut sim.server, sim.now).is_empty());
    }
}

#[test]
fn syn_in_established_gets_challenge_ack() {
    let mut sim = established();
    let (rn, sn, tr) = server_view(&sim);
    // In window and out of window: both answered with a challenge ACK, never a reset.
    for seq in [rn.wrapping_add(5), rn.wrapping_add(77_777_777)] {
        let syn = craft(server_flow(), seq, 0, SYN, 1000, Some((tr + 5, 0)), b"");
        sim.server.on_segment(sim.now, &syn).unwrap();
        assert_eq!(sim.server.state(), State::Established);
        let out = drain(&mut sim.server, sim.now);
        assert_eq!(out.len(), 1);
        let s = Segment::parse(&out[0]).unwrap();
        assert_eq!((s.flags, s.ack, s.seq), (ACK, rn, sn));
    }
    assert!(sim.server.counters().challenge_acks >= 1);
}

#[test]
fn ack_of_unsent_data_is_challenged_and_segment_dropped() {
    let mut sim = established();
    let (rn, sn, tr) = server_view(&sim);
    let bad = craft(
        server_flow(),
        rn,
        sn.wrapping_add(5000),
        ACK | PSH,
        1000,
        Some((tr + 1, 0)),
        b"data",
    );
    sim.server.on_segment(sim.now, &bad).unwrap();
    assert_eq!(
        sim.server.recv_available(),
        0,
        "data of an unacceptable ACK is dropped"
    );
    assert_eq!(sim.server.counters().challenge_acks, 1);
    let out = drain(&mut sim.server, sim.now);
    assert_eq!(out.len(), 1);
    // A valid segment is accepted afterwards.
    let good = craft(
        server_flow(),
        rn,
        sn,
        ACK | PSH,
        1000,
        Some((tr + 1, 0)),
        b"data",
    );
    sim.server.on_segment(sim.now, &good).unwrap();
    assert_eq!(sim.server.recv_slice(), b"data");
}

#[test]
fn paws_drops_old_timestamp_and_acks() {
    let mut sim = established();
    let (rn, sn, tr) = server_view(&sim);
    let old = craft(
        server_flow(),
        rn,
        sn,
        ACK | PSH,
        1000,
        Some((tr.wrapping_sub(10), 0)),
        b"old",
    );
    sim.server.on_segment(sim.now, &old).unwrap();
    assert_eq!(sim.server.recv_available(), 0);
    assert_eq!(sim.server.counters().paws_drops, 1);
    let out = drain(&mut sim.server, sim.now);
    assert_eq!(out.len(), 1, "PAWS drop is answered with an ACK");
    // Timestamps near the 2^31 wrap still compare correctly.
    let new = craft(
        server_flow(),
        rn,
        sn,
        ACK | PSH,
        1000,
        Some((tr.wrapping_add(0x7fff_0000), 0)),
        b"new",
    );
    sim.server.on_segment(sim.now, &new).unwrap();
    assert_eq!(sim.server.recv_slice(), b"new");
    // ts_recent advanced to the new TSval: echoed in the next ACK.
    sim.now += ms(50);
    let out = drain(&mut sim.server, sim.now);
    let s = Segment::parse(&out[0]).unwrap();
    assert_eq!(s.timestamp.unwrap().1, tr.wrapping_add(0x7fff_0000));
}

#[test]
fn ts_recent_not_updated_by_segment_beyond_last_ack_sent() {
    // RFC 7323 4.3: an out-of-order segment (seq > Last.ACK.sent) must not update TS.Recent.
    let mut sim = established();
    let (rn, sn, tr) = server_view(&sim);
    let ooo = craft(
        server_flow(),
        rn.wrapping_add(100),
        sn,
        ACK,
        1000,
        Some((tr + 50, 0)),
        b"later",
    );
    sim.server.on_segment(sim.now, &ooo).unwrap();
    let out = drain(&mut sim.server, sim.now);
    let s = Segment::parse(&out[0]).unwrap();
    assert_eq!(s.ack, rn, "duplicate ACK for the gap");
    assert_eq!(s.timestamp.unwrap().1, tr, "TS.Recent unchanged");
    assert_eq!(sim.server.counters().ooo_segments, 1);
}

#[test]
fn malformed_segments_are_errors_and_change_nothing() {
    let mut sim = established();
    let before = sim.server.export(sim.now);
    let now = sim.now;
    assert_eq!(
        sim.server.on_segment(now, &[1, 2, 3]),
        Err(SegmentError::Truncated)
    );
    let (rn, sn, tr) = server_view(&sim);
    let mut seg = craft(server_flow(), rn, sn, ACK, 1000, Some((tr, 0)), b"x");
    seg[12] = 0x20; // data offset 2 words
    assert_eq!(
        sim.server.on_segment(now, &seg),
        Err(SegmentError::BadHeaderLength)
    );
    let mut seg = craft(server_flow(), rn, sn, ACK, 1000, Some((tr, 0)), b"x");
    seg[23] = 0xff; // timestamp option length runs past the header
    assert_eq!(
        sim.server.on_segment(now, &seg),
        Err(SegmentError::BadOption)
    );
    let mut other = server_flow();
    other.src_port = 1;
    let seg = craft(other, rn, sn, ACK, 1000, Some((tr, 0)), b"x");
    assert_eq!(
        sim.server.on_segment(now, &seg),
        Err(SegmentError::PortMismatch)
    );
    assert_eq!(sim.server.export(now), before);
    assert_eq!(sim.server.counters().bad_segments, 4);
    assert!(drain(&mut sim.server, now).is_empty());
}

#[test]
fn random_bytes_never_panic() {
    let mut sim = established();
    let mut rng = ipos_tcp::sim::XorShift::new(42);
    let (rn, sn, tr) = server_view(&sim);
    for i in 0..20_000u32 {
        let mut seg = craft(server_flow(), rn, sn, ACK, 1000, Some((tr, 0)), b"abcdefgh");
        let len = rng.below(seg.len() as u64 + 1) as usize;
        seg.truncate(len);
        for _ in 0..rng.below(4) {
            if !seg.is_empty() {
                let j = rng.below(seg.len() as u64) as usize;
                seg[j] = rng.next_u64() as u8;
            }
        }
        let _ = sim.server.on_segment(sim.now, &seg);
        if i % 64 == 0 {
            drain(&mut sim.server, sim.now);
        }
    }
}

#[test]
fn delayed_ack_rules() {
    let mut sim = established();
    let (rn, sn, tr) = server_view(&sim);
    let now = sim.now;
    let full = vec![7u8; 1448];
    // One full segment: ACK delayed by 40 ms.
    let s1 = craft(server_flow(), rn, sn, ACK, 1000, Some((tr, 0)), &full);
    sim.server.on_segment(now, &s1).unwrap();
    assert!(drain(&mut sim.server, now).is_empty());
    assert_eq!(sim.server.poll_timeout(), Some(now + ms(40)));
    // Second full segment: ACK at once.
    let s2 = craft(
        server_flow(),
        rn.wrapping_add(1448),
        sn,
        ACK,
        1000,
        Some((tr, 0)),
        &full,
    );
    sim.server.on_segment(now, &s2).unwrap();
    let out = drain(&mut sim.server, now);
    assert_eq!(out.len(), 1);
    assert_eq!(Segment::parse(&out[0]).unwrap().ack, rn.wrapping_add(2896));
    assert_eq!(sim.server.poll_timeout(), None);
    // A small segment: delayed, then sent when the timer fires.
    let s3 = craft(
        server_flow(),
        rn.wrapping_add(2896),
        sn,
        ACK,
        1000,
        Some((tr, 0)),
        b"x",
    );
    sim.server.on_segment(now, &s3).unwrap();
    assert!(drain(&mut sim.server, now + ms(39)).is_empty());
    let out = drain(&mut sim.server, now + ms(40));
    assert_eq!(out.len(), 1);
    // Out-of-order: immediate duplicate ACK; the gap fill: immediate ACK.
    let base = rn.wrapping_add(2897);
    let s5 = craft(
        server_flow(),
        base.wrapping_add(10),
        sn,
        ACK,
        1000,
        Some((tr, 0)),
        b"0123456789",
    );
    sim.server.on_segment(now + ms(41), &s5).unwrap();
    let out = drain(&mut sim.server, now + ms(41));
    assert_eq!(Segment::parse(&out[0]).unwrap().ack, base);
    let s4 = craft(
        server_flow(),
        base,
        sn,
        ACK,
        1000,
        Some((tr, 0)),
        b"abcdefghij",
    );
    sim.server.on_segment(now + ms(41), &s4).unwrap();
    let out = drain(&mut sim.server, now + ms(41));
    assert_eq!(out.len(), 1);
    assert_eq!(Segment::parse(&out[0]).unwrap().ack, base.wrapping_add(20));
    assert_eq!(sim.server.recv_available(), 2896 + 1 + 20);
}

#[test]
fn rto_backoff_doubles_then_gives_up() {
    let cfg = Config {
        max_retransmits: 4,
        ..Config::default()
    };
    let mut sim = established_with(&cfg, &cfg);
    let times: Rc<RefCell<Vec<Instant>>> = Rc::default();
    let t2 = times.clone();
    sim.filter = Some(Box::new(move |now, to_server, data| {
        if !to_server {
            let s = Segment::parse(data).unwrap();
            if !s.payload.is_empty() {
                t2.borrow_mut().push(now);
            }
            return false; // black hole towards the client
        }
        true
    }));
    sim.server.send_slice(b"are you there?");
    assert!(sim.run_until(Duration::from_secs(120), |s| s.server.is_closed()));
    let t = times.borrow();
    assert_eq!(t.len(), 5, "original + 4 retransmissions: {t:?}");
    let gaps: Vec<i64> = t
        .windows(2)
        .map(|w| (w[1] - w[0]).total_millis() as i64)
        .collect();
    for w in gaps.windows(2) {
        assert_eq!(w[1], 2 * w[0], "exponential backoff: {gaps:?}");
    }
    assert!(gaps[0] >= 200, "RTO at least min_rto: {gaps:?}");
    assert_eq!(sim.server.counters().rto_timeouts, 4);
    assert_eq!(sim.server.counters().rst_out, 1);
    assert_eq!(sim.server.state(), State::Closed);
}

#[test]
fn fast_retransmit_on_three_dup_acks() {
    // The classic (non-SACK) path: three duplicate ACKs. A first window of three
    // segments (RFC 3390's): the receiver here answers a burst that arrives at one
    // instant with one duplicate ACK, so the dup ACKs come from the limited-transmit
    // segments sent one by one after it.
    let cfg = Config {
        sack_permitted: false,
        initial_window: 3,
        ..Config::default()
    };
    let mut sim = established_with(&cfg, &cfg);
    // Drop only the first data segment towards the client.
    let mut dropped = false;
    sim.filter = Some(Box::new(move |_, to_server, data| {
        if !to_server && !dropped && !Segment::parse(data).unwrap().payload.is_empty() {
            dropped = true;
            return false;
        }
        true
    }));
    let t0 = sim.now;
    let data = vec![9u8; 10 * 1448];
    assert_eq!(sim.server.send_slice(&data), data.len());
    assert!(sim.run_until(ms(1000), |s| s.client.recv_available() == data.len()));
    let c = sim.server.counters();
    assert_eq!(c.fast_retransmits, 1, "{c:?}");
    assert_eq!(c.rto_timeouts, 0);
    assert!(c.dup_acks >= 3);
    // Recovered within a few RTTs, far below the 1 s initial RTO.
    assert!(sim.now - t0 < ms(100), "{}", sim.now - t0);
}

#[test]
fn zero_window_persist_and_reopen() {
    let ccfg = Config {
        rcv_buf: 4096,
        ..Config::default()
    };
    let scfg = Config::default();
    let mut sim = established_with(&ccfg, &scfg);
    let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(sim.server.send_slice(&data), data.len());
    sim.run_for(Duration::from_secs(10));
    // The client's buffer is full; the server is probing.
    let avail = sim.client.recv_available();
    assert!(avail > 3000 && avail <= 4096, "client holds {avail}");
    let probes = sim.server.counters().window_probes;
    assert!((2..=6).contains(&probes), "probes with backoff: {probes}");
    assert_eq!(sim.server.state(), State::Established);
    assert_eq!(sim.server.counters().rto_timeouts, 0);
    // Lose the client's window update: the next probe finds the open window.
    let until = sim.now + ms(100);
    sim.filter = Some(Box::new(move |now, to_server, _| {
        !(to_server && now < until)
    }));
    let mut got = Vec::new();
    let ok = sim.run_until(Duration::from_secs(60), |s| {
        let c = s.client.recv_slice();
        got.extend_from_slice(c);
        let n = c.len();
        s.client.recv_consume(n);
        got.len() == data.len()
    });
    assert!(ok, "stalled at {}", got.len());
    assert_eq!(got, data);
    assert!(sim.server.counters().window_probes > probes);
}

#[test]
fn syn_received_times_out() {
    let cfg = Config::default();
    let mut sim = Sim::new(&cfg, &cfg, LinkConfig::default(), 9);
    sim.filter = Some(Box::new(|_, to_server, _| to_server));
    let t0 = sim.now;
    assert!(sim.run_until(Duration::from_secs(30), |s| s.server.is_closed()));
    assert!(sim.now - t0 >= Duration::from_secs(10));
    assert!(
        sim.server.counters().retransmits >= 2,
        "SYN-ACK retransmitted"
    );
    assert_eq!(sim.server.counters().rst_out, 1);
}

#[test]
fn simultaneous_open() {
    let cfg = Config::default();
    let t = client_flow();
    let now = Instant::from_millis(5000);
    let mut a = Endpoint::connect(&cfg, t, 1000, now);
    let mut b = Endpoint::connect(&cfg, t.reversed(), 90_000, now);
    let sa = drain(&mut a, now);
    let sb = drain(&mut b, now);
    a.on_segment(now, &sb[0]).unwrap();
    b.on_segment(now, &sa[0]).unwrap();
    assert_eq!(a.state(), State::SynReceived);
    assert_eq!(b.state(), State::SynReceived);
    let sa = drain(&mut a, now);
    let sb = drain(&mut b, now);
    assert_eq!(Segment::parse(&sa[0]).unwrap().flags, SYN | ACK);
    a.on_segment(now, &sb[0]).unwrap();
    b.on_segment(now, &sa[0]).unwrap();
    assert_eq!(a.state(), State::Established);
    assert_eq!(b.state(), State::Established);
    a.send_slice(b"ping");
    for s in drain(&mut a, now) {
        b.on_segment(now, &s).unwrap();
    }
    assert_eq!(b.recv_slice(), b"ping");
}

#[test]
fn options_only_if_peer_offers_them() {
    let plain = Config {
        timestamps: false,
        window_scale: 0,
        ..Config::default()
    };
    let t = client_flow();
    let now = Instant::from_millis(1);
    // A client SYN without options (we craft one: MSS only is omitted too).
    let syn = craft(t.reversed(), 5555, 0, SYN, 8192, None, b"");
    let mut server = Endpoint::accept(&Config::default(), t.reversed(), &syn, 777, now).unwrap();
    let out = drain(&mut server, now);
    let sa = Segment::parse(&out[0]).unwrap();
    assert_eq!(sa.flags, SYN | ACK);
    assert_eq!(sa.ack, 5556);
    assert_eq!(sa.seq, 777);
    assert_eq!(sa.mss, Some(1460));
    assert_eq!(
        sa.wscale, None,
        "no window scaling unless the SYN offered it"
    );
    assert_eq!(
        sa.timestamp, None,
        "no timestamps unless the SYN offered them"
    );
    assert!(
        !sa.sack_permitted,
        "no SACK-permitted unless the SYN offered it"
    );
    // Default peer MSS 536 applies: a large write goes out in 536-byte segments.
    let ack = craft(t.reversed(), 5556, 778, ACK, 8192, None, b"");
    server.on_segment(now, &ack).unwrap();
    assert_eq!(server.state(), State::Established);
    server.send_slice(&[1u8; 3000]);
    let out = drain(&mut server, now);
    assert!(out
        .iter()
        .all(|s| Segment::parse(s).unwrap().payload.len() <= 536));
    // A client that does offer them gets them, and the window is scaled.
    let mut client = Endpoint::connect(&Config::default(), t, 1, now);
    let syn = drain(&mut client, now).remove(0);
    let s = Segment::parse(&syn).unwrap();
    assert_eq!(s.wscale, Some(7));
    assert!(s.timestamp.is_some());
    let mut server = Endpoint::accept(&plain, t.reversed(), &syn, 2, now).unwrap();
    let sa = drain(&mut server, now).remove(0);
    let sa = Segment::parse(&sa).unwrap();
    // Our config disables timestamps; scaling with shift 0 is still offered back.
    assert_eq!(sa.timestamp, None);
    assert_eq!(sa.wscale, Some(0));
}

#[test]
fn fin_with_data_and_out_of_order_fin() {
    let mut sim = established();
    let (rn, sn, tr) = server_view(&sim);
    let now = sim.now;
    // FIN arrives before the data in front of it.
    let fin = craft(
        server_flow(),
        rn.wrapping_add(5),
        sn,
        ACK | FIN,
        1000,
        Some((tr, 0)),
        b"world",
    );
    sim.server.on_segment(now, &fin).unwrap();
    assert!(!sim.server.peer_fin_received());
    assert_eq!(sim.server.state(), State::Established);
    let hello = craft(server_flow(), rn, sn, ACK, 1000, Some((tr, 0)), b"hello");
    sim.server.on_segment(now, &hello).unwrap();
    assert!(sim.server.peer_fin_received());
    assert_eq!(sim.server.state(), State::CloseWait);
    assert_eq!(sim.server.recv_slice(), b"helloworld");
    let out = drain(&mut sim.server, now);
    assert_eq!(
        Segment::parse(out.last().unwrap()).unwrap().ack,
        rn.wrapping_add(11)
    );
}

#[test]
fn random_bytes_never_panic_in_handshake_states() {
    let cfg = Config::default();
    let t = client_flow();
    let now = Instant::from_millis(10);
    let mut rng = ipos_tcp::sim::XorShift::new(7);
    let mut client = Endpoint::connect(&cfg, t, 100, now);
    let syn = drain(&mut client, now).remove(0);
    for _ in 0..20_000 {
        let mut seg = syn.clone();
        seg.extend_from_slice(b"payload");
        let len = rng.below(seg.len() as u64 + 1) as usize;
        seg.truncate(len);
        for _ in 0..rng.below(5) {
            if !seg.is_empty() {
                let j = rng.below(seg.len() as u64) as usize;
                seg[j] = rng.next_u64() as u8;
            }
        }
        // As a SYN for accept (passive), and as input to a SYN-SENT endpoint.
        if let Ok(mut ep) = Endpoint::accept(&cfg, t.reversed(), &seg, 5, now) {
            drain(&mut ep, now);
            let _ = ep.on_segment(now, &seg);
            drain(&mut ep, now);
        }
        let mut c = Endpoint::connect(&cfg, t, 100, now);
        drain(&mut c, now);
        if let Some(ports) = seg.get_mut(0..4) {
            ports.copy_from_slice(&[0, 80, 0x9c, 0x40]);
        }
        let _ = c.on_segment(now, &seg);
        drain(&mut c, now);
    }
}

/// Pure ACKs outside the window (an ACK storm's, from a peer that disagrees on the
/// sequence space) are answered at most once per 500 ms; data outside the window
/// is still answered every time.
#[test]
fn out_of_window_acks_are_answered_at_most_twice_a_second() {
    let mut sim = established();
    let (rn, sn, tr) = server_view(&sim);
    let stale = |i: u32| {
        craft(
            server_flow(),
            rn.wrapping_sub(100_000),
            sn,
            ACK,
            1000,
            Some((tr + 1 + i, 0)),
            b"",
        )
    };
    let mut answered = 0;
    for i in 0..20 {
        let now = sim.now + ms(u64::from(i) * 10);
        sim.server.on_segment(now, &stale(i)).unwrap();
        answered += drain(&mut sim.server, now).len();
    }
    assert_eq!(answered, 1, "one ACK in the first 200 ms");
    let later = sim.now + ms(700);
    sim.server.on_segment(later, &stale(30)).unwrap();
    assert_eq!(
        drain(&mut sim.server, later).len(),
        1,
        "and another 500 ms on"
    );
    assert_eq!(sim.server.counters().acks_rate_limited, 19);
    // Data we already had is answered each time (with a D-SACK).
    for i in 0..3 {
        let old = craft(
            server_flow(),
            rn.wrapping_sub(1000),
            sn,
            ACK,
            1000,
            Some((tr + 40 + i, 0)),
            &[1u8; 500],
        );
        sim.server.on_segment(later, &old).unwrap();
        assert_eq!(drain(&mut sim.server, later).len(), 1);
    }
}
