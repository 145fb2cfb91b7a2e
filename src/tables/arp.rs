//! The ARP cache (IPv4 address -> MAC), the resolutions in progress, and the
//! replies parked until a MAC is resolved.
//!
//! A node needs a client's MAC only when it answers a client whose packets
//! did not reach it directly (a moved UDP flow); everything else is answered
//! to the source MAC of the packet. No I/O here: the node's host room
//! (`src/node/host.rs`) sends the requests and keeps the timers.
//!
//! # Rules
//!
//! - **What is learned.** The sender of a request for one of our addresses
//!   (RFC 826's merge), and the answer to a request we sent (a resolution in
//!   progress). An unsolicited reply, and any other ARP packet, only
//!   refreshes an entry we already have: a flood of made-up replies cannot
//!   fill the cache. At most [`ARP_CACHE_LIMIT`] entries: a full cache keeps
//!   what it has and refuses the new address (counted).
//! - **Aging.** An entry is good for [`ARP_MAX_AGE`] after it was last heard
//!   (any ARP packet from that address refreshes it). An older entry is
//!   stale: lookups miss, so the next reply to that address parks and the
//!   address is resolved again. Each entry has one timer in the node's wheel
//!   that removes it once it has not been heard for the whole age
//!   ([`ArpCache::check_age`]): no walk of the cache, ever.
//! - **Waiting replies.** At most [`ARP_WAIT_LIMIT`] replies wait for a
//!   resolution. A resolution sends a request, then again every
//!   [`ARP_RETRY_INTERVAL`], [`ARP_TRIES`] requests in all; one interval
//!   after the last, its replies are freed and counted
//!   ([`ArpCache::retry_due`]). With the defaults a reply waits 3 s at most.

use super::{BoundedMap, IdleCheck, TableFull};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, Ipv4Address};

/// Entries of the cache, at most.
pub const ARP_CACHE_LIMIT: usize = 4096;
/// Replies waiting for a MAC address resolution, at most (so at most as many
/// resolutions are in progress).
pub const ARP_WAIT_LIMIT: usize = 64;
/// How long an entry is good after it was last heard.
pub const ARP_MAX_AGE: Duration = Duration::from_secs(300);
/// Time between the requests of one resolution.
pub const ARP_RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// Requests one resolution sends before its waiting replies are freed.
pub const ARP_TRIES: u32 = 3;

/// A cache entry.
#[derive(Debug, Clone, Copy)]
struct Entry {
    mac: EthernetAddress,
    heard: Instant,
    /// Names the entry's aging timer.
    gen: u32,
}

/// A resolution in progress.
#[derive(Debug, Clone, Copy)]
struct Resolution {
    /// Requests sent so far.
    tries: u32,
    /// Names its retry timer.
    gen: u32,
}

/// What a resolution's retry timer finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryCheck {
    /// The resolution it was armed for is over.
    Stale,
    /// Send the request again (counted as a try) and re-arm.
    Again,
    /// Out of tries: the resolution is over; free its waiting replies.
    GiveUp,
}

/// The cache, the resolutions and the parked replies (`B`: a packet buffer).
pub struct ArpCache<B> {
    entries: BoundedMap<Ipv4Address, Entry>,
    resolving: BoundedMap<Ipv4Address, Resolution>,
    waiting: Vec<(B, Ipv4Address)>,
    next_gen: u32,
}

impl<B> Default for ArpCache<B> {
    fn default() -> Self {
        ArpCache {
            entries: BoundedMap::new(ARP_CACHE_LIMIT),
            resolving: BoundedMap::new(ARP_WAIT_LIMIT),
            waiting: Vec::new(),
            next_gen: 0,
        }
    }
}

impl<B> ArpCache<B> {
    fn new_gen(&mut self) -> u32 {
        self.next_gen = self.next_gen.wrapping_add(1);
        self.next_gen
    }

    /// The MAC of `ip`, if known and not stale at `now`.
    pub fn lookup(&self, ip: Ipv4Address, now: Instant) -> Option<EthernetAddress> {
        self.entries
            .get(&ip)
            .filter(|e| now < e.heard + ARP_MAX_AGE)
            .map(|e| e.mac)
    }

    /// Learns (or refreshes) `ip`'s MAC, heard at `now`, within the cache's
    /// limit. For a new entry, returns the generation to arm its aging timer
    /// with (at `now + ARP_MAX_AGE`).
    pub fn learn(
        &mut self,
        ip: Ipv4Address,
        mac: EthernetAddress,
        now: Instant,
    ) -> Result<Option<u32>, TableFull> {
        if self.refresh(ip, mac, now) {
            return Ok(None);
        }
        let gen = self.new_gen();
        self.entries.insert(
            ip,
            Entry {
                mac,
                heard: now,
                gen,
            },
        )?;
        Ok(Some(gen))
    }

    /// Refreshes `ip`'s MAC if it is already known; learns nothing new.
    /// True when it was known.
    pub fn refresh(&mut self, ip: Ipv4Address, mac: EthernetAddress, now: Instant) -> bool {
        match self.entries.get_mut(&ip) {
            Some(e) => {
                e.mac = mac;
                e.heard = now;
                true
            }
            None => false,
        }
    }

