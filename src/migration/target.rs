//! The target role: the node an endpoint moves to.
//!
//! A connection packet opens a [`Reassembly`] of the carried bytes and of
//! the service-state record it announces (or imports at once when nothing
//! else is to come); once every byte is in, the
//! endpoint is imported (FIG. 12's *forward-connect* entry, fed by the
//! forwarder named in the TCB) and acknowledged. It then waits, silent, for
//! the source's commit, acknowledging again on the shared retry schedule; a
//! source that kept the connection says so with an abort notice, and a
//! target that hears nothing drops its copy after twice the source's tries.

use super::clamp::clamp_imported;
use super::{Notice, Reassembly, Retry};
use crate::counters::{DropReason, Event};
use crate::node::{Conn, Node, Origin, PeerId, Phase, Timer};
use crate::port::{PacketBuf, Port};
use crate::tables::ForwardKey;
use ipos_http::HttpConn;
use ipos_tcp::{Endpoint, State, Tcb};
use ipos_wire::{Flow, Protocol, DATA_HEADROOM, TCB_LEN};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, Ipv4Address, Ipv4Packet, TcpPacket};

/// A target's wait for its source's commit.
pub(crate) struct AwaitCommit {
    pub source: PeerId,
    pub retry: Retry,
    /// The connection moved at a later request (it has sent data already).
    pub later: bool,
}

impl<P: Port> Node<P> {
    /// A TCP connection packet: an endpoint moves here.
    pub(crate) fn on_connection_packet(
        &mut self,
        now: Instant,
        flow: Flow,
        server_addr: Ipv4Address,
        tcb: &[u8; TCB_LEN],
        src_mac: EthernetAddress,
    ) {
        if server_addr != self.id.ip {
            return self.counters.drop(DropReason::IposUnexpected);
        }
        if self.is_draining() {
            return self.counters.drop(DropReason::Draining);
        }
        // Only connections to the farm's VIP on a port it serves ever move.
        if Some(flow.dst_addr) != self.id.farm_vip
            || !self.id.service_ports.contains(&flow.dst_port)
        {
            return self.counters.drop(DropReason::ConnNotOurService);
        }
        // The endpoint comes (back) here: stop forwarding this client elsewhere.
        let fkey = ForwardKey::of(&flow);
        if self
            .forward
            .get(&fkey)
            .is_some_and(|e| e.target_port == flow.dst_port)
        {
            self.forward.remove(&fkey);
            self.counters.inc(Event::ForwardMoved);
        }
        let Ok(mut tcb) = Tcb::parse(tcb) else {
            return self.counters.drop(DropReason::IposBadTcb);
        };
        match clamp_imported(&mut tcb, &self.tcp_movable, self.tcp_movable.mss) {
            Ok(false) => {}
            Ok(true) => self.counters.inc(Event::TcbClamped),
            Err(_) => return self.counters.drop(DropReason::IposBadTcb),
        }
        if !self.make_room(&flow, tcb.irs, src_mac) {
            return;
        }
        if self
            .pending
            .get(&flow)
            .is_some_and(|r| r.tcb.irs == tcb.irs)
        {
            return; // a retry while the carried bytes are still coming
        }
        let Some(r) = Reassembly::new(tcb, src_mac, now) else {
            return self.counters.drop(DropReason::IposBadTcb);
        };
        if r.is_complete() {
            return self.install(now, flow, r);
        }
        let (irs, at) = (r.tcb.irs, now + self.opts.pending_timeout);
        match self.pending.insert(flow, r) {
            Ok(_) => self.timers.arm(at, Timer::Pending { flow, irs }),
            Err(_) => self.counters.drop(DropReason::PendingFull),
        }
    }

    /// Clears the way for an import of `flow` (incarnation `irs`) from
    /// `src_mac`: true when the table has no connection on those ports, or
    /// had one that is over (it goes). Otherwise false, and the frame is
    /// answered (the same incarnation, already imported: the acknowledgement
    /// was lost, so it is sent again) or dropped and counted.
    fn make_room(&mut self, flow: &Flow, irs: u32, src_mac: EthernetAddress) -> bool {
        let Some(slot) = self.conns.find(flow) else {
            return true;
        };
        let c = self.conns.get(slot).expect("slot from index");
        if c.ep.irs() == irs {
            // Already ours: the acknowledgement was lost. Say it again.
            if c.origin.is_imported() && !matches!(c.phase(), Phase::Exporting(_)) {
                self.send_ack(flow, src_mac, Protocol::Tcp);
            } else {
                self.counters.drop(DropReason::IposUnexpected);
            }
            return false;
        }
        // A new incarnation on the same ports: the old one must be over.
        if !matches!(c.ep.state(), State::TimeWait | State::Closed) {
            self.counters.drop(DropReason::IposUnexpected);
            return false;
        }
        self.remove_conn(slot);
        self.counters.inc(Event::TcpTimeWaitReused);
        true
    }

