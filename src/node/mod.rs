//! One node's data path over one port queue, in rooms along a packet's path.
//!
//! | room | what happens there |
//! |---|---|
//! | [`rx`](self::rx) | a received frame is classified: ARP, ICMP, client TCP or UDP, ipOS; IPv4 headers are checked |
//! | [`ipos`](self::ipos) | an ipOS frame (already checked by `ipos-wire`) goes to the role it concerns |
//! | [`tcp`](self::tcp) | a client TCP packet: forwarded to its owner, given to its endpoint, carried into a move, or a new connection; endpoints are driven and their segments sent |
//! | [`syn_flood`](self::syn_flood) | the SYN-RECEIVED budget; SYNs beyond it answered with stateless SYN cookies, and connections made from the ACKs that return them |
//! | [`udp`](self::udp) | a client UDP datagram: the echo service, or the flow's role |
//! | [`host`](self::host) | what any IPv4 host does: ARP, ICMP echo, RST for segments without a connection |
//! | [`advert`](self::advert) | server-state advertisements out and in |
//! | [`timers`](self::timers) | connection, move and table timers |
//! | [`tx`](self::tx) | buffers, frame builders and the port's transmit queue |
//! | [`lanes`](self::lanes), [`steer`](self::steer) | a node on several lcores: which lane owns a frame, and the hop to it |
//! | [`crate::migration`] | the source, target and forwarder roles (TCP and UDP) |
//!
//! A node owns its [`Port`] queue and its tables; nothing here locks. Every
//! received frame ends either handled or dropped and counted under one
//! [`DropReason`](crate::counters::DropReason).
//!
//! **What allocates.** Nothing per packet: packet buffers come from the
//! port's pool, replies are written in place, forwarded packets get their
//! ipOS header prepended in the same buffer, the tables allocate only while
//! growing to their working size. Per *connection*, the endpoint's send and
//! receive buffers hold memory only while they hold data, taken from the
//! lane's pool and given back when drained ([`ipos_tcp::buffers`]; the pool
//! allocates only when it is empty), so a half-open or an idle connection holds
//! none (and the table's room is checked before an endpoint is made); a SYN
//! answered with a cookie allocates nothing; per *move*,
//! the source boxes its export state and the list of held packets, and the
//! target allocates the reassembly buffer of the carried bytes.
//!
//! The node plays every role of a farm (see [`crate::migration`] for the
//! protocol): the *front* accepts connections on the VIP, asks the policy for
//! an owner once the request head is in, and moves the endpoint (*source*); a
//! *target* imports it and answers the client directly; a *forwarder* wraps
//! later client packets in ipOS data frames to the owner. UDP flows to the
//! VIP move the same way.

mod advert;
mod app;
mod conn;
mod drain;
mod host;
mod ipos;
mod lanes;
mod latency;
mod options;
mod peers;
mod preload;
mod rate;
mod rebalance;
mod relayed;
mod rx;
mod steer;
mod syn_flood;
mod tcp;
mod timers;
mod tx;
mod udp;

pub use drain::{DrainError, DRAIN_BUDGET};
pub use lanes::{flow_hash, lane_of_flow, Lane, MAX_LANES, RING as LANE_RING, RSS_KEY};
pub use latency::LatencyHistogram;
pub use options::{NodeOptions, Rebalance, DEFAULT_MAX_MOVES, PEER_DOWN_ADVERTS};
pub use peers::{Liveness, NodeIdentity, Peer, PeerAddr, PeerId, Peers};
pub use preload::{preload_flow, PreloadError, MAX_PRELOAD};
pub use rebalance::MIN_EXCESS;

pub(crate) use app::App;
pub(crate) use conn::{Conn, Origin, Phase, ServingCount};
pub(crate) use rx::Via;
pub(crate) use timers::Timer;

use crate::counters::{Counters, Event};
use crate::migration::udp::UdpFlow;
use crate::migration::Reassembly;
use crate::port::{Port, BURST};
use crate::tables::{ArpCache, BoundedMap, ConnectionTable, ForwardKey, ForwardTable};
use ipos_http::Service;
use ipos_policy::FarmView;
use ipos_wire::Flow;
use smoltcp::time::Instant;

