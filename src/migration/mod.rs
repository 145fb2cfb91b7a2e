//! Endpoint migration: the protocol, and one file per role.
//!
//! | file | what it holds |
//! |---|---|
//! | [`source`] | the node that moves an endpoint away: the policy's decision, the connection packet and the carried bytes, the acknowledgement, the commit, the fall-back |
//! | [`target`] | the node that receives it: reassembly of the carried bytes, import, acknowledgement, the wait for the commit |
//! | [`live`] | moves of served connections on command (mid-response included) |
//! | [`rehome`] | a keep-alive connection's later requests: the decision at each request boundary, and its bounds |
//! | [`forwarder`] | the node that receives the client's packets for an endpoint that lives elsewhere: the forward entry, data frames, notices |
//! | [`udp`] | the same roles for UDP flows |
//! | [`retry`] | the one retry / back-off schedule every role uses |
//! | [`carried`] | the bytes a move carries: rebuilt client segments and their reassembly (no I/O) |
//! | [`notice`] | the connection notice extension (no I/O) |
//! | [`service_state`] | the service-state extension: a moving application's progress (no I/O) |
//! | [`clamp`] | the sane ranges an imported TCB is put into (no I/O) |
//! | [`head`] | the request head a decision reads, as one slice of the receive ring (no I/O) |
//!
//! The role files are `impl Node` blocks: each role reads and writes the
//! node's tables directly, on the node's poll loop.
//!
//! # Protocol (source S, target T, front/forwarder F; S = F on a first move)
//!
//! 1. S freezes the endpoint (it stops sending on it and holds every client
//!    packet that arrives meanwhile: the connection is in the *temporary*
//!    state), exports its TCB and sends T a **TCP connection packet**
//!    (type 0x01/0x01): server IP and port = T's, the 140-byte TCB. In the
//!    TCB's node-owned fields, `link_addr` is the client's next-hop MAC and
//!    `next_hop` the IPv4 address of F, the node that receives the client's
//!    packets and will forward them.
//! 2. Bytes S received but its application did not consume (the request
//!    head, typically) travel as **TCP data frames** (0x02/0x01) right after
//!    the connection packet: each holds a client IPv4/TCP packet rebuilt by S
//!    (client -> VIP, `seq` = the byte's sequence number, ACK|PSH, valid
//!    checksums), cut into [`CHUNK`]-byte pieces at fixed offsets from
//!    `rcv_nxt - rcv_data_len`. S migrates only established endpoints
//!    whose peer has not closed its side (so the carried bytes end exactly
//!    at `rcv_nxt`); any other keeps its connection. Send data (sent but
//!    unacknowledged, then unsent) is never carried either: when the send
//!    buffer is not empty, or the application is past its first request, S
//!    sends a **service-state record** (extension 0x12, [`service_state`])
//!    right after the connection packet, announced by the TCB's
//!    `service_len`, from which T rebuilds the application and regenerates
//!    the TCB's `snd_data_len` send bytes, byte for byte.
//! 3. T keeps a [`Reassembly`] per connection until all `rcv_data_len` bytes
//!    (and the announced service state) are there, then imports the endpoint (*forward-connect* entry: owned
//!    here, fed by F) and answers with a **migration acknowledgement** (0x03).
//!    It does not send the client a single segment yet.
//! 4. On the acknowledgement S installs a **forward** entry (client IP and
//!    port -> T), answers T with an acknowledgement of its own (the *commit*,
//!    an ipos use of type 0x03 in the other direction), sends T the client
//!    packets it held, and drops its copy of the endpoint. If S is not F (a
//!    chained move), S also tells F with a *connection notice* so that F
//!    forwards to T directly. On the commit T starts serving: its segments go
//!    straight to the client, from the VIP.
//! 5. Lost frames: S resends steps 1 and 2 after a retry interval that
//!    doubles each time up to 8 times the first (40, 80, 160, 320, 320 ms...);
//!    T answers a repeated connection packet for an endpoint it already holds
//!    with another acknowledgement, and repeats its acknowledgement on the
//!    same schedule until the commit arrives; S answers an acknowledgement for
//!    a connection it already forwards to T with another commit. After its
//!    bounded retries S thaws the endpoint, serves the connection itself, and
//!    sends T a connection notice naming S as the owner; T drops its silent
//!    copy on that notice, or by itself after twice S's retries. Because T
//!    says nothing before the commit, the client never hears from two owners:
//!    no byte is sent twice, whichever frames are lost.
//! 6. A node that receives a connection packet for a client it forwards
//!    (the endpoint comes back, a -> b -> a) drops its forward entry first.
//!    A connection packet whose TCB names another client ISN than the
//!    connection T holds on those ports is a new incarnation: T replaces an
//!    old one in TIME-WAIT (or closed), and refuses it otherwise.
//! 7. A SYN from a forwarded client port follows the forward entry to the
//!    owner: in TIME-WAIT there, RFC 6191 may let it open a new connection
//!    (fed by the same forwarder); an established one answers with a
//!    challenge ACK (RFC 5961). An owner that does not know the flow (its
//!    close notice was lost, or it restarted) answers a data frame for it
//!    with a notice: "closed" for a SYN (the client's next SYN is F's to
//!    accept), "reset" for any other segment (F removes its entry without
//!    remembering the flow, so the client's next segment gets a RST).
//! 8. A dead or restarted owner: F calls a node down when its adverts stop
//!    for `peer_down_after`, or sees a restart in its adverts; the forward
//!    entries of that node's former run go (see [`forwarder`]), and the
//!    clients get a RST on their next segment. Moves towards it that are in
//!    flight fall back after their retries. With a farm key a restart is
//!    known from the first frame of its new epoch ([`crate::auth`]).
//! 9. Trust: with a farm key every frame above is sealed and checked before
//!    it is parsed ([`crate::auth`]). With or without one, a notice is taken
//!    only from the connection's current owner (by F) or from the move's
//!    source before its commit (by T); a connection packet only for the
//!    farm's VIP and a service port; an imported TCB has its tunables
//!    clamped into T's ranges ([`clamp`]).
//! 10. Later moves: a connection may move again at a later request
//!     ([`rehome`]) or in the middle of a response ([`live`]: drains,
//!     rebalancing, by hand); each is the same exchange, the forwarder
//!     following the move notice, within the connection's move budget.
//! 11. End: when T's endpoint closes, T sends F a connection notice with owner
//!     0.0.0.0:0 and F removes its forward entry; both remember the flow for a
//!     while to drop its late duplicates quietly. A forward entry's idle
//!     time-out outlives the endpoint's (every client packet refreshes both).
//!
//! The connection notice's format is in [`notice`].

pub mod carried;
pub mod clamp;
pub mod forwarder;
pub(crate) mod head;
pub mod live;
pub mod notice;
pub mod rehome;
pub mod retry;
pub mod service_state;
pub mod source;
pub mod target;
pub mod udp;

pub use carried::{chunk_count, emit_request_segment, ChunkError, Reassembly};
pub use notice::{Notice, NOTICE_LEN};
pub use retry::Retry;

/// Moves a connection may make for its first request (a -> b -> c is two);
/// a node holding an endpoint that has moved this often keeps it for that
/// request, whatever its policy says. Later requests may move it again
/// ([`rehome`]), within its life's budget (`NodeOptions::max_moves`).
pub const MAX_MOVES: u16 = 2;
/// Payload bytes per rebuilt request segment.
pub const CHUNK: usize = 1400;
/// Most chunks a migration carries (so at most 89 600 unconsumed bytes).
pub const MAX_CHUNKS: usize = 64;
/// Most unconsumed bytes a migration carries; more keeps the connection local.
pub const MAX_CARRIED: usize = CHUNK * MAX_CHUNKS;
