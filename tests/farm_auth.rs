//! Farm authentication on the in-memory farm: moves work with every ipOS
//! frame sealed (both modes), encrypted frames carry no request bytes in
//! clear, and forged, replayed, tampered and old-epoch frames are dropped
//! under their own reason while a download in progress completes. Without a
//! key, the checks that do not need one still hold: notices only from the
//! connection's owner or source, connection packets only for the VIP's
//! service ports, imported TCBs clamped.

mod support;

use ipos::auth::{AuthConfig, FarmAuth, FarmKey, Mode};
use ipos::counters::{DropReason, Event};
use ipos::migration::Notice;
use ipos::node::NodeIdentity;
use ipos::port::mem::HookAction;
use ipos_wire::trailer::TRAILER_LEN;
use ipos_wire::{ExtensionKind, Flow, MacAddrs, Protocol, TCB_LEN};
use smoltcp::time::Duration;
use smoltcp::wire::{EthernetAddress, Ipv4Address};
use std::cell::RefCell;
use std::rc::Rc;
use support::*;

const BIG: usize = 300_000;
const KEY: [u8; 32] = [0x5a; 32];

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn keyed(mode: Mode) -> impl Fn(usize) -> NodeIdentity {
    move |n| NodeIdentity {
        auth: Some(AuthConfig {
            key: FarmKey::from_bytes(KEY),
            mode,
        }),
        ..identity(n)
    }
}

/// The ipOS frames the switch carried: (sender port, bytes).
type Recorded = Rc<RefCell<Vec<(usize, Vec<u8>)>>>;

/// Copies every ipOS frame the switch carries and delivers it.
fn record(f: &Farm) -> Recorded {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    f.switch.set_hook(move |port, frame| {
        if ipos_type(frame).is_some() {
            s.borrow_mut().push((port, frame.to_vec()));
        }
        HookAction::Deliver
    });
    seen
}

fn auth_drops(f: &Farm, n: usize) -> u64 {
    [
        DropReason::AuthNoTrailer,
        DropReason::AuthWrongMode,
        DropReason::AuthUnknownKey,
        DropReason::AuthBadTag,
        DropReason::AuthReplayed,
        DropReason::AuthOldEpoch,
    ]
    .iter()
    .map(|r| f.drops(n, *r))
    .sum()
}

fn flow(port: u16) -> Flow {
    Flow {
        src_addr: CLIENT_IP,
        src_port: port,
        dst_addr: VIP,
        dst_port: SERVICE_PORT,
    }
}

fn macs(dst: usize, src: usize) -> MacAddrs {
    MacAddrs {
        dst: MACS[dst],
        src: MACS[src],
    }
}

fn notice_frame(dst: usize, src: usize, flow: &Flow, n: Notice) -> Vec<u8> {
    let mut b = vec![0u8; 128];
    let len = ipos_wire::emit_extension(
        &mut b,
        ETHERTYPE_IPOS,
        &macs(dst, src),
        flow,
        ExtensionKind::ConnectionNotice,
        Protocol::Tcp,
        &n.emit(),
    )
    .unwrap();
    b.truncate(len);
    b
}

fn connection_frame(dst: usize, src: usize, flow: &Flow, tcb: &ipos_tcp::Tcb) -> Vec<u8> {
    let mut bytes = [0u8; TCB_LEN];
    tcb.emit(&mut bytes);
    let mut b = vec![0u8; 256];
    let len = ipos_wire::emit_tcp_connection(
        &mut b,
        ETHERTYPE_IPOS,
        &macs(dst, src),
        flow,
        IPS[dst],
        flow.dst_port,
        &bytes,
    )
    .unwrap();
    b.truncate(len);
    b
}

fn commit_frame(dst: usize, src: usize, flow: &Flow) -> Vec<u8> {
    let mut b = vec![0u8; 64];
    let len =
        ipos_wire::emit_ack(&mut b, ETHERTYPE_IPOS, &macs(dst, src), flow, Protocol::Tcp).unwrap();
    b.truncate(len);
    b
}