/// How many entries [`Node::table_sizes`] lists.
pub const TABLE_SIZES: usize = 13;
/// Commits a node sends again, a second, to targets that acknowledge a finished move
/// once more (their first commit was lost).
pub const RECOMMIT_RATE: u32 = 64;
/// The process id advertised for the built-in HTTP service.
pub const HTTP_PID: u32 = 1;
/// The process id advertised for the built-in UDP echo service.
pub const UDP_ECHO_PID: u32 = 2;

/// One node's data path over one port queue.
pub struct Node<P: Port> {
    pub(crate) port: P,
    pub(crate) id: NodeIdentity,
    pub(crate) peers: Peers,
    pub(crate) opts: NodeOptions,
    /// TCP configuration of connections that stay here (MSS for the client path).
    pub(crate) tcp_direct: ipos_tcp::Config,
    /// TCP configuration of connections that may move (MSS fits a data frame).
    pub(crate) tcp_movable: ipos_tcp::Config,
    pub(crate) service: Service,
    /// Local, forward-connect and temporary connections.
    pub(crate) conns: ConnectionTable<Conn<P::Buf>>,
    /// Connections of `conns` served here.
    pub(crate) serving: ServingCount,
    pub(crate) forward: ForwardTable,
    /// Incoming moves waiting for their carried bytes.
    pub(crate) pending: BoundedMap<Flow, Reassembly>,
    /// UDP flows, each with the generation that names its timer.
    pub(crate) udp_flows: BoundedMap<ForwardKey, (u32, UdpFlow<P::Buf>)>,
    /// Flows that closed here a moment ago (generation of their timer).
    pub(crate) closed: BoundedMap<Flow, u32>,
    /// Generations of the entries that timers name (UDP flows, closed flows).
    pub(crate) next_gen: u32,
    /// Client packets held by moves in progress (TCP and UDP), at most `max_held`.
    pub(crate) held: usize,
    /// Every move made here as the source: decision to commit, in microseconds.
    pub(crate) handoff: LatencyHistogram,
    /// Tokens for UDP echoes (the echo service's rate limit).
    pub(crate) udp_echo_budget: rate::TokenBucket,
    /// Tokens for commits sent again to a target that acknowledges a move once
    /// more ([`RECOMMIT_RATE`] a second).
    pub(crate) recommit_budget: rate::TokenBucket,
    pub(crate) arp: ArpCache<P::Buf>,
    pub(crate) view: FarmView,
    /// Connections this node placed on each server (itself included) since
    /// that server's last advert: the policy adds them to the advertised
    /// counts, so that a burst of decisions spreads by load.
    pub(crate) placed: ipos_policy::Placed,
    pub(crate) counters: Counters,
    /// A buffer allocated for a segment an endpoint did not fill, kept for the next.
    pub(crate) spare: Option<P::Buf>,
    /// Where an import mid-response regenerates its send bytes (grown to the
    /// send buffer's size at the first such import, then reused).
    pub(crate) regen: Vec<u8>,
    /// Where a decision joins a request head that wraps the receive ring
    /// (`max_head_bytes` reserved up front).
    pub(crate) head_scratch: Vec<u8>,
    /// The drain in progress, if any ([`Node::start_drain`]).
    pub(crate) drain: Option<drain::DrainState>,
    /// Rebalancing moves scheduled, and the walk's place.
    pub(crate) rebalance: rebalance::RebalanceState,
    pub(crate) ip_ident: u16,
    pub(crate) iss_secret: u64,
    /// The secret of this node's SYN cookies.
    pub(crate) cookies: ipos_tcp::SynCookies,
    /// Connections in `conns` counted as half-open (SYN-RECEIVED), at most `syn_backlog`.
    pub(crate) half_open: usize,
    /// When the last SYN cookie went out: ACKs for no connection are checked
    /// for cookies only while one may still come back.
    pub(crate) last_cookie_at: Option<Instant>,
    pub(crate) timers: timers::Timers,
    pub(crate) adverts: advert::AdvertState,
    /// Seals the ipOS frames sent and checks those received (a farm with a key).
    pub(crate) auth: Option<crate::auth::FarmAuth>,
    /// This node's lane among several on as many lcores (None: the only one).
    pub(crate) lane: Option<Lane<P::Buf>>,
    /// The service ports relayed to upstreams, each with its address.
    pub(crate) upstreams: Vec<(
        crate::upstream::Upstream,
        std::sync::Arc<crate::upstream::UpstreamAddr>,
    )>,
    /// The helper thread holding the upstream sockets (None without upstreams).
    pub(crate) relay: Option<crate::upstream::Relay>,
    /// The upstreams' health and processes (None without upstreams).
    pub(crate) monitor: Option<crate::upstream::Monitor>,
    /// Generation of relay tokens (a token is a slot and a generation).
    pub(crate) relay_gen: u32,
    /// This node's `502 Bad Gateway` answer.
    pub(crate) bad_gateway: Vec<u8>,
    rx: Vec<P::Buf>,
}

