//! Server-state advertisements (ipos extension 0x10): every
//! `advert_interval` a node broadcasts its load, its listening sockets and
//! the applications behind them; adverts from the other farm members update
//! the policy's view, which holds this node's own row too.

use super::{Node, PeerId, HTTP_PID, UDP_ECHO_PID};
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
        a.established = self.serving.get() as u32;
        a.cpu_permille = self.adverts.take_permille();
        a.mem_avail_mib = self.opts.mem_avail_mib;
        a.bw_avail_mbps = self.opts.bw_avail_mbps;
        // The built-in services: (process, memory it needs in MiB, its ports).
        let services = [
            (HTTP_PID, 16, &self.id.service_ports[..]),
            (UDP_ECHO_PID, 1, self.id.udp_echo_port.as_slice()),
        ];
        for (pid, mem_mib, ports) in services {
            if ports.is_empty() {
                continue;
            }
            for &port in ports {
                let _ = a.push_listening(ListenEntry { port, pid });
            }
            let _ = a.push_app(AppEntry {
                pid,
                mem_mib,
                cpu_permille: 1,
            });
        }
        // Our own row, so that the policy weighs this node like the others.
        self.view = ipos_policy::apply_advert(&self.view, &a, now.total_millis() as u64);
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
        match AdvertRepr::parse(body) {
            Ok(a) => {
                // A node advertises itself only: the row named must be the sender's.
                if a.node_ip != self.id.ip && a.node_ip == self.peers.ip(from) {
                    self.view =
                        ipos_policy::apply_advert(&self.view, &a, now.total_millis() as u64);
                    self.counters.inc(Event::AdvertsReceived);
                } else {
                    self.counters.drop(DropReason::IposUnexpected);
                }
            }
            Err(_) => self.counters.drop(DropReason::AdvertMalformed),
        }
    }

    /// Peer `from` began a new epoch (its authenticated frames say it
    /// restarted): its advert sequence starts again from 1, so the row it
    /// advertised before is forgotten and its next advert is taken.
    pub(crate) fn on_peer_epoch(&mut self, from: PeerId) {
        let ip = self.peers.ip(from);
        if ip == self.id.ip || self.view.servers().get(ip).is_none() {
            return;
        }
        log::info!("{}: node {ip} restarted (new epoch)", self.id.name);
        let mut next = self.view.clone();
        next.servers_mut().remove(ip);
        next.listening_mut().remove_server(ip);
        next.apps_mut().remove_server(ip);
        self.view = next;
    }
}
