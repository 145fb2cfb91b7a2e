//! RFC 6191 / RFC 1122 4.2.2.13: `Endpoint::accepts_reuse`, the owner's question whether a
//! SYN may open a new incarnation of a connection held in TIME-WAIT.

use ipos_tcp::sim::{craft, server_flow};
use ipos_tcp::{Config, Duration, Endpoint, Instant, Segment, State, ACK, FIN, PSH, RST, SYN};

/// Client ISN: the old incarnation's receive sequence ends at `IRS + 2` (SYN and FIN).
const IRS: u32 = 0xFFFF_FFF0;
/// The client's TSvals: `TS0`, `TS0 + 1`, `TS0 + 2` = `u32::MAX` (the last one seen).
const TS0: u32 = 0xFFFF_FFFD;

fn drain(ep: &mut Endpoint, now: Instant) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1500];
    while let Some(n) = ep.poll_transmit(now, &mut buf) {
        out.push(buf[..n].to_vec());
        assert!(out.len() < 100);
    }
    out
}

/// A passive endpoint driven by hand through a whole connection in which it closes
/// first, so that it ends in TIME-WAIT with `rcv_nxt = IRS + 2` and (with timestamps)
/// TS.Recent = `TS0 + 2`, both just below the 2^32 wrap. Returns it just after it
/// entered TIME-WAIT, and the instant.
fn after(ts: bool, close_to: State) -> (Endpoint, Instant) {
    let f = server_flow();
    let now = Instant::from_millis(50_000);
    let tsopt = |k: u32, ecr: u32| ts.then_some((TS0.wrapping_add(k), ecr));
    let syn = craft(f, IRS, 0, SYN, 65535, tsopt(0, 0), b"");
    let mut ep = Endpoint::accept(&Config::default(), f, &syn, 7000, now).unwrap();
    let out = drain(&mut ep, now);
    let sa = Segment::parse(&out[0]).unwrap();
    assert_eq!(sa.flags, SYN | ACK);
    assert_eq!(
        sa.timestamp.is_some(),
        ts,
        "timestamps negotiated as the SYN offered"
    );
    let ecr = sa.timestamp.map_or(0, |t| t.0);
    let iss = sa.seq;
    let ack = craft(
        f,
        IRS.wrapping_add(1),
        iss.wrapping_add(1),
        ACK,
        65535,
        tsopt(1, ecr),
        b"",
    );
    ep.on_segment(now, &ack).unwrap();
    assert_eq!(ep.state(), State::Established);
    if close_to == State::Established {
        return (ep, now);
    }
    ep.close();
    let out = drain(&mut ep, now);
    let fin = Segment::parse(&out[0]).unwrap();
    assert!(fin.has(FIN));
    // The peer acknowledges our FIN and sends its own.
    let finack = craft(
        f,
        IRS.wrapping_add(1),
        iss.wrapping_add(2),
        ACK | FIN,
        65535,
        tsopt(2, ecr),
        b"",
    );
    ep.on_segment(now, &finack).unwrap();
    assert_eq!(ep.state(), State::TimeWait);
    drain(&mut ep, now);
    let t = ep.export(now);
    assert_eq!(t.rcv_nxt, IRS.wrapping_add(2));
    if ts {
        assert_eq!(t.ts_recent, u32::MAX);
    }
    (ep, now)
}

fn syn_at(seq: u32, ts: Option<u32>) -> Vec<u8> {
    craft(server_flow(), seq, 0, SYN, 65535, ts.map(|v| (v, 0)), b"")
}

#[test]
fn with_timestamps_the_tsval_decides() {
    let (ep, _) = after(true, State::TimeWait);
    let tr = u32::MAX; // TS.Recent
    let rn = IRS.wrapping_add(2); // rcv_nxt = 0xFFFF_FFF2
    let above = rn.wrapping_add(1000);
    let below = rn.wrapping_sub(1000);
    // Greater (across the 2^32 wrap), whatever the sequence number.
    for tsval in [0, 5, tr.wrapping_add(0x7fff_ffff)] {
        assert!(ep.accepts_reuse(&syn_at(above, Some(tsval))), "{tsval:#x}");
        assert!(ep.accepts_reuse(&syn_at(below, Some(tsval))), "{tsval:#x}");
    }
    // Equal: refused, even with a greater sequence number.
    assert!(!ep.accepts_reuse(&syn_at(above, Some(tr))));
    // Smaller (also "smaller" by the wrapping comparison), whatever the sequence number.
    for tsval in [tr - 1, tr - 1_000_000, tr.wrapping_add(0x8000_0001)] {
        assert!(!ep.accepts_reuse(&syn_at(above, Some(tsval))), "{tsval:#x}");
        assert!(!ep.accepts_reuse(&syn_at(below, Some(tsval))), "{tsval:#x}");
    }
    // A SYN without a timestamp falls back on the sequence number.
    assert!(ep.accepts_reuse(&syn_at(above, None)));
    assert!(ep.accepts_reuse(&syn_at(5, None)));
    assert!(!ep.accepts_reuse(&syn_at(rn, None)));
    assert!(!ep.accepts_reuse(&syn_at(below, None)));
}

