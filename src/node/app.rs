//! A connection's application: the built-in HTTP service, a relay to the
//! node's upstream for the connection's port ([`crate::upstream`]), or an
//! in-process application ([`crate::service`]); each driven through the
//! [`Application`] trait.
//!
//! Every connection starts with the built-in service's state, fresh: that
//! is what the front reads a request head with, and what travels when the
//! connection moves. Where the connection is first served, a port with an
//! upstream or an in-process service swaps that fresh state for its own
//! ([`App::serve_upstream`], [`App::serve_in_process`]); from then on its
//! bytes go there, and it does not move again.

use crate::counters::Counters;
use crate::service::{Application, InProcess};
use crate::upstream::conn::{count_failure, Failure, RelayCx};
use crate::upstream::{RelayConn, Upstream, UpstreamAddr};
use ipos_http::{HeadWait, HttpConn, HttpStats, NotMovable, Progress, Service};
use ipos_wire::Flow;
use std::sync::Arc;

/// What serves a connection's bytes.
pub(crate) enum App {
    /// The built-in HTTP service.
    Http(HttpConn),
    /// The node's upstream for the connection's port.
    Relay(RelayConn),
    /// An in-process application ([`crate::service`]).
    Custom(Box<dyn Application + Send>),
}

/// What an application call may need from its node.
pub(crate) struct AppCtx<'a> {
    pub service: &'a mut Service,
    pub relay: RelayCx<'a>,
}

impl App {
    /// A fresh built-in service.
    pub fn new() -> App {
        App::Http(HttpConn::new())
    }

    /// True for a built-in state that has not begun: what a connection has
    /// before the node that serves it gives it its application.
    fn is_fresh(&self) -> bool {
        match self {
            App::Http(h) => {
                h.head_wait() == HeadWait::FirstRequest
                    && !h.has_pending_output()
                    && h.stats() == HttpStats::default()
            }
            _ => false,
        }
    }

    /// Swaps a fresh built-in state for a relay to `up` (a port with an
    /// upstream, where the connection is served). A built-in state that has
    /// begun (a connection moved in the middle of a response) stays.
    pub fn serve_upstream(&mut self, up: &Upstream, addr: &Arc<UpstreamAddr>) {
        if self.is_fresh() {
            *self = App::Relay(RelayConn::new(up, addr.clone()));
        }
    }

    /// Swaps a fresh built-in state for the in-process application `f` makes.
    pub fn serve_in_process(&mut self, f: &InProcess, flow: &Flow) {
        if self.is_fresh() {
            *self = App::Custom(f.factory.open(flow));
        }
    }

    /// The relay's token of a relayed connection that is open.
    pub fn relay_token(&self) -> Option<u64> {
        match self {
            App::Relay(r) => r.token(),
            _ => None,
        }
    }

    /// Whether the application waits for a request head (the head timer).
    pub fn head_wait(&self) -> HeadWait {
        match self {
            App::Http(h) => h.head_wait(),
            App::Relay(r) if r.is_idle() => HeadWait::FirstRequest,
            App::Relay(_) | App::Custom(_) => HeadWait::NotWaiting,
        }
    }

    /// Client bytes; returns how many were consumed.
    pub fn on_recv(&mut self, ctx: &mut AppCtx<'_>, data: &[u8]) -> usize {
        match self {
            App::Http(h) => Application::on_recv(h, ctx.service, data),
            App::Relay(r) => Application::on_recv(r, &mut ctx.relay, data),
            App::Custom(c) => c.on_recv(&mut (), data),
        }
    }

    /// Bytes for the client into `out`; returns how many.
    pub fn poll_send(&mut self, ctx: &mut AppCtx<'_>, out: &mut [u8]) -> usize {
        match self {
            App::Http(h) => Application::poll_send(h, ctx.service, out),
            App::Relay(r) => Application::poll_send(r, &mut ctx.relay, out),
            App::Custom(c) => c.poll_send(&mut (), out),
        }
    }

    /// True while bytes wait to go to the client.
    pub fn has_pending_output(&self) -> bool {
        match self {
            App::Http(h) => Application::<Service>::has_pending_output(h),
            App::Relay(r) => Application::has_pending_output(r),
            App::Custom(c) => c.has_pending_output(),
        }
    }

    /// The client's FIN, after every byte before it was consumed.
    pub fn on_peer_fin(&mut self, ctx: &mut AppCtx<'_>) {
        match self {
            App::Http(h) => Application::on_peer_fin(h, ctx.service),
            App::Relay(r) => Application::on_peer_fin(r, &mut ctx.relay),
            App::Custom(c) => c.on_peer_fin(&mut ()),
        }
    }

    /// True once the connection should close after its output.
    pub fn wants_close(&self) -> bool {
        match self {
            App::Http(h) => Application::<Service>::wants_close(h),
            App::Relay(r) => Application::wants_close(r),
            App::Custom(c) => c.wants_close(),
        }
    }

    /// True when the client must be reset (its upstream failed).
    pub fn wants_reset(&self) -> bool {
        match self {
            App::Relay(r) => r.wants_reset(),
            _ => false,
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
    /// A relayed connection moves only before its first byte; one served
    /// by an in-process application does not move.
    pub fn progress(&self, in_flight: usize) -> Result<Progress, NotMovable> {
        match self {
            App::Http(h) => h.progress(in_flight),
            App::Relay(r) if r.is_idle() => HttpConn::new().progress(in_flight),
            App::Relay(_) | App::Custom(_) => Err(NotMovable::External),
        }
    }

    /// The built-in service's counts (none for the others).
    pub fn stats(&self) -> HttpStats {
        match self {
            App::Http(h) => h.stats(),
            _ => HttpStats::default(),
        }
    }
}
