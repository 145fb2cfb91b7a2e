//! The forward table (FIG. 12): client IP and port -> where the connection's
//! endpoint now lives.
//!
//! The front node installs an entry when a migration is acknowledged and from
//! then on wraps every packet of that client in an ipOS data frame to the
//! target. Entries leave when the owner reports the connection closed (or
//! moved on), after an idle timeout, or when their target goes down; the
//! table has a size limit and counts the inserts it refused.
//!
//! # Layout
//!
//! A table may hold millions of entries, so each is 20 bytes: the client's
//! address and port, the time it was last used (milliseconds, wrapping
//! `u32`), an index into the table's *targets*, and the two links of its
//! idle list (below). A target (the owner's address, MAC and service port,
//! and the owner's epoch when the entry was made) is stored once, however
//! many entries point at it, and counted; it is freed with its last entry.
//! Entries sit in a slab of fixed chunks (an entry never moves, a removed
//! one's place is reused), found by a `hashbrown::HashTable` of 4-byte slab
//! indices.
//!
//! # Idle expiry
//!
//! Every entry sits in one of [`IDLE_BUCKETS`] lists, a ring of buckets of
//! `idle / (IDLE_BUCKETS - 2)` (at least 1 ms) each: the bucket of the time
//! it is to be checked (its insertion plus the idle time-out; then its last
//! use plus the time-out). [`ForwardTable::expire_idle`] takes the buckets
//! that have ended, a budget of entries per call, and removes the entries
//! not used for the whole time-out or moves them to the bucket of their new
//! due time. It costs what is due, like the node's timer wheel, without an
//! item in the wheel per entry; an entry expires at most one bucket (a
//! thousandth of the time-out) after it is due.
//!
//! # The sweep
//!
//! When a target goes down (or restarts), the entries that point at it are
//! dead, idle clients' too. [`ForwardTable::start_sweep`] begins a pass over
//! the table that [`ForwardTable::sweep`] advances by a budget of entries per
//! call (the node calls it once per poll), removing the entries a predicate
//! calls dead: never a walk of the whole table at once. The pass is a cursor
//! over the slab: entries never move, so a pass sees every entry that was
//! there when it began, whatever else the node removes meanwhile.

use hashbrown::DefaultHashBuilder;
use hashbrown::{HashMap, HashTable};
use ipos_wire::Flow;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, Ipv4Address};
use std::hash::BuildHasher;

use super::TableFull;

/// Idle lists (module docs): the ring covers one time-out and a bucket more.
pub const IDLE_BUCKETS: usize = 1024;

/// Distinct targets (owner, service port, epoch) a table holds at once; an
/// entry for one more is refused like one for a full table.
pub const MAX_TARGETS: usize = u16::MAX as usize;

/// Entries per slab chunk.
const CHUNK_BITS: u32 = 16;
const CHUNK: usize = 1 << CHUNK_BITS;
/// No entry (end of a list).
const NIL: u32 = u32::MAX;
/// A `prev` link with this bit set names the bucket whose list it heads.
const HEAD: u32 = 1 << 31;
/// The target index of a free slab entry.
const FREE: u16 = u16::MAX;
/// Entries the table can index at most (links keep bit 31 for buckets).
const MAX_ENTRIES: usize = (HEAD - 1) as usize;
/// The longest time-out the wrapping millisecond clock measures.
const MAX_IDLE_MS: u64 = 1 << 30;

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

/// Where to forward (what the table hands out and takes; it stores the
/// target once per target, module docs).
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
    /// Last time a packet used the entry (to the millisecond).
    pub last_used: Instant,
}

/// What an idle check of an entry found (the ARP cache's ages use it too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleCheck {
    /// The timer was for an entry that is gone or was replaced by a new one.
    Stale,
    /// The entry was idle for the whole time-out and is removed.
    Expired,
    /// The entry was used meanwhile: check again then.
    Later(Instant),
}

/// One entry of the slab (20 bytes).
#[derive(Debug, Clone, Copy)]
struct Slot {
    client_ip: u32,
    client_port: u16,
    /// Index into the targets, or [`FREE`].
    target: u16,
    /// Milliseconds since `Instant` 0, wrapping.
    last_used: u32,
    /// The previous entry of its idle list, or `HEAD | bucket`.
    prev: u32,
    /// The next entry of its idle list (of the free list when free), or [`NIL`].
    next: u32,
}

