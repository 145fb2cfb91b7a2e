//! The owner's receive-window cap (`Endpoint::set_rcv_window_cap`): the advertised
//! window stays within `rcv_nxt + cap` (the SYN-ACK's too), the right edge never moves
//! left, bytes beyond it are not taken, and lifting the cap opens the window at once.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use ipos_tcp::sim::{craft, pattern, server_flow, LinkConfig, Sim};
use ipos_tcp::{Config, Duration, Endpoint, Instant, Segment, State, ACK, SYN};

const CAP: u32 = 4096;
/// The default window-scale shift (Config::default().window_scale), offered by both sides.
const WS: u8 = 7;
/// Default receive buffer less the one scale unit kept in reserve, in whole units.
const FULL: u32 = ((256 * 1024 - 127) >> WS) << WS;
/// The rounding the crate allows: a re-advertised edge is rounded up to a scale unit.
const UNIT: u32 = 1 << WS;

/// Wrapping `a - b` as a signed distance.
fn dist(a: u32, b: u32) -> i64 {
    i64::from(a.wrapping_sub(b) as i32)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn drain(ep: &mut Endpoint, now: Instant) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1500];
    while let Some(n) = ep.poll_transmit(now, &mut buf) {
        out.push(buf[..n].to_vec());
        assert!(out.len() < 1000);
    }
    out
}

/// What a server segment tells the client: (SYN?, window in bytes, right edge = ack + window).
fn advert(data: &[u8]) -> (bool, u32, u32) {
    let s = Segment::parse(data).unwrap();
    let syn = s.has(SYN);
    let w = if syn {
        u32::from(s.window)
    } else {
        u32::from(s.window) << WS
    };
    (syn, w, s.ack.wrapping_add(w))
}

/// Every segment the server sends, as `advert` sees it, in order.
type Adverts = Rc<RefCell<Vec<(bool, u32, u32)>>>;

fn record_server_adverts(sim: &mut Sim) -> Adverts {
    let log: Adverts = Rc::default();
    let l = log.clone();
    sim.filter = Some(Box::new(move |_, to_server, data| {
        if !to_server {
            l.borrow_mut().push(advert(data));
        }
        true
    }));
    log
}

/// A sim whose server is capped from the start (before its SYN-ACK), run to ESTABLISHED.
fn capped_sim(seed: u64) -> (Sim, Adverts) {
    let cfg = Config::default();
    let mut sim = Sim::new(&cfg, &cfg, LinkConfig::default(), seed);
    assert_eq!(sim.server.rcv_window_cap(), None);
    sim.server.set_rcv_window_cap(Some(CAP));
    assert_eq!(sim.server.rcv_window_cap(), Some(CAP));
    let log = record_server_adverts(&mut sim);
    assert!(
        sim.run_until(ms(100), |s| s.client.state() == State::Established
            && s.server.state() == State::Established)
    );
    (sim, log)
}

#[test]
fn syn_ack_and_later_windows_are_capped() {
    let (mut sim, log) = capped_sim(11);
    // The SYN-ACK: window field at most the cap (never scaled), window scaling on.
    let (syn, w, _) = log.borrow()[0];
    assert!(syn);
    assert_eq!(w, CAP);
    let cfg = Config::default();
    let f = server_flow();
    let now = Instant::from_millis(1);
    let mut c = Endpoint::connect(&cfg, f.reversed(), 1, now);
    let syn = drain(&mut c, now).remove(0);
    let mut s = Endpoint::accept(&cfg, f, &syn, 2, now).unwrap();
    s.set_rcv_window_cap(Some(CAP));
    let out = drain(&mut s, now);
    let sa = Segment::parse(&out[0]).unwrap();
    assert_eq!(sa.flags, SYN | ACK);
    assert_eq!(u32::from(sa.window), CAP);
    assert_eq!(sa.wscale, Some(WS), "our scale is still offered");
    // The client has plenty to send and the server's application never reads.
    let base = sim.server.export(sim.now).rcv_nxt;
    let data: Vec<u8> = (0..50_000u64).map(pattern).collect();
    assert_eq!(sim.client.send_slice(&data), data.len());
    sim.run_for(Duration::from_secs(5));
    let got = sim.server.recv_available() as u32;
    let log = log.borrow();
    assert!(log.len() > 3, "{log:?}");
    let mut told = base.wrapping_add(CAP);
    for &(syn, w, edge) in log.iter() {
        // Within the cap; a re-advertised edge may be rounded up by less than a unit.
        assert!(w < CAP + UNIT, "window {w} beyond the cap (syn {syn})");
        let beyond = dist(edge, base);
        assert!(
            (i64::from(CAP)..i64::from(CAP + UNIT)).contains(&beyond),
            "edge {beyond} past rcv_nxt at the handshake"
        );
        if dist(edge, told) > 0 {
            told = edge;
        }
    }
    // The client filled exactly the window it was told (nothing was read).
    assert_eq!(got, told.wrapping_sub(base), "{log:?}");
    let (a, b) = sim.server.unconsumed();
    assert_eq!([a, b].concat(), &data[..got as usize]);
    assert_eq!(sim.server.export(sim.now).rcv_wnd, 0);
}

