//! Server-state advertisements (ipos extension 0x10): every
//! `advert_interval` a node broadcasts its load, its listening sockets and
//! the applications behind them; adverts from the other farm members update
//! the policy's view, which holds this node's own row too, and tell which
//! peers are heard.
//!
//! # Peers that go down and come back
//!
//! A peer whose adverts stop for `peer_down_after` (6 advert intervals, 3 s)
//! is *down*: one timer per peer in the wheel finds out (it re-arms itself
//! from the peer's last advert while the peer speaks, so it costs one wheel
//! entry per advert interval and peer, never a walk). The policy judges
//! freshness with the same limit, so it no longer chooses the peer; the
//! forward entries that point at it are removed, at the client's next
//! segment (which then gets a RST) or by the forward table's sweep.
//!
//! A restarted node counts its adverts from 1 again. The rule (the policy's
//! too, see `ipos_policy::view`): the next advert of a peer that is down is
//! taken whatever its sequence (it is up again, its old connections are
//! gone), and so is an advert that shows a restart of a peer that is up (a
//! sequence of at most 8 after one of at least 64): the peer's epoch grows,
//! and its forward entries go as for a peer that went down. New connections
//! reach it again at once.

use super::{Liveness, Node, PeerId, Timer, HTTP_PID, UDP_ECHO_PID};
use crate::counters::{DropReason, Event};
use crate::port::Port;
use ipos_policy::{AdvertRepr, AppEntry, ListenEntry};
use ipos_wire::{ExtensionKind, Flow, Protocol};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, Ipv4Address};

/// The advert sequence number, and the share of polls that found work
/// since the last advert.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct AdvertState {
    seq: u32,
    polls: u64,
    busy_polls: u64,
}

impl AdvertState {
    /// Counts one poll.
    pub fn record_poll(&mut self, busy: bool) {
        self.polls += 1;
        self.busy_polls += u64::from(busy);
    }

    /// Busy polls per thousand since the last call, and a fresh count.
    fn take_permille(&mut self) -> u16 {
        let p = (self.busy_polls * 1000)
            .checked_div(self.polls)
            .unwrap_or(0);
        self.polls = 0;
        self.busy_polls = 0;
        p.min(1000) as u16
    }

    /// The next sequence number.
    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }
}

impl<P: Port> Node<P> {
    /// Broadcasts this node's state, and applies it to its own view.
    pub(crate) fn advertise(&mut self, now: Instant) {
        let seq = self.adverts.next_seq();
        let mut a = AdvertRepr::new(self.id.ip, seq);
        // Load = connections served here; those still waiting for a decision
        // (most of which will move) do not count.
        // A node on several lanes: what all of them serve, and how busy
        // they are, in every lane's own row; lane 0 alone sends it.
        let (established, permille) = match self.lane.as_mut() {
            Some(lane) => {
                self.adverts.take_permille();
                (lane.total_serving(), lane.take_permille())
            }
            None => (self.serving.get(), self.adverts.take_permille()),
        };
        a.established = established as u32;
        a.cpu_permille = permille;
        a.mem_avail_mib = self.opts.mem_avail_mib;
        a.bw_avail_mbps = self.opts.bw_avail_mbps;
        // The built-in services: (process, memory it needs in MiB, its ports),
        // the ports relayed to upstreams aside.
        let mut builtin = [0u16; ipos_policy::advert::MAX_ENTRIES];
        let mut nb = 0;
        for &p in &self.id.service_ports {
            if nb < builtin.len() && !self.upstreams.iter().any(|(u, _)| u.port == p) {
                builtin[nb] = p;
                nb += 1;
            }
        }
        let services = [
            (HTTP_PID, 16, &builtin[..nb]),
            (UDP_ECHO_PID, 1, self.id.udp_echo_port.as_slice()),
        ];
        for (pid, mem_mib, ports) in services {
            if ports.is_empty() {
                continue;
            }
            // A draining node listens on nothing: no policy picks it.
            if self.drain.is_none() {
                for &port in ports {
                    let _ = a.push_listening(ListenEntry { port, pid });
                }
            }
            let _ = a.push_app(AppEntry {
                pid,
                mem_mib,
                cpu_permille: 1,
            });
        }
        self.advertise_upstreams(&mut a);
        // Our own row, so that the policy weighs this node like the others.
        self.view = ipos_policy::apply_advert(&self.view, &a, now.total_millis() as u64);
        if self.lanes().is_some_and(|(me, _)| me != 0) {
            return;
        }
        let mut body = [0u8; ipos_policy::advert::MAX_LEN];
        let Ok(blen) = a.emit(&mut body) else { return };
        let flow = Flow {
            // An advert is about a node, not a connection: no destination.
            src_addr: self.id.ip,
            src_port: 0,
            dst_addr: Ipv4Address::UNSPECIFIED,
            dst_port: 0,
        };
        let macs = self.macs_to(EthernetAddress::BROADCAST);
        self.send_built(Event::AdvertsSent, |b, et| {
            ipos_wire::emit_extension(
                b,
                et,
                &macs,
                &flow,
                ExtensionKind::ServerState,
                Protocol::Tcp,
                &body[..blen],
            )
        });
    }

