//! SACK (RFC 2018) and SACK-based loss recovery (RFC 6675), tail loss probes.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use ipos_tcp::sim::{
    client_flow, craft, craft_sack, pattern, server_flow, LinkConfig, Sim, XorShift,
};
use ipos_tcp::{Config, Duration, Segment, State, ACK};

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

/// Drop the first transmission of the data segments to the client with these indices
/// (0-based, counted over first transmissions in sequence order).
fn drop_first_tx(sim: &mut Sim, indices: &'static [usize]) -> Rc<RefCell<Vec<u32>>> {
    let dropped = Rc::new(RefCell::new(Vec::new()));
    let d = dropped.clone();
    let mut seen: HashSet<u32> = HashSet::new();
    sim.filter = Some(Box::new(move |_, to_server, data| {
        let s = Segment::parse(data).unwrap();
        if to_server || s.payload.is_empty() || !seen.insert(s.seq) {
            return true;
        }
        if indices.contains(&(seen.len() - 1)) {
            d.borrow_mut().push(s.seq);
            return false;
        }
        true
    }));
    dropped
}

fn send_and_receive(sim: &mut Sim, total: usize) {
    let data: Vec<u8> = (0..total as u64).map(pattern).collect();
    let mut off = 0;
    let mut got = Vec::new();
    let ok = sim.run_until(Duration::from_secs(60), |s| {
        off += s.server.send_slice(&data[off..]);
        let n = s.client.recv_available();
        got.extend_from_slice(&s.client.recv_slice()[..n.min(s.client.recv_slice().len())]);
        let k = s.client.recv_slice().len();
        s.client.recv_consume(k);
        got.len() == total
    });
    assert!(ok, "transfer stalled at {}/{total}", got.len());
    assert!(got == data, "received bytes differ");
}

#[test]
fn sack_permitted_negotiated_by_default() {
    let cfg = Config::default();
    let mut sim = Sim::new(&cfg, &cfg, LinkConfig::default(), 1);
    let synack = Rc::new(RefCell::new(None));
    let s2 = synack.clone();
    sim.filter = Some(Box::new(move |_, to_server, data| {
        let s = Segment::parse(data).unwrap();
        if !to_server && s.has(ipos_tcp::SYN) {
            *s2.borrow_mut() = Some(s.sack_permitted);
        }
        true
    }));
    sim.run_for(ms(20));
    assert_eq!(*synack.borrow(), Some(true));
    assert_eq!(
        sim.server.export(sim.now).flags & ipos_tcp::tcb::TCB_F_SACK,
        2
    );
    assert_eq!(
        sim.client.export(sim.now).flags & ipos_tcp::tcb::TCB_F_SACK,
        2
    );
}

#[test]
fn single_loss_one_fast_retransmit_no_rto() {
    let cfg = Config::default();
    let mut sim = established_with(&cfg, &cfg);
    // Segment 60 is sent when the window is already large (slow start from 4).
    let dropped = drop_first_tx(&mut sim, &[60]);
    send_and_receive(&mut sim, 300 * 1448);
    let c = sim.server.counters();
    assert_eq!(dropped.borrow().len(), 1);
    assert_eq!(c.rto_timeouts, 0, "{c:?}");
    assert_eq!(c.fast_retransmits, 1, "{c:?}");
    assert_eq!(c.retransmits, 1, "{c:?}");
}

#[test]
fn several_losses_in_one_window_repaired_without_rto() {
    // A first window of three segments: with ten, the window at segment 60 is so
    // large that the burst around the holes reaches the receiver at one instant, and
    // its one ACK has room for three of the four SACK blocks (next to a timestamp),
    // so the sender would rightly resend the unreported segment too.
    let cfg = Config {
        initial_window: 3,
        ..Config::default()
    };
    let mut sim = established_with(&cfg, &cfg);
    static LOST: [usize; 5] = [60, 62, 63, 66, 69];
    let dropped = drop_first_tx(&mut sim, &LOST);
    send_and_receive(&mut sim, 400 * 1448);
    let c = sim.server.counters();
    assert_eq!(dropped.borrow().len(), LOST.len());
    assert_eq!(c.rto_timeouts, 0, "{c:?}");
    assert_eq!(c.fast_retransmits, 1, "one recovery episode: {c:?}");
    assert_eq!(
        c.retransmits,
        LOST.len() as u64,
        "each hole exactly once: {c:?}"
    );
}

