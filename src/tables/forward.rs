//! The forward table (FIG. 12): client IP and port -> where the connection's
//! endpoint now lives.
//!
//! The front node installs an entry when a migration is acknowledged and from
//! then on wraps every packet of that client in an ipOS data frame to the
//! target. Entries leave when the owner reports the connection closed (or
//! moved on), after an idle timeout, or when their target goes down; the
//! table has a size limit and counts the inserts it refused.
//!
//! # The sweep
//!
//! When a target goes down (or restarts), the entries that point at it are
//! dead, idle clients' too. [`ForwardTable::start_sweep`] begins a pass over
//! the table that [`ForwardTable::sweep`] advances by a budget of entries per
//! call (the node calls it once per poll), removing the entries a predicate
//! calls dead: never a walk of the whole table at once. Entries sit in one
//! dense array (an `IndexMap`), and the pass is a cursor into it: entries
//! before the cursor were looked at. A removal anywhere (`swap_remove`)
//! moves the last entry into the hole; when the hole lies before the cursor,
//! the moved entry (not yet looked at) is swapped to just before the cursor
//! and the cursor steps back onto it, so a pass sees every entry that was
//! there when it began, whatever else the node removes meanwhile.

use hashbrown::DefaultHashBuilder;
use indexmap::IndexMap;
use ipos_wire::Flow;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, Ipv4Address};

use super::TableFull;

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
    /// The target's epoch when the entry was made (see `src/node/peers.rs`):
    /// an entry of an older epoch points at endpoints that are gone.
    pub target_epoch: u32,
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
/// ([`ForwardTable::check_idle`]), or by the sweep (module docs): never a
/// walk over the table.
pub struct ForwardTable {
    map: IndexMap<ForwardKey, Slot, DefaultHashBuilder>,
    limit: usize,
    full_refusals: u64,
    next_gen: u32,
    /// The sweep's cursor: entries before it were looked at (None: no sweep).
    sweep: Option<usize>,
}

impl ForwardTable {
    /// An empty table of at most `limit` entries (room for up to 4096 reserved).
    pub fn new(limit: usize) -> Self {
        ForwardTable {
            map: IndexMap::with_capacity_and_hasher(limit.min(4096), DefaultHashBuilder::default()),
            limit,
            full_refusals: 0,
            next_gen: 0,
            sweep: None,
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
        self.map.len() >= self.limit
    }

    /// Inserts refused because the table was full.
    pub fn full_refusals(&self) -> u64 {
        self.full_refusals
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
        if self.is_full() {
            self.full_refusals += 1;
            return Err(TableFull);
        }
        self.next_gen = self.next_gen.wrapping_add(1);
        let gen = self.next_gen;
        self.map.insert(key, Slot { entry, gen });
        Ok(Some(gen))
    }

    /// Removes a client's entry.
    pub fn remove(&mut self, key: &ForwardKey) -> Option<ForwardEntry> {
        let i = self.map.get_index_of(key)?;
        Some(self.remove_index(i).entry)
    }

    /// Removes the entry at index `i`, keeping the sweep's promise (module docs).
    fn remove_index(&mut self, i: usize) -> Slot {
        let (_, slot) = self.map.swap_remove_index(i).expect("index in range");
        if let Some(cursor) = self.sweep.as_mut() {
            if i < *cursor {
                // The old last entry now sits at `i`. If the cursor had not
                // reached it, it was not looked at yet: put it where the
                // cursor points after stepping back over the hole.
                *cursor -= 1;
                if i < self.map.len() && *cursor < self.map.len() {
                    self.map.swap_indices(i, *cursor);
                }
            }
        }
        slot
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
        match self.map.get_full(key) {
            Some((i, _, s)) if s.gen == gen => {
                let due = s.entry.last_used + idle;
                if now >= due {
                    self.remove_index(i);
                    IdleCheck::Expired
                } else {
                    IdleCheck::Later(due)
                }
            }
            _ => IdleCheck::Stale,
        }
    }

    /// Begins a pass of the sweep over every entry (again from the start if
    /// one is under way).
    pub fn start_sweep(&mut self) {
        self.sweep = Some(0);
    }

    /// True while a sweep is under way.
    pub fn sweeping(&self) -> bool {
        self.sweep.is_some()
    }

    /// Advances the sweep by at most `budget` entries, removing those `dead`
    /// calls dead; returns how many it removed. The pass ends when the
    /// cursor reaches the end of the table.
    pub fn sweep(&mut self, budget: usize, mut dead: impl FnMut(&ForwardEntry) -> bool) -> usize {
        let Some(mut cursor) = self.sweep else {
            return 0;
        };
        let mut removed = 0;
        for _ in 0..budget {
            let Some((_, s)) = self.map.get_index(cursor) else {
                break;
            };
            if dead(&s.entry) {
                // The last entry moves into `cursor`: look at it next.
                self.map.swap_remove_index(cursor);
                removed += 1;
            } else {
                cursor += 1;
            }
        }
        self.sweep = (cursor < self.map.len()).then_some(cursor);
        removed
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
            target_epoch: 0,
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

    fn on(port: u16, epoch: u32) -> ForwardEntry {
        ForwardEntry {
            target_port: port,
            target_epoch: epoch,
            ..entry(0)
        }
    }

    #[test]
    fn sweep_removes_the_dead_within_its_budget() {
        let mut t = ForwardTable::new(1000);
        // Odd clients point at epoch 1 (dead), even ones at epoch 2.
        for p in 0..100u16 {
            t.insert(key(p), on(p, 1 + u32::from(p % 2 == 0))).unwrap();
        }
        assert_eq!(t.sweep(10, |_| true), 0, "no sweep started");
        t.start_sweep();
        let mut passes = 0;
        while t.sweeping() {
            let before = t.len();
            let removed = t.sweep(8, |e| e.target_epoch == 1);
            assert_eq!(before - t.len(), removed);
            assert!(removed <= 8);
            passes += 1;
            assert!(passes < 100, "the sweep does not end");
        }
        assert_eq!(t.len(), 50);
        assert!((0..100u16).all(|p| t.get(&key(p)).is_some() == (p % 2 == 0)));
        assert!(
            passes >= 100 / 8,
            "{passes} calls: more than 8 entries per call"
        );
    }

    #[test]
    fn removals_during_a_sweep_skip_no_entry() {
        // Remove entries before and after the cursor between sweep steps:
        // every dead entry present at the start is still found.
        for seed in 0..20u16 {
            let mut t = ForwardTable::new(1000);
            for p in 0..64u16 {
                t.insert(key(p), on(p, u32::from(p % 3 == 0))).unwrap();
            }
            t.start_sweep();
            let mut k = seed;
            while t.sweeping() {
                t.sweep(3, |e| e.target_epoch == 1);
                // Remove some live entry (epoch 0), anywhere in the table.
                k = (k * 7 + 5) % 64;
                if k % 3 != 0 {
                    t.remove(&key(k));
                }
                // And a newcomer now and then (live).
                t.insert(key(1000 + k), on(1000 + k, 0)).unwrap();
            }
            for p in 0..64u16 {
                if p % 3 == 0 {
                    assert!(t.get(&key(p)).is_none(), "seed {seed}: dead entry {p} left");
                }
            }
        }
    }
}
