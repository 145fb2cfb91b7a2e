//! The memory behind the send and receive rings: taken on demand, given back when a
//! ring drains, recycled through a pool per thread.
//!
//! An established connection that has nothing to send and nothing unread holds no
//! buffer: a ring takes its memory when the first byte is stored in it and gives it
//! back as soon as it is empty again (the send ring when everything sent is
//! acknowledged, the receive ring when the application has read everything and nothing
//! waits out of order). An idle keep-alive connection therefore costs its endpoint and
//! its table entries, not its windows; the window it advertises is still the ring's
//! whole capacity, which is there the moment data arrives.
//!
//! Freed buffers go to a pool owned by the calling thread (a node's lane runs on one
//! thread, so each lane has its own pool: no lock, no shared write). Taking from the
//! pool is a `Vec::pop`, giving back a `Vec::push` into room reserved up front: neither
//! allocates. Only when the pool is empty does a ring get fresh memory from the
//! allocator (counted in [`PoolStats::allocated`]); when the pool already keeps
//! [`PoolStats::max_pooled`] buffers of that size, a returned one goes back to the
//! allocator ([`PoolStats::released`]). Recycled buffers are not cleared: a ring reads
//! only bytes it wrote itself.
//!
//! A drained ring restarts at offset 0, so a connection that exchanges small messages
//! touches only the first pages of the buffers it borrows, and a pooled buffer costs the
//! process no more resident memory than those pages.

use std::cell::RefCell;

/// Buffers of one size the pool keeps by default, per size and per thread.
pub const DEFAULT_MAX_POOLED: usize = 1024;
/// Distinct buffer sizes a pool keeps (a node uses two at most: send and receive).
const SIZE_CLASSES: usize = 4;

/// What a thread's pool has done and holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Buffers held by rings now.
    pub in_use: usize,
    /// Bytes of those buffers (their capacity: pages never touched are not resident).
    pub in_use_bytes: usize,
    /// Buffers waiting in the pool.
    pub pooled: usize,
    /// Buffers ever obtained from the allocator because the pool had none.
    pub allocated: u64,
    /// Buffers ever given back to the allocator because the pool was full (or the size
    /// had no class left).
    pub released: u64,
    /// Buffers ever taken by a ring (from the pool or fresh).
    pub taken: u64,
    /// The most buffers of one size the pool keeps.
    pub max_pooled: usize,
}

struct Class {
    size: usize,
    free: Vec<Box<[u8]>>,
}

struct Pool {
    classes: Vec<Class>,
    /// Its `max_pooled` is the pool's bound.
    stats: PoolStats,
}

impl Pool {
    const fn new() -> Pool {
        Pool {
            classes: Vec::new(),
            stats: PoolStats {
                in_use: 0,
                in_use_bytes: 0,
                pooled: 0,
                allocated: 0,
                released: 0,
                taken: 0,
                max_pooled: DEFAULT_MAX_POOLED,
            },
        }
    }

    /// The class of `size`, made (with its free list's room reserved) if there is a
    /// class left.
    fn class(&mut self, size: usize) -> Option<&mut Class> {
        let i = match self.classes.iter().position(|c| c.size == size) {
            Some(i) => i,
            None if self.classes.len() < SIZE_CLASSES => {
                if self.classes.capacity() == 0 {
                    self.classes.reserve_exact(SIZE_CLASSES);
                }
                self.classes.push(Class {
                    size,
                    free: Vec::with_capacity(self.stats.max_pooled),
                });
                self.classes.len() - 1
            }
            None => return None,
        };
        self.classes.get_mut(i)
    }

    fn take(&mut self, size: usize) -> Box<[u8]> {
        self.stats.taken += 1;
        self.stats.in_use += 1;
        self.stats.in_use_bytes += size;
        if let Some(buf) = self.class(size).and_then(|c| c.free.pop()) {
            self.stats.pooled -= 1;
            return buf;
        }
        self.stats.allocated += 1;
        vec![0u8; size].into_boxed_slice()
    }