#[test]
fn several_losses_without_sack_is_slower() {
    // The same pattern without SACK (NewReno): also no RTO thanks to partial ACKs, but one
    // hole per round trip. This documents the reference behaviour the SACK path beats.
    let cfg = Config {
        sack_permitted: false,
        ..Config::default()
    };
    let mut sim = established_with(&cfg, &cfg);
    static LOST: [usize; 5] = [60, 62, 63, 66, 69];
    drop_first_tx(&mut sim, &LOST);
    send_and_receive(&mut sim, 400 * 1448);
    let c = sim.server.counters();
    assert_eq!(sim.server.sack_ranges(), 0);
    assert_eq!(c.retransmits, LOST.len() as u64, "{c:?}");
}

#[test]
fn lost_retransmission_is_detected_without_rto() {
    let cfg = Config::default();
    let mut sim = established_with(&cfg, &cfg);
    // Drop segment 60 and also its first retransmission.
    let mut seen: HashSet<u32> = HashSet::new();
    let mut target = None;
    let mut drops = 0;
    sim.filter = Some(Box::new(move |_, to_server, data| {
        let s = Segment::parse(data).unwrap();
        if to_server || s.payload.is_empty() {
            return true;
        }
        let first = seen.insert(s.seq);
        if first && seen.len() == 61 {
            target = Some(s.seq);
        }
        if target == Some(s.seq) && drops < 2 {
            drops += 1;
            return false;
        }
        true
    }));
    send_and_receive(&mut sim, 300 * 1448);
    let c = sim.server.counters();
    assert_eq!(c.rto_timeouts, 0, "{c:?}");
    assert_eq!(c.retransmits, 2, "{c:?}");
}

#[test]
fn tail_loss_is_repaired_by_a_probe_not_an_rto() {
    let cfg = Config::default();
    let mut sim = established_with(&cfg, &cfg);
    sim.run_for(ms(100));
    // Drop the last two segments of a 10-segment burst: no dup ACKs can follow.
    let dropped = drop_first_tx(&mut sim, &[8, 9]);
    let t0 = sim.now;
    send_and_receive(&mut sim, 10 * 1448);
    let c = sim.server.counters();
    assert_eq!(dropped.borrow().len(), 2);
    assert_eq!(c.rto_timeouts, 0, "{c:?}");
    assert!(sim.now - t0 < ms(100), "{}", sim.now - t0);
}

/// The ACKs of the whole first flight are lost, and nothing else: the loss probe
/// repeats the last segment sent (a duplicate, which the receiver answers at
/// once) rather than sending a new one, which a receiver with nothing else
/// to acknowledge holds for its delayed-ACK time (40 ms here): the next ACK
/// reaches the sender within a round trip of the probe.
#[test]
fn a_probe_after_lost_acks_is_answered_at_once() {
    let cfg = Config::default();
    let mut sim = established_with(&cfg, &cfg);
    sim.run_for(ms(100));
    type Log = Rc<RefCell<Vec<(bool, u32, i64)>>>;
    let log: Log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    // Every ACK is lost until the sender sends a segment a second time.
    let mut sent = HashSet::new();
    let mut probed = false;
    sim.filter = Some(Box::new(move |now, to_server, data| {
        let s = Segment::parse(data).unwrap();
        if to_server {
            if !probed {
                return false;
            }
            l.borrow_mut().push((true, s.ack, now.total_micros()));
        } else if !s.payload.is_empty() {
            probed |= !sent.insert(s.seq);
            l.borrow_mut().push((false, s.seq, now.total_micros()));
        }
        true
    }));
    send_and_receive(&mut sim, 40 * 1448);
    let log = log.borrow();
    // The first data segment whose sequence number was sent before: the probe.
    let mut seen = HashSet::new();
    let mut highest = None;
    let (i, &(_, seq, at)) = log
        .iter()
        .enumerate()
        .find(|(_, &(ack, seq, _))| {
            if ack {
                return false;
            }
            if !seen.insert(seq) {
                return true;
            }
            highest = Some(seq);
            false
        })
        .expect("a probe");
    assert_eq!(Some(seq), highest, "the probe repeats the last segment");
    let &(_, _, answered) = log[i..].iter().find(|e| e.0).expect("an ACK after it");
    let c = sim.server.counters();
    assert!(
        answered - at < 20_000,
        "ACK {} us after the probe; {c:?}",
        answered - at
    );
    assert_eq!(c.rto_timeouts, 0, "{c:?}");
}