#[test]
fn bytes_beyond_the_capped_window_are_not_taken() {
    let (mut sim, _) = capped_sim(12);
    sim.run_for(ms(1));
    let t = sim.server.export(sim.now);
    let (rn, sn, tr) = (t.rcv_nxt, t.snd_nxt, t.ts_recent);
    assert_eq!(t.rcv_wnd, CAP);
    let now = sim.now;
    let mut acked = rn;
    // The farthest right edge the server has told (the handshake's: rcv_nxt + CAP).
    let mut told = rn.wrapping_add(CAP);
    for k in 0..4u32 {
        // 4 x 1448 = 5792 bytes: the third segment straddles the edge, the fourth is beyond.
        let seq = rn.wrapping_add(k * 1448);
        let payload = vec![k as u8 + 1; 1448];
        let seg = craft(server_flow(), seq, sn, ACK, 1000, Some((tr, 0)), &payload);
        sim.server.on_segment(now, &seg).unwrap();
        for s in drain(&mut sim.server, now) {
            let (_, _, edge) = advert(&s);
            acked = Segment::parse(&s).unwrap().ack;
            if dist(edge, told) > 0 {
                told = edge;
            }
        }
    }
    let taken = told.wrapping_sub(rn);
    assert!(
        (CAP..CAP + UNIT).contains(&taken),
        "told {taken}: the cap plus less than one unit of rounding"
    );
    assert_eq!(acked, told, "acknowledged up to the told edge only");
    assert_eq!(sim.server.recv_available(), taken as usize);
    let mut expect = Vec::new();
    for k in 0..3u8 {
        expect.extend_from_slice(&[k + 1; 1448]);
    }
    expect.truncate(taken as usize);
    let (a, b) = sim.server.unconsumed();
    assert_eq!([a, b].concat(), expect);
    assert_eq!(sim.server.counters().dup_segments, 1, "the fourth segment");
    assert_eq!(sim.server.export(now).rcv_wnd, 0);
    // The excess was dropped, not held out of order.
    assert_eq!(sim.server.ooo_ranges(), 0);
}

