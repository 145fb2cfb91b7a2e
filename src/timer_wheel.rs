//! A hierarchical timing wheel: timers that cost what is due.
//!
//! [`TimerWheel`] stores plain values with a deadline and hands them back
//! once the clock passes that deadline. It exists so that the poll loop's
//! timer work is proportional to the timers that actually come due, never
//! to the number of timers stored (one per connection) nor to the time
//! elapsed since the last poll.
//!
//! # What it promises
//!
//! - A deadline is rounded up to the tick grid (multiples of `tick` since
//!   `Instant` 0; the project uses 1 ms). An item comes out of the first
//!   [`TimerWheel::expire`] call whose `now` is at or after its rounded
//!   deadline, never earlier. An item whose deadline is at or before the
//!   wheel's clock when it is inserted comes out of the next `expire`.
//! - Items come out in non-decreasing order of their rounded deadline
//!   (items of the same tick in any order). Items left over because of
//!   `expire`'s budget stay due and come first on the next call.
//! - Any deadline is kept, however far: one beyond the span of the wheel is
//!   parked in the top level and re-placed as it comes nearer, and fires on
//!   time.
//!
//! # Layout and span
//!
//! Five levels of 64 slots (6 bits of the tick count each). A slot of level
//! `l` covers 64^l ticks, so a level covers 64^(l+1) ticks; at 1 ms ticks:
//!
//! | level | slot width | level span |
//! |---|---|---|
//! | 0 | 1 ms | 64 ms |
//! | 1 | 64 ms | 4.1 s |
//! | 2 | 4.1 s | 4.4 min |
//! | 3 | 4.4 min | 4.7 h |
//! | 4 | 4.7 h | 12.4 days (2^30 ticks) |
//!
//! An item goes to the level given by the highest bit in which its deadline
//! (in ticks) differs from the wheel's position, and to the slot given by
//! its deadline's 6 bits at that level (as in the Linux kernel's and
//! tokio's wheels). Each item keeps its absolute deadline, so when a slot of
//! level `l > 0` comes up its items are re-placed exactly, in lower levels;
//! level 0 slots hold items of exactly one tick. Deadlines more than
//! 2^30 ticks ahead go to the top-level slot that comes up last and are
//! re-placed from there (once per 12.4 days of wheel time at most).
//!
//! # Cost model
//!
//! - [`TimerWheel::insert`]: O(1) (a few shifts and one entry appended to
//!   the slot's current chunk).
//! - [`TimerWheel::expire`]: proportional to the items it hands out, plus
//!   the items it cascades down a level (each item cascades at most once
//!   per level, four times in all, plus once per 12.4 days beyond the span;
//!   at most `budget` of them per call: a slot of a high level holding a
//!   million timers is re-placed over many calls, and nothing fires until
//!   it is, see [`TimerWheel::catching_up`]),
//!   plus the number of *non-empty* slots it passes, each found in O(1) per
//!   level from a 64-bit occupancy bitmap. It never walks empty slots, so
//!   the cost does not depend on how many ticks elapsed: an empty wheel
//!   advanced by a year does nothing.
//! - [`TimerWheel::next_deadline`], [`TimerWheel::len`]: O(levels).
//! - Memory: each slot is a list of chunks of 128 entries (deadline, item),
//!   taken from one pool with an intrusive free list and returned to it
//!   when emptied; only a slot's first chunk may be partly filled, so the
//!   pool never holds more than (peak number of timers) / 128 + 320
//!   chunks: the timers plus at most 40,960 entries of slack (640 KiB for
//!   an 8-byte item). Chunks are reused, never freed: once the wheel has
//!   reached its working size it does not allocate again. (Pass `expire`
//!   the same `out` vector each time so that it does not allocate either.)
//!   Entries of a chunk are contiguous, so a cascade reads memory in order
//!   rather than chasing one pointer per timer.
//!
//! # Lazy cancellation
//!
//! There is no removal. Items are small plain values (a slot index and a
//! generation, a table key); a caller that no longer wants a timer leaves
//! it in the wheel and, when it fires, compares it with its own state (the
//! generation, the deadline it currently holds) and ignores it if it is
//! stale. A caller that moves a deadline later simply inserts again and
//! ignores the earlier firing. Stale items cost one entry until they fire.

use smoltcp::time::{Duration, Instant};

/// Bits of the tick count per level.
const SLOT_BITS: u32 = 6;
/// Slots per level.
const SLOTS: usize = 1 << SLOT_BITS;
const SLOT_MASK: u64 = SLOTS as u64 - 1;
/// Levels: 64^5 = 2^30 ticks, 12.4 days at 1 ms.
pub const LEVELS: usize = 5;
/// Entries per chunk.
const CHUNK: usize = 128;
/// End of a list (and of the free list).
const NIL: u32 = u32::MAX;

