//! Relayed connections: the relay thread's events reach the connections they
//! name, which are then driven like any other ([`crate::upstream`]).

use super::Node;
use crate::counters::Event;
use crate::port::Port;
use crate::upstream::relay::RelayEvent;
use smoltcp::time::Instant;
use std::sync::atomic::Ordering;

/// Relay events handled per poll-loop iteration, at most (the rest wait for
/// the next one).
pub const RELAY_EVENTS_PER_POLL: usize = 64;

impl<P: Port> Node<P> {
    /// Handles the relay's events; returns how many (work done, for the
    /// poll loop's idle back-off).
    pub(crate) fn relay_events(&mut self, now: Instant) -> usize {
        let Some(relay) = self.relay.as_mut() else {
            return 0;
        };
        let mut evs = [None; RELAY_EVENTS_PER_POLL];
        let mut n = 0;
        while n < RELAY_EVENTS_PER_POLL {
            let Some(ev) = relay.next_event() else { break };
            evs[n] = Some(ev);
            n += 1;
        }
        let lost = relay.take_events_lost();
        let c = relay.counters();
        let copied = [
            (Event::UpstreamConnects, c.connects.load(Ordering::Relaxed)),
            (
                Event::UpstreamConnectFailures,
                c.connect_failures.load(Ordering::Relaxed),
            ),
            (Event::UpstreamErrors, c.errors.load(Ordering::Relaxed)),
            (Event::UpstreamBytesUp, c.bytes_up.load(Ordering::Relaxed)),
            (
                Event::UpstreamBytesDown,
                c.bytes_down.load(Ordering::Relaxed),
            ),
            (
                Event::UpstreamEventsLost,
                c.events_lost.load(Ordering::Relaxed),
            ),
        ];
        for (e, v) in copied {
            self.counters.set(e, v);
        }
        for ev in evs.into_iter().take(n).flatten() {
            self.relay_event(now, ev);
        }
        if lost {
            // Some connection's event was lost: look at every relayed one.
            for slot in 0..self.conns.slot_count() as u32 {
                if self
                    .conns
                    .get(slot)
                    .is_some_and(|c| c.app.relay_token().is_some())
                {
                    self.service(now, slot);
                }
            }
        }
        n
    }

    /// One event: the connection it names (if it is still here) hears it,
    /// and is driven.
    fn relay_event(&mut self, now: Instant, ev: RelayEvent) {
        let token = ev.token();
        let slot = (token >> 32) as u32;
        let Some(conn) = self.conns.get_mut(slot) else {
            return; // closed since
        };
        if conn.app.relay_token() != Some(token) {
            return; // another connection in that slot now
        }
        conn.app.on_relay_event(ev, &mut self.counters);
        self.service(now, slot);
    }
}