#[test]
fn without_timestamps_the_sequence_number_decides() {
    let (ep, _) = after(false, State::TimeWait);
    let rn = IRS.wrapping_add(2); // 0xFFFF_FFF2, just below the wrap
                                  // Above rcv_nxt, including across the wrap.
    for seq in [rn + 1, rn + 13, 0, 5, rn.wrapping_add(0x7fff_ffff)] {
        assert!(ep.accepts_reuse(&syn_at(seq, None)), "{seq:#x}");
    }
    // At or below rcv_nxt (also "below" by the wrapping comparison).
    for seq in [rn, rn - 1, IRS, rn.wrapping_add(0x8000_0001)] {
        assert!(!ep.accepts_reuse(&syn_at(seq, None)), "{seq:#x}");
    }
    // A timestamp in the SYN does not matter when the old connection had none.
    assert!(ep.accepts_reuse(&syn_at(5, Some(0))));
    assert!(!ep.accepts_reuse(&syn_at(rn, Some(u32::MAX))));
}

#[test]
fn only_in_time_wait() {
    let good = syn_at(5, Some(5));
    for ts in [true, false] {
        let (tw, now) = after(ts, State::TimeWait);
        assert!(tw.accepts_reuse(&good));
        let (est, _) = after(ts, State::Established);
        assert!(!est.accepts_reuse(&good), "ESTABLISHED");
        // TIME-WAIT over: CLOSED.
        let mut closed = tw;
        drain(&mut closed, now + Duration::from_secs(3));
        assert_eq!(closed.state(), State::Closed);
        assert!(!closed.accepts_reuse(&good), "CLOSED");
    }
    // FIN-WAIT-2 (our FIN acknowledged, no FIN from the peer yet).
    let f = server_flow();
    let now = Instant::from_millis(1);
    let syn = craft(f, 100, 0, SYN, 65535, None, b"");
    let mut ep = Endpoint::accept(&Config::default(), f, &syn, 900, now).unwrap();
    drain(&mut ep, now);
    ep.on_segment(now, &craft(f, 101, 901, ACK, 65535, None, b""))
        .unwrap();
    ep.close();
    drain(&mut ep, now);
    ep.on_segment(now, &craft(f, 101, 902, ACK, 65535, None, b""))
        .unwrap();
    assert_eq!(ep.state(), State::FinWait2);
    assert!(!ep.accepts_reuse(&syn_at(5000, None)));
}

#[test]
fn only_a_plain_syn_of_this_connection() {
    let (ep, _) = after(true, State::TimeWait);
    let f = server_flow();
    let ts = Some((5, 0));
    assert!(ep.accepts_reuse(&craft(f, 5, 0, SYN, 65535, ts, b"")));
    // PSH and a payload do not make it less of a plain SYN.
    assert!(ep.accepts_reuse(&craft(f, 5, 0, SYN | PSH, 65535, ts, b"hi")));
    for flags in [
        SYN | ACK,
        ACK,
        RST,
        RST | ACK,
        FIN | ACK,
        SYN | RST,
        SYN | FIN,
        0,
    ] {
        let seg = craft(f, 5, 0, flags, 65535, ts, b"");
        assert!(!ep.accepts_reuse(&seg), "flags {flags:#04x}");
    }
    // Either port differs.
    let mut other = f;
    other.src_port = 40001;
    assert!(!ep.accepts_reuse(&craft(other, 5, 0, SYN, 65535, ts, b"")));
    let mut other = f;
    other.dst_port = 81;
    assert!(!ep.accepts_reuse(&craft(other, 5, 0, SYN, 65535, ts, b"")));
    // Malformed: truncated, data offset too small or too large, an option overrunning.
    let good = craft(f, 5, 0, SYN, 65535, ts, b"");
    for n in [0, 1, 12, 19, good.len() - 1] {
        assert!(!ep.accepts_reuse(&good[..n]), "truncated to {n}");
    }
    let mut bad = good.clone();
    bad[12] = 0x40; // 4 words
    assert!(!ep.accepts_reuse(&bad));
    let mut bad = good.clone();
    bad[12] = 0xf0; // 60 bytes, longer than the segment
    assert!(!ep.accepts_reuse(&bad));
    let mut bad = good.clone();
    bad[23] = 0xff; // the timestamp option's length runs past the header
    assert!(!ep.accepts_reuse(&bad));
}

#[test]
fn asking_changes_nothing_and_on_segment_still_challenges() {
    let (mut ep, now) = after(true, State::TimeWait);
    let before = ep.export(now);
    let syn = syn_at(IRS.wrapping_add(20), Some(5));
    assert!(ep.accepts_reuse(&syn));
    assert!(ep.accepts_reuse(&syn));
    assert_eq!(ep.export(now), before);
    assert_eq!(ep.counters().segs_in, 3);
    assert!(drain(&mut ep, now).is_empty());
    // The endpoint itself still answers a SYN in TIME-WAIT with a challenge ACK.
    ep.on_segment(now, &syn).unwrap();
    assert_eq!(ep.state(), State::TimeWait);
    assert_eq!(ep.counters().challenge_acks, 1);
    let out = drain(&mut ep, now);
    assert_eq!(out.len(), 1);
    let s = Segment::parse(&out[0]).unwrap();
    assert_eq!((s.flags, s.ack), (ACK, IRS.wrapping_add(2)));
}
