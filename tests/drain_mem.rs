//! Deterministic in-memory tests of draining (`Node::start_drain`): a node
//! leaves the farm and every connection it serves moves to the others, in
//! the middle of its response too; the clients get byte-exact bodies and no
//! RST (three full nodes and a client host on one `MemSwitch`, virtual time).

mod support;

use ipos::counters::{DropReason, Event};
use ipos::node::DrainError;
use support::*;

use smoltcp::time::Duration;

const BIG: usize = 2_000_000;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn no_rst(f: &Farm) {
    assert_eq!(
        f.client.stats.rst_in,
        0,
        "RST at the client; {}",
        f.summary()
    );
    assert_eq!(f.client.stats.bad_tcp_checksum, 0);
    for (n, name) in NAMES.iter().enumerate() {
        assert_eq!(f.ev(n, Event::TcpResetsSent), 0, "{name} sent a RST");
        assert_eq!(f.drops(n, DropReason::ServiceStateMalformed), 0, "{name}");
    }
}

/// `n` downloads of BIG bytes served by b, each paused by its client at a
/// different point (so b holds a full send buffer for each), plus one
/// keep-alive connection idle at b after a first response.
fn busy_b(f: &mut Farm, n: usize) -> (Vec<usize>, usize) {
    let ids: Vec<usize> = (0..n)
        .map(|i| {
            let id = f.request(44000 + i as u16, &get(&format!("/b/bytes/{BIG}")));
            f.client.conns[id].read_limit = Some(10_000 + i * 150_000);
            id
        })
        .collect();
    let idle = f.request(44100, &get("/b/bytes/1000"));
    let ok = f.run_until(secs(20), |f| {
        ids.iter()
            .enumerate()
            .all(|(i, &id)| f.client.conns[id].received.len() >= 10_000 + i * 150_000)
            && f.responses(idle).len() == 1
    });
    assert!(ok, "{}", f.summary());
    f.run_for(Duration::from_millis(20));
    assert_eq!(f.node(B).serving_count(), n + 1, "{}", f.summary());
    (ids, idle)
}

/// Drains b while it serves five paused downloads and an idle keep-alive:
/// all six move (five mid-response), b ends holding nothing, the downloads
/// complete byte-exact, and the idle connection's next request is answered
/// where it went.
#[test]
fn a_drained_node_moves_every_connection_and_holds_nothing() {
    let mut f = Farm::new(1);
    f.warm_up();
    let (ids, idle) = busy_b(&mut f, 5);
    let now = f.now;
    f.nodes[B].start_drain(now, secs(30)).expect("b drains");
    assert!(f.nodes[B].is_draining());
    let ok = f.run_until(secs(10), |f| f.nodes[B].drained());
    assert!(ok, "b still holds connections; {}", f.summary());
    for &id in &ids {
        f.client.conns[id].read_limit = None;
    }
    for &id in &ids {
        let r = f.await_responses(id, 1, secs(60));
        r[0].assert_bytes_from("b", BIG);
    }
    f.client.send(idle, get("/bytes/2000").as_bytes());
    let r = f.await_responses(idle, 2, secs(10));
    assert_ne!(r[1].header("X-Ipos-Node"), Some("b"), "{:?}", r[1].headers);
    r[1].assert_bytes_from(r[1].header("X-Ipos-Node").unwrap_or("?"), 2000);
    no_rst(&f);
    assert_eq!(f.ev(B, Event::DrainsStarted), 1);
    assert_eq!(f.ev(B, Event::DrainMoves), 6, "{}", f.summary());
    assert_eq!(f.ev(B, Event::MovesMidResponse), 5, "{}", f.summary());
    assert_eq!(f.ev(B, Event::MigrationsAcked), 6);
    assert_eq!(f.ev(B, Event::MigrationsFallback), 0);
    assert_eq!(f.node(B).connection_count(), 0);
    // b listens on nothing now: a new connection for /b/ goes elsewhere.
    let received = f.ev(B, Event::MigrationsReceived);
    let late = f.request(44200, &get("/b/bytes/3000"));
    let r = f.await_responses(late, 1, secs(10));
    assert_ne!(r[0].header("X-Ipos-Node"), Some("b"));
    assert_eq!(
        f.ev(B, Event::MigrationsReceived),
        received,
        "b took a move"
    );
    let mut all = ids.clone();
    all.extend([idle, late]);
    f.close_all_and_drain(&all, secs(20));
    no_rst(&f);
}

/// The front cannot drain.
#[test]
fn the_front_refuses_to_drain() {
    let mut f = Farm::new(2);
    f.warm_up();
    let now = f.now;
    assert_eq!(
        f.nodes[A].start_drain(now, secs(30)),
        Err(DrainError::Front)
    );
    assert!(!f.nodes[A].is_draining());
}