fn advert_frame(src: usize, seq: u32) -> Vec<u8> {
    let a = ipos_policy::AdvertRepr::new(IPS[src], seq);
    let mut body = [0u8; 512];
    let n = a.emit(&mut body).unwrap();
    let mut b = vec![0u8; 600];
    let len = ipos_wire::emit_extension(
        &mut b,
        ETHERTYPE_IPOS,
        &MacAddrs {
            dst: EthernetAddress::BROADCAST,
            src: MACS[src],
        },
        &Flow {
            src_addr: IPS[src],
            src_port: 0,
            dst_addr: Ipv4Address::BROADCAST,
            dst_port: 0,
        },
        ExtensionKind::ServerState,
        Protocol::Tcp,
        &body[..n],
    )
    .unwrap();
    b.truncate(len);
    b
}

/// Injects `frame` into node `n`, runs one step, and returns the one drop
/// reason whose counter went up (asserting that exactly one did, by one).
fn inject_one(f: &mut Farm, n: usize, frame: &[u8]) -> DropReason {
    let before: Vec<u64> = DropReason::ALL.iter().map(|r| f.drops(n, *r)).collect();
    f.nodes[n].port_mut().inject(frame);
    f.step();
    let moved: Vec<(DropReason, u64)> = DropReason::ALL
        .iter()
        .zip(before)
        .filter(|(r, b)| f.drops(n, **r) != *b)
        .map(|(r, b)| (*r, f.drops(n, *r) - b))
        .collect();
    assert!(
        moved.len() == 1 && moved[0].1 == 1,
        "one drop expected at {}: {moved:?}",
        NAMES[n]
    );
    moved[0].0
}

/// `frame` sealed by `auth` (the trailer appended).
fn sealed(auth: &mut FarmAuth, frame: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    f.resize(frame.len() + TRAILER_LEN, 0);
    assert!(auth.seal(&mut f));
    f
}

/// The TCB of the first connection packet a sent (an established
/// connection moving, as a front sends it).
fn sent_tcb(seen: &Recorded) -> ipos_tcp::Tcb {
    let frames = seen.borrow();
    let (_, f) = frames
        .iter()
        .find(|(p, fr)| *p == A && ipos_type(fr) == Some(T_CONNECTION))
        .expect("a sent a connection packet");
    // Ethernet, ipOS header, server IP and port, then the TCB.
    let at = 14 + ipos_wire::HEADER_LEN + 6;
    let bytes: &[u8; TCB_LEN] = f[at..at + TCB_LEN].try_into().unwrap();
    ipos_tcp::Tcb::parse(bytes).expect("a valid TCB")
}

#[test]
fn moves_work_with_every_frame_sealed() {
    for (seed, mode) in [(11, Mode::Authenticated), (12, Mode::Encrypted)] {
        let mut f = Farm::with_identities(seed, |_| options(), keyed(mode));
        let seen = record(&f);
        f.warm_up();
        let to_b = f.request(40001, &get(&format!("/b/bytes/{BIG}")));
        let to_c = f.request(40002, &get(&format!("/c/bytes/{BIG}")));
        f.await_responses(to_b, 1, secs(10))[0].assert_bytes_from("b", BIG);
        f.await_responses(to_c, 1, secs(10))[0].assert_bytes_from("c", BIG);
        assert_eq!(f.ev(A, Event::MigrationsAcked), 2, "{}", f.summary());
        assert!(f.ev(A, Event::PacketsForwarded) > 0);
        f.close_all_and_drain(&[to_b, to_c], secs(10));
        assert_eq!(f.node(A).forward_count(), 0, "{}", f.summary());
        for n in 0..3 {
            assert_eq!(auth_drops(&f, n), 0, "{mode:?}: {}", f.summary());
            // Each node heard the two others' first epoch.
            assert_eq!(f.ev(n, Event::PeerEpochs), 2, "{mode:?}: {}", f.summary());
        }
        let frames = seen.borrow();
        assert!(frames.len() > 20);
        let mode_byte = match mode {
            Mode::Authenticated => 0x01,
            Mode::Encrypted => 0x02,
        };
        for (_, fr) in frames.iter() {
            assert_eq!(fr[fr.len() - TRAILER_LEN], mode_byte, "trailer mode");
        }
        // The carried request travels in a data frame: in clear when only
        // authenticated, never when encrypted.
        let has_request = frames
            .iter()
            .any(|(_, fr)| fr.windows(7).any(|w| w == b"GET /b/"));
        assert_eq!(has_request, mode == Mode::Authenticated, "{mode:?}");
        f.switch.clear_hook();
    }
}