#[test]
fn cap_set_after_a_larger_window_never_shrinks_the_right_edge() {
    let cfg = Config::default();
    let mut sim = Sim::new(&cfg, &cfg, LinkConfig::default(), 13);
    let log = record_server_adverts(&mut sim);
    sim.client.send_slice(b"hello");
    assert!(sim.run_until(ms(200), |s| s.server.recv_available() == 5));
    sim.run_for(ms(100)); // the delayed ACK of "hello" goes out
    let (_, w0, e0) = *log.borrow().last().unwrap();
    assert!(
        w0 > 60 * CAP,
        "a full-buffer window was advertised first: {w0}"
    );
    let t = sim.server.export(sim.now);
    assert_eq!(t.rcv_nxt.wrapping_add(t.rcv_wnd), e0);
    log.borrow_mut().clear();
    sim.server.set_rcv_window_cap(Some(CAP));
    assert!(
        drain(&mut sim.server, sim.now).is_empty(),
        "no update for a cap"
    );
    // The client sends far more than the old window; the server reads everything.
    let data: Vec<u8> = (0..600_000u64).map(pattern).collect();
    let mut sent = 0;
    let mut got = Vec::new();
    let ok = sim.run_until(Duration::from_secs(120), |s| {
        sent += s.client.send_slice(&data[sent..]);
        let (a, b) = s.server.unconsumed();
        got.extend_from_slice(a);
        got.extend_from_slice(b);
        let n = s.server.recv_available();
        s.server.recv_consume(n);
        got.len() == 5 + data.len()
    });
    assert!(ok, "stalled at {}", got.len());
    assert!(
        got[..5] == *b"hello" && got[5..] == data[..],
        "bytes differ"
    );
    let log = log.borrow();
    let mut told = e0;
    let mut capped = 0;
    for &(_, w, edge) in log.iter() {
        // Never behind the farthest edge told (less than a unit of rounding wobble).
        assert!(
            dist(edge, told) > -i64::from(UNIT),
            "right edge moved left: {told} -> {edge}"
        );
        if dist(edge, told) > 0 {
            told = edge;
        }
        if dist(edge, e0) >= i64::from(UNIT) {
            // Past the old edge the cap holds (one scale unit of rounding).
            assert!(w < CAP + UNIT, "window {w} beyond the cap");
            capped += 1;
        }
    }
    assert!(
        dist(told, e0) > 300_000,
        "the transfer went on past the old edge: {}",
        dist(told, e0)
    );
    assert!(
        capped > 100,
        "the cap took over once the old edge was reached"
    );
}

#[test]
fn lifting_the_cap_opens_the_window_at_once() {
    let (mut sim, _) = capped_sim(14);
    sim.run_for(ms(100));
    assert!(drain(&mut sim.server, sim.now).is_empty());
    let rn = sim.server.export(sim.now).rcv_nxt;
    assert_eq!(sim.server.export(sim.now).rcv_wnd, CAP);
    // Raising the cap by less than the SWS threshold (one MSS) sends nothing.
    sim.server.set_rcv_window_cap(Some(CAP + 1024));
    assert!(drain(&mut sim.server, sim.now).is_empty());
    sim.server.set_rcv_window_cap(None);
    assert_eq!(sim.server.rcv_window_cap(), None);
    let out = drain(&mut sim.server, sim.now);
    assert_eq!(out.len(), 1, "one window update");
    let s = Segment::parse(&out[0]).unwrap();
    assert_eq!(s.flags, ACK);
    assert!(s.payload.is_empty());
    assert_eq!(s.ack, rn);
    assert_eq!(u32::from(s.window) << WS, FULL, "the whole buffer");
    assert_eq!(sim.server.export(sim.now).rcv_wnd, FULL);
    // A cap set again cannot take the window back.
    sim.server.set_rcv_window_cap(Some(CAP));
    assert!(drain(&mut sim.server, sim.now).is_empty());
    sim.server.send_slice(b"x");
    let out = drain(&mut sim.server, sim.now);
    assert_eq!(advert(&out[0]).2, rn.wrapping_add(FULL));
}

#[test]
fn cap_set_after_the_syn_ack_does_not_shrink_its_retransmission() {
    let cfg = Config::default();
    let f = server_flow();
    let now = Instant::from_millis(1);
    let mut c = Endpoint::connect(&cfg, f.reversed(), 1, now);
    let syn = drain(&mut c, now).remove(0);
    let mut s = Endpoint::accept(&cfg, f, &syn, 2, now).unwrap();
    let out = drain(&mut s, now);
    let first = Segment::parse(&out[0]).unwrap();
    assert_eq!(first.window, 65535);
    s.set_rcv_window_cap(Some(CAP));
    let later = now + Duration::from_secs(2);
    let again = drain(&mut s, later);
    assert_eq!(again.len(), 1, "the SYN-ACK again after the RTO");
    let again = Segment::parse(&again[0]).unwrap();
    assert_eq!(again.flags, SYN | ACK);
    assert_eq!(again.window, 65535);
    // A fresh endpoint capped before its first SYN-ACK.
    let mut s = Endpoint::accept(&cfg, f, &syn, 2, now).unwrap();
    s.set_rcv_window_cap(Some(CAP));
    let out = drain(&mut s, now);
    let sa = Segment::parse(&out[0]).unwrap();
    assert_eq!(u32::from(sa.window), CAP);
    // Lifted before the retransmission: the retransmitted SYN-ACK is uncapped.
    s.set_rcv_window_cap(None);
    let out = drain(&mut s, later);
    let again = Segment::parse(&out[0]).unwrap();
    assert_eq!(again.window, 65535);
}

