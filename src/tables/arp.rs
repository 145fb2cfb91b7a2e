//! The ARP cache (IPv4 address -> MAC) and the replies parked until a MAC
//! is resolved.
//!
//! A node needs a client's MAC only when it answers a client whose packets
//! did not reach it directly (a moved UDP flow); everything else is answered
//! to the source MAC of the packet. The cache learns from requests for our
//! addresses and from replies to us, refreshes what it knows from any ARP
//! packet, and holds at most [`ARP_CACHE_LIMIT`] entries; at most
//! [`ARP_WAIT_LIMIT`] ready replies wait for a resolution.

use super::{BoundedMap, TableFull};
use smoltcp::wire::{EthernetAddress, Ipv4Address};

/// Entries of the cache, at most.
pub const ARP_CACHE_LIMIT: usize = 4096;
/// Replies waiting for a MAC address resolution, at most.
pub const ARP_WAIT_LIMIT: usize = 64;

/// The cache and the parked replies (`B`: a packet buffer).
pub struct ArpCache<B> {
    entries: BoundedMap<Ipv4Address, EthernetAddress>,
    waiting: Vec<(B, Ipv4Address)>,
}

impl<B> Default for ArpCache<B> {
    fn default() -> Self {
        ArpCache {
            entries: BoundedMap::new(ARP_CACHE_LIMIT),
            waiting: Vec::new(),
        }
    }
}

impl<B> ArpCache<B> {
    /// The MAC of `ip`, if known.
    pub fn lookup(&self, ip: Ipv4Address) -> Option<EthernetAddress> {
        self.entries.get(&ip).copied()
    }

    /// Learns (or refreshes) `ip`'s MAC, within the cache's limit.
    pub fn learn(&mut self, ip: Ipv4Address, mac: EthernetAddress) -> Result<(), TableFull> {
        self.entries.insert(ip, mac).map(|_| ())
    }

    /// Refreshes `ip`'s MAC if it is already known; learns nothing new.
    pub fn refresh(&mut self, ip: Ipv4Address, mac: EthernetAddress) {
        if let Some(m) = self.entries.get_mut(&ip) {
            *m = mac;
        }
    }

    /// Parks a reply for `ip`; gives it back when the queue is full. The
    /// boolean says whether a request for `ip` is already out.
    pub fn park(&mut self, buf: B, ip: Ipv4Address) -> Result<bool, B> {
        if self.waiting.len() >= ARP_WAIT_LIMIT {
            return Err(buf);
        }
        let asked = self.waiting.iter().any(|(_, w)| *w == ip);
        self.waiting.push((buf, ip));
        Ok(asked)
    }

    /// Takes one of the replies that waited for `ip`.
    pub fn take_waiting(&mut self, ip: Ipv4Address) -> Option<B> {
        let i = self.waiting.iter().position(|(_, w)| *w == ip)?;
        Some(self.waiting.swap_remove(i).0)
    }

    /// Replies waiting for a resolution.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learn_refresh_park() {
        let mut c: ArpCache<u32> = ArpCache::default();
        let ip = Ipv4Address::new(198, 18, 0, 1);
        let m1 = EthernetAddress([2, 0, 0, 0, 0, 1]);
        let m2 = EthernetAddress([2, 0, 0, 0, 0, 2]);
        c.refresh(ip, m1);
        assert_eq!(c.lookup(ip), None, "refresh learns nothing new");
        c.learn(ip, m1).unwrap();
        c.refresh(ip, m2);
        assert_eq!(c.lookup(ip), Some(m2));
        assert_eq!(c.park(7, ip), Ok(false));
        assert_eq!(c.park(8, ip), Ok(true), "second reply: the request is out");
        let mut got: Vec<u32> = std::iter::from_fn(|| c.take_waiting(ip)).collect();
        got.sort();
        assert_eq!(got, vec![7, 8]);
        assert_eq!(c.waiting(), 0);
        for i in 0..ARP_WAIT_LIMIT as u32 {
            assert!(c.park(i, ip).is_ok());
        }
        assert_eq!(c.park(99, ip), Err(99));
    }
}
