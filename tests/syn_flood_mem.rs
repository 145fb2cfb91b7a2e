//! A SYN flood on the in-memory farm: thousands of SYNs that are never
//! completed fill the SYN-RECEIVED budget and nothing more (no buffers, the
//! rest answered with stateless SYN cookies); a real client still connects
//! (through a cookie), its connection moves like any other and it gets its
//! whole response; a forged cookie ACK is refused with a RST and counted.

mod support;

use ipos::counters::{DropReason, Event};
use ipos::node::NodeOptions;
use ipos::port::mem::MemPort;
use ipos::port::PacketBuf;
use ipos_tcp::{fill_checksum, write_header, Segment, TcpHeader, TcpOptions, ACK, RST, SYN};
use smoltcp::time::Duration;
use smoltcp::wire::{EthernetAddress, IpProtocol, Ipv4Address, Ipv4Packet};
use support::*;

const FLOODER_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0xc6, 0x12, 0x00, 0x99]);
const SYNS: u32 = 5_000;

/// The `i`-th flood source: 198.19.x.y (inside 198.18.0.0/15) and a port.
fn source(i: u32) -> (Ipv4Address, u16) {
    let a = i % 4000;
    (
        Ipv4Address::new(198, 19, (a >> 8) as u8, (a & 0xff) as u8),
        1024 + (i * 7919 % 60_000) as u16,
    )
}

/// An Ethernet + IPv4 + TCP frame from `src`:`sport` to VIP:80.
fn tcp_frame(src: Ipv4Address, sport: u16, h: TcpHeader, opts: &TcpOptions, ident: u16) -> Vec<u8> {
    let h = TcpHeader {
        src_port: sport,
        dst_port: SERVICE_PORT,
        ..h
    };
    let mut seg = [0u8; 60];
    let n = write_header(&mut seg, &h, opts);
    fill_checksum(src, VIP, &mut seg[..n]);
    let mut f = vec![0u8; 14 + 20 + n];
    ipos_wire::emit_ethernet_header(&mut f, MACS[A], FLOODER_MAC, 0x0800).unwrap();
    let ip = ipos_wire::Ipv4Header {
        src,
        dst: VIP,
        protocol: IpProtocol::Tcp,
        payload_len: n,
        ident,
    };
    ipos_wire::emit_ipv4_header(&mut f[14..], &ip).unwrap();
    f[34..].copy_from_slice(&seg[..n]);
    f
}

/// The flood's `i`-th SYN; every other one carries timestamps (as Linux's do).
fn syn(i: u32) -> Vec<u8> {
    let (src, sport) = source(i);
    let opts = TcpOptions {
        mss: Some(1460),
        wscale: (i.is_multiple_of(2)).then_some(7),
        sack_permitted: i.is_multiple_of(2),
        timestamp: (i.is_multiple_of(2)).then_some((i.wrapping_mul(31), 0)),
        ..TcpOptions::default()
    };
    let h = TcpHeader {
        src_port: 0,
        dst_port: 0,
        seq: i.wrapping_mul(0x9E37_79B9),
        ack: 0,
        flags: SYN,
        window: 64240,
    };
    tcp_frame(src, sport, h, &opts, i as u16)
}

/// A segment the flooder received: flags, seq, ack, timestamp option.
type Seen = (u8, u32, u32, Option<(u32, u32)>);

/// TCP segments the flooder received.
fn segments(port: &MemPort) -> Vec<Seen> {
    port.take_all()
        .iter()
        .filter_map(|f| {
            let d = f.data();
            let ip = Ipv4Packet::new_checked(&d[14..]).ok()?;
            let s = Segment::parse(ip.payload()).ok()?;
            Some((s.flags, s.seq, s.ack, s.timestamp))
        })
        .collect()
}

/// Floods node a with [`SYNS`] SYNs at once and returns the flooder's port.
fn flood(f: &mut Farm) -> MemPort {
    let flooder = f.switch.port(FLOODER_MAC);
    for i in 0..SYNS {
        f.nodes[A].port_mut().inject(&syn(i));
    }
    let now = f.now;
    let mut polls = 0;
    while f.nodes[A].poll(now) > 0 {
        polls += 1;
        assert!(polls < 10_000, "flood never drained");
    }
    flooder
}