    fn give(&mut self, buf: Box<[u8]>) {
        let size = buf.len();
        self.stats.in_use = self.stats.in_use.saturating_sub(1);
        self.stats.in_use_bytes = self.stats.in_use_bytes.saturating_sub(size);
        let max = self.stats.max_pooled;
        match self.class(size) {
            Some(c) if c.free.len() < max => {
                c.free.push(buf);
                self.stats.pooled += 1;
            }
            _ => {
                self.stats.released += 1;
                drop(buf);
            }
        }
    }

    fn set_max_pooled(&mut self, n: usize) {
        self.stats.max_pooled = n;
        for c in &mut self.classes {
            while c.free.len() > n {
                c.free.pop();
                self.stats.pooled -= 1;
                self.stats.released += 1;
            }
            c.free.reserve_exact(n.saturating_sub(c.free.capacity()));
        }
    }
}

thread_local! {
    static POOL: RefCell<Pool> = const { RefCell::new(Pool::new()) };
}

/// A buffer of `size` bytes for a ring, from this thread's pool or fresh.
pub(crate) fn take(size: usize) -> Box<[u8]> {
    POOL.with(|p| p.borrow_mut().take(size))
}

/// A ring's buffer back to this thread's pool (or to the allocator when the pool is
/// full). Safe to call while the thread is exiting: the buffer is then simply freed.
pub(crate) fn give(buf: Box<[u8]>) {
    // After the pool is gone, the closure (and the buffer in it) is dropped.
    let _ = POOL.try_with(move |p| p.borrow_mut().give(buf));
}

/// This thread's pool: what rings hold now, what waits, what came and went.
pub fn stats() -> PoolStats {
    POOL.with(|p| p.borrow().stats)
}

/// How many buffers of one size this thread's pool keeps (default
/// [`DEFAULT_MAX_POOLED`]); extra ones go back to the allocator now and when returned.
/// Call it on the thread that runs the endpoints, before they carry data.
pub fn set_max_pooled(n: usize) {
    POOL.with(|p| p.borrow_mut().set_max_pooled(n));
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each test runs on a thread of its own, so each sees a fresh pool.

    #[test]
    fn a_returned_buffer_is_taken_again() {
        let a = take(4096);
        let s = stats();
        assert_eq!(
            (s.in_use, s.in_use_bytes, s.allocated, s.pooled),
            (1, 4096, 1, 0)
        );
        let addr = a.as_ptr();
        give(a);
        let s = stats();
        assert_eq!((s.in_use, s.in_use_bytes, s.pooled), (0, 0, 1));
        let b = take(4096);
        assert_eq!(b.as_ptr(), addr, "the pooled buffer is reused");
        assert_eq!(stats().allocated, 1, "nothing new was allocated");
        give(b);
    }

    #[test]
    fn sizes_are_kept_apart_and_the_pool_is_bounded() {
        set_max_pooled(2);
        let bufs: Vec<_> = (0..3).map(|_| take(1000)).collect();
        let other = take(2000);
        for b in bufs {
            give(b);
        }
        give(other);
        let s = stats();
        assert_eq!(s.pooled, 3, "two of 1000 bytes and one of 2000");
        assert_eq!(
            s.released, 1,
            "the third 1000-byte buffer went to the allocator"
        );
        assert_eq!(take(2000).len(), 2000);
        assert_eq!(stats().allocated, 4);
        set_max_pooled(0);
        let s = stats();
        assert_eq!((s.pooled, s.max_pooled), (0, 0));
    }

    #[test]
    fn sizes_beyond_the_classes_are_not_pooled() {
        for size in 1..=SIZE_CLASSES + 1 {
            give(take(size * 10));
        }
        let s = stats();
        assert_eq!(s.pooled, SIZE_CLASSES);
        assert_eq!(s.released, 1);
    }
}