/// The ACKs of the first flight and the ACK of the first loss probe are lost:
/// a second probe follows after twice the wait, and the transfer goes on
/// without the 200 ms RTO and its collapse to one segment.
#[test]
fn a_probe_whose_ack_is_lost_is_followed_by_another_before_the_rto() {
    let cfg = Config::default();
    let mut sim = established_with(&cfg, &cfg);
    sim.run_for(ms(100));
    // Every ACK is lost until the sender has sent some segment a third time.
    let mut sent: std::collections::HashMap<u32, u32> = Default::default();
    let mut probes = 0;
    sim.filter = Some(Box::new(move |_, to_server, data| {
        let s = Segment::parse(data).unwrap();
        if to_server {
            return probes >= 2;
        }
        if !s.payload.is_empty() {
            let n = sent.entry(s.seq).or_default();
            *n += 1;
            if *n > 1 {
                probes += 1;
            }
        }
        true
    }));
    let t0 = sim.now;
    send_and_receive(&mut sim, 40 * 1448);
    let c = sim.server.counters();
    assert_eq!(c.rto_timeouts, 0, "{c:?}");
    assert!(sim.now - t0 < ms(200), "{}", sim.now - t0);
}

/// The SACK option of a segment, byte for byte (kind, length, blocks), if any.
fn sack_option(seg: &[u8]) -> Option<Vec<u8>> {
    let hlen = usize::from(seg[12] >> 4) * 4;
    let opts = &seg[20..hlen];
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => break,
            1 => i += 1,
            5 => {
                let l = usize::from(opts[i + 1]);
                return Some(opts[i..i + l].to_vec());
            }
            _ => i += usize::from(opts[i + 1]),
        }
    }
    None
}

fn be(x: u32) -> [u8; 4] {
    x.to_be_bytes()
}

/// Feed crafted data segments `idx` (1000 bytes each, index 0 at the client's
/// `rcv_nxt`) to the client one by one; returns the ACK it sends after each.
fn crafted_arrivals(timestamps: bool, idx: &[u32]) -> (u32, Vec<Vec<u8>>) {
    let cfg = Config {
        timestamps,
        ..Config::default()
    };
    let mut sim = established_with(&cfg, &cfg);
    let t = sim.client.export(sim.now);
    let from = client_flow();
    let mut acks = Vec::new();
    for &i in idx {
        let ts = timestamps.then_some((t.ts_recent.wrapping_add(1), t.ts_clock));
        let seg = craft(
            from,
            t.rcv_nxt.wrapping_add(1000 * i),
            t.snd_nxt,
            ACK,
            4000,
            ts,
            &[7u8; 1000],
        );
        sim.client.on_segment(sim.now, &seg).unwrap();
        let mut buf = [0u8; 1500];
        let n = sim.client.poll_transmit(sim.now, &mut buf).expect("an ACK");
        acks.push(buf[..n].to_vec());
        assert!(sim.client.poll_transmit(sim.now, &mut buf).is_none());
    }
    (t.rcv_nxt, acks)
}

fn blocks_bytes(rn: u32, blocks: &[(u32, u32)]) -> Vec<u8> {
    let mut v = vec![5, (2 + 8 * blocks.len()) as u8];
    for &(a, b) in blocks {
        v.extend(be(rn.wrapping_add(1000 * a)));
        v.extend(be(rn.wrapping_add(1000 * b)));
    }
    v
}

fn sack_blocks_case(timestamps: bool) {
    let (rn, acks) = crafted_arrivals(timestamps, &[1, 3, 5, 6, 2, 0]);
    let opt = |k: usize| sack_option(&acks[k]);
    // Each block is [first segment, end segment) in 1000-byte units from rcv_nxt; the
    // block holding the segment that triggered the ACK comes first, then the others
    // most recently changed first.
    assert_eq!(opt(0), Some(blocks_bytes(rn, &[(1, 2)])));
    assert_eq!(opt(1), Some(blocks_bytes(rn, &[(3, 4), (1, 2)])));
    assert_eq!(opt(2), Some(blocks_bytes(rn, &[(5, 6), (3, 4), (1, 2)])));
    assert_eq!(opt(3), Some(blocks_bytes(rn, &[(5, 7), (3, 4), (1, 2)])));
    assert_eq!(opt(4), Some(blocks_bytes(rn, &[(1, 4), (5, 7)])));
    // Segment 0 fills the first hole: cumulative ACK to 4, one block left.
    assert_eq!(opt(5), Some(blocks_bytes(rn, &[(5, 7)])));
    let p = Segment::parse(&acks[5]).unwrap();
    assert_eq!(p.ack, rn.wrapping_add(4000));
    assert_eq!(p.sack_blocks, 1);
    assert_eq!(p.sack[0], (rn.wrapping_add(5000), rn.wrapping_add(7000)));
    assert_eq!(p.timestamp.is_some(), timestamps);
    // Layout: [NOP NOP TS] NOP NOP SACK, header length a multiple of 4.
    let raw = &acks[2];
    let hlen = usize::from(raw[12] >> 4) * 4;
    let expect_hlen = 20 + if timestamps { 12 } else { 0 } + 4 + 24;
    assert_eq!(hlen, expect_hlen);
    assert_eq!(&raw[hlen - 28..hlen - 24], &[1, 1, 5, 26]);
    assert!(ipos_tcp::checksum_ok(
        server_flow().src_addr,
        server_flow().dst_addr,
        raw
    ));
}

