//! A node's tunables and their defaults. The farm file sets some of them
//! ([`crate::config::FarmConfig::node_options`]); the rest keep these values.

use ipos_policy::PolicyConfig;
use smoltcp::time::Duration;

/// Tunables of a node.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// TCP endpoint configuration.
    pub tcp: ipos_tcp::Config,
    /// Local / forward-connect / temporary table limit.
    pub max_connections: usize,
    /// Forward table limit.
    pub max_forward: usize,
    /// Incoming migrations waiting for their carried bytes, at most.
    pub max_pending: usize,
    /// Client packets held per migrating endpoint, at most.
    pub hold_limit: usize,
    /// The timer wheel's tick: the resolution of every timer.
    pub timer_tick: Duration,
    /// Whether this node moves connections at all (targets always accept).
    pub migration: bool,
    /// Time before the first connection packet retry; it doubles after each
    /// try, up to 8 times this.
    pub migrate_retry: Duration,
    /// Connection packets sent before the source serves the connection itself.
    pub migrate_tries: u32,
    /// How often server state is advertised (zero: never). Set it with
    /// [`NodeOptions::set_advert_interval`], which keeps `peer_down_after`
    /// in step.
    pub advert_interval: Duration,
    /// A peer whose adverts stop this long is *down*: the policy no longer
    /// chooses it, and the forward entries that point at it go (the client
    /// gets a RST on its next segment). [`PEER_DOWN_ADVERTS`] advert
    /// intervals: 3 s with the default 500 ms. Its next advert is taken
    /// whatever its sequence (a restarted node counts from 1 again).
    pub peer_down_after: Duration,
    /// Forward entries unused this long are removed (longer than `conn_idle`).
    pub forward_idle: Duration,
    /// Incoming migrations not completed within this time are dropped.
    pub pending_timeout: Duration,
    /// The policy's static part (URL map, cookie map, weights).
    pub policy: PolicyConfig,
    /// Advertised available memory, MiB.
    pub mem_avail_mib: u32,
    /// Advertised available bandwidth, Mbit/s.
    pub bw_avail_mbps: u32,
    /// UDP flow entries (all roles) unused this long are removed.
    pub udp_idle: Duration,
    /// UDP flow table limit.
    pub max_udp_flows: usize,
    /// TCP connections with no segment from the client for this long are
    /// aborted. Set it with [`NodeOptions::set_idle_timeout`], which keeps
    /// `forward_idle` longer.
    pub conn_idle: Duration,
    /// IP MTU of the farm segment (what follows the Ethernet header of an
    /// ipOS frame): a data frame carries 16 bytes of ipOS header plus the
    /// client's whole IPv4 packet.
    pub farm_mtu: u16,
    /// IP MTU of the path towards clients.
    pub client_mtu: u16,
    /// Bytes every ipOS frame carries after its body: the authentication
    /// trailer when the farm has a key (36), else 0. Set by [`crate::node::Node::new`].
    pub farm_trailer: u16,
    /// Receive window a connection that may move advertises until the policy
    /// has placed it: the bytes that could have to be carried along.
    pub head_window: u32,
    /// A client that has not sent a whole request head this long after it
    /// connected (or after it started its next request) is disconnected.
    pub head_timeout: Duration,
    /// Frames waiting in the port's transmit queue above which TCP endpoints
    /// hold their segments back (below [`crate::port::TX_BACKLOG`], where the
    /// port starts dropping).
    pub tx_high_water: usize,
    /// UDP echoes per second a node sends at most (0: no limit); bursts of a
    /// tenth of it pass at once.
    pub udp_echo_rate: u32,
    /// Client packets held by all moves together, at most (well below the
    /// packet-buffer pool, so that held packets can never starve receive).
    pub max_held: usize,
    /// Forward entries the sweep after a peer went down looks at per poll.
    pub forward_sweep_budget: usize,
    /// Connections in SYN-RECEIVED (half-open, with a table entry) at most; a
    /// SYN beyond it, or one that finds the connection table full, is answered
    /// with a stateless SYN cookie (RFC 4987) instead. 0: every SYN gets a cookie.
    pub syn_backlog: usize,
    /// At each later request of a keep-alive connection, move it when a URL
    /// or cookie rule gives that request to another node (re-homing).
    pub rehome: bool,
    /// Moves one connection may make in its life (every kind counted); then
    /// it stays where it is.
    pub max_moves: u16,
    /// Rebalancing of long-lived connections (None: off, the default).
    pub rebalance: Option<Rebalance>,
    /// Service ports whose connections this node relays to a local process
    /// ([`crate::upstream`]); the others are served by the built-in services.
    pub upstreams: Vec<crate::upstream::Upstream>,
    /// Service ports served by in-process applications ([`crate::service`]).
    pub services: Vec<crate::service::InProcess>,
}

/// When a node far above the farm's average load moves connections away
/// (see the node's `rebalance` module).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rebalance {
    /// Above this many times the farm's average connection count (> 1).
    pub factor: f64,
    /// Moves per second at most.
    pub rate: u32,
    /// Only connections that have been on this node this long.
    pub min_age: Duration,
}

