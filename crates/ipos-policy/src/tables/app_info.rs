//! Application information table (FIG. 12): process -> what the application
//! needs (memory) and uses (CPU).
//!
//! Keyed by (server IP, process ID) rather than process ID alone: process IDs
//! are unique only per host (see the [`tables`](crate::tables) module docs).

use std::collections::BTreeMap;

use crate::Ipv4Address;

/// One application's requirements (a row of the application information
/// table).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppInfo {
    /// Memory required to run the application, MiB.
    pub mem_required_mib: u32,
    /// The application's CPU utilisation, permille of the main board.
    pub cpu_permille: u16,
}

/// (server IP, process ID) -> [`AppInfo`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppInfoTable {
    rows: BTreeMap<(Ipv4Address, u32), AppInfo>,
}

impl AppInfoTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The requirements of process `pid` on `server`, if known.
    pub fn get(&self, server: Ipv4Address, pid: u32) -> Option<&AppInfo> {
        self.rows.get(&(server, pid))
    }

    /// Insert or replace the row of `pid` on `server`; returns the old row.
    pub fn insert(&mut self, server: Ipv4Address, pid: u32, info: AppInfo) -> Option<AppInfo> {
        self.rows.insert((server, pid), info)
    }

    /// Remove the row of `pid` on `server`; returns it.
    pub fn remove(&mut self, server: Ipv4Address, pid: u32) -> Option<AppInfo> {
        self.rows.remove(&(server, pid))
    }

    /// Forget every application of `server`.
    pub fn remove_server(&mut self, server: Ipv4Address) {
        let pids: Vec<u32> = self.server_apps(server).map(|(pid, _)| pid).collect();
        for pid in pids {
            self.rows.remove(&(server, pid));
        }
    }

    /// The (pid, info) pairs of `server`, in ascending pid order.
    pub fn server_apps(
        &self,
        server: Ipv4Address,
    ) -> impl Iterator<Item = (u32, &AppInfo)> + Clone + '_ {
        self.rows
            .range((server, 0)..=(server, u32::MAX))
            .map(|(&(_, pid), info)| (pid, info))
    }

    /// Keep only the rows for which `keep(server, pid, info)` returns true.
    pub fn retain(&mut self, mut keep: impl FnMut(Ipv4Address, u32, &AppInfo) -> bool) {
        self.rows.retain(|&(s, pid), info| keep(s, pid, info));
    }

    /// All rows as (server, pid, info), sorted by (server, pid).
    pub fn iter(&self) -> impl Iterator<Item = (Ipv4Address, u32, &AppInfo)> + Clone + '_ {
        self.rows.iter().map(|(&(s, pid), info)| (s, pid, info))
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
    fn same_pid_on_two_servers_is_two_rows() {
        let a = Ipv4Address::new(198, 18, 0, 1);
        let b = Ipv4Address::new(198, 18, 0, 2);
        let mut t = AppInfoTable::new();
        let ia = AppInfo {
            mem_required_mib: 10,
            cpu_permille: 1,
        };
        let ib = AppInfo {
            mem_required_mib: 20,
            cpu_permille: 2,
        };
        t.insert(a, 42, ia);
        t.insert(b, 42, ib);
        assert_eq!(t.get(a, 42), Some(&ia));
        assert_eq!(t.get(b, 42), Some(&ib));
        t.remove_server(a);
        assert_eq!(t.get(a, 42), None);
        assert_eq!(t.len(), 1);
    }
}
