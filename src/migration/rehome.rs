//! Re-homing: a keep-alive connection moves again at a later request.
//!
//! A connection is placed at its first request head ([`Node::decide`]). At
//! each later request boundary (the previous response wholly produced,
//! nothing of the next request consumed, its head complete in the receive
//! buffer), the owner asks the policy again before its application reads
//! the request. When a URL or cookie rule gives the request to another node,
//! the connection moves there, once every byte of the earlier responses is
//! acknowledged (so that none of them has to travel): the request's bytes,
//! and any after it, are carried as on a first move, the forwarder follows
//! the move notice, and the target answers the request. Load alone never
//! re-homes a connection (its requests would chase the adverts).
//!
//! Bounds:
//! - **Hysteresis of one request.** The node a connection moved to for a
//!   request serves that request without asking its own policy (the
//!   connection arrives `placed`; the boundary check applies from its next
//!   request on). Two nodes whose rules disagree therefore cannot pass a
//!   request back and forth: each request moves a connection once at most.
//! - **A move budget.** A connection makes at most `max_moves` moves in its
//!   life ([`NodeOptions::max_moves`], `[policy] max_moves`); then it stays
//!   (`rehome_over_budget`).
//!
//! Requests a client pipelines after the one that moved the connection are
//! served by the target with it. A request whose unread bytes (an upload's
//! body already received, say) exceed what a move carries (`MAX_CARRIED`) is
//! served where it is (`migrations_refused`).
//!
//! [`NodeOptions::max_moves`]: crate::node::NodeOptions::max_moves

use crate::counters::Event;
use crate::node::{Node, PeerId};
use crate::port::Port;
use ipos_policy::Reason;
use ipos_wire::Flow;
use smoltcp::time::Instant;

/// What to do with a connection stopped at a request boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Boundary {
    /// Let the application read the request here.
    Serve,
    /// Not yet: the head is incomplete (the client's to send: the head
    /// time-out runs from its first byte). Asked again at the next segment.
    WaitHead,
    /// Not yet: the head is whole but the earlier responses are not all
    /// acknowledged (the node's to wait for: no head time-out runs; the
    /// endpoint's own retransmission and idle limits still do). Asked again
    /// at the next segment.
    WaitDrain,
    /// Move the connection to this node now.
    Move(PeerId),
}

impl<P: Port> Node<P> {
    /// True when the connection on `flow` should stop at its next request boundary
    /// for a decision: it is to the VIP (so its MSS fits a data frame) and
    /// this node moves connections again at later requests.
    pub(crate) fn rehomes(&self, flow: &Flow) -> bool {
        self.opts.migration && self.opts.rehome && Some(flow.dst_addr) == self.id.farm_vip
    }

    /// The decision at a request boundary of the connection in `slot`.
    pub(crate) fn at_boundary(&mut self, now: Instant, slot: u32) -> Boundary {
        let Some(conn) = self.conns.get(slot) else {
            return Boundary::Serve;
        };
        let max_head = self.service.max_head_bytes();
        let mut scratch = std::mem::take(&mut self.head_scratch);
        let bytes = super::head::contiguous(conn.ep.unconsumed(), max_head, &mut scratch);
        let asked = match ipos_http::peek_request(bytes) {
            Ok(Some(head)) => {
                let flow = conn.ep.flow();
                let path = head.path().unwrap_or("/");
                Ok(self.ask_policy(now, &flow, path, head.cookie(self.view.cookie_name())))
            }
            Ok(None) => {
                // The rest of the head may still come, unless it never can.
                let never = conn.ep.recv_available() >= max_head || conn.ep.peer_fin_received();
                Err(if never {
                    Boundary::Serve
                } else {
                    Boundary::WaitHead
                })
            }
            // The application answers a bad head itself.
            Err(_) => Err(Boundary::Serve),
        };
        self.head_scratch = scratch;
        let d = match asked {
            Ok(d) => d,
            Err(b) => return b,
        };
        let Some(conn) = self.conns.get(slot) else {
            return Boundary::Serve;
        };
        if d.target == self.id.ip || !matches!(d.reason, Reason::Url | Reason::Cookie) {
            return Boundary::Serve;
        }
        let Some(target) = self.peers.by_ip(d.target) else {
            return Boundary::Serve;
        };
        if conn.moves >= self.opts.max_moves {
            self.counters.inc(Event::RehomeOverBudget);
            return Boundary::Serve;
        }
        let (unacked, unsent) = conn.ep.unacked_and_unsent();
        if !unacked.is_empty() || !unsent.is_empty() {
            return Boundary::WaitDrain;
        }
        self.counters.inc(match d.reason {
            Reason::Cookie => Event::DecisionCookie,
            _ => Event::DecisionUrl,
        });
        self.counters.inc(Event::RehomeMoves);
        Boundary::Move(target)
    }
}
