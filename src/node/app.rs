//! A connection's application: the built-in HTTP service, or a relay to the
//! node's upstream for the connection's port ([`crate::upstream`]).
//!
//! Every connection starts with the built-in service's state, fresh: that
//! is what the front reads a request head with, and what travels when the
//! connection moves. Where the connection is first served, a port with an
//! upstream swaps that fresh state for a relay ([`App::serve_upstream`]); from
//! then on its bytes go to the upstream, and it does not move again.

use crate::counters::Counters;
use crate::upstream::conn::{count_failure, Failure};
use crate::upstream::{Relay, RelayConn, Upstream, UpstreamAddr};
use ipos_http::{HeadWait, HttpConn, HttpStats, NotMovable, Progress, Service};
use ipos_wire::Flow;
use std::sync::Arc;

/// What serves a connection's bytes.
pub(crate) enum App {
    /// The built-in HTTP service.
    Http(HttpConn),
    /// The node's upstream for the connection's port.
    Relay(RelayConn),
}

/// What an application call may need from its node.
pub(crate) struct AppCtx<'a> {
    pub service: &'a Service,
    pub relay: Option<&'a mut Relay>,
    pub counters: &'a mut Counters,
    /// The node's 502 answer.
    pub bad_gateway: &'a [u8],
    /// The connection's token for the relay (its slot and generation).
    pub token: u64,
    pub flow: Flow,
}

impl App {
    /// A fresh built-in service.
    pub fn new() -> App {
        App::Http(HttpConn::new())
    }

    /// Swaps a fresh built-in state for a relay to `up` (a port with an
    /// upstream, where the connection is served). A built-in state that has
    /// begun (a connection moved in the middle of a response) stays.
    pub fn serve_upstream(&mut self, up: &Upstream, addr: &Arc<UpstreamAddr>) {
        if let App::Http(h) = self {
            if h.head_wait() == HeadWait::FirstRequest
                && !h.has_pending_output()
                && h.stats() == HttpStats::default()
            {
                *self = App::Relay(RelayConn::new(up, addr.clone()));
            }
        }
    }

    /// The relay's token of a relayed connection that is open.
    pub fn relay_token(&self) -> Option<u64> {
        match self {
            App::Relay(r) => r.token(),
            App::Http(_) => None,
        }
    }

    /// Whether the application waits for a request head (the head timer).
    pub fn head_wait(&self) -> HeadWait {
        match self {
            App::Http(h) => h.head_wait(),
            App::Relay(r) if r.is_idle() => HeadWait::FirstRequest,
            App::Relay(_) => HeadWait::NotWaiting,
        }
    }

    /// Client bytes; returns how many were consumed.
    pub fn on_recv(&mut self, ctx: &mut AppCtx<'_>, data: &[u8]) -> usize {
        match self {
            App::Http(h) => h.on_recv(ctx.service, data),
            App::Relay(r) => match ctx.relay.as_deref_mut() {
                Some(relay) => r.on_recv(relay, ctx.counters, ctx.token, &ctx.flow, data),
                // No relay thread (it could not start): the upstream is out of reach.
                None => {
                    if r.is_idle() {
                        count_failure(ctx.counters, r.fail());
                    }
                    data.len()
                }
            },
        }
    }

    /// Bytes for the client into `out`; returns how many.
    pub fn poll_send(&mut self, ctx: &mut AppCtx<'_>, out: &mut [u8]) -> usize {
        match self {
            App::Http(h) => h.poll_send(ctx.service, out),
            App::Relay(r) => r.poll_send(ctx.relay.as_deref_mut(), ctx.bad_gateway, out),
        }
    }

    /// True while bytes wait to go to the client.
    pub fn has_pending_output(&self) -> bool {
        match self {
            App::Http(h) => h.has_pending_output(),
            App::Relay(r) => r.has_pending_output(),
        }
    }

    /// The client's FIN, after every byte before it was consumed.
    pub fn on_peer_fin(&mut self, ctx: &mut AppCtx<'_>) {
        match self {
            App::Http(h) => h.on_peer_fin(),
            App::Relay(r) => {
                if let Some(relay) = ctx.relay.as_deref_mut() {
                    r.on_peer_fin(relay);
                }
            }
        }
    }

    /// True once the connection should close after its output.
    pub fn wants_close(&self) -> bool {
        match self {
            App::Http(h) => h.wants_close(),
            App::Relay(r) => r.wants_close(),
        }
    }

    /// True when the client must be reset (its upstream failed).
    pub fn wants_reset(&self) -> bool {
        match self {
            App::Http(_) => false,
            App::Relay(r) => r.wants_reset(),
        }
    }

    /// An event of the relay for this connection (counted when it is a failure).
    pub fn on_relay_event(&mut self, ev: crate::upstream::relay::RelayEvent, c: &mut Counters) {
        if let App::Relay(r) = self {
            let f = r.on_event(ev);
            if f != Failure::None {
                count_failure(c, f);
            }
        }
    }

    /// Where the application stands, for a move (see [`HttpConn::progress`]).
    /// A relayed connection moves only before its first byte.
    pub fn progress(&self, in_flight: usize) -> Result<Progress, NotMovable> {
        match self {
            App::Http(h) => h.progress(in_flight),
            App::Relay(r) if r.is_idle() => HttpConn::new().progress(in_flight),
            App::Relay(_) => Err(NotMovable::External),
        }
    }

    /// The built-in service's counts (none for a relay).
    pub fn stats(&self) -> HttpStats {
        match self {
            App::Http(h) => h.stats(),
            App::Relay(_) => HttpStats::default(),
        }
    }
}
