//! The source role: the node that moves an endpoint away.
//!
//! Once a connection's request head is in, the policy says where it should
//! live ([`Node::decide`]); if elsewhere, the source freezes the endpoint,
//! exports its TCB into a connection packet, sends the service-state record
//! after it when a response is in progress ([`super::service_state`]), then
//! the unconsumed request bytes as rebuilt client segments, and holds the
//! client packets that arrive meanwhile. On the target's acknowledgement it installs the
//! forward entry, commits, forwards what it held, and sends the bytes the client
//! sent out of order (SACKed, not carried by the TCB) as rebuilt client segments,
//! so that the target does not renege on them; after its retries, or
//! when the forward entry cannot be installed, it keeps the connection and
//! tells the target to drop its copy.

use super::service_state::MAX_SERVICE_STATE_LEN;
use super::{Retry, CHUNK, MAX_CARRIED, MAX_MOVES};
use crate::counters::{DropReason, Event};
use crate::node::{Node, Origin, PeerId, Phase, ServingCount};
use crate::port::{PacketBuf, Port};
use crate::tables::{ForwardEntry, ForwardKey};
use ipos_http::HeadWait;
use ipos_policy::{Decision, Reason, RequestInfo};
use ipos_tcp::{State, Tcb};
use ipos_wire::{ExtensionKind, Flow, Protocol, DATA_HEADROOM, TCB_LEN};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, Ipv4Address, Ipv4Packet};

/// Where a rebuilt client segment sits: its sequence number, the ACK and the
/// (unscaled) window it carries.
#[derive(Clone, Copy)]
struct Rebuilt {
    seq: u32,
    ack: u32,
    window: u16,
}

/// A move in progress at its source (FIG. 12's *temporary* entry).
pub(crate) struct Export<B> {
    pub target: PeerId,
    /// The TCB as sent (the same bytes on every retry).
    pub tcb: [u8; TCB_LEN],
    pub retry: Retry,
    /// Client packets that arrived meanwhile, with the offset of their IPv4 header.
    pub held: Vec<(B, usize)>,
    /// The service-state record sent after the connection packet (empty:
    /// none; see [`super::service_state`]).
    pub service: Vec<u8>,
    /// When the move was decided (for the handoff histogram).
    pub started: Instant,
}

impl<P: Port> Node<P> {
    /// Asks the policy where a connection awaiting its request head should
    /// live. Returns the target when it is not here; the connection is
    /// `Serving` unless its head is still incomplete.
    pub(crate) fn decide(&mut self, now: Instant, slot: u32) -> Option<PeerId> {
        let conn = self.conns.get(slot)?;
        let budget = MAX_MOVES.min(self.opts.max_moves);
        let max_head = self.service.max_head_bytes();
        let mut scratch = std::mem::take(&mut self.head_scratch);
        // The policy's answer, or why there is none (read-only: the head
        // borrows the receive buffer, or `scratch` where it wraps).
        let bytes = super::head::contiguous(conn.ep.unconsumed(), max_head, &mut scratch);
        let asked = match ipos_http::peek_request(bytes) {
            // Wait for the rest of the head, unless it can never come.
            Ok(None) => Err(conn.ep.recv_available() >= max_head || conn.ep.peer_fin_received()),
            Err(_) => Err(true),
            // Enough: policies that disagree must not bounce a connection forever.
            Ok(Some(_)) if conn.moves >= budget => {
                self.counters.inc(Event::DecisionLocal);
                Err(true)
            }
            Ok(Some(head)) => {
                let flow = conn.ep.flow();
                let cookie = head.cookie(self.view.cookie_name());
                Ok(self.ask_policy(now, &flow, head.path().unwrap_or("/"), cookie))
            }
        };
        self.head_scratch = scratch;
        let conn = self.conns.get_mut(slot)?;
        let d = match asked {
            Ok(d) => d,
            Err(settle) => {
                if settle {
                    conn.settle(&mut self.serving);
                }
                return None;
            }
        };
        let imported = conn.origin.is_imported();
        // Served here from now on, unless the move below starts.
        let before = self.serving.get();
        conn.settle(&mut self.serving);
        if self.serving.get() > before {
            self.note_placed(self.id.ip, 1);
        }
        // A target moves a connection on only for an explicit rule (URL or
        // cookie), never for load: that could bounce it between nodes.
        let stay = d.target == self.id.ip
            || (imported && !matches!(d.reason, Reason::Url | Reason::Cookie));
        let target = if stay {
            None
        } else {
            self.peers.by_ip(d.target)
        };
        self.counters.inc(match (target, d.reason) {
            (None, _) | (_, Reason::Local) => Event::DecisionLocal,
            (_, Reason::Url) => Event::DecisionUrl,
            (_, Reason::Cookie) => Event::DecisionCookie,
            (_, Reason::Load) => Event::DecisionLoad,
        });
        target
    }

