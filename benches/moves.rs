//! P3 in memory: how many connections a core moves per second.
//!
//! The in-memory test farm (`tests/support`: nodes a, b, c and a client host on one
//! `MemSwitch`) holds `CONNS` idle keep-alive connections that a moved to b by URL. Each
//! iteration moves all of them live from their owner to the other target (b -> c, then
//! c -> b, ...): `move_connection` for every one, then every node polled until the target
//! has committed them all. The wall time of every call is charged to the node that ran
//! it: the source (exports, sends, retires), the target (imports, commits) and the front
//! a (repoints its forward entries). Criterion reports the time per move of all three on
//! one core; at the end the bench prints each role's share and the moves per second a
//! core gives when the source and the target each have a core of their own (the slower
//! of the two bounds it).
//!
//! `cargo bench --bench moves`

#[path = "../tests/support/mod.rs"]
mod support;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ipos::counters::Event;
use smoltcp::time::Duration;
use std::time::Instant as Wall;
use support::*;

/// Connections moved per iteration.
const CONNS: u16 = 256;

/// Wall time charged to each role over the bench.
#[derive(Default)]
struct Roles {
    source: std::time::Duration,
    target: std::time::Duration,
    front: std::time::Duration,
    moves: u64,
}

fn timed<R>(acc: &mut std::time::Duration, f: impl FnOnce() -> R) -> R {
    let t = Wall::now();
    let r = f();
    *acc += t.elapsed();
    r
}

/// Moves every connection in `flows` from node `from` to node `to`; returns the wall time.
fn move_all(
    f: &mut Farm,
    flows: &[ipos_wire::Flow],
    from: usize,
    to: usize,
    roles: &mut Roles,
) -> std::time::Duration {
    let now = f.now;
    let committed = f.nodes[to].counters().get(Event::MigrationsCommitted);
    let t = Wall::now();
    timed(&mut roles.source, || {
        for flow in flows {
            f.nodes[from]
                .move_connection(now, flow, IPS[to])
                .unwrap_or_else(|e| panic!("move {from} -> {to}: {e}"));
        }
    });
    for _ in 0..256 {
        timed(&mut roles.target, || f.nodes[to].poll(now));
        timed(&mut roles.source, || f.nodes[from].poll(now));
        timed(&mut roles.front, || f.nodes[A].poll(now));
        if f.nodes[to].counters().get(Event::MigrationsCommitted) - committed == flows.len() as u64
            && f.switch.pending() == 0
        {
            break;
        }
    }
    let dt = t.elapsed();
    let done = f.nodes[to].counters().get(Event::MigrationsCommitted) - committed;
    assert_eq!(done, flows.len() as u64, "moves not committed");
    roles.moves += done;
    // What the client would have been sent (nothing it needs: it is idle).
    drop(f.client.port.take_all());
    dt
}

fn bench_moves(c: &mut Criterion) {
    let mut f = Farm::new(0x3ea5);
    f.warm_up();
    let ids: Vec<usize> = (0..CONNS)
        .map(|i| f.request(42000 + i, &get("/b/bytes/100")))
        .collect();
    for &id in &ids {
        f.await_responses(id, 1, Duration::from_secs(10));
    }
    f.run_for(Duration::from_millis(300));
    assert_eq!(f.conns(B), CONNS as usize, "{}", f.summary());
    let flows: Vec<ipos_wire::Flow> = ids
        .iter()
        .map(|&id| f.client.conns[id].ep.flow().reversed())
        .collect();

    let mut roles = Roles::default();
    let mut at = B;
    let mut g = c.benchmark_group("moves");
    g.throughput(Throughput::Elements(u64::from(CONNS)));
    g.bench_function(format!("live_move_{CONNS}_idle_connections"), |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let to = if at == B { C } else { B };
                    let dt = move_all(&mut f, &flows, at, to, &mut roles);
                    at = to;
                    dt
                })
                .sum()
        })
    });
    g.finish();

    // Every connection is still served, and the client sees the same stream.
    for &id in &ids {
        assert!(!f.client.conns[id].rst_seen());
    }
    assert_eq!(f.conns(at), CONNS as usize);
    if roles.moves > 0 {
        let per = |d: std::time::Duration| d.as_secs_f64() * 1e9 / roles.moves as f64;
        let (s, t, fr) = (per(roles.source), per(roles.target), per(roles.front));
        let slower = s.max(t);
        println!(
            "moves: {} live moves; per move: source {s:.0} ns, target {t:.0} ns, front {fr:.0} ns; \
             one core for all three: {:.0} k moves/s; source and target on a core each: {:.0} k moves/s per core",
            roles.moves,
            1e6 / (s + t + fr),
            1e6 / slower,
        );
    }
}

fn config() -> Criterion {
    // Short by default (2-core machine); the command line overrides these.
    Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_moves
}
criterion_main!(benches);
