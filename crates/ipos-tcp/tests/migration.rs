//! Export / import of a live endpoint in the middle of a transfer.

use std::cell::RefCell;
use std::rc::Rc;

use ipos_tcp::sim::{pattern, LinkConfig, Sim};
use ipos_tcp::{Config, Duration, Endpoint, Segment, State, Tcb, TCB_LEN};

/// Server streams `total` bytes to the client; halfway it is migrated to a "host" whose
/// clock is `skew_us` away, after `gap` of downtime. The client must receive every byte
/// exactly once and never see a TSval go backwards.
fn migrate_mid_transfer(seed: u64, skew_us: i64, gap: Duration, loss_permille: u32) {
    let cfg = Config::default();
    let link = LinkConfig {
        loss_permille,
        ..LinkConfig::default()
    };
    let mut sim = Sim::new(&cfg, &cfg, link, seed);
    // Record every TSval the server emits, in emission order.
    let tsvals: Rc<RefCell<Vec<u32>>> = Rc::default();
    let tv = tsvals.clone();
    sim.filter = Some(Box::new(move |_, to_server, data| {
        if !to_server {
            let s = Segment::parse(data).expect("server emits valid segments");
            tv.borrow_mut()
                .push(s.timestamp.expect("timestamps negotiated").0);
        }
        true
    }));
    assert!(
        sim.run_until(Duration::from_millis(100), |s| s.server.state()
            == State::Established)
    );

    // The client sends a request that the server application never reads: it must travel.
    let request: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
    assert_eq!(sim.client.send_slice(&request), request.len());

    let total: u64 = 3 << 20;
    let mut sent = 0u64;
    let mut got = 0u64;
    let mut migrated = false;
    let ok = sim.run_until(Duration::from_secs(600), |s| {
        while sent < total {
            let n = s.server.send_with(|b| {
                let n = (b.len() as u64).min(total - sent) as usize;
                for (i, x) in b[..n].iter_mut().enumerate() {
                    *x = pattern(sent + i as u64);
                }
                n
            });
            if n == 0 {
                break;
            }
            sent += n as u64;
            if sent == total {
                s.server.close();
            }
        }
        // The client reads slowly before migration so data is also queued at the server.
        let budget = if migrated { usize::MAX } else { 20_000 };
        let chunk = s.client.recv_slice();
        let n = chunk.len().min(budget);
        for (i, &x) in chunk[..n].iter().enumerate() {
            assert_eq!(
                x,
                pattern(got + i as u64),
                "byte {} differs",
                got + i as u64
            );
        }
        got += n as u64;
        s.client.recv_consume(n);

        if !migrated && got > 1_000_000 {
            let (una, unsent) = s.server.unacked_and_unsent();
            let in_flight = s.server.export(s.server_now());
            // Mid-transfer for real: data in flight and data not yet sent.
            if in_flight.snd_nxt != in_flight.snd_una && in_flight.snd_data_len > 0 {
                assert!(!una.is_empty() || !unsent.is_empty());
                migrate(s, &cfg, skew_us, gap);
                migrated = true;
            }
        }
        got == total && s.client.peer_fin_received()
    });
    assert!(
        ok,
        "seed {seed}: stalled at {got}/{total} migrated={migrated}"
    );
    assert!(migrated);
    // The request bytes arrived at the new owner unchanged.
    let (a, b) = sim.server.unconsumed();
    assert_eq!([a, b].concat(), request);
    // TSvals seen by the client never went backwards.
    let ts = tsvals.borrow().clone();
    assert!(ts.len() > 1000);
    for w in ts.windows(2) {
        assert!(
            (w[1].wrapping_sub(w[0]) as i32) >= 0,
            "TSval went backwards: {} -> {}",
            w[0],
            w[1]
        );
    }
    assert_eq!(sim.client.counters().paws_drops, 0);
    // Finish the close cleanly.
    sim.client.close();
    assert!(sim.run_until(Duration::from_secs(10), |s| s.server.is_closed()));
}