    /// A data frame from `from` for a flow with no connection here: a carried
    /// request chunk of an incoming move, or a flow this node does not know
    /// (its close notice was lost, or the node restarted): then `from` is told,
    /// so that it stops forwarding into the void, unless it is a late
    /// duplicate of a connection that just closed here (no SYN). For a SYN
    /// (a client port reused) the notice says "closed": the client's next SYN
    /// is the forwarder's to accept. For any other segment it says
    /// [`Notice::RESET`]: the client believes in a connection that is gone
    /// here, and its next segment gets a RST from the forwarder.
    pub(crate) fn on_unknown_tunnelled(
        &mut self,
        now: Instant,
        flow: &Flow,
        from: PeerId,
        buf: P::Buf,
        syn: bool,
    ) {
        let Some(r) = self.pending.get_mut(flow) else {
            if !syn && self.closed.contains_key(flow) {
                // Forwarded before our close notice reached the forwarder.
                return self.counters.drop(DropReason::TcpAfterClose);
            }
            self.counters.drop(DropReason::ForwardNoTarget);
            let notice = if syn { Notice::CLOSED } else { Notice::RESET };
            return self.send_notice(flow, from, notice);
        };
        let ip = Ipv4Packet::new_unchecked(&buf.data()[DATA_HEADROOM..]);
        let tcp = TcpPacket::new_unchecked(ip.payload());
        if r.add(tcp.seq_number().0 as u32, tcp.payload()).is_err() {
            return self.counters.drop(DropReason::BadChunk);
        }
        if r.is_complete() {
            let r = self.pending.remove(flow).expect("present");
            self.install(now, *flow, r);
        }
    }

    /// A service-state record from `src_mac`: the rest of an incoming move.
    pub(crate) fn on_service_state(
        &mut self,
        now: Instant,
        flow: Flow,
        record: &[u8],
        src_mac: EthernetAddress,
    ) {
        let Some(r) = self.pending.get_mut(&flow) else {
            // Imported already, and the source sends again because our
            // acknowledgement was lost: the connection packet says it again.
            if self.conns.find(&flow).is_some_and(|slot| {
                self.conns
                    .get(slot)
                    .is_some_and(|c| matches!(c.phase(), Phase::AwaitingCommit(_)))
            }) {
                return self.counters.inc(Event::ServiceStatesDuplicate);
            }
            return self.counters.drop(DropReason::IposUnexpected);
        };
        if r.source_mac != src_mac || r.add_service(record).is_err() {
            return self.counters.drop(DropReason::ServiceStateMalformed);
        }
        if r.is_complete() {
            let r = self.pending.remove(&flow).expect("present");
            self.install(now, flow, r);
        }
    }

    /// Imports an endpoint whose carried bytes (and service state) are all
    /// in, and acknowledges it. With a service-state record, the application
    /// is rebuilt from it and regenerates the send bytes.
    fn install(&mut self, now: Instant, flow: Flow, r: Reassembly) {
        // While the carried bytes were coming, the ports may have got a
        // connection of their own (the client reused them, or a retry of this
        // move completed first): the table holds one connection per flow.
        if !self.make_room(&flow, r.tcb.irs, r.source_mac) {
            return;
        }
        let snd_len = r.tcb.snd_data_len as usize;
        let app = if r.service().is_empty() {
            None
        } else {
            let Ok(p) = super::service_state::parse_http(r.service()) else {
                return self.counters.drop(DropReason::ServiceStateMalformed);
            };
            if p.in_flight() != snd_len || snd_len > self.opts.tcp.snd_buf {
                return self.counters.drop(DropReason::ServiceStateMalformed);
            }
            // One scratch buffer per node, grown to the send buffer once.
            if self.regen.len() < snd_len {
                self.regen.resize(self.opts.tcp.snd_buf, 0);
            }
            match HttpConn::resume(&self.service, &p, &mut self.regen[..snd_len]) {
                Ok(app) => Some(app),
                Err(_) => return self.counters.drop(DropReason::ServiceStateMalformed),
            }
        };
        // Send bytes come only from a service state.
        let snd = if app.is_some() {
            &self.regen[..snd_len]
        } else {
            &[][..]
        };
        let ep = match Endpoint::import(&self.opts.tcp, &r.tcb, flow, snd, r.data(), now) {
            Ok(ep) => ep,
            Err(_) => return self.counters.drop(DropReason::IposBadTcb),
        };
        let forwarder = self.peers.by_ip(r.forwarder_ip).unwrap_or(self.peers.me());
        let source = self.peers.by_mac(r.source_mac);
        // Sent more than its SYN: it was answering requests before this move.
        let later = r.tcb.snd_max.wrapping_sub(r.tcb.iss) > 1;
        let phase = match source {
            Some(source) => Phase::AwaitingCommit(AwaitCommit {
                source,
                retry: Retry::first_try(now, self.opts.migrate_retry),
                later,
            }),
            None => self.after_commit(later),
        };
        let origin = Origin::Imported { forwarder };
        let peer_mac = EthernetAddress(r.tcb.link_addr);
        let mut conn = Conn::new(ep, now, peer_mac, phase, origin, r.tcb.moves);
        if let Some(app) = app {
            conn.app = crate::node::App::Http(app);
        }
        // Moved at a later request: that request is served here.
        conn.placed = later;
        match self.insert_conn(flow, conn) {
            Ok(slot) => {
                self.counters.inc(Event::MigrationsReceived);
                self.send_ack(&flow, r.source_mac, Protocol::Tcp);
                if source.is_none() {
                    self.service(now, slot);
                }
                self.arm_conn(slot, now);
            }
            Err(_) => self.counters.drop(DropReason::TcpTableFull),
        }
    }