#[test]
fn syn_flood_costs_the_budget_and_real_clients_still_connect() {
    let mut f = Farm::new(41);
    f.warm_up();
    let budget = options().syn_backlog;
    assert_eq!(budget, 1024, "the farm file's default");
    let flooder = flood(&mut f);
    let a = f.node(A);
    assert_eq!(a.syn_received_count(), budget, "{}", f.summary());
    assert_eq!(a.connection_count(), budget);
    assert_eq!(a.buffered_connection_count(), 0, "no buffers for half-open");
    let cookies = u64::from(SYNS) - budget as u64;
    assert_eq!(f.ev(A, Event::SynCookiesSent), cookies);
    assert_eq!(f.ev(A, Event::SynBacklogFull), cookies);
    assert_eq!(f.ev(A, Event::TcpAccepted), budget as u64);
    // Every SYN got a SYN-ACK; a cookie's TSval carries the options.
    let got = segments(&flooder);
    assert_eq!(got.len(), SYNS as usize);
    assert!(got.iter().all(|s| s.0 == SYN | ACK));
    let with_ts = got.iter().filter(|s| s.3.is_some()).count();
    assert_eq!(with_ts, SYNS as usize / 2, "timestamps only when offered");
    for s in got.iter().skip(budget) {
        if let Some((tsval, _)) = s.3 {
            assert_eq!(tsval & 0x3f, 0x17, "wscale 7 and SACK in the TSval");
        }
    }

    // A real client now: its SYN finds the budget full, it connects through a
    // cookie, its request moves it to b, and the whole response comes back.
    let id = f.request(45000, &get("/b/bytes/300000"));
    let r = f.await_responses(id, 1, Duration::from_secs(10));
    r[0].assert_bytes_from("b", 300_000);
    assert_eq!(f.ev(A, Event::SynCookiesSent), cookies + 1);
    assert_eq!(f.ev(A, Event::SynCookiesAccepted), 1);
    assert_eq!(f.ev(A, Event::MigrationsAcked), 1, "{}", f.summary());
    assert_eq!(f.ev(B, Event::MigrationsReceived), 1);
    // A second cookie connection, placed by load.
    let id2 = f.request(45001, &get("/bytes/200000"));
    assert_whole(
        &f.await_responses(id2, 1, Duration::from_secs(10))[0],
        200_000,
    );
    assert_eq!(f.ev(A, Event::SynCookiesAccepted), 2);
    assert!(!f.client.conns[id].rst_seen() && !f.client.conns[id2].rst_seen());
    assert_eq!(f.node(A).syn_received_count(), budget);
    assert_eq!(f.drops(A, DropReason::TcpBadCookie), 0);

    // A forged ACK for no connection: a RST, counted as a bad cookie.
    let _ = segments(&flooder);
    let resets = f.ev(A, Event::TcpResetsSent);
    let forged = TcpHeader {
        src_port: 0,
        dst_port: 0,
        seq: 0x1234_5679,
        ack: 0xdead_beef,
        flags: ACK,
        window: 502,
    };
    let src = Ipv4Address::new(198, 19, 200, 1);
    f.nodes[A]
        .port_mut()
        .inject(&tcp_frame(src, 4242, forged, &TcpOptions::default(), 1));
    f.run_for(Duration::from_millis(2));
    assert_eq!(f.drops(A, DropReason::TcpBadCookie), 1);
    assert_eq!(f.ev(A, Event::TcpResetsSent), resets + 1);
    let rsts: Vec<_> = segments(&flooder)
        .into_iter()
        .filter(|s| s.0 & RST != 0 && s.1 == 0xdead_beef)
        .collect();
    assert_eq!(rsts.len(), 1, "the RST carries the ACK's number");
    assert_eq!(f.node(A).connection_count(), budget + 1, "{}", f.summary());

    // The half-open entries give up after the SYN-RECEIVED time-out and free the budget.
    f.tick = Duration::from_millis(2);
    let freed = f.run_until(Duration::from_secs(15), |f| {
        f.node(A).syn_received_count() == 0
    });
    assert!(freed, "{}", f.summary());
    // Counted as half-open time-outs, not as clients slow to send a request.
    assert_eq!(
        f.ev(A, Event::TcpHalfOpenTimeouts) as usize,
        budget,
        "{}",
        f.summary()
    );
    assert_eq!(f.ev(A, Event::HttpHeadTimeouts), 0, "{}", f.summary());
    f.close_all_and_drain(&[id, id2], Duration::from_secs(10));
    assert_eq!(f.node(A).buffered_connection_count(), 0);
}

