//! The forward table (FIG. 12): client IP and port -> where the connection's
//! endpoint now lives.
//!
//! The front node installs an entry when a migration is acknowledged and from
//! then on wraps every packet of that client in an ipOS data frame to the
//! target. Entries leave when the owner reports the connection closed (or
//! moved on), or after an idle timeout; the table has a size limit and counts
//! the inserts it refused.

use ipos_wire::Flow;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, Ipv4Address};

use super::{BoundedMap, TableFull};

/// Key: the client's address and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ForwardKey {
    /// Client address.
    pub client_ip: Ipv4Address,
    /// Client port.
    pub client_port: u16,
}

impl ForwardKey {
    /// The key of a connection or UDP flow: its client's address and port.
    pub const fn of(flow: &Flow) -> ForwardKey {
        ForwardKey {
            client_ip: flow.src_addr,
            client_port: flow.src_port,
        }
    }
}

/// Where to forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardEntry {
    /// The node that owns the endpoint now.
    pub target_ip: Ipv4Address,
    /// Its service port.
    pub target_port: u16,
    /// Its MAC on the farm network.
    pub target_mac: EthernetAddress,
    /// Last time a packet used the entry.
    pub last_used: Instant,
}

/// The forward table of one node.
pub struct ForwardTable {
    map: BoundedMap<ForwardKey, ForwardEntry>,
}

impl ForwardTable {
    /// An empty table of at most `limit` entries.
    pub fn new(limit: usize) -> Self {
        ForwardTable {
            map: BoundedMap::new(limit),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// True when a new client would be refused.
    pub fn is_full(&self) -> bool {
        self.map.is_full()
    }

    /// Inserts refused because the table was full.
    pub fn full_refusals(&self) -> u64 {
        self.map.full_refusals()
    }

    /// Looks a client up and marks the entry used.
    pub fn lookup(&mut self, key: &ForwardKey, now: Instant) -> Option<ForwardEntry> {
        let e = self.map.get_mut(key)?;
        e.last_used = now;
        Some(*e)
    }

    /// The entry of a client.
    pub fn get(&self, key: &ForwardKey) -> Option<&ForwardEntry> {
        self.map.get(key)
    }

    /// Installs or replaces an entry.
    pub fn insert(&mut self, key: ForwardKey, entry: ForwardEntry) -> Result<(), TableFull> {
        self.map.insert(key, entry).map(|_| ())
    }

    /// Removes a client's entry.
    pub fn remove(&mut self, key: &ForwardKey) -> Option<ForwardEntry> {
        self.map.remove(key)
    }

    /// Removes entries idle for longer than `idle`; returns how many.
    pub fn expire(&mut self, now: Instant, idle: Duration) -> usize {
        self.map.retain(|_, e| now < e.last_used + idle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: u16) -> ForwardKey {
        ForwardKey {
            client_ip: Ipv4Address::new(198, 18, 0, 1),
            client_port: p,
        }
    }

    fn entry(t: i64) -> ForwardEntry {
        ForwardEntry {
            target_ip: Ipv4Address::new(198, 18, 0, 12),
            target_port: 80,
            target_mac: EthernetAddress([2, 0, 0xc6, 0x12, 0, 0x0c]),
            last_used: Instant::from_millis(t),
        }
    }

    #[test]
    fn limit_lookup_expire() {
        let mut t = ForwardTable::new(2);
        t.insert(key(1), entry(0)).unwrap();
        t.insert(key(2), entry(0)).unwrap();
        assert_eq!(t.insert(key(3), entry(0)), Err(TableFull));
        assert_eq!(t.full_refusals(), 1);
        // Replacing an existing key is not refused.
        t.insert(key(2), entry(5)).unwrap();
        assert!(t.lookup(&key(1), Instant::from_millis(1000)).is_some());
        assert_eq!(
            t.expire(Instant::from_millis(1500), Duration::from_millis(1000)),
            1
        );
        assert!(t.get(&key(2)).is_none());
        assert!(t.get(&key(1)).is_some());
        assert!(t.remove(&key(1)).is_some());
        assert!(t.is_empty());
    }
}
