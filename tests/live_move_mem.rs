//! Deterministic in-memory tests of moves in the middle of a response:
//! `Node::move_connection` moves a served download to another node while
//! bytes of it are in flight; the target regenerates them from the service
//! state and the client gets one byte-exact stream (three full nodes and a
//! client host on one `MemSwitch`, virtual time).

mod support;

use ipos::counters::Event;
use ipos::migration::live::MoveError;
use ipos::port::mem::HookAction;
use ipos_wire::Flow;
use support::*;

use smoltcp::time::Duration;

const BIG: usize = 2_000_000;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// The node's key of the client connection from `port`.
fn flow(port: u16) -> Flow {
    node_flow(port)
}

/// Runs until the client connection `id` has received at least `n` bytes.
fn until_received(f: &mut Farm, id: usize, n: usize) {
    let ok = f.run_until(secs(20), |f| f.client.conns[id].received.len() >= n);
    assert!(
        ok,
        "only {} bytes; {}",
        f.client.conns[id].received.len(),
        f.summary()
    );
}

/// A download served by b moves to c once `at` bytes reached the client,
/// with b's send buffer full (the client paused reading there). With
/// `in_flight`, the client reads again first and the segments b sends in
/// answer are held on the switch during the move and delivered after it:
/// the move happens with bytes in flight. Returns the farm and connection.
fn move_at(seed: u64, port: u16, at: usize, in_flight: bool) -> (Farm, usize) {
    let mut f = Farm::new(seed);
    f.warm_up();
    let id = f.request(port, &get(&format!("/b/bytes/{BIG}")));
    f.client.conns[id].read_limit = Some(at);
    until_received(&mut f, id, at);
    f.run_for(Duration::from_millis(20));
    assert!(
        f.node(B).serving_count() == 1,
        "b does not serve it; {}",
        f.summary()
    );
    if in_flight {
        f.switch.set_hook(|port, frame| {
            if port == B && ipos_type(frame).is_none() {
                HookAction::Hold
            } else {
                HookAction::Deliver
            }
        });
        f.client.conns[id].read_limit = None;
        f.step();
        f.step();
    }
    let now = f.now;
    f.nodes[B]
        .move_connection(now, &flow(port), IPS[C])
        .unwrap_or_else(|e| panic!("move at {at}: {e}; {}", f.summary()));
    if in_flight {
        f.step();
        f.switch.clear_hook();
        assert!(f.switch.release_hooked() > 0, "nothing was in flight");
    }
    f.client.conns[id].read_limit = None;
    (f, id)
}

/// Moves at many points of a transfer: just after the head, inside the
/// first segments, in the middle, near the end. Each time the body is
/// byte-exact, its head is b's (b started the response), the client heard
/// a, b, then c, and b's move was counted as one mid-response.
#[test]
fn a_download_moves_at_every_point_of_its_transfer() {
    let points = [100usize, 1500, 20_000, 300_000, 1_000_000, BIG - 600_000];
    for (i, (at, in_flight)) in points
        .iter()
        .flat_map(|&at| [(at, false), (at, true)])
        .enumerate()
    {
        let port = 43000 + i as u16;
        let (mut f, id) = move_at(10 + i as u64, port, at, in_flight);
        let r = f.await_responses(id, 1, secs(30));
        let what = format!("at {at} (in flight: {in_flight})");
        r[0].assert_bytes_from("b", BIG);
        assert_clean(&f, id);
        let runs = f.client.conns[id].mac_runs();
        assert_eq!(runs.first(), Some(&MACS[A]), "{what}: {runs:?}");
        assert_eq!(runs.last(), Some(&MACS[C]), "{what}: {runs:?}");
        assert!(runs.contains(&MACS[B]), "{what}: {runs:?}");
        assert_eq!(f.ev(B, Event::MovesMidResponse), 1, "{what}");
        assert_eq!(f.ev(B, Event::MigrationsAcked), 1, "{what}");
        assert_eq!(f.ev(C, Event::MigrationsReceived), 1, "{what}");
        assert_eq!(f.ev(A, Event::ForwardMoved), 1, "{what}: {}", f.summary());
        // The connection goes on at c: a next request on it is c's.
        f.client.send(id, get("/bytes/3000").as_bytes());
        let r = f.await_responses(id, 2, secs(10));
        r[1].assert_bytes_from("c", 3000);
        f.close_and_drain(id, secs(10));
        assert_eq!(f.node(A).forward_count(), 0, "{what}: {}", f.summary());
        assert_clean(&f, id);
    }
}

/// b -> c -> a, both mid-response: the connection comes back to its front,
/// which stops forwarding it.
#[test]
fn a_download_moves_twice_and_comes_back_to_the_front() {
    let (mut f, id) = move_at(20, 43100, 100_000, false);
    f.client.conns[id].read_limit = Some(300_000);
    until_received(&mut f, id, 300_000);
    let ok = f.run_until(secs(5), |f| f.node(C).serving_count() == 1);
    assert!(ok, "c does not serve it; {}", f.summary());
    f.client.conns[id].read_limit = None;
    let now = f.now;
    f.nodes[C]
        .move_connection(now, &flow(43100), IPS[A])
        .expect("second move");
    let r = f.await_responses(id, 1, secs(30));
    r[0].assert_bytes_from("b", BIG);
    assert_clean(&f, id);
    let runs = f.client.conns[id].mac_runs();
    assert_eq!(runs, vec![MACS[A], MACS[B], MACS[C], MACS[A]], "{runs:?}");
    assert_eq!(f.ev(C, Event::MovesMidResponse), 1);
    assert_eq!(f.ev(A, Event::MigrationsReceived), 1);
    assert_eq!(f.node(A).forward_count(), 0, "{}", f.summary());
    f.close_and_drain(id, secs(10));
}