    /// The aging timer `gen` of `ip`'s entry fired at `now`: removes the
    /// entry if it was not heard for [`ARP_MAX_AGE`].
    pub fn check_age(&mut self, ip: Ipv4Address, gen: u32, now: Instant) -> IdleCheck {
        match self.entries.get(&ip) {
            Some(e) if e.gen == gen => {
                let due = e.heard + ARP_MAX_AGE;
                if now >= due {
                    self.entries.remove(&ip);
                    IdleCheck::Expired
                } else {
                    IdleCheck::Later(due)
                }
            }
            _ => IdleCheck::Stale,
        }
    }

    /// True while `ip` is being resolved (a request of ours is out).
    pub fn is_resolving(&self, ip: Ipv4Address) -> bool {
        self.resolving.contains_key(&ip)
    }

    /// Parks a reply for `ip`; gives it back when the queue is full. When
    /// this starts a resolution of `ip`, returns the generation to arm its
    /// retry timer with: the caller sends the first request.
    pub fn park(&mut self, buf: B, ip: Ipv4Address) -> Result<Option<u32>, B> {
        if self.waiting.len() >= ARP_WAIT_LIMIT {
            return Err(buf);
        }
        let started = if self.resolving.contains_key(&ip) {
            None
        } else {
            let gen = self.new_gen();
            // Never full: there are fewer resolutions than waiting replies.
            if self
                .resolving
                .insert(ip, Resolution { tries: 1, gen })
                .is_err()
            {
                return Err(buf);
            }
            Some(gen)
        };
        self.waiting.push((buf, ip));
        Ok(started)
    }

    /// The retry timer `gen` of `ip`'s resolution fired.
    pub fn retry_due(&mut self, ip: Ipv4Address, gen: u32) -> RetryCheck {
        match self.resolving.get_mut(&ip) {
            Some(r) if r.gen == gen => {
                if r.tries < ARP_TRIES {
                    r.tries += 1;
                    RetryCheck::Again
                } else {
                    self.resolving.remove(&ip);
                    RetryCheck::GiveUp
                }
            }
            _ => RetryCheck::Stale,
        }
    }

    /// `ip` is resolved (or given up): ends its resolution. Take its
    /// waiting replies with [`ArpCache::take_waiting`].
    pub fn end_resolution(&mut self, ip: Ipv4Address) {
        self.resolving.remove(&ip);
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

    /// Entries in the cache (stale ones included until their timer removes them).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the cache holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: Ipv4Address = Ipv4Address::new(198, 18, 0, 1);
    const M1: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
    const M2: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);

    fn at(s: u64) -> Instant {
        Instant::from_secs(s as i64)
    }

    #[test]
    fn learn_refresh_age() {
        let mut c: ArpCache<u32> = ArpCache::default();
        assert!(!c.refresh(IP, M1, at(0)));
        assert_eq!(c.lookup(IP, at(0)), None, "refresh learns nothing new");
        let gen = c.learn(IP, M1, at(0)).unwrap().expect("new entry");
        assert_eq!(c.learn(IP, M2, at(100)).unwrap(), None, "a refresh");
        assert_eq!(c.lookup(IP, at(100)), Some(M2));
        // Heard at 100: good until 400, stale after.
        assert_eq!(c.lookup(IP, at(399)), Some(M2));
        assert_eq!(c.lookup(IP, at(400)), None, "stale");
        assert_eq!(
            c.check_age(IP, gen, at(300)),
            IdleCheck::Later(at(400)),
            "heard since the timer was armed"
        );
        assert_eq!(c.check_age(IP, gen + 1, at(400)), IdleCheck::Stale);
        assert_eq!(c.check_age(IP, gen, at(400)), IdleCheck::Expired);
        assert!(c.is_empty());
    }

    #[test]
    fn cache_limit() {
        let mut c: ArpCache<u32> = ArpCache::default();
        for i in 0..ARP_CACHE_LIMIT as u32 {
            c.learn(Ipv4Address::from(0xc612_0000 + i), M1, at(0))
                .unwrap();
        }
        let other = Ipv4Address::new(198, 19, 0, 1);
        assert_eq!(c.learn(other, M1, at(0)), Err(TableFull), "full");
        assert_eq!(c.learn(IP, M2, at(1)), Ok(None), "a known one is refreshed");
        assert_eq!(c.len(), ARP_CACHE_LIMIT);
    }

    #[test]
    fn park_retry_give_up() {
        let mut c: ArpCache<u32> = ArpCache::default();
        let gen = c.park(7, IP).unwrap().expect("a resolution starts");
        assert_eq!(c.park(8, IP), Ok(None), "second reply: the request is out");
        assert!(c.is_resolving(IP));
        assert_eq!(c.retry_due(IP, gen + 1), RetryCheck::Stale);
        for _ in 1..ARP_TRIES {
            assert_eq!(c.retry_due(IP, gen), RetryCheck::Again);
        }
        assert_eq!(c.retry_due(IP, gen), RetryCheck::GiveUp);
        assert!(!c.is_resolving(IP));
        assert_eq!(c.retry_due(IP, gen), RetryCheck::Stale);
        let mut got: Vec<u32> = std::iter::from_fn(|| c.take_waiting(IP)).collect();
        got.sort();
        assert_eq!(got, vec![7, 8]);
        assert_eq!(c.waiting(), 0);
        for i in 0..ARP_WAIT_LIMIT as u32 {
            assert!(c.park(i, Ipv4Address::from(0xc612_0000 + i)).is_ok());
        }
        assert_eq!(c.park(99, IP), Err(99));
    }
}
