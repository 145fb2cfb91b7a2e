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
    /// How often connection timers are scanned.
    pub timer_scan: Duration,
    /// Whether this node moves connections at all (targets always accept).
    pub migration: bool,
    /// Time before the first connection packet retry; it doubles after each
    /// try, up to 8 times this.
    pub migrate_retry: Duration,
    /// Connection packets sent before the source serves the connection itself.
    pub migrate_tries: u32,
    /// How often server state is advertised (zero: never).
    pub advert_interval: Duration,
    /// Forward entries unused this long are removed.
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
    /// TCP connections with no segment from the client for this long are aborted.
    pub conn_idle: Duration,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            tcp: ipos_tcp::Config::default(),
            max_connections: 16384,
            max_forward: 65536,
            max_pending: 1024,
            hold_limit: 32,
            timer_scan: Duration::from_millis(1),
            migration: true,
            migrate_retry: Duration::from_millis(40),
            migrate_tries: 7,
            advert_interval: Duration::from_millis(500),
            forward_idle: Duration::from_secs(120),
            pending_timeout: Duration::from_secs(2),
            policy: PolicyConfig::default(),
            mem_avail_mib: 4096,
            bw_avail_mbps: 10_000,
            udp_idle: Duration::from_secs(30),
            max_udp_flows: 16384,
            conn_idle: Duration::from_secs(300),
        }
    }
}