impl<P: Port> Node<P> {
    /// A node on `port`. `id.peers` should contain the node itself (it is
    /// added when missing).
    pub fn new(port: P, id: NodeIdentity, mut opts: NodeOptions) -> Node<P> {
        let rebalance_rate = opts.rebalance.map_or(0, |r| r.rate);
        let service = Service::new(&id.name);
        let head_max = service.max_head_bytes();
        let iss_secret = {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write(id.name.as_bytes());
            h.finish()
        };
        let cookies = ipos_tcp::SynCookies::random().unwrap_or_else(|_| {
            // No OS random source: keys from std's randomly seeded hasher.
            use std::hash::{BuildHasher, Hasher};
            let mut k = [[0u8; 16]; 2];
            for (i, key) in k.iter_mut().enumerate() {
                for half in 0..2 {
                    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                    h.write_usize(i * 2 + half);
                    key[half * 8..half * 8 + 8].copy_from_slice(&h.finish().to_le_bytes());
                }
            }
            ipos_tcp::SynCookies::new(k)
        });
        let peers = Peers::new(&id);
        let auth = id.auth.as_ref().map(|a| {
            crate::auth::FarmAuth::new(a, id.mac, peers.macs(), crate::auth::boot_epoch())
        });
        opts.farm_trailer = if auth.is_some() {
            ipos_wire::trailer::TRAILER_LEN as u16
        } else {
            0
        };
        let mut view = FarmView::new(&opts.policy);
        // The policy stops choosing a peer when the node calls it down.
        view.set_stale_after_ms(opts.peer_down_after.total_millis());
        let timers = timers::Timers::new(Instant::from_micros(0), opts.timer_tick);
        let tcp_direct = ipos_tcp::Config {
            mss: opts.mss(false),
            ..opts.tcp.clone()
        };
        let tcp_movable = ipos_tcp::Config {
            mss: opts.mss(true),
            ..opts.tcp.clone()
        };
        let upstreams: Vec<_> = opts
            .upstreams
            .iter()
            .map(|u| (u.clone(), std::sync::Arc::new(u.addr.clone())))
            .collect();
        let relay = if upstreams.is_empty() {
            None
        } else {
            match crate::upstream::Relay::spawn(&id.name) {
                Ok(r) => Some(r),
                Err(e) => {
                    // Its connections get the upstream's failure (502 or RST).
                    log::error!("node {}: the relay thread did not start: {e}", id.name);
                    None
                }
            }
        };
        let monitor = if opts.upstreams.is_empty() {
            None
        } else {
            match crate::upstream::Monitor::spawn(
                &id.name,
                opts.upstreams.clone(),
                std::time::Duration::from_micros(opts.advert_interval.total_micros()),
            ) {
                Ok(m) => Some(m),
                Err(e) => {
                    // Its ports are then advertised as served, unchecked.
                    log::error!("node {}: the upstream monitor did not start: {e}", id.name);
                    None
                }
            }
        };
        let bad_gateway = crate::upstream::conn::bad_gateway_response(&id.name);
        Node {
            upstreams,
            relay,
            monitor,
            relay_gen: 0,
            bad_gateway,
            tcp_direct,
            tcp_movable,
            port,
            conns: ConnectionTable::new(opts.max_connections),
            serving: ServingCount::default(),
            forward: ForwardTable::new(opts.max_forward, opts.forward_idle),
            pending: BoundedMap::new(opts.max_pending),
            udp_flows: BoundedMap::new(opts.max_udp_flows),
            closed: BoundedMap::new(opts.max_connections.saturating_mul(4)),
            next_gen: 0,
            held: 0,
            handoff: LatencyHistogram::default(),
            recommit_budget: rate::TokenBucket::new(RECOMMIT_RATE, RECOMMIT_RATE / 4),
            udp_echo_budget: rate::TokenBucket::new(
                opts.udp_echo_rate,
                (opts.udp_echo_rate / 10).max(1),
            ),
            arp: ArpCache::default(),
            view,
            placed: ipos_policy::Placed::default(),
            peers,
            id,
            opts,
            service,
            counters: Counters::default(),
            spare: None,
            regen: Vec::new(),
            head_scratch: Vec::with_capacity(head_max),
            drain: None,
            rebalance: rebalance::RebalanceState::new(rebalance_rate),
            ip_ident: 1,
            iss_secret,
            cookies,
            half_open: 0,
            last_cookie_at: None,
            timers,
            adverts: advert::AdvertState::default(),
            auth,
            lane: None,
            rx: Vec::with_capacity(BURST),
        }
    }

