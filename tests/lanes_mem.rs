//! Nodes on several lcores (lanes), in memory: every node of the farm is two
//! (or three) `Node`s on the queues of one switch port, the switch spreading
//! frames over the queues by a hash of their bytes, so that most frames reach
//! a lane that does not own them and take the software hop.
//!
//! Each test checks every response byte, that the client saw no RST, and
//! that the lanes really shared the work (hops taken, connections served on
//! every lane).

mod support;

use ipos::auth::{AuthConfig, FarmKey, Mode};
use ipos::counters::{DropReason, Event};
use ipos::node::{lane_of_flow, NodeIdentity};
use support::*;

use smoltcp::time::Duration;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn keyed(mode: Mode) -> impl Fn(usize) -> NodeIdentity {
    move |n| NodeIdentity {
        auth: Some(AuthConfig {
            key: FarmKey::from_bytes([0x33; 32]),
            mode,
        }),
        ..identity(n)
    }
}

/// `count` connections from ports `first..`, each asking for
/// `/b/...`, `/c/...` or `/...` (by load) in turn; every response is checked
/// (and the farm with [`assert_clean`] when `clean`) and every connection
/// closed. Returns the nodes that served, per request.
fn downloads(f: &mut Farm, first: u16, count: u16, len: usize, clean: bool) -> Vec<String> {
    let prefixes = ["/b", "/c", ""];
    let ids: Vec<usize> = (0..count)
        .map(|i| {
            f.request(
                first + i,
                &get(&format!("{}/bytes/{len}", prefixes[usize::from(i) % 3])),
            )
        })
        .collect();
    let mut served = Vec::new();
    for (i, &id) in ids.iter().enumerate() {
        let r = f.await_responses(id, 1, secs(30));
        let node = r[0].header("x-ipos-node").unwrap_or("?").to_string();
        match i % 3 {
            0 => assert_eq!(node, "b"),
            1 => assert_eq!(node, "c"),
            _ => {}
        }
        r[0].assert_bytes_from(&node, len);
        assert!(!f.client.conns[id].rst_seen(), "RST at the client");
        if clean {
            assert_clean(f, id);
        }
        served.push(node);
    }
    f.close_all_and_drain(&ids, secs(60));
    served
}

/// Every lane of `n` took part: the node handed frames between its lanes,
/// none was lost for a full ring, and (for a target) every lane served
/// imported connections.
fn assert_lanes_shared(f: &Farm, n: usize, imported: bool) {
    assert!(
        f.ev(n, Event::LaneHops) > 0,
        "{} took no hop; {}",
        NAMES[n],
        f.summary()
    );
    assert_eq!(f.drops(n, DropReason::LaneRingFull), 0);
    for (l, lane) in f.lanes_of(n).enumerate() {
        let c = lane.counters();
        if imported {
            assert!(
                c.get(Event::MigrationsReceived) > 0,
                "{}/{l} imported nothing; {}",
                NAMES[n],
                f.summary()
            );
        }
    }
}

#[test]
fn two_lanes_per_node_move_connections_by_url_and_load() {
    let mut f = Farm::with_lanes(1, 2, |_| options(), identity);
    f.warm_up();
    let served = downloads(&mut f, 42000, 36, 200_000, true);
    assert!(served.iter().filter(|s| *s == "b").count() >= 12);
    for n in [A, B, C] {
        assert_lanes_shared(&f, n, n != A);
    }
    // Only lane 0 advertises; the others' rows come from their own count.
    for n in [A, B, C] {
        let lanes: Vec<_> = f.lanes_of(n).collect();
        assert!(lanes[0].counters().get(Event::AdvertsSent) > 0);
        assert_eq!(lanes[1].counters().get(Event::AdvertsSent), 0);
        assert!(lanes[1].counters().get(Event::AdvertsReceived) > 0);
    }
    // The front's lanes split the accepted connections by flow.
    let accepted: Vec<u64> = f
        .lanes_of(A)
        .map(|l| l.counters().get(Event::TcpAccepted))
        .collect();
    assert!(accepted.iter().all(|&a| a >= 6), "{accepted:?}");
    assert_eq!(accepted.iter().sum::<u64>(), 36);
}

