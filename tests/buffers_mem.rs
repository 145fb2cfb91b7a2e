//! In memory: an idle keep-alive connection holds no TCP buffer, on the node that
//! accepted it and on the nodes it moved to (by URL to b, by load to b or c); the next request on it takes buffers
//! again and is served byte for byte; the pool recycles instead of allocating.
//!
//! Every endpoint of the farm (the nodes' and the test client's) runs on this test's
//! thread, so they share one buffer pool ([`ipos_tcp::buffers`]): when nothing holds a
//! buffer, the pool's `in_use` is 0.

mod support;

use smoltcp::time::Duration;
use support::*;

const CONNS: u16 = 40;

fn table(f: &Farm, n: usize, name: &str) -> usize {
    f.node(n)
        .table_sizes()
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| *v)
        .expect("a table of that name")
}

#[test]
fn idle_keep_alive_connections_hold_no_buffers() {
    let mut f = Farm::new(0xb0f);
    f.warm_up();
    let before = ipos_tcp::buffers::stats();
    // Half go where the load sends them, half to b by URL; every response is 20 000 bytes.
    let ids: Vec<usize> = (0..CONNS)
        .map(|i| {
            let path = if i % 2 == 0 {
                "/bytes/20000"
            } else {
                "/b/bytes/20000"
            };
            f.request(41000 + i, &get(path))
        })
        .collect();
    for &id in &ids {
        f.await_responses(id, 1, Duration::from_secs(10));
    }
    // Let the last ACKs and window updates cross.
    f.run_for(Duration::from_millis(300));
    let held: usize = (0..3).map(|n| f.conns(n)).sum();
    assert_eq!(held, CONNS as usize, "{}", f.summary());
    assert!(f.conns(1) >= 1, "some connections moved to b");
    let idle = ipos_tcp::buffers::stats();
    assert_eq!(idle.in_use, 0, "idle connections hold buffers: {idle:?}");
    assert_eq!(idle.in_use_bytes, 0);
    assert!(idle.pooled > 0, "drained buffers wait in the pool");
    assert_eq!(table(&f, 0, "tcp_buffers"), 0);
    assert_eq!(table(&f, 1, "tcp_buffer_bytes"), 0);
    let allocated = idle.allocated;

    // The second request on every connection: buffers come back from the pool.
    for &id in &ids {
        let path = if id % 2 == 0 {
            "/bytes/30000"
        } else {
            "/b/bytes/30000"
        };
        f.client.send(id, get(path).as_bytes());
    }
    for &id in &ids {
        let r = f.await_responses(id, 2, Duration::from_secs(10));
        assert_eq!(r[1].status, 200);
        assert_eq!(r[1].body.len(), 30_000);
        assert_eq!(r[1].first_bad_byte(), None, "body bytes of connection {id}");
        assert!(!f.client.conns[id].rst_seen());
    }
    f.run_for(Duration::from_millis(300));
    let after = ipos_tcp::buffers::stats();
    assert_eq!(after.in_use, 0, "{after:?}");
    assert!(
        after.taken > idle.taken,
        "the second requests took buffers: {after:?}"
    );
    assert_eq!(
        after.allocated, allocated,
        "the second requests found every buffer in the pool: {after:?}"
    );
    assert!(
        after.allocated < after.taken - before.taken,
        "buffers were recycled, not all allocated: {after:?}"
    );
}
