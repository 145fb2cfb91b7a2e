//! The Rust service API: what serves a connection's byte stream inside a
//! node.
//!
//! An [`Application`] is one connection's state machine, driven by the
//! node's TCP glue with no I/O of its own: the node gives it the client's
//! bytes in order as they arrive, asks it for bytes to send when the
//! connection's send buffer has room, tells it of the client's FIN, and
//! closes the connection (a FIN after everything it produced) once it wants
//! that. The built-in services are written against it: the HTTP service
//! (`ipos_http::HttpConn`, with its `Service` as the context) and the relay
//! to an upstream process ([`crate::upstream::RelayConn`], with the relay
//! as the context). An in-process application of your own needs no
//! context: implement `Application` (the context defaults to `()`) and a
//! [`ServiceFactory`] that makes one per connection, and name its port in
//! [`NodeOptions::services`](crate::node::NodeOptions::services).
//!
//! ```text
//! on data:   n = app.on_recv(cx, bytes)    the node drops n bytes from its receive
//!                                          buffer; the rest stays, and the TCP
//!                                          window closes until they are taken
//! to send:   n = app.poll_send(cx, room)   while has_pending_output() and the send
//!                                          buffer has room
//! on FIN:    app.on_peer_fin(cx)           once every byte before it was taken
//! close:     when wants_close() and nothing is pending: the node sends its FIN
//! ```
//!
//! The calls come from the poll loop: they must not block, sleep or make
//! syscalls (hand such work to a thread of your own over a bounded queue, as
//! the relay does). A connection is placed (moved by URL, cookie or load)
//! before its application sees a byte; an in-process application's state
//! does not travel, so its connection does not move again.
//!
//! `examples/rust_service.rs` runs one on an in-memory node.

use ipos_wire::Flow;
use std::fmt;
use std::sync::Arc;

/// One connection's application. `Cx` is what the node lends it on each
/// call (nothing, for an application of your own).
pub trait Application<Cx: ?Sized = ()> {
    /// The client's next bytes, in order; returns how many it took.
    fn on_recv(&mut self, cx: &mut Cx, data: &[u8]) -> usize;
    /// Writes bytes for the client into `out`; returns how many.
    fn poll_send(&mut self, cx: &mut Cx, out: &mut [u8]) -> usize;
    /// True while it has bytes to send.
    fn has_pending_output(&self) -> bool;
    /// The client sent its FIN (and every byte before it was taken).
    fn on_peer_fin(&mut self, cx: &mut Cx);
    /// True once the connection should close after its output.
    fn wants_close(&self) -> bool;
}

/// Makes the application of each new connection on a port. Shared by the
/// node's lanes, hence `Send + Sync`.
pub trait ServiceFactory: Send + Sync {
    /// A short name for logs.
    fn name(&self) -> &str;
    /// The application of a new connection (`flow` names the client as its
    /// source and the address it connected to as its destination).
    fn open(&self, flow: &Flow) -> Box<dyn Application + Send>;
}

/// A service port served by an in-process application.
#[derive(Clone)]
pub struct InProcess {
    pub port: u16,
    pub factory: Arc<dyn ServiceFactory>,
}

impl fmt::Debug for InProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "InProcess({} on port {})",
            self.factory.name(),
            self.port
        )
    }
}

impl Application<ipos_http::Service> for ipos_http::HttpConn {
    fn on_recv(&mut self, svc: &mut ipos_http::Service, data: &[u8]) -> usize {
        ipos_http::HttpConn::on_recv(self, svc, data)
    }
    fn poll_send(&mut self, svc: &mut ipos_http::Service, out: &mut [u8]) -> usize {
        ipos_http::HttpConn::poll_send(self, svc, out)
    }
    fn has_pending_output(&self) -> bool {
        ipos_http::HttpConn::has_pending_output(self)
    }
    fn on_peer_fin(&mut self, _svc: &mut ipos_http::Service) {
        ipos_http::HttpConn::on_peer_fin(self)
    }
    fn wants_close(&self) -> bool {
        ipos_http::HttpConn::wants_close(self)
    }
}