/// Where entries forward to, stored once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Target {
    ip: Ipv4Address,
    port: u16,
    mac: EthernetAddress,
    epoch: u32,
}

/// A target and the number of entries that point at it (0: free).
#[derive(Debug, Clone, Copy)]
struct TargetSlot {
    target: Target,
    refs: u32,
}

/// The forward table of one node. Entries leave on a notice, after an idle
/// time-out ([`ForwardTable::expire_idle`]), or by the sweep (module docs):
/// never a walk over the table.
pub struct ForwardTable {
    /// The slab: chunks of [`CHUNK`] entries, only the last one partly used.
    chunks: Vec<Vec<Slot>>,
    /// Slab entries in use or freed (the slab's high-water mark).
    used: usize,
    /// Free slab entries, linked by `next`.
    free: u32,
    /// Slab index of each entry, by its key's hash.
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    len: usize,
    limit: usize,
    full_refusals: u64,
    targets: Vec<TargetSlot>,
    target_ids: HashMap<Target, u16, DefaultHashBuilder>,
    free_targets: Vec<u16>,
    /// The idle time-out, in milliseconds.
    idle_ms: u64,
    /// A bucket's width, in milliseconds.
    bucket_ms: u64,
    /// First entry of each bucket's list.
    heads: Vec<u32>,
    /// A bit per bucket whose list is not empty.
    occupied: [u64; IDLE_BUCKETS / 64],
    /// The first bucket (counted from `Instant` 0) not taken yet.
    cursor: u64,
    /// The latest time the table was told, in milliseconds.
    clock_ms: u64,
    /// The sweep's cursor: slab entries before it were looked at (None: no sweep).
    sweep: Option<usize>,
}

/// Milliseconds since `Instant` 0 (0 before it).
fn millis(t: Instant) -> u64 {
    t.total_millis().max(0) as u64
}

fn key_hash(hasher: &DefaultHashBuilder, ip: u32, port: u16) -> u64 {
    hasher.hash_one((u64::from(ip) << 16) | u64::from(port))
}

fn slot_of(chunks: &[Vec<Slot>], i: u32) -> &Slot {
    &chunks[(i >> CHUNK_BITS) as usize][i as usize & (CHUNK - 1)]
}