/// A complete, byte-exact `/bytes/len` response, from whichever node the
/// policy chose by load.
fn assert_whole(r: &Response, len: usize) {
    let node = r.header("X-Ipos-Node").unwrap_or("none").to_string();
    r.assert_bytes_from(&node, len);
}

/// With a budget of 0 every SYN gets a cookie: clients with and without
/// timestamps (then without window scaling and SACK) get byte-exact
/// responses, served by load and moved.
#[test]
fn cookie_connections_with_and_without_timestamps() {
    let mut f = Farm::with_options(43, |_| NodeOptions {
        syn_backlog: 0,
        ..options()
    });
    f.warm_up();
    let a = f.request(46000, &get("/c/bytes/150000"));
    let r = f.await_responses(a, 1, Duration::from_secs(10));
    r[0].assert_bytes_from("c", 150_000);
    f.client.cfg.timestamps = false;
    let b = f.request(46001, &get("/bytes/150000"));
    let c = f.request(46002, &get("/b/bytes/150000"));
    assert_whole(
        &f.await_responses(b, 1, Duration::from_secs(10))[0],
        150_000,
    );
    f.await_responses(c, 1, Duration::from_secs(10))[0].assert_bytes_from("b", 150_000);
    assert_eq!(f.ev(A, Event::SynCookiesSent), 3);
    assert_eq!(f.ev(A, Event::SynCookiesAccepted), 3);
    assert_eq!(f.node(A).syn_received_count(), 0);
    assert_eq!(f.ev(A, Event::TcpAccepted), 3);
    for id in [a, b, c] {
        assert!(!f.client.conns[id].rst_seen());
    }
    f.close_all_and_drain(&[a, b, c], Duration::from_secs(10));
}

/// A SYN that finds the connection table full gets a cookie too; the ACK
/// that returns it is dropped (no RST: the client sends it again) until
/// there is room.
#[test]
fn a_full_table_answers_with_cookies() {
    let mut f = Farm::with_options(47, |_| NodeOptions {
        max_connections: 2,
        ..options()
    });
    f.warm_up();
    let ids: Vec<usize> = (0..3u16)
        .map(|i| f.request(47000 + i, &get("/bytes/1000")))
        .collect();
    let ok = f.run_until(Duration::from_millis(200), |f| {
        f.responses(ids[0]).len() == 1 && f.responses(ids[1]).len() == 1
    });
    assert!(ok, "{}", f.summary());
    assert_eq!(f.node(A).syn_received_count(), 0, "handshakes done");
    assert_eq!(f.ev(A, Event::SynCookiesSent), 1, "{}", f.summary());
    assert!(f.drops(A, DropReason::TcpTableFull) >= 1);
    assert!(f.responses(ids[2]).is_empty());
    // Room again: the third client's next segment still carries a valid cookie.
    f.client.close(ids[0]);
    f.client.close(ids[1]);
    let r = f.await_responses(ids[2], 1, Duration::from_secs(20));
    assert_whole(&r[0], 1000);
    assert_eq!(f.ev(A, Event::SynCookiesAccepted), 1);
    assert_eq!(f.drops(A, DropReason::TcpBadCookie), 0);
    assert!(!f.client.conns[ids[2]].rst_seen());
    f.close_all_and_drain(&ids, Duration::from_secs(10));
}
