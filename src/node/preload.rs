//! Forward entries made up front, for benchmarks of the forward path: a
//! table of N entries as if N clients had been moved to one target, so that
//! the wrapping of their packets (and the table's cost at that size) can be
//! measured on a device that replays those clients' packets
//! (`scripts/bench-pps --traffic forward`, `iposd --bench-forward-flows`).
//!
//! Flow `i` of `count` is client 198.18.1.(1 + i mod 254), port
//! 1024 + i / 254, to the VIP on the first service port; `count` is at most
//! 254 × 64 512 (16 386 048). With several lanes each lane installs the flows
//! it owns (their hash names it), as it would have after real moves.

use crate::node::{lane_of_flow, Node};
use crate::port::Port;
use crate::tables::{ForwardEntry, ForwardKey};
use ipos_wire::Flow;
use smoltcp::time::Instant;
use smoltcp::wire::Ipv4Address;

/// Most flows [`Node::preload_forward_flows`] can name.
pub const MAX_PRELOAD: usize = 254 * 64_512;

/// Flow `i` of a preload, towards `vip:port`.
pub fn preload_flow(i: usize, vip: Ipv4Address, port: u16) -> Flow {
    Flow {
        src_addr: Ipv4Address::new(198, 18, 1, 1 + (i % 254) as u8),
        src_port: 1024 + (i / 254) as u16,
        dst_addr: vip,
        dst_port: port,
    }
}

/// Why a preload was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreloadError {
    /// The node fronts no VIP: no client would reach it.
    NoVip,
    /// `to` names no other farm member.
    NoSuchTarget(Ipv4Address),
    /// More flows than the scheme names.
    TooMany(usize),
    /// The forward table filled after this many entries (raise `max_forward`).
    TableFull(usize),
}

impl core::fmt::Display for PreloadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PreloadError::NoVip => f.write_str("the node fronts no VIP"),
            PreloadError::NoSuchTarget(ip) => write!(f, "{ip} is no other node of the farm"),
            PreloadError::TooMany(n) => write!(f, "{n} flows: at most {MAX_PRELOAD}"),
            PreloadError::TableFull(n) => write!(f, "the forward table is full at {n} entries"),
        }
    }
}

impl std::error::Error for PreloadError {}

impl<P: Port> Node<P> {
    /// Installs forward entries for flows `0..count` of the preload scheme
    /// (module docs) that this lane owns, pointing at farm member `to`, on
    /// the first service port; returns how many it installed.
    pub fn preload_forward_flows(
        &mut self,
        now: Instant,
        to: Ipv4Address,
        count: usize,
    ) -> Result<usize, PreloadError> {
        let vip = self.id.vip.ok_or(PreloadError::NoVip)?;
        if count > MAX_PRELOAD {
            return Err(PreloadError::TooMany(count));
        }
        let target = self
            .peers
            .by_ip(to)
            .filter(|&p| p != self.peers.me())
            .ok_or(PreloadError::NoSuchTarget(to))?;
        let port = self.id.service_ports.first().copied().unwrap_or(80);
        let (lane, lanes) = self.lane();
        let entry = ForwardEntry {
            target_ip: to,
            target_port: port,
            target_mac: self.peers.mac(target),
            target_epoch: self.peers.epoch(target),
            last_used: now,
        };
        let mut installed = 0;
        for i in 0..count {
            let flow = preload_flow(i, vip, port);
            if lanes > 1 && lane_of_flow(&flow, lanes) != lane {
                continue;
            }
            self.install_forward(ForwardKey::of(&flow), entry, now)
                .map_err(|_| PreloadError::TableFull(installed))?;
            installed += 1;
        }
        Ok(installed)
    }
}