impl ForwardTable {
    /// An empty table of at most `limit` entries (room for up to 4096
    /// reserved) whose entries expire when unused for `idle`.
    pub fn new(limit: usize, idle: Duration) -> Self {
        let limit = limit.min(MAX_ENTRIES);
        let idle_ms = idle.total_millis().clamp(1, MAX_IDLE_MS);
        ForwardTable {
            chunks: Vec::new(),
            used: 0,
            free: NIL,
            index: HashTable::with_capacity(limit.min(4096)),
            hasher: DefaultHashBuilder::default(),
            len: 0,
            limit,
            full_refusals: 0,
            targets: Vec::new(),
            target_ids: HashMap::with_hasher(DefaultHashBuilder::default()),
            free_targets: Vec::new(),
            idle_ms,
            bucket_ms: idle_ms.div_ceil(IDLE_BUCKETS as u64 - 2).max(1),
            heads: vec![NIL; IDLE_BUCKETS],
            occupied: [0; IDLE_BUCKETS / 64],
            cursor: 0,
            clock_ms: 0,
            sweep: None,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when a new client would be refused.
    pub fn is_full(&self) -> bool {
        self.len >= self.limit
    }

    /// Inserts refused because the table was full.
    pub fn full_refusals(&self) -> u64 {
        self.full_refusals
    }

    fn slot(&self, i: u32) -> &Slot {
        slot_of(&self.chunks, i)
    }

    fn slot_mut(&mut self, i: u32) -> &mut Slot {
        &mut self.chunks[(i >> CHUNK_BITS) as usize][i as usize & (CHUNK - 1)]
    }

    fn find(&self, key: &ForwardKey) -> Option<u32> {
        let (ip, port) = (u32::from(key.client_ip), key.client_port);
        let chunks = &self.chunks;
        self.index
            .find(key_hash(&self.hasher, ip, port), |&i| {
                let s = slot_of(chunks, i);
                s.client_ip == ip && s.client_port == port
            })
            .copied()
    }

    /// The entry of slab index `i`, as handed out.
    fn view(&self, s: &Slot) -> ForwardEntry {
        let t = self.targets[usize::from(s.target)].target;
        let last = self.clock_ms.saturating_sub(self.age(s));
        ForwardEntry {
            target_ip: t.ip,
            target_port: t.port,
            target_mac: t.mac,
            target_epoch: t.epoch,
            last_used: Instant::from_millis(last as i64),
        }
    }

    /// Milliseconds since `s` was last used, at the table's clock (no entry
    /// is used later than the clock; an entry unchecked for 2^32 ms, 49 days,
    /// would look younger).
    fn age(&self, s: &Slot) -> u64 {
        u64::from((self.clock_ms as u32).wrapping_sub(s.last_used))
    }

    fn tell_time(&mut self, now: Instant) -> u64 {
        let ms = millis(now);
        self.clock_ms = self.clock_ms.max(ms);
        ms
    }

    /// Looks a client up and marks the entry used.
    pub fn lookup(&mut self, key: &ForwardKey, now: Instant) -> Option<ForwardEntry> {
        let i = self.find(key)?;
        let ms = self.tell_time(now);
        let s = self.slot_mut(i);
        s.last_used = ms as u32;
        let s = *s;
        let mut e = self.view(&s);
        e.last_used = now;
        Some(e)
    }

    /// True when a client has an entry (nothing marked).
    pub fn contains(&self, key: &ForwardKey) -> bool {
        self.find(key).is_some()
    }

    /// The entry of a client.
    pub fn get(&self, key: &ForwardKey) -> Option<ForwardEntry> {
        self.find(key).map(|i| self.view(self.slot(i)))
    }

    /// The index of `entry`'s target, counted once more (a new one if need be).
    fn hold_target(&mut self, entry: &ForwardEntry) -> Option<u16> {
        let t = Target {
            ip: entry.target_ip,
            port: entry.target_port,
            mac: entry.target_mac,
            epoch: entry.target_epoch,
        };
        if let Some(&id) = self.target_ids.get(&t) {
            self.targets[usize::from(id)].refs += 1;
            return Some(id);
        }
        let id = match self.free_targets.pop() {
            Some(id) => id,
            None if self.targets.len() < MAX_TARGETS => {
                self.targets.push(TargetSlot { target: t, refs: 0 });
                (self.targets.len() - 1) as u16
            }
            None => return None,
        };
        self.targets[usize::from(id)] = TargetSlot { target: t, refs: 1 };
        self.target_ids.insert(t, id);
        Some(id)
    }

    /// One entry less points at target `id`.
    fn release_target(&mut self, id: u16) {
        let ts = &mut self.targets[usize::from(id)];
        ts.refs -= 1;
        if ts.refs == 0 {
            let t = ts.target;
            self.target_ids.remove(&t);
            self.free_targets.push(id);
        }
    }

    /// Installs or replaces an entry at `now`. A new client's entry is
    /// checked for idleness a time-out after `now`; a replaced entry keeps
    /// its due time. Returns true for a new client.
    pub fn insert(
        &mut self,
        key: ForwardKey,
        entry: ForwardEntry,
        now: Instant,
    ) -> Result<bool, TableFull> {
        let ms = self.tell_time(now);
        // Never later than the clock (ages count back from it).
        let last_used = millis(entry.last_used).min(self.clock_ms) as u32;
        if let Some(i) = self.find(&key) {
            let Some(target) = self.hold_target(&entry) else {
                self.full_refusals += 1;
                return Err(TableFull);
            };
            let old = self.slot(i).target;
            self.release_target(old);
            let s = self.slot_mut(i);
            s.target = target;
            s.last_used = last_used;
            return Ok(false);
        }
        if self.is_full() {
            self.full_refusals += 1;
            return Err(TableFull);
        }
        let Some(target) = self.hold_target(&entry) else {
            self.full_refusals += 1;
            return Err(TableFull);
        };
        let (ip, port) = (u32::from(key.client_ip), key.client_port);
        let slot = Slot {
            client_ip: ip,
            client_port: port,
            target,
            last_used,
            prev: NIL,
            next: NIL,
        };
        let i = if self.free != NIL {
            let i = self.free;
            self.free = self.slot(i).next;
            *self.slot_mut(i) = slot;
            i
        } else {
            let i = self.used as u32;
            if self.used.is_multiple_of(CHUNK) {
                self.chunks.push(Vec::new());
            }
            self.chunks.last_mut().expect("a chunk").push(slot);
            self.used += 1;
            i
        };
        let (chunks, hasher) = (&self.chunks, &self.hasher);
        self.index
            .insert_unique(key_hash(hasher, ip, port), i, |&j| {
                let s = slot_of(chunks, j);
                key_hash(hasher, s.client_ip, s.client_port)
            });
        if self.len == 0 {
            // The ring starts where the clock is (it may have jumped since).
            self.cursor = self.cursor.max(ms / self.bucket_ms);
        }
        self.len += 1;
        self.place(i, ms + self.idle_ms);
        Ok(true)
    }

    /// Links entry `i` into the bucket of `due_ms` (within the ring).
    fn place(&mut self, i: u32, due_ms: u64) {
        let ring = IDLE_BUCKETS as u64;
        let b =
            (due_ms.saturating_sub(1) / self.bucket_ms).clamp(self.cursor, self.cursor + ring - 1);
        let pos = (b % ring) as usize;
        let old = self.heads[pos];
        let s = self.slot_mut(i);
        s.prev = HEAD | pos as u32;
        s.next = old;
        if old != NIL {
            self.slot_mut(old).prev = i;
        } else {
            self.occupied[pos / 64] |= 1 << (pos % 64);
        }
        self.heads[pos] = i;
    }

    /// The first bucket from the cursor on whose list is not empty.
    fn next_occupied(&self) -> Option<u64> {
        let ring = IDLE_BUCKETS as u64;
        let start = (self.cursor % ring) as usize;
        let words = self.occupied.len();
        // The start's word above the start, the other words, the start's word below it.
        for k in 0..=words {
            let w = (start / 64 + k) % words;
            let mut bits = self.occupied[w];
            if k == 0 {
                bits &= u64::MAX << (start % 64);
            } else if k == words {
                bits &= !(u64::MAX << (start % 64));
            }
            if bits != 0 {
                let pos = w * 64 + bits.trailing_zeros() as usize;
                let d = (pos + IDLE_BUCKETS - start) % IDLE_BUCKETS;
                return Some(self.cursor + d as u64);
            }
        }
        None
    }

    /// Takes entry `i` out of its idle list.
    fn unlink(&mut self, i: u32) {
        let Slot { prev, next, .. } = *self.slot(i);
        if prev & HEAD != 0 {
            let pos = (prev & !HEAD) as usize;
            self.heads[pos] = next;
            if next == NIL {
                self.occupied[pos / 64] &= !(1 << (pos % 64));
            }
        } else {
            self.slot_mut(prev).next = next;
        }
        if next != NIL {
            self.slot_mut(next).prev = prev;
        }
    }

    /// Removes the entry in slab index `i`.
    fn remove_slot(&mut self, i: u32) -> ForwardEntry {
        self.unlink(i);
        let s = *self.slot(i);
        let e = self.view(&s);
        let h = key_hash(&self.hasher, s.client_ip, s.client_port);
        if let Ok(found) = self.index.find_entry(h, |&j| j == i) {
            found.remove();
        }
        self.release_target(s.target);
        let free = self.free;
        let s = self.slot_mut(i);
        s.target = FREE;
        s.next = free;
        self.free = i;
        self.len -= 1;
        e
    }

    /// Removes a client's entry.
    pub fn remove(&mut self, key: &ForwardKey) -> Option<ForwardEntry> {
        let i = self.find(key)?;
        Some(self.remove_slot(i))
    }

    /// Takes at most `budget` entries of the idle buckets
    /// that have ended by `now`: removes those not used for the time-out and
    /// moves the others to the bucket of their due time. Returns how many
    /// it removed.
    pub fn expire_idle(&mut self, now: Instant, budget: usize) -> usize {
        let now_ms = self.tell_time(now);
        let now_b = now_ms / self.bucket_ms;
        let ring = IDLE_BUCKETS as u64;
        if self.len == 0 {
            self.cursor = self.cursor.max(now_b);
            return 0;
        }
        if now_b <= self.cursor {
            return 0;
        }
        if now_b > self.cursor + ring {
            // Far behind (a jump of the clock): every bucket has ended, take
            // them in ring order from here.
            self.cursor = now_b - ring;
        }
        let (mut work, mut expired) = (0, 0);
        while work < budget {
            // Empty buckets cost nothing: the bitmap skips them.
            match self.next_occupied() {
                Some(b) if b < now_b => self.cursor = b,
                next => {
                    self.cursor = next.unwrap_or(now_b).min(now_b);
                    break;
                }
            }
            work += 1;
            let head = self.heads[(self.cursor % ring) as usize];
            let age = self
                .age(self.slot(head))
                .saturating_sub(self.clock_ms - now_ms);
            if age >= self.idle_ms {
                self.remove_slot(head);
                expired += 1;
            } else {
                self.unlink(head);
                self.place(head, now_ms - age + self.idle_ms);
            }
        }
        expired
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

    /// Advances the sweep by at most `budget` slab entries, removing those
    /// `dead` calls dead; returns how many it removed. The pass ends when the
    /// cursor reaches the end of the slab.
    pub fn sweep(&mut self, budget: usize, mut dead: impl FnMut(&ForwardEntry) -> bool) -> usize {
        let Some(mut cursor) = self.sweep else {
            return 0;
        };
        let mut removed = 0;
        let end = (cursor + budget).min(self.used);
        while cursor < end {
            let i = cursor as u32;
            let s = *self.slot(i);
            if s.target != FREE && dead(&self.view(&s)) {
                self.remove_slot(i);
                removed += 1;
            }
            cursor += 1;
        }
        self.sweep = (cursor < self.used).then_some(cursor);
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

    fn at(ms: i64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn entries_are_compact() {
        assert_eq!(core::mem::size_of::<Slot>(), 20);
    }

    #[test]
    fn limit_lookup_idle() {
        let idle = Duration::from_millis(1000);
        let mut t = ForwardTable::new(2, idle);
        assert_eq!(t.insert(key(1), entry(0), at(0)), Ok(true));
        assert_eq!(t.insert(key(2), entry(0), at(0)), Ok(true));
        assert_eq!(t.insert(key(3), entry(0), at(0)), Err(TableFull));
        assert_eq!(t.full_refusals(), 1);
        // Replacing an existing key is not refused and keeps its due time.
        assert_eq!(t.insert(key(2), entry(5), at(5)), Ok(false));
        assert_eq!(t.get(&key(2)).unwrap().last_used, at(5));
        assert!(t.lookup(&key(1), at(600)).is_some());
        assert_eq!(t.expire_idle(at(999), 100), 0, "nothing due yet");
        assert_eq!(t.len(), 2);
        // Key 2 (last used at 5) is due at 1005, key 1 (used at 600) at 1600.
        assert_eq!(t.expire_idle(at(1004), 100), 0);
        assert_eq!(t.expire_idle(at(1005), 100), 1);
        assert!(t.get(&key(2)).is_none());
        assert!(t.get(&key(1)).is_some());
        assert_eq!(t.expire_idle(at(1599), 100), 0);
        assert_eq!(t.expire_idle(at(1600), 100), 1);
        assert!(t.is_empty());
        // A removed key's place is reused and expires on its own time.
        assert_eq!(t.insert(key(1), entry(2000), at(2000)), Ok(true));
        assert!(t.remove(&key(1)).is_some());
        assert_eq!(t.insert(key(1), entry(2500), at(2500)), Ok(true));
        assert_eq!(t.expire_idle(at(3400), 100), 0);
        assert_eq!(t.expire_idle(at(3500), 100), 1);
        assert!(t.is_empty());
    }

    #[test]
    fn expiry_keeps_to_its_budget_and_survives_clock_jumps() {
        let idle = Duration::from_secs(900);
        let mut t = ForwardTable::new(10_000, idle);
        for p in 0..5000u16 {
            t.insert(key(p), entry(10), at(10)).unwrap();
        }
        // Used ones live on.
        for p in 0..1000u16 {
            t.lookup(&key(p), at(500_000));
        }
        let mut now = 900_010;
        let mut expired = 0;
        let mut calls = 0;
        while t.len() > 1000 {
            let n = t.expire_idle(at(now), 256);
            assert!(n <= 256);
            expired += n;
            calls += 1;
            now += 1;
            assert!(now < 900_010 + 10_000, "expiry is late");
        }
        assert_eq!(expired, 4000);
        assert!(calls >= 4000 / 256);
        assert!((0..1000u16).all(|p| t.get(&key(p)).is_some()));
        // A jump of the clock far beyond the ring: all due, none lost.
        let mut left = 1000;
        let now = 3_600_000_000;
        let mut calls = 0;
        while left > 0 {
            left -= t.expire_idle(at(now), 256);
            calls += 1;
            assert!(calls < 100, "the jump does not end");
        }
        assert!(t.is_empty());
        // A new entry after the jump expires on time.
        t.insert(key(1), entry(now), at(now)).unwrap();
        assert_eq!(t.expire_idle(at(now + 899_000), 1000), 0);
        let mut n = 0;
        for ms in (now + 899_000..now + 902_000).step_by(10) {
            n += t.expire_idle(at(ms), 1000);
        }
        assert_eq!(n, 1);
    }

    #[test]
    fn targets_are_stored_once() {
        let mut t = ForwardTable::new(1000, Duration::from_secs(1));
        for p in 0..100u16 {
            t.insert(key(p), on(80 + p % 2, 3), at(0)).unwrap();
        }
        assert_eq!(t.target_ids.len(), 2);
        assert_eq!(t.get(&key(7)).unwrap().target_port, 81);
        assert_eq!(t.get(&key(7)).unwrap().target_epoch, 3);
        // Moving an entry to a new target.
        t.insert(key(7), on(90, 4), at(0)).unwrap();
        assert_eq!(t.get(&key(7)).unwrap().target_port, 90);
        assert_eq!(t.target_ids.len(), 3);
        for p in 0..100u16 {
            t.remove(&key(p)).unwrap();
        }
        assert!(
            t.target_ids.is_empty(),
            "targets leave with their last entry"
        );
        assert_eq!(t.free_targets.len(), t.targets.len());
    }

    #[test]
    fn targets_are_bounded() {
        let mut t = ForwardTable::new(100_000, Duration::from_secs(1));
        let client = |i: u32| ForwardKey {
            client_ip: Ipv4Address::from(0xc612_0000 + (i >> 16)),
            client_port: i as u16,
        };
        for i in 0..MAX_TARGETS as u32 {
            t.insert(client(i), on(80, i), at(0)).unwrap();
        }
        let n = MAX_TARGETS as u32;
        assert_eq!(t.insert(client(n), on(80, n), at(0)), Err(TableFull));
        assert_eq!(t.full_refusals(), 1);
        assert_eq!(
            t.insert(client(n), on(80, 7), at(0)),
            Ok(true),
            "a known target"
        );
        t.remove(&client(3)).unwrap();
        assert_eq!(
            t.insert(client(n + 1), on(80, n), at(0)),
            Ok(true),
            "a freed one"
        );
        assert_eq!(t.get(&client(n + 1)).unwrap().target_epoch, n);
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
        let mut t = ForwardTable::new(1000, Duration::from_secs(1));
        // Odd clients point at epoch 1 (dead), even ones at epoch 2.
        for p in 0..100u16 {
            t.insert(key(p), on(p, 1 + u32::from(p % 2 == 0)), at(0))
                .unwrap();
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
            let mut t = ForwardTable::new(1000, Duration::from_secs(1));
            for p in 0..64u16 {
                t.insert(key(p), on(p, u32::from(p % 3 == 0)), at(0))
                    .unwrap();
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
                t.insert(key(1000 + k), on(1000 + k, 0), at(0)).unwrap();
            }
            for p in 0..64u16 {
                if p % 3 == 0 {
                    assert!(t.get(&key(p)).is_none(), "seed {seed}: dead entry {p} left");
                }
            }
        }
    }
}