impl Default for Rebalance {
    fn default() -> Self {
        Rebalance {
            factor: 1.5,
            rate: 20,
            min_age: Duration::from_secs(5),
        }
    }
}

/// Default of [`NodeOptions::max_moves`]: enough for a keep-alive
/// connection whose requests alternate between nodes for a while, few
/// enough that no policy can keep one moving.
pub const DEFAULT_MAX_MOVES: u16 = 16;

/// What a forward entry outlives its endpoint's idle time-out by: a client
/// packet refreshes the forward entry on its way to the endpoint, so with
/// this margin the entry never goes before the endpoint it points at.
pub const FORWARD_IDLE_MARGIN: Duration = Duration::from_secs(60);

/// Advert intervals without an advert after which a peer is down: several,
/// so that a lost advert or two never take a live node out of the farm.
pub const PEER_DOWN_ADVERTS: u32 = 6;

/// Bytes a data frame adds to a client packet after the Ethernet header.
const TUNNEL_OVERHEAD: u16 = ipos_wire::HEADER_LEN as u16;
/// IPv4 and TCP headers without options: the MSS counts what follows them.
const IPV4_TCP_HEADERS: u16 = 40;

impl NodeOptions {
    /// Sets the connection idle time-out, and the forward entries' to outlive it.
    pub fn set_idle_timeout(&mut self, idle: Duration) {
        self.conn_idle = idle;
        self.forward_idle = idle + FORWARD_IDLE_MARGIN;
    }

    /// Sets the advert interval, and the silence after which a peer is down
    /// to [`PEER_DOWN_ADVERTS`] intervals.
    pub fn set_advert_interval(&mut self, every: Duration) {
        self.advert_interval = every;
        if every > Duration::ZERO {
            self.peer_down_after = every * PEER_DOWN_ADVERTS;
        }
    }

    /// The MSS to advertise: the configured one, clamped so that a client
    /// segment fits the client path (`client_mtu - 40`) and, for a connection
    /// that may move, fits in a data frame on the farm segment
    /// (`farm_mtu - 16 - 40`, less the authentication trailer when the farm
    /// has a key). With 1500-byte MTUs: 1460 direct, 1444 movable (1408 with
    /// the trailer).
    pub fn mss(&self, movable: bool) -> u16 {
        let mut mss = self
            .tcp
            .mss
            .min(self.client_mtu.saturating_sub(IPV4_TCP_HEADERS));
        if movable {
            mss = mss.min(
                self.farm_mtu
                    .saturating_sub(TUNNEL_OVERHEAD + self.farm_trailer + IPV4_TCP_HEADERS),
            );
        }
        mss
    }
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            tcp: ipos_tcp::Config::default(),
            max_connections: 16384,
            max_forward: 65536,
            max_pending: 1024,
            hold_limit: 32,
            timer_tick: Duration::from_millis(1),
            migration: true,
            migrate_retry: Duration::from_millis(40),
            migrate_tries: 7,
            advert_interval: Duration::from_millis(500),
            peer_down_after: Duration::from_millis(500) * PEER_DOWN_ADVERTS,
            forward_idle: Duration::from_secs(900) + FORWARD_IDLE_MARGIN,
            pending_timeout: Duration::from_secs(2),
            policy: PolicyConfig::default(),
            mem_avail_mib: 4096,
            bw_avail_mbps: 10_000,
            udp_idle: Duration::from_secs(30),
            max_udp_flows: 16384,
            conn_idle: Duration::from_secs(900),
            farm_mtu: 1500,
            client_mtu: 1500,
            farm_trailer: 0,
            head_window: 16 * 1024,
            head_timeout: Duration::from_secs(10),
            tx_high_water: crate::port::TX_BACKLOG / 2,
            udp_echo_rate: 20_000,
            max_held: 4096,
            forward_sweep_budget: super::timers::FORWARD_SWEEP_BUDGET,
            syn_backlog: 1024,
            rehome: true,
            max_moves: DEFAULT_MAX_MOVES,
            rebalance: None,
            upstreams: Vec::new(),
            services: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mss_fits_the_tunnel() {
        let mut o = NodeOptions::default();
        assert_eq!(o.mss(false), 1460);
        assert_eq!(o.mss(true), 1444, "1500 - 16 (ipOS) - 40 (IPv4 + TCP)");
        o.farm_trailer = ipos_wire::trailer::TRAILER_LEN as u16;
        assert_eq!(o.mss(true), 1408, "less the 36-byte authentication trailer");
        o.farm_trailer = 0;
        o.farm_mtu = 9000;
        assert_eq!(o.mss(true), 1460, "a jumbo farm segment needs no clamp");
        o.client_mtu = 1400;
        assert_eq!(o.mss(false), 1360);
        o.set_idle_timeout(Duration::from_secs(30));
        assert!(o.forward_idle > o.conn_idle);
        assert_eq!(
            o.peer_down_after,
            Duration::from_secs(3),
            "6 adverts of 500 ms"
        );
        o.set_advert_interval(Duration::from_millis(20));
        assert_eq!(o.peer_down_after, Duration::from_millis(120));
    }
}