#[test]
fn export_reports_the_advertised_window_and_an_importer_is_uncapped() {
    let (mut sim, _) = capped_sim(15);
    sim.run_for(ms(50));
    let now = sim.server_now();
    let tcb = sim.server.export(now);
    assert_eq!(tcb.rcv_wnd, CAP);
    let cfg = Config::default();
    let (a, b) = sim.server.unacked_and_unsent();
    let snd = [a, b].concat();
    let mut imp = Endpoint::import(&cfg, &tcb, sim.server.flow(), &snd, &[], now).unwrap();
    assert_eq!(imp.rcv_window_cap(), None);
    assert_eq!(imp.export(now), tcb);
    // The importer opens its window on its next segment.
    imp.send_slice(b"x");
    let out = drain(&mut imp, now);
    let (_, w, _) = advert(&out[0]);
    assert_eq!(w, FULL);
}

#[test]
fn byte_exact_transfer_with_the_cap_lifted_midway() {
    let cfg = Config::default();
    let link = LinkConfig {
        loss_permille: 10,
        jitter: ms(2),
        ..LinkConfig::default()
    };
    let mut sim = Sim::new(&cfg, &cfg, link, 16);
    sim.server.set_rcv_window_cap(Some(CAP));
    let capped = Rc::new(Cell::new(true));
    let max_capped = Rc::new(Cell::new(0u32));
    let max_open = Rc::new(Cell::new(0u32));
    let (c, mc, mo) = (capped.clone(), max_capped.clone(), max_open.clone());
    sim.filter = Some(Box::new(move |_, to_server, data| {
        if !to_server {
            let (_, w, _) = advert(data);
            let m = if c.get() { &mc } else { &mo };
            m.set(m.get().max(w));
        }
        true
    }));
    let up: Vec<u8> = (0..400_000u64).map(pattern).collect();
    let down: Vec<u8> = (0..100_000u64).map(|i| pattern(i + 7)).collect();
    let (mut sent_up, mut sent_down) = (0, 0);
    let (mut got_up, mut got_down) = (Vec::new(), Vec::new());
    let mut lifted_at = None;
    let ok = sim.run_until(Duration::from_secs(300), |s| {
        sent_up += s.client.send_slice(&up[sent_up..]);
        sent_down += s.server.send_slice(&down[sent_down..]);
        let (a, b) = s.server.unconsumed();
        got_up.extend_from_slice(a);
        got_up.extend_from_slice(b);
        let n = s.server.recv_available();
        s.server.recv_consume(n);
        let (a, b) = s.client.unconsumed();
        got_down.extend_from_slice(a);
        got_down.extend_from_slice(b);
        let n = s.client.recv_available();
        s.client.recv_consume(n);
        if lifted_at.is_none() && got_up.len() >= 100_000 {
            s.server.set_rcv_window_cap(None);
            capped.set(false);
            lifted_at = Some(s.now);
        }
        got_up.len() == up.len() && got_down.len() == down.len()
    });
    assert!(ok, "stalled at {} / {}", got_up.len(), got_down.len());
    assert!(got_up == up, "client -> server bytes differ");
    assert!(got_down == down, "server -> client bytes differ");
    assert!(lifted_at.is_some());
    assert!(
        max_capped.get() <= CAP,
        "capped window {}",
        max_capped.get()
    );
    assert!(max_open.get() > 16 * CAP, "opened to {}", max_open.get());
    assert!(sim.server.counters().dup_segments < 100);
}
