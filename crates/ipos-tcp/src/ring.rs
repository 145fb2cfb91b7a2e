//! Fixed-capacity byte ring used for the send and receive buffers.
//!
//! A ring knows its capacity from the start but holds memory only while it holds
//! data. [`Ring::enable`] lets it store (a passive open enables its rings when the
//! connection reaches ESTABLISHED, so half-open connections cost no buffers); the
//! first write then takes a buffer from the thread's pool ([`crate::buffers`]) and
//! [`Ring::release_if_empty`] gives it back once nothing is stored any more. Until
//! enabled, every write stores nothing; `free` always reports the whole capacity less
//! what is stored (the window a SYN-ACK may promise, and the window an idle connection
//! keeps advertising). Indices are plain `usize` offsets from the head, all arithmetic
//! stays within `0..cap` so nothing can panic as long as callers respect the
//! documented preconditions (checked with `min`).

use crate::buffers;

#[derive(Debug)]
pub(crate) struct Ring {
    /// Empty while no memory is held, then `cap` bytes.
    buf: Box<[u8]>,
    cap: usize,
    head: usize,
    len: usize,
    enabled: bool,
}

impl Drop for Ring {
    fn drop(&mut self) {
        self.release();
    }
}

impl Ring {
    /// A ring of `cap` bytes (at least 1), not yet enabled, holding no memory.
    pub(crate) fn new(cap: usize) -> Ring {
        Ring {
            buf: Box::default(),
            cap: cap.max(1),
            head: 0,
            len: 0,
            enabled: false,
        }
    }

    /// From now on the ring may store data (memory is taken at the first write).
    pub(crate) fn enable(&mut self) {
        self.enabled = true;
    }

    /// True once [`Ring::enable`] ran.
    pub(crate) fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Bytes of memory the ring holds now (0 or its capacity).
    pub(crate) fn memory(&self) -> usize {
        self.buf.len()
    }

    /// Memory to write into: taken from the pool if the ring is enabled and holds none.
    fn storage(&mut self) -> bool {
        if self.buf.is_empty() && self.enabled {
            self.buf = buffers::take(self.cap);
        }
        !self.buf.is_empty()
    }

    /// Gives the memory back to the pool (the content is gone; the head restarts at 0).
    fn release(&mut self) {
        if !self.buf.is_empty() {
            buffers::give(core::mem::take(&mut self.buf));
        }
        self.head = 0;
        self.len = 0;
    }

    /// Gives the memory back if nothing is committed. The caller knows that nothing
    /// written past the committed bytes (out-of-order data) is still wanted.
    pub(crate) fn release_if_empty(&mut self) {
        if self.len == 0 && !self.buf.is_empty() {
            self.release();
        }
    }

    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn free(&self) -> usize {
        self.cap() - self.len
    }

    /// Bytes `[off, off + n)` of the committed content, as up to two slices.
    /// Out-of-range requests are clamped.
    pub(crate) fn range(&self, off: usize, n: usize) -> (&[u8], &[u8]) {
        if self.buf.is_empty() {
            return (&[], &[]);
        }
        let off = off.min(self.len);
        let n = n.min(self.len - off);
        let cap = self.cap();
        let start = (self.head + off) % cap;
        let first = n.min(cap - start);
        (&self.buf[start..start + first], &self.buf[..n - first])
    }

    /// All committed bytes, as up to two slices.
    pub(crate) fn readable(&self) -> (&[u8], &[u8]) {
        self.range(0, self.len)
    }

    /// Drop up to `n` bytes from the head.
    pub(crate) fn consume(&mut self, n: usize) -> usize {
        let n = n.min(self.len);
        self.head = (self.head + n) % self.cap();
        self.len -= n;
        // No reset of `head` when empty: data written past the committed bytes
        // (out-of-order receive data) is positioned relative to `head + len`.
        n
    }

    /// Contiguous free space right after the committed bytes (taking memory if the
    /// ring is enabled and holds none; empty if it is not enabled).
    pub(crate) fn free_contig_mut(&mut self) -> &mut [u8] {
        if !self.storage() {
            return &mut [];
        }
        let cap = self.cap();
        let tail = (self.head + self.len) % cap;
        let end = if tail >= self.head && self.len < cap {
            cap
        } else {
            self.head
        };
        let end = end.max(tail).min(tail + self.free());
        &mut self.buf[tail..end]
    }

    /// Mark `n` bytes after the committed content as committed (clamped to free space;
    /// nothing while the ring holds no memory: nothing was written).
    pub(crate) fn commit(&mut self, n: usize) -> usize {
        if self.buf.is_empty() {
            return 0;
        }
        let n = n.min(self.free());
        self.len += n;
        n
    }

    /// Bytes `[off, off + n)` past the committed content (what [`Ring::write_at`]
    /// wrote there), as up to two slices. Clamped to the free space.
    pub(crate) fn beyond(&self, off: usize, n: usize) -> (&[u8], &[u8]) {
        let free = self.free();
        if off >= free || n == 0 || self.buf.is_empty() {
            return (&[], &[]);
        }
        let n = n.min(free - off);
        let cap = self.cap();
        let start = (self.head + self.len + off) % cap;
        let first = n.min(cap - start);
        (&self.buf[start..start + first], &self.buf[..n - first])
    }