#[test]
fn lanes_with_a_farm_key_check_each_frame_once() {
    for mode in [Mode::Authenticated, Mode::Encrypted] {
        let mut f = Farm::with_lanes(2, 2, |_| options(), keyed(mode));
        f.warm_up();
        downloads(&mut f, 43000, 24, 100_000, true);
        for n in [A, B, C] {
            assert_lanes_shared(&f, n, n != A);
            for r in [
                DropReason::AuthBadTag,
                DropReason::AuthReplayed,
                DropReason::AuthOldEpoch,
                DropReason::AuthNoTrailer,
            ] {
                assert_eq!(f.drops(n, r), 0, "{mode:?} {r:?}; {}", f.summary());
            }
        }
    }
}

#[test]
fn three_lanes_and_ipos_loss() {
    for seed in 0..4 {
        let mut f = Farm::with_lanes(10 + seed, 3, |_| options(), identity);
        f.warm_up();
        let lost = lose_ipos(&f, seed, 5);
        // Lost notices can leave a data frame with nowhere to go (counted
        // `forward_no_target`, as on one lane): the farm is not "clean",
        // but every byte arrives and the client sees no RST.
        downloads(&mut f, 44000, 18, 100_000, false);
        assert_eq!(f.client.stats.rst_in, 0);
        assert!(lost.get() > 0);
        for n in [B, C] {
            assert!(f.ev(n, Event::MigrationsReceived) >= 6);
        }
    }
}

#[test]
fn a_live_move_between_lanes_of_different_nodes() {
    let mut f = Farm::with_lanes(3, 2, |_| options(), identity);
    f.warm_up();
    let port = 45000;
    let id = f.request(port, &get("/b/bytes/3000000"));
    // Part of the response, then b's owning lane moves it to c.
    let ok = f.run_until(secs(10), |f| f.client.conns[id].received.len() > 200_000);
    assert!(ok, "{}", f.summary());
    let flow = node_flow(port);
    let lane = lane_of_flow(&flow, 2);
    let now = f.now;
    let owner = if lane == 0 {
        &mut f.nodes[B]
    } else {
        &mut f.lanes[B][lane - 1]
    };
    owner
        .move_connection(now, &flow, IPS[C])
        .expect("b's owning lane moves the connection");
    let r = f.await_responses(id, 1, secs(30));
    assert_eq!(r[0].header("x-ipos-node"), Some("b"));
    r[0].assert_bytes_from("b", 3_000_000);
    assert_clean(&f, id);
    assert_eq!(f.ev(B, Event::MovesMidResponse), 1);
    assert_eq!(f.ev(C, Event::MigrationsReceived), 1);
    f.close_and_drain(id, secs(60));
}

#[test]
fn draining_every_lane_leaves_nothing() {
    let mut f = Farm::with_lanes(4, 2, |_| options(), identity);
    f.warm_up();
    let ids: Vec<usize> = (0..8)
        .map(|i| f.request(46000 + i, &get("/b/bytes/2000000")))
        .collect();
    let ok = f.run_until(secs(10), |f| {
        ids.iter()
            .all(|&id| f.client.conns[id].received.len() > 100_000)
    });
    assert!(ok, "{}", f.summary());
    let now = f.now;
    f.nodes[B].start_drain(now, secs(30)).expect("b drains");
    f.lanes[B][0].start_drain(now, secs(30)).expect("b drains");
    for &id in &ids {
        let r = f.await_responses(id, 1, secs(60));
        r[0].assert_bytes_from("b", 2_000_000);
        assert_clean(&f, id);
    }
    let ok = f.run_until(secs(10), |f| f.lanes_of(B).all(|l| l.drained()));
    assert!(ok, "{}", f.summary());
    assert_eq!(f.ev(B, Event::DrainMoves), 8);
    f.close_all_and_drain(&ids, secs(60));
}