    /// Lane `lane.index()` of a node that polls `lane.count()` lcores: one
    /// `Node` per lcore, each on its own queue pair of the port (see
    /// [`lanes`](self::lanes)). With one lane it is [`Node::new`].
    pub fn with_lane(port: P, id: NodeIdentity, opts: NodeOptions, lane: Lane<P::Buf>) -> Node<P> {
        let mut node = Node::new(port, id, opts);
        // Every lane seals with the node's one epoch, each on its own lane
        // of sequence numbers.
        if let Some(a) = node.id.auth.as_ref() {
            let mut auth =
                crate::auth::FarmAuth::new(a, node.id.mac, node.peers.macs(), lane.epoch());
            auth.set_lane(lane.index());
            node.auth = Some(auth);
        }
        if lane.count() > 1 {
            node.lane = Some(lane);
        }
        node
    }

    /// This node's lane and the number of lanes ((0, 1) for a one-lane node).
    pub fn lane(&self) -> (usize, usize) {
        self.lane
            .as_ref()
            .map_or((0, 1), |l| (l.index(), l.count()))
    }

    /// The node's counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The port (for its counters).
    pub fn port(&self) -> &P {
        &self.port
    }

    /// The port, mutable (tests use it to inject frames).
    pub fn port_mut(&mut self) -> &mut P {
        &mut self.port
    }

    /// Who this node is.
    pub fn identity(&self) -> &NodeIdentity {
        &self.id
    }

    /// Entries in the connection table (local / forward-connect / temporary).
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Connections in SYN-RECEIVED (the half-open ones the budget counts).
    pub fn syn_received_count(&self) -> usize {
        self.half_open
    }

    /// Connections whose endpoint holds its send and receive buffers. Walks
    /// the connection table: for tests and diagnostics.
    pub fn buffered_connection_count(&self) -> usize {
        self.conns.values().filter(|c| c.ep.has_buffers()).count()
    }

    /// Entries in the forward table.
    pub fn forward_count(&self) -> usize {
        self.forward.len()
    }

    /// Incoming migrations waiting for carried bytes.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    /// Entries in the UDP flow table.
    pub fn udp_flow_count(&self) -> usize {
        self.udp_flows.len()
    }

    /// Entries in the ARP cache.
    pub fn arp_cache_count(&self) -> usize {
        self.arp.len()
    }

    /// Replies waiting for an ARP resolution.
    pub fn arp_wait_count(&self) -> usize {
        self.arp.waiting()
    }

    /// Farm members that are down now.
    pub fn peers_down_count(&self) -> usize {
        self.peers.down_count()
    }

