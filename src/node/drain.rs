//! Drain: a node leaves the farm without breaking its clients (`iposd` on
//! SIGTERM, [`Node::start_drain`]).
//!
//! 1. **It stops being a choice.** From the drain's start its adverts list
//!    no listening socket (one goes out at once), so no node's policy picks
//!    it any more, for a new connection, a request's rule or another drain;
//!    a connection packet that still comes is refused (`drop.draining`), and
//!    its source keeps that connection after its retries.
//! 2. **It moves what it serves.** Every connection to the VIP that it
//!    serves moves to the live node its policy picks by load, in the middle
//!    of a response too (the service state travels,
//!    [`crate::migration::service_state`]); each forwarder follows the move
//!    notice. A connection that cannot move yet (the end of its response
//!    unacknowledged, its first request head still coming, a move of it in
//!    flight) is tried again at the next pass. A pass looks at
//!    [`DRAIN_BUDGET`] slots of the connection table per poll.
//! 3. **The deadline.** What has not moved by then (connections to the
//!    node's own address, uploads being read, a farm without another live
//!    node) is finished in place: from the deadline on, each connection is
//!    closed with a FIN as soon as it is between requests with nothing left
//!    to send (`drain_closed`).
//! 4. **Done** ([`Node::drained`]) when the node holds no connection but
//!    closing ones in TIME-WAIT; `iposd` then exits.
//!
//! The front cannot drain ([`DrainError::Front`]): it answers for the VIP
//! and holds every forward entry, so its leaving cuts every client.

use super::{Node, Phase};
use crate::counters::Event;
use crate::migration::live::MoveError;
use crate::port::Port;
use ipos_http::HeadWait;
use ipos_tcp::State;
use smoltcp::time::{Duration, Instant};
use std::fmt;

/// Connection-table slots a drain looks at per poll.
pub const DRAIN_BUDGET: usize = 64;

/// A drain in progress.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DrainState {
    /// Moves stop here; what is left is finished in place.
    deadline: Instant,
    /// The next slot a pass looks at.
    cursor: usize,
}

/// Why a node cannot drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainError {
    /// This node fronts the VIP.
    Front,
}

impl fmt::Display for DrainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DrainError::Front => f.write_str(
                "this node fronts the VIP: it answers for it and forwards every moved \
                 connection, so it cannot leave without cutting them",
            ),
        }
    }
}

impl std::error::Error for DrainError {}

impl<P: Port> Node<P> {
    /// Starts draining: see the module docs. Moves are tried for `timeout`,
    /// then what is left is finished in place. Starting again changes nothing.
    pub fn start_drain(&mut self, now: Instant, timeout: Duration) -> Result<(), DrainError> {
        if self.id.vip.is_some() {
            return Err(DrainError::Front);
        }
        if self.drain.is_none() {
            self.drain = Some(DrainState {
                deadline: now + timeout,
                cursor: 0,
            });
            self.counters.inc(Event::DrainsStarted);
            // Tell the farm now that this node listens on nothing.
            self.advertise(now);
        }
        Ok(())
    }

    /// True while a drain is in progress (or done).
    pub fn is_draining(&self) -> bool {
        self.drain.is_some()
    }

    /// True when a draining node holds no connection but closing ones in
    /// TIME-WAIT (it may exit). Walks the connection table: call it now and
    /// then (`iposd` does, ten times a second while draining), not per poll.
    pub fn drained(&self) -> bool {
        self.drain.is_some()
            && self.pending.is_empty()
            && self
                .conns
                .values()
                .all(|c| matches!(c.ep.state(), State::TimeWait | State::Closed))
    }

    /// One pass of the drain over at most [`DRAIN_BUDGET`] slots.
    pub(crate) fn drain_step(&mut self, now: Instant) {
        let Some(d) = self.drain else { return };
        let n = self.conns.slot_count();
        if n == 0 {
            return;
        }
        let past = now >= d.deadline;
        let mut cursor = d.cursor % n;
        for _ in 0..DRAIN_BUDGET.min(n) {
            let slot = cursor as u32;
            cursor = (cursor + 1) % n;
            if past {
                self.finish_in_place(now, slot);
            } else {
                self.drain_move(now, slot);
            }
        }
        if let Some(d) = self.drain.as_mut() {
            d.cursor = cursor;
        }
    }

    /// Moves the connection in `slot` away, if it is served here and can.
    fn drain_move(&mut self, now: Instant, slot: u32) {
        let Some(conn) = self.conns.get(slot) else {
            return;
        };
        if !matches!(conn.phase(), Phase::Serving | Phase::FellBack { .. }) {
            return;
        }
        let flow = conn.ep.flow();
        if Some(flow.dst_addr) != self.id.farm_vip {
            return; // to this node's own address: finished in place
        }
        // The policy's choice by load (this node advertises no socket now,
        // so it is never chosen).
        let d = self.ask_policy(now, &flow, "/", None);
        if d.target == self.id.ip {
            return; // no live node to take it: finished in place
        }
        match self.move_connection(now, &flow, d.target) {
            Ok(()) => self.counters.inc(Event::DrainMoves),
            Err(MoveError::NotYet) => {}
            Err(_) => {}
        }
    }

    /// After the deadline: closes the connection in `slot` with a FIN once
    /// it is between requests with nothing left to send.
    fn finish_in_place(&mut self, now: Instant, slot: u32) {
        let Some(conn) = self.conns.get_mut(slot) else {
            return;
        };
        if conn.close_requested || conn.phase().is_frozen() {
            return;
        }
        let idle = matches!(
            conn.app.head_wait(),
            HeadWait::Idle | HeadWait::FirstRequest
        );
        let (unacked, unsent) = conn.ep.unacked_and_unsent();
        if !idle || !unsent.is_empty() || !unacked.is_empty() || conn.ep.recv_available() > 0 {
            return;
        }
        conn.ep.close();
        conn.close_requested = true;
        self.counters.inc(Event::DrainClosed);
        self.service(now, slot);
    }
}
