//! What a running node shows its operators: a [`Snapshot`] of every lane's
//! counters, table sizes and handoff latencies, made by lane 0 once a
//! second and published whole through a [`Published`] pointer (`arc-swap`).
//! Every reader off the poll loop (the stats file, the metrics endpoint,
//! DPDK telemetry, the control socket) loads the latest one without a lock
//! and without touching the lanes.

use crate::counters::Counters;
use crate::node::{LatencyHistogram, Node, TABLE_SIZES};
use crate::port::{Port, PortCounters};
use arc_swap::ArcSwap;
use std::sync::Arc;

/// One lane's figures at one moment.
#[derive(Clone, Debug, Default)]
pub struct LaneSample {
    pub counters: Counters,
    pub port: PortCounters,
    /// Frames waiting in the port's TX backlog.
    pub tx_backlog: usize,
    /// Every table's size (`name`, entries).
    pub tables: [(&'static str, usize); TABLE_SIZES],
    /// Connections this lane holds.
    pub connections: usize,
    /// Decision-to-commit time of every move this lane made as the source.
    pub handoff: LatencyHistogram,
}

impl LaneSample {
    /// The figures of `node` now.
    pub fn of<P: Port>(node: &Node<P>) -> LaneSample {
        LaneSample {
            counters: node.counters().clone(),
            port: node.port().counters(),
            tx_backlog: node.port().tx_backlog(),
            tables: node.table_sizes(),
            connections: node.connection_count(),
            handoff: *node.handoff_latency(),
        }
    }

    /// Adds another lane's figures.
    pub fn add(&mut self, o: &LaneSample) {
        self.counters.add_all(&o.counters);
        self.port.add_all(&o.port);
        self.tx_backlog += o.tx_backlog;
        self.connections += o.connections;
        self.handoff.add(&o.handoff);
        // Every lane lists the same tables in the same order.
        for ((_, v), (_, n)) in self.tables.iter_mut().zip(&o.tables) {
            *v += n;
        }
    }

    /// Every figure as `(name, value)`, in the stats file's names and order
    /// (counters, `port.*`, tables, `handoff_us.*`).
    pub fn pairs(&self) -> Vec<(String, u64)> {
        let mut v = self.counters.pairs();
        let pc = &self.port;
        for (k, n) in [
            ("port.rx_packets", pc.rx_packets),
            ("port.tx_packets", pc.tx_packets),
            ("port.tx_dropped", pc.tx_dropped),
            ("port.tx_deferred", pc.tx_deferred),
            ("port.tx_backlog", self.tx_backlog as u64),
            ("port.alloc_failed", pc.alloc_failed),
            ("port.rx_chained", pc.rx_chained),
        ] {
            v.push((k.to_string(), n));
        }
        // (A default sample has no table names: no lane reported yet.)
        for (name, n) in self.tables.iter().filter(|(name, _)| !name.is_empty()) {
            v.push((name.to_string(), *n as u64));
        }
        let h = &self.handoff;
        for (k, n) in [
            ("handoff_us.count", h.count()),
            ("handoff_us.p50", h.quantile(0.5)),
            ("handoff_us.p90", h.quantile(0.9)),
            ("handoff_us.p99", h.quantile(0.99)),
            ("handoff_us.p999", h.quantile(0.999)),
            ("handoff_us.max", h.max()),
        ] {
            v.push((k.to_string(), n));
        }
        v
    }
}

/// A whole node at one moment.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// The node's name in the farm file.
    pub node: String,
    /// Milliseconds since the node started, when this was taken.
    pub uptime_ms: u64,
    /// Every lane's figures, lane 0 first.
    pub lanes: Vec<LaneSample>,
    /// The sum of the lanes.
    pub total: LaneSample,
    /// The device's own counters (`dev.ipackets`, ...), when it has them.
    pub device: Vec<(&'static str, u64)>,
    /// Buffers left in the node's mempool.
    pub mbufs_free: u64,
}

impl Snapshot {
    /// A snapshot of `lanes` (lane 0 first), their sum computed here.
    pub fn new(node: &str, uptime_ms: u64, lanes: Vec<LaneSample>) -> Snapshot {
        let mut total = lanes.first().cloned().unwrap_or_default();
        for l in lanes.iter().skip(1) {
            total.add(l);
        }
        Snapshot {
            node: node.to_string(),
            uptime_ms,
            lanes,
            total,
            device: Vec::new(),
            mbufs_free: 0,
        }
    }

    /// Every figure of the node as the stats file lists them: the total's
    /// counters and `port.*`, then `dev.*`, the tables, `mbufs_free` and
    /// `handoff_us.*`.
    pub fn pairs(&self) -> Vec<(String, u64)> {
        let mut v = self.total.pairs();
        // The device's and the pool's figures go after the port's.
        let at = v
            .iter()
            .position(|(k, _)| k == "port.rx_chained")
            .map_or(v.len(), |i| i + 1);
        let extra: Vec<(String, u64)> = self
            .device
            .iter()
            .map(|(k, n)| (k.to_string(), *n))
            .collect();
        v.splice(at..at, extra);
        let at = v
            .iter()
            .position(|(k, _)| k == "handoff_us.count")
            .unwrap_or(v.len());
        v.insert(at, ("mbufs_free".to_string(), self.mbufs_free));
        v
    }

    /// The stats file's text: one `name value` line per figure.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for (k, v) in self.pairs() {
            s.push_str(&k);
            s.push(' ');
            s.push_str(&v.to_string());
            s.push('\n');
        }
        s
    }
}

/// The latest snapshot of a node, for readers on other threads.
pub type Published = Arc<ArcSwap<Snapshot>>;

/// A pointer with an empty snapshot in it.
pub fn published(node: &str) -> Published {
    Arc::new(ArcSwap::from_pointee(Snapshot::new(node, 0, Vec::new())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::Event;

    #[test]
    fn the_total_adds_the_lanes_and_lists_every_figure_once() {
        let mut a = LaneSample::default();
        a.counters.inc(Event::MigrationsAcked);
        a.connections = 2;
        a.handoff.record(300);
        let mut b = a.clone();
        b.counters.inc(Event::MigrationsAcked);
        b.handoff.record(900);
        let mut s = Snapshot::new("b", 1500, vec![a, b]);
        s.device = vec![("dev.ipackets", 7)];
        s.mbufs_free = 99;
        assert_eq!(s.total.connections, 4);
        let p = s.pairs();
        let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
        assert_eq!(get("migrations_acked"), Some(3));
        assert_eq!(get("dev.ipackets"), Some(7));
        assert_eq!(get("mbufs_free"), Some(99));
        assert_eq!(get("handoff_us.count"), Some(3));
        assert_eq!(get("handoff_us.max"), Some(900));
        let mut names: Vec<&String> = p.iter().map(|(n, _)| n).collect();
        let all = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all, "a figure listed twice");
        assert!(s.text().contains("\nmbufs_free 99\nhandoff_us.count 3\n"));
    }
}