/// b drains, then c (which took b's connections): they come back to the
/// front, byte-exact.
#[test]
fn chained_drains_end_at_the_front() {
    let mut f = Farm::new(3);
    f.warm_up();
    let (ids, idle) = busy_b(&mut f, 3);
    let now = f.now;
    f.nodes[B].start_drain(now, secs(30)).expect("b drains");
    assert!(
        f.run_until(secs(10), |f| f.nodes[B].drained()),
        "{}",
        f.summary()
    );
    let now = f.now;
    f.nodes[C].start_drain(now, secs(30)).expect("c drains");
    assert!(
        f.run_until(secs(10), |f| f.nodes[C].drained()),
        "{}",
        f.summary()
    );
    for &id in &ids {
        f.client.conns[id].read_limit = None;
    }
    for &id in &ids {
        let r = f.await_responses(id, 1, secs(60));
        r[0].assert_bytes_from("b", BIG);
    }
    no_rst(&f);
    assert_eq!(f.node(A).connection_count(), 4, "{}", f.summary());
    assert_eq!(f.node(A).forward_count(), 0, "{}", f.summary());
    let mut all = ids.clone();
    all.push(idle);
    f.close_all_and_drain(&all, secs(20));
}

/// An upload being read cannot move: it is finished in place, and after the
/// deadline closed with a FIN once answered; then b is drained.
#[test]
fn what_cannot_move_is_finished_in_place() {
    let mut f = Farm::new(4);
    f.warm_up();
    let body = vec![9u8; 300_000];
    let up = f.request(
        44300,
        &format!(
            "POST /b/upload HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        ),
    );
    f.client.send(up, &body[..100_000]);
    let ok = f.run_until(secs(5), |f| f.node(B).serving_count() == 1);
    assert!(ok, "{}", f.summary());
    f.run_for(Duration::from_millis(20));
    let now = f.now;
    f.nodes[B]
        .start_drain(now, Duration::from_millis(500))
        .expect("b drains");
    f.run_for(Duration::from_millis(600));
    assert_eq!(f.node(B).connection_count(), 1, "the upload stays");
    assert_eq!(f.ev(B, Event::DrainMoves), 0);
    f.client.send(up, &body[100_000..]);
    let r = f.await_responses(up, 1, secs(10));
    assert_eq!(r[0].status, 200);
    assert_eq!(r[0].header("X-Upload-Length"), Some("300000"));
    // b closes once the answer is out; the client closes its side in turn.
    let ok = f.run_until(secs(5), |f| f.client.conns[up].ep.peer_fin_received());
    assert!(ok, "no FIN at the client; {}", f.summary());
    f.client.close(up);
    let ok = f.run_until(secs(10), |f| f.nodes[B].drained());
    assert!(ok, "{}", f.summary());
    assert_eq!(f.ev(B, Event::DrainClosed), 1);
    no_rst(&f);
}

/// 5 % of every ipOS frame lost during the drain, 10 seeds: every download
/// completes byte-exact, no RST, b ends holding nothing.
#[test]
fn drains_under_five_percent_ipos_loss() {
    let mut total = 0;
    for seed in 0u64..10 {
        let mut f = Farm::new(600 + seed);
        f.warm_up();
        let (ids, idle) = busy_b(&mut f, 4);
        let lost = lose_ipos(&f, seed, 5);
        let now = f.now;
        f.nodes[B].start_drain(now, secs(30)).expect("b drains");
        for &id in &ids {
            f.client.conns[id].read_limit = None;
        }
        let ok = f.run_until(secs(30), |f| f.nodes[B].drained());
        assert!(
            ok,
            "seed {seed}: b still holds connections; {}",
            f.summary()
        );
        for &id in &ids {
            let r = f.await_responses(id, 1, secs(60));
            r[0].assert_bytes_from("b", BIG);
        }
        no_rst(&f);
        total += lost.get();
        let mut all = ids.clone();
        all.push(idle);
        f.close_all_and_drain(&all, secs(30));
    }
    assert!(total > 0, "no ipOS frame was lost");
}

/// A move towards a draining node is refused (`drop.draining`): its source
/// keeps the connection after its retries and serves it, byte-exact.
#[test]
fn a_draining_node_refuses_moves_in() {
    let mut f = Farm::new(5);
    f.warm_up();
    let id = f.request(44400, &get(&format!("/c/bytes/{BIG}")));
    f.client.conns[id].read_limit = Some(50_000);
    until(&mut f, |f| f.client.conns[id].received.len() >= 50_000);
    let now = f.now;
    f.nodes[B].start_drain(now, secs(30)).expect("b drains");
    let flow = node_flow(44400);
    let now = f.now;
    f.nodes[C]
        .move_connection(now, &flow, IPS[B])
        .expect("c starts the move");
    f.client.conns[id].read_limit = None;
    let r = f.await_responses(id, 1, secs(30));
    r[0].assert_bytes_from("c", BIG);
    assert!(f.drops(B, DropReason::Draining) >= 1, "{}", f.summary());
    assert_eq!(f.ev(C, Event::MigrationsFallback), 1, "{}", f.summary());
    assert_eq!(f.ev(B, Event::MigrationsReceived), 0);
    no_rst(&f);
    f.close_and_drain(id, secs(10));
}

fn until(f: &mut Farm, done: impl FnMut(&Farm) -> bool) {
    assert!(f.run_until(secs(20), done), "{}", f.summary());
}