    /// The phase of an imported connection once committed. At its first
    /// request it may move on (by an explicit rule only) when this node moves
    /// connections at all. Moved at a later request, it is served here: this
    /// node answers the request it came for without asking its own policy
    /// (see [`super::rehome`]).
    fn after_commit<B>(&self, later: bool) -> Phase<B> {
        if self.opts.migration && !later {
            Phase::AwaitingHead
        } else {
            Phase::Serving
        }
    }

    /// The source's commit for the connection in `slot`.
    pub(crate) fn on_commit(&mut self, now: Instant, slot: u32, src_mac: EthernetAddress) {
        let Some(conn) = self.conns.get(slot) else {
            return;
        };
        let Phase::AwaitingCommit(wait) = conn.phase() else {
            return;
        };
        if self.peers.mac(wait.source) != src_mac {
            return self.counters.drop(DropReason::IposUnexpected);
        }
        let next = self.after_commit(wait.later);
        let conn = self.conns.get_mut(slot).expect("slot checked above");
        conn.set_phase(next, &mut self.serving);
        self.counters.inc(Event::MigrationsCommitted);
        self.service(now, slot);
    }

    /// No commit yet: acknowledge again, or, after as many tries as a source
    /// makes (and then as many again), drop the copy silently: the source
    /// must have served the connection itself.
    pub(crate) fn await_commit(&mut self, now: Instant, slot: u32) {
        let base = self.opts.migrate_retry;
        let limit = self.opts.migrate_tries * 2;
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        let Phase::AwaitingCommit(wait) = conn.phase_mut() else {
            return;
        };
        if wait.retry.tries() >= limit {
            self.remove_conn(slot);
            self.counters.inc(Event::MigrationsAborted);
            return;
        }
        wait.retry.record_try(now, base);
        let to = self.peers.mac(wait.source);
        let flow = conn.ep.flow();
        self.send_ack(&flow, to, Protocol::Tcp);
    }

    /// An abort notice from the source of an incoming move ("I kept it"):
    /// drop the copy this node holds of it, the carried bytes still coming
    /// in or the imported endpoint still waiting for this source's commit.
    /// A connection already committed (served here) is not that move's: a
    /// source that sent the commit never gives up afterwards, so the notice
    /// is a stale one (another move of the same client port) and is
    /// refused (`notice_not_owner`), as is one from another node than the
    /// move's source. False when this node holds nothing of the flow (the
    /// caller counts the notice as unexpected).
    pub(crate) fn on_abort(
        &mut self,
        flow: &Flow,
        owner: Ipv4Address,
        src_mac: EthernetAddress,
    ) -> bool {
        let Some(source) = self.peers.by_mac(src_mac) else {
            return false;
        };
        if self.peers.ip(source) != owner {
            return false;
        }
        // Only the move's own source may call it off, and only before its commit.
        if let Some(r) = self.pending.get(flow) {
            if r.source_mac != src_mac {
                self.counters.drop(DropReason::NoticeNotOwner);
                return true;
            }
            self.pending.remove(flow);
            return true;
        }
        let Some(slot) = self.conns.find(flow) else {
            return false;
        };
        let from_source = self
            .conns
            .get(slot)
            .is_some_and(|c| matches!(c.phase(), Phase::AwaitingCommit(w) if w.source == source));
        if !from_source {
            self.counters.drop(DropReason::NoticeNotOwner);
            return true;
        }
        self.remove_conn(slot);
        self.counters.inc(Event::MigrationsAborted);
        true
    }
}
