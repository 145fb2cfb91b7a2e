//! Deterministic in-memory tests of re-homing: a keep-alive connection moves
//! again at a later request that a URL or cookie rule gives to another node
//! (three full nodes and a client host on one `MemSwitch`, virtual time).
//!
//! Each test checks every response (status, `X-Ipos-Node`, every body byte),
//! that the client saw no RST, which node's MAC the client's segments came
//! from, and the nodes' counters.

mod support;

use ipos::counters::Event;
use support::*;

use smoltcp::time::Duration;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Sends `paths` one after the other on one keep-alive connection (each
/// once the previous response is complete) and returns the responses.
fn sequence(f: &mut Farm, port: u16, paths: &[String]) -> (usize, Vec<Response>) {
    let id = f.request(port, &get(&paths[0]));
    for (i, p) in paths.iter().enumerate().skip(1) {
        f.await_responses(id, i, secs(20));
        f.client.send(id, get(p).as_bytes());
    }
    let r = f.await_responses(id, paths.len(), secs(20));
    (id, r)
}

/// The sequence: `/b/...`, `/c/...`, `/...`, `/b/...` on one
/// connection are answered by b, c, c (a load choice never re-homes), b.
#[test]
fn keep_alive_requests_follow_the_url_map() {
    let mut f = Farm::new(1);
    f.warm_up();
    let paths: Vec<String> = [
        "/b/bytes/3000",
        "/c/bytes/4000",
        "/bytes/5000",
        "/b/bytes/6000",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (id, r) = sequence(&mut f, 42001, &paths);
    r[0].assert_bytes_from("b", 3000);
    r[1].assert_bytes_from("c", 4000);
    r[2].assert_bytes_from("c", 5000);
    r[3].assert_bytes_from("b", 6000);
    assert_clean(&f, id);
    // The client heard a (handshake), b, c, then b: one run per owner.
    let runs = f.client.conns[id].mac_runs();
    assert_eq!(runs, vec![MACS[A], MACS[B], MACS[C], MACS[B]], "{runs:?}");
    assert_eq!(f.ev(A, Event::MigrationsStarted), 1);
    assert_eq!(f.ev(B, Event::RehomeMoves), 1, "{}", f.summary());
    assert_eq!(f.ev(C, Event::RehomeMoves), 1, "{}", f.summary());
    assert_eq!(f.ev(B, Event::MigrationsAcked), 1);
    assert_eq!(f.ev(C, Event::MigrationsAcked), 1);
    // Each chained move told the front, which forwards to the new owner.
    assert_eq!(f.ev(A, Event::ForwardMoved), 2, "{}", f.summary());
    assert_eq!(f.node(A).forward_count(), 1);
    assert_eq!(f.node(B).connection_count(), 1);
    assert_eq!(f.node(C).connection_count(), 0);
    f.close_and_drain(id, secs(10));
    assert_eq!(f.node(A).forward_count(), 0, "{}", f.summary());
    assert_clean(&f, id);
}

/// A later request the front's map keeps at the front brings the
/// connection back: a -> b, then `/a/` -> a, then `/b/` -> b again.
#[test]
fn a_later_request_brings_the_connection_back_to_the_front() {
    let mut f = Farm::with_options(2, |_| {
        let mut o = options();
        o.policy = policy(&[("/a/", A), ("/b/", B), ("/c/", C)]);
        o
    });
    f.warm_up();
    let paths: Vec<String> = ["/b/bytes/1000", "/a/bytes/2000", "/b/bytes/3000"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let (id, r) = sequence(&mut f, 42002, &paths);
    r[0].assert_bytes_from("b", 1000);
    r[1].assert_bytes_from("a", 2000);
    r[2].assert_bytes_from("b", 3000);
    assert_clean(&f, id);
    assert_eq!(f.ev(A, Event::MigrationsReceived), 1, "{}", f.summary());
    assert_eq!(f.ev(A, Event::RehomeMoves), 1, "{}", f.summary());
    f.close_and_drain(id, secs(10));
    assert_eq!(f.node(A).forward_count(), 0, "{}", f.summary());
}

/// b's map gives `/x/` to c and c's gives it to b: each request moves the
/// connection once (its target serves it without asking its own map), so
/// the requests are answered by c, b, c, b, never bounced within one.
#[test]
fn disagreeing_maps_move_a_connection_once_per_request() {
    let mut f = Farm::with_options(3, |n| {
        let mut o = options();
        if n == B {
            o.policy = policy(&[("/b/", B), ("/x/", C)]);
        }
        if n == C {
            o.policy = policy(&[("/b/", B), ("/x/", B)]);
        }
        o
    });
    f.warm_up();
    let mut paths = vec!["/b/bytes/100".to_string()];
    paths.extend((0..4).map(|i| format!("/x/bytes/{}", 1000 + i)));
    let (id, r) = sequence(&mut f, 42003, &paths);
    r[0].assert_bytes_from("b", 100);
    for (i, owner) in ["c", "b", "c", "b"].iter().enumerate() {
        r[i + 1].assert_bytes_from(owner, 1000 + i);
    }
    assert_clean(&f, id);
    let moves = f.ev(B, Event::RehomeMoves) + f.ev(C, Event::RehomeMoves);
    assert_eq!(moves, 4, "one move per request; {}", f.summary());
    f.close_and_drain(id, secs(10));
}

/// With `max_moves = 3` a connection whose requests alternate between b and
/// c moves three times (a -> b, b -> c, c -> b) and then stays, serving the
/// rest itself (`rehome_over_budget`).
#[test]
fn the_move_budget_stops_re_homing() {
    let mut f = Farm::with_options(4, |_| {
        let mut o = options();
        o.max_moves = 3;
        o
    });
    f.warm_up();
    let paths: Vec<String> = (0..6)
        .map(|i| format!("/{}/bytes/{}", if i % 2 == 0 { "b" } else { "c" }, 500 + i))
        .collect();
    let (id, r) = sequence(&mut f, 42004, &paths);
    for (i, owner) in ["b", "c", "b", "b", "b", "b"].iter().enumerate() {
        r[i].assert_bytes_from(owner, 500 + i);
    }
    assert_clean(&f, id);
    assert_eq!(f.ev(B, Event::RehomeMoves) + f.ev(C, Event::RehomeMoves), 2);
    assert_eq!(f.ev(B, Event::RehomeOverBudget), 2, "{}", f.summary());
    f.close_and_drain(id, secs(10));
}

/// Two requests in one segment (pipelined): the first moves the connection
/// to b with both; at the second, b waits until its first response is
/// wholly acknowledged and then moves the connection to c with it.
#[test]
fn a_pipelined_request_moves_once_the_response_before_it_is_acknowledged() {
    let mut f = Farm::new(5);
    f.warm_up();
    let two = format!("{}{}", get("/b/bytes/200000"), get("/c/bytes/7000"));
    let id = f.request(42005, &two);
    let r = f.await_responses(id, 2, secs(20));
    r[0].assert_bytes_from("b", 200_000);
    r[1].assert_bytes_from("c", 7000);
    assert_clean(&f, id);
    assert_eq!(f.ev(B, Event::RehomeMoves), 1, "{}", f.summary());
    f.close_and_drain(id, secs(10));
}

/// A cookie rule re-homes too: `IPOSID=c` on the second request.
#[test]
fn a_cookie_re_homes_a_connection() {
    let mut f = Farm::new(6);
    f.warm_up();
    let id = f.request(42006, &get("/b/bytes/1000"));
    f.await_responses(id, 1, secs(20));
    let req = "GET /bytes/2000 HTTP/1.1\r\nHost: x\r\nCookie: IPOSID=c\r\n\r\n";
    f.client.send(id, req.as_bytes());
    let r = f.await_responses(id, 2, secs(20));
    r[0].assert_bytes_from("b", 1000);
    r[1].assert_bytes_from("c", 2000);
    assert_clean(&f, id);
    assert_eq!(f.ev(B, Event::DecisionCookie), 1);
    f.close_and_drain(id, secs(10));
}

/// Re-homing off (`[policy] rehome = false`): every request is served where
/// the first one put the connection.
#[test]
fn re_homing_can_be_turned_off() {
    let mut f = Farm::with_options(7, |_| {
        let mut o = options();
        o.rehome = false;
        o
    });
    f.warm_up();
    let paths: Vec<String> = ["/b/bytes/1000", "/c/bytes/2000"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let (id, r) = sequence(&mut f, 42007, &paths);
    r[0].assert_bytes_from("b", 1000);
    r[1].assert_bytes_from("b", 2000);
    assert_eq!(f.ev(B, Event::RehomeMoves), 0);
    f.close_and_drain(id, secs(10));
}

/// 5 % of every ipOS frame lost, 20 seeds, the sequence each time:
/// every response byte-exact from the right node, no RST, all drained.
#[test]
fn re_homing_under_ipos_loss() {
    let mut lost = 0;
    for seed in 300u64..320 {
        let mut f = Farm::new(seed);
        f.warm_up();
        let dropped = lose_ipos(&f, seed, 5);
        let paths: Vec<String> = [
            "/b/bytes/30000",
            "/c/bytes/40000",
            "/bytes/5000",
            "/b/bytes/60000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (id, r) = sequence(&mut f, 42100, &paths);
        for (i, (owner, len)) in [("b", 30000), ("c", 40000), ("c", 5000), ("b", 60000)]
            .iter()
            .enumerate()
        {
            r[i].assert_bytes_from(owner, *len);
        }
        assert!(!f.client.conns[id].rst_seen(), "seed {seed}: RST");
        assert_eq!(f.client.stats.rst_in, 0, "seed {seed}");
        f.close_and_drain(id, secs(30));
        for n in 0..3 {
            assert_eq!(f.ev(n, Event::TcpResetsSent), 0, "seed {seed}");
        }
        lost += dropped.get();
    }
    eprintln!("ipOS frames lost over 20 seeds: {lost}");
    assert!(lost > 0);
}

/// A pipelined request whose head is complete waits at b for the response
/// before it to drain; a client that stops reading for longer than the
/// request-head time-out (15 s against 10 s) holds that response back. The
/// waiting head is the node's to act on, not the client's to send: the head
/// time-out must not close the connection, and both responses arrive once
/// the client reads again.
#[test]
fn a_waiting_pipelined_head_outlives_a_paused_reader() {
    let mut f = Farm::new(9);
    f.warm_up();
    let two = format!("{}{}", get("/b/bytes/400000"), get("/c/bytes/7000"));
    let id = f.request(42009, &two);
    f.client.conns[id].read_limit = Some(100_000);
    f.run_until(secs(10), |f| f.client.conns[id].received.len() >= 100_000);
    f.run_for(secs(60));
    assert_eq!(f.ev(B, Event::HttpHeadTimeouts), 0, "{}", f.summary());
    f.client.conns[id].read_limit = None;
    let r = f.await_responses(id, 2, secs(60));
    r[0].assert_bytes_from("b", 400_000);
    r[1].assert_bytes_from("c", 7000);
    assert_clean(&f, id);
    assert_eq!(f.ev(B, Event::RehomeMoves), 1, "{}", f.summary());
    f.close_and_drain(id, secs(10));
}

/// The other side of the same rule: a later request's head that trickles in
/// (one byte every 3 s) is the client's, and the head time-out runs from its
/// first byte: b closes the connection about 10 s in, however many bytes
/// keep arriving.
#[test]
fn a_trickling_second_head_times_out() {
    let mut f = Farm::new(10);
    f.warm_up();
    let id = f.request(42010, &get("/b/bytes/100"));
    f.await_responses(id, 1, secs(20))[0].assert_bytes_from("b", 100);
    let head = get("/c/bytes/100");
    let mut sent = 0;
    for byte in head.as_bytes().iter().take(6) {
        f.client.send(id, &[*byte]);
        f.run_for(secs(3));
        sent += 1;
        if f.ev(B, Event::HttpHeadTimeouts) > 0 {
            break;
        }
    }
    assert_eq!(f.ev(B, Event::HttpHeadTimeouts), 1, "{}", f.summary());
    // 10 s after the first byte: the fourth or fifth 3 s step.
    assert!((4..=5).contains(&sent), "timed out after {sent} bytes");
}

/// A request head that wraps the end of b's receive ring (4 KiB here, kept
/// non-empty by pipelined requests) is seen whole: the decision at its
/// boundary joins the ring's two slices, so the `/c/` request that
/// straddles the ring's end moves the connection to c instead of waiting
/// for bytes that already came.
#[test]
fn a_head_that_wraps_the_receive_ring_is_read_whole() {
    const RING: usize = 4096;
    let mut f = Farm::with_options(11, |_| {
        let mut o = options();
        o.tcp.rcv_buf = RING;
        o
    });
    f.warm_up();
    // `/b/` requests up to the one that straddles the ring's end, which is
    // for c.
    let b_req = get("/b/bytes/10");
    let c_req = get("/c/bytes/20");
    let mut stream = String::new();
    let mut n_b = 0;
    while stream.len() + c_req.len() <= RING || stream.len() >= RING {
        stream.push_str(&b_req);
        n_b += 1;
    }
    assert!(stream.len() < RING && stream.len() + c_req.len() > RING);
    stream.push_str(&c_req);
    let id = f.request(42011, &stream);
    let r = f.await_responses(id, n_b + 1, secs(30));
    for resp in &r[..n_b] {
        resp.assert_bytes_from("b", 10);
    }
    r[n_b].assert_bytes_from("c", 20);
    assert_clean(&f, id);
    assert_eq!(f.ev(B, Event::RehomeMoves), 1, "{}", f.summary());
    f.close_and_drain(id, secs(10));
}

/// Three pipelined requests in one segment: the second is served at b where
/// the first was, and the third, for c, still gets its own decision (a
/// request served here does not carry the ones after it along).
#[test]
fn each_pipelined_request_gets_its_own_decision() {
    let mut f = Farm::new(12);
    f.warm_up();
    let three = format!(
        "{}{}{}",
        get("/b/bytes/10"),
        get("/b/bytes/11"),
        get("/c/bytes/12")
    );
    let id = f.request(42012, &three);
    let r = f.await_responses(id, 3, secs(20));
    r[0].assert_bytes_from("b", 10);
    r[1].assert_bytes_from("b", 11);
    r[2].assert_bytes_from("c", 12);
    assert_clean(&f, id);
    assert_eq!(f.ev(B, Event::RehomeMoves), 1, "{}", f.summary());
    f.close_and_drain(id, secs(10));
}
