//! Transmit: packet buffers, the ipOS frames a node originates, and the
//! port's transmit queue.

use super::{Node, PeerId};
use crate::counters::{DropReason, Event};
use crate::migration::Notice;
use crate::port::{PacketBuf, Port};
use ipos_wire::headers::{ETHERNET_LEN, ETHERTYPE_IPV4};
use ipos_wire::trailer::TRAILER_LEN;
use ipos_wire::{emit_ipv4_header, ExtensionKind, Flow, Ipv4Header, MacAddrs, Protocol};
use smoltcp::wire::{EthernetAddress, IpProtocol, Ipv4Address};

/// Largest buffer length a builder is given (a default mbuf's data room).
const BUILD_ROOM: usize = 2048;

impl<P: Port> Node<P> {
    /// Hands a finished frame to the port; an ipOS frame of a farm with a
    /// key gets its authentication trailer here, the one place every frame
    /// passes (so nothing is sealed twice or forgotten).
    pub(crate) fn transmit(&mut self, mut buf: P::Buf) {
        if let Some(auth) = self.auth.as_mut() {
            let d = buf.data();
            if d.len() >= ETHERNET_LEN && u16::from_be_bytes([d[12], d[13]]) == self.id.ethertype {
                let n = d.len();
                if buf.set_len(n + TRAILER_LEN).is_err() || !auth.seal(buf.data_mut()) {
                    return self.counters.drop(DropReason::TxNoBuffer);
                }
            }
        }
        self.counters.inc(Event::TxFrames);
        self.port.send(buf);
    }

    /// A fresh buffer (the spare one first); counted when the pool is empty.
    pub(crate) fn alloc(&mut self) -> Option<P::Buf> {
        let b = self.spare.take().or_else(|| self.port.alloc());
        if b.is_none() {
            self.counters.drop(DropReason::TxNoBuffer);
        }
        b
    }

    /// A fresh buffer set to its largest length (at most 2048 bytes).
    pub(crate) fn alloc_full(&mut self) -> Option<P::Buf> {
        let mut b = self.alloc()?;
        let room = b.len() + b.tailroom();
        b.set_len(room.min(BUILD_ROOM)).ok()?;
        Some(b)
    }

    /// The IPv4 identification of the next packet this node originates.
    pub(crate) fn next_ident(&mut self) -> u16 {
        self.ip_ident = self.ip_ident.wrapping_add(1);
        self.ip_ident
    }

    /// Writes our Ethernet header (to `dst`) at the start of `d` (at least 14 bytes).
    pub(crate) fn write_eth(&self, d: &mut [u8], dst: EthernetAddress, ethertype: u16) {
        let _ = ipos_wire::emit_ethernet_header(d, dst, self.id.mac, ethertype);
    }

    /// Writes our Ethernet header (to `mac`) and an IPv4 header (`src` to
    /// `dst`, TCP, `tcp_len` bytes of segment) in front of the TCP segment at
    /// offset 34 of `d`: every TCP segment a node sends to a client.
    pub(crate) fn wrap_tcp(
        &mut self,
        d: &mut [u8],
        mac: EthernetAddress,
        src: Ipv4Address,
        dst: Ipv4Address,
        tcp_len: usize,
    ) {
        let ident = self.next_ident();
        self.write_eth(d, mac, ETHERTYPE_IPV4);
        let ip = Ipv4Header {
            src,
            dst,
            protocol: IpProtocol::Tcp,
            payload_len: tcp_len,
            ident,
        };
        let _ = emit_ipv4_header(&mut d[ETHERNET_LEN..], &ip);
    }

    /// Our MACs towards `to`.
    pub(crate) fn macs_to(&self, to: EthernetAddress) -> MacAddrs {
        MacAddrs {
            dst: to,
            src: self.id.mac,
        }
    }

    /// Builds a frame with `emit` (given the buffer and the EtherType) in a
    /// fresh buffer and sends it, counting `ev`; false when it could not.
    pub(crate) fn send_built(
        &mut self,
        ev: Event,
        emit: impl FnOnce(&mut [u8], u16) -> ipos_wire::Result<usize>,
    ) -> bool {
        let Some(mut buf) = self.alloc_full() else {
            return false;
        };
        match emit(buf.data_mut(), self.id.ethertype) {
            Ok(n) if buf.set_len(n).is_ok() => {
                self.counters.inc(ev);
                self.transmit(buf);
                true
            }
            _ => {
                self.counters.drop(DropReason::TxNoBuffer);
                false
            }
        }
    }

    /// A migration acknowledgement (target to source): "installed".
    pub(crate) fn send_ack(&mut self, flow: &Flow, to: EthernetAddress, protocol: Protocol) {
        self.send_type3(Event::MigrationAcksSent, flow, to, protocol);
    }

    /// A commit (source to target): "yours now, talk to the client". On the
    /// wire it is an acknowledgement in the other direction.
    pub(crate) fn send_commit(&mut self, flow: &Flow, to: EthernetAddress) {
        self.send_type3(Event::MigrationCommitsSent, flow, to, Protocol::Tcp);
    }

    fn send_type3(&mut self, ev: Event, flow: &Flow, to: EthernetAddress, protocol: Protocol) {
        let macs = self.macs_to(to);
        self.send_built(ev, |b, et| {
            ipos_wire::emit_ack(b, et, &macs, flow, protocol)
        });
    }

    /// A connection notice about `flow` to node `to`.
    pub(crate) fn send_notice(&mut self, flow: &Flow, to: PeerId, notice: Notice) {
        let macs = self.macs_to(self.peers.mac(to));
        self.send_built(Event::NoticesSent, |b, et| {
            ipos_wire::emit_extension(
                b,
                et,
                &macs,
                flow,
                ExtensionKind::ConnectionNotice,
                Protocol::Tcp,
                &notice.emit(),
            )
        });
    }

    /// The abort notice: "I kept this connection, forget your copy" (a
    /// source to a target it gave up on).
    pub(crate) fn send_abort(&mut self, flow: &Flow, target: PeerId) {
        let notice = Notice::owner(self.id.ip, flow.dst_port);
        self.send_notice(flow, target, notice);
    }
}
