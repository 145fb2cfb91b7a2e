//! Timers, run from the poll loop: the connection scan (endpoint timers,
//! move retries, commits awaited) every `timer_scan`, the slow sweep of idle
//! table entries every 250 ms, and the advert every `advert_interval`.

use super::{Node, Phase};
use crate::counters::Event;
use crate::port::Port;
use smoltcp::time::{Duration, Instant};

/// Period of the sweep of idle table entries.
const SLOW_PERIOD: Duration = Duration::from_millis(250);

/// When each periodic job is next due.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    next_scan: Instant,
    next_slow: Instant,
    next_advert: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        let zero = Instant::from_micros(0);
        Clock {
            next_scan: zero,
            next_slow: zero,
            next_advert: zero,
        }
    }
}

impl<P: Port> Node<P> {
    /// Runs whatever periodic job is due.
    pub(crate) fn run_timers(&mut self, now: Instant) {
        if now >= self.clock.next_scan {
            self.clock.next_scan = now + self.opts.timer_scan;
            self.scan_timers(now);
        }
        if now >= self.clock.next_slow {
            self.clock.next_slow = now + SLOW_PERIOD;
            self.slow_timers(now);
        }
        if self.opts.advert_interval > Duration::ZERO && now >= self.clock.next_advert {
            self.clock.next_advert = now + self.opts.advert_interval;
            self.advertise(now);
        }
    }

    fn scan_timers(&mut self, now: Instant) {
        if self.udp_moving > 0 {
            self.udp_timers(now);
        }
        for slot in 0..self.conns.slot_count() {
            let Some(c) = self.conns.get(slot) else {
                continue;
            };
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
                _ => {
                    if c.ep.poll_timeout().is_some_and(|t| t <= now) || c.ep.is_closed() {
                        self.service(now, slot);
                    }
                }
            }
        }
    }

    fn slow_timers(&mut self, now: Instant) {
        let n = self.forward.expire(now, self.opts.forward_idle);
        for _ in 0..n {
            self.counters.inc(Event::ForwardExpired);
        }
        self.expire_pending(now);
        self.expire_udp_flows(now);
        let conn_idle = self.opts.conn_idle;
        for slot in 0..self.conns.slot_count() {
            let Some(c) = self.conns.get_mut(slot) else {
                continue;
            };
            if !matches!(c.phase(), Phase::Exporting(_)) && now >= c.last_active + conn_idle {
                c.ep.abort();
                self.counters.inc(Event::ConnIdleClosed);
                self.service(now, slot);
            }
        }
    }
}
