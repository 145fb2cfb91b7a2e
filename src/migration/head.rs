//! The request head a decision reads, as one slice (no I/O).
//!
//! The receive buffer is a ring: after enough keep-alive traffic a request
//! head can wrap its end, and the first of its two slices then holds only
//! the head's beginning. A decision that peeked at that slice alone would
//! see an incomplete head and wait for bytes that already came.

/// The first `max` bytes of `(first, second)` (a ring's two readable slices)
/// as one slice: `first` itself when it is long enough or the ring does not
/// wrap, else both copied into `scratch` (which keeps its capacity: with
/// `max` reserved up front this allocates nothing).
pub(crate) fn contiguous<'a>(
    (first, second): (&'a [u8], &'a [u8]),
    max: usize,
    scratch: &'a mut Vec<u8>,
) -> &'a [u8] {
    if second.is_empty() || first.len() >= max {
        return first;
    }
    scratch.clear();
    scratch.extend_from_slice(first);
    let rest = max - first.len();
    scratch.extend_from_slice(&second[..second.len().min(rest)]);
    scratch
}

#[cfg(test)]
mod tests {
    use super::contiguous;

    #[test]
    fn one_slice_is_used_as_it_is() {
        let mut s = Vec::with_capacity(8);
        assert_eq!(contiguous((b"GET / HT", b""), 8, &mut s), b"GET / HT");
        assert!(s.is_empty(), "no copy");
        // Long enough already: the second slice is not needed.
        assert_eq!(
            contiguous((b"GET / HTTP", b"/1.1"), 8, &mut s),
            b"GET / HTTP"
        );
        assert!(s.is_empty(), "no copy");
    }

    #[test]
    fn a_wrapped_head_is_joined_up_to_the_bound() {
        let mut s = Vec::with_capacity(16);
        let cap = s.capacity();
        assert_eq!(
            contiguous((b"GET /", b"b/ HTTP/1.1\r\n"), 16, &mut s),
            b"GET /b/ HTTP/1.1"
        );
        assert_eq!(contiguous((b"GE", b"T /"), 16, &mut s), b"GET /");
        assert_eq!(s.capacity(), cap, "no allocation past the bound");
    }
}
