//! Dead and restarted farm nodes, in memory (three nodes and a client on one
//! `MemSwitch`, virtual time): a target that stops advertising is down, its
//! forward entries go (a client's next segment gets a RST, idle clients'
//! entries are swept), a node that comes back counting its adverts from 1 is
//! heard again and chosen again, and a restarted owner that no longer knows
//! a connection makes its forwarder reset the client.

mod support;

use ipos::counters::{DropReason, Event};
use ipos::node::NodeOptions;
use smoltcp::time::Duration;
use support::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Opens `n` keep-alive connections whose first request moves them to
/// `owner` (by URL); returns them once answered, idle.
fn idle_connections(f: &mut Farm, first_port: u16, n: u16, owner: usize) -> Vec<usize> {
    let path = format!("/{}/bytes/3000", NAMES[owner]);
    let ids: Vec<usize> = (0..n)
        .map(|i| f.request(first_port + i, &get(&path)))
        .collect();
    for &id in &ids {
        f.await_responses(id, 1, Duration::from_secs(5))[0].assert_bytes_from(NAMES[owner], 3000);
    }
    ids
}

/// The time from now until node a calls b down.
fn run_until_down(f: &mut Farm, n: usize) -> Duration {
    let start = f.now;
    let down = f.run_until(Duration::from_secs(2), |f| f.node(A).peer_is_down(IPS[n]));
    assert!(down, "a never called {} down; {}", NAMES[n], f.summary());
    f.now - start
}

#[test]
fn dead_target_loses_its_forward_entries_and_clients_get_a_reset() {
    // One entry swept per poll: clients that send at once meet their entry
    // before the sweep does.
    let mut f = Farm::with_options(51, |_| NodeOptions {
        forward_sweep_budget: 1,
        ..options()
    });
    f.warm_up();
    let to_b = idle_connections(&mut f, 47000, 6, B);
    let to_c = idle_connections(&mut f, 47100, 2, C);
    assert_eq!(f.node(A).forward_count(), 8);
    f.kill(B);
    let took = run_until_down(&mut f, B);
    // b's last advert left at most one interval (20 ms) before it died.
    assert!(
        took >= ms(100) && took <= ms(130),
        "down after {took} (peer_down_after 120 ms)"
    );
    assert_eq!(f.ev(A, Event::PeersDown), 1);
    assert_eq!(f.node(A).peers_down_count(), 1);
    assert!(!f.node(A).peer_is_down(IPS[C]));
    // Every client of b sends its next request now: each gets a RST at once,
    // none a response; c's clients go on.
    for &id in to_b.iter().chain(&to_c) {
        f.client.send(id, get("/bytes/100").as_bytes());
    }
    let t0 = f.now;
    let all = f.run_until(ms(50), |f| {
        to_b.iter().all(|&id| f.client.conns[id].rst_seen())
    });
    assert!(all, "not every client of b got a RST; {}", f.summary());
    eprintln!("clients of b reset after {}", f.now - t0);
    for &id in &to_c {
        let r = f.await_responses(id, 2, Duration::from_secs(2));
        r[1].assert_bytes_from("c", 100);
        assert!(!f.client.conns[id].rst_seen());
    }
    for &id in &to_b {
        assert_eq!(f.responses(id).len(), 1, "a client of b got an answer");
    }
    assert_eq!(f.ev(A, Event::ForwardTargetDown), 6, "{}", f.summary());
    assert_eq!(f.ev(A, Event::TcpResetsSent), 6);
    assert_eq!(f.drops(A, DropReason::TcpNoConnection), 6);
    assert_eq!(
        f.drops(A, DropReason::TcpAfterClose),
        0,
        "reset, not silence"
    );
    assert!(f.ev(A, Event::PacketsForwarded) > 0);
    assert_eq!(f.node(A).forward_count(), 2, "c's entries stay");
    assert_eq!(f.ev(C, Event::TcpResetsSent), 0);
}

#[test]
fn idle_clients_entries_are_swept_within_the_budget() {
    let mut f = Farm::with_options(52, |_| NodeOptions {
        forward_sweep_budget: 2,
        ..options()
    });
    f.warm_up();
    let ids = idle_connections(&mut f, 47200, 9, B);
    idle_connections(&mut f, 47300, 3, C);
    assert_eq!(f.node(A).forward_count(), 12);
    f.kill(B);
    run_until_down(&mut f, B);
    // Nobody sends: the sweep alone empties b's entries, 2 a poll.
    let polls_at_most = 12 / 2 + 1;
    for _ in 0..polls_at_most {
        f.nodes[A].poll(f.now);
    }
    assert_eq!(f.node(A).forward_count(), 3, "{}", f.summary());
    assert_eq!(f.ev(A, Event::ForwardTargetDown), 9);
    assert_eq!(f.ev(A, Event::ForwardExpired), 0);
    // A client of b that speaks later gets a RST.
    f.client.send(ids[4], get("/bytes/10").as_bytes());
    assert!(f.run_until(ms(20), |f| f.client.conns[ids[4]].rst_seen()));
    assert_eq!(f.ev(A, Event::TcpResetsSent), 1);
}