    /// Write `data` at offset `off` past the committed content, without committing.
    /// Bytes that would not fit in the free space are not written; returns bytes written.
    pub(crate) fn write_at(&mut self, off: usize, data: &[u8]) -> usize {
        let free = self.free();
        if off >= free || data.is_empty() || !self.storage() {
            return 0;
        }
        let n = data.len().min(free - off);
        let cap = self.cap();
        let start = (self.head + self.len + off) % cap;
        let first = n.min(cap - start);
        self.buf[start..start + first].copy_from_slice(&data[..first]);
        self.buf[..n - first].copy_from_slice(&data[first..n]);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_written_past_the_content_read_back_across_the_wrap() {
        let mut r = Ring::new(8);
        r.enable();
        assert_eq!(r.write_at(0, b"abcdef"), 6);
        assert_eq!(r.commit(6), 6);
        assert_eq!(r.consume(5), 5);
        // Content "f" at 5; past it: 6, 7, then 0.. after the wrap.
        assert_eq!(r.write_at(1, b"xyz"), 3);
        assert_eq!(r.beyond(1, 3), (&b"x"[..], &b"yz"[..]));
        assert_eq!(r.beyond(2, 2), (&b"yz"[..], &b""[..]));
        // Clamped to the free space (7 bytes past the content).
        assert_eq!(r.beyond(2, 100).0.len(), 5);
        assert_eq!(r.beyond(7, 1), (&b""[..], &b""[..]));
    }

    #[test]
    fn nothing_is_stored_before_enabling() {
        let mut r = Ring::new(8);
        assert!(!r.is_enabled());
        assert_eq!((r.cap(), r.free(), r.len(), r.memory()), (8, 8, 0, 0));
        assert_eq!(r.free_contig_mut().len(), 0);
        assert_eq!(r.write_at(0, b"ab"), 0);
        assert_eq!(r.commit(2), 0);
        assert_eq!(r.readable(), (&b""[..], &b""[..]));
        assert_eq!(r.consume(1), 0);
        assert_eq!(r.memory(), 0);
        r.enable();
        assert!(r.is_enabled());
        assert_eq!(r.memory(), 0, "enabling takes no memory");
        assert_eq!(r.free_contig_mut().len(), 8);
        assert_eq!(r.memory(), 8, "the first write does");
    }

    #[test]
    fn memory_comes_with_data_and_goes_when_drained() {
        let before = buffers::stats();
        let mut r = Ring::new(8);
        r.enable();
        assert_eq!(r.write_at(0, b""), 0);
        assert_eq!(r.memory(), 0, "writing nothing takes nothing");
        assert_eq!(r.write_at(2, b"cd"), 2);
        assert_eq!(r.memory(), 8);
        assert_eq!(buffers::stats().in_use, before.in_use + 1);
        // Data past the committed bytes: not empty for the owner, which decides.
        assert_eq!(r.write_at(0, b"ab"), 2);
        r.commit(4);
        r.consume(3);
        r.release_if_empty();
        assert_eq!(r.memory(), 8, "one byte is still stored");
        assert_eq!(r.readable(), (&b"d"[..], &b""[..]));
        r.consume(1);
        r.release_if_empty();
        assert_eq!((r.memory(), r.len(), r.free()), (0, 0, 8));
        assert_eq!(buffers::stats().in_use, before.in_use);
        // Stored again: the head restarts at 0, the whole capacity is contiguous.
        assert_eq!(r.free_contig_mut().len(), 8);
        r.commit(1);
        drop(r);
        assert_eq!(
            buffers::stats().in_use,
            before.in_use,
            "dropping gives back"
        );
    }

    #[test]
    fn wrap_around() {
        let mut r = Ring::new(8);
        r.enable();
        let s = r.free_contig_mut();
        assert_eq!(s.len(), 8);
        s[..6].copy_from_slice(b"abcdef");
        r.commit(6);
        assert_eq!(r.consume(4), 4);
        assert_eq!(r.readable(), (&b"ef"[..], &b""[..]));
        // tail at 6: contiguous free is 2 bytes (6..8)
        assert_eq!(r.free_contig_mut().len(), 2);
        assert_eq!(r.write_at(0, b"ghijk"), 5);
        r.commit(5);
        assert_eq!(r.readable(), (&b"efgh"[..], &b"ijk"[..]));
        assert_eq!(r.range(1, 4), (&b"fgh"[..], &b"i"[..]));
        assert_eq!(r.free(), 1);
        assert_eq!(r.write_at(1, b"zz"), 0);
        assert_eq!(r.write_at(0, b"zz"), 1);
        // full ring: contiguous free is empty
        r.commit(1);
        assert_eq!(r.free_contig_mut().len(), 0);
        r.consume(7);
        assert_eq!(r.readable().0, b"z");
    }
}