/// 5 % of every ipOS frame lost (connection packets, service states,
/// chunks, acknowledgements, forwarded client packets), 20 seeds, the move
/// at a different point each time: byte-exact, no RST, drained.
#[test]
fn moves_mid_response_under_five_percent_ipos_loss() {
    let (mut lost, mut mid) = (0, 0);
    for seed in 0u64..20 {
        let mut f = Farm::new(500 + seed);
        f.warm_up();
        let dropped = lose_ipos(&f, seed, 5);
        let port = 43200 + seed as u16;
        let id = f.request(port, &get(&format!("/b/bytes/{BIG}")));
        let at = 1000 + (seed as usize) * 80_000;
        f.client.conns[id].read_limit = Some(at);
        until_received(&mut f, id, at);
        let ok = f.run_until(secs(10), |f| f.node(B).serving_count() == 1);
        assert!(ok, "seed {seed}: b does not serve it; {}", f.summary());
        // Half the seeds move while the client reads again (bytes in flight).
        if seed % 2 == 1 {
            f.client.conns[id].read_limit = None;
            f.step();
        }
        // As a draining node does: again at each step while it is not yet.
        let mut tries = 0;
        loop {
            let now = f.now;
            match f.nodes[B].move_connection(now, &flow(port), IPS[C]) {
                Ok(()) => break,
                Err(MoveError::NotYet) if tries < 10_000 => f.step(),
                Err(e) => panic!("seed {seed}: {e}; {}", f.summary()),
            }
            tries += 1;
        }
        f.client.conns[id].read_limit = None;
        let r = f.await_responses(id, 1, secs(60));
        r[0].assert_bytes_from("b", BIG);
        assert!(!f.client.conns[id].rst_seen(), "seed {seed}: RST");
        assert_eq!(f.client.stats.rst_in, 0, "seed {seed}");
        let ok = f.run_until(secs(10), |f| f.ev(B, Event::MigrationsAcked) == 1);
        assert!(
            ok,
            "seed {seed}: the move did not complete; {}",
            f.summary()
        );
        assert_eq!(f.ev(B, Event::MigrationsFallback), 0, "seed {seed}");
        f.close_and_drain(id, secs(30));
        for n in 0..3 {
            assert_eq!(f.ev(n, Event::TcpResetsSent), 0, "seed {seed}");
        }
        lost += dropped.get();
        mid += f.ev(B, Event::MovesMidResponse);
    }
    eprintln!("ipOS frames lost over 20 seeds: {lost}; moves mid-response {mid} of 20");
    assert!(lost > 0);
    assert!(mid >= 10, "only {mid} of the 20 moves were mid-response");
}

/// What `move_connection` refuses, each with its reason.
#[test]
fn moves_that_cannot_be_made_are_refused() {
    let mut f = Farm::new(30);
    f.warm_up();
    let now = f.now;
    assert_eq!(
        f.nodes[B].move_connection(now, &flow(43300), IPS[C]),
        Err(MoveError::NoConnection)
    );
    let id = f.request(43300, &get(&format!("/b/bytes/{BIG}")));
    f.client.conns[id].read_limit = Some(10_000);
    until_received(&mut f, id, 10_000);
    let now = f.now;
    assert_eq!(
        f.nodes[B].move_connection(now, &flow(43300), IPS[B]),
        Err(MoveError::BadTarget)
    );
    assert_eq!(
        f.nodes[B].move_connection(now, &flow(43300), CLIENT_IP),
        Err(MoveError::BadTarget)
    );
    // An upload being read cannot move: its hash state does not travel.
    let up = f.request(
        43301,
        "POST /b/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n",
    );
    f.client.send(up, &[7u8; 5000]);
    let ok = f.run_until(secs(5), |f| f.node(B).connection_count() == 2);
    assert!(ok, "{}", f.summary());
    f.run_for(Duration::from_millis(50));
    let now = f.now;
    assert_eq!(
        f.nodes[B].move_connection(now, &flow(43301), IPS[C]),
        Err(MoveError::NotMovable)
    );
    f.client.conns[id].read_limit = None;
    let r = f.await_responses(id, 1, secs(30));
    r[0].assert_bytes_from("b", BIG);
    assert_clean(&f, id);
}

/// Near the end, once the response is wholly produced, its last bytes are
/// not regenerated: the move waits until the client has acknowledged them
/// (`NotYet`), and then moves the connection as between requests.
#[test]
fn the_end_of_a_response_moves_once_acknowledged() {
    let mut f = Farm::new(40);
    f.warm_up();
    let id = f.request(43400, &get(&format!("/b/bytes/{BIG}")));
    // The client's buffer (256 KiB) and b's (256 KiB) hold the last 400 kB:
    // all produced, the last of it unacknowledged.
    f.client.conns[id].read_limit = Some(BIG - 400_000);
    until_received(&mut f, id, BIG - 400_000);
    f.run_for(Duration::from_millis(20));
    let now = f.now;
    assert_eq!(
        f.nodes[B].move_connection(now, &flow(43400), IPS[C]),
        Err(MoveError::NotYet)
    );
    f.client.conns[id].read_limit = None;
    let r = f.await_responses(id, 1, secs(30));
    r[0].assert_bytes_from("b", BIG);
    f.run_for(Duration::from_millis(50));
    let now = f.now;
    f.nodes[B]
        .move_connection(now, &flow(43400), IPS[C])
        .expect("between requests");
    f.client.send(id, get("/bytes/5000").as_bytes());
    let r = f.await_responses(id, 2, secs(10));
    r[1].assert_bytes_from("c", 5000);
    assert_eq!(f.ev(B, Event::MovesMidResponse), 0);
    assert_clean(&f, id);
    f.close_and_drain(id, secs(10));
}