    /// Freezes a connection and sends its endpoint to `target`; false (and
    /// counted) when the connection cannot move now.
    pub(crate) fn start_migration(&mut self, now: Instant, slot: u32, target: PeerId) -> bool {
        let forward_full = self.forward.is_full();
        let me = self.peers.me();
        let Some(conn) = self.conns.get_mut(slot) else {
            return false;
        };
        let (a, b) = conn.ep.unconsumed();
        let carried = a.len() + b.len();
        let (s1, s2) = conn.ep.unacked_and_unsent();
        let in_flight = s1.len() + s2.len();
        if forward_full
            || conn.ep.state() != State::Established
            || conn.ep.peer_fin_received()
            || conn.close_requested
            || carried > MAX_CARRIED
        {
            self.counters.inc(Event::MigrationsRefused);
            return false;
        }
        // Unless the application is fresh (no request yet, nothing read),
        // its progress travels: in the middle of a response the target
        // regenerates the send buffer from it; between requests it knows
        // the connection has served one (so the time it allows for the next
        // head is the idle time-out, not the first head's).
        let mid_response = in_flight > 0 || conn.app.has_pending_output();
        let mut service = Vec::new();
        if mid_response || conn.app.head_wait() != HeadWait::FirstRequest {
            let Ok(p) = conn.app.progress(in_flight) else {
                self.counters.inc(Event::MigrationsRefused);
                return false;
            };
            let mut record = [0u8; MAX_SERVICE_STATE_LEN];
            let Some(n) = super::service_state::emit_http(&p, &mut record) else {
                self.counters.inc(Event::MigrationsRefused);
                return false;
            };
            service = record[..n].to_vec();
            if mid_response {
                self.counters.inc(Event::MovesMidResponse);
            }
        }
        let mut tcb: Tcb = conn.ep.export(now);
        tcb.link_addr = conn.peer_mac.0;
        tcb.moves = conn.moves.saturating_add(1);
        // At most MAX_SERVICE_STATE_LEN (1052) bytes.
        tcb.service_len = service.len() as u16;
        let forwarder = match conn.origin {
            Origin::Imported { forwarder } => forwarder,
            Origin::Accepted => me,
        };
        tcb.next_hop = self.peers.ip(forwarder).octets();
        let export = Export {
            target,
            tcb: tcb.to_bytes(),
            retry: Retry::new(now),
            // Room for `hold_limit` packets once the first is held: most
            // moves hold none.
            held: Vec::new(),
            service,
            started: now,
        };
        let was_serving = conn.phase().is_serving();
        conn.set_phase(Phase::Exporting(Box::new(export)), &mut self.serving);
        // The policy's next choices see this move before the next adverts.
        self.note_placed(self.peers.ip(target), 1);
        if was_serving {
            self.note_placed(self.id.ip, -1);
        }
        self.counters.inc(Event::MigrationsStarted);
        self.send_migration(now, slot);
        self.arm_conn(slot, now);
        true
    }

