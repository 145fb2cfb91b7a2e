//! Fixed-capacity byte ring used for the send and receive buffers.
//!
//! A ring knows its capacity from the start but holds no memory until
//! [`Ring::allocate`] (a passive open allocates when the connection reaches
//! ESTABLISHED, so half-open connections cost no buffers); it never grows after
//! that. Until then it is empty, every write stores nothing and `free` still
//! reports the capacity (the window a SYN-ACK may promise). Indices are plain
//! `usize` offsets from the head, all arithmetic stays within `0..cap` so nothing
//! can panic as long as callers respect the documented preconditions (checked
//! with `min`).

#[derive(Clone, Debug)]
pub(crate) struct Ring {
    /// Empty until allocated, then `cap` bytes.
    buf: Box<[u8]>,
    cap: usize,
    head: usize,
    len: usize,
}

impl Ring {
    /// A ring of `cap` bytes (at least 1), not yet allocated.
    pub(crate) fn new(cap: usize) -> Ring {
        Ring {
            buf: Box::default(),
            cap: cap.max(1),
            head: 0,
            len: 0,
        }
    }

    /// Allocates the ring's memory (once; later calls do nothing).
    pub(crate) fn allocate(&mut self) {
        if self.buf.is_empty() {
            self.buf = vec![0u8; self.cap].into_boxed_slice();
        }
    }

    /// True once [`Ring::allocate`] ran.
    pub(crate) fn is_allocated(&self) -> bool {
        !self.buf.is_empty()
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
        if !self.is_allocated() {
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

    /// Contiguous free space right after the committed bytes.
    pub(crate) fn free_contig_mut(&mut self) -> &mut [u8] {
        if !self.is_allocated() {
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
    /// nothing before the ring is allocated).
    pub(crate) fn commit(&mut self, n: usize) -> usize {
        if !self.is_allocated() {
            return 0;
        }
        let n = n.min(self.free());
        self.len += n;
        n
    }

    /// Write `data` at offset `off` past the committed content, without committing.
    /// Bytes that would not fit in the free space are not written; returns bytes written.
    pub(crate) fn write_at(&mut self, off: usize, data: &[u8]) -> usize {
        let free = self.free();
        if off >= free || !self.is_allocated() {
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
    fn nothing_is_stored_before_allocation() {
        let mut r = Ring::new(8);
        assert!(!r.is_allocated());
        assert_eq!((r.cap(), r.free(), r.len()), (8, 8, 0));
        assert_eq!(r.free_contig_mut().len(), 0);
        assert_eq!(r.write_at(0, b"ab"), 0);
        assert_eq!(r.commit(2), 0);
        assert_eq!(r.readable(), (&b""[..], &b""[..]));
        assert_eq!(r.consume(1), 0);
        r.allocate();
        assert!(r.is_allocated());
        assert_eq!(r.free_contig_mut().len(), 8);
    }

    #[test]
    fn wrap_around() {
        let mut r = Ring::new(8);
        r.allocate();
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