#[test]
fn a_full_lane_ring_drops_and_counts() {
    let mut f = Farm::with_lanes(5, 2, |_| options(), identity);
    f.warm_up();
    // Client SYNs for flows of lane 1, all arriving on lane 0's queue while
    // lane 1 does not poll: its ring takes RING of them, the rest are counted.
    let ports: Vec<u16> = (20000..40000u16)
        .filter(|&p| lane_of_flow(&node_flow(p), 2) == 1)
        .take(ipos::node::LANE_RING + 100)
        .collect();
    assert_eq!(ports.len(), ipos::node::LANE_RING + 100);
    let syn = |port: u16| {
        let mut d = vec![0u8; 54];
        d[0..6].copy_from_slice(MACS[A].as_bytes());
        d[6..12].copy_from_slice(CLIENT_MAC.as_bytes());
        d[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip = &mut d[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&40u16.to_be_bytes());
        ip[6] = 0x40;
        ip[8] = 64;
        ip[9] = 6;
        ip[12..16].copy_from_slice(&CLIENT_IP.octets());
        ip[16..20].copy_from_slice(&VIP.octets());
        smoltcp::wire::Ipv4Packet::new_unchecked(&mut ip[..]).fill_checksum();
        let tcp = &mut d[34..54];
        tcp[0..2].copy_from_slice(&port.to_be_bytes());
        tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
        tcp[4..8].copy_from_slice(&7u32.to_be_bytes());
        tcp[12] = 0x50;
        tcp[13] = 0x02;
        tcp[14..16].copy_from_slice(&8192u16.to_be_bytes());
        d
    };
    let now = f.now;
    for &p in &ports {
        f.nodes[A].port_mut().inject(&syn(p));
        f.nodes[A].poll(now);
    }
    assert_eq!(f.nodes[A].counters().dropped(DropReason::LaneRingFull), 100);
    assert_eq!(
        f.nodes[A].counters().get(Event::LaneHops),
        ipos::node::LANE_RING as u64
    );
    assert_eq!(f.lanes[A][0].connection_count(), 0);
}

/// The benchmark preload (`iposd --bench-forward-flows`): each lane of the
/// front installs exactly the flows it owns, together all of them; a node
/// without the VIP, or the node itself as the target, is refused.
#[test]
fn preloaded_forward_flows_land_on_their_lanes() {
    use ipos::node::{preload_flow, PreloadError};
    let mut f = Farm::with_lanes(3, 2, |_| options(), identity);
    let now = f.now;
    let n = 1000;
    let put0 = f.nodes[A].preload_forward_flows(now, IPS[B], n).unwrap();
    let put1 = f.lanes[A][0].preload_forward_flows(now, IPS[B], n).unwrap();
    let owned0 = (0..n)
        .filter(|&i| lane_of_flow(&preload_flow(i, VIP, SERVICE_PORT), 2) == 0)
        .count();
    assert_eq!(put0, owned0);
    assert_eq!(put0 + put1, n);
    assert!(put0 > n / 4 && put1 > n / 4, "{put0} / {put1}");
    assert_eq!(f.nodes[A].forward_count(), put0);
    assert_eq!(f.lanes[A][0].forward_count(), put1);
    assert_eq!(
        f.nodes[A].preload_forward_flows(now, IPS[A], 1),
        Err(PreloadError::NoSuchTarget(IPS[A]))
    );
    assert_eq!(
        f.nodes[B].preload_forward_flows(now, IPS[C], 1),
        Err(PreloadError::NoVip)
    );
    // The default limit holds 65 536 entries: beyond it the table is full.
    let mut one = Farm::with_options(4, |_| options());
    assert_eq!(
        one.nodes[A].preload_forward_flows(now, IPS[B], 70_000),
        Err(PreloadError::TableFull(65_536))
    );
}
