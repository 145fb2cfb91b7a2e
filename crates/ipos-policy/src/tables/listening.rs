//! Listening sockets table (FIG. 12): (server IP, TCP port) -> the process
//! ID of the application listening there.
//!
//! Sorted by (server, port), so all sockets of one server form a contiguous
//! range that [`ListeningTable::remove_server`] and
//! [`ListeningTable::server_ports`] reach without scanning other servers.

use std::collections::BTreeMap;

use crate::Ipv4Address;

/// (server IP, TCP port) -> process ID.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListeningTable {
    rows: BTreeMap<(Ipv4Address, u16), u32>,
}

impl ListeningTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The process listening on `server`:`port`, if any.
    pub fn get(&self, server: Ipv4Address, port: u16) -> Option<u32> {
        self.rows.get(&(server, port)).copied()
    }

    /// Record that process `pid` listens on `server`:`port`; returns the
    /// previous process, if any.
    pub fn insert(&mut self, server: Ipv4Address, port: u16, pid: u32) -> Option<u32> {
        self.rows.insert((server, port), pid)
    }

    /// Forget the socket `server`:`port`; returns its process.
    pub fn remove(&mut self, server: Ipv4Address, port: u16) -> Option<u32> {
        self.rows.remove(&(server, port))
    }

    /// Forget every socket of `server`.
    pub fn remove_server(&mut self, server: Ipv4Address) {
        let ports: Vec<u16> = self.server_ports(server).map(|(p, _)| p).collect();
        for port in ports {
            self.rows.remove(&(server, port));
        }
    }

    /// The (port, pid) pairs of `server`, in ascending port order.
    pub fn server_ports(
        &self,
        server: Ipv4Address,
    ) -> impl Iterator<Item = (u16, u32)> + Clone + '_ {
        self.rows
            .range((server, 0)..=(server, u16::MAX))
            .map(|(&(_, port), &pid)| (port, pid))
    }

    /// Keep only the rows for which `keep(server, port, pid)` returns true.
    pub fn retain(&mut self, mut keep: impl FnMut(Ipv4Address, u16, u32) -> bool) {
        self.rows.retain(|&(s, p), pid| keep(s, p, *pid));
    }

    /// All rows as (server, port, pid), sorted by (server, port).
    pub fn iter(&self) -> impl Iterator<Item = (Ipv4Address, u16, u32)> + Clone + '_ {
        self.rows.iter().map(|(&(s, p), &pid)| (s, p, pid))
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

    const A: Ipv4Address = Ipv4Address::new(198, 18, 0, 1);
    const B: Ipv4Address = Ipv4Address::new(198, 18, 0, 2);

    #[test]
    fn per_server_range() {
        let mut t = ListeningTable::new();
        t.insert(A, 80, 1);
        t.insert(A, 443, 2);
        t.insert(A, u16::MAX, 3);
        t.insert(B, 0, 4);
        t.insert(B, 80, 5);
        assert_eq!(
            t.server_ports(A).collect::<Vec<_>>(),
            vec![(80, 1), (443, 2), (u16::MAX, 3)]
        );
        t.remove_server(A);
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(A, 80), None);
        assert_eq!(t.get(B, 0), Some(4));
        assert_eq!(t.get(B, 80), Some(5));
    }
}
