//! ipOS frames: accepted only from farm members, their authentication
//! trailer checked when the farm has a key, parsed by `ipos-wire`, and
//! handed to the role they concern. Data frames are unwrapped in place: the
//! client packet inside (whose IPv4 header checksum is verified here) goes
//! back to the TCP or UDP room as a tunnel arrival.

use super::lanes::Stage;
use super::{Node, Via};
use crate::auth::AuthError;
use crate::counters::{DropReason, Event};
use crate::migration::Notice;
use crate::port::{PacketBuf, Port};
use ipos_wire::{ExtensionKind, Message, Protocol, DATA_HEADROOM};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, Ipv4Packet};

/// The drop counter of a frame that failed the authentication check.
fn auth_drop(e: AuthError) -> DropReason {
    match e {
        AuthError::NoTrailer => DropReason::AuthNoTrailer,
        AuthError::WrongMode => DropReason::AuthWrongMode,
        AuthError::UnknownKey => DropReason::AuthUnknownKey,
        AuthError::BadTag => DropReason::AuthBadTag,
        AuthError::Replayed => DropReason::AuthReplayed,
        AuthError::OldEpoch => DropReason::AuthOldEpoch,
    }
}

impl<P: Port> Node<P> {
    /// An ipOS frame: from the wire (`Stage::Wire`), for this lane to open
    /// (`Sealed`), or opened by another lane (`Opened`, `Copy`).
    pub(crate) fn handle_ipos(&mut self, now: Instant, mut buf: P::Buf, stage: Stage) {
        let src_mac = EthernetAddress::from_bytes(&buf.data()[6..12]);
        // Only the farm's nodes speak ipOS to us: a frame from any other MAC
        // is spoofed or misdirected.
        let Some(from) = self.peers.by_mac(src_mac) else {
            return self.counters.drop(DropReason::IposUnknownSender);
        };
        let sealed = matches!(stage, Stage::Wire | Stage::Sealed);
        // A node on several lanes: lane 0 checks every seal, with the
        // node's one set of replay windows (see `lanes`).
        if stage == Stage::Wire
            && self.auth.is_some()
            && self.lanes().is_some_and(|(me, _)| me != 0)
        {
            return self.hop(0, buf, Stage::Sealed);
        }
        // A farm with a key: the trailer is checked (and cut) before anything
        // else of the frame is read.
        if let (true, Some(auth)) = (sealed, self.auth.as_mut()) {
            match auth.open(from.index(), buf.data_mut()) {
                Ok(opened) => {
                    if buf.set_len(opened.len).is_err() {
                        return self.counters.drop(DropReason::IposBadLength);
                    }
                    if opened.restarted {
                        self.on_sealed_epoch(from, opened.epoch, true);
                    }
                }
                Err(e) => return self.counters.drop(auth_drop(e)),
            }
        }
        let frame = match ipos_wire::Frame::parse(buf.data(), self.id.ethertype) {
            Ok(f) => f,
            Err(e) => return self.counters.drop(DropReason::from(&e)),
        };
        // A node on several lanes: the lane of the connection handles it;
        // every lane takes adverts.
        if sealed {
            match self.other_lane_of_message(&frame.message) {
                Some(Some(l)) => return self.hop(l, buf, Stage::Opened),
                Some(None) => self.copy_to_lanes(buf.data()),
                None => {}
            }
        }
        match frame.message {
            Message::TcpConnection {
                flow,
                server_addr,
                tcb,
                ..
            } => {
                self.counters.inc(Event::IposRxConnection);
                let tcb = *tcb;
                self.on_connection_packet(now, flow, server_addr, &tcb, src_mac);
            }
            Message::UdpConnection {
                flow, server_addr, ..
            } => {
                self.counters.inc(Event::IposRxConnection);
                self.on_udp_connection(now, flow, server_addr, src_mac);
            }
            Message::TcpData { packet, .. } | Message::UdpData { packet, .. } => {
                self.counters.inc(Event::IposRxData);
                let protocol = frame.message.protocol();
                if !Ipv4Packet::new_unchecked(packet).verify_checksum() {
                    return self.counters.drop(DropReason::IposBadInner);
                }
                let len = DATA_HEADROOM + packet.len();
                if len < buf.len() && buf.set_len(len).is_err() {
                    return self.counters.drop(DropReason::IposBadLength);
                }
                match protocol {
                    Protocol::Tcp => self.handle_tcp(now, buf, Via::Tunnel { from }),
                    _ => self.handle_udp(now, buf, Via::Tunnel { from }),
                }
            }
            Message::Ack { flow, protocol } => {
                self.counters.inc(Event::IposRxAck);
                match protocol {
                    Protocol::Udp => self.on_udp_ack(flow, src_mac),
                    _ => self.on_ack(now, flow, src_mac),
                }
            }
            Message::Extension {
                flow, kind, body, ..
            } => {
                self.counters.inc(Event::IposRxExtension);
                match kind {
                    ExtensionKind::ServerState => self.on_advert(now, body, from),
                    ExtensionKind::ConnectionNotice => match Notice::parse(body) {
                        Some(n) => self.on_notice(now, flow, n, src_mac),
                        None => self.counters.drop(DropReason::NoticeMalformed),
                    },
                    ExtensionKind::ServiceState => self.on_service_state(now, flow, body, src_mac),
                }
            }
        }
    }
}
