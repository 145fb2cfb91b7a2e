//! Timers that cost what is due: every deadline a node keeps (connection
//! timers, move retries, commits awaited, request-head and idle time-outs,
//! UDP entries' idle time-outs, incoming moves' time-outs,
//! recently closed flows, peers' silence, ARP entries' age and resolutions'
//! retries) sits in one [`TimerWheel`]; a poll hands out at most
//! [`TIMER_BUDGET`] due entries, so no poll walks a table. The forward
//! table keeps its entries' idle time-outs itself (in lists by due time, see
//! `src/tables/forward.rs`) and takes at most [`FORWARD_EXPIRY_BUDGET`] of
//! them a poll. The advert is the one periodic job; the forward table's
//! sweep (after a peer went down) looks at most `forward_sweep_budget`
//! ([`FORWARD_SWEEP_BUDGET`]) entries a poll.
//!
//! Entries are cancelled lazily: each names the state it was armed for (a
//! connection's timer sequence number, a table entry's generation, an
//! incarnation's ISN) and is ignored when that state has moved on.

use super::{Node, PeerId, Phase};
use crate::counters::Event;
use crate::port::Port;
use crate::tables::{ForwardEntry, ForwardKey, TableFull};
use crate::timer_wheel::TimerWheel;
use ipos_wire::Flow;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::Ipv4Address;

/// Due wheel entries handled per poll, at most: a burst of expiries is
/// spread over polls instead of stalling one.
pub const TIMER_BUDGET: usize = 1024;

/// Forward entries whose idle time-out is taken per poll, at most: the
/// entries of one of the table's idle buckets (a thousandth of the time-out)
/// come due together, and are spread over polls.
pub const FORWARD_EXPIRY_BUDGET: usize = 64;

/// Forward entries the sweep looks at per poll by default (65 536 entries,
/// a full table, take 256 polls).
pub const FORWARD_SWEEP_BUDGET: usize = 256;

/// What a wheel entry is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The connection in `slot`, armed as its `seq`-th timer.
    Conn { slot: u32, seq: u32 },
    /// An incoming move (the client's ISN tells the incarnation) must have
    /// all its carried bytes by now.
    Pending { flow: Flow, irs: u32 },
    /// A UDP flow entry (generation `gen`): its move's retry, or its idle time-out.
    Udp { key: ForwardKey, gen: u32 },
    /// A recently closed flow is forgotten (generation `gen`).
    Closed { flow: Flow, gen: u32 },
    /// A peer that is up must have advertised again by now.
    Peer { peer: PeerId },
    /// An ARP cache entry (generation `gen`) is removed unless heard meanwhile.
    ArpAge { ip: Ipv4Address, gen: u32 },
    /// An ARP resolution (generation `gen`) asks again or gives up.
    ArpRetry { ip: Ipv4Address, gen: u32 },
}

/// The node's wheel, the periodic advert, and the scratch list of due entries.
pub(crate) struct Timers {
    pub wheel: TimerWheel<Timer>,
    due: Vec<Timer>,
    next_advert: Instant,
}

impl Timers {
    /// Timers starting at `now`, with ticks of `tick`.
    pub fn new(now: Instant, tick: Duration) -> Timers {
        Timers {
            wheel: TimerWheel::new(now, tick),
            due: Vec::with_capacity(TIMER_BUDGET),
            next_advert: now,
        }
    }

    /// Schedules `t` at `at`.
    pub fn arm(&mut self, at: Instant, t: Timer) {
        self.wheel.insert(at, t);
    }
}

impl<P: Port> Node<P> {
    /// Runs what is due: up to [`TIMER_BUDGET`] wheel entries, and the advert.
    pub(crate) fn run_timers(&mut self, now: Instant) {
        let mut due = std::mem::take(&mut self.timers.due);
        self.timers.wheel.expire(now, TIMER_BUDGET, &mut due);
        for t in due.drain(..) {
            match t {
                Timer::Conn { slot, seq } => self.on_conn_timer(now, slot, seq),
                Timer::Pending { flow, irs } => self.on_pending_timer(flow, irs),
                Timer::Udp { key, gen } => self.on_udp_timer(now, key, gen),
                Timer::Closed { flow, gen } => {
                    if self.closed.get(&flow) == Some(&gen) {
                        self.closed.remove(&flow);
                    }
                }
                Timer::Peer { peer } => self.on_peer_timer(now, peer),
                Timer::ArpAge { ip, gen } => self.on_arp_age(now, ip, gen),
                Timer::ArpRetry { ip, gen } => self.on_arp_retry(now, ip, gen),
            }
        }
        self.timers.due = due;
        let expired = self.forward.expire_idle(now, FORWARD_EXPIRY_BUDGET);
        self.counters.add(Event::ForwardExpired, expired as u64);
        self.sweep_forward(self.opts.forward_sweep_budget);
        if self.opts.advert_interval > Duration::ZERO && now >= self.timers.next_advert {
            self.timers.next_advert = now + self.opts.advert_interval;
            self.advertise(now);
            self.plan_rebalance(now);
        }
    }