/// Up to `CHUNK` stored timers of one slot, each with its absolute
/// deadline in ticks since the wheel's origin.
struct Chunk<T> {
    /// Allocated once with room for `CHUNK`, never grown, kept when empty.
    entries: Vec<(u64, T)>,
    /// Next chunk of the same slot (or of the free list).
    next: u32,
}

/// One level: 64 chunk-list heads and a bitmap of the non-empty ones.
#[derive(Clone, Copy)]
struct Level {
    occupied: u64,
    head: [u32; SLOTS],
}

/// Timers that cost what is due (insert O(1), expiry amortised O(1) per timer).
///
/// See the [module documentation](self) for the layout, the cost model and
/// the lazy-cancellation contract.
pub struct TimerWheel<T> {
    /// Tick 0, in microseconds (a multiple of `tick_us`).
    origin_us: i64,
    tick_us: u64,
    /// The latest clock seen (`new` or `expire`).
    now: Instant,
    /// The wheel's position in ticks: every slot that starts before it has
    /// been handled, and every stored deadline is at or after it. At most
    /// the tick of `now`; below it only while a budget left items due.
    elapsed: u64,
    levels: [Level; LEVELS],
    /// The chunk pool.
    chunks: Vec<Chunk<T>>,
    /// Head of the free list through `Chunk::next`.
    free: u32,
    len: usize,
    /// The chunks of a slot above level 0 that came up and whose items are
    /// being re-placed below, a budget's worth per `expire` (detached from
    /// their slot). While it is Some nothing fires: every item left in it is
    /// due no later than what the lower levels hold.
    cascading: Option<u32>,
    #[cfg(test)]
    visited: u64,
}

/// The level for a deadline `when >= elapsed`: where the highest differing
/// bit falls, at least 0, at most the top level.
#[inline]
fn level_for(elapsed: u64, when: u64) -> usize {
    let masked = (elapsed ^ when) | SLOT_MASK;
    let significant = 63 - masked.leading_zeros();
    ((significant / SLOT_BITS) as usize).min(LEVELS - 1)
}

impl<T> TimerWheel<T> {
    /// An empty wheel whose clock starts at `now`, with ticks of `tick` (the project uses 1 ms).
    ///
    /// Panics if `tick` is zero.
    pub fn new(now: Instant, tick: Duration) -> Self {
        let tick_us = tick.total_micros();
        assert!(
            tick_us > 0 && tick_us <= i64::MAX as u64,
            "timer wheel tick must be positive"
        );
        let t = tick_us as i64;
        Self {
            origin_us: now.total_micros().div_euclid(t) * t,
            tick_us,
            now,
            elapsed: 0,
            levels: [Level {
                occupied: 0,
                head: [NIL; SLOTS],
            }; LEVELS],
            chunks: Vec::new(),
            free: NIL,
            len: 0,
            cascading: None,
            #[cfg(test)]
            visited: 0,
        }
    }

    /// Schedules `item` at `at` (rounded up to a tick). A deadline at or before the wheel's
    /// current time fires on the next `expire` call. Deadlines beyond the wheel's span are
    /// kept and fire on time (e.g. re-placed as they come nearer).
    pub fn insert(&mut self, at: Instant, item: T) {
        let mut when = self.ceil_tick(at);
        if at <= self.now {
            // Due now, even if the clock is part-way into the tick before
            // `at`'s rounded deadline.
            when = when.min(self.now_tick());
        }
        // Past deadlines go to the current position (due, in order after
        // what has been handed out already).
        let when = when.max(self.elapsed);
        self.push(when, item);
        self.len += 1;
    }

    /// Moves the wheel's clock to `now` and pushes onto `out` the items whose deadline is
    /// <= now, at most `budget` of them; items left over because of the budget stay due and
    /// come first on the next call. Returns how many it pushed.
    ///
    /// Re-placing the items of a higher level's slot that came up counts
    /// against a second `budget` of its own: a call that used it up hands
    /// out what it has and leaves [`TimerWheel::catching_up`] true (the items
    /// due wait for the next calls; none is lost or reordered).
    ///
    /// A `now` earlier than the wheel's clock leaves the clock where it is
    /// (items already due are still handed out). Cost: the items it hands
    /// out or cascades plus the non-empty slots it passes (see the module
    /// documentation), never the ticks elapsed nor the timers stored.
    pub fn expire(&mut self, now: Instant, budget: usize, out: &mut Vec<T>) -> usize {
        if now > self.now {
            self.now = now;
        }
        let target = self.now_tick();
        let mut pushed = 0;
        // Items re-placed from a higher level: at most `budget` of them per
        // call too, so that a slot of a high level (a million timers in a
        // 4.4-minute slot) is re-placed over many calls rather than stalling
        // one. A call that stops for it leaves `catching_up` true.
        let mut moved = 0;
        loop {
            if self.cascading.is_some() {
                if moved >= budget {
                    break;
                }
                moved += self.cascade_some(budget - moved);
                continue;
            }
            let due = self.next_slot().filter(|&(_, _, start)| start <= target);
            let Some((level, slot, start)) = due else {
                // Every slot up to `target` has been handled.
                self.elapsed = target;
                break;
            };
            if pushed == budget {
                // Leave the wheel at the first due slot.
                break;
            }
            self.count_visit();
            self.elapsed = start;
            if level == 0 {
                pushed += self.fire(slot, budget - pushed, out);
            } else {
                self.start_cascade(level, slot);
            }
        }
        pushed
    }

