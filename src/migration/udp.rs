//! UDP flow moves: the same roles as TCP's, for flows to the VIP's echo
//! port. A flow has no state to carry: the UDP connection packet names the
//! new owner, the target acknowledges, the front forwards the datagrams it
//! held and every later one, and the target answers the client directly.

use super::Retry;
use crate::counters::{DropReason, Event};
use crate::node::{Node, PeerId, Timer, Via};
use crate::port::Port;
use crate::tables::{ForwardEntry, ForwardKey};
use ipos_policy::RequestInfo;
use ipos_wire::{Flow, Protocol};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, Ipv4Address};

/// A UDP flow (client IP and port) in one of its roles.
pub(crate) enum UdpFlow<B> {
    /// Served here.
    Local { last: Instant },
    /// Being moved (temporary): datagrams are held.
    Moving(Box<UdpMove<B>>),
    /// Moved: datagrams are forwarded to `target` (forward entry).
    Forwarded { target: PeerId, last: Instant },
    /// Taken over from a front that forwards the datagrams (forward-connect entry).
    Owned { last: Instant },
}

impl<B> UdpFlow<B> {
    /// When the entry next needs attention: its move's retry, or the end of
    /// its idle time-out.
    pub fn next_deadline(&self, idle: Duration) -> Instant {
        match self {
            UdpFlow::Moving(m) => m.retry.next_at(),
            UdpFlow::Local { last } | UdpFlow::Forwarded { last, .. } | UdpFlow::Owned { last } => {
                *last + idle
            }
        }
    }
}

/// A UDP flow being moved.
pub(crate) struct UdpMove<B> {
    pub target: PeerId,
    /// The flow (client -> VIP and echo port).
    pub flow: Flow,
    pub retry: Retry,
    /// Datagrams that arrived meanwhile, with how they came (where their
    /// IPv4 header is: a datagram may have come in a data frame).
    pub held: Vec<(B, Via)>,
    pub last: Instant,
}

impl<P: Port> Node<P> {
    /// Where a new UDP flow should live: None for here.
    pub(crate) fn place_udp_flow(&self, now: Instant, flow: &Flow) -> Option<PeerId> {
        if !self.opts.migration || Some(flow.dst_addr) != self.id.vip {
            return None;
        }
        let info = RequestInfo {
            path: "",
            cookie_value: None,
            service_port: flow.dst_port,
            local_ip: self.id.ip,
            spread_key: super::source::spread_key(flow.src_addr, flow.src_port),
        };
        let d = ipos_policy::choose(&self.view, &info, now.total_millis() as u64);
        if d.target == self.id.ip {
            return None;
        }
        self.peers.by_ip(d.target)
    }

    /// Starts moving a new flow to `target`, holding its first datagram.
    pub(crate) fn start_udp_move(
        &mut self,
        now: Instant,
        flow: Flow,
        target: PeerId,
        buf: P::Buf,
        via: Via,
    ) {
        if self.held >= self.opts.max_held {
            return self.counters.drop(DropReason::HoldBudgetFull);
        }
        self.counters.inc(Event::DecisionLoad);
        self.counters.inc(Event::UdpMigrationsStarted);
        self.counters.inc(Event::UdpHeld);
        let mut held = Vec::with_capacity(self.opts.hold_limit);
        held.push((buf, via));
        let m = UdpMove {
            target,
            flow,
            retry: Retry::new(now),
            held,
            last: now,
        };
        let key = ForwardKey::of(&flow);
        if self.add_udp_flow(now, key, UdpFlow::Moving(Box::new(m))) {
            self.held += 1;
            self.send_udp_migration(now, key);
        }
    }

    /// Adds a new UDP flow entry and arms its timer; false (counted) when the
    /// table is full.
    pub(crate) fn add_udp_flow(
        &mut self,
        now: Instant,
        key: ForwardKey,
        f: UdpFlow<P::Buf>,
    ) -> bool {
        let gen = self.new_gen();
        let at = f.next_deadline(self.opts.udp_idle);
        if self.udp_flows.insert(key, (gen, f)).is_err() {
            self.counters.drop(DropReason::UdpTableFull);
            return false;
        }
        self.timers.arm(at.max(now), Timer::Udp { key, gen });
        true
    }