#[test]
fn sack_blocks_exact_with_timestamps() {
    sack_blocks_case(true);
}

#[test]
fn sack_blocks_exact_without_timestamps() {
    sack_blocks_case(false);
}

#[test]
fn at_most_three_blocks_with_timestamps_four_without() {
    for (timestamps, max) in [(true, 3u8), (false, 4u8)] {
        let (rn, acks) = crafted_arrivals(timestamps, &[1, 3, 5, 7, 9]);
        let last = Segment::parse(acks.last().unwrap()).unwrap();
        assert_eq!(last.sack_blocks, max);
        let want = [(9u32, 10u32), (7, 8), (5, 6), (3, 4)];
        for (k, &(a, b)) in want.iter().take(usize::from(max)).enumerate() {
            let block = (rn.wrapping_add(1000 * a), rn.wrapping_add(1000 * b));
            assert_eq!(last.sack[k], block);
        }
    }
}

#[test]
fn peer_without_sack_still_works() {
    let sack = Config::default();
    let plain = Config {
        sack_permitted: false,
        ..Config::default()
    };
    // Client without SACK, server with: not negotiated, classic recovery, no SACK blocks.
    for (ccfg, scfg) in [(&plain, &sack), (&sack, &plain)] {
        let link = LinkConfig {
            jitter: Duration::from_millis(2),
            loss_permille: 30,
            ..LinkConfig::default()
        };
        let mut sim = Sim::new(ccfg, scfg, link, 8);
        let saw_sack = Rc::new(RefCell::new(false));
        let s2 = saw_sack.clone();
        sim.filter = Some(Box::new(move |_, _, data| {
            let s = Segment::parse(data).unwrap();
            if s.sack_blocks > 0 || s.sack_permitted && s.has(ipos_tcp::ACK) {
                *s2.borrow_mut() = true;
            }
            true
        }));
        send_and_receive(&mut sim, 1 << 20);
        assert!(
            !*saw_sack.borrow(),
            "SACK used although one side refused it"
        );
        assert_eq!(
            sim.server.export(sim.now).flags & ipos_tcp::tcb::TCB_F_SACK,
            0
        );
        assert!(sim.server.counters().retransmits > 0);
    }
}

/// 5 MB, 5% loss each way, reordering, on a short-RTT link (where a 200 ms RTO is
/// hundreds of round trips, as on the LAN the problem was measured on).
#[test]
fn lossy_short_rtt_5mb_few_rtos() {
    let cfg = Config::default();
    let mut worst = 0;
    for seed in [1u64, 2, 3] {
        let link = LinkConfig {
            delay: Duration::from_micros(500),
            jitter: Duration::from_micros(300),
            loss_permille: 50,
            dup_permille: 10,
            seg_buf: 1480,
        };
        let mut sim = Sim::new(&cfg, &cfg, link, seed);
        let t0 = sim.now;
        send_and_receive(&mut sim, 5 << 20);
        let c = sim.server.counters();
        eprintln!(
            "short-RTT seed {seed}: 5 MiB in {} virtual; server {c:?}",
            sim.now - t0
        );
        worst = worst.max(c.rto_timeouts);
        assert!(sim.now - t0 < Duration::from_secs(10), "{}", sim.now - t0);
    }
    assert!(worst <= 15, "too many RTOs: {worst}");
}

