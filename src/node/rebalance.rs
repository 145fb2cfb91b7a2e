//! Rebalancing (off by default: `[policy] rebalance = true`): a node whose
//! load is far above the farm's average moves some of its long-lived
//! connections to the least loaded live nodes.
//!
//! At each of its adverts, a node compares the connections it serves with
//! the average over the live nodes that listen (its own row included, from
//! the latest adverts). When it serves more than `rebalance_factor` times
//! the average and at least [`MIN_EXCESS`] more than it, it schedules moves
//! for half the excess (so that two nodes deciding on the same stale
//! adverts cannot swap their loads), at most `rebalance_rate` per second (a
//! token bucket, bursts of a tenth of it).
//! The moves go to the node the policy picks by load; a connection moves
//! when it is served here, to the VIP, has lived `rebalance_min_age`, and
//! can move now (mid-response included); the walk looks at
//! [`super::DRAIN_BUDGET`] slots per poll, never the whole table at once.
//! A connection's age counts from its arrival on this node, so a moved one
//! stays `rebalance_min_age` where it went before it may move again, and it
//! never moves beyond its move budget (`max_moves`).

use super::rate::TokenBucket;
use super::{Node, Phase};
use crate::counters::Event;
use crate::port::Port;
use ipos_policy::Reason;
use smoltcp::time::Instant;

/// Fewest connections above the average before a node rebalances.
pub const MIN_EXCESS: usize = 4;

/// Moves scheduled by the last advert, where the walk stands, and the
/// per-second budget.
#[derive(Debug)]
pub(crate) struct RebalanceState {
    left: usize,
    cursor: usize,
    budget: TokenBucket,
}

impl RebalanceState {
    /// At most `rate` moves per second (bursts of a tenth of it, at least one).
    pub fn new(rate: u32) -> RebalanceState {
        RebalanceState {
            left: 0,
            cursor: 0,
            budget: TokenBucket::new(rate, (rate / 10).max(1)),
        }
    }
}

impl<P: Port> Node<P> {
    /// At an advert: schedules moves when this node is far above the average.
    pub(crate) fn plan_rebalance(&mut self, now: Instant) {
        let Some(r) = self.opts.rebalance else { return };
        if self.drain.is_some() {
            return;
        }
        let now_ms = now.total_millis() as u64;
        let port = self.id.service_ports.first().copied().unwrap_or(80);
        let (mut nodes, mut total) = (0usize, 0usize);
        for (ip, s) in self.view.servers().iter() {
            if self.view.is_live(ip, now_ms, self.id.ip)
                && self.view.listening().get(ip, port).is_some()
            {
                nodes += 1;
                total += s.established as usize;
            }
        }
        // A node on several lanes: the node's load decides, and each lane
        // moves its share of the excess.
        let (mine, lanes) = match self.lane.as_ref() {
            Some(l) => (l.total_serving(), l.count()),
            None => (self.serving.get(), 1),
        };
        if nodes < 2 {
            return;
        }
        let avg = total.div_ceil(nodes);
        let excess = mine.saturating_sub(avg);
        let far = (mine as f64) > r.factor * (total as f64 / nodes as f64);
        self.rebalance.left = if far && excess >= MIN_EXCESS {
            (excess / 2).div_ceil(lanes)
        } else {
            0
        };
    }

    /// Moves scheduled connections, looking at a bounded number of slots.
    pub(crate) fn rebalance_step(&mut self, now: Instant) {
        let Some(r) = self.opts.rebalance else { return };
        let n = self.conns.slot_count();
        if self.rebalance.left == 0 || n == 0 || !self.rebalance.budget.ready(now) {
            return;
        }
        let mut cursor = self.rebalance.cursor % n;
        for _ in 0..super::DRAIN_BUDGET.min(n) {
            if self.rebalance.left == 0 {
                break;
            }
            let slot = cursor as u32;
            cursor = (cursor + 1) % n;
            let Some(conn) = self.conns.get(slot) else {
                continue;
            };
            let flow = conn.ep.flow();
            let eligible = matches!(conn.phase(), Phase::Serving)
                && conn.moves < self.opts.max_moves
                && now - conn.born >= r.min_age
                && Some(flow.dst_addr) == self.id.farm_vip;
            if !eligible {
                continue;
            }
            let d = self.ask_policy(now, &flow, "/", None);
            if d.target == self.id.ip || d.reason != Reason::Load {
                // This node is (one of) the least loaded now: done.
                self.rebalance.left = 0;
                break;
            }
            // One that cannot move now (its last bytes unacknowledged, an
            // upload...) is looked at again on a later pass.
            if !self.rebalance.budget.ready(now) {
                break;
            }
            if self.move_connection(now, &flow, d.target).is_ok() {
                self.rebalance.left -= 1;
                self.counters.inc(Event::RebalanceMoves);
                self.rebalance.budget.take(now);
            }
        }
        self.rebalance.cursor = cursor;
    }
}