    fn send_udp_migration(&mut self, now: Instant, key: ForwardKey) {
        let base = self.opts.migrate_retry;
        let Some((_, UdpFlow::Moving(m))) = self.udp_flows.get_mut(&key) else {
            return;
        };
        m.retry.record_try(now, base);
        let (flow, peer) = (m.flow, self.peers.addr(m.target));
        let macs = self.macs_to(peer.mac);
        self.send_built(Event::MigrationsSent, |b, et| {
            ipos_wire::emit_udp_connection(b, et, &macs, &flow, peer.ip, flow.dst_port)
        });
    }

    /// A UDP flow's timer: retry (or give up) its move, or expire it when idle.
    pub(crate) fn on_udp_timer(&mut self, now: Instant, key: ForwardKey, gen: u32) {
        let idle = self.opts.udp_idle;
        let Some((g, f)) = self.udp_flows.get(&key) else {
            return;
        };
        if *g != gen {
            return; // the entry this timer was for is gone
        }
        match f {
            UdpFlow::Moving(m) if m.retry.is_due(now) => {
                if m.retry.tries() < self.opts.migrate_tries {
                    self.counters.inc(Event::MigrationsRetried);
                    self.send_udp_migration(now, key);
                } else {
                    self.udp_fall_back(now, key, gen);
                }
            }
            UdpFlow::Moving(_) => {}
            UdpFlow::Local { last } | UdpFlow::Forwarded { last, .. } | UdpFlow::Owned { last } => {
                if now >= *last + idle {
                    self.udp_flows.remove(&key);
                    self.counters.inc(Event::UdpFlowsExpired);
                    return;
                }
            }
        }
        if let Some((_, f)) = self.udp_flows.get(&key) {
            let at = f.next_deadline(idle).max(now);
            self.timers.arm(at, Timer::Udp { key, gen });
        }
    }

    /// A move never acknowledged: serve the flow here.
    fn udp_fall_back(&mut self, now: Instant, key: ForwardKey, gen: u32) {
        let local = (gen, UdpFlow::Local { last: now });
        let Ok(Some((_, UdpFlow::Moving(m)))) = self.udp_flows.insert(key, local) else {
            return;
        };
        self.counters.inc(Event::UdpMigrationsFallback);
        self.held -= m.held.len();
        for (b, via) in m.held {
            self.echo_udp(now, b, via);
        }
    }

    /// A UDP connection packet: a flow moves here.
    pub(crate) fn on_udp_connection(
        &mut self,
        now: Instant,
        flow: Flow,
        server_addr: Ipv4Address,
        src_mac: EthernetAddress,
    ) {
        if server_addr != self.id.ip {
            return self.counters.drop(DropReason::IposUnexpected);
        }
        if Some(flow.dst_addr) != self.id.farm_vip || Some(flow.dst_port) != self.id.udp_echo_port {
            return self.counters.drop(DropReason::ConnNotOurService);
        }
        let key = ForwardKey::of(&flow);
        match self.udp_flows.get(&key).map(|(_, f)| f) {
            Some(UdpFlow::Owned { .. }) => {}
            Some(_) => return self.counters.drop(DropReason::IposUnexpected),
            None => {
                if !self.add_udp_flow(now, key, UdpFlow::Owned { last: now }) {
                    return;
                }
                self.counters.inc(Event::UdpMigrationsReceived);
            }
        }
        self.send_ack(&flow, src_mac, Protocol::Udp);
    }

    /// A UDP move's acknowledgement: forward the held datagrams and every later one.
    pub(crate) fn on_udp_ack(&mut self, flow: Flow, src_mac: EthernetAddress) {
        let key = ForwardKey::of(&flow);
        let (gen, target) = match self.udp_flows.get(&key) {
            Some((gen, UdpFlow::Moving(m))) if self.peers.mac(m.target) == src_mac => {
                (*gen, m.target)
            }
            _ => return self.counters.inc(Event::MigrationAcksDuplicate),
        };
        let Some((_, UdpFlow::Moving(m))) = self.udp_flows.remove(&key) else {
            return;
        };
        let forwarded = UdpFlow::Forwarded {
            target,
            last: m.last,
        };
        // The entry was there a moment ago: there is room for it again.
        let _ = self.udp_flows.insert(key, (gen, forwarded));
        self.counters.inc(Event::UdpMigrationsAcked);
        self.held -= m.held.len();
        let p = self.peers.addr(target);
        let entry = ForwardEntry {
            target_ip: p.ip,
            target_port: flow.dst_port,
            target_mac: p.mac,
            target_epoch: self.peers.epoch(target),
            last_used: m.last,
        };
        for (b, via) in m.held {
            self.forward_packet(b, via.offset(), &entry, Event::UdpForwarded);
        }
    }
}
