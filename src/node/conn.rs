//! A connection this node holds: its endpoint, its application, and where it
//! stands in the farm (its [`Phase`] and its [`Origin`]).

use super::app::App;
use super::PeerId;
use crate::migration::source::Export;
use crate::migration::target::AwaitCommit;
use ipos_http::HeadWait;
use ipos_tcp::Endpoint;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::EthernetAddress;

/// One entry of the connection table.
pub(crate) struct Conn<B> {
    pub ep: Endpoint,
    pub app: App,
    /// Last segment from the client.
    pub last_active: Instant,
    /// When the connection came to this node (accepted or imported).
    pub born: Instant,
    /// Next-hop MAC towards the client.
    pub peer_mac: EthernetAddress,
    /// The application asked to close and the endpoint was told.
    pub close_requested: bool,
    /// Read with [`Conn::phase`]; changed only by [`Conn::set_phase`], which
    /// keeps the node's count of served connections.
    phase: Phase<B>,
    pub origin: Origin,
    /// How many times the endpoint has moved (carried in the TCB's move count).
    pub moves: u16,
    /// Moved here at a later request: the request next in the receive
    /// buffer is served here without asking the policy (see
    /// `migration::rehome`); cleared once the application has been fed.
    pub placed: bool,
    /// Since when the client owes a whole request head (None: it owes none).
    pub head_since: Option<Instant>,
    /// The connection's entry in the timer wheel: its deadline, and the
    /// sequence number that tells it from older (cancelled) entries.
    pub timer_at: Option<Instant>,
    pub timer_seq: u32,
    /// Counted in the node's SYN-RECEIVED budget (a passive open whose
    /// handshake is not complete); cleared, and the count lowered, once the
    /// endpoint leaves SYN-RECEIVED or the entry goes.
    pub half_open: bool,
}

impl<B> Conn<B> {
    /// A new entry (count it with [`ServingCount::add`] once inserted).
    pub fn new(
        ep: Endpoint,
        now: Instant,
        peer_mac: EthernetAddress,
        phase: Phase<B>,
        origin: Origin,
        moves: u16,
    ) -> Conn<B> {
        Conn {
            ep,
            app: App::new(),
            last_active: now,
            born: now,
            peer_mac,
            close_requested: false,
            phase,
            origin,
            moves,
            placed: false,
            head_since: Some(now),
            timer_at: None,
            timer_seq: 0,
            half_open: false,
        }
    }

    /// When this connection next needs attention: its move's retry, its
    /// commit's wait, or (served or awaiting its head) the earliest of its
    /// endpoint's timers, its request-head deadline and its idle deadline.
    pub fn next_deadline(&self, head_timeout: Duration, idle: Duration) -> Instant {
        match &self.phase {
            Phase::Exporting(export) => export.retry.next_at(),
            Phase::AwaitingCommit(wait) => wait.retry.next_at(),
            Phase::AwaitingHead | Phase::Serving | Phase::FellBack { .. } => {
                let mut at = self.last_active + idle;
                if let Some(t) = self.ep.poll_timeout() {
                    at = at.min(t);
                }
                if let Some(since) = self.head_since {
                    at = at.min(since + head_timeout);
                }
                at
            }
        }
    }

    /// Notes whether the application now waits for a request head.
    pub fn track_head(&mut self, now: Instant) {
        match self.app.head_wait() {
            HeadWait::FirstRequest | HeadWait::Partial => {
                self.head_since.get_or_insert(now);
            }
            HeadWait::Idle | HeadWait::NotWaiting => self.head_since = None,
        }
    }

    /// Where the connection stands.
    pub fn phase(&self) -> &Phase<B> {
        &self.phase
    }

    /// The state inside the current phase (held packets, retries). To change
    /// the phase itself, use [`Conn::set_phase`].
    pub fn phase_mut(&mut self) -> &mut Phase<B> {
        &mut self.phase
    }

    /// Moves the connection to `phase`; returns the phase it left.
    pub fn set_phase(&mut self, phase: Phase<B>, serving: &mut ServingCount) -> Phase<B> {
        serving.remove(&self.phase);
        serving.add(&phase);
        std::mem::replace(&mut self.phase, phase)
    }

    /// The connection stays here: it is served, and its receive window
    /// opens to the full buffer (it was kept small while it might move).
    pub fn settle(&mut self, serving: &mut ServingCount) {
        self.set_phase(Phase::Serving, serving);
        self.ep.set_rcv_window_cap(None);
    }
}

/// How many connections are served here (in [`Phase::Serving`] or
/// [`Phase::FellBack`]): the load a node advertises, kept as phases change
/// so that no one counts by walking the table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ServingCount(usize);

impl ServingCount {
    /// A connection in `phase` joined.
    pub fn add<B>(&mut self, phase: &Phase<B>) {
        self.0 += usize::from(phase.is_serving());
    }

    /// A connection in `phase` left.
    pub fn remove<B>(&mut self, phase: &Phase<B>) {
        self.0 -= usize::from(phase.is_serving());
    }

    /// The count.
    pub fn get(&self) -> usize {
        self.0
    }
}

/// Where a connection stands. One value at a time: a connection cannot be
/// both moving away and waiting for a commit, say.
pub(crate) enum Phase<B> {
    /// Waiting for the first request head before the policy decides where
    /// the connection lives (only connections that may move).
    AwaitingHead,
    /// Served here.
    Serving,
    /// Being moved to a target (FIG. 12's *temporary* entry): the endpoint
    /// is frozen and client packets are held.
    Exporting(Box<Export<B>>),
    /// Imported, waiting for the source's commit: the endpoint says nothing
    /// to the client until it arrives.
    AwaitingCommit(AwaitCommit),
    /// Served here after its move to `target` was given up; a late
    /// acknowledgement from that target gets the abort notice again.
    FellBack { target: PeerId },
}

impl<B> Phase<B> {
    /// True while the endpoint must not talk to the client nor consume input.
    pub fn is_frozen(&self) -> bool {
        matches!(self, Phase::Exporting(_) | Phase::AwaitingCommit(_))
    }

    /// True when the application is served here (decision taken).
    pub fn is_serving(&self) -> bool {
        matches!(self, Phase::Serving | Phase::FellBack { .. })
    }
}

/// How the client's packets reach this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Accepted here: the client's packets arrive straight from the wire
    /// (FIG. 12's *local* entry).
    Accepted,
    /// Imported from another node; `forwarder` wraps the client's packets in
    /// data frames to us (FIG. 12's *forward-connect* entry). It is this node
    /// itself when the connection came back to its front.
    Imported { forwarder: PeerId },
}

impl Origin {
    /// The forwarder to tell when the connection ends or moves, unless it is `me`.
    pub fn remote_forwarder(&self, me: PeerId) -> Option<PeerId> {
        match *self {
            Origin::Imported { forwarder } if forwarder != me => Some(forwarder),
            _ => None,
        }
    }

    /// True for an imported connection.
    pub fn is_imported(&self) -> bool {
        matches!(self, Origin::Imported { .. })
    }
}
