//! A relayed connection on the poll loop's side: the application of a
//! connection whose service port has an upstream. It opens the upstream at
//! the client's first byte, passes bytes through the relay's rings, and
//! answers for an upstream that fails.

use super::relay::{Closer, Opened, Relay, RelayEvent};
use super::{Upstream, UpstreamAddr, UpstreamKind};
use crate::counters::{Counters, Event};
use ipos_wire::Flow;
use rtrb::{Consumer, Producer};
use std::sync::Arc;

/// Bytes relayed by one connection, each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Client bytes put in the ring towards the upstream.
    pub up: u64,
    /// Upstream bytes given to the endpoint for the client.
    pub down: u64,
}

/// The open relay of a connection.
struct Link {
    token: u64,
    to_up: Producer<u8>,
    from_up: Consumer<u8>,
    /// Dropped with the link: closes the socket.
    _closer: Closer,
    /// The upstream closed its side (all it sent is in `from_up`).
    ended: bool,
    /// The client's FIN was passed on.
    fin_passed: bool,
}

/// Where a relayed connection stands.
enum Phase {
    /// No byte from the client yet: no upstream connection.
    Idle,
    /// Connecting or connected: bytes flow both ways.
    Open(Box<Link>),
    /// The upstream failed before answering: `sent` bytes of the node's
    /// 502 answer are written; then the connection closes.
    BadGateway { sent: usize },
    /// The upstream failed: the client is reset.
    Reset,
    /// The upstream's answer (or the 502) is complete and the connection
    /// closes; the client's further bytes are read and discarded.
    Done,
}

/// What [`RelayConn::on_event`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Nothing failed.
    None,
    /// The client gets a 502.
    BadGateway,
    /// The client is reset.
    Reset,
}

/// A connection relayed to an upstream.
pub struct RelayConn {
    addr: Arc<UpstreamAddr>,
    proxy_protocol: bool,
    kind: UpstreamKind,
    phase: Phase,
    /// Some upstream byte went to the client: a failure can no longer be a 502.
    answered: bool,
    stats: RelayStats,
}

impl RelayConn {
    /// A connection on `up`'s port, not yet open.
    pub fn new(up: &Upstream, addr: Arc<UpstreamAddr>) -> RelayConn {
        RelayConn {
            addr,
            proxy_protocol: up.proxy_protocol,
            kind: up.kind,
            phase: Phase::Idle,
            answered: false,
            stats: RelayStats::default(),
        }
    }

    /// The token the relay knows the connection by, once open.
    pub fn token(&self) -> Option<u64> {
        match &self.phase {
            Phase::Open(l) => Some(l.token),
            _ => None,
        }
    }

    /// True before the first client byte (the connection may still move).
    pub fn is_idle(&self) -> bool {
        matches!(self.phase, Phase::Idle)
    }

    /// Bytes relayed so far.
    pub fn stats(&self) -> RelayStats {
        self.stats
    }

    /// Client bytes `data` arrived; returns how many were taken (the rest
    /// stays in the endpoint's receive buffer: its window closes). The first
    /// bytes open the upstream as connection `token` (when the relay's
    /// queue is full, the connection fails at once).
    fn recv(
        &mut self,
        relay: &mut Relay,
        counters: &mut Counters,
        token: u64,
        flow: &Flow,
        data: &[u8],
    ) -> usize {
        if data.is_empty() {
            return 0;
        }
        if let Phase::Idle = self.phase {
            let header = self.proxy_protocol.then(|| super::proxy::header(flow));
            match relay.open(token, self.addr.clone(), header) {
                Some(Opened {
                    to_up,
                    from_up,
                    closer,
                }) => {
                    counters.inc(Event::UpstreamOpened);
                    self.phase = Phase::Open(Box::new(Link {
                        token,
                        to_up,
                        from_up,
                        _closer: closer,
                        ended: false,
                        fin_passed: false,
                    }))
                }
                None => {
                    counters.inc(Event::UpstreamQueueFull);
                    let f = self.fail();
                    count_failure(counters, f);
                }
            }
        }
        match &mut self.phase {
            Phase::Open(l) => {
                let (n, _) = l.to_up.push_partial_slice(data);
                let n = n.len();
                if n > 0 {
                    self.stats.up += n as u64;
                    relay.kick(l.token);
                }
                n
            }
            // The request will not be answered by an upstream: discarded.
            Phase::BadGateway { .. } | Phase::Done | Phase::Reset => data.len(),
            Phase::Idle => 0,
        }
    }

