//! The Internet checksum (RFC 1071) over a sequence of byte slices.
//!
//! The slices are summed as if they were one contiguous buffer (an odd-length
//! slice carries its last byte over as the high half of a word completed by
//! the next slice), and a trailing odd byte is padded with zero, as RFC 1071
//! says. Sums accumulate in a `u64`, eight bytes adding less than 2^33, so no
//! input shorter than 16 GiB can overflow them.

/// Ones'-complement sum of `parts`, folded to 16 bits (not complemented).
///
/// It sums in the machine's little-endian order, eight bytes a step, and swaps
/// the bytes of the folded result: RFC 1071 section 2 (B), the sum of
/// byte-swapped words is the byte-swapped sum. Eight bytes are two 32-bit
/// words, each the sum of its two 16-bit words modulo 0xffff (2^16 = 1), which
/// the fold keeps.
pub fn sum(parts: &[&[u8]]) -> u16 {
    let mut acc: u64 = 0;
    // True when the previous slice ended on the high byte of a word.
    let mut odd = false;
    for part in parts {
        let mut data: &[u8] = part;
        if odd {
            match data.split_first() {
                Some((&low, rest)) => {
                    acc += u64::from(low) << 8;
                    data = rest;
                    odd = false;
                }
                None => continue,
            }
        }
        let mut eights = data.chunks_exact(8);
        for q in &mut eights {
            let v = u64::from_le_bytes([q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7]]);
            acc += (v & 0xffff_ffff) + (v >> 32);
        }
        let mut words = eights.remainder().chunks_exact(2);
        for w in &mut words {
            acc += u64::from(u16::from_le_bytes([w[0], w[1]]));
        }
        if let [high] = words.remainder() {
            acc += u64::from(*high);
            odd = true;
        }
    }
    fold(acc).swap_bytes()
}

/// The checksum value to store: the complement of [`sum`].
pub fn checksum(parts: &[&[u8]]) -> u16 {
    !sum(parts)
}

/// True when `parts` (which include a stored checksum) sum to 0xffff, i.e.
/// their checksum computed including the checksum field is 0.
pub fn verifies(parts: &[&[u8]]) -> bool {
    checksum(parts) == 0
}

fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(sum(&[&data]), 0xddf2);
        assert_eq!(checksum(&[&data]), !0xddf2);
    }

    #[test]
    fn split_anywhere_gives_same_sum() {
        let data: Vec<u8> = (0u16..301).map(|i| (i * 37 % 251) as u8).collect();
        let whole = sum(&[&data]);
        for cut in 0..data.len() {
            let (a, b) = data.split_at(cut);
            assert_eq!(sum(&[a, b]), whole, "cut at {cut}");
            let (b1, b2) = b.split_at(b.len() / 2);
            assert_eq!(sum(&[a, &[], b1, b2]), whole, "cut at {cut}");
        }
    }

    /// RFC 1071's sum as it states it: one 16-bit word at a time, the carry
    /// added back at each step.
    fn word_by_word(data: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        for w in data.chunks(2) {
            acc += u32::from(w[0]) << 8 | u32::from(w.get(1).copied().unwrap_or(0));
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn eight_bytes_a_step_sums_as_word_by_word() {
        for len in 0..300usize {
            let data: Vec<u8> = (0..len).map(|i| (i * 89 % 256) as u8 ^ 0xa5).collect();
            let want = word_by_word(&data);
            for cut in [0, 1, 3, 7, len / 2, len] {
                let (a, b) = data.split_at(cut.min(len));
                assert_eq!(sum(&[a, b]), want, "len {len}, cut at {cut}");
            }
        }
        let ones = [0xffu8; 40];
        assert_eq!(sum(&[&ones]), word_by_word(&ones));
    }

    #[test]
    fn odd_tail_is_zero_padded() {
        assert_eq!(sum(&[&[0x12]]), 0x1200);
        assert_eq!(sum(&[&[0x12, 0x34, 0x56]]), 0x1234 + 0x5600);
    }

    #[test]
    fn stored_checksum_verifies() {
        let mut data = [0xde, 0xad, 0xbe, 0xef, 0x00, 0x00, 0x01];
        let c = checksum(&[&data]);
        data[4..6].copy_from_slice(&c.to_be_bytes());
        assert!(verifies(&[&data]));
        data[0] ^= 1;
        assert!(!verifies(&[&data]));
    }

    #[test]
    fn large_input_does_not_overflow() {
        let data = vec![0xffu8; 1 << 20];
        assert_eq!(sum(&[&data]), 0xffff);
    }
}
