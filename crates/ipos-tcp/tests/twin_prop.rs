//! Property: for any reachable server state, `import(export(s))` behaves exactly like `s`
//! from then on (every emitted segment compared byte for byte by the sim's twin check).

use std::cell::Cell;
use std::rc::Rc;

use ipos_tcp::sim::{LinkConfig, Sim};
use ipos_tcp::{Config, Duration, Endpoint, Tcb};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    ClientSend(u16),
    ServerSend(u16),
    ClientConsume,
    ServerConsume(u16),
    Run(u16),
    DropToClient(u8),
    ClientClose,
    ServerClose,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (1u16..4000).prop_map(Op::ClientSend),
        2 => (1u16..30000).prop_map(Op::ServerSend),
        2 => Just(Op::ClientConsume),
        2 => (1u16..5000).prop_map(Op::ServerConsume),
        6 => (0u16..60).prop_map(Op::Run),
        2 => (60u16..1500).prop_map(Op::Run),
        2 => (1u8..4).prop_map(Op::DropToClient),
        1 => Just(Op::ClientClose),
        1 => Just(Op::ServerClose),
    ]
}

fn data(n: usize, salt: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31) ^ salt).collect()
}

fn run_case(seed: u64, timestamps: bool, handshake_first: bool, ops: &[Op], export_delay_us: u16) {
    let cfg = Config {
        rcv_buf: 40_000,
        snd_buf: 60_000,
        timestamps,
        window_scale: if timestamps { 7 } else { 2 },
        ..Config::default()
    };
    // A small client window so that the server meets zero windows and persist mode.
    let ccfg = Config {
        rcv_buf: 20_000,
        ..cfg.clone()
    };
    let mut sim = Sim::new(&ccfg, &cfg, LinkConfig::default(), seed);
    if handshake_first {
        sim.run_for(Duration::from_millis(12));
    }
    let drops = Rc::new(Cell::new(0u32));
    let d = drops.clone();
    sim.filter = Some(Box::new(move |_, to_server, _| {
        if !to_server && d.get() > 0 {
            d.set(d.get() - 1);
            return false;
        }
        true
    }));
    for op in ops {
        match *op {
            Op::ClientSend(n) => {
                sim.client.send_slice(&data(n as usize, 1));
            }
            Op::ServerSend(n) => {
                sim.server.send_slice(&data(n as usize, 2));
            }
            Op::ClientConsume => {
                let n = sim.client.recv_available();
                sim.client.recv_consume(n);
            }
            Op::ServerConsume(n) => sim.server.recv_consume(n as usize),
            Op::Run(ms) => sim.run_for(Duration::from_millis(u64::from(ms))),
            Op::DropToClient(k) => drops.set(drops.get() + u32::from(k)),
            Op::ClientClose => sim.client.close(),
            Op::ServerClose => sim.server.close(),
        }
    }
    // Export at an instant that is not on a millisecond boundary.
    sim.now += Duration::from_micros(u64::from(export_delay_us));
    sim.pump();
    assert_eq!(
        sim.server.ooo_ranges(),
        0,
        "no client->server loss in this model"
    );
    let now = sim.server_now();
    // The SACK scoreboard is not part of the TCB (an importer starts without it); the
    // property is that the import behaves exactly like the exporter once the exporter
    // forgets its scoreboard too.
    sim.server.forget_sack();
    let tcb = sim.server.export(now);
    let parsed = Tcb::parse(&tcb.to_bytes()).expect("exported TCB parses");
    assert_eq!(parsed, tcb);
    let (a, b) = sim.server.unacked_and_unsent();
    let snd = [a, b].concat();
    let (a, b) = sim.server.unconsumed();
    let rcv = [a, b].concat();
    let twin = Endpoint::import(&cfg, &parsed, sim.server.flow(), &snd, &rcv, now)
        .expect("import of an exported TCB");
    assert_eq!(twin.state(), sim.server.state());
    assert_eq!(twin.poll_timeout(), sim.server.poll_timeout());
    sim.twin = Some(twin);

    // Continuation: more traffic with some loss towards the client, then close.
    let mut k = 0u32;
    let d = drops.clone();
    sim.filter = Some(Box::new(move |_, to_server, _| {
        k += 1;
        let ninth = k == 9;
        if ninth {
            k = 0;
        }
        if !to_server && (d.get() > 0 || ninth) {
            d.set(d.get().saturating_sub(1));
            return false;
        }
        true
    }));
    let more = data(50_000, 3);
    let mut off = 0;
    let mut closed = false;
    sim.run_until(Duration::from_secs(30), |s| {
        off += s.server_send(&more[off..]);
        let n = s.client.recv_available();
        s.client.recv_consume(n);
        let n = s.server.recv_available();
        s.server_consume(n.min(1000));
        if off == more.len() && !closed {
            s.server_close();
            s.client.close();
            closed = true;
        }
        closed && s.server.is_closed()
    });
    let t = sim.twin.take().unwrap();
    assert_eq!(t.state(), sim.server.state());
    if std::env::var("TWIN_DEBUG").is_ok() {
        eprintln!(
            "export state {:?} flags {:#x} wnd {} flight {} -> end {:?}, twin segs out {}",
            tcb.state,
            tcb.flags & 0xfc0,
            tcb.snd_wnd,
            tcb.snd_max.wrapping_sub(tcb.snd_una),
            t.state(),
            t.counters().segs_out
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn import_export_is_transparent(
        seed in any::<u64>(),
        timestamps in any::<bool>(),
        handshake_first in proptest::bool::weighted(0.85),
        ops in proptest::collection::vec(op(), 1..25),
        export_delay_us in 0u16..1000,
    ) {
        run_case(seed, timestamps, handshake_first, &ops, export_delay_us);
    }
}

#[test]
fn twin_detects_divergence() {
    // Sanity check of the harness: a twin that is NOT an exact copy must be caught.
    let cfg = Config::default();
    let mut sim = Sim::new(&cfg, &cfg, LinkConfig::default(), 5);
    sim.run_for(Duration::from_millis(50));
    sim.server.send_slice(b"hello");
    let now = sim.server_now();
    let mut tcb = sim.server.export(now);
    tcb.ts_clock = tcb.ts_clock.wrapping_add(1); // a one-millisecond clock error
    let (a, b) = sim.server.unacked_and_unsent();
    let snd = [a, b].concat();
    let twin = Endpoint::import(&cfg, &tcb, sim.server.flow(), &snd, &[], now).unwrap();
    sim.twin = Some(twin);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sim.pump()));
    assert!(r.is_err(), "differing TSval must be detected");
}
