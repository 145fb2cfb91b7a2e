//! Property tests: parsing never panics, and emit -> parse round-trips.

use crate::checksum;
use crate::frame::*;
use crate::header::{Flow, Protocol};
use crate::test_util::{tcp_packet, udp_packet};
use crate::{Error, DEFAULT_ETHERTYPE, TCB_LEN};
use proptest::prelude::*;
use smoltcp::wire::{EthernetAddress, Ipv4Address};

fn addr() -> impl Strategy<Value = Ipv4Address> {
    any::<[u8; 4]>().prop_map(Ipv4Address::from)
}

fn flow() -> impl Strategy<Value = Flow> {
    (addr(), any::<u16>(), addr(), any::<u16>()).prop_map(
        |(src_addr, src_port, dst_addr, dst_port)| Flow {
            src_addr,
            src_port,
            dst_addr,
            dst_port,
        },
    )
}

fn macs() -> impl Strategy<Value = MacAddrs> {
    (any::<[u8; 6]>(), any::<[u8; 6]>()).prop_map(|(d, s)| MacAddrs {
        dst: EthernetAddress(d),
        src: EthernetAddress(s),
    })
}

/// A message with owned bodies; [`Owned::message`] borrows it.
#[derive(Debug, Clone)]
enum Owned {
    TcpConn(Flow, Ipv4Address, u16, Vec<u8>),
    UdpConn(Flow, Ipv4Address, u16),
    TcpData(Flow, Vec<u8>),
    UdpData(Flow, Vec<u8>),
    Ack(Flow, Protocol),
    Ext(Flow, ExtensionKind, Protocol, Vec<u8>),
}

impl Owned {
    fn message(&self) -> Message<'_> {
        match self {
            Owned::TcpConn(flow, server_addr, server_port, tcb) => Message::TcpConnection {
                flow: *flow,
                server_addr: *server_addr,
                server_port: *server_port,
                tcb: tcb.as_slice().try_into().unwrap(),
            },
            Owned::UdpConn(flow, server_addr, server_port) => Message::UdpConnection {
                flow: *flow,
                server_addr: *server_addr,
                server_port: *server_port,
            },
            Owned::TcpData(flow, packet) => Message::TcpData {
                flow: *flow,
                packet,
            },
            Owned::UdpData(flow, packet) => Message::UdpData {
                flow: *flow,
                packet,
            },
            Owned::Ack(flow, protocol) => Message::Ack {
                flow: *flow,
                protocol: *protocol,
            },
            Owned::Ext(flow, kind, protocol, body) => Message::Extension {
                flow: *flow,
                kind: *kind,
                protocol: *protocol,
                body,
            },
        }
    }
}

fn owned() -> impl Strategy<Value = Owned> {
    let payload = || proptest::collection::vec(any::<u8>(), 0..200);
    prop_oneof![
        (
            flow(),
            addr(),
            any::<u16>(),
            proptest::collection::vec(any::<u8>(), TCB_LEN)
        )
            .prop_map(|(f, a, p, t)| Owned::TcpConn(f, a, p, t)),
        (flow(), addr(), any::<u16>()).prop_map(|(f, a, p)| Owned::UdpConn(f, a, p)),
        (flow(), payload()).prop_map(|(f, d)| Owned::TcpData(f, tcp_packet(&f, &d))),
        (flow(), payload()).prop_map(|(f, d)| Owned::UdpData(f, udp_packet(&f, &d))),
        (flow(), any::<bool>())
            .prop_map(|(f, tcp)| Owned::Ack(f, if tcp { Protocol::Tcp } else { Protocol::Udp })),
        (flow(), 0u8..3, any::<u8>(), payload()).prop_map(|(f, k, p, b)| {
            let kind = match k {
                0 => ExtensionKind::ConnectionNotice,
                1 => ExtensionKind::ServiceState,
                _ => ExtensionKind::ServerState,
            };
            Owned::Ext(f, kind, Protocol::from(p), b)
        }),
    ]
}