#[test]
fn forged_replayed_and_tampered_frames_are_dropped_by_reason() {
    let mut f = Farm::with_identities(21, |_| options(), keyed(Mode::Authenticated));
    let seen = record(&f);
    f.warm_up();
    let id = f.request(40001, &get("/b/bytes/2000000"));
    let moved = f.run_until(secs(5), |f| {
        f.ev(A, Event::MigrationsCommitted) + f.ev(B, Event::MigrationsCommitted) > 0
    });
    assert!(moved, "{}", f.summary());
    f.switch.clear_hook();
    let fl = flow(40001);
    // A frame without a trailer has its last 36 bytes read as one: refused as
    // too short, of an unknown mode, or with a tag that does not verify.
    let unsealed = [
        DropReason::AuthNoTrailer,
        DropReason::AuthWrongMode,
        DropReason::AuthBadTag,
    ];

    // 1. A connection packet and a commit with a's MAC, no trailer (as a host
    //    on the segment would forge them).
    let r = inject_one(&mut f, B, &connection_frame(B, A, &fl, &sent_tcb(&seen)));
    assert!(unsealed.contains(&r), "{r:?}");
    let r = inject_one(&mut f, B, &commit_frame(B, A, &fl));
    assert!(unsealed.contains(&r), "{r:?}");
    // 2. An abort and a move notice, and a high-sequence advert, without trailer.
    let r = inject_one(
        &mut f,
        B,
        &notice_frame(B, A, &fl, Notice::owner(IPS[A], 80)),
    );
    assert!(unsealed.contains(&r), "{r:?}");
    let r = inject_one(
        &mut f,
        A,
        &notice_frame(A, B, &fl, Notice::owner(IPS[C], 80)),
    );
    assert!(unsealed.contains(&r), "{r:?}");
    let r = inject_one(&mut f, A, &advert_frame(C, u32::MAX / 2));
    assert!(unsealed.contains(&r), "{r:?}");
    // 3. The real connection packet a sent b, replayed.
    let real = seen
        .borrow()
        .iter()
        .find(|(p, fr)| *p == A && ipos_type(fr) == Some(T_CONNECTION))
        .map(|(_, fr)| fr.clone())
        .expect("a sent a connection packet");
    assert_eq!(inject_one(&mut f, B, &real), DropReason::AuthReplayed);
    // 4. A real frame b sent a, its sequence number changed (so it is not a
    //    replay): the tag no longer verifies. Then the frame as sent: a replay.
    let advert = seen
        .borrow()
        .iter()
        .rev()
        .find(|(p, fr)| *p == B && ipos_type(fr) == Some(T_ADVERT))
        .map(|(_, fr)| fr.clone())
        .expect("b advertised");
    let mut tampered = advert.clone();
    let seq_last = tampered.len() - TRAILER_LEN + 19;
    tampered[seq_last] = tampered[seq_last].wrapping_add(100);
    assert_eq!(inject_one(&mut f, A, &tampered), DropReason::AuthBadTag);
    assert_eq!(inject_one(&mut f, A, &advert), DropReason::AuthReplayed);
    // 5. A move notice sealed with another farm's key.
    let stranger = AuthConfig {
        key: FarmKey::from_bytes([0x33; 32]),
        mode: Mode::Authenticated,
    };
    let mut other = FarmAuth::new(&stranger, MACS[B], MACS, ipos::auth::boot_epoch());
    let forged = sealed(
        &mut other,
        &notice_frame(A, B, &fl, Notice::owner(IPS[C], 80)),
    );
    assert_eq!(inject_one(&mut f, A, &forged), DropReason::AuthBadTag);
    // 6. The right key but an epoch before a's boot: frames of an earlier life.
    let farm = AuthConfig {
        key: FarmKey::from_bytes(KEY),
        mode: Mode::Authenticated,
    };
    let mut earlier = FarmAuth::new(&farm, MACS[A], MACS, 1);
    let old = sealed(
        &mut earlier,
        &notice_frame(B, A, &fl, Notice::owner(IPS[A], 80)),
    );
    assert_eq!(inject_one(&mut f, B, &old), DropReason::AuthOldEpoch);
    // 7. The encrypted mode's trailer on an authenticated farm.
    let enc = AuthConfig {
        mode: Mode::Encrypted,
        ..farm.clone()
    };
    let mut e = FarmAuth::new(&enc, MACS[A], MACS, ipos::auth::boot_epoch());
    let wrong_mode = sealed(&mut e, &commit_frame(B, A, &fl));
    assert_eq!(
        inject_one(&mut f, B, &wrong_mode),
        DropReason::AuthWrongMode
    );

    let r = f.await_responses(id, 1, secs(30));
    r[0].assert_bytes_from("b", 2_000_000);
    // Nothing forged reached a role.
    assert_eq!(f.ev(A, Event::ForwardMoved), 0);
    assert_eq!(f.ev(B, Event::MigrationsAborted), 0);
    assert_eq!(f.ev(B, Event::MigrationsReceived), 1);
    assert_eq!(f.node(A).forward_count(), 1);
    assert!(
        f.node(A)
            .view()
            .servers()
            .get(IPS[C])
            .unwrap()
            .advert_sequence
            < Some(1000)
    );
    assert!(!f.client.conns[id].rst_seen());
    f.close_and_drain(id, secs(10));
}

