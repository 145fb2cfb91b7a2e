//! Deterministic in-memory tests of rebalancing (`[policy] rebalance`): a
//! node far above the farm's average load moves long-lived connections to
//! the least loaded nodes, mid-response, at a bounded rate; off by default.

mod support;

use ipos::counters::Event;
use ipos::node::Rebalance;
use support::*;

use smoltcp::time::Duration;

const BIG: usize = 2_000_000;
const N: usize = 12;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// `N` paused downloads served by b; returns their connections.
fn load_b(f: &mut Farm) -> Vec<usize> {
    let ids: Vec<usize> = (0..N)
        .map(|i| {
            let id = f.request(45000 + i as u16, &get(&format!("/b/bytes/{BIG}")));
            f.client.conns[id].read_limit = Some(20_000);
            id
        })
        .collect();
    let ok = f.run_until(secs(10), |f| f.node(B).serving_count() == N);
    assert!(ok, "{}", f.summary());
    ids
}

fn finish(f: &mut Farm, ids: &[usize]) {
    for &id in ids {
        f.client.conns[id].read_limit = None;
    }
    for &id in ids {
        let r = f.await_responses(id, 1, secs(60));
        r[0].assert_bytes_from("b", BIG);
        assert!(!f.client.conns[id].rst_seen());
    }
    assert_eq!(f.client.stats.rst_in, 0, "{}", f.summary());
    f.close_all_and_drain(ids, secs(30));
}

/// b serves 12, a and c none (average 4): b moves half its excess, four
/// connections, all mid-response, no faster than its rate (2 per second
/// here), and then stops; every download is byte-exact.
#[test]
fn a_hot_node_moves_half_its_excess_at_its_rate() {
    let mut f = Farm::with_options(1, |_| {
        let mut o = options();
        o.rebalance = Some(Rebalance {
            factor: 1.5,
            rate: 2,
            min_age: Duration::from_millis(500),
        });
        o
    });
    f.warm_up();
    let ids = load_b(&mut f);
    // Too young to move yet.
    f.run_for(Duration::from_millis(300));
    assert_eq!(f.ev(B, Event::RebalanceMoves), 0, "{}", f.summary());
    // Two seconds at 2 per second (after a burst of one): at most 5.
    f.run_for(secs(2));
    let moved = f.ev(B, Event::RebalanceMoves);
    assert!((1..=5).contains(&moved), "{moved} moves; {}", f.summary());
    f.run_for(secs(5));
    let moved = f.ev(B, Event::RebalanceMoves);
    // Half the excess of 8 on the first plan; later plans see b near the
    // average and stop.
    assert!((4..=6).contains(&moved), "{moved} moves; {}", f.summary());
    assert_eq!(f.ev(B, Event::MovesMidResponse), moved);
    assert_eq!(f.node(B).serving_count(), N - moved as usize);
    assert_eq!(
        f.ev(A, Event::RebalanceMoves) + f.ev(C, Event::RebalanceMoves),
        0,
        "the cooler nodes moved connections too; {}",
        f.summary()
    );
    finish(&mut f, &ids);
}

/// Off by default: the same load stays on b.
#[test]
fn rebalancing_is_off_by_default() {
    let mut f = Farm::new(2);
    f.warm_up();
    let ids = load_b(&mut f);
    f.run_for(secs(8));
    assert_eq!(f.ev(B, Event::RebalanceMoves), 0);
    assert_eq!(f.node(B).serving_count(), N);
    finish(&mut f, &ids);
}