    /// True while a slot of a level above 0 is being re-placed (see
    /// [`TimerWheel::expire`]): an `expire` that handed out fewer than its
    /// budget may have left items due, which the next calls hand out.
    pub fn catching_up(&self) -> bool {
        self.cascading.is_some()
    }

    /// Timers stored (due or not).
    pub fn len(&self) -> usize {
        self.len
    }

    /// No timer stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The earliest deadline stored, or a lower bound of it (tick granularity is fine), None when empty.
    ///
    /// Exact (to the tick) when the earliest timer is within the current
    /// 64-tick block; otherwise the start of the slot that holds it. At or
    /// before the wheel's clock when something is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        let start = match self.cascading {
            // Being re-placed: its items are due from the wheel's position on.
            Some(_) => self.elapsed,
            None => self.next_slot()?.2,
        };
        let us = i64::try_from(start.saturating_mul(self.tick_us)).unwrap_or(i64::MAX);
        Some(Instant::from_micros(self.origin_us.saturating_add(us)))
    }

    /// Ticks since the origin of the wheel's clock (rounded down).
    fn now_tick(&self) -> u64 {
        // `now` never goes below the origin.
        (self.now.total_micros() - self.origin_us) as u64 / self.tick_us
    }

    /// `at` in ticks since the origin, rounded up; 0 for times before it.
    fn ceil_tick(&self, at: Instant) -> u64 {
        let diff = at.total_micros().saturating_sub(self.origin_us);
        if diff <= 0 {
            0
        } else {
            (diff as u64).div_ceil(self.tick_us)
        }
    }

    /// Stores an item due at tick `when` (at or after `elapsed`) in its slot.
    fn push(&mut self, when: u64, item: T) {
        let level = level_for(self.elapsed, when);
        let shift = SLOT_BITS * level as u32;
        let mut n = when >> shift;
        if level == LEVELS - 1 {
            // Beyond the span: the top-level slot that comes up last, whose
            // start is still before the deadline; re-placed from there.
            n = n.min((self.elapsed >> shift) + SLOTS as u64);
        }
        let slot = (n & SLOT_MASK) as usize;
        let head = self.levels[level].head[slot];
        let idx = if head != NIL && self.chunks[head as usize].entries.len() < CHUNK {
            head
        } else {
            let idx = self.alloc_chunk();
            self.chunks[idx as usize].next = head;
            let lv = &mut self.levels[level];
            lv.head[slot] = idx;
            lv.occupied |= 1 << slot;
            idx
        };
        self.chunks[idx as usize].entries.push((when, item));
    }

    /// An empty chunk: from the free list, or a new one.
    fn alloc_chunk(&mut self) -> u32 {
        if self.free != NIL {
            let idx = self.free;
            self.free = self.chunks[idx as usize].next;
            return idx;
        }
        assert!(self.chunks.len() < NIL as usize, "timer wheel full");
        self.chunks.push(Chunk {
            entries: Vec::with_capacity(CHUNK),
            next: NIL,
        });
        (self.chunks.len() - 1) as u32
    }

    /// Returns an empty chunk to the free list.
    fn free_chunk(&mut self, idx: u32) {
        let chunk = &mut self.chunks[idx as usize];
        debug_assert!(chunk.entries.is_empty());
        chunk.next = self.free;
        self.free = idx;
    }

    /// The first non-empty slot from the wheel's position: (level, slot,
    /// start tick). Lower levels always come up before higher ones, so the
    /// lowest non-empty level has it.
    ///
    /// At level 0 the current slot is the current tick (due); at higher
    /// levels the current slot has been handled, so a bit there means the
    /// next turn of that level (top-level items beyond the span).
    fn next_slot(&self) -> Option<(usize, usize, u64)> {
        for (level, lv) in self.levels.iter().enumerate() {
            if lv.occupied == 0 {
                continue;
            }
            let shift = SLOT_BITS * level as u32;
            let base = self.elapsed >> shift;
            let pos = (base & SLOT_MASK) as u32;
            let ahead = if level == 0 {
                lv.occupied.rotate_right(pos).trailing_zeros() as u64
            } else {
                lv.occupied
                    .rotate_right((pos + 1) & SLOT_MASK as u32)
                    .trailing_zeros() as u64
                    + 1
            };
            let n = base + ahead;
            return Some((level, (n & SLOT_MASK) as usize, n << shift));
        }
        None
    }

    /// Hands out up to `max` items of level-0 slot `slot`; returns how many.
    fn fire(&mut self, slot: usize, max: usize, out: &mut Vec<T>) -> usize {
        let mut head = self.levels[0].head[slot];
        let mut n = 0;
        while n < max && head != NIL {
            let chunk = &mut self.chunks[head as usize];
            let take = (max - n).min(chunk.entries.len());
            let from = chunk.entries.len() - take;
            out.extend(chunk.entries.drain(from..).map(|(_, item)| item));
            n += take;
            if chunk.entries.is_empty() {
                let next = chunk.next;
                self.free_chunk(head);
                head = next;
            }
        }
        let lv = &mut self.levels[0];
        lv.head[slot] = head;
        if head == NIL {
            lv.occupied &= !(1 << slot);
        }
        self.len -= n;
        n
    }

    /// Slot `slot` of `level` (above 0) has come up: its chunks are
    /// detached, to be re-placed in the levels below by [`Self::cascade_some`].
    fn start_cascade(&mut self, level: usize, slot: usize) {
        let lv = &mut self.levels[level];
        let head = std::mem::replace(&mut lv.head[slot], NIL);
        lv.occupied &= !(1 << slot);
        self.cascading = (head != NIL).then_some(head);
    }

    /// Re-places up to `max` items of the slot being cascaded, from their
    /// absolute deadlines; returns how many.
    fn cascade_some(&mut self, max: usize) -> usize {
        let mut n = 0;
        while let Some(head) = self.cascading {
            if n >= max {
                break;
            }
            // Taken out (an empty `Vec` left in place, no allocation) so
            // that its entries can go into other chunks of the pool.
            let mut entries = std::mem::take(&mut self.chunks[head as usize].entries);
            let take = (max - n).min(entries.len());
            let from = entries.len() - take;
            for (when, item) in entries.drain(from..) {
                self.push(when, item);
            }
            n += take;
            let chunk = &mut self.chunks[head as usize];
            chunk.entries = entries;
            if chunk.entries.is_empty() {
                let next = chunk.next;
                self.free_chunk(head);
                self.cascading = (next != NIL).then_some(next);
            }
        }
        n
    }

    #[cfg(test)]
    fn count_visit(&mut self) {
        self.visited += 1;
    }

    #[cfg(not(test))]
    #[inline(always)]
    fn count_visit(&mut self) {}

    /// Slots handled (cascaded or fired) so far, for cost tests.
    #[cfg(test)]
    fn slots_visited(&self) -> u64 {
        self.visited
    }

    /// Entries the chunk pool can hold without allocating, for memory tests.
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.chunks.iter().map(|c| c.entries.capacity()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    fn us(t: i64) -> Instant {
        Instant::from_micros(t)
    }

    /// `at` rounded up to a multiple of `tick` µs.
    fn ceil_to(at: i64, tick: i64) -> i64 {
        let q = at.div_euclid(tick);
        if at.rem_euclid(tick) == 0 {
            q * tick
        } else {
            (q + 1) * tick
        }
    }

    /// `expire` with `budget` items, called again while the wheel is
    /// catching up (re-placing a slot) and budget is left: what one call
    /// hands out when re-placing costs nothing.
    fn expire_full(
        w: &mut TimerWheel<u32>,
        now: Instant,
        budget: usize,
        out: &mut Vec<u32>,
    ) -> usize {
        let mut n = 0;
        loop {
            let before = out.len();
            let got = w.expire(now, budget - n, out);
            assert_eq!(got, out.len() - before);
            n += got;
            if n == budget || !w.catching_up() {
                return n;
            }
        }
    }

    fn drain(w: &mut TimerWheel<u32>, now: Instant) -> Vec<u32> {
        let mut out = Vec::new();
        let n = expire_full(w, now, usize::MAX, &mut out);
        assert_eq!(n, out.len());
        out.sort_unstable();
        out
    }

    /// Deadlines at every level boundary, far, beyond the span and in the
    /// past: each comes out exactly at the first `expire(now)` with `now`
    /// at or after its rounded-up deadline.
    #[test]
    fn each_deadline_fires_exactly_on_time() {
        // An origin off the tick grid, so that rounding is exercised.
        let origin = 1_000_000_123_456i64;
        let ms = 1_000i64;
        let offsets: &[i64] = &[
            -5_000 * ms,             // in the past
            -1,                      // just past
            0,                       // at the clock
            1,                       // 1 µs ahead: rounds up to the next tick
            ms,                      // 1 ms
            63 * ms,                 // end of level 0
            64 * ms,                 // start of level 1
            64 * ms + 300,           // 64.3 ms
            65 * ms,                 // 65 ms
            4_000 * ms,              // 4 s
            4_096 * ms,              // start of level 2
            300_000 * ms,            // 5 min
            7_200_000 * ms,          // 2 h
            3 * 86_400_000 * ms,     // 3 days
            20 * 86_400_000 * ms,    // 20 days: beyond the span
            (1i64 << 30) * ms,       // exactly the span
            (1i64 << 30) * ms + 500, // just past it
        ];
        let mut w = TimerWheel::new(us(origin), MS);
        // Expected: the first instant at which each item may fire.
        let mut expect: Vec<(i64, u32)> = Vec::new();
        for (id, &off) in offsets.iter().enumerate() {
            let at = origin + off;
            w.insert(us(at), id as u32);
            let fire = if at <= origin {
                i64::MIN
            } else {
                ceil_to(at, ms)
            };
            expect.push((fire, id as u32));
        }
        assert_eq!(w.len(), offsets.len());
        // Check points: just before and at every firing instant, plus every
        // millisecond of the first 5 s.
        let mut checks: Vec<i64> = vec![origin + 1];
        for &(fire, _) in &expect {
            if fire != i64::MIN {
                checks.extend([fire - ms, fire - 1, fire, fire + 1]);
            }
        }
        checks.extend((1..5_000).map(|k| ceil_to(origin, ms) + k * ms));
        checks.sort_unstable();
        checks.dedup();
        checks.retain(|&c| c > origin);
        let mut fired = vec![false; offsets.len()];
        for &c in &checks {
            let got = drain(&mut w, us(c));
            let mut want: Vec<u32> = expect
                .iter()
                .filter(|&&(fire, id)| fire <= c && !fired[id as usize])
                .map(|&(_, id)| id)
                .collect();
            want.sort_unstable();
            assert_eq!(got, want, "at +{} µs", c - origin);
            for id in got {
                fired[id as usize] = true;
            }
            if let Some(nd) = w.next_deadline() {
                let earliest = expect
                    .iter()
                    .filter(|&&(_, id)| !fired[id as usize])
                    .map(|&(fire, _)| fire)
                    .min()
                    .expect("stored timers");
                assert!(
                    nd.total_micros() <= earliest,
                    "next_deadline not a lower bound"
                );
            }
        }
        assert!(fired.iter().all(|&f| f));
        assert!(w.is_empty());
        assert_eq!(w.next_deadline(), None);
    }

    /// A deadline within the tick the clock is in, but after the clock,
    /// waits for the end of that tick; one at or before the clock does not.
    #[test]
    fn rounding_within_the_current_tick() {
        let mut w = TimerWheel::new(us(10_000), MS);
        assert!(drain(&mut w, us(12_400)).is_empty());
        w.insert(us(12_300), 1); // before the clock: due
        w.insert(us(12_400), 2); // at the clock: due
        w.insert(us(12_401), 3); // after: rounds up to 13 ms
        w.insert(us(13_000), 4);
        w.insert(us(13_001), 5);
        assert_eq!(drain(&mut w, us(12_400)), vec![1, 2]);
        assert_eq!(drain(&mut w, us(12_999)), Vec::<u32>::new());
        assert_eq!(drain(&mut w, us(13_000)), vec![3, 4]);
        assert_eq!(drain(&mut w, us(13_999)), Vec::<u32>::new());
        assert_eq!(drain(&mut w, us(14_000)), vec![5]);
        // A clock going backwards does not move the wheel back.
        w.insert(us(14_500), 6);
        assert!(drain(&mut w, us(1_000)).is_empty());
        assert_eq!(drain(&mut w, us(15_000)), vec![6]);
    }

    /// 20,000 items in one level-2 slot (4.1 s wide): when it comes up, a
    /// budget of 500 re-places them over 40 calls, the first 39 handing out
    /// nothing, the last the first item due; then the rest fire, none lost.
    #[test]
    fn a_big_slot_is_replaced_over_several_calls() {
        let mut w = TimerWheel::new(Instant::ZERO, MS);
        let n = 20_000u32;
        // Deadlines 8.192 s + 0..2 s: one level-2 slot seen from 0.
        for i in 0..n {
            w.insert(us(8_192_000 + i as i64 * 100), i);
        }
        let mut out = Vec::new();
        assert_eq!(w.expire(Instant::from_millis(8_191), 500, &mut out), 0);
        assert!(!w.catching_up());
        let mut calls = 0;
        let now = Instant::from_millis(8_192);
        while out.is_empty() {
            w.expire(now, 500, &mut out);
            calls += 1;
            assert!(calls <= 40, "too many calls");
            if out.is_empty() {
                assert!(w.catching_up());
            }
        }
        assert_eq!(calls, 40, "20,000 items re-placed 500 per call");
        assert_eq!(out, vec![0]);
        let rest = drain(&mut w, Instant::from_secs(20));
        assert_eq!(rest.len(), n as usize - 1);
        assert_eq!(w.len(), 0);
    }

    /// 10,000 items due at once with a budget of 100: 100 per call, all of
    /// them, in deadline order, and items inserted meanwhile keep order.
    #[test]
    fn budget_hands_out_in_deadline_order() {
        let mut w = TimerWheel::new(Instant::ZERO, MS);
        // Deadlines 0..5 s at 0.5 ms steps, inserted in a scrambled order.
        let n = 10_000u32;
        for i in 0..n {
            let k = (i.wrapping_mul(7_919)) % n; // 7919 is prime: a permutation
            w.insert(us(k as i64 * 500), k);
        }
        let now = Instant::from_secs(10);
        let mut all = Vec::new();
        let mut out = Vec::new();
        let mut calls = 0;
        loop {
            out.clear();
            let got = expire_full(&mut w, now, 100, &mut out);
            assert_eq!(got, out.len());
            if got == 0 {
                break;
            }
            assert_eq!(got, 100, "a full budget per call while items are due");
            calls += 1;
            all.extend_from_slice(&out);
            assert_eq!(w.len(), (n as usize) - all.len());
        }
        assert_eq!(calls, 100);
        // Non-decreasing rounded deadline (two items per 1 ms tick).
        let ticks: Vec<u32> = all.iter().map(|&k| (k * 500).div_ceil(1_000)).collect();
        assert!(ticks.windows(2).all(|p| p[0] <= p[1]), "out of order");
        let mut sorted = all.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..n).collect::<Vec<_>>());
        assert!(w.is_empty());
    }

    /// Items left by the budget come before later deadlines, including
    /// after a late insert of a past deadline.
    #[test]
    fn budget_leftovers_come_first() {
        let mut w = TimerWheel::new(Instant::ZERO, MS);
        for i in 0..10u32 {
            w.insert(Instant::from_millis(5), i);
        }
        w.insert(Instant::from_millis(7), 100);
        let mut out = Vec::new();
        assert_eq!(w.expire(Instant::from_millis(10), 4, &mut out), 4);
        w.insert(Instant::from_millis(9), 200); // in the past
        w.insert(Instant::from_millis(11), 300); // not yet
        out.clear();
        assert_eq!(w.expire(Instant::from_millis(10), 6, &mut out), 6);
        assert!(out.iter().all(|&i| i < 10));
        out.clear();
        assert_eq!(w.expire(Instant::from_millis(10), 100, &mut out), 2);
        assert_eq!(out, vec![100, 200]);
        assert_eq!(w.len(), 1);
    }

    /// Slots of many chunks: budgets that stop inside a chunk and across
    /// chunk boundaries, cascades of slots of many chunks, past deadlines
    /// added to a slot that is being drained.
    #[test]
    fn slots_of_many_chunks() {
        let mut w = TimerWheel::new(Instant::ZERO, MS);
        let mut next_id = 0u32;
        let mut add = |w: &mut TimerWheel<u32>, at: Instant, n: usize| {
            for _ in 0..n {
                w.insert(at, next_id);
                next_id += 1;
            }
        };
        add(&mut w, Instant::from_millis(5), 1_000); // ids 0..1000, level 0
        add(&mut w, Instant::from_millis(6), 1_000); // ids 1000..2000, level 0
        add(&mut w, Instant::from_millis(2_000), 3_000); // ids 2000..5000, level 1
        let mut seen = vec![0u8; 6_000];
        let mut out = Vec::new();
        let now = Instant::from_millis(10);
        let mut last_tick = 0;
        let mut late = 0;
        loop {
            out.clear();
            let n = w.expire(now, 7, &mut out);
            if n == 0 {
                break;
            }
            for &id in &out {
                seen[id as usize] += 1;
                // 5 ms before 6 ms; the late ones (past deadlines) with them.
                let tick = match id {
                    0..1_000 => 5,
                    1_000..2_000 => 6,
                    _ => last_tick,
                };
                assert!(tick >= last_tick, "item {id} after tick {last_tick}");
                last_tick = tick;
            }
            if late < 500 {
                add(&mut w, Instant::from_millis(3), 50);
                late += 50;
            }
        }
        assert!(seen[..2_000].iter().all(|&k| k == 1));
        assert!(seen[5_000..5_500].iter().all(|&k| k == 1));
        assert_eq!(w.len(), 3_000);
        // The level-1 slot of 3,000 (24 chunks) cascades into one level-0 slot.
        assert_eq!(
            drain(&mut w, Instant::from_millis(1_999)),
            Vec::<u32>::new()
        );
        let mut total = 0;
        loop {
            out.clear();
            let n = w.expire(Instant::from_millis(2_000), 300, &mut out);
            if n == 0 {
                break;
            }
            assert_eq!(n, 300);
            for &id in &out {
                assert!((2_000..5_000).contains(&id));
                seen[id as usize] += 1;
            }
            total += n;
        }
        assert_eq!(total, 3_000);
        assert!(seen[..5_500].iter().all(|&k| k == 1));
        assert!(w.is_empty());
    }

    /// One timer 10 days out, reached in one jump: a handful of slots (one
    /// per level), not 864 million ticks; an empty wheel advanced by a year
    /// visits nothing; a timer beyond the span costs one re-placement per
    /// turn of the top level.
    #[test]
    fn big_jumps_are_cheap() {
        let day = 86_400i64;
        let mut w = TimerWheel::new(Instant::ZERO, MS);
        w.insert(Instant::from_secs(10 * day), 7);
        assert_eq!(
            drain(&mut w, Instant::from_secs(10 * day) - MS),
            Vec::<u32>::new()
        );
        assert_eq!(drain(&mut w, Instant::from_secs(10 * day)), vec![7]);
        assert!(w.slots_visited() <= LEVELS as u64, "{}", w.slots_visited());

        let mut w = TimerWheel::<u32>::new(Instant::ZERO, MS);
        assert!(drain(&mut w, Instant::from_secs(365 * day)).is_empty());
        assert_eq!(w.slots_visited(), 0);
        assert_eq!(w.next_deadline(), None);

        // Beyond the span (12.4 days): a year out, reached in one jump.
        let mut w = TimerWheel::new(Instant::ZERO, MS);
        let at = Instant::from_secs(365 * day) + Duration::from_micros(1_500);
        w.insert(at, 9);
        assert_eq!(
            drain(&mut w, at - Duration::from_micros(501)),
            Vec::<u32>::new()
        );
        assert_eq!(drain(&mut w, at + Duration::from_micros(500)), vec![9]);
        // 365 / 12.4 ≈ 30 turns of the top level, then one slot per level.
        assert!(w.slots_visited() <= 40, "{}", w.slots_visited());
    }

    /// Work tracks what is due, not what is stored: with 100,000 timers
    /// between 1 and 2 hours out, stepping the first minute 1 ms at a
    /// time visits no slot at all.
    #[test]
    fn stored_timers_cost_nothing_until_near() {
        let mut w = TimerWheel::new(Instant::ZERO, MS);
        for i in 0..100_000u32 {
            w.insert(
                Instant::from_secs(3_600) + Duration::from_millis(i as u64 * 36),
                i,
            );
        }
        let mut out = Vec::new();
        for ms in 1..=60_000 {
            w.expire(Instant::from_millis(ms), usize::MAX, &mut out);
        }
        assert!(out.is_empty());
        assert_eq!(w.slots_visited(), 0);
        assert_eq!(w.len(), 100_000);
    }

    /// After one warm-up cycle, an identical cycle does not grow storage;
    /// and storage stays within the peak number of timers plus one partly
    /// filled chunk per slot.
    #[test]
    fn storage_is_reused() {
        /// Returns (timers fired, peak timers stored).
        fn cycle(w: &mut TimerWheel<u32>, start: i64, out: &mut Vec<u32>) -> (usize, usize) {
            // Bring the (empty) wheel to `start` first.
            assert!(w.is_empty());
            w.expire(Instant::from_millis(start), usize::MAX, out);
            let mut x = 0x9e37_79b9_u32;
            for i in 0..20_000u32 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                w.insert(Instant::from_millis(start + (x % 300_000) as i64), i);
            }
            let (mut fired, mut peak) = (0, w.len());
            let mut t = start;
            while !w.is_empty() {
                t += 7;
                out.clear();
                fired += w.expire(Instant::from_millis(t), 50, out);
                // Churn: a third of what fires is re-armed once, 1 s later.
                for &i in out.iter().filter(|&&i| i % 3 == 0 && i < 20_000) {
                    w.insert(Instant::from_millis(t + 1_000), i + 20_000);
                }
                peak = peak.max(w.len());
            }
            (fired, peak)
        }
        let mut w = TimerWheel::new(Instant::ZERO, MS);
        let mut out = Vec::with_capacity(64);
        let (first, peak) = cycle(&mut w, 0, &mut out);
        let cap = w.capacity();
        let out_cap = out.capacity();
        assert!(cap >= peak);
        let bound = peak.div_ceil(CHUNK) * CHUNK + LEVELS * SLOTS * CHUNK;
        assert!(cap <= bound, "{cap} entries of storage for {peak} timers");
        // The same cycle in the same phase of every level (2^30 ticks on).
        let second = cycle(&mut w, 1 << 30, &mut out);
        assert_eq!((first, peak), second);
        assert_eq!(w.capacity(), cap, "the second cycle grew the pool");
        assert_eq!(out.capacity(), out_cap);
        // Another phase may arrange chunks differently, within the bound.
        cycle(&mut w, 5_000_017, &mut out);
        assert!(w.capacity() <= bound);
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Deadline relative to the clock, µs.
        Insert(i64),
        /// Clock step in µs (possibly backwards), and a budget.
        Expire(i64, usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        let ms = 1_000i64;
        let day = 86_400_000 * ms;
        let deadline = prop_oneof![
            4 => -5_000 * ms..5_000 * ms,
            // Many in a few slots: slots of several chunks.
            3 => 0..10 * ms,
            3 => 0..300_000 * ms,
            2 => 0..5 * day,
            1 => 0..40 * day,
        ];
        let step = prop_oneof![
            4 => 0..3 * ms,
            3 => 0..200 * ms,
            2 => 0..600_000 * ms,
            1 => 0..20 * day,
            1 => -5 * ms..0,
        ];
        let budget = prop_oneof![3 => Just(usize::MAX), 2 => 0..5usize, 1 => 5..50usize];
        prop_oneof![
            3 => deadline.prop_map(Op::Insert),
            2 => (step, budget).prop_map(|(s, b)| Op::Expire(s, b)),
        ]
    }

    /// The wheel against a plain list: every item has the instant from
    /// which it may fire (its deadline rounded up, or "now" for a deadline
    /// not after the clock when inserted).
    fn check(origin: i64, tick: i64, ops: &[Op]) -> Result<(), TestCaseError> {
        let mut w = TimerWheel::new(us(origin), Duration::from_micros(tick as u64));
        // (fire from, id, inserted with a future deadline)
        let mut model: Vec<(i64, u32, bool)> = Vec::new();
        let mut clock = origin;
        let mut ids = 0u32;
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for op in ops {
            match *op {
                Op::Insert(rel) => {
                    let at = clock + rel;
                    w.insert(us(at), ids);
                    let future = at > clock;
                    let fire = if future { ceil_to(at, tick) } else { i64::MIN };
                    model.push((fire, ids, future));
                    ids += 1;
                }
                Op::Expire(step, budget) => {
                    let now = clock + step;
                    clock = clock.max(now);
                    out.clear();
                    let n = expire_full(&mut w, us(now), budget, &mut out);
                    prop_assert_eq!(n, out.len());
                    let due: Vec<(i64, u32, bool)> =
                        model.iter().copied().filter(|m| m.0 <= clock).collect();
                    prop_assert_eq!(n, due.len().min(budget), "count");
                    for &id in &out {
                        prop_assert!(seen.insert(id), "item {} handed out twice", id);
                        prop_assert!(
                            due.iter().any(|m| m.1 == id),
                            "item {} early or unknown",
                            id
                        );
                    }
                    model.retain(|m| !out.contains(&m.1));
                    // Order (items inserted with a future deadline): what
                    // came out is not after what is still due.
                    let last_out = due
                        .iter()
                        .filter(|m| m.2 && out.contains(&m.1))
                        .map(|m| m.0)
                        .max();
                    let first_left = model
                        .iter()
                        .filter(|m| m.2 && m.0 <= clock)
                        .map(|m| m.0)
                        .min();
                    if let (Some(a), Some(b)) = (last_out, first_left) {
                        prop_assert!(a <= b, "handed out {} before {}", a, b);
                    }
                }
            }
            prop_assert_eq!(w.len(), model.len());
            match w.next_deadline() {
                None => prop_assert!(model.is_empty()),
                Some(nd) => {
                    // A lower bound of the earliest: its firing instant, or
                    // the clock for what is due.
                    let earliest = model
                        .iter()
                        .map(|m| if m.0 <= clock { clock } else { m.0 })
                        .min();
                    prop_assert!(earliest.is_some());
                    prop_assert!(nd.total_micros() <= earliest.unwrap_or(i64::MAX));
                }
            }
        }
        // Drain: nothing lost.
        out.clear();
        let far = clock + 100 * 86_400_000_000;
        w.expire(us(far), usize::MAX, &mut out);
        let mut rest: Vec<u32> = model.iter().map(|m| m.1).collect();
        rest.sort_unstable();
        out.sort_unstable();
        prop_assert_eq!(out, rest);
        prop_assert!(w.is_empty());
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn matches_a_sorted_list(
            origin in -1_000_000_000_000i64..1_000_000_000_000,
            tick in prop_oneof![4 => Just(1_000i64), 1 => Just(1i64), 1 => Just(250i64), 1 => 1..100_000i64],
            ops in proptest::collection::vec(op(), 1..300),
        ) {
            check(origin, tick, &ops)?;
        }
    }
}