fn migrate(s: &mut Sim, cfg: &Config, skew_us: i64, gap: Duration) {
    let now = s.server_now();
    let tcb = s.server.export(now);
    let mut wire = [0u8; TCB_LEN];
    tcb.emit(&mut wire);
    let (a, b) = s.server.unacked_and_unsent();
    let snd = [a, b].concat();
    let (a, b) = s.server.unconsumed();
    let rcv = [a, b].concat();
    assert!(!rcv.is_empty(), "unconsumed request data must travel");
    let flow = s.server.flow();
    // Down time: the old endpoint is gone, the new one does not exist yet.
    s.server_down = true;
    let end = s.now + gap;
    s.run_until(gap + Duration::from_millis(1), |s| s.now >= end);
    s.server_skew_us += skew_us;
    let parsed = Tcb::parse(&wire).expect("valid TCB");
    assert_eq!(parsed, tcb);
    let new = Endpoint::import(cfg, &parsed, flow, &snd, &rcv, s.server_now()).expect("import");
    // Dropping the old endpoint: replace it.
    s.server = new;
    s.server_down = false;
}

#[test]
fn migrate_clock_behind() {
    // The new host's clock is 1000 s behind: naive TSvals would go backwards.
    migrate_mid_transfer(1, -1_000_000_000, Duration::from_millis(20), 0);
}

#[test]
fn migrate_clock_ahead_with_loss() {
    migrate_mid_transfer(2, 3_600_000_000, Duration::from_millis(50), 10);
}

#[test]
fn migrate_same_instant_no_gap() {
    migrate_mid_transfer(3, 0, Duration::from_micros(1), 20);
}

/// A peer that sends beyond the advertised right edge (the receive ring had the
/// room) moves `rcv_nxt` past it; a TCB can only carry a window >= 0, so the
/// endpoint must behave as if the edge had moved with `rcv_nxt`, or its import
/// chooses its next window differently. (Found by the `endpoint` fuzz target:
/// after the application read, the original advertised 192 bytes, its import 0.)
#[test]
fn import_after_data_beyond_the_window_advertises_the_same_window() {
    use ipos_tcp::sim::craft;
    use ipos_tcp::{fill_checksum, write_header, Instant, TcpHeader, TcpOptions, ACK, SYN};
    let cfg = Config {
        rcv_buf: 1024,
        snd_buf: 1024,
        window_scale: 5,
        mss: 536,
        timestamps: false,
        ..Config::default()
    };
    let flow = ipos_tcp::sim::server_flow();
    let now = Instant::from_millis(1);
    let opts = TcpOptions {
        mss: Some(536),
        wscale: Some(7),
        ..TcpOptions::default()
    };
    let mut syn = vec![0u8; 20 + opts.len()];
    let h = TcpHeader {
        src_port: flow.src_port,
        dst_port: flow.dst_port,
        seq: 999,
        ack: 0,
        flags: SYN,
        window: 65535,
    };
    write_header(&mut syn, &h, &opts);
    fill_checksum(flow.src_addr, flow.dst_addr, &mut syn);
    let mut ep = Endpoint::accept(&cfg, flow, &syn, 5000, now).unwrap();
    let mut buf = [0u8; 1600];
    while ep.poll_transmit(now, &mut buf).is_some() {}
    let data = |seq: u32, n: usize| craft(flow, 1000 + seq, 5001, ACK, 65535, None, &vec![7u8; n]);
    ep.on_segment(now, &craft(flow, 1000, 5001, ACK, 65535, None, b""))
        .unwrap();
    assert_eq!(ep.state(), State::Established);
    // 1000 bytes in; the window advertised after them is (about) 24 bytes.
    ep.on_segment(now, &data(0, 536)).unwrap();
    while ep.poll_transmit(now, &mut buf).is_some() {}
    ep.on_segment(now, &data(536, 464)).unwrap();
    while ep.poll_transmit(now, &mut buf).is_some() {}
    // The application reads a little (too little for a window update), and the
    // peer sends 200 bytes from the left edge: the ring takes them all.
    ep.recv_consume(176);
    ep.on_segment(now, &data(1000, 200)).unwrap();
    assert_eq!(ep.recv_available(), 1024);
    assert_eq!(ep.export(now).rcv_wnd, 0, "the peer used up the window");
    let tcb = ep.export(now);
    let (a, b) = ep.unconsumed();
    let rcv = [a, b].concat();
    let mut moved = Endpoint::import(&cfg, &tcb, ep.flow(), &[], &rcv, now).unwrap();
    let mut other = [0u8; 1600];
    for read in [400, 92, 300, 232] {
        ep.recv_consume(read);
        moved.recv_consume(read);
        loop {
            let x = ep.poll_transmit(now, &mut buf);
            let y = moved.poll_transmit(now, &mut other);
            assert_eq!(
                x.map(|n| &buf[..n]),
                y.map(|n| &other[..n]),
                "after reading {read}: the endpoint and its import sent different segments"
            );
            if x.is_none() {
                break;
            }
        }
    }
}