    /// Makes sure the connection in `slot` is in the wheel no later than it
    /// next needs attention. An entry armed earlier stays (it re-arms when it
    /// fires); one armed later is superseded by a new, earlier one.
    pub(crate) fn arm_conn(&mut self, slot: u32, now: Instant) {
        let (head, idle) = (self.opts.head_timeout, self.opts.conn_idle);
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        let at = c.next_deadline(head, idle).max(now);
        self.arm_conn_at(slot, at);
    }

    /// Arms the connection in `slot` at `at` at the latest (earlier than
    /// its own deadlines: to retry what the transmit queue refused).
    pub(crate) fn arm_conn_at(&mut self, slot: u32, at: Instant) {
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        if c.timer_at.is_some_and(|t| t <= at) {
            return;
        }
        c.timer_seq = c.timer_seq.wrapping_add(1);
        c.timer_at = Some(at);
        let seq = c.timer_seq;
        self.timers.arm(at, Timer::Conn { slot, seq });
    }

    fn on_conn_timer(&mut self, now: Instant, slot: u32, seq: u32) {
        let (head, idle) = (self.opts.head_timeout, self.opts.conn_idle);
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        if c.timer_seq != seq || c.timer_at.is_none() {
            return; // superseded, or the slot was reused
        }
        c.timer_at = None;
        match c.phase() {
            Phase::Exporting(export) => {
                if export.retry.is_due(now) {
                    self.retry_export(now, slot);
                }
            }
            Phase::AwaitingCommit(wait) => {
                if wait.retry.is_due(now) {
                    self.await_commit(now, slot);
                }
            }
            Phase::AwaitingHead | Phase::Serving | Phase::FellBack { .. } => {
                if c.head_since.is_some_and(|t| now >= t + head) {
                    // Slowloris (no whole request head in time), or a
                    // half-open connection whose client never completed
                    // the handshake (a SYN flood's).
                    let half_open = c.ep.state() == ipos_tcp::State::SynReceived;
                    c.ep.abort();
                    c.head_since = None;
                    self.counters.inc(if half_open {
                        Event::TcpHalfOpenTimeouts
                    } else {
                        Event::HttpHeadTimeouts
                    });
                } else if now >= c.last_active + idle {
                    c.ep.abort();
                    self.counters.inc(Event::ConnIdleClosed);
                }
                // Runs the endpoint's own timers too (poll_transmit).
                self.service(now, slot);
            }
        }
        self.arm_conn(slot, now);
    }

    /// Installs (or replaces) a forward entry; a new one expires when idle
    /// for `forward_idle` (the table keeps the time-out).
    pub(crate) fn install_forward(
        &mut self,
        key: ForwardKey,
        entry: ForwardEntry,
        now: Instant,
    ) -> Result<(), TableFull> {
        self.forward.insert(key, entry, now).map(|_| ())
    }

    fn on_pending_timer(&mut self, flow: Flow, irs: u32) {
        if self.pending.get(&flow).is_some_and(|r| r.tcb.irs == irs) {
            self.pending.remove(&flow);
            self.counters.inc(Event::PendingExpired);
        }
    }

    /// Remembers for a while that `flow` just closed here, so that its late
    /// duplicates (an ACK of a retransmitted FIN) are dropped quietly instead
    /// of reset.
    pub(crate) fn remember_closed(&mut self, flow: Flow, now: Instant) {
        let gen = self.new_gen();
        if self.closed.insert(flow, gen).is_ok() {
            self.timers
                .arm(now + CLOSED_LINGER, Timer::Closed { flow, gen });
        }
    }
}

/// How long a node remembers a connection that closed here: longer than a
/// client's retransmissions of its last segments take through heavy loss
/// (the kernel keeps TIME-WAIT for 60 s for the same reason; this costs a
/// table entry, not an endpoint).
pub const CLOSED_LINGER: Duration = Duration::from_secs(30);
