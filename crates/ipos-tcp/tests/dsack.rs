//! D-SACK (RFC 2883): the receiver reports data it got twice, and the sender
//! undoes a window reduction that every retransmission of the episode turned out
//! not to need.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use ipos_tcp::sim::{craft, pattern, LinkConfig, Sim};
use ipos_tcp::{Config, Duration, Segment, State, ACK};

fn established() -> Sim {
    let cfg = Config::default();
    let mut sim = Sim::new(&cfg, &cfg, LinkConfig::default(), 8);
    assert!(
        sim.run_until(Duration::from_millis(100), |s| s.server.state()
            == State::Established
            && s.client.state() == State::Established)
    );
    sim.run_for(Duration::from_millis(10));
    sim
}

/// A segment that arrives a second time is reported in the first SACK block of
/// the ACK it triggers.
#[test]
fn data_received_twice_is_reported_first() {
    let mut sim = established();
    let t = sim.client.export(sim.now);
    let from = ipos_tcp::sim::client_flow();
    let seg = |seq: u32| {
        craft(
            from,
            seq,
            t.snd_nxt,
            ACK,
            4000,
            Some((t.ts_recent.wrapping_add(1), t.ts_clock)),
            &[7u8; 500],
        )
    };
    let mut buf = [0u8; 1500];
    sim.client.on_segment(sim.now, &seg(t.rcv_nxt)).unwrap();
    while sim.client.poll_transmit(sim.now, &mut buf).is_some() {}
    // The same bytes again.
    sim.client.on_segment(sim.now, &seg(t.rcv_nxt)).unwrap();
    let n = sim.client.poll_transmit(sim.now, &mut buf).expect("an ACK");
    let ack = Segment::parse(&buf[..n]).unwrap();
    assert_eq!(ack.ack, t.rcv_nxt.wrapping_add(500));
    assert_eq!(ack.sack_blocks, 1);
    assert_eq!(
        ack.sack[0],
        (t.rcv_nxt, t.rcv_nxt.wrapping_add(500)),
        "the D-SACK block"
    );
    // Reported once: the next ACK (a delayed one, for new data) has no block.
    let next = craft(
        from,
        t.rcv_nxt.wrapping_add(500),
        t.snd_nxt,
        ACK,
        4000,
        Some((t.ts_recent.wrapping_add(2), t.ts_clock)),
        &[8u8; 500],
    );
    sim.client.on_segment(sim.now, &next).unwrap();
    let later = sim.now + Duration::from_millis(100);
    let n = sim.client.poll_transmit(later, &mut buf).expect("an ACK");
    assert_eq!(Segment::parse(&buf[..n]).unwrap().sack_blocks, 0);
}

/// A segment held back (reordered) past three later ones: the sender takes it for
/// lost, retransmits it and reduces its window; then the late original arrives
/// too, the receiver reports the duplicate, and the sender puts its window and
/// threshold back. Every byte arrives once to the application.
#[test]
fn a_reduction_for_a_reordered_segment_is_undone() {
    let mut sim = established();
    let held: Rc<RefCell<Option<Vec<u8>>>> = Rc::default();
    let release: Rc<RefCell<bool>> = Rc::default();
    let (h, rl) = (held.clone(), release.clone());
    let mut seen = HashSet::new();
    sim.filter = Some(Box::new(move |_, to_server, data| {
        let s = Segment::parse(data).unwrap();
        if to_server || s.payload.is_empty() {
            return true;
        }
        if !seen.insert(s.seq) {
            // The retransmission: the original may go now.
            *rl.borrow_mut() = true;
            return true;
        }
        if seen.len() == 40 && h.borrow().is_none() {
            *h.borrow_mut() = Some(data.to_vec());
            return false;
        }
        true
    }));
    let total = 200 * 1448;
    let data: Vec<u8> = (0..total as u64).map(pattern).collect();
    let (mut off, mut got) = (0, Vec::new());
    let mut before = None;
    let ok = sim.run_until(Duration::from_secs(30), |s| {
        off += s.server.send_slice(&data[off..]);
        if before.is_none() && held.borrow().is_some() {
            let t = s.server.export(s.server_now());
            before = Some((t.cwnd, t.ssthresh));
        }
        if *release.borrow() {
            if let Some(orig) = held.borrow_mut().take() {
                s.send(false, orig);
            }
        }
        let n = s.client.recv_slice().len();
        got.extend_from_slice(s.client.recv_slice());
        s.client.recv_consume(n);
        got.len() == total
    });
    assert!(ok, "stalled at {}", got.len());
    assert!(got == data);
    let c = sim.server.counters();
    assert_eq!(c.retransmits, 1, "{c:?}");
    assert_eq!(c.spurious_undos, 1, "{c:?}");
    assert_eq!(c.rto_timeouts, 0, "{c:?}");
    let (_, ssthresh_before) = before.expect("held");
    let after = sim.server.export(sim.server_now());
    assert!(
        after.ssthresh >= ssthresh_before,
        "{} < {ssthresh_before}",
        after.ssthresh
    );
}