    /// Writes the next bytes for the client into `out`; returns how many.
    /// `bad_gateway` is the node's whole 502 answer.
    fn send(&mut self, relay: Option<&mut Relay>, bad_gateway: &[u8], out: &mut [u8]) -> usize {
        match &mut self.phase {
            Phase::Open(l) => {
                let Some(relay) = relay else { return 0 };
                let was_full = l.from_up.slots() == l.from_up.buffer().capacity();
                let (n, _) = l.from_up.pop_partial_slice(out);
                let n = n.len();
                if n > 0 {
                    self.answered = true;
                    self.stats.down += n as u64;
                    if was_full || !l.ended {
                        // The helper may wait for room to read more.
                        relay.kick(l.token);
                    }
                }
                if l.ended && l.from_up.is_empty() {
                    self.phase = Phase::Done;
                }
                n
            }
            Phase::BadGateway { sent } => {
                let rest = &bad_gateway[*sent..];
                let n = rest.len().min(out.len());
                out[..n].copy_from_slice(&rest[..n]);
                *sent += n;
                if *sent == bad_gateway.len() {
                    self.phase = Phase::Done;
                }
                n
            }
            Phase::Idle | Phase::Reset | Phase::Done => 0,
        }
    }

    /// True while bytes wait to go to the client.
    fn pending(&self) -> bool {
        match &self.phase {
            Phase::Open(l) => !l.from_up.is_empty(),
            Phase::BadGateway { .. } => true,
            _ => false,
        }
    }

    /// The client sent its FIN (and every byte before it was taken).
    fn peer_fin(&mut self, relay: &mut Relay) {
        match &mut self.phase {
            Phase::Open(l) if !l.fin_passed => {
                l.fin_passed = true;
                relay.shutdown(l.token);
            }
            // A client that leaves before its first byte: nothing to relay.
            Phase::Idle => self.phase = Phase::Done,
            _ => {}
        }
    }

    /// True once the connection should close (FIN to the client).
    fn close_wanted(&self) -> bool {
        match &self.phase {
            Phase::Open(l) => l.ended && l.from_up.is_empty(),
            Phase::Done => true,
            _ => false,
        }
    }

    /// True when the client must be reset.
    pub fn wants_reset(&self) -> bool {
        matches!(self.phase, Phase::Reset)
    }

    /// An event of the relay about this connection. Returns what the client
    /// gets for a failure.
    pub fn on_event(&mut self, ev: RelayEvent) -> Failure {
        match ev {
            RelayEvent::Connected(_) | RelayEvent::Data(_) => Failure::None,
            RelayEvent::End(_) => {
                // An HTTP upstream that closes after it was sent a request
                // and before it answered anything died mid-request: that is
                // a 502, not an empty answer.
                let pending = matches!(&self.phase, Phase::Open(l) if !l.from_up.is_empty());
                if self.kind == UpstreamKind::Http
                    && !self.answered
                    && !pending
                    && self.stats.up > 0
                {
                    return self.fail();
                }
                if let Phase::Open(l) = &mut self.phase {
                    l.ended = true;
                }
                Failure::None
            }
            RelayEvent::Failed(..) => self.fail(),
        }
    }

    /// The upstream failed: a 502 for an HTTP request not yet answered, a
    /// reset otherwise.
    pub fn fail(&mut self) -> Failure {
        if self.kind == UpstreamKind::Http && !self.answered {
            self.phase = Phase::BadGateway { sent: 0 };
            Failure::BadGateway
        } else {
            self.phase = Phase::Reset;
            Failure::Reset
        }
    }
}

/// What a relayed connection borrows from its node on each call.
pub struct RelayCx<'a> {
    /// The node's relay thread (None: it could not start).
    pub relay: Option<&'a mut Relay>,
    pub counters: &'a mut Counters,
    /// The node's 502 answer.
    pub bad_gateway: &'a [u8],
    /// The connection's token for the relay (its slot and a generation).
    pub token: u64,
    pub flow: Flow,
}

impl crate::service::Application<RelayCx<'_>> for RelayConn {
    fn on_recv(&mut self, cx: &mut RelayCx<'_>, data: &[u8]) -> usize {
        match cx.relay.as_deref_mut() {
            Some(relay) => self.recv(relay, cx.counters, cx.token, &cx.flow, data),
            // No relay thread: the upstream is out of reach.
            None => {
                if self.is_idle() {
                    let f = self.fail();
                    count_failure(cx.counters, f);
                }
                data.len()
            }
        }
    }
    fn poll_send(&mut self, cx: &mut RelayCx<'_>, out: &mut [u8]) -> usize {
        self.send(cx.relay.as_deref_mut(), cx.bad_gateway, out)
    }
    fn has_pending_output(&self) -> bool {
        self.pending()
    }
    fn on_peer_fin(&mut self, cx: &mut RelayCx<'_>) {
        match cx.relay.as_deref_mut() {
            Some(relay) => self.peer_fin(relay),
            None if self.is_idle() => self.phase = Phase::Done,
            None => {}
        }
    }
    fn wants_close(&self) -> bool {
        self.close_wanted()
    }
}

/// Counts what the client of a failed upstream gets.
pub fn count_failure(counters: &mut Counters, f: Failure) {
    match f {
        Failure::None => {}
        Failure::BadGateway => counters.inc(Event::UpstreamBadGateway),
        Failure::Reset => counters.inc(Event::UpstreamResets),
    }
}

/// The answer a node gives for an upstream that failed: `502 Bad Gateway`,
/// closing, naming the node.
pub fn bad_gateway_response(node: &str) -> Vec<u8> {
    let body = format!("upstream of node {node} unavailable\n");
    format!(
        "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\nX-Ipos-Node: {node}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