    /// The sizes of the node's tables, by name (for the stats file). The last five
    /// are the TCP buffers of the calling thread's pool (held, their bytes, pooled,
    /// and how many the allocator gave and took back since the start) ([`ipos_tcp::buffers`]): a
    /// lane's own when a lane asks, shared by every node a test runs on one thread.
    pub fn table_sizes(&self) -> [(&'static str, usize); TABLE_SIZES] {
        let bufs = ipos_tcp::buffers::stats();
        [
            ("connections", self.connection_count()),
            ("forward_entries", self.forward_count()),
            ("pending_moves", self.pending_count()),
            ("udp_flows", self.udp_flow_count()),
            ("held_packets", self.held_count()),
            ("arp_cache", self.arp_cache_count()),
            ("arp_wait", self.arp_wait_count()),
            ("peers_down_now", self.peers_down_count()),
            ("tcp_buffers", bufs.in_use),
            ("tcp_buffer_bytes", bufs.in_use_bytes),
            ("tcp_buffers_pooled", bufs.pooled),
            ("tcp_buffers_allocated", bufs.allocated as usize),
            ("tcp_buffers_released", bufs.released as usize),
        ]
    }

    /// The policy's current view of the farm.
    pub fn view(&self) -> &FarmView {
        &self.view
    }

    /// A fresh generation for a table entry that a timer will name.
    pub(crate) fn new_gen(&mut self) -> u32 {
        self.next_gen = self.next_gen.wrapping_add(1);
        self.next_gen
    }

    /// The handoff time of every TCP move made here as the source: from the
    /// decision to the commit (the target holds the endpoint, the forward
    /// entry is in place), retries included.
    pub fn handoff_latency(&self) -> &LatencyHistogram {
        &self.handoff
    }

    /// Client packets held by moves in progress, all together.
    pub fn held_count(&self) -> usize {
        self.held
    }

    /// Connections served here (the load this node advertises).
    pub fn serving_count(&self) -> usize {
        self.serving.get()
    }

    /// Adds a connection to the table (and to the count of served ones).
    pub(crate) fn insert_conn(
        &mut self,
        flow: Flow,
        conn: Conn<P::Buf>,
    ) -> Result<u32, crate::tables::TableFull> {
        let serving = conn.phase().is_serving();
        let slot = self.conns.insert(flow, conn)?;
        if serving {
            self.serving.add(&Phase::<P::Buf>::Serving);
        }
        Ok(slot)
    }

    /// Removes the connection in `slot` from the table and the count, and
    /// adds what its application did to the node's counters.
    pub(crate) fn remove_conn(&mut self, slot: u32) -> Option<Conn<P::Buf>> {
        let conn = self.conns.remove(slot)?;
        self.serving.remove(conn.phase());
        if conn.half_open {
            self.half_open -= 1;
        }
        let http = conn.app.stats();
        self.counters.add(Event::HttpResponses, http.requests);
        self.counters.add(Event::HttpUploads, http.uploads);
        self.counters.add(Event::HttpBodyBytes, http.body_bytes);
        Some(conn)
    }

    /// One iteration of the poll loop: receive a burst and handle every
    /// frame, run what timers are due, advertise when it is time, transmit.
    /// Returns the number of frames received.
    pub fn poll(&mut self, now: Instant) -> usize {
        let hops = self.handle_hops(now);
        let relayed = self.relay_events(now);
        let n = self.port.rx_burst(&mut self.rx) + hops + relayed;
        let mut rx = std::mem::take(&mut self.rx);
        self.warm_forward(&rx);
        for buf in rx.drain(..) {
            self.counters.inc(Event::RxFrames);
            self.handle_frame(now, buf, lanes::Stage::Wire);
        }
        self.rx = rx;
        self.adverts.record_poll(n > 0);
        if let Some(lane) = self.lane.as_mut() {
            lane.record_poll(n > 0, self.serving.get());
        }
        self.run_timers(now);
        if self.drain.is_some() {
            self.drain_step(now);
        } else if self.opts.rebalance.is_some() {
            self.rebalance_step(now);
        }
        if let Some(r) = self.relay.as_mut() {
            r.flush();
        }
        self.port.flush();
        n
    }
}