#[test]
fn without_a_key_notices_and_connection_packets_are_still_checked() {
    let mut f = Farm::new(31);
    let seen = record(&f);
    f.warm_up();
    let id = f.request(40001, &get("/b/bytes/2000000"));
    let moved = f.run_until(secs(5), |f| f.ev(B, Event::MigrationsCommitted) > 0);
    assert!(moved, "{}", f.summary());
    f.switch.clear_hook();
    let fl = flow(40001);
    // The TCB a really sent, without its carried request (so that it imports at once).
    let tcb = || ipos_tcp::Tcb {
        rcv_data_len: 0,
        ..sent_tcb(&seen)
    };

    // A move notice from c, which does not own the connection (b does).
    f.nodes[A]
        .port_mut()
        .inject(&notice_frame(A, C, &fl, Notice::owner(IPS[C], 80)));
    // A closed notice from c.
    f.nodes[A]
        .port_mut()
        .inject(&notice_frame(A, C, &fl, Notice::CLOSED));
    // An abort to b from c (naming itself), which is not the move's source.
    f.nodes[B]
        .port_mut()
        .inject(&notice_frame(B, C, &fl, Notice::owner(IPS[C], 80)));
    // An abort to b from a, after a committed the move: too late.
    f.nodes[B]
        .port_mut()
        .inject(&notice_frame(B, A, &fl, Notice::owner(IPS[A], 80)));
    // Connection packets for an address or a port the farm does not serve.
    let mut not_vip = flow(40100);
    not_vip.dst_addr = Ipv4Address::new(198, 18, 0, 50);
    f.nodes[C]
        .port_mut()
        .inject(&connection_frame(C, A, &not_vip, &tcb()));
    let mut not_port = flow(40101);
    not_port.dst_port = 81;
    f.nodes[C]
        .port_mut()
        .inject(&connection_frame(C, A, &not_port, &tcb()));
    // A TCB with wild values: clamped and imported; one with a broadcast client MAC: refused.
    let mut wild = tcb();
    wild.mss = 9000;
    wild.cwnd = u32::MAX;
    wild.rto_us = 1;
    f.nodes[C]
        .port_mut()
        .inject(&connection_frame(C, A, &flow(40102), &wild));
    let mut bcast = tcb();
    bcast.link_addr = [0xff; 6];
    f.nodes[C]
        .port_mut()
        .inject(&connection_frame(C, A, &flow(40103), &bcast));

    f.run_for(secs(1));
    let r = f.await_responses(id, 1, secs(30));
    r[0].assert_bytes_from("b", 2_000_000);
    assert_eq!(f.drops(A, DropReason::NoticeNotOwner), 2, "{}", f.summary());
    assert_eq!(f.drops(B, DropReason::NoticeNotOwner), 2, "{}", f.summary());
    assert_eq!(
        f.drops(C, DropReason::ConnNotOurService),
        2,
        "{}",
        f.summary()
    );
    assert_eq!(f.ev(C, Event::TcbClamped), 1, "{}", f.summary());
    assert_eq!(f.drops(C, DropReason::IposBadTcb), 1, "{}", f.summary());
    assert_eq!(
        f.ev(C, Event::MigrationsReceived),
        1,
        "the clamped TCB was imported"
    );
    assert_eq!(f.ev(A, Event::ForwardMoved), 0);
    assert_eq!(f.ev(A, Event::ForwardClosed), 0);
    assert_eq!(f.ev(B, Event::MigrationsAborted), 0);
    assert!(!f.client.conns[id].rst_seen());
    f.close_and_drain(id, secs(10));
    assert_eq!(f.node(A).forward_count(), 0);
}
