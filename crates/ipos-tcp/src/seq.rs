//! Wrapping sequence-number comparisons (RFC 9293 section 3.4, modulo 2^32).

/// `a < b` in sequence space.
#[inline]
pub(crate) fn lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// `a <= b` in sequence space.
#[inline]
pub(crate) fn le(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) <= 0
}

/// `a > b` in sequence space.
#[inline]
pub(crate) fn gt(a: u32, b: u32) -> bool {
    lt(b, a)
}

/// `a >= b` in sequence space.
#[inline]
pub(crate) fn ge(a: u32, b: u32) -> bool {
    le(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps() {
        assert!(lt(u32::MAX, 0));
        assert!(gt(0, u32::MAX));
        assert!(le(5, 5) && ge(5, 5));
        assert!(lt(0x7fff_fff0, 0x8000_0010));
        assert!(!lt(10, 10));
    }
}
