//! Server state table (FIG. 12): server IP -> load figures of that server.
//!
//! Sorted by server IP, so [`ServerStateTable::iter`] visits servers in a
//! fixed order (the policy's tie-breaking relies on it).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::Ipv4Address;

/// The load figures one server last reported (one row of the server state
/// table).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerState {
    /// TCP connections in the established state.
    pub established: u32,
    /// Main-board CPU utilisation in permille (0 = idle, 1000 = saturated).
    pub cpu_permille: u16,
    /// Unused main-board memory, MiB.
    pub mem_avail_mib: u32,
    /// Unused bandwidth capacity, Mbit/s.
    pub bw_avail_mbps: u32,
    /// When this row was last refreshed, in the caller's milliseconds.
    pub last_update_ms: u64,
    /// Sequence number of the advertisement that wrote this row, if any;
    /// used to ignore reordered or duplicated advertisements.
    pub advert_sequence: Option<u32>,
    /// Optional human-readable node name (for logs and status output).
    pub node_name: Option<Arc<str>>,
}

impl ServerState {
    /// Whether this row is fresh at `now_ms`: its age (`now_ms -
    /// last_update_ms`, zero if the update lies in the future) is at most
    /// `stale_after_ms`.
    pub fn is_fresh(&self, now_ms: u64, stale_after_ms: u64) -> bool {
        now_ms.saturating_sub(self.last_update_ms) <= stale_after_ms
    }

    /// CPU headroom in permille: `1000 - cpu_permille`, zero if the reported
    /// utilisation exceeds 1000.
    pub fn cpu_headroom_permille(&self) -> u16 {
        1000u16.saturating_sub(self.cpu_permille)
    }
}

/// Server IP -> [`ServerState`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerStateTable {
    rows: BTreeMap<Ipv4Address, ServerState>,
}

impl ServerStateTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The row of `server`, if present.
    pub fn get(&self, server: Ipv4Address) -> Option<&ServerState> {
        self.rows.get(&server)
    }

    /// Insert or replace the row of `server`; returns the previous row.
    pub fn insert(&mut self, server: Ipv4Address, state: ServerState) -> Option<ServerState> {
        self.rows.insert(server, state)
    }

    /// Remove the row of `server`; returns it.
    pub fn remove(&mut self, server: Ipv4Address) -> Option<ServerState> {
        self.rows.remove(&server)
    }

    /// Keep only the rows for which `keep` returns true.
    pub fn retain(&mut self, mut keep: impl FnMut(Ipv4Address, &ServerState) -> bool) {
        self.rows.retain(|ip, s| keep(*ip, s));
    }

    /// All rows, in ascending server IP order.
    pub fn iter(&self) -> impl Iterator<Item = (Ipv4Address, &ServerState)> + Clone + '_ {
        self.rows.iter().map(|(ip, s)| (*ip, s))
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_boundary() {
        let s = ServerState {
            last_update_ms: 1_000,
            ..ServerState::default()
        };
        assert!(s.is_fresh(1_000, 500));
        assert!(s.is_fresh(1_500, 500));
        assert!(!s.is_fresh(1_501, 500));
        // An update stamped in the future counts as age zero.
        assert!(s.is_fresh(10, 0));
    }

    #[test]
    fn headroom_saturates() {
        let mut s = ServerState {
            cpu_permille: 250,
            ..ServerState::default()
        };
        assert_eq!(s.cpu_headroom_permille(), 750);
        s.cpu_permille = 1200;
        assert_eq!(s.cpu_headroom_permille(), 0);
    }

    #[test]
    fn iterates_in_ip_order() {
        let mut t = ServerStateTable::new();
        for last in [9u8, 3, 7] {
            t.insert(Ipv4Address::new(198, 18, 0, last), ServerState::default());
        }
        let ips: Vec<_> = t.iter().map(|(ip, _)| ip.octets()[3]).collect();
        assert_eq!(ips, vec![3, 7, 9]);
        assert_eq!(t.len(), 3);
        assert!(t.remove(Ipv4Address::new(198, 18, 0, 7)).is_some());
        assert!(t.get(Ipv4Address::new(198, 18, 0, 7)).is_none());
    }
}
