//! The forwarder role: the node that receives a client's packets for an
//! endpoint that lives elsewhere (FIG. 12's forward table).
//!
//! Every such packet is wrapped in an ipOS data frame to the owner, in the
//! same buffer (the 30-byte ipOS head goes into the headroom). The owner's
//! notices keep the entry right: a move points it at the new owner, a close
//! removes it; an owner that receives a data frame for a flow it does not
//! know says so (its close notice was lost, or it restarted): "closed" for a
//! SYN, "reset" for any other segment.
//!
//! An entry whose target went down or restarted (its epoch moved on, see
//! `src/node/peers.rs`) points at endpoints that are gone: it is removed at
//! the client's next packet, which then finds no connection here and gets a
//! RST, and the forward table's sweep removes the idle clients' entries.
//! Neither is remembered as closed: a client that still believes in its
//! connection must hear that it is gone, not silence.

use crate::counters::{DropReason, Event};
use crate::migration::Notice;
use crate::node::Node;
use crate::port::{PacketBuf, Port};
use crate::tables::{ForwardEntry, ForwardKey};
use ipos_wire::headers::ETHERNET_LEN;
use ipos_wire::{Flow, DATA_HEADROOM};
use smoltcp::time::Instant;
use smoltcp::wire::EthernetAddress;

impl<P: Port> Node<P> {
    /// The forward entry a client TCP packet of `flow` follows, if any
    /// (marked used). A SYN follows it too: the owner knows whether the port
    /// is being reused for a new connection (RFC 6191) or the SYN belongs to
    /// the live one (RFC 5961), and says "closed" if it has forgotten it.
    pub(crate) fn forward_entry_for(&mut self, now: Instant, flow: &Flow) -> Option<ForwardEntry> {
        if self.forward.is_empty() {
            return None;
        }
        let key = ForwardKey::of(flow);
        let entry = self.forward.lookup(&key, now)?;
        if !self.peers.is_current(entry.target_mac, entry.target_epoch) {
            // Its owner went down or restarted: the endpoint is gone.
            self.forward.remove(&key);
            self.counters.inc(Event::ForwardTargetDown);
            return None;
        }
        (entry.target_port == flow.dst_port).then_some(entry)
    }

    /// Advances the forward table's sweep (after a peer went down or
    /// restarted) by at most `budget` entries, removing those whose target is
    /// gone.
    pub(crate) fn sweep_forward(&mut self, budget: usize) {
        if !self.forward.sweeping() {
            return;
        }
        let peers = &self.peers;
        let removed = self
            .forward
            .sweep(budget, |e| !peers.is_current(e.target_mac, e.target_epoch));
        self.counters.add(Event::ForwardTargetDown, removed as u64);
    }

    /// Wraps a client packet (IPv4 header at `off`) in an ipOS data frame to
    /// the endpoint's owner, in the same buffer, counting `ev`.
    pub(crate) fn forward_packet(
        &mut self,
        mut buf: P::Buf,
        off: usize,
        entry: &ForwardEntry,
        ev: Event,
    ) {
        if off < DATA_HEADROOM && buf.prepend(DATA_HEADROOM - off).is_err() {
            return self.counters.drop(DropReason::TxNoBuffer);
        }
        let macs = self.macs_to(entry.target_mac);
        match ipos_wire::emit_data_header(buf.data_mut(), self.id.ethertype, &macs) {
            Ok(len) => {
                let trailer = usize::from(self.opts.farm_trailer);
                if len - ETHERNET_LEN + trailer > usize::from(self.opts.farm_mtu) {
                    // The farm segment would drop it: say so here instead.
                    return self.counters.drop(DropReason::TunnelTooBig);
                }
                if len < buf.len() && buf.set_len(len).is_err() {
                    return self.counters.drop(DropReason::TxNoBuffer);
                }
                self.counters.inc(ev);
                self.transmit(buf);
            }
            Err(e) => self.counters.drop(DropReason::from(&e)),
        }
    }

    /// A connection notice: for a forwarder, the owner moved it or closed it;
    /// for a target, its source kept it.
    pub(crate) fn on_notice(
        &mut self,
        now: Instant,
        flow: Flow,
        n: Notice,
        src_mac: EthernetAddress,
    ) {
        let fkey = ForwardKey::of(&flow);
        let Some(e) = self.forward.get(&fkey) else {
            // Not a forwarder of it: maybe a source that gave up on moving it here.
            if !self.on_abort(&flow, n.owner_ip, src_mac) {
                self.counters.drop(DropReason::IposUnexpected);
            }
            return;
        };
        // Only the connection's current owner may say where it went or that it ended.
        if e.target_mac != src_mac {
            return self.counters.drop(DropReason::NoticeNotOwner);
        }
        if n.is_closed() {
            self.forward.remove(&fkey);
            if n.is_reset() {
                // The owner does not know it: the client's next segment
                // finds nothing here and gets a RST.
                return self.counters.inc(Event::ForwardReset);
            }
            // Late duplicates the client still sends are dropped quietly here.
            self.remember_closed(flow, now);
            return self.counters.inc(Event::ForwardClosed);
        }
        let Some(id) = self.peers.by_ip(n.owner_ip) else {
            return self.counters.drop(DropReason::NoticeMalformed);
        };
        let p = self.peers.addr(id);
        if p.ip == self.id.ip {
            return self.counters.drop(DropReason::NoticeMalformed);
        }
        let moved = ForwardEntry {
            target_ip: p.ip,
            target_port: n.owner_port,
            target_mac: p.mac,
            target_epoch: self.peers.epoch(id),
            last_used: e.last_used,
        };
        // The entry exists: replacing it cannot fail, and keeps its idle timer.
        let _ = self.forward.insert(fkey, moved, now);
        self.counters.inc(Event::ForwardMoved);
    }
}