/// Bytes shaped like an ipOS frame (right ethertype, plausible type and
/// protocol, checksum made valid) so that fuzzing reaches the body checks.
fn shaped() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![
            Just(1u8),
            Just(2),
            Just(3),
            Just(0x10),
            Just(0x11),
            Just(0x12),
            any::<u8>()
        ],
        prop_oneof![Just(1u8), Just(2), any::<u8>()],
        proptest::collection::vec(any::<u8>(), 0..260),
        any::<bool>(),
    )
        .prop_map(|(t, p, mut rest, fix)| {
            let mut v = vec![0u8; 30];
            v[12..14].copy_from_slice(&DEFAULT_ETHERTYPE.to_be_bytes());
            v[26] = t;
            v[27] = p;
            if rest.len() >= 20 && rest.len() % 3 == 0 {
                rest[0] = 0x45; // make the inner packet look like IPv4
            }
            v.append(&mut rest);
            if fix {
                let covered = match (t, p) {
                    (1, 1) => 146,
                    (1, _) => 6,
                    (0x10..=0x12, _) => v.len() - 30,
                    _ => 0,
                }
                .min(v.len() - 30);
                let c = checksum::checksum(&[&v[14..30], &v[30..30 + covered]]);
                v[28..30].copy_from_slice(&c.to_be_bytes());
            }
            v
        })
}

proptest! {
    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400), et in any::<u16>()) {
        let _ = Frame::parse(&bytes, et);
        let _ = Frame::parse(&bytes, DEFAULT_ETHERTYPE);
        let mut copy = bytes.clone();
        let _ = emit_data_header(&mut copy, DEFAULT_ETHERTYPE, &MacAddrs {
            dst: EthernetAddress([0; 6]),
            src: EthernetAddress([0; 6]),
        });
    }

    #[test]
    fn shaped_parse_never_panics_and_reemits(bytes in shaped()) {
        if let Ok(frame) = Frame::parse(&bytes, DEFAULT_ETHERTYPE) {
            let mut out = vec![0u8; frame.buffer_len()];
            let n = frame.emit(&mut out, DEFAULT_ETHERTYPE).unwrap();
            prop_assert_eq!(n, out.len());
            prop_assert_eq!(Frame::parse(&out, DEFAULT_ETHERTYPE), Ok(frame));
            // Up to the two ones'-complement zeros in the checksum field.
            let mut expect = bytes[..n].to_vec();
            if expect[28..30] == [0xff, 0xff] && out[28..30] == [0, 0] {
                expect[28..30].copy_from_slice(&[0, 0]);
            }
            prop_assert_eq!(&out[..], &expect[..]);
        }
    }

    #[test]
    fn emit_parse_round_trip(macs in macs(), owned in owned(), et in any::<u16>(), pad in 0usize..64) {
        let frame = Frame { macs, message: owned.message() };
        let mut buf = vec![0u8; frame.buffer_len() + pad];
        let n = frame.emit(&mut buf, et).unwrap();
        prop_assert_eq!(n, frame.buffer_len());
        prop_assert_eq!(Frame::parse(&buf[..n], et), Ok(frame));
        if et != DEFAULT_ETHERTYPE {
            prop_assert_eq!(Frame::parse(&buf[..n], DEFAULT_ETHERTYPE), Err(Error::WrongEtherType));
        }
        // Trailing zero padding is accepted (an extension body grows by it).
        let parsed = Frame::parse(&buf, et).unwrap();
        if let Message::Extension { .. } = frame.message {
            prop_assert_eq!(parsed.message.header(), frame.message.header());
        } else {
            prop_assert_eq!(parsed, frame);
        }
        // Data frames built in place equal those built by copying.
        if let Message::TcpData { packet, .. } | Message::UdpData { packet, .. } = frame.message {
            let mut in_place = vec![0xa5u8; DATA_HEADROOM];
            in_place.extend_from_slice(packet);
            in_place.resize(in_place.len() + pad, 0);
            let m = emit_data_header(&mut in_place, et, &macs).unwrap();
            prop_assert_eq!(&in_place[..m], &buf[..n]);
        }
    }
}
