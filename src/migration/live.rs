//! Moves of live connections on command: a served connection, in the
//! middle of a response or between requests, moves to a node named by the
//! caller (the operator's `move`, and a draining node's moves).
//!
//! The move is the usual one ([`super::source`]): the TCB, the service
//! state when a response is in progress ([`super::service_state`]), and the
//! unconsumed request bytes; the forwarder follows the move notice.
//!
//! A response is regenerated from its progress while it is being produced.
//! Once it is wholly produced, the connection moves as between requests,
//! when the client has acknowledged its last bytes ([`MoveError::NotYet`]
//! until then).

use crate::node::{Node, Phase};
use crate::port::Port;
use ipos_http::NotMovable;
use ipos_wire::Flow;
use smoltcp::time::Instant;
use smoltcp::wire::Ipv4Address;
use std::fmt;

/// Why a connection was not moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveError {
    /// This node holds no connection on that flow.
    NoConnection,
    /// The connection is not served here now (it awaits its first request
    /// head, or is moving already, or awaits its source's commit).
    NotServed,
    /// The target is not a farm node, is this node, or is down.
    BadTarget,
    /// Not yet: bytes of a response that is wholly produced are still
    /// unacknowledged (they are not regenerated), or a `100 Continue` is
    /// going out. Try again once the client has acknowledged them.
    NotYet,
    /// The connection cannot move (see `migrations_refused`): it is not to
    /// the VIP, not established, closing, reading an upload, or holds more
    /// unread request bytes than a move carries.
    NotMovable,
}

impl fmt::Display for MoveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MoveError::NoConnection => "no such connection here",
            MoveError::NotServed => "the connection is not served here now",
            MoveError::BadTarget => "the target is not a live farm node other than this one",
            MoveError::NotYet => "not yet: the end of a response is unacknowledged",
            MoveError::NotMovable => "the connection cannot move now",
        })
    }
}

impl std::error::Error for MoveError {}

impl<P: Port> Node<P> {
    /// Starts moving the connection on `flow` (client -> VIP) to the node
    /// at `target`. The move completes (or falls back to serving here)
    /// on later polls, as every move does.
    pub fn move_connection(
        &mut self,
        now: Instant,
        flow: &Flow,
        target: Ipv4Address,
    ) -> Result<(), MoveError> {
        let slot = self.conns.find(flow).ok_or(MoveError::NoConnection)?;
        let conn = self.conns.get(slot).ok_or(MoveError::NoConnection)?;
        if !matches!(conn.phase(), Phase::Serving | Phase::FellBack { .. }) {
            return Err(MoveError::NotServed);
        }
        if Some(flow.dst_addr) != self.id.farm_vip {
            return Err(MoveError::NotMovable);
        }
        let (unacked, unsent) = conn.ep.unacked_and_unsent();
        match conn.app.progress(unacked.len() + unsent.len()) {
            Err(
                NotMovable::InFlightBetweenRequests
                | NotMovable::PreviousUnacked
                | NotMovable::ContinuePending,
            ) => return Err(MoveError::NotYet),
            Err(_) => return Err(MoveError::NotMovable),
            Ok(_) => {}
        }
        let to = self.peers.by_ip(target).ok_or(MoveError::BadTarget)?;
        if to == self.peers.me() || self.peers.is_down(to) {
            return Err(MoveError::BadTarget);
        }
        if self.start_migration(now, slot, to) {
            Ok(())
        } else {
            Err(MoveError::NotMovable)
        }
    }
}