#[test]
fn node_back_with_sequence_one_is_chosen_again() {
    let mut f = Farm::new(53);
    f.warm_up();
    let old = idle_connections(&mut f, 47400, 2, B);
    f.kill(B);
    run_until_down(&mut f, B);
    assert_eq!(f.node(A).forward_count(), 0, "{}", f.summary());
    // While b is down, /b/ stays on a (the URL rule names no live node).
    let here = f.request(47410, &get("/b/bytes/2000"));
    f.await_responses(here, 1, Duration::from_secs(2))[0].assert_bytes_from("a", 2000);
    // b comes back from nothing: its adverts count from 1 again.
    f.restart(B, options());
    let start = f.now;
    let up = f.run_until(ms(100), |f| !f.node(A).peer_is_down(IPS[B]));
    assert!(up, "a does not hear b again; {}", f.summary());
    assert!(f.now - start <= ms(5), "b heard after {}", f.now - start);
    assert_eq!(f.ev(A, Event::PeersUp), 1);
    assert_eq!(f.ev(A, Event::PeersDown), 1);
    // New connections reach b again.
    let again = f.request(47411, &get("/b/bytes/4000"));
    let r = f.await_responses(again, 1, Duration::from_secs(2));
    r[0].assert_bytes_from("b", 4000);
    assert_eq!(f.ev(B, Event::MigrationsReceived), 1);
    assert!(!f.client.conns[again].rst_seen());
    // The old clients of b get a RST on their next segment, from a.
    f.client.send(old[0], get("/bytes/10").as_bytes());
    assert!(f.run_until(ms(20), |f| f.client.conns[old[0]].rst_seen()));
    for id in [here, again] {
        f.client.close(id);
    }
    let closed = f.run_until(Duration::from_secs(10), |f| {
        [here, again]
            .iter()
            .all(|&id| f.client.conns[id].ep.state() == ipos_tcp::State::Closed)
            && f.nodes.iter().all(|n| n.connection_count() == 0)
    });
    assert!(closed, "not drained; {}", f.summary());
    assert_eq!(f.ev(A, Event::MigrationsFallback), 0, "{}", f.summary());
}

#[test]
fn restart_shown_by_the_sequence_is_heard_at_once() {
    let mut f = Farm::new(54);
    f.warm_up();
    // b must have sent 64 adverts (20 ms apart) for a sequence of 1 to show a restart.
    f.run_for(ms(1400));
    let old = idle_connections(&mut f, 47500, 3, B);
    assert_eq!(f.node(A).forward_count(), 3);
    // b dies and is back within one advert interval: never down at a.
    f.kill(B);
    f.run_for(ms(10));
    f.restart(B, options());
    let seen = f.run_until(ms(60), |f| f.ev(A, Event::PeersRestarted) == 1);
    assert!(seen, "a did not see b restart; {}", f.summary());
    assert_eq!(f.ev(A, Event::PeersDown), 0);
    assert_eq!(f.node(A).forward_count(), 0, "{}", f.summary());
    assert_eq!(f.ev(A, Event::ForwardTargetDown), 3);
    let again = f.request(47510, &get("/b/bytes/4000"));
    f.await_responses(again, 1, Duration::from_secs(2))[0].assert_bytes_from("b", 4000);
    for &id in &old {
        f.client.send(id, get("/bytes/10").as_bytes());
    }
    assert!(f.run_until(ms(20), |f| old
        .iter()
        .all(|&id| f.client.conns[id].rst_seen())));
}

/// b restarts but a has not heard of it (b does not advertise, and a would
/// wait long before calling it down): the client's next segment goes to b,
/// which does not know the connection and says so ("reset"); a drops the
/// entry without remembering the flow, and the client's retransmission gets
/// a RST instead of silence.
#[test]
fn owner_that_forgot_the_connection_makes_the_forwarder_reset_the_client() {
    let mut f = Farm::with_options(55, |_| NodeOptions {
        peer_down_after: Duration::from_secs(60),
        ..options()
    });
    f.warm_up();
    let ids = idle_connections(&mut f, 47600, 1, B);
    let id = ids[0];
    f.kill(B);
    f.restart(
        B,
        NodeOptions {
            advert_interval: Duration::ZERO,
            ..options()
        },
    );
    f.client.send(id, get("/bytes/10").as_bytes());
    let t0 = f.now;
    let reset = f.run_until(Duration::from_secs(3), |f| f.client.conns[id].rst_seen());
    assert!(reset, "the client was never reset; {}", f.summary());
    let took = f.now - t0;
    eprintln!("reset after {took} (the client's first retransmission)");
    assert!(took < Duration::from_millis(1500), "reset after {took}");
    assert_eq!(f.drops(B, DropReason::ForwardNoTarget), 1);
    assert_eq!(f.ev(B, Event::NoticesSent), 1);
    assert_eq!(f.ev(A, Event::ForwardReset), 1, "{}", f.summary());
    assert_eq!(f.ev(A, Event::ForwardClosed), 0);
    assert_eq!(f.ev(A, Event::TcpResetsSent), 1);
    assert_eq!(f.drops(A, DropReason::TcpAfterClose), 0);
    assert_eq!(f.node(A).forward_count(), 0);
}