    /// A move's retry time came: send again, or give up after the last try.
    pub(crate) fn retry_export(&mut self, now: Instant, slot: u32) {
        let tries = match self.conns.get(slot).map(|c| c.phase()) {
            Some(Phase::Exporting(e)) => e.retry.tries(),
            _ => return,
        };
        if tries < self.opts.migrate_tries {
            self.send_migration(now, slot);
        } else {
            self.keep_here(now, slot, Event::MigrationsFallback);
        }
    }

    /// Sends (or resends) the connection packet and the carried bytes.
    fn send_migration(&mut self, now: Instant, slot: u32) {
        let base = self.opts.migrate_retry;
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        let Phase::Exporting(export) = conn.phase_mut() else {
            return;
        };
        export.retry.record_try(now, base);
        let tries = export.retry.tries();
        let (target, tcb) = (export.target, export.tcb);
        let flow = conn.ep.flow();
        let peer = self.peers.addr(target);
        let macs = self.macs_to(peer.mac);
        if tries > 1 {
            self.counters.inc(Event::MigrationsRetried);
        }
        if !self.send_built(Event::MigrationsSent, |b, et| {
            ipos_wire::emit_tcp_connection(b, et, &macs, &flow, peer.ip, flow.dst_port, &tcb)
        }) {
            return;
        }
        // The service state next (the target imports once it has it).
        let mut record = [0u8; MAX_SERVICE_STATE_LEN];
        let n = match self.conns.get(slot).map(|c| c.phase()) {
            Some(Phase::Exporting(e)) => {
                record[..e.service.len()].copy_from_slice(&e.service);
                e.service.len()
            }
            _ => 0,
        };
        if n > 0
            && !self.send_built(Event::ServiceStatesSent, |b, et| {
                ipos_wire::emit_extension(
                    b,
                    et,
                    &macs,
                    &flow,
                    ExtensionKind::ServiceState,
                    Protocol::Tcp,
                    &record[..n],
                )
            })
        {
            return;
        }
        // The carried bytes, as rebuilt client segments in data frames.
        let Ok(parsed) = Tcb::parse(&tcb) else {
            return;
        };
        let carried = parsed.rcv_data_len as usize;
        let base_seq = parsed.rcv_nxt.wrapping_sub(parsed.rcv_data_len);
        let mut chunk = [0u8; CHUNK];
        let mut off = 0;
        while off < carried {
            let n = CHUNK.min(carried - off);
            {
                let conn = self.conns.get(slot).expect("live slot");
                let (a, b) = conn.ep.unconsumed();
                copy_range(a, b, off, &mut chunk[..n]);
            }
            let seg = Rebuilt {
                seq: base_seq.wrapping_add(off as u32),
                ack: parsed.snd_nxt,
                window: u16::MAX,
            };
            if !self.send_rebuilt(&macs, &flow, seg, &chunk[..n], Event::MigrationChunksSent) {
                return;
            }
            off += n;
        }
    }

    /// Sends the bytes the client sent out of order, which the frozen endpoint
    /// `ep` holds past `rcv_nxt`, to the new owner at `to` as client segments
    /// (after the commit: its endpoint takes them as it would from the client).
    /// The client was told (SACK) that they arrived; without them the new owner
    /// would renege on them, and the client resend them only after an RTO. They
    /// acknowledge no more than the client did and repeat its last window, so
    /// they change nothing else in the imported endpoint.
    fn send_out_of_order(&mut self, ep: &ipos_tcp::Endpoint, tcb: &Tcb, to: EthernetAddress) {
        let flow = ep.flow();
        let macs = self.macs_to(to);
        let mut chunk = [0u8; CHUNK];
        for i in 0..ep.ooo_ranges() {
            let Some((start, a, b)) = ep.ooo_range(i) else {
                break;
            };
            let len = a.len() + b.len();
            let mut off = 0;
            while off < len {
                let n = CHUNK.min(len - off);
                copy_range(a, b, off, &mut chunk[..n]);
                let seg = Rebuilt {
                    seq: start.wrapping_add(off as u32),
                    ack: tcb.snd_una,
                    window: tcb.snd_wnd_raw,
                };
                if !self.send_rebuilt(
                    &macs,
                    &flow,
                    seg,
                    &chunk[..n],
                    Event::MigrationOutOfOrderSent,
                ) {
                    return;
                }
                off += n;
            }
        }
    }