    /// The members of the farm this node does not hear from (no fresh
    /// advert), by address; empty when its view of the farm is complete.
    pub fn unheard_peers(&self, now: Instant) -> impl Iterator<Item = Ipv4Address> + '_ {
        let now_ms = now.total_millis() as u64;
        self.peers
            .ips()
            .filter(move |&ip| ip != self.id.ip && !self.view.is_live(ip, now_ms, self.id.ip))
    }

    /// An advert from a farm member.
    pub(crate) fn on_advert(&mut self, now: Instant, body: &[u8], from: PeerId) {
        let a = match AdvertRepr::parse(body) {
            Ok(a) => a,
            Err(_) => return self.counters.drop(DropReason::AdvertMalformed),
        };
        // A node advertises itself only: the row named must be the sender's.
        if a.node_ip == self.id.ip || a.node_ip != self.peers.ip(from) {
            return self.counters.drop(DropReason::IposUnexpected);
        }
        let peer = from;
        self.counters.inc(Event::AdvertsReceived);
        let prev = self
            .view
            .servers()
            .get(a.node_ip)
            .and_then(|s| s.advert_sequence);
        if let Some(view) = self.view.try_apply_advert(&a, now.total_millis() as u64) {
            self.view = view;
            let restart = prev.is_some_and(|p| ipos_policy::shows_restart(p, a.sequence));
            self.peer_heard(now, peer, a.sequence, restart);
        }
    }

    /// An advert of `peer` (sequence `seq`) was taken at `now`.
    fn peer_heard(&mut self, now: Instant, peer: PeerId, seq: u32, restart: bool) {
        let after = self.opts.peer_down_after;
        match self.peers.heard(peer, now) {
            Liveness::Unheard => self.timers.arm(now + after, Timer::Peer { peer }),
            Liveness::Down { last } => {
                log::info!(
                    "peer {} ({}) up again after {} ms of silence (advert sequence {seq})",
                    self.peers.name(peer),
                    self.peers.ip(peer),
                    (now - last).total_millis()
                );
                self.counters.inc(Event::PeersUp);
                self.timers.arm(now + after, Timer::Peer { peer });
            }
            Liveness::Up { .. } if restart => {
                log::warn!(
                    "peer {} ({}) restarted (advert sequence {seq}): its forward entries go",
                    self.peers.name(peer),
                    self.peers.ip(peer)
                );
                self.peers.restarted(peer);
                self.counters.inc(Event::PeersRestarted);
                self.forward.start_sweep();
            }
            Liveness::Up { .. } => {}
        }
    }

    /// Peer `from` began a new epoch (its authenticated frames say it
    /// restarted; see [`crate::auth`]): a restart known at once, without
    /// waiting for its adverts to show it. Its forward entries go as for a
    /// peer that restarted, and the row it advertised is forgotten, so that
    /// its next advert (sequence 1 again) is taken.
    pub(crate) fn on_peer_epoch(&mut self, from: PeerId) {
        if from == self.peers.me() {
            return;
        }
        match self.peers.liveness(from) {
            // The first frames this node hears from it: nothing to forget.
            Liveness::Unheard => return,
            Liveness::Down { .. } => {}
            Liveness::Up { .. } => {
                log::warn!(
                    "peer {} ({}) restarted (new epoch in its authenticated frames): its forward entries go",
                    self.peers.name(from),
                    self.peers.ip(from)
                );
                self.peers.restarted(from);
                self.counters.inc(Event::PeersRestarted);
                self.forward.start_sweep();
            }
        }
        let ip = self.peers.ip(from);
        if self.view.servers().get(ip).is_some() {
            let mut next = self.view.clone();
            next.servers_mut().remove(ip);
            next.listening_mut().remove_server(ip);
            next.apps_mut().remove_server(ip);
            self.view = next;
        }
    }

    /// The silence timer of `peer`: down when it has not advertised for
    /// `peer_down_after`, else checked again then.
    pub(crate) fn on_peer_timer(&mut self, now: Instant, peer: PeerId) {
        let Liveness::Up { last } = self.peers.liveness(peer) else {
            return;
        };
        // Down once silent for longer than `peer_down_after`, as the policy
        // judges freshness (a row exactly that old is still fresh).
        let due = last + self.opts.peer_down_after + self.opts.timer_tick;
        if now < due {
            return self.timers.arm(due, Timer::Peer { peer });
        }
        self.peers.set_down(peer);
        self.counters.inc(Event::PeersDown);
        log::warn!(
            "peer {} ({}) down: no advert for {} ms; {} forward entries to look at",
            self.peers.name(peer),
            self.peers.ip(peer),
            (now - last).total_millis(),
            self.forward.len()
        );
        self.forward.start_sweep();
    }

    /// True when the farm member at `ip` is down (silent for `peer_down_after`).
    pub fn peer_is_down(&self, ip: Ipv4Address) -> bool {
        self.peers.by_ip(ip).is_some_and(|p| self.peers.is_down(p))
    }
}

