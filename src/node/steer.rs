//! Steering between the lanes of one node (see [`super::lanes`]): which lane
//! a frame belongs to, the hop onto that lane's ring, the copies every lane
//! gets, and the hops a lane finds on its own ring.

use super::lanes::{lane_of_flow, Hop, Stage};
use super::{Node, PeerId};
use crate::counters::{DropReason, Event};
use crate::port::{PacketBuf, Port, BURST};
use ipos_wire::{ExtensionKind, Flow, Message};
use smoltcp::time::Instant;

impl<P: Port> Node<P> {
    /// This lane and the lane count, when the node has more than one.
    pub(crate) fn lanes(&self) -> Option<(usize, usize)> {
        self.lane.as_ref().map(|l| (l.index(), l.count()))
    }

    /// Hands `buf` to lane `to`, or drops it (counted) when that lane's ring is full.
    pub(crate) fn hop(&mut self, to: usize, buf: P::Buf, stage: Stage) {
        let Some(lane) = self.lane.as_ref() else {
            return;
        };
        match lane.push(to, Hop::Frame(buf, stage)) {
            Ok(()) => self.counters.inc(Event::LaneHops),
            Err(_) => self.counters.drop(DropReason::LaneRingFull),
        }
    }

    /// Gives every other lane a copy of `frame` (an advert, an ARP frame).
    pub(crate) fn copy_to_lanes(&mut self, frame: &[u8]) {
        let Some((me, n)) = self.lanes() else { return };
        for to in (0..n).filter(|&l| l != me) {
            let Some(mut b) = self.alloc() else { return };
            if b.set_len(frame.len()).is_err() {
                return;
            }
            b.data_mut().copy_from_slice(frame);
            let pushed = self
                .lane
                .as_ref()
                .is_some_and(|lane| lane.push(to, Hop::Frame(b, Stage::Copy)).is_ok());
            if pushed {
                self.counters.inc(Event::LaneCopies);
            } else {
                self.counters.drop(DropReason::LaneRingFull);
            }
        }
    }

    /// The lane of a client packet whose IPv4 header starts `ip`, when it
    /// is another than this one (None: handle it here, malformed included).
    pub(crate) fn other_lane_of_packet(&self, ip: &[u8]) -> Option<usize> {
        let (me, n) = self.lanes()?;
        let l = lane_of_packet(ip, n)?;
        (l != me).then_some(l)
    }

    /// Where an opened ipOS message goes: `Some(None)` to every lane (an
    /// advert), `Some(Some(l))` to another lane `l`, None: here.
    pub(crate) fn other_lane_of_message(&self, msg: &Message) -> Option<Option<usize>> {
        let (me, n) = self.lanes()?;
        let l = match msg {
            Message::TcpConnection { flow, .. }
            | Message::UdpConnection { flow, .. }
            | Message::Ack { flow, .. } => lane_of_flow(flow, n),
            Message::Extension {
                kind: ExtensionKind::ServerState,
                ..
            } => return Some(None),
            Message::Extension { flow, .. } => lane_of_flow(flow, n),
            Message::TcpData { packet, .. } | Message::UdpData { packet, .. } => {
                lane_of_packet(packet, n)?
            }
        };
        (l != me).then_some(Some(l))
    }

    /// A peer's new epoch, found in its sealed frames by this lane
    /// (`found_here`) or told by another: acted on once per lane and epoch.
    pub(crate) fn on_sealed_epoch(&mut self, from: PeerId, epoch: u64, found_here: bool) {
        if let Some(lane) = self.lane.as_mut() {
            let i = from.index();
            if lane.peer_epochs.len() <= i {
                lane.peer_epochs.resize(i + 1, 0);
            }
            if lane.peer_epochs[i] >= epoch {
                return;
            }
            lane.peer_epochs[i] = epoch;
            if found_here {
                let (me, n) = (lane.index(), lane.count());
                for to in (0..n).filter(|&l| l != me) {
                    if lane.push(to, Hop::PeerEpoch { peer: from, epoch }).is_err() {
                        self.counters.drop(DropReason::LaneRingFull);
                    }
                }
            }
        }
        if found_here {
            self.counters.inc(Event::PeerEpochs);
        }
        self.on_peer_epoch(from);
    }

    /// Handles up to a burst of what other lanes handed this one; returns
    /// the number of frames.
    pub(crate) fn handle_hops(&mut self, now: Instant) -> usize {
        let mut frames = 0;
        for _ in 0..BURST {
            let Some(hop) = self.lane.as_ref().and_then(|l| l.pop()) else {
                break;
            };
            match hop {
                Hop::Frame(buf, stage) => {
                    frames += 1;
                    self.handle_frame(now, buf, stage);
                }
                Hop::PeerEpoch { peer, epoch } => self.on_sealed_epoch(peer, epoch, false),
            }
        }
        frames
    }
}

/// The lane among `n` of the IPv4 TCP or UDP packet whose header starts `ip`.
fn lane_of_packet(ip: &[u8], n: usize) -> Option<usize> {
    let ihl = usize::from(*ip.first()? & 0x0f) * 4;
    if ihl < 20 || ip.len() < ihl + 4 {
        return None;
    }
    let addr = |at: usize| [ip[at], ip[at + 1], ip[at + 2], ip[at + 3]];
    let port = |at: usize| u16::from_be_bytes([ip[at], ip[at + 1]]);
    let flow = Flow {
        src_addr: addr(12).into(),
        src_port: port(ihl),
        dst_addr: addr(16).into(),
        dst_port: port(ihl + 2),
    };
    Some(lane_of_flow(&flow, n))
}