    /// Sends `payload` as a client segment of `flow` (client -> VIP), rebuilt
    /// at `seg`, in a data frame to `macs`, counted under `sent`; false (and
    /// the drop counted) when no buffer is left.
    fn send_rebuilt(
        &mut self,
        macs: &ipos_wire::MacAddrs,
        flow: &Flow,
        seg: Rebuilt,
        payload: &[u8],
        sent: Event,
    ) -> bool {
        let ident = self.next_ident();
        let Some(mut buf) = self.alloc_full() else {
            return false;
        };
        let d = buf.data_mut();
        let Some(len) = super::emit_request_segment(
            &mut d[DATA_HEADROOM..],
            flow,
            seg.seq,
            seg.ack,
            seg.window,
            ident,
            payload,
        ) else {
            self.counters.drop(DropReason::TxNoBuffer);
            return false;
        };
        match ipos_wire::emit_data_header(&mut d[..DATA_HEADROOM + len], self.id.ethertype, macs) {
            Ok(total) if buf.set_len(total).is_ok() => {
                self.counters.inc(sent);
                self.transmit(buf);
                true
            }
            _ => {
                self.counters.drop(DropReason::TxNoBuffer);
                false
            }
        }
    }

    /// A migration acknowledgement (or, at a target, a commit) from `src_mac`.
    pub(crate) fn on_ack(&mut self, now: Instant, flow: Flow, src_mac: EthernetAddress) {
        let Some(slot) = self.conns.find(&flow) else {
            // Ours no more: the target lost our commit and acknowledges again.
            if self
                .forward
                .get(&ForwardKey::of(&flow))
                .is_some_and(|e| e.target_mac == src_mac)
            {
                // Bounded: an acknowledgement and a commit are the same frame, so
                // two nodes that both forward the flow to each other would answer
                // each other forever.
                if self.recommit_budget.take(now) {
                    self.send_commit(&flow, src_mac);
                } else {
                    self.counters.drop(DropReason::RecommitRate);
                }
            }
            return self.counters.inc(Event::MigrationAcksDuplicate);
        };
        let c = self.conns.get(slot).expect("slot from index");
        match c.phase() {
            Phase::AwaitingCommit(_) => self.on_commit(now, slot, src_mac),
            Phase::Exporting(export) => {
                if self.peers.mac(export.target) != src_mac {
                    return self.counters.drop(DropReason::IposUnexpected);
                }
                self.on_export_acked(now, slot, flow);
            }
            Phase::FellBack { target } => {
                // A late acknowledgement from a target we gave up on: abort again.
                let target = *target;
                if self.peers.mac(target) == src_mac {
                    self.send_abort(&flow, target);
                }
                self.counters.inc(Event::MigrationAcksDuplicate);
            }
            Phase::AwaitingHead | Phase::Serving => {
                self.counters.inc(Event::MigrationAcksDuplicate)
            }
        }
    }