#[test]
fn garbage_sack_blocks_never_panic_and_transfer_completes() {
    let cfg = Config::default();
    let mut sim = established_with(&cfg, &cfg);
    let mut rng = XorShift::new(77);
    let data: Vec<u8> = (0..(600u64 * 1448)).map(pattern).collect();
    let mut off = 0;
    let mut got = 0usize;
    let ok = sim.run_until(Duration::from_secs(120), |s| {
        off += s.server.send_slice(&data[off..]);
        let chunk = s.client.recv_slice();
        assert!(chunk == &data[got..got + chunk.len()]);
        let k = chunk.len();
        got += k;
        s.client.recv_consume(k);
        // Now and then inject an ACK from the "client" with random SACK blocks around
        // (and beyond) the server's send window, acking nothing new.
        if rng.chance(200) {
            let t = s.server.export(s.server_now());
            let span = t.snd_max.wrapping_sub(t.snd_una).max(1);
            let mut blocks = Vec::new();
            for _ in 0..=rng.below(4) {
                let base = match rng.below(4) {
                    0 => rng.next_u64() as u32,
                    _ => t
                        .snd_una
                        .wrapping_add(rng.below(u64::from(span) + 3000) as u32),
                };
                let len = match rng.below(3) {
                    0 => rng.next_u64() as u32,
                    _ => rng.below(5000) as u32,
                };
                blocks.push((base.wrapping_sub(1000), base.wrapping_add(len)));
            }
            let ts = Some((t.ts_recent, 0));
            let seg = craft_sack(
                server_flow(),
                t.rcv_nxt,
                t.snd_una,
                (t.snd_wnd >> t.snd_wscale) as u16,
                ts,
                &blocks,
            );
            let now = s.server_now();
            s.server.on_segment(now, &seg).unwrap();
        }
        got == data.len()
    });
    assert!(ok, "stalled at {got}");
}

/// A receiver that SACKed data and then dropped it (RFC 2018 section 8 lets it;
/// a connection that moved to a node without the out-of-order bytes does the
/// same): its cumulative ACK stops at the start of what it SACKed. The sender
/// must send those bytes again although the scoreboard says they arrived: at
/// once it forgets the scoreboard (`sack_reneged`), and the RTO resends them.
#[test]
fn data_sacked_then_reneged_is_sent_again() {
    let c = reneged(true);
    assert_eq!(c.sack_reneged, 1, "{c:?}");
    assert_eq!(c.rto_timeouts, 1, "{c:?}");
}

/// A receiver whose SACK block starts at its own cumulative ACK (nonsense, or a
/// reneging seen without an advance): the first RTO sends the left edge anyway
/// (RFC 2018 section 8). Before, that RTO found nothing to send and never came
/// again.
#[test]
fn a_sack_block_at_the_cumulative_ack_does_not_stall_the_rto() {
    let c = reneged(false);
    assert_eq!(c.sack_reneged, 1, "{c:?}");
    assert_eq!(c.rto_timeouts, 1, "{c:?}");
}

/// Three segments out; the receiver SACKs the last, then (with `advance`)
/// acknowledges up to it and no further. Returns the sender's counters once
/// the last segment went out again (panics if it does not within 5 s).
fn reneged(advance: bool) -> ipos_tcp::Counters {
    let cfg = Config {
        timestamps: false,
        ..Config::default()
    };
    let mut sim = established_with(&cfg, &cfg);
    let data: Vec<u8> = (0..3000u64).map(pattern).collect();
    assert_eq!(sim.server.send_slice(&data), 3000);
    let una = sim.server.export(sim.now).snd_una;
    let mut buf = [0u8; 1600];
    let mut segs = Vec::new();
    while let Some(n) = sim.server.poll_transmit(sim.now, &mut buf) {
        let s = Segment::parse(&buf[..n]).unwrap();
        segs.push((s.seq, s.payload.len() as u32));
    }
    assert!(segs.len() >= 3, "{segs:?}");
    let (last_seq, last_len) = *segs.last().unwrap();
    let end = last_seq.wrapping_add(last_len);
    let rcv = sim.client.export(sim.now);
    let ack = |ack: u32, blocks: &[(u32, u32)]| {
        craft_sack(server_flow(), rcv.snd_nxt, ack, 4000, None, blocks)
    };
    if advance {
        sim.server
            .on_segment(sim.now, &ack(una, &[(last_seq, end)]))
            .unwrap();
        sim.server
            .on_segment(sim.now + ms(1), &ack(last_seq, &[]))
            .unwrap();
    } else {
        sim.server
            .on_segment(sim.now + ms(1), &ack(una, &[(una, end)]))
            .unwrap();
    }
    let resent_seq = if advance { last_seq } else { una };
    let mut t = sim.now + ms(1);
    let limit = t + Duration::from_secs(5);
    let mut resent = false;
    while t < limit && !resent {
        while let Some(n) = sim.server.poll_transmit(t, &mut buf) {
            let s = Segment::parse(&buf[..n]).unwrap();
            resent |= s.seq == resent_seq && !s.payload.is_empty();
        }
        t += ms(10);
    }
    let c = sim.server.counters().clone();
    assert!(
        resent,
        "the left edge was not sent again in 5 s; {c:?}, next timer {:?}",
        sim.server.poll_timeout()
    );
    c
}
