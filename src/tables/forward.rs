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

/// An entry and the generation that names its idle timer.
#[derive(Debug, Clone, Copy)]
struct Slot {
    entry: ForwardEntry,
    gen: u32,
}

/// What an idle check of an entry found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleCheck {
    /// The timer was for an entry that is gone or was replaced by a new one.
    Stale,
    /// The entry was idle for the whole time-out and is removed.
    Expired,
    /// The entry was used meanwhile: check again then.
    Later(Instant),
}

/// The forward table of one node. Entries leave on a notice, or after an
/// idle time-out that the node's timer wheel checks entry by entry
/// ([`ForwardTable::check_idle`]): never a walk over the table.
pub struct ForwardTable {
    map: BoundedMap<ForwardKey, Slot>,
    next_gen: u32,
}

impl ForwardTable {
    /// An empty table of at most `limit` entries.
    pub fn new(limit: usize) -> Self {
        ForwardTable {
            map: BoundedMap::new(limit),
            next_gen: 0,
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
        let s = self.map.get_mut(key)?;
        s.entry.last_used = now;
        Some(s.entry)
    }

    /// The entry of a client.
    pub fn get(&self, key: &ForwardKey) -> Option<&ForwardEntry> {
        self.map.get(key).map(|s| &s.entry)
    }

    /// Installs or replaces an entry. For a new client, returns the
    /// generation to arm its idle timer with (a replaced entry keeps its timer).
    pub fn insert(
        &mut self,
        key: ForwardKey,
        entry: ForwardEntry,
    ) -> Result<Option<u32>, TableFull> {
        if let Some(s) = self.map.get_mut(&key) {
            s.entry = entry;
            return Ok(None);
        }
        self.next_gen = self.next_gen.wrapping_add(1);
        let gen = self.next_gen;
        self.map.insert(key, Slot { entry, gen })?;
        Ok(Some(gen))
    }

    /// Removes a client's entry.
    pub fn remove(&mut self, key: &ForwardKey) -> Option<ForwardEntry> {
        self.map.remove(key).map(|s| s.entry)
    }

    /// The idle timer `gen` of `key`'s entry fired at `now`: removes the
    /// entry if it was not used for `idle`.
    pub fn check_idle(
        &mut self,
        key: &ForwardKey,
        gen: u32,
        now: Instant,
        idle: Duration,
    ) -> IdleCheck {
        match self.map.get(key) {
            Some(s) if s.gen == gen => {
                let due = s.entry.last_used + idle;
                if now >= due {
                    self.map.remove(key);
                    IdleCheck::Expired
                } else {
                    IdleCheck::Later(due)
                }
            }
            _ => IdleCheck::Stale,
        }
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
    fn limit_lookup_idle() {
        let mut t = ForwardTable::new(2);
        let g1 = t.insert(key(1), entry(0)).unwrap().expect("new");
        let g2 = t.insert(key(2), entry(0)).unwrap().expect("new");
        assert_ne!(g1, g2);
        assert_eq!(t.insert(key(3), entry(0)), Err(TableFull));
        assert_eq!(t.full_refusals(), 1);
        // Replacing an existing key is not refused and keeps its timer.
        assert_eq!(t.insert(key(2), entry(5)), Ok(None));
        assert!(t.lookup(&key(1), Instant::from_millis(1000)).is_some());
        let idle = Duration::from_millis(1000);
        let now = Instant::from_millis(1500);
        assert_eq!(t.check_idle(&key(2), g2, now, idle), IdleCheck::Expired);
        assert_eq!(
            t.check_idle(&key(1), g1, now, idle),
            IdleCheck::Later(Instant::from_millis(2000))
        );
        assert_eq!(t.check_idle(&key(1), g1 + 7, now, idle), IdleCheck::Stale);
        assert!(t.get(&key(2)).is_none());
        assert!(t.get(&key(1)).is_some());
        // A new entry for a removed key gets a new generation: old timers are stale.
        assert!(t.remove(&key(1)).is_some());
        let g3 = t.insert(key(1), entry(0)).unwrap().expect("new");
        assert_eq!(t.check_idle(&key(1), g1, now, idle), IdleCheck::Stale);
        assert_eq!(t.check_idle(&key(1), g3, now, idle), IdleCheck::Expired);
        assert!(t.is_empty());
    }
}