    /// The target holds the endpoint: forward to it, commit, and let go.
    fn on_export_acked(&mut self, now: Instant, slot: u32, flow: Flow) {
        let Some(Phase::Exporting(export)) = self.conns.get(slot).map(|c| c.phase()) else {
            return;
        };
        let target = self.peers.addr(export.target);
        let entry = ForwardEntry {
            target_ip: target.ip,
            target_port: flow.dst_port,
            target_mac: target.mac,
            target_epoch: self.peers.epoch(export.target),
            last_used: now,
        };
        // The forward entry first: without it the client's next packets would
        // find no connection here and be reset.
        if self
            .install_forward(ForwardKey::of(&flow), entry, now)
            .is_err()
        {
            return self.keep_here(now, slot, Event::MigrationsForwardFull);
        }
        let Some(mut conn) = self.remove_conn(slot) else {
            return;
        };
        let mut uncounted = ServingCount::default();
        let Phase::Exporting(export) = conn.set_phase(Phase::Serving, &mut uncounted) else {
            return; // checked above: not reached
        };
        self.counters.inc(Event::MigrationsAcked);
        self.handoff.record((now - export.started).total_micros());
        self.held -= export.held.len();
        // Commit: from now on the target owns the connection and may talk.
        self.send_commit(&flow, target.mac);
        if let Some(f) = conn
            .origin
            .remote_forwarder(self.peers.me())
            .filter(|&f| f != export.target)
        {
            // A chained move: the front should forward to the new owner directly.
            self.send_notice(&flow, f, super::Notice::owner(target.ip, flow.dst_port));
        }
        for (buf, off) in export.held {
            self.forward_packet(buf, off, &entry, Event::PacketsForwarded);
        }
        if conn.ep.ooo_ranges() > 0 {
            if let Ok(tcb) = Tcb::parse(&export.tcb) {
                self.send_out_of_order(&conn.ep, &tcb, target.mac);
            }
        }
    }

    /// Gives up a move: thaws the endpoint, serves it here, and tells the
    /// target to forget its copy should it have installed one. `why` counts it.
    fn keep_here(&mut self, now: Instant, slot: u32, why: Event) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        let target = match conn.phase() {
            Phase::Exporting(export) => export.target,
            _ => return,
        };
        let fell_back = Phase::FellBack { target };
        let Phase::Exporting(export) = conn.set_phase(fell_back, &mut self.serving) else {
            return; // checked above: not reached
        };
        conn.ep.set_rcv_window_cap(None);
        let flow = conn.ep.flow();
        self.held -= export.held.len();
        self.counters.inc(why);
        self.send_abort(&flow, export.target);
        for (buf, off) in export.held {
            let conn = self.conns.get_mut(slot).expect("live slot");
            let ip = Ipv4Packet::new_unchecked(&buf.data()[off..]);
            self.counters.inc(Event::TcpSegmentsIn);
            if conn.ep.on_segment(now, ip.payload()).is_err() {
                self.counters.drop(DropReason::TcpRejected);
            }
        }
        self.service(now, slot);
    }
}

impl<P: Port> Node<P> {
    /// Records `delta` connections placed on `server` for the policy's next
    /// choices (counted when the record is full).
    fn note_placed(&mut self, server: Ipv4Address, delta: i32) {
        if !self.placed.add(&self.view, server, delta) {
            self.counters.inc(Event::PlacedFull);
        }
    }

    /// The policy's owner for a request on `flow` (client -> VIP) with
    /// `path` and affinity `cookie`; a path of `/` and no cookie is the
    /// choice by load alone.
    pub(crate) fn ask_policy(
        &self,
        now: Instant,
        flow: &Flow,
        path: &str,
        cookie: Option<&str>,
    ) -> Decision {
        let info = RequestInfo {
            path,
            cookie_value: cookie,
            service_port: flow.dst_port,
            local_ip: self.id.ip,
            spread_key: spread_key(flow.src_addr, flow.src_port),
        };
        ipos_policy::choose_placed(&self.view, &self.placed, &info, now.total_millis() as u64)
    }
}

/// Spreads clients over nodes for load decisions: a hash of address and port.
pub(crate) fn spread_key(ip: Ipv4Address, port: u16) -> u32 {
    let o = ip.octets();
    (u32::from_be_bytes(o).wrapping_mul(0x9e37_79b9) ^ u32::from(port)).wrapping_mul(0x85eb_ca6b)
        >> 8
}

/// Copies `out.len()` bytes starting at `off` of the concatenation `a ++ b`.
fn copy_range(a: &[u8], b: &[u8], off: usize, out: &mut [u8]) {
    for (i, o) in out.iter_mut().enumerate() {
        let j = off + i;
        *o = if j < a.len() {
            a[j]
        } else {
            b.get(j - a.len()).copied().unwrap_or(0)
        };
    }
}