impl<P: Port> Node<P> {
    /// The upstreams' listening sockets and processes, as the monitor last
    /// saw them (FIG. 12's listening-sockets and application tables): a
    /// port whose upstream does not accept is not advertised, so no policy
    /// places a connection here for it. A process the monitor could not
    /// find (another namespace, no permission) is advertised under a
    /// process id derived from the port, with the built-in service's needs.
    fn advertise_upstreams(&self, a: &mut AdvertRepr) {
        let Some(m) = self.monitor.as_ref() else {
            for (u, _) in &self.upstreams {
                if self.drain.is_none() {
                    let _ = a.push_listening(ListenEntry {
                        port: u.port,
                        pid: UPSTREAM_PID_BASE + u32::from(u.port),
                    });
                }
            }
            return;
        };
        let health = m.health();
        for h in health.ports.iter().filter(|h| h.up) {
            let pid = if h.pid != 0 {
                h.pid
            } else {
                UPSTREAM_PID_BASE + u32::from(h.port)
            };
            if self.drain.is_none() {
                let _ = a.push_listening(ListenEntry { port: h.port, pid });
            }
            let _ = a.push_app(AppEntry {
                pid,
                mem_mib: if h.pid != 0 { h.mem_mib.max(1) } else { 16 },
                cpu_permille: h.cpu_permille.max(1),
            });
        }
    }
}

/// Process ids advertised for an upstream whose process is not known:
/// this plus the port (never a real process id: above Linux's 2^22 limit).
pub const UPSTREAM_PID_BASE: u32 = 1 << 23;
